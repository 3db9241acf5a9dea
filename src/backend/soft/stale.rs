//! Stale verdicts for soft and lease locks: when is a left-behind lock file
//! provably abandoned?
//!
//! The rules, most decisive first:
//! 1. A lease whose declared TTL has lapsed since its last renewal is stale,
//!    whoever holds it: that is what a lease means.
//! 2. A holder on this host (same host name, same boot):
//!    - its OS lock on the sidecar still held: alive, never broken;
//!    - a record from before the last boot: stale;
//!    - its OS lock free (and OS locks trusted): it is gone, since a live
//!      holder keeps that lock from before the file is published;
//!    - otherwise (no OS locks here) its PID decides: no such process, or a
//!      process with another start time (a reused PID), means stale.
//! 3. A holder whose liveness cannot be checked (another host, unreadable
//!    record) is stale only once older than `stale_after`, counted from its
//!    last renewal (or the file's modification time).
//!
//! A holder proven alive is never broken by age.

use std::time::{Duration, SystemTime};

use crate::backend::host::{self, Liveness};
use crate::options::LockOptions;
use crate::record::{HolderRecord, StaleReason};

/// What is known about a left-behind lock file.
pub(crate) struct Evidence<'a> {
    pub(crate) record: Option<&'a HolderRecord>,
    /// The OS lock on the sidecar, where it means something: `Some(true)`
    /// nobody holds it, `Some(false)` somebody does. `None` where OS locks
    /// do not work, or where the filesystem is not known to share them
    /// (network and FUSE filesystems: see `sys::os_locks_shared`).
    pub(crate) os_free: Option<bool>,
}

/// `None`: alive (or not provably dead). `Some(reason)`: stale.
pub(crate) fn judge(ev: &Evidence<'_>, opts: &LockOptions) -> Option<StaleReason> {
    let now = SystemTime::now();
    let too_old = |age: Duration| match opts.stale_after {
        Some(limit) if age > limit => Some(StaleReason::TooOld(age)),
        _ => None,
    };
    // Without a readable record nothing proves lockyard made the file
    // (lockyard publishes a sidecar only with its record complete): it may
    // be someone's data, and is never judged stale.
    let rec = ev.record?;
    if let Some(expires) = rec.expires_at() {
        if now > expires {
            return Some(StaleReason::LeaseExpired);
        }
    }
    // The OS lock is trusted evidence only on a filesystem this kernel
    // alone serves, where every holder's lock is visible here.
    if ev.os_free == Some(false) {
        return None;
    }
    let me = host::me();
    if ev.os_free == Some(true) && opts.trust_os_lock && rec.host == me.host {
        // A holder keeps its OS lock from before it publishes until it
        // releases: free means gone. With our host name on a filesystem
        // only this kernel serves, another boot id is a previous boot.
        return Some(if me.same_host(rec) {
            StaleReason::HolderGone
        } else {
            StaleReason::Rebooted
        });
    }
    match me.liveness(rec) {
        Liveness::Dead => return Some(StaleReason::ProcessDead),
        Liveness::Reused => return Some(StaleReason::PidReused),
        Liveness::Alive => return None,
        Liveness::Unknown => {}
    }
    too_old(now.duration_since(rec.renewed).unwrap_or_default())
}

/// How long until the lock described by `ev` may be taken over as stale,
/// for a holder that can only be outlived: a lease (until it lapses), or a
/// holder whose liveness this host cannot see (until it is older than
/// `stale_after`). `None` for a holder seen alive (its OS lock held, or its
/// process running here), which age never breaks, or one that never ages
/// out. The same rules as [`judge`], looked at from the other side.
pub(crate) fn breakable_in(ev: &Evidence<'_>, opts: &LockOptions) -> Option<Duration> {
    let rec = ev.record?;
    let lapses = rec.expires_at();
    let seen_alive = ev.os_free == Some(false) || host::me().liveness(rec) != Liveness::Unknown;
    let ages_out = match opts.stale_after {
        Some(limit) if !seen_alive => rec.renewed.checked_add(limit),
        _ => None,
    };
    let at = match (lapses, ages_out) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}
