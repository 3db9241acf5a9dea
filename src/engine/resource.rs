//! The seam between the engine and a backend: what a lock resource (a lock
//! file, a soft lock's sidecar, a lock in a database) must do for the
//! engine to queue, wait for, hand off and release it.
//!
//! # The engine's promises
//! - At most one *turn* operation ([`try_acquire`](Resource::try_acquire),
//!   [`attempt_polled`](Resource::attempt_polled) until its future ends,
//!   [`commit_wait`](Resource::commit_wait), [`release`](Resource::release),
//!   [`upgrade`](Resource::upgrade), [`downgrade`](Resource::downgrade))
//!   runs at a time for one resource, and no engine lock is held while it
//!   runs: a backend may do I/O or run user code in it.
//! - `try_acquire`, `attempt_polled` and `commit_wait` are called only when this process
//!   holds nothing; `release`, `upgrade` and `downgrade` only while it holds
//!   the lock in the mode they name.
//! - The other methods may be called at any time, from any thread.
//!
//! # The backend's promises
//! - `try_acquire` never waits for another holder, and returns quickly:
//!   the engine calls it inline, inside a future's `poll` (one system call
//!   for a file), unless the resource is [`remote`](Resource::remote).
//!   A remote resource may instead offer an attempt to poll
//!   ([`attempt_polled`](Resource::attempt_polled)), which never blocks.
//!   Anything that may wait goes in the task from
//!   [`blocking_wait`](Resource::blocking_wait),
//!   which owns what it needs and must release whatever it took if its
//!   result is dropped, or in the future from
//!   [`wait_polled`](Resource::wait_polled), which never blocks when polled
//!   and gives back whatever it took if it is dropped.
//! - `release` never waits for another holder either: it runs in `Drop`.
//!   Work that must wait (a network round trip) is deferred by the backend
//!   itself, which keeps the resource held until it is done.
//! - Tokens and lease expiry are the backend's: it returns the record of
//!   each exclusive hold it takes (or renews); the hold's guard keeps it
//!   and hands it back on release.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use super::hint::Hint;
use crate::mode::LockMode;
use crate::record::{HolderRecord, OsHolder};

/// What a handle tells the backend on every call: the handle's own
/// settings (its path, its options), which the backend downcasts to the
/// type its opener gave. Two handles on one resource may differ (another
/// path to the same file, another owner name, an `on_stale` hook), so a
/// resource keeps only what is the same for all of them.
pub(crate) type Params<'a> = &'a (dyn Any + Send + Sync);

/// What identifies a resource in this process's registry: two handles
/// whose resources have equal keys share one queue. `space` keeps the
/// backends apart; `id` is the backend's own identity (a file's device and
/// inode, a lock's name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) space: &'static str,
    pub(crate) id: Box<[u8]>,
}

/// How one attempt went.
#[derive(Debug)]
pub(crate) enum Attempted {
    /// The lock is held, in the mode asked for, with the record this hold
    /// published (exclusive holds that write one).
    Locked(Option<Arc<HolderRecord>>),
    /// Someone else holds it.
    Busy,
    /// The resource no longer stands for its key (the lock file was
    /// replaced or removed): resolve it again.
    Replaced,
}

/// What a blocking wait came back with.
pub(crate) enum Waited {
    /// The lock, held through something the backend made for the wait
    /// (a fresh descriptor), to be committed with
    /// [`Resource::commit_wait`]. Dropped uncommitted, it releases.
    Locked(Box<dyn Any + Send>),
    /// The resource no longer stands for its key.
    Replaced,
}

impl fmt::Debug for Waited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Waited::Locked(_) => "Waited::Locked",
            Waited::Replaced => "Waited::Replaced",
        })
    }
}

/// What an attempt made by polling ([`Resource::attempt_polled`]) came to.
#[cfg_attr(
    not(any(feature = "postgres", test)),
    allow(dead_code, reason = "only the PostgreSQL backend polls its attempts")
)]
pub(crate) enum Polled {
    /// The lock, held through what the backend made for the attempt, to be
    /// committed with [`Resource::commit_wait`]. Dropped uncommitted, it
    /// releases.
    Locked(Box<dyn Any + Send>),
    /// Someone else holds it.
    Busy,
}

impl fmt::Debug for Polled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Polled::Locked(_) => "Polled::Locked",
            Polled::Busy => "Polled::Busy",
        })
    }
}

/// An attempt on a remote resource made by polling on the caller's task
/// (see [`Resource::attempt_polled`]).
pub(crate) type PolledAttempt = Pin<Box<dyn Future<Output = io::Result<Polled>> + Send>>;

/// A wait for the lock made by polling on the caller's task (see
/// [`Resource::wait_polled`]).
pub(crate) type PolledWait = Pin<Box<dyn Future<Output = io::Result<Waited>> + Send>>;

/// A wait that blocks its thread until the lock is granted, and what tells
/// it that nobody waits for its outcome any more.
pub(crate) struct BlockingWait {
    pub(crate) run: Box<dyn FnOnce() -> io::Result<Waited> + Send>,
    /// Dropped by the engine when it abandons the wait before the wait
    /// ended (its waiter was dropped or timed out), so that a wait which
    /// would otherwise run until the lock is granted (a statement waiting
    /// in a database) can give up at once. A kernel wait has none: its
    /// thread drops the lock it is eventually granted.
    pub(crate) abandon: Option<Box<dyn Any + Send>>,
}

impl BlockingWait {
    /// A wait that only ends when the lock is granted (or fails).
    pub(crate) fn new(run: impl FnOnce() -> io::Result<Waited> + Send + 'static) -> Self {
        BlockingWait {
            run: Box::new(run),
            abandon: None,
        }
    }

    /// A wait told to give up when `guard` is dropped unfinished.
    // Only remote backends (and the engine's tests) have waits to abandon.
    #[cfg_attr(
        not(any(
            feature = "postgres",
            feature = "s3",
            feature = "gcs",
            feature = "azure"
        )),
        allow(dead_code)
    )]
    pub(crate) fn abandoned_by(mut self, guard: impl Any + Send) -> Self {
        self.abandon = Some(Box::new(guard));
        self
    }
}

impl fmt::Debug for BlockingWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingWait")
            .field("abandonable", &self.abandon.is_some())
            .finish_non_exhaustive()
    }
}

/// How a conversion from shared to exclusive went.
#[derive(Clone, Debug)]
pub(crate) enum Upgrade {
    /// Now exclusive, with the record the exclusive hold published.
    Upgraded(Option<Arc<HolderRecord>>),
    /// Still shared: someone else holds it shared too.
    StillShared,
    /// Neither: the shared lock was lost on the way.
    Lost,
}

/// Who holds a busy lock, for an error saying so.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    pub(crate) record: Option<HolderRecord>,
    pub(crate) os: Vec<OsHolder>,
    /// For a soft lock whose holder's liveness cannot be checked (another
    /// host) or a lease: how long until it may be taken over as stale.
    pub(crate) breakable_in: Option<std::time::Duration>,
    /// For a soft lock: the file at its path is not a lockyard lock file
    /// (no complete holder record), so it is never broken.
    pub(crate) foreign: bool,
}

impl Holders {
    /// Who holds it, in words, as a busy error would say.
    pub(crate) fn describe(&self) -> Option<String> {
        if let Some(record) = &self.record {
            return Some(record.to_string());
        }
        let pids: Vec<String> = self.os.iter().map(|h| format!("pid {}", h.pid())).collect();
        (!pids.is_empty()).then(|| pids.join(", "))
    }
}

/// A lock resource, as the engine drives it. See the module docs for who
/// calls what when.
pub(crate) trait Resource: Send + Sync + fmt::Debug {
    /// One attempt that does not wait for another holder.
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted>;

    /// A wait for the lock that blocks a thread (the kernel's blocking
    /// lock call), when the backend has one. None by default: the engine
    /// then retries on its backoff and wake hints.
    fn blocking_wait(&self, _mode: LockMode, _p: Params<'_>) -> Option<BlockingWait> {
        None
    }

    /// A wait for the lock made by polling on the caller's task, sparing
    /// the thread wake-up of a [`blocking_wait`](Self::blocking_wait) on
    /// the pool (which hears the grant, then wakes the task): asked before
    /// it, by a caller that would otherwise run that wait on the pool.
    /// Its `poll` never blocks. Dropped before it ends (the acquisition
    /// was dropped or timed out), it gives up the wait itself, on a
    /// thread of its own where that takes blocking calls, and releases a
    /// lock it was granted meanwhile. It ends as a blocking wait does
    /// ([`Waited`], committed with [`commit_wait`](Self::commit_wait)).
    /// `None` (the default, and whenever the resource cannot start one
    /// without blocking): the engine uses the blocking wait.
    fn wait_polled(&self, _mode: LockMode, _p: Params<'_>) -> Option<PolledWait> {
        None
    }

    /// Whether [`attempt_polled`](Self::attempt_polled) makes attempts
    /// (asked before the engine takes the turn for one).
    fn polls_attempts(&self) -> bool {
        false
    }

    /// A first attempt on a [`remote`](Self::remote) resource made by
    /// polling on the caller's task, sparing the two thread wake-ups of an
    /// attempt on the pool: the future puts its request on the wire and
    /// reads the answer as the caller's task is polled. Its `poll` never
    /// blocks: what would (a connection to open, a session in use) it
    /// hands to the pool itself. The engine polls it to its end even when
    /// the acquisition is dropped (then on the pool), and keeps the turn
    /// from the call until its [`Polled::Locked`] is committed with
    /// [`commit_wait`](Self::commit_wait) or released.
    /// `None` (the default, and wherever
    /// [`polls_attempts`](Self::polls_attempts) is false): the engine makes
    /// the attempt on the pool.
    fn attempt_polled(&self, _mode: LockMode, _p: Params<'_>) -> Option<PolledAttempt> {
        None
    }

    /// Takes over a lock a [`blocking_wait`](Self::blocking_wait) obtained
    /// (never called for a backend that has none).
    fn commit_wait(
        &self,
        _mode: LockMode,
        _lock: Box<dyn Any + Send>,
        _p: Params<'_>,
    ) -> io::Result<Attempted> {
        Err(io::Error::other("this lock has no blocking wait to commit"))
    }

    /// Releases the lock held in `mode`, whose hold published `record`.
    /// `last` is true when nobody in this process waits for it. `Ok(true)`
    /// when the resource no longer stands for its key (it was removed on
    /// release).
    fn release(
        &self,
        mode: LockMode,
        last: bool,
        record: Option<Arc<HolderRecord>>,
        p: Params<'_>,
    ) -> io::Result<bool>;

    /// [`release`](Self::release), for a caller that waits for the release
    /// to be done ([`finish_release`](Self::finish_release) follows at
    /// once: an explicit unlock). A backend that defers its release to the
    /// pool may make it on the caller's thread here instead, sparing two
    /// thread wake-ups; how it went is still told by `finish_release`.
    fn release_waited(
        &self,
        mode: LockMode,
        last: bool,
        record: Option<Arc<HolderRecord>>,
        p: Params<'_>,
    ) -> io::Result<bool> {
        self.release(mode, last, record, p)
    }

    /// Waits for this process's last release (see
    /// [`release`](Self::release)) to be done, where a backend defers it,
    /// and says how it went: an explicit unlock reports it. Nothing by
    /// default.
    fn finish_release(&self) -> io::Result<()> {
        Ok(())
    }

    /// Converts a shared hold into an exclusive one without waiting (only
    /// called where [`supports_shared`](Self::supports_shared)).
    fn upgrade(&self, _p: Params<'_>) -> io::Result<Upgrade> {
        Err(exclusive_only())
    }

    /// Converts an exclusive hold, which published `record`, into a shared
    /// one. `Ok(false)` if the lock was lost on the way (where conversion
    /// is not atomic). Only called where
    /// [`supports_shared`](Self::supports_shared).
    fn downgrade(&self, _record: Option<Arc<HolderRecord>>, _p: Params<'_>) -> io::Result<bool> {
        Err(exclusive_only())
    }

    /// Whether this resource can be held shared at all.
    fn supports_shared(&self) -> bool;

    /// Whether an attempt is a network round trip. The engine then never
    /// makes one that blocks in an async poll or under a deadline: a
    /// future's attempt is polled ([`attempt_polled`](Self::attempt_polled))
    /// or runs on the pool, a waiter's through the
    /// [`blocking_wait`](Self::blocking_wait) task, and only blocking
    /// callers with no deadline call [`try_acquire`](Self::try_acquire) on
    /// their own thread.
    fn remote(&self) -> bool {
        false
    }

    /// For a [`remote`](Self::remote) resource: whether an acquisition that
    /// may wait attempts (polled, or on the pool) before it waits. Worth it when an
    /// attempt holds the lock somewhere cheaper than a wait would (a
    /// session shared with other holds, rather than the wait's own).
    fn attempts_before_waiting(&self) -> bool {
        false
    }

    /// Something that fires when another process may have released the
    /// lock (a file event, a database notification). `None` when there is
    /// none: the engine then retries on its backoff alone.
    fn wake_hint(&self, p: Params<'_>) -> Option<Box<dyn Hint>>;

    /// Who holds the lock (this process included), for an error saying
    /// it is busy.
    fn holders(&self, p: Params<'_>) -> Holders;

    /// Renews this process's lease and returns its renewed record; a
    /// no-op (`None`, the default) for locks without one. May block
    /// briefly (see the backend).
    fn refresh(&self, _p: Params<'_>) -> io::Result<Option<Arc<HolderRecord>>> {
        Ok(None)
    }

    /// Whether this process's hold is still its own (a lease that lapsed
    /// and was taken over is not). By default, whether the engine says it
    /// holds it (`held`): only the holder can release such a lock.
    fn still_held(&self, held: bool, _p: Params<'_>) -> io::Result<bool> {
        Ok(held)
    }

    /// The entry retired: close what can be closed (a held lock is
    /// released by its own release first). Nothing by default.
    fn close(&self) {}
}

/// Why a conversion was asked of a lock that is exclusive only.
pub(crate) use crate::error::exclusive_only;
