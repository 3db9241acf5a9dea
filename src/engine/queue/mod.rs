//! The per-resource FIFO queue of one process: who holds the resource in
//! this process, who waits, and whose turn it is to talk to the backend.
//!
//! No I/O happens here: the entry (`entry.rs`) makes every backend call
//! between a `begin_*` and its `end_*`, with no lock held.
//!
//! # Two parts
//! - A **state word** (one atomic): what this process holds (nothing,
//!   exclusive, or shared by *n*), whether a backend operation is running
//!   (`BUSY`: an attempt, a release or a conversion), and whether anyone
//!   waits (`WAITERS`). The uncontended path (take, release; join or leave
//!   a shared hold) is a compare-and-swap on it and takes no lock.
//! - The **waiter list**, behind a mutex, touched only when someone waits.
//!   `WAITERS` is set (under the mutex) before a waiter checks whether it
//!   may proceed, and cleared (under the mutex) when the list empties.
//!
//! # Why no wake-up is lost
//! A waiter queues, sets `WAITERS`, and only then looks at the word
//! ([`begin_turn`](Queue::begin_turn)). Every change that could let a
//! waiter proceed (an operation ending, a release) is a compare-and-swap
//! that fails when `WAITERS` is set; it then wakes the head under the
//! mutex ([`Queue::dispatch`]). So either the change came before `WAITERS` was
//! set, and the waiter's own look sees it, or it comes after and wakes the
//! waiter. Wake-ups are delivered after the mutex is released.
//!
//! # Invariants
//! - At most one backend operation runs at a time (`BUSY`); newcomers
//!   queue meanwhile.
//! - While nothing is held and anyone waits, only the head of the list may
//!   attempt (so nobody barges past the queue).
//! - A slot leaves the list when it is granted, cancelled or retired.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

// The state word: bit 0 exclusive, bit 1 busy, bit 2 waiters, the shared
// count above.
const EXCLUSIVE: u64 = 1;
const BUSY: u64 = 1 << 1;
const WAITERS: u64 = 1 << 2;
const SHARED_ONE: u64 = 1 << 3;
const HELD_BITS: u64 = !(BUSY | WAITERS);

fn held_of(word: u64) -> Held {
    if word & EXCLUSIVE != 0 {
        Held::Exclusive
    } else {
        match word >> 3 {
            0 => Held::None,
            n => Held::Shared(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

fn with_held(word: u64, held: Held) -> u64 {
    let bits = match held {
        Held::None => 0,
        Held::Exclusive => EXCLUSIVE,
        Held::Shared(n) => (n as u64) << 3,
    };
    (word & !HELD_BITS) | bits
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
/// Its state changes only under the list's mutex; the atomic only lets
/// the slot be shared between the queue and its waiter.
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
    #[inline]
    pub(crate) fn deliver(self) {
        if !self.slots.is_empty() {
            self.wake_all();
        }
    }

    #[cold]
    fn wake_all(self) {
        for slot in self.slots {
            slot.event.notify(1);
        }
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.slots.len()
    }
}

/// What a newcomer may do ([`Queue::arrive`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Nothing held, nobody waiting, no operation running: attempt now
    /// (the queue is marked busy; end with [`Queue::end_attempt`]).
    Attempt,
    /// Joined this process's shared holders.
    Joined,
    /// Another caller's operation is running, with nobody waiting: the
    /// answer comes within that operation.
    Busy,
    /// Must wait.
    Wait,
}

/// What cancelling a slot came to ([`Queue::cancel`]).
#[derive(Debug)]
pub(crate) enum Cancelled {
    /// Out of the queue (or never in it); these wake-ups are owed.
    Removed(Wakes),
    /// It had been granted the lock: release that hold.
    WasGranted,
}

/// How a backend operation begun on the queue ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The lock was taken.
    Locked,
    /// Not taken; a queued waiter stays queued.
    Failed,
    /// Not taken; the waiter leaves the queue (an error).
    GaveUp,
}

/// The queue and holdings of one resource in this process.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    word: AtomicU64,
    list: Mutex<VecDeque<Arc<Slot>>>,
}

impl Queue {
    fn list(&self) -> MutexGuard<'_, VecDeque<Arc<Slot>>> {
        // Nothing panics while holding it; the list is consistent at every
        // unlock point.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the word with `f` (`None`: leave it) until it sticks;
    /// returns the word before and after.
    fn update(&self, mut f: impl FnMut(u64) -> Option<u64>) -> Option<(u64, u64)> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let new = f(word)?;
            match self
                .word
                .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((word, new)),
                Err(now) => word = now,
            }
        }
    }

    pub(crate) fn held(&self) -> Held {
        held_of(self.word.load(Ordering::Acquire))
    }

    pub(crate) fn len(&self) -> usize {
        self.list().len()
    }

    /// Nothing held and no operation running.
    pub(crate) fn is_idle(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        held_of(word) == Held::None && word & BUSY == 0
    }

    /// The lock-free path for a newcomer: attempt, join, or learn that it
    /// must wait.
    pub(crate) fn arrive(&self, mode: LockMode) -> Arrival {
        let mut arrival = Arrival::Wait;
        let changed = self.update(|word| {
            if word & WAITERS != 0 {
                arrival = Arrival::Wait;
                return None;
            }
            if word & BUSY != 0 {
                arrival = Arrival::Busy;
                return None;
            }
            match (held_of(word), mode) {
                (Held::None, _) => {
                    arrival = Arrival::Attempt;
                    Some(word | BUSY)
                }
                (Held::Shared(_), LockMode::Shared) => {
                    arrival = Arrival::Joined;
                    Some(word + SHARED_ONE)
                }
                _ => {
                    arrival = Arrival::Wait;
                    None
                }
            }
        });
        if changed.is_none() && arrival != Arrival::Busy {
            return Arrival::Wait;
        }
        arrival
    }

    /// Queues a slot at the back (or, for a newcomer whose own attempt
    /// just failed, at the front: it came before everyone who queued while
    /// it tried).
    pub(crate) fn push(&self, slot: &Arc<Slot>, front: bool) {
        let mut list = self.list();
        if front {
            list.push_front(Arc::clone(slot));
        } else {
            list.push_back(Arc::clone(slot));
        }
        self.word.fetch_or(WAITERS, Ordering::AcqRel);
    }

    /// Whether `slot` may attempt now: at the head, nothing held, no
    /// operation running. If so, the queue is marked busy.
    pub(crate) fn begin_turn(&self, slot: &Arc<Slot>) -> bool {
        let list = self.list();
        if slot.state() != SlotState::Waiting || !list.front().is_some_and(|h| Arc::ptr_eq(h, slot))
        {
            return false;
        }
        self.update(|word| (word & BUSY == 0 && held_of(word) == Held::None).then_some(word | BUSY))
            .is_some()
    }

    /// Ends an attempt begun by [`arrive`](Self::arrive) (`slot` is
    /// `None`) or [`begin_turn`](Self::begin_turn) (the head's `slot`).
    pub(crate) fn end_attempt(
        &self,
        slot: Option<&Arc<Slot>>,
        mode: LockMode,
        turn: Turn,
    ) -> Wakes {
        let leaves = match (turn, slot) {
            (Turn::Locked | Turn::GaveUp, Some(slot)) => Some(slot),
            _ => None,
        };
        if let Some(slot) = leaves {
            // Off the list first, so that a dispatch never sees it.
            let mut list = self.list();
            remove(&mut list, slot);
            if list.is_empty() {
                self.word.fetch_and(!WAITERS, Ordering::AcqRel);
            }
        }
        let held = match turn {
            Turn::Locked => Held::one(mode),
            Turn::Failed | Turn::GaveUp => Held::None,
        };
        let (_, now) = self
            .update(|word| Some(with_held(word & !BUSY, held)))
            .unwrap_or_default();
        // The head keeps its turn after a failed attempt and retries on its
        // own schedule: waking it would only make it spin.
        if turn == Turn::Failed && slot.is_some() {
            return Wakes::default();
        }
        self.dispatch_if_waiting(now)
    }

    /// Begins a release of one holder of `mode`. `Some(last)` when the
    /// resource itself must now be released (the queue is marked busy; end
    /// with [`end_release`](Self::end_release)); `last` says whether
    /// nobody of this process waits for it either. `None` when other
    /// holders of this process keep it.
    pub(crate) fn begin_release(&self, mode: LockMode) -> Option<bool> {
        let mut releases = false;
        let (before, _) = self.update(|word| match (held_of(word), mode) {
            (Held::Exclusive, LockMode::Exclusive) | (Held::Shared(1), LockMode::Shared) => {
                releases = true;
                Some(with_held(word, Held::None) | BUSY)
            }
            (Held::Shared(n), LockMode::Shared) if n > 1 => {
                releases = false;
                Some(word - SHARED_ONE)
            }
            // Unreachable through the public API: guards are the only
            // callers.
            _ => None,
        })?;
        releases.then_some(before & WAITERS == 0)
    }

    /// Ends a release (or any operation that left nothing held).
    pub(crate) fn end_release(&self) -> Wakes {
        let (_, now) = self
            .update(|word| Some(with_held(word & !BUSY, Held::None)))
            .unwrap_or_default();
        self.dispatch_if_waiting(now)
    }

    /// Begins converting this process's hold `from`: true when `from` is
    /// held by exactly one holder and nothing else runs.
    pub(crate) fn begin_convert(&self, from: Held) -> bool {
        self.update(|word| (word & BUSY == 0 && held_of(word) == from).then_some(word | BUSY))
            .is_some()
    }

    /// Ends a conversion: this process now holds `now`.
    pub(crate) fn end_convert(&self, now: Held) -> Wakes {
        let (_, word) = self
            .update(|word| Some(with_held(word & !BUSY, now)))
            .unwrap_or_default();
        self.dispatch_if_waiting(word)
    }

    /// Removes a waiter that gives up. Its turn, if it was at the head,
    /// passes on. Decided under the list's mutex, where grants are made:
    /// a slot granted a moment ago is reported so its hold is released.
    pub(crate) fn cancel(&self, slot: &Arc<Slot>) -> Cancelled {
        let mut list = self.list();
        match slot.state() {
            SlotState::Granted => return Cancelled::WasGranted,
            SlotState::Retired => return Cancelled::Removed(Wakes::default()),
            SlotState::Waiting => {}
        }
        match list.iter().position(|s| Arc::ptr_eq(s, slot)) {
            Some(i) => {
                list.remove(i);
                if list.is_empty() {
                    self.word.fetch_and(!WAITERS, Ordering::AcqRel);
                }
                if i == 0 {
                    return Cancelled::Removed(self.dispatch(&mut list));
                }
                Cancelled::Removed(Wakes::default())
            }
            None => Cancelled::Removed(Wakes::default()),
        }
    }

    /// Sends every waiter back to resolve the resource again.
    pub(crate) fn retire(&self) -> Wakes {
        let mut list = self.list();
        let mut wakes = Wakes::default();
        for slot in list.drain(..) {
            slot.set(RETIRED);
            wakes.push(&slot);
        }
        self.word.fetch_and(!WAITERS, Ordering::AcqRel);
        wakes
    }

    /// After a change that left `word`: wakes whoever can proceed, if
    /// anyone waits.
    #[inline]
    fn dispatch_if_waiting(&self, word: u64) -> Wakes {
        if word & WAITERS == 0 {
            return Wakes::default();
        }
        self.dispatch_waiting()
    }

    #[cold]
    fn dispatch_waiting(&self) -> Wakes {
        let mut list = self.list();
        self.dispatch(&mut list)
    }

    /// Who can proceed now: shared waiters at the head are granted together
    /// while a shared lock is held; otherwise, with nothing held and no
    /// operation running, the head is told it is its turn.
    fn dispatch(&self, list: &mut VecDeque<Arc<Slot>>) -> Wakes {
        let mut wakes = Wakes::default();
        while let Some(head) = list.front() {
            let word = self.word.load(Ordering::Acquire);
            if word & BUSY != 0 {
                // That operation's end dispatches.
                break;
            }
            match (held_of(word), head.mode) {
                (Held::None, _) => {
                    wakes.push(head);
                    break;
                }
                (Held::Shared(_), LockMode::Shared) => {
                    let granted = self
                        .word
                        .compare_exchange(
                            word,
                            word + SHARED_ONE,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok();
                    if granted {
                        if let Some(head) = list.pop_front() {
                            head.set(GRANTED);
                            wakes.push(&head);
                        }
                    }
                }
                _ => break,
            }
        }
        if list.is_empty() {
            self.word.fetch_and(!WAITERS, Ordering::AcqRel);
        }
        wakes
    }
}

fn remove(list: &mut VecDeque<Arc<Slot>>, slot: &Arc<Slot>) {
    if let Some(i) = list.iter().position(|s| Arc::ptr_eq(s, slot)) {
        list.remove(i);
    }
}

#[cfg(test)]
mod tests;
