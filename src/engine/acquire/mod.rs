//! The acquire state machine, written once and driven two ways.
//!
//! [`Core::poll`] moves an acquisition forward as far as it can and says
//! what it waits for through a [`Driver`]: a listener (an in-process
//! release), a wake hint (another process may have released), an instant
//! (the next backoff attempt, the deadline) or a task (an open or a
//! blocking wait on a blocking thread). The async driver (the public
//! future) polls those with the task's context; the blocking driver parks
//! the thread until one of them fires. A third driver, in the tests, runs
//! the machine on a fake clock.
//!
//! The phases ([`Phase`]):
//! 1. `Start`: find this handle's entry, or open the resource (`Opening`,
//!    or `AwaitingOpen` while another acquisition of the handle opens it).
//! 2. Fast path: one attempt. If it fails, queue a slot.
//! 3. `Queued`: listen on the slot *first*, then check it (so a release in
//!    between is never missed), then wait as [`Waiting`] says, and repeat.
//!
//! Dropping the core in any phase gives back exactly what that phase holds
//! (see `Drop`).

mod driver;
mod state;

use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

pub(crate) use driver::{block_on, AsyncDriver, Driver, Work};
use state::{Attempting, Phase, Queued, Retry, Strategy, Trying, Waiting};

use super::abandon::FireOnDrop;
use super::Abandon;

use super::entry::{Attempt, Begun, Entry, Progress, Record};
use super::handle::Handle;
use super::queue::Slot;
use super::resource::{Holders, Waited};
use super::BackoffState;
use crate::error::{Error, Op};
use crate::mode::{LockMode, Wait, WaitStrategy};
use crate::rt::Task;

/// How long a wait on a remote resource that timed out asks who holds the
/// lock before it reports the timeout without naming the holder.
const LOOKUP_GRACE: Duration = Duration::from_millis(250);

/// How soon to look again after a hint-triggered attempt failed.
const SETTLE: Duration = Duration::from_micros(100);

/// After how many lost races in a row (a release was signalled, and the
/// attempt that followed found the lock taken again) an adaptive wait
/// parks a pool thread in the backend's blocking wait instead.
///
/// A process taking the lock back to back wins nearly every race against
/// a waiter that must first be woken through its executor, and each race
/// costs both a wake-up; a thread blocked in the kernel is queued there
/// and retries the instant it is woken. Measured on the peers benchmark's
/// 4-process counter: events alone handed the lock between processes
/// ~1,300 times in 2,000 increments, kernel waits ~30 times.
const RACES_BEFORE_BLOCKING: u32 = 2;

/// What an acquisition comes to: the entry it now holds the lock through,
/// and the record its hold published.
pub(crate) type Granted = Result<(Arc<Entry>, Record), Error>;

/// One acquisition in progress.
pub(crate) struct Core {
    handle: Arc<Handle>,
    mode: LockMode,
    wait: Wait,
    started: Option<Instant>,
    deadline: Option<Instant>,
    phase: Phase,
    backoff: BackoffState,
    /// Decided at the first contended check, then kept.
    strategy: Option<Strategy>,
    /// When it started waiting, for the `tracing` events.
    #[cfg(feature = "tracing")]
    waiting_since: Option<Instant>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("path", &self.handle.path)
            .field("mode", &self.mode)
            .field("wait", &self.wait)
            .field("phase", &self.phase.name())
            .finish()
    }
}

impl Core {
    pub(crate) fn new(handle: Arc<Handle>, mode: LockMode, wait: Wait) -> Self {
        let backoff = handle.config.backoff.start();
        Core {
            handle,
            mode,
            wait,
            started: None,
            deadline: None,
            phase: Phase::Start,
            backoff,
            strategy: None,
            #[cfg(feature = "tracing")]
            waiting_since: None,
        }
    }

    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    pub(crate) fn mode(&self) -> LockMode {
        self.mode
    }

    pub(crate) fn offloads_open(&self) -> bool {
        self.handle.config.offload_open
    }

    pub(crate) fn has_deadline(&self) -> bool {
        !matches!(self.wait, Wait::Forever)
    }

    /// Whether opening this handle's resource may wait on a network.
    pub(crate) fn open_may_wait(&self) -> bool {
        self.handle.config.open_may_wait
    }

    /// Whether the acquisition waits for another holder or waiter of this
    /// process (not for another process, nor in a blocking wait).
    pub(crate) fn waits_in_process(&self) -> bool {
        matches!(&self.phase, Phase::Queued(q) if matches!(q.waiting, Waiting::InLine))
    }

    /// Whether the queue has told this acquisition something since it last
    /// looked (its turn, a grant, or a retirement).
    pub(crate) fn notified(&self) -> bool {
        matches!(&self.phase, Phase::Queued(q) if q.slot.is_notified())
    }

    /// It found the lock taken and waits: says so to `tracing`.
    fn note_waiting(&mut self) {
        if let Phase::Queued(q) = &self.phase {
            crate::trace::waiting(&self.handle.path, self.mode, || {
                q.entry.holders(&self.handle).describe()
            });
        }
        #[cfg(feature = "tracing")]
        {
            self.waiting_since = Some(Instant::now());
        }
    }

    fn finish(&mut self, result: Granted) -> Poll<Granted> {
        #[cfg(feature = "tracing")]
        if let (Some(since), Ok(_)) = (self.waiting_since.take(), &result) {
            crate::trace::acquired_after(&self.handle.path, since.elapsed());
        }
        // Replacing the phase without `cancel`: the caller has already
        // settled the slot (acquired, or removed from the queue). An
        // opening given up (a deadline) passes its claim on.
        if matches!(self.phase, Phase::Opening(..)) {
            self.handle.end_opening();
        }
        self.phase = Phase::Done;
        Poll::Ready(result)
    }

    fn error(&mut self, op: Op, e: io::Error) -> Poll<Granted> {
        let err = Error::io(self.handle.subject(), op, e);
        self.finish(Err(err))
    }

    /// Steps 1 and 2 (see [`first_attempt`]), moving on to the phase they
    /// lead to.
    fn first_attempt<D: Driver>(
        &mut self,
        d: &mut D,
        entry: Arc<Entry>,
        inline: bool,
    ) -> Option<Poll<Granted>> {
        let attempts = self.wait == Wait::TryOnce || entry.attempts_before_waiting();
        if !inline && entry.is_remote() && attempts {
            // A first attempt on a remote resource by a future or under a
            // deadline: never a round trip that blocks the executor's
            // thread, and the deadline bounds it. Busy, it queues (and then
            // waits in the server).
            let enqueue = self.wait != Wait::TryOnce;
            if entry.polls_attempts() {
                // Made by polling on this task, where the resource can.
                match entry.begin_polled(self.mode, enqueue, &self.handle) {
                    Ok(Begun::Running(attempt)) => {
                        let attempting =
                            Attempting::new(entry, attempt, &self.handle, self.mode, enqueue);
                        self.phase = Phase::Attempting(attempting);
                        return None;
                    }
                    Ok(Begun::Settled(attempt)) => {
                        return self.settle(first_of(&self.handle, entry, Ok(attempt)));
                    }
                    Err(e) => return self.settle(first_of(&self.handle, entry, Err(e))),
                    Ok(Begun::Pool) => {}
                }
            }
            // Otherwise on the pool.
            let (handle, mode, wait) = (Arc::clone(&self.handle), self.mode, self.wait);
            let attempt = move || first_attempt(&handle, entry, mode, wait, true);
            let run = |f| d.run(Work::RoundTrip, f);
            self.phase = Phase::Trying(Trying::start(&self.handle, mode, attempt, run));
            return None;
        }
        self.settle(first_attempt(
            &self.handle,
            entry,
            self.mode,
            self.wait,
            inline,
        ))
    }

    /// Moves on to the phase a first attempt leads to.
    fn settle(&mut self, first: First) -> Option<Poll<Granted>> {
        match first {
            First::Done(result) => Some(self.finish(result)),
            First::Queued(q) => {
                self.phase = Phase::Queued(q);
                self.note_waiting();
                None
            }
            First::Retired => {
                self.phase = Phase::Start;
                None
            }
        }
    }

    /// Drives the acquisition as far as it goes without waiting.
    pub(crate) fn poll<D: Driver>(&mut self, d: &mut D) -> Poll<Granted> {
        // Only a deadline needs the clock: the uncontended path of a wait
        // with none reads no time.
        if self.started.is_none() && matches!(self.wait, Wait::For(_) | Wait::Until(_)) {
            let now = d.now();
            self.started = Some(now);
            self.deadline = self.wait.deadline(now);
        }
        // A remote resource's round trip is made on this thread only by a
        // caller that blocks anyway: a blocking caller that tries once, or
        // waits with no deadline.
        let inline = d.may_block() || (self.wait == Wait::TryOnce && d.caller_blocks());
        loop {
            match &mut self.phase {
                Phase::Done => {
                    let e = io::Error::other("acquire future polled after it completed");
                    return Poll::Ready(Err(Error::io(self.handle.subject(), Op::Lock, e)));
                }
                Phase::Start => match self.handle.cached() {
                    Some(entry) => {
                        if let Some(done) = self.first_attempt(d, entry, inline) {
                            return done;
                        }
                    }
                    None => match self.handle.claim_opening() {
                        Ok(()) => {
                            let handle = Arc::clone(&self.handle);
                            // Set before running: an inline open finishes in
                            // `run`, and the phase's cleanup must own the
                            // claim from the start.
                            let abandon = Abandon::new();
                            let fire = FireOnDrop(abandon.clone());
                            self.phase = Phase::Opening(crate::rt::Task::Done(None), fire);
                            let task = d.run(Work::Open, move || {
                                #[cfg(test)]
                                tests::count_open(&handle.path);
                                handle.open(&abandon)
                            });
                            if let Phase::Opening(slot, _) = &mut self.phase {
                                *slot = task;
                            }
                        }
                        Err(listener) => match self.handle.cached() {
                            // Opened between the check and the claim.
                            Some(entry) => {
                                if let Some(done) = self.first_attempt(d, entry, inline) {
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
                    return self.pending_until_deadline(d);
                }
                Phase::Opening(task, _) => match d.poll_task(task) {
                    Poll::Ready(Ok(Ok((key, resource)))) => {
                        let entry = self.handle.adopt(key, resource);
                        self.phase = Phase::Start;
                        self.handle.end_opening();
                        if let Some(done) = self.first_attempt(d, entry, inline) {
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
                    Poll::Pending => return self.pending_until_deadline(d),
                },
                Phase::Queued(_) => match self.poll_queued(d, inline) {
                    Step::Again => {}
                    Step::Ready(r) => return r,
                },
                Phase::Trying(trying) => match d.poll_task(&mut trying.task) {
                    Poll::Ready(Ok(())) => match trying.take() {
                        Some(first) => {
                            self.phase = Phase::Start;
                            if let Some(done) = self.settle(first) {
                                return done;
                            }
                        }
                        None => {
                            let e = io::Error::other("a try ended without an outcome");
                            return self.error(Op::Lock, e);
                        }
                    },
                    Poll::Ready(Err(e)) => return self.error(Op::Lock, e),
                    // Given up at the deadline: the attempt's thread gives
                    // back what it gets.
                    Poll::Pending => return self.pending_until_deadline(d),
                },
                Phase::Attempting(attempting) => match attempting.poll(d) {
                    Poll::Ready(attempt) => {
                        let entry = Arc::clone(&attempting.entry);
                        self.phase = Phase::Start;
                        if let Some(done) = self.settle(first_of(&self.handle, entry, attempt)) {
                            return done;
                        }
                    }
                    // Given up at the deadline: the attempt is finished on
                    // the pool, which gives back what it takes.
                    Poll::Pending => return self.pending_until_deadline(d),
                },
                Phase::Finishing(..) => return self.poll_finishing(d),
            }
        }
    }

    /// Pending, unless the deadline has passed.
    fn pending_until_deadline<D: Driver>(&mut self, d: &mut D) -> Poll<Granted> {
        if let Some(deadline) = self.deadline {
            if d.poll_until(deadline).is_ready() {
                return self.timed_out(d);
            }
        }
        Poll::Pending
    }

    /// How this acquisition waits for other processes, decided once.
    fn strategy<D: Driver>(&mut self, d: &D, remote: bool) -> Strategy {
        *self.strategy.get_or_insert_with(|| {
            // A blocking caller with no deadline: its thread is parked
            // anyway, and parked in the backend's blocking wait it is
            // handed the lock directly, with no wake-up source. A remote
            // resource is only ever waited for that way.
            if d.may_block() || remote || self.handle.config.strategy == WaitStrategy::BlockingPool
            {
                Strategy::Block
            } else {
                Strategy::Retry
            }
        })
    }

    fn poll_queued<D: Driver>(&mut self, d: &mut D, inline: bool) -> Step {
        let remote = match &self.phase {
            Phase::Queued(q) => q.entry.is_remote(),
            _ => false,
        };
        let strategy = self.strategy(d, remote);
        let Phase::Queued(q) = &mut self.phase else {
            return Step::Again;
        };
        // Listen before checking, so no wake-up falls in between.
        if q.listener.is_none() {
            q.listener = Some(q.slot.listen());
        }

        if let Waiting::Blocked(task, _) = &mut q.waiting {
            if let Poll::Ready(out) = d.poll_task(task) {
                // The wait ended: dropping its abandon guard now is a no-op.
                q.waiting = Waiting::InLine;
                match out {
                    Ok(Ok(Waited::Locked(lock))) => {
                        match q.entry.commit_wait(&q.slot, lock, &self.handle) {
                            Progress::Acquired(record) => {
                                let entry = Arc::clone(&q.entry);
                                return Step::Ready(self.finish(Ok((entry, record))));
                            }
                            Progress::Retired => {
                                self.phase = Phase::Start;
                                return Step::Again;
                            }
                            Progress::Waiting | Progress::Contending => {}
                        }
                    }
                    Ok(Ok(Waited::Replaced)) => q.entry.retire_if_idle(),
                    Ok(Err(e)) | Err(e) => {
                        q.entry.cancel(&q.slot, &self.handle);
                        return Step::Ready(self.error(Op::Lock, e));
                    }
                }
            }
        }

        if let Waiting::Retrying(retry) = &mut q.waiting {
            retry.note_generation();
        }
        match q.entry.advance(&q.slot, inline, &self.handle) {
            Err(e) => return Step::Ready(self.error(Op::Lock, e)),
            Ok(Progress::Acquired(record)) => {
                let entry = Arc::clone(&q.entry);
                return Step::Ready(self.finish(Ok((entry, record))));
            }
            Ok(Progress::Retired) => {
                self.phase = Phase::Start;
                return Step::Again;
            }
            Ok(Progress::Waiting) => {
                // A blocking wait in progress stays: its outcome is
                // committed only if this waiter is at the head by then.
                if !matches!(q.waiting, Waiting::Blocked(..)) {
                    q.waiting = Waiting::InLine;
                }
            }
            Ok(Progress::Contending) => {
                if matches!(q.waiting, Waiting::InLine) {
                    // A new turn: back off from the start.
                    self.backoff.reset();
                    q.waiting = Waiting::Retrying(Retry::default());
                    // An adaptive wait on a resource whose waits lately
                    // lost races blocks at once, rather than lose them
                    // again first.
                    let adaptive = self.handle.config.strategy == WaitStrategy::Adaptive
                        && q.entry.recently_contended();
                    if strategy == Strategy::Block || adaptive {
                        if let Some(waiting) = start_wait(d, &q.entry, &q.slot, &self.handle) {
                            q.waiting = waiting;
                            // Poll it once: the blocking driver may have run
                            // it to completion already.
                            return Step::Again;
                        }
                    }
                }
                if let Waiting::Retrying(retry) = &mut q.waiting {
                    if retry.hint_untried() && retry.watch(&q.entry, &self.handle) {
                        // A release between the attempt and the watch
                        // fired nothing we can see: look again.
                        return Step::Again;
                    }
                    let now = d.now();
                    retry.schedule(now, SETTLE, &mut self.backoff);
                    if retry.races_lost >= RACES_BEFORE_BLOCKING
                        && self.handle.config.strategy == WaitStrategy::Adaptive
                    {
                        if let Some(waiting) = start_wait(d, &q.entry, &q.slot, &self.handle) {
                            q.entry.note_contended();
                            // Dropping the retry state drops its watch (and
                            // this process's waiter mark) with it.
                            q.waiting = waiting;
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
        if let Waiting::Retrying(retry) = &mut q.waiting {
            if retry.poll_hint(d).is_ready() {
                return Step::Again;
            }
        }
        loop {
            let retry_at = match &q.waiting {
                Waiting::Retrying(retry) => retry.at,
                _ => None,
            };
            let wake = match (retry_at, self.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(at) = wake else {
                return Step::Ready(Poll::Pending);
            };
            if d.poll_until(at).is_pending() {
                return Step::Ready(Poll::Pending);
            }
            let now = d.now();
            if self.deadline.is_some_and(|deadline| now >= deadline) {
                return Step::Ready(self.timed_out(d));
            }
            let Waiting::Retrying(retry) = &mut q.waiting else {
                return Step::Again;
            };
            // The retry this timer was for is the attempt this poll just
            // made: schedule the next one rather than attempt twice.
            retry.passed(now);
            retry.schedule(now, SETTLE, &mut self.backoff);
        }
    }

    fn timed_out<D: Driver>(&mut self, d: &mut D) -> Poll<Granted> {
        let waited = self
            .started
            .map(|s| d.now().saturating_duration_since(s))
            .unwrap_or_default();
        crate::trace::timed_out(&self.handle.path, waited);
        let mut holders = Holders::default();
        if let Phase::Queued(q) = &self.phase {
            q.entry.cancel(&q.slot, &self.handle);
            if q.entry.is_remote() {
                // Who holds it is a round trip, which may stall as the wait
                // did: asked on the pool, and given up after a grace.
                let (entry, handle) = (Arc::clone(&q.entry), Arc::clone(&self.handle));
                let task = d.run(Work::RoundTrip, move || {
                    let err = Error::timed_out(handle.subject(), waited);
                    Err(with_holders(err, entry.holders(&handle)))
                });
                let give_up = d.now() + LOOKUP_GRACE;
                self.phase = Phase::Finishing(task, give_up, waited);
                return self.poll_finishing(d);
            }
            holders = q.entry.holders(&self.handle);
        }
        let err = with_holders(Error::timed_out(self.handle.subject(), waited), holders);
        self.finish(Err(err))
    }

    fn poll_finishing<D: Driver>(&mut self, d: &mut D) -> Poll<Granted> {
        let Phase::Finishing(task, give_up, waited) = &mut self.phase else {
            return Poll::Pending;
        };
        match d.poll_task(task) {
            Poll::Ready(Ok(granted)) => self.finish(granted),
            Poll::Ready(Err(e)) => self.error(Op::Wait, e),
            Poll::Pending if d.poll_until(*give_up).is_ready() => {
                let e = Error::timed_out(self.handle.subject(), *waited);
                self.finish(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What the first attempt on a resolved entry came to.
enum First {
    /// Acquired, or failed for good (an error, or busy for a try-once).
    Done(Granted),
    /// Queued: wait with this slot.
    Queued(Queued),
    /// The entry no longer stands for the resource: resolve it again.
    Retired,
}

/// Steps 1 and 2: the fast path on a resolved entry. Takes the lock if it
/// is free (and nobody in this process is queued for it), else queues.
fn first_attempt(
    handle: &Arc<Handle>,
    entry: Arc<Entry>,
    mode: LockMode,
    wait: Wait,
    inline: bool,
) -> First {
    let enqueue = wait != Wait::TryOnce;
    let attempt = entry.try_or_enqueue(mode, enqueue, inline, handle);
    first_of(handle, entry, attempt)
}

/// What an attempt's outcome means for the acquisition.
fn first_of(handle: &Arc<Handle>, entry: Arc<Entry>, attempt: io::Result<Attempt>) -> First {
    match attempt {
        Ok(Attempt::Acquired(record)) => First::Done(Ok((entry, record))),
        Ok(Attempt::Busy) => {
            let err = with_holders(Error::would_block(handle.subject()), entry.holders(handle));
            First::Done(Err(err))
        }
        Ok(Attempt::Queued(slot)) => First::Queued(Queued::new(entry, slot)),
        Ok(Attempt::Retired) => First::Retired,
        Err(e) => First::Done(Err(Error::io(handle.subject(), Op::Lock, e))),
    }
}

/// The blocking front door. The first attempt needs no state machine: only
/// an acquisition that must wait, or open the resource first, builds one
/// (about 40 ns of an uncontended acquire + release).
pub(crate) fn acquire_blocking(handle: &Arc<Handle>, mode: LockMode, wait: Wait) -> Granted {
    let queued = match handle
        .cached()
        .map(|entry| first_attempt(handle, entry, mode, wait, true))
    {
        Some(First::Done(result)) => return result,
        Some(First::Queued(q)) => Some(q),
        Some(First::Retired) | None => None,
    };
    // From here the state machine owns the slot: dropping it leaves the
    // queue.
    let mut core = Core::new(Arc::clone(handle), mode, wait);
    if let Some(q) = queued {
        core.phase = Phase::Queued(q);
        core.note_waiting();
    }
    block_on(core)
}

/// A wait for the lock for `slot` that blocks until it is granted, if the
/// backend has one: polled on the caller's task where the backend can
/// start it so and the caller would otherwise run it on the pool (the
/// pool's thread would hear the grant, then wake the task), else the
/// backend's blocking wait, run as the driver says.
fn start_wait<D: Driver>(
    d: &mut D,
    entry: &Entry,
    slot: &Slot,
    handle: &Handle,
) -> Option<Waiting> {
    if !d.may_block() {
        if let Some(wait) = entry.polled_wait(slot, handle) {
            return Some(Waiting::Blocked(Task::Polled(wait), None));
        }
    }
    let wait = entry.blocking_wait(slot, handle)?;
    Some(Waiting::Blocked(
        d.run(Work::BlockingWait, wait.run),
        wait.abandon,
    ))
}

/// `err` with who holds the lock, as far as the backend knows.
fn with_holders(err: Error, holders: Holders) -> Error {
    err.with_holder(holders.record)
        .with_os_holders(holders.os)
        .with_breakable_in(holders.breakable_in)
        .with_foreign(holders.foreign)
}

enum Step {
    Again,
    Ready(Poll<Granted>),
}

impl Drop for Core {
    /// Cleanup keyed on the phase. `Opening`: the task is dropped, and its
    /// resource, if it opens one, is closed on its thread. `Queued`: the
    /// slot leaves the queue (passing the turn on if it was at the head), a
    /// lock it was handed is released, and a blocking wait in progress is
    /// abandoned: its thread drops what it locked the moment the lock is
    /// granted, which releases it.
    fn drop(&mut self) {
        match &self.phase {
            Phase::Queued(q) => q.entry.cancel(&q.slot, &self.handle),
            // Whoever waits for this opening opens the resource itself.
            Phase::Opening(..) => self.handle.end_opening(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
