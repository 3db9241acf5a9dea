//! Unix backend: `flock(2)` through rustix.
//!
//! `flock` locks belong to the open file description, so two `open()`s of
//! one file in one process conflict exactly as two processes do; POSIX
//! `fcntl` locks would not (they belong to the process and vanish when any
//! descriptor of the file is closed).

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::{FileId, NotFile};
use crate::LockMode;

// The `as u64` casts below are no-ops on Linux but widen `dev_t`/`ino_t`
// on platforms where they are narrower or signed (macOS `dev_t` is i32).

/// The identity of an open lock file, or what it is if it is not a regular
/// file.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn identify(file: &File) -> io::Result<Result<FileId, NotFile>> {
    let st = rfs::fstat(file)?;
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Ok(FileId {
            device: st.st_dev as u64,
            index: st.st_ino as u64,
        }),
        FileType::Directory => Err(NotFile::Directory),
        FileType::Fifo => Err(NotFile::Fifo),
        FileType::Socket => Err(NotFile::Socket),
        FileType::CharacterDevice | FileType::BlockDevice => Err(NotFile::Device),
        FileType::Symlink => Err(NotFile::Symlink),
        _ => Err(NotFile::Other),
    })
}

/// The identity of whatever is at `path` now (not following a final
/// symlink), or `None` if nothing is.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    match retry(|| rfs::lstat(path)) {
        Ok(st) => Ok(Some(FileId {
            device: st.st_dev as u64,
            index: st.st_ino as u64,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One non-blocking attempt: `Ok(true)` locked, `Ok(false)` held elsewhere.
pub(crate) fn try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    let op = match mode {
        LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
        LockMode::Shared => FlockOperation::NonBlockingLockShared,
    };
    match retry(|| rfs::flock(file, op)) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Blocks the calling thread in the kernel until the lock is granted.
pub(crate) fn lock_wait(file: &File, mode: LockMode) -> io::Result<()> {
    let op = match mode {
        LockMode::Exclusive => FlockOperation::LockExclusive,
        LockMode::Shared => FlockOperation::LockShared,
    };
    Ok(retry(|| rfs::flock(file, op))?)
}

/// Releases whatever lock this open file description holds.
pub(crate) fn unlock(file: &File) -> io::Result<()> {
    Ok(retry(|| rfs::flock(file, FlockOperation::Unlock))?)
}

/// Whether an OS error means "this filesystem or platform cannot lock".
pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    let Some(code) = err.raw_os_error() else {
        return err.kind() == io::ErrorKind::Unsupported;
    };
    let errno = Errno::from_raw_os_error(code);
    errno == Errno::NOTSUP
        || errno == Errno::OPNOTSUPP
        || errno == Errno::NOSYS
        || errno == Errno::NOLCK
}

/// Whether an open error means the final path component is a symlink
/// (`ELOOP` on Linux and macOS, `EMLINK` on FreeBSD).
pub(crate) fn is_symlink_refusal(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::LOOP | Errno::MLINK)
    )
}

/// Whether an open error means something on the way is not a directory.
pub(crate) fn is_not_a_directory(err: &io::Error) -> bool {
    err.raw_os_error().map(Errno::from_raw_os_error) == Some(Errno::NOTDIR)
}

/// Whether an open error means the path itself is a directory.
pub(crate) fn is_directory(err: &io::Error) -> bool {
    err.raw_os_error().map(Errno::from_raw_os_error) == Some(Errno::ISDIR)
}

/// Whether an open error means the file is being executed (`ETXTBSY`): it
/// cannot be opened for writing.
pub(crate) fn is_text_busy(err: &io::Error) -> bool {
    err.raw_os_error().map(Errno::from_raw_os_error) == Some(Errno::TXTBSY)
}

/// Whether a lock call refused the descriptor itself (`EBADF`): NFSv4
/// refuses an exclusive lock through a read-only descriptor.
pub(crate) fn is_bad_descriptor(err: &io::Error) -> bool {
    err.raw_os_error().map(Errno::from_raw_os_error) == Some(Errno::BADF)
}

/// What is at `path` if it is neither a regular file nor missing, for an
/// open that failed (a socket gives `ENXIO`).
pub(crate) fn not_file_at(path: &Path) -> Option<NotFile> {
    let st = retry(|| rfs::lstat(path)).ok()?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => None,
        FileType::Directory => Some(NotFile::Directory),
        FileType::Fifo => Some(NotFile::Fifo),
        FileType::Socket => Some(NotFile::Socket),
        FileType::CharacterDevice | FileType::BlockDevice => Some(NotFile::Device),
        FileType::Symlink => Some(NotFile::Symlink),
        _ => Some(NotFile::Other),
    }
}

/// Whether OS locks on `file`'s filesystem are seen by every process that
/// can open it: a local filesystem, which only this kernel serves. Network
/// and FUSE filesystems are not trusted: sshfs, for one, keeps `flock`
/// locks in each machine's kernel, and shows a hard link under another
/// inode number. Unknown filesystems are not trusted either. Where the
/// filesystem cannot be told (a failed `fstatfs`), not trusted.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn os_locks_shared(file: &File) -> bool {
    // Magic numbers from linux/magic.h.
    const LOCAL: &[i64] = &[
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0x794C_7630, // overlayfs
        0xCA45_1A4E, // bcachefs
        0x5265_4973, // reiserfs
        0x3153_464A, // jfs
        0x3434,      // nilfs
        0x4d44,      // vfat
        0x2011_BAB0, // exfat
        0x5346_544E, // ntfs3
    ];
    match rfs::fstatfs(file) {
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Ok(st) => LOCAL.contains(&(st.f_type as i64)),
        Err(_) => false,
    }
}

/// Whether OS locks on `file`'s filesystem are seen by every process that
/// can open it (see the Linux version): by the filesystem's type name.
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
pub(crate) fn os_locks_shared(file: &File) -> bool {
    const LOCAL: &[&[u8]] = &[
        b"apfs", b"hfs", b"ufs", b"zfs", b"tmpfs", b"msdos", b"exfat",
    ];
    match rfs::fstatfs(file) {
        Ok(st) => {
            let name: Vec<u8> = st
                .f_fstypename
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            LOCAL.contains(&name.as_slice())
        }
        Err(_) => false,
    }
}

/// Elsewhere the filesystem cannot be told: OS locks are trusted, as the
/// `trust_os_lock` option says.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)))]
pub(crate) fn os_locks_shared(_file: &File) -> bool {
    true
}

/// The filesystem type of `file`, if it is one whose OS locks are known to
/// stay in each machine's kernel (a FUSE filesystem that does not pass
/// locks to its server). Found in `/proc/self/mountinfo` by device number.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn os_locks_stay_local(file: &File) -> Option<String> {
    const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
    const KNOWN: &[&str] = &[
        "fuse.sshfs",
        "fuse.rclone",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.goofys",
    ];
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let fuse = rfs::fstatfs(file).is_ok_and(|st| st.f_type as i64 == FUSE_SUPER_MAGIC);
    if !fuse {
        return None;
    }
    let st = rfs::fstat(file).ok()?;
    let dev = format!("{}:{}", rfs::major(st.st_dev), rfs::minor(st.st_dev));
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // `36 35 0:40 / /mnt rw,relatime shared:1 - fuse.sshfs src rw,...`
    table.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != dev {
            return None;
        }
        let (_, after) = line.split_once(" - ")?;
        let fstype = after.split(' ').next()?;
        KNOWN.contains(&fstype).then(|| fstype.to_string())
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn os_locks_stay_local(_file: &File) -> Option<String> {
    None
}

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Opens an existing file read-only without following a final symlink or
/// blocking on a FIFO; `None` if nothing is at `path`.
pub(crate) fn open_existing(path: &Path) -> io::Result<Option<File>> {
    let flags =
        OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::RDONLY;
    match retry(|| rfs::open(path, flags, Mode::empty())) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates a new file, failing with `AlreadyExists` if anything (even a
/// dangling symlink) is at `path`.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let flags = OFlags::CLOEXEC
        | OFlags::NOFOLLOW
        | OFlags::NOCTTY
        | OFlags::RDWR
        | OFlags::CREATE
        | OFlags::EXCL;
    let perm = Mode::from_raw_mode(mode as rustix::fs::RawMode);
    Ok(File::from(retry(|| rfs::open(path, flags, perm))?))
}

/// Opens an existing file read-write, not following a final symlink and
/// never creating; `None` if nothing is at `path`.
pub(crate) fn open_existing_rw(path: &Path) -> io::Result<Option<File>> {
    let flags =
        OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::RDWR;
    match retry(|| rfs::open(path, flags, Mode::empty())) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Asks that reads through `file` leave its access time alone
/// (`O_NOATIME`), where the kernel allows it: for the file's owner, on
/// Linux. Best effort, and only for lockyard's own lock files, whose
/// access time means nothing.
///
/// Under `relatime` the first read after a write updates the access time,
/// which dirties the inode: each acquisition reads the record the last
/// holder wrote, so every hand-off between processes paid for it
/// (`benches/wake_probe.c`, "flock + rec noatime").
pub(crate) fn quiet_reads(file: &File) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(flags) = rfs::fcntl_getfl(file) {
        if !flags.contains(OFlags::NOATIME) {
            // EPERM for a file someone else owns: reads then touch the
            // access time as before.
            let _ = rfs::fcntl_setfl(file, flags | OFlags::NOATIME);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = file;
}

/// Removes the file at `path`. Unix frees the name at once, open or not.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}
