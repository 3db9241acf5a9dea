//! Taking a [`FileLock`]: futures, one try, or a blocked thread.

use std::sync::Arc;
use std::time::Duration;

use super::{Acquire, FileLock, LockGuard};
use crate::engine::acquire::{self, Core};
use crate::error::Error;
use crate::mode::{LockMode, Wait};

impl FileLock {
    /// Acquires the lock exclusively, waiting as long as it takes.
    ///
    /// Waiters of this process queue in FIFO order and are woken by the
    /// release; the first of them watches for other processes (see
    /// [`WaitStrategy`](crate::WaitStrategy)).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.lock().await?;
    /// assert!(guard.is_exclusive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back whatever it had: its place
    /// in the queue, a lock it had just been handed, an open in progress.
    /// Nothing stays held or registered, and the next waiter is woken if it was
    /// owed the turn.
    ///
    /// # Errors
    ///
    /// Only for a lock that cannot be taken at all (the path is a directory,
    /// permission denied, an unsupported filesystem...): see
    /// [`ErrorKind`](crate::ErrorKind).
    pub fn lock(&self) -> Acquire {
        self.acquire(LockMode::Exclusive, Wait::Forever)
    }

    /// Acquires the lock shared, waiting as long as it takes.
    ///
    /// Shared waiters queued together are admitted together. A shared
    /// request queues behind an earlier exclusive one rather than jumping
    /// it, so writers are not starved.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let a = lock.lock_shared().await?;
    /// let b = lock.lock_shared().await?;   // readers coexist
    /// assert!(a.is_shared() && b.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back whatever it had: its place
    /// in the queue, a lock it had just been handed, an open in progress.
    /// Nothing stays held or registered, and the next waiter is woken if it was
    /// owed the turn.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock); soft locks and leases are exclusive only
    /// ([`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly)).
    pub fn lock_shared(&self) -> Acquire {
        self.acquire(LockMode::Shared, Wait::Forever)
    }

    /// Acquires the lock exclusively, failing with
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) after `timeout`
    /// (counted from the first poll). The error says who held the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.lock().await?;
    /// let e = lock.lock_timeout(Duration::from_millis(20)).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::TimedOut);
    /// assert_eq!(e.holder().map(|h| h.pid()), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back whatever it had: its place
    /// in the queue, a lock it had just been handed, an open in progress.
    /// Nothing stays held or registered, and the next waiter is woken if it was
    /// owed the turn.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) once `timeout` has
    /// passed; otherwise as for [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> Acquire {
        self.acquire(LockMode::Exclusive, Wait::For(timeout))
    }

    /// Acquires the lock shared, failing with
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) after `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::FileLock;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let guard = lock.lock_shared_timeout(Duration::from_secs(5)).await?;
    /// assert!(guard.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back whatever it had: its place
    /// in the queue, a lock it had just been handed, an open in progress.
    /// Nothing stays held or registered, and the next waiter is woken if it was
    /// owed the turn.
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout) and
    /// [`lock_shared`](Self::lock_shared).
    pub fn lock_shared_timeout(&self, timeout: Duration) -> Acquire {
        self.acquire(LockMode::Shared, Wait::For(timeout))
    }

    /// Acquires the lock in `mode`, waiting as `wait` says.
    ///
    /// The returned future is `'static` and `Send`: it can be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use lockyard::{FileLock, LockMode, Wait};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// let guard = lock.acquire(LockMode::Shared, Wait::Until(deadline)).await?;
    /// assert!(guard.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back whatever it had: its place
    /// in the queue, a lock it had just been handed, an open in progress.
    /// Nothing stays held or registered, and the next waiter is woken if it was
    /// owed the turn.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) for
    /// [`Wait::TryOnce`] on a held lock,
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) past a deadline;
    /// otherwise as for [`lock`](Self::lock).
    pub fn acquire(&self, mode: LockMode, wait: Wait) -> Acquire {
        let core = Core::new(Arc::clone(self.handle()), mode, wait);
        Acquire::new(core, self.traits())
    }

    /// Takes the lock exclusively if that is possible right now.
    ///
    /// Never waits for the lock; the first call on a handle opens the lock
    /// file on the calling thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.try_lock()?;
    /// assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// drop(guard);
    /// assert!(lock.try_lock().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) if it is held
    /// (or other tasks of this process are already queued for it); the error
    /// names the holder. Otherwise as for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Only for system calls: opening the file the first time, and letting
    /// another caller's attempt or release in flight finish.
    pub fn try_lock(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, Wait::TryOnce)
    }

    /// Takes the lock shared if that is possible right now.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let a = lock.try_lock_shared()?;
    /// let b = lock.try_lock_shared()?;
    /// assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # drop((a, b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock); soft locks and leases are
    /// exclusive only ([`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly)).
    ///
    /// # Blocking
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_shared(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, Wait::TryOnce)
    }

    /// [`try_lock`](Self::try_lock) as a future: one attempt, which never
    /// blocks the executor's thread. For a lock file it completes at its
    /// first poll (the attempt is a few system calls, as
    /// [`try_lock`](Self::try_lock)'s); it is there so that code written for
    /// any backend reads the same, and for a lock whose attempt is a network
    /// round trip ([`PgLock`](crate::postgres::PgLock)) it is what async
    /// code calls. The same as `acquire(LockMode::Exclusive, Wait::TryOnce)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.try_lock_async().await?;
    /// assert_eq!(lock.try_lock_async().await.unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it completes, it leaves nothing held
    /// (an attempt already under way on another thread gives back what it
    /// takes).
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_async(&self) -> Acquire {
        self.acquire(LockMode::Exclusive, Wait::TryOnce)
    }

    /// [`try_lock_shared`](Self::try_lock_shared) as a future; see
    /// [`try_lock_async`](Self::try_lock_async).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("cache.lock"));
    /// let a = lock.try_lock_shared_async().await?;
    /// let b = lock.try_lock_shared_async().await?;
    /// # drop((a, b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`try_lock_async`](Self::try_lock_async).
    ///
    /// # Errors
    ///
    /// As for [`try_lock_shared`](Self::try_lock_shared).
    pub fn try_lock_shared_async(&self) -> Acquire {
        self.acquire(LockMode::Shared, Wait::TryOnce)
    }

    /// Acquires the lock exclusively, blocking the calling thread.
    ///
    /// While another process holds a strict lock, the thread waits in the
    /// kernel's own lock call, which hands it the lock the moment the other
    /// process lets go. Behind another thread of this process, it watches
    /// for its turn for a few microseconds, then parks until that thread
    /// hands the lock over.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.lock_blocking()?;
    /// // ... the critical section ...
    /// guard.unlock()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken, however long that takes. Do not call it
    /// on an async executor's thread; use [`lock`](Self::lock) there.
    pub fn lock_blocking(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, Wait::Forever)
    }

    /// Acquires the lock shared, blocking the calling thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let reader = lock.lock_shared_blocking()?;
    /// assert!(reader.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock_shared`](Self::lock_shared).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken, however long that takes. Do not call it
    /// on an async executor's thread; use [`lock_shared`](Self::lock_shared) there.
    pub fn lock_shared_blocking(&self) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, Wait::Forever)
    }

    /// Acquires the lock exclusively, blocking the calling thread for at
    /// most `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let held = lock.lock_blocking()?;
    /// let other = FileLock::new(lock.path());
    /// let e = other.lock_blocking_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::TimedOut);
    /// # drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken or `timeout` has passed. Do not call it
    /// on an async executor's thread; use [`lock_timeout`](Self::lock_timeout) there.
    pub fn lock_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Exclusive, Wait::For(timeout))
    }

    /// Acquires the lock shared, blocking the calling thread for at most
    /// `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("cache.lock"));
    /// let reader = lock.lock_shared_blocking_timeout(Duration::from_secs(5))?;
    /// assert!(reader.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock_shared_timeout`](Self::lock_shared_timeout).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken or `timeout` has passed. Do not call it
    /// on an async executor's thread; use [`lock_shared_timeout`](Self::lock_shared_timeout) there.
    pub fn lock_shared_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_blocking(LockMode::Shared, Wait::For(timeout))
    }

    /// Acquires the lock in `mode`, blocking the calling thread as `wait`
    /// says. It runs the same state machine as [`acquire`](Self::acquire),
    /// parking the thread between steps (no busy loop).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockMode, Wait};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let guard = lock.acquire_blocking(LockMode::Exclusive, Wait::TryOnce)?;
    /// assert!(guard.is_exclusive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken or `wait` gives up. Do not call it
    /// on an async executor's thread; use [`acquire`](Self::acquire) there.
    pub fn acquire_blocking(&self, mode: LockMode, wait: Wait) -> Result<LockGuard, Error> {
        let (entry, record) =
            acquire::acquire_blocking(self.handle(), mode, wait).map_err(Error::resume_panic)?;
        let handle = Arc::clone(self.handle());
        Ok(LockGuard::new(handle, self.traits(), entry, mode, record))
    }
}
