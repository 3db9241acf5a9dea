//! Closure helpers: run code with a lock held, release it whatever happens.
//!
//! The closure's result comes back untouched inside lockyard's own
//! `Result`: `Ok(its result)` once the lock was taken, `Err(lockyard
//! error)` if it could not be. A closure returning `Result<T, E>` therefore
//! yields `Result<Result<T, E>, lockyard::Error>`, and `?` on each layer
//! keeps the two kinds of failure apart.
//!
//! If a blocking closure panics, the guard is dropped while unwinding and
//! the lock is released; if an async helper's future is dropped, so is
//! the guard.

use std::future::Future;
use std::path::Path;

use crate::{Error, FileLock};

/// Runs `f` with the lock file at `path` held exclusively (waiting as long
/// as it takes; blocking).
///
/// # Examples
///
/// ```
/// use lockyard::with_lock;
///
/// let dir = tempfile::tempdir()?;
/// let data = dir.path().join("count");
/// let lock = dir.path().join("count.lock");
/// let parsed: Result<u32, std::num::ParseIntError> = with_lock(&lock, || {
///     let n: u32 = std::fs::read_to_string(&data).unwrap_or_else(|_| "0".into()).parse()?;
///     std::fs::write(&data, (n + 1).to_string()).expect("write");
///     Ok(n + 1)
/// })?;
/// assert_eq!(parsed?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// The lock's error if it could not be taken (see [`FileLock::lock`]); the
/// closure's own result comes back inside `Ok`.
///
/// # Blocking
///
/// Blocks the calling thread until the lock is taken, then for as long as
/// `f` runs.
pub fn with_lock<R>(path: impl AsRef<Path>, f: impl FnOnce() -> R) -> Result<R, Error> {
    FileLock::new(path.as_ref()).with_lock(f)
}

/// The former name of [`with_lock`].
///
/// # Errors
///
/// As for [`with_lock`].
///
/// # Blocking
///
/// As for [`with_lock`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `with_lock`: one word, shared or exclusive, for every form"
)]
pub fn with_write_lock<R>(path: impl AsRef<Path>, f: impl FnOnce() -> R) -> Result<R, Error> {
    with_lock(path, f)
}

/// Runs `f` with the lock file at `path` held shared (blocking).
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let n = lockyard::with_lock_shared(dir.path().join("a.lock"), || 1 + 1)?;
/// assert_eq!(n, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// The lock's error if it could not be taken (see [`FileLock::lock`]); the
/// closure's own result comes back inside `Ok`.
///
/// # Blocking
///
/// Blocks the calling thread until the lock is taken, then for as long as
/// `f` runs.
pub fn with_lock_shared<R>(path: impl AsRef<Path>, f: impl FnOnce() -> R) -> Result<R, Error> {
    FileLock::new(path.as_ref()).with_lock_shared(f)
}

/// The former name of [`with_lock_shared`].
///
/// # Errors
///
/// As for [`with_lock_shared`].
///
/// # Blocking
///
/// As for [`with_lock_shared`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `with_lock_shared`: one word, shared or exclusive, for every form"
)]
pub fn with_read_lock<R>(path: impl AsRef<Path>, f: impl FnOnce() -> R) -> Result<R, Error> {
    with_lock_shared(path, f)
}

/// Awaits the future `f` makes with the lock at `path` held exclusively.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let n = lockyard::with_lock_async(dir.path().join("a.lock"), || async { 1 + 1 }).await?;
/// assert_eq!(n, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// The lock's error if it could not be taken (see [`FileLock::lock`]); the
/// future's own output comes back inside `Ok`.
///
/// # Cancel safety
///
/// Dropping the future releases the lock (or gives back its place in the
/// queue) and drops `f`'s future wherever it was.
pub async fn with_lock_async<F: Future>(
    path: impl AsRef<Path>,
    f: impl FnOnce() -> F,
) -> Result<F::Output, Error> {
    FileLock::new(path.as_ref()).with_lock_async(f).await
}

/// The former name of [`with_lock_async`].
///
/// # Errors
///
/// As for [`with_lock_async`].
///
/// # Cancel safety
///
/// As for [`with_lock_async`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `with_lock_async`: one word, shared or exclusive, for every form"
)]
pub async fn with_write_lock_async<F: Future>(
    path: impl AsRef<Path>,
    f: impl FnOnce() -> F,
) -> Result<F::Output, Error> {
    with_lock_async(path, f).await
}

/// Awaits the future `f` makes with the lock at `path` held shared.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let n = lockyard::with_lock_shared_async(dir.path().join("a.lock"), || async { 1 + 1 }).await?;
/// assert_eq!(n, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// The lock's error if it could not be taken (see [`FileLock::lock`]); the
/// future's own output comes back inside `Ok`.
///
/// # Cancel safety
///
/// Dropping the future releases the lock (or gives back its place in the
/// queue) and drops `f`'s future wherever it was.
pub async fn with_lock_shared_async<F: Future>(
    path: impl AsRef<Path>,
    f: impl FnOnce() -> F,
) -> Result<F::Output, Error> {
    FileLock::new(path.as_ref()).with_lock_shared_async(f).await
}

/// The former name of [`with_lock_shared_async`].
///
/// # Errors
///
/// As for [`with_lock_shared_async`].
///
/// # Cancel safety
///
/// As for [`with_lock_shared_async`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `with_lock_shared_async`: one word, shared or exclusive, for every form"
)]
pub async fn with_read_lock_async<F: Future>(
    path: impl AsRef<Path>,
    f: impl FnOnce() -> F,
) -> Result<F::Output, Error> {
    with_lock_shared_async(path, f).await
}

impl FileLock {
    /// Runs `f` with this lock held exclusively (blocking); see the
    /// [`with_lock`] function.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let n = lock.with_lock(|| 1 + 1)?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The lock's error if it could not be taken (see [`FileLock::lock`]); the
    /// closure's own result comes back inside `Ok`.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken, then for as long as
    /// `f` runs.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let _guard = self.lock_blocking()?;
        Ok(f())
    }

    /// Runs `f` with this lock held shared (blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let n = lock.with_lock_shared(|| 1 + 1)?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The lock's error if it could not be taken (see [`FileLock::lock`]); the
    /// closure's own result comes back inside `Ok`.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the lock is taken, then for as long as
    /// `f` runs.
    pub fn with_lock_shared<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let _guard = self.lock_shared_blocking()?;
        Ok(f())
    }

    /// Awaits the future `f` makes with this lock held exclusively.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let n = lock.with_lock_async(|| async { 1 + 1 }).await?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The lock's error if it could not be taken (see [`FileLock::lock`]); the
    /// future's own output comes back inside `Ok`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases the lock (or gives back its place in the
    /// queue) and drops `f`'s future wherever it was.
    pub async fn with_lock_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        let _guard = self.lock().await?;
        Ok(f().await)
    }

    /// Awaits the future `f` makes with this lock held shared.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("a.lock"));
    /// let n = lock.with_lock_shared_async(|| async { 1 + 1 }).await?;
    /// assert_eq!(n, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The lock's error if it could not be taken (see [`FileLock::lock`]); the
    /// future's own output comes back inside `Ok`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases the lock (or gives back its place in the
    /// queue) and drops `f`'s future wherever it was.
    pub async fn with_lock_shared_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        let _guard = self.lock_shared().await?;
        Ok(f().await)
    }
}
