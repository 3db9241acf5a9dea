//! Unit tests of the acquire state machine: a deterministic driver with a
//! fake clock walks it through every transition against a scripted
//! backend, and two tests of single-flight opening on real lock files.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use event_listener::EventListener;
use futures_lite::FutureExt;

use super::state::{Phase, Waiting};
use super::{Core, Driver, Granted, Work};
use crate::engine::resource::{
    Attempted, BlockingWait, Holders, Key, Params, Polled, PolledAttempt, PolledWait, Upgrade,
    Waited,
};
use crate::engine::{Abandon, Backoff, Config, Handle, Hint, Opener, Resource};
use crate::error::{Error, ErrorKind};
use crate::mode::{LockMode, Wait, WaitStrategy};
use crate::record::HolderRecord;
use crate::rt::{Clock, Task};

/// A driver with a fake clock: nothing waits; it records the instants the
/// machine asked to be woken at, and runs blocking work inline.
struct TestDriver {
    now: Instant,
    may_block: bool,
    /// The earliest instant the last poll asked to be woken at.
    wake_at: Option<Instant>,
    /// Opens run on the real blocking pool (so they can be in progress),
    /// not inline.
    pool_opens: bool,
    /// The kinds of work handed out, in order.
    ran: Vec<Work>,
    /// Round trips run on the real blocking pool, not inline.
    pool_round_trips: bool,
}

impl TestDriver {
    fn new(may_block: bool) -> Self {
        TestDriver {
            now: Instant::now(),
            may_block,
            wake_at: None,
            pool_opens: false,
            ran: Vec::new(),
            pool_round_trips: false,
        }
    }

    /// Polls until the machine stops waiting for a blocking-pool task
    /// (at most 20 s of real time).
    fn poll_past_pool(&mut self, core: &mut Core) -> Poll<Granted> {
        let patience = Instant::now() + Duration::from_secs(20);
        loop {
            let polled = self.poll(core);
            if polled.is_ready() || core.phase.name() != "opening" || Instant::now() > patience {
                return polled;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn poll(&mut self, core: &mut Core) -> Poll<Granted> {
        self.wake_at = None;
        core.poll(self)
    }

    /// Moves the clock to the instant the machine asked for.
    fn advance_to_wake(&mut self) {
        let at = self.wake_at.expect("the machine asked for no timer");
        self.now = self.now.max(at);
    }
}

fn noop() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

impl Driver for TestDriver {
    fn now(&mut self) -> Instant {
        self.now
    }

    fn poll_listener(&mut self, listener: &mut EventListener) -> Poll<()> {
        listener.poll(&mut noop())
    }

    fn poll_hint(&mut self, hint: &mut dyn Hint, since: u64) -> Poll<()> {
        hint.poll_changed(&mut noop(), since, Clock::Std)
    }

    fn poll_until(&mut self, at: Instant) -> Poll<()> {
        if self.now >= at {
            return Poll::Ready(());
        }
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        Poll::Pending
    }

    fn run<T: Send + 'static>(
        &mut self,
        work: Work,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        self.ran.push(work);
        if (work == Work::Open && self.pool_opens)
            || (work == Work::RoundTrip && self.pool_round_trips)
        {
            Task::spawn(Clock::Std, f)
        } else {
            Task::inline(f)
        }
    }

    fn poll_task<T: Send + 'static>(&mut self, task: &mut Task<T>) -> Poll<io::Result<T>> {
        task.poll(&mut noop())
    }

    fn poll_attempt(&mut self, attempt: &mut PolledAttempt) -> Poll<io::Result<Polled>> {
        attempt.as_mut().poll(&mut noop())
    }

    fn may_block(&self) -> bool {
        self.may_block
    }

    fn caller_blocks(&self) -> bool {
        self.may_block
    }
}

/// What the scripted backend does; shared between the test and the
/// resource.
#[derive(Debug, Default)]
struct Script {
    /// Another process holds the lock.
    held_elsewhere: AtomicBool,
    attempts: AtomicUsize,
    opens: AtomicUsize,
    /// Offer a wake hint.
    hint: bool,
    generation: AtomicU64,
    /// Offer a blocking wait, which returns this.
    blocking: Mutex<Option<Waited>>,
    commits: AtomicUsize,
    /// The next open fails.
    fail_open: AtomicBool,
    /// The next attempt makes the hint fire (a release signalled while
    /// the attempt runs).
    signal_during_attempt: AtomicBool,
    /// Opens wait for a message on this (at most 20 s).
    open_gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// Attempts are network round trips.
    remote: bool,
    /// Acquisitions that may wait attempt first (remote only).
    attempts_first: bool,
    /// Attempts wait for a message on this (at most 20 s).
    attempt_gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    releases: AtomicUsize,
    /// Attempts are made by polling ([`Resource::attempt_polled`]); each
    /// answers once `answer` is set.
    polled: bool,
    answer: AtomicBool,
    polled_attempts: AtomicUsize,
    /// Offer waits made by polling ([`Resource::wait_polled`]); each is
    /// granted once `granted` is set.
    polls_waits: bool,
    granted: AtomicBool,
    polled_waits: AtomicUsize,
    /// Polled waits dropped before they ended.
    waits_abandoned: AtomicUsize,
}

/// A scripted polled wait: pending until the script grants it; counts
/// itself abandoned if dropped before it ended.
struct ScriptedWait {
    script: Arc<Script>,
    ended: bool,
}

impl std::future::Future for ScriptedWait {
    type Output = io::Result<Waited>;

    fn poll(mut self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.script.granted.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        self.ended = true;
        Poll::Ready(Ok(Waited::Locked(Box::new(()))))
    }
}

impl Drop for ScriptedWait {
    fn drop(&mut self) {
        if !self.ended {
            self.script.waits_abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
struct ScriptedOpener(Arc<Script>);

impl Opener for ScriptedOpener {
    fn open(&self, _abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        let gate = self.0.open_gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(Duration::from_secs(20));
        }
        let n = self.0.opens.fetch_add(1, Ordering::SeqCst);
        if self.0.fail_open.swap(false, Ordering::SeqCst) {
            return Err(Error::io(
                Path::new("scripted"),
                crate::error::Op::Open,
                io::Error::other("no"),
            ));
        }
        // Each open is a new resource (as a replaced file would be).
        let key = Key {
            space: "scripted",
            id: format!("{:p}-{n}", Arc::as_ptr(&self.0))
                .into_bytes()
                .into(),
        };
        Ok((key, Box::new(Scripted(Arc::clone(&self.0)))))
    }
}

#[derive(Debug)]
struct Scripted(Arc<Script>);

#[derive(Debug)]
struct ScriptHint(Arc<Script>);

impl Hint for ScriptHint {
    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::SeqCst)
    }

    fn poll_changed(&mut self, _cx: &mut Context<'_>, since: u64, _clock: Clock) -> Poll<()> {
        if self.generation() != since {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Resource for Scripted {
    fn remote(&self) -> bool {
        self.0.remote
    }

    fn attempts_before_waiting(&self) -> bool {
        self.0.attempts_first
    }

    fn polls_attempts(&self) -> bool {
        self.0.polled
    }

    fn attempt_polled(&self, _mode: LockMode, _p: Params<'_>) -> Option<PolledAttempt> {
        let script = Arc::clone(&self.0);
        script.polled_attempts.fetch_add(1, Ordering::SeqCst);
        Some(Box::pin(futures_lite::future::poll_fn(move |cx| {
            if !script.answer.load(Ordering::SeqCst) {
                // Asked again soon: a pool thread's `block_on` polls only
                // when woken.
                cx.waker().wake_by_ref();
                std::thread::sleep(Duration::from_micros(200));
                return Poll::Pending;
            }
            Poll::Ready(Ok(if script.held_elsewhere.load(Ordering::SeqCst) {
                Polled::Busy
            } else {
                Polled::Locked(Box::new(()))
            }))
        })))
    }

    fn try_acquire(&self, _mode: LockMode, _p: Params<'_>) -> io::Result<Attempted> {
        let gate = self.0.attempt_gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(Duration::from_secs(20));
        }
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        if self.0.signal_during_attempt.swap(false, Ordering::SeqCst) {
            self.0.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(if self.0.held_elsewhere.load(Ordering::SeqCst) {
            Attempted::Busy
        } else {
            Attempted::Locked(None)
        })
    }

    fn wait_polled(&self, _mode: LockMode, _p: Params<'_>) -> Option<PolledWait> {
        if !self.0.polls_waits {
            return None;
        }
        self.0.polled_waits.fetch_add(1, Ordering::SeqCst);
        Some(Box::pin(ScriptedWait {
            script: Arc::clone(&self.0),
            ended: false,
        }))
    }

    fn blocking_wait(&self, _mode: LockMode, _p: Params<'_>) -> Option<BlockingWait> {
        let outcome = self.0.blocking.lock().unwrap().take()?;
        Some(BlockingWait::new(move || Ok(outcome)))
    }

    fn commit_wait(
        &self,
        _mode: LockMode,
        _lock: Box<dyn Any + Send>,
        _p: Params<'_>,
    ) -> io::Result<Attempted> {
        self.0.commits.fetch_add(1, Ordering::SeqCst);
        Ok(Attempted::Locked(None))
    }

    fn release(
        &self,
        _mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        _p: Params<'_>,
    ) -> io::Result<bool> {
        self.0.releases.fetch_add(1, Ordering::SeqCst);
        Ok(false)
    }

    fn upgrade(&self, _p: Params<'_>) -> io::Result<Upgrade> {
        Ok(Upgrade::Upgraded(None))
    }

    fn downgrade(&self, _record: Option<Arc<HolderRecord>>, _p: Params<'_>) -> io::Result<bool> {
        Ok(true)
    }

    fn supports_shared(&self) -> bool {
        true
    }

    fn wake_hint(&self, _p: Params<'_>) -> Option<Box<dyn Hint>> {
        self.0
            .hint
            .then(|| Box::new(ScriptHint(Arc::clone(&self.0))) as Box<dyn Hint>)
    }

    fn holders(&self, _p: Params<'_>) -> Holders {
        Holders::default()
    }
}

const MS: Duration = Duration::from_millis(1);

/// A script in which another process holds the lock.
fn held_elsewhere() -> Script {
    Script {
        held_elsewhere: AtomicBool::new(true),
        ..Script::default()
    }
}

/// A script whose open waits for a message on the returned sender.
fn open_on_signal() -> (std::sync::mpsc::Sender<()>, Arc<Script>) {
    let (open, gate) = std::sync::mpsc::channel();
    let script = Script {
        open_gate: Mutex::new(Some(gate)),
        ..Script::default()
    };
    (open, Arc::new(script))
}

/// Held elsewhere, with a blocking wait that comes back with `waited`.
fn blocking_wait_gives(waited: Waited) -> Arc<Script> {
    Arc::new(Script {
        blocking: Mutex::new(Some(waited)),
        ..held_elsewhere()
    })
}

/// A handle on a scripted resource, backing off 1, 2, 4... ms (no jitter).
fn handle(script: &Arc<Script>, strategy: WaitStrategy) -> Arc<Handle> {
    let config = Config {
        backoff: Backoff::new(MS, 2, 100 * MS).jitter(false),
        strategy,
        offload_open: false,
        open_may_wait: false,
        names_a_file: true,
    };
    Arc::new(Handle::new(
        PathBuf::from("scripted.lock"),
        config,
        ScriptedOpener(Arc::clone(script)),
    ))
}

fn phase(core: &Core) -> &'static str {
    core.phase.name()
}

fn acquired(polled: Poll<Granted>) -> bool {
    matches!(polled, Poll::Ready(Ok(_)))
}

#[test]
fn an_uncontended_acquisition_opens_then_takes_the_lock_in_one_poll() {
    let script = Arc::new(Script::default());
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert_eq!(phase(&core), "start");
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(phase(&core), "done");
    assert_eq!(script.opens.load(Ordering::SeqCst), 1);
    assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
    // The entry is cached: the next acquisition opens nothing.
    let mut core = Core::new(h, LockMode::Shared, Wait::Forever);
    let granted = d.poll(&mut core);
    assert!(
        matches!(granted, Poll::Pending),
        "held exclusively by the first"
    );
    assert_eq!(script.opens.load(Ordering::SeqCst), 1);
}

#[test]
fn the_head_retries_on_backoff_and_a_new_turn_starts_it_over() {
    let script = Arc::new(held_elsewhere());
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    let start = d.now;
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(phase(&core), "contending");
    // No hint on offer: the backoff alone, 1, 2, 4, 8 ms apart.
    let mut delays = Vec::new();
    let mut last = start;
    for _ in 0..4 {
        let at = d.wake_at.expect("a retry timer");
        delays.push(at - last);
        last = at;
        d.advance_to_wake();
        assert!(d.poll(&mut core).is_pending());
    }
    assert_eq!(delays, [MS, 2 * MS, 4 * MS, 8 * MS]);
    // Two on the first poll (the fast path, then the check after queueing),
    // then one per retry.
    assert_eq!(script.attempts.load(Ordering::SeqCst), 6);
    script.held_elsewhere.store(false, Ordering::SeqCst);
    d.advance_to_wake();
    assert!(acquired(d.poll(&mut core)));
}

#[test]
fn a_hint_brings_the_retry_forward_to_a_settle_delay() {
    let script = Arc::new(Script {
        hint: true,
        ..held_elsewhere()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    // The fast path, the check after queueing, and once the hint was set
    // up one more attempt (a release between the last attempt and the
    // watch would have fired nothing).
    assert_eq!(script.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(d.wake_at, Some(d.now + MS));
    // The hint wakes the waiter: an attempt at once; it failed, and the
    // backoff's retry stays where it was.
    let backoff_retry = d.wake_at;
    script.generation.fetch_add(1, Ordering::SeqCst);
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(script.attempts.load(Ordering::SeqCst), 4);
    assert_eq!(d.wake_at, backoff_retry);
    // A signal seen while the poll runs (the kernel reports a close just
    // before it drops the lock) brings the retry forward to the settle
    // delay.
    script.signal_during_attempt.store(true, Ordering::SeqCst);
    assert!(d.poll(&mut core).is_pending());
    // The attempt the signal came during, and one more for the signal.
    assert_eq!(script.attempts.load(Ordering::SeqCst), 6);
    assert_eq!(d.wake_at, Some(d.now + super::SETTLE));
    script.held_elsewhere.store(false, Ordering::SeqCst);
    script.generation.fetch_add(1, Ordering::SeqCst);
    assert!(acquired(d.poll(&mut core)));
}

#[test]
fn a_deadline_ends_the_wait_and_leaves_the_queue() {
    let script = Arc::new(held_elsewhere());
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::For(3 * MS));
    let deadline = d.now + 3 * MS;
    loop {
        match d.poll(&mut core) {
            Poll::Pending => {
                assert!(d.wake_at.is_some_and(|at| at <= deadline));
                d.advance_to_wake();
            }
            Poll::Ready(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut);
                assert_eq!(e.waited(), Some(3 * MS));
                break;
            }
            Poll::Ready(Ok(_)) => panic!("acquired a lock held elsewhere"),
        }
    }
    assert_eq!(h.cached().map(|e| e.queued()), Some(0));
}

#[test]
fn a_try_once_fails_at_once_without_queueing() {
    let script = Arc::new(held_elsewhere());
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    match d.poll(&mut core) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::WouldBlock),
        other => panic!("{other:?}"),
    }
    assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(h.cached().map(|e| e.queued()), Some(0));
}

#[test]
fn a_waiter_behind_this_process_waits_in_line_until_the_release() {
    let script = Arc::new(Script::default());
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut first = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    let Poll::Ready(Ok((entry, _))) = d.poll(&mut first) else {
        panic!("uncontended");
    };
    let mut second = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut second).is_pending());
    assert_eq!(phase(&second), "queued");
    assert!(second.waits_in_process());
    // In line, no timer and no backend call: only the release wakes it.
    assert_eq!(d.wake_at, None);
    assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
    entry.release(LockMode::Exclusive, None, &h).unwrap();
    assert!(second.notified());
    assert!(acquired(d.poll(&mut second)));
}

#[test]
fn a_blocking_caller_waits_in_the_backend_and_commits_its_lock() {
    let script = blocking_wait_gives(Waited::Locked(Box::new(())));
    let h = handle(&script, WaitStrategy::Backoff);
    // A blocking caller with no deadline: its own thread waits.
    let mut d = TestDriver::new(true);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
    // The fast path and the check after queueing; then the wait.
    assert_eq!(script.attempts.load(Ordering::SeqCst), 2);
}

#[test]
fn a_future_never_attempts_a_remote_resource_inline() {
    // A resource that does not attempt before waiting: the future queues
    // and lets its blocking wait attempt.
    let script = Arc::new(Script {
        remote: true,
        blocking: Mutex::new(Some(Waited::Locked(Box::new(())))),
        ..Script::default()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.attempts.load(Ordering::SeqCst), 0);
    assert_eq!(d.ran, [Work::Open, Work::BlockingWait]);

    // One that does.
    let script = Arc::new(Script {
        remote: true,
        attempts_first: true,
        blocking: Mutex::new(Some(Waited::Locked(Box::new(())))),
        ..Script::default()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    // Free: the future's attempt is handed out as a round trip, and takes
    // it there.
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut core) else {
        panic!("not acquired");
    };
    assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(script.commits.load(Ordering::SeqCst), 0);
    assert_eq!(d.ran, [Work::Open, Work::RoundTrip]);
    entry.release(LockMode::Exclusive, record, &h).unwrap();
    // Held elsewhere: the round trip finds it busy and queues; the blocking
    // wait (on the pool too) gets it.
    script.held_elsewhere.store(true, Ordering::SeqCst);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut core) else {
        panic!("not acquired");
    };
    assert_eq!(script.attempts.load(Ordering::SeqCst), 2);
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
    assert_eq!(d.ran, [Work::RoundTrip, Work::BlockingWait]);
    entry.release(LockMode::Exclusive, record, &h).unwrap();
    script.held_elsewhere.store(false, Ordering::SeqCst);
    // A future that tries once hands its attempt out the same way...
    let mut d = TestDriver::new(false);
    let mut once = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut once) else {
        panic!("not acquired");
    };
    assert_eq!(script.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(d.ran, [Work::RoundTrip]);
    entry.release(LockMode::Exclusive, record, &h).unwrap();
    // ... and a blocking caller makes it on its own thread.
    let mut blocking = TestDriver::new(true);
    let mut once = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    assert!(matches!(blocking.poll(&mut once), Poll::Ready(Ok(_))));
    assert_eq!(script.attempts.load(Ordering::SeqCst), 4);
    assert!(blocking.ran.is_empty(), "{:?}", blocking.ran);
}

/// A future dropped after its round trip found the lock busy and queued it
/// leaves no place in the queue behind: the next caller is not held up.
#[test]
fn a_wait_abandoned_after_its_round_trip_queued_it_leaves_the_queue() {
    let script = Arc::new(Script {
        remote: true,
        attempts_first: true,
        ..held_elsewhere()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    d.pool_round_trips = true;
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    let patience = Instant::now() + Duration::from_secs(20);
    while script.attempts.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < patience, "the attempt never ran");
        std::thread::sleep(MS);
    }
    std::thread::sleep(10 * MS);
    drop(core);
    script.held_elsewhere.store(false, Ordering::SeqCst);
    let mut blocking = TestDriver::new(true);
    let mut again = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    assert!(matches!(blocking.poll(&mut again), Poll::Ready(Ok(_))));
}

/// A resource that makes its attempts by polling: a future's first attempt
/// is polled with the acquisition (no round trip handed out), committed
/// when it takes the lock, and queues the acquisition when it is busy; a
/// try-once gets `WouldBlock`.
#[test]
fn a_polled_attempt_runs_on_the_acquisitions_task() {
    let script = Arc::new(Script {
        remote: true,
        attempts_first: true,
        polled: true,
        blocking: Mutex::new(Some(Waited::Locked(Box::new(())))),
        ..Script::default()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(core.phase.name(), "trying");
    assert!(d.poll(&mut core).is_pending());
    script.answer.store(true, Ordering::SeqCst);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut core) else {
        panic!("not acquired");
    };
    assert_eq!(d.ran, [Work::Open]);
    assert_eq!(script.polled_attempts.load(Ordering::SeqCst), 1);
    assert_eq!(script.attempts.load(Ordering::SeqCst), 0);
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
    entry.release(LockMode::Exclusive, record, &h).unwrap();

    // Busy: it queues, and its blocking wait gets the lock.
    script.held_elsewhere.store(true, Ordering::SeqCst);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut core) else {
        panic!("not acquired");
    };
    assert_eq!(d.ran, [Work::BlockingWait]);
    assert_eq!(script.polled_attempts.load(Ordering::SeqCst), 2);
    assert_eq!(script.commits.load(Ordering::SeqCst), 2);
    entry.release(LockMode::Exclusive, record, &h).unwrap();

    // Busy for a try-once: WouldBlock, and the turn is over.
    let mut d = TestDriver::new(false);
    let mut once = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    let Poll::Ready(Err(e)) = d.poll(&mut once) else {
        panic!("not refused");
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    script.held_elsewhere.store(false, Ordering::SeqCst);
    let mut once = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    assert!(matches!(d.poll(&mut once), Poll::Ready(Ok(_))));
    assert!(d.ran.is_empty(), "{:?}", d.ran);
}

/// An acquisition dropped while its polled attempt is unanswered: a pool
/// thread polls the attempt to its end, commits the lock it took and
/// releases it, and only then does the next attempt get its turn.
#[test]
fn a_dropped_polled_attempt_is_finished_and_given_back() {
    let script = Arc::new(Script {
        remote: true,
        attempts_first: true,
        polled: true,
        ..Script::default()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    drop(core);
    // The turn is still the abandoned attempt's: a try-once meanwhile
    // finds an operation in flight, makes its attempt on the pool (inline
    // here), which lets the operation go on a while and then refuses.
    let mut once = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
    let Poll::Ready(Err(e)) = d.poll(&mut once) else {
        panic!("the turn was not kept");
    };
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(d.ran, [Work::Open, Work::RoundTrip]);
    assert_eq!(script.attempts.load(Ordering::SeqCst), 0);
    assert_eq!(script.releases.load(Ordering::SeqCst), 0);
    script.answer.store(true, Ordering::SeqCst);
    let patience = Instant::now() + Duration::from_secs(20);
    while script.releases.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < patience,
            "the abandoned lock was never released"
        );
        std::thread::sleep(MS);
    }
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
    let mut again = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    let Poll::Ready(Ok((entry, record))) = d.poll(&mut again) else {
        panic!("not acquired after the abandoned attempt");
    };
    assert_eq!(script.polled_attempts.load(Ordering::SeqCst), 2);
    entry.release(LockMode::Exclusive, record, &h).unwrap();
}

/// A future dropped while its try on a remote resource is on the pool
/// leaves nothing held: the attempt's thread releases what it took, or
/// the drop does if the attempt had ended.
#[test]
fn a_try_abandoned_on_the_pool_gives_back_what_it_took() {
    for ended_first in [false, true] {
        let (go, gate) = std::sync::mpsc::channel();
        let script = Arc::new(Script {
            remote: true,
            attempt_gate: Mutex::new(Some(gate)),
            ..Script::default()
        });
        let h = handle(&script, WaitStrategy::Backoff);
        let mut d = TestDriver::new(false);
        d.pool_round_trips = true;
        let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
        assert!(d.poll(&mut core).is_pending());
        assert_eq!(core.phase.name(), "trying");
        // The attempt is running (a task dropped before it starts is
        // cancelled, and takes nothing).
        let patience = Instant::now() + Duration::from_secs(20);
        while script.attempt_gate.lock().unwrap().is_some() {
            assert!(Instant::now() < patience, "the attempt never started");
            std::thread::sleep(MS);
        }
        if ended_first {
            go.send(()).unwrap();
            while script.attempts.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < patience, "the attempt never ended");
                std::thread::sleep(MS);
            }
            // Its outcome is handed over under the lock the drop takes.
            std::thread::sleep(10 * MS);
            drop(core);
        } else {
            drop(core);
            go.send(()).unwrap();
        }
        let patience = Instant::now() + Duration::from_secs(20);
        while script.releases.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < patience,
                "ended first: {ended_first}: never released"
            );
            std::thread::sleep(MS);
        }
        assert_eq!(script.attempts.load(Ordering::SeqCst), 1);
        // Free again for this process.
        let mut blocking = TestDriver::new(true);
        let mut again = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::TryOnce);
        assert!(
            matches!(blocking.poll(&mut again), Poll::Ready(Ok(_))),
            "{ended_first}"
        );
    }
}

#[test]
fn the_blocking_pool_strategy_waits_in_the_backend_for_futures_too() {
    let script = blocking_wait_gives(Waited::Locked(Box::new(())));
    let h = handle(&script, WaitStrategy::BlockingPool);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
}

/// A remote resource that can wait by polling: a future's wait runs on its
/// own task (nothing handed to the pool), ends with the grant, and is
/// committed; dropped mid-wait, the wait is dropped unfinished (which is
/// the backend's signal to give it up) and the queue is left.
#[test]
fn a_future_waits_by_polling_where_the_backend_can() {
    let polled_waits = || {
        Arc::new(Script {
            remote: true,
            polls_waits: true,
            blocking: Mutex::new(Some(Waited::Locked(Box::new(())))),
            ..held_elsewhere()
        })
    };
    let script = polled_waits();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(phase(&core), "waiting in a blocking call");
    assert_eq!(d.ran, [Work::Open], "nothing went to the pool");
    assert_eq!(script.polled_waits.load(Ordering::SeqCst), 1);
    // Polled again, still waiting: the same wait, not a new one.
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(script.polled_waits.load(Ordering::SeqCst), 1);
    script.granted.store(true, Ordering::SeqCst);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.commits.load(Ordering::SeqCst), 1);
    assert_eq!(script.waits_abandoned.load(Ordering::SeqCst), 0);
    assert!(
        script.blocking.lock().unwrap().is_some(),
        "the blocking wait was not asked for"
    );

    // Dropped mid-wait.
    let script = polled_waits();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    let Phase::Queued(q) = &core.phase else {
        panic!("not queued");
    };
    let entry = Arc::clone(&q.entry);
    drop(core);
    assert_eq!(script.waits_abandoned.load(Ordering::SeqCst), 1);
    assert_eq!(entry.queued(), 0);
    assert_eq!(script.commits.load(Ordering::SeqCst), 0);

    // Timed out mid-wait: the same.
    let script = polled_waits();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::For(5 * MS));
    assert!(d.poll(&mut core).is_pending());
    d.advance_to_wake();
    let Poll::Ready(Err(e)) = d.poll(&mut core) else {
        panic!("not timed out");
    };
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert_eq!(script.waits_abandoned.load(Ordering::SeqCst), 1);

    // A blocking caller whose thread may block waits in the blocking wait
    // on its own thread, as before.
    let script = polled_waits();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(true);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.polled_waits.load(Ordering::SeqCst), 0);
    assert_eq!(d.ran, [Work::Open, Work::BlockingWait]);
}

#[test]
fn a_backend_without_a_blocking_wait_falls_back_to_retrying() {
    let script = Arc::new(held_elsewhere());
    let h = handle(&script, WaitStrategy::BlockingPool);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(d.poll(&mut core).is_pending());
    assert!(matches!(
        &core.phase,
        Phase::Queued(q) if matches!(q.waiting, Waiting::Retrying(_))
    ));
    assert!(d.wake_at.is_some());
}

#[test]
fn a_resource_replaced_during_a_blocking_wait_is_opened_again() {
    let script = blocking_wait_gives(Waited::Replaced);
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(true);
    let mut core = Core::new(h, LockMode::Exclusive, Wait::For(50 * MS));
    // The wait reports the resource replaced: the entry retires, the
    // acquisition opens the resource again and waits on the new one.
    let _ = d.poll(&mut core);
    assert_eq!(script.opens.load(Ordering::SeqCst), 2);
    script.held_elsewhere.store(false, Ordering::SeqCst);
    loop {
        match d.poll(&mut core) {
            Poll::Pending => d.advance_to_wake(),
            done => {
                assert!(acquired(done));
                break;
            }
        }
    }
}

#[test]
fn a_failed_open_is_the_acquisition_s_error_and_the_next_one_opens_again() {
    let script = Arc::new(Script {
        fail_open: AtomicBool::new(true),
        ..Script::default()
    });
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
    assert!(matches!(d.poll(&mut core), Poll::Ready(Err(_))));
    let mut core = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut core)));
    assert_eq!(script.opens.load(Ordering::SeqCst), 2);
}

#[test]
fn polling_after_completion_is_an_error_not_a_panic() {
    let script = Arc::new(Script::default());
    let mut d = TestDriver::new(false);
    let mut core = Core::new(
        handle(&script, WaitStrategy::Backoff),
        LockMode::Exclusive,
        Wait::Forever,
    );
    assert!(acquired(d.poll(&mut core)));
    assert!(matches!(d.poll(&mut core), Poll::Ready(Err(_))));
}

#[test]
fn a_deadline_passing_while_the_resource_opens_ends_the_wait() {
    let (open, script) = open_on_signal();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    d.pool_opens = true;
    let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::For(5 * MS));
    assert!(d.poll(&mut core).is_pending());
    assert_eq!(phase(&core), "opening");
    d.advance_to_wake();
    match d.poll(&mut core) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }
    // The claim on the opening was given back: the next acquisition opens
    // the resource itself.
    drop(open);
    let mut d = TestDriver::new(false);
    let mut next = Core::new(h, LockMode::Exclusive, Wait::Forever);
    assert!(acquired(d.poll(&mut next)));
}

#[test]
fn a_second_acquisition_waits_for_the_first_one_s_open() {
    let (open, script) = open_on_signal();
    let h = handle(&script, WaitStrategy::Backoff);
    let mut d = TestDriver::new(false);
    d.pool_opens = true;
    let mut first = Core::new(Arc::clone(&h), LockMode::Shared, Wait::Forever);
    let mut second = Core::new(Arc::clone(&h), LockMode::Shared, Wait::Forever);
    assert!(d.poll(&mut first).is_pending());
    assert!(d.poll(&mut second).is_pending());
    assert!(matches!(second.phase, Phase::AwaitingOpen(_)));
    open.send(()).unwrap();
    assert!(acquired(d.poll_past_pool(&mut first)));
    // Told that the open ended, the second finds the entry and joins.
    assert!(acquired(d.poll(&mut second)));
    assert_eq!(script.opens.load(Ordering::SeqCst), 1);
}

// Single-flight opening, on real lock files.

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
        let lock = FileLock::with_options(&path, crate::LockOptions::new().offload_open(offload));
        let waiters: Vec<_> = (0..50).map(|_| lock.lock()).collect();
        futures::executor::block_on(futures::future::join_all(
            waiters
                .into_iter()
                .map(|w| async move { drop(w.await.unwrap()) }),
        ));
        assert_eq!(opens_of(&path), 1, "offload {offload}");
        // And one descriptor of it stays open, the entry's.
        #[cfg(target_os = "linux")]
        assert_eq!(descriptors_of(&path), 1, "offload {offload}");
    }
}

/// How many of this process's descriptors are open on `path`.
#[cfg(target_os = "linux")]
fn descriptors_of(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
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

/// Lost races: a release is signalled, and the attempt that follows finds
/// the lock taken again. The adaptive strategy then waits in the backend's
/// blocking wait; the backoff strategy keeps retrying.
#[test]
fn an_adaptive_wait_blocks_after_losing_races() {
    for (strategy, blocks) in [
        (WaitStrategy::Adaptive, true),
        (WaitStrategy::Backoff, false),
    ] {
        let script = Arc::new(Script {
            hint: true,
            blocking: Mutex::new(Some(Waited::Locked(Box::new(())))),
            ..held_elsewhere()
        });
        let h = handle(&script, strategy);
        let mut d = TestDriver::new(false);
        let mut core = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
        assert!(d.poll(&mut core).is_pending(), "{strategy:?}");
        let mut polls = Vec::new();
        for _ in 0..4 {
            script.generation.fetch_add(1, Ordering::SeqCst);
            polls.push(d.poll(&mut core));
            if polls.last().is_some_and(|p| p.is_ready()) {
                break;
            }
        }
        let done = polls.iter().any(|p| p.is_ready());
        assert_eq!(done, blocks, "{strategy:?}");
        assert_eq!(
            script.commits.load(Ordering::SeqCst),
            usize::from(blocks),
            "{strategy:?}"
        );
        if blocks {
            // Not before the second lost race.
            assert!(
                polls.len() >= 2,
                "{strategy:?}: blocked after {} races",
                polls.len()
            );
            // The entry remembers: the next wait blocks at once, without
            // losing races first.
            let Some(Poll::Ready(Ok((entry, _)))) = polls.pop() else {
                panic!("acquired");
            };
            entry.release(LockMode::Exclusive, None, &h).unwrap();
            *script.blocking.lock().unwrap() = Some(Waited::Locked(Box::new(())));
            let mut next = Core::new(Arc::clone(&h), LockMode::Exclusive, Wait::Forever);
            assert!(acquired(d.poll(&mut next)), "the next wait blocked at once");
            assert_eq!(script.commits.load(Ordering::SeqCst), 2);
        } else {
            assert!(matches!(
                &core.phase,
                Phase::Queued(q) if matches!(q.waiting, Waiting::Retrying(_))
            ));
        }
    }
}
