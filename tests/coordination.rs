//! Coordination patterns: named lock directories, run-once across
//! processes, closure helpers, reentrancy, upgrade and downgrade.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lockyard::{
    decode_lock_name, encode_lock_name, once, once_async, once_keyed, with_lock, with_lock_async,
    with_lock_shared, ErrorKind, FileLock, LockDir, LockOptions, LockState, OnceOutcome,
    ReentrantLock, Wait,
};

use common::{
    env_path, expect_success, next_message, say, spawn_child, tempdir, wait_for_line, Children,
    ROLE_VAR,
};

const ENTRY: &str = "child_main";

/// Work that counts its runs in a file (appending one line per run).
fn counted_init(counter: &Path, pause: Duration) -> std::io::Result<u32> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(counter)?;
    writeln!(f, "{}", std::process::id())?;
    std::thread::sleep(pause);
    Ok(7)
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The entry point of child processes; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let marker = env_path("MARKER");
    let counter = env_path("COUNTER");
    match role.as_str() {
        // Wait for the go signal, then run-once with a slow init.
        "once" => {
            let go = env_path("GO");
            while !go.exists() {
                std::thread::yield_now();
            }
            let out = once(&marker, || {
                counted_init(&counter, Duration::from_millis(200))
            })
            .unwrap();
            say(if out.ran() { "ran" } else { "done" });
        }
        // Enter init, say so, and hang there until killed.
        "die_in_init" => {
            let _ = once(&marker, || -> std::io::Result<()> {
                counted_init(&counter, Duration::ZERO)?;
                say("in init");
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
        // The download coordinator: a keyed run-once.
        "download" => {
            let go = env_path("GO");
            while !go.exists() {
                std::thread::yield_now();
            }
            let out = once_keyed(&marker, "llvm-18.1.8", || {
                counted_init(&counter, Duration::from_millis(100))
            })
            .unwrap();
            say(if out.ran() { "doer" } else { "user" });
        }
        // Report whether a lock can be taken shared / exclusive right now.
        "probe" => {
            let lock = FileLock::new(&marker);
            let shared = lock.try_lock_shared().is_ok();
            let exclusive = lock.try_lock().is_ok();
            say(&format!("shared={shared} exclusive={exclusive}"));
        }
        // Hold a shared lock until told to release.
        "hold_shared" => {
            let guard = FileLock::new(&marker).try_lock_shared().unwrap();
            say("locked");
            let release = env_path("COUNTER"); // reused as the release signal
            while !release.exists() {
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(guard);
            say("released");
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, marker: &Path, counter: &Path, go: &Path) -> common::Kid {
    spawn_child(
        ENTRY,
        role,
        &[
            ("MARKER", marker.to_str().unwrap()),
            ("COUNTER", counter.to_str().unwrap()),
            ("GO", go.to_str().unwrap()),
        ],
    )
}

/// Starts `n` children in `role` on one marker, lets them go at once, and
/// returns what each said, after checking they all exited cleanly, with
/// how many times the work ran.
fn race(role: &str, n: usize, dir: &Path) -> (Vec<String>, usize) {
    let (marker, counter, go) = (dir.join("m"), dir.join("count"), dir.join("go"));
    let mut kids = Children(
        (0..n)
            .map(|_| spawn(role, &marker, &counter, &go))
            .collect(),
    );
    std::fs::write(&go, "").unwrap();
    let said: Vec<_> = kids
        .0
        .iter_mut()
        .map(|c| next_message(c).unwrap())
        .collect();
    for child in std::mem::take(&mut kids.0) {
        expect_success(child);
    }
    (said, runs(&counter))
}

#[test]
fn once_across_eight_processes_runs_init_exactly_once() {
    let dir = tempdir();
    let (said, runs) = race("once", 8, dir.path());
    assert_eq!(said.iter().filter(|s| *s == "ran").count(), 1, "{said:?}");
    assert_eq!(said.iter().filter(|s| *s == "done").count(), 7, "{said:?}");
    assert_eq!(runs, 1);
    let marker = dir.path().join("m");
    // Later calls return at once, without running anything.
    assert_eq!(
        once(&marker, || -> Result<(), std::io::Error> { unreachable!() }).unwrap(),
        OnceOutcome::AlreadyDone
    );
}

#[test]
fn killed_inside_init_means_the_next_process_runs_it() {
    let dir = tempdir();
    let (marker, counter, go) = (
        dir.path().join("m"),
        dir.path().join("count"),
        dir.path().join("go"),
    );
    let mut doomed = spawn("die_in_init", &marker, &counter, &go);
    wait_for_line(&mut doomed, "in init");
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    assert!(!marker.exists(), "no marker after a crash");
    let out = once(&marker, || counted_init(&counter, Duration::ZERO)).unwrap();
    assert_eq!(out, OnceOutcome::Ran(7));
    assert_eq!(runs(&counter), 2);
}

#[test]
fn failing_init_propagates_and_the_next_call_retries() {
    let dir = tempdir();
    let marker = dir.path().join("m");
    let e = once(&marker, || Err::<(), _>(std::io::Error::other("disk full"))).unwrap_err();
    assert_eq!(e.to_string(), "disk full");
    assert!(
        e.get_ref()
            .is_some_and(|inner| !inner.is::<lockyard::Error>()),
        "{e:?}"
    );
    assert!(!marker.exists());
    assert_eq!(
        once(&marker, || Ok::<_, std::io::Error>(1)).unwrap(),
        OnceOutcome::Ran(1)
    );
    // A panicking init releases the lock and writes nothing either.
    let other = dir.path().join("p");
    let caught = std::panic::catch_unwind(|| {
        once(&other, || -> Result<(), std::io::Error> { panic!("boom") })
    });
    assert!(caught.is_err());
    assert!(!other.exists());
    assert!(
        FileLock::for_file(&other).try_lock().is_ok(),
        "lock left held after a panic"
    );
    assert!(once(&other, || Ok::<_, std::io::Error>(())).unwrap().ran());
}

#[test]
fn keyed_once_reruns_when_the_key_changes() {
    let dir = tempdir();
    let marker = dir.path().join("toolchain.ready");
    let n = AtomicUsize::new(0);
    let run = |key: &str| {
        once_keyed(&marker, key, || {
            n.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(())
        })
        .unwrap()
        .ran()
    };
    assert!(run("llvm-18.1.8"));
    assert!(!run("llvm-18.1.8"));
    assert!(run("llvm-19.1.0"));
    assert!(!run("llvm-19.1.0"));
    assert!(run("llvm-18.1.8"));
    assert_eq!(n.load(Ordering::SeqCst), 3);
    // A damaged marker counts as "not done".
    std::fs::write(&marker, b"\xff\xfe garbage").unwrap();
    assert!(run("llvm-18.1.8"));
}

#[test]
fn async_once_dropped_midway_leaves_no_marker_and_no_lock() {
    let dir = tempdir();
    let marker = dir.path().join("m");
    futures::executor::block_on(async {
        let mut fut = Box::pin(once_async(&marker, || async {
            async_io::Timer::after(Duration::from_secs(3600)).await;
            Ok::<_, std::io::Error>(())
        }));
        assert!(futures_lite::future::poll_once(&mut fut).await.is_none());
        drop(fut);
        assert!(!marker.exists());
        assert!(FileLock::for_file(&marker).try_lock().is_ok());
        let out = once_async(&marker, || async { Ok::<_, std::io::Error>(5) })
            .await
            .unwrap();
        assert_eq!(out, OnceOutcome::Ran(5));
    });
}

#[test]
fn download_coordinator_processes_agree_on_one_doer() {
    let dir = tempdir();
    let (said, runs) = race("download", 4, dir.path());
    assert_eq!(said.iter().filter(|s| *s == "doer").count(), 1, "{said:?}");
    assert_eq!(runs, 1);
}

#[test]
fn name_encoding_table() {
    let table: &[(&str, &str)] = &[
        ("registry", "registry"),
        ("toolchain llvm-18.1.8", "toolchain%20llvm-18.1.8"),
        ("project /src/app", "project%20%2Fsrc%2Fapp"),
        ("a\\b", "a%5Cb"),
        ("..", "%2E."),
        (".", "%2E"),
        (".hidden", "%2Ehidden"),
        ("100%", "100%25"),
        ("Registry", "%52egistry"),
        ("nul\0byte", "nul%00byte"),
        ("tab\tnewline\n", "tab%09newline%0A"),
        ("con", "%63on"),
        ("NUL", "%4E%55%4C"),
        ("com1.txt", "%63om1.txt"),
        ("é", "%C3%A9"),
    ];
    for (name, encoded) in table {
        assert_eq!(encode_lock_name(name).as_deref(), Ok(*encoded), "{name:?}");
        assert_eq!(
            decode_lock_name(encoded).as_deref(),
            Some(*name),
            "{encoded}"
        );
    }
    assert!(encode_lock_name("").is_err());
    assert!(encode_lock_name(&"x".repeat(241)).is_err());
    assert!(encode_lock_name(&"x".repeat(240)).is_ok());
    assert!(
        encode_lock_name(&"/".repeat(81)).is_err(),
        "escaping counts towards the limit"
    );
    // Non-canonical encodings do not decode, so no two files share a name.
    for bad in ["%2e.", "Registry", "%72egistry", "a%2", "%ZZ", "a b"] {
        assert_eq!(decode_lock_name(bad), None, "{bad}");
    }
    // Names differing only in case, or in separators, get different files.
    let dir = LockDir::new("/locks");
    let paths: std::collections::HashSet<_> = ["a", "A", "a/b", "a\\b", "a%2Fb", "a b"]
        .iter()
        .map(|n| dir.path_of(n).unwrap())
        .collect();
    assert_eq!(paths.len(), 6);
    let e = dir.path_of("").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
}

#[test]
fn lock_dir_waits_per_name_and_lists() {
    let tmp = tempdir();
    let locks = LockDir::new(tmp.path().join("locks"))
        .default_wait(Wait::TryOnce)
        .wait_for("registry", Wait::For(Duration::from_millis(50)));
    assert!(
        locks.list().unwrap().is_empty(),
        "a missing directory has no locks"
    );
    let held = locks.lock_blocking("registry").unwrap();
    let project = locks.lock_shared_blocking("project /src/app").unwrap();
    // The per-name wait applies: a timeout for "registry"...
    let e = futures::executor::block_on(locks.lock("registry")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    // ...and the directory default (try once) elsewhere.
    // A handle is a plain FileLock: its own waits apply, not the directory's.
    let other = locks.handle("project /src/app").unwrap();
    assert_eq!(other.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(
        other.try_lock_shared().is_ok(),
        "shared holders admit each other"
    );
    assert_eq!(
        locks.lock_blocking("project /src/app").unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let e = futures::executor::block_on(locks.lock("")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);

    let list = locks.list().unwrap();
    let names: Vec<_> = list
        .iter()
        .map(|i| (i.name().to_string(), i.state()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("project /src/app".to_string(), LockState::HeldShared),
            ("registry".to_string(), LockState::HeldExclusive),
        ]
    );
    assert_eq!(list[1].holder().unwrap().pid(), std::process::id());
    drop((held, project));
    assert!(locks
        .list()
        .unwrap()
        .iter()
        .all(|i| i.state() == LockState::Free));
    let report = locks.clean_stale().unwrap();
    // Both files were created by lockyard (with a record from the start,
    // even "project", which was only ever held shared) and nobody holds
    // them: both removed.
    assert_eq!(report.removed().len(), 2, "{report:?}");
    assert!(report.kept().is_empty(), "{report:?}");
}

#[test]
fn helpers_pass_results_through_and_release_on_panic() {
    let dir = tempdir();
    let path = dir.path().join("h.lock");
    let r: Result<Result<u8, &str>, lockyard::Error> = with_lock(&path, || Err("mine"));
    assert_eq!(r.unwrap(), Err("mine"));
    assert_eq!(with_lock_shared(&path, || 3).unwrap(), 3);

    let caught = std::panic::catch_unwind(|| with_lock(&path, || panic!("inside")));
    assert!(caught.is_err());
    assert!(
        FileLock::new(&path).try_lock().is_ok(),
        "lock left held after a panic"
    );

    futures::executor::block_on(async {
        let v = with_lock_async(&path, || async { 9 }).await.unwrap();
        assert_eq!(v, 9);
        // Dropped midway: released.
        let entered = std::sync::atomic::AtomicBool::new(false);
        let mut fut = Box::pin(with_lock_async(&path, || async {
            entered.store(true, std::sync::atomic::Ordering::SeqCst);
            async_io::Timer::after(Duration::from_secs(3600)).await;
        }));
        // Opening the file may go through the blocking pool: poll until the
        // closure runs (the lock is then held).
        while !entered.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(futures_lite::future::poll_once(&mut fut).await.is_none());
            async_io::Timer::after(Duration::from_millis(1)).await;
        }
        assert_eq!(
            FileLock::new(&path).try_lock().unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        drop(fut);
        assert!(FileLock::new(&path).try_lock().is_ok());
    });
    // A lockyard failure is the outer error, never confused with the closure's.
    let e = with_lock(dir.path(), || Ok::<(), &str>(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAFile);
}

#[test]
fn reentrant_lock_counts_per_thread_and_excludes_others() {
    let dir = tempdir();
    let lock = ReentrantLock::new(FileLock::new(dir.path().join("r.lock")));
    let a = lock.lock().unwrap();
    let b = lock.try_lock().unwrap();
    assert_eq!(lock.depth(), 2);
    let other = lock.clone();
    let from_other_thread =
        std::thread::spawn(move || other.try_lock().map(drop).unwrap_err().kind());
    assert_eq!(from_other_thread.join().unwrap(), ErrorKind::WouldBlock);
    // Another handle on the same file (as another process would) is shut out.
    assert!(FileLock::new(dir.path().join("r.lock")).try_lock().is_err());
    drop(a);
    assert_eq!(lock.depth(), 1);
    assert!(FileLock::new(dir.path().join("r.lock")).try_lock().is_err());
    drop(b);
    assert_eq!(lock.depth(), 0);
    assert!(FileLock::new(dir.path().join("r.lock")).try_lock().is_ok());
}

fn probe(path: &Path) -> String {
    let mut child = spawn_child(
        ENTRY,
        "probe",
        &[("MARKER", path.to_str().unwrap()), ("COUNTER", "-")],
    );
    let said = next_message(&mut child).unwrap();
    expect_success(child);
    said
}

#[test]
fn upgrade_and_downgrade_against_another_process() {
    let dir = tempdir();
    let path = dir.path().join("ud.lock");
    let release = dir.path().join("release");
    let lock = FileLock::new(&path);

    let shared = lock.try_lock_shared().unwrap();
    let exclusive = shared.try_upgrade().unwrap();
    assert!(exclusive.is_exclusive());
    assert!(
        exclusive.token().is_some(),
        "an upgrade writes a holder record"
    );
    assert_eq!(probe(&path), "shared=false exclusive=false");
    let shared = exclusive.downgrade().unwrap();
    assert!(shared.is_shared());
    assert_eq!(probe(&path), "shared=true exclusive=false");

    // Another process shares it: the upgrade fails and hands the guard back.
    let mut holder = spawn_child(
        ENTRY,
        "hold_shared",
        &[
            ("MARKER", path.to_str().unwrap()),
            ("COUNTER", release.to_str().unwrap()),
        ],
    );
    wait_for_line(&mut holder, "locked");
    let err = shared.try_upgrade().unwrap_err();
    assert_eq!(err.error().kind(), ErrorKind::WouldBlock);
    let shared = err.into_guard().expect("the shared guard comes back");
    assert!(shared.is_shared());
    assert_eq!(probe(&path), "shared=true exclusive=false");
    std::fs::write(&release, "").unwrap();
    wait_for_line(&mut holder, "released");
    expect_success(holder);
    let exclusive = shared.try_upgrade().unwrap();
    assert_eq!(probe(&path), "shared=false exclusive=false");
    drop(exclusive);
    assert_eq!(probe(&path), "shared=true exclusive=true");

    // Two guards of this process share it: the upgrade waits for neither.
    let a = lock.try_lock_shared().unwrap();
    let b = lock.try_lock_shared().unwrap();
    let a = a.try_upgrade().unwrap_err().into_guard().unwrap();
    drop(b);
    assert!(a.try_upgrade().unwrap().is_exclusive());
}

#[test]
fn soft_locks_in_a_lock_dir() {
    let tmp = tempdir();
    let locks = LockDir::new(tmp.path()).with_options(LockOptions::new().soft().owner("svc"));
    let g = locks.try_lock("jobs").unwrap();
    // Soft locks are exclusive only: a downgrade is refused, guard intact.
    let err = g.downgrade().unwrap_err();
    assert_eq!(err.error().kind(), ErrorKind::ExclusiveOnly);
    let g = err.into_guard().expect("the guard comes back");
    assert!(g.is_exclusive() && g.still_held().unwrap());
    let list = locks.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state(), LockState::HeldExclusive);
    assert_eq!(list[0].holder().unwrap().owner(), Some("svc"));
    drop(g);
    assert!(
        locks.list().unwrap().is_empty(),
        "a released soft lock leaves no lock file"
    );
}

/// A lock directory used for a new name per request (a daemon's
/// per-request locks) keeps a bounded number of descriptors: names nobody
/// uses any more are let go.
#[cfg(target_os = "linux")]
#[test]
fn lock_dir_descriptors_stay_bounded() {
    let dir = common::tempdir();
    let locks = lockyard::LockDir::new(dir.path().join("locks"));
    let kept = locks.lock_blocking("kept").unwrap();
    let before = common::open_fds();
    for i in 0..1000 {
        drop(locks.lock_blocking(&format!("request-{i}")).unwrap());
    }
    let after = common::open_fds();
    eprintln!("lock dir: {before} descriptors before 1000 names, {after} after");
    assert!(
        after <= before + 150,
        "{before} descriptors before 1000 names, {after} after"
    );
    // A name in use keeps its lock through the pruning.
    assert_eq!(
        locks.try_lock("kept").unwrap_err().kind(),
        lockyard::ErrorKind::WouldBlock
    );
    drop(kept);
    drop(locks.try_lock("kept").unwrap());
}

/// Run-once in a function that returns `anyhow::Result`: `?` in one line,
/// blocking and async, with lockyard's own errors arriving as anyhow's.
#[test]
fn once_takes_question_mark_in_an_anyhow_function() {
    fn install(marker: &std::path::Path) -> anyhow::Result<bool> {
        Ok(once(marker, || anyhow::Ok(()))?.ran())
    }
    async fn warm(marker: &std::path::Path) -> anyhow::Result<bool> {
        Ok(once_async(marker, || async { anyhow::Ok(()) }).await?.ran())
    }
    let dir = tempdir();
    assert!(install(&dir.path().join("installed")).unwrap());
    assert!(!install(&dir.path().join("installed")).unwrap());
    assert!(futures::executor::block_on(warm(&dir.path().join("warm"))).unwrap());
    assert!(!futures::executor::block_on(warm(&dir.path().join("warm"))).unwrap());
    let e = install(&dir.path().join("missing/installed")).unwrap_err();
    let e = e.downcast::<lockyard::Error>().expect("lockyard's error");
    assert_eq!(e.kind(), ErrorKind::CreateDir, "{e}");
}
