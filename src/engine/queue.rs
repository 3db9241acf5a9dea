//! The per-resource FIFO queue of one process: who holds the resource in
//! this process, who waits, and whose turn it is to talk to the backend.
//!
//! Pure bookkeeping, no I/O: the entry (`entry.rs`) keeps a `Queue` behind
//! its mutex and does every backend call outside it. State changes return
//! the [`Wakes`] they cause, which the caller delivers once the mutex is
//! released, so a woken waiter never runs into a lock still held.
//!
//! Invariants:
//! - `held` is what this process holds through the resource.
//! - At most one backend operation runs at a time (`busy`): an attempt, a
//!   commit, a release or a conversion. While one runs, nobody else starts
//!   one, and newcomers queue.
//! - While nothing is held, only the head of the queue may attempt (so
//!   nobody barges past the queue).
//! - A slot leaves the queue when it is granted, cancelled or retired, and
//!   every change that could let the head proceed wakes it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use event_listener::{Event, EventListener};

use crate::mode::LockMode;

/// What this process currently holds on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    None,
    Exclusive,
    Shared(usize),
}

impl Held {
    pub(crate) fn one(mode: LockMode) -> Held {
        match mode {
            LockMode::Exclusive => Held::Exclusive,
            LockMode::Shared => Held::Shared(1),
        }
    }
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const RETIRED: u8 = 2;

/// Where a slot stands, as its waiter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    Waiting,
    /// Handed the lock by a release (shared waiters admitted together).
    Granted,
    /// Its entry retired: resolve the resource again.
    Retired,
}

/// One in-process waiter's place in the queue.
///
/// Its state changes only under the entry's mutex; the atomic only lets the
/// slot be shared between the queue and its waiter.
#[derive(Debug)]
pub(crate) struct Slot {
    mode: LockMode,
    state: AtomicU8,
    event: Event,
}

impl Slot {
    pub(crate) fn new(mode: LockMode) -> Arc<Slot> {
        Arc::new(Slot {
            mode,
            state: AtomicU8::new(WAITING),
            event: Event::new(),
        })
    }

    pub(crate) fn mode(&self) -> LockMode {
        self.mode
    }

    /// A listener for this slot's wake-ups. Create it *before* checking
    /// the slot, so a wake-up sent after that check is not lost.
    pub(crate) fn listen(&self) -> EventListener {
        self.event.listen()
    }

    /// Whether a wake-up is waiting for this slot's listener (one atomic
    /// load: no lock).
    pub(crate) fn is_notified(&self) -> bool {
        self.event.is_notified()
    }

    pub(crate) fn state(&self) -> SlotState {
        match self.state.load(Ordering::Acquire) {
            GRANTED => SlotState::Granted,
            RETIRED => SlotState::Retired,
            _ => SlotState::Waiting,
        }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }
}

/// Wake-ups owed after a state change, delivered with the mutex released.
#[derive(Debug, Default)]
#[must_use = "wake-ups must be delivered, after the mutex is released"]
pub(crate) struct Wakes {
    slots: Vec<Arc<Slot>>,
}

impl Wakes {
    fn push(&mut self, slot: &Arc<Slot>) {
        self.slots.push(Arc::clone(slot));
    }

    /// Wakes every slot owed a wake-up.
    pub(crate) fn deliver(self) {
        for slot in self.slots {
            slot.event.notify(1);
        }
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.slots.len()
    }
}

/// The queue and holdings of one resource in this process.
#[derive(Debug)]
pub(crate) struct Queue {
    held: Held,
    busy: bool,
    waiters: VecDeque<Arc<Slot>>,
}

/// What the fast path may do ([`Queue::arrive`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Nothing held, nobody queued, no operation running: attempt now (the
    /// queue is marked busy; end with [`Queue::end_attempt`]).
    Attempt,
    /// Joined this process's shared holders.
    Joined,
    /// Another caller's attempt, release or conversion is running, with
    /// nobody queued: the answer comes within that operation.
    Busy,
    /// Must wait.
    Wait,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            held: Held::None,
            busy: false,
            waiters: VecDeque::new(),
        }
    }
}

impl Queue {
    pub(crate) fn held(&self) -> Held {
        self.held
    }

    /// Nothing held and no operation running.
    pub(crate) fn is_idle(&self) -> bool {
        self.held == Held::None && !self.busy
    }

    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// The fast path for a newcomer that is not queued.
    pub(crate) fn arrive(&mut self, mode: LockMode) -> Arrival {
        if !self.waiters.is_empty() {
            return Arrival::Wait;
        }
        if self.busy {
            return Arrival::Busy;
        }
        match (self.held, mode) {
            (Held::None, _) => {
                self.busy = true;
                Arrival::Attempt
            }
            (Held::Shared(n), LockMode::Shared) => {
                self.held = Held::Shared(n + 1);
                Arrival::Joined
            }
            _ => Arrival::Wait,
        }
    }

    /// Queues a slot at the back.
    pub(crate) fn push(&mut self, slot: &Arc<Slot>) {
        self.waiters.push_back(Arc::clone(slot));
    }

    /// Queues a slot at the front: a newcomer whose fast-path attempt
    /// failed came before everyone who queued while it tried.
    pub(crate) fn push_front(&mut self, slot: &Arc<Slot>) {
        self.waiters.push_front(Arc::clone(slot));
    }

    fn is_head(&self, slot: &Arc<Slot>) -> bool {
        self.waiters.front().is_some_and(|h| Arc::ptr_eq(h, slot))
    }

    /// Whether `slot` may attempt now: at the head, nothing held, no
    /// operation running. If so, the queue is marked busy.
    pub(crate) fn begin_turn(&mut self, slot: &Arc<Slot>) -> bool {
        if slot.state() != SlotState::Waiting
            || self.busy
            || self.held != Held::None
            || !self.is_head(slot)
        {
            return false;
        }
        self.busy = true;
        true
    }

    /// Ends an attempt begun by [`arrive`](Self::arrive) (`slot` is
    /// `None`) or [`begin_turn`](Self::begin_turn) (the head's `slot`).
    pub(crate) fn end_attempt(
        &mut self,
        slot: Option<&Arc<Slot>>,
        mode: LockMode,
        outcome: Turn,
    ) -> Wakes {
        self.busy = false;
        match outcome {
            Turn::Locked => {
                self.held = Held::one(mode);
                if let Some(slot) = slot {
                    self.remove(slot);
                }
            }
            // The head keeps its turn and retries on its own schedule:
            // waking it would only make it spin.
            Turn::Failed if slot.is_some() => return Wakes::default(),
            Turn::Failed => {}
            Turn::GaveUp => {
                if let Some(slot) = slot {
                    self.remove(slot);
                }
            }
        }
        self.dispatch()
    }

    /// Begins a release of one holder of `mode`. `Some(last)` when the
    /// resource itself must now be released (the queue is marked busy; end
    /// with [`end_release`](Self::end_release)); `last` says whether
    /// nobody of this process waits for it either. `None` when other
    /// holders of this process keep it.
    pub(crate) fn begin_release(&mut self, mode: LockMode) -> Option<bool> {
        match (self.held, mode) {
            (Held::Exclusive, LockMode::Exclusive) | (Held::Shared(1), LockMode::Shared) => {
                self.held = Held::None;
                self.busy = true;
                Some(self.waiters.is_empty())
            }
            (Held::Shared(n), LockMode::Shared) if n > 1 => {
                self.held = Held::Shared(n - 1);
                None
            }
            // Unreachable through the public API: guards are the only callers.
            _ => None,
        }
    }

    /// Ends a release (or any operation that left nothing held).
    pub(crate) fn end_release(&mut self) -> Wakes {
        self.busy = false;
        self.dispatch()
    }

    /// Begins converting this process's hold: `Some(())` when `from` is
    /// held by exactly one holder and nothing else runs.
    pub(crate) fn begin_convert(&mut self, from: Held) -> bool {
        if self.busy || self.held != from {
            return false;
        }
        self.busy = true;
        true
    }

    /// Ends a conversion: this process now holds `now`.
    pub(crate) fn end_convert(&mut self, now: Held) -> Wakes {
        self.busy = false;
        self.held = now;
        self.dispatch()
    }

    /// Removes a waiter that gives up. Its turn, if it was at the head,
    /// passes on.
    pub(crate) fn cancel(&mut self, slot: &Arc<Slot>) -> Wakes {
        match self.waiters.iter().position(|s| Arc::ptr_eq(s, slot)) {
            Some(0) => {
                self.waiters.pop_front();
                self.dispatch()
            }
            Some(i) => {
                self.waiters.remove(i);
                Wakes::default()
            }
            None => Wakes::default(),
        }
    }

    /// Sends every waiter back to resolve the resource again.
    pub(crate) fn retire(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        for slot in self.waiters.drain(..) {
            slot.set(RETIRED);
            wakes.push(&slot);
        }
        wakes
    }

    fn remove(&mut self, slot: &Arc<Slot>) {
        if let Some(i) = self.waiters.iter().position(|s| Arc::ptr_eq(s, slot)) {
            self.waiters.remove(i);
        }
    }

    /// Who can proceed now: shared waiters at the head are granted together
    /// while a shared lock is held; otherwise, with nothing held and no
    /// operation running, the head is told it is its turn.
    fn dispatch(&mut self) -> Wakes {
        let mut wakes = Wakes::default();
        if self.busy {
            return wakes;
        }
        while let Some(head) = self.waiters.front() {
            match (self.held, head.mode) {
                (Held::None, _) => {
                    wakes.push(head);
                    break;
                }
                (Held::Shared(n), LockMode::Shared) => {
                    self.held = Held::Shared(n + 1);
                    if let Some(head) = self.waiters.pop_front() {
                        head.set(GRANTED);
                        wakes.push(&head);
                    }
                }
                _ => break,
            }
        }
        wakes
    }
}

/// How a backend operation begun on the queue ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The lock was taken.
    Locked,
    /// Not taken; the waiter stays queued.
    Failed,
    /// Not taken; the waiter leaves the queue (an error).
    GaveUp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::{Exclusive, Shared};

    fn queued(q: &mut Queue, mode: LockMode) -> Arc<Slot> {
        let slot = Slot::new(mode);
        q.push(&slot);
        slot
    }

    #[test]
    fn the_fast_path_attempts_only_on_an_idle_queue() {
        let mut q = Queue::default();
        assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
        // An attempt runs: newcomers wait for it, whatever their mode.
        assert_eq!(q.arrive(Shared), Arrival::Busy);
        let wakes = q.end_attempt(None, Shared, Turn::Locked);
        assert_eq!(wakes.count(), 0);
        assert_eq!(q.arrive(Shared), Arrival::Joined);
        assert_eq!(q.held(), Held::Shared(2));
        assert_eq!(q.arrive(Exclusive), Arrival::Wait);
    }

    #[test]
    fn a_shared_newcomer_never_jumps_a_queued_writer() {
        let mut q = Queue::default();
        assert_eq!(q.arrive(Shared), Arrival::Attempt);
        let _ = q.end_attempt(None, Shared, Turn::Locked);
        let _writer = queued(&mut q, Exclusive);
        assert_eq!(q.arrive(Shared), Arrival::Wait);
    }

    #[test]
    fn only_the_head_takes_a_turn_and_only_with_nothing_held() {
        let mut q = Queue::default();
        let a = queued(&mut q, Exclusive);
        let b = queued(&mut q, Exclusive);
        assert!(!q.begin_turn(&b));
        assert!(q.begin_turn(&a));
        // One operation at a time.
        assert!(!q.begin_turn(&a));
        let wakes = q.end_attempt(Some(&a), Exclusive, Turn::Locked);
        assert_eq!(q.len(), 1);
        // b waits for a's release: nothing to wake yet.
        assert_eq!(wakes.count(), 0);
        assert!(!q.begin_turn(&b));
        assert_eq!(q.begin_release(Exclusive), Some(false));
        let wakes = q.end_release();
        assert_eq!(wakes.count(), 1);
        assert!(q.begin_turn(&b));
    }

    #[test]
    fn a_failed_turn_keeps_the_place_and_wakes_nobody() {
        let mut q = Queue::default();
        let a = queued(&mut q, Exclusive);
        let _b = queued(&mut q, Exclusive);
        assert!(q.begin_turn(&a));
        let wakes = q.end_attempt(Some(&a), Exclusive, Turn::Failed);
        // a is still the head and retries on its own schedule.
        assert_eq!(wakes.count(), 0);
        assert_eq!(q.len(), 2);
        let wakes = q.end_attempt(Some(&a), Exclusive, Turn::GaveUp);
        assert_eq!(q.len(), 1);
        assert_eq!(wakes.count(), 1, "the next head is told it is its turn");
    }

    #[test]
    fn a_release_grants_shared_waiters_together_up_to_a_writer() {
        let mut q = Queue::default();
        assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
        let _ = q.end_attempt(None, Exclusive, Turn::Locked);
        let r1 = queued(&mut q, Shared);
        let r2 = queued(&mut q, Shared);
        let w = queued(&mut q, Exclusive);
        let r3 = queued(&mut q, Shared);
        assert_eq!(q.begin_release(Exclusive), Some(false));
        let wakes = q.end_release();
        // Nothing held: only the head is told; it takes the lock itself.
        assert_eq!(wakes.count(), 1);
        assert!(q.begin_turn(&r1));
        let wakes = q.end_attempt(Some(&r1), Shared, Turn::Locked);
        assert_eq!(wakes.count(), 1, "r2 is granted with r1");
        assert_eq!(r2.state(), SlotState::Granted);
        assert_eq!(q.held(), Held::Shared(2));
        assert_eq!(w.state(), SlotState::Waiting);
        assert_eq!(r3.state(), SlotState::Waiting);
        assert_eq!(q.begin_release(Shared), None);
        assert_eq!(q.begin_release(Shared), Some(false));
        let _ = q.end_release();
        assert!(q.begin_turn(&w));
    }

    #[test]
    fn cancelling_the_head_passes_the_turn_and_others_do_not() {
        let mut q = Queue::default();
        let a = queued(&mut q, Exclusive);
        let b = queued(&mut q, Exclusive);
        let c = queued(&mut q, Exclusive);
        assert_eq!(q.cancel(&b).count(), 0);
        assert_eq!(q.cancel(&a).count(), 1);
        assert!(q.begin_turn(&c));
        // A slot no longer queued is ignored.
        assert_eq!(q.cancel(&a).count(), 0);
    }

    #[test]
    fn nobody_is_told_of_a_turn_while_an_operation_runs() {
        let mut q = Queue::default();
        assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
        let a = queued(&mut q, Exclusive);
        // The head gives up while the attempt runs: no turn to hand out.
        assert_eq!(q.cancel(&a).count(), 0);
        let b = queued(&mut q, Exclusive);
        let wakes = q.end_attempt(None, Exclusive, Turn::Failed);
        assert_eq!(wakes.count(), 1, "the attempt's end tells the head");
        assert!(q.begin_turn(&b));
    }

    #[test]
    fn retiring_sends_every_waiter_back() {
        let mut q = Queue::default();
        let a = queued(&mut q, Exclusive);
        let b = queued(&mut q, Shared);
        assert_eq!(q.retire().count(), 2);
        assert!(q.is_empty());
        assert_eq!(a.state(), SlotState::Retired);
        assert_eq!(b.state(), SlotState::Retired);
        assert!(!q.begin_turn(&a));
    }

    #[test]
    fn conversions_need_a_sole_holder_and_an_idle_queue() {
        let mut q = Queue::default();
        assert_eq!(q.arrive(Shared), Arrival::Attempt);
        let _ = q.end_attempt(None, Shared, Turn::Locked);
        assert_eq!(q.arrive(Shared), Arrival::Joined);
        assert!(!q.begin_convert(Held::Shared(1)));
        assert_eq!(q.begin_release(Shared), None);
        assert!(q.begin_convert(Held::Shared(1)));
        assert_eq!(q.arrive(Shared), Arrival::Busy, "converting");
        let _ = q.end_convert(Held::Exclusive);
        assert_eq!(q.held(), Held::Exclusive);
    }
}
