//! Who holds a lock, as Python sees it: the holder record, read-only.

use std::time::{SystemTime, UNIX_EPOCH};

use lockyard::{HolderRecord, LockMode};
use pyo3::prelude::*;

/// Seconds since the Unix epoch, as `time.time()` gives them.
fn epoch_seconds(at: SystemTime) -> f64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// `"exclusive"` or `"shared"`.
pub(crate) fn mode_name(mode: LockMode) -> &'static str {
    if mode == LockMode::Shared {
        "shared"
    } else {
        "exclusive"
    }
}

/// A lock's holder record: who holds it, since when, with which fencing
/// token and lease. Times are seconds since the Unix epoch (as
/// `time.time()`), durations seconds.
#[pyclass(module = "lockyard._lockyard", frozen, name = "Holder")]
pub(crate) struct Holder {
    record: HolderRecord,
}

impl Holder {
    pub(crate) fn new(record: HolderRecord) -> Self {
        Holder { record }
    }
}

#[pymethods]
impl Holder {
    /// The holder's process id.
    #[getter]
    fn pid(&self) -> u32 {
        self.record.pid()
    }

    /// The holder's host name.
    #[getter]
    fn host(&self) -> &str {
        self.record.host()
    }

    /// The owner label the holder gave (`owner=`), if any.
    #[getter]
    fn owner(&self) -> Option<&str> {
        self.record.owner()
    }

    /// The fencing token of the hold.
    #[getter]
    fn token(&self) -> u64 {
        self.record.token()
    }

    /// The kind of lock: `"strict"` (an OS lock), `"soft"`, `"lease"`,
    /// `"postgres"` or `"object"`.
    #[getter]
    fn kind(&self) -> String {
        self.record.kind().to_string()
    }

    /// `"exclusive"` or `"shared"`.
    #[getter]
    fn mode(&self) -> &'static str {
        mode_name(self.record.mode())
    }

    /// When it was taken.
    #[getter]
    fn acquired_at(&self) -> f64 {
        epoch_seconds(self.record.acquired_at())
    }

    /// When its lease was last renewed (when it was taken, without one).
    #[getter]
    fn renewed_at(&self) -> f64 {
        epoch_seconds(self.record.renewed_at())
    }

    /// The lease's length in seconds, or None.
    #[getter]
    fn ttl(&self) -> Option<f64> {
        self.record.ttl().map(|t| t.as_secs_f64())
    }

    /// When the lease lapses unless renewed, or None.
    #[getter]
    fn expires_at(&self) -> Option<f64> {
        self.record.expires_at().map(epoch_seconds)
    }

    /// How long ago it was taken, in seconds.
    #[getter]
    fn age(&self) -> f64 {
        self.record.age().as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "Holder(pid={}, host={:?}, owner={:?}, token={}, kind={:?}, mode={:?})",
            self.record.pid(),
            self.record.host(),
            self.record.owner(),
            self.record.token(),
            self.record.kind().to_string(),
            mode_name(self.record.mode()),
        )
    }

    fn __str__(&self) -> String {
        self.record.to_string()
    }
}
