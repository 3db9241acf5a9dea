//! The acquire state machine, written once and driven two ways.
//!
//! [`Core::poll`] moves an acquisition forward as far as it can and says
//! what it waits for through a [`Driver`]: a listener (an in-process
//! release), an instant (the next backoff attempt, the deadline) or a task
//! (an open or a kernel wait on a blocking thread). The async driver
//! (`Acquire`'s `Future` impl) polls those with the task's context; the
//! blocking driver parks the thread until one of them fires.
//!
//! The phases:
//! 1. `Start`: find this handle's entry, or open the lock file (`Opening`).
//! 2. Fast path: one attempt. If it fails, queue a slot.
//! 3. `Queued`: listen on the slot *first*, then check it (the "try again
//!    after registering" step, so a release in between is never missed),
//!    then wait for listener | backoff | deadline | pool task, and repeat.
//!
//! Dropping the core in any phase gives back exactly what that phase holds
//! (see `Drop`).

mod driver;

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use event_listener::EventListener;

use driver::block_on;
pub(crate) use driver::AsyncDriver;

use crate::backoff::BackoffState;
use crate::error::{Error, Op};
use crate::lock::Handle;
use crate::notify::Watch;
use crate::open::{self, open_lock_file};
use crate::registry::{Attempt, Entry, Progress, Slot};
use crate::rt::Task;
use crate::sys::{self, FileId};
use crate::{FileLockGuard, LockMode, Wait, WaitStrategy};

/// What a driver does for the state machine.
pub(crate) trait Driver {
    /// The current time on this acquisition's clock.
    fn now(&mut self) -> Instant;
    /// Polls an in-process wake-up.
    fn poll_listener(&mut self, listener: &mut EventListener) -> Poll<()>;
    /// Polls for a watch's generation to move past `since`.
    fn poll_watch(&mut self, watch: &mut Watch, since: u64) -> Poll<()>;
    /// Polls for `at` to arrive.
    fn poll_until(&mut self, at: Instant) -> Poll<()>;
    /// Starts `f`, which may block, in the way `work` calls for.
    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T>;
    /// Polls a task started by `run`.
    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>>;
    /// Whether a kernel wait may block the caller's own thread (a blocking
    /// caller with no deadline to honour).
    fn may_block(&self) -> bool;
}

/// The kinds of blocking work the state machine hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Opening (maybe creating) the lock file: short, but may block on a
    /// slow filesystem.
    Open,
    /// A kernel wait for the lock: as long as the other holder keeps it.
    KernelWait,
}

/// How soon to look again after an event-triggered attempt failed.
const SETTLE: Duration = Duration::from_micros(100);

type Opened = Result<open::Opened, Error>;

/// What a blocking-pool kernel wait came back with.
enum PoolOutcome {
    /// A fresh descriptor of the entry's file, holding the lock.
    Locked(File),
    /// The path no longer names the entry's file.
    Replaced,
}

struct Queued {
    entry: Arc<Entry>,
    slot: Arc<Slot>,
    listener: Option<EventListener>,
    /// When the head next retries the OS lock (backoff strategy).
    retry_at: Option<Instant>,
    /// A kernel wait in progress (blocking-pool strategy).
    pool: Option<Task<io::Result<PoolOutcome>>>,
    /// Whether this waiter was the head with nothing held at its last check.
    turn: bool,
    /// Signs of release by other processes, while it is this waiter's turn.
    watch: Option<Watch>,
    /// The watch's generation read just before the last attempt.
    watch_seen: u64,
    /// Whether a watch was tried for this turn (not retried if refused).
    watch_tried: bool,
    /// The last wake-up came from the watch.
    woken_by_event: bool,
}

impl Queued {
    fn new(entry: Arc<Entry>, slot: Arc<Slot>) -> Queued {
        Queued {
            entry,
            slot,
            listener: None,
            retry_at: None,
            pool: None,
            turn: false,
            watch: None,
            watch_seen: 0,
            watch_tried: false,
            woken_by_event: false,
        }
    }
}

enum Phase {
    Start,
    /// This acquisition opens the file for the handle (it holds the
    /// handle's opening claim).
    Opening(Task<Opened>),
    /// Another acquisition of this handle is opening the file.
    AwaitingOpen(EventListener),
    Queued(Queued),
    Done,
}

/// One acquisition in progress.
pub(crate) struct Core {
    handle: Arc<Handle>,
    mode: LockMode,
    wait: Wait,
    started: Option<Instant>,
    deadline: Option<Instant>,
    phase: Phase,
    backoff: BackoffState,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match &self.phase {
            Phase::Start => "start",
            Phase::Opening(_) | Phase::AwaitingOpen(_) => "opening",
            Phase::Queued(q) if q.turn => "contending",
            Phase::Queued(_) => "queued",
            Phase::Done => "done",
        };
        f.debug_struct("Acquire")
            .field("path", &self.handle.path)
            .field("mode", &self.mode)
            .field("wait", &self.wait)
            .field("phase", &phase)
            .finish()
    }
}

impl Core {
    pub(crate) fn new(handle: Arc<Handle>, mode: LockMode, wait: Wait) -> Self {
        let backoff = handle.options.backoff.start();
        Core {
            handle,
            mode,
            wait,
            started: None,
            deadline: None,
            phase: Phase::Start,
            backoff,
        }
    }

    pub(crate) fn offloads_open(&self) -> bool {
        self.handle.options.offload_open
    }

    pub(crate) fn has_deadline(&self) -> bool {
        !matches!(self.wait, Wait::Forever)
    }

    /// Whether the acquisition waits for another holder or waiter of this
    /// process (not for another process, nor on a kernel wait).
    pub(crate) fn waits_in_process(&self) -> bool {
        matches!(&self.phase, Phase::Queued(q) if !q.turn && q.pool.is_none())
    }

    /// Whether the queue has told this acquisition something since it last
    /// looked (its turn, a grant, or a retirement).
    pub(crate) fn notified(&self) -> bool {
        matches!(&self.phase, Phase::Queued(q) if q.slot.is_notified())
    }

    fn finish(
        &mut self,
        result: Result<FileLockGuard, Error>,
    ) -> Poll<Result<FileLockGuard, Error>> {
        // Replacing the phase without `cancel`: the caller has already
        // settled the slot (acquired, or removed from the queue). An
        // opening given up (a deadline) passes its claim on.
        if matches!(self.phase, Phase::Opening(_)) {
            self.handle.end_opening();
        }
        self.phase = Phase::Done;
        Poll::Ready(result)
    }

    fn acquired(&mut self, entry: Arc<Entry>) -> Poll<Result<FileLockGuard, Error>> {
        let guard = FileLockGuard::new(Arc::clone(&self.handle), entry, self.mode);
        self.finish(Ok(guard))
    }

    fn error(&mut self, op: Op, e: io::Error) -> Poll<Result<FileLockGuard, Error>> {
        let err = Error::io(&self.handle.path, op, e);
        self.finish(Err(err))
    }

    /// Steps 1 and 2 (see [`first_attempt`]), moving on to the phase they
    /// lead to.
    fn first_attempt(&mut self, entry: Arc<Entry>) -> Option<Poll<Result<FileLockGuard, Error>>> {
        match first_attempt(&self.handle, entry, self.mode, self.wait) {
            First::Done(result) => Some(self.finish(result)),
            First::Queued(entry, slot) => {
                self.phase = Phase::Queued(Queued::new(entry, slot));
                None
            }
            First::Retired => {
                self.phase = Phase::Start;
                None
            }
        }
    }

    /// Drives the acquisition as far as it goes without waiting.
    pub(crate) fn poll<D: Driver>(&mut self, d: &mut D) -> Poll<Result<FileLockGuard, Error>> {
        // Only a deadline needs the clock: the uncontended path of a wait
        // with none reads no time.
        if self.started.is_none() && matches!(self.wait, Wait::For(_) | Wait::Until(_)) {
            let now = d.now();
            self.started = Some(now);
            self.deadline = self.wait.deadline(now);
        }
        loop {
            match &mut self.phase {
                Phase::Done => {
                    let e = io::Error::other("acquire future polled after it completed");
                    return Poll::Ready(Err(Error::io(&self.handle.path, Op::Lock, e)));
                }
                Phase::Start => match self.handle.cached() {
                    Some(entry) => {
                        if let Some(done) = self.first_attempt(entry) {
                            return done;
                        }
                    }
                    None => match self.handle.claim_opening() {
                        Ok(()) => {
                            let handle = Arc::clone(&self.handle);
                            // Set before running: an inline open finishes in
                            // `run`, and the phase's cleanup must own the
                            // claim from the start.
                            self.phase = Phase::Opening(Task::Done(None));
                            let task = d.run(Work::Open, move || {
                                #[cfg(test)]
                                tests::count_open(&handle.path);
                                open_lock_file(
                                    &handle.path,
                                    &handle.anchor,
                                    &handle.options,
                                    handle.format(),
                                )
                            });
                            self.phase = Phase::Opening(task);
                        }
                        Err(listener) => match self.handle.cached() {
                            // Opened between the check and the claim.
                            Some(entry) => {
                                if let Some(done) = self.first_attempt(entry) {
                                    return done;
                                }
                            }
                            None => self.phase = Phase::AwaitingOpen(listener),
                        },
                    },
                },
                Phase::AwaitingOpen(listener) => {
                    if d.poll_listener(listener).is_ready() {
                        self.phase = Phase::Start;
                        continue;
                    }
                    if let Some(deadline) = self.deadline {
                        if d.poll_until(deadline).is_ready() {
                            return self.timed_out(d);
                        }
                    }
                    return Poll::Pending;
                }
                Phase::Opening(task) => match d.poll_task(task) {
                    Poll::Ready(Ok(Ok(opened))) => {
                        let entry = self.handle.adopt(opened);
                        self.phase = Phase::Start;
                        self.handle.end_opening();
                        if let Some(done) = self.first_attempt(entry) {
                            return done;
                        }
                    }
                    Poll::Ready(Ok(Err(e))) => {
                        self.phase = Phase::Start;
                        self.handle.end_opening();
                        return self.finish(Err(e));
                    }
                    Poll::Ready(Err(e)) => {
                        self.phase = Phase::Start;
                        self.handle.end_opening();
                        return self.error(Op::Open, e);
                    }
                    Poll::Pending => {
                        if let Some(deadline) = self.deadline {
                            if d.poll_until(deadline).is_ready() {
                                return self.timed_out(d);
                            }
                        }
                        return Poll::Pending;
                    }
                },
                Phase::Queued(_) => match self.poll_queued(d) {
                    Step::Again => {}
                    Step::Ready(r) => return r,
                },
            }
        }
    }

    fn poll_queued<D: Driver>(&mut self, d: &mut D) -> Step {
        let Phase::Queued(q) = &mut self.phase else {
            return Step::Again;
        };
        // Listen before checking, so no notification falls in between.
        if q.listener.is_none() {
            q.listener = Some(q.slot.listen());
        }

        if let Some(task) = &mut q.pool {
            if let Poll::Ready(out) = d.poll_task(task) {
                q.pool = None;
                match out {
                    Ok(Ok(PoolOutcome::Locked(file))) => {
                        match q.entry.adopt_locked(&q.slot, file, &self.handle) {
                            Progress::Acquired => {
                                let entry = Arc::clone(&q.entry);
                                return Step::Ready(self.acquired(entry));
                            }
                            Progress::Retired => {
                                self.phase = Phase::Start;
                                return Step::Again;
                            }
                            Progress::Waiting | Progress::Contending => {}
                        }
                    }
                    Ok(Ok(PoolOutcome::Replaced)) => q.entry.retire_if_idle(),
                    Ok(Err(e)) | Err(e) => {
                        q.entry.cancel(&q.slot, &self.handle);
                        return Step::Ready(self.error(Op::Lock, e));
                    }
                }
            }
        }

        if let Some(watch) = &q.watch {
            q.watch_seen = watch.generation();
        }
        match q.entry.advance(&q.slot, &self.handle) {
            Err(e) => return Step::Ready(self.error(Op::Lock, e)),
            Ok(Progress::Acquired) => {
                let entry = Arc::clone(&q.entry);
                return Step::Ready(self.acquired(entry));
            }
            Ok(Progress::Retired) => {
                self.phase = Phase::Start;
                return Step::Again;
            }
            Ok(Progress::Waiting) => {
                q.turn = false;
                q.retry_at = None;
                q.watch = None;
                q.watch_tried = false;
            }
            Ok(Progress::Contending) => {
                if !q.turn {
                    q.turn = true;
                    self.backoff.reset();
                }
                let strategy = match (self.handle.is_strict(), d.may_block()) {
                    // A soft lock has no kernel wait to offer.
                    (false, _) => WaitStrategy::Backoff,
                    // A blocking caller with no deadline: its thread is
                    // parked anyway, and parked in the kernel's lock call it
                    // is handed the lock directly, with no wake-up source.
                    (true, true) => WaitStrategy::BlockingPool,
                    (true, false) => self.handle.options.strategy,
                };
                match strategy {
                    WaitStrategy::Backoff => {
                        if !q.watch_tried && self.handle.options.file_events {
                            q.watch_tried = true;
                            q.watch = q.entry.watch(&self.handle);
                            if q.watch.is_some() {
                                // A release between the attempt and the
                                // watch fired nothing we can see: look again.
                                return Step::Again;
                            }
                        }
                        let now = d.now();
                        if std::mem::take(&mut q.woken_by_event) {
                            // The event may have come a moment before the
                            // unlock (the kernel reports a close just before
                            // it drops the lock): look again soon.
                            let soon = now + SETTLE;
                            q.retry_at = Some(q.retry_at.map_or(soon, |r| r.min(soon)));
                        } else if q.retry_at.is_none() {
                            // A delay past what `Instant` can hold means no
                            // retry timer: events and the deadline remain.
                            q.retry_at = now.checked_add(self.backoff.next_delay());
                        }
                    }
                    WaitStrategy::BlockingPool => {
                        if q.pool.is_none() {
                            let path = self.handle.path.clone();
                            let (id, mode) = (q.entry.id(), self.mode);
                            let ours = q.entry.is_ours();
                            let verify = self.handle.options.verifies_identity();
                            let spare = q.entry.take_spare();
                            q.pool = Some(d.run(Work::KernelWait, move || {
                                kernel_wait(spare, path, ours, id, mode, verify)
                            }));
                            // Poll it once: the blocking driver may have run
                            // it to completion already.
                            return Step::Again;
                        }
                    }
                }
            }
        }

        if let Some(listener) = &mut q.listener {
            if d.poll_listener(listener).is_ready() {
                q.listener = None;
                return Step::Again;
            }
        }
        if let Some(watch) = &mut q.watch {
            if d.poll_watch(watch, q.watch_seen).is_ready() {
                q.woken_by_event = true;
                return Step::Again;
            }
        }
        let wake = match (q.retry_at, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = wake {
            if d.poll_until(at).is_ready() {
                let now = d.now();
                if self.deadline.is_some_and(|deadline| now >= deadline) {
                    return Step::Ready(self.timed_out(d));
                }
                if q.retry_at.is_some_and(|r| now >= r) {
                    q.retry_at = None;
                }
                return Step::Again;
            }
        }
        Step::Ready(Poll::Pending)
    }

    fn timed_out<D: Driver>(&mut self, d: &mut D) -> Poll<Result<FileLockGuard, Error>> {
        let (mut holder, mut os_holders) = (None, Vec::new());
        if let Phase::Queued(q) = &self.phase {
            q.entry.cancel(&q.slot, &self.handle);
            holder = q.entry.holder_for_error();
            os_holders = q.entry.os_holders_for_error(&self.handle);
        }
        let waited = self
            .started
            .map(|s| d.now().saturating_duration_since(s))
            .unwrap_or_default();
        let err = Error::timed_out(&self.handle.path, waited)
            .with_holder(holder)
            .with_os_holders(os_holders);
        self.finish(Err(err))
    }
}

/// What the first attempt on a resolved entry came to.
enum First {
    /// Acquired, or failed for good (an error, or busy for a try-once).
    Done(Result<FileLockGuard, Error>),
    /// Queued: wait with this slot.
    Queued(Arc<Entry>, Arc<Slot>),
    /// The entry no longer stands for the file: resolve the path again.
    Retired,
}

/// Steps 1 and 2: the fast path on a resolved entry. Takes the lock if it
/// is free (and nobody in this process is queued for it), else queues.
fn first_attempt(handle: &Arc<Handle>, entry: Arc<Entry>, mode: LockMode, wait: Wait) -> First {
    let enqueue = wait != Wait::TryOnce;
    match entry.try_or_enqueue(mode, handle, enqueue) {
        Ok(Attempt::Acquired) => {
            First::Done(Ok(FileLockGuard::new(Arc::clone(handle), entry, mode)))
        }
        Ok(Attempt::Busy) => {
            let err = Error::would_block(&handle.path)
                .with_holder(entry.holder_for_error())
                .with_os_holders(entry.os_holders_for_error(handle));
            First::Done(Err(err))
        }
        Ok(Attempt::Queued(slot)) => First::Queued(entry, slot),
        Ok(Attempt::Retired) => First::Retired,
        Err(e) => First::Done(Err(Error::io(&handle.path, Op::Lock, e))),
    }
}

/// The blocking front door. The first attempt needs no state machine: only
/// an acquisition that must wait, or open the file first, builds one (about
/// 40 ns of an uncontended acquire + release).
pub(crate) fn acquire_blocking(
    handle: &Arc<Handle>,
    mode: LockMode,
    wait: Wait,
) -> Result<FileLockGuard, Error> {
    let queued = match handle
        .cached()
        .map(|entry| first_attempt(handle, entry, mode, wait))
    {
        Some(First::Done(result)) => return result,
        Some(First::Queued(entry, slot)) => Some(Queued::new(entry, slot)),
        Some(First::Retired) | None => None,
    };
    // From here the state machine owns the slot: dropping it leaves the
    // queue.
    let mut core = Core::new(Arc::clone(handle), mode, wait);
    if let Some(q) = queued {
        core.phase = Phase::Queued(q);
    }
    block_on(core)
}

enum Step {
    Again,
    Ready(Poll<Result<FileLockGuard, Error>>),
}

impl Drop for Core {
    /// Cleanup keyed on the phase. `Opening`: the task is dropped, and its
    /// file, if it opens one, is closed on its thread. `Queued`: the slot
    /// leaves the queue (passing the turn on if it was at the head), a lock
    /// it was handed is released, and a kernel wait in progress is
    /// abandoned: its thread drops the descriptor it locked the moment the
    /// kernel grants it, which releases it.
    fn drop(&mut self) {
        match &self.phase {
            Phase::Queued(q) => q.entry.cancel(&q.slot, &self.handle),
            // Whoever waits for this opening opens the file itself.
            Phase::Opening(_) => self.handle.end_opening(),
            _ => {}
        }
    }
}

/// Runs on a blocking thread: waits in the kernel on a descriptor of its
/// own, never the entry's (so abandoning it can never release a lock
/// somebody else took through the entry's descriptor). That is `spare`, the
/// one an earlier kernel wait left, or else one opened now and checked to
/// be the entry's file.
fn kernel_wait(
    spare: Option<File>,
    path: PathBuf,
    ours: bool,
    id: FileId,
    mode: LockMode,
    verify: bool,
) -> io::Result<PoolOutcome> {
    let mut file = match spare {
        Some(file) => file,
        None => match open::reopen(&path, id, ours)? {
            Some(file) => file,
            None => return Ok(PoolOutcome::Replaced),
        },
    };
    if let Err(e) = sys::lock_wait(&file, mode) {
        // NFSv4 refuses an exclusive lock on a read-only descriptor.
        if !(mode == LockMode::Exclusive && sys::is_bad_descriptor(&e)) {
            return Err(e);
        }
        let Some(rw) = open::reopen_for_exclusive(&path, id)? else {
            return Ok(PoolOutcome::Replaced);
        };
        file = rw;
        sys::lock_wait(&file, mode)?;
    }
    if verify && sys::path_id(&path)? != Some(id) {
        return Ok(PoolOutcome::Replaced);
    }
    Ok(PoolOutcome::Locked(file))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use crate::FileLock;

    static OPENS: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

    /// Counts the opens of `path`'s lock file (tests run in parallel: by
    /// path).
    pub(super) fn count_open(path: &Path) {
        let mut opens = OPENS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *opens
            .get_or_insert_with(HashMap::new)
            .entry(path.to_path_buf())
            .or_default() += 1;
    }

    fn opens_of(path: &Path) -> usize {
        let opens = OPENS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        opens
            .as_ref()
            .and_then(|m| m.get(path).copied())
            .unwrap_or(0)
    }

    /// Many tasks first polled together on a fresh handle open its file
    /// once between them, not once each (with opening offloaded, as by
    /// default, and inline).
    #[test]
    fn a_fresh_handle_opens_its_file_once_for_many_waiters() {
        let dir = tempfile::tempdir().unwrap();
        for offload in [true, false] {
            let path = dir.path().join(format!("fresh-{offload}.lock"));
            let lock =
                FileLock::with_options(&path, crate::LockOptions::new().offload_open(offload));
            let waiters: Vec<_> = (0..50).map(|_| lock.lock()).collect();
            futures::executor::block_on(futures::future::join_all(
                waiters
                    .into_iter()
                    .map(|w| async move { drop(w.await.unwrap()) }),
            ));
            assert_eq!(opens_of(&path), 1, "offload {offload}");
        }
    }

    /// An opening given up (dropped) lets a waiting acquisition open the
    /// file itself.
    #[test]
    fn a_dropped_opening_passes_the_turn_on() {
        use std::future::Future;
        use std::task::{Context, Poll};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropped.lock");
        let lock = FileLock::new(&path);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(lock.lock());
        // Polled once: it claims the opening and starts it on the pool.
        if let Poll::Ready(done) = first.as_mut().poll(&mut cx) {
            drop(done.unwrap());
        }
        let mut second = Box::pin(lock.lock());
        if let Poll::Ready(done) = second.as_mut().poll(&mut cx) {
            // The pool was quicker than this thread: nothing left to test.
            drop(done.unwrap());
            return;
        }
        drop(first);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(futures::executor::block_on(second).map(drop));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(20));
        assert!(
            matches!(got, Ok(Ok(()))),
            "the waiter never got the lock: {got:?}"
        );
    }
}
