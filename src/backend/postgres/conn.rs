//! One connection to the server, runtime-free: an async-io socket whose
//! protocol is driven by the thread that uses it, statements prepared once
//! per session, and the cancel request sent on a socket this module opens
//! and reads to the end.
//!
//! Every call runs to completion on its thread ([`Conn::run`], over
//! `async_io::block_on`), driving the protocol beside the statement: a
//! round trip costs the network and the server, not a wake-up of another
//! thread. The engine makes these calls only where blocking is allowed (a
//! blocking wait's task, a blocking caller, a background release), never
//! on the caller's executor, so a current-thread runtime blocked in a call
//! cannot starve the connection it waits for. The one exception blocks
//! nothing: a future's first attempt sends its statement ([`Conn::send`])
//! and drives the protocol from its own polls ([`Conn::drive`]), keeping
//! the session's turn in between. One call at a time uses a session (they
//! take turns, see `turn`); a session nobody uses is not read until its
//! next use, when a closed socket is found at once.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, FutureExt};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, Client, Config, NoTls, Row, Statement};

use super::lock;
use super::pool::WaitPlace;
use super::tls::{PgSocket, Protocol, Tls};
use super::turn::Turn;
use crate::engine::Abandon;

/// A byte stream to the server: TCP or a Unix socket.
pub(super) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// How long a connection attempt may take when the configuration gives no
/// `connect_timeout`: an unreachable server fails instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A statement parameter.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// A statement parameter a reply owns ([`Conn::send`]).
pub(super) type Owned = Box<dyn ToSql + Send + Sync>;

/// The reply to a statement sent by [`Conn::send_now`].
pub(super) type Reply = Pin<Box<dyn Future<Output = io::Result<Row>> + Send>>;

/// An open session.
pub(super) struct Conn {
    /// `None` only while the session is dropped. Shared with replies
    /// awaited later ([`Conn::send_now`]).
    client: Option<Arc<Client>>,
    /// `None` once the protocol has ended.
    protocol: Mutex<Option<Protocol>>,
    /// Held by the one call using the session.
    turn: Turn,
    statements: Mutex<HashMap<String, Statement>>,
    cancel: CancelToken,
    config: Arc<Config>,
    /// Set when the protocol ends (closed socket, terminated backend,
    /// server shut down).
    closed: AtomicBool,
    /// Replies of statements sent and forgotten ([`Conn::send_and_forget`]),
    /// read by one drainer at a time.
    forgotten: Mutex<Vec<Reply>>,
    draining: AtomicBool,
    /// The place this session takes among a process's waiting sessions
    /// (see `pool`), given back when it is dropped or stops counting.
    place: Mutex<Option<WaitPlace>>,
    /// How many writes the socket refused for now, where the protocol
    /// writes straight to it (no TLS): see [`Conn::send_and_forget`].
    stalls: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects (through `tls`) and runs `setup`.
    pub(super) fn open(
        config: &Arc<Config>,
        tls: &dyn Tls,
        setup: &str,
        abandon: &Abandon,
    ) -> io::Result<Conn> {
        async_io::block_on(unless(abandon, async {
            let (socket, host) = dial(config).await?;
            let stalls = tls.writes_through().then(|| socket.stalls());
            let limit = connect_timeout(config);
            let (client, connection) = tls
                .start(socket, config, &host)
                .or(async {
                    Timer::after(limit).await;
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the server did not complete the start-up within {limit:?}"),
                    ))
                })
                .await?;
            Ok(Conn {
                cancel: client.cancel_token(),
                client: Some(Arc::new(client)),
                protocol: Mutex::new(Some(connection)),
                turn: Turn::default(),
                statements: Mutex::new(HashMap::new()),
                config: Arc::clone(config),
                closed: AtomicBool::new(false),
                forgotten: Mutex::new(Vec::new()),
                draining: AtomicBool::new(false),
                place: Mutex::new(None),
                stalls,
            })
        }))
        .and_then(|conn| {
            if !setup.is_empty() {
                conn.run(unless(abandon, async {
                    conn.client()?.batch_execute(setup).await.map_err(to_io)
                }))?;
            }
            Ok(conn)
        })
    }

    /// This session now takes `place` among the waiting sessions.
    pub(super) fn take_place(&self, place: WaitPlace) {
        *lock(&self.place) = Some(place);
    }

    /// This session no longer counts among the waiting sessions (it went
    /// idle, or joined the shared set).
    pub(super) fn leave_place(&self) {
        drop(lock(&self.place).take());
    }

    fn client(&self) -> io::Result<&Arc<Client>> {
        self.client
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionAborted, "session dropped"))
    }

    /// Runs `work` (calls on this session) to its end on this thread,
    /// driving the protocol beside it.
    pub(super) fn run<T>(&self, work: impl Future<Output = T>) -> T {
        let _turn = self.turn.take();
        let drive = future::poll_fn(|cx| {
            self.drive(cx);
            Poll::Pending
        });
        async_io::block_on(work.or(drive))
    }

    /// Lets the protocol read and write what it can; notes its end. Only
    /// the caller that has the session's turn drives it.
    pub(super) fn drive(&self, cx: &mut Context<'_>) {
        let mut protocol = lock(&self.protocol);
        if let Some(p) = protocol.as_mut() {
            if p.as_mut().poll(cx).is_ready() {
                // Dropping it fails every call still waiting for a reply.
                *protocol = None;
                self.closed.store(true, Ordering::Release);
            }
        }
    }

    /// Whether the session has ended. A session nobody is using is read
    /// first (without waiting), so a socket the server closed is seen.
    pub(super) fn is_closed(&self) -> bool {
        if let Some(_turn) = self.turn.try_take() {
            self.drive(&mut Context::from_waker(Waker::noop()));
        }
        self.closed.load(Ordering::Acquire) || self.client.as_ref().is_none_or(|c| c.is_closed())
    }

    /// `sql`, prepared on this session once and reused.
    async fn prepared(&self, sql: &str) -> io::Result<Statement> {
        if let Some(st) = lock(&self.statements).get(sql) {
            return Ok(st.clone());
        }
        let st = self.client()?.prepare(sql).await.map_err(to_io)?;
        lock(&self.statements).insert(sql.to_owned(), st.clone());
        Ok(st)
    }

    /// The one row `sql` returns.
    pub(super) async fn query_one(&self, sql: &str, params: &[Param<'_>]) -> io::Result<Row> {
        let st = self.prepared(sql).await?;
        self.client()?.query_one(&st, params).await.map_err(to_io)
    }

    /// The row `sql` returns, if any.
    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> io::Result<Option<Row>> {
        let st = self.prepared(sql).await?;
        self.client()?.query_opt(&st, params).await.map_err(to_io)
    }

    /// Every row `sql` returns.
    pub(super) async fn query(&self, sql: &str, params: &[Param<'_>]) -> io::Result<Vec<Row>> {
        let st = self.prepared(sql).await?;
        self.client()?.query(&st, params).await.map_err(to_io)
    }

    /// How many rows `sql` changed.
    pub(super) async fn execute(&self, sql: &str, params: &[Param<'_>]) -> io::Result<u64> {
        let st = self.prepared(sql).await?;
        self.client()?.execute(&st, params).await.map_err(to_io)
    }

    /// Puts `sql` (with the one parameter `key`) on the wire now, from this
    /// thread, without waiting: the statement reaches the server without a
    /// wake-up of another thread, and its reply is a future to drive later
    /// with [`run`](Self::run). Nothing is sent, and `None` returned, when
    /// the statement is not prepared on this session yet or another call is
    /// using it. Never blocks.
    pub(super) fn send_now(&self, sql: &str, key: i64) -> Option<Reply> {
        let _turn = self.turn.try_take()?;
        self.send(sql, vec![Box::new(key)])
    }

    /// The session's turn, for a caller that keeps it across polls
    /// ([`Turn::try_keep`], [`Turn::give`]) to drive a statement from its
    /// own task.
    pub(super) fn turn(&self) -> &Turn {
        &self.turn
    }

    /// Puts `sql` with `params` on the wire now, without waiting, for a
    /// caller that has the session's turn; its reply is a future, driven
    /// with [`drive`](Self::drive) under the same turn. `None` when the
    /// statement is not prepared on this session yet. Never blocks.
    pub(super) fn send(&self, sql: &str, params: Vec<Owned>) -> Option<Reply> {
        let statement = lock(&self.statements).get(sql)?.clone();
        let client = Arc::clone(self.client.as_ref()?);
        let mut reply: Reply = Box::pin(async move {
            let refs: Vec<Param<'_>> = params.iter().map(|p| &**p as Param<'_>).collect();
            client.query_one(&statement, &refs).await.map_err(to_io)
        });
        let mut cx = Context::from_waker(Waker::noop());
        // The first poll queues the request; driving the protocol writes it.
        if let Poll::Ready(done) = reply.as_mut().poll(&mut cx) {
            return Some(Box::pin(future::ready(done)));
        }
        self.drive(&mut cx);
        Some(reply)
    }

    /// Runs `sql` (with the one parameter `key`) without waiting for its
    /// reply when it can be put on the wire at once ([`send_now`]).
    /// Otherwise (the session busy, the statement not yet prepared) it
    /// runs here. Its outcome is not reported: for an unlock on a session
    /// other holds share, there is nobody to report it to.
    ///
    /// The statement must surely reach the server, and the session's
    /// replies must not pile up. Where the protocol writes straight to the
    /// socket and the socket refused no write while the statement was
    /// sent, the statement is in the kernel's hands: it reaches the server
    /// whatever this process does next, and its reply is read (and
    /// dropped) by the session's next use. Otherwise its reply is read on
    /// the blocking pool, by one drainer per session, which also finishes
    /// the sending.
    ///
    /// [`send_now`]: Self::send_now
    pub(super) fn send_and_forget(self: &Arc<Self>, sql: &str, key: i64) {
        let stalls = self.stalls.as_ref().map(|s| s.load(Ordering::Relaxed));
        let Some(reply) = self.send_now(sql, key) else {
            let _ = self.run(self.query_one(sql, &[&key]));
            return;
        };
        let refused = self.stalls.as_ref().map(|s| s.load(Ordering::Relaxed));
        if stalls.is_some() && stalls == refused {
            return;
        }
        lock(&self.forgotten).push(reply);
        if !self.draining.swap(true, Ordering::AcqRel) {
            let conn = Arc::clone(self);
            blocking::unblock(move || conn.drain()).detach();
        }
    }

    /// Reads the replies of forgotten statements until there are none.
    fn drain(&self) {
        loop {
            let batch = std::mem::take(&mut *lock(&self.forgotten));
            if batch.is_empty() {
                self.draining.store(false, Ordering::Release);
                // One pushed after the take and before the store started
                // no drainer: take it on, unless another drainer did.
                if lock(&self.forgotten).is_empty() || self.draining.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            self.run(async {
                for reply in batch {
                    let _ = reply.await;
                }
            });
        }
    }

    /// Runs `sql` (several statements, no parameters) unprepared.
    pub(super) async fn batch(&self, sql: &str) -> io::Result<()> {
        self.client()?.batch_execute(sql).await.map_err(to_io)
    }

    /// Asks the server to cancel whatever this session runs, and returns
    /// once the server has processed the request: it closes the cancel
    /// socket after acting on it, so reading that socket to its end means
    /// a later statement on the session cannot be hit by this cancel.
    pub(super) async fn cancel_running(&self) -> io::Result<()> {
        // In the clear, as libpq's cancel requests long were: the request
        // carries only the session's PID and secret key, and the server
        // takes it before any authentication or TLS policy applies.
        let (mut socket, _) = dial(&self.config).await?;
        self.cancel
            .cancel_query_raw(&mut socket, NoTls)
            .await
            .map_err(to_io)?;
        let mut rest = Vec::new();
        let inner = socket.get_mut();
        inner
            .read_to_end(&mut rest)
            .or(async {
                Timer::after(connect_timeout(&self.config)).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the server did not close the cancel request's connection",
                ))
            })
            .await?;
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Without its client, the protocol says goodbye (Terminate) on its
        // next poll, rather than just closing the socket.
        drop(self.client.take());
        if let Some(mut p) = lock(&self.protocol).take() {
            let _ = p.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }
    }
}

fn connect_timeout(config: &Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT)
}

/// Opens a socket to the first host that answers; says which host.
async fn dial(config: &Config) -> io::Result<(PgSocket, String)> {
    let hosts = config.get_hosts();
    let ports = config.get_ports();
    if hosts.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the PostgreSQL configuration names no host",
        ));
    }
    let limit = connect_timeout(config);
    let mut last = None;
    for (i, host) in hosts.iter().enumerate() {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let attempt = async {
            match host {
                Host::Tcp(name) => {
                    let name = name.clone();
                    let addrs: Vec<_> =
                        blocking::unblock(move || (name.as_str(), port).to_socket_addrs())
                            .await?
                            .collect();
                    let mut err = None;
                    for addr in addrs {
                        match Async::<std::net::TcpStream>::connect(addr).await {
                            Ok(s) => {
                                let _ = s.get_ref().set_nodelay(true);
                                let boxed: Pin<Box<dyn Duplex>> = Box::pin(s);
                                return Ok(boxed);
                            }
                            Err(e) => err = Some(e),
                        }
                    }
                    Err(err.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
                    }))
                }
                #[cfg(unix)]
                Host::Unix(dir) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    let s = Async::<std::os::unix::net::UnixStream>::connect(path).await?;
                    let boxed: Pin<Box<dyn Duplex>> = Box::pin(s);
                    Ok(boxed)
                }
            }
        };
        let timed = attempt.or(async {
            Timer::after(limit).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {limit:?}"),
            ))
        });
        match timed.await {
            Ok(stream) => return Ok((PgSocket::new(stream), host_name(host))),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no host to connect to")))
}

/// Whether a server error ends the session that received it, and with it
/// every advisory lock the session held: any `FATAL` or `PANIC` (the
/// server closes the connection after sending it), and the codes that
/// mean so whatever the severity: class 08 (connection exception) and
/// class 57P (the operator ended it: `pg_terminate_backend` is 57P01,
/// shutdown 57P02, a dropped database 57P04, `idle_session_timeout`
/// 57P05), and `idle_in_transaction_session_timeout` (25P03).
fn ends_session(code: &str, severity: &str) -> bool {
    matches!(severity, "FATAL" | "PANIC")
        || code.starts_with("08")
        || code.starts_with("57P")
        || code == "25P03"
}

/// Whether `e`, met by a query on a session, says the session is gone: the
/// server ended it ([`to_io`] gives such errors `ConnectionAborted`) or its
/// socket closed or broke.
pub(super) fn session_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// `work`, or an error as soon as `abandon` fires: nobody waits for it any
/// more, and what it waits on (a server that accepted and never answers)
/// is let go at once instead of at the connect timeout.
pub(super) async fn unless<T>(
    abandon: &Abandon,
    work: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    work.or(async {
        abandon.fired().await;
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "given up: nobody waits for this open any more",
        ))
    })
    .await
}

/// The name a server's certificate must carry for `host`.
fn host_name(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        #[cfg(unix)]
        Host::Unix(dir) => dir.display().to_string(),
    }
}

/// A client error as an `io::Error`, keeping the server's words (and SQL
/// state) in the message and a matching kind.
pub(super) fn to_io(e: tokio_postgres::Error) -> io::Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            // invalid_authorization_specification, invalid_password
            "28000" | "28P01" | "42501" => io::ErrorKind::PermissionDenied,
            _ if ends_session(code, db.severity()) => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::Other,
        };
        return io::Error::new(kind, format!("{} (SQLSTATE {code})", db.message()));
    }
    if e.is_closed() {
        return io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string());
    }
    // The client's words name only the step ("error performing TLS
    // handshake"): the causes say what went wrong.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => io::Error::new(io.kind(), text),
        None => io::Error::other(text),
    }
}
