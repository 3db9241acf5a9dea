//! flock(1)'s command line, run by the real util-linux `flock` and by
//! `lockyard` on the same shell scripts: same exit codes, same output, same
//! effects. Unix only.
#![cfg(unix)]

use std::process::Command;

/// Runs `script` with `$LOCKER` set to `locker` in a fresh directory
/// (`$D`); returns its stdout and stderr.
fn run_with(locker: &str, script: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("LOCKER", locker)
        .env("D", dir.path())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The script's stdout under flock and under lockyard, which must agree;
/// `None` (said loudly) when flock is not installed.
fn both(script: &str) -> Option<String> {
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("!!! SKIPPED: util-linux flock(1) is not installed");
        return None;
    }
    let (theirs, their_err) = run_with("flock", script);
    let (ours, our_err) = run_with(env!("CARGO_BIN_EXE_lockyard"), script);
    assert_eq!(
        ours, theirs,
        "stdout differs\nflock stderr: {their_err}\nlockyard stderr: {our_err}"
    );
    Some(ours)
}

#[test]
fn the_descriptor_form_locks_the_shells_descriptor_until_unlocked() {
    let Some(out) = both(
        r#"exec 9>>"$D/f.lock"
           $LOCKER -n 9; echo "lock $?"
           (exec 8>>"$D/f.lock"; $LOCKER -n 8; echo "other $?")
           $LOCKER -u 9; echo "unlock $?"
           (exec 8>>"$D/f.lock"; $LOCKER -n 8; echo "after $?")"#,
    ) else {
        return;
    };
    assert_eq!(out, "lock 0\nother 1\nunlock 0\nafter 0\n");
}

#[test]
fn the_descriptor_form_shared_and_its_exit_codes() {
    let Some(out) = both(
        r#"exec 9>>"$D/f.lock"
           $LOCKER -s 9; echo "shared $?"
           (exec 8>>"$D/f.lock"; $LOCKER -s -n 8; echo "shared too $?")
           (exec 8>>"$D/f.lock"; $LOCKER -x -n 8; echo "exclusive $?")
           (exec 8>>"$D/f.lock"; $LOCKER -w 0.2 -E 75 8; echo "timeout -E $?")
           (exec 8>>"$D/f.lock"; $LOCKER -e --nonblock 8; echo "--nonblock $?")
           $LOCKER -n 7; echo "not open $?""#,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "shared 0\nshared too 0\nexclusive 1\ntimeout -E 75\n--nonblock 1\nnot open 65\n"
    );
}

#[test]
fn a_busy_lock_gives_the_same_codes_and_says_nothing() {
    let Some(out) = both(
        r#"$LOCKER "$D/f.lock" sleep 3 &
           for _ in $(seq 500); do [ -e "$D/f.lock" ] && break; sleep 0.01; done; sleep 0.2
           $LOCKER -n "$D/f.lock" true 2>"$D/err"; echo "-n $? $(wc -c <"$D/err")"
           $LOCKER -n -E 75 "$D/f.lock" true; echo "-n -E $?"
           $LOCKER -w 0.2 "$D/f.lock" true 2>"$D/err"; echo "-w $? $(wc -c <"$D/err")"
           $LOCKER -w 0.2 -E 75 "$D/f.lock" true; echo "-w -E $?"
           $LOCKER -w 0 "$D/f.lock" true; echo "-w 0 $?"
           kill %1; wait"#,
    ) else {
        return;
    };
    assert_eq!(out, "-n 1 0\n-n -E 75\n-w 1 0\n-w -E 75\n-w 0 1\n");
}

#[test]
fn commands_run_under_the_lock_with_their_status() {
    let Some(out) = both(
        r#"$LOCKER "$D/f.lock" -c 'echo "via $(basename "$0")"' | sed 's/via .*sh$/via a shell/'; echo "rc $?"
           $LOCKER "$D/f.lock" sh -c 'exit 3'; echo "rc $?"
           $LOCKER -s "$D/f.lock" echo shared; echo "rc $?"
           $LOCKER "$D/f.lock" ls -d "$D"/nothing-here 2>/dev/null; echo "options after the file: $?"
           $LOCKER "$D/no/such/dir/f.lock" true 2>/dev/null; echo "missing directory $?"
           [ -e "$D/no" ] && echo "a directory was created"
           $LOCKER --no-such-option "$D/f.lock" true 2>/dev/null; echo "bad option $?""#,
    ) else {
        return;
    };
    assert_eq!(
        out,
        "via a shell\nrc 0\nrc 3\nshared\nrc 0\noptions after the file: 2\nmissing directory 66\nbad option 64\n"
    );
}

/// `lockyard wait 9` / `run 9` where no file `9` exists: flock's
/// descriptor form was meant, so it is refused (never a new file `./9`
/// locked while the script runs unlocked).
#[test]
fn a_number_where_a_path_goes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for args in [vec!["wait", "9"], vec!["run", "9", "--", "true"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_lockyard"))
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("descriptor form"));
        assert!(!dir.path().join("9").exists(), "{args:?} created ./9");
    }
}

/// `run` and `wait` take flock's spellings too (`-x`, `-e`, `--nb`,
/// `--nonblock`, `--wait`), rather than clap's tip to pass them to the
/// command.
#[test]
fn run_and_wait_take_flocks_spellings() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("f.lock");
    let l = lock.to_str().unwrap();
    let lockyard = env!("CARGO_BIN_EXE_lockyard");
    for args in [
        vec!["run", "-x", "--nb", l, "--", "true"],
        vec!["run", "-e", "--nonblock", l, "--", "true"],
        vec!["run", "--exclusive", "--wait", "2", l, "--", "true"],
        vec!["wait", "-x", "--nb", l],
        vec!["wait", "--wait", "2s", l],
    ] {
        let out = Command::new(lockyard).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(lockyard)
        .args(["run", "-x", "-s", l, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// flock locks an existing directory; so does lockyard's flock form, on a
/// descriptor of its own.
#[test]
fn a_directory_is_locked_as_flock_locks_it() {
    let Some(out) = both(
        r#"mkdir "$D/dir"
           $LOCKER "$D/dir" echo held; echo "rc $?"
           $LOCKER "$D/dir" sh -c 'touch "$D/in"; while [ ! -e "$D/go" ]; do sleep 0.01; done' &
           for _ in $(seq 500); do [ -e "$D/in" ] && break; sleep 0.01; done
           $LOCKER -n "$D/dir" true; echo "busy $?"
           $LOCKER -w 0.2 -E 75 "$D/dir" true; echo "timeout $?"
           $LOCKER -s -n "$D/dir" true; echo "shared $?"
           touch "$D/go"; wait
           $LOCKER -n "$D/dir" true; echo "free $?""#,
    ) else {
        return;
    };
    assert_eq!(out, "held\nrc 0\nbusy 1\ntimeout 75\nshared 1\nfree 0\n");
}

/// `-F`: the command replaces the locker (same PID) and holds the lock
/// itself until it exits; its status is the exit status.
#[test]
fn no_fork_hands_the_lock_to_the_command() {
    let Some(out) = both(
        r#"$LOCKER -F "$D/f.lock" sh -c 'echo $$ > "$D/pid"; exec sleep 3' & p=$!
           for _ in $(seq 500); do [ -s "$D/pid" ] && break; sleep 0.01; done
           [ "$(cat "$D/pid")" = "$p" ] && echo "no fork"
           $LOCKER -n "$D/f.lock" true; echo "busy $?"
           kill $p; wait
           $LOCKER -n "$D/f.lock" true; echo "free $?"
           $LOCKER -F -n "$D/f.lock" sh -c 'exit 4'; echo "rc $?"
           $LOCKER --no-fork "$D/f.lock" -c 'exit 5'; echo "-c rc $?""#,
    ) else {
        return;
    };
    assert_eq!(out, "no fork\nbusy 1\nfree 0\nrc 4\n-c rc 5\n");
}
