//! The kernel wait: a blocking thread parked in the kernel's lock call, on
//! a descriptor of its own (never the one in use, so abandoning the wait
//! can never release a lock somebody else took through it).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::backend::open;
use crate::engine::Waited;
use crate::mode::LockMode;
use crate::sys::{self, FileId};

/// The descriptor a wait locks through.
#[derive(Debug)]
pub(super) enum WaitFile {
    /// The wait's own: closing it releases whatever it locked.
    Owned(Arc<File>),
    /// The resource's primary descriptor, lent while another is in use. It
    /// stays open after the wait, so an abandoned wait unlocks it and gives
    /// it back (clears the flag).
    Lent(Arc<File>, Arc<AtomicBool>),
}

impl WaitFile {
    fn file(&self) -> &Arc<File> {
        match self {
            WaitFile::Owned(file) | WaitFile::Lent(file, _) => file,
        }
    }
}

/// A wait's descriptor from the moment it is handed out until the wait's
/// lock is committed; dropped uncommitted, it lets go of the lock.
#[derive(Debug)]
pub(super) struct Waiting(Option<WaitFile>);

impl Waiting {
    /// Takes the descriptor, now holding the resource's lock.
    pub(super) fn commit(&mut self) -> Option<WaitFile> {
        let file = self.0.take();
        if let Some(WaitFile::Lent(_, lent)) = &file {
            lent.store(false, Ordering::Release);
        }
        file
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(WaitFile::Lent(file, lent)) = self.0.take() {
            // Unlocking what is not locked is harmless.
            let _ = sys::unlock(&file);
            lent.store(false, Ordering::Release);
        }
    }
}

/// Runs on a blocking thread: waits in the kernel on `spare` (see
/// [`WaitFile`]), or else on a descriptor opened now and checked to be the
/// entry's file.
pub(super) fn kernel_wait(
    spare: Option<WaitFile>,
    path: PathBuf,
    ours: bool,
    id: FileId,
    mode: LockMode,
    verify: bool,
) -> io::Result<Waited> {
    let mut waiting = Waiting(spare);
    if waiting.0.is_none() {
        match open::reopen(&path, id, ours)? {
            Some(file) => waiting.0 = Some(WaitFile::Owned(Arc::new(file))),
            None => return Ok(Waited::Replaced),
        }
    }
    let locked = match &waiting.0 {
        Some(file) => sys::lock_wait(file.file(), mode),
        None => return Ok(Waited::Replaced),
    };
    if let Err(e) = locked {
        // NFSv4 refuses an exclusive lock on a read-only descriptor.
        if !(mode == LockMode::Exclusive && sys::is_bad_descriptor(&e)) {
            return Err(e);
        }
        let Some(rw) = open::reopen_for_exclusive(&path, id)? else {
            return Ok(Waited::Replaced);
        };
        // The lent primary (if it was) goes back; the read-write one is
        // the wait's own.
        waiting = Waiting(Some(WaitFile::Owned(Arc::new(rw))));
        if let Some(file) = &waiting.0 {
            sys::lock_wait(file.file(), mode)?;
        }
    }
    if verify && sys::path_id(&path)? != Some(id) {
        return Ok(Waited::Replaced);
    }
    Ok(Waited::Locked(Box::new(waiting)))
}
