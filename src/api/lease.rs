//! Keeping a lease: renewing it, and noticing when a guard's lock is no
//! longer its own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use super::LockGuard;
use crate::error::{Error, Op};

impl LockGuard {
    /// The TTL a renewal keeps up: the record's (a lease), else the lock's
    /// options' (a shared PostgreSQL hold, which has no record).
    fn lease_ttl(&self) -> Option<Duration> {
        self.record
            .as_ref()
            .and_then(|r| r.ttl())
            .or(self.traits.lease())
    }

    /// Renews a lease (see [`LockOptions::lease`](crate::LockOptions::lease)):
    /// its TTL starts again from now. A no-op for other locks.
    ///
    /// Takes `&self`, as every renewal does, so the guard stays usable
    /// (its token read, passed to the work) while it is renewed. The
    /// renewal is written to the lock's record, which
    /// [`FileLock::holder`](crate::FileLock::holder) reads; the guard's
    /// [`record`](Self::record) stays the one the acquisition published.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().lease(Duration::from_secs(30)));
    /// let guard = lock.try_lock()?;
    /// let before = guard.record().unwrap().renewed_at();
    /// std::thread::sleep(Duration::from_millis(5));
    /// guard.refresh()?;
    /// assert!(lock.holder()?.unwrap().renewed_at() > before);
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
    pub fn refresh(&self) -> Result<(), Error> {
        self.entry
            .refresh(&self.handle)
            .map(drop)
            .map_err(|e| Error::io(self.handle.subject(), Op::Lock, e))
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
    /// // Someone moves the sidecar away behind the holder's back.
    /// std::fs::rename(lock.path(), dir.path().join("elsewhere"))?;
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
            .map_err(|e| Error::io(self.handle.subject(), Op::Inspect, e))
    }

    /// Keeps a lease alive: renews it every third of its TTL, for as long as
    /// it is polled. Run it beside the work (`select!`, `race`, `or`); it
    /// takes `&self`, so the work can use the guard meanwhile (read its
    /// token, check [`still_held`](Self::still_held)). It only finishes when
    /// renewal fails, with the reason as an `Err`
    /// ([`ErrorKind::Lost`](crate::ErrorKind::Lost) if another process took
    /// over), so `?` ends the work that depended on the lease. For locks
    /// without a TTL it never finishes.
    ///
    /// It runs under any executor: its timer is async-io's, or tokio's
    /// clock inside a tokio runtime that has a timer (with the `tokio`
    /// feature), so `tokio::time::pause()` governs the renewals too. Each
    /// renewal runs on the blocking pool (tokio's, or `blocking`'s), and is
    /// written to the lock's record (see [`refresh`](Self::refresh)).
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
    /// let guard = lock.lock().await?;
    /// let work = async {
    ///     let token = guard.token(); // the guard is usable while it is kept alive
    ///     async_io::Timer::after(Duration::from_millis(500)).await; // longer than the TTL
    ///     assert!(guard.still_held()?);
    ///     Ok::<_, lockyard::Error>(token)
    /// };
    /// // The work wins the race: the lease was renewed meanwhile.
    /// let token = futures_lite::future::or(work, async {
    ///     match guard.keep_alive().await {
    ///         Err(lost) => Err(lost),
    ///     }
    /// })
    /// .await?;
    /// assert_eq!(token, guard.token());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The first renewal that failed.
    ///
    /// # Cancel safety
    ///
    /// Dropping it stops the renewals; a renewal already running on the
    /// blocking pool finishes there. The guard still holds the lock.
    pub async fn keep_alive(&self) -> Result<Infallible, Error> {
        let Some(ttl) = self.lease_ttl() else {
            return std::future::pending().await;
        };
        let period = (ttl / 3).max(Duration::from_millis(1));
        // tokio's clock inside a tokio runtime with a timer (the `tokio`
        // feature), so `tokio::time::pause()` governs renewals too.
        let clock = crate::rt::Clock::current();
        loop {
            crate::rt::sleep(clock, period).await;
            // Off the executor's thread: renewal may wait for the break lock.
            let (entry, handle) = (Arc::clone(&self.entry), Arc::clone(&self.handle));
            crate::rt::unblock(clock, move || entry.refresh(&handle))
                .await
                .and_then(|refreshed| refreshed)
                .map_err(|e| Error::io(self.handle.subject(), Op::Lock, e))?;
        }
    }

    /// [`keep_alive`](Self::keep_alive) for blocking code: runs `work` on
    /// this thread while a thread beside it renews the lease every third
    /// of its TTL, and returns once `work` has returned and the renewals
    /// have stopped. For a lock without a TTL it just runs `work`.
    ///
    /// Returns `work`'s value and how the renewals went. A thread cannot be
    /// stopped from outside, so `work` runs to its end even if renewing
    /// failed meanwhile; the `Err` ([`ErrorKind::Lost`](crate::ErrorKind::Lost)
    /// if another process took over) says that what `work` did may have
    /// overlapped another holder: check it before trusting the result.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().lease(Duration::from_millis(300)));
    /// let guard = lock.lock_blocking()?;
    /// let (rows, kept) = guard.keep_alive_while(|| {
    ///     std::thread::sleep(Duration::from_millis(700)); // longer than the TTL
    ///     assert!(guard.token().is_some()); // the guard is usable meanwhile
    ///     42
    /// });
    /// kept?;                                                // renewed all along
    /// assert_eq!(rows, 42);
    /// assert!(guard.still_held()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The second value is the first renewal that failed, if any.
    ///
    /// # Panics
    ///
    /// If `work` panics, the renewals stop and the panic goes on.
    ///
    /// # Blocking
    ///
    /// For as long as `work` runs, and at most one renewal after it.
    pub fn keep_alive_while<R>(&self, work: impl FnOnce() -> R) -> (R, Result<(), Error>) {
        let Some(ttl) = self.lease_ttl() else {
            return (work(), Ok(()));
        };
        let period = (ttl / 3).max(Duration::from_millis(1));
        let (entry, handle) = (Arc::clone(&self.entry), Arc::clone(&self.handle));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (value, renewals) = std::thread::scope(|scope| {
            let renewer = scope.spawn(move || loop {
                match stopped.recv_timeout(period) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        entry.refresh(&handle)?;
                    }
                    // Told to stop, or `work` panicked (the sender is
                    // dropped as it unwinds).
                    _ => return Ok(()),
                }
            });
            let stop = stop;
            let value = work();
            drop(stop);
            (value, renewer.join())
        });
        let result = match renewals {
            Ok(outcome) => outcome.map_err(|e| Error::io(self.handle.subject(), Op::Lock, e)),
            Err(_) => Err(Error::io(
                self.handle.subject(),
                Op::Lock,
                std::io::Error::other("the renewal thread panicked"),
            )),
        };
        (value, result)
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
    /// std::fs::rename(lock.path(), dir.path().join("elsewhere"))?; // behind the holder's back
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
        // On tokio's clock inside a tokio runtime with a timer, as
        // `keep_alive`.
        let clock = crate::rt::Clock::current();
        loop {
            crate::rt::sleep(clock, every).await;
            match self.still_held() {
                Ok(true) => {}
                Ok(false) => return Error::lost(self.handle.subject()),
                Err(e) => return e,
            }
        }
    }
}
