//! Locks in object storage beside their mechanism: for each store a bed
//! provides (`.ci/s3-bed`, `.ci/gcs-bed`, `.ci/azure-bed`), one
//! uncontended acquire + release of an `ObjectLock`, against the store's
//! own conditional writes made by a raw client with nothing of lockyard's
//! (`tests/raw_store`), in one run, rows taking turns.
//!
//! ```text
//! .ci/s3-bed start /tmp/s3 > /tmp/s3.env     # and gcs, azure
//! set -a; . /tmp/s3.env; set +a              # (the Azure string has ';': quote it)
//! cargo bench --all-features --bench object [CYCLES]
//! ```
//!
//! A store whose environment is not set is skipped, and says so.
//!
//! The rows:
//! - `mechanism, 3 requests`: read the object, write a held body at the
//!   version read, write a free body at the version that made: what a lock
//!   that reads before every acquisition needs.
//! - `mechanism, 2 requests`: the two conditional writes alone, the
//!   version known from the last write: the least any lock on conditional
//!   writes can do per cycle.
//! - `lockyard`: `try_lock()` then `unlock()` (which waits for the release
//!   to be written), the lock object's body a full holder record.

#[path = "../tests/raw_store/mod.rs"]
#[allow(
    dead_code,
    reason = "the conformance test's yes/no `put` is not used here"
)]
mod raw_store;

use std::time::{Duration, Instant};

use lockyard::object::ObjectLocks;
use raw_store::{Raw, RawAzure, RawGcs, RawS3};

/// Passes over the rows; each row's figure is its median pass.
const PASSES: usize = 5;

struct Store {
    name: &'static str,
    url_var: &'static str,
    raw: fn() -> Box<dyn Raw>,
}

const STORES: [Store; 3] = [
    Store {
        name: "S3 (LocalStack)",
        url_var: "LOCKYARD_TEST_S3",
        raw: || Box::new(RawS3::new()),
    },
    Store {
        name: "GCS (fake-gcs-server)",
        url_var: "LOCKYARD_TEST_GCS",
        raw: || Box::new(RawGcs::new()),
    },
    Store {
        name: "Azure Blob (Azurite)",
        url_var: "LOCKYARD_TEST_AZURE",
        raw: || Box::new(RawAzure::new()),
    },
];

fn main() {
    // `cargo bench` passes `--bench`; the first number is the cycle count.
    let cycles: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    println!("# Object-storage locks beside their mechanism\n");
    println!(
        "{cycles} acquire + release cycles per row and pass, {PASSES} passes taking turns; \
         median pass, µs per cycle.\n"
    );
    for store in &STORES {
        let Ok(url) = std::env::var(store.url_var) else {
            println!(
                "{}: skipped ({} is not set: start its bed)\n",
                store.name, store.url_var
            );
            continue;
        };
        measure(store, &url, cycles);
    }
}

fn measure(store: &Store, url: &str, cycles: u32) {
    let raw = (store.raw)();
    let me = std::process::id();
    let key = format!("bench-{me}/raw.lock");
    let lock = ObjectLocks::from_url(&format!("{url}/bench-{me}"))
        .and_then(|locks| locks.lock_named("cycle"))
        .unwrap_or_else(|e| panic!("{}: {e}", store.name));
    let mut counter = 0u64;
    let mut body = |state: &str| {
        counter += 1;
        format!("state {state}\ncount {counter}\n").into_bytes()
    };
    let mut version = raw
        .put_versioned(&key, &body("free"), None)
        .expect("status")
        .expect("created");
    // Writes a held body at `from`, then a free one at the version that
    // made: the version the free body made.
    let mut hold_and_free = |from: &str| {
        let held = raw.put_versioned(&key, &body("held"), Some(from));
        let held = held.expect("status").expect("held");
        let freed = raw.put_versioned(&key, &body("free"), Some(&held));
        freed.expect("status").expect("freed")
    };
    let mut times: [Vec<f64>; 3] = Default::default();
    for pass in 0..PASSES {
        for k in 0..3 {
            let row = (k + pass) % 3;
            let start = Instant::now();
            for _ in 0..cycles {
                match row {
                    0 => version = hold_and_free(&raw.get(&key).1),
                    1 => version = hold_and_free(&version),
                    _ => {
                        let guard = lock.try_lock().expect("uncontended");
                        guard.unlock().expect("released");
                    }
                }
            }
            times[row].push(per_cycle(start.elapsed(), cycles));
        }
    }
    let medians = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    println!("## {}\n", store.name);
    println!("| row | µs per cycle | × 2 requests |");
    println!("|---|---:|---:|");
    let names = [
        "mechanism, 3 requests (read, write held, write free)",
        "mechanism, 2 requests (write held, write free)",
        "lockyard `try_lock()` + `unlock()`",
    ];
    for (name, us) in names.iter().zip(medians) {
        println!("| {name} | {us:.0} | {:.2}x |", us / medians[1]);
    }
    println!();
}

fn per_cycle(elapsed: Duration, cycles: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(cycles)
}
