//! The tests of `network_fs.rs` (Unix only): see there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockyard::{ErrorKind, FileLock, LockOptions, StaleReason};

use crate::common;
use crate::common::{
    env_path, expect_success, forge_record, next_message, now_secs, say, spawn_child, tempdir,
    wait_for_file, wait_for_line, Children, Forged, DEAD_PID, ROLE_VAR,
};

const ENTRY: &str = "child_main";

/// The two mounts of one directory named by `var` (the harness runs a
/// test only when it is set).
fn mounts(var: &str) -> (PathBuf, PathBuf) {
    let value = std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set"));
    let (a, b) = value.split_once(':').expect("VAR=MOUNT_A:MOUNT_B");
    (PathBuf::from(a), PathBuf::from(b))
}

/// A fresh directory on the share, seen through both mounts.
fn shared_dir(a: &Path, b: &Path) -> (PathBuf, PathBuf) {
    let name = format!("t-{}-{:016x}", std::process::id(), fastrand::u64(..));
    std::fs::create_dir(a.join(&name)).unwrap();
    let (da, db) = (a.join(&name), b.join(&name));
    let since = Instant::now();
    while !db.exists() {
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "{db:?} never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (da, db)
}

fn soft() -> LockOptions {
    LockOptions::new().soft()
}

/// Claims the local marker `mark` (`O_EXCL`): fails if another holder is
/// inside.
fn enter(mark: &Path) {
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(mark)
        .is_err()
    {
        say("overlap");
        std::process::exit(3);
    }
}

/// The entry point of child processes; does nothing unless started as one.
pub(crate) fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let path = env_path("LOCK");
    match role.as_str() {
        // Each round: at GO-r, one try; the winner holds until REL-r.
        "try_racer" => {
            let local = env_path("LOCAL");
            let rounds: u32 = std::env::var("ROUNDS").unwrap().parse().unwrap();
            let lock = FileLock::with_options(&path, soft());
            for round in 0..rounds {
                wait_for_file(&local.join(format!("go-{round}")));
                match lock.try_lock() {
                    Ok(guard) => {
                        enter(&local.join("inside"));
                        let held = guard.still_held().unwrap();
                        say(&format!("held {} {held}", guard.token().unwrap()));
                        wait_for_file(&local.join(format!("rel-{round}")));
                        std::fs::remove_file(local.join("inside")).unwrap();
                        guard.unlock().unwrap();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => say("busy"),
                    // With its causes: a rare I/O error here (seen once in
                    // CI) must say which system call failed and why.
                    Err(e) => {
                        let mut said = format!("error {e} [{:?}]", e.kind());
                        let mut cause = std::error::Error::source(&e);
                        while let Some(c) = cause {
                            said.push_str(&format!(": {c}"));
                            cause = c.source();
                        }
                        say(&said)
                    }
                }
            }
        }
        // ROUNDS waits with a deadline; each holder logs its token in the
        // local LOG while it holds the lock.
        "wait_racer" => {
            let local = env_path("LOCAL");
            let rounds: u32 = std::env::var("ROUNDS").unwrap().parse().unwrap();
            let lock = FileLock::with_options(&path, soft());
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(local.join("log"))
                .unwrap();
            for _ in 0..rounds {
                let guard = lock.lock_blocking_timeout(Duration::from_secs(120));
                let guard = guard.unwrap();
                enter(&local.join("inside"));
                log.write_all(format!("{}\n", guard.token().unwrap()).as_bytes())
                    .unwrap();
                std::thread::sleep(Duration::from_millis(2));
                std::fs::remove_file(local.join("inside")).unwrap();
                guard.unlock().unwrap();
            }
            say("done");
        }
        // Take the lock and hold it until killed.
        "hold" => {
            let guard = FileLock::with_options(&path, soft()).try_lock().unwrap();
            say(&format!("locked {}", guard.token().unwrap()));
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Take a lease; once CHECK appears, say whether it is still held,
        // whether `lost()` fires, and what unlocking says.
        "lease" => {
            let ttl = Duration::from_millis(std::env::var("TTL_MS").unwrap().parse().unwrap());
            let guard = FileLock::with_options(&path, LockOptions::new().lease(ttl))
                .try_lock()
                .unwrap();
            say(&format!("locked {}", guard.token().unwrap()));
            wait_for_file(&env_path("CHECK"));
            say(&format!("still_held {}", guard.still_held().unwrap()));
            let lost = futures_lite::future::block_on(futures_lite::future::or(
                async { Some(guard.lost(Duration::from_millis(10)).await.kind()) },
                async {
                    async_io::Timer::after(Duration::from_secs(10)).await;
                    None
                },
            ));
            say(&format!("lost {lost:?}"));
            say(&format!(
                "unlock {:?}",
                guard.unlock().map_err(|e| e.kind())
            ));
        }
        // Run-once across processes; the work appends a line to COUNT.
        "once" => {
            wait_for_file(&env_path("GO"));
            let count = env_path("COUNT");
            let outcome = lockyard::once_with(&path, "v1", &soft(), || {
                let mut f = std::fs::OpenOptions::new().append(true).open(&count)?;
                f.write_all(b"ran\n")?;
                std::thread::sleep(Duration::from_millis(50));
                Ok::<_, std::io::Error>(())
            })
            .unwrap();
            say(&format!("ran {}", outcome.ran()));
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_on(role: &str, lock: &Path, extra: &[(&str, &str)]) -> common::Kid {
    let mut args = vec![("LOCK", lock.to_str().unwrap())];
    args.extend_from_slice(extra);
    spawn_child(ENTRY, role, &args)
}

/// Runs 16 `try_racer` processes, 8 on each mount, for `rounds` rounds on
/// the lock `name`; `before` runs before each round's start. Each round
/// exactly one holds the lock, knows it holds it, and its token is above
/// the last round's; the next round starts once it let go.
fn race_rounds(da: &Path, db: &Path, name: &str, rounds: u32, mut before: impl FnMut(u32)) {
    const RACERS: usize = 16;
    let local = tempdir();
    let rounds_s = rounds.to_string();
    let local_s = local.path().to_str().unwrap();
    let mut racers = Children(
        (0..RACERS)
            .map(|i| {
                let dir = if i % 2 == 0 { da } else { db };
                spawn_on(
                    "try_racer",
                    &dir.join(name),
                    &[("LOCAL", local_s), ("ROUNDS", &rounds_s)],
                )
            })
            .collect(),
    );
    let mut last_token = 0;
    for round in 0..rounds {
        before(round);
        std::fs::write(local.path().join(format!("go-{round}")), "").unwrap();
        let mut holders = Vec::new();
        for (i, racer) in racers.0.iter_mut().enumerate() {
            let said = next_message(racer).unwrap_or_default();
            if let Some(rest) = said.strip_prefix("held ") {
                holders.push(rest.to_string());
            } else {
                assert_eq!(said, "busy", "round {round}, racer {i}");
            }
        }
        assert_eq!(holders.len(), 1, "round {round}: holders {holders:?}");
        let (token, still) = holders[0].split_once(' ').unwrap();
        assert_eq!(
            still, "true",
            "round {round}: the holder thinks it lost the lock"
        );
        let token: u64 = token.parse().unwrap();
        assert!(
            token > last_token,
            "round {round}: token {token} after {last_token}"
        );
        last_token = token;
        std::fs::write(local.path().join(format!("rel-{round}")), "").unwrap();
        let since = Instant::now();
        while da.join(name).exists() {
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "round {round}: never released"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for racer in std::mem::take(&mut racers.0) {
        expect_success(racer);
    }
    eprintln!("{name}: {rounds} rounds x {RACERS} processes on 2 mounts, one holder each round");
}

/// 16 processes, 8 on each mount, each round one `try_lock` each: exactly
/// one holder per round, it knows it holds the lock, and tokens increase.
pub(crate) fn try_lock_across_two_mounts_has_one_holder_per_round() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    race_rounds(&da, &db, "race.lock", 25, |_| {});
}

/// Each round a stale lock sits at the path, written through one mount: a
/// dead process's soft lock on even rounds, a live process's lapsed lease
/// on odd ones. 16 processes on both mounts race to break it with one
/// `try_lock` each: exactly one gets it, and tokens increase.
pub(crate) fn sixteen_processes_on_two_mounts_break_a_stale_lock_once_per_round() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let local = tempdir();
    let (host, boot, _) = common::local_identity(local.path());
    // The control file, as a first user would leave it.
    drop(
        FileLock::with_options(da.join("stale.lock"), soft())
            .try_lock()
            .unwrap(),
    );
    race_rounds(&da, &db, "stale.lock", 20, |round| {
        let lapsed_lease = round % 2 == 1;
        let stale = forge_record(&Forged {
            pid: if lapsed_lease {
                std::process::id()
            } else {
                DEAD_PID
            },
            kind: if lapsed_lease { "lease" } else { "soft" },
            host: &host,
            boot: boot.as_deref(),
            start: None,
            acquired: now_secs() - 60,
            ttl_secs: lapsed_lease.then_some(1),
            token: 1,
        });
        std::fs::write(da.join("stale.lock"), stale).unwrap();
    });
}

/// A lease renewed through one mount outlives its TTL: the other mount
/// never gets in while it is renewed, and gets in once it is released.
pub(crate) fn a_renewed_lease_is_not_taken_over_from_the_other_mount() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let ttl = Duration::from_millis(300);
    let guard = FileLock::with_options(da.join("r.lock"), LockOptions::new().lease(ttl))
        .try_lock()
        .unwrap();
    let other = FileLock::with_options(db.join("r.lock"), LockOptions::new().lease(ttl));
    let since = Instant::now();
    while since.elapsed() < ttl * 4 {
        guard.refresh().unwrap();
        assert!(guard.still_held().unwrap());
        assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
        std::thread::sleep(ttl / 4);
    }
    guard.unlock().unwrap();
    drop(
        other
            .lock_blocking_timeout(Duration::from_secs(10))
            .unwrap(),
    );
}

/// 16 processes on two mounts each wait for the lock 8 times: never two
/// inside, tokens strictly increasing in the order of acquisition.
pub(crate) fn waiting_across_two_mounts_never_overlaps_and_tokens_increase() {
    const RACERS: usize = 16;
    const ROUNDS: u32 = 8;
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let local = tempdir();
    std::fs::write(local.path().join("log"), "").unwrap();
    let rounds = ROUNDS.to_string();
    let local_s = local.path().to_str().unwrap();
    let started = Instant::now();
    let mut racers = Children(
        (0..RACERS)
            .map(|i| {
                let dir = if i % 2 == 0 { &da } else { &db };
                spawn_on(
                    "wait_racer",
                    &dir.join("wait.lock"),
                    &[("LOCAL", local_s), ("ROUNDS", &rounds)],
                )
            })
            .collect(),
    );
    for racer in &mut racers.0 {
        wait_for_line(racer, "done");
    }
    for racer in std::mem::take(&mut racers.0) {
        expect_success(racer);
    }
    let text = std::fs::read_to_string(local.path().join("log")).unwrap();
    let tokens: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(tokens.len(), RACERS * ROUNDS as usize);
    for w in tokens.windows(2) {
        assert!(w[1] > w[0], "token {} after {}: {tokens:?}", w[1], w[0]);
    }
    eprintln!(
        "waiting race: {} acquisitions by {RACERS} processes on 2 mounts in {:.1} s, tokens increasing",
        tokens.len(),
        started.elapsed().as_secs_f64()
    );
}

/// A holder SIGKILLed on one mount: processes on both mounts break the
/// stale lock, one at a time, and the first token after it is higher. A
/// live holder on the other mount is never broken meanwhile.
pub(crate) fn a_killed_holder_is_broken_once_and_a_live_one_never() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let mut holder = Children(vec![spawn_on("hold", &da.join("k.lock"), &[])]);
    let said = next_message(&mut holder.0[0]).unwrap();
    let dead_token: u64 = said.strip_prefix("locked ").unwrap().parse().unwrap();

    // Alive: busy from the other mount, whatever stale_after says.
    let other = FileLock::with_options(db.join("k.lock"), soft().stale_after(Some(Duration::ZERO)));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);

    let _ = holder.0[0].kill();
    let _ = holder.0[0].wait();
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let breaker = FileLock::with_options(
        db.join("k.lock"),
        soft().on_stale(move |v| {
            seen.lock().unwrap().push(v.reason());
            true
        }),
    );
    let guard = breaker
        .lock_blocking_timeout(Duration::from_secs(30))
        .unwrap();
    assert!(guard.token().unwrap() > dead_token);
    assert_eq!(
        reasons.lock().unwrap().as_slice(),
        [StaleReason::ProcessDead]
    );
    assert!(guard.still_held().unwrap());
    // Nobody on the first mount gets in while it is held.
    let first_mount = FileLock::with_options(da.join("k.lock"), soft());
    assert_eq!(
        first_mount.try_lock().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    guard.unlock().unwrap();
    drop(
        first_mount
            .lock_blocking_timeout(Duration::from_secs(30))
            .unwrap(),
    );
}

/// A lease holder stopped with SIGSTOP on one mount is taken over from the
/// other only after its TTL; once continued, it learns it lost the lock.
pub(crate) fn a_stopped_lease_holder_is_taken_over_after_its_ttl_and_finds_out() {
    use rustix::process::{kill_process, Pid, Signal};
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let local = tempdir();
    let check = local.path().join("check");
    let ttl = Duration::from_millis(1500);
    let ttl_ms = ttl.as_millis().to_string();
    let mut holder = Children(vec![spawn_on(
        "lease",
        &da.join("l.lock"),
        &[("TTL_MS", &ttl_ms), ("CHECK", check.to_str().unwrap())],
    )]);
    let said = next_message(&mut holder.0[0]).unwrap();
    let locked_at = Instant::now();
    let old_token: u64 = said.strip_prefix("locked ").unwrap().parse().unwrap();
    let pid = Pid::from_raw(holder.0[0].id() as i32).unwrap();
    kill_process(pid, Signal::STOP).unwrap();

    let taker = FileLock::with_options(db.join("l.lock"), LockOptions::new().lease(ttl));
    let guard = taker
        .lock_blocking_timeout(Duration::from_secs(30))
        .unwrap();
    let waited = locked_at.elapsed();
    assert!(
        waited >= ttl,
        "taken over after {waited:?}, before the TTL {ttl:?}"
    );
    assert!(guard.token().unwrap() > old_token);

    kill_process(pid, Signal::CONT).unwrap();
    std::fs::write(&check, "").unwrap();
    let child = &mut holder.0[0];
    assert_eq!(next_message(child).as_deref(), Some("still_held false"));
    assert_eq!(next_message(child).as_deref(), Some("lost Some(Lost)"));
    assert_eq!(next_message(child).as_deref(), Some("unlock Err(Lost)"));
    // The new holder's lock survived the old holder's unlock.
    assert!(guard.still_held().unwrap());
    guard.unlock().unwrap();
    expect_success(std::mem::take(&mut holder.0).remove(0));
}

/// Four processes on each mount call `once_with` (soft) at the same time:
/// the work runs exactly once.
pub(crate) fn once_across_two_mounts_runs_the_work_once() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let local = tempdir();
    let count = local.path().join("count");
    std::fs::write(&count, "").unwrap();
    let go = local.path().join("go");
    let mut children = Children(
        (0..8)
            .map(|i| {
                let dir = if i % 2 == 0 { &da } else { &db };
                spawn_on(
                    "once",
                    &dir.join("tool.installed"),
                    &[
                        ("GO", go.to_str().unwrap()),
                        ("COUNT", count.to_str().unwrap()),
                    ],
                )
            })
            .collect(),
    );
    std::fs::write(&go, "").unwrap();
    let mut ran = 0;
    for child in &mut children.0 {
        match next_message(child).as_deref() {
            Some("ran true") => ran += 1,
            Some("ran false") => {}
            other => panic!("{other:?}"),
        }
    }
    for child in std::mem::take(&mut children.0) {
        expect_success(child);
    }
    assert_eq!(ran, 1);
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "ran\n");
}

/// A record with this machine's host name but another boot id, on a
/// network filesystem: another machine with the same name (a cloned VM)
/// may hold it, so it is not judged "rebooted"; it waits for
/// `stale_after`. On a local disk the same record is provably a previous
/// boot's.
pub(crate) fn our_host_name_with_another_boot_id_is_not_ours_on_a_network_filesystem() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, _db) = shared_dir(&a, &b);
    let local = tempdir();
    let (host, _, _) = common::local_identity(local.path());
    let record = forge_record(&Forged {
        pid: DEAD_PID,
        kind: "soft",
        host: &host,
        boot: Some("another-boot-of-another-machine"),
        start: None,
        acquired: now_secs(),
        ttl_secs: None,
        token: 3,
    });
    for dir in [&da, &local.path().to_path_buf()] {
        // The control file first, then the forged sidecar.
        drop(
            FileLock::with_options(dir.join("h.lock"), soft())
                .try_lock()
                .unwrap(),
        );
        std::fs::write(dir.join("h.lock"), &record).unwrap();
    }
    let e = FileLock::with_options(da.join("h.lock"), soft())
        .try_lock()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    let reasons = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let local_lock = FileLock::with_options(
        local.path().join("h.lock"),
        soft().on_stale(move |v| {
            seen.lock().unwrap().push(v.reason());
            true
        }),
    );
    drop(local_lock.try_lock().unwrap());
    assert_eq!(reasons.lock().unwrap().as_slice(), [StaleReason::Rebooted]);
}

/// A holder in another UTS namespace, with another host name, on one
/// mount: from the other mount it cannot be checked, so it is never broken
/// before `stale_after`.
pub(crate) fn a_holder_under_another_host_name_is_not_broken_before_stale_after() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "hostname machine-b && exec \"{}\" {ENTRY} --exact --ignored --nocapture --test-threads=1",
        exe.display()
    );
    let mut holder = Children(vec![common::Kid(
        std::process::Command::new("unshare")
            .args(["--uts", "sh", "-c", &script])
            .env(ROLE_VAR, "hold")
            .env("LOCK", da.join("u.lock"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )]);
    next_message(&mut holder.0[0]).unwrap();
    let record = std::fs::read(db.join("u.lock")).unwrap();
    let rec = lockyard::parse_record(&record).unwrap();
    assert_eq!(rec.host(), "machine-b");
    let lock = FileLock::with_options(db.join("u.lock"), soft());
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    // Even once it is dead: nothing here can prove it.
    let _ = holder.0[0].kill();
    let _ = holder.0[0].wait();
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    // After stale_after, it goes.
    let patient = FileLock::with_options(
        db.join("u.lock"),
        soft().stale_after(Some(Duration::from_millis(200))),
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(patient.try_lock().unwrap());
}

/// The strict lock on sshfs: OS locks do not exclude across the two
/// mounts, and lockyard refuses it unless told every user is on this
/// machine.
pub(crate) fn strict_locks_are_refused_where_os_locks_stay_on_each_machine() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let (da, db) = shared_dir(&a, &b);
    let e = FileLock::new(da.join("s.lock")).try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // The reason (and the way out) is the error's source.
    let cause = std::error::Error::source(&e).map(ToString::to_string);
    assert!(cause.is_some_and(|c| c.contains("soft()")), "{e:?}");
    // What lockyard protects users from: both mounts "hold" it at once.
    let local = LockOptions::new().local_os_locks(true);
    let one = FileLock::with_options(da.join("s.lock"), local.clone())
        .try_lock()
        .unwrap();
    let two = FileLock::with_options(db.join("s.lock"), local)
        .try_lock()
        .unwrap();
    drop((one, two));
}

/// With sshfs's default caches, exclusion still holds; a release is seen
/// from the other mount once its caches let it (figures printed for the
/// guide's advice on mount options, `guide::holders`).
pub(crate) fn cached_mounts_still_exclude() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS_CACHED");
    release_seen_from_the_other_mount(&a, &b, "default caches");
}

pub(crate) fn a_release_is_seen_soon_without_caches() {
    let (a, b) = mounts("LOCKYARD_TEST_SSHFS");
    let took = release_seen_from_the_other_mount(&a, &b, "caches off");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Holds on one mount, waits on the other: busy while held, acquired after
/// the release; returns how long after it.
fn release_seen_from_the_other_mount(a: &Path, b: &Path, what: &str) -> Duration {
    let (da, db) = shared_dir(a, b);
    let mut took = Vec::new();
    for round in 0..3 {
        let name = format!("c{round}.lock");
        let first = FileLock::with_options(da.join(&name), soft())
            .try_lock()
            .unwrap();
        let other = FileLock::with_options(db.join(&name), soft());
        assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
        let released = Instant::now();
        first.unlock().unwrap();
        let guard = other
            .lock_blocking_timeout(Duration::from_secs(60))
            .unwrap();
        took.push(released.elapsed());
        drop(guard);
    }
    eprintln!("{what}: a release on one mount was seen from the other after {took:?}");
    took.into_iter().max().unwrap_or_default()
}
