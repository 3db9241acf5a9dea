//! Run-once in object storage: the same protocol as [`once`](super::once)
//! for files, with the "done" mark in an object of its own beside the lock
//! object (`<name>.lock.done`).
//!
//! A mark cannot be written in one step with "still holding" (it is
//! another object), so it is fenced by time: the hold is renewed first (a
//! conditional write, which no other holder can have preceded), and the
//! mark counts only if it was written within the lease that renewal
//! started, when nobody else can have taken the lock over. A mark written
//! later is taken back, and the caller told `Lost`.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use super::once::OnceOutcome;
use crate::api::object::ObjectLock;
use crate::api::LockGuard;
use crate::backend::object::store::{Condition, Put};
use crate::error::{Error, Op, Subject};

/// The first line of a mark.
const MAGIC: &str = "lockyard-once 1";

/// What a mark object says.
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    /// This key's work is done (recorded by the hold with this token).
    Done { key: String },
    /// A mark taken back: nothing is done.
    Undone,
}

fn encode(mark: &Mark, token: u64) -> Vec<u8> {
    match mark {
        Mark::Done { key } => format!("{MAGIC}\ntoken {token}\nkey {}\n{key}", key.len()),
        Mark::Undone => format!("{MAGIC}\ntoken {token}\nundone\n"),
    }
    .into_bytes()
}

/// A mark's body, read as untrusted input.
fn decode(body: &[u8]) -> Option<Mark> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.strip_prefix(MAGIC)?.strip_prefix('\n')?;
    let (token, rest) = rest.split_once('\n')?;
    token.strip_prefix("token ")?.parse::<u64>().ok()?;
    if rest == "undone\n" {
        return Some(Mark::Undone);
    }
    let (len, key) = rest.strip_prefix("key ")?.split_once('\n')?;
    (key.len() == len.parse::<usize>().ok()?).then(|| Mark::Done {
        key: key.to_owned(),
    })
}

/// `Ok` when `body` is a mark lockyard wrote; an error of kind
/// `InvalidData` for anything else, which is never overwritten.
fn ours(body: &[u8]) -> std::io::Result<()> {
    match decode(body) {
        Some(_) => Ok(()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the run-once mark is not lockyard's; it is left as it is",
        )),
    }
}

impl ObjectLock {
    /// Runs `init` once across every process and machine that calls this
    /// on the same lock: the first caller runs it while the others wait;
    /// once it succeeds, later calls return [`OnceOutcome::AlreadyDone`]
    /// without taking the lock. The "done" mark is an object beside the
    /// lock object. Blocking.
    ///
    /// The mark is fenced by the lease: the hold is renewed, then the mark
    /// written, and it counts only if it was written within that renewal's
    /// lease (by this process's clock). A holder overtaken while `init`
    /// ran (its lease lapsed) records nothing: an error of kind
    /// [`Lost`](crate::ErrorKind::Lost), and the next call runs the work
    /// again. `init` must finish within the lease, or renew it (see
    /// [`LockGuard::keep_alive_while`]).
    ///
    /// # Errors
    ///
    /// The work's own error when `init` fails (nothing is recorded).
    /// lockyard's errors, converted into the work's error type `E`, when
    /// the store cannot be reached or the lock taken, and when the mark
    /// cannot be written (kind `Lost` if the hold was lost meanwhile).
    ///
    /// # Blocking
    ///
    /// A request to the store; if the work is not done, until the lock is
    /// granted, then for as long as `init` runs, and three or four
    /// requests to record it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{object::ObjectLocks, OnceOutcome};
    ///
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_S3") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_S3 names no bucket");
    /// #     return Ok(());
    /// # };
    /// # let url = format!("{url}/doc-once-{}-{}", std::process::id(), fastrand::u64(..));
    /// let migrate = ObjectLocks::from_url(&url)?.lock_named("schema/migrate")?;
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
    /// use lockyard::object::ObjectLocks;
    ///
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_S3") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_S3 names no bucket");
    /// #     return Ok(());
    /// # };
    /// # let url = format!("{url}/doc-once-keyed-{}-{}", std::process::id(), fastrand::u64(..));
    /// let schema = ObjectLocks::from_url(&url)?.lock_named("schema")?;
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
        if self.is_done(key).map_err(E::from)? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let guard = self.lock_blocking().map_err(E::from)?;
        // Every way out unlocks (a dropped guard is freed in the
        // background, which a process about to exit may never see).
        let outcome = match self.is_done(key) {
            Err(e) => Err(E::from(e)),
            Ok(true) => Ok(OnceOutcome::AlreadyDone),
            Ok(false) => init().and_then(|value| {
                self.mark_done(key, &guard).map_err(E::from)?;
                Ok(OnceOutcome::Ran(value))
            }),
        };
        let unlocked = guard.unlock();
        let outcome = outcome?;
        unlocked.map_err(E::from)?;
        Ok(outcome)
    }

    /// [`once`](Self::once) for async work: awaits the future `init`
    /// makes; the store's requests run on the blocking pool.
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
    pub async fn once_keyed_async<T, E, F>(
        &self,
        key: &str,
        init: impl FnOnce() -> F,
    ) -> Result<OnceOutcome<T>, E>
    where
        E: From<Error>,
        F: Future<Output = Result<T, E>>,
    {
        let done = |this: ObjectLock, key: String| async move {
            blocking::unblock(move || this.is_done(&key))
                .await
                .map_err(E::from)
        };
        if done(self.clone(), key.to_owned()).await? {
            return Ok(OnceOutcome::AlreadyDone);
        }
        let guard = self.lock().await.map_err(E::from)?;
        let unlock = |guard: LockGuard| async move {
            blocking::unblock(move || guard.unlock())
                .await
                .map_err(E::from)
        };
        match done(self.clone(), key.to_owned()).await {
            Ok(false) => {}
            other => {
                unlock(guard).await?;
                return other.map(|_| OnceOutcome::AlreadyDone);
            }
        }
        let value = match init().await {
            Ok(value) => value,
            Err(e) => {
                let _ = unlock(guard).await;
                return Err(e);
            }
        };
        let (this, key) = (self.clone(), key.to_owned());
        blocking::unblock(move || {
            let marked = this.mark_done(&key, &guard);
            let unlocked = guard.unlock();
            marked.and(unlocked)
        })
        .await
        .map_err(E::from)?;
        Ok(OnceOutcome::Ran(value))
    }

    fn subject_error(&self, op: Op, e: std::io::Error) -> Error {
        Error::io(Subject::remote(Path::new(self.address())), op, e)
    }

    fn mark_key(&self) -> String {
        let mut key = self.space().key_of(self.name());
        key.push_str(".done");
        key
    }

    /// Whether `key`'s work is recorded as done.
    fn is_done(&self, key: &str) -> Result<bool, Error> {
        let found = self
            .space()
            .store
            .get(&self.mark_key())
            .map_err(|e| self.subject_error(Op::Inspect, e))?;
        Ok(match found {
            None => false,
            Some(object) => match decode(&object.body) {
                Some(Mark::Done { key: done }) => done == key,
                Some(Mark::Undone) => false,
                None => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the run-once mark is not lockyard's; it is left as it is",
                    );
                    return Err(self.subject_error(Op::Inspect, e));
                }
            },
        })
    }

    /// Records `key` as done under `guard`'s hold (see the module docs).
    fn mark_done(&self, key: &str, guard: &LockGuard) -> Result<(), Error> {
        let token = guard.token().unwrap_or(0);
        let ttl = guard
            .record()
            .and_then(|r| r.ttl())
            .unwrap_or(Duration::from_secs(30));
        let store = &self.space().store;
        let mark_key = self.mark_key();
        let io = |e| self.subject_error(Op::Lock, e);
        // Renewed (a conditional write on the lock object) at or after
        // `start`: nobody can take it over before `start + ttl`.
        let start = Instant::now();
        guard.refresh()?;
        let previous = match store.get(&mark_key).map_err(io)? {
            // Only ever overwrite a mark of ours: an object someone else
            // put at this key meanwhile is left as it is.
            Some(object) => {
                ours(&object.body).map_err(io)?;
                Some(object.version)
            }
            None => None,
        };
        let condition = match &previous {
            Some(v) => Condition::At(v),
            None => Condition::Absent,
        };
        let body = encode(
            &Mark::Done {
                key: key.to_owned(),
            },
            token,
        );
        let written = match store.put(&mark_key, &body, condition).map_err(io)? {
            Put::Written(v) => v,
            // Only another holder writes marks: this hold was lost.
            Put::Conflict => return Err(Error::lost(Subject::remote(Path::new(self.address())))),
        };
        if start.elapsed() < ttl {
            return Ok(());
        }
        // Too late to be sure nobody else held it meanwhile: taken back.
        let undone = encode(&Mark::Undone, token);
        let _ = store.put(&mark_key, &undone, Condition::At(&written));
        Err(Error::lost(Subject::remote(Path::new(self.address()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_marks_are_overwritten() {
        assert!(ours(&encode(&Mark::Undone, 1)).is_ok());
        let e = ours(b"somebody's data").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn marks_round_trip_and_foreign_bodies_are_refused() {
        for mark in [
            Mark::Done { key: String::new() },
            Mark::Done {
                key: "v7\nwith\nlines".to_owned(),
            },
            Mark::Undone,
        ] {
            assert_eq!(decode(&encode(&mark, 42)), Some(mark));
        }
        for body in [
            &b""[..],
            b"lockyard-once 1\n",
            b"lockyard-once 1\ntoken x\nundone\n",
            b"lockyard-once 1\ntoken 1\nkey 9\nshort",
            b"something else",
        ] {
            assert_eq!(decode(body), None, "{body:?}");
        }
    }
}
