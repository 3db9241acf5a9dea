//! Named locks in one directory.
//!
//! # Names
//! A lock name is any non-empty string; it is encoded reversibly into a
//! file name `<encoded>.lock`:
//! - ASCII lower-case letters, digits, `-` and `_` stay as they are, and so
//!   does `.` except as the first character;
//! - every other byte of the UTF-8 name becomes `%XX` (upper-case hex),
//!   including `%` itself, `/`, `\`, NUL, control characters, spaces,
//!   a leading `.` (so `.` and `..` cannot be names of directories) and
//!   upper-case letters (so names differing only in case never share a
//!   file on case-insensitive filesystems);
//! - a name whose encoding would be a reserved device name on Windows
//!   (`con`, `nul`, `com1`, ...) gets its first letter escaped.
//!
//! Since `%` is always escaped, decoding is unambiguous and two different
//! names never map to the same file. An encoded name longer than
//! [`MAX_ENCODED_NAME`](crate::patterns::names::MAX_ENCODED_NAME) bytes is refused (file names are limited to 255
//! bytes on most filesystems).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::api::{Acquire, FileLock, LockGuard, LockInfo};
use crate::backend::clean::{clean_stale, CleanReport};
use crate::error::Error;
use crate::mode::{LockMode, Wait};
use crate::options::LockOptions;

use super::names::{decode_lock_name, encode_lock_name};

/// A directory of named locks, with per-name default timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::{LockDir, Wait};
///
/// # futures_lite::future::block_on(async {
/// let tmp = tempfile::tempdir()?;
/// let locks = LockDir::new(tmp.path().join("locks"))
///     .default_wait(Wait::For(Duration::from_secs(10)))
///     .wait_for("registry", Wait::For(Duration::from_secs(30)))
///     .wait_for("toolchain", Wait::For(Duration::from_secs(60)));
///
/// let registry = locks.lock("registry").await?;
/// let project = locks.lock_shared("project /src/app").await?;
/// let listed = locks.list()?;
/// assert_eq!(listed.len(), 2);
/// # drop((registry, project));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct LockDir {
    dir: PathBuf,
    options: LockOptions,
    default_wait: Wait,
    waits: HashMap<String, Wait>,
    // One `FileLock` per name in use: a handle keeps its descriptor and
    // registry entry, so a repeated acquisition costs the two lock calls
    // rather than open + fstat + lock + unlock + close.
    handles: Arc<Mutex<Handles>>,
}

// As for `FileLock`, whose options it shares.
impl std::panic::UnwindSafe for LockDir {}
impl std::panic::RefUnwindSafe for LockDir {}

/// The directory's handles, bounded: past [`Handles::KEEP`] names, handles
/// that nothing uses (no guard, no waiter, no clone outside) are dropped,
/// closing their descriptors, so a daemon locking a name per request does
/// not collect a descriptor per name.
#[derive(Debug, Default)]
struct Handles {
    by_name: HashMap<String, FileLock>,
    /// Prune when this many are kept (grows while all are in use).
    prune_at: usize,
}

impl Handles {
    /// Names kept without pruning.
    const KEEP: usize = 64;

    fn get_or_insert(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Result<FileLock, Error>,
    ) -> Result<FileLock, Error> {
        if let Some(lock) = self.by_name.get(name) {
            return Ok(lock.clone());
        }
        let lock = make()?;
        if self.by_name.len() >= self.prune_at.max(Self::KEEP) {
            self.by_name.retain(|_, lock| !lock.is_idle());
            self.prune_at = self.by_name.len() * 2;
        }
        self.by_name.insert(name.to_string(), lock.clone());
        Ok(lock)
    }
}

impl LockDir {
    /// Named locks in `dir`, with default options and waiting forever
    /// unless told otherwise. The directory is the `LockDir`'s own: it is
    /// created, with missing parents, on the first acquisition, whatever
    /// [`LockOptions::create_parent`] says.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path().join("locks"));
    /// let guard = locks.try_lock("deploy/eu-west")?;   // any name, encoded
    /// assert!(locks.path_of("deploy/eu-west")?.starts_with(locks.path()));
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LockDir {
            dir: dir.into(),
            options: LockOptions::default(),
            default_wait: Wait::Forever,
            waits: HashMap::new(),
            handles: Arc::default(),
        }
    }

    /// Options for every lock of the directory (a builder method; the
    /// getter is [`options`](Self::options), as for [`FileLock`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockDir, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path()).with_options(LockOptions::new().owner("api-3"));
    /// let guard = locks.try_lock("invoice-42")?;
    /// assert_eq!(guard.record().and_then(|r| r.owner()), Some("api-3"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn with_options(mut self, options: LockOptions) -> Self {
        self.options = options;
        // Handles made with the old options must not be reused.
        self.handles = Arc::default();
        self
    }

    /// The options every lock of the directory is taken with.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockDir, LockKind, LockOptions};
    ///
    /// let locks = LockDir::new("locks").with_options(LockOptions::new().soft());
    /// assert_eq!(locks.options().get_kind(), LockKind::Soft);
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.options
    }

    /// How long `lock`/`lock_shared` wait for names without their own
    /// setting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{LockDir, Wait};
    ///
    /// let locks = LockDir::new("locks").default_wait(Wait::For(Duration::from_secs(10)));
    /// assert_eq!(locks.wait_of("anything"), Wait::For(Duration::from_secs(10)));
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn default_wait(mut self, wait: Wait) -> Self {
        self.default_wait = wait;
        self
    }

    /// How long `lock`/`lock_shared` wait for `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockDir, Wait};
    ///
    /// let locks = LockDir::new("locks").wait_for("nightly", Wait::TryOnce);
    /// assert_eq!(locks.wait_of("nightly"), Wait::TryOnce);
    /// assert_eq!(locks.wait_of("other"), Wait::Forever);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn wait_for(mut self, name: impl Into<String>, wait: Wait) -> Self {
        self.waits.insert(name.into(), wait);
        self
    }

    /// The directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lockyard::LockDir::new("/run/app/locks");
    /// assert_eq!(locks.path(), std::path::Path::new("/run/app/locks"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The wait that applies to `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockDir, Wait};
    ///
    /// assert_eq!(LockDir::new("locks").wait_of("x"), Wait::Forever);
    /// ```
    pub fn wait_of(&self, name: &str) -> Wait {
        self.waits.get(name).copied().unwrap_or(self.default_wait)
    }

    /// The lock file path for `name`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPath`](crate::ErrorKind::InvalidPath) for an
    /// empty or over-long name.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, LockDir};
    ///
    /// let locks = LockDir::new("locks");
    /// assert_eq!(locks.path_of("a/b")?, std::path::Path::new("locks/a%2Fb.lock"));
    /// assert_eq!(locks.path_of("").unwrap_err().kind(), ErrorKind::InvalidPath);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path_of(&self, name: &str) -> Result<PathBuf, Error> {
        let encoded = encode_lock_name(name).map_err(|why| {
            // The path alone would show the directory: say the name.
            Error::invalid_name(&self.dir.join(name), format!("the name {name:?}: {why}"))
        })?;
        Ok(self.dir.join(format!("{encoded}.lock")))
    }

    /// The [`FileLock`] for `name`, for everything else it offers. The
    /// directory keeps one per name, so repeated acquisitions reuse its
    /// open descriptor; past 64 names, those no guard, waiter or clone
    /// uses are let go (their descriptors closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path().join("locks"));
    /// let lock = locks.handle("reports")?;
    /// let _guard = lock.try_lock()?;
    /// assert_eq!(lock.holder()?.map(|h| h.pid()), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self, name: &str) -> Result<FileLock, Error> {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        handles.get_or_insert(name, || {
            // The directory is the LockDir's own: made on first use, whatever
            // `create_parent` says for single lock files.
            Ok(FileLock::with_options(
                self.path_of(name)?,
                self.options.clone().create_parent(true),
            ))
        })
    }

    /// Locks `name` exclusively, waiting as configured for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let guard = locks.lock("tenant-7").await?;
    /// assert!(guard.is_exclusive());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`FileLock::lock`]: dropping the future gives back everything it had.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPath`](crate::ErrorKind::InvalidPath) for an empty
    /// or over-long name; otherwise as for [`FileLock::lock`].
    pub fn lock(&self, name: &str) -> Acquire {
        self.acquire(name, LockMode::Exclusive, self.wait_of(name))
    }

    /// Locks `name` shared, waiting as configured for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let a = locks.lock_shared("catalog").await?;
    /// let b = locks.lock_shared("catalog").await?;
    /// # drop((a, b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`FileLock::lock`]: dropping the future gives back everything it had.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    pub fn lock_shared(&self, name: &str) -> Acquire {
        self.acquire(name, LockMode::Shared, self.wait_of(name))
    }

    /// Locks `name` in `mode`, waiting as `wait` says for this call (the
    /// name's configured wait does not apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{ErrorKind, LockDir, LockMode, Wait};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let _held = locks.lock("report").await?;
    /// let e = locks.acquire("report", LockMode::Shared, Wait::For(Duration::from_millis(20))).await.unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::TimedOut);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`FileLock::lock`]: dropping the future gives back everything it had.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock), and
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) or
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) as `wait` says.
    pub fn acquire(&self, name: &str, mode: LockMode, wait: Wait) -> Acquire {
        match self.handle(name) {
            Ok(lock) => lock.acquire(mode, wait),
            Err(e) => Acquire::failed(e),
        }
    }

    /// [`acquire`](Self::acquire) from blocking code.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, LockDir, LockMode, Wait};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let reader = locks.acquire_blocking("catalog", LockMode::Shared, Wait::TryOnce)?;
    /// let e = locks.acquire_blocking("catalog", LockMode::Exclusive, Wait::TryOnce).unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::WouldBlock);
    /// # drop(reader);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread for as long as `wait` allows.
    pub fn acquire_blocking(
        &self,
        name: &str,
        mode: LockMode,
        wait: Wait,
    ) -> Result<LockGuard, Error> {
        self.handle(name)?.acquire_blocking(mode, wait)
    }

    /// Takes `name` exclusively if possible right now.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, LockDir};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let _g = locks.try_lock("job")?;
    /// assert_eq!(locks.try_lock("job").unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) if held;
    /// otherwise as for [`lock`](Self::lock).
    pub fn try_lock(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle(name)?.try_lock()
    }

    /// Takes `name` shared if possible right now.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, LockDir};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path());
    /// let (a, b) = (locks.try_lock_shared("catalog")?, locks.try_lock_shared("catalog")?);
    /// assert_eq!(locks.try_lock("catalog").unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # drop((a, b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) if held
    /// exclusively; otherwise as for [`lock`](Self::lock).
    pub fn try_lock_shared(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle(name)?.try_lock_shared()
    }

    /// Locks `name` exclusively from blocking code, waiting as configured.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let locks = lockyard::LockDir::new(dir.path());
    /// let guard = locks.lock_blocking("migrations")?;
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread for as long as the name's wait allows.
    pub fn lock_blocking(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle(name)?
            .acquire_blocking(LockMode::Exclusive, self.wait_of(name))
    }

    /// Locks `name` shared from blocking code, waiting as configured.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let locks = lockyard::LockDir::new(dir.path());
    /// let reader = locks.lock_shared_blocking("catalog")?;
    /// assert!(reader.is_shared());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread for as long as the name's wait allows.
    pub fn lock_shared_blocking(&self, name: &str) -> Result<LockGuard, Error> {
        self.handle(name)?
            .acquire_blocking(LockMode::Shared, self.wait_of(name))
    }

    /// Every lock in the directory (files named by [`encode_lock_name`]
    /// with `.lock`), sorted by name, with its state and holder record
    /// (see [`FileLock::state`] for how the state is found). A missing
    /// directory has no locks.
    ///
    /// # Errors
    ///
    /// When the directory or one of its lock files cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path().join("locks"));
    /// let _g = locks.try_lock("b")?;
    /// drop(locks.try_lock("a")?);
    /// let names: Vec<_> = locks.list()?.iter().map(|i| i.name().to_string()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self) -> Result<Vec<LockInfo>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, crate::error::Op::Inspect, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_suffix(".lock").and_then(decode_lock_name) else {
                continue;
            };
            let path = entry.path();
            let lock = FileLock::with_options(&path, self.options.clone());
            out.push(lock.inspect()?.named(name));
        }
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out)
    }

    /// [`clean_stale`] over the whole directory, with its options.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockDir;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let locks = LockDir::new(dir.path().join("locks"));
    /// drop(locks.try_lock("old")?);
    /// let _busy = locks.try_lock("busy")?;
    /// let report = locks.clean_stale()?;
    /// assert_eq!(report.removed().len(), 1);
    /// assert!(locks.list()?.iter().all(|i| i.name() == "busy"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the directory cannot be read.
    ///
    /// # Blocking
    ///
    /// Opens, locks and removes files: call it where blocking is fine.
    pub fn clean_stale(&self) -> Result<CleanReport, Error> {
        clean_stale(&self.dir, &self.options)
    }
}
