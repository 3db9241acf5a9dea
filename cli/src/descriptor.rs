//! flock(1)'s descriptor form: lock (or unlock) a descriptor the shell
//! opened and passed down, `exec 9>>f.lock; lockyard -n 9`. The lock
//! belongs to the shell's open file, so it stays after this process exits,
//! until the shell closes the descriptor or runs `lockyard -u 9`.
//!
//! And the two forms of flock's that lock a descriptor lockyard opens
//! itself, with no holder record (as flock): a directory, which the library
//! does not lock, and `-F`, where the command replaces lockyard and keeps
//! the locked descriptor.
//!
//! Unix only. Besides the Windows console handler, this is the command's
//! only `unsafe` code: a descriptor number from the command line is
//! borrowed for the system calls below.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use lockyard::{LockMode, Wait};
use rustix::fs::{FlockOperation, Mode, OFlags};
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

/// Locks the descriptor `fd` in `mode`, waiting as `wait` says.
pub fn lock(fd: i32, mode: LockMode, wait: Wait) -> Outcome {
    let Some(fd) = borrow(fd) else {
        return Outcome::NotOpen;
    };
    lock_fd(fd, mode, wait)
}

/// Locks `fd` in `mode`, waiting as `wait` says. A wait with a deadline
/// retries with a backoff (1 ms doubling to 50 ms): a `flock` blocked in
/// the kernel could not be given up at the deadline.
fn lock_fd(fd: BorrowedFd<'_>, mode: LockMode, wait: Wait) -> Outcome {
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

/// Opens `path` for a lock on a descriptor of lockyard's own, as flock(1)
/// does: read-only, a missing file created (mode 0666 less the umask), a
/// directory opened as it is. Never through a symbolic link, as for every
/// lock lockyard takes; close-on-exec.
pub fn open(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let opened = match rustix::fs::open(path, flags | OFlags::CREATE, Mode::from(0o666)) {
        Err(Errno::ISDIR) => rustix::fs::open(path, flags | OFlags::DIRECTORY, Mode::empty()),
        other => other,
    };
    opened.map_err(|e| match e {
        Errno::LOOP => io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link (locks are never taken through links)",
        ),
        e => e.into(),
    })
}

/// Locks `path` on a descriptor of lockyard's own and runs `command` while
/// holding it (flock's form on a directory); the lock goes when lockyard
/// exits after the command. Its exit status is the command's.
pub fn run_holding(path: &Path, command: &[String], how: &Held) -> u8 {
    let fd = match open_and_lock(path, how) {
        Ok(fd) => fd,
        Err(code) => return code,
    };
    // Signals are caught only once the lock is held: until then they end
    // lockyard, which holds nothing, as they end flock.
    let signals = crate::signals::Signals::install();
    let mut child = match crate::run::start(command, how.ui, &signals) {
        Ok(child) => child,
        Err(code) => return code,
    };
    let status = child.wait();
    signals.stop_forwarding();
    drop(fd);
    crate::run::status_code(status, how.ui)
}

/// `-F`: locks `path` on a descriptor of lockyard's own, keeps that
/// descriptor open across `exec`, and becomes `command`, which then holds
/// the lock until it exits (or closes the descriptor). Returns only if
/// that fails.
pub fn exec_holding(path: &Path, command: &[String], how: &Held) -> u8 {
    use std::os::unix::process::CommandExt;
    let fd = match open_and_lock(path, how) {
        Ok(fd) => fd,
        Err(code) => return code,
    };
    let Some((program, rest)) = command.split_first() else {
        return crate::exit::USAGE;
    };
    if let Err(e) = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()) {
        how.ui
            .say(format_args!("cannot keep the lock across exec: {e}"));
        return crate::exit::LOCK_ERROR;
    }
    if how.ui.verbose {
        how.ui.say(format_args!("executing {}", command.join(" ")));
    }
    let e = std::process::Command::new(program).args(rest).exec();
    how.ui.say(format_args!("cannot run {program}: {e}"));
    drop(fd);
    match e.kind() {
        io::ErrorKind::NotFound => crate::exit::NOT_FOUND,
        _ => crate::exit::CANNOT_EXECUTE,
    }
}

/// How a lock of lockyard's own descriptor is taken and reported.
#[derive(Debug)]
pub struct Held {
    pub mode: LockMode,
    pub wait: Wait,
    /// The exit code for a busy lock or a wait that ran out.
    pub conflict: u8,
    pub ui: crate::waiting::Ui,
}

fn open_and_lock(path: &Path, how: &Held) -> Result<OwnedFd, u8> {
    let fd = open(path).map_err(|e| {
        how.ui.say(format_args!(
            "cannot open lock file {}: {e}",
            path.display()
        ));
        crate::exit::CANNOT_OPEN
    })?;
    match lock_fd(fd.as_fd(), how.mode, how.wait) {
        Outcome::Locked => Ok(fd),
        Outcome::Busy => Err(how.conflict),
        Outcome::NotOpen => Err(crate::exit::LOCK_ERROR),
        Outcome::Failed(e) => {
            how.ui
                .say(format_args!("cannot lock {}: {e}", path.display()));
            Err(crate::exit::LOCK_ERROR)
        }
    }
}
