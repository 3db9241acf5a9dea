//! Process-wide, per-file waiter queues.
//!
//! Every lock file this process uses has one [`Entry`], found by file
//! identity (device + inode, or volume + file index) so that two paths to
//! the same file (hard links, `..`) share it. The entry owns the single
//! descriptor through which this process holds the OS lock, counts the
//! in-process holders, and keeps a FIFO queue of in-process waiters.
//!
//! The OS lock is therefore a *process-level* resource: in-process
//! exclusion is decided here under a mutex, and only the waiter at the head
//! of the queue ever talks to the kernel about other processes. Ten
//! thousand waiting tasks cost ten thousand small queue slots and one
//! descriptor, not ten thousand descriptors polling.
//!
//! Invariants, all under `Entry::state`:
//! - `held` is what this process holds; the descriptor holds the OS lock in
//!   that mode exactly when `held` is not `None`.
//! - While `held` is `None`, only the head of the queue may take the OS
//!   lock (so nobody barges past the queue).
//! - A slot leaves the queue when it is granted, cancelled or retired, and
//!   every state change that could let the head proceed notifies it.

use std::collections::hash_map::HashMap;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use event_listener::{Event, EventListener};

use crate::lock::Handle;
use crate::notify::{self, Watch};
use crate::open;
use crate::record::{self, HolderRecord, LockKind, Lookup, Read, RecordState};
use crate::soft::{self, SoftHeld, SoftTry};
use crate::stale::StaleLock;
use crate::stamp::Stamp;
use crate::sys::{self, FileId};
use crate::LockMode;

/// What this process currently holds on one lock file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    None,
    Exclusive,
    Shared(usize),
}

impl Held {
    fn one(mode: LockMode) -> Held {
        match mode {
            LockMode::Exclusive => Held::Exclusive,
            LockMode::Shared => Held::Shared(1),
        }
    }
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const RETIRED: u8 = 2;

/// One in-process waiter's place in the queue.
///
/// Its state changes only under the entry's mutex; the atomic only lets the
/// slot be shared between the queue and its waiter.
#[derive(Debug)]
pub(crate) struct Slot {
    mode: LockMode,
    state: AtomicU8,
    event: Event,
}

impl Slot {
    fn new(mode: LockMode) -> Arc<Slot> {
        Arc::new(Slot {
            mode,
            state: AtomicU8::new(WAITING),
            event: Event::new(),
        })
    }

    /// A listener for this slot's wake-ups. Create it *before* calling
    /// [`Entry::advance`], so a notification sent after that check is not
    /// lost.
    pub(crate) fn listen(&self) -> EventListener {
        self.event.listen()
    }

    /// Whether a notification is waiting for this slot's listener (one
    /// atomic load: no lock).
    pub(crate) fn is_notified(&self) -> bool {
        self.event.is_notified()
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
        self.event.notify(1);
    }
}

/// Outcome of a first attempt ([`Entry::try_or_enqueue`]).
pub(crate) enum Attempt {
    /// Acquired at once.
    Acquired,
    /// Held in a conflicting mode (only when asked not to enqueue).
    Busy,
    /// Queued; wait with this slot.
    Queued(Arc<Slot>),
    /// The entry no longer stands for the file at the path: resolve again.
    Retired,
}

/// Outcome of a waiter's check ([`Entry::advance`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The slot now holds the lock.
    Acquired,
    /// Waiting on another holder in this process, or behind other waiters:
    /// only a notification can change that.
    Waiting,
    /// At the head, and another process holds the lock: retry later.
    Contending,
    /// The entry was retired: resolve again.
    Retired,
}

struct State {
    /// `None` once the entry is retired (closing it drops any OS lock).
    /// For a soft lock, the control file.
    file: Option<File>,
    held: Held,
    queue: VecDeque<Arc<Slot>>,
    /// The record of this process's exclusive hold, if one was written.
    record: Option<Arc<HolderRecord>>,
    /// The length of the lock file's record as last read or written.
    record_len: usize,
    /// The soft lock this process holds.
    soft: Option<SoftHeld>,
    /// The holder record seen by the last failed soft attempt.
    last_busy: Option<HolderRecord>,
    /// This process's last record in the lock file.
    stamp: Stamp,
    /// Keeps the kernel watch on this lock between waits, so the next
    /// waiter joins it without a system call and no waiter removes it on
    /// its way to the lock. Goes with the entry.
    watch: Option<Watch>,
    /// The descriptor the last kernel wait replaced, kept for the next
    /// one: that wait then opens nothing, and the waiter it wakes closes
    /// nothing on its way to the lock (a close there cost ~7 µs of the
    /// hand-off). It holds no lock while it lies here.
    spare: Option<File>,
}

/// Result of one OS attempt under the mutex.
enum Os {
    Locked,
    Busy,
    Replaced,
    /// A soft lock is stale, and the `on_stale` hook must be asked whether
    /// this publication of the sidecar may be broken.
    Ask(Box<StaleLock>, soft::Publication),
    /// While the hook ran, the state changed so that the attempt is no
    /// longer this caller's to make (only from [`Entry::attempt`]).
    Waiting,
}

/// A lock file as this process knows it.
pub(crate) struct Entry {
    id: FileId,
    kind: LockKind,
    /// A lock file lockyard made: holder records, release announcements
    /// and removal are allowed. A plain file (someone's data) is only ever
    /// locked and unlocked.
    ours: bool,
    /// For a soft lock: whether its filesystem shares OS locks (see
    /// `soft::Ctl`), found once here rather than on every attempt.
    shared: bool,
    retired: AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("retired", &self.is_retired())
            .finish_non_exhaustive()
    }
}

fn registry() -> MutexGuard<'static, HashMap<FileId, Weak<Entry>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<FileId, Weak<Entry>>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The live entry for the file `file` (whose identity is `id`), creating it
/// from `file` if this process has none. A surplus `file` is closed.
pub(crate) fn entry_for(file: File, id: FileId, kind: LockKind, ours: bool) -> Arc<Entry> {
    let mut map = registry();
    let existing = map.get(&id).and_then(Weak::upgrade);
    if let Some(entry) = &existing {
        if !entry.is_retired() {
            let entry = Arc::clone(entry);
            drop(map);
            drop(file);
            return entry;
        }
    }
    let shared = kind != LockKind::Strict && sys::os_locks_shared(&file);
    let entry = Arc::new(Entry {
        id,
        kind,
        ours,
        shared,
        retired: AtomicBool::new(false),
        state: Mutex::new(State {
            file: Some(file),
            held: Held::None,
            queue: VecDeque::new(),
            record: None,
            record_len: 0,
            soft: None,
            last_busy: None,
            watch: None,
            spare: None,
            stamp: Stamp::default(),
        }),
    });
    map.insert(id, Arc::downgrade(&entry));
    drop(map);
    // A retired entry found above is dropped only now: its `Drop` takes the
    // registry lock.
    drop(existing);
    entry
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.forget();
    }
}

impl Entry {
    pub(crate) fn id(&self) -> FileId {
        self.id
    }

    /// A soft lock's control file `file` (this entry's), as `soft` takes it.
    fn ctl<'a>(&self, file: &'a File) -> soft::Ctl<'a> {
        soft::Ctl {
            file,
            ours: self.ours,
            shared: self.shared,
        }
    }

    /// Whether the file is a lock file lockyard made (see `open`).
    pub(crate) fn is_ours(&self) -> bool {
        self.ours
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding this lock; if something ever did,
        // the state is still consistent at every unlock point.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes this entry from the registry, if it is still the one there.
    fn forget(&self) {
        let mut map = registry();
        if let Some(w) = map.get(&self.id) {
            if std::ptr::eq(w.as_ptr(), self) {
                map.remove(&self.id);
            }
        }
    }

    /// Number of in-process waiters queued on this file.
    pub(crate) fn queued(&self) -> usize {
        self.state().queue.len()
    }

    /// The fast path: take the lock if nobody in this process is queued and
    /// the mode allows it; otherwise queue a slot (or report `Busy` when
    /// `enqueue` is false).
    pub(crate) fn try_or_enqueue(
        &self,
        mode: LockMode,
        h: &Handle,
        enqueue: bool,
    ) -> io::Result<Attempt> {
        let mut st = self.state();
        if st.file.is_none() {
            return Ok(Attempt::Retired);
        }
        if st.queue.is_empty() {
            match (st.held, mode) {
                (Held::None, _) => {
                    let may_try = |st: &State| st.queue.is_empty() && st.held == Held::None;
                    let (guard, outcome) = self.attempt(st, mode, h, may_try);
                    st = guard;
                    match outcome? {
                        Os::Locked => {
                            st.held = Held::one(mode);
                            return Ok(Attempt::Acquired);
                        }
                        Os::Replaced => {
                            self.retire(st);
                            return Ok(Attempt::Retired);
                        }
                        // Held elsewhere, or (after a hook) by this process
                        // meanwhile: either way, not now.
                        Os::Busy | Os::Waiting | Os::Ask(..) => {}
                    }
                }
                (Held::Shared(n), LockMode::Shared) => {
                    st.held = Held::Shared(n + 1);
                    return Ok(Attempt::Acquired);
                }
                _ => {}
            }
        }
        if !enqueue {
            return Ok(Attempt::Busy);
        }
        let slot = Slot::new(mode);
        st.queue.push_back(Arc::clone(&slot));
        Ok(Attempt::Queued(slot))
    }

    /// A queued waiter checks where it stands, and takes the OS lock if it
    /// is its turn. An error removes the slot from the queue.
    pub(crate) fn advance(&self, slot: &Arc<Slot>, h: &Handle) -> io::Result<Progress> {
        let st = self.state();
        match slot.state.load(Ordering::Relaxed) {
            GRANTED => return Ok(Progress::Acquired),
            RETIRED => return Ok(Progress::Retired),
            _ => {}
        }
        let at_head = st.queue.front().is_some_and(|h| Arc::ptr_eq(h, slot));
        if !at_head || st.held != Held::None {
            return Ok(Progress::Waiting);
        }
        let still_its_turn = |st: &State| {
            slot.state.load(Ordering::Relaxed) == WAITING
                && st.held == Held::None
                && st.queue.front().is_some_and(|h| Arc::ptr_eq(h, slot))
        };
        let (guard, outcome) = self.attempt(st, slot.mode, h, still_its_turn);
        let mut st = guard;
        match outcome {
            Ok(Os::Waiting) => Ok(Progress::Waiting),
            Ok(Os::Ask(..)) => Ok(Progress::Contending),
            Ok(Os::Locked) => {
                st.queue.pop_front();
                st.held = Held::one(slot.mode);
                dispatch(&mut st);
                Ok(Progress::Acquired)
            }
            Ok(Os::Busy) => Ok(Progress::Contending),
            Ok(Os::Replaced) => {
                self.retire(st);
                Ok(Progress::Retired)
            }
            Err(e) => {
                st.queue.pop_front();
                dispatch(&mut st);
                Err(e)
            }
        }
    }

    /// A blocking-pool thread locked `file`, a fresh descriptor of this
    /// entry's file, on behalf of `slot`. Adopt it if the slot may still
    /// have the lock; otherwise `file` is dropped, which releases it.
    pub(crate) fn adopt_locked(&self, slot: &Arc<Slot>, file: File, h: &Handle) -> Progress {
        let mut st = self.state();
        if st.file.is_none() || slot.state.load(Ordering::Relaxed) == RETIRED {
            return Progress::Retired;
        }
        let at_head = st.queue.front().is_some_and(|h| Arc::ptr_eq(h, slot));
        if !at_head || st.held != Held::None {
            return Progress::Waiting;
        }
        // The old descriptor holds no lock (`held` is `None`): it serves
        // the next kernel wait.
        st.spare = st.file.replace(file);
        if h.options.metadata && self.ours {
            match self.stamp(&mut st, slot.mode, h) {
                Ok(true) => {}
                Ok(false) => {
                    self.retire(st);
                    return Progress::Retired;
                }
                Err(_) => {
                    // Unreadable record: proceed as if metadata were off.
                }
            }
        }
        st.queue.pop_front();
        st.held = Held::one(slot.mode);
        dispatch(&mut st);
        Progress::Acquired
    }

    /// A descriptor of this entry's file that holds no lock, left by an
    /// earlier kernel wait, for the next one to wait on.
    pub(crate) fn take_spare(&self) -> Option<File> {
        self.state().spare.take()
    }

    /// The waiter behind `slot` gives up (dropped, timed out, failed). If it
    /// had been granted the lock without noticing, the lock is released.
    pub(crate) fn cancel(&self, slot: &Arc<Slot>, h: &Handle) {
        let mut st = self.state();
        match slot.state.load(Ordering::Relaxed) {
            GRANTED => {
                drop(st);
                let _ = self.release(slot.mode, h);
            }
            RETIRED => {}
            _ => {
                if let Some(i) = st.queue.iter().position(|s| Arc::ptr_eq(s, slot)) {
                    st.queue.remove(i);
                    if i == 0 {
                        dispatch(&mut st);
                    }
                }
            }
        }
    }

    /// Retires the entry because the file at the path is no longer the one
    /// it stands for, unless this process holds a lock through it.
    pub(crate) fn retire_if_idle(&self) {
        let st = self.state();
        if st.held == Held::None {
            self.retire(st);
        }
    }

    /// Releases one holder of `mode`. When the last holder goes, the lock
    /// is released (a strict lock file is deleted first when the handle
    /// asks for it, while still locked; a soft lock's sidecar is deleted if
    /// still ours) and the next waiter is woken.
    pub(crate) fn release(&self, mode: LockMode, h: &Handle) -> io::Result<()> {
        let mut st = self.state();
        st.held = match (st.held, mode) {
            (Held::Exclusive, LockMode::Exclusive) | (Held::Shared(1), LockMode::Shared) => {
                Held::None
            }
            (Held::Shared(n), LockMode::Shared) if n > 1 => {
                st.held = Held::Shared(n - 1);
                return Ok(());
            }
            // Unreachable through the public API: guards are the only callers.
            _ => return Ok(()),
        };
        let wrote_record = st.record.take().is_some();
        if self.kind != LockKind::Strict {
            let result = match (st.soft.take(), st.file.as_ref()) {
                (Some(held), Some(file)) => soft::release(self.ctl(file), &h.path, held),
                _ => Ok(()),
            };
            dispatch(&mut st);
            return result;
        }
        if wrote_record {
            // Keep the record (and the last token) with a "released" mark;
            // best effort, like the record itself.
            mark_released(&mut st);
        }
        let Some(file) = st.file.as_ref() else {
            return Ok(());
        };
        let mut result = Ok(());
        let mut retire = false;
        // A plain file is never removed: only a lock file lockyard made.
        let remove = h.remove_path().filter(|_| self.ours && st.queue.is_empty());
        if let Some(path) = remove {
            // Delete only what we locked, and only while still holding it:
            // a process that opened the file before the unlink then finds,
            // after locking, that the path no longer names its file.
            match sys::path_id(path) {
                Ok(Some(id)) if id == self.id => match std::fs::remove_file(path) {
                    Ok(()) => retire = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => retire = true,
                    Err(e) => result = Err(e),
                },
                Ok(_) => retire = true,
                Err(e) => result = Err(e),
            }
        }
        match sys::unlock(file) {
            // A plain file's times are left alone: its waiters in other
            // processes see the release by backoff (or a close, on Linux).
            Ok(()) if h.options.file_events && self.ours && !retire => {
                notify::announce_release(file)
            }
            Ok(()) => {}
            Err(e) => {
                // Closing the descriptor releases the lock for certain.
                retire = true;
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if retire {
            self.retire(st);
        } else {
            dispatch(&mut st);
        }
        result
    }

    /// Converts this process's single shared hold into an exclusive one,
    /// without waiting. See `sys::try_upgrade` for why it can be `Lost`.
    pub(crate) fn try_upgrade(&self, h: &Handle) -> io::Result<sys::Upgrade> {
        let mut st = self.state();
        if st.held != Held::Shared(1) {
            // Other guards of this process share it: they are in the way.
            return Ok(sys::Upgrade::StillShared);
        }
        let Some(file) = st.file.as_ref() else {
            return Ok(sys::Upgrade::Lost);
        };
        let outcome = sys::try_upgrade(file)?;
        match outcome {
            sys::Upgrade::Upgraded => {
                st.held = Held::Exclusive;
                if h.options.metadata && self.ours {
                    let _ = self.stamp(&mut st, LockMode::Exclusive, h);
                }
            }
            sys::Upgrade::StillShared => {}
            sys::Upgrade::Lost => {
                st.held = Held::None;
                dispatch(&mut st);
            }
        }
        Ok(outcome)
    }

    /// Converts this process's exclusive hold into a shared one and admits
    /// the shared waiters queued behind it. `Ok(false)` if the lock was lost
    /// on the way (only possible where conversion is not atomic).
    pub(crate) fn downgrade(&self, h: &Handle) -> io::Result<bool> {
        let mut st = self.state();
        if st.held != Held::Exclusive {
            return Ok(false);
        }
        let Some(file) = st.file.as_ref() else {
            return Ok(false);
        };
        let kept = sys::downgrade(file)?;
        // Shared holders publish no record: mark the exclusive one ended.
        if st.record.take().is_some() {
            mark_released(&mut st);
        }
        if let (true, Some(file)) = (h.options.file_events && self.ours, st.file.as_ref()) {
            // Shared waiters in other processes may go in now.
            notify::announce_release(file);
        }
        st.held = if kept { Held::Shared(1) } else { Held::None };
        dispatch(&mut st);
        Ok(kept)
    }

    /// A watch for signs that another process released this lock file: on
    /// the file itself, or for a soft lock on its sidecar's directory entry.
    pub(crate) fn watch(&self, h: &Handle) -> Option<Watch> {
        let mut st = self.state();
        if let Some(joined) = st.watch.as_ref().and_then(Watch::join) {
            return Some(joined);
        }
        let fresh = if self.kind != LockKind::Strict {
            Watch::dir_entry(&h.path)
        } else {
            Watch::file(st.file.as_ref()?, &h.path)
        }?;
        st.watch = fresh.join();
        Some(fresh)
    }

    /// The record of this process's current exclusive hold.
    pub(crate) fn current_record(&self) -> Option<Arc<HolderRecord>> {
        self.state().record.clone()
    }

    /// Who holds the lock, for an error saying it is busy: the last record
    /// a soft attempt saw, or the strict lock file's record if it says
    /// "held".
    pub(crate) fn holder_for_error(&self) -> Option<HolderRecord> {
        let mut st = self.state();
        if let Some(rec) = &st.record {
            return Some(HolderRecord::clone(rec));
        }
        if self.kind != LockKind::Strict {
            return st.last_busy.take();
        }
        let file = st.file.as_ref()?;
        record::read(file)
            .ok()?
            .record()
            .filter(HolderRecord::is_held)
    }

    /// Who holds a file that holds data, for an error saying it is busy:
    /// the kernel's lock table (such a file has no record). Nothing for
    /// lock files, whose record says who, and for soft locks.
    pub(crate) fn os_holders_for_error(&self, h: &Handle) -> Vec<crate::OsHolder> {
        if self.ours || self.kind != LockKind::Strict {
            return Vec::new();
        }
        crate::os_holders::of(&h.path)
    }

    /// Renews this process's lease. Waits in the kernel for the break lock
    /// (held by other processes for a few system calls, unless one is
    /// stopped), with the entry's mutex *not* held meanwhile: call it where
    /// blocking is fine.
    pub(crate) fn refresh(&self, h: &Handle) -> io::Result<()> {
        if self.state().soft.is_none() {
            return Ok(());
        }
        let break_lock = crate::break_lock::take_blocking(&h.path)?;
        let mut st = self.state();
        let st = &mut *st;
        let result = match st.soft.as_mut() {
            Some(held) => soft::refresh_locked(&h.path, held).map(|()| {
                st.record = Some(Arc::new(held.record.clone()));
            }),
            None => Ok(()),
        };
        drop(break_lock);
        result
    }

    /// Whether this process's soft lock or lease is still its own.
    pub(crate) fn still_held(&self, h: &Handle) -> io::Result<bool> {
        let st = self.state();
        match &st.soft {
            Some(held) => soft::still_held(&h.path, held),
            None => Ok(st.held != Held::None),
        }
    }

    fn os_try(
        &self,
        st: &mut State,
        mode: LockMode,
        h: &Handle,
        approved: Option<soft::Publication>,
    ) -> io::Result<Os> {
        if self.kind != LockKind::Strict {
            return self.soft_try(st, mode, h, approved);
        }
        if st.file.is_none() {
            return Ok(Os::Replaced);
        }
        if !self.os_try_lock(st, mode, h)? {
            return Ok(Os::Busy);
        }
        let Some(file) = st.file.as_ref() else {
            return Ok(Os::Replaced);
        };
        if let Some(path) = h.verify_path() {
            match sys::path_id(path) {
                Ok(Some(id)) if id == self.id => {}
                Ok(_) => {
                    let _ = sys::unlock(file);
                    return Ok(Os::Replaced);
                }
                Err(e) => {
                    let _ = sys::unlock(file);
                    return Err(e);
                }
            }
        }
        if h.options.metadata && self.ours {
            match self.stamp(st, mode, h) {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(file) = st.file.as_ref() {
                        let _ = sys::unlock(file);
                    }
                    return Ok(Os::Replaced);
                }
                Err(e) => {
                    if let Some(file) = st.file.as_ref() {
                        let _ = sys::unlock(file);
                    }
                    return Err(e);
                }
            }
        }
        Ok(Os::Locked)
    }

    /// Just locked a strict lock file: reads its record, and for an
    /// exclusive hold writes ours with the next fencing token. `Ok(false)`
    /// if the record says the file was removed by `clean_stale` (the path
    /// no longer names this file: start over).
    fn stamp(&self, st: &mut State, mode: LockMode, h: &Handle) -> io::Result<bool> {
        let Some(file) = st.file.as_ref() else {
            return Ok(false);
        };
        let (found, len) = record::read_sized_or_known(file, |b| st.stamp.token_if_unchanged(b))?;
        let last = match found {
            // What this process left: no other holder came in between.
            Lookup::Known(token) => token,
            Lookup::Read(Read::Record(r)) if r.state == RecordState::Removed => return Ok(false),
            Lookup::Read(Read::Record(r)) if r.kind == LockKind::Strict => r.token,
            // No strict record (any more): whatever is there now is not
            // lockyard's to overwrite. The lock holds without a record or a
            // token.
            Lookup::Read(_) => {
                st.record_len = len;
                st.stamp.forget();
                return Ok(true);
            }
        };
        st.record_len = len;
        if mode == LockMode::Exclusive {
            let rec = Arc::new(soft::new_record(
                LockKind::Strict,
                mode,
                soft::next_token(last),
                &h.options,
            ));
            // Best effort: a read-only lock file (another user's) cannot
            // carry a record, and that must not stop the lock.
            match record::rewrite(file, st.stamp.held(Arc::clone(&rec)), len) {
                Ok(n) => st.record_len = n,
                Err(_) => st.stamp.forget(),
            }
            st.record = Some(rec);
        }
        Ok(true)
    }

    /// One non-blocking OS attempt through the entry's descriptor. Where an
    /// exclusive lock is refused on a read-only descriptor (NFSv4), the file
    /// is opened again read-write, as `flock(1)` does, and tried once more.
    fn os_try_lock(&self, st: &mut State, mode: LockMode, h: &Handle) -> io::Result<bool> {
        let Some(file) = st.file.as_ref() else {
            return Ok(false);
        };
        match sys::try_lock(file, mode) {
            Err(e) if mode == LockMode::Exclusive && sys::is_bad_descriptor(&e) => {
                let Some(rw) = open::reopen_for_exclusive(&h.anchor, self.id)? else {
                    return Err(e);
                };
                let locked = sys::try_lock(&rw, mode)?;
                // Nothing is held through the old descriptor (`held` is
                // `None` here): it can go.
                st.file = Some(rw);
                Ok(locked)
            }
            other => other,
        }
    }

    fn soft_try(
        &self,
        st: &mut State,
        mode: LockMode,
        h: &Handle,
        approved: Option<soft::Publication>,
    ) -> io::Result<Os> {
        if mode == LockMode::Shared {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "soft and lease locks are exclusive only",
            ));
        }
        let Some(ctl) = st.file.as_ref() else {
            return Ok(Os::Replaced);
        };
        match soft::try_acquire(self.ctl(ctl), &h.path, &h.options, approved)? {
            SoftTry::Locked(held) => {
                st.record = Some(Arc::new(held.record.clone()));
                st.soft = Some(held);
                st.last_busy = None;
                Ok(Os::Locked)
            }
            SoftTry::Busy(rec) => {
                st.last_busy = rec;
                Ok(Os::Busy)
            }
            SoftTry::Ask(verdict, id) => Ok(Os::Ask(verdict, id)),
        }
    }

    /// [`Entry::os_try`], running the `on_stale` hook when a soft attempt
    /// asks for it. The hook is user code, which may call back into this
    /// lock (`holder()`, `try_lock()`...): it runs with the entry's mutex
    /// released. Afterwards `may_try` says whether the attempt is still
    /// this caller's to make; if not, the answer is [`Os::Waiting`] (the
    /// state changed meanwhile) or [`Os::Replaced`] (the entry retired).
    fn attempt<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        mode: LockMode,
        h: &Handle,
        may_try: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'a, State>, io::Result<Os>) {
        let mut approved = None;
        loop {
            let (verdict, id) = match self.os_try(&mut st, mode, h, approved) {
                Ok(Os::Ask(verdict, id)) => (verdict, id),
                other => return (st, other),
            };
            let Some(hook) = h.options.on_stale.as_ref() else {
                return (st, Ok(Os::Busy));
            };
            drop(st);
            let allowed = (hook.0)(&verdict);
            st = self.state();
            if st.file.is_none() {
                return (st, Ok(Os::Replaced));
            }
            if !may_try(&st) {
                return (st, Ok(Os::Waiting));
            }
            if !allowed {
                st.last_busy = verdict.record;
                return (st, Ok(Os::Busy));
            }
            approved = Some(id);
        }
    }

    /// Marks the entry retired, closes its descriptor and sends every
    /// queued waiter back to resolve the path again.
    fn retire(&self, mut st: MutexGuard<'_, State>) {
        self.retired.store(true, Ordering::Release);
        st.file = None;
        st.watch = None;
        st.spare = None;
        for slot in st.queue.drain(..) {
            slot.set(RETIRED);
        }
        drop(st);
        self.forget();
    }
}

/// Wakes whoever can proceed after a state change: shared waiters at the
/// head are granted together while a shared lock is held; otherwise, with
/// nothing held, the head is told it is its turn to take the OS lock.
fn dispatch(st: &mut State) {
    while let Some(head) = st.queue.front() {
        match (st.held, head.mode) {
            (Held::None, _) => {
                head.event.notify(1);
                return;
            }
            (Held::Shared(n), LockMode::Shared) => {
                st.held = Held::Shared(n + 1);
                if let Some(head) = st.queue.pop_front() {
                    head.set(GRANTED);
                }
            }
            _ => return,
        }
    }
}

/// Marks this process's record in the lock file released (the lock is
/// still held). Best effort, like the record itself.
fn mark_released(st: &mut State) {
    let (Some(file), Some(bytes)) = (st.file.as_ref(), st.stamp.released()) else {
        return;
    };
    match record::rewrite(file, bytes, st.record_len) {
        Ok(n) => st.record_len = n,
        Err(_) => st.stamp.forget(),
    }
}
