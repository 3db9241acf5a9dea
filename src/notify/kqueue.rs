//! The kqueue backend (macOS, iOS and the BSDs): one kqueue per process,
//! one `EVFILT_VNODE` registration per watched file, on a descriptor of its
//! own that keeps it alive (closing it removes the registration).
//!
//! kqueue names no directory entries and, on macOS, reports no close. So a
//! strict lock's waiters are woken by a lockyard holder's release
//! announcement (`NOTE_ATTRIB`, from setting the file's times) and by the
//! file going away, while other programs' releases are found by backoff; a
//! soft lock's waiters are woken by any change to the sidecar's directory
//! (`NOTE_WRITE`), and look again.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::event::kqueue::{self, Event, EventFilter, EventFlags, VnodeEvents};
use rustix::fs::{Mode, OFlags};
use rustix::io::{Errno, FdFlags};

use super::watch::Happened;

pub(super) const NAME: &str = "kqueue";

/// Waiters hear a release announcement (`NOTE_ATTRIB`).
pub(super) const HEARS_ANNOUNCEMENTS: bool = true;

/// The watched descriptor's number.
pub(super) type Key = i32;

/// The watched descriptor itself.
pub(super) type Keep = OwnedFd;

pub(super) fn instance() -> io::Result<OwnedFd> {
    let kq = kqueue::kqueue()?;
    rustix::io::fcntl_setfd(&kq, FdFlags::CLOEXEC)?;
    Ok(kq)
}

/// Watches the lock file open as `file`, through a duplicate of its
/// descriptor: the inode we lock, even if the path was replaced since.
/// Its times changing (a lockyard holder's announcement), its link count
/// changing, or the file going away. Not writes: a new holder stamping its
/// record must not wake the other waiters for nothing.
pub(super) fn watch_file(inst: &OwnedFd, file: &File, _path: &Path) -> Result<(Key, Keep), Errno> {
    let fd = rustix::io::fcntl_dupfd_cloexec(file, 0)?;
    let events = VnodeEvents::ATTRIBUTES
        | VnodeEvents::LINK
        | VnodeEvents::DELETE
        | VnodeEvents::RENAME
        | VnodeEvents::REVOKE;
    register(inst, fd, events)
}

/// Watches a directory for entries coming and going.
pub(super) fn watch_dir(inst: &OwnedFd, dir: &Path) -> Result<(Key, Keep), Errno> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let events =
        VnodeEvents::WRITE | VnodeEvents::DELETE | VnodeEvents::RENAME | VnodeEvents::REVOKE;
    register(inst, fd, events)
}

#[allow(unsafe_code)]
fn register(inst: &OwnedFd, fd: OwnedFd, events: VnodeEvents) -> Result<(Key, Keep), Errno> {
    let key = fd.as_raw_fd();
    let change = Event::new(
        EventFilter::Vnode {
            vnode: key,
            flags: events,
        },
        // Edge-like: an event is reported once, then reset.
        EventFlags::ADD | EventFlags::CLEAR,
        std::ptr::null_mut(),
    );
    let mut none: [MaybeUninit<Event>; 0] = [];
    // SAFETY: the registration refers to `fd`, which stays open for as
    // long as the registration exists: it is the watch's `Keep`, and
    // closing it is what removes the registration.
    unsafe { kqueue::kevent(inst, &[change], &mut none, Some(Duration::ZERO)) }?;
    Ok((key, fd))
}

pub(super) fn unwatch(_inst: &OwnedFd, _key: Key, keep: Keep) {
    // Closing the descriptor removes its registration.
    drop(keep);
}

/// Whether a watch was refused because a limit is reached.
pub(super) fn is_limit(e: Errno) -> bool {
    e == Errno::MFILE || e == Errno::NFILE
}

/// Reads every queued event.
#[allow(unsafe_code)]
pub(super) fn read_events(inst: &OwnedFd, mut on: impl FnMut(Happened<'_>)) {
    loop {
        let mut buf = [MaybeUninit::<Event>::uninit(); 32];
        // SAFETY: no change list, so no descriptor is referred to.
        let (events, _) = match unsafe { kqueue::kevent(inst, &[], &mut buf, Some(Duration::ZERO)) }
        {
            Ok(read) => read,
            Err(Errno::INTR) => continue,
            // Nothing more to read; backoff covers whatever was lost.
            Err(_) => return,
        };
        for event in events.iter() {
            if let EventFilter::Vnode { vnode, .. } = event.filter() {
                on(Happened::On {
                    key: vnode,
                    name: None,
                    gone: false,
                });
            }
        }
        if events.len() < 32 {
            return;
        }
    }
}
