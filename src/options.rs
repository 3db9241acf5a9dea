//! What a caller can choose: lock mode, how long to wait, how to wait, and
//! how the lock file is handled.

use std::time::{Duration, Instant};

use crate::Backoff;

/// Exclusive (one holder) or shared (many holders, no exclusive one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// One holder at a time; excludes shared holders too. A writer's lock.
    Exclusive,
    /// Any number of shared holders at once; excludes exclusive holders. A
    /// reader's lock.
    Shared,
}

/// How long an acquisition may wait. Each choice is explicit: there is no
/// "negative means forever" or "zero means try once".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::{FileLock, LockMode, Wait};
///
/// let dir = tempfile::tempdir()?;
/// let lock = FileLock::new(dir.path().join("a.lock"));
/// let guard = lock.acquire_blocking(LockMode::Shared, Wait::For(Duration::from_secs(1)))?;
/// assert!(guard.is_shared());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Wait until the lock is acquired, however long that takes.
    Forever,
    /// Make one attempt and fail with [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock)
    /// if the lock is held.
    TryOnce,
    /// Wait at most this long, then fail with
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut). The clock starts
    /// when the acquisition starts (the first poll of a future).
    For(Duration),
    /// Wait until this instant at the latest.
    Until(Instant),
}

impl Wait {
    /// The deadline this wait implies when starting at `now`; `None` for no
    /// deadline. A duration too long to represent means no deadline.
    pub(crate) fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            Wait::Forever => None,
            Wait::TryOnce => Some(now),
            Wait::For(d) => now.checked_add(d),
            Wait::Until(at) => Some(at),
        }
    }
}

/// How the one waiter per process and lock file waits for *other processes*
/// to release it. (Waiters in the same process are always woken directly by
/// the release.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Retry a non-blocking lock attempt on an exponential [`Backoff`]
    /// schedule. No thread is parked; the wait is cancellable at any moment.
    /// The default.
    #[default]
    Backoff,
    /// Park one thread of the blocking pool in the kernel's blocking lock
    /// call, so the lock is taken the moment the other process lets go.
    ///
    /// Costs one pool thread per contended lock file per process while it
    /// waits. Cancelling the future (or its deadline passing) returns at
    /// once; the parked thread then releases the lock as soon as the kernel
    /// grants it and closes its descriptor. The blocking API with no
    /// deadline parks the calling thread itself instead of a pool thread.
    BlockingPool,
}

/// Options for a [`FileLock`](crate::FileLock), built by chaining.
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
/// assert!(lock.options().removes_on_release());
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
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            backoff: Backoff::default(),
            strategy: WaitStrategy::Backoff,
            remove_on_release: false,
            verify_identity: false,
            create_parent: true,
            offload_open: true,
            file_mode: 0o644,
        }
    }
}

impl LockOptions {
    /// The defaults: backoff wait, lock file kept on release, parent
    /// directory created when missing, file mode `0o644`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The backoff schedule for waiting on other processes.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How to wait for other processes; see [`WaitStrategy`].
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
    pub fn remove_on_release(mut self, on: bool) -> Self {
        self.remove_on_release = on;
        self
    }

    /// After each successful lock, compare the locked file with what is at
    /// the path now, and start over if the file was deleted or replaced.
    /// Costs one `stat` per acquisition. Implied by
    /// [`remove_on_release`](Self::remove_on_release); turn it on alone in
    /// processes that share a lock with ones that delete it.
    pub fn verify_identity(mut self, on: bool) -> Self {
        self.verify_identity = on;
        self
    }

    /// Create missing parent directories of the lock file (on by default).
    pub fn create_parent(mut self, on: bool) -> Self {
        self.create_parent = on;
        self
    }

    /// Open the lock file on the blocking pool rather than on the executor's
    /// thread (on by default), because an open can block on slow or network
    /// filesystems. It happens once per [`FileLock`](crate::FileLock): later
    /// acquisitions reuse the descriptor.
    pub fn offload_open(mut self, on: bool) -> Self {
        self.offload_open = on;
        self
    }

    /// Unix permission bits for a newly created lock file (`0o644` by
    /// default; the process umask applies). Ignored on other platforms.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// The backoff schedule.
    pub fn backoff_policy(&self) -> Backoff {
        self.backoff
    }

    /// The wait strategy.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Whether the lock file is removed on release.
    pub fn removes_on_release(&self) -> bool {
        self.remove_on_release
    }

    /// Whether each lock is followed by an identity check.
    pub fn verifies_identity(&self) -> bool {
        self.verify_identity || self.remove_on_release
    }
}
