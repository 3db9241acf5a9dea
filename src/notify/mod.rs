//! Cross-process wake-ups: being told that another process may have let go.
//!
//! Only the head of a lock file's in-process queue waits on other processes
//! (see `registry`). While it does, it holds a [`Watch`] on the lock file,
//! in one file-event instance shared by the whole process (`watch`) and
//! served by async-io's reactor, or tokio's inside a tokio runtime. The
//! kernel interface is a `backend`: inotify on Linux and Android, kqueue on
//! macOS, iOS and the BSDs. Windows (`windows.rs`) watches the lock file's
//! directory from a thread of its own; other targets have no watch.
//!
//! What wakes a waiter: lockyard's own release announcement (below), the
//! lock file going away, for soft locks the removal of the sidecar from its
//! directory, and with inotify any close of the lock file (what `flock(1)`,
//! Python's `filelock`, Go's `flock` and most programs do to release; kqueue
//! reports no close on macOS).
//!
//! A lockyard holder announces its release by setting the file's times
//! *after* `flock(LOCK_UN)` ([`announce_release`]): the event then says the
//! lock is free, not about to be. On Linux it does so only when another
//! process's waiter has marked the file as waited for (`sys::waiters`),
//! which a waiter does before its last attempt; most releases have nobody
//! to tell and cost no inode update. Writes are not watched, so a new holder
//! stamping its record wakes nobody; a close is reported by the kernel just
//! before the lock goes with it, so a waiter woken by one retries once more
//! shortly after.
//!
//! A watch is a hint, never a promise: `flock(LOCK_UN)` without a close or an
//! announcement fires nothing, and neither does a process on another NFS
//! client. Backoff stays armed underneath, so a missed event costs latency,
//! not correctness. Where no watch can be had (no backend, limits reached,
//! no `/proc` and no path) waiters rely on backoff alone.

use std::fs::File;

// The kernel interface: inotify, kqueue, or on other Unix systems
// `backend.rs`, which has none.
#[cfg(unix)]
#[cfg_attr(any(target_os = "linux", target_os = "android"), path = "inotify.rs")]
#[cfg_attr(
    any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ),
    path = "kqueue.rs"
)]
mod backend;

mod subscriber;

#[cfg(unix)]
mod watch;
#[cfg(unix)]
pub(crate) use watch::Watch;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::Watch;

#[cfg(not(any(unix, windows)))]
mod none;
#[cfg(not(any(unix, windows)))]
pub(crate) use none::Watch;

/// Tells waiters in other processes that this process has just unlocked
/// `file`: sets its access and modification times to now, which inotify
/// reports as `IN_ATTRIB`. It must come after the unlock (a waiter woken
/// earlier would find the lock still held) and it changes no content, so
/// it is harmless when another process holds the lock by then. Best effort:
/// without write permission on the file there is no announcement, and
/// waiters find the release by backoff. Where no waiter can watch for it
/// (a Unix system with neither inotify nor kqueue), nothing is done.
#[cfg(unix)]
pub(crate) fn announce_release(file: &File) {
    use rustix::fs::{Timespec, Timestamps, UTIME_NOW};
    if !backend::HEARS_ANNOUNCEMENTS {
        return;
    }
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    let _ = rustix::fs::futimens(file, &times);
}

/// Announces a release of `file` by someone that is not its holder (a
/// probe that locked and unlocked it to look) when another process's
/// waiter has marked it (`sys::waiters`): that waiter may have found the
/// lock busy because of the probe. Elsewhere, nothing: such a waiter finds
/// the release by backoff.
pub(crate) fn announce_probe_release(file: &File) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if crate::sys::waiters::marked(file) {
        announce_release(file);
    }
    let _ = file;
}

/// Tells waiters in other processes that this process has just unlocked
/// `file`: sets its access and last-write times to now, which a watch on
/// its directory sees (Windows reports a last-write change, wine an
/// attribute change). After the unlock, for the reason given on Unix; best
/// effort, as there (a handle without write access announces nothing).
#[cfg(windows)]
pub(crate) fn announce_release(file: &File) {
    let now = std::time::SystemTime::now();
    let _ = file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(now)
            .set_modified(now),
    );
}

/// No platform watcher to tell here.
#[cfg(not(any(unix, windows)))]
pub(crate) fn announce_release(_file: &File) {}

impl crate::engine::Hint for Watch {
    fn generation(&self) -> u64 {
        Watch::generation(self)
    }

    fn poll_changed(
        &mut self,
        cx: &mut std::task::Context<'_>,
        since: u64,
        clock: crate::rt::Clock,
    ) -> std::task::Poll<()> {
        Watch::poll_changed(self, cx, since, clock)
    }
}
