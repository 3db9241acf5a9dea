//! The engine: everything about waiting for a lock that does not depend on
//! where the lock lives.
//!
//! A handle ([`Handle`]) opens its resource through a backend's
//! [`Opener`]; the process [`registry`] gives every resource key one
//! [`Entry`], whose FIFO [`queue`] decides who in this process holds the
//! lock and whose turn it is to ask the backend; the acquire state machine
//! ([`acquire`]) walks a waiter from its first attempt to its grant, driven
//! by a future or a blocked thread, pacing its retries with a backoff and
//! a backend's wake hints. Backends plug in through [`Resource`].
//!
//! The engine knows no file, no database and no public type beyond the
//! shared vocabulary (`mode`, `record`, `error`, `rt`).

mod abandon;
pub(crate) mod acquire;
mod backoff;
mod entry;
mod handle;
pub(crate) mod hint;
mod queue;
mod registry;
pub(crate) mod resource;

pub(crate) use abandon::Abandon;
#[cfg(any(
    feature = "postgres",
    feature = "s3",
    feature = "gcs",
    feature = "azure"
))]
pub(crate) use abandon::FireOnDrop;
pub use backoff::Backoff;
pub(crate) use backoff::BackoffState;
pub(crate) use entry::Entry;
pub(crate) use handle::{Config, Handle, Opener};
pub(crate) use hint::Hint;
pub(crate) use resource::{
    Attempted, BlockingWait, Holders, Key, Params, Resource, Upgrade, Waited,
};
// Only the PostgreSQL backend makes attempts to be polled.
#[cfg(feature = "postgres")]
pub(crate) use resource::{Polled, PolledAttempt, PolledWait};
