//! Looking at a lock without waiting for it: its state and its holder.

use crate::error::Op;
use crate::record::{self, HolderRecord};
use crate::{soft, stale, sys};
use crate::{Error, FileLock, LockKind, LockMode};

/// The state of a lock as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it.
    Free,
    /// Held shared, by one or more holders (shared holders write no
    /// record).
    HeldShared,
    /// Held exclusively (by the holder in the record, when there is one).
    HeldExclusive,
    /// A soft lock or lease whose holder is provably gone or whose lease
    /// lapsed: the next waiter will break it.
    Stale,
}

impl std::fmt::Display for LockState {
    /// `free`, `held shared`, `held exclusive` or `stale`.
    ///
    /// ```
    /// assert_eq!(lockyard::LockState::HeldShared.to_string(), "held shared");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockState::Free => "free",
            LockState::HeldShared => "held shared",
            LockState::HeldExclusive => "held exclusive",
            LockState::Stale => "stale",
        })
    }
}

/// State of `lock`, and the current holder's record (or, for a free lock,
/// the last one's), without waiting and without creating anything.
///
/// For an OS lock the answer comes from the kernel: a non-blocking
/// exclusive, then shared, lock on a fresh descriptor, released at once.
/// For those few microseconds a `try_lock` elsewhere can find it busy.
pub(crate) fn describe(lock: &FileLock) -> Result<(LockState, Option<HolderRecord>), Error> {
    let path = lock.path();
    let io_err = |e| Error::io(path, Op::Inspect, e);
    if lock.options().lock_kind() != LockKind::Strict {
        return Ok(match soft::inspect(path).map_err(io_err)? {
            Some(found) => {
                let state = match stale::judge(&found.evidence(), lock.options()) {
                    Some(_) => LockState::Stale,
                    None => LockState::HeldExclusive,
                };
                (state, found.record)
            }
            None => (LockState::Free, None),
        });
    }
    let Some(file) = sys::open_existing(path).map_err(io_err)? else {
        return Ok((LockState::Free, None));
    };
    if let Err(what) = sys::identify(&file).map_err(io_err)? {
        return Err(Error::not_a_file(path, what));
    }
    let probe = |mode| -> Result<bool, Error> {
        let got = sys::try_lock(&file, mode).map_err(io_err)?;
        if got {
            sys::unlock(&file).map_err(io_err)?;
        }
        Ok(got)
    };
    if probe(LockMode::Exclusive)? {
        // Content is untrusted: a record that does not parse is no record.
        let last = record::read(&file).ok().and_then(|r| r.record());
        return Ok((LockState::Free, last));
    }
    if probe(LockMode::Shared)? {
        return Ok((LockState::HeldShared, None));
    }
    Ok((LockState::HeldExclusive, lock.holder_in(&file)?))
}
