//! Helpers shared by the command's integration tests.
#![allow(dead_code)]

use std::process::{Command, Output};

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
