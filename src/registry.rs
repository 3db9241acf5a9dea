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
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use event_listener::{Event, EventListener};

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
    file: Option<File>,
    held: Held,
    queue: VecDeque<Arc<Slot>>,
}

/// Result of one OS attempt under the mutex.
enum Os {
    Locked,
    Busy,
    Replaced,
}

/// A lock file as this process knows it.
pub(crate) struct Entry {
    id: FileId,
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
pub(crate) fn entry_for(file: File, id: FileId) -> Arc<Entry> {
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
    let entry = Arc::new(Entry {
        id,
        retired: AtomicBool::new(false),
        state: Mutex::new(State {
            file: Some(file),
            held: Held::None,
            queue: VecDeque::new(),
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
        verify: Option<&Path>,
        enqueue: bool,
    ) -> io::Result<Attempt> {
        let mut st = self.state();
        if st.file.is_none() {
            return Ok(Attempt::Retired);
        }
        if st.queue.is_empty() {
            match (st.held, mode) {
                (Held::None, _) => match self.os_try(&mut st, mode, verify)? {
                    Os::Locked => {
                        st.held = Held::one(mode);
                        return Ok(Attempt::Acquired);
                    }
                    Os::Busy => {}
                    Os::Replaced => {
                        self.retire(st);
                        return Ok(Attempt::Retired);
                    }
                },
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
    pub(crate) fn advance(&self, slot: &Arc<Slot>, verify: Option<&Path>) -> io::Result<Progress> {
        let mut st = self.state();
        match slot.state.load(Ordering::Relaxed) {
            GRANTED => return Ok(Progress::Acquired),
            RETIRED => return Ok(Progress::Retired),
            _ => {}
        }
        let at_head = st.queue.front().is_some_and(|h| Arc::ptr_eq(h, slot));
        if !at_head || st.held != Held::None {
            return Ok(Progress::Waiting);
        }
        match self.os_try(&mut st, slot.mode, verify) {
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
    pub(crate) fn adopt_locked(&self, slot: &Arc<Slot>, file: File) -> Progress {
        let mut st = self.state();
        if st.file.is_none() || slot.state.load(Ordering::Relaxed) == RETIRED {
            return Progress::Retired;
        }
        let at_head = st.queue.front().is_some_and(|h| Arc::ptr_eq(h, slot));
        if !at_head || st.held != Held::None {
            return Progress::Waiting;
        }
        // The old descriptor holds no lock (`held` is `None`); closing it is
        // harmless.
        st.file = Some(file);
        st.queue.pop_front();
        st.held = Held::one(slot.mode);
        dispatch(&mut st);
        Progress::Acquired
    }

    /// The waiter behind `slot` gives up (dropped, timed out, failed). If it
    /// had been granted the lock without noticing, the lock is released.
    pub(crate) fn cancel(&self, slot: &Arc<Slot>) {
        let mut st = self.state();
        match slot.state.load(Ordering::Relaxed) {
            GRANTED => {
                drop(st);
                let _ = self.release(slot.mode, None);
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

    /// Releases one holder of `mode`. When the last holder goes, the OS lock
    /// is released (after deleting the file at `remove`, if given, while
    /// still holding it) and the next waiter is woken.
    pub(crate) fn release(&self, mode: LockMode, remove: Option<&Path>) -> io::Result<()> {
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
        let Some(file) = st.file.as_ref() else {
            return Ok(());
        };
        let mut result = Ok(());
        let mut retire = false;
        if let Some(path) = remove.filter(|_| st.queue.is_empty()) {
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
        if let Err(e) = sys::unlock(file) {
            // Closing the descriptor releases the lock for certain.
            retire = true;
            if result.is_ok() {
                result = Err(e);
            }
        }
        if retire {
            self.retire(st);
        } else {
            dispatch(&mut st);
        }
        result
    }

    fn os_try(&self, st: &mut State, mode: LockMode, verify: Option<&Path>) -> io::Result<Os> {
        let Some(file) = st.file.as_ref() else {
            return Ok(Os::Replaced);
        };
        if !sys::try_lock(file, mode)? {
            return Ok(Os::Busy);
        }
        if let Some(path) = verify {
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
        Ok(Os::Locked)
    }

    /// Marks the entry retired, closes its descriptor and sends every
    /// queued waiter back to resolve the path again.
    fn retire(&self, mut st: MutexGuard<'_, State>) {
        self.retired.store(true, Ordering::Release);
        st.file = None;
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
