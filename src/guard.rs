//! Guards: proof of holding a lock, released on drop.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Op};
use crate::lock::Handle;
use crate::registry::Entry;
use crate::LockMode;

/// Holds a lock until dropped or [`unlock`](Self::unlock)ed.
///
/// A guard owns what it needs: it is `'static`, `Send` and `Sync`, it can
/// outlive the [`FileLock`](crate::FileLock) it came from, be stored in a
/// struct, or move into a spawned task or thread.
///
/// # Examples
///
/// ```
/// use lockyard::FileLock;
///
/// let dir = tempfile::tempdir()?;
/// let lock = FileLock::new(dir.path().join("job.lock"));
/// let guard = lock.lock_blocking()?;
/// let worker = std::thread::spawn(move || {
///     // ... the lock is held here ...
///     guard.unlock()
/// });
/// worker.join().unwrap()?;
/// assert!(lock.try_lock().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct FileLockGuard {
    handle: Arc<Handle>,
    entry: Arc<Entry>,
    mode: LockMode,
    held: bool,
}

impl FileLockGuard {
    pub(crate) fn new(handle: Arc<Handle>, entry: Arc<Entry>, mode: LockMode) -> Self {
        FileLockGuard {
            handle,
            entry,
            mode,
            held: true,
        }
    }

    /// The mode this guard holds the lock in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Whether this guard holds the lock exclusively.
    pub fn is_exclusive(&self) -> bool {
        self.mode == LockMode::Exclusive
    }

    /// Whether this guard holds the lock shared.
    pub fn is_shared(&self) -> bool {
        self.mode == LockMode::Shared
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    /// Releases the lock now, reporting failure (dropping the guard releases
    /// it too, but cannot report).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) if the OS refused to unlock or
    /// a requested removal of the lock file failed. The lock is released
    /// either way: on an unlock failure the descriptor is closed, which
    /// releases it.
    pub fn unlock(mut self) -> Result<(), Error> {
        self.held = false;
        let op = if self.handle.remove_path().is_some() {
            Op::Remove
        } else {
            Op::Unlock
        };
        self.entry
            .release(self.mode, self.handle.remove_path())
            .map_err(|e| Error::io(&self.handle.path, op, e))
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        if self.held {
            let _ = self.entry.release(self.mode, self.handle.remove_path());
        }
    }
}

impl fmt::Debug for FileLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLockGuard")
            .field("path", &self.handle.path)
            .field("mode", &self.mode)
            .finish()
    }
}
