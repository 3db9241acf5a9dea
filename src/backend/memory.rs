//! A lock in this process's memory: the reference backend.
//!
//! It exists to prove the engine's seam: the behaviour suite runs against
//! it as well as against lock files (`tests/behaviour.rs`), so the queue,
//! the state machine and the guards are tested with a backend that shares
//! no code with the file backends. Its fencing tokens are its own (one
//! counter per name, never persisted), and its wake hint is an in-memory
//! event.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};
use futures_lite::FutureExt;

use crate::engine::{Abandon, Attempted, Hint, Holders, Key, Opener, Params, Resource, Upgrade};
use crate::error::Error;
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{HolderRecord, LockKind};
use crate::rt::Clock;

/// Who holds one named lock, across every entry for it.
#[derive(Debug, Default)]
struct State {
    exclusive: bool,
    shared: usize,
    last_token: u64,
    /// The exclusive holder's record.
    holder: Option<HolderRecord>,
}

/// One named lock.
#[derive(Debug, Default)]
struct Named {
    state: Mutex<State>,
    /// Counts releases, for wake hints.
    generation: AtomicU64,
    released: Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn named(name: &str) -> Arc<Named> {
    static TABLE: OnceLock<Mutex<HashMap<String, Weak<Named>>>> = OnceLock::new();
    let mut table = lock(TABLE.get_or_init(Default::default));
    if let Some(found) = table.get(name).and_then(Weak::upgrade) {
        return found;
    }
    table.retain(|_, w| w.strong_count() > 0);
    let fresh = Arc::new(Named::default());
    table.insert(name.to_owned(), Arc::downgrade(&fresh));
    fresh
}

/// Opens a named lock in memory.
#[derive(Debug)]
pub(crate) struct MemoryOpener {
    pub(crate) name: String,
    pub(crate) options: LockOptions,
}

impl Opener for MemoryOpener {
    fn open(&self, _abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        let key = Key {
            space: "memory",
            id: self.name.as_bytes().into(),
        };
        let lock = MemoryLock {
            named: named(&self.name),
        };
        Ok((key, Box::new(lock)))
    }
}

/// A named lock in memory, as one entry holds it.
#[derive(Debug)]
struct MemoryLock {
    named: Arc<Named>,
}

impl MemoryLock {
    /// The record of a new exclusive hold, with the name's next token.
    fn stamp(&self, state: &mut State, p: Params<'_>) -> Arc<HolderRecord> {
        // The handle's own options (its owner name): a handle of this
        // backend always passes them.
        let default = LockOptions::new();
        let options = p
            .downcast_ref::<MemoryOpener>()
            .map_or(&default, |o| &o.options);
        state.last_token += 1;
        let rec = crate::backend::new_record(
            LockKind::Strict,
            LockMode::Exclusive,
            state.last_token,
            options,
        );
        state.holder = Some(rec.clone());
        Arc::new(rec)
    }

    fn released(&self) {
        self.named.generation.fetch_add(1, Ordering::AcqRel);
        self.named.released.notify(usize::MAX);
    }
}

impl Resource for MemoryLock {
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        let mut state = lock(&self.named.state);
        match mode {
            LockMode::Exclusive if !state.exclusive && state.shared == 0 => {
                state.exclusive = true;
                Ok(Attempted::Locked(Some(self.stamp(&mut state, p))))
            }
            LockMode::Shared if !state.exclusive => {
                state.shared += 1;
                Ok(Attempted::Locked(None))
            }
            _ => Ok(Attempted::Busy),
        }
    }

    fn release(
        &self,
        mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        _p: Params<'_>,
    ) -> io::Result<bool> {
        let mut state = lock(&self.named.state);
        match mode {
            LockMode::Exclusive => {
                state.exclusive = false;
                state.holder = None;
            }
            LockMode::Shared => state.shared = state.shared.saturating_sub(1),
        }
        drop(state);
        self.released();
        Ok(false)
    }

    fn upgrade(&self, p: Params<'_>) -> io::Result<Upgrade> {
        let mut state = lock(&self.named.state);
        if state.shared != 1 {
            return Ok(Upgrade::StillShared);
        }
        state.shared = 0;
        state.exclusive = true;
        Ok(Upgrade::Upgraded(Some(self.stamp(&mut state, p))))
    }

    fn downgrade(&self, _record: Option<Arc<HolderRecord>>, _p: Params<'_>) -> io::Result<bool> {
        let mut state = lock(&self.named.state);
        state.exclusive = false;
        state.holder = None;
        state.shared += 1;
        drop(state);
        self.released();
        Ok(true)
    }

    fn supports_shared(&self) -> bool {
        true
    }

    fn wake_hint(&self, _p: Params<'_>) -> Option<Box<dyn Hint>> {
        Some(Box::new(Released {
            named: Arc::clone(&self.named),
            listener: None,
        }))
    }

    fn holders(&self, _p: Params<'_>) -> Holders {
        Holders {
            record: lock(&self.named.state).holder.clone(),
            ..Holders::default()
        }
    }
}

/// Fires when any holder of the name releases it.
#[derive(Debug)]
struct Released {
    named: Arc<Named>,
    listener: Option<EventListener>,
}

impl Hint for Released {
    fn generation(&self) -> u64 {
        self.named.generation.load(Ordering::Acquire)
    }

    fn poll_changed(&mut self, cx: &mut Context<'_>, since: u64, _clock: Clock) -> Poll<()> {
        loop {
            if self.generation() != since {
                self.listener = None;
                return Poll::Ready(());
            }
            match &mut self.listener {
                None => self.listener = Some(self.named.released.listen()),
                Some(listener) => {
                    if listener.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener = None;
                }
            }
        }
    }
}
