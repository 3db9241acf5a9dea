//! The `lockyard` binary on Windows, run as a real subprocess with `cmd /c`
//! commands: exit codes, `-n`, `-w`, `status --json`, `clean`, mutual
//! exclusion, and Ctrl-Break while waiting. The Unix counterparts, driven
//! by shell commands and signals, are in `cli.rs`.
#![cfg(windows)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

mod common;

use common::{code, expect_line, lockyard, run, Holder, Kid, SAY_LOCKED_AND_WAIT};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn p(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn status_json(path: &Path) -> Value {
    let out = run(&["status", "--json", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_runs_exclude_each_other() {
    let dir = tmp();
    let (lock, log) = (p(&dir, "x.lock"), p(&dir, "log"));
    // About a second under the lock between the two lines.
    let script = format!(
        "echo start>>{0}& ping -n 2 127.0.0.1 >NUL& echo end>>{0}",
        log.display()
    );
    let runs: Vec<Kid> = (0..3)
        .map(|_| {
            Kid::spawn(lockyard().args(["run", lock.to_str().unwrap(), "--", "cmd", "/c", &script]))
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 6, "{text}");
    for pair in lines.chunks(2) {
        assert_eq!(pair, ["start", "end"], "overlapping runs: {text}");
    }
}

#[test]
fn exit_codes() {
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let l = lock.to_str().unwrap();
    // The command's own status.
    assert_eq!(code(&run(&["run", l, "--", "cmd", "/c", "exit 7"])), 7);
    assert_eq!(code(&run(&["run", l, "--", "cmd", "/c", "exit 0"])), 0);
    // Above 255, Windows statuses never read as success.
    assert_eq!(code(&run(&["run", l, "--", "cmd", "/c", "exit 256"])), 255);
    assert_eq!(
        code(&run(&["run", l, "--", "C:\\nonexistent\\cmd.exe"])),
        127
    );
    // Usage errors.
    assert_eq!(code(&run(&["run", l])), 64);
    assert_eq!(code(&run(&["run", "-w", "soon", l, "--", "cmd"])), 64);
    assert_eq!(code(&run(&["frobnicate"])), 64);
    // A directory is no lock file.
    assert_eq!(
        code(&run(&[
            "run",
            dir.path().to_str().unwrap(),
            "--",
            "cmd",
            "/c",
            "exit 0"
        ])),
        71
    );

    let holder = Holder::start(&[], &lock);
    let busy = run(&["run", "-n", l, "--", "cmd", "/c", "exit 0"]);
    assert_eq!(code(&busy), 1);
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(
        said.contains("x.lock") && said.contains(&format!("pid {}", holder.pid())),
        "{said}"
    );
    assert_eq!(
        code(&run(&[
            "run", "-n", "-E", "42", l, "--", "cmd", "/c", "exit 0"
        ])),
        42
    );
    assert_eq!(
        code(&run(&[
            "run", "-w", "200ms", l, "--", "cmd", "/c", "exit 0"
        ])),
        124
    );
    assert_eq!(code(&run(&["wait", "-n", l])), 1);
    assert_eq!(code(&run(&["wait", "-w", "0.2", l])), 124);
    // Shared holders do not block each other, but block writers.
    assert_eq!(holder.release(), 0);
    let reader = Holder::start(&["--shared"], &lock);
    assert_eq!(
        code(&run(&["run", "-n", "-s", l, "--", "cmd", "/c", "exit 0"])),
        0
    );
    assert_eq!(
        code(&run(&["run", "-n", l, "--", "cmd", "/c", "exit 0"])),
        1
    );
    assert_eq!(reader.release(), 0);
    assert_eq!(
        code(&run(&["run", "-n", l, "--", "cmd", "/c", "exit 0"])),
        0
    );
}

#[test]
fn status_json_names_the_holder() {
    let dir = tmp();
    let lock = p(&dir, "jobs.lock");
    let holder = Holder::start(&["--owner", "indexer"], &lock);
    let doc = status_json(&lock);
    assert_eq!(doc["version"], 1);
    let l = &doc["locks"][0];
    assert_eq!(l["name"], "jobs");
    assert_eq!(l["kind"], "strict");
    assert_eq!(l["state"], "held-exclusive");
    let h = &l["holder"];
    assert_eq!(h["pid"], holder.pid());
    assert_eq!(h["owner"], "indexer");
    assert!(h["token"].as_u64().unwrap() >= 1);
    assert_eq!(holder.release(), 0);
    assert_eq!(status_json(&lock)["locks"][0]["state"], "free");
}

#[test]
fn clean_removes_only_stale_locks() {
    let dir = tmp();
    let d = dir.path().to_str().unwrap();
    // Used once and free: unused. A soft lock whose holder was killed:
    // stale. One held now: kept.
    let used = p(&dir, "used.lock");
    assert_eq!(
        code(&run(&[
            "run",
            used.to_str().unwrap(),
            "--",
            "cmd",
            "/c",
            "exit 0"
        ])),
        0
    );
    let soft = p(&dir, "soft.lock");
    let mut killed = Kid::spawn(
        lockyard()
            .args(["run", "--soft", soft.to_str().unwrap(), "--"])
            .args(SAY_LOCKED_AND_WAIT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    expect_line(&mut killed, "locked");
    // TerminateProcess: the holder gets no chance to remove its sidecar.
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(soft.exists(), "the dead holder's sidecar is left behind");
    let held = Holder::start(&[], p(&dir, "held.lock"));

    let out = run(&["clean", d]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("removed")).count(),
        2,
        "{text}"
    );
    assert!(!used.exists() && !soft.exists(), "{text}");
    assert!(p(&dir, "held.lock").exists());
    assert_eq!(
        status_json(&p(&dir, "held.lock"))["locks"][0]["state"],
        "held-exclusive"
    );
    assert_eq!(held.release(), 0);
}

/// Ctrl-Break while waiting: the wait ends with 128 + 21, nothing was
/// locked, and the holder is untouched. The waiter gets its own process
/// group, the only way to send it a console event alone.
#[test]
fn ctrl_break_while_waiting_exits_149_and_leaves_nothing() {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x200;

    // The waiter must share a console with us to be sent an event.
    console::attach();
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let l = lock.to_str().unwrap();
    let holder = Holder::start(&[], &lock);
    let waiter = Kid::spawn(
        lockyard()
            .args(["run", l, "--", "cmd", "/c", "echo ran"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .creation_flags(CREATE_NEW_PROCESS_GROUP),
    );
    std::thread::sleep(Duration::from_millis(500));
    if let Err(why) = console::ctrl_break(waiter.id()) {
        // Wine 8.0 answers ERROR_INVALID_ACCESS without a console and
        // ERROR_INVALID_HANDLE with one; Windows delivers the event.
        eprintln!(
            "skipped: GenerateConsoleCtrlEvent failed ({why}); wine 8.0 delivers no \
             console control event to another process group"
        );
        return;
    }
    let out = waiter.into_inner().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(128 + 21));
    assert!(out.stdout.is_empty(), "the command ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    // The holder still holds it, alone.
    assert_eq!(
        code(&run(&["run", "-n", l, "--", "cmd", "/c", "exit 0"])),
        1
    );
    assert_eq!(holder.release(), 0);
}

mod console {
    //! Sending a console event to a process group: the test's one
    //! `unsafe` call.
    #![allow(unsafe_code)]

    use windows_sys::Win32::System::Console::{
        AllocConsole, GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT,
    };

    /// Gives this process a console if it has none (a test run with its
    /// output piped may have none), for its children to share.
    pub fn attach() {
        // SAFETY: no arguments; fails harmlessly if a console is attached.
        unsafe { AllocConsole() };
    }

    /// Sends Ctrl-Break to the process group `group`.
    pub fn ctrl_break(group: u32) -> Result<(), std::io::Error> {
        // SAFETY: plain values; the call reads no memory of ours.
        if unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}
