//! The vocabulary every layer speaks: how a lock is held ([`LockMode`]),
//! how long an acquisition may wait ([`Wait`]), and how the one waiter per
//! process waits for other processes ([`WaitStrategy`]).

use std::time::{Duration, Instant};

/// Exclusive (one holder) or shared (many holders, no exclusive one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// One holder at a time; excludes shared holders too. A writer's lock.
    Exclusive,
    /// Any number of shared holders at once; excludes exclusive holders. A
    /// reader's lock.
    Shared,
}

impl std::fmt::Display for LockMode {
    /// `exclusive` or `shared`.
    ///
    /// ```
    /// assert_eq!(lockyard::LockMode::Shared.to_string(), "shared");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        })
    }
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

impl From<Duration> for Wait {
    /// A timeout: [`Wait::For`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Wait;
    ///
    /// assert_eq!(Wait::from(Duration::from_secs(2)), Wait::For(Duration::from_secs(2)));
    /// ```
    fn from(timeout: Duration) -> Wait {
        Wait::For(timeout)
    }
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
    /// Retry a non-blocking lock attempt on an exponential [`Backoff`](crate::Backoff)
    /// schedule, and at once when a file event says the lock may be free.
    /// No thread is parked; the wait is cancellable at any moment. The
    /// default.
    ///
    /// The blocking API with no deadline (`lock_blocking`, `Wait::Forever`)
    /// parks its calling thread in the kernel's blocking lock call instead,
    /// whatever the strategy: the thread is parked anyway, and the kernel
    /// hands it the lock directly.
    #[default]
    Backoff,
    /// Park one thread of the blocking pool in the kernel's blocking lock
    /// call, so the lock is taken the moment the other process lets go.
    ///
    /// Costs one pool thread per contended lock file per process while it
    /// waits. Cancelling the future (or its deadline passing) returns at
    /// once; the parked thread then releases the lock as soon as the kernel
    /// grants it and closes its descriptor. The blocking API with no
    /// deadline parks the calling thread itself instead of a pool thread,
    /// as it does with any strategy.
    BlockingPool,
}
