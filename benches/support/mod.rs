//! What both bench binaries need.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Opens (creating if needed) a lock file for reading and writing, its
/// content kept.
pub fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open lock file")
}
