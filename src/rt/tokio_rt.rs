//! The tokio adapter: used only for acquisitions first polled inside a tokio
//! runtime.

use std::time::Instant;

use tokio::runtime::Handle;

pub(super) fn in_runtime() -> bool {
    Handle::try_current().is_ok()
}

/// tokio's clock as a `std::time::Instant` (it differs from
/// `Instant::now()` while time is paused).
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(super) fn sleep_until(at: Instant) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at))
}

/// Spawns on the current runtime's blocking pool, or hands `f` back if the
/// runtime is gone.
pub(super) fn spawn_blocking<T, F>(f: F) -> Result<tokio::task::JoinHandle<T>, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => Ok(handle.spawn_blocking(f)),
        Err(_) => Err(f),
    }
}
