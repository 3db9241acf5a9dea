//! The public acquire future: a thin shell over the state machine.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::acquire::{AsyncDriver, Core};
use crate::rt::{Clock, Timer};
use crate::{Error, FileLockGuard};

pin_project! {
    /// The future returned by [`FileLock::lock`](crate::FileLock::lock) and
    /// its siblings. Resolves to a guard, or an error.
    ///
    /// It is `Send` and `'static`, so it can be spawned, raced with
    /// `select!` or wrapped in a runtime's timeout.
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point leaves no lock held, no queue slot or
    /// listener registered and no descriptor open beyond the one the
    /// [`FileLock`](crate::FileLock) keeps; if it had been handed the lock
    /// or the turn to take it, the next waiter gets it instead.
    #[must_use = "futures do nothing unless polled; the lock is not taken until this is awaited"]
    pub struct Acquire {
        // `None` for an acquisition refused before it started.
        core: Option<Core>,
        failed: Option<Error>,
        clock: Option<Clock>,
        #[pin]
        timer: Timer,
    }
}

impl Acquire {
    pub(crate) fn new(core: Core) -> Self {
        Acquire {
            core: Some(core),
            failed: None,
            clock: None,
            timer: Timer::default(),
        }
    }

    /// A future that fails with `error` when first polled.
    pub(crate) fn failed(error: Error) -> Self {
        Acquire {
            core: None,
            failed: Some(error),
            clock: None,
            timer: Timer::default(),
        }
    }
}

impl std::fmt::Debug for Acquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.core {
            Some(core) => core.fmt(f),
            None => f
                .debug_struct("Acquire")
                .field("failed", &self.failed)
                .finish(),
        }
    }
}

impl Future for Acquire {
    type Output = Result<FileLockGuard, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(core) = this.core.as_mut() else {
            return match this.failed.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            };
        };
        let offload_open = core.offloads_open();
        let mut driver = AsyncDriver {
            cx,
            timer: this.timer.get_mut(),
            clock: this.clock,
            offload_open,
        };
        core.poll(&mut driver)
    }
}
