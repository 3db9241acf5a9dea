//! Watches over one file-event instance per process, whatever the kernel
//! interface behind it (`backend`: inotify or kqueue).
//!
//! One kernel watch per watched file (or directory) is shared by every
//! waiter of the process that watches it. Waiters never read the instance
//! on a thread of their own: each polls readiness on it (async-io's
//! reactor, or tokio's inside a tokio runtime); whoever is woken first
//! drains the queued events, moves the generation of every subscriber they
//! concern and wakes its task; each then compares its generation with the
//! one it saw before its last attempt.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use async_io::{Async, Readable};
use rustix::io::Errno;

use super::backend::{self, Keep, Key};
use super::subscriber::Subscriber;
use crate::rt::Clock;

/// What a backend reports while reading the instance.
pub(super) enum Happened<'a> {
    /// The queue overflowed: events were lost.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    Lost,
    On {
        key: Key,
        /// The entry concerned, for a directory watch whose backend names
        /// entries.
        name: Option<&'a [u8]>,
        /// The kernel dropped the watch (its file is gone).
        gone: bool,
    },
}

/// The process's instance and who listens to which kernel watch.
struct Notifier {
    fd: Async<OwnedFd>,
    watches: Mutex<HashMap<Key, Kernel>>,
}

/// One kernel watch and the subscribers sharing it.
struct Kernel {
    subs: Vec<Weak<Subscriber>>,
    /// What keeps the kernel watch alive (kqueue: its descriptor).
    keep: Keep,
}

/// One waiter's subscription to events on a lock file (or, for a soft
/// lock, on its sidecar's directory entry). Dropping it removes the kernel
/// watch when nobody else in the process uses it.
pub(crate) struct Watch {
    sub: Arc<Subscriber>,
    key: Key,
    ready: Option<Readable<'static, OwnedFd>>,
    /// Inside a tokio runtime: the instance (a duplicate descriptor of it)
    /// registered with that runtime's reactor, so its events wake the task
    /// without a hop through async-io's thread.
    #[cfg(feature = "tokio")]
    tokio_ready: Option<Box<tokio::io::unix::AsyncFd<OwnedFd>>>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("key", &self.key)
            .field("generation", &self.generation())
            .finish()
    }
}

impl Watch {
    /// Watches the lock file open as `file` (found at `path`).
    pub(crate) fn file(file: &File, path: &Path) -> Option<Watch> {
        let notifier = notifier()?;
        let watched = backend::watch_file(notifier.fd.get_ref(), file, path);
        notifier.subscribe(watched, None, path)
    }

    /// Watches the directory entry `path` (a soft lock's sidecar).
    pub(crate) fn dir_entry(path: &Path) -> Option<Watch> {
        use std::os::unix::ffi::OsStrExt;
        let name = path.file_name()?.as_bytes().into();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let notifier = notifier()?;
        let watched = backend::watch_dir(notifier.fd.get_ref(), dir);
        notifier.subscribe(watched, Some(name), dir)
    }

    /// Another subscription to the same kernel watch, without a system
    /// call; `None` if the kernel has dropped the watch (its file is gone).
    pub(crate) fn join(&self) -> Option<Watch> {
        let notifier = notifier()?;
        let mut map = notifier.map();
        let kernel = map.get_mut(&self.key)?;
        let sub = Subscriber::new(self.sub.name.clone());
        kernel.subs.push(Arc::downgrade(&sub));
        Some(Watch::subscribed(sub, self.key))
    }

    fn subscribed(sub: Arc<Subscriber>, key: Key) -> Watch {
        Watch {
            sub,
            key,
            ready: None,
            #[cfg(feature = "tokio")]
            tokio_ready: None,
        }
    }

    /// The number of events seen so far. Read it *before* an attempt, and
    /// wait for it to change after the attempt failed, so an event in
    /// between is never missed.
    pub(crate) fn generation(&self) -> u64 {
        self.sub.generation()
    }

    /// Ready once the generation differs from `since`. `clock` says whose
    /// reactor serves the caller: tokio's inside a tokio runtime (with the
    /// `tokio` feature), async-io's otherwise.
    pub(crate) fn poll_changed(
        &mut self,
        cx: &mut Context<'_>,
        since: u64,
        clock: Clock,
    ) -> Poll<()> {
        let Some(notifier) = notifier() else {
            return Poll::Pending;
        };
        // Before looking at the generation, so a drain in between wakes us.
        self.sub.set_waker(cx.waker());
        loop {
            if self.generation() != since {
                self.ready = None;
                return Poll::Ready(());
            }
            match self.poll_readable(notifier, cx, clock) {
                Poll::Ready(()) => notifier.drain(),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Ready when the instance may have events to read.
    fn poll_readable(
        &mut self,
        notifier: &'static Notifier,
        cx: &mut Context<'_>,
        clock: Clock,
    ) -> Poll<()> {
        #[cfg(feature = "tokio")]
        if clock == Clock::Tokio {
            if self.tokio_ready.is_none() {
                self.tokio_ready = tokio_registration(notifier);
            }
            if let Some(fd) = &self.tokio_ready {
                return match fd.poll_read_ready(cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        // Cleared before the drain reads the queue empty:
                        // an event after that is a new edge.
                        guard.clear_ready();
                        Poll::Ready(())
                    }
                    // The registration broke: async-io's reactor takes over.
                    Poll::Ready(Err(_)) => {
                        self.tokio_ready = None;
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
        }
        let _ = clock;
        let ready = self.ready.get_or_insert_with(|| notifier.fd.readable());
        let polled = Pin::new(ready).poll(cx).map(drop);
        if polled.is_ready() {
            self.ready = None;
        }
        polled
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(notifier) = notifier() else { return };
        let mut map = notifier.map();
        let Some(kernel) = map.get_mut(&self.key) else {
            // The kernel dropped the watch already.
            return;
        };
        let me: *const Subscriber = &*self.sub;
        kernel
            .subs
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), me));
        if kernel.subs.is_empty() {
            if let Some(kernel) = map.remove(&self.key) {
                backend::unwatch(notifier.fd.get_ref(), self.key, kernel.keep);
            }
            if map.is_empty() {
                // The removal may have queued a last event (inotify's
                // IN_IGNORED): read it now, or the next waiter would be
                // woken for it. While others listen, one of them reads it.
                drop(map);
                notifier.drain();
            }
        }
    }
}

fn notifier() -> Option<&'static Notifier> {
    static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
    NOTIFIER
        .get_or_init(|| match backend::instance().and_then(Async::new) {
            Ok(fd) => Some(Notifier {
                fd,
                watches: Mutex::default(),
            }),
            Err(e) => {
                if e.kind() != std::io::ErrorKind::Unsupported {
                    log::warn!(
                        "lockyard: no {} instance ({e}); waiters for other processes \
                         will find releases by backoff alone",
                        backend::NAME
                    );
                }
                None
            }
        })
        .as_ref()
}

impl Notifier {
    fn map(&self) -> MutexGuard<'_, HashMap<Key, Kernel>> {
        // Nothing panics under this lock.
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(
        &'static self,
        watched: Result<(Key, Keep), Errno>,
        name: Option<Box<[u8]>>,
        path: &Path,
    ) -> Option<Watch> {
        let (key, keep) = match watched {
            Ok(watched) => watched,
            Err(e) => {
                report_unwatched(path, e);
                return None;
            }
        };
        let sub = Subscriber::new(name);
        let mut map = self.map();
        // inotify hands out the same watch again for the same file: the
        // subscribers then share it.
        let kernel = map.entry(key).or_insert_with(|| Kernel {
            subs: Vec::new(),
            keep,
        });
        kernel.subs.push(Arc::downgrade(&sub));
        Some(Watch::subscribed(sub, key))
    }

    /// Reads every queued event, moves on the subscribers concerned and
    /// wakes their tasks.
    fn drain(&self) {
        let mut woken = Vec::new();
        let mut map = self.map();
        backend::read_events(self.fd.get_ref(), |happened| match happened {
            Happened::Lost => {
                // Events were lost: everybody looks again.
                let all = map.values().flat_map(|k| &k.subs).filter_map(Weak::upgrade);
                woken.extend(all.filter_map(|s| s.bump()));
            }
            Happened::On { key, name, gone } => {
                if let Some(kernel) = map.get(&key) {
                    let concerned = kernel
                        .subs
                        .iter()
                        .filter_map(Weak::upgrade)
                        .filter(|s| s.concerned_by(name));
                    woken.extend(concerned.filter_map(|s| s.bump()));
                }
                if gone {
                    // The kernel removed the watch (the file is gone):
                    // forget it, so no later watch with this key is removed
                    // by us.
                    map.remove(&key);
                }
            }
        });
        drop(map);
        woken.into_iter().for_each(Waker::wake);
    }
}

/// Says once per process why a waiter falls back to backoff.
fn report_unwatched(path: &Path, e: Errno) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if backend::is_limit(e) {
        crate::trace::watch_limit(backend::NAME);
        if !SAID.swap(true, Ordering::Relaxed) {
            log::warn!(
                "lockyard: {} watch limit reached ({e}); waiters for other processes \
                 fall back to backoff",
                backend::NAME
            );
        }
    } else {
        log::debug!(
            "lockyard: cannot watch {} ({e}); waiting by backoff",
            path.display()
        );
    }
}

/// The instance registered with the current tokio runtime's reactor,
/// through a descriptor of its own (one registration per waiter: each may
/// run in another runtime). `None` if that fails: async-io's reactor then
/// serves the waiter.
#[cfg(feature = "tokio")]
fn tokio_registration(notifier: &Notifier) -> Option<Box<tokio::io::unix::AsyncFd<OwnedFd>>> {
    // A future started in a runtime may be polled outside one later, and a
    // runtime may have no reactor: registering would panic in either.
    if !crate::rt::tokio_rt::has_io() {
        return None;
    }
    let dup = rustix::io::fcntl_dupfd_cloexec(notifier.fd.get_ref(), 0).ok()?;
    // tokio 1.54 deprecates this safe constructor for an `unsafe` one that
    // older releases lack; an `OwnedFd` meets the new one's contract (it
    // owns its descriptor and always returns it), and this one works on
    // every tokio from the oldest maintained LTS line on.
    #[allow(deprecated)]
    tokio::io::unix::AsyncFd::with_interest(dup, tokio::io::Interest::READABLE)
        .ok()
        .map(Box::new)
}
