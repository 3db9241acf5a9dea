//! Correctness across real processes. Each test re-runs this test binary as
//! child processes that play a role (`child_main`, selected by an
//! environment variable) and talk back through stdout lines.

mod common;

use std::path::Path;
use std::time::Duration;

use lockyard::{ErrorKind, FileLock, LockMode, LockOptions, Wait, WaitStrategy};

use common::{
    env_path, expect_success, next_message, say, spawn_child, tempdir, wait_for_file,
    wait_for_line, ROLE_VAR,
};

const ENTRY: &str = "child_main";

fn mode_from_env() -> LockMode {
    match std::env::var("MODE").as_deref() {
        Ok("shared") => LockMode::Shared,
        _ => LockMode::Exclusive,
    }
}

/// The entry point of child processes; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let lock_path = env_path("LOCK");
    match role.as_str() {
        // Take the lock, say so, hold it until told to release.
        "hold" => {
            let remove = std::env::var_os("REMOVE").is_some();
            let options = LockOptions::new().remove_on_release(remove);
            let lock = FileLock::with_options(&lock_path, options);
            let guard = lock
                .acquire_blocking(mode_from_env(), Wait::Forever)
                .unwrap();
            say("locked");
            wait_for_file(&env_path("RELEASE"));
            guard.unlock().unwrap();
            say("released");
        }
        // Take and release the lock over and over until RELEASE exists.
        "churn" => {
            let lock = FileLock::new(&lock_path);
            let release = env_path("RELEASE");
            say("churning");
            while !release.exists() {
                let guard = lock.lock_blocking().unwrap();
                std::thread::sleep(Duration::from_micros(300));
                drop(guard);
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        // One attempt; report the outcome.
        "try" => {
            let lock = FileLock::new(&lock_path);
            match lock.acquire_blocking(mode_from_env(), Wait::TryOnce) {
                Ok(_) => say("ok"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => say("wouldblock"),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        // Wait for the lock (async, backoff strategy), report it.
        "wait" => {
            let lock = FileLock::new(&lock_path);
            say("waiting");
            let guard =
                futures::executor::block_on(lock.lock_timeout(Duration::from_secs(60))).unwrap();
            say("acquired");
            drop(guard);
        }
        // 4 tasks x 250 increments of the number in DATA under the lock.
        "counter" => {
            let data = env_path("DATA");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let lock = FileLock::new(&lock_path);
                let mut tasks = Vec::new();
                for _ in 0..4 {
                    let lock = lock.clone();
                    let data = data.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..250 {
                            let guard = lock.lock().await.unwrap();
                            let text = std::fs::read_to_string(&data).unwrap_or_default();
                            let n: u64 = text.trim().parse().unwrap_or(0);
                            std::fs::write(&data, (n + 1).to_string()).unwrap();
                            drop(guard);
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
        }
        // 10,000 tasks wait on one lock with at most 1024 descriptors.
        "many_waiters" => {
            // The default soft limit on most systems; the test proves the
            // waiters do not need a descriptor each.
            #[cfg(unix)]
            {
                use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
                let maximum = getrlimit(Resource::Nofile).maximum;
                setrlimit(
                    Resource::Nofile,
                    Rlimit {
                        current: Some(1024),
                        maximum,
                    },
                )
                .unwrap();
            }
            many_waiters(&lock_path, 10_000);
            say("ok");
        }
        #[cfg(target_os = "linux")]
        "abandoned_kernel_wait" => {
            abandoned_kernel_wait(&lock_path);
            say("ok");
        }
        #[cfg(target_os = "linux")]
        "dropped_futures" => {
            dropped_futures(&lock_path);
            say("ok");
        }
        #[cfg(target_os = "linux")]
        "removed_on_release" => {
            removed_on_release(&lock_path);
            say("ok");
        }
        other => panic!("unknown role {other}"),
    }
}

fn many_waiters(lock_path: &Path, n: usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let lock = FileLock::new(lock_path);
        let held = lock.lock().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let acquired = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let fut = lock.lock();
            let order = Arc::clone(&order);
            let acquired = Arc::clone(&acquired);
            tasks.push(tokio::spawn(async move {
                let guard = fut.await.unwrap();
                order.lock().unwrap().push(i);
                acquired.fetch_add(1, Ordering::Relaxed);
                drop(guard);
            }));
            // Let each task queue before the next is spawned, so the
            // spawn order is the queue order.
            tokio::task::yield_now().await;
        }
        while lock.waiters() < n {
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(acquired.load(Ordering::Relaxed), n);
        let order = order.lock().unwrap();
        assert!(
            order.iter().copied().eq(0..n),
            "waiters were not served in FIFO order"
        );
    });
}

/// A child process holding `lock` exclusively until the file `release`
/// appears.
fn hold_in_child(lock: &Path, release: &Path) -> common::Kid {
    let mut holder = spawn_child(
        ENTRY,
        "hold",
        &[
            ("LOCK", lock.to_str().unwrap()),
            ("RELEASE", release.to_str().unwrap()),
        ],
    );
    wait_for_line(&mut holder, "locked");
    holder
}

fn release_signal(dir: &Path) -> std::path::PathBuf {
    dir.join("release-now")
}

fn read_line(child: &mut std::process::Child) -> String {
    next_message(child).unwrap_or_default()
}

fn try_in_child(lock: &Path, mode: &str) -> String {
    let mut child = spawn_child(
        ENTRY,
        "try",
        &[("LOCK", lock.to_str().unwrap()), ("MODE", mode)],
    );
    let line = read_line(&mut child);
    expect_success(child);
    line
}

#[test]
fn exclusive_excludes_another_process() {
    let dir = tempdir();
    let path = dir.path().join("ex.lock");
    let lock = FileLock::new(&path);
    let guard = lock.lock_blocking().unwrap();
    assert_eq!(try_in_child(&path, "exclusive"), "wouldblock");
    assert_eq!(try_in_child(&path, "shared"), "wouldblock");
    drop(guard);
    assert_eq!(try_in_child(&path, "exclusive"), "ok");
}

#[test]
fn shared_locks_coexist_across_processes_and_block_exclusive() {
    let dir = tempdir();
    let path = dir.path().join("sh.lock");
    let lock = FileLock::new(&path);
    let guard = lock.lock_shared_blocking().unwrap();
    assert_eq!(try_in_child(&path, "shared"), "ok");
    assert_eq!(try_in_child(&path, "exclusive"), "wouldblock");
    drop(guard);

    // And the other way round: a child's shared lock blocks our exclusive.
    let release = release_signal(dir.path());
    let mut holder = spawn_child(
        ENTRY,
        "hold",
        &[
            ("LOCK", path.to_str().unwrap()),
            ("MODE", "shared"),
            ("RELEASE", release.to_str().unwrap()),
        ],
    );
    wait_for_line(&mut holder, "locked");
    assert!(lock.try_lock_shared().is_ok());
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    std::fs::write(&release, "").unwrap();
    expect_success(holder);
    drop(lock.try_lock().unwrap());
}

#[test]
fn waiter_in_another_process_gets_the_lock_after_release() {
    let dir = tempdir();
    let path = dir.path().join("handoff.lock");
    let lock = FileLock::new(&path);
    let guard = lock.lock_blocking().unwrap();
    let mut waiter = spawn_child(ENTRY, "wait", &[("LOCK", path.to_str().unwrap())]);
    wait_for_line(&mut waiter, "waiting");
    std::thread::sleep(Duration::from_millis(50));
    drop(guard);
    wait_for_line(&mut waiter, "acquired");
    expect_success(waiter);
}

#[test]
fn we_get_the_lock_after_another_process_releases() {
    let dir = tempdir();
    let path = dir.path().join("handoff2.lock");
    let release = release_signal(dir.path());
    let holder = hold_in_child(&path, &release);
    let lock = FileLock::new(&path);
    let waiting = std::thread::spawn(move || lock.lock_blocking_timeout(Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&release, "").unwrap();
    drop(waiting.join().unwrap().unwrap());
    expect_success(holder);
}

#[test]
fn killed_holder_frees_the_lock() {
    let dir = tempdir();
    let path = dir.path().join("killed.lock");
    let never = dir.path().join("never");
    let mut holder = hold_in_child(&path, &never);
    let lock = FileLock::new(&path);
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let guard = lock.lock_blocking_timeout(Duration::from_secs(30)).unwrap();
    assert!(guard.is_exclusive());
}

#[test]
fn counter_stress_four_processes_four_tasks() {
    let dir = tempdir();
    let path = dir.path().join("counter.lock");
    let data = dir.path().join("counter");
    let children: Vec<_> = (0..4)
        .map(|_| {
            spawn_child(
                ENTRY,
                "counter",
                &[
                    ("LOCK", path.to_str().unwrap()),
                    ("DATA", data.to_str().unwrap()),
                ],
            )
        })
        .collect();
    for child in children {
        expect_success(child);
    }
    assert_eq!(std::fs::read_to_string(&data).unwrap(), "4000");
}

#[test]
fn ten_thousand_waiters_within_1024_descriptors() {
    let dir = tempdir();
    let path = dir.path().join("many.lock");
    let mut child = spawn_child(ENTRY, "many_waiters", &[("LOCK", path.to_str().unwrap())]);
    assert_eq!(read_line(&mut child), "ok");
    expect_success(child);
}

/// The blocking-pool strategy really hands off from another process.
#[test]
fn kernel_wait_strategy_acquires_after_release() {
    let dir = tempdir();
    let path = dir.path().join("pool2.lock");
    let release = release_signal(dir.path());
    let holder = hold_in_child(&path, &release);
    let opts = LockOptions::new().wait_strategy(WaitStrategy::BlockingPool);
    let lock = FileLock::with_options(&path, opts);
    let async_lock = lock.clone();
    let waiting = std::thread::spawn(move || {
        smol::block_on(async_lock.lock_timeout(Duration::from_secs(60))).map(|g| g.is_exclusive())
    });
    let blocking_lock = lock.clone();
    let blocking =
        std::thread::spawn(move || blocking_lock.lock_blocking().map(|g| g.is_exclusive()));
    // Released only once a waiter is in the kernel's lock call, so the
    // test is about the wait, whatever the timing.
    #[cfg(target_os = "linux")]
    wait_until_blocked_in_kernel(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
        &release,
    );
    #[cfg(not(target_os = "linux"))]
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&release, "").unwrap();
    assert!(waiting.join().unwrap().unwrap());
    assert!(blocking.join().unwrap().unwrap());
    expect_success(holder);
}

/// A future dropped while a blocking-pool thread waits in the kernel: the
/// thread releases what it gets at once, its descriptor is closed, and
/// another process can lock right after.
#[cfg(target_os = "linux")]
#[test]
fn abandoned_kernel_wait_releases_and_closes() {
    run_isolated("abandoned_kernel_wait");
}

#[cfg(target_os = "linux")]
fn abandoned_kernel_wait(path: &Path) {
    let release = release_signal(path.parent().unwrap());
    let lock = FileLock::with_options(
        path,
        LockOptions::new().wait_strategy(WaitStrategy::BlockingPool),
    );
    drop(lock.try_lock().unwrap()); // open the handle's descriptor first
    warm_up_reactor();
    let baseline = common::open_fds();

    let holder = hold_in_child(path, &release);
    smol::block_on(async {
        let waited = futures_lite::future::or(async { Some(lock.lock().await) }, async {
            async_io::Timer::after(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(waited.is_none(), "acquired a lock held by another process");
    });
    assert_eq!(lock.waiters(), 0);
    // The pool thread is still parked in the kernel with its own descriptor.
    std::fs::write(&release, "").unwrap();
    expect_success(holder);

    // It gets the lock, drops it and closes its descriptor.
    let mut ok = false;
    for _ in 0..1000 {
        if common::open_fds() == baseline && try_in_child(path, "exclusive") == "ok" {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        ok,
        "descriptor or lock left behind by an abandoned kernel wait"
    );
    drop(lock.try_lock().unwrap());
}

/// Dropping a queued future frees nothing that belongs to others and leaks
/// no descriptor; a child can lock right after the holder lets go.
#[cfg(target_os = "linux")]
#[test]
fn dropped_futures_leak_no_descriptor() {
    run_isolated("dropped_futures");
}

#[cfg(target_os = "linux")]
fn dropped_futures(path: &Path) {
    warm_up_reactor();
    let before_handle = common::open_fds();
    let lock = FileLock::new(path);
    let holder = lock.try_lock().unwrap();
    let baseline = common::open_fds();
    assert_eq!(baseline, before_handle + 1, "one descriptor per lock file");
    futures::executor::block_on(async {
        for _ in 0..200 {
            let mut f = Box::pin(lock.lock());
            assert!(futures_lite::future::poll_once(&mut f).await.is_none());
        }
        for _ in 0..20 {
            let e = lock
                .lock_timeout(Duration::from_millis(1))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
        }
    });
    assert_eq!(common::open_fds(), baseline);
    assert_eq!(lock.waiters(), 0);
    assert_eq!(try_in_child(path, "exclusive"), "wouldblock");
    drop(holder);
    assert_eq!(try_in_child(path, "exclusive"), "ok");
    drop(lock);
    assert_eq!(common::open_fds(), before_handle);
}

/// A lock file removed on release leaves no descriptor of the deleted
/// file open, though its handle lives on.
#[cfg(target_os = "linux")]
#[test]
fn a_removed_lock_file_keeps_no_descriptor_open() {
    run_isolated("removed_on_release");
}

#[cfg(target_os = "linux")]
fn removed_on_release(path: &Path) {
    let before = common::open_fds();
    let lock = FileLock::with_options(path, LockOptions::new().remove_on_release(true));
    for unlock in [true, false] {
        let guard = lock.try_lock().unwrap();
        assert_eq!(common::open_fds(), before + 1);
        if unlock {
            guard.unlock().unwrap();
        } else {
            drop(guard);
        }
        assert!(!path.exists());
        assert_eq!(
            common::open_fds(),
            before,
            "a descriptor of the deleted file stayed open"
        );
    }
    drop(lock);
}

/// Descriptor counts are only meaningful in a process of their own: the
/// other tests of this binary run in parallel and open pipes to their
/// children. So these tests run their body in a child.
#[cfg(target_os = "linux")]
fn run_isolated(role: &str) {
    let dir = tempdir();
    let path = dir.path().join("isolated.lock");
    let mut child = spawn_child(ENTRY, role, &[("LOCK", path.to_str().unwrap())]);
    assert_eq!(read_line(&mut child), "ok", "isolated check {role} failed");
    expect_success(child);
}

/// Starts async-io's reactor (and its descriptors) before a baseline count.
#[cfg(target_os = "linux")]
fn warm_up_reactor() {
    futures::executor::block_on(async_io::Timer::after(Duration::from_millis(1)));
}

/// `lock_blocking()` with no deadline waits in the kernel's own lock call
/// whatever the strategy: `/proc/locks` lists this process as blocked on
/// the lock file, and the waiter has the lock once the holder lets go.
/// Repeated waits keep at most two descriptors of the file: the one the
/// lock is held through and the spare the next wait locks through.
#[cfg(target_os = "linux")]
#[test]
fn blocking_lock_without_deadline_waits_in_the_kernel() {
    use std::os::unix::fs::MetadataExt;

    let dir = tempdir();
    let path = dir.path().join("kernel.lock");
    let lock = FileLock::new(&path);
    for round in 0..3 {
        let release = dir.path().join(format!("release-{round}"));
        let holder = hold_in_child(&path, &release);
        let ino = std::fs::metadata(&path).unwrap().ino();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock_blocking().map(drop))
        };
        wait_until_blocked_in_kernel(ino, &release);
        std::fs::write(&release, "").unwrap();
        waiter.join().unwrap().unwrap();
        expect_success(holder);
    }
    let ours = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == path)
        .count();
    assert!(
        ours <= 2,
        "{ours} descriptors of the lock file after three waits"
    );
}

/// Many acquisitions over three handles of one file (one waiting on the
/// blocking pool), each cancelled at a random point or timed out while
/// another process takes and releases the lock: the process keeps at most
/// two descriptors of the lock file, however many waits it made.
#[cfg(target_os = "linux")]
#[test]
fn cancelled_waits_keep_at_most_two_descriptors() {
    let dir = tempdir();
    let path = dir.path().join("churn.lock");
    let release = dir.path().join("release");
    let handles = [
        FileLock::new(&path),
        FileLock::new(&path),
        FileLock::with_options(
            &path,
            LockOptions::new().wait_strategy(WaitStrategy::BlockingPool),
        ),
    ];
    drop(handles[0].try_lock().unwrap()); // the file exists
    let mut churn = spawn_child(
        ENTRY,
        "churn",
        &[
            ("LOCK", path.to_str().unwrap()),
            ("RELEASE", release.to_str().unwrap()),
        ],
    );
    wait_for_line(&mut churn, "churning");
    let mut most = 0;
    for round in 0..4000u32 {
        let lock = &handles[fastrand::usize(..handles.len())];
        let patience = Duration::from_micros(fastrand::u64(0..2000));
        match round % 3 {
            // A future given up at a random moment.
            0 => {
                let _ = futures::executor::block_on(futures_lite::future::or(
                    async { lock.lock().await.map(drop) },
                    async {
                        async_io::Timer::after(patience).await;
                        Ok(())
                    },
                ));
            }
            // A future with a timeout of its own.
            1 => {
                let _ = futures::executor::block_on(lock.lock_timeout(patience)).map(drop);
            }
            // A blocking wait with a deadline.
            _ => {
                let _ = lock.lock_blocking_timeout(patience).map(drop);
            }
        }
        if round % 100 == 0 {
            most = most.max(common::fds_of(&path));
        }
    }
    std::fs::write(&release, "").unwrap();
    expect_success(churn);
    // Abandoned blocking waits end once the lock is theirs (the churn is
    // over, so at once): then only what the handles keep is left.
    let settled = std::time::Instant::now() + Duration::from_secs(10);
    while common::fds_of(&path) > 2 && std::time::Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = common::fds_of(&path);
    eprintln!("descriptors of the lock file: at most {most} while waiting, {left} after");
    assert!(
        left <= 2,
        "{left} descriptors of the lock file kept by three handles"
    );
}

/// Waits until a thread of this process is blocked in the kernel's lock
/// call on inode `ino`. Fails after 30 s, first creating `release` so that
/// the holder child lets go and no child outlives the test.
#[cfg(target_os = "linux")]
fn wait_until_blocked_in_kernel(ino: u64, release: &Path) {
    let patience = std::time::Instant::now() + Duration::from_secs(30);
    while !blocked_in_kernel(std::process::id(), ino) {
        if std::time::Instant::now() > patience {
            std::fs::write(release, "").unwrap();
            panic!("the waiter never blocked in the kernel's lock call");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `/proc/locks` has a waiter of process `pid` blocked on inode
/// `ino` (a line like `3: -> FLOCK ADVISORY WRITE <pid> <maj:min:ino> 0 EOF`).
#[cfg(target_os = "linux")]
fn blocked_in_kernel(pid: u32, ino: u64) -> bool {
    let table = std::fs::read_to_string("/proc/locks").unwrap();
    table.lines().any(|line| {
        let Some((_, waiter)) = line.split_once("->") else {
            return false;
        };
        let fields: Vec<&str> = waiter.split_whitespace().collect();
        fields.get(3) == Some(&pid.to_string().as_str())
            && fields
                .get(4)
                .is_some_and(|id| id.rsplit(':').next() == Some(&ino.to_string()))
    })
}

/// A blocking waiter in the kernel whose holder deletes the lock file on
/// release: the waiter is granted the old file, finds that the path no
/// longer names it, and ends up holding the file now at the path.
#[cfg(target_os = "linux")]
#[test]
fn kernel_waiter_follows_a_lock_file_removed_on_release() {
    use std::os::unix::fs::MetadataExt;

    let dir = tempdir();
    let path = dir.path().join("removed.lock");
    let release = release_signal(dir.path());
    let mut holder = spawn_child(
        ENTRY,
        "hold",
        &[
            ("LOCK", path.to_str().unwrap()),
            ("RELEASE", release.to_str().unwrap()),
            ("REMOVE", "1"),
        ],
    );
    wait_for_line(&mut holder, "locked");
    let old = std::fs::metadata(&path).unwrap().ino();
    let lock = FileLock::with_options(&path, LockOptions::new().remove_on_release(true));
    let waiter = std::thread::spawn(move || lock.lock_blocking());
    wait_until_blocked_in_kernel(old, &release);
    std::fs::write(&release, "").unwrap();
    wait_for_line(&mut holder, "released");
    expect_success(holder);
    let guard = waiter.join().unwrap().unwrap();
    // Had the waiter kept the removed file, a child would create a new one
    // at the path and lock it. (Its inode number may well be the old one's:
    // the filesystem reuses freed numbers.)
    assert_eq!(try_in_child(&path, "exclusive"), "wouldblock");
    drop(guard);
    assert!(!path.exists(), "the waiter's own release removes the file");
}
