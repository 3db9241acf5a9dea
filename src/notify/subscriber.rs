//! One waiter's place in a shared watch: a generation that moves with every
//! event that concerns it, and the task to wake when it does. Shared by
//! every platform's watch (`watch.rs` on Unix, `windows.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

#[derive(Debug)]
pub(super) struct Subscriber {
    /// For a directory watch: the one entry this subscriber cares about
    /// (where the backend reports names).
    pub(super) name: Option<Box<[u8]>>,
    generation: AtomicU64,
    /// The task waiting for the generation to move. Whoever sees the event
    /// wakes it: on Unix the drainer may have been woken by another reactor
    /// (tokio's, async-io's), and a drained queue is readable for nobody
    /// else; on Windows it is the watching thread.
    waker: Mutex<Option<Waker>>,
}

impl Subscriber {
    pub(super) fn new(name: Option<Box<[u8]>>) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            name,
            generation: AtomicU64::new(0),
            waker: Mutex::new(None),
        })
    }

    /// Whether an event naming the entry `name` (or none) concerns us.
    #[cfg_attr(windows, allow(dead_code))]
    pub(super) fn concerned_by(&self, name: Option<&[u8]>) -> bool {
        match (&self.name, name) {
            (Some(want), Some(got)) => **want == *got,
            // Events on the watched file itself, or from a backend that
            // names nothing, concern everybody.
            _ => true,
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves the generation on and hands back the waiting task's waker.
    pub(super) fn bump(&self) -> Option<Waker> {
        self.generation.fetch_add(1, Ordering::Release);
        self.waker_slot().take()
    }

    fn waker_slot(&self) -> MutexGuard<'_, Option<Waker>> {
        // Nothing panics under this lock.
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the task to wake. Call it before looking at the generation, so
    /// an event in between wakes the task.
    pub(super) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker_slot();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}
