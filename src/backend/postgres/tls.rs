//! TLS through the user's connector: any tokio-postgres `MakeTlsConnect`
//! for lockyard's socket ([`PgSocket`]), such as tokio-postgres-rustls or
//! postgres-native-tls. The connector's types are erased here, so a session
//! has one type whatever the connector.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_postgres::tls::{MakeTlsConnect, NoTls, TlsConnect};
use tokio_postgres::{Client, Config};
use tokio_util::compat::Compat;

use super::conn::{to_io, Duplex};

/// The byte stream a TLS connector wraps: a TCP or Unix-domain socket to
/// the server, driven by async-io. It implements tokio's `AsyncRead` and
/// `AsyncWrite`, which is what tokio-postgres's connectors expect.
///
/// # Examples
///
/// ```
/// use lockyard::postgres::PgSocket;
///
/// // What a TLS connector is written for: tokio's byte-stream traits.
/// fn connectable<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send>() {}
/// connectable::<PgSocket>();
/// ```
pub struct PgSocket(pub(super) Compat<Pin<Box<dyn Duplex>>>);

impl fmt::Debug for PgSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSocket").finish_non_exhaustive()
    }
}

impl tokio::io::AsyncRead for PgSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PgSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
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
}

/// No TLS: a configuration that asks for it (`sslmode=require`) fails at
/// start-up with the client's own message.
#[derive(Debug)]
pub(crate) struct Clear;

impl Tls for Clear {
    fn start<'a>(&'a self, socket: PgSocket, config: &'a Config, _host: &'a str) -> Startup<'a> {
        Box::pin(async move {
            let (client, protocol) = config.connect_raw(socket, NoTls).await.map_err(to_io)?;
            Ok((client, Box::pin(protocol) as Protocol))
        })
    }
}

/// A TLS connector sessions can start through: any tokio-postgres
/// `MakeTlsConnect` for [`PgSocket`] whose streams and futures may move
/// between threads (tokio-postgres-rustls's `MakeRustlsConnect`,
/// postgres-native-tls's `MakeTlsConnector`). Implemented for every such
/// type; there is nothing to implement by hand.
///
/// # Examples
///
/// ```
/// use lockyard::postgres::{PgLocks, PgTlsConnector};
///
/// // A helper that takes whichever connector the application chose.
/// fn locks_over_tls(url: &str, tls: impl PgTlsConnector) -> Result<PgLocks, lockyard::Error> {
///     PgLocks::from_url_tls(&format!("{url}?sslmode=require"), tls)
/// }
/// # #[cfg(not(target_os = "macos"))] // (rustls's ring, in this example)
/// # {
/// # let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
/// # let config = rustls::ClientConfig::builder_with_provider(provider)
/// #     .with_safe_default_protocol_versions().unwrap()
/// #     .with_root_certificates(rustls::RootCertStore::empty())
/// #     .with_no_client_auth();
/// let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
/// let locks = locks_over_tls("postgres://app@db.internal/app", connector)?;
/// # }
/// # Ok::<(), lockyard::Error>(())
/// ```
pub trait PgTlsConnector:
    MakeTlsConnect<
        PgSocket,
        Stream: Send + 'static,
        TlsConnect: Send + TlsConnect<PgSocket, Future: Send>,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> PgTlsConnector for T where
    T: MakeTlsConnect<
            PgSocket,
            Stream: Send + 'static,
            TlsConnect: Send + TlsConnect<PgSocket, Future: Send>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// TLS through the connector `T`.
pub(crate) struct Connector<T>(pub(crate) T);

impl<T: PgTlsConnector> Tls for Connector<T> {
    fn start<'a>(&'a self, socket: PgSocket, config: &'a Config, host: &'a str) -> Startup<'a> {
        Box::pin(async move {
            let tls = self
                .0
                .clone()
                .make_tls_connect(host)
                .map_err(|e| io::Error::other(e.into()))?;
            let (client, protocol) = config.connect_raw(socket, tls).await.map_err(to_io)?;
            Ok((client, Box::pin(protocol) as Protocol))
        })
    }
}
