//! Four processes take turns on one PostgreSQL lock, each writing with the
//! fencing token it was given; the tokens come out strictly increasing.
//!
//! ```sh
//! cargo run --features postgres --example postgres -- postgres://user@host/db
//! ```

use std::process::Command;
use std::time::Duration;

use lockyard::postgres::PgLocks;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: postgres URL")?;
    if args.next().as_deref() == Some("worker") {
        return worker(&url);
    }
    let me = std::env::current_exe()?;
    let workers: Vec<_> = (0..4)
        .map(|_| Command::new(&me).args([url.as_str(), "worker"]).output())
        .collect::<Result<_, _>>()?;
    let mut tokens = Vec::new();
    for out in &workers {
        if !out.status.success() {
            return Err(
                format!("a worker failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let text = String::from_utf8(out.stdout.clone())?;
        tokens.extend(
            text.lines()
                .map(|l| l.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 4 * 5, "every hold had a token of its own");
    println!(
        "20 holds across 4 processes, tokens {}..={}",
        tokens[0], tokens[19]
    );
    Ok(())
}

/// Takes the lock five times, holding it briefly, and prints each token.
fn worker(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let lock = PgLocks::from_url(url)?
        .owner("example")
        .lock_named("examples/report")?;
    futures_lite::future::block_on(async {
        for _ in 0..5 {
            let guard = lock.lock().await?;
            let token = guard.token().ok_or("an exclusive hold has a token")?;
            // A storage write would carry `token`, and the store would
            // refuse any write with a lower one.
            async_io::Timer::after(Duration::from_millis(5)).await;
            println!("{token}");
            guard.unlock()?;
        }
        Ok(())
    })
}
