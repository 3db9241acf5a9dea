//! Guards: proof of holding a lock, released on drop.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use crate::engine::{Entry, Handle, Upgrade};
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
}

impl Traits {
    pub(crate) fn of(options: &LockOptions) -> Self {
        Traits {
            removes: options.remove_on_release,
        }
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
pub struct FileLockGuard {
    handle: Arc<Handle>,
    traits: Traits,
    entry: Arc<Entry>,
    mode: LockMode,
    held: bool,
    record: Option<Arc<HolderRecord>>,
}

impl FileLockGuard {
    pub(crate) fn new(
        handle: Arc<Handle>,
        traits: Traits,
        entry: Arc<Entry>,
        mode: LockMode,
        record: Option<Arc<HolderRecord>>,
    ) -> Self {
        FileLockGuard {
            handle,
            traits,
            entry,
            mode,
            held: true,
            record,
        }
    }

    /// The holder record this acquisition published (exclusive locks with
    /// metadata on; `None` for shared locks and files that hold data).
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

    /// Renews a lease (see [`LockOptions::lease`](crate::LockOptions::lease)):
    /// its TTL starts again from now. A no-op for other locks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().lease(Duration::from_secs(30)));
    /// let mut guard = lock.try_lock()?;
    /// let before = guard.record().unwrap().renewed_at();
    /// guard.refresh()?;
    /// assert!(guard.record().unwrap().renewed_at() >= before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) if the lease already
    /// lapsed and another process took over; I/O errors otherwise.
    ///
    /// # Blocking
    ///
    /// Takes the lock's break lock, which other processes hold for a few
    /// system calls at most, unless one of them is stopped while holding
    /// it. In async code use [`keep_alive`](Self::keep_alive), which renews
    /// on a blocking-pool thread.
    pub fn refresh(&mut self) -> Result<(), Error> {
        let result = self.entry.refresh(&self.handle);
        self.refreshed(result)
    }

    fn refreshed(
        &mut self,
        result: std::io::Result<Option<Arc<HolderRecord>>>,
    ) -> Result<(), Error> {
        match result {
            Ok(renewed) => {
                if renewed.is_some() {
                    self.record = renewed;
                }
                Ok(())
            }
            Err(e) => Err(Error::io(&self.handle.path, Op::Lock, e)),
        }
    }

    /// Turns a shared guard into an exclusive one if that is possible right
    /// now.
    ///
    /// The OS cannot do this atomically: `flock` drops the shared lock
    /// before it looks for conflicts (Windows has no conversion at all), so
    /// on failure the shared lock is taken again. Normally that succeeds and
    /// the error hands the shared guard back ([`ConvertError::into_guard`]);
    /// if another process took the lock exclusively in that instant, the
    /// shared lock is gone too and the error carries no guard
    /// ([`ErrorKind::Lost`](crate::ErrorKind::Lost)). Other shared guards
    /// of this process also make it fail (with the guard handed back).
    ///
    /// Calling it on an exclusive guard returns the guard unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let reading = lock.try_lock_shared()?;
    /// let writing = reading.try_upgrade()?;
    /// assert!(writing.is_exclusive());
    /// let reading = writing.downgrade()?;
    /// assert!(reading.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) with the
    /// guard handed back (another holder is in the way),
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) with the
    /// guard (soft locks and leases), [`ErrorKind::Lost`](crate::ErrorKind::Lost)
    /// without it (see above), or an I/O error with the shared guard still
    /// held.
    pub fn try_upgrade(mut self) -> Result<FileLockGuard, ConvertError> {
        if self.mode == LockMode::Exclusive {
            return Ok(self);
        }
        if !self.entry.resource().supports_shared() {
            return Err(self.refuse_conversion());
        }
        match self.entry.try_upgrade(&self.handle) {
            Ok(Upgrade::Upgraded(record)) => {
                self.mode = LockMode::Exclusive;
                self.record = record;
                Ok(self)
            }
            Ok(Upgrade::StillShared) => {
                let holders = self.entry.holders(&self.handle);
                let error = Error::would_block(&self.handle.path)
                    .with_holder(holders.record)
                    .with_os_holders(holders.os);
                Err(self.hand_back(error))
            }
            Ok(Upgrade::Lost) => Err(self.lose()),
            Err(e) => {
                // The shared lock is still held (see `sys::try_upgrade`).
                let error = Error::io(&self.handle.path, Op::Lock, e);
                Err(self.hand_back(error))
            }
        }
    }

    /// Turns an exclusive guard into a shared one, admitting the shared
    /// waiters of this process queued behind it. Atomic with `flock`
    /// (nobody else can hold the file meanwhile, so no one can get in); on
    /// Windows it is a release and a shared lock, and may fail with
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) (no guard comes back).
    ///
    /// Calling it on a shared guard returns the guard unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let writer = lock.try_lock()?;
    /// // ... write ...
    /// let reader = writer.downgrade()?;
    /// let other_reader = lock.try_lock_shared()?; // now readers may join
    /// # drop((reader, other_reader));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Soft locks and leases are exclusive only: the error hands the guard
    /// back with [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
    /// An I/O error leaves the guard exclusive and hands it back;
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) (Windows only) carries no
    /// guard.
    pub fn downgrade(mut self) -> Result<FileLockGuard, ConvertError> {
        if self.mode == LockMode::Shared {
            return Ok(self);
        }
        if !self.entry.resource().supports_shared() {
            return Err(self.refuse_conversion());
        }
        match self.entry.downgrade(self.record.clone(), &self.handle) {
            Ok(true) => {
                self.mode = LockMode::Shared;
                self.record = None;
                Ok(self)
            }
            Ok(false) => Err(self.lose()),
            Err(e) => {
                // Nothing changed: still exclusive.
                let error = Error::io(&self.handle.path, Op::Lock, e);
                Err(self.hand_back(error))
            }
        }
    }

    /// A failed conversion that leaves this guard held in its old mode.
    fn hand_back(self, error: Error) -> ConvertError {
        ConvertError {
            guard: Some(self),
            error: Box::new(error),
        }
    }

    fn refuse_conversion(self) -> ConvertError {
        let why = std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "soft locks and leases are exclusive only",
        );
        let error = Error::io(&self.handle.path, Op::Lock, why);
        self.hand_back(error)
    }

    /// The lock went away during a conversion: the guard has nothing left
    /// to release.
    fn lose(mut self) -> ConvertError {
        self.held = false;
        ConvertError {
            guard: None,
            error: Box::new(Error::lost(&self.handle.path)),
        }
    }

    /// Whether this guard still holds its lock. Always `true` for OS locks,
    /// which only the holder can release. For a soft lock or lease: whether
    /// the lock file is still the one it published and the lease (if any)
    /// has not lapsed. A `false` means another process may hold it now, and
    /// this guard's fencing token is stale.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().soft());
    /// let guard = lock.try_lock()?;
    /// assert!(guard.still_held()?);
    /// // Someone removes the sidecar behind the holder's back.
    /// std::fs::remove_file(lock.path())?;
    /// assert!(!guard.still_held()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the lock file cannot be read.
    ///
    /// # Blocking
    ///
    /// One or two system calls on the lock file (a soft lock or lease).
    pub fn still_held(&self) -> Result<bool, Error> {
        self.entry
            .still_held(&self.handle)
            .map_err(|e| Error::io(&self.handle.path, Op::Inspect, e))
    }

    /// Keeps a lease alive: renews it every third of its TTL, for as long as
    /// it is polled. Run it beside the work (`select!`, `race`, `join`);
    /// it only finishes when renewal fails, with the reason
    /// ([`ErrorKind::Lost`](crate::ErrorKind::Lost) if another process took
    /// over). For locks without a TTL it never finishes.
    ///
    /// Its timer is async-io's, so it runs under any executor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().lease(Duration::from_millis(300)));
    /// let mut guard = lock.lock().await?;
    /// let work = async {
    ///     async_io::Timer::after(Duration::from_millis(500)).await; // longer than the TTL
    ///     "done"
    /// };
    /// // The work wins the race: the lease was renewed meanwhile.
    /// let outcome = futures_lite::future::or(async { Ok(work.await) }, async { Err(guard.keep_alive().await) }).await;
    /// assert_eq!(outcome.map_err(|e| e.kind()), Ok("done"));
    /// assert!(guard.still_held()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops the renewals; a renewal already running on the
    /// blocking pool finishes there. The guard still holds the lock.
    pub async fn keep_alive(&mut self) -> Error {
        let ttl = self.record.as_ref().and_then(|r| r.ttl());
        let Some(ttl) = ttl else {
            return std::future::pending().await;
        };
        let period = (ttl / 3).max(Duration::from_millis(1));
        loop {
            async_io::Timer::after(period).await;
            // Off the executor's thread: renewal may wait for the break lock.
            let (entry, handle) = (Arc::clone(&self.entry), Arc::clone(&self.handle));
            let result = blocking::unblock(move || entry.refresh(&handle)).await;
            if let Err(e) = self.refreshed(result) {
                return e;
            }
        }
    }

    /// Resolves when this guard no longer holds its lock (a lease that
    /// lapsed or was taken over), checking every `every`; never for OS
    /// locks. The "lost" signal to race against the work.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{ErrorKind, FileLock, LockOptions};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().soft());
    /// let guard = lock.lock().await?;
    /// std::fs::remove_file(lock.path())?; // broken behind the holder's back
    /// let e = guard.lost(Duration::from_millis(10)).await;
    /// assert_eq!(e.kind(), ErrorKind::Lost);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops the checks; nothing else changes.
    pub async fn lost(&self, every: Duration) -> Error {
        loop {
            async_io::Timer::after(every).await;
            match self.still_held() {
                Ok(true) => {}
                Ok(false) => return Error::lost(&self.handle.path),
                Err(e) => return e,
            }
        }
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

    /// The lock file's path.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// assert_eq!(lock.try_lock()?.path(), lock.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.handle.path
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
    /// releases it.
    ///
    /// # Blocking
    ///
    /// A few system calls (for a soft lock whose break lock another process
    /// holds, the removal finishes on the blocking pool).
    pub fn unlock(mut self) -> Result<(), Error> {
        self.held = false;
        let op = if self.traits.removes {
            Op::Remove
        } else {
            Op::Unlock
        };
        self.entry
            .release(self.mode, self.record.take(), &self.handle)
            .map_err(|e| Error::io(&self.handle.path, op, e))
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        if self.held {
            let _ = self
                .entry
                .release(self.mode, self.record.take(), &self.handle);
        }
    }
}

impl fmt::Debug for FileLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLockGuard")
            .field("path", &self.handle.path)
            .field("mode", &self.mode)
            .finish()
    }
}

/// A failed [`FileLockGuard::try_upgrade`] or [`FileLockGuard::downgrade`]:
/// why, and the guard (in its old mode) if it is still held.
#[derive(Debug)]
pub struct ConvertError {
    guard: Option<FileLockGuard>,
    // Boxed: keeps `Result<FileLockGuard, ConvertError>` small.
    error: Box<Error>,
}

impl ConvertError {
    /// Why the conversion failed: [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// (guard handed back), [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// (soft locks and leases; guard handed back), or
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) (no guard).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("a.lock"));
    /// let a = lock.try_lock_shared()?;
    /// let _b = lock.try_lock_shared()?;
    /// let failed = a.try_upgrade().unwrap_err();   // _b is in the way
    /// assert_eq!(failed.error().kind(), ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The guard, still held in its old mode, unless the lock was lost.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let a = lock.try_lock_shared()?;
    /// let _b = lock.try_lock_shared()?;
    /// let a = a.try_upgrade().unwrap_err().into_guard().expect("handed back");
    /// assert!(a.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_guard(self) -> Option<FileLockGuard> {
        self.guard
    }

    /// Both parts: the guard (if still held) and the error.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let a = lock.try_lock_shared()?;
    /// let _b = lock.try_lock_shared()?;
    /// let (guard, error) = a.try_upgrade().unwrap_err().into_parts();
    /// assert!(guard.is_some());
    /// assert_eq!(error.kind(), lockyard::ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_parts(self) -> (Option<FileLockGuard>, Error) {
        (self.guard, *self.error)
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot convert the lock: {}", self.error)
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
