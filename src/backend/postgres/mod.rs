//! Locks in PostgreSQL: session-level advisory locks whose holds share a
//! few sessions, tokens in a table.
//!
//! - **Names.** Each name gets a row in the lock table (created if
//!   missing), found by the SHA-256 of the name and checked against the
//!   stored name; its lock key is the table's OID (high 32 bits) and the
//!   row's id (low 32 bits), so two names never share a lock.
//! - **Holding.** A hold lives on one of a few sessions shared by the
//!   holds of different names (`pool`); a lease keeps a session per hold,
//!   its idle timeout being the session's. Releasing sends the unlock on
//!   the hold's session without waiting for its reply (read by one drainer
//!   per session); the next attempt of the same lock goes to that session,
//!   after the unlock, so a release is never overtaken by its own process.
//! - **Attempting.** A future's first attempt is driven by its own task
//!   (`polled`): the statement leaves from its thread and the reply is
//!   read as it is polled, with no thread wake-up beyond the round trip.
//!   What would block (opening a session, one in use) goes to the pool.
//! - **Waiting.** Only the head of the engine's queue waits in the server
//!   (`pg_advisory_lock`, which hands the lock over as soon as it is
//!   free): a thousand waiting tasks use one session. A future waits on
//!   its own task where a session is at hand without waiting
//!   (`polled_wait`), so an executor whose thread runs the reactor hears
//!   the grant itself; otherwise, and for a blocking caller, the wait runs
//!   on a thread. A wait that is abandoned is cancelled on a socket of its own,
//!   read to its end; the statement is then awaited and the session's
//!   advisory locks all released, so a wait given up never leaves a lock
//!   granted to nobody.
//! - **Tokens.** An exclusive hold bumps the name's `token` in the table,
//!   committed before the hold is reported: tokens strictly increase
//!   across processes, machines and server restarts.
//! - **Losing it.** A session that ends (terminated, server restart,
//!   network) releases its locks; the guard's `still_held` then says
//!   false. With a lease, the session has `idle_session_timeout`: a holder
//!   that stops renewing is cut off by the server.

mod config;
mod conn;
mod polled;
mod polled_wait;
mod pool;
mod sql;
mod tls;
mod turn;

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::FutureExt;
use tokio_postgres::Config;

use self::conn::{session_gone, to_io, Conn, Param, Reply};
use self::pool::{Pool, Session};
use self::sql::TableSql;
use crate::engine::{
    Abandon, Attempted, BlockingWait, FireOnDrop, Hint, Holders, Key, Opener, Params,
    PolledAttempt, PolledWait, Resource, Upgrade, Waited,
};
use crate::error::{Error, Op, Subject};
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{HolderRecord, LockKind, RecordState};

pub use config::{PgConfig, PgSslMode};
pub(crate) use sql::check_table;
pub(crate) use tls::{Clear, Connector, Tls};
pub use tls::{PgSocket, PgTls, PgTlsConnect, PgTlsStream, TokioPostgresTls};

/// How many sessions carry a process's holds on one server and table,
/// unless [`SessionSettings::sessions`] says otherwise.
pub(crate) const DEFAULT_SESSIONS: usize = 4;

/// How many sessions a process's waits on one server and table may use at
/// once, unless [`SessionSettings::waiting`] says otherwise.
pub(crate) const DEFAULT_WAITING_SESSIONS: usize = 4;

/// How soon a wait with no waiting session of its own tries again, first
/// and at most (doubling in between).
const RETRY_FIRST: Duration = Duration::from_millis(2);
const RETRY_LAST: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Session settings applied to every connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionSettings {
    /// `idle_session_timeout`: a holder that neither renews nor runs a
    /// statement for this long loses its session, and its locks.
    pub(crate) lease: Option<Duration>,
    /// `client_connection_check_interval`: how soon the server notices a
    /// waiting client that went away.
    pub(crate) check_interval: Option<Duration>,
    /// How many sessions carry holds together ([`DEFAULT_SESSIONS`] if
    /// unset); leased locks keep a session each whatever this says.
    pub(crate) sessions: Option<usize>,
    /// How many sessions waits may use at once
    /// ([`DEFAULT_WAITING_SESSIONS`] if unset).
    pub(crate) waiting: Option<usize>,
}

impl SessionSettings {
    /// How many sessions the holds share; 0: each hold has its own.
    fn shared_sessions(&self) -> usize {
        if self.lease.is_some() {
            0
        } else {
            self.sessions.unwrap_or(DEFAULT_SESSIONS)
        }
    }

    fn waiting_sessions(&self) -> usize {
        self.waiting.unwrap_or(DEFAULT_WAITING_SESSIONS)
    }
}

/// One server and lock table, shared by every lock of a `PgLocks`.
pub(crate) struct PgServer {
    config: Arc<Config>,
    /// How sessions start: in the clear or through the user's connector.
    tls: Arc<dyn Tls>,
    /// What errors name: `postgres://host:port/dbname`, no credentials.
    pub(crate) label: String,
    pub(crate) table: String,
    sql: TableSql,
    settings: SessionSettings,
    pool: Pool,
    /// The lock table's OID, once it is known to exist.
    oid: Mutex<Option<u32>>,
    /// Held by the one caller finding (or creating) the table: the others
    /// wait for its answer rather than each open a session for it.
    finding: Mutex<()>,
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgServer")
            .field("server", &self.label)
            .field("table", &self.table)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PgServer {
    pub(crate) fn new(
        config: Config,
        tls: Arc<dyn Tls>,
        table: String,
        settings: SessionSettings,
    ) -> PgServer {
        let label = label_of(&config);
        PgServer {
            config: Arc::new(config),
            tls,
            label,
            sql: TableSql::new(&table),
            table,
            pool: Pool::new(settings.shared_sessions(), settings.waiting_sessions()),
            settings,
            oid: Mutex::new(None),
            finding: Mutex::new(()),
        }
    }

    /// The same server with another table or session settings (and a
    /// pool of its own: sessions differ in their settings).
    pub(crate) fn with(&self, table: String, settings: SessionSettings) -> PgServer {
        PgServer {
            config: Arc::clone(&self.config),
            tls: Arc::clone(&self.tls),
            label: self.label.clone(),
            sql: TableSql::new(&table),
            table,
            pool: Pool::new(settings.shared_sessions(), settings.waiting_sessions()),
            settings,
            oid: Mutex::new(None),
            finding: Mutex::new(()),
        }
    }

    pub(crate) fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// A session for a hold or a few statements: one the holds share (see
    /// `pool`), or where nothing is shared, an idle or new one.
    fn session(&self) -> io::Result<Session> {
        self.session_unless(&Abandon::never())
    }

    /// [`session`](Self::session), given up (an error) once `abandon`
    /// fires.
    fn session_unless(&self, abandon: &Abandon) -> io::Result<Session> {
        self.pool.shared(|| self.open(abandon))
    }

    /// A session of the caller's own for a wait in the server, which
    /// blocks it (`reuse`, an idle one or a new one), if the waits have a
    /// place left (see `pool`).
    fn waiting_session(&self, reuse: Option<Conn>) -> Option<io::Result<Conn>> {
        self.pool.waiting(reuse, || self.open(&Abandon::never()))
    }

    fn open(&self, abandon: &Abandon) -> io::Result<Conn> {
        Conn::open(&self.config, &*self.tls, &self.setup(), abandon)
    }

    /// Takes back a session of the caller's own that holds no lock.
    fn give_back(&self, conn: Conn) {
        self.pool.give_back(conn);
    }

    fn setup(&self) -> String {
        let mut setup = String::new();
        if let Some(lease) = self.settings.lease {
            let ms = lease.as_millis().max(1);
            setup.push_str(&format!("SET idle_session_timeout = {ms};"));
        }
        if let Some(every) = self.settings.check_interval {
            let ms = every.as_millis().max(1);
            setup.push_str(&format!("SET client_connection_check_interval = {ms};"));
        }
        setup
    }

    /// The lock table's OID, creating the table if missing, on a session
    /// of its own: the creation is a transaction, and one that fails half
    /// way (no privilege, say) leaves its session in an aborted
    /// transaction, which must not be a session other holds share. Such a
    /// session is closed, not given back.
    fn table_oid(&self, abandon: &Abandon) -> io::Result<u32> {
        if let Some(oid) = *lock(&self.oid) {
            return Ok(oid);
        }
        let _finding = lock(&self.finding);
        if let Some(oid) = *lock(&self.oid) {
            return Ok(oid);
        }
        let conn = self.pool.own(|| self.open(abandon))?;
        let oid = conn.run(conn::unless(abandon, self.find_table(&conn)))?;
        self.pool.offer(conn);
        Ok(oid)
    }

    /// [`table_oid`](Self::table_oid), as queries for a caller driving
    /// `conn` itself.
    async fn find_table(&self, conn: &Conn) -> io::Result<u32> {
        if let Some(oid) = *lock(&self.oid) {
            return Ok(oid);
        }
        conn.batch(&self.sql.create).await?;
        let row = conn.query_one(sql::TABLE_OID, &[&self.table]).await?;
        let oid: Option<i64> = row.try_get(0).map_err(to_io)?;
        let oid = oid
            .and_then(|o| u32::try_from(o).ok())
            .ok_or_else(|| io::Error::other("the lock table has no OID after its creation"))?;
        *lock(&self.oid) = Some(oid);
        Ok(oid)
    }

    /// The id of `name`'s row, registering it on first use, as queries for
    /// a caller driving `conn` itself.
    async fn register_in(&self, conn: &Conn, name: &str) -> io::Result<i32> {
        conn.execute(&self.sql.insert_name, &[&name]).await?;
        let row = conn.query_one(&self.sql.select_name, &[&name]).await?;
        let id: i32 = row.try_get(0).map_err(to_io)?;
        let stored: String = row.try_get(1).map_err(to_io)?;
        if stored != name {
            return Err(io::Error::other(format!(
                "the lock table maps this name's SHA-256 to another name ({stored:?})"
            )));
        }
        Ok(id)
    }

    /// Whether a run-once call recorded `key` as done for `name`.
    pub(crate) fn is_done(&self, name: &str, key: &str) -> io::Result<bool> {
        self.table_oid(&Abandon::never())?;
        let conn = self.session()?;
        let row = conn.run(conn.query_opt(&self.sql.done_key, &[&name]))?;
        self.pool.done(conn);
        let done: Option<String> = match row {
            Some(row) => row.try_get(0).map_err(to_io)?,
            None => None,
        };
        Ok(done.as_deref() == Some(key))
    }

    /// Records `key` as done for `name`, if the hold with `token` is still
    /// the latest one; says whether it was recorded.
    pub(crate) fn mark_done(&self, name: &str, key: &str, token: u64) -> io::Result<bool> {
        let token = i64::try_from(token).map_err(|_| io::Error::other("a token past i64::MAX"))?;
        let conn = self.session()?;
        let changed = conn.run(conn.execute(&self.sql.mark_done, &[&name, &key, &token]))?;
        self.pool.done(conn);
        Ok(changed == 1)
    }

    /// Who holds the lock `id` (every lock of the table if `None`).
    pub(crate) fn holders(&self, id: Option<i32>) -> io::Result<Vec<Holding>> {
        let oid = self.table_oid(&Abandon::never())?;
        let conn = self.session()?;
        let rows = conn.run(conn.query(&self.sql.holders, &[&i64::from(oid), &id]))?;
        self.pool.done(conn);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(Holding::from_row(&row).map_err(to_io)?);
        }
        Ok(out)
    }
}

/// One session holding a lock, as the holder query reports it.
#[derive(Clone, Debug)]
pub(crate) struct Holding {
    pub(crate) name: String,
    pub(crate) exclusive: bool,
    /// The record the exclusive holder wrote (only when the table's holder
    /// columns are this session's).
    pub(crate) record: Option<HolderRecord>,
}

impl Holding {
    fn from_row(row: &tokio_postgres::Row) -> Result<Holding, tokio_postgres::Error> {
        let mode: String = row.try_get(0)?;
        let backend_pid: i32 = row.try_get(1)?;
        let token: i64 = row.try_get(2)?;
        let pid: Option<i64> = row.try_get(3)?;
        let host: Option<String> = row.try_get(4)?;
        let owner: Option<String> = row.try_get(5)?;
        let since: Option<f64> = row.try_get(6)?;
        let recorded_backend: Option<i32> = row.try_get(7)?;
        let name: String = row.try_get(8)?;
        let exclusive = mode == "ExclusiveLock";
        let record = match (exclusive, recorded_backend, pid, since) {
            (true, Some(b), Some(pid), Some(since)) if b == backend_pid => {
                let at = UNIX_EPOCH + Duration::try_from_secs_f64(since).unwrap_or_default();
                Some(HolderRecord {
                    pid: u32::try_from(pid).unwrap_or(0),
                    kind: LockKind::Postgres,
                    state: RecordState::Held,
                    mode: LockMode::Exclusive,
                    host: host.unwrap_or_default().into(),
                    boot_id: None,
                    start_time: None,
                    acquired: at,
                    renewed: at,
                    ttl: None,
                    owner: owner.map(Into::into),
                    token: u64::try_from(token).unwrap_or(0),
                    nonce: None,
                })
            }
            _ => None,
        };
        Ok(Holding {
            name,
            exclusive,
            record,
        })
    }
}

/// `postgres://host:port/dbname`, for messages.
fn label_of(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::from("?"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{host}:{port}/{db}")
}

/// Opens one named lock: registers the name and finds its key.
#[derive(Debug)]
pub(crate) struct PgOpener {
    pub(crate) server: Arc<PgServer>,
    pub(crate) name: String,
    pub(crate) options: LockOptions,
    /// What errors name: the server and the lock's name.
    pub(crate) label: std::path::PathBuf,
}

impl Opener for PgOpener {
    fn open(&self, abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        let fail = |e| Error::io(Subject::remote(&self.label), Op::Open, e);
        let oid = self.server.table_oid(abandon).map_err(fail)?;
        let conn = self.server.session_unless(abandon).map_err(fail)?;
        // The first queries on a fresh session can wait too (a server that
        // accepted and stalls): given up with the acquisition as well.
        let id = conn
            .run(conn::unless(
                abandon,
                self.server.register_in(&conn, &self.name),
            ))
            .map_err(fail)?;
        self.server.pool.done(conn);
        let key = sql::lock_key(oid, id).map_err(fail)?;
        let mut identity = self.server.label.clone().into_bytes();
        identity.extend_from_slice(&key.to_le_bytes());
        let resource = PgLock {
            server: Arc::clone(&self.server),
            key,
            oid,
            id,
            held: Mutex::new(None),
            releasing: Mutex::new(None),
            last: Mutex::new(Weak::new()),
        };
        Ok((
            Key {
                space: "postgres",
                id: identity.into_boxed_slice(),
            },
            Box::new(resource),
        ))
    }
}

/// A session holding the lock, in flight between a blocking wait and its
/// commit: dropped uncommitted, it releases in the background.
struct Hold {
    server: Arc<PgServer>,
    session: Option<Session>,
    mode: LockMode,
    key: i64,
    record: Option<Arc<HolderRecord>>,
}

impl Hold {
    /// The hold of an attempt that took the lock on `session`; an
    /// exclusive one carries the record of its `token`. Without a token
    /// (the name's row is gone) the hold is dropped, which releases, and
    /// the error says why.
    fn taken(
        server: &Arc<PgServer>,
        session: Session,
        mode: LockMode,
        key: i64,
        token: Option<i64>,
        options: &LockOptions,
    ) -> io::Result<Hold> {
        let mut hold = Hold {
            server: Arc::clone(server),
            session: Some(session),
            mode,
            key,
            record: None,
        };
        if mode == LockMode::Exclusive {
            hold.record = Some(record_of(token, options)?);
        }
        Ok(hold)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        match self.session.take() {
            Some(Session::Own(conn)) => {
                release_later(&self.server, Arc::new(conn), self.mode, self.key).detach();
            }
            Some(Session::Shared(conn)) => {
                conn.send_and_forget(unlock_statement(self.mode), self.key);
            }
            None => {}
        }
    }
}

/// A release in flight: its session, with the unlock on the wire and its
/// reply unread. Whoever comes first reads the reply: the next acquisition
/// of the lock in this process (on its own thread, with no hand-over), or
/// a background task, so a session is never left with its reply unread.
struct Release {
    unlocking: Arc<Mutex<Option<Unlocking>>>,
    task: blocking::Task<Option<Arc<Conn>>>,
}

impl Release {
    /// The session, once its unlock is done (`None`: it was closed, or
    /// went back to the pool).
    fn session(self) -> Option<Arc<Conn>> {
        let mine = lock(&self.unlocking).take();
        match mine {
            Some(unlocking) => {
                // The task finds nothing left to do. The reply just read
                // shows the session open: no need to look again.
                self.task.detach();
                unlocking.finish()
            }
            // Finished in the background, perhaps long ago: the server may
            // have ended the session since (a lease), so look.
            None => async_io::block_on(self.task).filter(|conn| !conn.is_closed()),
        }
    }

    /// The session and its unlock's reply, if the reply is still unread
    /// and nobody is using the session: the caller keeps the session's
    /// turn and reads the reply itself. Never blocks.
    fn unlocking_now(self) -> Result<(Arc<Conn>, Reply), Release> {
        let mut slot = lock(&self.unlocking);
        let ready = slot
            .as_ref()
            .is_some_and(|u| u.reply.is_some() && u.conn.turn().try_keep());
        let taken = if ready { slot.take() } else { None };
        drop(slot);
        match taken {
            Some(Unlocking {
                conn,
                reply: Some(reply),
                ..
            }) => {
                // The task finds nothing left to do.
                self.task.detach();
                Ok((conn, reply))
            }
            _ => Err(self),
        }
    }

    /// Whether the release has ended in the background (its session back
    /// in the pool, or closed): `Err` (the release back) while it runs.
    /// Never blocks.
    fn ended_now(self) -> Result<(), Release> {
        if !self.task.is_finished() {
            return Err(self);
        }
        // A session another hold shares stays with that hold.
        drop(futures_lite::future::block_on(self.task));
        Ok(())
    }

    /// Lets the background task finish the release on its own.
    fn detach(self) {
        self.task.detach();
    }
}

/// A session whose unlock is in flight.
struct Unlocking {
    conn: Arc<Conn>,
    reply: Option<Reply>,
    unlock: &'static str,
    key: i64,
}

impl Unlocking {
    /// Reads the unlock's reply (or runs the unlock, if it could not be sent
    /// at once): the session if it is clean. A session whose unlock failed
    /// is let go (closed, which releases whatever it held, once no other
    /// hold shares it).
    fn finish(self) -> Option<Arc<Conn>> {
        let Unlocking {
            conn,
            reply,
            unlock,
            key,
        } = self;
        let reply = match reply {
            Some(reply) => conn.run(reply),
            None => conn.run(conn.query_one(unlock, &[&key])),
        };
        // Not held (the session lost it) or failed: close it.
        unlocked_cleanly(reply).then_some(conn)
    }
}

/// Whether an unlock's reply says the session held the lock and gave it
/// back: its session is then clean. `false` for a session that had lost
/// the lock, or an unlock that failed.
fn unlocked_cleanly(reply: io::Result<tokio_postgres::Row>) -> bool {
    reply
        .and_then(|row| row.try_get::<_, bool>(0).map_err(to_io))
        .is_ok_and(|held| held)
}

/// Unlocks: the statement leaves at once from the caller's thread (so the
/// next holder's wait ends without a wake-up of another thread first), and
/// its reply is read by the next acquisition or in the background.
fn release_later(server: &Arc<PgServer>, conn: Arc<Conn>, mode: LockMode, key: i64) -> Release {
    let unlock = unlock_statement(mode);
    let reply = conn.send_now(unlock, key);
    let unlocking = Arc::new(Mutex::new(Some(Unlocking {
        conn,
        reply,
        unlock,
        key,
    })));
    let left = Arc::clone(&unlocking);
    let server = Arc::clone(server);
    let task = blocking::unblock(move || {
        let mine = lock(&left).take();
        let conn = mine.and_then(Unlocking::finish)?;
        // A session nobody else uses goes back to the idle pool, rather
        // than stay open for this lock's next acquisition.
        match Arc::try_unwrap(conn) {
            Ok(own) => {
                server.give_back(own);
                None
            }
            Err(shared) => Some(shared),
        }
    });
    Release { unlocking, task }
}

/// The statement that releases a hold in `mode`.
fn unlock_statement(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Exclusive => sql::UNLOCK_EXCLUSIVE,
        LockMode::Shared => sql::UNLOCK_SHARED,
    }
}

/// The lock of one name, as this process holds it.
struct PgLock {
    server: Arc<PgServer>,
    key: i64,
    oid: u32,
    id: i32,
    /// The session holding the lock for this process.
    held: Mutex<Option<Arc<Conn>>>,
    /// The last release of a session of its own, in flight: the next
    /// acquisition waits for it (and reuses its session).
    releasing: Mutex<Option<Release>>,
    /// The shared session of the last hold, whose unlock went out on it:
    /// the next attempt goes there too, after it.
    last: Mutex<Weak<Conn>>,
}

impl fmt::Debug for PgLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLock")
            .field("server", &self.server.label)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The handle's options (owner name), for the record.
fn options_of(p: Params<'_>) -> LockOptions {
    p.downcast_ref::<PgOpener>()
        .map(|o| o.options.clone())
        .unwrap_or_default()
}

/// A session for an attempt: the one the last release used, after its
/// unlock (statements on one session run in order, so the attempt never
/// overtakes its own process's release), or any other.
fn session_after(
    server: &PgServer,
    releasing: Option<Release>,
    last: &Mutex<Weak<Conn>>,
) -> io::Result<Session> {
    if let Some(conn) = releasing.and_then(Release::session) {
        return Ok(Session::Shared(conn));
    }
    let last = std::mem::take(&mut *lock(last)).upgrade();
    match last {
        Some(conn) if !conn.is_closed() => Ok(Session::Shared(conn)),
        _ => server.session(),
    }
}

/// Who this process is, for the row of an exclusive hold: PID, host and
/// owner, as statement parameters.
struct Holder {
    pid: i64,
    host: String,
    owner: Option<String>,
}

impl Holder {
    fn of(options: &LockOptions) -> Holder {
        let me = crate::backend::host::me();
        Holder {
            pid: i64::from(me.pid),
            host: me.host.to_string(),
            owner: options.owner.as_deref().map(str::to_owned),
        }
    }

    /// The parameters of an exclusive statement for `key` and row `id`.
    fn params<'a>(&'a self, key: &'a i64, id: &'a i32) -> [Param<'a>; 5] {
        [key, id, &self.pid, &self.host, &self.owner]
    }

    /// [`params`](Self::params), owned by a statement sent ahead.
    fn owned(self, key: i64, id: i32) -> Vec<conn::Owned> {
        vec![
            Box::new(key),
            Box::new(id),
            Box::new(self.pid),
            Box::new(self.host),
            Box::new(self.owner),
        ]
    }
}

/// A lock statement in `mode` with the parameters it owns, to be sent
/// ahead ([`Conn::send`]): `exclusive` takes the key, the name's row and
/// the holder (it records the holder and bumps the token), `shared` the
/// key alone.
fn lock_call<'a>(
    mode: LockMode,
    (exclusive, shared): (&'a str, &'a str),
    (key, id): (i64, i32),
    options: &LockOptions,
) -> (&'a str, Vec<conn::Owned>) {
    match mode {
        LockMode::Exclusive => (exclusive, Holder::of(options).owned(key, id)),
        LockMode::Shared => (shared, vec![Box::new(key)]),
    }
}

/// The record of an exclusive hold with `token`, read from the statement
/// that took it (NULL: the name's row is gone).
fn record_of(token: Option<i64>, options: &LockOptions) -> io::Result<Arc<HolderRecord>> {
    let token =
        token.ok_or_else(|| io::Error::other("the lock's row is gone from the lock table"))?;
    let token = u64::try_from(token).map_err(|_| io::Error::other("negative token"))?;
    let mut rec =
        crate::backend::new_record(LockKind::Postgres, LockMode::Exclusive, token, options);
    rec.acquired = SystemTime::now();
    rec.renewed = rec.acquired;
    Ok(Arc::new(rec))
}

/// One attempt that does not wait: whether it took the lock, and an
/// exclusive hold's new token.
async fn attempt(
    server: &PgServer,
    conn: &Conn,
    mode: LockMode,
    key: i64,
    id: i32,
    holder: &Holder,
) -> io::Result<(bool, Option<i64>)> {
    let row = match mode {
        LockMode::Exclusive => {
            conn.query_one(&server.sql.try_exclusive, &holder.params(&key, &id))
                .await?
        }
        LockMode::Shared => conn.query_one(sql::TRY_SHARED, &[&key]).await?,
    };
    outcome_of(mode, &row)
}

/// What an attempt's row says: whether it took the lock, and an exclusive
/// hold's new token.
fn outcome_of(mode: LockMode, row: &tokio_postgres::Row) -> io::Result<(bool, Option<i64>)> {
    let got: bool = row.try_get(0).map_err(to_io)?;
    let token: Option<i64> = match mode {
        LockMode::Exclusive => row.try_get(1).map_err(to_io)?,
        LockMode::Shared => None,
    };
    Ok((got, token))
}

/// Lets go of a session an attempt failed on, which may have taken the
/// lock before it failed.
fn discard(server: &PgServer, session: Session, mode: LockMode, key: i64) {
    match session {
        Session::Own(conn) => clean_up(server, conn),
        // Other holds live on it: give back only this key.
        Session::Shared(conn) => {
            let _ = conn.run(ask(&conn, unlock_statement(mode), key));
            server.pool.done(Session::Shared(conn));
        }
    }
}

/// How a wait that found no place among the waiting sessions ended.
enum Retried {
    /// An attempt took the lock.
    Locked(Hold),
    /// A place freed up: the wait goes on in the server, on this session.
    Place(Conn),
}

/// A wait with no place among the waiting sessions (see `pool`): attempts
/// on a shared session, pausing longer each time (up to [`RETRY_LAST`]),
/// until one takes the lock, a place frees up, or the wait is abandoned.
fn retry_on_shared(
    server: &Arc<PgServer>,
    mode: LockMode,
    key: i64,
    id: i32,
    options: &LockOptions,
    abandon: &Abandon,
) -> io::Result<Retried> {
    let holder = Holder::of(options);
    let mut pause = RETRY_FIRST;
    loop {
        if abandon.is_fired() {
            return Err(abandoned());
        }
        // Listen before asking, so a place freed in between is not missed.
        let freed = server.pool.place_freed();
        if let Some(conn) = server.waiting_session(None) {
            return conn.map(Retried::Place);
        }
        let session = server.session_unless(abandon)?;
        match session.run(attempt(server, &session, mode, key, id, &holder)) {
            Ok((true, token)) => {
                let hold = Hold::taken(server, session, mode, key, token, options)?;
                return Ok(Retried::Locked(hold));
            }
            Ok((false, _)) => server.pool.done(session),
            Err(e) => {
                discard(server, session, mode, key);
                return Err(e);
            }
        }
        async_io::block_on(abandon.fired().or(freed).or(async {
            async_io::Timer::after(pause).await;
        }));
        pause = (pause * 2).min(RETRY_LAST);
    }
}

fn abandoned() -> io::Error {
    io::Error::other("the wait was abandoned")
}

/// Runs one statement that takes the key and returns a boolean.
async fn ask(conn: &Conn, statement: &str, key: i64) -> io::Result<bool> {
    let row = conn.query_one(statement, &[&key]).await?;
    row.try_get(0).map_err(to_io)
}

/// How a wait in the server ended.
enum WaitEnd {
    /// The statement returned: exclusive holds carry the new token.
    Granted(Option<i64>),
    /// The statement failed: the lock may have been granted anyway.
    Failed(io::Error),
    /// Abandoned, cancelled and the statement awaited (`Err` if the cancel
    /// could not be sent).
    Abandoned(io::Result<()>),
}

/// The wait itself, on its own thread: the lock statement (which for an
/// exclusive hold also bumps the token), raced against the abandon signal.
/// An abandoned wait is cancelled and cleaned up before the session is
/// used again (see the module docs).
fn wait_in_server(
    server: Arc<PgServer>,
    releasing: Option<Release>,
    mode: LockMode,
    key: i64,
    id: i32,
    options: LockOptions,
    abandon: Abandon,
) -> io::Result<Waited> {
    // The last release's session (its unlock done), if nothing else uses
    // it; else an idle or a new one, if the waits have a place left.
    let reuse = releasing
        .and_then(Release::session)
        .and_then(|conn| Arc::try_unwrap(conn).ok());
    let conn = match server.waiting_session(reuse) {
        Some(conn) => conn?,
        None => match retry_on_shared(&server, mode, key, id, &options, &abandon)? {
            Retried::Locked(hold) => return Ok(Waited::Locked(Box::new(hold))),
            Retried::Place(conn) => conn,
        },
    };
    let holder = Holder::of(&options);
    let end = conn.run(async {
        let statement = async {
            let row = match mode {
                LockMode::Exclusive => {
                    conn.query_one(&server.sql.wait_exclusive, &holder.params(&key, &id))
                        .await?
                }
                LockMode::Shared => conn.query_one(sql::WAIT_SHARED, &[&key]).await?,
            };
            granted_token(mode, &row)
        };
        futures_lite::pin!(statement);
        // The statement is polled first, so a grant that raced the abandon
        // is seen (and then released by the dropped hold).
        let first = async { Some(statement.as_mut().await) }
            .or(async {
                abandon.fired().await;
                None
            })
            .await;
        match first {
            Some(Ok(token)) => WaitEnd::Granted(token),
            Some(Err(e)) => WaitEnd::Failed(e),
            None => WaitEnd::Abandoned(cancel_until_ended(&conn, statement).await),
        }
    });
    match end {
        WaitEnd::Granted(token) => {
            let hold = Hold::taken(&server, Session::Own(conn), mode, key, token, &options)?;
            Ok(Waited::Locked(Box::new(hold)))
        }
        WaitEnd::Failed(e) => {
            // Cancelled by someone, a deadlock report, the session ending.
            clean_up(&server, conn);
            Err(e)
        }
        WaitEnd::Abandoned(cancelled) => {
            clean_up(&server, conn);
            cancelled?;
            Err(abandoned())
        }
    }
}

/// The lock a wait statement's row says was granted: an exclusive hold's
/// new token (NULL: the name's row is gone), nothing for a shared one.
fn granted_token(mode: LockMode, row: &tokio_postgres::Row) -> io::Result<Option<i64>> {
    match mode {
        LockMode::Exclusive => row.try_get::<_, Option<i64>>(0).map_err(to_io),
        LockMode::Shared => Ok(None),
    }
}

/// Cancels the wait `statement` runs on `conn`, an abandoned wait, and
/// returns once it has ended (`Err` if a cancel could not be sent; the
/// statement is then awaited as it is). Until then the session is not
/// clean. A cancel that the server takes before the statement has started
/// finds an idle session, which ignores it, and the statement would then
/// wait in the server's queue until granted (a ghost waiter): so the
/// cancel is sent again until the statement ends. Each one is processed
/// before the next step (see `cancel_running`), so none can hit a later
/// statement of the session. The caller drives the session.
async fn cancel_until_ended<T>(
    conn: &Conn,
    mut statement: std::pin::Pin<&mut impl std::future::Future<Output = T>>,
) -> io::Result<()> {
    let mut pause = CANCEL_FIRST_PAUSE;
    loop {
        if let Err(e) = conn.cancel_running().await {
            let _ = statement.as_mut().await;
            return Err(e);
        }
        let ended = async { Some(statement.as_mut().await) }
            .or(async {
                async_io::Timer::after(pause).await;
                None
            })
            .await;
        if ended.is_some() {
            return Ok(());
        }
        pause = (pause * 2).min(CANCEL_LAST_PAUSE);
    }
}

/// How long an abandoned wait's statement has to end after a cancel before
/// the cancel is sent again (doubling up to [`CANCEL_LAST_PAUSE`]).
const CANCEL_FIRST_PAUSE: Duration = Duration::from_millis(20);
const CANCEL_LAST_PAUSE: Duration = Duration::from_secs(1);

/// Releases whatever advisory lock the session may hold after a wait with
/// an uncertain outcome, and gives it back if that worked.
fn clean_up(server: &PgServer, conn: Conn) {
    if conn.is_closed() {
        return;
    }
    if conn.run(conn.query_one(sql::UNLOCK_ALL, &[])).is_ok() {
        server.give_back(conn);
    }
    // Otherwise dropped: closing the session releases its locks.
}

impl Resource for PgLock {
    fn try_acquire(&self, mode: LockMode, p: Params<'_>) -> io::Result<Attempted> {
        let releasing = lock(&self.releasing).take();
        let conn = session_after(&self.server, releasing, &self.last)?;
        let options = options_of(p);
        let holder = Holder::of(&options);
        let attempted = conn.run(attempt(
            &self.server,
            &conn,
            mode,
            self.key,
            self.id,
            &holder,
        ));
        let token = match attempted {
            Ok((true, token)) => token,
            Ok((false, _)) => {
                self.server.pool.done(conn);
                return Ok(Attempted::Busy);
            }
            Err(e) => {
                discard(&self.server, conn, mode, self.key);
                return Err(e);
            }
        };
        let conn = match conn {
            Session::Shared(conn) => conn,
            Session::Own(conn) => Arc::new(conn),
        };
        let record = match mode {
            LockMode::Exclusive => match record_of(token, &options) {
                Ok(rec) => Some(rec),
                Err(e) => {
                    let task = release_later(&self.server, conn, mode, self.key);
                    *lock(&self.releasing) = Some(task);
                    return Err(e);
                }
            },
            LockMode::Shared => None,
        };
        *lock(&self.held) = Some(conn);
        Ok(Attempted::Locked(record))
    }

    fn polls_attempts(&self) -> bool {
        true
    }

    fn attempt_polled(&self, mode: LockMode, p: Params<'_>) -> Option<PolledAttempt> {
        let releasing = lock(&self.releasing).take();
        let last = std::mem::take(&mut *lock(&self.last));
        Some(Box::pin(polled::PolledTry::start(
            Arc::clone(&self.server),
            mode,
            (self.key, self.id),
            options_of(p),
            releasing,
            last,
        )))
    }

    fn wait_polled(&self, mode: LockMode, p: Params<'_>) -> Option<PolledWait> {
        // The last release's session, its unlock's reply read first, if
        // nothing else is using it; else an idle session.
        let releasing = lock(&self.releasing).take();
        let start = match releasing.map(Release::unlocking_now) {
            Some(Ok((conn, reply))) => polled_wait::Start::AfterRelease(conn, reply),
            Some(Err(release)) => match release.ended_now() {
                // Done in the background: its session went back to the pool.
                Ok(()) => polled_wait::Start::Idle(self.server.pool.waiting_now()?),
                // Its unlock is being read elsewhere: the pool's wait takes
                // the session once it is done.
                Err(release) => {
                    *lock(&self.releasing) = Some(release);
                    return None;
                }
            },
            None => polled_wait::Start::Idle(self.server.pool.waiting_now()?),
        };
        let server = Arc::clone(&self.server);
        let wait = polled_wait::PolledWait::start(
            server,
            start,
            mode,
            (self.key, self.id),
            options_of(p),
        )?;
        Some(Box::pin(wait))
    }

    fn blocking_wait(&self, mode: LockMode, p: Params<'_>) -> Option<BlockingWait> {
        let server = Arc::clone(&self.server);
        let releasing = lock(&self.releasing).take();
        let (key, id, options) = (self.key, self.id, options_of(p));
        let abandon = Abandon::new();
        let signal = abandon.clone();
        let wait = BlockingWait::new(move || {
            wait_in_server(server, releasing, mode, key, id, options, signal)
        });
        Some(wait.abandoned_by(FireOnDrop(abandon)))
    }

    fn commit_wait(
        &self,
        _mode: LockMode,
        lock_held: Box<dyn Any + Send>,
        _p: Params<'_>,
    ) -> io::Result<Attempted> {
        let Ok(mut hold) = lock_held.downcast::<Hold>() else {
            return Err(io::Error::other("a blocking wait returned a foreign lock"));
        };
        let conn = match hold.session.take() {
            Some(Session::Own(conn)) => self.server.pool.adopt(conn),
            Some(Session::Shared(conn)) => conn,
            None => return Err(io::Error::other("a blocking wait returned an empty hold")),
        };
        *lock(&self.held) = Some(conn);
        Ok(Attempted::Locked(hold.record.take()))
    }

    fn release(
        &self,
        mode: LockMode,
        _last: bool,
        _record: Option<Arc<HolderRecord>>,
        _p: Params<'_>,
    ) -> io::Result<bool> {
        let Some(conn) = lock(&self.held).take() else {
            return Ok(false);
        };
        if Arc::strong_count(&conn) > 1 {
            // Shared with other holds (or a `still_held` check in flight):
            // the unlock goes out now, or once the session is free, and
            // the next attempt of this lock follows it on the session.
            *lock(&self.last) = Arc::downgrade(&conn);
            conn.send_and_forget(unlock_statement(mode), self.key);
            return Ok(false);
        }
        // A session of its own: the unlock leaves from this thread, its
        // reply is read by the next acquisition or in the background.
        let task = release_later(&self.server, conn, mode, self.key);
        // An older release still in flight finishes on its own.
        if let Some(older) = lock(&self.releasing).replace(task) {
            older.detach();
        }
        Ok(false)
    }

    fn upgrade(&self, p: Params<'_>) -> io::Result<Upgrade> {
        let Some(conn) = lock(&self.held).clone() else {
            return Ok(Upgrade::Lost);
        };
        if conn.is_closed() {
            return Ok(Upgrade::Lost);
        }
        let options = options_of(p);
        let holder = Holder::of(&options);
        let upgraded = conn.run(async {
            // This session's own shared hold does not conflict with its
            // exclusive request: it is granted if nobody else shares it.
            let row = conn
                .query_one(
                    &self.server.sql.try_exclusive,
                    &holder.params(&self.key, &self.id),
                )
                .await?;
            if !row.try_get::<_, bool>(0).map_err(to_io)? {
                return Ok(Upgrade::StillShared);
            }
            let token: Option<i64> = row.try_get(1).map_err(to_io)?;
            ask(&conn, sql::UNLOCK_SHARED, self.key).await?;
            Ok(Upgrade::Upgraded(Some(record_of(token, &options)?)))
        });
        match upgraded {
            // The session ended under the query: so did the shared hold.
            Err(e) if session_gone(&e) || conn.is_closed() => Ok(Upgrade::Lost),
            other => other,
        }
    }

    fn downgrade(&self, _record: Option<Arc<HolderRecord>>, _p: Params<'_>) -> io::Result<bool> {
        let Some(conn) = lock(&self.held).clone() else {
            return Ok(false);
        };
        let downgraded = conn.run(async {
            // This session's own exclusive hold does not conflict with its
            // shared request: it is granted at once, and the lock is never
            // free in between.
            ask(&conn, sql::WAIT_SHARED, self.key).await?;
            ask(&conn, sql::UNLOCK_EXCLUSIVE, self.key).await
        });
        match downgraded {
            // The session ended under the queries, and its holds with it.
            Err(e) if session_gone(&e) || conn.is_closed() => Ok(false),
            other => other,
        }
    }

    fn supports_shared(&self) -> bool {
        true
    }

    fn remote(&self) -> bool {
        true
    }

    fn attempts_before_waiting(&self) -> bool {
        // Taken by an attempt, a lock lives on a session shared with other
        // holds; taken by a wait, on the wait's own session.
        self.server.pool.shares()
    }

    fn wake_hint(&self, _p: Params<'_>) -> Option<Box<dyn Hint>> {
        // The head waits in the server, which hands the lock over itself.
        None
    }

    fn holders(&self, _p: Params<'_>) -> Holders {
        let record = self
            .server
            .holders(Some(self.id))
            .ok()
            .and_then(|h| h.into_iter().find_map(|h| h.record));
        Holders {
            record,
            ..Holders::default()
        }
    }

    fn refresh(&self, _p: Params<'_>) -> io::Result<Option<Arc<HolderRecord>>> {
        let Some(conn) = lock(&self.held).clone() else {
            return Err(crate::error::lost());
        };
        // Any statement resets the server's idle timer (the lease).
        match conn.run(conn.batch("SELECT 1")) {
            Ok(()) => Ok(None),
            // Decided by what the server said, not by whether the socket
            // has been seen closed yet: a termination that lands during
            // the query answers it before the socket's end is read.
            Err(e) if session_gone(&e) || conn.is_closed() => Err(crate::error::lost()),
            Err(e) => Err(e),
        }
    }

    fn still_held(&self, held: bool, _p: Params<'_>) -> io::Result<bool> {
        if !held {
            return Ok(false);
        }
        let Some(conn) = lock(&self.held).clone() else {
            return Ok(false);
        };
        if conn.is_closed() {
            return Ok(false);
        }
        let oid = i64::from(self.oid);
        let id = i64::from(self.id);
        match conn.run(conn.query_one(sql::STILL_HELD, &[&oid, &id])) {
            Ok(row) => row.try_get(0).map_err(to_io),
            // As in `refresh`: the server's words decide.
            Err(e) if session_gone(&e) || conn.is_closed() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
