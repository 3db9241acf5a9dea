//! `Lock` and `Guard`: one lock (a file, a name in a lock directory, a
//! PostgreSQL or object-storage name) and one hold of it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockyard::{
    Acquire, Error, ErrorKind, FileLock, HolderRecord, LockGuard, LockMode, LockOptions, Wait,
};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::holder::{mode_name, Holder};
use crate::runtime::{executor, usable, wait_blocking};

/// What a `Lock` locks.
#[derive(Clone)]
pub(crate) enum Target {
    File(FileLock),
    #[cfg(feature = "postgres")]
    Postgres(lockyard::postgres::PgLock),
    #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
    Object(lockyard::object::ObjectLock),
}

impl Target {
    fn acquire(&self, mode: LockMode, wait: Wait) -> Acquire {
        match self {
            Target::File(lock) => lock.acquire(mode, wait),
            #[cfg(feature = "postgres")]
            Target::Postgres(lock) => lock.acquire(mode, wait),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(lock) => lock.acquire(mode, wait),
        }
    }

    fn holder(&self) -> Result<Option<HolderRecord>, Error> {
        match self {
            Target::File(lock) => lock.holder(),
            #[cfg(feature = "postgres")]
            Target::Postgres(lock) => lock.holder(),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(lock) => lock.holder(),
        }
    }

    /// The lock as a user would name it: its path, or its address and name.
    fn describe(&self) -> String {
        match self {
            Target::File(lock) => lock.path().display().to_string(),
            #[cfg(feature = "postgres")]
            Target::Postgres(lock) => format!("{}#{}", lock.address(), lock.name()),
            #[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
            Target::Object(lock) => format!("{}#{}", lock.address(), lock.name()),
        }
    }
}

/// A timeout in seconds as a wait: None waits for ever, 0 tries once.
pub(crate) fn wait_of(timeout: Option<f64>) -> PyResult<Wait> {
    match timeout {
        None => Ok(Wait::Forever),
        Some(0.0) => Ok(Wait::TryOnce),
        Some(t) if t > 0.0 && t.is_finite() => Ok(Wait::For(Duration::from_secs_f64(t))),
        Some(t) => Err(PyValueError::new_err(format!(
            "timeout must be None (wait for ever), 0 (try once) or a positive number of seconds, not {t}"
        ))),
    }
}

/// A positive, finite number of seconds as a duration.
pub(crate) fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    if value > 0.0 && value.is_finite() {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, not {value}"
        )))
    }
}

fn mode_of(shared: bool) -> LockMode {
    if shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

/// File-lock options from the keyword arguments `Lock` and `LockDir` share.
pub(crate) fn file_options(
    soft: bool,
    lease: Option<f64>,
    owner: Option<String>,
    mode: Option<u32>,
) -> PyResult<LockOptions> {
    // As filelock: missing parent directories are created.
    let mut options = LockOptions::new().create_parent(true);
    if soft {
        options = options.soft();
    }
    if let Some(lease) = lease {
        options = options.lease(seconds("lease", lease)?);
    }
    if let Some(owner) = owner {
        options = options.owner(owner);
    }
    if let Some(mode) = mode {
        options = options.file_mode(mode);
    }
    Ok(options)
}

/// A lock: `Lock(path)` for a lock file; `LockDir.lock(name)`,
/// `PgLocks.lock(name)` and `ObjectLocks.lock(name)` give the others.
///
/// `acquire()` waits (woken by the release, never by polling) and returns a
/// `Guard`, a context manager that releases on exit.
#[pyclass(module = "lockyard._lockyard", frozen, name = "Lock")]
pub(crate) struct Lock {
    target: Target,
}

impl Lock {
    pub(crate) fn new_of(target: Target) -> Self {
        Lock { target }
    }
}

#[pymethods]
impl Lock {
    /// A lock on the file at `path`: an OS lock (`flock`/`LockFileEx`), or
    /// with `soft=True` a lock file of its own for filesystems whose OS
    /// locks are missing or unreliable. `lease` (seconds) makes it a lease
    /// that lapses unless renewed; `owner` is recorded for `holder()`;
    /// `mode` is the lock file's permission bits when it is created.
    #[new]
    #[pyo3(signature = (path, *, soft = false, lease = None, owner = None, mode = None))]
    fn new(
        path: PathBuf,
        soft: bool,
        lease: Option<f64>,
        owner: Option<String>,
        mode: Option<u32>,
    ) -> PyResult<Self> {
        let options = file_options(soft, lease, owner, mode)?;
        Ok(Lock::new_of(Target::File(FileLock::with_options(
            path, options,
        ))))
    }

    /// Takes the lock, waiting up to `timeout` seconds (None: for ever; 0:
    /// try once). Other threads run meanwhile; Ctrl-C ends the wait with
    /// nothing held.
    ///
    /// Raises `WouldBlock` (timeout 0) or `LockTimeout` naming the holder
    /// when it is busy, `LockyardError` on other failures.
    #[pyo3(signature = (timeout = None, *, shared = false))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>, shared: bool) -> PyResult<Guard> {
        let acquiring = self.target.acquire(mode_of(shared), wait_of(timeout)?);
        let label = self.target.describe();
        match wait_blocking(py, acquiring)? {
            Ok(guard) => Ok(Guard::new(guard, label)),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// `acquire`, with None instead of `WouldBlock` or `LockTimeout`: for
    /// callers with exceptions of their own (`lockyard.filelock`).
    #[pyo3(signature = (timeout, shared = false))]
    fn _take(&self, py: Python<'_>, timeout: Option<f64>, shared: bool) -> PyResult<Option<Guard>> {
        let acquiring = self.target.acquire(mode_of(shared), wait_of(timeout)?);
        match wait_blocking(py, acquiring)? {
            Ok(guard) => Ok(Some(Guard::new(guard, self.target.describe()))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// Takes the lock if it is free; raises `WouldBlock` (naming the holder)
    /// if not.
    #[pyo3(signature = (*, shared = false))]
    fn try_acquire(&self, py: Python<'_>, shared: bool) -> PyResult<Guard> {
        self.acquire(py, Some(0.0), shared)
    }

    /// `await lock.acquire_async(timeout)`: `acquire` for asyncio. The
    /// coroutine is suspended while it waits, the loop keeps running, and
    /// the release wakes it (no polling). Cancelling it leaves nothing held.
    #[pyo3(signature = (timeout = None, *, shared = false))]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<f64>,
        shared: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        wait_of(timeout)?;
        let py = slf.py();
        py.import("lockyard._aio")?
            .getattr("acquire")?
            .call1((slf, timeout, shared))
    }

    /// Starts an acquisition on lockyard's async thread. When it ends, a
    /// byte arrives on `Pending.fileno()`, which the event loop watches:
    /// lockyard's thread never calls into Python, so it can never be
    /// caught holding the interpreter while it shuts down. Used by
    /// `acquire_async`.
    #[pyo3(signature = (timeout, shared))]
    fn _start(&self, py: Python<'_>, timeout: Option<f64>, shared: bool) -> PyResult<Pending> {
        usable(py)?;
        let acquiring = self.target.acquire(mode_of(shared), wait_of(timeout)?);
        let (ended, mut tell) = std::os::unix::net::UnixStream::pair()?;
        let slot: Slot = Arc::default();
        let filled = Arc::clone(&slot);
        let task = executor()?.spawn(async move {
            let outcome = acquiring.await;
            *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            // Fails only when Python gave up and closed its end: then
            // nobody is waiting for the byte.
            let _ = std::io::Write::write_all(&mut tell, &[1]);
        });
        Ok(Pending {
            task: Mutex::new(Some(task)),
            slot,
            ended,
            label: self.target.describe(),
        })
    }

    /// The current holder's record (who, since when, token, lease), or None
    /// when it is free or its holder wrote none (shared holds).
    fn holder(&self, py: Python<'_>) -> PyResult<Option<Holder>> {
        usable(py)?;
        let target = self.target.clone();
        match py.detach(move || target.holder()) {
            Ok(record) => Ok(record.map(Holder::new)),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// The lock file's path (None for PostgreSQL and object-storage locks).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        match &self.target {
            Target::File(lock) => Some(lock.path().to_path_buf()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!("Lock({:?})", self.target.describe())
    }
}

/// Where an async acquisition leaves its outcome until Python takes it.
type Slot = Arc<Mutex<Option<Result<LockGuard, Error>>>>;

/// An async acquisition in flight.
#[pyclass(module = "lockyard._lockyard", frozen)]
pub(crate) struct Pending {
    task: Mutex<Option<async_executor::Task<()>>>,
    slot: Slot,
    /// Readable once the acquisition ended.
    ended: std::os::unix::net::UnixStream,
    label: String,
}

#[pymethods]
impl Pending {
    /// The descriptor that becomes readable when the acquisition ends.
    fn fileno(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.ended)
    }

    /// The guard the acquisition got, or its error raised.
    fn result(&self, py: Python<'_>) -> PyResult<Guard> {
        let outcome = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match outcome {
            Some(Ok(guard)) => Ok(Guard::new(guard, self.label.clone())),
            Some(Err(e)) => Err(to_py(py, &e)),
            None => Err(PyRuntimeError::new_err("the acquisition has not ended")),
        }
    }

    /// Gives up: the acquisition is dropped (cancel-safe), and a lock it
    /// got meanwhile is released.
    fn cancel(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(task);
        let outcome = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(outcome);
    }
}

/// A hold's state: the guard (shared with a keep-alive task) and how its
/// lease renewals ended, if they did.
struct Held {
    guard: Option<Arc<LockGuard>>,
    keep_alive: Option<async_executor::Task<()>>,
    /// The process that took it: a child forked while it was held
    /// inherits a copy that must not release the parent's lock.
    pid: u32,
}

/// One hold of a lock: `with lock.acquire() as guard:` releases on exit.
///
/// In a process forked while it was held, the copy reports
/// `is_held == False` and releasing it does nothing: the lock stays the
/// parent's.
#[pyclass(module = "lockyard._lockyard", frozen)]
pub(crate) struct Guard {
    held: Mutex<Held>,
    lost: Arc<Mutex<Option<Error>>>,
    label: String,
    token: Option<u64>,
    mode: LockMode,
    record: Option<HolderRecord>,
}

impl Guard {
    fn new(guard: LockGuard, label: String) -> Self {
        Guard {
            token: guard.token(),
            mode: guard.mode(),
            record: guard.record().cloned(),
            held: Mutex::new(Held {
                guard: Some(Arc::new(guard)),
                keep_alive: None,
                pid: std::process::id(),
            }),
            lost: Arc::default(),
            label,
        }
    }

    /// The guard, when this process holds it.
    fn current(&self) -> Option<Arc<LockGuard>> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.pid == std::process::id() {
            held.guard.clone()
        } else {
            None
        }
    }

    fn not_held(&self) -> PyErr {
        PyRuntimeError::new_err(format!("the hold of {} was released", self.label))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(|e| e.into_inner());
        if held.pid != std::process::id() {
            // A forked child's copy: the lock is the parent's. Forgetting
            // it leaves the OS lock and the record alone; the copy's file
            // descriptor closes when the child exits.
            if let Some(task) = held.keep_alive.take() {
                std::mem::forget(task);
            }
            if let Some(guard) = held.guard.take() {
                std::mem::forget(guard);
            }
        }
    }
}

#[pymethods]
impl Guard {
    /// The fencing token of this hold (None for shared holds): pass it to
    /// what the lock protects, which refuses tokens lower than the highest
    /// it has seen.
    #[getter]
    fn token(&self) -> Option<u64> {
        self.token
    }

    /// `"exclusive"` or `"shared"`.
    #[getter]
    fn mode(&self) -> &'static str {
        mode_name(self.mode)
    }

    /// The record this hold wrote (None for shared holds).
    #[getter]
    fn holder(&self) -> Option<Holder> {
        self.record.clone().map(Holder::new)
    }

    /// Whether this guard was not yet released (in this process).
    #[getter]
    fn is_held(&self) -> bool {
        self.current().is_some()
    }

    /// Renews the lease now. Raises `LockLost` if it lapsed and another
    /// process took over.
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        usable(py)?;
        let guard = self.current().ok_or_else(|| self.not_held())?;
        py.detach(move || guard.refresh())
            .map_err(|e| to_py(py, &e))
    }

    /// Whether the lock is still this guard's: always true for OS locks;
    /// for soft locks and leases, false once another process took over.
    fn still_held(&self, py: Python<'_>) -> PyResult<bool> {
        usable(py)?;
        let guard = self.current().ok_or_else(|| self.not_held())?;
        py.detach(move || guard.still_held())
            .map_err(|e| to_py(py, &e))
    }

    /// Renews the lease in the background (every third of its length, on
    /// lockyard's thread) until the guard is released. `check()` raises
    /// `LockLost` once a renewal failed. Nothing to do without a lease.
    fn keep_alive(&self, py: Python<'_>) -> PyResult<()> {
        usable(py)?;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.pid != std::process::id() {
            return Err(self.not_held());
        }
        let guard = held.guard.clone().ok_or_else(|| self.not_held())?;
        if held.keep_alive.is_none() {
            let lost = Arc::clone(&self.lost);
            held.keep_alive = Some(executor()?.spawn(async move {
                let Err(e) = guard.keep_alive().await;
                *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }));
        }
        Ok(())
    }

    /// Raises `LockLost` (or the renewal's error) if background renewals
    /// (`keep_alive()`) failed: the lock may be another's now, and work
    /// that depends on it should stop.
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        match &*self.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(to_py(py, e)),
            None => Ok(()),
        }
    }

    /// Releases the lock (nothing if released already). Raises `LockLost`
    /// if a soft lock or lease was taken over meanwhile.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let (guard, keep_alive) = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if held.pid != std::process::id() {
                return Ok(());
            }
            (held.guard.take(), held.keep_alive.take())
        };
        let Some(guard) = guard else {
            return Ok(());
        };
        let released = py.detach(move || {
            if let Some(task) = keep_alive {
                // Waits until the task's future, and its clone of the
                // guard, are gone.
                futures_lite::future::block_on(task.cancel());
            }
            match Arc::try_unwrap(guard) {
                Ok(guard) => guard.unlock(),
                // Not reachable: the task was the only other owner. The
                // last clone to go releases it.
                Err(_) => Ok(()),
            }
        });
        released.map_err(|e| to_py(py, &e))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "Guard({:?}, mode={:?}, token={:?}, held={})",
            self.label,
            mode_name(self.mode),
            self.token,
            self.is_held()
        )
    }
}
