//! The driver of the acquire state machine, for futures and for blocking
//! callers alike.
//!
//! Both poll the core with a task context. A blocking caller first polls
//! once with a no-op waker (an uncontended lock costs nothing more). If it
//! must wait for another process and has no deadline, its thread waits in
//! the kernel's lock call, which hands it the lock directly. Otherwise it
//! enters `async_io::block_on`, which lets the thread drive async-io's
//! reactor while no other thread does, so that a file event can wake this
//! very thread.

use std::io;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::EventListener;
use futures_lite::FutureExt;

use super::{Core, Granted};
use crate::engine::hint::Hint;
use crate::engine::resource::{Polled, PolledAttempt};
use crate::rt::{Clock, Task, Timer};

/// What a driver does for the state machine.
pub(crate) trait Driver {
    /// The current time on this acquisition's clock.
    fn now(&mut self) -> Instant;
    /// Polls an in-process wake-up.
    fn poll_listener(&mut self, listener: &mut EventListener) -> Poll<()>;
    /// Polls for a wake hint's generation to move past `since`.
    fn poll_hint(&mut self, hint: &mut dyn Hint, since: u64) -> Poll<()>;
    /// Polls for `at` to arrive.
    fn poll_until(&mut self, at: Instant) -> Poll<()>;
    /// Starts `f`, which may block, in the way `work` calls for.
    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T>;
    /// Polls a task started by `run`.
    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>>;
    /// Polls an attempt a resource makes by being polled.
    fn poll_attempt(&mut self, attempt: &mut PolledAttempt) -> Poll<io::Result<Polled>>;
    /// Whether a blocking wait may block the caller's own thread (a
    /// blocking caller with no deadline to honour).
    fn may_block(&self) -> bool;
    /// Whether the caller is a thread that blocks until the acquisition
    /// ends (not a future): a single attempt may then be made on it.
    fn caller_blocks(&self) -> bool;
}

/// The kinds of blocking work the state machine hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Opening (maybe creating) the resource: short, but may block on a
    /// slow filesystem or network.
    Open,
    /// A blocking wait for the lock: as long as the other holder keeps it.
    BlockingWait,
    /// One or two network round trips (an attempt on a remote resource,
    /// who holds it): always on the pool, so that the caller (a future, or
    /// a blocked thread with a deadline) can stop waiting for them.
    RoundTrip,
}

/// Drives the core with a task's context; timers are the runtime facade's.
pub(crate) struct AsyncDriver<'a, 'b> {
    pub(crate) cx: &'a mut Context<'b>,
    pub(crate) timer: &'a mut Timer,
    pub(crate) clock: &'a mut Option<Clock>,
    /// Opening the lock file goes to the blocking pool.
    pub(crate) offload_open: bool,
    /// A blocking wait runs right here (a blocking caller with no deadline to
    /// honour) instead of on the pool.
    pub(crate) inline_blocking_wait: bool,
    /// The caller is a blocked thread, not a future.
    pub(crate) caller_blocks: bool,
}

impl AsyncDriver<'_, '_> {
    fn clock(&mut self) -> Clock {
        *self.clock.get_or_insert_with(Clock::current)
    }
}

impl Driver for AsyncDriver<'_, '_> {
    fn now(&mut self) -> Instant {
        self.clock().now()
    }

    fn poll_listener(&mut self, listener: &mut EventListener) -> Poll<()> {
        listener.poll(self.cx)
    }

    fn poll_hint(&mut self, hint: &mut dyn Hint, since: u64) -> Poll<()> {
        let clock = self.clock();
        hint.poll_changed(self.cx, since, clock)
    }

    fn poll_until(&mut self, at: Instant) -> Poll<()> {
        let clock = self.clock();
        self.timer.poll_until(self.cx, clock, at)
    }

    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        let inline = match work {
            Work::Open => !self.offload_open,
            Work::BlockingWait => self.inline_blocking_wait,
            Work::RoundTrip => false,
        };
        if inline {
            Task::inline(f)
        } else {
            let clock = self.clock();
            Task::spawn(clock, f)
        }
    }

    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>> {
        task.poll(self.cx)
    }

    fn poll_attempt(&mut self, attempt: &mut PolledAttempt) -> Poll<io::Result<Polled>> {
        attempt.as_mut().poll(self.cx)
    }

    fn may_block(&self) -> bool {
        self.inline_blocking_wait
    }

    fn caller_blocks(&self) -> bool {
        self.caller_blocks
    }
}

/// How long a blocking caller queued behind another thread of this process
/// keeps looking before it parks. Between two running threads a hand-off
/// then costs no wake-up, which on a VM takes tens of microseconds; a
/// longer hold costs the waiter this much processor time, once.
const SPIN: Duration = Duration::from_micros(20);

/// The blocking front door: runs `core` to completion on this thread.
pub(crate) fn block_on(mut core: Core) -> Granted {
    let mut timer = Timer::default();
    // The std clock even inside a tokio runtime: this thread is blocked, so
    // a tokio timer might never be driven.
    let mut clock = Some(Clock::Std);
    let inline_blocking_wait = !core.has_deadline();
    // An open that may wait on a network goes to the pool when there is a
    // deadline, so that the deadline bounds it: this thread then waits for
    // the open's end or the deadline, whichever comes first.
    let offload_open = core.has_deadline() && core.open_may_wait();
    let mut poll = |core: &mut Core, cx: &mut Context<'_>| {
        core.poll(&mut AsyncDriver {
            cx,
            timer: &mut timer,
            clock: &mut clock,
            offload_open,
            inline_blocking_wait,
            caller_blocks: true,
        })
    };
    let mut noop = Context::from_waker(Waker::noop());
    if let Poll::Ready(result) = poll(&mut core, &mut noop) {
        return result;
    }
    if core.waits_in_process() && can_spin() {
        let until = Instant::now() + SPIN;
        while core.waits_in_process() && Instant::now() < until {
            // Watching the notification takes no lock, so the spin never
            // slows down the release it waits for.
            if !core.notified() {
                std::hint::spin_loop();
                continue;
            }
            if let Poll::Ready(result) = poll(&mut core, &mut noop) {
                return result;
            }
        }
    }
    async_io::block_on(futures_lite::future::poll_fn(|cx| poll(&mut core, cx)))
}

/// Whether another processor may be running the holder while this thread
/// spins (asked once: the answer may read cgroup files).
fn can_spin() -> bool {
    static MANY: OnceLock<bool> = OnceLock::new();
    *MANY.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}
