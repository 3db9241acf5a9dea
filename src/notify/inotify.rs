//! inotify: one instance per process, one kernel watch per watched inode,
//! shared by every waiter watching that inode.
//!
//! Waiters never read the instance on a thread of their own. Each holds a
//! readiness future on it (async-io's reactor: the `async-io` thread, or the
//! thread inside `async_io::block_on`); whichever is woken first drains the
//! queued events and bumps the generation of every subscriber they concern;
//! all of them then compare their generation with the one they saw before
//! their last attempt.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use async_io::{Async, Readable};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::rt::Clock;

/// The process's inotify instance and who listens to which watch.
struct Notifier {
    fd: Async<OwnedFd>,
    /// Watch descriptor -> the subscribers sharing that kernel watch.
    watches: Mutex<HashMap<i32, Vec<Weak<Subscriber>>>>,
}

#[derive(Debug)]
struct Subscriber {
    /// For a directory watch: the one entry this subscriber cares about.
    name: Option<Box<[u8]>>,
    generation: AtomicU64,
    /// The task waiting for the generation to move. Whoever drains the
    /// instance wakes it: the drainer may have been woken by another
    /// reactor (tokio's, async-io's), and a drained queue is readable for
    /// nobody else.
    waker: Mutex<Option<Waker>>,
}

impl Subscriber {
    fn concerned_by(&self, name: Option<&CStr>) -> bool {
        match (&self.name, name) {
            (Some(want), Some(got)) => **want == *got.to_bytes(),
            // Events on the watched inode itself concern everybody.
            _ => true,
        }
    }

    fn new(name: Option<Box<[u8]>>) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            name,
            generation: AtomicU64::new(0),
            waker: Mutex::new(None),
        })
    }

    /// Moves the generation on and hands back the waiting task's waker.
    fn bump(&self) -> Option<Waker> {
        self.generation.fetch_add(1, Ordering::Release);
        self.waker_slot().take()
    }

    fn waker_slot(&self) -> MutexGuard<'_, Option<Waker>> {
        // Nothing panics under this lock.
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker_slot();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

/// One waiter's subscription to events on a lock file (or, for a soft
/// lock, on its sidecar's directory entry). Dropping it removes the kernel
/// watch when nobody else in the process uses it.
pub(crate) struct Watch {
    sub: Arc<Subscriber>,
    wd: i32,
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
            .field("wd", &self.wd)
            .field("generation", &self.generation())
            .finish()
    }
}

/// A close of the file (every `close`-to-release program), a change of its
/// times (lockyard's release announcement) or link count, or the file going
/// away. Not writes: a new holder stamping its record must not wake the
/// other waiters for nothing.
fn file_events() -> WatchFlags {
    WatchFlags::CLOSE_WRITE
        | WatchFlags::CLOSE_NOWRITE
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

/// A soft lock is released by removing its sidecar from the directory.
fn dir_events() -> WatchFlags {
    WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

impl Watch {
    /// Watches the lock file open as `file` (found at `path`).
    pub(crate) fn file(file: &File, path: &Path) -> Option<Watch> {
        // Through the descriptor, so the watch lands on the inode we lock
        // even if the path has been replaced since; the path is the
        // fallback where /proc is not mounted.
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        notifier()?.subscribe(&[&by_fd, path], file_events(), None)
    }

    /// Watches the directory entry `path` (a soft lock's sidecar).
    pub(crate) fn dir_entry(path: &Path) -> Option<Watch> {
        let name = path.file_name()?.as_bytes().into();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        notifier()?.subscribe(&[dir], dir_events(), Some(name))
    }

    /// Another subscription to the same kernel watch, without a system
    /// call; `None` if the kernel has dropped the watch (its file is gone).
    pub(crate) fn join(&self) -> Option<Watch> {
        let notifier = notifier()?;
        let mut map = notifier.map();
        let subs = map.get_mut(&self.wd)?;
        let sub = Subscriber::new(self.sub.name.clone());
        subs.push(Arc::downgrade(&sub));
        Some(Watch::subscribed(sub, self.wd))
    }

    /// The number of events seen so far. Read it *before* an attempt, and
    /// wait for it to change after the attempt failed, so an event in
    /// between is never missed.
    pub(crate) fn generation(&self) -> u64 {
        self.sub.generation.load(Ordering::Acquire)
    }

    fn subscribed(sub: Arc<Subscriber>, wd: i32) -> Watch {
        Watch {
            sub,
            wd,
            ready: None,
            #[cfg(feature = "tokio")]
            tokio_ready: None,
        }
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
        let Some(subs) = map.get_mut(&self.wd) else {
            // The kernel dropped the watch already (IN_IGNORED).
            return;
        };
        subs.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*self.sub));
        if subs.is_empty() {
            map.remove(&self.wd);
            // Fails only if the kernel dropped it meanwhile: nothing to do.
            let _ = inotify::remove_watch(notifier.fd.get_ref(), self.wd);
            if map.is_empty() {
                // The removal queued IN_IGNORED (and maybe late events):
                // read them now, or the next waiter would be woken for them.
                // Only when nobody else listens: their events must reach
                // them through the reactor, which wakes their tasks.
                drop(map);
                notifier.drain();
            }
        }
    }
}

fn notifier() -> Option<&'static Notifier> {
    static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
    NOTIFIER
        .get_or_init(|| {
            let started = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
                .map_err(std::io::Error::from)
                .and_then(Async::new);
            match started {
                Ok(fd) => Some(Notifier {
                    fd,
                    watches: Mutex::default(),
                }),
                Err(e) => {
                    log::warn!(
                        "lockyard: no inotify instance ({e}); waiters for other processes \
                         will find releases by backoff alone"
                    );
                    None
                }
            }
        })
        .as_ref()
}

impl Notifier {
    fn map(&self) -> MutexGuard<'_, HashMap<i32, Vec<Weak<Subscriber>>>> {
        // Nothing panics under this lock.
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(
        &'static self,
        paths: &[&Path],
        flags: WatchFlags,
        name: Option<Box<[u8]>>,
    ) -> Option<Watch> {
        let mut map = self.map();
        let mut failed = Errno::NOENT;
        for path in paths {
            match inotify::add_watch(self.fd.get_ref(), *path, flags) {
                Ok(wd) => {
                    let sub = Subscriber::new(name);
                    map.entry(wd).or_default().push(Arc::downgrade(&sub));
                    return Some(Watch::subscribed(sub, wd));
                }
                Err(e) => failed = e,
            }
        }
        drop(map);
        report_unwatched(paths.last().copied(), failed);
        None
    }

    /// Reads every queued event and bumps the subscribers concerned.
    fn drain(&self) {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut woken = Vec::new();
        let mut map = self.map();
        let mut reader = inotify::Reader::new(self.fd.get_ref(), &mut buf);
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(Errno::INTR) => continue,
                // WOULDBLOCK: drained. Anything else: nothing more to read;
                // backoff covers whatever was lost.
                Err(_) => break,
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                // Events were lost: everybody looks again.
                let all = map.values().flatten().filter_map(Weak::upgrade);
                woken.extend(all.filter_map(|s| s.bump()));
                continue;
            }
            let wd = event.wd();
            if let Some(subs) = map.get(&wd) {
                let name = event.file_name();
                let concerned = subs
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|s| s.concerned_by(name));
                woken.extend(concerned.filter_map(|s| s.bump()));
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The kernel removed the watch (the inode is gone): forget
                // it, so no later watch with this number is removed by us.
                map.remove(&wd);
            }
        }
        drop(map);
        woken.into_iter().for_each(Waker::wake);
    }
}

/// Says once per process why a waiter falls back to backoff.
fn report_unwatched(path: Option<&Path>, e: Errno) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if e == Errno::NOSPC {
        if !SAID.swap(true, Ordering::Relaxed) {
            log::warn!(
                "lockyard: inotify watch limit reached (fs.inotify.max_user_watches); \
                 waiters for other processes fall back to backoff"
            );
        }
    } else {
        log::debug!(
            "lockyard: cannot watch {} ({e}); waiting by backoff",
            path.map_or_else(String::new, |p| p.display().to_string())
        );
    }
}

/// The instance registered with the current tokio runtime's reactor,
/// through a descriptor of its own (one registration per waiter: each may
/// run in another runtime). `None` if that fails: async-io's reactor then
/// serves the waiter.
#[cfg(feature = "tokio")]
#[allow(unsafe_code)]
fn tokio_registration(notifier: &Notifier) -> Option<Box<tokio::io::unix::AsyncFd<OwnedFd>>> {
    let dup = rustix::io::fcntl_dupfd_cloexec(notifier.fd.get_ref(), 0).ok()?;
    // SAFETY: `dup` is an open descriptor that the `AsyncFd` owns from here
    // until it is dropped; `OwnedFd::as_raw_fd` always returns that same
    // descriptor, and nothing else closes it.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE)
            .ok()
            .map(Box::new)
    }
}
