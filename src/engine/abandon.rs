//! Telling work on another thread that nobody waits for it any more: an
//! open, or a backend's blocking wait (PostgreSQL cancels its statement).
//!
//! An acquisition opens its resource on a blocking-pool thread; when the
//! acquisition ends first (its future dropped, its deadline passed), that
//! thread would otherwise go on with the open to its own end. For a lock
//! file that is a few system calls, but a remote backend's open is a
//! connection, which a server that accepts and never answers keeps for the
//! whole connect timeout. The acquisition fires its [`Abandon`] as it
//! leaves the opening phase, whatever the reason, and a backend whose open
//! can wait races its waiting against [`Abandon::fired`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// Shared between an acquisition and the open it started.
#[derive(Clone, Debug, Default)]
pub(crate) struct Abandon(Option<Arc<Signal>>);

#[derive(Debug, Default)]
struct Signal {
    fired: AtomicBool,
    event: Event,
}

// Only a backend whose work can wait on a network (PostgreSQL) listens.
#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "s3",
        feature = "gcs",
        feature = "azure"
    )),
    allow(dead_code)
)]
impl Abandon {
    /// A signal an acquisition fires when it leaves the opening phase.
    pub(crate) fn new() -> Self {
        Abandon(Some(Arc::default()))
    }

    /// A signal that never fires: for opens nobody can abandon.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn never() -> Self {
        Abandon(None)
    }

    /// Fires it: nobody waits for the open any more (a no-op once the open
    /// is done).
    pub(crate) fn fire(&self) {
        if let Some(s) = &self.0 {
            s.fired.store(true, Ordering::Release);
            s.event.notify(usize::MAX);
        }
    }

    /// Whether it has fired.
    pub(crate) fn is_fired(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.fired.load(Ordering::Acquire))
    }

    /// Resolves once fired; never for [`never`](Self::never).
    pub(crate) async fn fired(&self) {
        let Some(s) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            // Listen before looking, so a fire in between is not missed.
            let listener = s.event.listen();
            if s.fired.load(Ordering::Acquire) {
                return;
            }
            listener.await;
        }
    }
}

/// Fires its signal when dropped: kept in the opening phase (and by a
/// blocking wait's owner), so that every way out of it (done, timed out,
/// dropped) fires.
#[derive(Debug)]
pub(crate) struct FireOnDrop(pub(crate) Abandon);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        self.0.fire();
    }
}
