//! The protocol against the memory store: two `Inner`s on one store play
//! two processes.

use super::store::{MemoryStore, Object};
use super::*;

fn space(store: Arc<dyn Store>, ttl: Duration) -> Arc<Space> {
    Arc::new(Space {
        store,
        label: "mem://test".to_owned(),
        prefix: "locks/".to_owned(),
        ttl,
    })
}

fn inner(space: &Arc<Space>) -> Inner {
    Inner {
        space: Arc::clone(space),
        key: space.key_of("job"),
        state: Mutex::new(State::default()),
        writing: Mutex::new(()),
    }
}

fn take(it: &Inner) -> Option<HolderRecord> {
    match it.attempt(&LockOptions::new()).unwrap() {
        Outcome::Locked(held) => {
            let rec = held.record.clone();
            lock(&it.state).held = Some(held);
            Some(rec)
        }
        Outcome::Busy => None,
    }
}

fn release(it: &Inner) {
    let held = lock(&it.state).held.take().unwrap();
    it.release_now(held).unwrap();
}

#[test]
fn one_holder_at_a_time_and_tokens_go_up() {
    let space = space(Arc::new(MemoryStore::default()), DEFAULT_TTL);
    let (a, b) = (inner(&space), inner(&space));
    let first = take(&a).expect("free");
    assert!(take(&b).is_none());
    assert!(take(&a).is_none(), "not reentrant: the object is held");
    release(&a);
    let second = take(&b).expect("free again");
    assert!(second.token > first.token);
    assert!(b.still_mine().unwrap());
    assert!(!a.still_mine().unwrap());
}

#[test]
fn a_lapsed_hold_is_taken_over_only_after_its_ttl_and_its_holder_learns_it() {
    let ttl = Duration::from_millis(80);
    let space = space(Arc::new(MemoryStore::default()), ttl);
    let (a, b) = (inner(&space), inner(&space));
    let first = take(&a).unwrap();
    let started = Instant::now();
    assert!(take(&b).is_none(), "the first look starts the count");
    while take(&b).is_none() {
        assert!(started.elapsed() < ttl * 10, "never taken over");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        started.elapsed() >= ttl,
        "taken over after {:?}",
        started.elapsed()
    );
    assert!(!a.still_mine().unwrap());
    assert_eq!(a.renew().unwrap_err().kind(), crate::error::lost().kind());
    assert!(b.still_mine().unwrap());
    let now = lock(&b.state).held.clone().unwrap().record;
    assert!(now.token > first.token);
}

#[test]
fn renewal_keeps_a_hold_and_resets_the_waiters_count() {
    let ttl = Duration::from_millis(100);
    let space = space(Arc::new(MemoryStore::default()), ttl);
    let (a, b) = (inner(&space), inner(&space));
    take(&a).unwrap();
    let started = Instant::now();
    while started.elapsed() < ttl * 3 {
        assert!(take(&b).is_none(), "taken from a holder that renews");
        a.renew().unwrap();
        std::thread::sleep(ttl / 4);
    }
    assert!(a.still_mine().unwrap());
}

/// Remembers every body written, and can fail writes after (or instead
/// of) applying them.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    bodies: Mutex<Vec<Vec<u8>>>,
    /// Fail the next write: after applying it (`Some(true)`) or without
    /// (`Some(false)`).
    fail_next: Mutex<Option<bool>>,
    /// Fail this many reads.
    fail_gets: Mutex<usize>,
    /// Answer this many reads with a server error (503).
    busy_gets: Mutex<usize>,
    /// Hold the next write this long before it is applied.
    slow_put: Mutex<Option<Duration>>,
    /// Reads asked for so far.
    reads: Mutex<usize>,
}

impl Store for Flaky {
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        *lock(&self.reads) += 1;
        let mut busy = lock(&self.busy_gets);
        if *busy > 0 {
            *busy -= 1;
            return Err(super::http::refused("reading", 503, "SlowDown"));
        }
        drop(busy);
        let mut failing = lock(&self.fail_gets);
        if *failing > 0 {
            *failing -= 1;
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "down"));
        }
        drop(failing);
        self.inner.get(key)
    }

    fn put(&self, key: &str, body: &[u8], condition: Condition<'_>) -> io::Result<Put> {
        let slow = lock(&self.slow_put).take();
        if let Some(pause) = slow {
            std::thread::sleep(pause);
        }
        let fail = lock(&self.fail_next).take();
        if fail == Some(false) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "lost on the way"));
        }
        let put = self.inner.put(key, body, condition)?;
        if matches!(put, Put::Written(_)) {
            lock(&self.bodies).push(body.to_vec());
        }
        if fail == Some(true) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "answer lost",
            ));
        }
        Ok(put)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
}

#[test]
fn an_unanswered_write_is_decided_by_reading_again() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let (a, b) = (inner(&space), inner(&space));
    // Landed, answer lost: held.
    *lock(&store.fail_next) = Some(true);
    assert!(take(&a).is_some());
    assert!(a.still_mine().unwrap());
    // A renewal whose answer is lost is kept too.
    *lock(&store.fail_next) = Some(true);
    a.renew().unwrap();
    assert!(a.still_mine().unwrap());
    release(&a);
    // Never landed: not held, and nothing changed.
    *lock(&store.fail_next) = Some(false);
    assert!(take(&b).is_none());
    assert!(!b.still_mine().unwrap());
    assert!(take(&b).is_some());
}

#[test]
fn a_renewal_that_landed_unseen_is_recognised_when_asked_again() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let a = inner(&space);
    take(&a).unwrap();
    // The write lands, its answer is lost, and so is the read that follows:
    // the second attempt is refused by the first one's version.
    *lock(&store.fail_next) = Some(true);
    *lock(&store.fail_gets) = 1;
    let renewed = a.renew().unwrap();
    assert!(a.still_mine().unwrap());
    let current = super::codec::parse(&store.get(&a.key).unwrap().unwrap().body).unwrap();
    assert!(same_write(&current, &renewed));
    // And the hold goes on from that version.
    a.renew().unwrap();
    release(&a);
}

#[test]
fn a_wait_rides_out_server_errors_but_not_others() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let resource = ObjectLock {
        inner: Arc::new(inner(&space)),
    };
    let no_options: &(dyn Any + Send + Sync) = &();
    *lock(&store.busy_gets) = 3;
    let wait = resource
        .blocking_wait(LockMode::Exclusive, no_options)
        .unwrap();
    let Ok(Waited::Locked(hold)) = (wait.run)() else {
        panic!("the wait did not ride out three 503s");
    };
    assert_eq!(*lock(&store.busy_gets), 0);
    resource
        .commit_wait(LockMode::Exclusive, hold, no_options)
        .unwrap();
    resource
        .release(LockMode::Exclusive, true, None, no_options)
        .unwrap();
    resource.finish_release().unwrap();
    // Any other error ends the wait (of another process, which must read
    // the object: this one would write at its own release's version).
    let other = ObjectLock {
        inner: Arc::new(inner(&space)),
    };
    *lock(&store.fail_gets) = 1;
    let wait = other
        .blocking_wait(LockMode::Exclusive, no_options)
        .unwrap();
    assert!((wait.run)().is_err());
}

/// A guard released while its renewal is still on its way: the release
/// frees the version the renewal made, not the one it replaced (which
/// would be refused, and leave the lock to its lease).
#[test]
fn a_release_during_a_renewal_frees_the_renewed_hold() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let resource = ObjectLock {
        inner: Arc::new(inner(&space)),
    };
    let no_options: &(dyn Any + Send + Sync) = &();
    assert!(matches!(
        resource
            .try_acquire(LockMode::Exclusive, no_options)
            .unwrap(),
        Attempted::Locked(_)
    ));
    *lock(&store.slow_put) = Some(Duration::from_millis(300));
    let renewing = {
        let inner = Arc::clone(&resource.inner);
        std::thread::spawn(move || inner.renew().map(drop))
    };
    std::thread::sleep(Duration::from_millis(50));
    resource
        .release(LockMode::Exclusive, true, None, no_options)
        .unwrap();
    resource.finish_release().unwrap();
    renewing.join().unwrap().unwrap();
    let now = super::codec::parse(&store.get(&resource.inner.key).unwrap().unwrap().body).unwrap();
    assert_eq!(now.state, RecordState::Released);
}

#[test]
fn every_body_written_differs_from_every_earlier_one() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let (a, b) = (inner(&space), inner(&space));
    for _ in 0..50 {
        take(&a).unwrap();
        a.renew().unwrap();
        a.renew().unwrap();
        release(&a);
        take(&b).unwrap();
        release(&b);
    }
    let bodies = lock(&store.bodies).clone();
    let unique: std::collections::HashSet<_> = bodies.iter().collect();
    assert_eq!(unique.len(), bodies.len());
    assert_eq!(bodies.len(), 50 * 6);
}

#[test]
fn a_foreign_object_is_an_error_and_left_alone() {
    let store = Arc::new(MemoryStore::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let key = space.key_of("job");
    store
        .put(&key, b"somebody's data", Condition::Absent)
        .unwrap();
    let a = inner(&space);
    let e = a.attempt(&LockOptions::new()).err().expect("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(store.get(&key).unwrap().unwrap().body, b"somebody's data");
}

#[test]
fn keys_keep_names_apart_and_list_back() {
    let space = space(Arc::new(MemoryStore::default()), DEFAULT_TTL);
    let names = ["a", "a.lock", "a/b", "..", "x y", "%41"];
    let keys: Vec<String> = names.iter().map(|n| space.key_of(n)).collect();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), names.len());
    for (name, key) in names.iter().zip(&keys) {
        assert!(key.starts_with("locks/") && key.ends_with(".lock"));
        assert_eq!(space.name_of(key).as_deref(), Some(*name));
    }
    assert_eq!(space.name_of("locks/other.txt"), None);
    assert_eq!(space.name_of("elsewhere/a.lock"), None);
}

/// An acquisition right after this process's own release writes at the
/// version that release made, without reading first: one round trip. The
/// token still goes up, and a change by anyone else in between is read.
#[test]
fn an_acquisition_after_its_own_release_skips_the_read() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let (a, b) = (inner(&space), inner(&space));
    let first = take(&a).unwrap();
    release(&a);
    let reads = *lock(&store.reads);
    let second = take(&a).unwrap();
    assert_eq!(*lock(&store.reads), reads, "no read before the write");
    assert!(second.token > first.token);
    assert!(a.still_mine().unwrap());
    release(&a);
    // Another process takes and releases it in between: a's write at its
    // own release's version is refused, and a reads the object as usual.
    let other = take(&b).unwrap();
    assert!(other.token > second.token);
    release(&b);
    let reads = *lock(&store.reads);
    let third = take(&a).unwrap();
    assert_eq!(*lock(&store.reads), reads + 1, "refused, then read");
    assert!(third.token > other.token);
    assert!(a.still_mine().unwrap());
    assert!(!b.still_mine().unwrap());
    // Held by another process: the same write is refused, and the read
    // finds it busy.
    release(&a);
    take(&b).unwrap();
    assert!(take(&a).is_none());
}

/// The write that skips the read is no exception to "nothing retries a
/// write on its own": unanswered and not landed, the attempt is busy.
#[test]
fn an_unanswered_write_after_its_own_release_is_not_sent_again() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let a = inner(&space);
    take(&a).unwrap();
    release(&a);
    let written = lock(&store.bodies).len();
    *lock(&store.fail_next) = Some(false);
    assert!(take(&a).is_none());
    assert_eq!(lock(&store.bodies).len(), written, "nothing landed");
    // Landed, answer lost: held, as any other write.
    *lock(&store.fail_next) = Some(true);
    assert!(take(&a).is_some());
    assert!(a.still_mine().unwrap());
}

/// An explicit unlock, which waits for the release anyway, writes it on
/// its own thread (no pool thread to wake, and none to wait for): the
/// object is free when `release_waited` returns. A dropped guard's release
/// is still written on the pool, where a slow write cannot block the drop.
#[test]
fn an_explicit_unlock_writes_its_release_itself() {
    let store = Arc::new(Flaky::default());
    let space = space(store.clone(), DEFAULT_TTL);
    let resource = ObjectLock {
        inner: Arc::new(inner(&space)),
    };
    let no_options: &(dyn Any + Send + Sync) = &();
    let state_now = || {
        let body = store.get(&resource.inner.key).unwrap().unwrap().body;
        super::codec::parse(&body).unwrap().state
    };
    let acquired = |resource: &ObjectLock| {
        matches!(
            resource.try_acquire(LockMode::Exclusive, no_options),
            Ok(Attempted::Locked(_))
        )
    };
    assert!(acquired(&resource));
    *lock(&store.slow_put) = Some(Duration::from_millis(200));
    resource
        .release_waited(LockMode::Exclusive, true, None, no_options)
        .unwrap();
    assert_eq!(
        state_now(),
        RecordState::Released,
        "written before returning"
    );
    resource.finish_release().unwrap();
    assert!(acquired(&resource));
    *lock(&store.slow_put) = Some(Duration::from_millis(200));
    let started = Instant::now();
    resource
        .release(LockMode::Exclusive, true, None, no_options)
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "a drop waits"
    );
    assert_eq!(state_now(), RecordState::Held, "not written yet");
    resource.finish_release().unwrap();
    assert_eq!(state_now(), RecordState::Released);
    // A hold found lost: the explicit unlock says so.
    assert!(acquired(&resource));
    lock(&resource.inner.state).held = None;
    lock(&resource.inner.state).lost = true;
    let lost = resource.release_waited(LockMode::Exclusive, true, None, no_options);
    assert_eq!(lost.unwrap_err().kind(), crate::error::lost().kind());
}
