//! PostgreSQL locks side by side, in one run against one server:
//!
//! - `raw`: `pg_advisory_lock` / `pg_advisory_unlock` on one tokio-postgres
//!   connection, statements prepared once (the floor: the server's own
//!   hand-off, nothing else);
//! - `raw + token`: the same, with a committed row update (a durable
//!   fencing token) in the lock statement: the cost of the mechanism
//!   lockyard uses for its tokens, alone;
//! - `raw + token, via a thread`: the same statements run by a thread of
//!   their own (a tokio runtime there reads the replies), the caller
//!   blocked until that thread hands each result over: the mechanism as
//!   a future without a runtime of its own meets it when its wait in the
//!   server runs elsewhere (one more thread wake-up per round trip);
//! - `lockyard` (`lock().await` under `futures_lite::future::block_on`,
//!   no tokio runtime; `lockyard async_io::block_on` the same under
//!   async-io's own `block_on`, smol's executor, whose waiting thread runs
//!   the reactor itself) and
//!   `lockyard-blocking` (`lock_blocking`): lockyard's `PgLock`, which also
//!   bumps a durable fencing token on every exclusive hold; its holds share
//!   a few sessions, and `lockyard sessions(0)` is the same with a session
//!   per hold; `lockyard waiting_sessions(0)` waits with no session of its
//!   own (it tries on a shared one, backing off from 2 to 200 ms);
//! - `sqlx`: sqlx's `PgAdvisoryLock` on one connection;
//! - `distributed-lock`: distributed-lock-postgres 0.2's lock from a pool.
//!
//! Workloads: `uncontended` (acquire + release, one process, µs per cycle;
//! the median of the batches) and `handoff` (two processes: the parent
//! holds, the child waits in the server; the latency from the parent's
//! release call to the child holding the lock, p50/p90/p99 over ROUNDS
//! hand-offs; and in the first pass, one long wait: the parent holds for
//! 2 s while the child waits, and the server's processor time over it says
//! what a wait costs the server). The libraries take turns in three passes.
//!
//! `ONLY=Raw,Lockyard` (row names as the `Lib` enum spells them) runs only
//! those rows, for a quick comparison of two builds taking turns.
//!
//! `WAIT_LOAD=N` measures something else instead: N tasks of one process
//! wait for N different names held elsewhere, with the default waiting
//! sessions and with `waiting_sessions(0)`; for each, the sessions the
//! process used, the server's processor time per second of waiting, and
//! how long after the release the last wait got its lock (see
//! `wait_load.rs`).
//!
//! Run: `cargo run --release -- postgres://user@host:port/db [ROUNDS]`
//! (from `benches/postgres-peers`; `.ci/postgres-bed start DIR` makes a
//! throwaway server).

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distributed_lock_core::traits::{DistributedLock, LockHandle, LockProvider};

mod wait_load;

const CHILD: &str = "PG_PEERS_CHILD";
const TABLE: &str = "lockyard_bench";
/// The raw rows' advisory key (lockyard's keys carry the table's OID in
/// the high half, sqlx and distributed-lock hash their names: no clash).
const RAW_KEY: i64 = 0x5eed_0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lib {
    Raw,
    RawToken,
    RawTokenHop,
    Lockyard,
    LockyardAsyncIo,
    LockyardOwnSessions,
    LockyardTrying,
    LockyardBlocking,
    Sqlx,
    DistributedLock,
}

impl Lib {
    const ALL: [Lib; 10] = [
        Lib::Raw,
        Lib::RawToken,
        Lib::RawTokenHop,
        Lib::Lockyard,
        Lib::LockyardAsyncIo,
        Lib::LockyardOwnSessions,
        Lib::LockyardTrying,
        Lib::LockyardBlocking,
        Lib::Sqlx,
        Lib::DistributedLock,
    ];

    fn id(self) -> &'static str {
        match self {
            Lib::Raw => "raw pg_advisory_lock (floor)",
            Lib::RawToken => "raw, + token UPDATE in the lock statement",
            Lib::RawTokenHop => "raw + token UPDATE, via a thread (one more wake-up)",
            Lib::Lockyard => "lockyard lock().await",
            Lib::LockyardAsyncIo => "lockyard lock().await, async_io::block_on",
            Lib::LockyardOwnSessions => "lockyard lock().await, sessions(0): a session per hold",
            Lib::LockyardTrying => "lockyard lock().await, waiting_sessions(0): waits try",
            Lib::LockyardBlocking => "lockyard lock_blocking()",
            Lib::Sqlx => "sqlx PgAdvisoryLock",
            Lib::DistributedLock => "distributed-lock 0.2",
        }
    }

    fn parse(s: &str) -> Lib {
        *Lib::ALL
            .iter()
            .find(|l| format!("{l:?}") == s)
            .expect("a known library")
    }
}

/// One library's lock, ready to be taken and released many times.
enum Locker {
    Raw {
        rt: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
        lock: tokio_postgres::Statement,
        unlock: tokio_postgres::Statement,
        conn: Protocol,
    },
    /// A `Raw` locker on a thread of its own: each lock or unlock is sent
    /// there, and the caller sleeps until the thread hands the result back.
    Hop(Hop),
    /// The lock, and the other names this process holds meanwhile (kept
    /// for their drop).
    Lockyard(
        lockyard::postgres::PgLock,
        #[allow(dead_code)] Vec<lockyard::LockGuard>,
        Executor,
    ),
    Sqlx {
        rt: tokio::runtime::Runtime,
        conn: sqlx::PgConnection,
        lock: sqlx::postgres::PgAdvisoryLock,
    },
    Dist {
        rt: tokio::runtime::Runtime,
        lock: distributed_lock_postgres::lock::PostgresDistributedLock,
    },
}

/// A tokio-postgres connection's protocol side, driven by the future that
/// waits for a reply (as lockyard drives its sessions and sqlx its
/// connections) rather than by a task of its own, which would add a task
/// switch to every round trip and make the floor look slower than it is.
type Protocol = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// `work`, with `conn`'s protocol driven beside it.
async fn driven<T>(conn: &mut Protocol, work: impl Future<Output = T>) -> T {
    tokio::select! {
        out = work => out,
        end = conn => panic!("the connection ended: {end:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl Locker {
    /// `lib`'s lock on `url`, with `held` other names (raw: advisory keys)
    /// held on the same connections first (raw and lockyard rows only).
    fn new(lib: Lib, url: &str, held: usize) -> Locker {
        let name = format!("bench/{lib:?}");
        match lib {
            Lib::RawTokenHop => {
                let url = url.to_owned();
                let (ops, queue) =
                    std::sync::mpsc::channel::<(bool, std::sync::mpsc::SyncSender<()>)>();
                let thread = std::thread::spawn(move || {
                    let Locker::Raw {
                        rt,
                        client,
                        lock,
                        unlock,
                        mut conn,
                    } = Locker::new(Lib::RawToken, &url, held)
                    else {
                        unreachable!("a raw locker")
                    };
                    for (take, done) in queue {
                        let statement = if take { &lock } else { &unlock };
                        rt.block_on(driven(&mut conn, client.execute(statement, &[&RAW_KEY])))
                            .expect("lock or unlock");
                        done.send(()).expect("the caller waits");
                    }
                });
                Locker::Hop(Hop {
                    ops: Some(ops),
                    thread: Some(thread),
                })
            }
            Lib::Raw | Lib::RawToken => {
                let rt = runtime();
                let (client, lock, unlock, conn) = rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                    let mut conn: Protocol = Box::pin(conn);
                    // Prepared once, as sqlx and lockyard do: one round trip each.
                    let lock_sql = if lib == Lib::RawToken {
                        // The mechanism of a durable fencing token alone: the
                        // lock and a committed row update in one statement.
                        let setup = "CREATE TABLE IF NOT EXISTS raw_tokens (id int PRIMARY KEY, token bigint NOT NULL);
                                     INSERT INTO raw_tokens VALUES (1, 0) ON CONFLICT DO NOTHING";
                        driven(&mut conn, client.batch_execute(setup)).await.expect("setup");
                        "WITH locked AS (SELECT pg_advisory_lock($1)),
                              bumped AS (UPDATE raw_tokens SET token = token + 1 FROM locked WHERE id = 1 RETURNING token)
                         SELECT (SELECT token FROM bumped)"
                    } else {
                        "SELECT pg_advisory_lock($1)"
                    };
                    let lock = driven(&mut conn, client.prepare(lock_sql)).await;
                    let unlock = driven(&mut conn, client.prepare("SELECT pg_advisory_unlock($1)")).await;
                    // The other keys this connection holds meanwhile.
                    let hold = driven(&mut conn, client.prepare("SELECT pg_advisory_lock($1)")).await;
                    let hold = hold.expect("prepare");
                    for k in 0..held as i64 {
                        let key = RAW_KEY + 1_000 + k;
                        driven(&mut conn, client.execute(&hold, &[&key])).await.expect("hold");
                    }
                    (client, lock.expect("prepare"), unlock.expect("prepare"), conn)
                });
                Locker::Raw {
                    rt,
                    client,
                    lock,
                    unlock,
                    conn,
                }
            }
            Lib::Lockyard
            | Lib::LockyardAsyncIo
            | Lib::LockyardOwnSessions
            | Lib::LockyardTrying
            | Lib::LockyardBlocking => {
                let locks = lockyard::postgres::PgLocks::from_url(url)
                    .expect("url")
                    .table(TABLE)
                    .expect("table");
                let locks = match lib {
                    Lib::LockyardOwnSessions => locks.sessions(0),
                    Lib::LockyardTrying => locks.waiting_sessions(0),
                    _ => locks,
                };
                let lock = locks.lock_named(&name).expect("name");
                // Open the sessions and register the name outside the timing.
                drop(lock.try_lock().expect("free at start"));
                let pid = std::process::id();
                // As many as the server lets this row hold: with a session
                // per hold, `max_connections` ends it.
                let mut others = Vec::with_capacity(held);
                for i in 0..held {
                    let other = locks.lock_named(&format!("held/{pid}/{i}")).expect("name");
                    match other.try_lock() {
                        Ok(guard) => others.push(guard),
                        Err(e) => {
                            // Let a few go: the measured lock (and the other
                            // process of a hand-off) need connections too.
                            others.truncate(i.saturating_sub(16));
                            eprintln!(
                                "{lib:?}: holds {} other names, not {held}: {e}",
                                others.len()
                            );
                            break;
                        }
                    }
                }
                let executor = if lib == Lib::LockyardAsyncIo {
                    Executor::AsyncIo
                } else {
                    Executor::FuturesLite
                };
                Locker::Lockyard(lock, others, executor)
            }
            Lib::Sqlx => {
                let rt = runtime();
                let conn = rt.block_on(async {
                    use sqlx::Connection;
                    sqlx::PgConnection::connect(url).await.expect("connect")
                });
                let lock = sqlx::postgres::PgAdvisoryLock::new(&name);
                Locker::Sqlx { rt, conn, lock }
            }
            Lib::DistributedLock => {
                let rt = runtime();
                let lock = rt.block_on(async {
                    let provider = distributed_lock_postgres::PostgresLockProvider::builder()
                        .connection_string(url)
                        .build()
                        .await
                        .expect("provider");
                    provider.create_lock(&name)
                });
                Locker::Dist { rt, lock }
            }
        }
    }

    /// How many other names (raw: keys) it holds meanwhile.
    fn others(&self, raw_held: usize) -> usize {
        match self {
            Locker::Raw { .. } | Locker::Hop(_) => raw_held,
            Locker::Lockyard(_, others, _) => others.len(),
            Locker::Sqlx { .. } | Locker::Dist { .. } => 0,
        }
    }

    /// Takes the lock, runs `f`, releases it.
    fn with<R>(&mut self, blocking: bool, f: impl FnOnce() -> R) -> R {
        match self {
            Locker::Raw {
                rt,
                client,
                lock,
                unlock,
                conn,
            } => rt.block_on(async {
                driven(conn, client.execute(&*lock, &[&RAW_KEY]))
                    .await
                    .expect("lock");
                let r = f();
                driven(conn, client.execute(&*unlock, &[&RAW_KEY]))
                    .await
                    .expect("unlock");
                r
            }),
            Locker::Hop(hop) => {
                let run = |take: bool| {
                    let (done, result) = std::sync::mpsc::sync_channel(1);
                    let ops = hop.ops.as_ref().expect("the queue is open");
                    ops.send((take, done)).expect("the thread runs");
                    result.recv().expect("the thread answers");
                };
                run(true);
                let r = f();
                run(false);
                r
            }
            Locker::Lockyard(lock, _, executor) => {
                let guard = match (blocking, *executor) {
                    (true, _) => lock.lock_blocking().expect("lock"),
                    (false, Executor::FuturesLite) => {
                        futures_lite::future::block_on(lock.lock()).expect("lock")
                    }
                    (false, Executor::AsyncIo) => async_io::block_on(lock.lock()).expect("lock"),
                };
                let r = f();
                drop(guard);
                r
            }
            Locker::Sqlx { rt, conn, lock } => rt.block_on(async {
                let guard = lock.acquire(&mut *conn).await.expect("lock");
                let r = f();
                guard.release_now().await.expect("unlock");
                r
            }),
            Locker::Dist { rt, lock } => rt.block_on(async {
                let handle = lock.acquire(None).await.expect("lock");
                let r = f();
                handle.release().await.expect("unlock");
                r
            }),
        }
    }
}

/// The executor a `lock().await` row runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Executor {
    /// `futures_lite::future::block_on`: the thread parks, and async-io's
    /// reactor (on a thread of its own) hears the server and wakes it.
    FuturesLite,
    /// `async_io::block_on` (smol's): the waiting thread runs the reactor
    /// itself, so it hears the server without a wake-up of another thread.
    AsyncIo,
}

/// The thread of a `RawTokenHop` row and the queue of its operations: a
/// lock (`true`) or an unlock, and where to say it is done.
struct Hop {
    ops: Option<std::sync::mpsc::Sender<(bool, std::sync::mpsc::SyncSender<()>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Hop {
    fn drop(&mut self) {
        // Ends the thread's queue, then waits for its connection to close.
        drop(self.ops.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

/// Whether `lib` is measured: every library, unless `ONLY` (a comma-
/// separated list of row names, as `{lib:?}` spells them, e.g.
/// `Raw,Lockyard`) names a few.
fn wanted(lib: Lib) -> bool {
    std::env::var("ONLY").map_or(true, |only| {
        only.split(',').any(|l| l == format!("{lib:?}"))
    })
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The waiting side of a hand-off: told "go", says "calling", waits for
/// the lock and reports how long after the parent's release it got it.
fn child() {
    let lib = Lib::parse(&env("LIB"));
    let mut locker = Locker::new(lib, &env("URL"), 0);
    let side = std::fs::File::open(env("SIDE")).expect("side");
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("pipe");
    for line in std::io::stdin().lock().lines() {
        if line.expect("stdin") != "go" {
            break;
        }
        writeln!(out, "calling")
            .and_then(|()| out.flush())
            .expect("pipe");
        let lat = locker.with(lib == Lib::LockyardBlocking, || {
            let got = mono_ns();
            let mut b = [0u8; 8];
            std::os::unix::fs::FileExt::read_exact_at(&side, &mut b, 0).expect("side");
            got.saturating_sub(u64::from_le_bytes(b))
        });
        writeln!(out, "{lat}")
            .and_then(|()| out.flush())
            .expect("pipe");
    }
}

/// The median µs per acquire + release cycle over five batches, the
/// server's processor time per cycle over all of them (`None` when the
/// server's processes cannot be seen: not on this machine), and how many
/// other names were held meanwhile.
fn uncontended(lib: Lib, url: &str, cycles: usize, held: usize) -> (f64, Option<f64>, usize) {
    let mut locker = Locker::new(lib, url, held);
    let others = locker.others(held);
    let blocking = lib == Lib::LockyardBlocking;
    for _ in 0..cycles / 10 {
        locker.with(blocking, || ());
    }
    let mut batches = Vec::new();
    let cpu_before = server_cpu();
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..cycles {
            locker.with(blocking, || ());
        }
        batches.push(start.elapsed().as_secs_f64() * 1e6 / cycles as f64);
    }
    let cpu = match (cpu_before, server_cpu()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / (5 * cycles) as f64),
        _ => None,
    };
    batches.sort_by(f64::total_cmp);
    (batches[2], cpu, others)
}

/// The processor time (user + system) of every PostgreSQL server process
/// on this machine, from `/proc`; `None` without `/proc` or a server here.
pub(crate) fn server_cpu() -> Option<Duration> {
    let ticks_per_s = rustix::param::clock_ticks_per_second();
    let mut ticks = 0u64;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: utime and stime are the 12th and
        // 13th fields after the command's closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        ticks += u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        seen = true;
    }
    seen.then(|| Duration::from_secs_f64(ticks as f64 / ticks_per_s as f64))
}

/// A child process killed and reaped when dropped, whatever happened.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long the long wait waits.
const LONG_WAIT: Duration = Duration::from_secs(2);

/// Hand-offs, timed; with `long`, one more whose holder keeps the lock for
/// [`LONG_WAIT`], and the server's processor time over that wait in ms
/// (`None` if the server's processes cannot be seen).
fn handoff(
    lib: Lib,
    url: &str,
    rounds: usize,
    held: usize,
    long: bool,
) -> (Vec<f64>, Option<Option<f64>>) {
    let dir = std::env::temp_dir().join(format!("pg-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let side_path = dir.join(format!("{lib:?}.side"));
    let side = std::fs::File::create(&side_path).expect("side");
    let mut locker = Locker::new(lib, url, held);
    let mut child = Reaped(
        Command::new(std::env::current_exe().expect("exe"))
            .env(CHILD, "1")
            .env("LIB", format!("{lib:?}"))
            .env("URL", url)
            .env("SIDE", &side_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut to = child.0.stdin.take().expect("stdin");
    let mut from = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let mut next = move || from.next().expect("a line").expect("read");
    assert_eq!(next(), "ready");
    let mut rng = fastrand::Rng::with_seed(42);
    let mut lat = Vec::with_capacity(rounds);
    let blocking = lib == Lib::LockyardBlocking;
    for _ in 0..rounds {
        locker.with(blocking, || {
            writeln!(to, "go").expect("pipe");
            assert_eq!(next(), "calling");
            // Long enough for the child to be waiting in the server.
            std::thread::sleep(Duration::from_micros(3_000 + rng.u64(0..3_000)));
            std::os::unix::fs::FileExt::write_all_at(&side, &mono_ns().to_le_bytes(), 0)
                .expect("side");
        });
        let ns: f64 = next().parse().expect("ns");
        lat.push(ns / 1_000.0);
    }
    let mut load = None;
    if long {
        let mut cpu = None;
        locker.with(blocking, || {
            writeln!(to, "go").expect("pipe");
            assert_eq!(next(), "calling");
            let before = server_cpu();
            std::thread::sleep(LONG_WAIT);
            cpu = before
                .zip(server_cpu())
                .map(|(a, b)| (b - a).as_secs_f64() * 1e3);
        });
        let _: String = next();
        load = Some(cpu);
    }
    drop(to);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    (lat, load)
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("LOCKYARD_TEST_POSTGRES").ok())
        .expect("usage: postgres-peers URL [ROUNDS] (or LOCKYARD_TEST_POSTGRES)");
    let rounds: usize = args.next().map_or(300, |r| r.parse().expect("ROUNDS"));
    if let Ok(n) = std::env::var("WAIT_LOAD") {
        return wait_load::run(&url, n.parse().expect("WAIT_LOAD"));
    }
    // How many other names (raw: keys) the measured process holds on the
    // same connections meanwhile (raw and lockyard rows).
    let held: usize = std::env::var("HELD").map_or(0, |h| h.parse().expect("HELD"));
    // The libraries take turns, pass after pass, so a drift of the machine
    // (another load, the server's caches) touches every row alike.
    const PASSES: usize = 3;
    let per_pass = rounds.div_ceil(PASSES);
    let mut cycle = vec![Vec::new(); Lib::ALL.len()];
    let mut cpu = vec![Vec::new(); Lib::ALL.len()];
    let mut waits = vec![Vec::new(); Lib::ALL.len()];
    let mut others = vec![usize::MAX; Lib::ALL.len()];
    let mut loads = vec![None; Lib::ALL.len()];
    for pass in 0..PASSES {
        for (i, lib) in Lib::ALL.into_iter().enumerate() {
            if !wanted(lib) {
                continue;
            }
            let (us, server, held_here) = uncontended(lib, &url, 1_000, held);
            cycle[i].push(us);
            cpu[i].extend(server);
            others[i] = others[i].min(held_here);
            let (lat, load) = handoff(lib, &url, per_pass, held, pass == 0);
            waits[i].extend(lat);
            loads[i] = loads[i].or(load);
        }
    }
    println!(
        "# PostgreSQL locks side by side ({} hand-offs and 3 x 5 batches of 1,000 uncontended cycles per row, {PASSES} interleaved passes; {held} other names held by the raw and lockyard rows)\n",
        per_pass * PASSES
    );
    println!("| library | other names held | uncontended µs/cycle | server CPU µs/cycle | hand-off p50 µs | p90 | p99 | p50 / floor | server CPU ms over a {}-s wait |", LONG_WAIT.as_secs());
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut floor = None;
    for (i, lib) in Lib::ALL.into_iter().enumerate() {
        if !wanted(lib) {
            continue;
        }
        cycle[i].sort_by(f64::total_cmp);
        let u = cycle[i][cycle[i].len() / 2];
        let h = &mut waits[i];
        h.sort_by(f64::total_cmp);
        let p50 = pct(h, 50.0);
        let base = *floor.get_or_insert(p50);
        cpu[i].sort_by(f64::total_cmp);
        let server = cpu[i]
            .get(cpu[i].len() / 2)
            .map_or("n/a".to_owned(), |c| format!("{c:.1}"));
        let load = loads[i]
            .flatten()
            .map_or("n/a".to_owned(), |c| format!("{c:.0}"));
        println!(
            "| {} | {} | {u:.1} | {server} | {p50:.1} | {:.1} | {:.1} | {:.2}x | {load} |",
            lib.id(),
            others[i],
            pct(h, 90.0),
            pct(h, 99.0),
            p50 / base
        );
    }
}
