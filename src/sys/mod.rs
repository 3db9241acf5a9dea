//! The one switch between platform backends.
//!
//! Every backend exposes the same few functions over `std::fs::File`:
//! `open`, `identify`, `try_lock`, `lock_wait`, `unlock`, `path_id`. A target
//! with no backend gets `other`, which compiles everywhere and answers
//! `Unsupported` instead of panicking.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(unix, windows)))]
mod other;
#[cfg(not(any(unix, windows)))]
pub(crate) use other::*;

/// Identity of an open file: two descriptors lock the same thing exactly
/// when their ids are equal (device + inode on Unix, volume + file index on
/// Windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) device: u64,
    pub(crate) index: u64,
}

/// What kind of thing a lock path turned out to be, when it is not a regular
/// file. Used for error messages only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Windows has no socket files.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) enum NotFile {
    Directory,
    Fifo,
    Socket,
    Device,
    Symlink,
    Other,
}
