//! Opening a lock file: path checks, the parent directory, telling a lock
//! file lockyard made from a file that holds someone's data, and turning OS
//! errors into typed ones.
//!
//! # Which files lockyard writes
//!
//! A file is a *lock file* when lockyard created it or when it begins with
//! content only lockyard writes: a complete strict holder record (checksum
//! and all) for a strict lock, a `lockyard-ctl` header for a soft lock's
//! control file. Everything else, an existing empty file included, is a
//! *plain file*: it is locked as it is and never written, truncated,
//! removed or touched (not even its times). An existing file is first
//! opened read-only, so a program can still `exec` it while it is locked,
//! and a watcher sees no "closed after writing" event; only a file found to
//! be a lock file is opened again read-write.
//!
//! lockyard creates a lock file whole: its first content (a "free" record,
//! or a control file's header) is written under a temporary name that is
//! then hard-linked into place, so no process ever finds a lock file empty.
//! Where the filesystem has no hard links it is created with `O_EXCL` and
//! written at once; a crash between the two leaves an empty file, which
//! from then on is a plain file: locking it still works, without holder
//! records or fencing tokens. That is the price of never writing into a
//! file that could be someone's data.

use std::fs::File;
use std::io;
use std::path::Path;

use super::record_io;
use super::{soft::sidecar, temp};
use crate::error::{Error, Op};
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{LockKind, RecordState};
use crate::sys::{self, FileId};

/// What the file at a lock path holds, and so what lockyard may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// A strict lock file: a holder record.
    Record,
    /// A soft lock's control file: the last fencing token.
    Control,
}

/// An open lock path.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) file: File,
    pub(crate) id: FileId,
    /// A lock file lockyard made (it may write into it); `false` for a
    /// plain file, which is never written.
    pub(crate) ours: bool,
}

/// Opens `anchor`, the file a lock at `lock_path` is taken on (the lock
/// file itself, or a soft lock's control file), creating it as a lock file
/// (and its parent directory, if allowed) when nothing is there. The lock
/// path is checked first: a soft lock's control file name is never empty,
/// even when the lock path is.
pub(crate) fn open_lock_file(
    lock_path: &Path,
    anchor: &Path,
    options: &LockOptions,
    format: Format,
) -> Result<Opened, Error> {
    check_path(lock_path)?;
    check_path(anchor)?;
    let opened = open_anchor(anchor, options, format)?;
    if format == Format::Record && !options.local_os_locks {
        if let Some(fstype) = sys::os_locks_stay_local(&opened.file) {
            return Err(Error::io(
                lock_path,
                Op::Open,
                io::Error::new(io::ErrorKind::Unsupported, LocalLocks(fstype)),
            ));
        }
    }
    Ok(opened)
}

/// Why a strict lock is refused on a filesystem whose OS locks stay on
/// each machine.
#[derive(Debug)]
struct LocalLocks(String);

impl std::fmt::Display for LocalLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OS locks on this filesystem ({}) are kept by each machine and do not exclude \
             processes on other machines: use LockOptions::soft(), or \
             LockOptions::local_os_locks(true) if every user of the lock runs on this machine",
            self.0
        )
    }
}

impl std::error::Error for LocalLocks {}

fn open_anchor(path: &Path, options: &LockOptions, format: Format) -> Result<Opened, Error> {
    // Creation races with other processes creating or removing the file:
    // a few rounds, then the last error stands.
    let mut parent_made = false;
    for _ in 0..8 {
        match sys::open_existing(path) {
            Ok(Some(file)) => return classify(path, file, format),
            Ok(None) => {}
            Err(e) => return Err(open_error(path, e)),
        }
        match create(path, options, format) {
            Ok(Some((file, id))) => {
                return Ok(Opened {
                    file,
                    id,
                    ours: true,
                });
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && !parent_made => {
                create_parent(path, options, e)?;
                parent_made = true;
            }
            Err(e) => return Err(open_error(path, e)),
        }
    }
    let e = io::Error::other("the file kept appearing and disappearing while it was opened");
    Err(Error::io(path, Op::Open, e))
}

/// Opens the existing file `id` at `path` again, for a wait of its own, in
/// the access mode lockyard uses for it. `None` if the path now names
/// another file or nothing.
pub(crate) fn reopen(path: &Path, id: FileId, ours: bool) -> io::Result<Option<File>> {
    let file = if ours {
        let file = match sys::open_existing_rw(path) {
            Err(e) if is_write_refused(&e) => sys::open_existing(path)?,
            other => other?,
        };
        // The record is read through it once the wait has the lock.
        file.inspect(sys::quiet_reads)
    } else {
        sys::open_existing(path)?
    };
    if_same(file, id)
}

/// The same file opened read-write, for an exclusive lock where the
/// filesystem refuses one on a read-only descriptor (NFSv4 emulates `flock`
/// with byte-range locks, and an exclusive one needs write access). Opening
/// for writing writes nothing.
pub(crate) fn reopen_for_exclusive(path: &Path, id: FileId) -> io::Result<Option<File>> {
    if_same(sys::open_existing_rw(path)?, id)
}

/// `file` if it is the file `id` (the path may name another one by now).
fn if_same(file: Option<File>, id: FileId) -> io::Result<Option<File>> {
    let Some(file) = file else {
        return Ok(None);
    };
    Ok(match sys::identify(&file)? {
        Ok(found) if found == id => Some(file),
        _ => None,
    })
}

/// A path a lock can live at: not empty, no NUL byte, and ending in a
/// file name (`.`, `..` and a root name directories, never a lock file).
pub(crate) fn check_path(path: &Path) -> Result<(), Error> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid_path(path, false));
    }
    if bytes.contains(&0) {
        return Err(Error::invalid_path(path, true));
    }
    if path.file_name().is_none() {
        return Err(Error::no_file_name(path));
    }
    Ok(())
}

fn identify(path: &Path, file: &File) -> Result<FileId, Error> {
    match sys::identify(file) {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(what)) => Err(Error::not_a_file(path, what)),
        Err(e) => Err(Error::io(path, Op::Inspect, e)),
    }
}

/// [`sys::open_existing`], where an open that fails on something that is
/// not a regular file (opening a socket fails with "no such device or
/// address") says what it is, so that every question about a lock gives
/// the same typed answer as taking it.
pub(crate) fn open_existing(path: &Path) -> io::Result<Option<File>> {
    sys::open_existing(path).map_err(|e| match sys::not_file_at(path) {
        Some(what) => crate::error::NotFileError::io(what),
        None => e,
    })
}

/// An open that failed: a socket or device at the path is named as such
/// (opening a socket fails with "no such device or address").
fn open_error(path: &Path, e: io::Error) -> Error {
    match sys::not_file_at(path) {
        Some(what) => Error::not_a_file(path, what),
        _ => Error::io(path, Op::Open, e),
    }
}

/// An existing file: a lock file (reopened read-write, so records can be
/// written) or a plain file (kept read-only).
fn classify(path: &Path, file: File, format: Format) -> Result<Opened, Error> {
    let id = identify(path, &file)?;
    let ours = is_lock_file(&file, format).map_err(|e| Error::io(path, Op::Inspect, e))?;
    if !ours {
        return Ok(Opened {
            file,
            id,
            ours: false,
        });
    }
    let rw = sys::open_existing_rw(path).and_then(|rw| if_same(rw, id));
    let file = match rw {
        Ok(Some(rw)) => rw,
        // Replaced meanwhile, or not writable here (another user's lock
        // file, a read-only mount): lock through the read-only descriptor;
        // writing records then fails, which never stops the lock.
        Ok(None) => file,
        Err(e) if is_write_refused(&e) => file,
        Err(e) => return Err(open_error(path, e)),
    };
    Ok(Opened {
        file,
        id,
        ours: true,
    })
}

/// Whether `file` begins with content only lockyard writes.
pub(crate) fn is_lock_file(file: &File, format: Format) -> io::Result<bool> {
    match format {
        // A soft lock's sidecar holds a record too, but it is not a strict
        // lock file: its holder's record is not ours to replace.
        Format::Record => Ok(matches!(
            record_io::read(file)?,
            record_io::Read::Record(r) if r.kind == LockKind::Strict
        )),
        Format::Control => sidecar::is_control(file),
    }
}

fn is_write_refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    ) || sys::is_text_busy(e)
}

/// Creates the lock file at `path` with its first content already in it:
/// written under a temporary name and hard-linked into place, so no
/// process ever finds it empty (and takes it for someone's empty file).
/// `None` if something is at `path` already. Where the filesystem has no
/// hard links, the file is created with `O_EXCL` and written at once.
fn create(
    path: &Path,
    options: &LockOptions,
    format: Format,
) -> io::Result<Option<(File, FileId)>> {
    let published = match temp::publish(path, options.file_mode, |file| {
        initialise(file, format, options)
    }) {
        Err(e) if is_link_unsupported(&e) => return create_in_place(path, options, format),
        other => other?,
    };
    let Some(file) = published else {
        return Ok(None);
    };
    let id = match sys::identify(&file)? {
        Ok(id) => id,
        Err(what) => return Err(crate::error::NotFileError::io(what)),
    };
    // Held through the path itself: a descriptor opened through the
    // temporary name shows that (deleted) name in `lsof` and `/proc`,
    // which looks like a lock on a deleted file.
    let named = if_same(sys::open_existing_rw(path)?, id)?;
    Ok(Some((named.unwrap_or(file), id)))
}

/// [`create`] without hard links: `O_EXCL`, then the first write. A crash
/// in between leaves an empty file, a plain file from then on.
fn create_in_place(
    path: &Path,
    options: &LockOptions,
    format: Format,
) -> io::Result<Option<(File, FileId)>> {
    match sys::create_new(path, options.file_mode) {
        Ok(file) => {
            // Best effort: a lock file whose first write failed stays
            // empty, and so is a plain file later.
            let _ = initialise(&file, format, options);
            match sys::identify(&file)? {
                Ok(id) => Ok(Some((file, id))),
                Err(what) => Err(crate::error::NotFileError::io(what)),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_link_unsupported(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
    ) || sys::is_unsupported(e)
}

/// The first content of a lock file just created.
fn initialise(file: &File, format: Format, options: &LockOptions) -> io::Result<()> {
    match format {
        Format::Record => {
            let mut rec =
                crate::backend::new_record(LockKind::Strict, LockMode::Exclusive, 0, options);
            rec.state = RecordState::Released;
            record_io::write(file, &rec)
        }
        Format::Control => sidecar::init_control(file),
    }
}

fn create_parent(path: &Path, options: &LockOptions, not_found: io::Error) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        // No parent to create: the NotFound came from elsewhere.
        _ => return Err(Error::io(path, Op::Open, not_found)),
    };
    if !options.create_parent {
        return Err(Error::no_parent(path, not_found));
    }
    std::fs::create_dir_all(parent).map_err(|e| Error::create_dir(path, e))
}
