//! PostgreSQL locks against a real server (`.ci/postgres-bed`), with real
//! processes: exclusion under SIGKILL, shared and exclusive, cancellation
//! safety, fencing tokens, lost signals, one server-side waiter per
//! process, and bad input.

mod common;
mod harness;
mod pg;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockyard::postgres::PgLocks;
use lockyard::{ErrorKind, LockMode, Wait};

use common::{env_path, next_message, say, spawn_child, tempdir, Children, ROLE_VAR};
#[cfg(not(target_os = "macos"))]
use harness::POSTGRES_TLS;
use harness::{case, POSTGRES};
use pg::{fresh_table, locks, server, Raw};

const ENTRY: &str = "child_main";

fn main() {
    let mut cases = vec![case!(entry child_main)];
    cases.extend([
        case!(a_counter_stays_exact_under_sigkill_of_holders, [POSTGRES]),
        case!(
            shared_holders_coexist_and_exclude_writers_across_processes,
            [POSTGRES]
        ),
        case!(dropped_waits_never_leave_a_ghost_lock, [POSTGRES]),
        case!(
            dropped_waits_without_a_waiting_session_leave_no_lock,
            [POSTGRES]
        ),
        case!(
            waits_beyond_the_waiting_sessions_share_the_holds_sessions,
            [POSTGRES]
        ),
        case!(timed_out_waits_leave_nothing_behind, [POSTGRES]),
        case!(abandoned_attempts_leave_no_lock_behind, [POSTGRES]),
        case!(a_release_reaches_the_server_on_its_own, [POSTGRES]),
        case!(
            tasks_on_one_shared_session_take_turns_and_exclude,
            [POSTGRES]
        ),
        case!(a_thousand_waiters_use_one_waiting_session, [POSTGRES]),
        case!(a_terminated_session_is_a_lost_lock, [POSTGRES]),
        case!(a_termination_during_a_query_is_lost_not_io, [POSTGRES]),
        case!(a_deadline_bounds_connecting, []),
        case!(
            an_abandoned_wait_whose_statement_arrives_late_leaves_no_waiter,
            [POSTGRES]
        ),
        case!(
            keep_alive_renews_a_lease_and_its_absence_loses_it,
            [POSTGRES]
        ),
        case!(holder_and_list_say_who_holds_what, [POSTGRES]),
        case!(ten_thousand_holds_share_the_pools_sessions, [POSTGRES]),
        case!(
            a_hundred_processes_hold_a_hundred_names_each_on_a_session_each,
            [POSTGRES]
        ),
        case!(
            a_terminated_shared_session_loses_every_hold_on_it,
            [POSTGRES]
        ),
        case!(
            a_future_never_waits_on_the_server_on_its_executor_thread,
            [POSTGRES]
        ),
        case!(
            a_future_hears_its_grant_without_a_pool_thread_once_a_session_is_idle,
            [POSTGRES]
        ),
        case!(
            bad_input_gets_typed_errors_naming_server_and_lock,
            [POSTGRES]
        ),
        case!(once_runs_the_work_once_across_processes, [POSTGRES]),
        case!(
            once_records_nothing_for_a_holder_that_lost_the_lock,
            [POSTGRES]
        ),
        case!(once_async_runs_once_among_tasks, [POSTGRES]),
    ]);
    #[cfg(unix)]
    cases.push(case!(
        a_stopped_holder_is_taken_over_after_its_lease,
        [POSTGRES]
    ));
    #[cfg(not(target_os = "macos"))]
    cases.push(case!(
        tls_through_the_users_connector,
        [POSTGRES, POSTGRES_TLS]
    ));
    harness::main_one_at_a_time(cases);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The entry point of child processes; does nothing unless started as one.
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let mut pg = locks(&env("URL"), &env("TABLE"));
    if let Ok(ms) = std::env::var("LEASE_MS") {
        pg = pg.lease(Duration::from_millis(ms.parse().unwrap()));
    }
    let lock = pg.lock_named(&env("NAME")).unwrap();
    match role.as_str() {
        // Append the next number to the log under the lock, ROUNDS times.
        "count" => {
            let log = env_path("LOG");
            let rounds: usize = env("ROUNDS").parse().unwrap();
            for round in 0..rounds {
                // Every way in: a blocking wait, and a future's first
                // attempt driven by its own polls, with and without a
                // deadline.
                let guard = match round % 3 {
                    0 => lock.lock_blocking(),
                    1 => futures_lite::future::block_on(lock.lock()),
                    _ => futures_lite::future::block_on(lock.lock_timeout(Duration::from_secs(60))),
                }
                .unwrap();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let next = text.lines().count() + 1;
                std::thread::sleep(Duration::from_micros(fastrand::u64(0..300)));
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
        // Hold COUNT names (NAME/0, NAME/1, ...) at once over SESSIONS
        // sessions, alternating exclusive and shared; say so; hold them
        // for a minute (the parent kills it sooner).
        "hold_many" => {
            let sessions: usize = env("SESSIONS").parse().unwrap();
            let pg = pg.sessions(sessions);
            let count: usize = env("COUNT").parse().unwrap();
            let name = env("NAME");
            let guards: Vec<_> = (0..count)
                .map(|i| {
                    let lock = pg.lock_named(&format!("{name}/{i}")).unwrap();
                    let mode = if i % 2 == 0 {
                        LockMode::Exclusive
                    } else {
                        LockMode::Shared
                    };
                    lock.acquire_blocking(mode, Wait::For(Duration::from_secs(30)))
                        .unwrap()
                })
                .collect();
            say(&format!("held {}", guards.len()));
            std::thread::sleep(Duration::from_secs(60));
            drop(guards);
        }
        // Take the lock in MODE, say so, hold it until stdin closes.
        "hold" => {
            let mode = match std::env::var("MODE").as_deref() {
                Ok("shared") => LockMode::Shared,
                _ => LockMode::Exclusive,
            };
            let guard = lock.acquire_blocking(mode, Wait::Forever).unwrap();
            say(&format!("locked {}", guard.token().unwrap_or(0)));
            std::thread::sleep(Duration::from_secs(60));
            drop(guard);
        }
        // One attempt in MODE: report it.
        "try" => {
            let mode = match std::env::var("MODE").as_deref() {
                Ok("shared") => LockMode::Shared,
                _ => LockMode::Exclusive,
            };
            match lock.acquire_blocking(mode, Wait::TryOnce) {
                Ok(_) => say("ok"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => say("wouldblock"),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        // Run-once with KEY: the work appends this PID to LOG, says
        // "running", sleeps SLEEP_MS, and fails if FAIL is set.
        "once" => {
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
                if std::env::var_os("FAIL").is_some() {
                    return Err(std::io::Error::other("asked to fail"));
                }
                Ok(())
            });
            match outcome {
                Ok(o) if o.ran() => say("ran"),
                Ok(_) => say("already"),
                // The work's own error, not lockyard's.
                Err(e) if e.get_ref().is_some_and(|i| !i.is::<lockyard::Error>()) => say("failed"),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn child(role: &str, url: &str, table: &str, name: &str, extra: &[(&str, &str)]) -> common::Kid {
    let mut args = vec![("URL", url), ("TABLE", table), ("NAME", name)];
    args.extend_from_slice(extra);
    spawn_child(ENTRY, role, &args)
}

/// Four processes append to one log under the lock while the parent
/// SIGKILLs some of them mid-run: the log must count 1, 2, 3, ... with no
/// gap or repeat, and tokens must increase line by line.
fn a_counter_stays_exact_under_sigkill_of_holders() {
    let url = server();
    let table = fresh_table("counter");
    let dir = tempdir();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap().to_owned();
    let mut kids = Children(Vec::new());
    for i in 0..6 {
        let rounds = if i < 4 { "60" } else { "400" };
        kids.0.push(child(
            "count",
            &url,
            &table,
            "counter",
            &[("LOG", &log_s), ("ROUNDS", rounds)],
        ));
    }
    // The last two run long: kill them while they hold or wait.
    std::thread::sleep(Duration::from_millis(400));
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
    assert!(n >= 240, "only {n} lines");
    eprintln!("{n} increments, last token {last_token}");
}

fn shared_holders_coexist_and_exclude_writers_across_processes() {
    let url = server();
    let table = fresh_table("shared");
    let mut kids = Children(Vec::new());
    kids.0
        .push(child("hold", &url, &table, "s", &[("MODE", "shared")]));
    let msg = next_message(&mut kids.0[0]).unwrap();
    assert!(msg.starts_with("locked"), "{msg}");
    let mut t = child("try", &url, &table, "s", &[("MODE", "shared")]);
    assert_eq!(next_message(&mut t).as_deref(), Some("ok"));
    t.wait().unwrap();
    let mut t = child("try", &url, &table, "s", &[("MODE", "exclusive")]);
    assert_eq!(next_message(&mut t).as_deref(), Some("wouldblock"));
    t.wait().unwrap();
    // In this process too.
    let lock = locks(&url, &table).lock_named("s").unwrap();
    let a = lock.try_lock_shared().unwrap();
    let b = lock.try_lock_shared().unwrap();
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    drop((a, b));
    // The child's death frees it.
    drop(kids);
    let started = Instant::now();
    let g = lock
        .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_secs(10)))
        .unwrap();
    assert!(g.is_exclusive(), "{:?}", started.elapsed());
}

/// The research's trap: a waiting statement dropped around the holder's
/// release leaves a lock granted to a session nobody uses. Rounds drop a
/// waiting future at random moments around a foreign holder's release; no
/// round may leave a lock held or a session waiting.
fn dropped_waits_never_leave_a_ghost_lock() {
    let rounds: usize = std::env::var("LOCKYARD_PG_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1000);
    drop_waits_around_releases(rounds, |pg| pg);
}

/// The same with no waiting session: each wait tries on the shared
/// session until it gets the lock, and an attempt that lands after the
/// drop gives its lock back.
fn dropped_waits_without_a_waiting_session_leave_no_lock() {
    drop_waits_around_releases(300, |pg| pg.waiting_sessions(0));
}

/// `rounds` times: a foreign session holds the lock, a task waits for it,
/// and the task is dropped while the holder releases, at random times
/// around each other. Nothing may be left holding or waiting.
fn drop_waits_around_releases(rounds: usize, configure: impl Fn(PgLocks) -> PgLocks) {
    let url = server();
    let table = fresh_table("cancel");
    let lock = configure(locks(&url, &table)).lock_named("ghost").unwrap();
    drop(lock.try_lock().unwrap()); // registers the name
    let holder = Raw::connect(&url);
    let probe = Raw::connect(&url);
    let (key, oid, id) = probe.key_of(&table, "ghost");
    assert_eq!(probe.settle(oid, id, Duration::from_secs(5)), (0, 0));
    let (mut granted, mut abandoned) = (0, 0);
    let started = Instant::now();
    for round in 0..rounds {
        let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
        let waiter = holder.rt.spawn(lock.lock());
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..2000)));
        let release_in = Duration::from_micros(fastrand::u64(0..3000));
        let drop_in = Duration::from_micros(fastrand::u64(0..3000));
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(release_in);
                let ok: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
                assert!(ok);
            });
            std::thread::sleep(drop_in);
            waiter.abort();
        });
        match holder.rt.block_on(waiter) {
            Ok(Ok(guard)) => {
                granted += 1;
                drop(guard);
            }
            Ok(Err(e)) => panic!("round {round}: {e}"),
            Err(_) => abandoned += 1,
        }
        let left = probe.settle(oid, id, Duration::from_secs(5));
        assert_eq!(
            left,
            (0, 0),
            "round {round}: (granted, waiting) sessions left"
        );
        assert_eq!(lock.waiters(), 0, "round {round}");
    }
    // The lock still works, in this process and for others.
    let g = lock.try_lock().unwrap();
    drop(g);
    eprintln!(
        "{rounds} rounds in {:?}: {granted} granted before the drop, {abandoned} abandoned",
        started.elapsed()
    );
    assert!(abandoned > rounds / 20, "the drops never hit a wait");
    // No session left waiting for this lock. (Scoped to its key: other
    // tests running at the same time have sessions waiting for theirs.)
    let stuck: i64 = probe.one(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
           AND classid::bigint = $1 AND objid::bigint = $2",
        &[&oid, &id],
    );
    assert_eq!(stuck, 0);
}

/// A wait given up before its statement reached the server leaves no
/// ghost in the server's queue: the first cancel finds the session idle,
/// and the server ignores it, so lockyard cancels again until the statement
/// has ended. A proxy holds the session's statement while the cancel
/// (a connection of its own) goes through.
fn an_abandoned_wait_whose_statement_arrives_late_leaves_no_waiter() {
    let url = server();
    let proxy = pg::Proxy::start(&url);
    let table = fresh_table("late");
    // Holds of their own: the wait then runs on the session the proxy holds.
    let lock = locks(&proxy.url, &table)
        .sessions(0)
        .lock_named("l")
        .unwrap();
    drop(lock.try_lock().unwrap()); // the session, through the proxy
    let holder = Raw::connect(&url);
    let (key, oid, id) = holder.key_of(&table, "l");
    let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
    proxy.hold_open(true);
    // The async form sends the waiting statement alone (no try first).
    let e = pg::within(Duration::from_secs(20), {
        let lock = lock.clone();
        move || {
            futures_lite::future::block_on(lock.lock_timeout(Duration::from_millis(200)))
                .unwrap_err()
        }
    });
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    std::thread::sleep(Duration::from_millis(300));
    // The statement reaches the server only now, long after the first
    // cancel.
    proxy.hold_open(false);
    let patience = Instant::now() + Duration::from_secs(5);
    while holder.sessions_on(oid, id).1 > 0 && Instant::now() < patience {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        holder.sessions_on(oid, id),
        (1, 0),
        "a waiter stayed queued in the server"
    );
    let _: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
    assert_eq!(holder.settle(oid, id, Duration::from_secs(5)), (0, 0));
    drop(lock.try_lock().unwrap());
}

/// A timeout in the server's queue gives the lock up just as cleanly.
fn timed_out_waits_leave_nothing_behind() {
    let url = server();
    let table = fresh_table("timeout");
    let lock = locks(&url, &table).lock_named("t").unwrap();
    drop(lock.try_lock().unwrap());
    let holder = Raw::connect(&url);
    let (key, oid, id) = holder.key_of(&table, "t");
    let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
    for _ in 0..20 {
        let e = futures_lite::future::block_on(lock.lock_timeout(Duration::from_millis(30)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let e = lock
            .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_millis(20)))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:#?}");
    }
    assert_eq!(
        holder.settle(oid, id, Duration::from_secs(5)).1,
        0,
        "a waiter stayed queued"
    );
    let _: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
    assert_eq!(holder.settle(oid, id, Duration::from_secs(5)), (0, 0));
    drop(lock.try_lock().unwrap());
}

/// Eight threads, each running futures one after the other, take four
/// names over and over through one shared session (`sessions(1)`), so
/// that their attempts keep meeting a session another call is using:
/// every hold is exclusive within its name, tokens rise per name, and no
/// attempt is left waiting for a wake-up that never comes (each thread has
/// a deadline).
fn tasks_on_one_shared_session_take_turns_and_exclude() {
    use std::sync::atomic::AtomicBool;
    let url = server();
    let table = fresh_table("turns");
    let pg = locks(&url, &table).sessions(1);
    let names: Arc<Vec<_>> = Arc::new(
        (0..4)
            .map(|i| {
                let lock = pg.lock_named(&format!("n{i}")).unwrap();
                (lock, AtomicBool::new(false), std::sync::Mutex::new(0u64))
            })
            .collect(),
    );
    let cycles = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (names, cycles) = (Arc::clone(&names), Arc::clone(&cycles));
            std::thread::spawn(move || {
                pg::within(Duration::from_secs(60), move || {
                    for round in 0..40 {
                        let (lock, busy, last) = &names[(t + round) % names.len()];
                        let guard = futures_lite::future::block_on(async {
                            match round % 2 {
                                0 => lock.lock().await,
                                _ => lock.lock_timeout(Duration::from_secs(30)).await,
                            }
                        })
                        .unwrap();
                        assert!(!busy.swap(true, Ordering::SeqCst), "two holders at once");
                        let token = guard.token().expect("a token");
                        let mut last = last.lock().unwrap();
                        assert!(token > *last, "token {token} after {}", *last);
                        *last = token;
                        drop(last);
                        std::thread::yield_now();
                        busy.store(false, Ordering::SeqCst);
                        drop(guard);
                        cycles.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a thread failed");
    }
    assert_eq!(cycles.load(Ordering::SeqCst), 8 * 40);
    let probe = Raw::connect(&url);
    for i in 0..4 {
        let (_, oid, id) = probe.key_of(&table, &format!("n{i}"));
        assert_eq!(probe.settle(oid, id, Duration::from_secs(10)), (0, 0));
    }
}

/// A release on a session other holds share leaves without waiting for
/// its reply, which nobody may ever read: with nothing else done on the
/// session afterwards (the other holds kept, no lockyard call made), the
/// server still sees the unlock, for each of many releases in a row.
fn a_release_reaches_the_server_on_its_own() {
    let url = server();
    let table = fresh_table("release_alone");
    let pg = locks(&url, &table).sessions(1);
    let keep = pg.lock_named("kept").unwrap();
    let _kept = keep.try_lock().unwrap();
    let probe = Raw::connect(&url);
    for round in 0..50 {
        let name = format!("n{round}");
        let lock = pg.lock_named(&name).unwrap();
        let guard = match round % 2 {
            0 => lock.try_lock().unwrap(),
            _ => futures_lite::future::block_on(lock.lock()).unwrap(),
        };
        let (_, oid, id) = probe.key_of(&table, &name);
        assert_eq!(probe.sessions_on(oid, id), (1, 0));
        drop(guard);
        assert_eq!(
            probe.settle(oid, id, Duration::from_secs(10)),
            (0, 0),
            "round {round}: the unlock never reached the server"
        );
    }
}

/// A future's first attempt is made on its own task; dropped (or timed
/// out) while the server is still answering it, the attempt is seen to
/// its end elsewhere and a lock it took is released. A foreign
/// transaction holding the name's row stalls the attempt's token update
/// after its `pg_try_advisory_lock` has succeeded, so each abandoned
/// attempt holds the lock when it is given up.
fn abandoned_attempts_leave_no_lock_behind() {
    use futures_lite::future;
    let url = server();
    let table = fresh_table("abandon_try");
    let pg = locks(&url, &table);
    let lock = pg.lock_named("t").unwrap();
    let mut last = lock.try_lock().unwrap().token().expect("a token");
    let probe = Raw::connect(&url);
    let (_, oid, id) = probe.key_of(&table, "t");
    let blocker = Raw::connect(&url);
    let stall = Duration::from_millis(150);
    type Start = fn(&lockyard::postgres::PgLock) -> lockyard::Acquire;
    let attempts: [(&str, Start); 3] = [
        ("try_lock_async", |l| l.try_lock_async()),
        ("lock().await", |l| l.lock()),
        ("lock_timeout", |l| {
            l.lock_timeout(Duration::from_millis(150))
        }),
    ];
    for (what, start) in attempts {
        blocker
            .rt
            .block_on(blocker.client.batch_execute(&format!(
                "BEGIN; SELECT 1 FROM {table} WHERE id = {id} FOR UPDATE"
            )))
            .unwrap();
        let outcome = future::block_on(future::or(async { Some(start(&lock).await) }, async {
            async_io::Timer::after(stall * 2).await;
            None
        }));
        match outcome {
            None => {}
            Some(Err(e)) if e.kind() == ErrorKind::TimedOut => {}
            Some(other) => panic!("{what}: ended while its statement was stalled: {other:?}"),
        }
        // Given up with the lock taken in the server: the test means
        // something only then.
        assert_eq!(probe.sessions_on(oid, id).0, 1, "{what}: no lock taken");
        blocker
            .rt
            .block_on(blocker.client.batch_execute("COMMIT"))
            .unwrap();
        assert_eq!(
            probe.settle(oid, id, Duration::from_secs(10)),
            (0, 0),
            "{what}: the abandoned attempt's lock stayed"
        );
        let guard = lock.try_lock().unwrap();
        let token = guard.token().expect("a token");
        // The abandoned attempt's own bump counts too.
        assert!(token > last + 1, "{what}: token {token} after {last}");
        last = token;
    }
}

/// Ten tasks wait for ten busy names with room for two waiting sessions:
/// two wait in the server, eight try on the one shared session, the
/// process never has more than three sessions, and every task gets its
/// lock soon after the release, its hold too within the three. Waits
/// abandoned at their deadline leave nothing held.
fn waits_beyond_the_waiting_sessions_share_the_holds_sessions() {
    const NAMES: usize = 10;
    let url = server();
    let table = fresh_table("waitcap");
    let app = format!("lockyard-waitcap-{}", std::process::id());
    let pg = tagged_locks(&url, &table, &app)
        .sessions(1)
        .waiting_sessions(2);
    let lock_of = |i: usize| pg.lock_named(&format!("n{i}")).unwrap();
    for i in 0..NAMES {
        drop(lock_of(i).try_lock().unwrap()); // registers the name
    }
    let holder = Raw::connect(&url);
    let probe = Raw::connect(&url);
    let keys: Vec<i64> = (0..NAMES)
        .map(|i| holder.key_of(&table, &format!("n{i}")).0)
        .collect();
    for key in &keys {
        let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[key]);
    }
    let in_server = |probe: &Raw| -> i64 {
        probe.one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
               AND wait_event_type = 'Lock'",
            &[&app],
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Given up at their deadline, with the names still held.
    let timed_out: Vec<_> = (0..NAMES)
        .map(|i| rt.spawn(lock_of(i).lock_timeout(Duration::from_millis(400))))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(in_server(&probe), 2, "sessions waiting in the server");
    assert!(sessions_of(&probe, &app) <= 3, "sessions while waiting");
    for t in timed_out {
        let e = rt.block_on(t).unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    }
    let patience = Instant::now() + Duration::from_secs(5);
    while (in_server(&probe), probe.granted_in(&table)) != (0, NAMES as i64) {
        assert!(Instant::now() < patience, "a wait left something behind");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Granted: each task keeps its guard until all have theirs.
    let all = Arc::new(tokio::sync::Barrier::new(NAMES + 1));
    let waits: Vec<_> = (0..NAMES)
        .map(|i| {
            let (lock, all) = (lock_of(i), Arc::clone(&all));
            rt.spawn(async move {
                let guard = lock.lock_timeout(Duration::from_secs(20)).await.unwrap();
                let got = Instant::now();
                all.wait().await;
                all.wait().await;
                (guard.token().unwrap(), got)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(in_server(&probe), 2, "sessions waiting in the server");
    let released = Instant::now();
    for key in &keys {
        let _: bool = holder.one("SELECT pg_advisory_unlock($1)", &[key]);
    }
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), all.wait())
            .await
            .expect("a wait never got its lock")
    });
    let sessions = sessions_of(&probe, &app);
    assert_eq!(probe.granted_in(&table), NAMES as i64);
    assert!(sessions <= 3, "{sessions} sessions for {NAMES} holds");
    rt.block_on(all.wait());
    let mut slowest = Duration::ZERO;
    for w in waits {
        let (token, got) = rt.block_on(w).unwrap();
        assert!(token > 1, "a token that did not go up: {token}");
        slowest = slowest.max(got - released);
    }
    // Two pauses past the longest (200 ms), whatever the machine's load.
    assert!(slowest < Duration::from_millis(600), "took {slowest:?}");
    eprintln!(
        "{NAMES} waits, 2 waiting sessions: all granted within {slowest:?}, {sessions} sessions"
    );
}

/// A thousand tasks of one process wait for one name: the server sees one
/// waiting session, and every task gets the lock in turn.
fn a_thousand_waiters_use_one_waiting_session() {
    let url = server();
    let table = fresh_table("thousand");
    let app = format!("lockyard-thousand-{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let pg = PgLocks::from_url(&format!("{url}{sep}application_name={app}"))
        .unwrap()
        .table(&table)
        .unwrap();
    let lock = pg.lock_named("busy").unwrap();
    let holder = Raw::connect(&url);
    drop(lock.try_lock().unwrap());
    let (key, _, _) = holder.key_of(&table, "busy");
    let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
    let done = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (lock, done, inside) = (lock.clone(), Arc::clone(&done), Arc::clone(&inside));
        tasks.push(rt.spawn(async move {
            let g = lock.lock().await.unwrap();
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two tasks inside");
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(g);
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let since = Instant::now();
    while lock.waiters() < 1000 {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "waiters: {}",
            lock.waiters()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the head reach the server.
    std::thread::sleep(Duration::from_millis(300));
    let waiting: i64 = holder.one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        &[&app],
    );
    let sessions: i64 = holder.one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    );
    assert_eq!(waiting, 1, "sessions waiting in the server");
    assert!(sessions <= 3, "{sessions} sessions for 1000 waiters");
    let _: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
    rt.block_on(async {
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("a waiter never got the lock")
                .unwrap();
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 1000);
    let sessions: i64 = holder.one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    );
    eprintln!("1000 waiters: 1 waiting session; {sessions} sessions open after");
}

/// Ending the holder's session (`pg_terminate_backend`) is a typed signal:
/// `still_held` says false, `lost` completes, the next token is higher.
fn a_terminated_session_is_a_lost_lock() {
    let url = server();
    let table = fresh_table("lost");
    let lock = locks(&url, &table).lock_named("l").unwrap();
    let guard = lock.try_lock().unwrap();
    let first = guard.token().unwrap();
    assert!(guard.still_held().unwrap());
    let probe = Raw::connect(&url);
    let (_, oid, id) = probe.key_of(&table, "l");
    let killed: bool = probe.one(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
           AND granted AND classid::bigint = $1 AND objid::bigint = $2",
        &[&oid, &id],
    );
    assert!(killed);
    let e = futures_lite::future::block_on(lost_within(&guard, Duration::from_secs(5)));
    assert_eq!(e.kind(), ErrorKind::Lost);
    assert!(!guard.still_held().unwrap());
    drop(guard);
    let other = locks(&url, &table).lock_named("l").unwrap();
    let next = other
        .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_secs(5)))
        .unwrap();
    assert!(next.token().unwrap() > first);
}

/// What `guard.lost` says, failing the test if it says nothing within
/// `limit`.
async fn lost_within(guard: &lockyard::LockGuard, limit: Duration) -> lockyard::Error {
    futures_lite::future::or(
        async { Some(guard.lost(Duration::from_millis(10)).await) },
        async {
            async_io::Timer::after(limit).await;
            None
        },
    )
    .await
    .unwrap_or_else(|| panic!("lost() did not fire within {limit:?}"))
}

/// Locks on `url` in `table` whose sessions carry `app` as their
/// `application_name`, so the server can count them.
fn tagged_locks(url: &str, table: &str, app: &str) -> PgLocks {
    let sep = if url.contains('?') { '&' } else { '?' };
    PgLocks::from_url(&format!("{url}{sep}application_name={app}"))
        .unwrap()
        .table(table)
        .unwrap()
}

/// How many sessions (connections) the server has for `app`.
fn sessions_of(probe: &Raw, app: &str) -> i64 {
    probe.one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
}

/// One process holds 10,000 names at once, exclusive and shared, over at
/// most the pool's two sessions; every hold is a lock in the server, and
/// all of them are let go.
fn ten_thousand_holds_share_the_pools_sessions() {
    let url = server();
    let table = fresh_table("many");
    let app = format!("lockyard-many-{}", std::process::id());
    let pg = tagged_locks(&url, &table, &app).sessions(2);
    let probe = Raw::connect(&url);
    let started = Instant::now();
    let names = 10_000;
    let guards: Vec<_> = (0..names)
        .map(|i| {
            let lock = pg.lock_named(&format!("n/{i}")).unwrap();
            if i % 2 == 0 {
                lock.try_lock().unwrap()
            } else {
                lock.try_lock_shared().unwrap()
            }
        })
        .collect();
    let took = started.elapsed();
    let held = probe.granted_in(&table);
    let sessions = sessions_of(&probe, &app);
    eprintln!("{names} holds in {took:?} over {sessions} sessions");
    assert_eq!(held, names);
    assert!((1..=2).contains(&sessions), "{sessions} sessions");
    // Tokens still come with exclusive holds, each its own name's.
    assert!(guards.iter().step_by(2).all(|g| g.token().is_some()));
    drop(guards);
    let patience = Instant::now() + Duration::from_secs(20);
    loop {
        let left = probe.granted_in(&table);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < patience,
            "{left} holds left after the release"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sessions_of(&probe, &app) <= 2);
}

/// A fleet on one server: 100 processes hold 100 names each (exclusive and
/// shared), all at once, with `sessions(1)`: 10,000 holds over 100
/// sessions, what a server with the default `max_connections = 100` has.
fn a_hundred_processes_hold_a_hundred_names_each_on_a_session_each() {
    let url = server();
    let table = fresh_table("fleet");
    let app = format!("lockyard-fleet-{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let tagged = format!("{url}{sep}application_name={app}");
    let probe = Raw::connect(&url);
    // (LOCKYARD_FLEET_PROCESSES runs another number, for measuring against
    // a server of another size.)
    let processes: i64 = std::env::var("LOCKYARD_FLEET_PROCESSES")
        .map(|n| n.parse().unwrap())
        .unwrap_or(100);
    let started = Instant::now();
    let mut kids = Children(Vec::new());
    for p in 0..processes {
        kids.0.push(child(
            "hold_many",
            &tagged,
            &table,
            &format!("p{p}"),
            &[("COUNT", "100"), ("SESSIONS", "1")],
        ));
    }
    for kid in kids.0.iter_mut() {
        assert_eq!(
            common::next_message(&mut kid.0).as_deref(),
            Some("held 100")
        );
    }
    let took = started.elapsed();
    let held = probe.granted_in(&table);
    let sessions = sessions_of(&probe, &app);
    eprintln!(
        "{processes} processes x 100 names: {held} holds over {sessions} sessions, all held after {took:?}"
    );
    assert_eq!(held, processes * 100);
    assert_eq!(sessions, processes);
}

/// Ending a session that carries the holds of several tasks loses every
/// one of them, loudly: each guard's `still_held` says false, its `lost`
/// fires with kind `Lost`, and others take the names with higher tokens.
fn a_terminated_shared_session_loses_every_hold_on_it() {
    let url = server();
    let table = fresh_table("sharedlost");
    let app = format!("lockyard-sharedlost-{}", std::process::id());
    let pg = tagged_locks(&url, &table, &app).sessions(1);
    let probe = Raw::connect(&url);
    // Eight tasks of two runtimes' worth of threads, 25 names each.
    let guards: Vec<_> = std::thread::scope(|s| {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let pg = &pg;
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let lock = pg.lock_named(&format!("t{t}/{i}")).unwrap();
                            futures_lite::future::block_on(lock.lock()).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        tasks.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(sessions_of(&probe, &app), 1);
    let tokens: Vec<_> = guards.iter().map(|g| g.token().unwrap()).collect();
    let killed: bool = probe.one(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    );
    assert!(killed);
    let since = Instant::now();
    futures_lite::future::block_on(async {
        for guard in &guards {
            let e = lost_within(guard, Duration::from_secs(5)).await;
            assert_eq!(e.kind(), ErrorKind::Lost);
        }
    });
    eprintln!(
        "{} guards learned their loss within {:?}",
        guards.len(),
        since.elapsed()
    );
    for guard in &guards {
        assert!(!guard.still_held().unwrap());
    }
    drop(guards);
    let other = locks(&url, &table);
    for (n, token) in tokens.iter().enumerate() {
        let name = format!("t{}/{}", n / 25, n % 25);
        let next = other.lock_named(&name).unwrap().try_lock().unwrap();
        assert!(next.token().unwrap() > *token, "{name}");
    }
}

/// A termination that lands while one of the guard's queries is in flight
/// (`still_held`'s check, a lease's renewal, `lost`'s polling, a
/// conversion between shared and exclusive) means the
/// session and its locks are gone: `Ok(false)` and kind `Lost`, never
/// `Io`. A proxy holds the guard's query while the server ends the
/// session, so the server's "terminating connection" (57P01) is what
/// answers it.
fn a_termination_during_a_query_is_lost_not_io() {
    let url = server();
    let proxy = pg::Proxy::start(&url);
    let table = fresh_table("midquery");
    let probe = Raw::connect(&url);
    let pg = locks(&proxy.url, &table).lease(Duration::from_secs(60));
    for query in ["still_held", "refresh", "lost", "try_upgrade", "downgrade"] {
        let lock = pg.lock_named(query).unwrap();
        let guard = if query == "try_upgrade" {
            lock.try_lock_shared().unwrap()
        } else {
            lock.try_lock().unwrap()
        };
        let (_, oid, id) = probe.key_of(&table, query);
        proxy.hold(true);
        let asking = std::thread::spawn(move || {
            let answer = match query {
                "still_held" => guard.still_held().map(|held| format!("still_held: {held}")),
                "refresh" => guard.refresh().map(|()| "refreshed".to_owned()),
                "lost" => Err(futures_lite::future::block_on(
                    guard.lost(Duration::from_millis(10)),
                )),
                // A conversion that fails this way hands back no guard: it
                // holds nothing.
                _ => {
                    let converted = if query == "try_upgrade" {
                        guard.try_upgrade()
                    } else {
                        guard.downgrade()
                    };
                    return match converted {
                        Ok(guard) => (Some(guard), Ok("converted".to_owned())),
                        Err(e) => {
                            let (guard, error) = e.into_parts();
                            (guard, Err(error))
                        }
                    };
                }
            };
            (Some(guard), answer)
        });
        // The query is in the proxy now; the session ends under it.
        std::thread::sleep(Duration::from_millis(300));
        let killed: bool = probe.one(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
               AND granted AND classid::bigint = $1 AND objid::bigint = $2",
            &[&oid, &id],
        );
        assert!(killed, "{query}: no session held the lock");
        std::thread::sleep(Duration::from_millis(300));
        proxy.hold(false);
        let (guard, answer) = pg::within(Duration::from_secs(20), move || asking.join().unwrap());
        match (query, answer) {
            ("still_held", Ok(said)) => assert_eq!(said, "still_held: false"),
            (_, Err(e)) if query != "still_held" => {
                assert_eq!(e.kind(), ErrorKind::Lost, "{query}: {e}");
            }
            (_, other) => panic!("{query}: {other:?}"),
        }
        if let Some(guard) = guard {
            assert!(
                query != "try_upgrade" && query != "downgrade",
                "{query}: a guard came back"
            );
            assert!(!guard.still_held().unwrap(), "{query}");
        }
        assert_eq!(
            probe.settle(oid, id, Duration::from_secs(5)),
            (0, 0),
            "{query}"
        );
    }
}

/// A server that accepts connections and never answers: each accepted
/// socket is held until the client lets go of it, and the time it did so
/// is sent on the returned channel.
fn silent_server() -> (String, std::sync::mpsc::Receiver<Instant>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                // Read (and ignore) the start-up until the client closes.
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(Instant::now());
            });
        }
    });
    (format!("postgres://nobody@127.0.0.1:{port}/db"), rx)
}

/// A deadline bounds the whole acquisition, connecting included: against a
/// server that accepts and never answers, every form with a deadline ends
/// with `TimedOut` at the deadline, not at the connect timeout (10 s), and
/// the abandoned connection is let go at once, so a tokio runtime that ran
/// the acquisition shuts down without waiting for it.
fn a_deadline_bounds_connecting() {
    let (url, closed) = silent_server();
    let pg = PgLocks::from_url(&url).unwrap();
    let limit = Duration::from_millis(800);
    let late = Duration::from_secs(3);
    for form in ["Wait::For", "Wait::Until", "lock_blocking_timeout"] {
        let lock = pg.lock_named(form).unwrap();
        let start = Instant::now();
        let result = match form {
            "Wait::For" => lock.acquire_blocking(LockMode::Exclusive, Wait::For(limit)),
            "Wait::Until" => lock.acquire_blocking(LockMode::Exclusive, Wait::Until(start + limit)),
            _ => lock.lock_blocking_timeout(limit),
        };
        let e = result.unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{form}: {e}");
        // A lock in PostgreSQL has a name (its address), no path.
        assert_eq!((e.path(), e.name()), (None, lock.address().as_ref()));
        assert!(took < late, "{form}: took {took:?}");
        let gone = closed
            .recv_timeout(late)
            .expect("the abandoned connection stayed open");
        assert!(gone.duration_since(start) < late, "{form}");
        eprintln!(
            "{form}: TimedOut after {took:?}, connection closed after {:?}",
            gone.duration_since(start)
        );
    }
    // The async form, in a tokio runtime that is then dropped.
    let lock = pg.lock_named("async").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let e = rt.block_on(lock.lock_timeout(limit)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(start.elapsed() < late, "took {:?}", start.elapsed());
    let dropping = Instant::now();
    drop(rt);
    eprintln!("async: the runtime dropped in {:?}", dropping.elapsed());
    assert!(
        dropping.elapsed() < Duration::from_secs(2),
        "the runtime waited {:?}",
        dropping.elapsed()
    );
    let gone = closed
        .recv_timeout(late)
        .expect("the abandoned connection stayed open");
    assert!(gone.duration_since(start) < late);
}

/// A holder stopped with SIGSTOP keeps its session open, but with a lease
/// the server ends it after the TTL: a waiter takes over, with a higher
/// token.
#[cfg(unix)]
fn a_stopped_holder_is_taken_over_after_its_lease() {
    let url = server();
    let table = fresh_table("lease");
    let mut kids = Children(Vec::new());
    kids.0
        .push(child("hold", &url, &table, "l", &[("LEASE_MS", "1000")]));
    let msg = next_message(&mut kids.0[0]).unwrap();
    let held: u64 = msg.strip_prefix("locked ").unwrap().parse().unwrap();
    let pid = kids.0[0].id();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::STOP,
    )
    .unwrap();
    let lock = locks(&url, &table).lock_named("l").unwrap();
    let started = Instant::now();
    let g = lock
        .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_secs(10)))
        .unwrap();
    let took = started.elapsed();
    assert!(g.token().unwrap() > held);
    assert!(
        took >= Duration::from_millis(500),
        "taken over too soon: {took:?}"
    );
    eprintln!("stopped holder taken over after {took:?}");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::CONT,
    );
}

/// `keep_alive` beside the work keeps a lease's session alive past its
/// TTL; without it the server ends the session and the lock is lost.
fn keep_alive_renews_a_lease_and_its_absence_loses_it() {
    let url = server();
    let table = fresh_table("keep_alive");
    let pg = locks(&url, &table).lease(Duration::from_millis(300));
    let lock = pg.lock_named("k").unwrap();
    // Exclusive and shared holds alike (a shared hold has no record).
    for mode in [LockMode::Exclusive, LockMode::Shared] {
        keep_alive_round(&lock, mode);
    }
}

fn keep_alive_round(lock: &lockyard::postgres::PgLock, mode: LockMode) {
    futures_lite::future::block_on(async {
        let guard = lock.acquire(mode, Wait::Forever).await.unwrap();
        let work = async {
            async_io::Timer::after(Duration::from_millis(1200)).await;
        };
        let outcome = futures_lite::future::or(
            async {
                work.await;
                None
            },
            async { Some(guard.keep_alive().await) },
        )
        .await;
        assert!(
            outcome.is_none(),
            "{mode:?}: keep_alive failed: {outcome:?}"
        );
        assert!(
            guard.still_held().unwrap(),
            "{mode:?}: lost while kept alive"
        );
        // Idle past the TTL: the server ends the session.
        async_io::Timer::after(Duration::from_millis(1200)).await;
        assert!(
            !guard.still_held().unwrap(),
            "{mode:?}: kept past its lease"
        );
    });
}

fn holder_and_list_say_who_holds_what() {
    let url = server();
    let table = fresh_table("holder");
    let pg = locks(&url, &table).owner("reporter");
    let lock = pg.lock_named("job/a").unwrap();
    assert!(lock.holder().unwrap().is_none());
    let g = lock.try_lock().unwrap();
    let h = lock.holder().unwrap().expect("held");
    assert_eq!(h.pid(), std::process::id());
    assert_eq!(h.owner(), Some("reporter"));
    assert_eq!(Some(h.token()), g.token());
    assert_eq!((g.path(), g.name()), (None, lock.address().as_ref()));
    let r = pg.lock_named("job/b").unwrap();
    let _s = r.try_lock_shared().unwrap();
    let list = pg.list().unwrap();
    let names: Vec<_> = list
        .iter()
        .map(|i| (i.name().to_owned(), i.state()))
        .collect();
    assert_eq!(
        names,
        [
            ("job/a".to_owned(), lockyard::LockState::HeldExclusive),
            ("job/b".to_owned(), lockyard::LockState::HeldShared)
        ]
    );
    let busy = pg.lock_named("job/a").unwrap();
    let e = std::thread::spawn(move || busy.try_lock().map(drop))
        .join()
        .unwrap();
    // Same process: the engine answers from its queue.
    assert_eq!(e.unwrap_err().kind(), ErrorKind::WouldBlock);
}

/// Runs `work` on a single-threaded executor beside a task that counts
/// 10 ms timer ticks; gives its output, how long it took and the ticks
/// counted meanwhile. A `work` that blocks the thread stops the ticks.
fn ticks_beside<T>(work: impl std::future::Future<Output = T>) -> (T, Duration, u32) {
    use futures_lite::future;
    let ticks = std::cell::Cell::new(0);
    let started = Instant::now();
    let out = future::block_on(future::or(work, async {
        loop {
            async_io::Timer::after(Duration::from_millis(10)).await;
            ticks.set(ticks.get() + 1);
        }
    }));
    (out, started.elapsed(), ticks.get())
}

/// Whether an executor thread ran timers through `took`: at least half the
/// 10 ms ticks it could have.
fn kept_ticking(took: Duration, ticks: u32) -> bool {
    u128::from(ticks) * 10 * 2 >= took.as_millis()
}

/// A try as a future (its statement driven by its own polls), and the
/// holder question asked when a wait times out (on the pool), never block
/// the executor's thread: while the server does not answer (a proxy holds
/// what the client sends), a single-threaded executor keeps running its
/// timers.
fn a_future_never_waits_on_the_server_on_its_executor_thread() {
    let url = server();
    let proxy = Arc::new(pg::Proxy::start(&url));
    let table = fresh_table("slowtry");
    let pg = locks(&proxy.url, &table);
    let stall = Duration::from_millis(600);
    let limit = Duration::from_secs(20);
    let let_through_after = |after: Duration| {
        let proxy = Arc::clone(&proxy);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            proxy.hold(false);
        })
    };
    for mode in [LockMode::Exclusive, LockMode::Shared] {
        let lock = pg.lock_named("t").unwrap();
        drop(lock.try_lock().unwrap()); // the session, through the proxy
        proxy.hold(true);
        let release = let_through_after(stall);
        let (result, took, ticks) = pg::within(limit, move || {
            ticks_beside(async move {
                match mode {
                    LockMode::Exclusive => lock.try_lock_async().await,
                    LockMode::Shared => lock.try_lock_shared_async().await,
                }
            })
        });
        release.join().unwrap();
        let guard = result.unwrap();
        assert!(took >= stall, "{mode:?}: answered in {took:?} while held");
        assert!(
            kept_ticking(took, ticks),
            "{mode:?}: {ticks} ticks in {took:?}"
        );
        eprintln!("{mode:?} try: {ticks} ticks in {took:?}");
        drop(guard);
    }
    // A wait that times out asks who holds the lock.
    let lock = pg.lock_named("held").unwrap();
    drop(lock.try_lock().unwrap());
    let holder = Raw::connect(&url);
    let (key, _, _) = holder.key_of(&table, "held");
    let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
    let deadline = Duration::from_millis(300);
    // Held from before the deadline until well after it.
    let hold = {
        let proxy = Arc::clone(&proxy);
        std::thread::spawn(move || {
            std::thread::sleep(deadline / 2);
            proxy.hold(true);
        })
    };
    let release = let_through_after(deadline + stall);
    let (result, took, ticks) =
        pg::within(limit, move || ticks_beside(lock.lock_timeout(deadline)));
    hold.join().unwrap();
    release.join().unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    // The question of who holds it stalls with the server: it is given up
    // after a grace, so the deadline still holds.
    assert!(
        took >= deadline && took < deadline + stall,
        "timed out in {took:?}"
    );
    assert!(
        kept_ticking(took, ticks),
        "timed out: {ticks} ticks in {took:?}"
    );
    eprintln!("timed-out wait: {ticks} ticks in {took:?}");
    let _: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
}

/// A future's wait in the server runs on its own task once a waiting
/// session is idle: the grant reaches the task from the thread that reads
/// the socket (async-io's reactor here), not from a blocking-pool thread
/// that waited in the server and then wakes the task. The first wait has
/// no idle session prepared for it (it readies one on the pool), which
/// shows what the test tells apart; the waits after it reuse that
/// session, polled. With `sessions(1)`, a wait's session does not join the
/// shared set, so it goes idle after its hold; with `sessions(0)` (each
/// hold a session of its own, as leases have), the wait follows the last
/// release on its session.
fn a_future_hears_its_grant_without_a_pool_thread_once_a_session_is_idle() {
    for sessions in [1, 0] {
        grants_heard_on_the_task(sessions);
    }
}

fn grants_heard_on_the_task(sessions: usize) {
    let url = server();
    let table = fresh_table("polledwait");
    let lock = locks(&url, &table)
        .sessions(sessions)
        .lock_named("w")
        .unwrap();
    drop(lock.try_lock().unwrap()); // a session, the name's row
    let holder = Raw::connect(&url);
    let (key, oid, id) = holder.key_of(&table, "w");
    let mut woken_by = Vec::new();
    let mut tokens = Vec::new();
    for round in 0..4 {
        let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
        let released = std::sync::Mutex::new(None);
        let (guard, wakes) = std::thread::scope(|s| {
            s.spawn(|| {
                // Long enough for the wait to be in the server.
                std::thread::sleep(Duration::from_millis(300));
                *released.lock().unwrap() = Some(Instant::now());
                let ok: bool = holder.one("SELECT pg_advisory_unlock($1)", &[&key]);
                assert!(ok);
            });
            pg::within(Duration::from_secs(20), {
                let lock = lock.clone();
                move || waking_threads(lock.lock())
            })
        });
        let guard = guard.unwrap_or_else(|e| panic!("sessions({sessions}), round {round}: {e}"));
        tokens.push(guard.token().expect("an exclusive hold's token"));
        drop(guard);
        let released = released.lock().unwrap().expect("released");
        // The wake-ups after the release: the grant's. (A poll of this
        // thread's own may find the grant before any wake-up; a wait on
        // the pool always wakes the task when it ends.)
        let after: Vec<String> = wakes
            .into_iter()
            .filter(|(at, _)| *at >= released)
            .map(|(_, name)| name)
            .collect();
        woken_by.push(after);
    }
    eprintln!("sessions({sessions}): threads that woke the task after each release: {woken_by:?}");
    let from_pool = |names: &Vec<String>| names.iter().any(|n| n.starts_with("blocking-"));
    assert!(
        from_pool(&woken_by[0]),
        "sessions({sessions}): the first wait (no session ready) was not on the pool: {woken_by:?}"
    );
    for (round, names) in woken_by.iter().enumerate().skip(1) {
        assert!(
            !from_pool(names),
            "sessions({sessions}), round {round}: the grant came through a pool thread: {woken_by:?}"
        );
    }
    assert!(tokens.windows(2).all(|t| t[0] < t[1]), "{tokens:?}");
    assert_eq!(holder.settle(oid, id, Duration::from_secs(5)), (0, 0));
}

/// Polls `work` to its end on this thread (which runs no reactor), noting
/// which thread woke it, and when, at each wake-up.
fn waking_threads<F: std::future::Future>(work: F) -> (F::Output, Vec<(Instant, String)>) {
    struct Recorder {
        thread: std::thread::Thread,
        wakes: std::sync::Mutex<Vec<(Instant, String)>>,
    }
    impl std::task::Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned();
            self.wakes.lock().unwrap().push((Instant::now(), name));
            self.thread.unpark();
        }
    }
    let recorder = Arc::new(Recorder {
        thread: std::thread::current(),
        wakes: std::sync::Mutex::new(Vec::new()),
    });
    let waker = std::task::Waker::from(Arc::clone(&recorder));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut work = std::pin::pin!(work);
    loop {
        if let std::task::Poll::Ready(out) = work.as_mut().poll(&mut cx) {
            let wakes = std::mem::take(&mut *recorder.wakes.lock().unwrap());
            return (out, wakes);
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

fn bad_input_gets_typed_errors_naming_server_and_lock() {
    let url = server();
    let table = fresh_table("bad");
    let pg = locks(&url, &table);
    // Names: quotes and SQL are data; 10 KB is fine; NUL is refused.
    for name in [
        "it's",
        "\"; DROP TABLE x; --",
        &"n".repeat(10 * 1024),
        "ünï/cödé",
    ] {
        let lock = pg.lock_named(name).unwrap();
        let g = lock.try_lock().unwrap();
        assert_eq!(lock.holder().unwrap().unwrap().token(), g.token().unwrap());
    }
    let e = pg.lock_named("a\0b").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert!(
        e.path().is_none() && e.name().to_string_lossy().ends_with("#a\0b"),
        "{e:?}"
    );
    assert_eq!(
        pg.lock_named("").unwrap_err().kind(),
        ErrorKind::InvalidPath
    );
    // A table that cannot be made (no such schema): the same error every
    // time, never a session left in a failed transaction for the next call.
    let broken = locks(&url, "no_such_schema.locks").lock_named("x").unwrap();
    for _ in 0..3 {
        let e = broken.try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(format!("{e:?}").contains("no_such_schema"), "{e:?}");
    }
    // Unreachable server: a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = PgLocks::from_url(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap()
        .lock_named("x")
        .unwrap();
    let started = Instant::now();
    let e = nowhere.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!((e.path(), e.name()), (None, nowhere.address().as_ref()));
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("#x"),
        "{text}"
    );
    let e = futures_lite::future::block_on(nowhere.lock()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // Wrong credentials: a role that does not exist.
    let base = url.split_once('@').map(|(_, rest)| rest).unwrap();
    let wrong = PgLocks::from_url(&format!("postgres://nobody_here@{base}"))
        .unwrap()
        .lock_named("x")
        .unwrap();
    let e = wrong.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains("nobody_here") || format!("{e:#?}").contains("nobody_here"),
        "{e}"
    );
    // The server ending the waiting session: an error, not a hang.
    let lock = pg.lock_named("going").unwrap();
    let held = lock.try_lock().unwrap();
    let other = locks(&url, &table).lock_named("going").unwrap();
    let probe = Raw::connect(&url);
    let (_, oid, id) = probe.key_of(&table, "going");
    drop(held);
    let holder = Raw::connect(&url);
    let (key, _, _) = holder.key_of(&table, "going");
    let _: i32 = holder.one("SELECT 1 FROM (SELECT pg_advisory_lock($1)) x", &[&key]);
    let waiter = std::thread::spawn(move || other.lock_blocking().map(drop));
    let since = Instant::now();
    while probe.sessions_on(oid, id).1 == 0 {
        assert!(since.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let _: bool = probe.one(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
           AND NOT granted AND classid::bigint = $1 AND objid::bigint = $2",
        &[&oid, &id],
    );
    let out = common::join_within(waiter, Duration::from_secs(10), "the waiter hung");
    assert_eq!(out.unwrap_err().kind(), ErrorKind::Io);
}

/// Run-once across processes: of five concurrent callers exactly one runs
/// the work; a failed or killed run records nothing, so the next caller
/// runs it; a new key runs it again.
fn once_runs_the_work_once_across_processes() {
    let url = server();
    let table = fresh_table("once");
    let dir = tempdir();
    let log = dir.path().join("log");
    let log_s = log.to_str().unwrap().to_owned();
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let once = |key: &str, extra: &[(&str, &str)]| {
        let mut args = vec![("LOG", log_s.as_str()), ("KEY", key)];
        args.extend_from_slice(extra);
        child("once", &url, &table, "job", &args)
    };
    // A run that fails, and one killed mid-work, record nothing.
    let mut k = Children(vec![once("v1", &[("FAIL", "1")])]);
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("running"));
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("failed"));
    let mut k = Children(vec![once("v1", &[("SLEEP_MS", "60000")])]);
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("running"));
    drop(k); // SIGKILL while the work runs
    assert_eq!(runs(), 2);
    // Five at once: one runs, the others find it done.
    let mut kids = Children(Vec::new());
    for _ in 0..5 {
        kids.0.push(once("v1", &[("SLEEP_MS", "200")]));
    }
    let mut said = Vec::new();
    for k in kids.0.iter_mut() {
        let mut msg = next_message(k).unwrap();
        if msg == "running" {
            msg = next_message(k).unwrap();
        }
        said.push(msg);
        assert!(k.wait().unwrap().success());
    }
    said.sort();
    assert_eq!(said, ["already", "already", "already", "already", "ran"]);
    assert_eq!(runs(), 3);
    // Done for v1; a new key runs again.
    let mut k = Children(vec![once("v1", &[])]);
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("already"));
    let mut k = Children(vec![once("v2", &[])]);
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("running"));
    assert_eq!(next_message(&mut k.0[0]).as_deref(), Some("ran"));
    assert_eq!(runs(), 4);
}

/// The done mark is fenced by the token: a holder whose session ended
/// while its work ran, and who was overtaken, records nothing (a `Lost`
/// marker error), and the work stays to be done.
fn once_records_nothing_for_a_holder_that_lost_the_lock() {
    let url = server();
    let table = fresh_table("once_fenced");
    let lock = locks(&url, &table).lock_named("job").unwrap();
    let probe = Raw::connect(&url);
    let outcome = lock.once(|| {
        let (_, oid, id) = probe.key_of(&table, "job");
        let killed: bool = probe.one(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'
               AND granted AND classid::bigint = $1 AND objid::bigint = $2",
            &[&oid, &id],
        );
        assert!(killed);
        // Another process takes the lock (and a newer token) meanwhile.
        let mut rival = child("try", &url, &table, "job", &[("MODE", "exclusive")]);
        assert_eq!(next_message(&mut rival).as_deref(), Some("ok"));
        assert!(rival.wait().unwrap().success());
        Ok::<_, std::io::Error>(())
    });
    match outcome {
        // lockyard's error, converted into the work's type.
        Err(e) => {
            let e = e.into_inner().expect("lockyard's error inside");
            let e = e.downcast::<lockyard::Error>().expect("lockyard's error");
            assert_eq!(e.kind(), ErrorKind::Lost, "{e}");
        }
        other => panic!("expected a lost marker, got {other:?}"),
    }
    // Not recorded: the next call runs the work.
    assert!(lock.once(|| Ok::<_, std::io::Error>(())).unwrap().ran());
    assert!(!lock.once(|| Ok::<_, std::io::Error>(())).unwrap().ran());
}

/// `once_async` under an executor: concurrent tasks of one process run the
/// work once.
fn once_async_runs_once_among_tasks() {
    let url = server();
    let table = fresh_table("once_async");
    let lock = locks(&url, &table).lock_named("job").unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let outcomes = futures_lite::future::block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (lock, runs) = (lock.clone(), Arc::clone(&runs));
                smol::spawn(async move {
                    lock.once_async(|| async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async_io::Timer::after(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(())
                    })
                    .await
                    .unwrap()
                    .ran()
                })
            })
            .collect();
        let mut ran = 0;
        for t in tasks {
            ran += usize::from(t.await);
        }
        ran
    });
    assert_eq!(outcomes, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A rustls configuration trusting `ca` (a PEM file), or nothing.
#[cfg(not(target_os = "macos"))]
fn rustls_config(ca: Option<&str>) -> rustls::ClientConfig {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A [`PgTls`](lockyard::postgres::PgTls) connector on futures-rustls:
/// what a user writes.
#[cfg(not(target_os = "macos"))]
struct FuturesRustls(futures_rustls::TlsConnector);

#[cfg(not(target_os = "macos"))]
impl lockyard::postgres::PgTls for FuturesRustls {
    fn connect(
        &self,
        host: &str,
        socket: lockyard::postgres::PgSocket,
    ) -> lockyard::postgres::PgTlsConnect {
        let (tls, host) = (self.0.clone(), host.to_owned());
        Box::pin(async move {
            let name =
                rustls::pki_types::ServerName::try_from(host).map_err(std::io::Error::other)?;
            let stream = tls.connect(name, socket).await?;
            Ok(lockyard::postgres::PgTlsStream::new(stream))
        })
    }
}

/// Locks over TLS through a connector of `kind`, trusting `ca`.
#[cfg(not(target_os = "macos"))]
fn locks_over_tls(kind: &str, url: &str, ca: Option<&str>) -> PgLocks {
    let config = rustls_config(ca);
    match kind {
        "PgTls" => {
            let tls = futures_rustls::TlsConnector::from(Arc::new(config));
            PgLocks::from_url_tls(url, FuturesRustls(tls))
        }
        _ => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
            PgLocks::from_url_tls(url, lockyard::postgres::TokioPostgresTls(tls))
        }
    }
    .unwrap()
}

/// TLS through the user's connector, written against lockyard's `PgTls`
/// or tokio-postgres's traits: the holding session is encrypted (as the
/// server sees it), waits and hand-offs work as in the clear, a server
/// whose certificate the connector does not trust is refused with an
/// error naming the lock, and `sslmode=require` without a connector is
/// refused up front.
#[cfg(not(target_os = "macos"))]
fn tls_through_the_users_connector() {
    let url = server();
    let ca = std::env::var("LOCKYARD_TEST_POSTGRES_CA").expect("the harness checked it");
    let table = fresh_table("tls");
    let required = format!("{url}?sslmode=require");
    for kind in ["PgTls", "TokioPostgresTls"] {
        let locks = locks_over_tls(kind, &required, Some(&ca))
            .table(&table)
            .unwrap();
        let lock = locks.lock_named(kind).unwrap();
        let guard = lock.try_lock().unwrap();
        let probe = Raw::connect(&url);
        let (_, oid, id) = probe.key_of(&table, kind);
        let encrypted: bool = probe.one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_locks l ON l.pid = s.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1
               AND l.objid::bigint = $2",
            &[&oid, &id],
        );
        assert!(encrypted, "{kind}: the holding session is not encrypted");
        // A waiter (another session, also over TLS) gets it when it is let
        // go.
        let first = guard.token().unwrap();
        let waiter = std::thread::spawn({
            let lock = lock.clone();
            move || {
                lock.acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_secs(10)))
                    .map(|g| g.token())
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(guard);
        let next = waiter.join().unwrap().unwrap().unwrap();
        assert!(next > first, "{kind}");

        // An untrusted certificate: refused, the error names server and
        // lock.
        let distrust = locks_over_tls(kind, &required, None).table(&table).unwrap();
        let e = distrust.lock_named(kind).unwrap().try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{kind}: {e}");
        assert!(e.to_string().contains(&format!("#{kind}")), "{e}");
    }
    // sslmode=require with no connector: refused before any connection.
    let e = PgLocks::from_url(&required).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}
