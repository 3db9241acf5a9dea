//! The client configuration, in lockyard's own types: what a user sets
//! (hosts, port, credentials, database, TLS mode, timeouts) without naming
//! the PostgreSQL client underneath, so that the client's releases are not
//! lockyard's breaking changes.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

use crate::error::Error;

/// How a [`PgLocks`](crate::postgres::PgLocks) connects: host(s), port,
/// user, password, database, TLS mode, connect timeout, application name,
/// server options. Made field by field, or parsed from a connection string
/// (a URL, `postgres://user:password@host:port/dbname?sslmode=require`, or
/// libpq's `key=value` form) with [`str::parse`].
///
/// `Debug` never shows the password.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lockyard::postgres::{PgConfig, PgSslMode};
///
/// let mut config = PgConfig::new();
/// config
///     .host("db.internal")
///     .port(5432)
///     .user("app")
///     .password("secret")
///     .dbname("app")
///     .ssl_mode(PgSslMode::Prefer)
///     .connect_timeout(Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("secret"));
///
/// let parsed: PgConfig = "postgres://app@db.internal/app?sslmode=require".parse()?;
/// assert_eq!(parsed.get_ssl_mode(), PgSslMode::Require);
/// assert!("postgres://[::1".parse::<PgConfig>().is_err());
/// # Ok::<(), lockyard::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct PgConfig {
    inner: Config,
}

/// Whether sessions must, may or must not use TLS (`sslmode=` in a
/// connection string).
///
/// # Examples
///
/// ```
/// use lockyard::postgres::PgSslMode;
///
/// assert_eq!(PgSslMode::default(), PgSslMode::Prefer);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgSslMode {
    /// Never TLS.
    Disable,
    /// TLS if a connector was given and the server offers it; otherwise in
    /// the clear (libpq's default).
    #[default]
    Prefer,
    /// TLS or no session: needs a connector
    /// ([`PgLocks::with_config_tls`](crate::postgres::PgLocks::with_config_tls)).
    Require,
}

impl PgConfig {
    /// An empty configuration: name at least a host.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.host("127.0.0.1").user("app");
    /// ```
    #[must_use]
    pub fn new() -> PgConfig {
        PgConfig::default()
    }

    /// Adds a host: a name or address for TCP, or (on Unix) an absolute
    /// path to the directory of the server's socket. Several hosts are
    /// tried in order until one answers.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.host("db-a.internal").host("db-b.internal");
    /// ```
    pub fn host(&mut self, host: &str) -> &mut PgConfig {
        self.inner.host(host);
        self
    }

    /// Adds a port: one for every host, or one per host in order. 5432
    /// when none is given.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.host("127.0.0.1").port(6432);
    /// ```
    pub fn port(&mut self, port: u16) -> &mut PgConfig {
        self.inner.port(port);
        self
    }

    /// The role to connect as.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.user("app");
    /// ```
    pub fn user(&mut self, user: &str) -> &mut PgConfig {
        self.inner.user(user);
        self
    }

    /// The role's password.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.user("app").password("secret");
    /// ```
    pub fn password(&mut self, password: impl AsRef<[u8]>) -> &mut PgConfig {
        self.inner.password(password);
        self
    }

    /// The database (the user's name when none is given).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.dbname("app");
    /// ```
    pub fn dbname(&mut self, dbname: &str) -> &mut PgConfig {
        self.inner.dbname(dbname);
        self
    }

    /// Whether sessions use TLS ([`PgSslMode::Prefer`] unless set).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::{PgConfig, PgSslMode};
    ///
    /// let mut config = PgConfig::new();
    /// config.ssl_mode(PgSslMode::Disable);
    /// assert_eq!(config.get_ssl_mode(), PgSslMode::Disable);
    /// ```
    pub fn ssl_mode(&mut self, mode: PgSslMode) -> &mut PgConfig {
        self.inner.ssl_mode(match mode {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require => SslMode::Require,
        });
        self
    }

    /// How long to wait for each host to answer a connection attempt (10 s
    /// unless set). A deadline given to an acquisition bounds connecting
    /// too.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.connect_timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut PgConfig {
        self.inner.connect_timeout(timeout);
        self
    }

    /// The `application_name` sessions report (in `pg_stat_activity`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.application_name("billing-worker");
    /// ```
    pub fn application_name(&mut self, name: &str) -> &mut PgConfig {
        self.inner.application_name(name);
        self
    }

    /// Command-line options passed to the server at connection start (as
    /// libpq's `options`, e.g. `-c statement_timeout=0`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = lockyard::postgres::PgConfig::new();
    /// config.options("-c search_path=ops");
    /// ```
    pub fn options(&mut self, options: &str) -> &mut PgConfig {
        self.inner.options(options);
        self
    }

    /// The TLS mode set.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::postgres::{PgConfig, PgSslMode};
    ///
    /// assert_eq!(PgConfig::new().get_ssl_mode(), PgSslMode::Prefer);
    /// ```
    pub fn get_ssl_mode(&self) -> PgSslMode {
        match self.inner.get_ssl_mode() {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Require => PgSslMode::Require,
            // Prefer, and any mode a later client adds: the default.
            _ => PgSslMode::Prefer,
        }
    }

    /// The role set, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let config: lockyard::postgres::PgConfig = "postgres://app@db/app".parse()?;
    /// assert_eq!(config.get_user(), Some("app"));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn get_user(&self) -> Option<&str> {
        self.inner.get_user()
    }

    /// The password set, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let config: lockyard::postgres::PgConfig = "postgres://app:pw@db/app".parse()?;
    /// assert_eq!(config.get_password(), Some(&b"pw"[..]));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn get_password(&self) -> Option<&[u8]> {
        self.inner.get_password()
    }

    /// The database set, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let config: lockyard::postgres::PgConfig = "postgres://app@db/jobs".parse()?;
    /// assert_eq!(config.get_dbname(), Some("jobs"));
    /// # Ok::<(), lockyard::Error>(())
    /// ```
    pub fn get_dbname(&self) -> Option<&str> {
        self.inner.get_dbname()
    }

    pub(crate) fn client(&self) -> &Config {
        &self.inner
    }
}

impl FromStr for PgConfig {
    type Err = Error;

    /// Parses a connection string: a URL (`postgres://` or `postgresql://`)
    /// or libpq's `key=value` form.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig), saying
    /// what does not parse (never repeating a password).
    fn from_str(s: &str) -> Result<PgConfig, Error> {
        s.parse()
            .map(|inner| PgConfig { inner })
            .map_err(|e: tokio_postgres::Error| {
                Error::invalid_config(Path::new("postgres"), e.to_string())
            })
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner;
        f.debug_struct("PgConfig")
            .field("hosts", &c.get_hosts())
            .field("ports", &c.get_ports())
            .field("user", &c.get_user())
            .field("password", &c.get_password().map(|_| "<hidden>"))
            .field("dbname", &c.get_dbname())
            .field("ssl_mode", &self.get_ssl_mode())
            .field("connect_timeout", &c.get_connect_timeout())
            .field("application_name", &c.get_application_name())
            .finish_non_exhaustive()
    }
}
