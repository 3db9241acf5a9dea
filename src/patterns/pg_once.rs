//! Run-once on PostgreSQL: the same protocol as [`once`](super::once) for
//! files, with the "done" mark in the name's row of the lock table,
//! written only while the hold's fencing token is the latest.

use std::future::Future;
use std::path::Path;

use super::once::OnceOutcome;
use crate::api::postgres::PgLock;
use crate::api::LockGuard;
use crate::error::{Error, Op, Subject};

impl PgLock {
    /// Runs `init` once across every process and machine that calls this
    /// on the same lock: the first caller runs it while the others wait;
    /// once it succeeds, later calls return [`OnceOutcome::AlreadyDone`]
    /// without taking the lock. The "done" mark lives in the lock table's
    /// row of this name (durable, like the tokens). Blocking.
    ///
    /// The mark is written with the hold's fencing token as a condition:
    /// a holder that lost its session and was overtaken while `init` ran
    /// records nothing (an error of kind [`Lost`](crate::ErrorKind::Lost)),
    /// so the work is never recorded as done by a holder that no longer
    /// held the lock.
    ///
    /// # Errors
    ///
    /// The work's own error when `init` fails (nothing is recorded; the
    /// next call runs it again). lockyard's errors, converted into the
    /// work's error type `E` (`anyhow::Error`, `std::io::Error`, `Box<dyn
    /// Error + Send + Sync>`, or your own type with a `From` impl), when the
    /// server cannot be reached or the lock taken, and when the mark cannot
    /// be written (kind [`Lost`](crate::ErrorKind::Lost) if the hold was
    /// lost meanwhile: the work ran, and will run again).
    ///
    /// # Blocking
    ///
    /// A round trip to the server; if the work is not done, until the lock
    /// is granted, then for as long as `init` runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{postgres::PgLocks, OnceOutcome};
    ///
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// # let unique = format!("doc/once/{}/{}", std::process::id(), fastrand::u64(..));
    /// let locks = PgLocks::from_url(&url)?;
    /// let migrate = locks.lock_named(&unique)?;   // e.g. "schema/migrate"
    /// assert_eq!(migrate.once(|| Ok::<_, std::io::Error>(7))?, OnceOutcome::Ran(7));
    /// assert!(!migrate.once(|| Ok::<_, std::io::Error>(7))?.ran());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn once<T, E>(&self, init: impl FnOnce() -> Result<T, E>) -> Result<OnceOutcome<T>, E>
    where
        E: From<Error>,
    {
        self.once_keyed("", init)
    }

    /// [`once`](Self::once), for work identified by `key` (e.g.
    /// `schema-v7`): the work runs again when the key recorded as done
    /// differs.
    ///
    /// # Errors
    ///
    /// As for [`once`](Self::once).
    ///
    /// # Blocking
    ///
    /// As for [`once`](Self::once).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// # let unique = format!("doc/once-keyed/{}/{}", std::process::id(), fastrand::u64(..));
    /// let schema = PgLocks::from_url(&url)?.lock_named(&unique)?;
    /// assert!(schema.once_keyed("v1", || Ok::<_, std::io::Error>(()))?.ran());
    /// assert!(!schema.once_keyed("v1", || Ok::<_, std::io::Error>(()))?.ran());
    /// assert!(schema.once_keyed("v2", || Ok::<_, std::io::Error>(()))?.ran());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn once_keyed<T, E>(
        &self,
        key: &str,
        init: impl FnOnce() -> Result<T, E>,
    ) -> Result<OnceOutcome<T>, E>
    where
        E: From<Error>,
    {
        if self.is_done_pg(key).map_err(E::from)? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let guard = self.lock_blocking().map_err(E::from)?;
        if self.is_done_pg(key).map_err(E::from)? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let value = init()?;
        self.mark_done_pg(key, &guard).map_err(E::from)?;
        drop(guard);
        Ok(OnceOutcome::Ran(value))
    }

    /// [`once`](Self::once) for async work: awaits the future `init`
    /// makes. The server's round trips run on the blocking pool.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases the lock (or gives up the wait). The
    /// work is recorded as done only if the future was dropped after the
    /// work finished and the mark was already on its way; otherwise the
    /// next call runs the work again.
    ///
    /// # Errors
    ///
    /// As for [`once`](Self::once).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// # let unique = format!("doc/once-async/{}/{}", std::process::id(), fastrand::u64(..));
    /// # futures_lite::future::block_on(async {
    /// let warm = PgLocks::from_url(&url)?.lock_named(&unique)?;
    /// let outcome = warm.once_async(|| async { Ok::<_, std::io::Error>("warmed") }).await?;
    /// assert_eq!(outcome.into_value(), Some("warmed"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn once_async<T, E, F>(&self, init: impl FnOnce() -> F) -> Result<OnceOutcome<T>, E>
    where
        E: From<Error>,
        F: Future<Output = Result<T, E>>,
    {
        self.once_keyed_async("", init).await
    }

    /// [`once_keyed`](Self::once_keyed) for async work.
    ///
    /// # Cancel safety
    ///
    /// As for [`once_async`](Self::once_async).
    ///
    /// # Errors
    ///
    /// As for [`once`](Self::once).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// # let unique = format!("doc/once-keyed-async/{}/{}", std::process::id(), fastrand::u64(..));
    /// # futures_lite::future::block_on(async {
    /// let lock = PgLocks::from_url(&url)?.lock_named(&unique)?;
    /// let ran = lock.once_keyed_async("v7", || async { Ok::<_, std::io::Error>(()) }).await?;
    /// assert!(ran.ran());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    pub async fn once_keyed_async<T, E, F>(
        &self,
        key: &str,
        init: impl FnOnce() -> F,
    ) -> Result<OnceOutcome<T>, E>
    where
        E: From<Error>,
        F: Future<Output = Result<T, E>>,
    {
        let done = |this: PgLock, key: String| async move {
            blocking::unblock(move || this.is_done_pg(&key))
                .await
                .map_err(E::from)
        };
        if done(self.clone(), key.to_owned()).await? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let guard = self.lock().await.map_err(E::from)?;
        if done(self.clone(), key.to_owned()).await? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let value = init().await?;
        let (this, key_owned) = (self.clone(), key.to_owned());
        let guard = blocking::unblock(move || {
            let marked = this.mark_done_pg(&key_owned, &guard);
            (marked, guard)
        });
        let (marked, guard) = guard.await;
        marked.map_err(E::from)?;
        drop(guard);
        Ok(OnceOutcome::Ran(value))
    }

    fn is_done_pg(&self, key: &str) -> Result<bool, Error> {
        self.server()
            .is_done(self.name(), key)
            .map_err(|e| Error::io(Subject::remote(Path::new(self.address())), Op::Inspect, e))
    }

    /// Records `key` as done, fenced by `guard`'s token.
    fn mark_done_pg(&self, key: &str, guard: &LockGuard) -> Result<(), Error> {
        let path = Subject::remote(Path::new(self.address()));
        let Some(token) = guard.token() else {
            return Err(Error::io(
                path,
                Op::Lock,
                std::io::Error::other("an exclusive hold without a fencing token"),
            ));
        };
        match self.server().mark_done(self.name(), key, token) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::lost(path)),
            Err(e) => Err(Error::io(path, Op::Lock, e)),
        }
    }
}
