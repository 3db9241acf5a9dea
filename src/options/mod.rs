//! What a caller can choose for a lock: how it waits for other processes,
//! what kind of lock it is, and how its files are handled.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Backoff;
use crate::mode::WaitStrategy;
use crate::record::{LockKind, StaleLock};

mod getters;
mod kinds;

/// Options for a [`FileLock`](crate::FileLock), built by chaining.
///
/// # The kind of lock
///
/// A lock is an OS lock (strict, the default) unless [`soft`](Self::soft)
/// or [`lease`](Self::lease) says otherwise. Each call adds a requirement
/// and none undoes another's, so the order of the calls never matters:
///
/// | calls, in any order | kind | record's TTL |
/// |---|---|---|
/// | neither | [`Strict`](crate::LockKind::Strict) | none |
/// | `soft()` | [`Soft`](crate::LockKind::Soft) | none |
/// | `lease(ttl)` | [`Lease`](crate::LockKind::Lease) | `ttl` |
/// | `soft()` and `lease(ttl)` | [`Lease`](crate::LockKind::Lease) (a lease is a soft lock) | `ttl` |
///
/// [`stale_after`](Self::stale_after) and the other staleness options keep
/// their values whatever the kind and whenever they are called: they
/// govern soft locks and leases, and a strict lock, which the kernel
/// releases with its holder, never needs them.
///
/// ```
/// use std::time::Duration;
/// use lockyard::{LockKind, LockOptions};
///
/// let ttl = Duration::from_secs(30);
/// let a = LockOptions::new().lease(ttl).soft();
/// let b = LockOptions::new().soft().lease(ttl);
/// assert_eq!(a, b);
/// assert_eq!(a.get_kind(), LockKind::Lease);
/// assert_eq!(a.get_lease(), Some(ttl));
/// ```
///
/// # Examples
///
/// ```
/// use lockyard::{FileLock, LockOptions, WaitStrategy};
///
/// let options = LockOptions::new()
///     .wait_strategy(WaitStrategy::BlockingPool)
///     .remove_on_release(true);
/// let lock = FileLock::with_options("build.lock", options);
/// assert!(lock.options().get_remove_on_release());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOptions {
    pub(crate) backoff: Backoff,
    pub(crate) strategy: WaitStrategy,
    pub(crate) remove_on_release: bool,
    pub(crate) verify_identity: bool,
    pub(crate) create_parent: bool,
    pub(crate) offload_open: bool,
    pub(crate) file_mode: u32,
    pub(crate) kind: LockKind,
    pub(crate) metadata: bool,
    pub(crate) owner: Option<Arc<str>>,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) on_stale: Option<StaleHook>,
    pub(crate) trust_os_lock: bool,
    pub(crate) local_os_locks: bool,
    pub(crate) lease_ttl: Option<Duration>,
    pub(crate) file_events: bool,
    pub(crate) in_memory: bool,
}

/// A user's `on_stale` decision function.
#[derive(Clone)]
pub(crate) struct StaleHook(pub(crate) Arc<dyn Fn(&StaleLock) -> bool + Send + Sync>);

impl PartialEq for StaleHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for StaleHook {}

impl std::fmt::Debug for StaleHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<on_stale hook>")
    }
}

/// The default age after which a soft lock whose holder's liveness cannot
/// be checked (another host, no lease) is considered abandoned.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5 * 60);

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            backoff: Backoff::default(),
            strategy: WaitStrategy::Adaptive,
            remove_on_release: false,
            verify_identity: false,
            create_parent: false,
            offload_open: true,
            file_mode: 0o644,
            kind: LockKind::Strict,
            metadata: true,
            owner: None,
            stale_after: Some(DEFAULT_STALE_AFTER),
            on_stale: None,
            trust_os_lock: true,
            local_os_locks: false,
            lease_ttl: None,
            file_events: true,
            in_memory: false,
        }
    }
}

impl LockOptions {
    /// The defaults: adaptive wait, lock file kept on release, parent
    /// directory created when missing, file mode `0o644`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockKind, LockOptions, WaitStrategy};
    ///
    /// let options = LockOptions::new();
    /// assert_eq!(options.get_kind(), LockKind::Strict);
    /// assert_eq!(options.get_wait_strategy(), WaitStrategy::Adaptive);
    /// assert!(!options.get_remove_on_release());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The backoff schedule for waiting on other processes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{Backoff, LockOptions};
    ///
    /// let backoff = Backoff::new(Duration::from_millis(2), 2, Duration::from_millis(100));
    /// let options = LockOptions::new().backoff(backoff);
    /// assert_eq!(options.get_backoff(), backoff);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How to wait for other processes; see [`WaitStrategy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockOptions, WaitStrategy};
    ///
    /// let options = LockOptions::new().wait_strategy(WaitStrategy::BlockingPool);
    /// assert_eq!(options.get_wait_strategy(), WaitStrategy::BlockingPool);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Delete the lock file when the last holder in this process releases it
    /// and nobody in this process waits for it (off by default).
    ///
    /// Deleting a lock file safely needs every process that uses it to check,
    /// after each lock, that the file it locked is still the one at the path
    /// (otherwise a waiter that opened the file before the deletion would
    /// lock an orphan while a newcomer locks a fresh file). Turning this on
    /// turns that check on ([`verify_identity`](Self::verify_identity));
    /// every process sharing the lock must use both, or at least the check.
    ///
    /// Only a lock file lockyard made is ever deleted. A file that holds
    /// data (see [`FileLock::new`](crate::FileLock::new)) is released and
    /// left where it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("tmp.lock"), LockOptions::new().remove_on_release(true));
    /// drop(lock.try_lock()?);
    /// assert!(!lock.path().exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn remove_on_release(mut self, on: bool) -> Self {
        self.remove_on_release = on;
        self
    }

    /// After each successful lock, compare the locked file with what is at
    /// the path now, and start over if the file was deleted or replaced.
    /// Costs one `stat` per acquisition. Implied by
    /// [`remove_on_release`](Self::remove_on_release); turn it on alone in
    /// processes that share a lock with ones that delete it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// let options = LockOptions::new().verify_identity(true);
    /// assert!(options.get_verify_identity());
    /// assert!(LockOptions::new().remove_on_release(true).get_verify_identity());
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn verify_identity(mut self, on: bool) -> Self {
        self.verify_identity = on;
        self
    }

    /// Create missing parent directories of the lock file (off by
    /// default).
    ///
    /// Off, a lock whose directory is missing fails with
    /// [`ErrorKind::CreateDir`](crate::ErrorKind::CreateDir), as
    /// `File::create` and `flock(1)` fail: a typo in a path
    /// (`/var/lib/myap/state.json`) is an error to see, not a tree to build
    /// silently, and the `lockyard` command, which follows `flock(1)`, has
    /// the same default (`--create-dirs` turns it on there). A
    /// [`LockDir`](crate::LockDir) creates its own directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("missing/job.lock");
    /// let lock = FileLock::new(&path);
    /// assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::CreateDir);
    ///
    /// let lock = FileLock::with_options(&path, LockOptions::new().create_parent(true));
    /// let _guard = lock.try_lock()?; // made missing/ first
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn create_parent(mut self, on: bool) -> Self {
        self.create_parent = on;
        self
    }

    /// Open the lock file on the blocking pool rather than on the executor's
    /// thread (on by default), because an open can block on slow or network
    /// filesystems. It happens once per [`FileLock`](crate::FileLock): later
    /// acquisitions reuse the descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// # futures_lite::future::block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// // Opened on the polling thread: a first acquisition completes in one poll.
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().offload_open(false));
    /// let guard = futures_lite::future::poll_once(lock.lock()).await.expect("one poll")?;
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn offload_open(mut self, on: bool) -> Self {
        self.offload_open = on;
        self
    }

    /// Unix permission bits for a newly created lock file (`0o644` by
    /// default; the process umask applies). Ignored on other platforms.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("shared.lock"), LockOptions::new().file_mode(0o600));
    /// drop(lock.try_lock()?);
    /// #[cfg(unix)]
    /// {
    ///     use std::os::unix::fs::PermissionsExt;
    ///     let mode = std::fs::metadata(lock.path())?.permissions().mode();
    ///     assert_eq!(mode & 0o077, 0); // the umask may only take bits away
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Wake a waiter as soon as the lock file shows a sign of release by
    /// another process, and announce this process's own releases (on by
    /// default).
    ///
    /// The waiter at the head of this process's queue watches the lock file
    /// through one file-event instance shared by the whole process (inotify
    /// on Linux, kqueue on macOS and the BSDs): a lockyard holder's release
    /// announcement, the file going away, for a soft lock the removal of its
    /// sidecar, and on Linux also any close of the file (how `flock(1)`,
    /// Python's `filelock`, Go's `flock` and most programs release), make it
    /// try again at once instead of at its next backoff step.
    ///
    /// A holder announces by setting the file's times to now right after
    /// `flock(LOCK_UN)`, so the event comes only once the lock is free.
    /// Record writes are not watched, so taking the lock wakes nobody. On
    /// Linux, a waiter first marks the file as waited for (a lock on one
    /// byte far past the content, which never conflicts with the lock
    /// itself), and a holder announces only when it finds such a mark: the
    /// check is one `fcntl` per release (three system calls per uncontended
    /// acquire and release instead of two with [`metadata`](Self::metadata)
    /// off), the announcement one more only when someone waits. Elsewhere,
    /// and on network filesystems, every release is announced.
    ///
    /// Backoff keeps running underneath: a holder that releases with a bare
    /// `flock(LOCK_UN)` and keeps the file open (`fs4`, `fd-lock`, lockyard
    /// with this option off) fires no event, nor does a process on another
    /// NFS client or a holder without write permission on the file. On
    /// Windows, or when watch limits are reached (logged once through the
    /// `log` crate), waiters rely on backoff alone. Turn it off for the bare
    /// two-system-call cycle when no other process waits for this lock, or
    /// when hand-off latency does not matter.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// // A lock only this process takes, in a tight loop: the bare cycle.
    /// let dir = tempfile::tempdir()?;
    /// let options = LockOptions::new().metadata(false).file_events(false);
    /// assert!(!options.get_file_events());
    /// let lock = FileLock::with_options(dir.path().join("hot.lock"), options);
    /// for _ in 0..3 {
    ///     drop(lock.lock_blocking()?);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn file_events(mut self, on: bool) -> Self {
        self.file_events = on;
        self
    }

    /// Keeps the lock in this process's memory instead of a file: the
    /// path is only its name. This is lockyard's reference backend, which
    /// its own behaviour suite runs against; it is not part of the stable
    /// API and may change in any release.
    #[doc(hidden)]
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn in_memory_for_tests(mut self) -> Self {
        self.in_memory = true;
        self
    }
}
