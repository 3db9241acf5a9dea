//! flock(1)'s descriptor form: lock (or unlock) a descriptor the shell
//! opened and passed down, `exec 9>>f.lock; lockyard -n 9`. The lock
//! belongs to the shell's open file, so it stays after this process exits,
//! until the shell closes the descriptor or runs `lockyard -u 9`.
//!
//! Unix only. This is the command's only `unsafe` code: a descriptor
//! number from the command line is borrowed for the system calls below.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use lockyard::{LockMode, Wait};
use rustix::fs::FlockOperation;
use rustix::io::Errno;

/// How a lock request on a descriptor ended.
#[derive(Debug)]
pub enum Outcome {
    Locked,
    /// Held elsewhere and no waiting was asked for, or the wait ran out.
    Busy,
    /// The descriptor is not open in this process.
    NotOpen,
    Failed(io::Error),
}

/// The open descriptor `fd`, or `None` if nothing is open under that
/// number.
fn borrow(fd: i32) -> Option<BorrowedFd<'static>> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is only used for the system calls of this process's
    // short, single-threaded lifetime in this form, and is never closed
    // here. If no descriptor is open under that number, the `fcntl` below
    // fails with EBADF before any other use.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed).ok().map(|_| borrowed)
}

/// Locks the descriptor `fd` in `mode`, waiting as `wait` says. A wait
/// with a deadline retries with a backoff (1 ms doubling to 50 ms): a
/// `flock` blocked in the kernel could not be given up at the deadline.
pub fn lock(fd: i32, mode: LockMode, wait: Wait) -> Outcome {
    let Some(fd) = borrow(fd) else {
        return Outcome::NotOpen;
    };
    let (blocking, nonblocking) = match mode {
        LockMode::Exclusive => (
            FlockOperation::LockExclusive,
            FlockOperation::NonBlockingLockExclusive,
        ),
        LockMode::Shared => (
            FlockOperation::LockShared,
            FlockOperation::NonBlockingLockShared,
        ),
    };
    let deadline = match wait {
        Wait::Forever => None,
        Wait::TryOnce => Some(Instant::now()),
        Wait::For(d) => Instant::now().checked_add(d),
        Wait::Until(at) => Some(at),
    };
    let Some(deadline) = deadline else {
        return finish(retry(|| rustix::fs::flock(fd, blocking)));
    };
    let mut pause = Duration::from_millis(1);
    loop {
        match retry(|| rustix::fs::flock(fd, nonblocking)) {
            Err(Errno::WOULDBLOCK) => {}
            other => return finish(other),
        }
        let now = Instant::now();
        if now >= deadline {
            return Outcome::Busy;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Unlocks the descriptor `fd` (`-u`).
pub fn unlock(fd: i32) -> Outcome {
    let Some(fd) = borrow(fd) else {
        return Outcome::NotOpen;
    };
    finish(retry(|| rustix::fs::flock(fd, FlockOperation::Unlock)))
}

fn finish(result: rustix::io::Result<()>) -> Outcome {
    match result {
        Ok(()) => Outcome::Locked,
        Err(Errno::WOULDBLOCK) => Outcome::Busy,
        Err(Errno::BADF) => Outcome::NotOpen,
        Err(e) => Outcome::Failed(e.into()),
    }
}

fn retry(mut f: impl FnMut() -> rustix::io::Result<()>) -> rustix::io::Result<()> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}
