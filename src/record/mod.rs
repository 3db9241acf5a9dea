//! Holder records: who holds a lock, since when, with which fencing token.
//!
//! A record is a small text file (or the start of a lock file) in a
//! versioned, line-based format whose first line is the holder's PID, so
//! `cat` answers "who?" at once:
//!
//! ```text
//! 4242
//! lockyard-holder 1
//! kind strict
//! state held
//! mode exclusive
//! host build-3
//! boot 6f0c2a1e-8b1d-4c55-9d0e-2f1f8e6c1a77
//! start 1234567
//! acquired 1763870000.123456789
//! renewed 1763870000.123456789
//! ttl -
//! owner indexer
//! token 17
//! check 5d1e0c3a9b7f2e41
//! ```
//!
//! Values never contain spaces or line breaks: bytes outside printable
//! ASCII, and `%`, are written as `%XX`; `-` stands for "none". The last
//! line is an FNV-1a checksum of everything before it, so a record read
//! while it is being rewritten in place is recognised as torn instead of
//! being misread. Records are untrusted input: parsing reads at most
//! [`MAX_RECORD`] bytes and reports every defect as a [`RecordError`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::mode::LockMode;

mod codec;
mod os_holder;
mod stale;

pub(crate) use codec::{fnv1a, peek, seal, state_word, Peek, FNV_START, SEAL_LEN};
pub use codec::{parse, RecordError};

pub use os_holder::OsHolder;
pub use stale::{StaleLock, StaleReason};

/// The format version this crate writes.
pub(crate) const VERSION: u32 = 1;
const MAGIC: &str = "lockyard-holder";

/// Records are far smaller; anything larger is not one of ours.
pub(crate) const MAX_RECORD: usize = 4096;

/// Which kind of lock a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockKind {
    /// An OS lock (`flock`/`LockFileEx`); the kernel releases it when the
    /// holder dies, so it is never broken by age or PID.
    Strict,
    /// A sidecar lock file created with `O_EXCL`, held for as long as it
    /// exists; a left-behind one is recovered when its holder is proven dead
    /// or it is older than the `stale_after` limit.
    Soft,
    /// A soft lock with a time to live that the holder renews; once it
    /// lapses, another process may take over.
    Lease,
    /// A PostgreSQL advisory lock, held by a database session (feature
    /// `postgres`): its token is kept in a table of the database.
    Postgres,
    /// A lock object in an object store (feature `s3`): a lease whose
    /// record is the object itself, changed only by conditional writes.
    ObjectStore,
}

impl fmt::Display for LockKind {
    /// `strict`, `soft` or `lease`, as the holder record writes it.
    ///
    /// ```
    /// assert_eq!(lockyard::LockKind::Lease.to_string(), "lease");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LockKind {
    fn as_str(self) -> &'static str {
        match self {
            LockKind::Strict => "strict",
            LockKind::Soft => "soft",
            LockKind::Lease => "lease",
            LockKind::Postgres => "postgres",
            LockKind::ObjectStore => "object",
        }
    }
}

/// Whether the record describes a current holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RecordState {
    /// Written on acquisition.
    Held,
    /// Written as a new lock file's first content, on a downgrade, and by
    /// a shared holder over an exclusive holder's record. A release leaves
    /// its record as it was: a strict lock's record counts only while the
    /// kernel says the file is held exclusively.
    Released,
    /// Written by `clean_stale` just before it deletes a strict lock file,
    /// so a process that opened the file earlier and locks it afterwards
    /// knows to start over.
    Removed,
}

/// Who holds (or last held) a lock: read from the lock's holder record.
///
/// Every exclusive acquisition writes one (unless
/// [`LockOptions::metadata`](crate::LockOptions::metadata) is off). The
/// content comes from another process and is treated as untrusted: a
/// malformed record reads as "holder unknown", never as an error that
/// breaks the lock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HolderRecord {
    pub(crate) pid: u32,
    pub(crate) kind: LockKind,
    pub(crate) state: RecordState,
    pub(crate) mode: LockMode,
    pub(crate) host: Arc<str>,
    pub(crate) boot_id: Option<Arc<str>>,
    pub(crate) start_time: Option<u64>,
    pub(crate) acquired: SystemTime,
    pub(crate) renewed: SystemTime,
    pub(crate) ttl: Option<Duration>,
    pub(crate) owner: Option<Arc<str>>,
    pub(crate) token: u64,
    /// A random number a soft lock or lease's record carries: what tells
    /// one publication of the sidecar from every other, where inode numbers
    /// cannot (a network filesystem may show a hard link under another
    /// one). Strict records have none.
    pub(crate) nonce: Option<u128>,
}

impl HolderRecord {
    /// The holder's process id.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.pid(), std::process::id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The host name of the holder's machine.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert!(!record.host().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The holder machine's boot id (Linux), which tells a holder from
    /// before a reboot from a live one.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// if cfg!(target_os = "linux") {
    ///     assert!(record.boot_id().is_some());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn boot_id(&self) -> Option<&str> {
        self.boot_id.as_deref()
    }

    /// The holder process's start time in clock ticks since boot (Linux),
    /// which tells the holder from a later process that reused its PID.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// if cfg!(target_os = "linux") {
    ///     assert!(record.process_start().is_some());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process_start(&self) -> Option<u64> {
        self.start_time
    }

    /// The kind of lock.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.kind(), lockyard::LockKind::Strict);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// The mode the lock is held in.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.mode(), lockyard::LockMode::Exclusive);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// When the lock was acquired (the holder's wall clock).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert!(record.acquired_at() <= std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquired_at(&self) -> SystemTime {
        self.acquired
    }

    /// When a lease was last renewed (the acquisition time if never).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.renewed_at(), record.acquired_at());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renewed_at(&self) -> SystemTime {
        self.renewed
    }

    /// The time to live the holder declared (leases only).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.ttl(), None); // not a lease
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// When the lease lapses unless renewed (leases only).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.expires_at(), None); // not a lease
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.ttl.and_then(|ttl| self.renewed.checked_add(ttl))
    }

    /// The owner id the holder gave, e.g. `ingestion-service-1`.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(record.owner(), Some("etl"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The fencing token: it increases with every exclusive acquisition of
    /// this lock, so a protected resource can refuse a writer whose token is
    /// lower than one it has already seen.
    ///
    /// What a token is, and is not: a number to compare with other tokens
    /// *of the same lock*, never a count of acquisitions and never
    /// comparable across locks. For lock files, soft locks and leases it
    /// is the previous token plus one, but never below the wall clock in
    /// microseconds since the Unix epoch (so the first one looks like
    /// `1796526134437414`), which keeps tokens increasing even when the
    /// file that remembered the last one is deleted, as long as the clock
    /// does not step back. For PostgreSQL locks it is a counter in the lock
    /// table (1, 2, 3, ...), kept for as long as the table is.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert_eq!(Some(record.token()), guard.token());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> u64 {
        self.token
    }

    /// How long ago the lock was acquired, by this machine's clock (zero if
    /// the holder's clock is ahead).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::with_options(dir.path().join("job.lock"), lockyard::LockOptions::new().owner("etl"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("written");
    /// assert!(record.age() < std::time::Duration::from_secs(60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.acquired)
            .unwrap_or_default()
    }

    pub(crate) fn is_held(&self) -> bool {
        self.state == RecordState::Held
    }
}

#[cfg(test)]
pub(crate) use codec::tests;
