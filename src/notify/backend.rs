//! The backend of Unix systems with neither inotify nor kqueue (the
//! others are `inotify.rs` and `kqueue.rs`): no instance, so waiters rely
//! on backoff alone.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::io::Errno;

use super::watch::Happened;

pub(super) const NAME: &str = "file-event";

/// No waiter here can hear a release announcement: holders skip it.
pub(super) const HEARS_ANNOUNCEMENTS: bool = false;

pub(super) type Key = i32;
/// Nothing to keep.
pub(super) struct Keep;

pub(super) fn instance() -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(super) fn watch_file(
    _inst: &OwnedFd,
    _file: &File,
    _path: &Path,
) -> Result<(Key, Keep), Errno> {
    Err(Errno::NOSYS)
}

pub(super) fn watch_dir(_inst: &OwnedFd, _dir: &Path) -> Result<(Key, Keep), Errno> {
    Err(Errno::NOSYS)
}

pub(super) fn unwatch(_inst: &OwnedFd, _key: Key, _keep: Keep) {}

pub(super) fn is_limit(_e: Errno) -> bool {
    false
}

pub(super) fn read_events(_inst: &OwnedFd, _on: impl FnMut(Happened<'_>)) {}
