//! Cross-process wake-ups: being told that another process may have let go.
//!
//! Only the head of a lock file's in-process queue waits on other processes
//! (see `registry`). While it does, it holds a [`Watch`] on the lock file:
//! on Linux an inotify watch in a single inotify instance shared by the
//! whole process, served by async-io's reactor. Any close of the lock file
//! (what `flock(1)`, Python's `filelock`, Go's `flock` and most programs do
//! to release), lockyard's own release announcement (below), and for soft
//! locks the removal of the sidecar file from its directory, bump the
//! watch's generation and wake the waiter, which then tries again at once.
//!
//! A lockyard holder announces its release by setting the file's times
//! *after* `flock(LOCK_UN)` ([`announce_release`]): the event then says the
//! lock is free, not about to be. Writes are not watched, so a new holder
//! stamping its record wakes nobody; a close is reported by the kernel just
//! before the lock goes with it, so a waiter woken by one retries once more
//! shortly after.
//!
//! A watch is a hint, never a promise: `flock(LOCK_UN)` without a close or an
//! announcement fires nothing, and neither does a process on another NFS
//! client.
//! Backoff stays armed underneath, so a missed event costs latency, not
//! correctness. Where no watch can be had (another OS, inotify limits
//! reached, no `/proc`) waiters rely on backoff alone.

use std::fs::File;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod inotify;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use inotify::Watch;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod none;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use none::Watch;

/// Tells waiters in other processes that this process has just unlocked
/// `file`: sets its access and modification times to now, which inotify
/// reports as `IN_ATTRIB`. It must come after the unlock (a waiter woken
/// earlier would find the lock still held) and it changes no content, so
/// it is harmless when another process holds the lock by then. Best effort:
/// without write permission on the file there is no announcement, and
/// waiters find the release by backoff.
#[cfg(unix)]
pub(crate) fn announce_release(file: &File) {
    use rustix::fs::{Timespec, Timestamps, UTIME_NOW};
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

/// No platform watcher to tell here.
#[cfg(not(unix))]
pub(crate) fn announce_release(_file: &File) {}
