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
            .args(["--", "sh", "-c", "echo locked; cat >/dev/null"])
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

pub fn expect_line(child: &mut Child, want: &str) {
    let out = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), want);
}
