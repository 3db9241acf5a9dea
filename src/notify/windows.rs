//! Windows: directory change notifications on the lock file's directory.
//!
//! Windows has no per-file event a waiter could watch, so a waiter watches
//! the directory that holds the lock file (or a soft lock's sidecar) with
//! `FindFirstChangeNotificationW`, for entries coming and going, last-write
//! times and attributes. A lockyard holder announces its release by setting
//! the file's times after unlocking (`announce_release`), which Windows
//! reports as a last-write change and wine (through inotify) as an
//! attribute change; a soft lock is released by removing its sidecar.
//!
//! The notification names no entry: every change in the directory wakes
//! its waiters, who try once more and wait again if the lock is still
//! taken. Writes count as changes too, so a new holder stamping its record
//! wakes the others for nothing; that costs an attempt, never correctness.
//!
//! One thread per process (started by the first watch) waits on every
//! watched directory's handle at once with `WaitForMultipleObjects`, bumps
//! the generation of the waiters concerned and wakes their tasks. A wait
//! takes at most 64 handles, one of which tells the thread that the set
//! changed, so at most 63 directories are watched at a time; waiters
//! beyond that rely on backoff, which stays armed underneath every watch.
//! Only the thread closes a change handle, after its wait returned, so it
//! never waits on a closed one.
#![allow(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0};
use windows_sys::Win32::Storage::FileSystem::{
    FindCloseChangeNotification, FindFirstChangeNotificationW, FindNextChangeNotification,
    FILE_NOTIFY_CHANGE_ATTRIBUTES, FILE_NOTIFY_CHANGE_FILE_NAME, FILE_NOTIFY_CHANGE_LAST_WRITE,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, SetEvent, WaitForMultipleObjects, INFINITE,
};

use super::subscriber::Subscriber;
use crate::rt::Clock;

/// `WaitForMultipleObjects` takes at most 64 handles; one is the thread's
/// own event.
const MAX_DIRS: usize = 63;

/// A directory change notification handle, closed with
/// `FindCloseChangeNotification`.
struct Change(HANDLE);

// SAFETY: a kernel handle is a process-wide value, usable from any thread;
// `Change` only waits on, re-arms and closes it.
unsafe impl Send for Change {}

impl Change {
    /// Watches `dir` (not its subtree) for entries coming and going, and for
    /// last-write and attribute changes of its entries.
    fn open(dir: &Path) -> std::io::Result<Change> {
        let wide: Vec<u16> = dir.as_os_str().encode_wide().chain([0]).collect();
        let filter = FILE_NOTIFY_CHANGE_FILE_NAME
            | FILE_NOTIFY_CHANGE_LAST_WRITE
            | FILE_NOTIFY_CHANGE_ATTRIBUTES;
        // SAFETY: `wide` is a NUL-terminated UTF-16 string that outlives the
        // call.
        let handle = unsafe { FindFirstChangeNotificationW(wide.as_ptr(), 0, filter) };
        if handle == INVALID_HANDLE_VALUE || handle.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Change(handle))
    }

    /// Re-arms the handle after it was signalled.
    fn rearm(&self) -> bool {
        // SAFETY: the handle is open: only dropping `self` closes it.
        unsafe { FindNextChangeNotification(self.0) != 0 }
    }
}

impl Drop for Change {
    fn drop(&mut self) {
        // SAFETY: the handle came from FindFirstChangeNotificationW and is
        // closed exactly once, here.
        unsafe { FindCloseChangeNotification(self.0) };
    }
}

/// The process's watching thread and what it watches.
struct Watcher {
    state: Mutex<State>,
    /// Auto-reset event that makes the thread take the watched set anew.
    changed: OwnedHandle,
}

#[derive(Default)]
struct State {
    dirs: Vec<Dir>,
    /// Handles of directories nobody watches any more, for the thread to
    /// close once its wait has returned.
    retired: Vec<Change>,
    next_id: u64,
}

/// One watched directory and the subscribers sharing it.
struct Dir {
    id: u64,
    path: PathBuf,
    change: Change,
    subs: Vec<Weak<Subscriber>>,
}

/// One waiter's subscription to changes in a lock file's directory.
/// Dropping it stops the watch when nobody else in the process uses it.
pub(crate) struct Watch {
    sub: Arc<Subscriber>,
    id: u64,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("dir", &self.id)
            .field("generation", &self.generation())
            .finish()
    }
}

impl Watch {
    /// Watches the directory of the lock file at `path`.
    pub(crate) fn file(_file: &File, path: &Path) -> Option<Watch> {
        Watch::dir_of(path)
    }

    /// Watches the directory of `path` (a soft lock's sidecar).
    pub(crate) fn dir_entry(path: &Path) -> Option<Watch> {
        Watch::dir_of(path)
    }

    fn dir_of(path: &Path) -> Option<Watch> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Absolute, so a later change of the working directory cannot make
        // one directory two or two one.
        let dir = std::path::absolute(dir).ok()?;
        let watcher = watcher()?;
        if let Some(watch) = watcher.join_dir(&dir) {
            return Some(watch);
        }
        if watcher.state().dirs.len() >= MAX_DIRS {
            report_limit();
            return None;
        }
        // Opened with no lock held: it is a system call.
        let change = match Change::open(&dir) {
            Ok(change) => change,
            Err(e) => {
                log::debug!(
                    "lockyard: cannot watch {} ({e}); waiting by backoff",
                    dir.display()
                );
                return None;
            }
        };
        let mut state = watcher.state();
        // Another waiter may have added it meanwhile: share theirs, and
        // close ours (the thread never saw it).
        if let Some(existing) = state.dirs.iter_mut().find(|d| d.path == dir) {
            return Some(Watch::subscribe(existing));
        }
        if state.dirs.len() >= MAX_DIRS {
            drop(state);
            report_limit();
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.dirs.push(Dir {
            id,
            path: dir,
            change,
            subs: Vec::new(),
        });
        let watch = state.dirs.last_mut().map(Watch::subscribe);
        drop(state);
        watcher.poke();
        watch
    }

    fn subscribe(dir: &mut Dir) -> Watch {
        let sub = Subscriber::new(None);
        dir.subs.push(Arc::downgrade(&sub));
        Watch { sub, id: dir.id }
    }

    /// Another subscription to the same directory watch, without a system
    /// call; `None` if the watch has ended (its directory is gone).
    pub(crate) fn join(&self) -> Option<Watch> {
        let watcher = watcher()?;
        let mut state = watcher.state();
        let dir = state.dirs.iter_mut().find(|d| d.id == self.id)?;
        Some(Watch::subscribe(dir))
    }

    /// The number of changes seen so far. Read it *before* an attempt, and
    /// wait for it to change after the attempt failed.
    pub(crate) fn generation(&self) -> u64 {
        self.sub.generation()
    }

    /// Ready once the generation differs from `since`. The watching thread
    /// wakes the task, whatever executor runs it.
    pub(crate) fn poll_changed(
        &mut self,
        cx: &mut Context<'_>,
        since: u64,
        _clock: Clock,
    ) -> Poll<()> {
        // Before looking at the generation, so a change in between wakes us.
        self.sub.set_waker(cx.waker());
        if self.generation() != since {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(watcher) = watcher() else { return };
        let mut state = watcher.state();
        let Some(at) = state.dirs.iter().position(|d| d.id == self.id) else {
            return;
        };
        let me: *const Subscriber = &*self.sub;
        let dir = &mut state.dirs[at];
        dir.subs
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), me));
        if dir.subs.is_empty() {
            let dir = state.dirs.swap_remove(at);
            state.retired.push(dir.change);
            drop(state);
            watcher.poke();
        }
    }
}

fn watcher() -> Option<&'static Watcher> {
    static WATCHER: OnceLock<Option<Watcher>> = OnceLock::new();
    let watcher = WATCHER
        .get_or_init(|| {
            // SAFETY: no security attributes and no name: an unnamed
            // auto-reset event, initially not signalled.
            let event = unsafe { CreateEventW(std::ptr::null(), 0, 0, std::ptr::null()) };
            if event.is_null() {
                log::warn!(
                    "lockyard: no event for the watching thread ({}); waiters for other \
                     processes will find releases by backoff alone",
                    std::io::Error::last_os_error()
                );
                return None;
            }
            // SAFETY: `event` is a handle we just created and own alone.
            let changed = unsafe { OwnedHandle::from_raw_handle(event as _) };
            Some(Watcher {
                state: Mutex::default(),
                changed,
            })
        })
        .as_ref()?;
    start_thread(watcher)
}

/// Starts the watching thread once; `None` if it could not be started.
fn start_thread(watcher: &'static Watcher) -> Option<&'static Watcher> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = *STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("lockyard-watch".into())
            .spawn(move || watcher.run());
        if let Err(e) = &spawned {
            log::warn!(
                "lockyard: cannot start the watching thread ({e}); waiters for other \
                 processes will find releases by backoff alone"
            );
        }
        spawned.is_ok()
    });
    started.then_some(watcher)
}

impl Watcher {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the thread that the watched set changed.
    fn poke(&self) {
        // SAFETY: the event is open for as long as the watcher, which is
        // never dropped.
        unsafe { SetEvent(self.changed.as_raw_handle() as HANDLE) };
    }

    /// Adds a subscriber to the watch of `dir`, if there is one.
    fn join_dir(&self, dir: &Path) -> Option<Watch> {
        let mut state = self.state();
        let dir = state.dirs.iter_mut().find(|d| d.path == dir)?;
        Some(Watch::subscribe(dir))
    }

    /// The thread's loop: wait for any watched directory (or the set) to
    /// change, wake who is concerned, re-arm, repeat.
    fn run(&self) {
        let mut handles: Vec<HANDLE> = Vec::with_capacity(MAX_DIRS + 1);
        let mut ids: Vec<u64> = Vec::with_capacity(MAX_DIRS);
        loop {
            {
                let mut state = self.state();
                // The wait that could have used them has returned.
                state.retired.clear();
                handles.clear();
                ids.clear();
                handles.push(self.changed.as_raw_handle() as HANDLE);
                for dir in &state.dirs {
                    handles.push(dir.change.0);
                    ids.push(dir.id);
                }
            }
            // At most MAX_DIRS + 1 = 64 handles.
            let count = handles.len() as u32;
            // SAFETY: every handle in `handles` stays open until the call
            // returns: the event lives as long as the watcher, and change
            // handles are closed only by this thread, at the top of the loop.
            let woke = unsafe { WaitForMultipleObjects(count, handles.as_ptr(), 0, INFINITE) };
            let index = woke.wrapping_sub(WAIT_OBJECT_0) as usize;
            if index == 0 {
                // The set changed.
                continue;
            }
            let Some(&id) = index.checked_sub(1).and_then(|i| ids.get(i)) else {
                // The wait failed, which no valid set of handles makes it
                // do. Backoff covers the waiters; do not spin meanwhile.
                log::debug!(
                    "lockyard: waiting for directory changes failed ({}); retrying",
                    std::io::Error::last_os_error()
                );
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let woken = self.changed_dir(id);
            woken.into_iter().for_each(Waker::wake);
        }
    }

    /// Bumps the subscribers of directory `id` and re-arms its handle;
    /// returns the tasks to wake.
    fn changed_dir(&self, id: u64) -> Vec<Waker> {
        let mut state = self.state();
        // Unwatched meanwhile: its handle is retired.
        let Some(at) = state.dirs.iter().position(|d| d.id == id) else {
            return Vec::new();
        };
        let dir = &state.dirs[at];
        let woken = dir
            .subs
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|s| s.bump())
            .collect();
        if !dir.change.rearm() {
            // The directory went away: its waiters find out by trying,
            // and by backoff after that.
            let dir = state.dirs.swap_remove(at);
            state.retired.push(dir.change);
        }
        woken
    }
}

/// Says once per process that waiters fall back to backoff.
fn report_limit() {
    crate::trace::watch_limit("directory change notification");
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        log::warn!(
            "lockyard: {MAX_DIRS} directories watched already; waiters for other \
             processes in further directories fall back to backoff"
        );
    }
}
