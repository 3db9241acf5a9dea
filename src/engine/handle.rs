//! What a lock handle and everything it spawns share: the lock's name, how
//! to wait, how to open the resource, and the entry it resolved to.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use event_listener::{Event, EventListener};

use super::abandon::Abandon;
use super::backoff::Backoff;
use super::entry::Entry;
use super::registry;
use super::resource::{Key, Params, Resource};
use crate::error::{Error, Subject};
use crate::mode::WaitStrategy;

/// Opens a handle's resource: a backend's front door.
pub(crate) trait Opener: Send + Sync + fmt::Debug {
    /// Opens (maybe creates) the resource, and says which key it has. May
    /// block: the engine runs it on a blocking pool unless told not to. An
    /// open that can wait long (a connection) ends early, with any error,
    /// once `abandon` fires: nobody waits for it any more.
    fn open(&self, abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error>;
}

/// How the engine waits, as the handle's options say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) backoff: Backoff,
    pub(crate) strategy: WaitStrategy,
    /// Opening goes to the blocking pool.
    pub(crate) offload_open: bool,
    /// Opening may wait on a network (a connection): a blocking caller
    /// with a deadline opens on the pool too, so that the deadline bounds
    /// the open as it bounds the wait.
    pub(crate) open_may_wait: bool,
    /// The lock's name is a file's path (errors and guards answer
    /// `path()`), not a remote lock's address.
    pub(crate) names_a_file: bool,
}

/// A lock handle's shared state.
pub(crate) struct Handle {
    /// What errors name: the lock file, or the lock's name.
    pub(crate) path: PathBuf,
    pub(crate) config: Config,
    opener: Arc<dyn Opener>,
    /// The same opener, as what its resources get on every call for this
    /// handle (see [`Params`]).
    params: Arc<dyn Any + Send + Sync>,
    entry: Mutex<Option<Arc<Entry>>>,
    /// Whether an acquisition is opening the resource for this handle: the
    /// others wait for it (`opened`) rather than open it too, so N tasks
    /// first polled together cost one open, not N.
    opening: Mutex<bool>,
    opened: Event,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("path", &self.path)
            .field("config", &self.config)
            .field("opener", &self.opener)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new<O: Opener + Send + Sync + 'static>(
        path: PathBuf,
        config: Config,
        opener: O,
    ) -> Handle {
        let opener = Arc::new(opener);
        Handle {
            path,
            config,
            params: Arc::clone(&opener) as Arc<dyn Any + Send + Sync>,
            opener,
            entry: Mutex::new(None),
            opening: Mutex::new(false),
            opened: Event::new(),
        }
    }

    /// What errors about this lock name: its path, or a remote lock's
    /// address.
    pub(crate) fn subject(&self) -> Subject<'_> {
        if self.config.names_a_file {
            Subject::file(&self.path)
        } else {
            Subject::remote(&self.path)
        }
    }

    /// The entry this handle resolved last, if it still stands for the
    /// resource.
    pub(crate) fn cached(&self) -> Option<Arc<Entry>> {
        let slot = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref().filter(|e| !e.is_retired()).cloned()
    }

    /// Lets go of the cached entry if it retired, so that it (and the
    /// descriptor or connection it holds) goes as soon as its last guard
    /// or waiter does, not at this handle's next acquisition.
    pub(crate) fn let_go_if_retired(&self) {
        let mut slot = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let retired = slot.take_if(|e| e.is_retired());
        drop(slot);
        drop(retired);
    }

    /// Claims the opening of the resource for this handle. `Err` with a
    /// listener if another acquisition is opening it: wait for the
    /// listener, then look at [`cached`](Self::cached) again. (The listener
    /// is made before the check, so the end of that opening cannot be
    /// missed.)
    pub(crate) fn claim_opening(&self) -> Result<(), EventListener> {
        let mut opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if *opening {
            return Err(self.opened.listen());
        }
        *opening = true;
        Ok(())
    }

    /// Ends the opening claimed with [`claim_opening`](Self::claim_opening),
    /// done or abandoned, and wakes whoever waited for it.
    pub(crate) fn end_opening(&self) {
        *self.opening.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.opened.notify(usize::MAX);
    }

    /// Opens the resource (blocking), until `abandon` fires.
    pub(crate) fn open(&self, abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        self.opener.open(abandon)
    }

    /// This handle's settings, for its backend.
    pub(crate) fn params(&self) -> Params<'_> {
        &*self.params
    }

    /// Registers a freshly opened resource and remembers its entry.
    pub(crate) fn adopt(&self, key: Key, resource: Box<dyn Resource>) -> Arc<Entry> {
        let entry = registry::entry_for(key, resource);
        let old = self
            .entry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Arc::clone(&entry));
        drop(old);
        entry
    }
}
