//! TLS through the user's connector. lockyard's own trait, [`PgTls`],
//! takes the socket to the server and gives back a TLS stream in
//! futures-io's byte-stream traits; the escape hatch
//! [`TokioPostgresTls`] adapts any tokio-postgres connector (whose types
//! follow tokio-postgres's releases). Either way the connector's types are
//! erased here, so a session has one type whatever the connector.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

use super::conn::{to_io, Duplex};

/// The byte stream a TLS connector wraps: a TCP or Unix-domain socket to
/// the server, driven by async-io. It implements futures-io's `AsyncRead`
/// and `AsyncWrite` (what [`PgTls`] connectors such as futures-rustls wrap)
/// and tokio's (what tokio-postgres's connectors wrap, through
/// [`TokioPostgresTls`]).
///
/// # Examples
///
/// ```
/// use lockyard::postgres::PgSocket;
///
/// fn futures_io<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + Send>() {}
/// fn tokio_io<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send>() {}
/// futures_io::<PgSocket>();
/// tokio_io::<PgSocket>();
/// ```
pub struct PgSocket {
    stream: Compat<Pin<Box<dyn Duplex>>>,
    /// How many writes (and flushes) the socket refused for now, for
    /// whoever needs to know whether bytes handed to it reached the kernel.
    stalls: Arc<AtomicU64>,
}

impl PgSocket {
    pub(super) fn new(stream: Pin<Box<dyn Duplex>>) -> PgSocket {
        PgSocket {
            stream: stream.compat(),
            stalls: Arc::default(),
        }
    }

    /// The count of writes and flushes this socket refused with `Pending`.
    pub(super) fn stalls(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.stalls)
    }

    /// The socket itself.
    pub(super) fn get_mut(&mut self) -> &mut Pin<Box<dyn Duplex>> {
        self.stream.get_mut()
    }

    fn counted<T>(&self, done: Poll<T>) -> Poll<T> {
        if done.is_pending() {
            self.stalls.fetch_add(1, Ordering::Relaxed);
        }
        done
    }
}

impl fmt::Debug for PgSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSocket").finish_non_exhaustive()
    }
}

impl AsyncRead for PgSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.get_mut().as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let done = self.stream.get_mut().as_mut().poll_write(cx, buf);
        self.counted(done)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = self.stream.get_mut().as_mut().poll_flush(cx);
        self.counted(done)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.get_mut().as_mut().poll_close(cx)
    }
}

impl tokio::io::AsyncRead for PgSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PgSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let done = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.counted(done)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = Pin::new(&mut self.stream).poll_flush(cx);
        self.counted(done)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A TLS connector for PostgreSQL sessions: it wraps the socket to the
/// server in TLS, checking the server's certificate for `host` as the
/// connector is configured to. Written against futures-io's byte-stream
/// traits, so that any TLS library with an async-io front end fits in a few
/// lines (futures-rustls's `TlsConnector`, async-native-tls); a connector
/// written for tokio-postgres fits through [`TokioPostgresTls`].
///
/// Sessions through a `PgTls` connector authenticate without channel
/// binding (SCRAM-SHA-256, not SCRAM-SHA-256-PLUS); a tokio-postgres
/// connector through [`TokioPostgresTls`] binds the channel if it can.
///
/// # Examples
///
/// A connector on futures-rustls:
///
/// ```
/// # #[cfg(not(target_os = "macos"))] // (rustls's ring, in this example)
/// # {
/// use std::sync::Arc;
/// use lockyard::postgres::{PgLocks, PgSocket, PgTls, PgTlsConnect, PgTlsStream};
///
/// struct Rustls(futures_rustls::TlsConnector);
///
/// impl PgTls for Rustls {
///     fn connect(&self, host: &str, socket: PgSocket) -> PgTlsConnect {
///         let (tls, host) = (self.0.clone(), host.to_owned());
///         Box::pin(async move {
///             let name = rustls::pki_types::ServerName::try_from(host)
///                 .map_err(std::io::Error::other)?;
///             Ok(PgTlsStream::new(tls.connect(name, socket).await?))
///         })
///     }
/// }
///
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let config = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions().unwrap()
///     .with_root_certificates(rustls::RootCertStore::empty()) // the server's CA here
///     .with_no_client_auth();
/// let tls = Rustls(futures_rustls::TlsConnector::from(Arc::new(config)));
/// let locks = PgLocks::from_url_tls("postgres://app@db.internal/app?sslmode=require", tls)?;
/// # }
/// # Ok::<(), lockyard::Error>(())
/// ```
pub trait PgTls: Send + Sync + 'static {
    /// Starts TLS on `socket`, a connection to the server `host` (the name
    /// its certificate must carry; for a Unix-domain socket, its
    /// directory), after the server agreed to it.
    ///
    /// # Errors
    ///
    /// Whatever stops the handshake; the acquisition that was connecting
    /// fails with [`ErrorKind::Io`](crate::ErrorKind::Io) and this error
    /// as its source.
    fn connect(&self, host: &str, socket: PgSocket) -> PgTlsConnect;
}

/// A TLS handshake in flight, as [`PgTls::connect`] returns it.
pub type PgTlsConnect = Pin<Box<dyn Future<Output = io::Result<PgTlsStream>> + Send>>;

/// A TLS stream to the server, as a [`PgTls`] connector makes it.
///
/// # Examples
///
/// ```
/// use lockyard::postgres::{PgSocket, PgTlsStream};
///
/// // Any futures-io stream that may move between threads.
/// fn wrap(stream: futures_lite::io::Cursor<Vec<u8>>) -> PgTlsStream {
///     PgTlsStream::new(stream)
/// }
/// # let _ = wrap;
/// ```
pub struct PgTlsStream(Stream);

enum Stream {
    /// A [`PgTls`] connector's stream, in futures-io's traits.
    Futures(Compat<Pin<Box<dyn Duplex>>>),
    /// A tokio-postgres connector's stream, which knows its channel
    /// binding.
    Client(Pin<Box<dyn ClientStream>>),
}

trait ClientStream: tokio_postgres::tls::TlsStream + Send + Unpin {}
impl<T: tokio_postgres::tls::TlsStream + Send + Unpin> ClientStream for T {}

impl PgTlsStream {
    /// Wraps `stream`, a TLS stream over a [`PgSocket`].
    pub fn new(stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static) -> PgTlsStream {
        let boxed: Pin<Box<dyn Duplex>> = Box::pin(stream);
        PgTlsStream(Stream::Futures(boxed.compat()))
    }
}

impl fmt::Debug for PgTlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTlsStream").finish_non_exhaustive()
    }
}

/// A [`PgTlsStream`] as tokio-postgres sees it: the impls of its traits
/// live on this private type, so that lockyard's public types implement
/// none of tokio-postgres's.
struct Session(PgTlsStream);

impl tokio::io::AsyncRead for Session {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.0 .0 {
            Stream::Futures(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => s.as_mut().poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Session {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.0 .0 {
            Stream::Futures(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => s.as_mut().poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 .0 {
            Stream::Futures(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => s.as_mut().poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.0 .0 {
            Stream::Futures(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => s.as_mut().poll_shutdown(cx),
        }
    }
}

impl tokio_postgres::tls::TlsStream for Session {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.0 .0 {
            Stream::Futures(_) => ChannelBinding::none(),
            Stream::Client(s) => s.channel_binding(),
        }
    }
}

/// The escape hatch to tokio-postgres's TLS connectors: wraps any
/// tokio-postgres `MakeTlsConnect` for [`PgSocket`] whose streams and
/// futures may move between threads (tokio-postgres-rustls's
/// `MakeRustlsConnect`, postgres-native-tls's `MakeTlsConnector`) as a
/// [`PgTls`] connector.
///
/// Its bounds name tokio-postgres's traits, so it follows the
/// tokio-postgres release lockyard is built with (0.7): a tokio-postgres
/// release that changes them changes this type, and only this type. Write a
/// [`PgTls`] connector to stay clear of that.
///
/// # Examples
///
/// ```
/// use lockyard::postgres::{PgLocks, TokioPostgresTls};
///
/// # #[cfg(not(target_os = "macos"))] // (rustls's ring, in this example)
/// # {
/// # let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
/// # let config = rustls::ClientConfig::builder_with_provider(provider)
/// #     .with_safe_default_protocol_versions().unwrap()
/// #     .with_root_certificates(rustls::RootCertStore::empty())
/// #     .with_no_client_auth();
/// let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
/// let locks = PgLocks::from_url_tls(
///     "postgres://app@db.internal/app?sslmode=require",
///     TokioPostgresTls(connector),
/// )?;
/// # }
/// # Ok::<(), lockyard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TokioPostgresTls<T>(pub T);

impl<T> PgTls for TokioPostgresTls<T>
where
    T: MakeTlsConnect<
            PgSocket,
            Stream: Send + Unpin + 'static,
            TlsConnect: Send + TlsConnect<PgSocket, Future: Send>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    fn connect(&self, host: &str, socket: PgSocket) -> PgTlsConnect {
        let made = (self.0.clone().make_tls_connect(host)).map_err(|e| io::Error::other(e.into()));
        Box::pin(async move {
            let connect = made?;
            let stream = connect
                .connect(socket)
                .await
                .map_err(|e| io::Error::other(e.into()))?;
            Ok(PgTlsStream(Stream::Client(Box::pin(stream))))
        })
    }
}

/// The protocol's side of a session: reads replies, writes requests; ends
/// when the socket closes.
pub(super) type Protocol = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// A session's start-up, in flight.
type Startup<'a> = Pin<Box<dyn Future<Output = io::Result<(Client, Protocol)>> + Send + 'a>>;

/// How sessions start: in the clear, or through a TLS connector.
pub(crate) trait Tls: Send + Sync {
    /// Starts a session on `socket`, to `host` (the name the certificate
    /// must carry).
    fn start<'a>(&'a self, socket: PgSocket, config: &'a Config, host: &'a str) -> Startup<'a>;

    /// Whether the session's protocol writes straight to the socket, with
    /// no layer of its own that could hold written bytes back: then a send
    /// the socket never refused has reached the kernel.
    fn writes_through(&self) -> bool {
        false
    }
}

/// No TLS: a configuration that asks for it (`sslmode=require`) fails at
/// start-up with the client's own message.
#[derive(Debug)]
pub(crate) struct Clear;

impl Tls for Clear {
    fn writes_through(&self) -> bool {
        true
    }

    fn start<'a>(&'a self, socket: PgSocket, config: &'a Config, _host: &'a str) -> Startup<'a> {
        Box::pin(async move {
            let (client, protocol) = config.connect_raw(socket, NoTls).await.map_err(to_io)?;
            Ok((client, Box::pin(protocol) as Protocol))
        })
    }
}

/// TLS through the user's connector.
pub(crate) struct Connector(pub(crate) Arc<dyn PgTls>);

impl Tls for Connector {
    fn start<'a>(&'a self, socket: PgSocket, config: &'a Config, host: &'a str) -> Startup<'a> {
        Box::pin(async move {
            let tls = Handshake {
                tls: Arc::clone(&self.0),
                host: host.to_owned(),
            };
            let (client, protocol) = config.connect_raw(socket, tls).await.map_err(to_io)?;
            Ok((client, Box::pin(protocol) as Protocol))
        })
    }
}

/// What tokio-postgres calls once the server agreed to TLS.
struct Handshake {
    tls: Arc<dyn PgTls>,
    host: String,
}

impl TlsConnect<PgSocket> for Handshake {
    type Stream = Session;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Session>> + Send>>;

    fn connect(self, socket: PgSocket) -> Self::Future {
        let handshake = self.tls.connect(&self.host, socket);
        Box::pin(async move { handshake.await.map(Session) })
    }
}
