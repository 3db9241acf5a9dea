//! The public veneer over the engine: the lock handle, its future and
//! guards, and looking at a lock without waiting for it.

mod future;
mod guard;
mod inspect;
mod lock;

pub use future::Acquire;
pub(crate) use guard::Traits;
pub use guard::{ConvertError, FileLockGuard};
pub use inspect::{LockInfo, LockState};
pub use lock::FileLock;
