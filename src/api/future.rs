//! The public acquire future: a thin shell over the state machine.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::guard::Traits;
use super::LockGuard;
use crate::engine::acquire::{AsyncDriver, Core};
use crate::error::Error;
use crate::rt::{Clock, Timer};

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
        run: Run,
        clock: Option<Clock>,
        #[pin]
        timer: Timer,
    }
}

/// An acquisition under way, or one refused before it started (its error
/// is handed out on the first poll).
enum Run {
    Acquiring(Core, Traits),
    Refused(Option<Error>),
}

impl Acquire {
    pub(crate) fn new(core: Core, traits: Traits) -> Self {
        Acquire {
            run: Run::Acquiring(core, traits),
            clock: None,
            timer: Timer::default(),
        }
    }

    /// A future that fails with `error` when first polled.
    pub(crate) fn failed(error: Error) -> Self {
        Acquire {
            run: Run::Refused(Some(error)),
            clock: None,
            timer: Timer::default(),
        }
    }
}

impl std::fmt::Debug for Acquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.run {
            Run::Acquiring(core, _) => core.fmt(f),
            Run::Refused(error) => f.debug_struct("Acquire").field("refused", error).finish(),
        }
    }
}

impl Future for Acquire {
    type Output = Result<LockGuard, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (core, traits) = match this.run {
            Run::Acquiring(core, traits) => (core, *traits),
            Run::Refused(error) => {
                return match error.take() {
                    Some(e) => Poll::Ready(Err(e)),
                    None => Poll::Pending,
                }
            }
        };
        let offload_open = core.offloads_open();
        let mut driver = AsyncDriver {
            cx,
            timer: this.timer.get_mut(),
            clock: this.clock,
            offload_open,
            inline_blocking_wait: false,
            caller_blocks: false,
        };
        core.poll(&mut driver).map(|granted| {
            let (entry, record) = granted.map_err(Error::resume_panic)?;
            let handle = Arc::clone(core.handle());
            Ok(LockGuard::new(handle, traits, entry, core.mode(), record))
        })
    }
}
