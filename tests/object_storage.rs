//! Object-storage locks against real servers, each test on every store
//! whose bed is up: S3 (`.ci/s3-bed`: LocalStack) and GCS (`.ci/gcs-bed`:
//! fake-gcs-server), with real processes. The server's own conditional
//! writes first (so a server that lies is caught before lockyard is
//! blamed), then a 16-process race, an exact counter under SIGKILL with
//! increasing tokens, lease expiry and renewal, deadlines, dropped waits,
//! bad input and a server restart.

mod common;
mod harness;
mod raw_store;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockyard::object::ObjectLocks;
use lockyard::{ErrorKind, LockMode, Wait};

use common::{env_path, next_message, say, spawn_child, tempdir, Children, ROLE_VAR};
use harness::{case, Case, AZURE, AZURE_BED, GCS, GCS_BED, S3, S3_BED};

const ENTRY: &str = "child_main";

/// One kind of store under test: the variable naming its test bucket,
/// and its bed's script and directory (for a restart).
struct Store {
    url_var: &'static str,
    bed_script: &'static str,
    bed_var: &'static str,
}

const S3_STORE: Store = Store {
    url_var: "LOCKYARD_TEST_S3",
    bed_script: ".ci/s3-bed",
    bed_var: "LOCKYARD_TEST_S3_BED",
};

const GCS_STORE: Store = Store {
    url_var: "LOCKYARD_TEST_GCS",
    bed_script: ".ci/gcs-bed",
    bed_var: "LOCKYARD_TEST_GCS_BED",
};

const AZURE_STORE: Store = Store {
    url_var: "LOCKYARD_TEST_AZURE",
    bed_script: ".ci/azure-bed",
    bed_var: "LOCKYARD_TEST_AZURE_BED",
};

/// Each test once per store: `<test>_on_s3`, `<test>_on_gcs`,
/// `<test>_on_azure`.
macro_rules! on_each_store {
    ($($test:ident $(+ $extra:ident)?),* $(,)?) => {
        vec![$(
            Case {
                name: concat!(stringify!($test), "_on_s3"),
                run: || $test(&S3_STORE),
                needs: &[S3 $(, on_each_store!(@s3 $extra))?],
                entry: false,
            },
            Case {
                name: concat!(stringify!($test), "_on_gcs"),
                run: || $test(&GCS_STORE),
                needs: &[GCS $(, on_each_store!(@gcs $extra))?],
                entry: false,
            },
            Case {
                name: concat!(stringify!($test), "_on_azure"),
                run: || $test(&AZURE_STORE),
                needs: &[AZURE $(, on_each_store!(@azure $extra))?],
                entry: false,
            },
        )*]
    };
    (@s3 bed) => { S3_BED };
    (@gcs bed) => { GCS_BED };
    (@azure bed) => { AZURE_BED };
}

fn main() {
    let mut cases: Vec<Case> = vec![case!(entry child_main)];
    cases.extend(on_each_store!(
        the_server_honours_conditional_writes,
        sixteen_processes_race_with_one_winner_per_round,
        a_counter_stays_exact_under_sigkill_of_holders,
        a_lapsed_lease_is_taken_over_after_its_ttl_and_its_holder_told,
        keep_alive_keeps_a_lease_past_its_ttl,
        a_deadline_bounds_every_wait,
        dropped_waits_leave_no_lock_behind,
        bad_input_gets_typed_errors_naming_the_lock,
        list_says_who_holds_what,
        once_runs_the_work_once_across_processes,
        once_records_nothing_for_a_holder_that_lost_the_lock,
    ));
    cases.push(case!(wrong_s3_credentials_are_refused_by_name, [S3]));
    cases.push(case!(a_wrong_azure_key_is_refused_by_name, [AZURE]));
    cases.extend(on_each_store!(
        a_silent_or_closed_endpoint_fails_within_the_deadline
    ));
    // Last: they restart the servers.
    cases.extend(on_each_store!(tokens_go_up_across_a_server_restart + bed));
    harness::main_one_at_a_time(cases);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The store's bucket URL with a prefix no other test (or run) uses.
fn fresh(store: &Store, test: &str) -> String {
    format!(
        "{}/{test}-{}-{}",
        env(store.url_var),
        std::process::id(),
        fastrand::u32(..)
    )
}

/// The object key prefix of a `fresh` URL: what follows the bucket (on
/// Azure, the account and the container).
fn key_prefix(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.split_once('/').unwrap().1;
    match scheme {
        "az" => rest.split_once('/').unwrap().1.to_owned(),
        _ => rest.to_owned(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The entry point of child processes; does nothing unless started as one.
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let mut locks = ObjectLocks::from_url(&env("URL")).unwrap();
    if let Ok(ms) = std::env::var("LEASE_MS") {
        locks = locks.lease(Duration::from_millis(ms.parse().unwrap()));
    }
    match role.as_str() {
        // ROUNDS rounds: at START_MS + round × 40 ms (wall clock, the same
        // for every child), one try at the lock "round/<round>"; say who
        // won. Winners keep their guards to the end.
        "race" => {
            let rounds: u64 = env("ROUNDS").parse().unwrap();
            let start: u64 = env("START_MS").parse().unwrap();
            let mut kept = Vec::new();
            let mut won = Vec::new();
            for round in 0..rounds {
                let at = start + round * 40;
                let now = now_ms();
                if at > now {
                    std::thread::sleep(Duration::from_millis(at - now));
                }
                let lock = locks.lock_named(&format!("round/{round}")).unwrap();
                match lock.try_lock() {
                    Ok(guard) => {
                        won.push(round.to_string());
                        kept.push(guard);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
            say(&format!("won {}", won.join(",")));
            // Held until every process has raced every round: a process
            // that starts late (16 starting at once under wine can take
            // longer than the 3 s head start) must find each round's lock
            // still held, not freed by a winner that already finished.
            common::wait_for_file(&env_path("RELEASE"));
            drop(kept);
        }
        // Append the next number and the token to LOG under the lock,
        // ROUNDS times.
        "count" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let log = env_path("LOG");
            let rounds: usize = env("ROUNDS").parse().unwrap();
            for _ in 0..rounds {
                let guard = lock.lock_blocking_timeout(Duration::from_secs(60)).unwrap();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let next = text.lines().count() + 1;
                std::thread::sleep(Duration::from_micros(fastrand::u64(0..2000)));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)
                    .unwrap();
                f.write_all(format!("{next} {}\n", guard.token().unwrap()).as_bytes())
                    .unwrap();
                drop(f);
                guard.unlock().unwrap();
            }
            say("done");
        }
        // Take the lock, say its token, then neither renew nor release:
        // after SLEEP_MS, say whether the guard knows it lost the lock.
        "stall" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let guard = lock.try_lock().unwrap();
            say(&format!("locked {}", guard.token().unwrap()));
            let sleep: u64 = env("SLEEP_MS").parse().unwrap();
            std::thread::sleep(Duration::from_millis(sleep));
            let still = guard.still_held().unwrap();
            let renewed = guard.refresh().map_err(|e| e.kind());
            let lost = futures_lite::future::block_on(futures_lite::future::or(
                async { Some(guard.lost(Duration::from_millis(10)).await.kind()) },
                async {
                    async_io::Timer::after(Duration::from_secs(5)).await;
                    None
                },
            ));
            let unlocked = guard.unlock().map_err(|e| e.kind());
            say(&format!(
                "still_held {still} refresh {renewed:?} lost {lost:?} unlock {unlocked:?}"
            ));
        }
        // Take the lock and keep it alive for HOLD_MS, then release.
        "keep" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let guard = lock.try_lock().unwrap();
            say("locked");
            let hold: u64 = env("HOLD_MS").parse().unwrap();
            let kept = futures_lite::future::block_on(futures_lite::future::or(
                async { guard.keep_alive().await.map(|_| "ended") },
                async {
                    async_io::Timer::after(Duration::from_millis(hold)).await;
                    Ok("kept")
                },
            ));
            let kept = kept.map_err(|e| e.kind());
            say(&format!("{kept:?} {}", guard.still_held().unwrap()));
            let unlocked = guard.unlock();
            if kept.is_ok() {
                unlocked.unwrap();
            }
        }
        // Take and release the lock again and again for RUN_MS: held 100 to
        // 300 ms, then free 0 to 60 ms.
        "cycle" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let run: u64 = env("RUN_MS").parse().unwrap();
            let since = Instant::now();
            say("started");
            while since.elapsed() < Duration::from_millis(run) {
                let guard = lock.lock_blocking_timeout(Duration::from_secs(30)).unwrap();
                std::thread::sleep(Duration::from_millis(fastrand::u64(100..300)));
                guard.unlock().unwrap();
                std::thread::sleep(Duration::from_millis(fastrand::u64(0..60)));
            }
            say("done");
        }
        // A wait of DEADLINE_MS for the lock NAME: say how it ended and
        // after how long.
        "deadline" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let deadline: u64 = env("DEADLINE_MS").parse().unwrap();
            let since = Instant::now();
            let e = lock
                .lock_blocking_timeout(Duration::from_millis(deadline))
                .unwrap_err();
            say(&format!("{:?} {}", e.kind(), since.elapsed().as_millis()));
        }
        // Run-once with KEY on NAME: the work appends this PID to LOG,
        // says "running", sleeps SLEEP_MS; say how it ended.
        "once" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            let log = env_path("LOG");
            let sleep: u64 = std::env::var("SLEEP_MS").map_or(0, |v| v.parse().unwrap());
            let outcome = lock.once_keyed(&env("KEY"), || {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&log)?;
                f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
                say("running");
                std::thread::sleep(Duration::from_millis(sleep));
                Ok::<_, std::io::Error>(())
            });
            match outcome {
                Ok(o) if o.ran() => say("ran"),
                Ok(_) => say("already"),
                Err(e) => match e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<lockyard::Error>())
                {
                    Some(l) => say(&format!("{:?}", l.kind())),
                    None => say(&format!("failed {e}")),
                },
            }
        }
        // One try at the lock NAME: say how it went.
        "try" => {
            let lock = locks.lock_named(&env("NAME")).unwrap();
            match lock.try_lock() {
                Ok(guard) => {
                    guard.unlock().unwrap();
                    say("ok");
                }
                Err(e) => {
                    let cause = std::error::Error::source(&e)
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    say(&format!("{:?} {e}: {cause}", e.kind()));
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn child(role: &str, url: &str, extra: &[(&str, &str)]) -> common::Kid {
    let mut args = vec![("URL", url)];
    args.extend_from_slice(extra);
    spawn_child(ENTRY, role, &args)
}

fn raw(store: &Store) -> Arc<dyn raw_store::Raw> {
    match store.url_var {
        "LOCKYARD_TEST_S3" => Arc::new(raw_store::RawS3::new()),
        "LOCKYARD_TEST_GCS" => Arc::new(raw_store::RawGcs::new()),
        _ => Arc::new(raw_store::RawAzure::new()),
    }
}

/// The mechanism alone, before lockyard is trusted with it: 16 threads
/// race conditional creates and swaps (S3: `If-None-Match: *`, `If-Match`;
/// GCS: `ifGenerationMatch`), 50 rounds each; exactly one write may
/// succeed per round, and the object must hold the winner's body.
fn the_server_honours_conditional_writes(store: &Store) {
    const WRITERS: usize = 16;
    const ROUNDS: usize = 50;
    let raw = raw(store);
    let prefix = format!("conformance-{}-{}", std::process::id(), fastrand::u32(..));
    for op in ["create", "swap"] {
        for round in 0..ROUNDS {
            let key = format!("{prefix}/{op}/{round}");
            let etag = if op == "swap" {
                assert_eq!(raw.put(&key, b"start", None), Ok(true));
                raw.get(&key).1
            } else {
                String::new()
            };
            let barrier = Arc::new(Barrier::new(WRITERS));
            let threads: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (raw, barrier, key, etag) = (
                        Arc::clone(&raw),
                        Arc::clone(&barrier),
                        key.clone(),
                        etag.clone(),
                    );
                    std::thread::spawn(move || {
                        let body = format!("writer {w}");
                        barrier.wait();
                        let version = (!etag.is_empty()).then_some(etag.as_str());
                        (w, raw.put(&key, body.as_bytes(), version))
                    })
                })
                .collect();
            let results: Vec<(usize, Result<bool, u16>)> =
                threads.into_iter().map(|t| t.join().unwrap()).collect();
            let winners: Vec<usize> = results
                .iter()
                .filter(|(_, s)| *s == Ok(true))
                .map(|(w, _)| *w)
                .collect();
            assert_eq!(winners.len(), 1, "{op} round {round}: {results:?}");
            for (_, s) in &results {
                assert!(s.is_ok(), "{op} round {round}: {results:?}");
            }
            let (body, _) = raw.get(&key);
            assert_eq!(body, format!("writer {}", winners[0]).into_bytes());
        }
    }
    eprintln!("{ROUNDS} create and {ROUNDS} swap rounds of {WRITERS} writers: one winner each");
}

/// 16 processes try the same lock at the same instant, round after round
/// (a fresh lock object each time: the create race): exactly one wins
/// each round. Then the same on objects that exist, free (the swap race).
fn sixteen_processes_race_with_one_winner_per_round(store: &Store) {
    const PROCESSES: usize = 16;
    const ROUNDS: u64 = 50;
    for phase in ["created", "existing"] {
        let url = fresh(store, "race");
        if phase == "existing" {
            let locks = ObjectLocks::from_url(&url).unwrap();
            for round in 0..ROUNDS {
                let lock = locks.lock_named(&format!("round/{round}")).unwrap();
                lock.try_lock().unwrap().unlock().unwrap();
            }
        }
        // Late enough for every child to be up, usually.
        let start = (now_ms() + 3000).to_string();
        let rounds = ROUNDS.to_string();
        let signals = tempdir();
        let release = signals.path().join("release");
        let release_s = release.to_str().unwrap();
        let mut kids = Children(
            (0..PROCESSES)
                .map(|_| {
                    let env = [
                        ("ROUNDS", rounds.as_str()),
                        ("START_MS", start.as_str()),
                        ("RELEASE", release_s),
                    ];
                    child("race", &url, &env)
                })
                .collect(),
        );
        let mut wins = vec![0; ROUNDS as usize];
        for k in kids.0.iter_mut() {
            let said = next_message(k).expect("a child's result");
            let won = said.strip_prefix("won ").expect("won ...");
            for round in won.split(',').filter(|r| !r.is_empty()) {
                wins[round.parse::<usize>().unwrap()] += 1;
            }
        }
        std::fs::write(&release, "").unwrap();
        for k in kids.0.iter_mut() {
            assert!(k.wait().unwrap().success());
        }
        assert!(
            wins.iter().all(|&w| w == 1),
            "{phase}: winners per round {wins:?}"
        );
        eprintln!("{phase}: {ROUNDS} rounds of {PROCESSES} processes, one winner each");
    }
}

/// Four processes append to one log under the lock while the parent
/// SIGKILLs two others mid-run (their locks wait out a 1 s lease): the log
/// counts 1, 2, 3, ... with no gap or repeat, and tokens increase line by
/// line. On LocalStack a kill that lands between a PUT's head and its body
/// leaves an empty lock object (the emulator keeps a cut-short body, AWS
/// does not; see `.ci/s3-bed`), and the survivors then fail on it as not a
/// lockyard object.
fn a_counter_stays_exact_under_sigkill_of_holders(store: &Store) {
    let url = fresh(store, "counter");
    let dir = tempdir();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap().to_owned();
    let mut kids = Children(Vec::new());
    for i in 0..6 {
        let rounds = if i < 4 { "25" } else { "400" };
        kids.0.push(child(
            "count",
            &url,
            &[
                ("NAME", "counter"),
                ("LOG", &log_s),
                ("ROUNDS", rounds),
                ("LEASE_MS", "1000"),
            ],
        ));
    }
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    for k in kids.0.iter_mut().skip(4) {
        k.kill().unwrap();
        k.wait().unwrap();
    }
    for k in kids.0.iter_mut().take(4) {
        assert_eq!(next_message(k).as_deref(), Some("done"));
        assert!(k.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut last_token = 0;
    let mut n = 0;
    for line in text.lines() {
        n += 1;
        let (count, token) = line.split_once(' ').expect("a whole line");
        assert_eq!(count.parse::<usize>().unwrap(), n, "log:\n{text}");
        let token: u64 = token.parse().unwrap();
        assert!(token > last_token, "token {token} after {last_token}");
        last_token = token;
    }
    assert!(n >= 100, "only {n} lines");
    eprintln!(
        "{n} increments in {:?}, 2 holders killed",
        started.elapsed()
    );
}

/// A holder that stops renewing is taken over only after its TTL, the new
/// token is higher, and the old guard learns it lost the lock.
fn a_lapsed_lease_is_taken_over_after_its_ttl_and_its_holder_told(store: &Store) {
    let url = fresh(store, "lapse");
    let mut holder = child(
        "stall",
        &url,
        &[("NAME", "l"), ("LEASE_MS", "1500"), ("SLEEP_MS", "4000")],
    );
    let said = next_message(&mut holder).unwrap();
    let old: u64 = said.strip_prefix("locked ").unwrap().parse().unwrap();
    let since = Instant::now();
    let locks = ObjectLocks::from_url(&url).unwrap();
    let lock = locks.lock_named("l").unwrap();
    let e = lock.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let guard = lock.lock_blocking_timeout(Duration::from_secs(10)).unwrap();
    let took = since.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "taken over after {took:?}"
    );
    assert!(guard.token().unwrap() > old);
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("still_held false refresh Err(Lost) lost Some(Lost) unlock Err(Lost)")
    );
    assert!(holder.wait().unwrap().success());
    assert!(guard.still_held().unwrap());
    eprintln!("a 1.5 s lease taken over after {took:?}");
}

/// A holder that keeps its lease alive keeps the lock for three TTLs.
fn keep_alive_keeps_a_lease_past_its_ttl(store: &Store) {
    let url = fresh(store, "keep");
    let mut holder = child(
        "keep",
        &url,
        &[("NAME", "k"), ("LEASE_MS", "600"), ("HOLD_MS", "2000")],
    );
    assert_eq!(next_message(&mut holder).as_deref(), Some("locked"));
    let lock = ObjectLocks::from_url(&url)
        .unwrap()
        .lock_named("k")
        .unwrap();
    let since = Instant::now();
    while since.elapsed() < Duration::from_millis(1800) {
        let e = lock.try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("Ok(\"kept\") true")
    );
    assert!(holder.wait().unwrap().success());
    let guard = lock.lock_blocking_timeout(Duration::from_secs(5)).unwrap();
    drop(guard);
}

/// Waits end at their deadline, async and blocking, and leave the lock
/// to its holder.
fn a_deadline_bounds_every_wait(store: &Store) {
    let url = fresh(store, "deadline");
    let locks = ObjectLocks::from_url(&url).unwrap();
    let mut holder = child("keep", &url, &[("NAME", "d"), ("HOLD_MS", "4000")]);
    assert_eq!(next_message(&mut holder).as_deref(), Some("locked"));
    let lock = locks.lock_named("d").unwrap();
    for _ in 0..3 {
        let since = Instant::now();
        let e = futures_lite::future::block_on(lock.lock_timeout(Duration::from_millis(300)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(
            since.elapsed() < Duration::from_millis(1500),
            "{:?}",
            since.elapsed()
        );
        let e = lock
            .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_millis(300)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        assert!(e.holder().is_some(), "the error names the holder: {e:?}");
    }
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("Ok(\"kept\") true")
    );
    assert!(holder.wait().unwrap().success());
}

/// Waits dropped at random times while another process takes and
/// releases the lock: a wait whose last request took the lock after the
/// drop gives it back, so this process never holds it afterwards.
fn dropped_waits_leave_no_lock_behind(store: &Store) {
    let url = fresh(store, "drop");
    let mut cycler = child("cycle", &url, &[("NAME", "c"), ("RUN_MS", "12000")]);
    assert_eq!(next_message(&mut cycler).as_deref(), Some("started"));
    let lock = ObjectLocks::from_url(&url)
        .unwrap()
        .lock_named("c")
        .unwrap();
    let me = std::process::id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut granted, mut dropped) = (0, 0);
    for round in 0..40 {
        // Start each round while the other process holds it (a round that
        // got the lock and let it go could otherwise take it again at once,
        // before the other process's next poll, and never wait).
        let patience = Instant::now() + Duration::from_secs(5);
        while lock.holder().unwrap().is_none() {
            assert!(
                Instant::now() < patience,
                "round {round}: the cycler never took it"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let wait = rt.spawn(lock.lock());
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..150)));
        wait.abort();
        match rt.block_on(wait) {
            Ok(Ok(guard)) => {
                granted += 1;
                guard.unlock().unwrap();
            }
            Ok(Err(e)) => panic!("round {round}: {e}"),
            Err(_) => dropped += 1,
        }
        // Whatever a dropped wait took is given back once its request ends.
        let patience = Instant::now() + Duration::from_secs(3);
        while lock.holder().unwrap().is_some_and(|h| h.pid() == me) {
            assert!(
                Instant::now() < patience,
                "round {round}: this process still holds it"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(lock.waiters(), 0, "round {round}");
    }
    assert_eq!(next_message(&mut cycler).as_deref(), Some("done"));
    assert!(cycler.wait().unwrap().success());
    assert!(
        dropped > 5,
        "the drops never hit a wait ({granted} granted)"
    );
    eprintln!("40 rounds: {granted} granted before the drop, {dropped} dropped");
}

/// Bad configuration and names are typed errors; a missing bucket and an
/// unreachable endpoint are errors naming the lock, within the deadline.
fn bad_input_gets_typed_errors_naming_the_lock(store: &Store) {
    for url in ["s3://", "gs://", "az://a/b", "bucket/x", "http://host/x"] {
        let e = ObjectLocks::from_url(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{url}: {e}");
    }
    let locks = ObjectLocks::from_url(&fresh(store, "bad")).unwrap();
    assert_eq!(
        locks.lock_named("").unwrap_err().kind(),
        ErrorKind::InvalidPath
    );
    let e = locks.lock_named(&"x".repeat(2000)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert_eq!(e.path(), None);
    // Hostile names are names like any other.
    for name in [
        "..",
        "../../etc/passwd",
        "a?b#c",
        "x\ny",
        "%2E%2E",
        "ünï/cödé",
    ] {
        let lock = locks.lock_named(name).unwrap();
        let guard = lock.try_lock().unwrap();
        assert_eq!(
            lock.holder().unwrap().unwrap().token(),
            guard.token().unwrap()
        );
        guard.unlock().unwrap();
    }
    // A bucket (or container) that does not exist.
    let home = env(store.url_var);
    let (parent, _) = home.rsplit_once('/').unwrap();
    let missing = format!("{parent}/nosuch{}", fastrand::u32(..));
    let lock = ObjectLocks::from_url(&missing)
        .unwrap()
        .lock_named("x")
        .unwrap();
    let e = lock.try_lock().unwrap_err();
    assert_eq!(e.name(), format!("{missing}#x").as_str(), "{e}");
    let cause = std::error::Error::source(&e)
        .map(|c| c.to_string())
        .unwrap_or_default();
    assert!(
        cause.contains("NoSuchBucket") || cause.contains("ContainerNotFound"),
        "{e}: {cause}"
    );
    assert!(!cause.contains("X-Amz-Signature"), "{cause}");
    // A foreign object where a lock object would be: refused, unchanged.
    let raw = raw(store);
    let url = fresh(store, "foreign");
    let prefix = key_prefix(&url);
    assert_eq!(
        raw.put(&format!("{prefix}/data.lock"), b"precious", None),
        Ok(true)
    );
    let lock = ObjectLocks::from_url(&url)
        .unwrap()
        .lock_named("data")
        .unwrap();
    for e in [
        lock.try_lock().unwrap_err(),
        lock.lock_blocking_timeout(Duration::from_millis(500))
            .unwrap_err(),
    ] {
        let cause = std::error::Error::source(&e)
            .map(|c| c.to_string())
            .unwrap_or_default();
        assert!(cause.contains("not a lockyard lock object"), "{e}: {cause}");
    }
    assert_eq!(raw.get(&format!("{prefix}/data.lock")).0, b"precious");
    // Shared holds are not offered.
    let e = lock.try_lock_shared().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ExclusiveOnly, "{e}");
}

/// A wrong secret key is refused by the server (which checks signatures
/// here, as AWS does): an error naming the lock and the server's reason,
/// and never the secret.
fn wrong_s3_credentials_are_refused_by_name() {
    let url = fresh(&S3_STORE, "creds");
    let mut kid = spawn_child(
        ENTRY,
        "try",
        &[
            ("URL", &url),
            ("NAME", "n"),
            ("AWS_SECRET_ACCESS_KEY", "not-the-s3cret"),
        ],
    );
    let said = next_message(&mut kid).unwrap();
    assert!(kid.wait().unwrap().success());
    assert!(said.starts_with("Io "), "{said}");
    assert!(said.contains(&format!("{url}#n")), "{said}");
    assert!(
        said.contains("403") && said.contains("SignatureDoesNotMatch"),
        "{said}"
    );
    assert!(!said.contains("not-the-s3cret"), "{said}");
    // The right credentials work.
    let mut kid = spawn_child(ENTRY, "try", &[("URL", &url), ("NAME", "n")]);
    assert_eq!(next_message(&mut kid).as_deref(), Some("ok"));
}

/// A wrong account key is refused by Azurite (which checks SharedKey
/// signatures): an error naming the lock and the reason, and no key.
fn a_wrong_azure_key_is_refused_by_name() {
    let url = fresh(&AZURE_STORE, "creds");
    let good = env("AZURE_STORAGE_CONNECTION_STRING");
    // Another key, well-formed (base64), of the same length.
    let wrong_key =
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let wrong: String = good
        .split(';')
        .map(|p| match p.strip_prefix("AccountKey=") {
            Some(_) => format!("AccountKey={wrong_key}"),
            None => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";");
    let mut kid = spawn_child(
        ENTRY,
        "try",
        &[
            ("URL", &url),
            ("NAME", "n"),
            ("AZURE_STORAGE_CONNECTION_STRING", &wrong),
        ],
    );
    let said = next_message(&mut kid).unwrap();
    assert!(kid.wait().unwrap().success());
    assert!(said.starts_with("Io "), "{said}");
    assert!(said.contains(&format!("{url}#n")), "{said}");
    assert!(said.contains("403"), "{said}");
    assert!(!said.contains(wrong_key), "{said}");
    let mut kid = spawn_child(ENTRY, "try", &[("URL", &url), ("NAME", "n")]);
    assert_eq!(next_message(&mut kid).as_deref(), Some("ok"));
}

/// The environment that points `store`'s clients at `endpoint` instead.
fn pointed_at(store: &Store, endpoint: &str) -> Vec<(&'static str, String)> {
    match store.url_var {
        "LOCKYARD_TEST_S3" => vec![("AWS_ENDPOINT_URL", endpoint.to_owned())],
        "LOCKYARD_TEST_GCS" => vec![("STORAGE_EMULATOR_HOST", endpoint.to_owned())],
        _ => {
            let good = env("AZURE_STORAGE_CONNECTION_STRING");
            let moved: Vec<String> = good
                .split(';')
                .map(|p| match p.strip_prefix("BlobEndpoint=") {
                    Some(_) => format!("BlobEndpoint={endpoint}/devstoreaccount1"),
                    None => p.to_owned(),
                })
                .collect();
            vec![("AZURE_STORAGE_CONNECTION_STRING", moved.join(";"))]
        }
    }
}

/// A store that accepts connections and never answers, and one whose port
/// refuses them: a wait with a deadline ends at its deadline (TimedOut),
/// not at the client's 20 s request limit.
fn a_silent_or_closed_endpoint_fails_within_the_deadline(store: &Store) {
    let url = fresh(store, "silent");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_at = format!("http://{}", silent.local_addr().unwrap());
    // Accepted connections are kept open, unanswered, until the test ends.
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keeper = Arc::clone(&kept);
    std::thread::spawn(move || {
        for conn in silent.incoming().flatten() {
            keeper.lock().unwrap().push(conn);
        }
    });
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for endpoint in [&silent_at, &closed] {
        let env_vars = pointed_at(store, endpoint);
        let mut args: Vec<(&str, &str)> =
            vec![("URL", &url), ("NAME", "n"), ("DEADLINE_MS", "700")];
        args.extend(env_vars.iter().map(|(k, v)| (*k, v.as_str())));
        let mut kid = spawn_child(ENTRY, "deadline", &args);
        let said = next_message(&mut kid).unwrap();
        assert!(kid.wait().unwrap().success());
        let (kind, ms) = said.split_once(' ').unwrap();
        let ms: u64 = ms.parse().unwrap();
        let what = if endpoint == &silent_at {
            "silent"
        } else {
            "closed"
        };
        eprintln!("a {what} endpoint: {kind} after {ms} ms (deadline 700 ms)");
        if endpoint == &silent_at {
            assert_eq!(kind, "TimedOut", "{endpoint}: {said}");
            assert!((700..2500).contains(&ms), "{endpoint}: after {ms} ms");
        } else {
            // Refused at once: an error, or the deadline if the client
            // retried until then; never later.
            assert!(ms < 2500, "{endpoint}: after {ms} ms ({kind})");
        }
    }
    drop(kept);
}

/// The server restarts and forgets every object (both test servers keep
/// them in memory): a holder learns it lost its lock, and the next holder's token
/// is still above every earlier one.
fn tokens_go_up_across_a_server_restart(store: &Store) {
    let url = fresh(store, "restart");
    let locks = ObjectLocks::from_url(&url).unwrap();
    let lock = locks.lock_named("r").unwrap();
    let first = lock.try_lock().unwrap();
    let before = first.token().unwrap();
    first.unlock().unwrap();
    let mut holder = child(
        "keep",
        &url,
        &[("NAME", "r"), ("HOLD_MS", "60000"), ("LEASE_MS", "3000")],
    );
    assert_eq!(next_message(&mut holder).as_deref(), Some("locked"));
    let held = lock.holder().unwrap().expect("held");
    assert!(held.token() > before);
    let bed = env(store.bed_var);
    let restarted = std::process::Command::new(store.bed_script)
        .args(["restart", &bed])
        .status()
        .unwrap();
    assert!(restarted.success());
    // The holder's keep_alive finds its lock object gone: lost.
    assert_eq!(
        next_message(&mut holder).as_deref(),
        Some("Err(Lost) false")
    );
    assert!(holder.wait().is_ok());
    let after = lock.try_lock().unwrap();
    assert!(
        after.token().unwrap() > held.token(),
        "{:?} after {}",
        after.token(),
        held.token()
    );
    after.unlock().unwrap();
}

/// Six processes call run-once at the same time: the work runs once, the
/// others wait and find it done; a new key runs it again.
fn once_runs_the_work_once_across_processes(store: &Store) {
    let url = fresh(store, "once");
    let dir = tempdir();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap().to_owned();
    let args = [
        ("NAME", "migrate"),
        ("KEY", "v1"),
        ("LOG", log_s.as_str()),
        ("SLEEP_MS", "300"),
    ];
    let mut kids = Children((0..6).map(|_| child("once", &url, &args)).collect());
    let mut said = Vec::new();
    for k in kids.0.iter_mut() {
        let mut last = next_message(k).unwrap();
        if last == "running" {
            last = next_message(k).unwrap();
        }
        said.push(last);
        assert!(k.wait().unwrap().success());
    }
    said.sort();
    assert_eq!(
        said,
        ["already", "already", "already", "already", "already", "ran"]
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    let mut again = child(
        "once",
        &url,
        &[("NAME", "migrate"), ("KEY", "v2"), ("LOG", &log_s)],
    );
    assert_eq!(next_message(&mut again).as_deref(), Some("running"));
    assert_eq!(next_message(&mut again).as_deref(), Some("ran"));
}

/// A holder whose lease lapses while its work runs is overtaken: it
/// records nothing (`Lost`), and the next holder runs the work and
/// records it.
fn once_records_nothing_for_a_holder_that_lost_the_lock(store: &Store) {
    let url = fresh(store, "once-lost");
    let dir = tempdir();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap().to_owned();
    let mut slow = child(
        "once",
        &url,
        &[
            ("NAME", "job"),
            ("KEY", "k"),
            ("LOG", &log_s),
            ("SLEEP_MS", "3000"),
            ("LEASE_MS", "800"),
        ],
    );
    assert_eq!(next_message(&mut slow).as_deref(), Some("running"));
    let mut next = child(
        "once",
        &url,
        &[
            ("NAME", "job"),
            ("KEY", "k"),
            ("LOG", &log_s),
            ("LEASE_MS", "800"),
        ],
    );
    assert_eq!(next_message(&mut next).as_deref(), Some("running"));
    assert_eq!(next_message(&mut next).as_deref(), Some("ran"));
    assert_eq!(next_message(&mut slow).as_deref(), Some("Lost"));
    assert!(slow.wait().unwrap().success() && next.wait().unwrap().success());
    let mut late = child(
        "once",
        &url,
        &[("NAME", "job"), ("KEY", "k"), ("LOG", &log_s)],
    );
    assert_eq!(next_message(&mut late).as_deref(), Some("already"));
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
}

/// `list` names every held lock under the prefix with its holder, and not
/// the free ones.
fn list_says_who_holds_what(store: &Store) {
    let url = fresh(store, "list");
    let locks = ObjectLocks::from_url(&url).unwrap().owner("lister");
    let a = locks.lock_named("jobs/a").unwrap().try_lock().unwrap();
    let b = locks.lock_named("jobs/b c").unwrap().try_lock().unwrap();
    locks
        .lock_named("free")
        .unwrap()
        .try_lock()
        .unwrap()
        .unlock()
        .unwrap();
    let listed = locks.list().unwrap();
    let mut names: Vec<&str> = listed.iter().map(|i| i.name()).collect();
    names.sort();
    assert_eq!(names, ["jobs/a", "jobs/b c"]);
    for info in &listed {
        assert_eq!(info.holder().and_then(|h| h.owner()), Some("lister"));
    }
    drop((a, b));
}
