//! An opt-in reentrant lock for blocking code.
//!
//! Reentrancy is tied to a thread: the thread that holds the lock may take
//! it again, and only the last of its guards releases it. That is sound
//! for blocking code, where a thread is the unit that runs. It is *not*
//! offered for async code: a task moves between threads at every `.await`,
//! and "the same task" is invisible to a library, so a thread-keyed
//! reentrant lock would let two tasks on one thread both "hold" it, and a
//! task-keyed one cannot be built. In async code, pass the guard you hold
//! (`&LockGuard`) to the code that needs the lock held: the borrow is
//! the proof, and nothing is locked twice.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;

use crate::{Error, FileLock, LockGuard};

/// A blocking, exclusive lock that the holding thread may take again
/// without deadlocking itself.
///
/// # Examples
///
/// ```
/// use lockyard::{FileLock, ReentrantLock};
///
/// let dir = tempfile::tempdir()?;
/// let lock = ReentrantLock::new(FileLock::new(dir.path().join("r.lock")));
/// let outer = lock.lock()?;
/// let inner = lock.lock()?; // same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer); // released here
/// assert_eq!(lock.depth(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ReentrantLock {
    lock: FileLock,
    state: Arc<Mutex<Option<Owner>>>,
}

#[derive(Debug)]
struct Owner {
    thread: ThreadId,
    depth: usize,
    // Held for its `Drop`, which releases the lock.
    _guard: LockGuard,
}

/// Held while alive; the last guard of the owning thread releases the
/// lock. Not `Send`: it must be dropped on the thread that took it.
#[must_use = "dropping the guard releases this level of the lock at once"]
#[derive(Debug)]
pub struct ReentrantGuard {
    state: Arc<Mutex<Option<Owner>>>,
    _not_send: PhantomData<*const ()>,
}

impl ReentrantLock {
    /// A reentrant form of `lock`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, ReentrantLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = ReentrantLock::new(FileLock::new(dir.path().join("config.lock")));
    /// let outer = lock.lock()?;
    /// let inner = lock.lock()?; // the same thread: no deadlock
    /// assert_eq!(lock.depth(), 2);
    /// # drop((inner, outer));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(lock: FileLock) -> Self {
        ReentrantLock {
            lock,
            state: Arc::new(Mutex::new(None)),
        }
    }

    /// Takes the lock exclusively, blocking; returns at once if this thread
    /// already holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::ReentrantLock::new(lockyard::FileLock::new(dir.path().join("a.lock")));
    /// let _g = lock.lock()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`FileLock::lock_blocking`].
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread while another thread or process holds it.
    pub fn lock(&self) -> Result<ReentrantGuard, Error> {
        self.enter(FileLock::lock_blocking)
    }

    /// Takes the lock if that is possible right now (or this thread holds
    /// it).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock, ReentrantLock};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("a.lock");
    /// let lock = ReentrantLock::new(FileLock::new(&path));
    /// let _g = lock.try_lock()?;
    /// // Another handle (another thread or process) is refused.
    /// assert_eq!(FileLock::new(&path).try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`FileLock::try_lock`].
    pub fn try_lock(&self) -> Result<ReentrantGuard, Error> {
        self.enter(FileLock::try_lock)
    }

    /// How many guards this lock's holding thread has (0 when free).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::ReentrantLock::new(lockyard::FileLock::new(dir.path().join("a.lock")));
    /// assert_eq!(lock.depth(), 0);
    /// let g = lock.lock()?;
    /// assert_eq!(lock.depth(), 1);
    /// drop(g);
    /// assert_eq!(lock.depth(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn depth(&self) -> usize {
        self.state().as_ref().map_or(0, |o| o.depth)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<Owner>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more level for the holding thread; otherwise `take` the file
    /// lock and become the holder.
    fn enter(
        &self,
        take: impl FnOnce(&FileLock) -> Result<LockGuard, Error>,
    ) -> Result<ReentrantGuard, Error> {
        let me = std::thread::current().id();
        {
            let mut st = self.state();
            if let Some(owner) = st.as_mut().filter(|o| o.thread == me) {
                owner.depth += 1;
                return Ok(self.guard());
            }
        }
        // Not under the state mutex: waiting here must not stop the holder
        // from releasing.
        let guard = take(&self.lock)?;
        *self.state() = Some(Owner {
            thread: me,
            depth: 1,
            _guard: guard,
        });
        Ok(self.guard())
    }

    fn guard(&self) -> ReentrantGuard {
        ReentrantGuard {
            state: Arc::clone(&self.state),
            _not_send: PhantomData,
        }
    }
}

impl Drop for ReentrantGuard {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let last = match st.as_mut() {
            Some(owner) => {
                owner.depth -= 1;
                owner.depth == 0
            }
            None => false,
        };
        if last {
            // Dropping the owner's file guard releases the lock.
            let owner = st.take();
            drop(st);
            drop(owner);
        }
    }
}
