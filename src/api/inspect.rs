//! Looking at a lock without waiting for it: its state and its holder.

use std::path::{Path, PathBuf};

use super::FileLock;
use crate::backend::record_io;
use crate::backend::soft::{sidecar, stale};
use crate::error::{Error, Op};
use crate::mode::LockMode;
use crate::record::HolderRecord;
use crate::sys;

/// The state of a lock as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// A soft lock or lease whose path holds a file that is not a lockyard
    /// lock file (no complete holder record): the lock is busy, and stays
    /// busy until someone removes that file, because lockyard never breaks
    /// or removes a file it cannot prove is its own, however old. See
    /// [`Error::is_foreign_file`](crate::Error::is_foreign_file).
    Foreign,
}

impl std::fmt::Display for LockState {
    /// `free`, `held shared`, `held exclusive`, `stale` or `not a lockyard
    /// lock file`.
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
            LockState::Foreign => "not a lockyard lock file",
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
    crate::backend::open::check_path(path)?;
    let io_err = |e| Error::io(path, Op::Inspect, e);
    if !lock.is_strict() {
        return Ok(match sidecar::inspect(path).map_err(io_err)? {
            Some(found) => {
                let state = match stale::judge(&found.evidence(), lock.options()) {
                    Some(_) => LockState::Stale,
                    None if found.is_foreign() => LockState::Foreign,
                    None => LockState::HeldExclusive,
                };
                (state, found.record)
            }
            None => (LockState::Free, None),
        });
    }
    let Some(file) = crate::backend::open::open_existing(path).map_err(io_err)? else {
        return Ok((LockState::Free, None));
    };
    if let Err(what) = sys::identify(&file).map_err(io_err)? {
        return Err(Error::not_a_file(path, what));
    }
    let probe = |mode| -> Result<bool, Error> {
        let got = sys::try_lock(&file, mode).map_err(io_err)?;
        if got {
            sys::unlock(&file).map_err(io_err)?;
            crate::notify::announce_probe_release(&file);
        }
        Ok(got)
    };
    if probe(LockMode::Exclusive)? {
        // Content is untrusted: a record that does not parse is no record.
        let last = record_io::read(&file).ok().and_then(|r| r.record());
        return Ok((LockState::Free, last));
    }
    if probe(LockMode::Shared)? {
        return Ok((LockState::HeldShared, None));
    }
    Ok((LockState::HeldExclusive, lock.holder_in(&file)?))
}

/// What [`LockDir::list`](crate::LockDir::list) (or [`FileLock::inspect`]) knows about one lock.
///
/// With the `serde` feature it is `serde::Serialize`, as `lockyard status
/// --json` shows a lock: `path`, `name`, `state` (`"free"`,
/// `"held-shared"`, `"held-exclusive"`, `"stale"`, `"foreign"`) and the `holder` that
/// state names, or null.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// let dir = tempfile::tempdir()?;
/// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
/// let _held = lock.try_lock()?;
/// let json = serde_json::to_value(lock.inspect()?)?;
/// assert_eq!(json["state"], "held-exclusive");
/// assert_eq!(json["holder"]["pid"], std::process::id());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LockInfo {
    name: String,
    path: PathBuf,
    state: LockState,
    holder: Option<HolderRecord>,
}

impl LockInfo {
    pub(crate) fn new(
        name: String,
        path: PathBuf,
        state: LockState,
        holder: Option<HolderRecord>,
    ) -> Self {
        LockInfo {
            name,
            path,
            state,
            holder,
        }
    }

    /// The same, under the lock's `name` (a `LockDir` name).
    pub(crate) fn named(mut self, name: String) -> Self {
        self.name = name;
        self
    }

    /// The lock's name: decoded, from [`LockDir::list`](crate::LockDir::list); the file name, from
    /// [`FileLock::inspect`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("cron"));
    /// let _held = lock.try_lock()?;
    /// let info = lock.inspect()?;
    /// assert_eq!(info.name(), "job.lock");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock file.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("cron"));
    /// let _held = lock.try_lock()?;
    /// let info = lock.inspect()?;
    /// assert_eq!(info.path(), lock.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Free, held (shared or exclusive) or stale.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("cron"));
    /// let _held = lock.try_lock()?;
    /// let info = lock.inspect()?;
    /// assert_eq!(info.state(), LockState::HeldExclusive);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> LockState {
        self.state
    }

    /// The current (or last) holder's record, when one could be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("cron"));
    /// let _held = lock.try_lock()?;
    /// let info = lock.inspect()?;
    /// assert_eq!(info.holder().and_then(|h| h.owner()), Some("cron"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self) -> Option<&HolderRecord> {
        self.holder.as_ref()
    }
}
