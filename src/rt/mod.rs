//! Runtime facade: a clock, a resettable timer and a blocking pool.
//!
//! By default these are async-io's timers (a reactor thread started lazily,
//! usable from any executor) and the `blocking` crate's pool. With the
//! `tokio` feature, an acquisition first polled inside a tokio runtime that
//! has a timer uses tokio's clock, timer and blocking pool instead, so that
//! `tokio::time::pause()` governs its deadlines and backoff, and its file
//! events come through tokio's reactor where it has one (see `notify`). A
//! runtime built without time gets the runtime-free path, as without the
//! feature (`tokio_rt` says how that is found out). Outside a tokio runtime
//! nothing changes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

#[cfg(feature = "tokio")]
pub(crate) mod tokio_rt;

/// Which clock (and with it which timer and pool) an acquisition uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clock {
    /// `std::time::Instant`, async-io timers, the `blocking` pool.
    Std,
    /// tokio's (pausable) clock, timers and blocking pool.
    #[cfg(feature = "tokio")]
    Tokio,
}

impl Clock {
    /// The clock for the context the caller runs in.
    pub(crate) fn current() -> Clock {
        #[cfg(feature = "tokio")]
        if tokio_rt::in_runtime_with_time() {
            return Clock::Tokio;
        }
        Clock::Std
    }

    pub(crate) fn now(self) -> Instant {
        match self {
            Clock::Std => Instant::now(),
            #[cfg(feature = "tokio")]
            Clock::Tokio => tokio_rt::now(),
        }
    }
}

/// A timer that can be re-armed for a new instant without reallocating.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    inner: TimerInner,
}

#[derive(Debug, Default)]
enum TimerInner {
    #[default]
    Idle,
    AsyncIo(async_io::Timer, Instant),
    #[cfg(feature = "tokio")]
    Tokio(Pin<Box<tokio::time::Sleep>>, Instant),
}

impl Timer {
    /// Polls a wake-up at `at` on `clock`'s timer, arming or re-arming it as
    /// needed.
    pub(crate) fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        clock: Clock,
        at: Instant,
    ) -> Poll<()> {
        match (&mut self.inner, clock) {
            (TimerInner::AsyncIo(timer, armed), Clock::Std) => {
                if *armed != at {
                    timer.set_at(at);
                    *armed = at;
                }
                Pin::new(timer).poll(cx).map(drop)
            }
            #[cfg(feature = "tokio")]
            (TimerInner::Tokio(sleep, armed), Clock::Tokio) => {
                if *armed != at {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                    *armed = at;
                }
                sleep.as_mut().poll(cx)
            }
            _ => {
                self.inner = match clock {
                    Clock::Std => TimerInner::AsyncIo(async_io::Timer::at(at), at),
                    #[cfg(feature = "tokio")]
                    Clock::Tokio => TimerInner::Tokio(Box::pin(tokio_rt::sleep_until(at)), at),
                };
                self.poll_until(cx, clock, at)
            }
        }
    }
}

/// Waits for `period` on `clock`'s timer.
pub(crate) async fn sleep(clock: Clock, period: std::time::Duration) {
    let at = clock.now() + period;
    let mut timer = Timer::default();
    std::future::poll_fn(|cx| timer.poll_until(cx, clock, at)).await;
}

/// Runs `f` on `clock`'s blocking pool and waits for its output.
pub(crate) async fn unblock<T: Send + 'static>(
    clock: Clock,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let mut task = Task::spawn(clock, f);
    std::future::poll_fn(|cx| task.poll(cx)).await
}

/// Work handed to a blocking thread, already done inline, or done by
/// polling on the caller's task.
///
/// Dropping it abandons the work: the closure still runs to its end on its
/// thread, and its output is dropped there (closing any file it returns,
/// which releases any lock that file holds). A polled future is dropped,
/// and hands what it still holds to a thread of its own (see
/// `Resource::wait_polled`).
pub(crate) enum Task<T> {
    Done(Option<T>),
    Pool(blocking::Task<T>),
    #[cfg(feature = "tokio")]
    Tokio(tokio::task::JoinHandle<T>),
    /// Never blocks when polled: it runs on the task that polls it.
    Polled(Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Done(_) => "Task::Done",
            Task::Pool(_) => "Task::Pool",
            #[cfg(feature = "tokio")]
            Task::Tokio(_) => "Task::Tokio",
            Task::Polled(_) => "Task::Polled",
        })
    }
}

impl<T: Send + 'static> Task<T> {
    /// Runs `f` right here on the calling thread.
    pub(crate) fn inline(f: impl FnOnce() -> T) -> Task<T> {
        Task::Done(Some(f()))
    }

    /// Runs `f` on `clock`'s blocking pool.
    pub(crate) fn spawn(clock: Clock, f: impl FnOnce() -> T + Send + 'static) -> Task<T> {
        match clock {
            Clock::Std => Task::Pool(blocking::unblock(f)),
            #[cfg(feature = "tokio")]
            Clock::Tokio => match tokio_rt::spawn_blocking(f) {
                Ok(handle) => Task::Tokio(handle),
                Err(f) => Task::Pool(blocking::unblock(f)),
            },
        }
    }

    /// Polls for the output. `Err` if the work was lost (a panic in the
    /// closure, or a runtime shutting down).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self {
            Task::Done(out) => Poll::Ready(out.take().ok_or_else(lost)),
            Task::Pool(task) => Pin::new(task).poll(cx).map(Ok),
            #[cfg(feature = "tokio")]
            Task::Tokio(handle) => Pin::new(handle).poll(cx).map(|r| r.map_err(|_| lost())),
            Task::Polled(work) => work.as_mut().poll(cx).map(Ok),
        }
    }
}

fn lost() -> io::Error {
    io::Error::other("blocking task did not complete (panicked or the runtime shut down)")
}
