//! Strict locks: the OS lock (`flock`, `LockFileEx`) on a lock file, with
//! a holder record written in place and a release announced to waiting
//! processes through the file's times.
//!
//! # What one acquisition and one release cost
//!
//! System calls per uncontended exclusive acquire + release of a lock file
//! lockyard made, on Linux (`strace -c`; `benches/cycle_probe.c` times the
//! same calls with no library around them):
//!
//! | configuration | acquire | release | total |
//! |---|---|---|---:|
//! | default (record on, file events on) | `flock`, `pread`, `pwrite` | `flock`, `fcntl` | 5 |
//! | record off (`metadata(false)`) | `flock` | `flock`, `fcntl` | 3 |
//! | record and file events off | `flock` | `flock` | 2 |
//! | any, a waiter in another process has marked the file | | `+ futimens` | +1 |
//!
//! Why each is there, and why nothing else is:
//! - **`pread`**: the fencing token must exceed the last holder's, which
//!   only the file knows (another process may have held the lock since).
//!   One read of at most 512 bytes; a record this process left is
//!   recognised by its bytes, another's is peeked at for its kind, state
//!   and token without being parsed whole.
//! - **`pwrite`**: the record names the holder and carries its token. The
//!   head (PID to start time) is formatted once per process and lock.
//! - **No write on release.** The record stays as written ("held"):
//!   whether it counts is the kernel's to say, which every reader asks (a
//!   probe, or `/proc/locks` on Linux). A shared holder, which knows that
//!   nobody holds the file exclusively, marks a "held" record released, so
//!   that no record names a holder while shared holders hold it. This
//!   saved one `pwrite` per cycle.
//! - **`fcntl(F_OFD_GETLK)`** after the unlock: is any other process's
//!   waiter watching for this release (`sys::waiters`)? Only then is the
//!   release announced (`futimens`, an inode update that costs twice the
//!   check). Where marks cannot be used (off Linux, or a filesystem whose
//!   `flock` is not local), every release is announced, as before.
//! - A plain file (someone's data) gets neither record nor announcement:
//!   2 system calls.
//!
//! Shared acquisitions read the record (1 `pread`) and write nothing
//! unless they find a "held" record to mark released. A wait adds a mark
//! and its removal (2 `fcntl`) around the watch.
//!
//! One [`StrictLock`] per lock file per process holds the descriptor
//! through which this process holds the OS lock. The descriptor it was
//! opened with is read without any lock (the uncontended path takes no
//! mutex here); one that replaces it (after a blocking wait, or a
//! read-write reopen on NFS) sits behind a mutex held only to copy or swap
//! it. The record stamp, read and written with I/O, is touched only during
//! the engine's turn, which never has two owners at once.

mod marks;
mod stamp;
mod wait;

use std::any::Any;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use marks::{Marked, Marks};
use stamp::Stamp;
use wait::{kernel_wait, WaitFile, Waiting};

use super::{open, settings, FileOpener};
use crate::backend::record_io::{self, Lookup, Read};
use crate::engine::{Attempted, BlockingWait, Hint, Holders, Params, Resource, Upgrade};
use crate::mode::LockMode;
use crate::notify::{self, Watch};
use crate::record::{self, HolderRecord, LockKind, Peek, RecordState};
use crate::sys::{self, FileId};

/// A strict lock file as this process knows it.
#[derive(Debug)]
pub(crate) struct StrictLock {
    id: FileId,
    /// A lock file lockyard made: holder records, release announcements
    /// and removal are allowed. A plain file (someone's data) is only ever
    /// locked and unlocked.
    ours: bool,
    /// The descriptor the resource was opened with. It holds the OS lock
    /// unless `replaced`; it closes with the resource, when the retired
    /// entry's last user (guard, waiter, handle) lets go.
    primary: Arc<File>,
    /// The descriptor now in use is `inner.current`, not `primary`. Set
    /// only during the engine's turn.
    replaced: AtomicBool,
    /// Closed: every turn from now on finds the resource replaced.
    closed: AtomicBool,
    /// The primary is lent to a blocking wait (while another descriptor
    /// is in use).
    primary_lent: Arc<AtomicBool>,
    /// Held only to copy or swap a field: never across a system call.
    inner: Mutex<Inner>,
    /// This process's last record in the file and its length. Only the
    /// engine's turn touches it (one caller at a time), with I/O.
    stamp: Mutex<Stamp>,
    /// Waiter marks, where they can be used: a release is then announced
    /// only when another process's waiter marked the file. `None`: every
    /// release is announced.
    marks: Option<Arc<Marks>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The descriptor the OS lock is held through when `replaced`.
    current: Option<Arc<File>>,
    /// Keeps the kernel watch on this file between waits, so the next
    /// waiter joins it without a system call.
    watch: Option<Watch>,
    /// The descriptor the last blocking wait replaced, kept for the next
    /// one: that wait then opens nothing, and the waiter it wakes closes
    /// nothing on its way to the lock (a close there cost ~7 µs of the
    /// hand-off). It holds no lock while it lies here.
    spare: Option<Arc<File>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each of these mutexes guards one field, swapped whole: a panic
    // cannot leave it half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StrictLock {
    pub(crate) fn new(file: File, id: FileId, ours: bool) -> Self {
        if ours {
            sys::quiet_reads(&file);
        }
        let primary = Arc::new(file);
        // A plain file is never announced, so never marked either.
        let marks = if ours { Marks::new(&primary) } else { None };
        StrictLock {
            id,
            ours,
            marks,
            primary,
            replaced: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            primary_lent: Arc::new(AtomicBool::new(false)),
            inner: Mutex::new(Inner::default()),
            stamp: Mutex::new(Stamp::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Runs `f` on the descriptor in use; `None` once closed.
    fn with_file<R>(&self, f: impl FnOnce(&Arc<File>) -> R) -> Option<R> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if !self.replaced.load(Ordering::Acquire) {
            return Some(f(&self.primary));
        }
        let current = self.inner().current.clone()?;
        Some(f(&current))
    }

    /// The descriptor in use, as an owned reference.
    fn file(&self) -> Option<Arc<File>> {
        self.with_file(Arc::clone)
    }

    /// Makes `file` the descriptor in use (during the engine's turn). The
    /// one it replaces holds no lock, and is closed: while another
    /// descriptor is in use the primary serves the next blocking wait, so
    /// a spare beside them would be a third descriptor of the file. The
    /// close happens after the field swap, outside the mutex.
    fn replace_current(&self, file: Arc<File>) {
        let (old, spare) = {
            let mut inner = self.inner();
            let old = inner.current.replace(file);
            self.replaced.store(true, Ordering::Release);
            (old, inner.spare.take())
        };
        drop((old, spare));
    }

    /// Makes the primary the descriptor in use again (during the engine's
    /// turn); the one it replaces becomes the spare (the only one: an older
    /// spare is closed, outside the mutex).
    fn restore_primary(&self) {
        let older = {
            let mut inner = self.inner();
            let current = inner.current.take();
            self.replaced.store(false, Ordering::Release);
            std::mem::replace(&mut inner.spare, current)
        };
        drop(older);
    }

    /// A descriptor for a blocking wait to lock through, never the one in
    /// use: the spare, else the primary if another one is in use, else
    /// none (the wait opens one). With [`replace_current`](Self::replace_current) and
    /// [`restore_primary`](Self::restore_primary) keeping a spare only while the primary is in
    /// use, the handles of a lock file keep at most two descriptors of it
    /// however many waits they make (a wait abandoned on the pool holds its
    /// own until it ends).
    fn wait_file(&self) -> Option<WaitFile> {
        if let Some(spare) = self.inner().spare.take() {
            return Some(WaitFile::Owned(spare));
        }
        if self.replaced.load(Ordering::Acquire) && !self.primary_lent.swap(true, Ordering::AcqRel)
        {
            return Some(WaitFile::Lent(
                Arc::clone(&self.primary),
                Arc::clone(&self.primary_lent),
            ));
        }
        None
    }

    /// Whether a release through `file` must be announced: always, unless
    /// waiter marks say no other process is watching.
    fn announce_wanted(&self, file: &File) -> bool {
        self.marks.as_ref().is_none_or(|m| m.wanted(file))
    }

    fn writes_records(&self, o: &FileOpener) -> bool {
        o.options.metadata && self.ours
    }

    /// One non-blocking OS attempt through the descriptor. Where an
    /// exclusive lock is refused on a read-only descriptor (NFSv4), the file
    /// is opened again read-write, as `flock(1)` does, and tried once more;
    /// that descriptor then replaces the old one, which holds nothing.
    fn os_try_lock(&self, mode: LockMode, o: &FileOpener) -> io::Result<Option<bool>> {
        match self.with_file(|file| sys::try_lock(file, mode)) {
            None => Ok(None),
            Some(Err(e)) if mode == LockMode::Exclusive && sys::is_bad_descriptor(&e) => {
                let Some(rw) = open::reopen_for_exclusive(&o.path, self.id)? else {
                    return Err(e);
                };
                let rw = Arc::new(rw);
                let locked = sys::try_lock(&rw, mode)?;
                self.replace_current(rw);
                Ok(Some(locked))
            }
            Some(other) => other.map(Some),
        }
    }

    /// Unlocks the descriptor in use (an attempt that cannot stand).
    fn undo(&self) {
        let _ = self.with_file(|file| sys::unlock(file));
    }

    /// Just locked through `file`: reads the record, and for an exclusive
    /// hold writes ours with the next fencing token. `Ok(None)` if the
    /// record says the file was removed by `clean_stale` (the path no
    /// longer names this file: start over); `Ok(Some(record))` with the
    /// record written, if any.
    ///
    /// A release leaves its record as it was ("held"), saving a write per
    /// cycle: a record counts only while the kernel says the file is held
    /// exclusively. A shared holder, which knows nobody holds it exclusively,
    /// marks a record it finds "held" released, so that while shared holders
    /// hold the file no record names a holder.
    fn stamp(
        &self,
        file: &File,
        mode: LockMode,
        o: &FileOpener,
    ) -> io::Result<Option<Option<Arc<HolderRecord>>>> {
        let mut stamp = lock(&self.stamp);
        let (found, len) = record_io::read_sized_or_known(file, |b| {
            stamp
                .token_if_unchanged(b)
                .map(Found::Own)
                .or_else(|| record::peek(b).map(Found::Other))
        })?;
        let found = match found {
            Lookup::Known(found) => found,
            Lookup::Read(Read::Record(r)) => Found::Other(Peek {
                kind: r.kind,
                state: r.state,
                token: r.token,
            }),
            Lookup::Read(Read::Invalid(_)) => Found::Foreign,
        };
        let last = match found {
            // What this process left: no other holder came in between.
            Found::Own(token) => {
                if mode == LockMode::Shared {
                    stamp.set_len(len);
                    if stamp.left_held() {
                        stamp.mark_released(file);
                    }
                    return Ok(Some(None));
                }
                token
            }
            Found::Other(p) if p.state == RecordState::Removed => return Ok(None),
            Found::Other(p) if p.kind == LockKind::Strict => {
                if mode == LockMode::Shared {
                    stamp.set_len(len);
                    if p.state == RecordState::Held {
                        mark_found_released(file, len);
                        stamp.forget();
                    }
                    return Ok(Some(None));
                }
                p.token
            }
            // No strict record (any more): whatever is there now is not
            // lockyard's to overwrite. The lock holds without a record or a
            // token.
            Found::Other(_) | Found::Foreign => {
                stamp.forget();
                stamp.set_len(len);
                return Ok(Some(None));
            }
        };
        stamp.set_len(len);
        let mut rec = super::new_record(LockKind::Strict, mode, 0, &o.options);
        // One clock read serves the record's times and the token's floor.
        rec.token = super::next_token_at(last, rec.acquired);
        let rec = Arc::new(rec);
        stamp.write(file, Arc::clone(&rec));
        Ok(Some(Some(rec)))
    }

    /// Marks this process's record in the file released (the lock is
    /// still held). Best effort, like the record itself.
    fn mark_released(&self, file: &File) {
        lock(&self.stamp).mark_released(file);
    }
}

/// What an acquisition found in the lock file.
enum Found {
    /// The record this process left, with its token.
    Own(u64),
    /// Another holder's record.
    Other(Peek),
    /// Something that is not a record (a file that holds data).
    Foreign,
}

/// Marks another process's record released, for a shared holder (see
/// [`StrictLock::stamp`]). Best effort, like the record itself; other
/// shared holders doing the same write the same bytes.
fn mark_found_released(file: &File, len: usize) {
    if let Ok((Read::Record(mut r), _)) = record_io::read_sized(file) {
        if r.state == RecordState::Held {
            r.state = RecordState::Released;
            let _ = record_io::rewrite(file, &r.to_bytes(), len);
        }
    }
}

/// The holder a strict lock file's record names, if the record still
/// counts: it says "held" (a release leaves it so: see `StrictLock::stamp`),
/// its process is not provably gone, and on Linux the kernel's lock table
/// shows that process holding the file (a holder that writes no record,
/// such as `flock(1)`, may have come after it). Call it only once the file
/// is known to be held exclusively.
pub(crate) fn current_holder(path: &std::path::Path, record: HolderRecord) -> Option<HolderRecord> {
    current_holders(path, Some(record), true).record
}

/// [`current_holder`], with what the kernel's lock table showed when it
/// was read (the holders to name instead of a record that does not count).
///
/// Reading that table (`/proc/locks`) is not free: the kernel blocks every
/// file lock operation on the machine while it lists them, and the first
/// read after a quiet spell waits for an RCU grace period (about 6 ms on
/// the reference VM). So with `check` off, a "held" record of another
/// process is taken at its word (a busy lock's error, which a polling
/// caller may make often); the table is read only when there is no record
/// to go by, or the record is this process's own (a lock this process
/// released and someone else, who wrote no record, now holds).
fn current_holders(path: &std::path::Path, record: Option<HolderRecord>, check: bool) -> Holders {
    let Some(record) = record.filter(|r| r.is_held() && !super::host::me().provably_dead(r)) else {
        return Holders {
            os: sys::os_holders::of(path),
            ..Holders::default()
        };
    };
    if !check && record.pid() != std::process::id() {
        return Holders {
            record: Some(record),
            ..Holders::default()
        };
    }
    let os = sys::os_holders::of(path);
    // An empty table: not Linux, or unreadable. The record is all there is.
    if os.is_empty() || os.iter().any(|h| h.pid() == record.pid()) {
        return Holders {
            record: Some(record),
            ..Holders::default()
        };
    }
    Holders {
        os,
        ..Holders::default()
    }
}

impl Resource for StrictLock {
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        let o = settings(p)?;
        match self.os_try_lock(mode, o)? {
            None => return Ok(Attempted::Replaced),
            Some(false) => return Ok(Attempted::Busy),
            Some(true) => {}
        }
        if o.options.get_verify_identity() {
            match sys::path_id(&o.path) {
                Ok(Some(id)) if id == self.id => {}
                Ok(_) => {
                    self.undo();
                    return Ok(Attempted::Replaced);
                }
                Err(e) => {
                    self.undo();
                    return Err(e);
                }
            }
        }
        if !self.writes_records(o) {
            return Ok(Attempted::Locked(None));
        }
        match self.with_file(|file| self.stamp(file, mode, o)) {
            Some(Ok(Some(record))) => Ok(Attempted::Locked(record)),
            Some(Ok(None)) | None => {
                self.undo();
                Ok(Attempted::Replaced)
            }
            Some(Err(e)) => {
                self.undo();
                Err(e)
            }
        }
    }

    fn blocking_wait(&self, mode: LockMode, p: Params<'_>) -> Option<BlockingWait> {
        let o = settings(p).ok()?;
        let spare = self.wait_file();
        let path = o.path.clone();
        let (id, ours) = (self.id, self.ours);
        let verify = o.options.get_verify_identity();
        Some(BlockingWait::new(move || {
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
        let Ok(mut waiting) = lock_held.downcast::<Waiting>() else {
            return Err(io::Error::other("a blocking wait returned a foreign lock"));
        };
        if self.closed.load(Ordering::Acquire) {
            // Dropping `waiting` releases the lock it got.
            return Ok(Attempted::Replaced);
        }
        // The descriptor in use holds no lock (this process holds nothing):
        // it serves the next blocking wait.
        let file = match waiting.commit() {
            Some(WaitFile::Owned(file)) => {
                self.replace_current(Arc::clone(&file));
                file
            }
            Some(WaitFile::Lent(primary, _)) => {
                self.restore_primary();
                primary
            }
            None => return Err(io::Error::other("a blocking wait came back empty")),
        };
        if !self.writes_records(o) {
            return Ok(Attempted::Locked(None));
        }
        match self.stamp(&file, mode, o) {
            Ok(Some(record)) => Ok(Attempted::Locked(record)),
            Ok(None) => {
                let _ = sys::unlock(&file);
                Ok(Attempted::Replaced)
            }
            // Unreadable record: proceed as if metadata were off.
            Err(_) => Ok(Attempted::Locked(None)),
        }
    }

    fn release(
        &self,
        _mode: LockMode,
        last: bool,
        // The record stays as written: see `stamp`.
        _record: Option<Arc<HolderRecord>>,
        p: Params<'_>,
    ) -> io::Result<bool> {
        let o = settings(p)?;
        let mut result = Ok(());
        let mut removed = false;
        // A plain file is never removed: only a lock file lockyard made.
        if o.options.remove_on_release && self.ours && last {
            // Delete only what we locked, and only while still holding it:
            // a process that opened the file before the unlink then finds,
            // after locking, that the path no longer names its file.
            match sys::path_id(&o.path) {
                Ok(Some(id)) if id == self.id => match sys::remove_file(&o.path) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => removed = true,
                    Err(e) => result = Err(e),
                },
                Ok(_) => removed = true,
                Err(e) => result = Err(e),
            }
        }
        let announce = o.options.file_events && self.ours && !removed;
        let unlocked = self.with_file(|file| {
            let unlocked = sys::unlock(file);
            // A plain file's times are left alone: its waiters in other
            // processes see the release by backoff (or a close, on Linux).
            if unlocked.is_ok() && announce && self.announce_wanted(file) {
                notify::announce_release(file);
            }
            unlocked
        });
        match unlocked.unwrap_or(Ok(())) {
            Ok(()) => {}
            Err(e) => {
                // The engine retires the entry on this error; closing the
                // descriptors (the primary with the entry) releases the
                // lock for certain.
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
                let mut record = None;
                if self.writes_records(o) {
                    if let Ok(Some(stamped)) = self.stamp(&file, LockMode::Exclusive, o) {
                        record = stamped;
                    }
                }
                Upgrade::Upgraded(record)
            }
            sys::Upgrade::StillShared => Upgrade::StillShared,
            sys::Upgrade::Lost => Upgrade::Lost,
        })
    }

    fn downgrade(&self, record: Option<Arc<HolderRecord>>, p: Params<'_>) -> io::Result<bool> {
        let o = settings(p)?;
        let Some(file) = self.file() else {
            return Ok(false);
        };
        let kept = sys::downgrade(&file)?;
        // Shared holders publish no record: mark the exclusive one ended.
        if record.is_some() {
            self.mark_released(&file);
        }
        if o.options.file_events && self.ours && self.announce_wanted(&file) {
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
        let joined = self.inner().watch.as_ref().and_then(Watch::join);
        let watch = match joined {
            Some(joined) => joined,
            None => {
                let file = self.file()?;
                // Watching is a system call: no mutex is held meanwhile.
                let fresh = Watch::file(&file, &o.path)?;
                self.inner().watch = fresh.join();
                fresh
            }
        };
        // Marked before the attempt that follows a new hint, so a holder
        // that unlocks after that attempt failed sees the mark.
        Some(match &self.marks {
            Some(marks) => Box::new(Marked {
                hint: Box::new(watch),
                _mark: marks.enter(),
            }),
            None => Box::new(watch),
        })
    }

    fn holders(&self, p: Params<'_>) -> Holders {
        // A plain file has no record: the kernel's lock table says who.
        if !self.ours {
            return Holders {
                os: settings(p).map_or_else(|_| Vec::new(), |o| sys::os_holders::of(&o.path)),
                ..Holders::default()
            };
        }
        let record = self
            .file()
            .and_then(|file| record_io::read(&file).ok())
            .and_then(Read::record);
        match settings(p) {
            Ok(o) => current_holders(&o.path, record, false),
            Err(_) => Holders {
                record: record.filter(HolderRecord::is_held),
                ..Holders::default()
            },
        }
    }

    /// Closes every descriptor but the primary, which closes with the
    /// resource (see `primary`); every later turn finds it replaced.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Dropped once the mutex is released: closing is a system call.
        let closed = std::mem::take(&mut *self.inner());
        drop(closed);
    }
}
