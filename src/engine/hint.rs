//! Wake hints: signs that another process may have released a lock, so
//! the waiter at the head retries at once instead of at its next backoff.
//! A file watch is one (`notify/`); a database notification would be
//! another.

use std::task::{Context, Poll};

use crate::rt::Clock;

/// A source of "look again" signals, counted by generation.
pub(crate) trait Hint: Send + std::fmt::Debug {
    /// The current generation: read it before an attempt, then wait for it
    /// to move on.
    fn generation(&self) -> u64;

    /// Ready once the generation has moved past `since`.
    fn poll_changed(&mut self, cx: &mut Context<'_>, since: u64, clock: Clock) -> Poll<()>;
}
