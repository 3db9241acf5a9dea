//! Locks in PostgreSQL: [`PgLocks`], a namespace of named locks on one
//! server, and [`PgLock`], one of them, with the same acquisition API as
//! [`FileLock`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Acquire, FileLock, LockGuard, LockInfo, LockState};
use crate::backend::postgres::{
    check_table, Clear, Connector, Holding, PgOpener, PgServer, SessionSettings, Tls,
};
use crate::engine::{Config as EngineConfig, Handle};
use crate::error::{Error, Op, Subject};
use crate::mode::{LockMode, Wait};
use crate::options::LockOptions;
use crate::record::HolderRecord;

pub use crate::backend::postgres::{
    PgConfig, PgSocket, PgSslMode, PgTls, PgTlsConnect, PgTlsStream, TokioPostgresTls,
};

/// The table that keeps names, ids and tokens unless told otherwise.
pub const DEFAULT_TABLE: &str = "lockyard_locks";

/// How many sessions carry a process's holds unless
/// [`PgLocks::sessions`] says otherwise.
pub const DEFAULT_SESSIONS: usize = crate::backend::postgres::DEFAULT_SESSIONS;

/// How many sessions a process's waits use at once unless
/// [`PgLocks::waiting_sessions`] says otherwise.
pub const DEFAULT_WAITING_SESSIONS: usize = crate::backend::postgres::DEFAULT_WAITING_SESSIONS;

/// Named locks in one PostgreSQL database: the `LockDir` of a lock server.
///
/// Each name is a session-level advisory lock. Its row in a lock table
/// (created on first use, [`DEFAULT_TABLE`] unless [`table`](Self::table)
/// says otherwise) keeps the name, the id that makes its lock key, the
/// fencing token and the exclusive holder's record, so that different
/// names never share a lock, tokens strictly increase across processes,
/// machines and server restarts, and [`list`](Self::list) says who holds
/// what. Names are passed as parameters, never spliced into SQL.
///
/// Creating a `PgLocks` connects to nothing; sessions are opened when
/// locks are first taken. The holds of different names share at most
/// [`sessions`](Self::sessions) of them (4 by default), and waits use at
/// most [`waiting_sessions`](Self::waiting_sessions) more (4 by default);
/// the guide's [PostgreSQL page](crate::guide::postgres#sessions) says how
/// to size a server for a fleet.
///
/// Connections are TCP or Unix-domain sockets driven by async-io on the
/// thread that makes each call, under any executor or none; TLS goes
/// through a connector of your choice ([`from_url_tls`](Self::from_url_tls)).
///
/// # Examples
///
/// ```
/// use lockyard::postgres::PgLocks;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
/// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
/// #     return Ok(());
/// # };
/// # futures_lite::future::block_on(async {
/// let locks = PgLocks::from_url(&url)?;             // e.g. "postgres://app@db/app"
/// let nightly = locks.lock_named("jobs/nightly")?;
/// let guard = nightly.lock().await?;
/// println!("running with fencing token {:?}", guard.token());
/// assert_eq!(nightly.holder()?.map(|h| h.pid()), Some(std::process::id()));
/// guard.unlock()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct PgLocks {
    server: Arc<PgServer>,
    options: LockOptions,
}

impl std::fmt::Debug for PgLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLocks")
            .field("server", &self.server.label)
            .field("table", &self.server.table)
            .finish_non_exhaustive()
    }
}

impl PgLocks {
    /// Locks on the server a connection string names: a URL
    /// (`postgres://user:password@host:port/dbname?connect_timeout=5`) or
    /// `key=value` pairs (`host=db user=app dbname=app`). Nothing is
    /// connected yet.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) when the
    /// string cannot be parsed, or requires TLS (`sslmode=require`: see
    /// [`from_url_tls`](Self::from_url_tls)).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("postgres://app@127.0.0.1:5432/app")?;
    /// assert!(PgLocks::from_url("postgres://[::1").is_err());
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<PgLocks, Error> {
        PgLocks::with_config(parse(url)?)
    }

    /// The former name of [`from_url`](Self::from_url), which connects
    /// nothing either.
    ///
    /// # Errors
    ///
    /// As for [`from_url`](Self::from_url).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `from_url`: nothing is connected until a lock is taken"
    )]
    pub fn connect(url: &str) -> Result<PgLocks, Error> {
        PgLocks::from_url(url)
    }

    /// Locks on the server `config` describes. Nothing is connected yet.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) if the
    /// configuration requires TLS (`sslmode=require`): that takes a
    /// connector, [`with_config_tls`](Self::with_config_tls).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::{PgConfig, PgLocks};
    ///
    /// let mut config = PgConfig::new();
    /// config.host("127.0.0.1").port(5432).user("app").dbname("app");
    /// let locks = PgLocks::with_config(config)?;
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn with_config(config: PgConfig) -> Result<PgLocks, Error> {
        if config.get_ssl_mode() == PgSslMode::Require {
            return Err(Error::invalid_config(
                &PathBuf::from("postgres"),
                "sslmode=require needs a TLS connector (PgLocks::from_url_tls)",
            ));
        }
        Ok(PgLocks::new(config, Arc::new(Clear)))
    }

    /// [`from_url`](Self::from_url), with TLS through `tls`: a [`PgTls`]
    /// connector (a few lines over futures-rustls or async-native-tls), or
    /// a tokio-postgres connector wrapped in [`TokioPostgresTls`]
    /// (tokio-postgres-rustls's `MakeRustlsConnect`, postgres-native-tls's
    /// `MakeTlsConnector`), which checks the server's certificate as it is
    /// configured to. With
    /// the default `sslmode=prefer`, a server that offers no TLS is spoken
    /// to in the clear; `sslmode=require` refuses it.
    ///
    /// The cancel request of an abandoned wait goes in the clear, as
    /// libpq's did before PostgreSQL 17: it carries the session's PID and
    /// secret key, nothing else, and the server takes it before any
    /// authentication or TLS rule applies.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) when the
    /// string cannot be parsed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lockyard::postgres::{PgLocks, TokioPostgresTls};
    ///
    /// # #[cfg(not(target_os = "macos"))] // (rustls's ring, in this example)
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (Ok(url), Ok(ca)) = (std::env::var("LOCKYARD_TEST_POSTGRES"), std::env::var("LOCKYARD_TEST_POSTGRES_CA")) else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES(_CA) name no server with TLS");
    /// #     return Ok(());
    /// # };
    /// use rustls::pki_types::{pem::PemObject, CertificateDer};
    ///
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(CertificateDer::from_pem_file(&ca)?)?;   // the server's CA
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let config = rustls::ClientConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let tls = TokioPostgresTls(tokio_postgres_rustls::MakeRustlsConnect::new(config));
    ///
    /// let locks = PgLocks::from_url_tls(&format!("{url}?sslmode=require"), tls)?;
    /// let guard = locks.lock_named("doc/tls")?.lock_blocking()?;
    /// # drop(guard);
    /// # Ok(())
    /// # }
    /// # #[cfg(target_os = "macos")]
    /// # fn main() {}
    /// ```
    pub fn from_url_tls(url: &str, tls: impl PgTls) -> Result<PgLocks, Error> {
        Ok(PgLocks::with_config_tls(parse(url)?, tls))
    }

    /// The former name of [`from_url_tls`](Self::from_url_tls), which
    /// connects nothing either.
    ///
    /// # Errors
    ///
    /// As for [`from_url_tls`](Self::from_url_tls).
    #[deprecated(
        since = "0.1.0",
        note = "renamed `from_url_tls`: nothing is connected until a lock is taken"
    )]
    pub fn connect_tls(url: &str, tls: impl PgTls) -> Result<PgLocks, Error> {
        PgLocks::from_url_tls(url, tls)
    }

    /// [`with_config`](Self::with_config), with TLS through `tls` (see
    /// [`from_url_tls`](Self::from_url_tls)). Nothing is connected yet.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(not(target_os = "macos"))] // (rustls's ring, in this example)
    /// # fn main() {
    /// use lockyard::postgres::{PgConfig, PgLocks, TokioPostgresTls};
    ///
    /// # fn connector() -> TokioPostgresTls<tokio_postgres_rustls::MakeRustlsConnect> {
    /// #     let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    /// #     let config = rustls::ClientConfig::builder_with_provider(provider)
    /// #         .with_safe_default_protocol_versions().unwrap()
    /// #         .with_root_certificates(rustls::RootCertStore::empty())
    /// #         .with_no_client_auth();
    /// #     TokioPostgresTls(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    /// # }
    /// use lockyard::postgres::PgSslMode;
    ///
    /// let mut config = PgConfig::new();
    /// config.host("db.internal").user("app").dbname("app").ssl_mode(PgSslMode::Require);
    /// let locks = PgLocks::with_config_tls(config, connector());
    /// # }
    /// # #[cfg(target_os = "macos")]
    /// # fn main() {}
    /// ```
    pub fn with_config_tls(config: PgConfig, tls: impl PgTls) -> PgLocks {
        PgLocks::new(config, Arc::new(Connector(Arc::new(tls))))
    }

    fn new(config: PgConfig, tls: Arc<dyn Tls>) -> PgLocks {
        let server = PgServer::new(
            config.client().clone(),
            tls,
            DEFAULT_TABLE.to_owned(),
            SessionSettings::default(),
        );
        PgLocks {
            server: Arc::new(server),
            options: LockOptions::new(),
        }
    }

    /// Keeps names and tokens in `table` (`name` or `schema.name`: ASCII
    /// letters, digits and `_`) instead of [`DEFAULT_TABLE`]. Locks in
    /// different tables never exclude each other.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) for a
    /// name that is not a plain identifier.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("host=127.0.0.1 user=app")?.table("ops.locks")?;
    /// assert!(PgLocks::from_url("host=127.0.0.1")?.table("locks; DROP TABLE x").is_err());
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn table(self, table: &str) -> Result<PgLocks, Error> {
        check_table(table).map_err(|why| Error::invalid_config(&PathBuf::from(table), why))?;
        Ok(self.rebuild(table.to_owned(), self.settings()))
    }

    /// A server-enforced lease: a session that runs no statement for `ttl`
    /// is ended by the server (`idle_session_timeout`, PostgreSQL 14+), and
    /// its locks go with it. A holder keeps its lock by renewing
    /// ([`LockGuard::refresh`], or
    /// [`keep_alive`](LockGuard::keep_alive) beside the work), so a
    /// holder that hangs or is stopped loses it after `ttl`. Without a
    /// lease, a hung holder keeps its lock for as long as its connection
    /// stays open. A leased hold keeps a session of its own (the timeout
    /// is the session's): [`sessions`](Self::sessions) does not apply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("host=127.0.0.1 user=app")?.lease(Duration::from_secs(30));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn lease(self, ttl: Duration) -> PgLocks {
        let mut settings = self.settings();
        settings.lease = Some(ttl);
        let mut options = self.options.clone();
        options.lease_ttl = Some(ttl);
        let mut locks = self.rebuild(self.server.table.clone(), settings);
        locks.options = options;
        locks
    }

    /// How often the server checks, while a statement runs (a waiter),
    /// that the client is still connected (`client_connection_check_interval`,
    /// PostgreSQL 14+). Without it a waiter whose process died stays queued
    /// in the server until the lock is granted to it, holding it up for
    /// everyone behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("host=127.0.0.1")?.check_client_every(Duration::from_millis(500));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn check_client_every(self, every: Duration) -> PgLocks {
        let mut settings = self.settings();
        settings.check_interval = Some(every);
        self.rebuild(self.server.table.clone(), settings)
    }

    /// At most `n` sessions (connections) carry this process's holds of
    /// these locks, however many names it holds: session-level advisory
    /// locks of different names share a session ([`DEFAULT_SESSIONS`]
    /// unless set). Waits take sessions of their own, bounded apart (see
    /// [`waiting_sessions`](Self::waiting_sessions)). With `0`, or with a
    /// [`lease`](Self::lease) (the server's idle timeout is the session's,
    /// and any hold's statement would renew the others'), every hold keeps
    /// a session of its own.
    ///
    /// Losing a session (terminated, server restart, network) loses every
    /// hold on it: each guard's [`still_held`](LockGuard::still_held) says
    /// false and its [`lost`](LockGuard::lost) fires.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// let locks = PgLocks::from_url(&url)?.sessions(1);
    /// let guards = (0..100)
    ///     .map(|i| locks.lock_named(&format!("doc/sessions/{i}"))?.try_lock())
    ///     .collect::<Result<Vec<_>, _>>()?;   // 100 holds, one connection
    /// # drop(guards);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn sessions(self, n: usize) -> PgLocks {
        let mut settings = self.settings();
        settings.sessions = Some(n);
        self.rebuild(self.server.table.clone(), settings)
    }

    /// At most `n` sessions of this process wait in the server at once
    /// ([`DEFAULT_WAITING_SESSIONS`] unless set), besides the
    /// [`sessions`](Self::sessions) that carry holds.
    ///
    /// A wait in the server (`pg_advisory_lock`) blocks its session until
    /// the lock is granted, so it cannot share one; the server then hands
    /// the lock over the moment it is free, in the order the waits came
    /// (this process's tasks waiting for one name queue in lockyard and
    /// share one such wait). A wait that finds all `n` in use waits
    /// without a session instead: it tries on a shared session, again
    /// after 2 ms, then each pause twice as long up to 200 ms, and moves
    /// into the server as soon as one of the `n` frees up. Such a wait
    /// learns of a release only at its next try and has no place in the
    /// server's queue. A hold granted to a wait stays on the wait's
    /// session, which keeps its place among the `n` until the hold is
    /// released unless the holds' sessions have room for it. With `0`,
    /// every wait tries on the shared sessions.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// // Two connections for holds and one for waits, whatever the load.
    /// let locks = PgLocks::from_url("host=127.0.0.1")?.sessions(2).waiting_sessions(1);
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn waiting_sessions(self, n: usize) -> PgLocks {
        let mut settings = self.settings();
        settings.waiting = Some(n);
        self.rebuild(self.server.table.clone(), settings)
    }

    /// The owner name written into exclusive holders' records.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("host=127.0.0.1")?.owner("indexer");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> PgLocks {
        self.options = self.options.owner(owner);
        self
    }

    fn settings(&self) -> SessionSettings {
        self.server.settings().clone()
    }

    fn rebuild(&self, table: String, settings: SessionSettings) -> PgLocks {
        PgLocks {
            server: Arc::new(self.server.with(table, settings)),
            options: self.options.clone(),
        }
    }

    /// The lock named `name`: any string without NUL characters, of any
    /// length. Connects to nothing until it is first taken.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidPath`](crate::ErrorKind::InvalidPath) for an
    /// empty name or one containing NUL (PostgreSQL text cannot hold it).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let locks = PgLocks::from_url("host=127.0.0.1")?;
    /// let lock = locks.lock_named("it's \"quoted\"; DROP TABLE x")?;
    /// assert!(locks.lock_named("nul\0").is_err());
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn lock_named(&self, name: &str) -> Result<PgLock, Error> {
        let label = PathBuf::from(format!("{}#{name}", self.server.label));
        if name.is_empty() {
            return Err(Error::invalid_name(
                Subject::remote(&label),
                "a lock name is empty",
            ));
        }
        if name.contains('\0') {
            return Err(Error::invalid_name(
                Subject::remote(&label),
                "a lock name contains NUL",
            ));
        }
        let opener = PgOpener {
            server: Arc::clone(&self.server),
            name: name.to_owned(),
            options: self.options.clone(),
            label: label.clone(),
        };
        let config = EngineConfig {
            backoff: self.options.backoff,
            strategy: self.options.strategy,
            offload_open: true,
            open_may_wait: true,
            names_a_file: false,
        };
        let handle = Handle::new(label, config, opener);
        Ok(PgLock {
            inner: FileLock::from_handle(handle, self.options.clone()),
            server: Arc::clone(&self.server),
            name: name.to_owned(),
        })
    }

    /// Every lock of this table held right now, with who holds it (from
    /// `pg_locks` and the table's records), by name.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or queried.
    ///
    /// # Blocking
    ///
    /// A few round trips to the server (a connection if none is idle).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{postgres::PgLocks, LockState};
    ///
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// let locks = PgLocks::from_url(&url)?.owner("doc-list");
    /// let guard = locks.lock_named("doc/list")?.try_lock()?;
    /// let held = locks.list()?;
    /// let mine = held.iter().find(|i| i.name() == "doc/list").expect("listed");
    /// assert_eq!(mine.state(), LockState::HeldExclusive);
    /// assert_eq!(mine.holder().and_then(|h| h.owner()), Some("doc-list"));
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(&self) -> Result<Vec<LockInfo>, Error> {
        let label = PathBuf::from(&self.server.label);
        let holdings = self
            .server
            .holders(None)
            .map_err(|e| Error::io(Subject::remote(&label), Op::Inspect, e))?;
        Ok(summarise(&self.server.label, holdings))
    }
}

/// A connection string's configuration.
fn parse(url: &str) -> Result<PgConfig, Error> {
    url.parse()
}

/// One [`LockInfo`] per name from the sessions holding it.
fn summarise(label: &str, holdings: Vec<Holding>) -> Vec<LockInfo> {
    let mut out: Vec<LockInfo> = Vec::new();
    let mut i = 0;
    while i < holdings.len() {
        let name = holdings[i].name.clone();
        let mut exclusive = false;
        let mut record = None;
        while i < holdings.len() && holdings[i].name == name {
            exclusive |= holdings[i].exclusive;
            record = record.or_else(|| holdings[i].record.clone());
            i += 1;
        }
        let state = if exclusive {
            LockState::HeldExclusive
        } else {
            LockState::HeldShared
        };
        let path = PathBuf::from(format!("{label}#{name}"));
        out.push(LockInfo::new(name, path, state, record));
    }
    out
}

/// One named lock in PostgreSQL, with [`FileLock`]'s acquisition API: the
/// same futures (cancel-safe, FIFO within the process), `try_`,
/// timeouts, blocking calls, shared and exclusive modes, and the same
/// guards ([`LockGuard`]: `token()`, `still_held()`, `lost()`,
/// `unlock()`).
///
/// Within one process, waiters queue in the engine and only the first of
/// them waits in the server, on one session: a thousand tasks waiting for
/// one name cost one connection. A wait that is given up (its future
/// dropped, its deadline passed) is cancelled in the server before its
/// session is used again, so it never leaves the lock granted to nobody.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::{postgres::PgLocks, ErrorKind};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
/// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
/// #     return Ok(());
/// # };
/// # futures_lite::future::block_on(async {
/// let lock = PgLocks::from_url(&url)?.lock_named("doc/pglock")?;
/// let held = lock.lock().await?;
/// let first = held.token().expect("exclusive holds have tokens");
/// let e = lock.lock_timeout(Duration::from_millis(50)).await.unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::TimedOut);
/// drop(held);
/// let again = lock.lock().await?;
/// assert!(again.token() > Some(first));
/// drop(again);
/// let (a, b) = (lock.try_lock_shared()?, lock.try_lock_shared()?);
/// assert!(a.token().is_none() && b.is_shared());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct PgLock {
    inner: FileLock,
    server: Arc<PgServer>,
    name: String,
}

impl std::fmt::Debug for PgLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLock")
            .field("server", &self.server.label)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PgLock {
    /// The lock's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let lock = PgLocks::from_url("postgres://app@127.0.0.1/app")?.lock_named("jobs/nightly")?;
    /// assert_eq!(lock.name(), "jobs/nightly");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What errors call this lock: `postgres://host:port/dbname#name`
    /// (never the user or password), the form the command line takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// let lock = PgLocks::from_url("postgres://app:secret@127.0.0.1/app")?.lock_named("jobs/nightly")?;
    /// assert_eq!(lock.address(), "postgres://127.0.0.1:5432/app#jobs/nightly");
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn address(&self) -> &str {
        self.inner.path().to_str().unwrap_or(&self.name)
    }

    /// Acquires the lock exclusively, waiting as long as it takes.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point gives back what it had: its place
    /// in the queue, a lock just granted (released in the background), or
    /// its wait in the server (cancelled, then cleaned up).
    ///
    /// # Errors
    ///
    /// When the server cannot be reached, refuses the credentials, or
    /// ends the session during the wait; the error names the server and
    /// the lock.
    pub fn lock(&self) -> Acquire {
        self.inner.lock()
    }

    /// Acquires the lock shared (with other shared holders), waiting as
    /// long as it takes. A shared request queues behind a waiting writer.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    pub fn lock_shared(&self) -> Acquire {
        self.inner.lock_shared()
    }

    /// [`lock`](Self::lock), giving up after `timeout`
    /// ([`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut)).
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock), and `TimedOut`.
    pub fn lock_timeout(&self, timeout: Duration) -> Acquire {
        self.inner.lock_timeout(timeout)
    }

    /// [`lock_shared`](Self::lock_shared), giving up after `timeout`.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout).
    pub fn lock_shared_timeout(&self, timeout: Duration) -> Acquire {
        self.inner.lock_shared_timeout(timeout)
    }

    /// Acquires in `mode`, waiting as `wait` says.
    ///
    /// # Cancel safety
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Errors
    ///
    /// As for [`lock_timeout`](Self::lock_timeout), and
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) for
    /// [`Wait::TryOnce`].
    pub fn acquire(&self, mode: LockMode, wait: Wait) -> Acquire {
        self.inner.acquire(mode, wait)
    }

    /// One attempt at the exclusive lock.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) if another
    /// session holds it (the error's holder says who, when it is known),
    /// or a connection error.
    ///
    /// # Blocking
    ///
    /// One or two round trips to the server on this thread (a connection
    /// first, if no session is idle): in async code, call
    /// [`try_lock_async`](Self::try_lock_async).
    pub fn try_lock(&self) -> Result<LockGuard, Error> {
        self.inner.try_lock()
    }

    /// One attempt at the exclusive lock, as a future: its statement is sent
    /// and its reply read as the future is polled, never blocking the
    /// executor's thread (a round trip that would, such as opening a
    /// connection, is made on the blocking pool), so the thread keeps
    /// running other tasks and timers while the server answers. Dropped
    /// before the answer, the attempt is seen to its end in the background
    /// and a lock it took is released.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::PgLocks;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let Ok(url) = std::env::var("LOCKYARD_TEST_POSTGRES") else {
    /// #     eprintln!("skipped: LOCKYARD_TEST_POSTGRES names no server");
    /// #     return Ok(());
    /// # };
    /// # futures_lite::future::block_on(async {
    /// let lock = PgLocks::from_url(&url)?.lock_named("doc/try_async")?;
    /// let guard = lock.try_lock_async().await?;
    /// let e = lock.try_lock_shared_async().await.unwrap_err();
    /// assert!(e.is_contended());
    /// # drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while its attempt is under way, the attempt is
    /// finished on the blocking pool, which releases the lock if it took
    /// it (tested against a server whose answer is held back:
    /// `tests/postgres.rs`, `abandoned_attempts_leave_no_lock_behind`).
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_async(&self) -> Acquire {
        self.inner.try_lock_async()
    }

    /// One attempt at the shared lock, as a future; see
    /// [`try_lock_async`](Self::try_lock_async).
    ///
    /// # Cancel safety
    ///
    /// As for [`try_lock_async`](Self::try_lock_async).
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_shared_async(&self) -> Acquire {
        self.inner.try_lock_shared_async()
    }

    /// One attempt at the shared lock.
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock).
    ///
    /// # Blocking
    ///
    /// As for [`try_lock`](Self::try_lock).
    pub fn try_lock_shared(&self) -> Result<LockGuard, Error> {
        self.inner.try_lock_shared()
    }

    /// Acquires the lock exclusively, blocking this thread until it is
    /// granted (the thread waits in the server).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted.
    pub fn lock_blocking(&self) -> Result<LockGuard, Error> {
        self.inner.lock_blocking()
    }

    /// Acquires the lock shared, blocking this thread.
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted.
    pub fn lock_shared_blocking(&self) -> Result<LockGuard, Error> {
        self.inner.lock_shared_blocking()
    }

    /// Acquires the lock exclusively, blocking this thread for at most
    /// `timeout`, connecting to the server included.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut) when `timeout`
    /// passes first; otherwise as for [`lock`](Self::lock).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted or `timeout` passes.
    pub fn lock_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.inner.lock_blocking_timeout(timeout)
    }

    /// Acquires the lock shared, blocking this thread for at most
    /// `timeout`, connecting to the server included.
    ///
    /// # Errors
    ///
    /// As for [`lock_blocking_timeout`](Self::lock_blocking_timeout).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted or `timeout` passes.
    pub fn lock_shared_blocking_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.inner.lock_shared_blocking_timeout(timeout)
    }

    /// Acquires in `mode`, blocking this thread as `wait` allows.
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire).
    ///
    /// # Blocking
    ///
    /// Until the lock is granted or `wait` runs out.
    pub fn acquire_blocking(&self, mode: LockMode, wait: Wait) -> Result<LockGuard, Error> {
        self.inner.acquire_blocking(mode, wait)
    }

    /// Runs `f` with the lock held exclusively (blocking until it is), and
    /// releases it after, even if `f` panics.
    ///
    /// # Errors
    ///
    /// As for [`lock_blocking`](Self::lock_blocking); `f`'s own result is
    /// returned inside `Ok`.
    ///
    /// # Blocking
    ///
    /// Until the lock is granted, then for as long as `f` runs.
    pub fn with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        self.inner.with_lock(f)
    }

    /// Runs the future `f` makes with the lock held exclusively.
    ///
    /// # Cancel safety
    ///
    /// Dropping it releases the lock (or gives up the wait).
    ///
    /// # Errors
    ///
    /// As for [`lock`](Self::lock).
    pub async fn with_lock_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        self.inner.with_lock_async(f).await
    }

    /// Runs `f` with the lock held shared (blocking until it is), and
    /// releases it after, even if `f` panics.
    ///
    /// # Errors
    ///
    /// As for [`lock_shared_blocking`](Self::lock_shared_blocking); `f`'s
    /// own result is returned inside `Ok`.
    ///
    /// # Blocking
    ///
    /// Until the lock is granted, then for as long as `f` runs.
    pub fn with_lock_shared<R>(&self, f: impl FnOnce() -> R) -> Result<R, Error> {
        self.inner.with_lock_shared(f)
    }

    /// Runs the future `f` makes with the lock held shared.
    ///
    /// # Cancel safety
    ///
    /// Dropping it releases the lock (or gives up the wait).
    ///
    /// # Errors
    ///
    /// As for [`lock_shared`](Self::lock_shared).
    pub async fn with_lock_shared_async<F: Future>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<F::Output, Error> {
        self.inner.with_lock_shared_async(f).await
    }

    /// The server and table this lock lives in.
    pub(crate) fn server(&self) -> &PgServer {
        &self.server
    }

    /// How many tasks or threads of this process wait for this lock.
    pub fn waiters(&self) -> usize {
        self.inner.waiters()
    }

    /// Who holds the lock exclusively, from the lock table's record of the
    /// session that holds it in `pg_locks`: PID, host, owner, token and
    /// since when. `None` when it is free or held shared.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or queried.
    ///
    /// # Blocking
    ///
    /// A few round trips to the server.
    pub fn holder(&self) -> Result<Option<HolderRecord>, Error> {
        Ok(self.info()?.and_then(|i| i.holder().cloned()))
    }

    /// Whether the lock is free, held shared or held exclusively (by any
    /// session, this process's included), and the exclusive holder's
    /// record.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or queried.
    ///
    /// # Blocking
    ///
    /// A few round trips to the server.
    pub fn inspect(&self) -> Result<LockInfo, Error> {
        let path = PathBuf::from(format!("{}#{}", self.server.label, self.name));
        Ok(self
            .info()?
            .unwrap_or_else(|| LockInfo::new(self.name.clone(), path, LockState::Free, None)))
    }

    fn info(&self) -> Result<Option<LockInfo>, Error> {
        let label = self.inner.path();
        let holdings = self
            .server
            .holders(None)
            .map_err(|e| Error::io(Subject::remote(label), Op::Inspect, e))?;
        let mine: Vec<Holding> = holdings
            .into_iter()
            .filter(|h| h.name == self.name)
            .collect();
        Ok(summarise(&self.server.label, mine).into_iter().next())
    }
}
