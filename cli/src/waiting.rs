//! Getting a lock from the command line: the wait, the live line on a
//! terminal, and interruption by a signal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_lite::future;
use lockyard::{Error, LockGuard, LockMode, Wait};

use crate::duration::human;
use crate::output::say;
use crate::signals::Signals;
use crate::target::Target;

/// How much to say on stderr.
#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    /// Say nothing when the lock is busy (flock's form, as flock does).
    pub quiet_conflict: bool,
}

impl Ui {
    /// A message for people, unless `--quiet`.
    pub fn say(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            say!("lockyard: {msg}");
        }
    }

    /// Whether to draw the live waiting line: only for people watching.
    fn live(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }
}

/// How a wait ended.
#[derive(Debug)]
pub enum Outcome {
    Got(LockGuard),
    Failed(Error),
    Interrupted(i32),
}

/// The live line appears after this long: short waits stay silent.
const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// Waits for `lock` in `mode`, drawing a live line on a terminal after a
/// second, until it is ours, `wait` runs out, or a signal arrives (then the
/// acquisition is dropped, which gives back anything it had).
pub fn acquire(lock: &Target, mode: LockMode, wait: Wait, ui: Ui, signals: &Signals) -> Outcome {
    let start = Instant::now();
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        let line =
            (ui.live() && wait != Wait::TryOnce).then(|| scope.spawn(|| live_line(lock, &done)));
        let outcome = future::block_on(future::or(
            async {
                lock.acquire(mode, wait)
                    .await
                    .map_or_else(Outcome::Failed, Outcome::Got)
            },
            async { Outcome::Interrupted(signals.interrupted().await) },
        ));
        done.store(true, Ordering::SeqCst);
        if let Some(line) = line {
            line.thread().unpark();
            let _ = line.join();
        }
        outcome
    });
    if ui.verbose && !ui.quiet {
        if let Outcome::Got(_) = outcome {
            say!(
                "lockyard: getting lock {} took {:.6} seconds",
                lock.label().display(),
                start.elapsed().as_secs_f64()
            );
        }
    }
    outcome
}

/// `⠋ waiting for data/state.lock — held by pid 4242 on build-3 (owner
/// "indexer") for 12 s`, redrawn until `done`, then erased.
fn live_line(lock: &Target, done: &AtomicBool) {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let start = Instant::now();
    while !done.load(Ordering::SeqCst) && start.elapsed() < QUIET_PERIOD {
        std::thread::park_timeout(QUIET_PERIOD.saturating_sub(start.elapsed()));
    }
    let mut drawn = false;
    let mut who = None;
    let mut frame = 0;
    while !done.load(Ordering::SeqCst) {
        // Ask who holds it twice a second, not on every frame.
        if frame % 5 == 0 {
            who = lock.holder_now();
        }
        let held_by = who
            .as_deref()
            .map(|w| format!(" — held by {w}"))
            .unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} waiting for {}{held_by} ({})",
            FRAMES[frame % FRAMES.len()],
            lock.label().display(),
            human(start.elapsed())
        );
        let _ = err.flush();
        drawn = true;
        frame += 1;
        std::thread::park_timeout(Duration::from_millis(100));
    }
    if drawn {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}
