//! Locking a file that holds someone's data never changes it: not its
//! bytes, not its length, not its modification time, not its existence;
//! and two processes still exclude each other on it.
//!
//! Each case locks a data file every way the API allows, with a second
//! process trying the same file while it is held, and then compares the
//! file with what it was before.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lockyard::{ErrorKind, FileLock, LockMode, LockOptions, Wait, WaitStrategy};

use common::{
    env_path, expect_success, next_message, say, spawn_child, tempdir, Children, ROLE_VAR,
};

const ENTRY: &str = "child_main";

/// The entry point of child processes; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let path = env_path("LOCK");
    let mode = match std::env::var("MODE").as_deref() {
        Ok("shared") => LockMode::Shared,
        _ => LockMode::Exclusive,
    };
    match role.as_str() {
        "try" => match FileLock::new(&path).acquire_blocking(mode, Wait::TryOnce) {
            Ok(_) => say("ok"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => say("wouldblock"),
            Err(e) => say(&format!("error: {e}")),
        },
        // Wait for GO, then take the (fresh) lock once and report whether
        // it carried a token.
        "first_use" => {
            let go = env_path("GO");
            let since = std::time::Instant::now();
            while !go.exists() {
                assert!(since.elapsed() < Duration::from_secs(60), "no go signal");
                std::thread::yield_now();
            }
            let guard = FileLock::new(&path)
                .lock_blocking_timeout(Duration::from_secs(30))
                .unwrap();
            if guard.token().is_some() {
                say("token true");
            } else {
                // What the file held, for the failure message: a record
                // this process could not read as one, or nothing at all.
                let bytes = std::fs::read(&path).unwrap_or_default();
                let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
                say(&format!("token false: {} bytes {shown:?}", bytes.len()));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// What another process gets when it tries `path` in `mode` right now.
fn other_process_tries(path: &Path, mode: &str) -> String {
    let mut child = spawn_child(
        ENTRY,
        "try",
        &[("LOCK", path.to_str().unwrap()), ("MODE", mode)],
    );
    let line = next_message(&mut child).unwrap_or_default();
    expect_success(child);
    line
}

/// Everything about a file that locking must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    bytes: Vec<u8>,
    modified: SystemTime,
    #[cfg(unix)]
    inode: u64,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = std::fs::symlink_metadata(path).expect("the data file is still there");
    Snapshot {
        bytes: std::fs::read(path).unwrap(),
        modified: meta.modified().unwrap(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    }
}

/// The data files every test runs over: name and content.
fn data_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut random = vec![0u8; 1 << 20];
    let mut rng = fastrand::Rng::with_seed(0x010c_4a7d);
    rng.fill(&mut random);
    // Shaped like a holder record, with a checksum that does not match.
    let damaged = b"4242\nlockyard-holder 1\nkind strict\nstate held\nmode exclusive\n\
host build-3\nboot -\nstart -\nacquired 1763870000.123456789\n\
renewed 1763870000.123456789\nttl -\nowner -\ntoken 17\ncheck 0000000000000000\n"
        .to_vec();
    vec![
        ("empty.jsonl", Vec::new()),
        (
            "config.json",
            br#"{"name": "lockyard", "retries": 3, "paths": ["/var/lib/x"], "on": true}"#.to_vec(),
        ),
        ("random.bin", random),
        ("damaged-record.lock", damaged),
    ]
}

fn plant(dir: &Path, name: &str, bytes: &[u8]) -> (PathBuf, Snapshot) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    // Back-date the file, so a touch of its times cannot hide within the
    // clock's resolution.
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let before = snapshot(&path);
    (path, before)
}

#[test]
fn exclusive_locks_leave_data_files_alone_and_exclude_other_processes() {
    let dir = tempdir();
    for (name, bytes) in data_files() {
        let (path, before) = plant(dir.path(), name, &bytes);
        let lock = FileLock::new(&path);

        let guard = lock.lock_blocking().unwrap();
        assert_eq!(guard.token(), None, "{name}: no record, no token");
        assert!(guard.record().is_none(), "{name}");
        assert_eq!(
            other_process_tries(&path, "exclusive"),
            "wouldblock",
            "{name}"
        );
        assert_eq!(other_process_tries(&path, "shared"), "wouldblock", "{name}");
        assert!(lock.holder().unwrap().is_none(), "{name}");
        drop(guard);

        let guard = lock.try_lock().unwrap();
        assert_eq!(
            other_process_tries(&path, "exclusive"),
            "wouldblock",
            "{name}"
        );
        guard.unlock().unwrap();

        let guard = futures::executor::block_on(lock.lock()).unwrap();
        assert_eq!(other_process_tries(&path, "shared"), "wouldblock", "{name}");
        drop(guard);

        let guard = futures::executor::block_on(lock.lock_timeout(Duration::from_secs(5))).unwrap();
        drop(guard);

        assert_eq!(other_process_tries(&path, "exclusive"), "ok", "{name}");
        assert_eq!(snapshot(&path), before, "{name} changed");
    }
}

#[test]
fn shared_locks_and_conversions_leave_data_files_alone() {
    let dir = tempdir();
    for (name, bytes) in data_files() {
        let (path, before) = plant(dir.path(), name, &bytes);
        let lock = FileLock::new(&path);

        let shared = lock.lock_shared_blocking().unwrap();
        assert_eq!(other_process_tries(&path, "shared"), "ok", "{name}");
        assert_eq!(
            other_process_tries(&path, "exclusive"),
            "wouldblock",
            "{name}"
        );
        let exclusive = shared.try_upgrade().unwrap();
        assert!(exclusive.is_exclusive());
        assert_eq!(exclusive.token(), None, "{name}");
        assert_eq!(other_process_tries(&path, "shared"), "wouldblock", "{name}");
        let shared = exclusive.downgrade().unwrap();
        assert_eq!(other_process_tries(&path, "shared"), "ok", "{name}");
        drop(shared);

        let shared = futures::executor::block_on(lock.lock_shared()).unwrap();
        drop(shared);
        let shared = lock.try_lock_shared().unwrap();
        drop(shared);
        assert_eq!(snapshot(&path), before, "{name} changed");
    }
}

#[test]
fn kernel_waits_and_remove_on_release_leave_data_files_alone() {
    let dir = tempdir();
    for (name, bytes) in data_files() {
        let (path, before) = plant(dir.path(), name, &bytes);
        // remove_on_release applies to lock files lockyard made: a data
        // file stays where it is.
        let options = LockOptions::new()
            .remove_on_release(true)
            .wait_strategy(WaitStrategy::BlockingPool);
        let lock = FileLock::with_options(&path, options);
        let first = lock.lock_blocking().unwrap();
        // A second handle of this process waits in the kernel on a
        // descriptor of its own, opened the same way.
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock.lock_blocking().map(drop))
        };
        std::thread::sleep(Duration::from_millis(50));
        drop(first);
        waiter.join().unwrap().unwrap();
        assert_eq!(snapshot(&path), before, "{name} changed");
    }
}

#[test]
fn lock_files_lockyard_makes_still_carry_records() {
    let dir = tempdir();
    let path = dir.path().join("made.lock");
    let lock = FileLock::new(&path);
    let first = lock
        .try_lock()
        .unwrap()
        .token()
        .expect("a lock file lockyard made has tokens");
    let second = lock.try_lock().unwrap().token().unwrap();
    assert!(second > first);
    // Reopened by a fresh handle (and another process), it is still a lock
    // file: the record is what marks it.
    assert_eq!(other_process_tries(&path, "exclusive"), "ok");
    let third = FileLock::new(&path).try_lock().unwrap().token().unwrap();
    assert!(third > second);
}

/// Runs `script`. Another test thread that forks at the moment this one
/// wrote the script lends the child a writable descriptor of it for an
/// instant ("Text file busy"): retried for a second, so only a descriptor
/// kept open for writing, which is what this file tests for, fails it.
#[cfg(unix)]
fn run_script(script: &Path) -> std::process::Output {
    let since = std::time::Instant::now();
    loop {
        match std::process::Command::new(script).output() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && since.elapsed() < Duration::from_secs(1) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.unwrap(),
        }
    }
}

/// flock(1)'s self-lock idiom: a script locks itself and runs while
/// locked. Opening it for writing would make `exec` fail with "Text file
/// busy".
#[cfg(unix)]
#[test]
fn a_locked_script_can_still_be_executed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let (script, _) = plant(dir.path(), "job.sh", b"#!/bin/sh\necho ran\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot(&script);
    let guard = FileLock::new(&script).lock_blocking().unwrap();
    let out = run_script(&script);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"ran\n");
    drop(guard);
    assert_eq!(snapshot(&script), before);
}

/// `clean_stale` removes only what lockyard provably made: foreign
/// temporary files, editor swap files, data files and damaged records stay,
/// however old, in a dry run and a real one; a soft lock's leftover
/// temporary file (its exact name, beside its control file, with a
/// complete record) goes.
#[test]
fn clean_removes_only_what_lockyard_made() {
    use common::{forge_record, now_secs, Forged, DEAD_PID};
    let dir = tempdir();
    let d = dir.path();
    // A soft lock's control file, made by lockyard.
    drop(
        FileLock::with_options(d.join("job.lock"), LockOptions::new().soft())
            .try_lock()
            .unwrap(),
    );
    let record = forge_record(&Forged {
        pid: DEAD_PID,
        kind: "soft",
        host: "elsewhere",
        boot: None,
        start: None,
        acquired: now_secs() - 3600,
        ttl_secs: None,
        token: 7,
    });
    let foreign: Vec<(&str, Vec<u8>)> = vec![
        (".x.tmp", b"someone's temporary file".to_vec()),
        (".report.txt.tmp", b"half-written report".to_vec()),
        (".notes.md.swp", b"b0VIM 9.0".to_vec()),
        ("#notes.md#", b"emacs autosave".to_vec()),
        ("notes.md~", b"backup".to_vec()),
        ("data.json", br#"{"keep": true}"#.to_vec()),
        ("empty.lock", Vec::new()),
        (
            "damaged.lock",
            data_files().pop().map(|(_, b)| b).unwrap_or_default(),
        ),
        // Shaped like lockyard's temporary name, but for a sidecar that has
        // no control file, or with a name that is not exactly the pattern.
        (".other.lock.1234.0123456789abcdef.tmp", record.clone()),
        (".job.lock.12x4.0123456789abcdef.tmp", record.clone()),
        (".job.lock.1234.0123456789abcdeg.tmp", record.clone()),
        // The exact name, but no record inside.
        (
            ".job.lock.1234.00000000000000aa.tmp",
            b"not a record".to_vec(),
        ),
        // A soft sidecar whose record is damaged.
        (
            "bad-soft.lock",
            b"4242\nlockyard-holder 1\nkind soft\n".to_vec(),
        ),
    ];
    let mut planted = Vec::new();
    for (name, bytes) in &foreign {
        let (path, snap) = plant(d, name, bytes);
        planted.push((path, snap));
    }
    let (leftover, _) = plant(d, ".job.lock.1234.0123456789abcdef.tmp", &record);

    let dry = lockyard::clean_stale_dry_run(d, &LockOptions::new()).unwrap();
    let real = lockyard::clean_stale(d, &LockOptions::new()).unwrap();
    for report in [&dry, &real] {
        let removed: Vec<_> = report.removed().iter().map(|r| r.path()).collect();
        assert_eq!(removed, [leftover.as_path()], "{report:?}");
        assert_eq!(
            report.removed()[0].reason(),
            lockyard::StaleReason::Unpublished
        );
    }
    assert!(!leftover.exists());
    for (path, before) in &planted {
        assert_eq!(&snapshot(path), before, "{} changed", path.display());
    }
}

/// Processes that use a fresh lock path at the same instant all find a
/// lock file (with tokens), never an empty file they must take for data:
/// a lock file appears at its path with its first record already in it.
#[test]
fn a_lock_file_never_appears_empty() {
    const PROCESSES: usize = 6;
    const ROUNDS: usize = 15;
    let dir = tempdir();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("fresh-{round}.lock"));
        let go = dir.path().join(format!("go-{round}"));
        let mut children = Children(
            (0..PROCESSES)
                .map(|_| {
                    spawn_child(
                        ENTRY,
                        "first_use",
                        &[
                            ("LOCK", path.to_str().unwrap()),
                            ("GO", go.to_str().unwrap()),
                        ],
                    )
                })
                .collect(),
        );
        std::fs::write(&go, "").unwrap();
        for child in &mut children.0 {
            let said = next_message(child);
            assert_eq!(said.as_deref(), Some("token true"), "round {round}");
        }
        for child in std::mem::take(&mut children.0) {
            expect_success(child);
        }
    }
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A busy file that holds data has no record to name its holder: the error
/// names it from the kernel's lock table instead (Linux).
#[cfg(target_os = "linux")]
#[test]
fn a_busy_data_file_names_its_holder_from_the_kernel() {
    let dir = tempdir();
    let (path, before) = plant(dir.path(), "shared.jsonl", b"");
    let other = std::fs::File::open(&path).unwrap();
    other.lock().unwrap();
    let lock = FileLock::new(&path);
    let e = lock.try_lock().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(e.holder().is_none());
    assert!(
        e.os_holders()
            .iter()
            .any(|h| h.is_this_process() && h.is_exclusive() && h.kind() == "FLOCK"),
        "{:?}",
        e.os_holders()
    );
    let text = e.to_string();
    assert!(
        text.contains("this process") && text.contains("per the kernel"),
        "{text}"
    );
    let e = lock
        .lock_blocking_timeout(Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(e.to_string().contains("per the kernel"), "{e}");
    // A lock file lockyard made names its holder by record, not by table.
    let made = FileLock::new(dir.path().join("made.lock"));
    let _held = made.try_lock().unwrap();
    let e = FileLock::new(made.path()).try_lock().unwrap_err();
    assert!(e.holder().is_some() && e.os_holders().is_empty());
    drop(other);
    assert_eq!(snapshot(&path), before);
}
