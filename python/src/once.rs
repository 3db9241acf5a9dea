//! Run-once across processes: the work runs in one process, the others
//! wait for it and find it done.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::errors::to_py;
use crate::runtime::wait_blocking;

/// Why a run-once call ended without a value: lockyard's error, or the
/// work's own exception.
enum Failed {
    Lock(lockyard::Error),
    Work(PyErr),
}

impl From<lockyard::Error> for Failed {
    fn from(e: lockyard::Error) -> Self {
        Failed::Lock(e)
    }
}

/// Runs `work()` once across processes and runs: the first caller runs it
/// (holding the lock `marker + ".lock"`) and writes `marker` with `key`;
/// callers meanwhile wait for it, then find it done, as do later calls with
/// the same key. A new key (a new version, say) runs it again.
///
/// Returns `(True, value)` where the work ran here, `(False, None)` where
/// it was done already. If `work` raises, nothing is recorded and the
/// exception propagates: the next call runs it again.
#[pyfunction]
#[pyo3(signature = (marker, work, *, key = ""))]
pub(crate) fn once(
    py: Python<'_>,
    marker: PathBuf,
    work: Py<PyAny>,
    key: &str,
) -> PyResult<(bool, Py<PyAny>)> {
    // As for lock files: missing parent directories are created.
    if let Some(parent) = marker.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            let message = format!(
                "cannot create the directory {} of the run-once marker {}: {e}",
                parent.display(),
                marker.display()
            );
            // OSError(errno, message) is the errno's own subclass.
            pyo3::exceptions::PyOSError::new_err((e.raw_os_error().unwrap_or(0), message))
        })?;
    }
    let key = key.to_owned();
    let running = async move {
        lockyard::once_keyed_async(&marker, &key, || async move {
            Python::attach(|py| work.call0(py)).map_err(Failed::Work)
        })
        .await
    };
    match wait_blocking(py, running)? {
        Ok(lockyard::OnceOutcome::Ran(value)) => Ok((true, value)),
        Ok(_) => Ok((false, py.None())),
        Err(Failed::Lock(e)) => Err(to_py(py, &e)),
        Err(Failed::Work(e)) => Err(e),
    }
}
