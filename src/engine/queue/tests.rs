//! The queue's rules, one by one, and under threads.

use super::*;
use LockMode::{Exclusive, Shared};

fn removed(c: Cancelled) -> usize {
    match c {
        Cancelled::Removed(wakes) => wakes.count(),
        Cancelled::WasGranted => panic!("the slot had been granted"),
    }
}

fn queued(q: &Queue, mode: LockMode) -> Arc<Slot> {
    let slot = Slot::new(mode);
    q.push(&slot, false);
    slot
}

#[test]
fn the_word_encodes_every_holding() {
    for held in [
        Held::None,
        Held::Exclusive,
        Held::Shared(1),
        Held::Shared(7),
    ] {
        for flags in [0, BUSY, WAITERS, BUSY | WAITERS] {
            let word = with_held(flags, held);
            assert_eq!(held_of(word), held);
            assert_eq!(word & (BUSY | WAITERS), flags);
        }
    }
}

#[test]
fn the_fast_path_attempts_only_on_an_idle_queue() {
    let q = Queue::default();
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
    let q = Queue::default();
    assert_eq!(q.arrive(Shared), Arrival::Attempt);
    let _ = q.end_attempt(None, Shared, Turn::Locked);
    let _writer = queued(&q, Exclusive);
    assert_eq!(q.arrive(Shared), Arrival::Wait);
}

#[test]
fn only_the_head_takes_a_turn_and_only_with_nothing_held() {
    let q = Queue::default();
    let a = queued(&q, Exclusive);
    let b = queued(&q, Exclusive);
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
    let q = Queue::default();
    let a = queued(&q, Exclusive);
    let _b = queued(&q, Exclusive);
    assert!(q.begin_turn(&a));
    let wakes = q.end_attempt(Some(&a), Exclusive, Turn::Failed);
    // a is still the head and retries on its own schedule.
    assert_eq!(wakes.count(), 0);
    assert_eq!(q.len(), 2);
    assert!(q.begin_turn(&a));
    let wakes = q.end_attempt(Some(&a), Exclusive, Turn::GaveUp);
    assert_eq!(q.len(), 1);
    assert_eq!(wakes.count(), 1, "the next head is told it is its turn");
}

#[test]
fn a_release_grants_shared_waiters_together_up_to_a_writer() {
    let q = Queue::default();
    assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
    let _ = q.end_attempt(None, Exclusive, Turn::Locked);
    let r1 = queued(&q, Shared);
    let r2 = queued(&q, Shared);
    let w = queued(&q, Exclusive);
    let r3 = queued(&q, Shared);
    assert_eq!(q.begin_release(Exclusive), Some(false));
    let wakes = q.end_release();
    // Nothing held: only the head is told; it takes the lock itself.
    assert_eq!(wakes.count(), 1);
    assert!(q.begin_turn(&r1));
    let wakes = q.end_attempt(Some(&r1), Shared, Turn::Locked);
    assert_eq!(wakes.count(), 1, "r2 is granted with r1");
    assert_eq!(r2.state(), SlotState::Granted);
    // Giving up a slot granted a moment ago is told to release it.
    assert!(matches!(q.cancel(&r2), Cancelled::WasGranted));
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
    let q = Queue::default();
    let a = queued(&q, Exclusive);
    let b = queued(&q, Exclusive);
    let c = queued(&q, Exclusive);
    assert_eq!(removed(q.cancel(&b)), 0);
    assert_eq!(removed(q.cancel(&a)), 1);
    assert!(q.begin_turn(&c));
    // A slot no longer queued is ignored.
    assert_eq!(removed(q.cancel(&a)), 0);
}

#[test]
fn nobody_is_told_of_a_turn_while_an_operation_runs() {
    let q = Queue::default();
    assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
    let a = queued(&q, Exclusive);
    // The head gives up while the attempt runs: no turn to hand out.
    assert_eq!(removed(q.cancel(&a)), 0);
    let b = queued(&q, Exclusive);
    let wakes = q.end_attempt(None, Exclusive, Turn::Failed);
    assert_eq!(wakes.count(), 1, "the attempt's end tells the head");
    assert!(q.begin_turn(&b));
}

#[test]
fn a_waiter_that_queues_after_the_release_ended_sees_it_itself() {
    let q = Queue::default();
    assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
    let _ = q.end_attempt(None, Exclusive, Turn::Locked);
    assert_eq!(q.begin_release(Exclusive), Some(true));
    // The release ends before anyone waits: it wakes nobody...
    assert_eq!(q.end_release().count(), 0);
    // ...and a waiter queued after that finds its turn by looking.
    let a = queued(&q, Exclusive);
    assert!(q.begin_turn(&a));
}

#[test]
fn a_release_that_ends_after_a_waiter_queued_wakes_it() {
    let q = Queue::default();
    assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
    let _ = q.end_attempt(None, Exclusive, Turn::Locked);
    assert_eq!(q.begin_release(Exclusive), Some(true));
    let a = queued(&q, Exclusive);
    // Its look comes while the release runs: not its turn yet.
    assert!(!q.begin_turn(&a));
    assert_eq!(q.end_release().count(), 1);
    assert!(q.begin_turn(&a));
}

#[test]
fn retiring_sends_every_waiter_back() {
    let q = Queue::default();
    let a = queued(&q, Exclusive);
    let b = queued(&q, Shared);
    assert_eq!(q.retire().count(), 2);
    assert_eq!(q.len(), 0);
    assert_eq!(a.state(), SlotState::Retired);
    assert_eq!(b.state(), SlotState::Retired);
    assert!(!q.begin_turn(&a));
    // With nobody waiting, the fast path is open again.
    assert_eq!(q.arrive(Exclusive), Arrival::Attempt);
}

#[test]
fn conversions_need_a_sole_holder_and_an_idle_queue() {
    let q = Queue::default();
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

/// Threads taking and releasing through the fast path and the list
/// together: the word never admits two exclusive holders, and every
/// waiter is served.
#[test]
fn concurrent_holders_exclude_each_other() {
    use std::sync::atomic::AtomicUsize;
    let q = Arc::new(Queue::default());
    let inside = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (q, inside) = (Arc::clone(&q), Arc::clone(&inside));
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let slot = match q.arrive(Exclusive) {
                        Arrival::Attempt => None,
                        _ => {
                            let slot = Slot::new(Exclusive);
                            q.push(&slot, false);
                            loop {
                                let listener = slot.listen();
                                if q.begin_turn(&slot) {
                                    break;
                                }
                                futures_lite::future::block_on(listener);
                            }
                            Some(slot)
                        }
                    };
                    q.end_attempt(slot.as_ref(), Exclusive, Turn::Locked)
                        .deliver();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(q.begin_release(Exclusive).map(|_| ()), Some(()));
                    q.end_release().deliver();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(q.is_idle());
    assert_eq!(q.len(), 0);
}
