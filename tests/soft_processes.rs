//! Soft locks and leases across real processes: recovery from a killed
//! holder, many processes racing to break one stale lock, lease expiry,
//! takeover and renewal.

mod common;

use std::time::{Duration, Instant};

use lockyard::{ErrorKind, FileLock, LockOptions, StaleReason};

use common::{
    env_path, expect_success, forge_record, join_within, local_identity, next_message, now_secs,
    say, spawn_child, tempdir, wait_for_file, wait_for_line, Children, Forged, DEAD_PID, ROLE_VAR,
};

const ENTRY: &str = "child_main";

/// A soft lock's record left by a dead process of this host (name and
/// boot id as `local_identity` found them).
fn dead_local_soft(host: &str, boot: Option<&str>, token: u64) -> Vec<u8> {
    forge_record(&Forged {
        pid: DEAD_PID,
        kind: "soft",
        host,
        boot,
        start: None,
        acquired: now_secs(),
        ttl_secs: None,
        token,
    })
}

/// A soft lock `name` in `dir` whose control file exists and whose sidecar
/// a dead process of this host left behind (token 5).
fn left_by_a_dead_process(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    drop(
        FileLock::with_options(&path, LockOptions::new().soft())
            .try_lock()
            .unwrap(),
    );
    let (host, boot, _) = local_identity(dir);
    std::fs::write(&path, dead_local_soft(&host, boot.as_deref(), 5)).unwrap();
    path
}

/// The entry point of child processes; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let path = env_path("LOCK");
    match role.as_str() {
        // Take a soft lock and hold it until killed.
        "hold_soft" => {
            let _guard = FileLock::with_options(&path, LockOptions::new().soft())
                .try_lock()
                .unwrap();
            say("locked");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Take a lease and never renew it; after being told, report whether
        // it is still held and what releasing says.
        "lease_no_renew" => {
            let ttl = Duration::from_millis(300);
            let guard = FileLock::with_options(&path, LockOptions::new().lease(ttl))
                .try_lock()
                .unwrap();
            say(&format!("locked {}", guard.token().unwrap()));
            wait_for_file(&env_path("CHECK"));
            // The "lost" signal fires (it would never fire while held).
            let lost = futures_lite::future::block_on(futures_lite::future::or(
                async { Some(guard.lost(Duration::from_millis(10)).await) },
                async {
                    async_io::Timer::after(Duration::from_secs(20)).await;
                    None
                },
            ));
            say(&format!("lost {:?}", lost.map(|e| e.kind())));
            say(&format!("still_held {}", guard.still_held().unwrap()));
            let e = guard.unlock().unwrap_err();
            say(&format!("unlock {:?}", e.kind()));
        }
        // Take a lease and keep it alive well past its TTL, then release.
        "lease_keep_alive" => {
            let ttl = Duration::from_millis(200);
            let guard = FileLock::with_options(&path, LockOptions::new().lease(ttl))
                .try_lock()
                .unwrap();
            say("locked");
            if std::env::var("HOW").as_deref() == Ok("blocking") {
                // From blocking code: the work runs here, renewals beside it.
                let ((), kept) =
                    guard.keep_alive_while(|| std::thread::sleep(Duration::from_millis(1500)));
                assert!(kept.is_ok(), "renewal failed: {kept:?}");
            } else {
                let kept = futures_lite::future::block_on(futures_lite::future::or(
                    async { Some(guard.keep_alive().await) },
                    async {
                        async_io::Timer::after(Duration::from_millis(1500)).await;
                        None
                    },
                ));
                assert!(kept.is_none(), "renewal failed: {kept:?}");
            }
            assert!(guard.still_held().unwrap());
            guard.unlock().unwrap();
            say("released");
        }
        // One of the racers: each round, wait for the go signal, take the
        // (stale) lock, check nobody else is inside, leave.
        "racer" => {
            let dir = path.parent().unwrap().to_path_buf();
            let rounds: u32 = std::env::var("ROUNDS").unwrap().parse().unwrap();
            let lock = FileLock::with_options(&path, LockOptions::new().soft());
            let marker = dir.join("inside");
            for round in 0..rounds {
                // Spin rather than sleep, so the racers start together; give
                // up if the parent is gone.
                let go = dir.join(format!("go-{round}"));
                let since = Instant::now();
                while !go.exists() {
                    assert!(since.elapsed() < Duration::from_secs(60), "no go signal");
                    std::thread::yield_now();
                }
                let guard = lock.lock_blocking_timeout(Duration::from_secs(60)).unwrap();
                // O_EXCL: fails if another holder is inside.
                if std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&marker)
                    .is_err()
                {
                    say("overlap");
                    std::process::exit(3);
                }
                std::thread::sleep(Duration::from_millis(1));
                std::fs::remove_file(&marker).unwrap();
                guard.unlock().unwrap();
                say(&format!("done {round}"));
            }
        }
        // Hold the break lock of the soft lock at LOCK (its control file's
        // OS lock) until killed.
        "hold_break_lock" => {
            let mut ctl = path.as_os_str().to_owned();
            ctl.push(".ctl");
            let file = std::fs::File::open(ctl).unwrap();
            file.lock().unwrap();
            say("locked");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Take the lock ROUNDS times (soft, lease or strict per KIND);
        // while holding it, append the token to the shared LOG, so the
        // log's order is the real acquisition order.
        "token_logger" => {
            use std::io::Write;
            let rounds: u32 = std::env::var("ROUNDS").unwrap().parse().unwrap();
            let options = match std::env::var("KIND").as_deref() {
                Ok("lease") => LockOptions::new().lease(Duration::from_secs(30)),
                Ok("strict") => LockOptions::new(),
                _ => LockOptions::new().soft(),
            };
            let lock = FileLock::with_options(&path, options);
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(env_path("LOG"))
                .unwrap();
            for _ in 0..rounds {
                let guard = lock.lock_blocking_timeout(Duration::from_secs(60)).unwrap();
                let line = format!("{} {}\n", guard.token().unwrap(), std::process::id());
                log.write_all(line.as_bytes()).unwrap();
                guard.unlock().unwrap();
            }
            say("done");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Fencing tokens strictly increase along the real order of acquisitions,
/// for soft locks and leases as for strict ones: 4 processes take the lock
/// in turn and log their token while holding it.
fn tokens_follow_acquisition_order(kind: &str) {
    const PROCESSES: usize = 4;
    const ROUNDS: u32 = 400;
    let dir = tempdir();
    let path = dir.path().join("tokens.lock");
    let log = dir.path().join("log");
    std::fs::write(&log, "").unwrap();
    let rounds = ROUNDS.to_string();
    let mut loggers = Children(
        (0..PROCESSES)
            .map(|_| {
                spawn_child(
                    ENTRY,
                    "token_logger",
                    &[
                        ("LOCK", path.to_str().unwrap()),
                        ("LOG", log.to_str().unwrap()),
                        ("ROUNDS", &rounds),
                        ("KIND", kind),
                    ],
                )
            })
            .collect(),
    );
    for logger in &mut loggers.0 {
        wait_for_line(logger, "done");
    }
    for logger in std::mem::take(&mut loggers.0) {
        expect_success(logger);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let tokens: Vec<u64> = text
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tokens.len(), PROCESSES * ROUNDS as usize);
    let regressions: Vec<_> = tokens
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] <= w[0])
        .map(|(i, w)| (i + 1, w[0], w[1]))
        .collect();
    assert!(
        regressions.is_empty(),
        "{kind}: {} of {} acquisitions got a token not above the previous holder's \
         (position, previous, this): {:?}",
        regressions.len(),
        tokens.len(),
        &regressions[..regressions.len().min(10)]
    );
}

#[test]
fn soft_tokens_follow_acquisition_order() {
    tokens_follow_acquisition_order("soft");
}

#[test]
fn lease_tokens_follow_acquisition_order() {
    tokens_follow_acquisition_order("lease");
}

#[test]
fn strict_tokens_follow_acquisition_order() {
    tokens_follow_acquisition_order("strict");
}

#[test]
fn killed_soft_holder_is_recovered_at_once() {
    let dir = tempdir();
    let path = dir.path().join("killed.lock");
    let mut holder = spawn_child(ENTRY, "hold_soft", &[("LOCK", path.to_str().unwrap())]);
    wait_for_line(&mut holder, "locked");
    let lock = FileLock::with_options(&path, LockOptions::new().soft().stale_after(None));
    let e = lock.try_lock().unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::WouldBlock,
        "a live holder must not be broken"
    );
    assert_eq!(e.holder().unwrap().pid(), holder.id());

    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(path.exists(), "the dead holder left its sidecar behind");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let lock = FileLock::with_options(
        &path,
        LockOptions::new()
            .soft()
            .stale_after(None)
            .on_stale(move |s| {
                log.lock()
                    .unwrap()
                    .push((s.reason(), s.record().map(|r| r.pid())));
                true
            }),
    );
    // One attempt, no TTL, no waiting: the free OS lock on the sidecar
    // proves the holder gone.
    let guard = lock.try_lock().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(StaleReason::HolderGone, Some(holder.id()))]
    );
    assert!(guard.token().unwrap() > e.holder().unwrap().token());
}

#[test]
fn eight_processes_race_to_break_a_stale_lock_200_rounds() {
    const RACERS: usize = 8;
    const ROUNDS: u32 = 200;
    let dir = tempdir();
    let path = dir.path().join("race.lock");
    let (host, boot, _) = local_identity(dir.path());
    // Create the control file once, as a first user would.
    drop(
        FileLock::with_options(&path, LockOptions::new().soft())
            .try_lock()
            .unwrap(),
    );
    let rounds = ROUNDS.to_string();
    let mut racers = Children(
        (0..RACERS)
            .map(|_| {
                spawn_child(
                    ENTRY,
                    "racer",
                    &[("LOCK", path.to_str().unwrap()), ("ROUNDS", &rounds)],
                )
            })
            .collect(),
    );
    for round in 0..ROUNDS {
        // A stale lock left by a dead process on this host...
        std::fs::write(
            &path,
            dead_local_soft(&host, boot.as_deref(), u64::from(round)),
        )
        .unwrap();
        // ...and all racers go at once.
        std::fs::write(dir.path().join(format!("go-{round}")), "").unwrap();
        for racer in &mut racers.0 {
            let msg = next_message(racer);
            assert_eq!(
                msg.as_deref(),
                Some(format!("done {round}").as_str()),
                "round {round}"
            );
        }
    }
    for racer in std::mem::take(&mut racers.0) {
        expect_success(racer);
    }
}

#[test]
fn lapsed_lease_is_taken_over_and_the_former_holder_finds_out() {
    let dir = tempdir();
    let path = dir.path().join("lease.lock");
    let check = dir.path().join("check-now");
    let mut holder = spawn_child(
        ENTRY,
        "lease_no_renew",
        &[
            ("LOCK", path.to_str().unwrap()),
            ("CHECK", check.to_str().unwrap()),
        ],
    );
    let first = next_message(&mut holder).unwrap();
    let first_token: u64 = first.strip_prefix("locked ").unwrap().parse().unwrap();

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let opts = LockOptions::new()
        .lease(Duration::from_secs(30))
        .on_stale(move |s| {
            log.lock().unwrap().push(s.reason());
            true
        });
    let lock = FileLock::with_options(&path, opts);
    let guard = lock.lock_blocking_timeout(Duration::from_secs(30)).unwrap();
    // The holder is alive, so only the lapsed lease lets us in.
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::LeaseExpired]);
    assert!(
        guard.token().unwrap() > first_token,
        "the new holder's token supersedes the old"
    );

    std::fs::write(&check, "").unwrap();
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("lost Some(Lost)")
    );
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("still_held false")
    );
    assert_eq!(next_message(&mut holder).as_deref(), Some("unlock Lost"));
    expect_success(holder);
    assert!(
        guard.still_held().unwrap(),
        "the former holder's release must not remove ours"
    );
}

#[test]
fn renewed_lease_outlives_its_ttl() {
    for how in ["async", "blocking"] {
        renewed_lease_outlives_its_ttl_with(how);
    }
}

fn renewed_lease_outlives_its_ttl_with(how: &str) {
    let dir = tempdir();
    let path = dir.path().join("renewed.lock");
    let mut holder = spawn_child(
        ENTRY,
        "lease_keep_alive",
        &[("LOCK", path.to_str().unwrap()), ("HOW", how)],
    );
    wait_for_line(&mut holder, "locked");
    let lock = FileLock::with_options(&path, LockOptions::new().lease(Duration::from_secs(1)));
    // The holder's TTL is 200 ms; for 1.5 s it keeps renewing, so every
    // attempt in between finds it held.
    let mut attempts = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1000) {
        match lock.try_lock() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => attempts += 1,
            other => panic!("took a renewed lease: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(attempts > 10);
    wait_for_line(&mut holder, "released");
    expect_success(holder);
    drop(lock.try_lock().unwrap());
}

/// A process holds a soft lock's break lock and is stopped. Meanwhile a
/// task drops a soft guard, and another keeps a lease alive, on a
/// single-threaded executor: neither may block it. Once the process goes,
/// the release completes.
#[cfg(unix)]
#[test]
fn a_stopped_break_lock_holder_does_not_block_the_executor() {
    use rustix::process::{kill_process, Pid, Signal};
    let dir = tempdir();
    let path = dir.path().join("soft.lock");
    let lease_path = dir.path().join("lease.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().soft());
    let guard = lock.try_lock().unwrap();
    let lease = FileLock::with_options(
        &lease_path,
        LockOptions::new().lease(Duration::from_millis(90)),
    );
    let lease_guard = lease.try_lock().unwrap();

    let mut holders = Children(
        [&path, &lease_path]
            .iter()
            .map(|p| spawn_child(ENTRY, "hold_break_lock", &[("LOCK", p.to_str().unwrap())]))
            .collect(),
    );
    for child in &mut holders.0 {
        wait_for_line(child, "locked");
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        kill_process(pid, Signal::STOP).unwrap();
    }

    // On its own thread, so that a regression fails the test (below)
    // instead of hanging it.
    let executor = std::thread::spawn(move || {
        let ticks = std::cell::Cell::new(0u32);
        let (dropped_in, kept) = futures_lite::future::block_on(async {
            let work = async {
                let started = Instant::now();
                drop(guard);
                let dropped_in = started.elapsed();
                // keep_alive renews every 30 ms; each renewal waits for the
                // stopped holder on a blocking thread, never here.
                let kept = futures_lite::future::or(
                    async { Some(lease_guard.keep_alive().await) },
                    async {
                        async_io::Timer::after(Duration::from_millis(300)).await;
                        None
                    },
                )
                .await;
                (dropped_in, kept.map(|r| r.map_err(|e| e.kind())))
            };
            let ticker = async {
                loop {
                    async_io::Timer::after(Duration::from_millis(5)).await;
                    ticks.set(ticks.get() + 1);
                }
            };
            futures_lite::future::or(work, async {
                ticker.await;
                unreachable!()
            })
            .await
        });
        (dropped_in, kept, ticks.get(), lease_guard)
    });
    // Killing the stopped holders (when `holders` drops) unblocks a thread
    // stuck in the kernel, so a failure does not hang either.
    let (dropped_in, kept, ticks, lease_guard) = join_within(
        executor,
        Duration::from_secs(20),
        "the executor thread is blocked",
    );
    assert!(
        dropped_in < Duration::from_millis(200),
        "drop blocked for {dropped_in:?}"
    );
    assert_eq!(kept, None, "keep_alive ended early");
    assert!(ticks >= 20, "the executor stalled: {ticks} ticks in 300 ms");
    // The sidecar stays until the break lock can be taken...
    assert!(path.exists());
    // ...and goes once its holder does.
    drop(holders);
    let since = Instant::now();
    while path.exists() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the deferred release never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(lease_guard);
}

/// An `on_stale` hook that calls back into the same lock (its holder, its
/// waiters, another try) runs with no lock of lockyard's held: no deadlock.
#[test]
fn on_stale_hook_may_call_back_into_the_lock() {
    let dir = tempdir();
    let path = left_by_a_dead_process(dir.path(), "hook.lock");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let worker = {
        let (path, seen) = (path.clone(), seen.clone());
        std::thread::spawn(move || {
            let probe = FileLock::with_options(&path, LockOptions::new().soft());
            let options = LockOptions::new().soft().on_stale(move |verdict| {
                let holder = probe.holder().map(|h| h.map(|r| r.pid()));
                let waiters = probe.waiters();
                let tried = probe.try_lock().map(drop).map_err(|e| e.kind());
                seen.lock().unwrap().push(format!(
                    "{:?} {holder:?} {waiters} {tried:?}",
                    verdict.reason()
                ));
                true
            });
            let lock = FileLock::with_options(&path, options);
            lock.lock_blocking_timeout(Duration::from_secs(5))
                .map(|g| g.token())
        })
    };
    let token = join_within(worker, Duration::from_secs(20), "deadlocked in the hook").unwrap();
    assert!(token.unwrap() > 5);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the hook never ran");
    assert!(
        seen[0].starts_with("ProcessDead") || seen[0].starts_with("HolderGone"),
        "{seen:?}"
    );
}

/// `keep_alive_while` reports a lease lost during the work (here: its
/// sidecar removed behind the holder's back), once the work has ended.
#[test]
fn keep_alive_while_reports_a_lost_lease() {
    let dir = tempdir();
    let path = dir.path().join("lost.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().lease(Duration::from_millis(150)));
    let guard = lock.try_lock().unwrap();
    let (value, kept) = guard.keep_alive_while(|| {
        // Taken away behind the holder's back. Moved, then deleted: where
        // deleting an open file keeps its name until the last handle
        // closes (Windows on ReFS or SMB, wine), a delete alone leaves the
        // sidecar in place, and the lock with it.
        let moved = path.with_extension("moved");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::remove_file(&moved).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        "done"
    });
    assert_eq!(value, "done");
    let e = kept.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Lost, "{e}");
    assert!(!guard.still_held().unwrap());
}

/// A panicking `on_stale` hook leaves the lock usable: the panic reaches
/// the caller, nothing stays claimed, and the next acquisition (blocking
/// or async, same process) breaks the stale lock and takes it. This is
/// what lets `FileLock` and its guard be `UnwindSafe`.
#[test]
fn a_panicking_on_stale_hook_leaves_the_lock_usable() {
    let dir = tempdir();
    let path = left_by_a_dead_process(dir.path(), "panic.lock");
    let panicking = FileLock::with_options(
        &path,
        LockOptions::new()
            .soft()
            .on_stale(|_| panic!("hook failed")),
    );
    for attempt in 0..2 {
        // No `AssertUnwindSafe`: a `FileLock` is `UnwindSafe`.
        let caught =
            std::panic::catch_unwind(|| panicking.lock_blocking_timeout(Duration::from_secs(5)));
        assert!(
            caught.is_err(),
            "attempt {attempt}: the hook's panic was swallowed"
        );
        let caught = std::panic::catch_unwind(|| {
            futures::executor::block_on(panicking.lock_timeout(Duration::from_secs(5)))
        });
        assert!(
            caught.is_err(),
            "attempt {attempt}: the hook's panic was swallowed: {:?}",
            caught.map(|r| r.map(drop))
        );
    }
    assert_eq!(panicking.waiters(), 0);
    let worker = {
        let path = path.clone();
        std::thread::spawn(move || {
            let lock = FileLock::with_options(&path, LockOptions::new().soft());
            lock.lock_blocking_timeout(Duration::from_secs(5))
                .map(|g| g.token())
        })
    };
    let token = join_within(
        worker,
        Duration::from_secs(20),
        "stuck after the hook's panic",
    )
    .unwrap();
    assert!(token.unwrap() > 5);
}

/// A busy soft lock whose holder this host cannot check (another host)
/// says when it becomes breakable; one whose holder is checked alive, and
/// a live local holder, do not.
#[test]
fn a_remote_holder_says_when_it_becomes_breakable() {
    let dir = tempdir();
    let path = dir.path().join("remote.lock");
    let hour = Duration::from_secs(3600);
    let options = LockOptions::new().soft().stale_after(Some(hour));
    drop(
        FileLock::with_options(&path, options.clone())
            .try_lock()
            .unwrap(),
    );
    let remote = forge_record(&Forged {
        pid: 42,
        kind: "soft",
        host: "elsewhere.example",
        boot: None,
        start: None,
        acquired: now_secs(),
        ttl_secs: None,
        token: 9,
    });
    std::fs::write(&path, remote).unwrap();
    let e = FileLock::with_options(&path, options.clone())
        .try_lock()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    let left = e.breakable_in().expect("a remote holder ages out");
    assert!(
        left > hour - Duration::from_secs(120) && left <= hour,
        "{left:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("breakable as stale in 59m") || text.contains("breakable as stale in 1h 00m"),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();

    // A live holder here: never broken by age, so nothing to say.
    let held = FileLock::with_options(&path, options.clone())
        .try_lock()
        .unwrap();
    let e = FileLock::with_options(&path, options)
        .try_lock()
        .unwrap_err();
    assert_eq!(e.breakable_in(), None, "{e}");
    assert!(!e.to_string().contains("breakable"), "{e}");
    drop(held);
}
