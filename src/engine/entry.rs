//! One resource as this process knows it: its queue, and the backend's
//! resource behind it.
//!
//! Every backend call (I/O, a blocking call, a user's `on_stale` hook)
//! runs with no lock of the engine held, during the caller's *turn* (the
//! queue's `BUSY` mark), and its outcome is committed to the queue
//! afterwards. The uncontended path takes no lock at all (see `queue.rs`);
//! wake-ups are delivered after the waiter list's mutex is released.
//!
//! The OS lock (or the database's) is therefore a *process-level*
//! resource: in-process exclusion is decided here, and only one waiter at a
//! time, the head of the queue, talks to the backend about other processes.
//! Ten thousand waiting tasks cost ten thousand small queue slots and one
//! descriptor (or connection), not ten thousand polling.
//!
//! The record of an exclusive hold (its fencing token) belongs to the hold:
//! the backend returns it on acquisition, the guard keeps it, and hands it
//! back on release.

use std::any::Any;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::handle::Handle;
use super::hint::Hint;
use super::queue::{Arrival, Cancelled, Held, Queue, Slot, SlotState, Turn};
use super::registry;
use super::resource::{
    Attempted, BlockingWait, Holders, Key, Polled, PolledAttempt, PolledWait, Resource, Upgrade,
};
use crate::mode::LockMode;
use crate::record::HolderRecord;

/// How many times a try-once caller yields to an operation in flight
/// before it calls the lock busy (an operation that takes this long is
/// waiting on a slow filesystem or a user's hook).
const BUSY_SPINS: u32 = 200;

/// The record an exclusive hold published, if any.
pub(crate) type Record = Option<Arc<HolderRecord>>;

/// Outcome of a first attempt ([`Entry::try_or_enqueue`]).
pub(crate) enum Attempt {
    /// Acquired at once.
    Acquired(Record),
    /// Held in a conflicting mode (only when asked not to enqueue).
    Busy,
    /// Queued; wait with this slot.
    Queued(Arc<Slot>),
    /// The entry no longer stands for the resource: resolve again.
    Retired,
}

/// How a first attempt by polling began ([`Entry::begin_polled`]).
pub(crate) enum Begun {
    /// It came to this without an attempt to poll.
    Settled(Attempt),
    /// This caller's turn: poll the attempt, then settle it.
    Running(PolledAttempt),
    /// A try-once caller met another operation in flight: the attempt is
    /// to be made on the pool, which may wait for it to end.
    Pool,
}

/// Outcome of a waiter's check ([`Entry::advance`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The slot now holds the lock.
    Acquired(Record),
    /// Waiting on another holder in this process, or behind other waiters:
    /// only a wake-up can change that.
    Waiting,
    /// At the head, and another process holds the lock: retry later.
    Contending,
    /// The entry was retired: resolve again.
    Retired,
}

/// A resource as this process knows it.
pub(crate) struct Entry {
    key: Key,
    resource: Box<dyn Resource>,
    retired: AtomicBool,
    queue: Queue,
    /// When a wait for this resource last lost races to another process
    /// (see `WaitStrategy::Adaptive`), in milliseconds after [`epoch`]
    /// plus one; 0 for never.
    contended_at: AtomicU64,
}

/// How long after a wait lost races to other processes the next waits go
/// straight to the backend's blocking wait (`WaitStrategy::Adaptive`):
/// contention that lasts is noticed again at most once per period.
const CONTENTION_MEMORY: Duration = Duration::from_secs(1);

/// The process's reference instant for `contended_at`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("resource", &self.resource)
            .field("retired", &self.is_retired())
            .finish_non_exhaustive()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        registry::forget(&self.key, self);
    }
}

impl Entry {
    pub(crate) fn new(key: Key, resource: Box<dyn Resource>) -> Entry {
        Entry {
            key,
            resource,
            retired: AtomicBool::new(false),
            queue: Queue::default(),
            contended_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn resource(&self) -> &dyn Resource {
        &*self.resource
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Number of in-process waiters queued on this resource.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The fast path: take the lock if nobody in this process is queued and
    /// the mode allows it; otherwise queue a slot (or report `Busy` when
    /// `enqueue` is false). `inline` says whether the caller may make a
    /// [`remote`](Resource::remote) resource's round trip on its own
    /// thread; if not, it queues first in line and its blocking wait makes
    /// the attempt.
    pub(crate) fn try_or_enqueue(
        &self,
        mode: LockMode,
        enqueue: bool,
        inline: bool,
        h: &Handle,
    ) -> io::Result<Attempt> {
        if self.is_retired() {
            return Ok(Attempt::Retired);
        }
        let mut arrival = self.queue.arrive(mode);
        if !enqueue {
            // A try-once caller must not fail merely because another
            // caller's attempt or release is in flight (two concurrent
            // shared `try_lock`s both succeed): it lets that operation, a
            // few system calls, finish first.
            let mut spins = 0;
            while arrival == Arrival::Busy && spins < BUSY_SPINS {
                std::thread::yield_now();
                spins += 1;
                arrival = self.queue.arrive(mode);
            }
        }
        match arrival {
            Arrival::Joined => return Ok(Attempt::Acquired(None)),
            Arrival::Wait | Arrival::Busy => {}
            Arrival::Attempt if enqueue && !self.attempts_inline(inline) => {
                let slot = Slot::new(mode);
                self.queue.push(&slot, true);
                let wakes = self.queue.end_attempt(Some(&slot), mode, Turn::Failed);
                wakes.deliver();
                return Ok(Attempt::Queued(slot));
            }
            Arrival::Attempt => {
                let outcome = self.resource.try_acquire(mode, h.params());
                return self.settle_attempt(mode, enqueue, outcome);
            }
        }
        if !enqueue {
            return Ok(Attempt::Busy);
        }
        let slot = Slot::new(mode);
        self.queue.push(&slot, false);
        Ok(Attempt::Queued(slot))
    }

    /// Ends the turn of an attempt with its outcome: queued first in line
    /// if it found the lock busy and may wait (it came before everyone who
    /// queued while it tried, and keeps the turn), else settled.
    fn settle_attempt(
        &self,
        mode: LockMode,
        enqueue: bool,
        outcome: io::Result<Attempted>,
    ) -> io::Result<Attempt> {
        let turn = match &outcome {
            Ok(Attempted::Locked(_)) => Turn::Locked,
            _ => Turn::Failed,
        };
        if let (Ok(Attempted::Busy), true) = (&outcome, enqueue) {
            let slot = Slot::new(mode);
            self.queue.push(&slot, true);
            let wakes = self.queue.end_attempt(Some(&slot), mode, Turn::Failed);
            wakes.deliver();
            return Ok(Attempt::Queued(slot));
        }
        let wakes = self.queue.end_attempt(None, mode, turn);
        wakes.deliver();
        match outcome {
            Ok(Attempted::Locked(record)) => Ok(Attempt::Acquired(record)),
            Ok(Attempted::Replaced) => {
                self.retire();
                Ok(Attempt::Retired)
            }
            Ok(Attempted::Busy) => Ok(Attempt::Busy),
            Err(e) => Err(e),
        }
    }

    /// Whether the resource makes first attempts by polling
    /// ([`Resource::attempt_polled`]).
    pub(crate) fn polls_attempts(&self) -> bool {
        self.resource.polls_attempts()
    }

    /// [`try_or_enqueue`](Self::try_or_enqueue) for a remote resource that
    /// makes its attempts by polling: when it is this caller's turn to
    /// attempt, the attempt is returned to be polled (the caller keeps the
    /// turn until [`settle_polled`](Self::settle_polled)); otherwise the outcome,
    /// as `try_or_enqueue` would give it.
    pub(crate) fn begin_polled(
        &self,
        mode: LockMode,
        enqueue: bool,
        h: &Handle,
    ) -> io::Result<Begun> {
        if self.is_retired() {
            return Ok(Begun::Settled(Attempt::Retired));
        }
        match self.queue.arrive(mode) {
            Arrival::Joined => Ok(Begun::Settled(Attempt::Acquired(None))),
            Arrival::Attempt => match self.resource.attempt_polled(mode, h.params()) {
                Some(attempt) => Ok(Begun::Running(attempt)),
                None => {
                    let e = io::Error::other("the resource made no polled attempt");
                    self.settle_attempt(mode, false, Err(e)).map(Begun::Settled)
                }
            },
            Arrival::Wait | Arrival::Busy if enqueue => {
                let slot = Slot::new(mode);
                self.queue.push(&slot, false);
                Ok(Begun::Settled(Attempt::Queued(slot)))
            }
            // A try-once caller lets an operation in flight end first (see
            // `try_or_enqueue`), which it may only wait for on the pool.
            Arrival::Busy => Ok(Begun::Pool),
            Arrival::Wait => Ok(Begun::Settled(Attempt::Busy)),
        }
    }

    /// Ends the turn of a polled attempt with what it came to: a lock it
    /// took is committed first.
    pub(crate) fn settle_polled(
        &self,
        mode: LockMode,
        enqueue: bool,
        polled: io::Result<Polled>,
        h: &Handle,
    ) -> io::Result<Attempt> {
        let outcome = match polled {
            Ok(Polled::Locked(lock)) => self.resource.commit_wait(mode, lock, h.params()),
            Ok(Polled::Busy) => Ok(Attempted::Busy),
            Err(e) => Err(e),
        };
        self.settle_attempt(mode, enqueue, outcome)
    }

    /// Notes that a wait lost races to other processes.
    pub(crate) fn note_contended(&self) {
        let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.contended_at.store(ms + 1, Ordering::Relaxed);
    }

    /// Whether a wait lost races to other processes within the last
    /// [`CONTENTION_MEMORY`].
    pub(crate) fn recently_contended(&self) -> bool {
        match self.contended_at.load(Ordering::Relaxed) {
            0 => false,
            at => {
                let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
                let memory = u64::try_from(CONTENTION_MEMORY.as_millis()).unwrap_or(u64::MAX);
                now.saturating_sub(at - 1) < memory
            }
        }
    }

    /// Whether an attempt may be made on the caller's thread: always for a
    /// local resource, only where the caller allows it for a remote one.
    fn attempts_inline(&self, inline: bool) -> bool {
        inline || !self.resource.remote()
    }

    /// Whether the resource's attempts are network round trips.
    pub(crate) fn is_remote(&self) -> bool {
        self.resource.remote()
    }

    /// Whether an acquisition that may wait attempts first (remote
    /// resources only).
    pub(crate) fn attempts_before_waiting(&self) -> bool {
        self.resource.attempts_before_waiting()
    }

    /// A queued waiter checks where it stands, and attempts if it is its
    /// turn (for a remote resource, only if `inline` allows it: otherwise
    /// it is told to contend, and its blocking wait attempts). An error
    /// removes the slot from the queue.
    pub(crate) fn advance(
        &self,
        slot: &Arc<Slot>,
        inline: bool,
        h: &Handle,
    ) -> io::Result<Progress> {
        match slot.state() {
            SlotState::Granted => return Ok(Progress::Acquired(None)),
            SlotState::Retired => return Ok(Progress::Retired),
            SlotState::Waiting => {}
        }
        if !self.queue.begin_turn(slot) {
            return Ok(Progress::Waiting);
        }
        if !self.attempts_inline(inline) {
            return self.end_turn(slot, Ok(Attempted::Busy));
        }
        let outcome = self.resource.try_acquire(slot.mode(), h.params());
        self.end_turn(slot, outcome)
    }

    /// A wait for `slot` made by polling on the caller's task, when the
    /// backend can start one now.
    pub(crate) fn polled_wait(&self, slot: &Slot, h: &Handle) -> Option<PolledWait> {
        self.resource.wait_polled(slot.mode(), h.params())
    }

    /// A blocking wait for `slot`, when the backend has one.
    pub(crate) fn blocking_wait(&self, slot: &Slot, h: &Handle) -> Option<BlockingWait> {
        self.resource.blocking_wait(slot.mode(), h.params())
    }

    /// A blocking wait obtained the lock for `slot`: take it over if the
    /// slot may still have it; otherwise `lock` is dropped, which releases
    /// it.
    pub(crate) fn commit_wait(
        &self,
        slot: &Arc<Slot>,
        lock: Box<dyn Any + Send>,
        h: &Handle,
    ) -> Progress {
        if slot.state() == SlotState::Retired || self.is_retired() {
            return Progress::Retired;
        }
        if !self.queue.begin_turn(slot) {
            return Progress::Waiting;
        }
        let outcome = self.resource.commit_wait(slot.mode(), lock, h.params());
        // A failed commit keeps the waiter in line: it waits again.
        self.end_turn(slot, outcome.or(Ok(Attempted::Busy)))
            .unwrap_or(Progress::Contending)
    }

    /// Commits the outcome of `slot`'s turn.
    fn end_turn(&self, slot: &Arc<Slot>, outcome: io::Result<Attempted>) -> io::Result<Progress> {
        let (turn, progress) = match outcome {
            Ok(Attempted::Locked(record)) => (Turn::Locked, Ok(Progress::Acquired(record))),
            Ok(Attempted::Busy) => (Turn::Failed, Ok(Progress::Contending)),
            Ok(Attempted::Replaced) => (Turn::Failed, Ok(Progress::Retired)),
            Err(e) => (Turn::GaveUp, Err(e)),
        };
        let wakes = self.queue.end_attempt(Some(slot), slot.mode(), turn);
        wakes.deliver();
        if let Ok(Progress::Retired) = progress {
            self.retire();
        }
        progress
    }

    /// The waiter behind `slot` gives up (dropped, timed out, failed). If it
    /// had been granted the lock without noticing, the lock is released.
    pub(crate) fn cancel(&self, slot: &Arc<Slot>, h: &Handle) {
        match self.queue.cancel(slot) {
            Cancelled::Removed(wakes) => wakes.deliver(),
            Cancelled::WasGranted => {
                let _ = self.release(slot.mode(), None, h);
            }
        }
    }

    /// Retires the entry because the resource no longer stands for its
    /// key, unless this process holds it.
    pub(crate) fn retire_if_idle(&self) {
        if self.queue.is_idle() {
            self.retire();
        }
    }

    /// Releases one holder of `mode`, whose hold published `record`. When
    /// the last holder goes, the backend releases the resource and the
    /// next waiter is woken.
    pub(crate) fn release(&self, mode: LockMode, record: Record, h: &Handle) -> io::Result<()> {
        self.release_by(mode, record, h, false)
    }

    /// [`release`](Self::release), for a caller that then waits for it to
    /// be done ([`finish_release`](Self::finish_release)): see
    /// [`Resource::release_waited`].
    pub(crate) fn release_waited(
        &self,
        mode: LockMode,
        record: Record,
        h: &Handle,
    ) -> io::Result<()> {
        self.release_by(mode, record, h, true)
    }

    fn release_by(
        &self,
        mode: LockMode,
        record: Record,
        h: &Handle,
        waited: bool,
    ) -> io::Result<()> {
        let Some(last) = self.queue.begin_release(mode) else {
            return Ok(());
        };
        let outcome = if waited {
            self.resource.release_waited(mode, last, record, h.params())
        } else {
            self.resource.release(mode, last, record, h.params())
        };
        let wakes = self.queue.end_release();
        wakes.deliver();
        match outcome {
            Ok(true) => {
                self.retire();
                Ok(())
            }
            Ok(false) => Ok(()),
            // A backend that could not release cleanly gives up what it
            // holds: the entry retires, and once its last user lets go its
            // descriptor (or connection) closes, which releases for certain.
            Err(e) => {
                self.retire();
                Err(e)
            }
        }
    }

    /// Waits for the backend's deferred release, if any, and says how it
    /// went (see [`Resource::finish_release`]).
    pub(crate) fn finish_release(&self) -> io::Result<()> {
        self.resource.finish_release()
    }

    /// Converts this process's single shared hold into an exclusive one,
    /// without waiting.
    pub(crate) fn try_upgrade(&self, h: &Handle) -> io::Result<Upgrade> {
        if !self.queue.begin_convert(Held::Shared(1)) {
            // Other guards of this process share it: they are in the way.
            return Ok(Upgrade::StillShared);
        }
        let outcome = self.resource.upgrade(h.params());
        let now = match &outcome {
            Ok(Upgrade::Upgraded(_)) => Held::Exclusive,
            Ok(Upgrade::StillShared) | Err(_) => Held::Shared(1),
            Ok(Upgrade::Lost) => Held::None,
        };
        self.queue.end_convert(now).deliver();
        outcome
    }

    /// Converts this process's exclusive hold, which published `record`,
    /// into a shared one and admits the shared waiters queued behind it.
    /// `Ok(false)` if the lock was lost on the way (only possible where
    /// conversion is not atomic).
    pub(crate) fn downgrade(&self, record: Record, h: &Handle) -> io::Result<bool> {
        if !self.queue.begin_convert(Held::Exclusive) {
            return Ok(false);
        }
        let outcome = self.resource.downgrade(record, h.params());
        let now = match &outcome {
            Ok(true) => Held::Shared(1),
            Ok(false) => Held::None,
            Err(_) => Held::Exclusive,
        };
        self.queue.end_convert(now).deliver();
        outcome
    }

    /// Signs that another process released the resource.
    pub(crate) fn wake_hint(&self, h: &Handle) -> Option<Box<dyn Hint>> {
        self.resource.wake_hint(h.params())
    }

    /// Who holds the resource, for an error saying it is busy.
    pub(crate) fn holders(&self, h: &Handle) -> Holders {
        self.resource.holders(h.params())
    }

    /// Renews this process's lease (see the backend for how long it may
    /// block), returning the renewed record.
    pub(crate) fn refresh(&self, h: &Handle) -> io::Result<Record> {
        self.resource.refresh(h.params())
    }

    /// Whether this process's hold is still its own.
    pub(crate) fn still_held(&self, h: &Handle) -> io::Result<bool> {
        let held = self.queue.held() != Held::None;
        self.resource.still_held(held, h.params())
    }

    /// Marks the entry retired, sends every queued waiter back to resolve
    /// the resource again, and lets the backend close what it can.
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let wakes = self.queue.retire();
        if self.queue.is_idle() {
            self.resource.close();
        }
        wakes.deliver();
        registry::forget(&self.key, self);
    }
}
