//! Opening a lock file: path checks, the parent directory, and turning OS
//! errors into typed ones.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Error, Op};
use crate::sys::{self, FileId};
use crate::LockOptions;

/// Opens (creating if needed) the lock file at `path` and returns it with
/// its identity. The parent directory is created only when the first open
/// finds it missing, so the common case costs one `open` and one `fstat`.
pub(crate) fn open_lock_file(path: &Path, options: &LockOptions) -> Result<(File, FileId), Error> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid_path(path, false));
    }
    if bytes.contains(&0) {
        return Err(Error::invalid_path(path, true));
    }
    let file = match sys::open(path, options.file_mode) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_parent(path, options, e)?;
            sys::open(path, options.file_mode).map_err(|e| Error::io(path, Op::Open, e))?
        }
        Err(e) => return Err(Error::io(path, Op::Open, e)),
    };
    match sys::identify(&file) {
        Ok(Ok(id)) => Ok((file, id)),
        Ok(Err(what)) => Err(Error::not_a_file(path, what)),
        Err(e) => Err(Error::io(path, Op::Inspect, e)),
    }
}

fn create_parent(path: &Path, options: &LockOptions, not_found: io::Error) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        // No parent to create: the NotFound came from elsewhere.
        _ => return Err(Error::io(path, Op::Open, not_found)),
    };
    if !options.create_parent {
        return Err(Error::create_dir(path, not_found));
    }
    std::fs::create_dir_all(parent).map_err(|e| Error::create_dir(path, e))
}
