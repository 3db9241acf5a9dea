//! The public veneer over the engine: the lock handle, its future and
//! guards, and looking at a lock without waiting for it.

mod acquiring;
mod conversion;
mod future;
mod guard;
mod inspect;
mod lease;
mod lock;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
pub mod object;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "serde")]
mod serialize;

pub use conversion::ConvertError;
pub use future::Acquire;
pub use guard::LockGuard;
pub(crate) use guard::Traits;
pub use inspect::{LockInfo, LockState};
pub use lock::FileLock;
