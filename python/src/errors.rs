//! lockyard's errors as Python exceptions. The classes live in
//! `lockyard/errors.py`, so Python code can subclass and document them;
//! each carries the kind, the lock (path or name) and its holder.

use lockyard::ErrorKind;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::holder::Holder;

/// The exception class for a kind of error, and the kind's name.
fn class_of(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::WouldBlock => ("WouldBlock", "would_block"),
        ErrorKind::TimedOut => ("LockTimeout", "timed_out"),
        ErrorKind::Lost => ("LockLost", "lost"),
        ErrorKind::CreateDir => ("LockyardError", "create_dir"),
        ErrorKind::NotAFile => ("LockyardError", "not_a_file"),
        ErrorKind::Symlink => ("LockyardError", "symlink"),
        ErrorKind::InvalidPath => ("LockyardError", "invalid_path"),
        ErrorKind::InvalidConfig => ("LockyardError", "invalid_config"),
        ErrorKind::Unsupported => ("LockyardError", "unsupported"),
        ErrorKind::ExclusiveOnly => ("LockyardError", "exclusive_only"),
        _ => ("LockyardError", "io"),
    }
}

/// The Python exception for `error`: its message is the Rust error's (it
/// names the lock, the cause and, when busy, the holder).
pub(crate) fn to_py(py: Python<'_>, error: &lockyard::Error) -> PyErr {
    match build(py, error) {
        Ok(exception) => exception,
        // The error classes could not be made (the package is broken):
        // the message still reaches the user.
        Err(_) => PyOSError::new_err(error.to_string()),
    }
}

fn build(py: Python<'_>, error: &lockyard::Error) -> PyResult<PyErr> {
    let (class, kind) = class_of(error.kind());
    let class = py.import("lockyard.errors")?.getattr(class)?;
    let exception = class.call1((error.to_string(),))?;
    exception.setattr("kind", kind)?;
    let lock = match error.path() {
        Some(path) => path.to_string_lossy().into_owned(),
        None => error.name().to_string_lossy().into_owned(),
    };
    exception.setattr("lock", lock)?;
    let holder = match error.holder() {
        Some(record) => Some(Py::new(py, Holder::new(record.clone()))?),
        None => None,
    };
    exception.setattr("holder", holder)?;
    exception.setattr("waited", error.waited().map(|w| w.as_secs_f64()))?;
    // The OS error under it, as OSError has it. Only `errno`: with
    // `strerror` set too, OSError's message would drop lockyard's (which
    // names the lock).
    if let Some(code) = error.io_error().and_then(std::io::Error::raw_os_error) {
        exception.setattr("errno", code)?;
    }
    Ok(PyErr::from_value(exception))
}

/// A `LockyardError` of kind `"unsupported"` with `message`.
pub(crate) fn unsupported(py: Python<'_>, message: &str) -> PyErr {
    let built = (|| -> PyResult<PyErr> {
        let exception = py
            .import("lockyard.errors")?
            .getattr("LockyardError")?
            .call1((message,))?;
        exception.setattr("kind", "unsupported")?;
        Ok(PyErr::from_value(exception))
    })();
    built.unwrap_or_else(|_| PyOSError::new_err(message.to_owned()))
}
