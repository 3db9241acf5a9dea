//! The `FileLock` handle: a lock path, its options, and the descriptor this
//! process keeps open for it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Traits;
use crate::backend::host;
use crate::backend::memory::MemoryOpener;
use crate::backend::record_io;
use crate::backend::soft::{sidecar, stale};
use crate::backend::strict;
use crate::backend::FileOpener;
use crate::engine::{Config, Handle};
use crate::error::{Error, Op};
use crate::options::LockOptions;
use crate::record::HolderRecord;
use crate::sys;

/// A lock file: exclusive or shared, awaited in any executor or taken from
/// blocking code.
///
/// A `FileLock` is cheap to create and to clone (clones share everything);
/// creating one touches no file. The first acquisition opens the lock file,
/// creating it if missing (its directory too, with
/// [`LockOptions::create_parent`]), and the handle keeps that descriptor
/// for later acquisitions.
///
/// Locks follow `flock(2)` semantics on Unix and `LockFileEx` on Windows,
/// and they exclude *within* a process exactly as *between* processes: two
/// `FileLock`s for the same file (even through different paths) in one
/// process never both hold it exclusively.
///
/// # Examples
///
/// ```
/// use lockyard::FileLock;
///
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let lock = FileLock::for_file(dir.path().join("state.json"));
/// assert!(lock.path().ends_with("state.json.lock"));
///
/// let guard = lock.lock().await?;        // exclusive
/// // ... read, modify and write state.json ...
/// guard.unlock()?;                       // or just drop it
///
/// let a = lock.lock_shared().await?;     // shared locks coexist
/// let b = lock.try_lock_shared()?;
/// # drop((a, b));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Locking twice
///
/// A `FileLock` is not reentrant: a second exclusive acquisition in the
/// same process waits for the first guard like any other waiter, and
/// `lock_blocking` on a thread that still holds the guard waits until its
/// deadline (forever with [`Wait::Forever`](crate::Wait::Forever)). lockyard cannot tell this
/// apart from a legitimate wait, because guards are `Send` and the one
/// holding the lock may be about to be released by another thread or task.
/// Avoid it with [`try_lock`](Self::try_lock) or a timeout, with
/// [`ReentrantLock`](crate::ReentrantLock) in blocking code, or, in async
/// code, by passing `&LockGuard` to the code that needs the lock held.
#[derive(Clone)]
pub struct FileLock {
    handle: Arc<Handle>,
    options: Arc<LockOptions>,
    traits: Traits,
}

// A panic while the lock is in use leaves nothing broken behind it: the
// engine's mutexes are never held across user code and recover from
// poisoning, and a panicking `on_stale` hook (the one user code the engine
// calls) ends its attempt like any failed attempt before the panic goes
// on (`tests/soft_processes.rs`, `a_panicking_on_stale_hook_leaves_the_lock_usable`).
impl std::panic::UnwindSafe for FileLock {}
impl std::panic::RefUnwindSafe for FileLock {}

impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock")
            .field("path", &self.handle.path)
            .field("options", &self.options)
            .finish()
    }
}

impl FileLock {
    /// A lock on the file at `path`, with default options.
    ///
    /// `path` is usually a lock file of its own (see
    /// [`for_file`](Self::for_file)), which lockyard creates on the first
    /// acquisition. It may also be any existing file, one that holds data:
    /// **locking never changes such a file** (not its bytes, length, times
    /// or existence). lockyard writes holder records only into a file it
    /// created, or one that begins with a complete strict holder record;
    /// every other file, an existing empty one included, is locked as it
    /// is. Its guards then carry no record and no fencing token
    /// ([`LockGuard::token`](crate::LockGuard::token) is `None`), [`holder`](Self::holder) is
    /// `None`, and [`state`](Self::state) reports what the kernel says.
    /// Such a file is opened read-only (a locked script can still be
    /// executed), and [`remove_on_release`](LockOptions::remove_on_release)
    /// leaves it in place. The guide's [Locking a file that holds
    /// data](crate::guide::semantics#locking-a-file-that-holds-data) has
    /// the details, NFSv4 included.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = dir.path().join("config.json");
    /// std::fs::write(&config, br#"{"retries": 3}"#)?;
    ///
    /// let guard = FileLock::new(&config).lock_blocking()?;
    /// assert_eq!(guard.token(), None); // a data file: no record, no token
    /// drop(guard);
    /// assert_eq!(std::fs::read(&config)?, br#"{"retries": 3}"#);
    ///
    /// // A lock file lockyard creates carries records and tokens.
    /// let lock = FileLock::new(dir.path().join("config.json.lock"));
    /// assert!(lock.try_lock()?.token().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_options(path, LockOptions::default())
    }

    /// A lock guarding the data file `data`: the lock file is `data` with
    /// `.lock` appended to its name (`state.json` → `state.json.lock`).
    ///
    /// A path that names no file (`""`, `.`, `..`, `/`) gives a lock that
    /// every use refuses with
    /// [`ErrorKind::InvalidPath`](crate::ErrorKind::InvalidPath), as
    /// [`new`](Self::new) refuses such a path, instead of locking some
    /// other file (`./.lock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock};
    ///
    /// let lock = FileLock::for_file("data/state.json");
    /// assert_eq!(lock.path(), std::path::Path::new("data/state.json.lock"));
    ///
    /// let nothing = FileLock::for_file("..");
    /// assert_eq!(nothing.try_lock().unwrap_err().kind(), ErrorKind::InvalidPath);
    /// ```
    #[must_use]
    pub fn for_file(data: impl AsRef<Path>) -> Self {
        Self::new(lock_path_for(data.as_ref()))
    }

    /// A lock guarding the data file `data`, with its lock file kept in the
    /// separate directory `lock_dir` (`lock_dir/state.json.lock`). Only the
    /// data file's name is used: data files with the same name in different
    /// directories share a lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let lock = FileLock::for_file_in("/run/myapp/locks", "/srv/data/state.json");
    /// assert_eq!(lock.path(), std::path::Path::new("/run/myapp/locks/state.json.lock"));
    /// ```
    #[must_use]
    pub fn for_file_in(lock_dir: impl AsRef<Path>, data: impl AsRef<Path>) -> Self {
        let data = data.as_ref();
        match data.file_name() {
            Some(name) => Self::new(lock_dir.as_ref().join(lock_path_for(Path::new(name)))),
            // No data file: refused at the first use, as `for_file` does.
            None => Self::new(lock_path_for(data)),
        }
    }

    /// A lock on the file at `path` with the given options. Nothing is opened
    /// or created until the first acquisition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let options = LockOptions::new().owner("indexer").lease(Duration::from_secs(30));
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), options);
    /// let guard = lock.try_lock()?;
    /// assert_eq!(guard.record().and_then(|r| r.owner()), Some("indexer"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_options(path: impl Into<PathBuf>, options: LockOptions) -> Self {
        let path = path.into();
        let config = Config {
            backoff: options.backoff,
            strategy: options.strategy,
            offload_open: options.offload_open,
            open_may_wait: false,
            names_a_file: true,
        };
        let handle = if options.in_memory {
            let opener = MemoryOpener {
                name: path.to_string_lossy().into_owned(),
                options: options.clone(),
            };
            Handle::new(path, config, opener)
        } else {
            let opener = FileOpener::new(path.clone(), options.clone());
            Handle::new(path, config, opener)
        };
        FileLock {
            handle: Arc::new(handle),
            traits: Traits::of(&options),
            options: Arc::new(options),
        }
    }

    /// A lock driven through `handle` (another backend's), with `options`
    /// for its guards.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn from_handle(handle: Handle, options: LockOptions) -> Self {
        FileLock {
            handle: Arc::new(handle),
            traits: Traits::of(&options),
            options: Arc::new(options),
        }
    }

    /// Whether nothing but this handle uses its state: no clone, no guard,
    /// no acquisition in progress.
    pub(crate) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.handle) == 1
    }

    /// The lock file's path (for a soft lock or lease, its sidecar's).
    ///
    /// # Examples
    ///
    /// ```
    /// let lock = lockyard::FileLock::new("/tmp/job.lock");
    /// assert_eq!(lock.path(), std::path::Path::new("/tmp/job.lock"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    /// The options this lock was created with.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockKind, LockOptions};
    ///
    /// let lock = FileLock::with_options("job.lock", LockOptions::new().soft());
    /// assert_eq!(lock.options().get_kind(), LockKind::Soft);
    /// ```
    pub fn options(&self) -> &LockOptions {
        &self.options
    }

    /// How many tasks or threads of this process are waiting for this lock
    /// file right now (through any handle). Zero before the first
    /// acquisition.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// let held = lock.lock().await?;
    /// let mut waiting = Box::pin(lock.lock());
    /// assert!(futures_lite::future::poll_once(&mut waiting).await.is_none());
    /// assert_eq!(lock.waiters(), 1);
    /// drop(held);
    /// drop(waiting.await?);
    /// assert_eq!(lock.waiters(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn waiters(&self) -> usize {
        self.handle.cached().map_or(0, |e| e.queued())
    }

    /// Who holds the lock now, from its holder record: `None` if nobody
    /// does (the record says released, there is none, or its holder is
    /// provably dead), and for a soft lock whose path holds a file that is
    /// not a lockyard lock file, which has no holder to name but keeps the
    /// lock busy: [`state`](Self::state) tells the two apart
    /// ([`LockState::Foreign`](crate::LockState::Foreign)). A holder on another machine cannot be checked and
    /// is reported as long as its record says it holds the lock.
    ///
    /// Reading never creates or locks anything.
    ///
    /// # Errors
    ///
    /// When the path cannot be read (permission, not a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("indexer"));
    /// assert!(lock.holder()?.is_none());
    /// let guard = lock.try_lock()?;
    /// let holder = lock.holder()?.expect("held");
    /// assert_eq!(holder.pid(), std::process::id());
    /// assert_eq!(holder.owner(), Some("indexer"));
    /// assert_eq!(Some(holder.token()), guard.token());
    /// drop(guard);
    /// assert!(lock.holder()?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self) -> Result<Option<HolderRecord>, Error> {
        let path = self.path();
        crate::backend::open::check_path(path)?;
        let io_err = |e| Error::io(path, Op::Inspect, e);
        if self.is_strict() {
            // A released holder's record stays in the file: only the
            // kernel says whether the lock is held, and how.
            return Ok(match super::inspect::describe(self)? {
                (crate::LockState::HeldExclusive, record) => record,
                _ => None,
            });
        }
        let record = match sidecar::inspect(path).map_err(io_err)? {
            None => return Ok(None),
            Some(found) if stale::judge(&found.evidence(), &self.options).is_some() => {
                return Ok(None)
            }
            Some(found) => found.record,
        };
        Ok(record.filter(|r| r.is_held() && !host::me().provably_dead(r)))
    }

    /// [`holder`](Self::holder) of a strict lock whose file is already
    /// open as `file`.
    pub(crate) fn holder_in(&self, file: &File) -> Result<Option<HolderRecord>, Error> {
        let record = record_io::read(file)
            .map_err(|e| Error::io(self.handle.subject(), Op::Inspect, e))?
            .record();
        Ok(record.and_then(|r| strict::current_holder(&self.handle.path, r)))
    }

    /// Who holds the file locked, as the kernel's lock table says: every
    /// process holding an OS lock on it, lockyard or not, with or without
    /// a record (Linux, from `/proc/locks`; empty elsewhere). This is how
    /// the holder of a file that holds data (no record: see
    /// [`new`](Self::new)) is found. Lists this process's own locks too
    /// ([`OsHolder::is_this_process`](crate::OsHolder::is_this_process)).
    ///
    /// Reading never creates or locks anything.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::FileLock;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.jsonl");
    /// std::fs::write(&data, "")?;
    /// let lock = FileLock::new(&data);
    /// let guard = lock.try_lock()?;
    /// if cfg!(target_os = "linux") {
    ///     let holders = lock.os_holders();
    ///     assert!(holders.iter().any(|h| h.is_this_process() && h.is_exclusive()));
    /// }
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn os_holders(&self) -> Vec<crate::OsHolder> {
        sys::os_holders::of(&self.handle.path)
    }

    /// Whether the lock is free, held shared, held exclusively, or (soft
    /// locks and leases) stale, right now, without waiting and without
    /// creating anything.
    ///
    /// For an OS lock the kernel answers: a non-blocking exclusive, then
    /// shared, lock on a fresh descriptor, released at once. Locks taken
    /// by any program (`flock(1)`, std's `File::lock`) count, and so do
    /// guards of this process. During those few microseconds a `try_lock`
    /// elsewhere may find the lock busy.
    ///
    /// # Errors
    ///
    /// When the path cannot be read (permission, not a regular file).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("job.lock"));
    /// assert_eq!(lock.state()?, LockState::Free);
    /// let reading = lock.try_lock_shared()?;
    /// assert_eq!(lock.state()?, LockState::HeldShared);
    /// drop(reading);
    /// let _writing = lock.try_lock()?;
    /// assert_eq!(lock.state()?, LockState::HeldExclusive);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> Result<crate::LockState, Error> {
        super::inspect::describe(self).map(|(state, _)| state)
    }

    /// [`state`](Self::state) and the holder record together: the current
    /// holder's, a stale holder's, or for a free lock the last one's.
    /// [`LockInfo::name`](crate::LockInfo::name) is the lock file's name.
    ///
    /// # Errors
    ///
    /// As for [`state`](Self::state).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("indexer"));
    /// let _guard = lock.try_lock()?;
    /// let info = lock.inspect()?;
    /// assert_eq!(info.state(), LockState::HeldExclusive);
    /// assert_eq!(info.holder().and_then(|h| h.owner()), Some("indexer"));
    /// assert_eq!(info.name(), "job.lock");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inspect(&self) -> Result<crate::LockInfo, Error> {
        let (state, holder) = super::inspect::describe(self)?;
        let name = self
            .handle
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(crate::LockInfo::new(
            name,
            self.handle.path.clone(),
            state,
            holder,
        ))
    }

    /// Whether this is an OS lock (as opposed to a soft lock or lease).
    pub(crate) fn is_strict(&self) -> bool {
        self.options.kind == crate::LockKind::Strict
    }

    /// The engine's handle, for the acquisition methods (`acquiring.rs`).
    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    /// What guards of this lock need of its options.
    pub(crate) fn traits(&self) -> Traits {
        self.traits
    }
}

/// `data` with `.lock` appended to its file name.
fn lock_path_for(data: &Path) -> PathBuf {
    // `""`, `.`, `..` and `/` name no data file, and appending `.lock`
    // would lock some other file (`./.lock`, `./...lock`): the path is kept
    // as it is, which every use refuses as `InvalidPath`.
    let Some(name) = data.file_name() else {
        return data.to_path_buf();
    };
    let mut name = name.to_os_string();
    name.push(".lock");
    // Beside the data file, also when its path ends in a separator.
    data.with_file_name(name)
}
