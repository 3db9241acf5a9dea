//! Waiter marks: how a process waiting for a lock file's release tells the
//! holder, in another process, that it wants to hear about it.
//!
//! A waiter that is not blocked in the kernel (a future, a wait with a
//! deadline) learns of a release from the holder's announcement, which costs
//! the holder an inode update (`futimens`, ~0.4 µs on ext4) on every release.
//! Most releases have nobody to tell. So a waiter places a read lock on one
//! byte far past any content (an open-file-description lock, `F_OFD_SETLK`)
//! before its last attempt, and the holder asks the kernel whether any such
//! lock exists (`F_OFD_GETLK`, ~0.2 µs, no inode write) after unlocking, and
//! announces only then.
//!
//! Why no announcement can be missed: the waiter marks before the attempt
//! that fails, that failure comes before the holder's unlock, and the
//! holder looks after its unlock, so it sees the mark.
//!
//! On Linux, `flock` and OFD locks are separate: a mark never conflicts
//! with the lock itself. That holds only for local filesystems (an NFS or
//! SMB client turns `flock` into a byte-range lock over the whole file, which
//! a mark would block), so marks are used only where `os_locks_shared` says
//! the filesystem is local; elsewhere every release is announced.
//!
//! This module holds `unsafe` code (the `fcntl` calls), each block with a
//! `SAFETY:` comment.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Where marks go: the last byte a lock can cover, never content.
const MARK_AT: libc::off_t = libc::off_t::MAX - 1;

fn mark_range(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value (the
    // fields that matter are set below).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    // The constants are small; the field is a short on Linux.
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = MARK_AT;
    fl.l_len = 1;
    fl
}

fn fcntl_lock(file: &File, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor is open for the life of `file`, and `fl`
        // points to a valid, exclusively borrowed `flock` that the kernel
        // reads (and for F_OFD_GETLK writes) during the call only.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, fl as *mut libc::flock) };
        if r != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Marks `file`'s lock as waited for by this open file description.
/// Idempotent; never blocks.
pub(crate) fn mark(file: &File) -> io::Result<()> {
    fcntl_lock(file, libc::F_OFD_SETLK, &mut mark_range(libc::F_RDLCK))
}

/// Removes this open file description's mark.
pub(crate) fn unmark(file: &File) -> io::Result<()> {
    fcntl_lock(file, libc::F_OFD_SETLK, &mut mark_range(libc::F_UNLCK))
}

/// Whether some other open file description has marked `file`. When the
/// kernel cannot say, yes: an announcement too many costs little.
pub(crate) fn marked(file: &File) -> bool {
    let mut fl = mark_range(libc::F_WRLCK);
    match fcntl_lock(file, libc::F_OFD_GETLK, &mut fl) {
        Ok(()) => fl.l_type != libc::F_UNLCK as libc::c_short,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mark is seen through another open file description of the same
    /// file, not through its own, and not after it is removed; and it does
    /// not touch the `flock` lock or the content.
    #[test]
    fn marks_are_seen_by_others_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.lock");
        std::fs::write(&path, b"content").expect("write");
        let a = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("a");
        let b = File::open(&path).expect("b");
        assert!(!marked(&a), "no mark yet");
        mark(&b).expect("mark");
        mark(&b).expect("marking twice is fine");
        assert!(marked(&a), "b's mark, seen from a");
        assert!(!marked(&b), "its own mark does not count");
        assert!(crate::sys::try_lock(&a, crate::LockMode::Exclusive).expect("flock"));
        assert!(marked(&a), "flock and marks are separate");
        crate::sys::unlock(&a).expect("unlock");
        unmark(&b).expect("unmark");
        assert!(!marked(&a), "gone");
        mark(&b).expect("mark again");
        drop(b);
        assert!(!marked(&a), "closing the description removes its mark");
        assert_eq!(std::fs::read(&path).expect("read"), b"content");
    }
}
