//! Soft locks and leases: the lock is the existence of a sidecar file,
//! for filesystems whose OS locks are missing or stay on each machine.
//!
//! `sidecar.rs` is the protocol (publish, inspect, break, release,
//! refresh); `stale.rs` judges left-behind sidecars; `break_lock.rs`
//! serialises breakers. [`SoftLock`] is the resource the engine drives.

pub(crate) mod break_lock;
pub(crate) mod sidecar;
pub(crate) mod stale;

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sidecar::{Ctl, Seen, SoftHeld, SoftTry};

use super::settings;
use crate::engine::{Attempted, Hint, Holders, Params, Resource};
use crate::mode::LockMode;
use crate::notify::Watch;
use crate::record::HolderRecord;

/// A soft lock or lease as this process knows it.
#[derive(Debug)]
pub(crate) struct SoftLock {
    /// lockyard made the control file: the last token may be written in it.
    ours: bool,
    /// Whether the filesystem's OS locks are seen by every process that
    /// can open it (`sys::os_locks_shared`), found once.
    shared: bool,
    /// The control file; `None` once closed.
    ctl: Mutex<Option<Arc<File>>>,
    /// The sidecar this process holds.
    held: Mutex<Option<SoftHeld>>,
    /// The holder record seen by the last failed attempt.
    last_busy: Mutex<Option<Seen>>,
    /// Keeps the watch on the sidecar's directory entry between waits.
    watch: Mutex<Option<Watch>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each of these mutexes guards one field, swapped whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

use crate::error::exclusive_only;

impl SoftLock {
    pub(crate) fn new(ctl: File, ours: bool, shared: bool) -> Self {
        SoftLock {
            ours,
            shared,
            ctl: Mutex::new(Some(Arc::new(ctl))),
            held: Mutex::new(None),
            last_busy: Mutex::new(None),
            watch: Mutex::new(None),
        }
    }

    fn ctl<'a>(&self, file: &'a File) -> Ctl<'a> {
        Ctl {
            file,
            ours: self.ours,
            shared: self.shared,
        }
    }
}

impl Resource for SoftLock {
    /// Publishes the sidecar, breaking a stale one first. The `on_stale`
    /// hook, the user's code, runs here: with no lock of the engine held,
    /// so it may call back into this lock.
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        let o = settings(p)?;
        if mode == LockMode::Shared {
            return Err(exclusive_only());
        }
        let Some(ctl) = lock(&self.ctl).clone() else {
            return Ok(Attempted::Replaced);
        };
        let mut approved = None;
        loop {
            match sidecar::try_acquire(self.ctl(&ctl), &o.path, &o.options, approved)? {
                SoftTry::Locked(held) => {
                    let record = Arc::new(held.record.clone());
                    *lock(&self.held) = Some(held);
                    *lock(&self.last_busy) = None;
                    return Ok(Attempted::Locked(Some(record)));
                }
                SoftTry::Busy(seen) => {
                    *lock(&self.last_busy) = Some(seen);
                    return Ok(Attempted::Busy);
                }
                SoftTry::Ask(verdict, publication) => {
                    let Some(hook) = o.options.on_stale.as_ref() else {
                        return Ok(Attempted::Busy);
                    };
                    // The user's code: a panic in it is carried out as an
                    // error, so the engine ends this attempt as after any
                    // other, and resumed at the caller (`Error::resume_panic`).
                    let approve = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (hook.0)(&verdict)
                    }));
                    let approve = approve.map_err(crate::error::hook_panicked)?;
                    if !approve {
                        *lock(&self.last_busy) = Some(Seen {
                            record: verdict.record,
                            // The hook kept a stale holder: when it goes is
                            // the hook's to say, not its age's.
                            os_free: Some(false),
                            foreign: false,
                        });
                        return Ok(Attempted::Busy);
                    }
                    approved = Some(publication);
                }
            }
        }
    }

    fn release(
        &self,
        _mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        p: Params<'_>,
    ) -> io::Result<bool> {
        let o = settings(p)?;
        let held = lock(&self.held).take();
        let ctl = lock(&self.ctl).clone();
        if let (Some(held), Some(ctl)) = (held, ctl) {
            sidecar::release(self.ctl(&ctl), &o.path, held)?;
        }
        Ok(false)
    }

    fn supports_shared(&self) -> bool {
        false
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
        let fresh = Watch::dir_entry(&o.path)?;
        *lock(&self.watch) = fresh.join();
        Some(Box::new(fresh))
    }

    fn holders(&self, p: Params<'_>) -> Holders {
        let o = settings(p).ok();
        // What the last failed attempt saw; else (this process holds it,
        // say) the sidecar as it is now.
        let seen = lock(&self.last_busy)
            .take()
            .or_else(|| Some(sidecar::inspect(&o?.path).ok()??.seen()));
        let Some(seen) = seen else {
            return Holders::default();
        };
        let breakable_in = o.and_then(|o| stale::breakable_in(&seen.evidence(), &o.options));
        Holders {
            record: seen.record,
            breakable_in,
            foreign: seen.foreign,
            ..Holders::default()
        }
    }

    /// Waits in the kernel for the break lock (held by other processes for
    /// a few system calls, unless one is stopped): call it where blocking
    /// is fine.
    fn refresh(&self, p: Params<'_>) -> io::Result<Option<Arc<HolderRecord>>> {
        let o = settings(p)?;
        if lock(&self.held).is_none() {
            return Ok(None);
        }
        let break_lock = break_lock::take_blocking(&o.path)?;
        // This mutex is held across the renewal's I/O on purpose: only the
        // lock's holder ever takes it (no waiter, no inspection), and it
        // makes a release (a guard dropped while an abandoned `keep_alive`
        // still renews on the pool) wait for the renewal rather than miss
        // the sidecar it must remove.
        let mut held = lock(&self.held);
        let result = match held.as_mut() {
            Some(held) => {
                sidecar::refresh_locked(&o.path, held).map(|()| Some(Arc::new(held.record.clone())))
            }
            None => Ok(None),
        };
        drop(held);
        drop(break_lock);
        result
    }

    fn still_held(&self, held: bool, p: Params<'_>) -> io::Result<bool> {
        let o = settings(p)?;
        // Held across the check for the reason given in `refresh`.
        match lock(&self.held).as_ref() {
            Some(soft) => sidecar::still_held(&o.path, soft),
            None => Ok(held),
        }
    }

    fn close(&self) {
        let ctl = lock(&self.ctl).take();
        let watch = lock(&self.watch).take();
        drop((ctl, watch));
    }
}
