//! Backoff policy: how long a waiter sleeps between attempts when the lock
//! is held by another process. Pure arithmetic, no I/O.

use std::time::Duration;

/// Exponential backoff with jitter for retrying a lock held by another
/// process.
///
/// Waiters in the same process do not use it: a release wakes the next one
/// directly. It paces only the one waiter per process and lock file that
/// watches for other processes to let go.
///
/// The defaults are **1 ms, doubling, capped at 50 ms**, each delay drawn
/// uniformly from its upper half (so 1 ms means 0.5–1 ms). Most critical
/// sections last well under a few milliseconds, and a retry costs one
/// `flock` call (about a microsecond), so starting low buys fast hand-offs
/// for little; the 50 ms cap bounds the lag after a long hold to what
/// Python's `filelock` polls at, while a long wait costs at most about 20
/// system calls a second. The jitter spreads processes that started
/// waiting together.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::{Backoff, FileLock, LockOptions};
///
/// let backoff = Backoff::new(Duration::from_millis(5), 2, Duration::from_millis(200));
/// let lock = FileLock::with_options("job.lock", LockOptions::new().backoff(backoff));
/// # drop(lock);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    initial: Duration,
    factor: u32,
    max: Duration,
    jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(1),
            factor: 2,
            max: Duration::from_millis(50),
            jitter: true,
        }
    }
}

impl Backoff {
    /// A policy that first waits `initial`, multiplies the delay by `factor`
    /// after each failed attempt, and never waits longer than `max`.
    ///
    /// A `factor` of 0 or 1 gives a constant delay; `max` below `initial`
    /// is raised to `initial`. Jitter is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Backoff;
    ///
    /// let b = Backoff::new(Duration::from_millis(10), 0, Duration::from_millis(1));
    /// assert_eq!(b.factor(), 1);                          // constant delay
    /// assert_eq!(b.max(), Duration::from_millis(10));     // raised to `initial`
    /// ```
    #[must_use]
    pub fn new(initial: Duration, factor: u32, max: Duration) -> Self {
        Backoff {
            initial,
            factor: factor.max(1),
            max: max.max(initial),
            jitter: true,
        }
    }

    /// Turns jitter on (the default) or off. Without jitter every delay is
    /// exactly the computed one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Backoff;
    ///
    /// let b = Backoff::default().jitter(false);
    /// assert!(!b.has_jitter());
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The first delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Backoff;
    ///
    /// assert_eq!(Backoff::default().initial(), Duration::from_millis(1));
    /// ```
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The growth factor between consecutive delays.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Backoff;
    ///
    /// assert_eq!(Backoff::default().factor(), 2);
    /// ```
    pub fn factor(&self) -> u32 {
        self.factor
    }

    /// The longest delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::Backoff;
    ///
    /// assert_eq!(Backoff::default().max(), Duration::from_millis(50));
    /// ```
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Whether delays are jittered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(lockyard::Backoff::default().has_jitter());
    /// ```
    pub fn has_jitter(&self) -> bool {
        self.jitter
    }

    pub(crate) fn start(&self) -> BackoffState {
        BackoffState {
            policy: *self,
            next: self.initial,
        }
    }
}

/// The running state of one waiter's backoff.
#[derive(Debug)]
pub(crate) struct BackoffState {
    policy: Backoff,
    next: Duration,
}

impl BackoffState {
    /// The delay before the next attempt; advances the sequence.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base
            .checked_mul(self.policy.factor)
            .unwrap_or(self.policy.max)
            .min(self.policy.max);
        if self.policy.jitter {
            // Uniform in [base/2, base].
            let half = base / 2;
            let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
            half + Duration::from_nanos(fastrand::u64(0..=nanos))
        } else {
            base
        }
    }

    /// Starts the sequence over (a waiter that newly became the head).
    pub(crate) fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_factor_and_caps() {
        let mut s = Backoff::new(Duration::from_millis(1), 2, Duration::from_millis(10))
            .jitter(false)
            .start();
        let seq: Vec<u128> = (0..6).map(|_| s.next_delay().as_millis()).collect();
        assert_eq!(seq, [1, 2, 4, 8, 10, 10]);
        s.reset();
        assert_eq!(s.next_delay(), Duration::from_millis(1));
    }

    #[test]
    fn jitter_stays_in_upper_half() {
        let mut s = Backoff::new(Duration::from_millis(8), 1, Duration::from_millis(8)).start();
        for _ in 0..1000 {
            let d = s.next_delay();
            assert!(
                d >= Duration::from_millis(4) && d <= Duration::from_millis(8),
                "{d:?}"
            );
        }
    }

    #[test]
    fn degenerate_inputs_are_clamped() {
        let b = Backoff::new(Duration::from_millis(5), 0, Duration::from_millis(1));
        assert_eq!(b.factor(), 1);
        assert_eq!(b.max(), Duration::from_millis(5));
        let mut s = Backoff::new(Duration::MAX, 3, Duration::MAX)
            .jitter(false)
            .start();
        assert_eq!(s.next_delay(), Duration::MAX);
        assert_eq!(s.next_delay(), Duration::MAX);
    }
}
