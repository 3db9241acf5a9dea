//! Whose turn it is to use a session: one call at a time drives its
//! protocol, since the socket keeps one waker per direction and a second
//! driver would take the wake-ups of the first.
//!
//! A blocking call waits for its turn ([`Turn::take`]); a future only ever
//! tries ([`Turn::try_take`]) and keeps the turn across its polls, giving
//! it back itself ([`Turn::give`]).

use std::sync::{Condvar, Mutex, PoisonError};

/// One session's turn.
#[derive(Debug, Default)]
pub(super) struct Turn {
    taken: Mutex<bool>,
    given: Condvar,
}

/// The turn, given back when dropped.
#[derive(Debug)]
pub(super) struct Taken<'a>(&'a Turn);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.0.give();
    }
}

impl Turn {
    /// Waits for the turn (a blocking call: only where blocking is
    /// allowed).
    pub(super) fn take(&self) -> Taken<'_> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        while *taken {
            taken = self
                .given
                .wait(taken)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *taken = true;
        Taken(self)
    }

    /// The turn, if nobody has it. Never blocks.
    pub(super) fn try_take(&self) -> Option<Taken<'_>> {
        self.try_keep().then_some(Taken(self))
    }

    /// Takes the turn, if nobody has it, for a caller that keeps it across
    /// polls and gives it back with [`give`](Self::give). Never blocks.
    pub(super) fn try_keep(&self) -> bool {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        !std::mem::replace(&mut *taken, true)
    }

    /// Gives back a turn taken with [`try_keep`](Self::try_keep).
    pub(super) fn give(&self) {
        *self.taken.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.given.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn one_holder_at_a_time() {
        let turn = Turn::default();
        assert!(turn.try_keep());
        assert!(turn.try_take().is_none());
        turn.give();
        let taken = turn.try_take().expect("free again");
        assert!(!turn.try_keep());
        drop(taken);
        assert!(turn.try_keep());
        turn.give();
    }

    #[test]
    fn a_blocking_taker_waits_for_a_kept_turn() {
        let turn = Arc::new(Turn::default());
        assert!(turn.try_keep());
        let (tx, rx) = std::sync::mpsc::channel();
        let other = Arc::clone(&turn);
        let waiter = std::thread::spawn(move || {
            let _taken = other.take();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        turn.give();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("given the turn");
        waiter.join().unwrap();
    }
}
