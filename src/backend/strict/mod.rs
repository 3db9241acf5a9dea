//! Strict locks: the OS lock (`flock`, `LockFileEx`) on a lock file, with
//! a holder record written in place and a release announced to waiting
//! processes through the file's times.
//!
//! One [`StrictLock`] per lock file per process holds the descriptor
//! through which this process holds the OS lock. Its state sits behind
//! small mutexes that are held only to copy or swap a field; the record
//! stamp, which is read and written with I/O, is touched only during the
//! engine's turn, which never has two owners at once.

mod stamp;

use std::any::Any;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use stamp::Stamp;

use super::{open, settings, FileOpener};
use crate::backend::record_io::{self, Lookup, Read};
use crate::engine::{Attempted, BlockingWait, Hint, Holders, Params, Resource, Upgrade, Waited};
use crate::mode::LockMode;
use crate::notify::{self, Watch};
use crate::record::{HolderRecord, LockKind, RecordState};
use crate::sys::{self, FileId};

/// A strict lock file as this process knows it.
#[derive(Debug)]
pub(crate) struct StrictLock {
    id: FileId,
    /// A lock file lockyard made: holder records, release announcements
    /// and removal are allowed. A plain file (someone's data) is only ever
    /// locked and unlocked.
    ours: bool,
    /// The descriptor the OS lock is held through; `None` once closed.
    file: Mutex<Option<Arc<File>>>,
    /// The record of this process's exclusive hold, if one was written.
    record: Mutex<Option<Arc<HolderRecord>>>,
    /// This process's last record in the file and its length: the turn's.
    stamp: Mutex<Stamp>,
    /// Keeps the kernel watch on this file between waits, so the next
    /// waiter joins it without a system call.
    watch: Mutex<Option<Watch>>,
    /// The descriptor the last blocking wait replaced, kept for the next
    /// one: that wait then opens nothing, and the waiter it wakes closes
    /// nothing on its way to the lock (a close there cost ~7 µs of the
    /// hand-off). It holds no lock while it lies here.
    spare: Mutex<Option<Arc<File>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each of these mutexes guards one field, swapped whole: a panic
    // cannot leave it half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StrictLock {
    pub(crate) fn new(file: File, id: FileId, ours: bool) -> Self {
        StrictLock {
            id,
            ours,
            file: Mutex::new(Some(Arc::new(file))),
            record: Mutex::new(None),
            stamp: Mutex::new(Stamp::default()),
            watch: Mutex::new(None),
            spare: Mutex::new(None),
        }
    }

    fn file(&self) -> Option<Arc<File>> {
        lock(&self.file).clone()
    }

    fn writes_records(&self, o: &FileOpener) -> bool {
        o.options.metadata && self.ours
    }

    /// One non-blocking OS attempt through the descriptor. Where an
    /// exclusive lock is refused on a read-only descriptor (NFSv4), the file
    /// is opened again read-write, as `flock(1)` does, and tried once more;
    /// that descriptor then replaces the old one, which holds nothing.
    fn os_try_lock(
        &self,
        file: Arc<File>,
        mode: LockMode,
        o: &FileOpener,
    ) -> io::Result<(Arc<File>, bool)> {
        match sys::try_lock(&file, mode) {
            Err(e) if mode == LockMode::Exclusive && sys::is_bad_descriptor(&e) => {
                let Some(rw) = open::reopen_for_exclusive(&o.path, self.id)? else {
                    return Err(e);
                };
                let rw = Arc::new(rw);
                let locked = sys::try_lock(&rw, mode)?;
                *lock(&self.file) = Some(Arc::clone(&rw));
                Ok((rw, locked))
            }
            other => Ok((file, other?)),
        }
    }

    /// Just locked through `file`: reads the record, and for an exclusive
    /// hold writes ours with the next fencing token. `Ok(false)` if the
    /// record says the file was removed by `clean_stale` (the path no
    /// longer names this file: start over).
    fn stamp(&self, file: &File, mode: LockMode, o: &FileOpener) -> io::Result<bool> {
        let mut stamp = lock(&self.stamp);
        let (found, len) = record_io::read_sized_or_known(file, |b| stamp.token_if_unchanged(b))?;
        let last = match found {
            // What this process left: no other holder came in between.
            Lookup::Known(token) => token,
            Lookup::Read(Read::Record(r)) if r.state == RecordState::Removed => return Ok(false),
            Lookup::Read(Read::Record(r)) if r.kind == LockKind::Strict => r.token,
            // No strict record (any more): whatever is there now is not
            // lockyard's to overwrite. The lock holds without a record or a
            // token.
            Lookup::Read(_) => {
                stamp.forget();
                stamp.set_len(len);
                return Ok(true);
            }
        };
        stamp.set_len(len);
        if mode == LockMode::Exclusive {
            let rec = Arc::new(super::new_record(
                LockKind::Strict,
                mode,
                super::next_token(last),
                &o.options,
            ));
            stamp.write(file, Arc::clone(&rec));
            *lock(&self.record) = Some(rec);
        }
        Ok(true)
    }

    /// Marks this process's record in the file released (the lock is
    /// still held). Best effort, like the record itself.
    fn mark_released(&self, file: &File) {
        lock(&self.stamp).mark_released(file);
    }
}

impl Resource for StrictLock {
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        let o = settings(p)?;
        let Some(file) = self.file() else {
            return Ok(Attempted::Replaced);
        };
        let (file, locked) = self.os_try_lock(file, mode, o)?;
        if !locked {
            return Ok(Attempted::Busy);
        }
        if o.options.verifies_identity() {
            match sys::path_id(&o.path) {
                Ok(Some(id)) if id == self.id => {}
                Ok(_) => {
                    let _ = sys::unlock(&file);
                    return Ok(Attempted::Replaced);
                }
                Err(e) => {
                    let _ = sys::unlock(&file);
                    return Err(e);
                }
            }
        }
        if self.writes_records(o) {
            match self.stamp(&file, mode, o) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = sys::unlock(&file);
                    return Ok(Attempted::Replaced);
                }
                Err(e) => {
                    let _ = sys::unlock(&file);
                    return Err(e);
                }
            }
        }
        Ok(Attempted::Locked)
    }

    fn blocking_wait(&self, mode: LockMode, p: Params<'_>) -> Option<BlockingWait> {
        let o = settings(p).ok()?;
        let spare = lock(&self.spare).take();
        let path = o.path.clone();
        let (id, ours) = (self.id, self.ours);
        let verify = o.options.verifies_identity();
        Some(Box::new(move || {
            kernel_wait(spare, path, ours, id, mode, verify)
        }))
    }

    fn commit_wait(
        &self,
        mode: LockMode,
        lock_held: Box<dyn Any + Send>,
        p: Params<'_>,
    ) -> io::Result<Attempted> {
        let o = settings(p)?;
        let Ok(file) = lock_held.downcast::<Arc<File>>() else {
            return Err(io::Error::other("a blocking wait returned a foreign lock"));
        };
        // The old descriptor holds no lock (this process holds nothing): it
        // serves the next blocking wait.
        let old = lock(&self.file).replace(Arc::clone(&file));
        *lock(&self.spare) = old;
        if self.writes_records(o) {
            match self.stamp(&file, mode, o) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = sys::unlock(&file);
                    return Ok(Attempted::Replaced);
                }
                // Unreadable record: proceed as if metadata were off.
                Err(_) => {}
            }
        }
        Ok(Attempted::Locked)
    }

    fn release(&self, _mode: LockMode, last: bool, p: Params<'_>) -> io::Result<bool> {
        let o = settings(p)?;
        let Some(file) = self.file() else {
            return Ok(false);
        };
        if lock(&self.record).take().is_some() {
            // Keep the record (and the last token) with a "released" mark.
            self.mark_released(&file);
        }
        let mut result = Ok(());
        let mut removed = false;
        // A plain file is never removed: only a lock file lockyard made.
        if o.options.remove_on_release && self.ours && last {
            // Delete only what we locked, and only while still holding it:
            // a process that opened the file before the unlink then finds,
            // after locking, that the path no longer names its file.
            match sys::path_id(&o.path) {
                Ok(Some(id)) if id == self.id => match std::fs::remove_file(&o.path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => removed = true,
                    Err(e) => result = Err(e),
                },
                Ok(_) => removed = true,
                Err(e) => result = Err(e),
            }
        }
        match sys::unlock(&file) {
            // A plain file's times are left alone: its waiters in other
            // processes see the release by backoff (or a close, on Linux).
            Ok(()) if o.options.file_events && self.ours && !removed => {
                notify::announce_release(&file)
            }
            Ok(()) => {}
            Err(e) => {
                // Closing the descriptor releases the lock for certain; the
                // next attempt then finds this resource closed.
                self.close();
                return Err(e);
            }
        }
        result.map(|()| removed)
    }

    fn upgrade(&self, p: Params<'_>) -> io::Result<Upgrade> {
        let o = settings(p)?;
        let Some(file) = self.file() else {
            return Ok(Upgrade::Lost);
        };
        Ok(match sys::try_upgrade(&file)? {
            sys::Upgrade::Upgraded => {
                if self.writes_records(o) {
                    let _ = self.stamp(&file, LockMode::Exclusive, o);
                }
                Upgrade::Upgraded
            }
            sys::Upgrade::StillShared => Upgrade::StillShared,
            sys::Upgrade::Lost => Upgrade::Lost,
        })
    }

    fn downgrade(&self, p: Params<'_>) -> io::Result<bool> {
        let o = settings(p)?;
        let Some(file) = self.file() else {
            return Ok(false);
        };
        let kept = sys::downgrade(&file)?;
        // Shared holders publish no record: mark the exclusive one ended.
        if lock(&self.record).take().is_some() {
            self.mark_released(&file);
        }
        if o.options.file_events && self.ours {
            // Shared waiters in other processes may go in now.
            notify::announce_release(&file);
        }
        Ok(kept)
    }

    fn supports_shared(&self) -> bool {
        true
    }

    fn wake_hint(&self, p: Params<'_>) -> Option<Box<dyn Hint>> {
        let o = settings(p).ok()?;
        if !o.options.file_events {
            return None;
        }
        if let Some(joined) = lock(&self.watch).as_ref().and_then(Watch::join) {
            return Some(Box::new(joined));
        }
        // Watching is a system call: no mutex is held meanwhile.
        let fresh = Watch::file(&*self.file()?, &o.path)?;
        *lock(&self.watch) = fresh.join();
        Some(Box::new(fresh))
    }

    fn record(&self) -> Option<Arc<HolderRecord>> {
        lock(&self.record).clone()
    }

    fn holders(&self, p: Params<'_>) -> Holders {
        if let Some(rec) = self.record() {
            return Holders {
                record: Some(HolderRecord::clone(&rec)),
                os: Vec::new(),
            };
        }
        // A plain file has no record: the kernel's lock table says who.
        if !self.ours {
            return Holders {
                record: None,
                os: settings(p).map_or_else(|_| Vec::new(), |o| sys::os_holders::of(&o.path)),
            };
        }
        let record = self
            .file()
            .and_then(|file| record_io::read(&file).ok())
            .and_then(Read::record)
            .filter(HolderRecord::is_held);
        Holders {
            record,
            os: Vec::new(),
        }
    }

    fn refresh(&self, _p: Params<'_>) -> io::Result<()> {
        Ok(())
    }

    fn still_held(&self, held: bool, _p: Params<'_>) -> io::Result<bool> {
        Ok(held)
    }

    fn close(&self) {
        let file = lock(&self.file).take();
        let watch = lock(&self.watch).take();
        let spare = lock(&self.spare).take();
        drop((file, watch, spare));
    }
}

/// Runs on a blocking thread: waits in the kernel on a descriptor of its
/// own, never the entry's (so abandoning it can never release a lock
/// somebody else took through the entry's descriptor). That is `spare`, the
/// one an earlier wait left, or else one opened now and checked to be the
/// entry's file.
fn kernel_wait(
    spare: Option<Arc<File>>,
    path: PathBuf,
    ours: bool,
    id: FileId,
    mode: LockMode,
    verify: bool,
) -> io::Result<Waited> {
    let mut file = match spare {
        Some(file) => file,
        None => match open::reopen(&path, id, ours)? {
            Some(file) => Arc::new(file),
            None => return Ok(Waited::Replaced),
        },
    };
    if let Err(e) = sys::lock_wait(&file, mode) {
        // NFSv4 refuses an exclusive lock on a read-only descriptor.
        if !(mode == LockMode::Exclusive && sys::is_bad_descriptor(&e)) {
            return Err(e);
        }
        let Some(rw) = open::reopen_for_exclusive(&path, id)? else {
            return Ok(Waited::Replaced);
        };
        file = Arc::new(rw);
        sys::lock_wait(&file, mode)?;
    }
    if verify && sys::path_id(&path)? != Some(id) {
        return Ok(Waited::Replaced);
    }
    Ok(Waited::Locked(Box::new(file)))
}
