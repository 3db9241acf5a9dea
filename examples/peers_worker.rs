//! A worker for the cross-language lock benchmark protocol (the `--extra`
//! option of the peer benchmark harness): `list`, `w1`, `w2-worker` and
//! `w3-worker`, one row per way of waiting that lockyard offers.
//!
//! ```text
//! cargo build --release --features tokio --example peers_worker
//! path/to/peers/run.sh --extra target/release/examples/peers_worker
//! ```
//!
//! Linux only (the protocol verifies waiters through `/proc`).

#[cfg(target_os = "linux")]
mod worker {
    use std::fs::{File, OpenOptions};
    use std::io::{self, BufRead, Read, Write};
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use lockyard::{FileLock, LockOptions, WaitStrategy};

    /// How a row takes the lock.
    #[derive(Clone, Copy, Debug)]
    enum Driver {
        /// `lock_blocking()`: with no deadline, the thread waits in the
        /// kernel's lock call.
        Blocking,
        /// `lock_blocking_timeout(60 s)`: a deadline to honour, so the
        /// thread waits for file events and backoff, driving async-io's
        /// reactor.
        BlockingTimeout,
        /// `lock().await` on `async_io::block_on` (what `smol::block_on`
        /// is): the waiting thread drives the reactor itself.
        Async,
        /// `lock().await` on `futures_lite::future::block_on`, which only
        /// parks: file events arrive through async-io's reactor thread.
        FuturesLite,
        /// `lock().await` inside a current-thread tokio runtime.
        Tokio,
    }

    struct Row {
        id: &'static str,
        driver: Driver,
        options: fn() -> LockOptions,
        kernel_wait: bool,
        notes: &'static str,
    }

    const ROWS: &[Row] = &[
        Row {
            id: "rs-lockyard-async",
            driver: Driver::Async,
            options: LockOptions::new,
            kernel_wait: false,
            notes: "FileLock::lock().await on async_io::block_on (= smol::block_on), holder metadata on (default)",
        },
        Row {
            id: "rs-lockyard-futures-lite",
            driver: Driver::FuturesLite,
            options: LockOptions::new,
            kernel_wait: false,
            notes: "FileLock::lock().await on futures_lite::future::block_on (events via async-io's thread)",
        },
        Row {
            id: "rs-lockyard-async-nometa",
            driver: Driver::Async,
            options: || LockOptions::new().metadata(false),
            kernel_wait: false,
            notes: "FileLock::lock().await, metadata(false)",
        },
        Row {
            id: "rs-lockyard-async-bare",
            driver: Driver::Async,
            options: || LockOptions::new().metadata(false).file_events(false),
            kernel_wait: false,
            notes: "FileLock::lock().await, metadata(false), file_events(false): no release announcement, backoff hand-off",
        },
        Row {
            id: "rs-lockyard-blocking",
            driver: Driver::Blocking,
            options: LockOptions::new,
            kernel_wait: true,
            notes: "FileLock::lock_blocking(): no deadline, so it waits in flock(LOCK_EX) itself",
        },
        Row {
            id: "rs-lockyard-blocking-nometa",
            driver: Driver::Blocking,
            options: || LockOptions::new().metadata(false),
            kernel_wait: true,
            notes: "FileLock::lock_blocking(), metadata(false): the kernel wait without the record",
        },
        Row {
            id: "rs-lockyard-blocking-timeout",
            driver: Driver::BlockingTimeout,
            options: LockOptions::new,
            kernel_wait: false,
            notes: "FileLock::lock_blocking_timeout(60 s): file events + backoff on the calling thread",
        },
        Row {
            id: "rs-lockyard-tokio",
            driver: Driver::Tokio,
            options: LockOptions::new,
            kernel_wait: false,
            notes: "FileLock::lock().await in a tokio current-thread runtime (feature tokio)",
        },
        Row {
            id: "rs-lockyard-tokio-nometa",
            driver: Driver::Tokio,
            options: || LockOptions::new().metadata(false),
            kernel_wait: false,
            notes: "FileLock::lock().await in a tokio current-thread runtime, metadata(false)",
        },
        Row {
            id: "rs-lockyard-pool",
            driver: Driver::Async,
            options: || LockOptions::new().wait_strategy(WaitStrategy::BlockingPool),
            kernel_wait: true,
            notes:
                "WaitStrategy::BlockingPool: waits in flock(LOCK_EX) on a pool thread, cancellable",
        },
    ];

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match run(&args) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("peers_worker: {e}");
                std::process::exit(1);
            }
        }
    }

    fn run(args: &[String]) -> io::Result<String> {
        let cmd = args.first().map(String::as_str).unwrap_or("");
        if cmd == "list" {
            let lines: Vec<String> = ROWS
                .iter()
                .map(|r| {
                    format!(
                        r#"{{"id":"{}","lang":"rust","crate":"lockyard {}","wait":"{}","style":"kept open","api":"{:?}","notes":"{}"}}"#,
                        r.id,
                        env!("CARGO_PKG_VERSION"),
                        if r.kernel_wait { "kernel" } else { "poll" },
                        r.driver,
                        r.notes
                    )
                })
                .collect();
            return Ok(lines.join("\n"));
        }
        let row_id = args.get(1).ok_or_else(|| bad("missing row"))?;
        let row = ROWS
            .iter()
            .find(|r| r.id == row_id)
            .ok_or_else(|| bad("unknown row"))?;
        let flags = Flags(&args[2..]);
        let lock = FileLock::with_options(flags.path("lock")?, (row.options)());
        match cmd {
            "w1" => w1(row, &lock, &flags),
            "w2-worker" => w2(row, &lock, &flags),
            "w3-worker" => w3(row, &lock, &flags),
            other => Err(bad(&format!("unknown command {other}"))),
        }
    }

    /// Runs `critical` with the lock held, taken the row's way. Awaited
    /// inside the row's executor, which runs the whole workload as an
    /// application would (not entered and left around every acquisition).
    async fn locked<R>(row: &Row, lock: &FileLock, critical: impl FnOnce() -> R) -> io::Result<R> {
        let guard = match row.driver {
            Driver::Blocking => lock.lock_blocking(),
            Driver::BlockingTimeout => lock.lock_blocking_timeout(Duration::from_secs(60)),
            _ => lock.lock().await,
        }
        .map_err(io::Error::other)?;
        let r = critical();
        guard.unlock().map_err(io::Error::other)?;
        Ok(r)
    }

    /// Runs a whole workload on the row's executor. The blocking row needs
    /// none: nothing in it ever waits on a future.
    fn run_on<F: std::future::Future>(row: &Row, rt: &Runtime, workload: F) -> F::Output {
        match (row.driver, rt) {
            (Driver::Tokio, Runtime::Tokio(rt)) => rt.block_on(workload),
            (Driver::Async, _) => async_io::block_on(workload),
            _ => futures_lite::future::block_on(workload),
        }
    }

    enum Runtime {
        None,
        Tokio(tokio::runtime::Runtime),
    }

    fn runtime(row: &Row) -> io::Result<Runtime> {
        Ok(match row.driver {
            Driver::Tokio => Runtime::Tokio(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            ),
            _ => Runtime::None,
        })
    }

    fn w1(row: &Row, lock: &FileLock, f: &Flags) -> io::Result<String> {
        let (n, warmup) = (f.num("n")?, f.num("warmup")?);
        let rt = runtime(row)?;
        run_on(row, &rt, async {
            for _ in 0..warmup {
                locked(row, lock, || ()).await?;
            }
            let start = Instant::now();
            for _ in 0..n {
                locked(row, lock, || ()).await?;
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            Ok(format!(r#"{{"n":{n},"ns_per_cycle":{ns:.3}}}"#))
        })
    }

    const HELLO: u64 = 1;
    const HELD: u64 = 2;
    const CALL: u64 = 3;

    /// The two FIFOs between the W2 workers: 16-byte messages (kind, value).
    struct Fifos {
        inbox: File,
        outbox: File,
    }

    impl Fifos {
        fn send(&mut self, kind: u64, value: u64) -> io::Result<()> {
            let mut msg = [0u8; 16];
            msg[..8].copy_from_slice(&kind.to_le_bytes());
            msg[8..].copy_from_slice(&value.to_le_bytes());
            self.outbox.write_all(&msg)
        }

        fn expect(&mut self, kind: u64) -> io::Result<u64> {
            let mut msg = [0u8; 16];
            self.inbox.read_exact(&mut msg)?;
            let (k, v) = msg.split_at(8);
            let k = u64::from_le_bytes(k.try_into().map_err(|_| bad("short message"))?);
            if k != kind {
                return Err(bad(&format!("expected message {kind}, got {k}")));
            }
            Ok(u64::from_le_bytes(
                v.try_into().map_err(|_| bad("short message"))?,
            ))
        }
    }

    struct Handoff<'a> {
        row: &'a Row,
        fifos: Fifos,
        side: File,
        lock_ino: u64,
        peer: u32,
        seed: u64,
        hold_min_ns: u64,
        hold_span_ns: u64,
        samples: Vec<u64>,
        checked: u64,
        verified: u64,
        bad_order: u64,
        holds_ns: u64,
    }

    impl Handoff<'_> {
        /// Holding the lock for round `j`: let the peer start waiting, check it
        /// is waiting, hold for the scheduled time, stamp the release.
        fn hold(&mut self, j: u64) -> io::Result<()> {
            self.fifos.send(HELD, j)?;
            self.fifos.expect(CALL)?;
            self.checked += 1;
            let deadline = Instant::now() + Duration::from_secs(2);
            let waiting = loop {
                let ok = if self.row.kernel_wait {
                    blocked_in_kernel(self.peer, self.lock_ino)
                } else {
                    asleep(self.peer)
                };
                if ok || Instant::now() > deadline {
                    break ok;
                }
                std::thread::sleep(Duration::from_micros(100));
            };
            self.verified += u64::from(waiting);
            let hold = self.hold_min_ns + schedule(self.seed, j) % self.hold_span_ns.max(1);
            self.holds_ns += hold;
            std::thread::sleep(Duration::from_nanos(hold));
            self.side.write_all_at(&monotonic_ns().to_le_bytes(), 0)
        }

        /// Just acquired after calling at `t_call`: one latency sample.
        fn sample(&mut self, t_call: u64) -> io::Result<()> {
            let t_acq = monotonic_ns();
            let mut b = [0u8; 8];
            self.side.read_exact_at(&mut b, 0)?;
            let t_rel = u64::from_le_bytes(b);
            if !(t_call < t_rel && t_rel <= t_acq) {
                self.bad_order += 1;
            }
            self.samples.push(t_acq.saturating_sub(t_rel));
            Ok(())
        }
    }

    fn w2(row: &Row, lock: &FileLock, f: &Flags) -> io::Result<String> {
        let (role, k) = (f.num("role")?, f.num("k")?);
        let rt = runtime(row)?;
        let rw = |p: PathBuf| OpenOptions::new().read(true).write(true).open(p);
        let mut fifos = Fifos {
            inbox: rw(f.path("inbox")?)?,
            outbox: rw(f.path("outbox")?)?,
        };
        fifos.send(HELLO, u64::from(std::process::id()))?;
        let peer = fifos.expect(HELLO)? as u32;
        let mut h = Handoff {
            row,
            fifos,
            side: rw(f.path("side")?)?,
            lock_ino: 0,
            peer,
            seed: f.num("seed")?,
            hold_min_ns: f.num("hold-min-us")? * 1000,
            hold_span_ns: f.num("hold-span-us")? * 1000,
            samples: Vec::new(),
            checked: 0,
            verified: 0,
            bad_order: 0,
            holds_ns: 0,
        };
        // `round` is the round this worker waits in; role 1 waits in round
        // 0 while role 0 holds it, then they alternate.
        run_on(row, &rt, async {
            let mut round = 0;
            if role == 0 {
                locked(row, lock, || -> io::Result<()> {
                    h.lock_ino = std::fs::metadata(lock.path())?.ino();
                    h.hold(0)
                })
                .await??;
                round = 1;
            }
            while round < k {
                h.fifos.expect(HELD)?;
                let t_call = monotonic_ns();
                h.fifos.send(CALL, t_call)?;
                locked(row, lock, || -> io::Result<()> {
                    // The sample first: nothing else belongs in the latency.
                    h.sample(t_call)?;
                    h.lock_ino = std::fs::metadata(lock.path())?.ino();
                    if round + 1 < k {
                        h.hold(round + 1)?;
                    }
                    Ok(())
                })
                .await??;
                round += 2;
            }
            Ok::<(), io::Error>(())
        })?;
        let samples: Vec<String> = h.samples.iter().map(u64::to_string).collect();
        Ok(format!(
            r#"{{"samples_ns":[{}],"checked":{},"verified":{},"verify":"{}","bad_order":{},"holds_ns_sum":{}}}"#,
            samples.join(","),
            h.checked,
            h.verified,
            if row.kernel_wait {
                "proc-locks"
            } else {
                "threads-asleep"
            },
            h.bad_order,
            h.holds_ns
        ))
    }

    fn w3(row: &Row, lock: &FileLock, f: &Flags) -> io::Result<String> {
        let (m, me) = (f.num("m")?, f.num("id")?);
        let rt = runtime(row)?;
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .open(f.path("data")?)?;
        println!("ready");
        io::stdout().flush()?;
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        let at: u64 = line
            .trim()
            .strip_prefix("go ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("expected go <t>"))?;
        std::thread::sleep(Duration::from_nanos(at.saturating_sub(monotonic_ns())));
        let start = monotonic_ns();
        run_on(row, &rt, async {
            for _ in 0..m {
                locked(row, lock, || increment(&data, me)).await??;
            }
            Ok::<(), io::Error>(())
        })?;
        Ok(format!(
            r#"{{"start_ns":{start},"end_ns":{}}}"#,
            monotonic_ns()
        ))
    }

    /// The shared record: `count runs last-writer`, fixed width, in place.
    fn increment(data: &File, me: u64) -> io::Result<()> {
        let mut buf = [0u8; 46];
        data.read_exact_at(&mut buf, 0)?;
        let text = std::str::from_utf8(&buf).map_err(|_| bad("record is not text"))?;
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let mut next = || {
            fields
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| bad("bad record"))
        };
        let (count, runs, last) = (next()?, next()?, next()?);
        let runs = runs + u64::from(last != me);
        let out = format!("{:020} {:020} {:03}\n", count + 1, runs, me);
        data.write_all_at(out.as_bytes(), 0)
    }

    /// splitmix64 of `seed` advanced `j + 1` steps: the hold schedule every
    /// harness shares.
    fn schedule(seed: u64, j: u64) -> u64 {
        let mut z = seed.wrapping_add((j + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn monotonic_ns() -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    /// Whether `pid` has a blocked flock request (`->`) on inode `ino`.
    fn blocked_in_kernel(pid: u32, ino: u64) -> bool {
        let Ok(table) = std::fs::read_to_string("/proc/locks") else {
            return false;
        };
        table.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"->")
                && f.get(5).and_then(|p| p.parse::<u32>().ok()) == Some(pid)
                && f.get(6)
                    .and_then(|d| d.rsplit(':').next())
                    .and_then(|i| i.parse::<u64>().ok())
                    == Some(ino)
        })
    }

    /// Whether every thread of `pid` sleeps (state `S`).
    fn asleep(pid: u32) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('S'))
                })
                .unwrap_or(false)
        })
    }

    struct Flags<'a>(&'a [String]);

    impl Flags<'_> {
        fn get(&self, name: &str) -> io::Result<&str> {
            let flag = format!("--{name}");
            self.0
                .iter()
                .position(|a| *a == flag)
                .and_then(|i| self.0.get(i + 1))
                .map(String::as_str)
                .ok_or_else(|| bad(&format!("missing --{name}")))
        }

        fn num(&self, name: &str) -> io::Result<u64> {
            self.get(name)?
                .parse()
                .map_err(|_| bad(&format!("--{name} is not a number")))
        }

        fn path(&self, name: &str) -> io::Result<PathBuf> {
            self.get(name).map(PathBuf::from)
        }
    }

    fn bad(msg: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
    }
}

#[cfg(target_os = "linux")]
fn main() {
    worker::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("peers_worker: the benchmark protocol needs Linux (/proc/locks)");
    std::process::exit(1);
}
