//! The `lockyard` binary, run as a real subprocess. Unix only: the tests
//! drive it with shell commands and signals.
#![cfg(unix)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{code, expect_line, lockyard, run, Holder, Kid};

fn status_json(path: &Path) -> Value {
    let out = run(&["status", "--json", path.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `(name, state)` of every lock in a `status --json` document.
fn names_and_states(doc: &Value) -> Vec<(String, String)> {
    doc["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().into(),
                l["state"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn p(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
        .unwrap();
}

#[test]
fn two_runs_exclude_each_other() {
    let dir = tmp();
    let (lock, log) = (p(&dir, "x.lock"), p(&dir, "log"));
    let script = format!(
        "echo start >> {0}; sleep 0.1; echo end >> {0}",
        log.display()
    );
    let runs: Vec<Kid> = (0..4)
        .map(|_| {
            Kid::spawn(lockyard().args(["run", lock.to_str().unwrap(), "--", "sh", "-c", &script]))
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    for pair in lines.chunks(2) {
        assert_eq!(pair, ["start", "end"], "overlapping runs: {text}");
    }
}

/// `--help` names flock(1)'s form, and each form it names works as shown.
#[test]
fn help_names_the_flock_form_and_it_works() {
    let help = run(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    for form in [
        "lockyard [-s|-x] [-n|-w SECS] [-E N] FILE COMMAND [ARGS...]",
        "lockyard [-s|-x] [-n|-w SECS] [-E N] FILE -c 'COMMAND'",
        "lockyard [-s|-x|-u] [-n|-w SECS] [-E N] FD",
    ] {
        assert!(text.contains(form), "{form} not in:\n{text}");
    }
    let dir = tmp();
    let lock = p(&dir, "f.lock");
    let l = lock.to_str().unwrap();
    assert_eq!(code(&run(&["-w", "5", l, "sh", "-c", "exit 3"])), 3);
    assert_eq!(code(&run(&["-s", "-n", l, "-c", "exit 4"])), 4);
    let bin = env!("CARGO_BIN_EXE_lockyard");
    let fd = format!("exec 9>>{l}; {bin} -x -n 9 && echo locked");
    let out = Command::new("sh").args(["-c", &fd]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "locked",
        "{out:?}"
    );
    // Busy: flock's exit code, or -E's.
    let _held = Holder::start(&[], &lock);
    assert_eq!(code(&run(&["-n", l, "true"])), 1);
    assert_eq!(code(&run(&["-n", "-E", "75", l, "true"])), 75);
}

#[test]
fn exit_codes() {
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let l = lock.to_str().unwrap();
    // The command's own status, and a signal's.
    assert_eq!(code(&run(&["run", l, "--", "sh", "-c", "exit 7"])), 7);
    assert_eq!(
        code(&run(&["run", l, "--", "sh", "-c", "kill -9 $$"])),
        128 + 9
    );
    assert_eq!(code(&run(&["run", l, "--", "/nonexistent/cmd"])), 127);
    assert_eq!(
        code(&run(&["run", l, "--", dir.path().to_str().unwrap()])),
        126
    );
    // Usage errors.
    assert_eq!(code(&run(&["run", l])), 64);
    assert_eq!(code(&run(&["run", "-w", "soon", l, "--", "true"])), 64);
    assert_eq!(code(&run(&["run", "-n", "-w", "1", l, "--", "true"])), 64);
    assert_eq!(code(&run(&["frobnicate"])), 64);
    assert_eq!(code(&run(&["--help"])), 0);
    // Lock errors: a directory is no lock file.
    assert_eq!(
        code(&run(&["run", dir.path().to_str().unwrap(), "--", "true"])),
        71
    );
    let fifo = p(&dir, "fifo.lock");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    assert_eq!(code(&run(&["status", fifo.to_str().unwrap()])), 71);

    let holder = Holder::start(&[], &lock);
    let busy = run(&["run", "-n", l, "--", "true"]);
    assert_eq!(code(&busy), 1);
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(
        said.contains("x.lock") && said.contains(&format!("pid {}", holder.pid())),
        "{said}"
    );
    assert_eq!(code(&run(&["run", "-n", "-E", "42", l, "--", "true"])), 42);
    assert_eq!(code(&run(&["run", "-w", "200ms", l, "--", "true"])), 124);
    assert_eq!(
        code(&run(&[
            "run",
            "-w",
            "0.2",
            "--timeout-exit-code",
            "9",
            l,
            "--",
            "true"
        ])),
        9
    );
    assert_eq!(code(&run(&["wait", "-n", l])), 1);
    assert_eq!(code(&run(&["wait", "-w", "0.2", l])), 124);
    // Shared holders do not block each other, but block writers.
    assert_eq!(holder.release(), 0);
    let reader = Holder::start(&["--shared"], &lock);
    assert_eq!(code(&run(&["run", "-n", "-s", l, "--", "true"])), 0);
    assert_eq!(code(&run(&["run", "-n", l, "--", "true"])), 1);
    assert_eq!(code(&run(&["wait", "-n", "--shared", l])), 0);
    assert_eq!(reader.release(), 0);
    assert_eq!(code(&run(&["run", "-n", l, "--", "true"])), 0);
}

#[test]
fn wait_returns_when_the_lock_is_released_and_holds_nothing() {
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let holder = Holder::start(&[], &lock);
    let mut waiter = Kid::spawn(lockyard().args(["wait", lock.to_str().unwrap()]));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait returned while the lock was held"
    );
    assert_eq!(holder.release(), 0);
    assert!(waiter.wait().unwrap().success());
    assert_eq!(status_json(&lock)["locks"][0]["state"], "free");
}

#[test]
fn json_shape_names_the_holder() {
    let dir = tmp();
    let lock = p(&dir, "jobs.lock");
    let holder = Holder::start(&["--owner", "indexer"], &lock);
    let doc = status_json(&lock);
    assert_eq!(doc["version"], 1);
    let locks = doc["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1);
    let l = &locks[0];
    assert_eq!(l["path"], lock.to_str().unwrap());
    assert_eq!(l["name"], "jobs");
    assert_eq!(l["kind"], "strict");
    assert_eq!(l["state"], "held-exclusive");
    assert_eq!(l["error"], Value::Null);
    let h = &l["holder"];
    assert_eq!(h["pid"], holder.pid());
    assert_eq!(h["owner"], "indexer");
    assert_eq!(h["kind"], "strict");
    assert!(h["token"].as_u64().unwrap() >= 1);
    assert!(h["age_secs"].as_f64().unwrap() >= 0.0);
    assert!(h["acquired_at"].as_f64().unwrap() > 1.6e9);
    assert!(h["host"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(h["ttl_secs"], Value::Null);
    if cfg!(target_os = "linux") {
        let os = l["os_holders"].as_array().unwrap();
        assert_eq!(os.len(), 1, "{os:?}");
        assert_eq!(os[0]["pid"], holder.pid());
        assert_eq!(os[0]["mode"], "exclusive");
        assert_eq!(os[0]["lock"], "FLOCK");
        assert_eq!(os[0]["command"], "lockyard");
    }
    // The human form says the same.
    let out = run(&["status", lock.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("held exclusive by pid") && text.contains("(owner \"indexer\")"),
        "{text}"
    );
    // A directory lists every lock in it.
    drop(holder);
    std::fs::write(p(&dir, "other.lock"), "").unwrap();
    let doc = status_json(dir.path());
    let states = names_and_states(&doc);
    assert_eq!(
        states,
        [
            ("jobs".into(), "free".into()),
            ("other".into(), "free".into())
        ]
    );
}

/// `status` sees locks of programs that write no record: util-linux
/// `flock(1)` and a process using only std's `File::lock`.
#[test]
fn status_sees_foreign_flock_holders() {
    let dir = tmp();
    let lock = p(&dir, "foreign.lock");
    std::fs::write(&lock, "").unwrap();
    let mut std_child = Kid::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "std_lock_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LOCKYARD_STD_LOCK", &lock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    wait_for_word(&mut std_child, "std-locked");
    let doc = status_json(&lock);
    let l = &doc["locks"][0];
    assert_eq!(l["state"], "held-exclusive");
    assert_eq!(l["holder"], Value::Null, "std's lock writes no record");
    if cfg!(target_os = "linux") {
        assert_eq!(l["os_holders"][0]["pid"], std_child.id());
    }
    drop(std_child.stdin.take());
    assert!(std_child.wait().unwrap().success());

    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("SKIPPED the flock(1) half: util-linux flock is not installed");
        return;
    }
    for (flag, state, mode) in [
        ("-x", "held-exclusive", "exclusive"),
        ("-s", "held-shared", "shared"),
    ] {
        let mut flock = Kid::spawn(
            Command::new("flock")
                .args([
                    flag,
                    lock.to_str().unwrap(),
                    "sh",
                    "-c",
                    "echo flocked; cat >/dev/null",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        expect_line(&mut flock, "flocked");
        let doc = status_json(&lock);
        let l = &doc["locks"][0];
        assert_eq!(l["state"], state);
        if cfg!(target_os = "linux") {
            assert_eq!(l["os_holders"][0]["pid"], flock.id());
            assert_eq!(l["os_holders"][0]["command"], "flock");
            assert_eq!(l["os_holders"][0]["mode"], mode);
            let out = run(&["status", lock.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&format!("pid {} (flock)", flock.id())),
                "{text}"
            );
        }
        drop(flock.stdin.take());
        assert!(flock.wait().unwrap().success());
    }
}

fn wait_for_word(child: &mut Child, word: &str) {
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains(word) {
        assert_eq!(
            out.read(&mut byte).unwrap(),
            1,
            "child ended before saying {word}"
        );
        seen.push(byte[0]);
    }
    child.stdout = Some(out);
}

/// Not a test: the std-only lock holder for the test above.
#[test]
#[ignore = "entry point for a child process of status_sees_foreign_flock_holders"]
fn std_lock_child() {
    let Some(path) = std::env::var_os("LOCKYARD_STD_LOCK") else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    println!("std-locked");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink).unwrap();
}

#[test]
fn clean_removes_only_stale_locks() {
    let dir = tmp();
    let d = dir.path().to_str().unwrap();
    // Used once and free: unused. A soft lock whose holder was killed:
    // stale. One held now: kept.
    assert_eq!(
        code(&run(&["run", &format!("{d}/used.lock"), "--", "true"])),
        0
    );
    let killed = run(&[
        "run",
        "--soft",
        &format!("{d}/soft.lock"),
        "--",
        "sh",
        "-c",
        "kill -9 $PPID",
    ]);
    assert_eq!(killed.status.code(), None, "lockyard itself was killed");
    assert!(
        p(&dir, "soft.lock").exists(),
        "the dead holder's sidecar is left behind"
    );
    let held = Holder::start(&[], p(&dir, "held.lock"));

    let doc = status_json(dir.path());
    let states = names_and_states(&doc);
    assert_eq!(
        states,
        [
            ("held".into(), "held-exclusive".into()),
            ("soft".into(), "stale".into()),
            ("used".into(), "free".into())
        ]
    );

    let dry = run(&["clean", "--dry-run", d]);
    assert_eq!(code(&dry), 0);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains("would remove") && text.contains("used.lock") && text.contains("soft.lock"),
        "{text}"
    );
    assert!(!text.contains("held.lock"), "{text}");
    assert!(
        p(&dir, "used.lock").exists() && p(&dir, "soft.lock").exists(),
        "a dry run removed something"
    );

    let out = run(&["clean", d]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("removed")).count(),
        2,
        "{text}"
    );
    assert!(!p(&dir, "used.lock").exists() && !p(&dir, "soft.lock").exists());
    assert!(p(&dir, "held.lock").exists());
    assert_eq!(
        status_json(&p(&dir, "held.lock"))["locks"][0]["state"],
        "held-exclusive"
    );
    assert_eq!(held.release(), 0);
}

#[test]
fn sigterm_is_forwarded_and_the_lock_released() {
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let mut child = Kid::spawn(
        lockyard()
            .args(["run", lock.to_str().unwrap(), "--", "sh", "-c"])
            .arg("trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done")
            .stdout(Stdio::piped()),
    );
    expect_line(&mut child, "ready");
    signal(child.id(), rustix::process::Signal::TERM);
    assert_eq!(
        child.wait().unwrap().code(),
        Some(3),
        "the command's trap decided the status"
    );
    assert_eq!(
        code(&run(&["run", "-n", lock.to_str().unwrap(), "--", "true"])),
        0
    );
}

#[test]
fn interrupt_while_waiting_exits_130_and_leaves_nothing() {
    let dir = tmp();
    for soft in [false, true] {
        let lock = p(&dir, if soft { "s.lock" } else { "x.lock" });
        let extra: &[&str] = if soft { &["--soft"] } else { &[] };
        let holder = Holder::start(extra, &lock);
        let waiter = Kid::spawn(
            lockyard()
                .arg("run")
                .args(extra)
                .args([lock.to_str().unwrap(), "--", "sh", "-c", "echo ran"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        std::thread::sleep(Duration::from_millis(300));
        signal(waiter.id(), rustix::process::Signal::INT);
        let out = waiter.into_inner().wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130));
        assert!(out.stdout.is_empty(), "the command ran");
        assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
        // The holder still holds it, alone.
        let doc = status_json(&lock);
        assert_eq!(doc["locks"][0]["holder"]["pid"], holder.pid());
        assert_eq!(holder.release(), 0);
        if soft {
            assert!(!lock.exists(), "a soft lock's sidecar was left behind");
        }
        let again: Vec<&str> = ["run", "-n"]
            .into_iter()
            .chain(extra.iter().copied())
            .chain([lock.to_str().unwrap(), "--", "true"])
            .collect();
        assert_eq!(code(&run(&again)), 0);
    }
}

#[test]
fn lease_is_renewed_while_the_command_runs() {
    let dir = tmp();
    let lock = p(&dir, "lease.lock");
    let l = lock.to_str().unwrap();
    let start = Instant::now();
    let mut holder =
        Kid::spawn(lockyard().args(["run", "--lease", "600ms", l, "--", "sleep", "2"]));
    std::thread::sleep(Duration::from_millis(300));
    // Well past several TTLs, nobody can take over.
    while start.elapsed() < Duration::from_millis(1700) {
        assert_eq!(
            code(&run(&["run", "--lease", "600ms", "-n", l, "--", "true"])),
            1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(holder.wait().unwrap().success());
    assert_eq!(
        code(&run(&["run", "--lease", "600ms", "-n", l, "--", "true"])),
        0
    );
}

#[test]
fn live_line_only_on_a_terminal() {
    let dir = tmp();
    let lock = p(&dir, "x.lock");
    let l = lock.to_str().unwrap();
    let holder = Holder::start(&["--owner", "indexer"], &lock);
    // stderr is a pipe: no live line, just the timeout.
    let out = run(&["run", "-w", "1500ms", l, "--", "true"]);
    assert_eq!(code(&out), 124);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains('\r') && !said.contains("\x1b["), "{said:?}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("timed out"), "{said}");
    let quiet = run(&["run", "-q", "-w", "200ms", l, "--", "true"]);
    assert_eq!(code(&quiet), 124);
    assert!(quiet.stderr.is_empty());

    // On a terminal (util-linux `script` gives us one): the line appears
    // after a second and names the holder.
    let cmd = format!("{} run -w 2s {l} -- true", env!("CARGO_BIN_EXE_lockyard"));
    match Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
    {
        Ok(out) => {
            let seen = String::from_utf8_lossy(&out.stdout);
            assert!(
                seen.contains("\x1b[2K") && seen.contains("waiting for"),
                "{seen:?}"
            );
            assert!(
                seen.contains(&format!("held by pid {}", holder.pid())),
                "{seen}"
            );
            assert!(seen.contains("owner \"indexer\""), "{seen}");
        }
        Err(e) => eprintln!("SKIPPED the terminal half: cannot run script(1): {e}"),
    }
    assert_eq!(holder.release(), 0);
}

/// `-v` says when a stale soft lock is taken over, whose it was and why;
/// without `-v` nothing is said.
#[test]
fn verbose_says_when_a_stale_lock_is_taken_over() {
    let dir = tmp();
    let soft = p(&dir, "soft.lock");
    let s = soft.to_str().unwrap();
    let stale = || {
        let killed = run(&["run", "--soft", s, "--", "sh", "-c", "kill -9 $PPID"]);
        assert_eq!(killed.status.code(), None, "lockyard itself was killed");
        assert!(soft.exists(), "the dead holder's sidecar is left behind");
    };
    stale();
    let quiet = run(&["run", "--soft", s, "--", "true"]);
    assert_eq!(code(&quiet), 0);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    stale();
    let told = run(&["run", "-v", "--soft", s, "--", "true"]);
    assert_eq!(code(&told), 0);
    let said = String::from_utf8_lossy(&told.stderr);
    assert!(
        said.contains("taking over stale lock") && said.contains("left by pid"),
        "{said}"
    );
}

/// `run` and `wait` never build a missing directory unless asked: a typo
/// is exit 66 with a hint, as flock(1) exits 66; `--create-dirs` builds it.
#[test]
fn missing_directories_are_created_only_when_asked() {
    let dir = tmp();
    let lock = p(&dir, "typo/sub/x.lock");
    let l = lock.to_str().unwrap();
    for args in [&["run", l, "--", "true"][..], &["wait", l][..]] {
        let out = run(args);
        assert_eq!(code(&out), 66, "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("--create-dirs"), "{said}");
        assert!(!p(&dir, "typo").exists(), "{args:?} built a directory");
    }
    assert_eq!(code(&run(&["run", "--create-dirs", l, "--", "true"])), 0);
    assert!(lock.exists());
}

/// flock's flags that `run` and `wait` do not take get a message saying
/// what to do, not clap's tip to pass them to the command.
#[test]
fn flock_flags_in_run_and_wait_say_what_to_do() {
    let dir = tmp();
    let l = p(&dir, "x.lock");
    let l = l.to_str().unwrap();
    for (args, says) in [
        (
            &["run", "-F", l, "--", "true"][..],
            "lockyard -F FILE COMMAND",
        ),
        (&["run", "-o", l, "--", "true"][..], "leave the flag out"),
        (&["wait", "--close", l][..], "leave the flag out"),
        (&["run", "-c", "true", l][..], "lockyard FILE -c"),
        (&["wait", "-u", l][..], "lockyard -u NUMBER"),
    ] {
        let out = run(args);
        assert_eq!(code(&out), 64, "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(says) && !said.contains("tip:"),
            "{args:?}: {said}"
        );
    }
}

/// A reader that stops after the first line (`lockyard status DIR | head
/// -1`) ends the command quietly with 141, as a shell reports `ls` ended
/// by SIGPIPE; no panic, for every subcommand that writes to stdout.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tmp();
    // Well over a pipe's 64 KiB buffer of output.
    for i in 0..3000 {
        std::fs::write(p(&dir, &format!("job-with-a-long-name-{i:05}.lock")), b"").unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let forms: [&[&str]; 3] = [
        &["status", d],
        &["status", "--json", d],
        &["clean", "--dry-run", "-v", d],
    ];
    for args in forms {
        let mut child = Kid::spawn(
            lockyard()
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        let n = stdout.read(&mut first).unwrap();
        assert!(n > 0, "{args:?} wrote nothing");
        drop(stdout);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{args:?} did not end");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} said: {stderr}");
    }
    // Any other failure to write is said, with its own status.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = lockyard()
        .args(["status", d])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(code(&out), 74);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write the output"));
}

/// `status` of a lock whose file does not exist (yet) answers "free", in
/// text and JSON, exit 0: nobody holds it. A missing directory is the same
/// answer; only other errors (permission) are errors.
#[test]
fn status_of_a_lock_with_no_file_is_free() {
    let dir = tmp();
    for path in [p(&dir, "never-made.lock"), p(&dir, "no-dir/job.lock")] {
        let l = path.to_str().unwrap();
        let out = run(&["status", l]);
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{l}: free")
        );
        let doc = status_json(&path);
        assert_eq!(doc["locks"][0]["state"], "free", "{doc}");
        assert_eq!(doc["locks"][0]["path"], l, "{doc}");
        assert!(doc["locks"][0]["error"].is_null(), "{doc}");
        assert!(!path.exists(), "status created {l}");
    }
}

/// A file that is not a lockyard lock file at a soft lock's path blocks it
/// forever (it is never broken): `status` says so, in text and JSON, and
/// `clean` leaves it.
#[test]
fn status_says_a_foreign_file_blocks_a_soft_lock() {
    let dir = tmp();
    let lock = p(&dir, "job.lock");
    let l = lock.to_str().unwrap();
    assert_eq!(code(&run(&["run", "--soft", l, "--", "true"])), 0);
    std::fs::write(&lock, b"someone's notes\n").unwrap();
    let out = run(&["status", l]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not a lockyard lock file"), "{text}");
    assert!(text.contains("remove it if nothing uses it"), "{text}");
    assert_eq!(status_json(&lock)["locks"][0]["state"], "foreign");
    let out = run(&["run", "--soft", "-n", l, "--", "true"]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a lockyard lock file"));
    assert_eq!(code(&run(&["clean", dir.path().to_str().unwrap()])), 0);
    assert_eq!(std::fs::read(&lock).unwrap(), b"someone's notes\n");
}

/// `clean` never removes a soft lock's control file, even for an unused
/// lock (another process may keep it open as its break lock), and `-v`
/// says so for each one it keeps.
#[test]
fn clean_keeps_control_files_and_says_why() {
    let dir = tmp();
    let lock = p(&dir, "job.lock");
    let l = lock.to_str().unwrap();
    assert_eq!(code(&run(&["run", "--soft", l, "--", "true"])), 0);
    let ctl = p(&dir, "job.lock.ctl");
    assert!(ctl.exists());
    let out = run(&["clean", "-v", dir.path().to_str().unwrap()]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "kept {} (a soft lock's control file",
            ctl.display()
        )),
        "{text}"
    );
    assert!(ctl.exists(), "clean removed the control file");
}
