// The behaviour suite, included once per backend by `tests/behaviour.rs`:
// each includer defines `BACKEND` and gets `lock_at`/`lock_with` below.

/// A lock on `path` (its name, for the memory backend) with default
/// options, on this module's backend.
fn lock_at(path: impl AsRef<std::path::Path>) -> FileLock {
    lock_with(path, LockOptions::new())
}

/// A lock on `path` with `options`, on this module's backend.
fn lock_with(path: impl AsRef<std::path::Path>, options: LockOptions) -> FileLock {
    let options = match BACKEND {
        Backend::Files => options,
        Backend::Memory => options.in_memory_for_tests(),
    };
    FileLock::with_options(path.as_ref(), options)
}

/// Whether this behaviour applies to the backend (lock files only);
/// says so when it does not.
fn files_only(what: &str) -> bool {
    if BACKEND == Backend::Memory {
        eprintln!("skipped for the memory backend: {what} is about lock files");
        return false;
    }
    true
}

/// The suite runs where it says: a lock file appears only for the file
/// backend, and the memory backend's tokens are its own counter.
async fn the_lock_lives_in_its_backend() {
    let dir = tempdir();
    let path = dir.path().join("where.lock");
    let lock = lock_at(&path);
    let first = lock.lock().await.unwrap().token().unwrap();
    let second = lock.lock().await.unwrap().token().unwrap();
    assert!(second > first);
    match BACKEND {
        Backend::Files => assert!(path.exists()),
        Backend::Memory => {
            assert!(!path.exists(), "a memory lock created a file");
            assert_eq!(second, first + 1);
        }
    }
}

async fn exclusive_excludes_other_handles() {
    let dir = tempdir();
    let path = dir.path().join("x.lock");
    let a = lock_at(&path);
    let b = lock_at(&path);
    let held = a.lock().await.unwrap();
    assert!(held.is_exclusive());
    let err = b.try_lock().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(
        b.try_lock_shared().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    drop(held);
    drop(b.try_lock().unwrap());
}

async fn same_file_through_two_paths_is_one_lock() {
    if !files_only("two paths naming one file") {
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("x.lock");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let a = lock_at(&path);
    let b = lock_at(dir.path().join("sub/../x.lock"));
    let _held = a.lock().await.unwrap();
    assert_eq!(b.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
}

async fn shared_coexist_and_block_exclusive() {
    let dir = tempdir();
    let lock = lock_at(dir.path().join("s.lock"));
    let other = lock_at(dir.path().join("s.lock"));
    let r1 = lock.lock_shared().await.unwrap();
    let r2 = other.lock_shared().await.unwrap();
    assert!(r1.is_shared() && r2.is_shared());
    assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(r1);
    assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(r2);
    drop(other.try_lock().unwrap());
}

async fn release_wakes_waiter_directly() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("w.lock"), wake_only());
    let held = lock.lock().await.unwrap();
    let mut waiter = pin!(lock.lock());
    assert!(settle(&mut waiter).await.is_none());
    assert_eq!(lock.waiters(), 1);
    drop(held);
    // With an hour-long backoff, only the release's wake-up can get it here.
    let guard = waiter.await.unwrap();
    assert!(guard.is_exclusive());
    assert_eq!(lock.waiters(), 0);
}

async fn timeout_is_a_deadline() {
    let dir = tempdir();
    let lock = lock_at(dir.path().join("t.lock"));
    let _held = lock.lock().await.unwrap();
    let err = lock
        .lock_timeout(Duration::from_millis(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(
        err.waited().unwrap() >= Duration::from_millis(30),
        "{err:?}"
    );
    assert!(err.to_string().contains("t.lock"), "{err}");
    let err = lock
        .acquire(LockMode::Shared, Wait::For(Duration::ZERO))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(lock.waiters(), 0);
}

async fn try_once_never_waits_or_queues() {
    let dir = tempdir();
    let lock = lock_at(dir.path().join("o.lock"));
    let _held = lock.lock_shared().await.unwrap();
    let err = lock
        .acquire(LockMode::Exclusive, Wait::TryOnce)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(lock.waiters(), 0);
    drop(lock.acquire(LockMode::Shared, Wait::TryOnce).await.unwrap());
}

async fn dropped_waiter_passes_the_turn_on() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("c.lock"), wake_only());
    let held = lock.lock().await.unwrap();
    let mut first = Box::pin(lock.lock());
    let mut second = pin!(lock.lock());
    assert!(settle(&mut first).await.is_none());
    assert!(settle(&mut second).await.is_none());
    assert_eq!(lock.waiters(), 2);
    drop(first);
    assert_eq!(lock.waiters(), 1);
    drop(held);
    drop(second.await.unwrap());
}

async fn dropping_granted_shared_waiter_releases() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("g.lock"), wake_only());
    let writer = lock.lock().await.unwrap();
    let mut reader = Box::pin(lock.lock_shared());
    assert!(settle(&mut reader).await.is_none());
    // The release grants the queued reader before it is polled again...
    drop(writer);
    // ...and dropping it unpolled must give that grant back.
    drop(reader);
    drop(lock.try_lock().unwrap());
}

async fn fifo_among_waiters() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("f.lock"), wake_only());
    let held = lock.lock().await.unwrap();
    let order = RefCell::new(Vec::new());
    let mut waiters = Vec::new();
    for i in 0..8 {
        let mut fut = Box::pin(lock.lock());
        assert!(settle(&mut fut).await.is_none());
        let order = &order;
        waiters.push(async move {
            let guard = fut.await.unwrap();
            order.borrow_mut().push(i);
            future::yield_now().await;
            drop(guard);
        });
    }
    drop(held);
    join_all(waiters).await;
    assert_eq!(order.into_inner(), (0..8).collect::<Vec<_>>());
}

async fn shared_waiters_admitted_together_writers_not_jumped() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("r.lock"), wake_only());
    let writer = lock.lock().await.unwrap();
    let mut r1 = Box::pin(lock.lock_shared());
    let mut r2 = Box::pin(lock.lock_shared());
    let mut w2 = Box::pin(lock.lock());
    let mut r3 = Box::pin(lock.lock_shared());
    // Queue order: r1, r2, w2, r3.
    for f in [&mut r1, &mut r2, &mut w2, &mut r3] {
        assert!(settle(f).await.is_none());
    }
    assert_eq!(lock.waiters(), 4);
    drop(writer);
    // r1 and r2 come in together; r3 waits behind w2.
    let g1 = r1.await.unwrap();
    let g2 = r2.await.unwrap();
    assert!(settle(&mut r3).await.is_none());
    assert!(settle(&mut w2).await.is_none());
    drop((g1, g2));
    let gw = w2.await.unwrap();
    assert!(settle(&mut r3).await.is_none());
    drop(gw);
    drop(r3.await.unwrap());
}

async fn explicit_unlock_reports_and_releases() {
    let dir = tempdir();
    let lock = lock_at(dir.path().join("u.lock"));
    let guard = lock.lock().await.unwrap();
    guard.unlock().unwrap();
    let guard = lock.try_lock().unwrap();
    // A guard outlives its handle.
    drop(lock);
    guard.unlock().unwrap();
}

async fn many_waiters_one_descriptor() {
    let dir = tempdir();
    let path = dir.path().join("m.lock");
    let lock = lock_with(&path, wake_only());
    let held = lock.lock().await.unwrap();
    let count = RefCell::new(0);
    let mut waiters = Vec::new();
    for _ in 0..500 {
        let fut = lock.lock();
        let count = &count;
        waiters.push(async move {
            let g = fut.await.unwrap();
            *count.borrow_mut() += 1;
            drop(g);
        });
    }
    let mut all = pin!(join_all(waiters));
    assert!(poll_once(&mut all).await.is_none());
    assert_eq!(lock.waiters(), 500);
    // 500 waiters, one descriptor of the lock file between them.
    #[cfg(target_os = "linux")]
    if files_only("counting the lock file's descriptors") {
        assert_eq!(common::fds_of(&path), 1);
    }
    drop(held);
    all.await;
    assert_eq!(*count.borrow(), 500);
}

async fn racing_a_timer_leaves_nothing() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("z.lock"), wake_only());
    let held = lock.lock().await.unwrap();
    for _ in 0..20 {
        let sleep = async {
            async_io::Timer::after(Duration::from_millis(1)).await;
            None
        };
        let acquire = async { Some(lock.lock().await) };
        assert!(future::or(acquire, sleep).await.is_none());
    }
    assert_eq!(lock.waiters(), 0);
    drop(held);
    drop(lock.try_lock().unwrap());
}

async fn remove_on_release_deletes_and_recreates() {
    if !files_only("removing the lock file on release") {
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("deep/er/rm.lock");
    let lock = lock_with(&path, LockOptions::new().remove_on_release(true).create_parent(true));
    let g = lock.lock().await.unwrap();
    assert!(path.exists());
    g.unlock().unwrap();
    assert!(!path.exists());
    let g = lock.lock().await.unwrap();
    assert!(path.exists());
    drop(g);
    assert!(!path.exists());
}

async fn poll_once_fast_path_is_immediate() {
    let dir = tempdir();
    let lock = lock_with(
        dir.path().join("p.lock"),
        LockOptions::new().offload_open(false),
    );
    let mut fut = pin!(lock.lock());
    match future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(Ok(g)) => drop(g),
        other => panic!("uncontended lock did not complete on first poll: {other:?}"),
    }
}

/// Backoffs at the edges of `Duration`, while another open file of the
/// same file holds the lock (so the waiter backs off): no overflow, no
/// panic; the deadline still ends the wait.
fn extreme_backoffs() -> Vec<lockyard::Backoff> {
    use lockyard::Backoff;
    vec![
        Backoff::new(Duration::MAX, 1, Duration::MAX),
        Backoff::new(Duration::MAX, u32::MAX, Duration::MAX).jitter(false),
        Backoff::new(Duration::from_secs(u64::MAX / 2), 2, Duration::MAX),
        Backoff::new(Duration::ZERO, u32::MAX, Duration::MAX),
        Backoff::new(Duration::ZERO, 1, Duration::ZERO),
    ]
}

/// A handle per extreme backoff, file events off (so the waiter backs off).
fn extreme_locks(path: &std::path::Path) -> Vec<(lockyard::Backoff, FileLock)> {
    extreme_backoffs()
        .into_iter()
        .map(|backoff| {
            let options = LockOptions::new().backoff(backoff).file_events(false);
            (backoff, lock_with(path, options))
        })
        .collect()
}

fn held_elsewhere(path: &std::path::Path) -> std::fs::File {
    let other = std::fs::File::create(path).unwrap();
    other.lock().unwrap();
    other
}

async fn extreme_backoff_never_panics() {
    if !files_only("a lock held through another open file") {
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("b.lock");
    let other = held_elsewhere(&path);
    for (backoff, lock) in extreme_locks(&path) {
        let e = lock
            .lock_timeout(Duration::from_millis(30))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{backoff:?}: {e}");
    }
    drop(other);
}

under_every_runtime!(
    the_lock_lives_in_its_backend,
    exclusive_excludes_other_handles,
    same_file_through_two_paths_is_one_lock,
    shared_coexist_and_block_exclusive,
    release_wakes_waiter_directly,
    timeout_is_a_deadline,
    try_once_never_waits_or_queues,
    dropped_waiter_passes_the_turn_on,
    dropping_granted_shared_waiter_releases,
    fifo_among_waiters,
    shared_waiters_admitted_together_writers_not_jumped,
    explicit_unlock_reports_and_releases,
    many_waiters_one_descriptor,
    racing_a_timer_leaves_nothing,
    remove_on_release_deletes_and_recreates,
    poll_once_fast_path_is_immediate,
    extreme_backoff_never_panics,
);

#[test]
fn extreme_backoff_never_panics_blocking() {
    if !files_only("a lock held through another open file") {
        return;
    }
    if let Some(why) = super::common::std_unlock_is_unreliable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("b.lock");
    let other = held_elsewhere(&path);
    for (backoff, lock) in extreme_locks(&path) {
        let e = lock
            .lock_blocking_timeout(Duration::from_millis(30))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{backoff:?}: {e}");
        // A waiter with no deadline and a delay too long to schedule waits
        // for the release, which it still sees.
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock_blocking())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished());
        other.unlock().unwrap();
        let got = join_within(
            waiter,
            Duration::from_secs(10),
            "the waiter never got the lock",
        );
        drop(got.unwrap());
        other.lock().unwrap();
    }
    drop(other);
}

/// Blocking callers queued behind a holder of this process are served in
/// arrival order, whether the release finds them spinning or parked.
#[test]
fn blocking_waiters_served_in_order() {
    let dir = tempdir();
    let lock = lock_with(dir.path().join("b.lock"), wake_only());
    let held = lock.lock_blocking().unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for i in 0..6 {
        let (waiter, order) = (lock.clone(), order.clone());
        threads.push(std::thread::spawn(move || {
            let guard = waiter.lock_blocking().unwrap();
            order.lock().unwrap().push(i);
            drop(guard);
        }));
        while lock.waiters() <= i {
            std::thread::yield_now();
        }
    }
    // Some are still spinning, the first ones have parked.
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..6).collect::<Vec<_>>());
}

/// Threads taking the lock every way at once (blocking, try, futures;
/// shared and exclusive): a writer is always alone, readers only with
/// readers, and every thread finishes.
#[test]
fn mixed_modes_under_threads_exclude_each_other() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let dir = tempdir();
    let lock = lock_at(dir.path().join("mixed.lock"));
    let writers = Arc::new(AtomicUsize::new(0));
    let readers = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (lock, writers, readers) = (lock.clone(), writers.clone(), readers.clone());
            std::thread::spawn(move || {
                for i in 0..1500 {
                    let exclusive = (t + i) % 3 != 0;
                    let guard = match (i % 4, exclusive) {
                        (0, true) => lock.lock_blocking(),
                        (0, false) => lock.lock_shared_blocking(),
                        (1, true) => match lock.try_lock() {
                            Ok(g) => Ok(g),
                            Err(_) => continue,
                        },
                        (1, false) => match lock.try_lock_shared() {
                            Ok(g) => Ok(g),
                            Err(_) => continue,
                        },
                        (_, true) => futures::executor::block_on(lock.lock()),
                        (_, false) => futures::executor::block_on(lock.lock_shared()),
                    }
                    .unwrap();
                    if exclusive {
                        assert_eq!(writers.fetch_add(1, SeqCst), 0, "two writers");
                        assert_eq!(readers.load(SeqCst), 0, "a writer with readers");
                        writers.fetch_sub(1, SeqCst);
                    } else {
                        readers.fetch_add(1, SeqCst);
                        assert_eq!(writers.load(SeqCst), 0, "a reader with a writer");
                        readers.fetch_sub(1, SeqCst);
                    }
                    drop(guard);
                }
            })
        })
        .collect();
    for t in threads {
        join_within(t, Duration::from_secs(60), "a thread never finished");
    }
    assert_eq!(lock.waiters(), 0);
}

/// Waiters dropped at the moment a release hands them the lock: no
/// grant is left behind (the lock is free once everyone is gone).
#[test]
fn waiters_dropped_during_a_hand_off_leave_no_hold() {
    use std::sync::{Arc, Barrier};
    let dir = tempdir();
    let lock = lock_at(dir.path().join("handoff.lock"));
    for round in 0..200 {
        let writer = lock.lock_blocking().unwrap();
        // A reader that takes the lock when the writer lets go; the
        // release grants the readers queued behind it at the same moment.
        let first = {
            let lock = lock.clone();
            std::thread::spawn(move || drop(lock.lock_shared_blocking().unwrap()))
        };
        while lock.waiters() < 1 {
            std::thread::yield_now();
        }
        let barrier = Arc::new(Barrier::new(4));
        let droppers: Vec<_> = (0..3)
            .map(|_| {
                let (lock, barrier) = (lock.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut waiting = Box::pin(lock.lock_shared());
                    let polled = futures::executor::block_on(future::poll_once(&mut waiting));
                    assert!(polled.is_none(), "a reader got in past the writer");
                    barrier.wait();
                    drop(waiting);
                })
            })
            .collect();
        while lock.waiters() < 4 {
            std::thread::yield_now();
        }
        barrier.wait();
        drop(writer);
        join_within(first, Duration::from_secs(20), "the first reader never finished");
        for t in droppers {
            join_within(t, Duration::from_secs(20), "a dropper never finished");
        }
        let free = lock.try_lock();
        assert!(free.is_ok(), "round {round}: {:?}", free.err());
    }
}

/// Tasks on a multi-threaded tokio runtime taking the lock shared and
/// exclusive with short timeouts, so that many give up while queued or
/// while being handed the lock: a writer is always alone, and nothing is
/// left held or queued at the end.
#[test]
fn tasks_with_timeouts_exclude_each_other_and_leave_nothing_held() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let dir = tempdir();
    let lock = lock_at(dir.path().join("tasks.lock"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (writers, readers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..40u64)
        .map(|t| {
            let (lock, writers, readers) = (lock.clone(), writers.clone(), readers.clone());
            runtime.spawn(async move {
                for i in 0..100u64 {
                    let exclusive = (t * 7 + i) % 3 != 0;
                    let timeout = Duration::from_micros(50 + (t * 131 + i * 17) % 3000);
                    let taken = if exclusive {
                        lock.lock_timeout(timeout).await
                    } else {
                        lock.lock_shared_timeout(timeout).await
                    };
                    let Ok(guard) = taken else { continue };
                    if exclusive {
                        assert_eq!(writers.fetch_add(1, SeqCst), 0, "two writers");
                        assert_eq!(readers.load(SeqCst), 0, "a writer with readers");
                        tokio::task::yield_now().await;
                        writers.fetch_sub(1, SeqCst);
                    } else {
                        readers.fetch_add(1, SeqCst);
                        assert_eq!(writers.load(SeqCst), 0, "a reader with a writer");
                        tokio::task::yield_now().await;
                        readers.fetch_sub(1, SeqCst);
                    }
                    drop(guard);
                }
            })
        })
        .collect();
    runtime.block_on(async {
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("a task never finished")
                .unwrap();
        }
    });
    assert_eq!(lock.waiters(), 0);
    assert!(lock.try_lock().is_ok(), "a hold was left behind");
}
