//! Converting a guard between shared and exclusive, and what a failed
//! conversion hands back.

use std::fmt;

use super::LockGuard;
use crate::engine::Upgrade;
use crate::error::{Error, Op};
use crate::mode::LockMode;

impl LockGuard {
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
    /// [`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly) with the
    /// guard (soft locks and leases), [`ErrorKind::Lost`](crate::ErrorKind::Lost)
    /// without it (see above), or an I/O error with the shared guard still
    /// held.
    pub fn try_upgrade(mut self) -> Result<LockGuard, ConvertError> {
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
                let error = Error::would_block(self.handle.subject())
                    .with_holder(holders.record)
                    .with_os_holders(holders.os);
                Err(self.hand_back(error))
            }
            Ok(Upgrade::Lost) => Err(self.lose()),
            Err(e) => {
                // The shared lock is still held (see `sys::try_upgrade`).
                let error = Error::io(self.handle.subject(), Op::Lock, e);
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
    /// back with [`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly).
    /// An I/O error leaves the guard exclusive and hands it back;
    /// [`ErrorKind::Lost`](crate::ErrorKind::Lost) (Windows only) carries no
    /// guard.
    pub fn downgrade(mut self) -> Result<LockGuard, ConvertError> {
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
                let error = Error::io(self.handle.subject(), Op::Lock, e);
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
        let error = Error::io(
            self.handle.subject(),
            Op::Lock,
            crate::error::exclusive_only(),
        );
        self.hand_back(error)
    }

    /// The lock went away during a conversion: the guard has nothing left
    /// to release.
    fn lose(mut self) -> ConvertError {
        self.held = false;
        ConvertError {
            guard: None,
            error: Box::new(Error::lost(self.handle.subject())),
        }
    }
}

/// A failed [`LockGuard::try_upgrade`] or [`LockGuard::downgrade`]:
/// why, and the guard (in its old mode) if it is still held.
#[derive(Debug)]
pub struct ConvertError {
    guard: Option<LockGuard>,
    // Boxed: keeps `Result<LockGuard, ConvertError>` small.
    error: Box<Error>,
}

impl ConvertError {
    /// Why the conversion failed: [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// (guard handed back), [`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly)
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
    pub fn into_guard(self) -> Option<LockGuard> {
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
    pub fn into_parts(self) -> (Option<LockGuard>, Error) {
        (self.guard, *self.error)
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reason is the source: said once in a chain.
        f.write_str("cannot convert the lock")
    }
}

impl std::error::Error for ConvertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}
