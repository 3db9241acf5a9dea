//! Fallback for targets with neither Unix nor Windows locks: everything
//! compiles, every lock operation answers `Unsupported`.

use std::fs::File;
use std::io;
use std::path::Path;

use super::{FileId, NotFile};
use crate::LockMode;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "file locks are not supported on this platform",
    )
}

pub(crate) fn identify(_file: &File) -> io::Result<Result<FileId, NotFile>> {
    Err(unsupported())
}

pub(crate) fn path_id(_path: &Path) -> io::Result<Option<FileId>> {
    Err(unsupported())
}

pub(crate) fn try_lock(_file: &File, _mode: LockMode) -> io::Result<bool> {
    Err(unsupported())
}

pub(crate) fn lock_wait(_file: &File, _mode: LockMode) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn unlock(_file: &File) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn is_unsupported(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
}

pub(crate) fn is_text_busy(_err: &io::Error) -> bool {
    false
}

pub(crate) fn is_bad_descriptor(_err: &io::Error) -> bool {
    false
}

pub(crate) fn not_file_at(_path: &Path) -> Option<NotFile> {
    None
}

pub(crate) fn os_locks_shared(_file: &File) -> bool {
    false
}

pub(crate) fn os_locks_stay_local(_file: &File) -> Option<String> {
    None
}

pub(crate) fn is_symlink_refusal(_err: &io::Error) -> bool {
    false
}

pub(crate) fn is_not_a_directory(_err: &io::Error) -> bool {
    false
}

pub(crate) fn is_directory(_err: &io::Error) -> bool {
    false
}

pub(crate) fn open_existing(_path: &Path) -> io::Result<Option<File>> {
    Err(unsupported())
}

pub(crate) fn create_new(_path: &Path, _mode: u32) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn open_existing_rw(_path: &Path) -> io::Result<Option<File>> {
    Err(unsupported())
}

/// Access times are left as they are here (see the Unix version).
pub(crate) fn quiet_reads(_file: &File) {}

/// Removes the file at `path`.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}
