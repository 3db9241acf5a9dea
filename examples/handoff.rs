//! How long a waiter in another process takes to notice a release: the
//! cross-process hand-off latency, with file events (the default) and with
//! backoff alone (`file_events(false)`), in one run. Runs wherever lockyard
//! does, including Windows and wine.
//!
//! ```text
//! cargo run --release --example handoff [ROUNDS]
//! ```
//!
//! The program starts a copy of itself as the waiter. Each round the
//! holder takes the lock, tells the waiter to wait for it, holds it for a
//! random 5–50 ms (so backoff's retries fall anywhere in the hold), and
//! releases; the waiter reports when it got the lock, and the holder
//! prints the distribution of release-to-acquisition times. Both
//! processes read the same wall clock.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lockyard::{FileLock, LockOptions};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    let result = match first.as_deref() {
        Some("waiter") => waiter(args.next(), args.next()),
        rounds => holder(rounds.and_then(|r| r.parse().ok()).unwrap_or(100)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handoff: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn options(events: bool) -> LockOptions {
    LockOptions::new().file_events(events)
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// Waits for the lock each time it reads a line, and answers with the
/// time it got it.
fn waiter(path: Option<String>, events: Option<String>) -> Result<()> {
    let path = path.ok_or("no lock path")?;
    let lock = FileLock::with_options(path, options(events.as_deref() == Some("events")));
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        line?;
        let guard = futures_lite::future::block_on(lock.lock())?;
        let got = micros_now();
        guard.unlock()?;
        writeln!(out, "{got}")?;
        out.flush()?;
    }
    Ok(())
}

fn holder(rounds: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("lockyard-handoff-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("handoff.lock");
    println!("{rounds} hand-offs each, lock file {}", path.display());
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>9}",
        "waiter", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    let outcome = ["events", "backoff"]
        .into_iter()
        .try_for_each(|how| measure(&path, how, rounds));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn measure(path: &std::path::Path, how: &str, rounds: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("waiter")
        .arg(path)
        .arg(how)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let outcome = rounds_with(&mut child, path, how == "events", rounds);
    // Closing its input ends the waiter.
    drop(child.stdin.take());
    let status = child.wait()?;
    let mut latencies = outcome?;
    if !status.success() {
        return Err(format!("the waiter failed: {status}").into());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>9}",
        how,
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

fn rounds_with(
    child: &mut std::process::Child,
    path: &std::path::Path,
    events: bool,
    rounds: usize,
) -> Result<Vec<u128>> {
    let lock = FileLock::with_options(path, options(events));
    let mut to_waiter = child.stdin.take().ok_or("no pipe to the waiter")?;
    let mut from_waiter = BufReader::new(child.stdout.take().ok_or("no pipe from the waiter")?);
    let mut latencies = Vec::with_capacity(rounds);
    let mut line = String::new();
    for _ in 0..rounds {
        let guard = lock.lock_blocking()?;
        writeln!(to_waiter, "wait")?;
        to_waiter.flush()?;
        std::thread::sleep(Duration::from_millis(fastrand::u64(5..50)));
        let released = micros_now();
        guard.unlock()?;
        line.clear();
        if from_waiter.read_line(&mut line)? == 0 {
            return Err("the waiter ended early".into());
        }
        let got: u128 = line.trim().parse()?;
        latencies.push(got.saturating_sub(released));
    }
    child.stdin = Some(to_waiter);
    Ok(latencies)
}
