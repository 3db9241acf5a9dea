//! Acquire + release cost, side by side with std's `File::lock` in the
//! same run.
//!
//! - `uncontended`: one acquire and release of a free lock. The floor is
//!   std's `File::lock`/`unlock` on a file that is already open (two
//!   syscalls); lockyard keeps its descriptor open on the handle, so it
//!   pays the same two syscalls plus its bookkeeping.
//! - `handoff`: two waiters in one process take turns on one lock; the
//!   figure is the time per acquisition. The floor is two threads blocking
//!   in `flock` on two descriptors of the file.
//!
//! - `uncontended` also shows the cost of holder records (metadata on,
//!   the default, vs off), of release announcements (`file_events`) and of
//!   a soft lock, beside `fs4` and `fd-lock`.
//!
//! Run: `cargo bench --all-features --bench acquire`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use lockyard::{FileLock, LockOptions};

mod support;

use support::open;

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("uncontended");

    let std_path = dir.path().join("std.lock");
    let file = open(&std_path);
    g.bench_function("std File::lock+unlock", |b| {
        b.iter(|| {
            file.lock().expect("lock");
            file.unlock().expect("unlock");
        })
    });

    // The other Rust crates of this niche, on their own kept-open files.
    let fs4_file = open(&dir.path().join("fs4.lock"));
    g.bench_function("fs4 lock+unlock", |b| {
        b.iter(|| {
            fs4::FileExt::lock(&fs4_file).expect("lock");
            fs4::FileExt::unlock(&fs4_file).expect("unlock");
        })
    });
    let mut fd_lock = fd_lock::RwLock::new(open(&dir.path().join("fd-lock.lock")));
    g.bench_function("fd-lock write guard", |b| {
        b.iter(|| drop(fd_lock.write().expect("lock")))
    });
    // The bare OS lock: no holder record, no release announcement.
    let barest = FileLock::with_options(
        dir.path().join("barest.lock"),
        LockOptions::new().metadata(false).file_events(false),
    );
    drop(barest.try_lock().expect("warm up"));
    g.bench_function(
        "lockyard lock_blocking, metadata off, file_events off",
        |b| b.iter(|| drop(barest.lock_blocking().expect("lock"))),
    );

    // Holder metadata (a record read and written per acquisition, and
    // rewritten per release) is on by default; off is the bare OS lock.
    let bare = FileLock::with_options(
        dir.path().join("bare.lock"),
        LockOptions::new().metadata(false),
    );
    let lock = FileLock::new(dir.path().join("meta.lock"));
    drop(bare.try_lock().expect("warm up"));
    drop(lock.try_lock().expect("warm up"));
    g.bench_function("lockyard lock_blocking, metadata off", |b| {
        b.iter(|| drop(bare.lock_blocking().expect("lock")))
    });
    g.bench_function("lockyard lock_blocking, metadata on", |b| {
        b.iter(|| drop(lock.lock_blocking().expect("lock")))
    });
    g.bench_function("lockyard try_lock, metadata off", |b| {
        b.iter(|| drop(bare.try_lock().expect("lock")))
    });

    g.bench_function(
        "lockyard lock().await (futures block_on), metadata off",
        |b| b.iter(|| drop(futures::executor::block_on(bare.lock()).expect("lock"))),
    );
    g.bench_function(
        "lockyard lock().await (futures block_on), metadata on",
        |b| b.iter(|| drop(futures::executor::block_on(lock.lock()).expect("lock"))),
    );
    let soft = FileLock::with_options(dir.path().join("soft.lock"), LockOptions::new().soft());
    g.bench_function("lockyard soft lock try_lock", |b| {
        b.iter(|| drop(soft.try_lock().expect("lock")))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    g.bench_function("lockyard lock().await (tokio), metadata off", |b| {
        b.iter(|| rt.block_on(async { drop(bare.lock().await.expect("lock")) }))
    });
    g.bench_function("tokio spawn_blocking(File::lock)", |b| {
        let file = Arc::new(open(&std_path));
        b.iter(|| {
            rt.block_on(async {
                let f = Arc::clone(&file);
                tokio::task::spawn_blocking(move || f.lock())
                    .await
                    .expect("join")
                    .expect("lock");
                file.unlock().expect("unlock");
            })
        })
    });
    g.finish();
}

/// Time per acquisition when two waiters in one process take turns.
fn handoff(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("handoff");

    let std_path = dir.path().join("std.lock");
    g.bench_function("std File::lock, 2 threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let file = open(&std_path);
                    std::thread::spawn(move || {
                        for _ in 0..per_thread {
                            file.lock().expect("lock");
                            file.unlock().expect("unlock");
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("thread");
            }
            start.elapsed()
        })
    });

    let lock = FileLock::with_options(
        dir.path().join("tasks.lock"),
        LockOptions::new().metadata(false),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    g.bench_function("lockyard, 2 tokio tasks", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(2);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let lock = lock.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let guard = lock.lock().await.expect("lock");
                                tokio::task::yield_now().await;
                                drop(guard);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("lockyard, 2 threads lock_blocking", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let start = Instant::now();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    std::thread::spawn(move || {
                        for _ in 0..per_thread {
                            drop(lock.lock_blocking().expect("lock"));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("thread");
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = uncontended, handoff }
criterion_main!(benches);
