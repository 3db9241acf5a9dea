//! Windows backend: `LockFileEx` on one byte far past the end of the file.
//!
//! Windows byte-range locks are mandatory: while a handle holds an exclusive
//! lock on a range, other handles cannot read it. Locking a single byte at
//! offset `u64::MAX - 1` leaves the file's real content readable by waiters
//! (holder records can live there), while still conflicting with programs
//! that lock the whole file the way `std::fs::File::lock` does (its range
//! `0..u64::MAX` covers that byte).
//!
//! It holds the crate's Windows `unsafe` code for locking, each block with
//! a `SAFETY:` comment; the other `unsafe` blocks are the file-event
//! sources (`notify/kqueue.rs`, `notify/windows.rs`, one call in
//! `notify/watch.rs`). CONTRIBUTING lists them.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_INVALID_FUNCTION, ERROR_LOCK_VIOLATION, ERROR_NOT_SUPPORTED,
};
use windows_sys::Win32::Storage::FileSystem::{
    GetFileInformationByHandle, GetFileType, LockFileEx, UnlockFile, BY_HANDLE_FILE_INFORMATION,
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    FILE_TYPE_CHAR, FILE_TYPE_DISK, FILE_TYPE_PIPE, LOCKFILE_EXCLUSIVE_LOCK,
    LOCKFILE_FAIL_IMMEDIATELY,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::{FileId, NotFile};
use crate::LockMode;

/// Offset of the locked byte, split for the Win32 API.
const LOCK_OFFSET_LOW: u32 = 0xFFFF_FFFE;
const LOCK_OFFSET_HIGH: u32 = 0xFFFF_FFFF;

fn info(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    // SAFETY: the all-zero bit pattern is a valid value of this plain C
    // struct of integers and FILETIMEs.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open for the lifetime of `file`, and `info` is a
    // valid, writable out-pointer for the duration of the call.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle() as _, &mut info) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

fn id_of(info: &BY_HANDLE_FILE_INFORMATION) -> FileId {
    FileId {
        device: u64::from(info.dwVolumeSerialNumber),
        index: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    }
}

pub(crate) fn identify(file: &File) -> io::Result<Result<FileId, NotFile>> {
    // SAFETY: the handle is valid while `file` lives.
    let kind = unsafe { GetFileType(file.as_raw_handle() as _) };
    match kind {
        FILE_TYPE_DISK => {}
        FILE_TYPE_PIPE => return Ok(Err(NotFile::Fifo)),
        FILE_TYPE_CHAR => return Ok(Err(NotFile::Device)),
        _ => return Ok(Err(NotFile::Other)),
    }
    let info = info(file)?;
    if info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Ok(Err(NotFile::Symlink));
    }
    if info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        return Ok(Err(NotFile::Directory));
    }
    Ok(Ok(id_of(&info)))
}

pub(crate) fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    let opened = OpenOptions::new()
        .access_mode(0)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path);
    match opened {
        Ok(file) => Ok(Some(id_of(&info(&file)?))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn lock_ex(file: &File, mode: LockMode, fail_immediately: bool) -> io::Result<()> {
    let mut flags = if fail_immediately {
        LOCKFILE_FAIL_IMMEDIATELY
    } else {
        0
    };
    if mode == LockMode::Exclusive {
        flags |= LOCKFILE_EXCLUSIVE_LOCK;
    }
    // SAFETY: OVERLAPPED is a plain C struct for which all-zero is valid.
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    overlapped.Anonymous.Anonymous.Offset = LOCK_OFFSET_LOW;
    overlapped.Anonymous.Anonymous.OffsetHigh = LOCK_OFFSET_HIGH;
    // SAFETY: the handle is valid while `file` lives; the file is opened for
    // synchronous I/O, so the call completes before returning and the
    // OVERLAPPED on our stack outlives its use.
    let ok = unsafe { LockFileEx(file.as_raw_handle() as _, flags, 0, 1, 0, &mut overlapped) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    match lock_ex(file, mode, true) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn lock_wait(file: &File, mode: LockMode) -> io::Result<()> {
    lock_ex(file, mode, false)
}

pub(crate) fn unlock(file: &File) -> io::Result<()> {
    // SAFETY: the handle is valid while `file` lives; the range matches the
    // one locked in `lock_ex`.
    let ok = unsafe {
        UnlockFile(
            file.as_raw_handle() as _,
            LOCK_OFFSET_LOW,
            LOCK_OFFSET_HIGH,
            1,
            0,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(c) if c == ERROR_NOT_SUPPORTED as i32 || c == ERROR_INVALID_FUNCTION as i32)
        || err.kind() == io::ErrorKind::Unsupported
}

pub(crate) fn is_text_busy(_err: &io::Error) -> bool {
    false
}

pub(crate) fn is_bad_descriptor(_err: &io::Error) -> bool {
    false
}

/// What is at `path` if it is neither a regular file nor missing. An open
/// that fails on Windows says why itself: nothing to add.
pub(crate) fn not_file_at(_path: &Path) -> Option<NotFile> {
    None
}

/// Whether OS locks on `file`'s volume are seen by every process that can
/// open it. Windows enforces byte-range locks on local volumes and on SMB
/// shares (the server keeps them), so they are trusted.
pub(crate) fn os_locks_shared(_file: &File) -> bool {
    true
}

pub(crate) fn os_locks_stay_local(_file: &File) -> Option<String> {
    None
}

pub(crate) fn is_symlink_refusal(_err: &io::Error) -> bool {
    false
}

pub(crate) fn is_not_a_directory(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotADirectory
}

pub(crate) fn is_directory(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::IsADirectory
}

/// Opens an existing file read-only, not following a reparse point;
/// `None` if nothing is at `path`.
pub(crate) fn open_existing(path: &Path) -> io::Result<Option<File>> {
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    match OpenOptions::new()
        .read(true)
        .share_mode(share)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a new file, failing with `AlreadyExists` if one is at `path`.
pub(crate) fn create_new(path: &Path, _mode: u32) -> io::Result<File> {
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .share_mode(share)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

/// Opens an existing file read-write, never creating; `None` if nothing is
/// at `path`.
pub(crate) fn open_existing_rw(path: &Path) -> io::Result<Option<File>> {
    let share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;
    match OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(share)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Access times are left as they are here (see the Unix version).
pub(crate) fn quiet_reads(_file: &File) {}

/// Removes the file at `path`, freeing the name at once even while some
/// handle keeps the file open.
///
/// Deleting an open file on Windows only marks it for deletion: its name
/// stays until the last handle closes (on ReFS, over SMB, on Windows before
/// 10 1903, and under wine), so a soft lock broken behind its holder's back
/// could not be taken, and a cleaned lock file would still be listed. A
/// rename of an open file is immediate (every handle lockyard opens shares
/// deletion), so the file is first renamed to a tombstone beside it,
/// `.NAME.PID.HEX16.gone`, and the tombstone is deleted. If the rename is
/// refused (a handle that does not share deletion), the file is deleted
/// under its name, as before.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    let tombstone = super::private_path(path, ".gone");
    match std::fs::rename(path, &tombstone) {
        Ok(()) => {
            // Marked for deletion; gone with the last handle.
            let _ = std::fs::remove_file(&tombstone);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(e),
        Err(_) => std::fs::remove_file(path),
    }
}
