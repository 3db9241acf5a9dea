//! The native half of the `lockyard` Python package: one lock file,
//! taken and released, with the interpreter free while it waits.
//!
//! The Python half (`lockyard/filelock.py`) builds filelock's API on top:
//! reentrancy counts, timeouts as filelock spells them, context managers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_lite::FutureExt;
use lockyard::{ErrorKind, FileLock, LockGuard, LockOptions, Wait};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};

/// How often a blocking wait looks for a pending signal (Ctrl-C): the wait
/// itself is woken by the lock's release, not by this.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The executor that drives async acquisitions: one thread, started on
/// first use, which waits in async-io's reactor (no polling) and calls
/// back into Python only when an acquisition ends.
fn executor() -> &'static async_executor::Executor<'static> {
    static EXECUTOR: OnceLock<&'static async_executor::Executor<'static>> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let ex: &'static async_executor::Executor<'static> =
            Box::leak(Box::new(async_executor::Executor::new()));
        std::thread::Builder::new()
            .name("lockyard-async".into())
            .spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())))
            .map(drop)
            .unwrap_or_else(|e| panic!("cannot start lockyard's async thread: {e}"));
        ex
    })
}

/// Where an async acquisition leaves its guard until Python adopts it.
type Slot = Arc<Mutex<Option<LockGuard>>>;

/// An async acquisition in flight, as Python holds it.
#[pyclass(module = "lockyard._lockyard")]
struct Pending {
    task: Mutex<Option<async_executor::Task<()>>>,
    slot: Slot,
}

#[pymethods]
impl Pending {
    /// Gives up: the acquisition is dropped (cancel-safe), and a lock it
    /// took already is released.
    fn cancel(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(task);
        let guard = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(guard);
    }
}

/// One lock file, held by at most one guard of this object at a time.
#[pyclass(module = "lockyard._lockyard")]
struct RawLock {
    lock: FileLock,
    guard: Option<LockGuard>,
}

/// How a wait ended.
enum Ended {
    Got(LockGuard),
    Failed(lockyard::Error),
    Interrupted(PyErr),
}

#[pymethods]
impl RawLock {
    /// A lock on `path`: an OS lock, or with `soft` a sidecar lock file
    /// (for filesystems without working OS locks). `mode` is the lock
    /// file's permission bits when it is created.
    #[new]
    #[pyo3(signature = (path, soft = false, mode = None))]
    fn new(path: PathBuf, soft: bool, mode: Option<u32>) -> Self {
        // As filelock: missing parent directories are created.
        let mut options = LockOptions::new().create_parent(true);
        if soft {
            options = options.soft();
        }
        if let Some(mode) = mode {
            options = options.file_mode(mode);
        }
        RawLock {
            lock: FileLock::with_options(path, options),
            guard: None,
        }
    }

    /// Takes the lock: `timeout` None waits for ever, 0 tries once, else
    /// waits that many seconds. True when taken, False when the time ran
    /// out. The interpreter runs other threads meanwhile; a signal
    /// (KeyboardInterrupt) ends the wait with nothing held.
    #[pyo3(signature = (timeout = None))]
    fn acquire(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.guard.is_some() {
            return Err(PyRuntimeError::new_err("this lock object already holds the lock"));
        }
        let wait = match timeout {
            None => Wait::Forever,
            Some(t) if t <= 0.0 => Wait::TryOnce,
            Some(t) => Wait::For(Duration::from_secs_f64(t)),
        };
        let lock = self.lock.clone();
        let ended = py.detach(move || {
            let acquire = async { lock.acquire(lockyard::LockMode::Exclusive, wait).await };
            let acquired = async {
                match acquire.await {
                    Ok(guard) => Ended::Got(guard),
                    Err(e) => Ended::Failed(e),
                }
            };
            let signals = async {
                loop {
                    async_io::Timer::after(SIGNAL_CHECK).await;
                    if let Err(e) = Python::attach(|py| py.check_signals()) {
                        return Ended::Interrupted(e);
                    }
                }
            };
            // The acquisition first, so one that completed is never
            // dropped for a signal that came with it.
            async_io::block_on(acquired.or(signals))
        });
        match ended {
            Ended::Got(guard) => {
                self.guard = Some(guard);
                Ok(true)
            }
            Ended::Failed(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(false)
            }
            Ended::Failed(e) => Err(PyOSError::new_err(e.to_string())),
            Ended::Interrupted(e) => Err(e),
        }
    }

    /// Starts taking the lock without blocking: `done(result)` is called
    /// from lockyard's async thread when it ends, with True (taken: call
    /// `adopt`), False (the time ran out) or an error message (str).
    #[pyo3(signature = (timeout, done))]
    fn acquire_async(&self, timeout: Option<f64>, done: Py<PyAny>) -> PyResult<Pending> {
        if self.guard.is_some() {
            return Err(PyRuntimeError::new_err("this lock object already holds the lock"));
        }
        let wait = match timeout {
            None => Wait::Forever,
            Some(t) if t <= 0.0 => Wait::TryOnce,
            Some(t) => Wait::For(Duration::from_secs_f64(t)),
        };
        let lock = self.lock.clone();
        let slot: Slot = Arc::default();
        let filled = Arc::clone(&slot);
        let task = executor().spawn(async move {
            let outcome = lock.acquire(lockyard::LockMode::Exclusive, wait).await;
            Python::attach(|py| {
                let said: Py<PyAny> = match outcome {
                    Ok(guard) => {
                        *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
                        PyBool::new(py, true).to_owned().into_any().unbind()
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        PyBool::new(py, false).to_owned().into_any().unbind()
                    }
                    Err(e) => PyString::new(py, &e.to_string()).into_any().unbind(),
                };
                if let Err(e) = done.call1(py, (said,)) {
                    e.write_unraisable(py, None);
                }
            });
        });
        Ok(Pending {
            task: Mutex::new(Some(task)),
            slot,
        })
    }

    /// Takes the lock an async acquisition got; False if there is none
    /// (it was cancelled).
    fn adopt(&mut self, pending: &Pending) -> bool {
        let guard = pending.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match guard {
            Some(guard) => {
                self.guard = Some(guard);
                true
            }
            None => false,
        }
    }

    /// Releases the lock (nothing if not held).
    fn release(&mut self) -> PyResult<()> {
        match self.guard.take() {
            Some(guard) => guard
                .unlock()
                .map_err(|e| PyOSError::new_err(e.to_string())),
            None => Ok(()),
        }
    }

    /// Whether this object holds the lock.
    #[getter]
    fn is_locked(&self) -> bool {
        self.guard.is_some()
    }

    /// The fencing token of the hold (None when not held).
    #[getter]
    fn token(&self) -> Option<u64> {
        self.guard.as_ref().and_then(LockGuard::token)
    }

    /// The lock file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.lock.path().to_path_buf()
    }
}

#[pymodule]
fn _lockyard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawLock>()?;
    Ok(())
}
