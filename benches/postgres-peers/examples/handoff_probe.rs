//! One process, one hand-off at a time: a raw session (on a thread of its
//! own) holds an advisory lock, a lockyard `lock()` waits for it in the
//! server, and the probe times the unlock call to the lock's return. No
//! second process, no pipe: only the grant's path through lockyard and
//! the executor is left beside the server's own work.
//!
//! `cargo run --release --example handoff_probe -- ROUNDS EXECUTOR` with
//! `LOCKYARD_TEST_POSTGRES` set; EXECUTOR is `asyncio`
//! (`async_io::block_on`), `futures-lite` (`futures_lite::future::block_on`)
//! or `blocking` (`lock_blocking`). Prints the p50 and p90.

use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let url = std::env::var("LOCKYARD_TEST_POSTGRES").expect("LOCKYARD_TEST_POSTGRES");
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(300, |r| r.parse().expect("ROUNDS"));
    let executor = args.next().unwrap_or_else(|| "asyncio".to_owned());
    let table = format!("handoff_probe_{}", std::process::id());
    let locks = lockyard::postgres::PgLocks::from_url(&url)
        .expect("url")
        .table(&table)
        .expect("table");
    let lock = locks.lock_named("p").expect("name");
    drop(lock.try_lock().expect("free at start")); // the row, a session
                                                   // Each round: the holder takes the lock, says so, holds it 4 ms, says
                                                   // when it calls the unlock, and unlocks.
    let (rounds_tx, rounds_rx) = mpsc::channel::<mpsc::Sender<Instant>>();
    let (locked_tx, locked_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let key: i64 = client
                .query_one(
                    &format!(
                        "SELECT ('{table}'::regclass::oid::bigint << 32) | id FROM {table} \
                         WHERE name = 'p'"
                    ),
                    &[],
                )
                .await
                .expect("key")
                .get(0);
            let lock = client
                .prepare("SELECT pg_advisory_lock($1)")
                .await
                .expect("prepare");
            let unlock = client
                .prepare("SELECT pg_advisory_unlock($1)")
                .await
                .expect("prepare");
            while let Ok(released) = rounds_rx.recv() {
                client.execute(&lock, &[&key]).await.expect("lock");
                locked_tx.send(()).expect("the waiter listens");
                tokio::time::sleep(Duration::from_millis(4)).await;
                released.send(Instant::now()).expect("the waiter listens");
                client.execute(&unlock, &[&key]).await.expect("unlock");
            }
        });
    });
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (released_tx, released_rx) = mpsc::channel();
        rounds_tx.send(released_tx).expect("the holder runs");
        locked_rx.recv().expect("the holder took it");
        let guard = match executor.as_str() {
            "asyncio" => async_io::block_on(lock.lock()),
            "futures-lite" => futures_lite::future::block_on(lock.lock()),
            "blocking" => lock.lock_blocking(),
            other => panic!("unknown executor {other}"),
        }
        .expect("lock");
        let got = Instant::now();
        let released = released_rx.recv().expect("the holder released");
        lat.push(got.saturating_duration_since(released).as_secs_f64() * 1e6);
        drop(guard);
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(rounds_tx);
    holder.join().expect("holder");
    lat.sort_by(f64::total_cmp);
    println!(
        "{executor}: p50 {:.1} µs, p90 {:.1} µs over {rounds} hand-offs",
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10]
    );
}
