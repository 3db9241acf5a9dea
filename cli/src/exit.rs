//! Exit codes. Where `flock(1)` has one for the same situation, it is the
//! same here; the rest follow shell and `sysexits.h` conventions.

/// The lock was busy and `--no-wait` was given (`flock -n`). Change it with
/// `--conflict-exit-code`.
pub const WOULD_BLOCK: u8 = 1;
/// The `--timeout` passed with the lock still held (as `timeout(1)`).
/// Change it with `--timeout-exit-code`.
pub const TIMED_OUT: u8 = 124;
/// Bad command line (`EX_USAGE`, as `flock(1)`).
pub const USAGE: u8 = 64;
/// The lock file's directory does not exist (and `--create-dirs` was not
/// given), or cannot be created (`EX_NOINPUT`, as `flock(1)`).
pub const CANNOT_OPEN: u8 = 66;
/// The lock could not be opened, locked or inspected (`EX_OSERR`).
pub const LOCK_ERROR: u8 = 71;
/// The command exists but cannot be run (as shells do).
pub const CANNOT_EXECUTE: u8 = 126;
/// The command was not found (as shells do).
pub const NOT_FOUND: u8 = 127;
/// Killed or interrupted by signal `n`: `128 + n`, as shells report it.
pub const SIGNAL_BASE: u8 = 128;
/// Stdout could not be written, for a reason other than a closed pipe
/// (`EX_IOERR`).
pub const OUTPUT_ERROR: u8 = 74;
/// Stdout was a pipe whose reader had gone (`lockyard status | head -1`):
/// the status a shell reports for `ls` or `cat` ended by `SIGPIPE`
/// (128 + 13), given without a word, on every system.
pub const BROKEN_PIPE: u8 = 141;
