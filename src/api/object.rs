//! Locks in object storage: [`ObjectLocks`], a namespace of named locks
//! under a bucket prefix, and [`ObjectLock`], one of them, with the same
//! acquisition API as [`FileLock`]: in Amazon S3 and S3-compatible servers
//! (feature `s3`, `s3://` URLs), Google Cloud Storage (feature `gcs`,
//! `gs://` URLs) and Azure Blob Storage (feature `azure`,
//! `az://account/container` URLs).
//!
//! Each name is one lock object, `<prefix>/<name>.lock`, never deleted and
//! changed only by conditional writes, so two processes (on any machines)
//! never both hold it. Every hold is a lease: it lasts
//! [`lease`](ObjectLocks::lease) (30 s by default) unless renewed
//! ([`LockGuard::keep_alive`] beside the work), and a holder that died is
//! taken over once a waiter has seen its lock object unchanged for that
//! long on its own clock. Fencing tokens go up with every acquisition. The
//! guide's [object storage page](crate::guide::object_storage) has the
//! protocol and its limits.
//!
//! # Examples
//!
//! ```
//! use lockyard::object::ObjectLocks;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let Ok(url) = std::env::var("LOCKYARD_TEST_S3") else {
//! #     eprintln!("skipped: LOCKYARD_TEST_S3 names no bucket");
//! #     return Ok(());
//! # };
//! # let url = format!("{url}/doc-module-{}", std::process::id());
//! // url: "s3://my-bucket/locks"; endpoint and credentials from the AWS
//! // environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
//! let locks = ObjectLocks::from_url(&url)?;
//! let lock = locks.lock_named("reports/nightly")?;
//! let guard = lock.try_lock()?;
//! let token = guard.token().expect("every hold has a token");
//! guard.unlock()?;   // a dropped guard is freed in the background
//! # let _ = token;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Acquire, FileLock, LockGuard, LockInfo, LockState};
use crate::backend::object::store::Store;
use crate::backend::object::{ObjectOpener, Space, DEFAULT_TTL};
use crate::engine::{Config as EngineConfig, Handle};
use crate::error::{Error, Op, Subject};
use crate::mode::{LockMode, Wait};
use crate::options::LockOptions;
use crate::record::{HolderRecord, RecordState};

/// How long a hold lasts unless renewed, unless
/// [`ObjectLocks::lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = DEFAULT_TTL;

/// The longest key S3 and GCS take, in bytes.
const MAX_KEY: usize = 1024;

/// Named locks under one bucket prefix.
///
/// Creating one reads the environment and sends nothing; requests are made
/// when locks are taken, each on a thread of lockyard's blocking pool (no
/// async runtime is needed, under any executor or none).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::object::ObjectLocks;
///
/// let locks = ObjectLocks::from_url("s3://my-bucket/locks")?
///     .lease(Duration::from_secs(60))
///     .owner("nightly-report");
/// let lock = locks.lock_named("reports/2026-12-06")?;
/// assert_eq!(lock.name(), "reports/2026-12-06");
/// # Ok::<(), lockyard::Error>(())
/// ```
#[derive(Clone)]
pub struct ObjectLocks {
    space: Arc<Space>,
    options: LockOptions,
}

impl std::fmt::Debug for ObjectLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLocks")
            .field("at", &self.space.label)
            .field("lease", &self.space.ttl)
            .finish_non_exhaustive()
    }
}

impl ObjectLocks {
    /// Locks under `url`: `s3://bucket[/prefix]` (feature `s3`),
    /// `gs://bucket[/prefix]` (feature `gcs`) or
    /// `az://account/container[/prefix]` (feature `azure`). Where the store is and the
    /// credentials come from the environment, as each provider's own tools
    /// read them:
    ///
    /// - S3: `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (an
    ///   S3-compatible server, addressed path style), `AWS_REGION` or
    ///   `AWS_DEFAULT_REGION` (`us-east-1` if neither), `AWS_ACCESS_KEY_ID`,
    ///   `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, else the
    ///   `AWS_PROFILE` (or `default`) profile of the shared credentials
    ///   file.
    /// - GCS: `STORAGE_EMULATOR_HOST` (an emulator, no credentials), else
    ///   the service account key file `GOOGLE_APPLICATION_CREDENTIALS`
    ///   names, else the machine's metadata server.
    /// - Azure: `AZURE_STORAGE_CONNECTION_STRING`, else
    ///   `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY` (the account must
    ///   be the URL's).
    ///
    /// No secret ever appears in an error or `Debug` output.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) for a
    /// URL that names no bucket, a scheme this build does not support, an
    /// endpoint that is no URL, or credentials that cannot be used.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{object::ObjectLocks, ErrorKind};
    ///
    /// let locks = ObjectLocks::from_url("s3://my-bucket/team/locks")?;
    /// assert_eq!(locks.address(), locks.address()); // the endpoint's, the bucket, the prefix
    /// let e = ObjectLocks::from_url("s3://").unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<ObjectLocks, Error> {
        let invalid = |why: String| Error::invalid_config(&PathBuf::from(url), why);
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(
                "object storage URLs are s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix".to_owned(),
            ));
        };
        // Azure's URLs name the account, then the container.
        let at = if scheme == "az" {
            rest.find('/').map_or(rest.len(), |i| i + 1)
        } else {
            0
        };
        let (bucket, prefix) = match rest[at..].split_once('/') {
            Some((b, p)) => (&rest[..at + b.len()], p),
            None => (rest, ""),
        };
        if bucket.is_empty() || bucket.ends_with('/') || bucket.starts_with('/') {
            return Err(invalid("the URL names no bucket".to_owned()));
        }
        if scheme == "az" && !bucket.contains('/') {
            return Err(invalid(
                "an az:// URL names the account, then the container: az://account/container/prefix"
                    .to_owned(),
            ));
        }
        let prefix = prefix.trim_matches('/');
        let store = open_store(scheme, bucket).map_err(invalid)?;
        let mut label = format!("{scheme}://{bucket}");
        let mut key_prefix = String::new();
        if !prefix.is_empty() {
            label.push('/');
            label.push_str(prefix);
            key_prefix = format!("{prefix}/");
        }
        let space = Space {
            store,
            label,
            prefix: key_prefix,
            ttl: DEFAULT_TTL,
        };
        let mut options = LockOptions::new();
        options.lease_ttl = Some(DEFAULT_TTL);
        Ok(ObjectLocks {
            space: Arc::new(space),
            options,
        })
    }

    /// How long a hold lasts without renewal ([`DEFAULT_LEASE`] unless
    /// set). A holder renews with [`LockGuard::refresh`] or
    /// [`LockGuard::keep_alive`]; a hold not renewed for `ttl` may be taken
    /// over, and its guard then says so ([`LockGuard::still_held`] false,
    /// [`LockGuard::lost`] fires). A waiter takes over only after seeing
    /// the lock object unchanged for the TTL its holder wrote, by its own
    /// clock, so a dead holder's lock is free again after one to two TTLs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::object::ObjectLocks;
    ///
    /// let locks = ObjectLocks::from_url("s3://my-bucket")?.lease(Duration::from_secs(10));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn lease(self, ttl: Duration) -> ObjectLocks {
        let space = Space {
            store: Arc::clone(&self.space.store),
            label: self.space.label.clone(),
            prefix: self.space.prefix.clone(),
            ttl,
        };
        let mut options = self.options;
        options.lease_ttl = Some(ttl);
        ObjectLocks {
            space: Arc::new(space),
            options,
        }
    }

    /// The owner name written into holders' records.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::object::ObjectLocks;
    ///
    /// let locks = ObjectLocks::from_url("s3://my-bucket")?.owner("indexer");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> ObjectLocks {
        self.options = self.options.owner(owner);
        self
    }

    /// What errors call these locks: `s3://bucket/prefix`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::object::ObjectLocks;
    ///
    /// let locks = ObjectLocks::from_url("s3://my-bucket/locks/")?;
    /// assert_eq!(locks.address(), "s3://my-bucket/locks");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        &self.space.label
    }

    /// The lock named `name`: any non-empty string of up to about 300
    /// bytes (its object key, with the name percent-encoded, must fit in
    /// S3's 1,024). Sends nothing until it is first taken.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPath`](crate::ErrorKind::InvalidPath) for an
    /// empty name, or one whose key would be too long.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::object::ObjectLocks;
    ///
    /// let locks = ObjectLocks::from_url("s3://my-bucket")?;
    /// let lock = locks.lock_named("../odd names are fine")?;
    /// assert!(locks.lock_named("").is_err());
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn lock_named(&self, name: &str) -> Result<ObjectLock, Error> {
        let label = PathBuf::from(format!("{}#{name}", self.space.label));
        if name.is_empty() {
            return Err(Error::invalid_name(
                Subject::remote(&label),
                "a lock name is empty",
            ));
        }
        if self.space.key_of(name).len() > MAX_KEY {
            return Err(Error::invalid_name(
                Subject::remote(&label),
                "the lock name is too long for an object key",
            ));
        }
        let opener = ObjectOpener {
            space: Arc::clone(&self.space),
            name: name.to_owned(),
            options: self.options.clone(),
        };
        let config = EngineConfig {
            backoff: self.options.backoff,
            strategy: self.options.strategy,
            offload_open: false,
            open_may_wait: false,
            names_a_file: false,
        };
        let handle = Handle::new(label, config, opener);
        Ok(ObjectLock {
            inner: FileLock::from_handle(handle, self.options.clone()),
            space: Arc::clone(&self.space),
            name: name.to_owned(),
        })
    }

    /// Every lock under the prefix that is held now, with its holder's
    /// record, by name. Holds whose lease has lapsed by their own record's
    /// clock are listed as held until someone takes them over.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached or listed.
    ///
    /// # Blocking
    ///
    /// One request per 1,000 objects under the prefix, then one per lock
    /// object.
    pub fn list(&self) -> Result<Vec<LockInfo>, Error> {
        let label = PathBuf::from(&self.space.label);
        let io_err = |e| Error::io(Subject::remote(&label), Op::Inspect, e);
        let keys = self.space.store.list(&self.space.prefix).map_err(io_err)?;
        let mut out = Vec::new();
        for key in keys {
            let Some(name) = self.space.name_of(&key) else {
                continue;
            };
            // A body lockyard did not write is no lock of ours: skipped.
            let Ok(Some(record)) = self.space.record_at(&key) else {
                continue;
            };
            if record.state == RecordState::Held {
                let path = PathBuf::from(format!("{}#{name}", self.space.label));
                out.push(LockInfo::new(
                    name,
                    path,
                    LockState::HeldExclusive,
                    Some(record),
                ));
            }
        }
        Ok(out)
    }
}

/// The store of `bucket` for the URL scheme `scheme`, as the environment
/// configures it; `Err` says why not.
fn open_store(scheme: &str, bucket: &str) -> Result<Arc<dyn Store>, String> {
    match scheme {
        #[cfg(feature = "s3")]
        "s3" => {
            use crate::backend::object::s3::{S3Config, S3Store};
            Ok(Arc::new(S3Store::new(bucket, &S3Config::from_env())?))
        }
        #[cfg(feature = "gcs")]
        "gs" => {
            use crate::backend::object::gcs::{GcsConfig, GcsStore};
            Ok(Arc::new(GcsStore::new(bucket, GcsConfig::from_env()?)?))
        }
        #[cfg(not(feature = "s3"))]
        "s3" => Err("this build of lockyard has no s3:// support (feature `s3`)".to_owned()),
        #[cfg(not(feature = "gcs"))]
        "gs" => Err("this build of lockyard has no gs:// support (feature `gcs`)".to_owned()),
        #[cfg(feature = "azure")]
        "az" => {
            use crate::backend::object::azure::{AzureConfig, AzureStore};
            let (account, container) = bucket.split_once('/').unwrap_or((bucket, ""));
            let config = AzureConfig::from_env(account)?;
            Ok(Arc::new(AzureStore::new(container, config)?))
        }
        #[cfg(not(feature = "azure"))]
        "az" => Err("this build of lockyard has no az:// support (feature `azure`)".to_owned()),
        _ => Err(format!(
            "{scheme}:// is no object store: the URLs are s3://, gs:// and az://"
        )),
    }
}

/// One named lock in object storage, with [`FileLock`]'s acquisition API:
/// the same futures (cancel-safe, FIFO within the process), `try_`,
/// timeouts, blocking calls and guards ([`LockGuard`]: `token()`,
/// `still_held()`, `lost()`, `keep_alive()`, `unlock()`). Exclusive only:
/// a shared request is an error of kind
/// [`ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly), as for soft locks.
///
/// A waiter reads the lock object again and again, 10 ms after the first
/// look and then twice as long each time up to 500 ms (with jitter), on a
/// blocking-pool thread; within one process only the first waiter does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::{object::ObjectLocks, ErrorKind};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(url) = std::env::var("LOCKYARD_TEST_S3") else {
/// #     eprintln!("skipped: LOCKYARD_TEST_S3 names no bucket");
/// #     return Ok(());
/// # };
/// # let url = format!("{url}/doc-lock-{}", std::process::id());
/// # futures_lite::future::block_on(async {
/// let lock = ObjectLocks::from_url(&url)?.lock_named("doc/objectlock")?;
/// let held = lock.lock().await?;
/// let first = held.token().expect("every hold has a token");
/// let e = lock.lock_timeout(Duration::from_millis(50)).await.unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::TimedOut);
/// held.unlock()?;
/// let again = lock.lock().await?;
/// assert!(again.token() > Some(first));
/// again.unlock()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct ObjectLock {
    inner: FileLock,
    space: Arc<Space>,
    name: String,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLock")
            .field("at", &self.space.label)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ObjectLock {
    /// The lock's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::object::ObjectLocks;
    ///
    /// let lock = ObjectLocks::from_url("s3://my-bucket")?.lock_named("jobs/nightly")?;
    /// assert_eq!(lock.name(), "jobs/nightly");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What errors call this lock: `s3://bucket/prefix#name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::object::ObjectLocks;
    ///
    /// let lock = ObjectLocks::from_url("s3://my-bucket/locks")?.lock_named("jobs/nightly")?;
    /// assert_eq!(lock.address(), "s3://my-bucket/locks#jobs/nightly");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        self.inner.path().to_str().unwrap_or(&self.name)
    }

    /// Acquires the lock, waiting as long as it takes.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back what it had: its place
    /// in the queue, or a lock its last request took (released in the
    /// background once that request ends).
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, refuses the credentials, or the
    /// lock object is not lockyard's; the error names the lock.
    pub fn lock(&self) -> Acquire {
        self.inner.lock()
    }

    /// Exclusive only: an error of kind
    /// [`ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly).
    ///
    /// # Cancel safety
    ///
    /// Nothing to give back.
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn lock_shared(&self) -> Acquire {
        self.inner.lock_shared()
    }

    /// [`lock`](Self::lock), giving up after `timeout`
    /// ([`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut)), requests in
    /// flight included.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock), and `TimedOut`.
    pub fn lock_timeout(&self, timeout: Duration) -> Acquire {
        self.inner.lock_timeout(timeout)
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Cancel safety
    ///
    /// Nothing to give back.
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn lock_shared_timeout(&self, timeout: Duration) -> Acquire {
        self.inner.lock_shared_timeout(timeout)
    }

    /// Acquires in `mode` (exclusive only), waiting as `wait` says.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout),
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) for
    /// [`Wait::TryOnce`], `ExclusiveOnly` for a shared mode.
    pub fn acquire(&self, mode: LockMode, wait: Wait) -> Acquire {
        self.inner.acquire(mode, wait)
    }

    /// One attempt.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) if another
    /// process holds it (the error's holder says who), or a request error.
    ///
    /// # Blocking
    ///
    /// Two requests to the store on this thread (a read, then a
    /// conditional write): in async code, call
    /// [`try_lock_async`](Self::try_lock_async).
    pub fn try_lock(&self) -> Result<LockGuard, Error> {
        self.inner.try_lock()
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn try_lock_shared(&self) -> Result<LockGuard, Error> {
        self.inner.try_lock_shared()
    }

    /// One attempt as a future: its requests are made on the blocking
    /// pool.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while its attempt is under way, the attempt's
    /// thread releases the lock if it took it.
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_async(&self) -> Acquire {
        self.inner.try_lock_async()
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Cancel safety
    ///
    /// Nothing to give back.
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn try_lock_shared_async(&self) -> Acquire {
        self.inner.try_lock_shared_async()
    }

    /// Acquires the lock, blocking this thread until it is granted.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted.
    pub fn lock_blocking(&self) -> Result<LockGuard, Error> {
        self.inner.lock_blocking()
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn lock_shared_blocking(&self) -> Result<LockGuard, Error> {
        self.inner.lock_shared_blocking()
    }

    /// Acquires the lock, blocking this thread for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when `timeout`
    /// passes first; otherwise as for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted or `timeout` passes.
    pub fn lock_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.inner.lock_blocking_timeout(timeout)
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn lock_shared_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.inner.lock_shared_blocking_timeout(timeout)
    }

    /// Acquires in `mode` (exclusive only), blocking this thread as `wait`
    /// allows.
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted or `wait` runs out.
    pub fn acquire_blocking(&self, mode: LockMode, wait: Wait) -> Result<LockGuard, Error> {
        self.inner.acquire_blocking(mode, wait)
    }

    /// Runs `f` with the lock held (blocking until it is), and releases it
    /// after, even if `f` panics. `f` must finish within the lease, or
    /// renew it: see [`ObjectLocks::lease`].
    ///
    /// # Errors
    ///
    /// As for [`lock_blocking`](Self::lock_blocking); `f`'s own result is
    /// returned inside `Ok`.
    ///
    /// # Blocking
    ///
    /// Until the lock is granted, then for as long as `f` runs.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        let guard = self.lock_blocking()?;
        let value = f();
        // Unlocked, not dropped: a dropped guard is freed in the
        // background, which a process about to exit may never see.
        guard.unlock()?;
        Ok(value)
    }

    /// Runs the future `f` makes with the lock held.
    ///
    /// # Cancel safety
    ///
    /// Dropping it releases the lock (or gives up the wait).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    pub async fn with_lock_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        let guard = self.lock().await?;
        let value = f().await;
        // As in `with_lock`; the request runs on the blocking pool.
        blocking::unblock(move || guard.unlock()).await?;
        Ok(value)
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub fn with_lock_shared<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        self.inner.with_lock_shared(f)
    }

    /// Exclusive only: see [`lock_shared`](Self::lock_shared).
    ///
    /// # Cancel safety
    ///
    /// Nothing to give back.
    ///
    /// # Errors
    ///
    /// Always `ExclusiveOnly`.
    pub async fn with_lock_shared_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        self.inner.with_lock_shared_async(f).await
    }

    /// The store and prefix this lock lives in.
    pub(crate) fn space(&self) -> &Space {
        &self.space
    }

    /// How many tasks or threads of this process wait for this lock.
    pub fn waiters(&self) -> usize {
        self.inner.waiters()
    }

    /// Who holds the lock, from its lock object: PID, host, owner, token,
    /// lease and last renewal. `None` when it is free.
    ///
    /// # Errors
    ///
    /// When the store cannot be reached, or the object is not lockyard's.
    ///
    /// # Blocking
    ///
    /// One request to the store.
    pub fn holder(&self) -> Result<Option<HolderRecord>, Error> {
        let key = self.space.key_of(&self.name);
        let record = self
            .space
            .record_at(&key)
            .map_err(|e| Error::io(Subject::remote(self.inner.path()), Op::Inspect, e))?;
        Ok(record.filter(|r| r.state == RecordState::Held))
    }

    /// Whether the lock is free or held, and the holder's record.
    ///
    /// # Errors
    ///
    /// As for [`holder`](Self::holder).
    ///
    /// # Blocking
    ///
    /// One request to the store.
    pub fn inspect(&self) -> Result<LockInfo, Error> {
        let holder = self.holder()?;
        let state = if holder.is_some() {
            LockState::HeldExclusive
        } else {
            LockState::Free
        };
        let path = self.inner.path().to_path_buf();
        Ok(LockInfo::new(self.name.clone(), path, state, holder))
    }
}
