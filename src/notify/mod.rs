//! Cross-process wake-ups: being told that another process may have let go.
//!
//! Only the head of a lock file's in-process queue waits on other processes
//! (see `registry`). While it does, it holds a [`Watch`] on the lock file:
//! on Linux an inotify watch in a single inotify instance shared by the
//! whole process, served by async-io's reactor. Any close of the lock file
//! (what `flock(1)`, Python's `filelock`, Go's `flock` and most programs do
//! to release), any write to it (lockyard's holder record marks a release
//! before unlocking), and for soft locks the removal of the sidecar file
//! from its directory, bump the watch's generation and wake the waiter,
//! which then tries again at once.
//!
//! A watch is a hint, never a promise: `flock(LOCK_UN)` without a close or a
//! write fires nothing, and neither does a process on another NFS client.
//! Backoff stays armed underneath, so a missed event costs latency, not
//! correctness. Where no watch can be had (another OS, inotify limits
//! reached, no `/proc`) waiters rely on backoff alone.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod inotify;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use inotify::Watch;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod none;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use none::Watch;
