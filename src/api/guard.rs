//! Guards: proof of holding a lock, released on drop.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::engine::{Entry, Handle};
use crate::error::{Error, Op};
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::HolderRecord;

/// What a guard needs to know of its lock's options, found once per
/// handle (a guard is made on every acquisition).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Traits {
    /// The last release removes the lock file.
    removes: bool,
    /// The lease's TTL, for holds whose record does not carry it (a shared
    /// hold on a server with a lease has no record).
    lease: Option<std::time::Duration>,
}

impl Traits {
    pub(crate) fn of(options: &LockOptions) -> Self {
        Traits {
            removes: options.remove_on_release,
            lease: options.lease_ttl,
        }
    }

    /// The lease's TTL, if the lock has one.
    pub(crate) fn lease(&self) -> Option<std::time::Duration> {
        self.lease
    }
}

/// Holds a lock until dropped or [`unlock`](Self::unlock)ed.
///
/// A guard owns what it needs: it is `'static`, `Send` and `Sync`, it can
/// outlive the [`FileLock`](crate::FileLock) it came from, be stored in a
/// struct, or move into a spawned task or thread.
///
/// # Examples
///
/// ```
/// use lockyard::FileLock;
///
/// let dir = tempfile::tempdir()?;
/// let lock = FileLock::new(dir.path().join("job.lock"));
/// let guard = lock.lock_blocking()?;
/// let worker = std::thread::spawn(move || {
///     // ... the lock is held here ...
///     guard.unlock()
/// });
/// worker.join().unwrap()?;
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard {
    // Shared with `conversion.rs` and `lease.rs`, which extend the guard.
    pub(super) handle: Arc<Handle>,
    pub(super) traits: Traits,
    pub(super) entry: Arc<Entry>,
    pub(super) mode: LockMode,
    pub(super) held: bool,
    pub(super) record: Option<Arc<HolderRecord>>,
}

// As for `FileLock`: nothing a panic interrupts leaves the lock broken.
impl std::panic::UnwindSafe for LockGuard {}
impl std::panic::RefUnwindSafe for LockGuard {}

impl LockGuard {
    pub(crate) fn new(
        handle: Arc<Handle>,
        traits: Traits,
        entry: Arc<Entry>,
        mode: LockMode,
        record: Option<Arc<HolderRecord>>,
    ) -> Self {
        LockGuard {
            handle,
            traits,
            entry,
            mode,
            held: true,
            record,
        }
    }

    /// The holder record this acquisition published (exclusive locks with
    /// metadata on; `None` for shared locks and files that hold data), as
    /// it was then: renewals ([`refresh`](Self::refresh),
    /// [`keep_alive`](Self::keep_alive)) write a newer one to the lock,
    /// which [`FileLock::holder`](crate::FileLock::holder) reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("nightly"));
    /// let guard = lock.try_lock()?;
    /// let record = guard.record().expect("exclusive, metadata on");
    /// assert_eq!(record.pid(), std::process::id());
    /// assert_eq!(record.owner(), Some("nightly"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(&self) -> Option<&HolderRecord> {
        self.record.as_deref()
    }

    /// This acquisition's fencing token: pass it to the resource the lock
    /// protects, which should refuse tokens lower than the highest it has
    /// seen. `None` when no record was written: shared locks, metadata
    /// off, and files that hold data (see [`FileLock::new`](crate::FileLock::new)).
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
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let first = lock.try_lock()?.token().expect("a lock file lockyard made");
    /// let second = lock.try_lock()?.token().expect("a lock file lockyard made");
    /// assert!(second > first);
    /// assert_eq!(lock.try_lock_shared()?.token(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> Option<u64> {
        self.record.as_ref().map(|r| r.token())
    }

    /// The mode this guard holds the lock in.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("a.lock"));
    /// assert_eq!(lock.try_lock_shared()?.mode(), LockMode::Shared);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Whether this guard holds the lock exclusively.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// assert!(lock.try_lock()?.is_exclusive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_exclusive(&self) -> bool {
        self.mode == LockMode::Exclusive
    }

    /// Whether this guard holds the lock shared.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// assert!(lock.try_lock_shared()?.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_shared(&self) -> bool {
        self.mode == LockMode::Shared
    }

    /// The lock file's path; `None` for a lock that is not a file (a
    /// [`PgLock`](crate::postgres::PgLock)), whose address
    /// [`name`](Self::name) gives.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// assert_eq!(lock.try_lock()?.path(), Some(lock.path()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.handle
            .config
            .names_a_file
            .then_some(self.handle.path.as_path())
    }

    /// What the lock is called, whatever its backend: a file lock's path,
    /// a PostgreSQL lock's address (`postgres://host:port/dbname#name`, as
    /// [`PgLock::address`](crate::postgres::PgLock::address) gives it).
    /// Errors about the lock give the same
    /// ([`Error::name`](crate::Error::name)).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let guard = lock.try_lock()?;
    /// assert_eq!(guard.name(), lock.path().as_os_str());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &std::ffi::OsStr {
        self.handle.path.as_os_str()
    }

    /// Releases the lock now, reporting failure (dropping the guard releases
    /// it too, but cannot report).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("a.lock"), LockOptions::new().remove_on_release(true));
    /// let guard = lock.try_lock()?;
    /// guard.unlock()?; // a failed removal would be reported here
    /// assert!(!lock.path().exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) if the OS refused to unlock or
    /// a requested removal of the lock file failed. The lock is released
    /// either way: on an unlock failure the descriptor is closed, which
    /// releases it. For an object-storage lock,
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) if its lease had lapsed
    /// and another process took it over.
    ///
    /// # Blocking
    ///
    /// A few system calls (for a soft lock whose break lock another process
    /// holds, the removal finishes on the blocking pool). For an
    /// object-storage lock, the write that frees it: a guard that is only
    /// dropped frees it in the background, so a process about to exit
    /// should unlock.
    pub fn unlock(mut self) -> Result<(), Error> {
        self.held = false;
        let op = if self.traits.removes {
            Op::Remove
        } else {
            Op::Unlock
        };
        let released = self
            .entry
            .release_waited(self.mode, self.record.take(), &self.handle)
            .and_then(|()| self.entry.finish_release());
        self.let_go_if_retired();
        released.map_err(|e| Error::io(self.handle.subject(), op, e))
    }

    /// After a release that retired the entry (the lock file was removed,
    /// or unlocking failed), the handle lets go of it too: its descriptor
    /// closes once this guard is gone.
    fn let_go_if_retired(&self) {
        if self.entry.is_retired() {
            self.handle.let_go_if_retired();
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.held {
            let _ = self
                .entry
                .release(self.mode, self.record.take(), &self.handle);
            self.let_go_if_retired();
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.handle.path)
            .field("mode", &self.mode)
            .finish()
    }
}
