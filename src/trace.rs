//! Events for `tracing` subscribers (the `tracing` feature), under the
//! target `lockyard`: a wait that blocks (cargo's "Blocking waiting for
//! file lock" is the model), how it ended, a stale lock broken, a lease
//! lost, a watch limit reached. Without the feature every function here is
//! empty and inlined away; with it, an event nobody listens to costs a
//! level check (the holder is looked up only for a listener).

use std::path::Path;
use std::time::Duration;

use crate::mode::LockMode;
use crate::record::{HolderRecord, StaleReason};

/// An acquisition found the lock taken and starts waiting for it. `holder`
/// (who holds it, in words) is asked only if someone listens.
#[inline]
pub(crate) fn waiting(path: &Path, mode: LockMode, holder: impl FnOnce() -> Option<String>) {
    #[cfg(feature = "tracing")]
    if tracing::enabled!(target: "lockyard", tracing::Level::INFO) {
        let holder = holder();
        tracing::info!(
            target: "lockyard",
            path = %path.display(),
            mode = %mode,
            holder = holder.as_deref().unwrap_or("unknown"),
            "blocking: waiting for the lock"
        );
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (path, mode, holder);
}

/// A wait ended with the lock, after `waited` (measured only with the
/// feature on).
#[cfg(feature = "tracing")]
pub(crate) fn acquired_after(path: &Path, waited: Duration) {
    tracing::debug!(
        target: "lockyard",
        path = %path.display(),
        waited_ms = waited.as_secs_f64() * 1e3,
        "acquired the lock after waiting"
    );
}

/// A wait ended at its deadline.
#[inline]
pub(crate) fn timed_out(path: &Path, waited: Duration) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "lockyard",
        path = %path.display(),
        waited_ms = waited.as_secs_f64() * 1e3,
        "gave up waiting for the lock at the deadline"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (path, waited);
}

/// A stale soft lock (or lapsed lease) at `path` was broken.
#[inline]
pub(crate) fn took_over(path: &Path, previous: Option<&HolderRecord>, reason: &StaleReason) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "lockyard",
        path = %path.display(),
        previous = previous.map(ToString::to_string).as_deref().unwrap_or("unknown"),
        reason = %reason,
        "broke a stale lock"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (path, previous, reason);
}

/// A guard found its lease (or soft lock) taken over.
#[inline]
pub(crate) fn lost(path: &Path) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "lockyard",
        path = %path.display(),
        "the lock was taken over by another holder"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = path;
}

/// No more file watches: waiters fall back to backoff.
#[inline]
#[cfg_attr(not(any(unix, windows)), allow(dead_code))]
pub(crate) fn watch_limit(what: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "lockyard",
        watch = what,
        "watch limit reached: waiters for other processes fall back to backoff"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = what;
}
