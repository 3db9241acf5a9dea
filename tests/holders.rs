//! Holder records, fencing tokens, soft locks, stale verdicts, untrusted
//! lock-file content and `clean_stale`, within one process. (Recovery from
//! dead processes and racing breakers: `tests/soft_processes.rs`.)

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockyard::{
    clean_stale, clean_stale_dry_run, ErrorKind, FileLock, LockKind, LockOptions, StaleReason,
};

use common::{forge_record, local_identity, now_secs, tempdir, Forged, DEAD_PID};

fn soft() -> LockOptions {
    LockOptions::new().soft()
}

#[test]
fn strict_record_names_this_process_first_line_pid() {
    let dir = tempdir();
    let path = dir.path().join("rec.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().owner("indexer"));
    let guard = lock.try_lock().unwrap();
    let rec = guard.record().unwrap().clone();
    assert_eq!(rec.pid(), std::process::id());
    assert_eq!(rec.kind(), LockKind::Strict);
    assert_eq!(rec.owner(), Some("indexer"));
    assert!(rec.age() < Duration::from_secs(60));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().next().unwrap(), std::process::id().to_string());
    assert_eq!(lockyard::parse_record(text.as_bytes()).unwrap(), rec);
    assert_eq!(lock.holder().unwrap().unwrap().token(), rec.token());
    drop(guard);
    assert!(
        lock.holder().unwrap().is_none(),
        "a released lock has no holder"
    );
}

#[test]
fn tokens_increase_with_every_exclusive_acquisition() {
    let dir = tempdir();
    let path = dir.path().join("tok.lock");
    let a = FileLock::new(&path);
    let b = FileLock::new(&path);
    let mut last = 0;
    for i in 0..20 {
        let lock = if i % 2 == 0 { &a } else { &b };
        let guard = lock.lock_blocking().unwrap();
        let token = guard.token().unwrap();
        assert!(token > last, "token {token} after {last}");
        last = token;
    }
    // Shared holders write nothing and carry no token.
    assert!(a.try_lock_shared().unwrap().token().is_none());
    // The token survives the file's deletion (clock floor).
    std::fs::remove_file(&path).unwrap();
    let fresh = FileLock::new(&path).try_lock().unwrap();
    assert!(fresh.token().unwrap() > last);
}

#[test]
fn metadata_off_writes_nothing() {
    let dir = tempdir();
    let path = dir.path().join("bare.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().metadata(false));
    let guard = lock.try_lock().unwrap();
    assert!(guard.record().is_none() && guard.token().is_none());
    // The file lockyard created begins with a "free" record that marks it
    // as a lock file; acquisitions with metadata off leave it as it is.
    let created = std::fs::read(&path).unwrap();
    let first = lockyard::parse_record(&created).unwrap();
    assert_eq!(first.token(), 0);
    drop(guard);
    assert!(lock.holder().unwrap().is_none());
    drop(lock.try_lock().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), created);
}

#[test]
fn soft_lock_lifecycle() {
    let dir = tempdir();
    let path = dir.path().join("soft.lock");
    let a = FileLock::with_options(&path, soft().owner("a"));
    let b = FileLock::with_options(&path, soft());
    let guard = a.try_lock().unwrap();
    assert!(path.exists(), "the sidecar exists while held");
    let rec = lockyard::parse_record(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(rec.kind(), LockKind::Soft);
    assert_eq!(Some(rec.token()), guard.token());
    let e = b.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(e.to_string().contains("(owner \"a\")"), "{e}");
    assert!(guard.still_held().unwrap());
    let first = guard.token().unwrap();
    guard.unlock().unwrap();
    assert!(!path.exists(), "the sidecar is removed on release");
    assert!(dir.path().join("soft.lock.ctl").exists());
    let again = b.try_lock().unwrap();
    assert!(again.token().unwrap() > first);
    drop(again);
    // Soft locks are exclusive only.
    assert_eq!(
        b.try_lock_shared().unwrap_err().kind(),
        ErrorKind::ExclusiveOnly
    );
}

#[test]
fn soft_waiter_in_process_is_woken_on_release() {
    let dir = tempdir();
    let path = dir.path().join("wake.lock");
    let lock = FileLock::with_options(
        &path,
        soft().backoff(lockyard::Backoff::new(
            Duration::from_secs(3600),
            1,
            Duration::from_secs(3600),
        )),
    );
    let guard = lock.try_lock().unwrap();
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            lock.lock_blocking_timeout(Duration::from_secs(60))
                .map(|g| g.token())
        })
    };
    while lock.waiters() == 0 {
        std::thread::yield_now();
    }
    drop(guard);
    assert!(waiter.join().unwrap().unwrap().is_some());
}

/// Writes `bytes` as a left-behind sidecar at `path` (with its control file).
fn leave_sidecar(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn forged<'a>(host: &'a str, boot: Option<&'a str>, pid: u32, start: Option<u64>) -> Forged<'a> {
    Forged {
        pid,
        kind: "soft",
        host,
        boot,
        start,
        acquired: now_secs() - 1,
        ttl_secs: None,
        token: 41,
    }
}

/// Records what the on_stale hook saw.
fn recording_hook(opts: LockOptions, allow: bool) -> (LockOptions, Arc<Mutex<Vec<StaleReason>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let opts = opts.on_stale(move |s| {
        log.lock().unwrap().push(s.reason());
        allow
    });
    (opts, seen)
}

#[test]
fn dead_local_holder_is_recovered_at_once_and_token_continues() {
    let dir = tempdir();
    let (host, boot, _) = local_identity(dir.path());
    let path = dir.path().join("dead.lock");
    leave_sidecar(
        &path,
        &forge_record(&forged(&host, boot.as_deref(), DEAD_PID, None)),
    );
    let (opts, seen) = recording_hook(soft(), true);
    let guard = FileLock::with_options(&path, opts).try_lock().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::HolderGone]);
    assert!(guard.token().unwrap() > 41);
}

#[test]
fn hook_can_refuse_a_takeover() {
    let dir = tempdir();
    let (host, boot, _) = local_identity(dir.path());
    let path = dir.path().join("veto.lock");
    leave_sidecar(
        &path,
        &forge_record(&forged(&host, boot.as_deref(), DEAD_PID, None)),
    );
    let (opts, seen) = recording_hook(soft(), false);
    let e = FileLock::with_options(&path, opts).try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.holder().unwrap().pid(), DEAD_PID);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(path.exists());
}

#[cfg(target_os = "linux")]
#[test]
fn reused_pid_is_stale_when_os_locks_are_not_trusted() {
    let dir = tempdir();
    let (host, boot, start) = local_identity(dir.path());
    let me = std::process::id();
    let path = dir.path().join("reuse.lock");
    // Our own (live) PID, but with another start time: a reused PID.
    leave_sidecar(
        &path,
        &forge_record(&forged(
            &host,
            boot.as_deref(),
            me,
            Some(start.unwrap() + 1),
        )),
    );
    let (opts, seen) = recording_hook(soft().trust_os_lock(false), true);
    drop(FileLock::with_options(&path, opts).try_lock().unwrap());
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::PidReused]);

    // With the right start time the holder is alive: never broken.
    leave_sidecar(
        &path,
        &forge_record(&forged(&host, boot.as_deref(), me, start)),
    );
    let (opts, seen) = recording_hook(
        soft()
            .trust_os_lock(false)
            .stale_after(Some(Duration::ZERO)),
        true,
    );
    assert_eq!(
        FileLock::with_options(&path, opts)
            .try_lock()
            .unwrap_err()
            .kind(),
        ErrorKind::WouldBlock
    );
    assert!(seen.lock().unwrap().is_empty());

    // A dead PID on this host, OS locks not trusted: dead by PID.
    leave_sidecar(
        &path,
        &forge_record(&forged(&host, boot.as_deref(), DEAD_PID, None)),
    );
    let (opts, seen) = recording_hook(soft().trust_os_lock(false), true);
    drop(FileLock::with_options(&path, opts).try_lock().unwrap());
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::ProcessDead]);

    // From before the last boot.
    leave_sidecar(
        &path,
        &forge_record(&forged(&host, Some("another-boot"), me, start)),
    );
    let (opts, seen) = recording_hook(soft(), true);
    drop(FileLock::with_options(&path, opts).try_lock().unwrap());
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::Rebooted]);
}

#[test]
fn holder_on_another_host_is_never_judged_dead_by_pid() {
    let dir = tempdir();
    let path = dir.path().join("remote.lock");
    leave_sidecar(
        &path,
        &forge_record(&forged("some-other-host", Some("b"), DEAD_PID, None)),
    );
    for trust in [true, false] {
        let (opts, seen) = recording_hook(soft().trust_os_lock(trust).stale_after(None), true);
        let e = FileLock::with_options(&path, opts).try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert_eq!(e.holder().unwrap().host(), "some-other-host");
        assert!(seen.lock().unwrap().is_empty());
    }
    // Only age can make it stale (stale_after), counted from its renewal.
    let mut old = forged("some-other-host", Some("b"), DEAD_PID, None);
    old.acquired = now_secs() - 600;
    leave_sidecar(&path, &forge_record(&old));
    let (opts, seen) = recording_hook(soft(), true);
    drop(FileLock::with_options(&path, opts).try_lock().unwrap());
    assert!(
        matches!(seen.lock().unwrap()[0], StaleReason::TooOld(age) if age >= Duration::from_secs(599))
    );
}

#[test]
fn expired_lease_record_is_stale_wherever_its_holder_is() {
    let dir = tempdir();
    let path = dir.path().join("lease.lock");
    let mut rec = forged("some-other-host", None, DEAD_PID, None);
    rec.kind = "lease";
    rec.acquired = now_secs() - 10;
    rec.ttl_secs = Some(5);
    leave_sidecar(&path, &forge_record(&rec));
    let (opts, seen) = recording_hook(
        LockOptions::new()
            .lease(Duration::from_secs(5))
            .stale_after(None),
        true,
    );
    let guard = FileLock::with_options(&path, opts).try_lock().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![StaleReason::LeaseExpired]);
    assert_eq!(guard.record().unwrap().ttl(), Some(Duration::from_secs(5)));
    assert!(guard.record().unwrap().expires_at().is_some());
}

/// Hostile sidecar content: each is "held, holder unknown" (or a typed
/// error); none panics, hangs, or is ever deleted: lockyard publishes a
/// sidecar only with a complete record, so a file without one is not
/// provably lockyard's.
#[test]
fn untrusted_sidecar_content() {
    let dir = tempdir();
    let good = forge_record(&forged("h", None, 1, None));
    let mut future = String::from_utf8(good.clone()).unwrap();
    future = future.replace("lockyard-holder 1", "lockyard-holder 2");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"\x00\x01garbage\nmore garbage".to_vec()),
        ("huge", vec![b'7'; 10 << 20]),
        ("not-utf8", vec![0xff, 0xfe, 0xfd, b'\n']),
        ("future-version", future.into_bytes()),
        ("pid-only", b"4242\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.lock"));
        leave_sidecar(&path, &bytes);
        let lock = FileLock::with_options(&path, soft());
        let e = lock.try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{name}: {e}");
        assert!(e.holder().is_none(), "{name}");
        // It says what blocks it, in the error and in the state.
        assert!(e.is_foreign_file(), "{name}");
        assert!(
            e.to_string().contains("not a lockyard lock file"),
            "{name}: {e}"
        );
        assert!(
            e.to_string().contains("remove it if nothing uses it"),
            "{name}: {e}"
        );
        let e = lock
            .lock_blocking_timeout(Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{name}: {e}");
        assert!(e.is_foreign_file(), "{name}: {e}");
        assert!(
            e.to_string().contains("not a lockyard lock file"),
            "{name}: {e}"
        );
        assert!(lock.holder().unwrap().is_none(), "{name}");
        assert_eq!(
            lock.state().unwrap(),
            lockyard::LockState::Foreign,
            "{name}"
        );
        assert_eq!(
            lock.inspect().unwrap().state(),
            lockyard::LockState::Foreign,
            "{name}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was modified");
        // Not even once older than stale_after (here: at once).
        let lock = FileLock::with_options(&path, soft().stale_after(Some(Duration::ZERO)));
        std::thread::sleep(Duration::from_millis(5));
        let e = lock.try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "{name}: {e}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} was modified");
    }
}

#[cfg(unix)]
#[test]
fn hostile_sidecar_paths_are_typed_errors() {
    let dir = tempdir();
    let target = dir.path().join("target");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("link.lock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = FileLock::with_options(&link, soft())
        .try_lock()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Symlink, "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert!(link.symlink_metadata().is_ok());

    let sub = dir.path().join("dir.lock");
    std::fs::create_dir(&sub).unwrap();
    let e = FileLock::with_options(&sub, soft()).try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAFile, "{e}");
    assert!(sub.is_dir());
}

#[cfg(target_os = "linux")]
#[test]
fn fifo_sidecar_does_not_hang() {
    let dir = tempdir();
    let fifo = dir.path().join("fifo.lock");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let e = FileLock::with_options(&fifo, soft())
        .try_lock()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAFile, "{e}");
}

#[test]
fn clean_stale_removes_only_what_is_unused() {
    let dir = tempdir();
    let d = dir.path();
    let (host, boot, _) = local_identity(d);
    std::fs::remove_file(d.join("identity-probe.lock")).unwrap();

    // A strict lock used once, now free; one still held; one without a
    // record; a stale soft lock; a live soft lock.
    let unused = FileLock::new(d.join("unused.lock"));
    drop(unused.try_lock().unwrap());
    let busy = FileLock::new(d.join("busy.lock"));
    let _busy = busy.try_lock().unwrap();
    std::fs::write(d.join("foreign.lock"), b"").unwrap();
    let stale = FileLock::with_options(d.join("stale.lock"), soft());
    drop(stale.try_lock().unwrap()); // creates the control file
    leave_sidecar(
        &d.join("stale.lock"),
        &forge_record(&forged(&host, boot.as_deref(), DEAD_PID, None)),
    );
    let live = FileLock::with_options(d.join("live.lock"), soft());
    let _live = live.try_lock().unwrap();

    let names = |report: &lockyard::CleanReport| {
        let mut removed: Vec<_> = report
            .removed()
            .iter()
            .map(|s| {
                (
                    s.path().file_name().unwrap().to_string_lossy().into_owned(),
                    s.reason(),
                )
            })
            .collect();
        removed.sort_by(|a, b| a.0.cmp(&b.0));
        removed
    };
    // A dry run names exactly what the real run then removes, and touches
    // nothing.
    let files = |d: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = files(d);
    let planned = names(&clean_stale_dry_run(d, &LockOptions::new()).unwrap());
    assert_eq!(files(d), before, "a dry run removed something");
    let report = clean_stale(d, &LockOptions::new()).unwrap();
    let removed = names(&report);
    assert_eq!(planned, removed);
    assert_eq!(
        removed,
        vec![
            ("stale.lock".to_string(), StaleReason::HolderGone),
            ("unused.lock".to_string(), StaleReason::Unused)
        ]
    );
    for kept in [
        "busy.lock",
        "foreign.lock",
        "live.lock",
        "stale.lock.ctl",
        "live.lock.ctl",
    ] {
        assert!(d.join(kept).exists(), "{kept} was removed");
    }
    assert!(!d.join("unused.lock").exists());

    // The handle that used the removed file starts over with a fresh one,
    // and still excludes a newcomer.
    let guard = unused.try_lock().unwrap();
    assert!(d.join("unused.lock").exists());
    assert_eq!(
        FileLock::new(d.join("unused.lock"))
            .try_lock()
            .unwrap_err()
            .kind(),
        ErrorKind::WouldBlock
    );
    drop(guard);
}

/// A release leaves its record as written ("held"): only the kernel says
/// whether the lock is held, and how. A shared holder after an exclusive
/// one marks the record released, so nobody is named while it holds.
#[test]
fn a_released_record_names_nobody() {
    let dir = tempdir();
    let path = dir.path().join("left.lock");
    let lock = FileLock::new(&path);
    let token = lock.try_lock().unwrap().token().unwrap();
    let left = std::fs::read_to_string(&path).unwrap();
    assert!(left.contains("\nstate held\n"), "{left}");
    assert!(lock.holder().unwrap().is_none(), "released");
    assert!(lock.inspect().unwrap().holder().is_some(), "the last one");

    let shared = lock.try_lock_shared().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\nstate free\n"), "{text}");
    assert!(lock.holder().unwrap().is_none(), "held shared: no holder");
    let other = FileLock::new(&path);
    let err = other.try_lock().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(err.holder().is_none(), "{err}");
    drop(shared);
    // The token is kept.
    assert!(lock.try_lock().unwrap().token().unwrap() > token);
}

/// A holder that writes no record (here `flock(1)`) after a lockyard one
/// that released: the record left in the file names a process that does
/// not hold the lock, and the kernel's lock table says so.
#[cfg(target_os = "linux")]
#[test]
fn a_record_left_by_a_released_holder_is_not_the_holder() {
    use std::process::{Command, Stdio};
    if Command::new("flock").arg("-V").output().is_err() {
        eprintln!("skipped: util-linux flock(1) is not installed");
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("flock1.lock");
    let lock = FileLock::new(&path);
    drop(lock.try_lock().unwrap());
    let child = common::Kid(
        Command::new("flock")
            .arg("-x")
            .arg(&path)
            .args(["sleep", "30"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.id();
    let since = std::time::Instant::now();
    while lock.try_lock().is_ok() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "flock(1) never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lock.holder().unwrap().is_none(), "flock(1) wrote no record");
    let err = lock.try_lock().unwrap_err();
    assert!(err.holder().is_none(), "{err}");
    assert!(err.os_holders().iter().any(|h| h.pid() == pid), "{err}");
}

/// With nobody in another process waiting, a release changes nothing in
/// the file: not even its times (the announcement waiters listen for is
/// made only when one has marked the file: see the wake-up tests).
#[cfg(target_os = "linux")]
#[test]
fn a_release_nobody_waits_for_announces_nothing() {
    let dir = tempdir();
    let path = dir.path().join("quiet.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().metadata(false));
    drop(lock.try_lock().unwrap());
    let old = std::time::UNIX_EPOCH + Duration::from_secs(946_684_800);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_times(
        std::fs::FileTimes::new()
            .set_modified(old)
            .set_accessed(old),
    )
    .unwrap();
    for _ in 0..3 {
        drop(lock.try_lock().unwrap());
        drop(lock.try_lock_shared().unwrap());
    }
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        meta.modified().unwrap(),
        old,
        "a release was announced to nobody"
    );
}

/// Reading the last holder's record leaves a lock file's access time
/// alone: under `relatime` the first read after a write updates it, which
/// dirties the inode, and every acquisition reads the record the last
/// holder wrote (the cost showed on every hand-off between processes).
#[cfg(target_os = "linux")]
#[test]
fn reading_the_record_leaves_the_access_time_alone() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let dir = tempdir();
    let path = dir.path().join("atime.lock");
    let lock = FileLock::new(&path);
    drop(lock.try_lock().unwrap());
    let old = UNIX_EPOCH + Duration::from_secs(946_684_800);
    let age = |path: &Path| {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(old)
                .set_modified(SystemTime::now()),
        )
        .unwrap();
    };
    let accessed = |path: &Path| std::fs::metadata(path).unwrap().accessed().unwrap();
    // What this filesystem does for a reader that is not lockyard.
    age(&path);
    std::fs::read(&path).unwrap();
    if accessed(&path) == old {
        eprintln!("skipped: reads here never update the access time (noatime mount)");
        return;
    }
    age(&path);
    for _ in 0..3 {
        let guard = lock.try_lock().unwrap();
        assert!(guard.token().is_some(), "the record was read and written");
        drop(guard);
    }
    assert_eq!(
        accessed(&path),
        old,
        "an acquisition updated the access time"
    );
}
