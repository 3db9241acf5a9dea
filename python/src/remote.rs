//! Locks on a server: PostgreSQL (feature `postgres`) and object storage
//! (features `s3`, `gcs`, `azure`), with the same `Lock` and `Guard`.

#[cfg(any(
    feature = "postgres",
    feature = "s3",
    feature = "gcs",
    feature = "azure"
))]
use pyo3::prelude::*;

#[cfg(any(
    feature = "postgres",
    feature = "s3",
    feature = "gcs",
    feature = "azure"
))]
use crate::{
    dir::{listed, Info},
    errors::to_py,
    lock::{seconds, Lock, Target},
};

/// Named locks on a PostgreSQL server: `PgLocks(url).lock("deploy")`.
/// Sessions are shared by every lock of the object; the lock table holds
/// each name's fencing token.
#[cfg(feature = "postgres")]
#[pyclass(module = "lockyard._lockyard", frozen, name = "PgLocks")]
pub(crate) struct PgLocks {
    locks: lockyard::postgres::PgLocks,
}

#[cfg(feature = "postgres")]
#[pymethods]
impl PgLocks {
    /// Locks on the server at `url` (`postgres://user@host/db`), connected
    /// on first use. `lease` (seconds) ends a hold whose process stops
    /// renewing it; `owner` is recorded for `holder()`; `sessions` and
    /// `waiting_sessions` bound the connections a process opens.
    #[new]
    #[pyo3(signature = (url, *, lease = None, owner = None, sessions = None, waiting_sessions = None, table = None))]
    fn new(
        py: Python<'_>,
        url: &str,
        lease: Option<f64>,
        owner: Option<String>,
        sessions: Option<usize>,
        waiting_sessions: Option<usize>,
        table: Option<&str>,
    ) -> PyResult<Self> {
        let mut locks = lockyard::postgres::PgLocks::from_url(url).map_err(|e| to_py(py, &e))?;
        if let Some(table) = table {
            locks = locks.table(table).map_err(|e| to_py(py, &e))?;
        }
        if let Some(lease) = lease {
            locks = locks.lease(seconds("lease", lease)?);
        }
        if let Some(owner) = owner {
            locks = locks.owner(owner);
        }
        if let Some(n) = sessions {
            locks = locks.sessions(n);
        }
        if let Some(n) = waiting_sessions {
            locks = locks.waiting_sessions(n);
        }
        Ok(PgLocks { locks })
    }

    /// The lock called `name`.
    fn lock(&self, py: Python<'_>, name: &str) -> PyResult<Lock> {
        match self.locks.lock_named(name) {
            Ok(lock) => Ok(Lock::new_of(Target::Postgres(lock))),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// Every lock in the table, with its state and holder.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Info>> {
        crate::runtime::usable(py)?;
        let locks = self.locks.clone();
        listed(py, py.detach(move || locks.list()))
    }
}

/// Named locks in an object store: `ObjectLocks("s3://bucket/prefix")`,
/// `gs://bucket/prefix` or `az://account/container/prefix`, each a lease
/// (30 s unless `lease` says otherwise) held in one object per name.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
#[pyclass(module = "lockyard._lockyard", frozen, name = "ObjectLocks")]
pub(crate) struct ObjectLocks {
    locks: lockyard::object::ObjectLocks,
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
#[pymethods]
impl ObjectLocks {
    /// Locks under `url`, with credentials from the environment as the
    /// store's own tools take them.
    #[new]
    #[pyo3(signature = (url, *, lease = None, owner = None))]
    fn new(py: Python<'_>, url: &str, lease: Option<f64>, owner: Option<String>) -> PyResult<Self> {
        let mut locks = lockyard::object::ObjectLocks::from_url(url).map_err(|e| to_py(py, &e))?;
        if let Some(lease) = lease {
            locks = locks.lease(seconds("lease", lease)?);
        }
        if let Some(owner) = owner {
            locks = locks.owner(owner);
        }
        Ok(ObjectLocks { locks })
    }

    /// The lock called `name`.
    fn lock(&self, py: Python<'_>, name: &str) -> PyResult<Lock> {
        match self.locks.lock_named(name) {
            Ok(lock) => Ok(Lock::new_of(Target::Object(lock))),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// Every lock under the prefix, with its state and holder.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Info>> {
        crate::runtime::usable(py)?;
        let locks = self.locks.clone();
        listed(py, py.detach(move || locks.list()))
    }
}
