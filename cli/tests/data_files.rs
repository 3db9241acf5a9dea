//! The `lockyard` command on files that hold data, and on soft locks: it
//! locks them as they are and changes nothing. Unix only: the tests drive
//! it with shell scripts.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod common;

use common::{code, lockyard, run, Kid};

/// Bytes and modification time: what locking must leave alone.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    let meta = std::fs::metadata(path).expect("the data file is still there");
    (std::fs::read(path).unwrap(), meta.modified().unwrap())
}

/// Writes `bytes` to `dir/name`, dated an hour back so that a touch of its
/// times shows.
fn plant(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    path
}

/// Waits until `path` exists, for at most 10 s.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn run_and_wait_leave_data_files_as_they_were_and_still_exclude() {
    let dir = tempfile::tempdir().unwrap();
    let json = br#"{"jobs": 3, "name": "nightly"}"#.to_vec();
    for (name, bytes) in [("empty.jsonl", Vec::new()), ("data.json", json)] {
        let path = plant(dir.path(), name, &bytes);
        let before = snapshot(&path);
        let p = path.to_str().unwrap();

        // The command sees the data, not a holder record.
        let out = run(&["run", p, "--", "cat", p]);
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(out.stdout, bytes, "{name}");

        // Held by one run, another one is refused.
        let signal = dir.path().join(format!("{name}.held"));
        let script = format!("touch {}; sleep 30", signal.display());
        let holder = Kid::spawn(
            lockyard()
                .args(["run", p, "--", "sh", "-c", &script])
                .stdin(Stdio::null()),
        );
        wait_for(&signal);
        assert_eq!(code(&run(&["run", "-n", p, "--", "true"])), 1, "{name}");
        assert_eq!(code(&run(&["wait", "-w", "0.2", p])), 124, "{name}");
        drop(holder);

        assert_eq!(code(&run(&["wait", p])), 0, "{name}");
        assert_eq!(code(&run(&["wait", "-s", p])), 0, "{name}");
        assert_eq!(snapshot(&path), before, "{name} changed");
    }
}

/// flock(1)'s documented idiom: a script that locks itself at its top and
/// runs the rest under the lock.
#[test]
fn a_script_can_lock_itself() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_lockyard");
    let out_file = dir.path().join("out");
    let text = format!(
        "#!/bin/sh\n\
         [ \"$LOCKER\" != \"$0\" ] && exec env LOCKER=\"$0\" {bin} run -n \"$0\" -- \"$0\" \"$@\" || :\n\
         echo \"ran under the lock\" >> {}\n",
        out_file.display()
    );
    let script = plant(dir.path(), "job.sh", text.as_bytes());
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot(&script);
    // Another test thread that forks at the moment this one wrote the
    // script lends the child a writable descriptor of it for an instant
    // ("Text file busy"): retried for a second, so only a descriptor kept
    // open for writing, which is what this tests for, fails it.
    let since = Instant::now();
    let out = loop {
        match Command::new(&script).output() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && since.elapsed() < Duration::from_secs(1) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other.unwrap(),
        }
    };
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "ran under the lock\n"
    );
    assert_eq!(snapshot(&script), before, "the script changed");
}

/// `lockyard wait` on a soft lock's path takes it as a soft lock: while a
/// soft holder has it, the wait waits; once free, the wait leaves no file
/// behind that soft acquirers would have to judge.
#[test]
fn wait_respects_soft_locks() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("job.lock");
    let l = lock.to_str().unwrap();
    // A first soft run creates the control file; the sidecar goes with it.
    assert_eq!(code(&run(&["run", "--soft", l, "--", "true"])), 0);
    assert!(!lock.exists());

    assert_eq!(code(&run(&["wait", l])), 0);
    assert!(
        !lock.exists(),
        "wait left a file at the soft lock's sidecar path"
    );

    let signal = dir.path().join("held");
    let script = format!("touch {}; sleep 30", signal.display());
    let holder = Kid::spawn(
        lockyard()
            .args(["run", "--soft", l, "--", "sh", "-c", &script])
            .stdin(Stdio::null()),
    );
    wait_for(&signal);
    let sidecar = std::fs::read(&lock).unwrap();
    assert_eq!(code(&run(&["wait", "-w", "0.2", l])), 124);
    assert_eq!(code(&run(&["wait", "--soft", "-n", l])), 1);
    assert_eq!(
        std::fs::read(&lock).unwrap(),
        sidecar,
        "the sidecar changed"
    );
    drop(holder);
}
