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
use std::task::{Context, Poll};

use async_io::{Async, Readable};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

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
}

impl Subscriber {
    fn concerned_by(&self, name: Option<&CStr>) -> bool {
        match (&self.name, name) {
            (Some(want), Some(got)) => **want == *got.to_bytes(),
            // Events on the watched inode itself concern everybody.
            _ => true,
        }
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// One waiter's subscription to events on a lock file (or, for a soft
/// lock, on its sidecar's directory entry). Dropping it removes the kernel
/// watch when nobody else in the process uses it.
pub(crate) struct Watch {
    sub: Arc<Subscriber>,
    wd: i32,
    ready: Option<Readable<'static, OwnedFd>>,
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
        let sub = Arc::new(Subscriber {
            name: self.sub.name.clone(),
            generation: AtomicU64::new(0),
        });
        subs.push(Arc::downgrade(&sub));
        Some(Watch {
            sub,
            wd: self.wd,
            ready: None,
        })
    }

    /// The number of events seen so far. Read it *before* an attempt, and
    /// wait for it to change after the attempt failed, so an event in
    /// between is never missed.
    pub(crate) fn generation(&self) -> u64 {
        self.sub.generation.load(Ordering::Acquire)
    }

    /// Ready once the generation differs from `since`.
    pub(crate) fn poll_changed(&mut self, cx: &mut Context<'_>, since: u64) -> Poll<()> {
        let Some(notifier) = notifier() else {
            return Poll::Pending;
        };
        loop {
            if self.generation() != since {
                self.ready = None;
                return Poll::Ready(());
            }
            let ready = self.ready.get_or_insert_with(|| notifier.fd.readable());
            match Pin::new(ready).poll(cx) {
                Poll::Ready(_) => {
                    self.ready = None;
                    notifier.drain();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
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
                    let sub = Arc::new(Subscriber {
                        name,
                        generation: AtomicU64::new(0),
                    });
                    map.entry(wd).or_default().push(Arc::downgrade(&sub));
                    return Some(Watch {
                        sub,
                        wd,
                        ready: None,
                    });
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
                map.values()
                    .flatten()
                    .filter_map(Weak::upgrade)
                    .for_each(|s| s.bump());
                continue;
            }
            let wd = event.wd();
            if let Some(subs) = map.get(&wd) {
                let name = event.file_name();
                subs.iter()
                    .filter_map(Weak::upgrade)
                    .filter(|s| s.concerned_by(name))
                    .for_each(|s| s.bump());
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The kernel removed the watch (the inode is gone): forget
                // it, so no later watch with this number is removed by us.
                map.remove(&wd);
            }
        }
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
