//! Stale verdicts: why a left-behind lock was judged abandoned, as shown
//! to `on_stale` hooks and reported by `clean_stale`. The judging itself
//! is the soft backend's (`backend/soft/stale.rs`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HolderRecord;

/// Why a soft lock was judged stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StaleReason {
    /// Its holder (on this host) no longer holds the OS lock on it: the
    /// holder is gone.
    HolderGone,
    /// Its holder's process (on this host) no longer exists.
    ProcessDead,
    /// Its holder's PID now belongs to a process that started at another
    /// time.
    PidReused,
    /// It was taken before this machine last booted.
    Rebooted,
    /// Its lease lapsed: the holder declared a TTL and did not renew in time.
    LeaseExpired,
    /// Its holder's liveness cannot be checked and it is older than
    /// `stale_after`.
    TooOld(Duration),
    /// An OS lock file nobody holds (reported by
    /// [`clean_stale`](crate::clean_stale)).
    Unused,
    /// A temporary file of lockyard's (a lock file being created, a soft
    /// lock being published) that was never linked into place: its writer
    /// died (reported by [`clean_stale`](crate::clean_stale)).
    Unpublished,
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaleReason::HolderGone => f.write_str("its holder no longer holds the OS lock"),
            StaleReason::ProcessDead => f.write_str("its holder process is dead"),
            StaleReason::PidReused => f.write_str("its holder's PID was reused"),
            StaleReason::Rebooted => f.write_str("it predates the last boot"),
            StaleReason::LeaseExpired => f.write_str("its lease expired"),
            StaleReason::Unused => f.write_str("nobody holds it"),
            StaleReason::Unpublished => {
                f.write_str("it is a temporary file of lockyard's that was never published")
            }
            StaleReason::TooOld(age) => write!(
                f,
                "it is {:.1} s old and its holder cannot be checked",
                age.as_secs_f64()
            ),
        }
    }
}

/// A stale lock about to be broken, as shown to an
/// [`on_stale`](crate::LockOptions::on_stale) hook, or one that
/// [`clean_stale`](crate::clean_stale) removed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StaleLock {
    pub(crate) path: PathBuf,
    pub(crate) record: Option<HolderRecord>,
    pub(crate) reason: StaleReason,
}

impl StaleLock {
    /// The lock file.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{clean_stale, FileLock, LockOptions, StaleReason};
    ///
    /// let dir = tempfile::tempdir()?;
    /// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
    /// let report = clean_stale(dir.path(), &LockOptions::new())?;
    /// let stale = &report.removed()[0];
    /// assert!(stale.path().ends_with("old.lock"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its holder record, if it could be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{clean_stale, FileLock, LockOptions, StaleReason};
    ///
    /// let dir = tempfile::tempdir()?;
    /// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
    /// let report = clean_stale(dir.path(), &LockOptions::new())?;
    /// let stale = &report.removed()[0];
    /// assert_eq!(stale.record().map(|r| r.pid()), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(&self) -> Option<&HolderRecord> {
        self.record.as_ref()
    }

    /// Why it is stale.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{clean_stale, FileLock, LockOptions, StaleReason};
    ///
    /// let dir = tempfile::tempdir()?;
    /// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
    /// let report = clean_stale(dir.path(), &LockOptions::new())?;
    /// let stale = &report.removed()[0];
    /// assert_eq!(stale.reason(), StaleReason::Unused);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reason(&self) -> StaleReason {
        self.reason
    }
}
