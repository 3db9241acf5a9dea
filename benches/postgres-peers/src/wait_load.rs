//! What waits cost: N tasks of one process wait for N different names that
//! a raw session holds, for a few seconds, then the names are released.
//! Rows: lockyard's default (at most `DEFAULT_WAITING_SESSIONS` wait in the
//! server, the rest try on a shared session) and `waiting_sessions(0)`
//! (every wait tries), and `waiting_sessions(N)` (every wait in the
//! server, a session each: what waits cost before they were bounded).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockyard::postgres::PgLocks;

/// How long the names stay held while the tasks wait.
const WAITING: Duration = Duration::from_secs(5);

pub(crate) fn run(url: &str, n: usize) {
    println!(
        "# {n} tasks of one process waiting for {n} names held elsewhere for {}s\n",
        WAITING.as_secs()
    );
    println!("| waits | sessions while waiting | in the server | server CPU ms per s of waiting | last grant after the release, ms |");
    println!("|---|---:|---:|---:|---:|");
    for (label, waiting) in [
        (
            format!(
                "default (waiting_sessions({}))",
                lockyard::postgres::DEFAULT_WAITING_SESSIONS
            ),
            None,
        ),
        ("waiting_sessions(0): every wait tries".to_owned(), Some(0)),
        (
            format!("waiting_sessions({n}): every wait in the server"),
            Some(n),
        ),
    ] {
        let row = measure(url, n, waiting);
        println!(
            "| {label} | {} | {} | {} | {:.1} |",
            row.sessions,
            row.in_server,
            row.cpu_ms_per_s
                .map_or("n/a".to_owned(), |c| format!("{c:.1}")),
            row.last_grant.as_secs_f64() * 1e3
        );
    }
}

struct Row {
    sessions: i64,
    in_server: i64,
    cpu_ms_per_s: Option<f64>,
    last_grant: Duration,
}

fn measure(url: &str, n: usize, waiting: Option<usize>) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = format!("wait-load-{}-{}", std::process::id(), fastrand::u32(..));
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut locks = PgLocks::from_url(&format!("{url}{sep}application_name={app}"))
        .expect("url")
        .table(super::TABLE)
        .expect("table");
    if let Some(w) = waiting {
        locks = locks.waiting_sessions(w);
    }
    let names: Vec<String> = (0..n).map(|i| format!("wait-load/{app}/{i}")).collect();
    let probe = Probe::connect(url);
    let mut keys = Vec::new();
    for name in &names {
        drop(
            locks
                .lock_named(name)
                .expect("name")
                .try_lock()
                .expect("free"),
        );
        keys.push(probe.key_of(name));
    }
    for key in &keys {
        probe.hold(*key);
    }
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let lock = locks.lock_named(name).expect("name");
            let got = Arc::clone(&got);
            rt.spawn(async move {
                let guard = lock
                    .lock_timeout(Duration::from_secs(60))
                    .await
                    .expect("lock");
                got.lock().unwrap().push(Instant::now());
                drop(guard);
            })
        })
        .collect();
    // Let the waits settle into their steady state.
    std::thread::sleep(Duration::from_millis(500));
    let before = super::server_cpu();
    std::thread::sleep(WAITING);
    let cpu_ms_per_s = before
        .zip(super::server_cpu())
        .map(|(a, b)| (b - a).as_secs_f64() * 1e3 / WAITING.as_secs_f64());
    let sessions = probe.count(&app, false);
    let in_server = probe.count(&app, true);
    let released = Instant::now();
    for key in &keys {
        probe.unhold(*key);
    }
    rt.block_on(async {
        for t in tasks {
            t.await.expect("task");
        }
    });
    let last = got.lock().unwrap().iter().copied().max().expect("grants");
    Row {
        sessions,
        in_server,
        cpu_ms_per_s,
        last_grant: last - released,
    }
}

/// A raw session: the foreign holder and the probe.
struct Probe {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Probe {
    fn connect(url: &str) -> Probe {
        let rt = super::runtime();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            client
        });
        Probe { rt, client }
    }

    fn key_of(&self, name: &str) -> i64 {
        let sql = format!(
            "SELECT (('{t}'::regclass::oid::bigint) << 32) | id FROM {t} WHERE name = $1",
            t = super::TABLE
        );
        let row = self.rt.block_on(self.client.query_one(&sql, &[&name]));
        row.expect("key").get(0)
    }

    fn hold(&self, key: i64) {
        let sql = "SELECT pg_advisory_lock($1)::text";
        self.rt
            .block_on(self.client.query_one(sql, &[&key]))
            .expect("hold");
    }

    fn unhold(&self, key: i64) {
        let sql = "SELECT pg_advisory_unlock($1)";
        self.rt
            .block_on(self.client.query_one(sql, &[&key]))
            .expect("unhold");
    }

    /// Sessions of `app` (only those waiting for a lock, with `waiting`).
    fn count(&self, app: &str, waiting: bool) -> i64 {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
                     AND ($2 = false OR wait_event_type = 'Lock')";
        let row = self
            .rt
            .block_on(self.client.query_one(sql, &[&app, &waiting]));
        row.expect("count").get(0)
    }
}
