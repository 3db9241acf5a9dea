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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// As [`Backoff`](Self::Backoff), until other processes keep winning
    /// the lock from under the waiter: when a wait has twice been told of
    /// a release and found the lock taken again by the time it tried, the
    /// rest of the wait is made as with [`BlockingPool`](Self::BlockingPool),
    /// and so are this process's waits for the same lock file for the next
    /// second. The default.
    ///
    /// Under light contention nothing changes: no thread is parked, and a
    /// release wakes the waiter through a file event. Under heavy
    /// contention (processes taking the lock back to back), a waiter woken
    /// through its executor nearly always loses the race to the process
    /// that just released, and every lost race costs a wake-up on both
    /// sides; a thread blocked in the kernel's lock call is queued there and
    /// retries the instant it is woken. On the peers benchmark's 4-process
    /// counter, the default future's lock changed process 48 times in 2,000
    /// increments instead of 1,180, and the run took 10.9 ms instead of
    /// 13.3 ms (threads blocked in `flock(2)`: 27 times, 5.1 ms).
    ///
    /// Costs, while it lasts, one blocking-pool thread per contended lock
    /// file per process, with the cancellation behaviour of `BlockingPool`.
    /// Soft locks have no kernel wait and keep retrying.
    #[default]
    Adaptive,
    /// Retry a non-blocking lock attempt on an exponential [`Backoff`](crate::Backoff)
    /// schedule, and at once when a file event says the lock may be free.
    /// No thread is ever parked; the wait is cancellable at any moment.
    ///
    /// The blocking API with no deadline (`lock_blocking`, `Wait::Forever`)
    /// parks its calling thread in the kernel's blocking lock call instead,
    /// whatever the strategy: the thread is parked anyway, and the kernel
    /// hands it the lock directly.
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
