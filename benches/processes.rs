//! lockyard side by side with std's `File::lock` (the floor), `fs4`,
//! `fd-lock` and tokio's `spawn_blocking`, in one run, on the workloads
//! that need real processes or distributions rather than criterion's
//! per-iteration means. Two reference rows use no library: `flock` with a
//! waiter woken by inotify (blocked in `poll(2)`, or through async-io's
//! reactor), and a holder that announces its release as lockyard does; they
//! show what the wake-up mechanism and the reactor cost by themselves.
//!
//! - `uncontended`: acquire + release of a free lock, sync and async;
//! - `same-process`: two threads of one process taking turns;
//! - `cross-process`: hand-off latency between two processes (release ->
//!   the waiter holds it), p50/p90/p99 over 200 hand-offs;
//! - `counter`: 4 processes x 250 increments of a file under the lock, wall
//!   time, runs (how often the lock changed process), final count checked;
//! - `many-waiters`: 10,000 tasks queued on one lock in one process: extra
//!   OS threads, memory per waiter, time to serve them all (and 1,000 to
//!   show it is linear); `spawn_blocking` and plain threads for contrast;
//! - `timeout`: how late `lock_timeout(50 ms)` on a held lock returns.
//!
//! Run: `cargo bench --all-features --bench processes` (Linux). Writes
//! `target/lockyard-bench/processes.json` (under `$CARGO_TARGET_DIR` when set); `python3 benches/plot.py` turns it
//! into `benches/results.svg`.

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
mod bench {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use lockyard::{FileLock, LockOptions};

    use super::support::open;

    const CHILD: &str = "LOCKYARD_BENCH_CHILD";

    /// Every library under test, as one way to run a closure under the lock.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Lib {
        Std,
        Fs4,
        FdLock,
        SpawnBlocking,
        LockyardBlocking,
        LockyardAsync,
        LockyardTokio,
        LockyardAsyncNoMeta,
        /// No library: `flock` with a waiter blocked reading an inotify
        /// instance and a holder that sets the file's times after
        /// unlocking. What a file-event wake-up costs on this machine, the
        /// floor of lockyard's cross-process path.
        RawInotify,
        /// The same, but the waiter waits for the instance to be readable
        /// through async-io's reactor (`async_io::block_on` per wait), as
        /// lockyard's waiters do: what the reactor adds.
        RawInotifyAsyncIo,
    }

    const LIBS: [Lib; 10] = [
        Lib::Std,
        Lib::Fs4,
        Lib::FdLock,
        Lib::SpawnBlocking,
        Lib::LockyardBlocking,
        Lib::LockyardAsync,
        Lib::LockyardTokio,
        Lib::LockyardAsyncNoMeta,
        Lib::RawInotify,
        Lib::RawInotifyAsyncIo,
    ];

    impl Lib {
        fn id(self) -> &'static str {
            match self {
                Lib::Std => "std File::lock (floor)",
                Lib::Fs4 => "fs4 lock/unlock",
                Lib::FdLock => "fd-lock RwLock::write",
                Lib::SpawnBlocking => "tokio spawn_blocking(File::lock)",
                Lib::LockyardBlocking => "lockyard lock_blocking",
                Lib::LockyardAsync => "lockyard lock().await (async-io)",
                Lib::LockyardTokio => "lockyard lock().await (tokio)",
                Lib::LockyardAsyncNoMeta => "lockyard lock().await, metadata off",
                Lib::RawInotify => "raw flock + inotify wake (no library)",
                Lib::RawInotifyAsyncIo => "raw flock + inotify wake via async-io reactor",
            }
        }

        fn parse(s: &str) -> Lib {
            LIBS.into_iter()
                .find(|l| format!("{l:?}") == s)
                .expect("known library")
        }
    }

    /// A lock of one library, opened once.
    enum Locker {
        Std(File),
        Fs4(File),
        FdLock(fd_lock::RwLock<File>),
        SpawnBlocking(std::sync::Arc<File>, tokio::runtime::Runtime),
        Lockyard(FileLock, Lib, tokio::runtime::Runtime),
        RawInotify(File, Events),
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// How a raw inotify waiter waits for an event.
    enum Events {
        /// Blocked in `read(2)`.
        Blocking(rustix::fd::OwnedFd),
        /// Through async-io's reactor, then a non-blocking read.
        Reactor(async_io::Async<rustix::fd::OwnedFd>),
    }

    impl Events {
        /// Waits for the holder's announcement (or any other event) and
        /// reads it.
        fn wait(&self) {
            let fd = match self {
                Events::Blocking(fd) => fd,
                Events::Reactor(fd) => {
                    async_io::block_on(fd.readable()).expect("readable");
                    fd.get_ref()
                }
            };
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
            let _ = rustix::fs::inotify::Reader::new(fd, &mut buf).next();
        }
    }

    impl Locker {
        fn new(lib: Lib, path: &Path) -> Locker {
            match lib {
                Lib::Std => Locker::Std(open(path)),
                Lib::Fs4 => Locker::Fs4(open(path)),
                Lib::FdLock => Locker::FdLock(fd_lock::RwLock::new(open(path))),
                Lib::SpawnBlocking => {
                    Locker::SpawnBlocking(std::sync::Arc::new(open(path)), current_thread())
                }
                Lib::RawInotify | Lib::RawInotifyAsyncIo => {
                    use rustix::fs::inotify;
                    let file = open(path);
                    let events = inotify::init(inotify::CreateFlags::CLOEXEC).expect("inotify");
                    inotify::add_watch(
                        &events,
                        path,
                        inotify::WatchFlags::ATTRIB | inotify::WatchFlags::CLOSE_WRITE,
                    )
                    .expect("watch");
                    let events = match lib {
                        Lib::RawInotify => Events::Blocking(events),
                        _ => Events::Reactor(async_io::Async::new(events).expect("async")),
                    };
                    Locker::RawInotify(file, events)
                }
                _ => {
                    let options = LockOptions::new().metadata(lib != Lib::LockyardAsyncNoMeta);
                    Locker::Lockyard(FileLock::with_options(path, options), lib, current_thread())
                }
            }
        }

        fn with<R>(&mut self, f: impl FnOnce() -> R) -> R {
            match self {
                Locker::Std(file) => {
                    file.lock().expect("lock");
                    let r = f();
                    file.unlock().expect("unlock");
                    r
                }
                Locker::Fs4(file) => {
                    fs4::FileExt::lock(file).expect("lock");
                    let r = f();
                    fs4::FileExt::unlock(file).expect("unlock");
                    r
                }
                Locker::FdLock(lock) => {
                    let guard = lock.write().expect("lock");
                    let r = f();
                    drop(guard);
                    r
                }
                Locker::SpawnBlocking(file, rt) => {
                    let file2 = std::sync::Arc::clone(file);
                    rt.block_on(async { tokio::task::spawn_blocking(move || file2.lock()).await })
                        .expect("join")
                        .expect("lock");
                    let r = f();
                    file.unlock().expect("unlock");
                    r
                }
                Locker::RawInotify(file, events) => {
                    loop {
                        match file.try_lock() {
                            Ok(()) => break,
                            Err(std::fs::TryLockError::WouldBlock) => {}
                            Err(std::fs::TryLockError::Error(e)) => panic!("lock: {e}"),
                        }
                        events.wait();
                    }
                    let r = f();
                    file.unlock().expect("unlock");
                    let now = rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_NOW,
                    };
                    let times = rustix::fs::Timestamps {
                        last_access: now,
                        last_modification: now,
                    };
                    rustix::fs::futimens(&*file, &times).expect("announce");
                    r
                }
                Locker::Lockyard(lock, lib, rt) => {
                    let guard = match lib {
                        Lib::LockyardBlocking => lock.lock_blocking(),
                        Lib::LockyardTokio => rt.block_on(lock.lock()),
                        _ => async_io::block_on(lock.lock()),
                    }
                    .expect("lock");
                    let r = f();
                    drop(guard);
                    r
                }
            }
        }
    }

    fn mono_ns() -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    fn pct(sorted: &[f64], p: f64) -> f64 {
        let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
        sorted[rank.min(sorted.len()) - 1]
    }

    /// The separator before the `i`th JSON member.
    fn sep(i: usize) -> &'static str {
        if i > 0 {
            ", "
        } else {
            ""
        }
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn spawn(role: &str, args: &[(&str, String)]) -> Child {
        let mut cmd = Command::new(std::env::current_exe().expect("exe"));
        cmd.env(CHILD, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in args {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn child")
    }

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
    }

    // ------------------------------------------------------------ children

    pub fn child(role: &str) {
        let lib = Lib::parse(&env("LIB"));
        let path = PathBuf::from(env("LOCK"));
        let mut locker = Locker::new(lib, &path);
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut out = std::io::stdout().lock();
        match role {
            // Waits on the parent's lock each round and reports the latency.
            "handoff" => {
                let side = open(Path::new(&env("SIDE")));
                while let Some(Ok(line)) = lines.next() {
                    if line != "go" {
                        break;
                    }
                    writeln!(out, "calling")
                        .and_then(|()| out.flush())
                        .expect("pipe");
                    let lat = locker.with(|| {
                        let acq = mono_ns();
                        let mut b = [0u8; 8];
                        side.read_exact_at(&mut b, 0).expect("side");
                        acq.saturating_sub(u64::from_le_bytes(b))
                    });
                    writeln!(out, "{lat}")
                        .and_then(|()| out.flush())
                        .expect("pipe");
                }
            }
            // Increments the counter M times once told to go.
            "counter" => {
                let data = open(Path::new(&env("DATA")));
                let m: usize = env("M").parse().expect("M");
                let me: u64 = env("ID").parse().expect("ID");
                writeln!(out, "ready")
                    .and_then(|()| out.flush())
                    .expect("pipe");
                let _ = lines.next();
                for _ in 0..m {
                    // The count, the last writer and the number of runs (a
                    // run ends when the lock changes process).
                    locker.with(|| {
                        let mut b = [0u8; 24];
                        let n = data.read_at(&mut b, 0).expect("read");
                        let word = |i: usize| {
                            let mut w = [0u8; 8];
                            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
                            u64::from_le_bytes(w)
                        };
                        let (v, last, runs) = if n == 24 {
                            (word(0), word(1), word(2))
                        } else {
                            (0, 0, 0)
                        };
                        let runs = if last == me { runs } else { runs + 1 };
                        let mut w = [0u8; 24];
                        w[..8].copy_from_slice(&(v + 1).to_le_bytes());
                        w[8..16].copy_from_slice(&me.to_le_bytes());
                        w[16..].copy_from_slice(&runs.to_le_bytes());
                        data.write_all_at(&w, 0).expect("write");
                    });
                }
                writeln!(out, "done")
                    .and_then(|()| out.flush())
                    .expect("pipe");
            }
            // Holds the lock until stdin closes.
            "hold" => {
                locker.with(|| {
                    writeln!(out, "held")
                        .and_then(|()| out.flush())
                        .expect("pipe");
                    let _ = lines.next();
                });
            }
            other => panic!("unknown role {other}"),
        }
    }

    // ------------------------------------------------------------ workloads

    fn uncontended(lib: Lib, dir: &Path) -> f64 {
        let mut locker = Locker::new(lib, &dir.join(format!("u-{lib:?}.lock")));
        let n = if lib == Lib::SpawnBlocking {
            2_000
        } else {
            20_000
        };
        for _ in 0..n / 10 {
            locker.with(|| ());
        }
        let rounds: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    locker.with(|| ());
                }
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect();
        median(rounds)
    }

    fn same_process(lib: Lib, dir: &Path) -> f64 {
        let path = dir.join(format!("s-{lib:?}.lock"));
        let per_thread = if lib == Lib::SpawnBlocking {
            1_000
        } else {
            5_000
        };
        let t = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut locker = Locker::new(lib, &path);
                    for _ in 0..per_thread {
                        locker.with(std::hint::spin_loop);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().expect("thread");
        }
        t.elapsed().as_nanos() as f64 / (2 * per_thread) as f64
    }

    fn cross_process(lib: Lib, dir: &Path, rounds: usize) -> Vec<f64> {
        let path = dir.join(format!("x-{lib:?}.lock"));
        let side_path = dir.join(format!("x-{lib:?}.side"));
        let side = open(&side_path);
        let mut locker = Locker::new(lib, &path);
        let mut child = spawn(
            "handoff",
            &[
                ("LIB", format!("{lib:?}")),
                ("LOCK", path.display().to_string()),
                ("SIDE", side_path.display().to_string()),
            ],
        );
        let mut to = child.stdin.take().expect("stdin");
        let mut from = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut rng = fastrand::Rng::with_seed(42);
        let mut lat = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            locker.with(|| {
                writeln!(to, "go").expect("pipe");
                assert_eq!(from.next().expect("line").expect("read"), "calling");
                // Long enough for the waiter to be asleep inside acquire.
                std::thread::sleep(Duration::from_micros(2_000 + rng.u64(0..3_000)));
                side.write_all_at(&mono_ns().to_le_bytes(), 0)
                    .expect("side");
            });
            let ns: f64 = from
                .next()
                .expect("line")
                .expect("read")
                .parse()
                .expect("ns");
            lat.push(ns);
        }
        drop(to);
        child.wait().expect("child");
        lat.sort_by(f64::total_cmp);
        lat
    }

    /// Wall time, final count and runs (how often the lock changed process).
    fn counter(lib: Lib, dir: &Path) -> (f64, u64, u64) {
        let (p, m) = (4, 250);
        let path = dir.join(format!("c-{lib:?}.lock"));
        let data = dir.join(format!("c-{lib:?}.data"));
        let _ = std::fs::remove_file(&data);
        let mut children: Vec<Child> = (0..p)
            .enumerate()
            .map(|(i, _)| {
                spawn(
                    "counter",
                    &[
                        ("ID", (i + 1).to_string()),
                        ("LIB", format!("{lib:?}")),
                        ("LOCK", path.display().to_string()),
                        ("DATA", data.display().to_string()),
                        ("M", m.to_string()),
                    ],
                )
            })
            .collect();
        let mut outs: Vec<_> = children
            .iter_mut()
            .map(|c| BufReader::new(c.stdout.take().expect("stdout")).lines())
            .collect();
        for o in &mut outs {
            assert_eq!(o.next().expect("line").expect("read"), "ready");
        }
        let t = Instant::now();
        for c in &mut children {
            writeln!(c.stdin.as_mut().expect("stdin"), "go").expect("pipe");
        }
        for o in &mut outs {
            assert_eq!(o.next().expect("line").expect("read"), "done");
        }
        let wall = t.elapsed().as_secs_f64() * 1e3;
        for mut c in children {
            drop(c.stdin.take());
            c.wait().expect("child");
        }
        let mut b = [0u8; 24];
        open(&data).read_exact_at(&mut b, 0).expect("count");
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        (wall, word(0), word(2))
    }

    fn proc_status(field: &str) -> u64 {
        let text = std::fs::read_to_string("/proc/self/status").expect("status");
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("field")
    }

    struct Crowd {
        what: String,
        waiters: usize,
        extra_threads: u64,
        bytes_per_waiter: f64,
        serve_ms: f64,
    }

    /// `n` lockyard waiters on a current-thread tokio runtime.
    fn crowd_lockyard(dir: &Path, n: usize) -> Crowd {
        let path = dir.join(format!("m-{n}.lock"));
        let rt = current_thread();
        let lock = FileLock::new(&path);
        // Warm up: the open thread, the reactor, the runtime.
        rt.block_on(async { drop(lock.lock().await.expect("lock")) });
        let threads0 = proc_status("Threads:");
        let rss0 = proc_status("VmRSS:") * 1024;
        rt.block_on(async {
            let held = lock.lock().await.expect("lock");
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let fut = lock.lock();
                    tokio::spawn(async move { drop(fut.await.expect("lock")) })
                })
                .collect();
            while lock.waiters() < n {
                tokio::task::yield_now().await;
            }
            let threads = proc_status("Threads:");
            let rss = proc_status("VmRSS:") * 1024;
            let t = Instant::now();
            drop(held);
            for task in tasks {
                task.await.expect("task");
            }
            Crowd {
                what: "lockyard lock().await tasks (tokio current-thread)".into(),
                waiters: n,
                extra_threads: threads.saturating_sub(threads0),
                bytes_per_waiter: rss.saturating_sub(rss0) as f64 / n as f64,
                serve_ms: t.elapsed().as_secs_f64() * 1e3,
            }
        })
    }

    /// `n` lockyard futures, boxed and polled once each, with no executor:
    /// lockyard's own cost per waiter, without any runtime's task header.
    fn crowd_futures(dir: &Path, n: usize) -> Crowd {
        use std::future::Future;
        use std::task::{Context, Waker};
        let path = dir.join(format!("f-{n}.lock"));
        let lock = FileLock::with_options(&path, LockOptions::new().offload_open(false));
        let held = lock.try_lock().expect("lock");
        let threads0 = proc_status("Threads:");
        let rss0 = proc_status("VmRSS:") * 1024;
        let mut cx = Context::from_waker(Waker::noop());
        let mut futs: Vec<_> = (0..n).map(|_| Box::pin(lock.lock())).collect();
        for f in &mut futs {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        let threads = proc_status("Threads:");
        let rss = proc_status("VmRSS:") * 1024;
        let t = Instant::now();
        drop(held);
        for f in &mut futs {
            loop {
                if let std::task::Poll::Ready(g) = f.as_mut().poll(&mut cx) {
                    drop(g.expect("lock"));
                    break;
                }
            }
        }
        Crowd {
            what: format!(
                "lockyard futures, boxed, no executor ({} B future)",
                std::mem::size_of_val(&*futs[0])
            ),
            waiters: n,
            extra_threads: threads.saturating_sub(threads0),
            bytes_per_waiter: rss.saturating_sub(rss0) as f64 / n as f64,
            serve_ms: t.elapsed().as_secs_f64() * 1e3,
        }
    }

    /// `n` threads each blocked in `flock` on its own descriptor (what
    /// std, fs4 and fd-lock offer), or `n` spawn_blocking tasks.
    fn crowd_threads(dir: &Path, n: usize, spawn_blocking: bool) -> Crowd {
        use std::sync::{Arc, Barrier};
        let path = dir.join(format!("t-{n}-{spawn_blocking}.lock"));
        let holder = open(&path);
        holder.lock().expect("lock");
        let threads0 = proc_status("Threads:");
        let rss0 = proc_status("VmRSS:") * 1024;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(n)
            .build()
            .expect("runtime");
        let started = Arc::new(Barrier::new(n + 1));
        let mut handles = Vec::new();
        let mut joins = Vec::new();
        for _ in 0..n {
            let file = open(&path);
            let started = Arc::clone(&started);
            let work = move || {
                started.wait();
                file.lock().expect("lock");
                file.unlock().expect("unlock");
            };
            if spawn_blocking {
                joins.push(rt.spawn_blocking(work));
            } else {
                handles.push(std::thread::spawn(work));
            }
        }
        started.wait();
        std::thread::sleep(Duration::from_millis(200));
        let threads = proc_status("Threads:");
        let rss = proc_status("VmRSS:") * 1024;
        let t = Instant::now();
        holder.unlock().expect("unlock");
        for h in handles {
            h.join().expect("thread");
        }
        rt.block_on(async {
            for j in joins {
                j.await.expect("join");
            }
        });
        Crowd {
            what: if spawn_blocking {
                "tokio spawn_blocking(File::lock)".into()
            } else {
                "threads blocked in File::lock (std, fs4, fd-lock)".into()
            },
            waiters: n,
            extra_threads: threads.saturating_sub(threads0),
            bytes_per_waiter: rss.saturating_sub(rss0) as f64 / n as f64,
            serve_ms: t.elapsed().as_secs_f64() * 1e3,
        }
    }

    /// How long `lock_timeout(50 ms)` takes to give up on a lock another
    /// process holds.
    fn timeouts(dir: &Path, samples: usize, tokio: bool) -> Vec<f64> {
        let path = dir.join("timeout.lock");
        let mut child = spawn(
            "hold",
            &[
                ("LIB", "Std".to_string()),
                ("LOCK", path.display().to_string()),
            ],
        );
        let mut from = BufReader::new(child.stdout.take().expect("stdout")).lines();
        assert_eq!(from.next().expect("line").expect("read"), "held");
        let lock = FileLock::new(&path);
        let rt = current_thread();
        let mut took = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let fut = lock.lock_timeout(Duration::from_millis(50));
            let r = if tokio {
                rt.block_on(fut)
            } else {
                async_io::block_on(fut)
            };
            assert!(r.is_err(), "the child holds it");
            took.push(t.elapsed().as_secs_f64() * 1e3);
        }
        drop(child.stdin.take());
        child.wait().expect("child");
        took.sort_by(f64::total_cmp);
        took
    }

    // ------------------------------------------------------------ report

    pub fn main() {
        let quick = std::env::var_os("LOCKYARD_BENCH_QUICK").is_some();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut json = String::from("{\n");
        println!("# lockyard vs std, fs4, fd-lock, tokio spawn_blocking (one run)\n");

        println!("## uncontended acquire + release (median of 5 rounds)\n");
        println!("| library | ns/op | x floor |\n|---|---:|---:|");
        let mut rows = Vec::new();
        for lib in LIBS {
            rows.push((lib, uncontended(lib, d)));
        }
        let floor = rows[0].1;
        json.push_str("\"uncontended_ns\": {");
        for (i, (lib, ns)) in rows.iter().enumerate() {
            println!("| {} | {:.0} | {:.2} |", lib.id(), ns, ns / floor);
            json.push_str(&format!("{}\"{}\": {:.1}", sep(i), lib.id(), ns));
        }
        json.push_str("},\n");

        println!("\n## same-process hand-off, 2 threads (ns per acquisition)\n");
        println!("| library | ns/acquisition |\n|---|---:|");
        json.push_str("\"same_process_ns\": {");
        for (i, lib) in LIBS.into_iter().enumerate() {
            let ns = same_process(lib, d);
            println!("| {} | {:.0} |", lib.id(), ns);
            json.push_str(&format!("{}\"{}\": {:.1}", sep(i), lib.id(), ns));
        }
        json.push_str("},\n");

        let rounds = if quick { 30 } else { 200 };
        println!("\n## cross-process hand-off latency, release -> waiter holds it ({rounds} hand-offs, µs)\n");
        println!(
            "| library | p50 | p90 | p99 | max | p50 x floor |\n|---|---:|---:|---:|---:|---:|"
        );
        json.push_str("\"cross_process_us\": {");
        let mut floor50 = 0.0;
        for (i, lib) in LIBS.into_iter().enumerate() {
            let lat = cross_process(lib, d, rounds);
            let us = |p| pct(&lat, p) / 1e3;
            if i == 0 {
                floor50 = us(50.0);
            }
            println!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
                lib.id(),
                us(50.0),
                us(90.0),
                us(99.0),
                us(100.0),
                us(50.0) / floor50
            );
            json.push_str(&format!(
                "{}\"{}\": {{\"p50\": {:.1}, \"p90\": {:.1}, \"p99\": {:.1}}}",
                sep(i),
                lib.id(),
                us(50.0),
                us(90.0),
                us(99.0)
            ));
        }
        json.push_str("},\n");

        println!("\n## 4 processes x 250 increments under the lock\n");
        println!("Runs: stretches of increments by one process (4: each process did all of its work at once; 1000: strict alternation), i.e. how often the lock changed process.\n");
        println!("| library | wall ms | x floor | runs | final count |\n|---|---:|---:|---:|---:|");
        json.push_str("\"counter_ms\": {");
        let mut floor_ms = 0.0;
        for (i, lib) in LIBS.into_iter().enumerate() {
            let (ms, count, runs) = counter(lib, d);
            if i == 0 {
                floor_ms = ms;
            }
            assert_eq!(count, 1000, "{}: lost updates", lib.id());
            println!(
                "| {} | {:.1} | {:.2} | {} | {} |",
                lib.id(),
                ms,
                ms / floor_ms,
                runs,
                count
            );
            json.push_str(&format!("{}\"{}\": {:.2}", sep(i), lib.id(), ms));
        }
        json.push_str("},\n");

        println!("\n## many waiters on one lock in one process\n");
        println!("| waiters | how they wait | extra OS threads | memory per waiter | time to serve all |\n|---:|---|---:|---:|---:|");
        // Fresh heap first: memory freed by one crowd is reused by the next
        // without showing in RSS.
        let crowds = [
            crowd_futures(d, 10_000),
            crowd_lockyard(d, 1_000),
            crowd_lockyard(d, 10_000),
            crowd_threads(d, 1_000, false),
            crowd_threads(d, 1_000, true),
        ];
        json.push_str("\"many_waiters\": [");
        for (i, c) in crowds.iter().enumerate() {
            println!(
                "| {} | {} | {} | {:.0} B | {:.1} ms |",
                c.waiters, c.what, c.extra_threads, c.bytes_per_waiter, c.serve_ms
            );
            json.push_str(&format!(
                "{}{{\"what\": \"{}\", \"waiters\": {}, \"extra_threads\": {}, \"bytes_per_waiter\": {:.0}, \"serve_ms\": {:.2}}}",
                sep(i),
                c.what,
                c.waiters,
                c.extra_threads,
                c.bytes_per_waiter,
                c.serve_ms
            ));
        }
        json.push_str("],\n");

        let samples = if quick { 20 } else { 200 };
        println!("\n## lock_timeout(50 ms) on a lock another process holds ({samples} tries, ms until it returns)\n");
        println!("| executor | p50 | p99 | max |\n|---|---:|---:|---:|");
        json.push_str("\"timeout_ms\": {");
        for (i, tokio) in [false, true].into_iter().enumerate() {
            let took = timeouts(d, samples, tokio);
            let name = if tokio { "tokio" } else { "async-io" };
            println!(
                "| {} | {:.2} | {:.2} | {:.2} |",
                name,
                pct(&took, 50.0),
                pct(&took, 99.0),
                pct(&took, 100.0)
            );
            json.push_str(&format!(
                "{}\"{}\": {{\"p50\": {:.2}, \"p99\": {:.2}}}",
                sep(i),
                name,
                pct(&took, 50.0),
                pct(&took, 99.0)
            ));
        }
        json.push_str("}\n}\n");

        // Under the build's target directory, wherever CARGO_TARGET_DIR puts it.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        let out = target.join("lockyard-bench");
        std::fs::create_dir_all(&out).expect("output dir");
        std::fs::write(out.join("processes.json"), json).expect("write json");
        println!("\nwrote {}", out.join("processes.json").display());
    }
}

#[cfg(target_os = "linux")]
fn main() {
    if let Ok(role) = std::env::var("LOCKYARD_BENCH_CHILD") {
        bench::child(&role);
    } else if std::env::args().any(|a| a == "--bench") {
        bench::main();
    }
    // `cargo test` runs bench targets only to check that they start.
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("benches/processes.rs measures Linux only (it reads /proc)");
}
