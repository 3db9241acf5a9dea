//! What the PostgreSQL tests share: the server they run against, a table
//! of their own per test, raw sessions for probing `pg_locks`.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use lockyard::postgres::PgLocks;

/// The server under test (`.ci/postgres-bed` prints its URL); the harness
/// runs a test that needs it only when it is set.
pub fn server() -> String {
    std::env::var("LOCKYARD_TEST_POSTGRES").expect("LOCKYARD_TEST_POSTGRES names the server")
}

/// A table no other test uses.
pub fn fresh_table(test: &str) -> String {
    format!("t_{}_{}_{}", test, std::process::id(), fastrand::u32(..))
}

/// Locks on `url` in `table`.
pub fn locks(url: &str, table: &str) -> PgLocks {
    PgLocks::from_url(url).unwrap().table(table).unwrap()
}

/// A raw session, for probing and for playing a foreign holder.
pub struct Raw {
    pub client: tokio_postgres::Client,
    pub rt: tokio::runtime::Runtime,
}

impl Raw {
    pub fn connect(url: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
        });
        Raw { client, rt }
    }

    /// One value of type `T` from `sql`.
    pub fn one<T>(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        self.rt
            .block_on(self.client.query_one(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The lock key and id of `name` in `table` (after it was opened once).
    pub fn key_of(&self, table: &str, name: &str) -> (i64, i64, i64) {
        let oid: i64 = self.one(&format!("SELECT '{table}'::regclass::oid::bigint"), &[]);
        let id: i32 = self.one(&format!("SELECT id FROM {table} WHERE name = $1"), &[&name]);
        let key = ((oid as u64) << 32 | id as u64) as i64;
        (key, oid, i64::from(id))
    }

    /// How many locks of `table` the server has granted, to any session.
    pub fn granted_in(&self, table: &str) -> i64 {
        let oid: i64 = self.one("SELECT to_regclass($1)::oid::bigint", &[&table]);
        self.one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND classid::bigint = $1 AND objsubid = 1",
            &[&oid],
        )
    }

    /// Sessions holding (granted) or waiting for the lock with these key
    /// halves.
    pub fn sessions_on(&self, oid: i64, id: i64) -> (i64, i64) {
        let granted = self.one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            &[&oid, &id],
        );
        let waiting = self.one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
            &[&oid, &id],
        );
        (granted, waiting)
    }

    /// Waits up to `limit` for no session to hold or wait for the lock;
    /// returns what is left.
    pub fn settle(&self, oid: i64, id: i64, limit: Duration) -> (i64, i64) {
        let since = Instant::now();
        loop {
            let left = self.sessions_on(oid, id);
            if left == (0, 0) || since.elapsed() > limit {
                return left;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A TCP proxy in front of the server whose client-to-server direction can
/// be held: a query sent while it is held stays in the proxy, so whatever
/// the server does meanwhile (a `pg_terminate_backend`) lands while the
/// client waits for that query's answer. Server-to-client bytes always
/// flow. [`hold`](Self::hold) holds every connection open at the time;
/// [`hold_open`](Self::hold_open) only those, letting later ones (a cancel
/// request) through.
pub struct Proxy {
    pub url: String,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    gates: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Proxy {
    /// A proxy to the server of `url` (`postgres://user@host:port/db`),
    /// and `url` rewritten to go through it.
    pub fn start(url: &str) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let rest = url.split_once("://").expect("a URL").1;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
        let upstream = host_port.to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(AtomicBool::new(false));
        let gates: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let (all, each) = (held.clone(), gates.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                // Held while the proxy-wide flag or this connection's is set.
                let own = Arc::new(AtomicBool::new(false));
                each.lock().unwrap().push(own.clone());
                let gate = [all.clone(), own];
                let held = move || gate.iter().any(|g| g.load(Ordering::SeqCst));
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    held,
                );
                pump(server, client, || false);
            }
        });
        let at = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        Proxy {
            url: format!("postgres://{at}127.0.0.1:{port}/{path}"),
            held,
            gates,
        }
    }

    /// Holds (or lets through) what clients send to the server.
    pub fn hold(&self, on: bool) {
        self.held.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds (or lets through) what the connections open now send to the
    /// server; connections made later are not held.
    pub fn hold_open(&self, on: bool) {
        for gate in self.gates.lock().unwrap().iter() {
            gate.store(on, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Copies `from` to `to` on a thread of its own, waiting while `held`
/// says so before each write; shuts both down at the end.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    held: impl Fn() -> bool + Send + 'static,
) {
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while held() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    });
}

/// Runs `f` on a thread of its own and returns its result, failing the
/// test if it takes longer than `limit`.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no answer within {limit:?}"))
}
