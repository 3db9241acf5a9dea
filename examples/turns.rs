//! Two processes take turns on one lock file, each printing when it holds
//! the lock.
//!
//! ```text
//! cargo run --example turns
//! ```
//!
//! The program starts a second copy of itself, then both loop: wait for the
//! lock (`.await`, here on `futures_lite::future::block_on`, no runtime
//! needed), hold it for a moment, let go, and pause long enough for the
//! other process (retrying with backoff, at most 50 ms apart by default)
//! to take its turn.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use lockyard::FileLock;

const ROUNDS: u32 = 5;

fn main() -> ExitCode {
    let role = std::env::args().nth(1);
    let lock_path = match std::env::args().nth(2) {
        Some(path) => path.into(),
        None => std::env::temp_dir().join("lockyard-turns-example.lock"),
    };

    // The first process starts the second, sharing the lock path.
    let partner = if role.is_none() {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("cannot find this program to start the partner: {e}");
                return ExitCode::FAILURE;
            }
        };
        match Command::new(exe).arg("partner").arg(&lock_path).spawn() {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!("cannot start the partner process: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let name = if partner.is_some() {
        "first "
    } else {
        "second"
    };
    let pid = std::process::id();
    let lock = FileLock::new(&lock_path);
    let result = futures_lite::future::block_on(async {
        for round in 1..=ROUNDS {
            let asked = Instant::now();
            let guard = lock.lock().await?;
            println!(
                "{name} (pid {pid}) holds {} for round {round} (waited {:.0?})",
                lock.path().display(),
                asked.elapsed()
            );
            async_io::Timer::after(Duration::from_millis(150)).await;
            guard.unlock()?;
            // Give the other process a chance to take its turn.
            async_io::Timer::after(Duration::from_millis(100)).await;
        }
        Ok::<(), lockyard::Error>(())
    });

    let mut code = ExitCode::SUCCESS;
    if let Err(e) = result {
        eprintln!("{name} (pid {pid}): {e}");
        code = ExitCode::FAILURE;
    }
    if let Some(mut child) = partner {
        match child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("partner process failed: {status}");
                code = ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("cannot wait for the partner process: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
