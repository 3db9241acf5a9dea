//! Helpers shared by the command's integration tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// The `lockyard` binary under test.
pub fn lockyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockyard"))
}

/// Runs it with `args` to the end.
pub fn run(args: &[&str]) -> Output {
    lockyard().args(args).output().expect("lockyard runs")
}

/// Its exit code.
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

/// A command that prints "locked" and waits for its stdin to close.
#[cfg(unix)]
pub const SAY_LOCKED_AND_WAIT: &[&str] = &["sh", "-c", "echo locked; cat >/dev/null"];
#[cfg(windows)]
pub const SAY_LOCKED_AND_WAIT: &[&str] = &["cmd", "/c", "echo locked& set /p x="];

/// A process holding the lock `path` (a file or `postgres://...#name`) until dropped: `lockyard run` with a command
/// that says "locked" and waits for its stdin to close.
pub struct Holder {
    child: Child,
}

impl Holder {
    pub fn start(extra: &[&str], path: impl AsRef<OsStr>) -> Holder {
        let mut child = lockyard()
            .arg("run")
            .args(extra)
            .arg(path.as_ref())
            .arg("--")
            .args(SAY_LOCKED_AND_WAIT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        expect_line(&mut child, "locked");
        Holder { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn release(mut self) -> i32 {
        drop(self.child.stdin.take());
        self.child.wait().unwrap().code().unwrap()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that is killed and reaped when dropped, so a failed
/// test never leaves one behind.
#[derive(Debug)]
pub struct Kid(Option<Child>);

impl Kid {
    pub fn spawn(cmd: &mut Command) -> Kid {
        Kid(Some(cmd.spawn().expect("spawn child process")))
    }

    /// The child itself, for a call that consumes it (`wait_with_output`).
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("child present")
    }
}

impl std::ops::Deref for Kid {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("child present")
    }
}

impl std::ops::DerefMut for Kid {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present")
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn expect_line(child: &mut Child, want: &str) {
    let out = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), want);
}
