//! This process's waiter mark on a strict lock file: placed while any of
//! its waiters is watching for a release in another process, and looked
//! for by a releasing holder to decide whether to announce (see
//! `sys::waiters` for the mechanism and why no announcement is missed).

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use crate::engine::Hint;
use crate::rt::Clock;

/// The mark of one lock file, shared by this process's waiters. Made only
/// where marks work (see [`Marks::new`]).
#[derive(Debug)]
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) struct Marks {
    /// The descriptor the mark is placed through (the lock file's first).
    file: Arc<File>,
    /// How many waiters are watching. The mark is placed on 0 → 1 and
    /// removed on 1 → 0; the mutex is held across that system call so that
    /// a removal and a placement cannot cross.
    watching: Mutex<usize>,
}

impl Marks {
    /// Marks for `file`, if waiters can mark it: on Linux, on a local
    /// filesystem. `None` means every release must be announced.
    pub(crate) fn new(file: &Arc<File>) -> Option<Arc<Marks>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if crate::sys::os_locks_shared(file) {
            return Some(Arc::new(Marks {
                file: Arc::clone(file),
                watching: Mutex::new(0),
            }));
        }
        let _ = file;
        None
    }

    /// Whether a release through `file` must be announced: some other
    /// process's waiter has marked it.
    pub(crate) fn wanted(&self, file: &File) -> bool {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return crate::sys::waiters::marked(file);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = file;
            true
        }
    }

    /// Marks the file for as long as the returned guard lives.
    pub(crate) fn enter(self: &Arc<Self>) -> MarkGuard {
        let mut watching = self.watching.lock().unwrap_or_else(PoisonError::into_inner);
        if *watching == 0 {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Err(e) = crate::sys::waiters::mark(&self.file) {
                // Holders elsewhere will not announce to this waiter: it
                // finds the release by backoff, late but not wrongly.
                log::debug!("lockyard: cannot mark a lock file as waited for: {e}");
            }
        }
        *watching += 1;
        MarkGuard(Arc::clone(self))
    }
}

/// Keeps a waiter's mark placed.
#[derive(Debug)]
pub(crate) struct MarkGuard(Arc<Marks>);

impl Drop for MarkGuard {
    fn drop(&mut self) {
        let mut watching = self
            .0
            .watching
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *watching = watching.saturating_sub(1);
        if *watching == 0 {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let _ = crate::sys::waiters::unmark(&self.0.file);
        }
    }
}

/// A wake hint that keeps this process's mark placed while it lives.
#[derive(Debug)]
pub(crate) struct Marked {
    pub(crate) hint: Box<dyn Hint>,
    pub(crate) _mark: MarkGuard,
}

impl Hint for Marked {
    fn generation(&self) -> u64 {
        self.hint.generation()
    }

    fn poll_changed(&mut self, cx: &mut Context<'_>, since: u64, clock: Clock) -> Poll<()> {
        self.hint.poll_changed(cx, since, clock)
    }
}
