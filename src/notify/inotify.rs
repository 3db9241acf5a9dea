//! The inotify backend (Linux, Android): one instance per process, one
//! kernel watch per watched inode (the kernel hands out the same watch
//! descriptor again for an inode already watched).

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use super::watch::Happened;

pub(super) const NAME: &str = "inotify";

/// Waiters hear a release announcement (`IN_ATTRIB`).
pub(super) const HEARS_ANNOUNCEMENTS: bool = true;

/// A watch descriptor.
pub(super) type Key = i32;

/// Nothing: the instance keeps inotify watches alive.
pub(super) struct Keep;

pub(super) fn instance() -> io::Result<OwnedFd> {
    Ok(inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?)
}

/// A close of the file (every `close`-to-release program), a change of its
/// times (lockyard's release announcement) or link count, or the file going
/// away. Not writes: a new holder stamping its record must not wake the
/// other waiters for nothing.
fn file_events() -> WatchFlags {
    WatchFlags::CLOSE_WRITE
        | WatchFlags::CLOSE_NOWRITE
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

/// A soft lock is released by removing its sidecar from the directory.
fn dir_events() -> WatchFlags {
    WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

/// Watches the lock file open as `file`: through the descriptor, so the
/// watch lands on the inode we lock even if the path has been replaced
/// since; the path is the fallback where /proc is not mounted.
pub(super) fn watch_file(inst: &OwnedFd, file: &File, path: &Path) -> Result<(Key, Keep), Errno> {
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    inotify::add_watch(inst, &by_fd, file_events())
        .or_else(|_| inotify::add_watch(inst, path, file_events()))
        .map(|wd| (wd, Keep))
}

pub(super) fn watch_dir(inst: &OwnedFd, dir: &Path) -> Result<(Key, Keep), Errno> {
    inotify::add_watch(inst, dir, dir_events()).map(|wd| (wd, Keep))
}

pub(super) fn unwatch(inst: &OwnedFd, key: Key, _keep: Keep) {
    // Fails only if the kernel dropped it meanwhile: nothing to do.
    let _ = inotify::remove_watch(inst, key);
}

/// Whether a watch was refused because a limit is reached.
pub(super) fn is_limit(e: Errno) -> bool {
    e == Errno::NOSPC
}

/// Reads every queued event.
pub(super) fn read_events(inst: &OwnedFd, mut on: impl FnMut(Happened<'_>)) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(inst, &mut buf);
    loop {
        let event = match reader.next() {
            Ok(event) => event,
            Err(Errno::INTR) => continue,
            // WOULDBLOCK: drained. Anything else: nothing more to read;
            // backoff covers whatever was lost.
            Err(_) => break,
        };
        let flags = event.events();
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            on(Happened::Lost);
            continue;
        }
        on(Happened::On {
            key: event.wd(),
            name: event.file_name().map(|n| n.to_bytes()),
            gone: flags.contains(ReadFlags::IGNORED),
        });
    }
}
