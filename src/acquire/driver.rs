//! The two drivers of the acquire state machine.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use event_listener::EventListener;
use futures_lite::FutureExt;

use super::{Core, Driver, Work};
use crate::rt::{Clock, Task, Timer};
use crate::{Error, FileLockGuard};

/// Drives the core from a `Future::poll`: everything is polled with the
/// task's context, timers are the runtime facade's.
pub(crate) struct AsyncDriver<'a, 'b> {
    pub(crate) cx: &'a mut Context<'b>,
    pub(crate) timer: &'a mut Timer,
    pub(crate) clock: &'a mut Option<Clock>,
    pub(crate) offload_open: bool,
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

    fn poll_until(&mut self, at: Instant) -> Poll<()> {
        let clock = self.clock();
        self.timer.poll_until(self.cx, clock, at)
    }

    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        if work == Work::Open && !self.offload_open {
            Task::inline(f)
        } else {
            let clock = self.clock();
            Task::spawn(clock, f)
        }
    }

    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>> {
        task.poll(self.cx)
    }
}

/// Wakes a parked thread.
struct ThreadSignal {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Drives the core on the calling thread, parking it until a listener
/// fires or the earliest instant the core asked for arrives.
struct BlockingDriver {
    waker: Waker,
    wake_at: Option<Instant>,
    inline_wait: bool,
}

impl Driver for BlockingDriver {
    fn now(&mut self) -> Instant {
        Instant::now()
    }

    fn poll_listener(&mut self, listener: &mut EventListener) -> Poll<()> {
        listener.poll(&mut Context::from_waker(&self.waker))
    }

    fn poll_until(&mut self, at: Instant) -> Poll<()> {
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        Poll::Pending
    }

    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        // Opening is done right here. A kernel wait parks this very thread
        // when there is no deadline to honour; with one, it goes to the pool
        // so this thread can give up on time.
        if work == Work::Open || self.inline_wait {
            Task::inline(f)
        } else {
            Task::spawn(Clock::Std, f)
        }
    }

    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>> {
        task.poll(&mut Context::from_waker(&self.waker))
    }
}

/// The blocking front door: runs `core` to completion on this thread.
pub(crate) fn block_on(mut core: Core) -> Result<FileLockGuard, Error> {
    let signal = Arc::new(ThreadSignal {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let mut driver = BlockingDriver {
        waker: Waker::from(Arc::clone(&signal)),
        wake_at: None,
        inline_wait: !core.has_deadline(),
    };
    loop {
        driver.wake_at = None;
        if let Poll::Ready(result) = core.poll(&mut driver) {
            return result;
        }
        loop {
            if signal.woken.swap(false, Ordering::AcqRel) {
                break;
            }
            match driver.wake_at {
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    thread::park_timeout(at - now);
                }
                None => thread::park(),
            }
        }
    }
}
