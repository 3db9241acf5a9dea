//! One connection to the server, runtime-free: an async-io socket, its
//! protocol driven on a thread of its own, and the cancel request sent on
//! a socket this module opens and reads to the end.
//!
//! Every call here blocks its thread (`async_io::block_on`): the engine
//! makes them only where blocking is allowed (a blocking wait's task, a
//! blocking caller, a background release). The protocol itself never runs
//! on the caller's executor, so a current-thread runtime blocked in a call
//! cannot starve the connection it waits for.

use std::io;
use std::net::ToSocketAddrs;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, FutureExt};
use tokio_postgres::config::Host;
use tokio_postgres::{CancelToken, Client, Config, NoTls};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// A byte stream to the server: TCP or a Unix socket.
trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

type Stream = Compat<Pin<Box<dyn Duplex>>>;

/// How long a connection attempt may take when the configuration gives no
/// `connect_timeout`: an unreachable server fails instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open session.
pub(super) struct Conn {
    pub(super) client: Client,
    cancel: CancelToken,
    config: Arc<Config>,
    /// Set by the driver thread when the protocol ends (closed socket,
    /// terminated backend, server shut down).
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects and starts the session's driver thread.
    pub(super) fn open(config: &Arc<Config>, setup: &str) -> io::Result<Conn> {
        async_io::block_on(async {
            let stream = dial(config).await?;
            let limit = connect_timeout(config);
            let (client, connection) =
                async { config.connect_raw(stream, NoTls).await.map_err(to_io) }
                    .or(async {
                        Timer::after(limit).await;
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the server did not complete the start-up within {limit:?}"),
                        ))
                    })
                    .await?;
            let closed = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&closed);
            std::thread::Builder::new()
                .name("lockyard-postgres".into())
                .spawn(move || {
                    // Ends when the client is dropped or the socket closes;
                    // an error is the session's end either way.
                    let _ = async_io::block_on(connection);
                    flag.store(true, Ordering::Release);
                })?;
            let conn = Conn {
                cancel: client.cancel_token(),
                client,
                config: Arc::clone(config),
                closed,
            };
            if !setup.is_empty() {
                conn.client.batch_execute(setup).await.map_err(to_io)?;
            }
            Ok(conn)
        })
    }

    /// Whether the session has ended.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.client.is_closed()
    }

    /// Asks the server to cancel whatever this session runs, and returns
    /// once the server has processed the request: it closes the cancel
    /// socket after acting on it, so reading that socket to its end means
    /// a later statement on the session cannot be hit by this cancel.
    pub(super) async fn cancel_running(&self) -> io::Result<()> {
        let mut stream = dial(&self.config).await?;
        self.cancel
            .cancel_query_raw(&mut stream, NoTls)
            .await
            .map_err(to_io)?;
        let mut rest = Vec::new();
        let inner = stream.get_mut();
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

fn connect_timeout(config: &Config) -> Duration {
    config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT)
}

/// Opens a socket to the first host that answers.
async fn dial(config: &Config) -> io::Result<Stream> {
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
            Ok(stream) => return Ok(stream.compat()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no host to connect to")))
}

/// A client error as an `io::Error`, keeping the server's words (and SQL
/// state) in the message and a matching kind.
pub(super) fn to_io(e: tokio_postgres::Error) -> io::Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let kind = match code {
            // invalid_authorization_specification, invalid_password
            "28000" | "28P01" | "42501" => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        return io::Error::new(kind, format!("{} (SQLSTATE {code})", db.message()));
    }
    if e.is_closed() {
        return io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string());
    }
    match std::error::Error::source(&e).and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => io::Error::new(io.kind(), e.to_string()),
        None => io::Error::other(e.to_string()),
    }
}
