//! The acquire state as types: each phase and waiting state carries what
//! it owns, so dropping it gives that back.

use std::any::Any;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use event_listener::EventListener;

use super::driver::Driver;
use crate::engine::abandon::FireOnDrop;
use crate::engine::entry::{Attempt, Entry};
use crate::engine::handle::Handle;
use crate::engine::hint::Hint;
use crate::engine::queue::Slot;
use crate::engine::resource::{Key, PolledAttempt, Resource, Waited};
use crate::engine::BackoffState;
use crate::error::Error;
use crate::mode::LockMode;
use crate::rt::Task;

use super::{first_of, First, Granted};

/// What an open comes back with.
pub(super) type Opened = Result<(Key, Box<dyn Resource>), Error>;

/// Where an acquisition is.
pub(super) enum Phase {
    Start,
    /// This acquisition opens the resource for the handle (it holds the
    /// handle's opening claim). Leaving the phase, however, fires the
    /// open's abandon signal (a no-op once it is done).
    Opening(
        Task<Opened>,
        #[allow(dead_code, reason = "held for its drop")] FireOnDrop,
    ),
    /// Another acquisition of this handle is opening the resource.
    AwaitingOpen(EventListener),
    Queued(Queued),
    /// A future's try-once attempt on a remote resource, made on the pool.
    Trying(Trying),
    /// A first attempt on a remote resource, made by polling on the
    /// caller's task.
    Attempting(Attempting),
    /// A wait on a remote resource timed out; asking who holds it (for the
    /// error) is a round trip, made on the pool and given up at the
    /// instant (the error then names no holder); the time waited.
    Finishing(Task<Granted>, Instant, Duration),
    Done,
}

impl Phase {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Opening(..) | Phase::AwaitingOpen(_) => "opening",
            Phase::Queued(q) => match q.waiting {
                Waiting::InLine => "queued",
                Waiting::Retrying(_) => "contending",
                Waiting::Blocked(..) => "waiting in a blocking call",
            },
            Phase::Trying(_) | Phase::Attempting(_) => "trying",
            Phase::Finishing(..) => "timing out",
            Phase::Done => "done",
        }
    }
}

/// A first attempt made by polling ([`Entry::begin_polled`]): the
/// resource's turn is this acquisition's until the attempt is settled.
pub(super) struct Attempting {
    pub(super) entry: Arc<Entry>,
    /// `None` once settled.
    attempt: Option<PolledAttempt>,
    handle: Arc<Handle>,
    mode: LockMode,
    enqueue: bool,
}

impl Attempting {
    pub(super) fn new(
        entry: Arc<Entry>,
        attempt: PolledAttempt,
        handle: &Arc<Handle>,
        mode: LockMode,
        enqueue: bool,
    ) -> Attempting {
        Attempting {
            entry,
            attempt: Some(attempt),
            handle: Arc::clone(handle),
            mode,
            enqueue,
        }
    }

    /// Polls the attempt; once it has ended, settles it (which ends the
    /// turn) and says what it came to.
    pub(super) fn poll<D: Driver>(&mut self, d: &mut D) -> Poll<io::Result<Attempt>> {
        let Some(attempt) = &mut self.attempt else {
            return Poll::Ready(Err(io::Error::other("a polled attempt was settled twice")));
        };
        let Poll::Ready(polled) = d.poll_attempt(attempt) else {
            return Poll::Pending;
        };
        self.attempt = None;
        Poll::Ready(
            self.entry
                .settle_polled(self.mode, self.enqueue, polled, &self.handle),
        )
    }
}

impl Drop for Attempting {
    /// Abandoned mid-attempt (dropped, or past its deadline): a pool
    /// thread polls the attempt to its end, settles it within the turn it
    /// still holds, and gives back what it took. The turn must outlast the
    /// request: a lock the request takes is this process's until it is
    /// released, and another attempt of this process meanwhile would meet
    /// it (or, sharing its session, be undone by its clean-up).
    fn drop(&mut self) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        let (entry, handle) = (Arc::clone(&self.entry), Arc::clone(&self.handle));
        let (mode, enqueue) = (self.mode, self.enqueue);
        blocking::unblock(move || {
            let polled = async_io::block_on(attempt);
            let attempt = entry.settle_polled(mode, enqueue, polled, &handle);
            give_back(first_of(&handle, entry, attempt), mode, &handle);
        })
        .detach();
    }
}

/// A try-once attempt running on a blocking thread, and where it leaves
/// its outcome. The outcome is handed over under a lock, so that it has
/// exactly one owner: the acquisition if it is still there to take it,
/// else the attempt's own thread, which gives back a lock it took.
pub(super) struct Trying {
    pub(super) task: Task<()>,
    outcome: Arc<Mutex<Outcome>>,
    handle: Arc<Handle>,
    mode: LockMode,
}

enum Outcome {
    Running,
    Done(First),
    /// Taken by the acquisition, or abandoned with it.
    Gone,
}

impl Trying {
    /// Starts `attempt` through `run` (which puts it on the pool).
    pub(super) fn start(
        handle: &Arc<Handle>,
        mode: LockMode,
        attempt: impl FnOnce() -> First + Send + 'static,
        run: impl FnOnce(Box<dyn FnOnce() + Send>) -> Task<()>,
    ) -> Trying {
        let outcome = Arc::new(Mutex::new(Outcome::Running));
        let (slot, h) = (Arc::clone(&outcome), Arc::clone(handle));
        let task = run(Box::new(move || {
            let first = attempt();
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match *slot {
                Outcome::Running => *slot = Outcome::Done(first),
                // The acquisition is gone: nobody will take this lock.
                _ => {
                    drop(slot);
                    give_back(first, mode, &h);
                }
            }
        }));
        Trying {
            task,
            outcome,
            handle: Arc::clone(handle),
            mode,
        }
    }

    /// The attempt's outcome, once its task has ended.
    pub(super) fn take(&mut self) -> Option<First> {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *slot, Outcome::Gone) {
            Outcome::Done(first) => Some(first),
            other => {
                *slot = other;
                None
            }
        }
    }
}

impl Drop for Trying {
    /// Abandoned mid-attempt: the attempt's thread gives back what it
    /// takes. Abandoned after it ended: the lock it took is released here,
    /// as a guard's drop would.
    fn drop(&mut self) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        let left = std::mem::replace(&mut *slot, Outcome::Gone);
        drop(slot);
        if let Outcome::Done(first) = left {
            give_back(first, self.mode, &self.handle);
        }
    }
}

/// Gives back what an attempt got for an acquisition that is gone: the
/// lock it took, or the place in the queue it took when the lock was busy.
fn give_back(first: First, mode: LockMode, handle: &Handle) {
    match first {
        First::Done(Ok((entry, record))) => {
            // Nobody to tell of a failure: the entry retires on one, which
            // closes what holds the lock.
            let _ = entry.release(mode, record, handle);
            handle.let_go_if_retired();
        }
        First::Queued(q) => q.entry.cancel(&q.slot, handle),
        First::Done(Err(_)) | First::Retired => {}
    }
}

/// A waiter in its entry's queue.
pub(super) struct Queued {
    pub(super) entry: Arc<Entry>,
    pub(super) slot: Arc<Slot>,
    /// Listens for the queue's wake-ups; made anew after each one.
    pub(super) listener: Option<EventListener>,
    pub(super) waiting: Waiting,
}

impl Queued {
    pub(super) fn new(entry: Arc<Entry>, slot: Arc<Slot>) -> Queued {
        Queued {
            entry,
            slot,
            listener: None,
            waiting: Waiting::InLine,
        }
    }
}

/// How a queued waiter waits.
pub(super) enum Waiting {
    /// Behind a holder or waiter of this process: only the queue's wake-up
    /// moves it on.
    InLine,
    /// Its turn, and another process holds the lock: retrying on backoff
    /// and on wake hints.
    Retrying(Retry),
    /// Its turn, and a blocking wait for the lock runs on a thread; the
    /// second part, dropped with it, tells the wait it was abandoned.
    Blocked(
        Task<io::Result<Waited>>,
        // Never read: it is there to be dropped.
        #[allow(dead_code)] Option<Box<dyn Any + Send>>,
    ),
}

/// How an acquisition waits for other processes, decided once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Strategy {
    /// Retry on backoff and wake hints.
    Retry,
    /// A blocking wait on a thread, where the backend has one.
    Block,
}

/// The head's retry schedule.
#[derive(Default)]
pub(super) struct Retry {
    /// When to retry next. `None`: not scheduled yet, or a delay past what
    /// `Instant` can hold (then wake hints and the deadline remain).
    pub(super) at: Option<Instant>,
    hint: HintState,
    /// Attempts that answered a signal from the hint and found the lock
    /// taken again: a release was announced, and another process was
    /// quicker.
    pub(super) races_lost: u32,
    /// The attempt under way answers a signal.
    answering: bool,
}

/// The wake hint of one turn.
#[derive(Default)]
enum HintState {
    /// Not asked for yet.
    #[default]
    Untried,
    /// The backend has none (or events are off): backoff alone.
    Refused,
    /// Watching; `seen` is the generation read before the last attempt,
    /// `fired` says the last wake-up came from the hint.
    Watching {
        hint: Box<dyn Hint>,
        seen: u64,
        fired: bool,
    },
}

impl Retry {
    pub(super) fn hint_untried(&self) -> bool {
        matches!(self.hint, HintState::Untried)
    }

    /// Asks the entry for a wake hint; `true` if one now watches.
    pub(super) fn watch(&mut self, entry: &Entry, h: &Handle) -> bool {
        self.hint = match entry.wake_hint(h) {
            Some(hint) => HintState::Watching {
                seen: hint.generation(),
                hint,
                fired: false,
            },
            None => HintState::Refused,
        };
        matches!(self.hint, HintState::Watching { .. })
    }

    /// Reads the hint's generation just before an attempt, so a signal
    /// during the attempt is not missed. A generation that moved since the
    /// last look means this attempt answers a signal.
    pub(super) fn note_generation(&mut self) {
        if let HintState::Watching { hint, seen, .. } = &mut self.hint {
            let now = hint.generation();
            self.answering = now != *seen;
            *seen = now;
        }
    }

    /// Schedules the next retry after a failed attempt at `now`.
    pub(super) fn schedule(&mut self, now: Instant, settle: Duration, backoff: &mut BackoffState) {
        let fired = match &mut self.hint {
            HintState::Watching { fired, .. } => std::mem::take(fired),
            _ => false,
        };
        let answered = std::mem::take(&mut self.answering);
        if fired || answered {
            self.races_lost = self.races_lost.saturating_add(1);
        }
        if fired {
            // The signal may have come a moment before the release (the
            // kernel reports a close just before it drops the lock): look
            // again soon.
            let soon = now + settle;
            self.at = Some(self.at.map_or(soon, |r| r.min(soon)));
        } else if self.at.is_none() {
            self.at = now.checked_add(backoff.next_delay());
        }
    }

    /// Polls the hint; ready (and noted) when it fired.
    pub(super) fn poll_hint<D: Driver>(&mut self, d: &mut D) -> Poll<()> {
        let HintState::Watching { hint, seen, fired } = &mut self.hint else {
            return Poll::Pending;
        };
        let polled = d.poll_hint(&mut **hint, *seen);
        if polled.is_ready() {
            *fired = true;
        }
        polled
    }

    /// The clock reached `now`: a retry due by then is no longer pending.
    pub(super) fn passed(&mut self, now: Instant) {
        if self.at.is_some_and(|r| now >= r) {
            self.at = None;
        }
    }
}
