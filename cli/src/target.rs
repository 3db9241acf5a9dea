//! What a lock argument names: a lock file, a lock in PostgreSQL written
//! as a connection URL with the lock's name after `#`
//! (`postgres://app@db.internal/app#jobs/nightly`), or a lock in object
//! storage (`s3://bucket/prefix#jobs/nightly`): the forms lockyard's own
//! errors use.

use std::path::Path;
use std::time::Duration;

use lockyard::{Acquire, FileLock, LockMode, LockOptions, Wait};

use crate::holder;
#[cfg(any(
    feature = "postgres",
    feature = "s3",
    feature = "gcs",
    feature = "azure"
))]
use crate::report::chain;

/// A lock the command takes.
#[derive(Debug)]
pub enum Target {
    File(FileLock),
    #[cfg(feature = "postgres")]
    Postgres(lockyard::postgres::PgLock),
    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
    Object(lockyard::object::ObjectLock),
}

impl Target {
    /// The acquisition future, as for either backend.
    pub fn acquire(&self, mode: LockMode, wait: Wait) -> Acquire {
        match self {
            Target::File(f) => f.acquire(mode, wait),
            #[cfg(feature = "postgres")]
            Target::Postgres(p) => p.acquire(mode, wait),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(o) => o.acquire(mode, wait),
        }
    }

    /// What messages call it: the path, or `postgres://host:port/db#name`.
    pub fn label(&self) -> &Path {
        match self {
            Target::File(f) => f.path(),
            #[cfg(feature = "postgres")]
            Target::Postgres(p) => Path::new(p.address()),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(o) => Path::new(o.address()),
        }
    }

    /// The best phrase we have for whoever holds it now.
    pub fn holder_now(&self) -> Option<String> {
        match self {
            Target::File(f) => holder::now(f),
            #[cfg(feature = "postgres")]
            Target::Postgres(p) => p.holder().ok().flatten().map(|r| holder::describe(&r)),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(o) => o.holder().ok().flatten().map(|r| holder::describe(&r)),
        }
    }

    /// The lease a `run` renews while its command runs: the one asked
    /// for, and for an object-storage lock (always a lease) its default.
    pub fn lease(&self, asked: Option<Duration>) -> Option<Duration> {
        match self {
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(_) => asked.or(Some(lockyard::object::DEFAULT_LEASE)),
            _ => asked,
        }
    }
}

/// A lock argument that is an object-storage URL (`s3://`, `gs://`,
/// `az://`): the namespace part and the lock name (after the first `#`;
/// absent for `status` of a whole prefix).
pub fn object_address(arg: &Path) -> Option<(&str, Option<&str>)> {
    let text = arg.to_str()?;
    if !["s3://", "gs://", "az://"]
        .iter()
        .any(|s| text.starts_with(s))
    {
        return None;
    }
    Some(match text.split_once('#') {
        Some((url, name)) => (url, Some(name)),
        None => (text, None),
    })
}

/// A lock argument that is a PostgreSQL URL: the connection part and the
/// lock name (after the first `#`; absent for `status` of a whole table).
#[derive(Debug, PartialEq, Eq)]
pub struct PgAddress<'a> {
    pub url: &'a str,
    pub name: Option<&'a str>,
}

/// The PostgreSQL address in `arg`, if it is one: it starts with
/// `postgres://` or `postgresql://` (a file of that name is `./postgres:/...`).
pub fn pg_address(arg: &Path) -> Option<PgAddress<'_>> {
    let text = arg.to_str()?;
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return None;
    }
    Some(match text.split_once('#') {
        Some((url, name)) => PgAddress {
            url,
            name: Some(name),
        },
        None => PgAddress {
            url: text,
            name: None,
        },
    })
}

/// How a PostgreSQL or object-storage lock is to be taken, from the
/// command line.
#[derive(Debug, Default)]
#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "s3",
        feature = "gcs",
        feature = "azure"
    )),
    allow(dead_code)
)]
pub struct PgSettings {
    pub table: Option<String>,
    pub lease: Option<Duration>,
    pub owner: Option<String>,
}

/// Opens the lock `arg` names: a PostgreSQL lock for a `postgres://` URL,
/// else a file lock with `options`. Errors are messages for people.
pub fn open(arg: &Path, options: LockOptions, pg: &PgSettings) -> Result<Target, String> {
    if let Some((url, name)) = object_address(arg) {
        return open_object(url, name, pg);
    }
    match pg_address(arg) {
        None => Ok(Target::File(FileLock::with_options(arg, options))),
        Some(address) => open_pg(&address, pg),
    }
}

/// The locks under an object-storage URL, with the lease and owner asked
/// for.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
pub fn object_locks(
    url: &str,
    settings: &PgSettings,
) -> Result<lockyard::object::ObjectLocks, String> {
    let mut locks = lockyard::object::ObjectLocks::from_url(url).map_err(|e| chain(&e))?;
    if let Some(ttl) = settings.lease {
        locks = locks.lease(ttl);
    }
    if let Some(owner) = &settings.owner {
        locks = locks.owner(owner.clone());
    }
    Ok(locks)
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn open_object(url: &str, name: Option<&str>, settings: &PgSettings) -> Result<Target, String> {
    let Some(name) = name else {
        return Err(format!(
            "{url}: name the lock after `#` (s3://bucket/prefix#name)"
        ));
    };
    object_locks(url, settings)?
        .lock_named(name)
        .map(Target::Object)
        .map_err(|e| chain(&e))
}

#[cfg(not(any(feature = "s3", feature = "gcs", feature = "azure")))]
fn open_object(url: &str, _name: Option<&str>, _settings: &PgSettings) -> Result<Target, String> {
    Err(format!(
        "{url}: this lockyard was built without object storage support (feature `s3`)"
    ))
}

#[cfg(feature = "postgres")]
fn open_pg(address: &PgAddress<'_>, pg: &PgSettings) -> Result<Target, String> {
    let Some(name) = address.name else {
        return Err(format!(
            "{}: name the lock after `#` (postgres://user@host/db#name)",
            without_credentials(address.url)
        ));
    };
    let locks = pg_locks(address.url, pg)?;
    locks
        .lock_named(name)
        .map(Target::Postgres)
        .map_err(|e| chain(&e))
}

#[cfg(not(feature = "postgres"))]
fn open_pg(address: &PgAddress<'_>, _pg: &PgSettings) -> Result<Target, String> {
    Err(format!(
        "{}: this lockyard was built without PostgreSQL support (feature `postgres`)",
        without_credentials(address.url)
    ))
}

/// The TLS connector for `sslmode=require`: rustls, trusting the CA
/// certificates in the file `PGSSLROOTCERT` names (as psql's
/// `sslrootcert`), else the system's. Unlike libpq's `require`, the
/// server's certificate and name are always checked.
#[cfg(feature = "postgres")]
fn tls_connector(
    url: &str,
) -> Result<lockyard::postgres::TokioPostgresTls<tokio_postgres_rustls::MakeRustlsConnect>, String>
{
    use rustls::pki_types::{pem::PemObject, CertificateDer};

    let shown = without_credentials(url);
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PGSSLROOTCERT") {
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(&file).map_err(|e| {
                format!(
                    "{shown}: cannot read PGSSLROOTCERT {}: {e}",
                    file.to_string_lossy()
                )
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    format!("{shown}: PGSSLROOTCERT {}: {e}", file.to_string_lossy())
                })?;
                roots.add(cert).map_err(|e| {
                    format!("{shown}: PGSSLROOTCERT {}: {e}", file.to_string_lossy())
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system certificate rustls cannot use is skipped.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "{shown}: sslmode=require, but no CA certificate to check the server with \
             (set PGSSLROOTCERT to a PEM file)"
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{shown}: TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(lockyard::postgres::TokioPostgresTls(
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
    ))
}

/// `url` for messages: the user and password (before `@` in the
/// authority) left out, as lockyard's own errors do.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The locks of the server and table `url` and `pg` name. As psql does,
/// a URL without a user or password takes them from `PGUSER` (else
/// `USER`) and `PGPASSWORD`, so no password needs to be on the command
/// line.
#[cfg(feature = "postgres")]
pub fn pg_locks(url: &str, pg: &PgSettings) -> Result<lockyard::postgres::PgLocks, String> {
    use lockyard::postgres::{PgConfig, PgLocks};

    let mut config: PgConfig = url
        .parse()
        .map_err(|e| format!("{}: not a PostgreSQL URL: {e}", without_credentials(url)))?;
    if config.get_user().is_none() {
        if let Some(user) = std::env::var_os("PGUSER").or_else(|| std::env::var_os("USER")) {
            config.user(user.to_string_lossy().as_ref());
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = std::env::var_os("PGPASSWORD") {
            config.password(password.to_string_lossy().as_bytes());
        }
    }
    let mut locks = if config.get_ssl_mode() == lockyard::postgres::PgSslMode::Require {
        PgLocks::with_config_tls(config, tls_connector(url)?)
    } else {
        PgLocks::with_config(config).map_err(|e| chain(&e))?
    };
    if let Some(table) = &pg.table {
        locks = locks.table(table).map_err(|e| chain(&e))?;
    }
    if let Some(ttl) = pg.lease {
        locks = locks.lease(ttl);
    }
    if let Some(owner) = &pg.owner {
        locks = locks.owner(owner.clone());
    }
    Ok(locks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert_eq!(pg_address(Path::new("data/state.lock")), None);
        assert_eq!(pg_address(Path::new("./postgres://x#y")), None);
        assert_eq!(
            pg_address(Path::new("postgres://app@db/app#jobs/a#b")),
            Some(PgAddress {
                url: "postgres://app@db/app",
                name: Some("jobs/a#b")
            })
        );
        assert_eq!(
            pg_address(Path::new("postgresql://db/app")),
            Some(PgAddress {
                url: "postgresql://db/app",
                name: None
            })
        );
    }

    #[test]
    fn messages_leave_out_credentials() {
        for (url, shown) in [
            (
                "postgres://app:s3cr@t@db:5432/app",
                "postgres://db:5432/app",
            ),
            ("postgres://app@db/app?x=@", "postgres://db/app?x=@"),
            ("postgres://db/app", "postgres://db/app"),
            ("postgres://u:p@db", "postgres://db"),
        ] {
            assert_eq!(without_credentials(url), shown);
        }
    }
}
