//! `LockDir`: named locks in one directory, and what `list()` reports.

use std::path::PathBuf;

use lockyard::{LockInfo, LockState};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::holder::Holder;
use crate::lock::{file_options, Lock, Target};
use crate::runtime::usable;

/// A lock as `list()` saw it: its name, where it is, its state and holder.
#[pyclass(module = "lockyard._lockyard", frozen, name = "LockInfo")]
pub(crate) struct Info {
    info: LockInfo,
}

impl Info {
    pub(crate) fn new(info: LockInfo) -> Self {
        Info { info }
    }
}

#[pymethods]
impl Info {
    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.info.name()
    }

    /// The lock file's path (its address for locks on a server).
    #[getter]
    fn path(&self) -> PathBuf {
        self.info.path().to_path_buf()
    }

    /// `"free"`, `"held shared"`, `"held exclusive"`, `"stale"` or
    /// `"not a lockyard lock file"`.
    #[getter]
    fn state(&self) -> String {
        self.info.state().to_string()
    }

    /// Whether someone holds it.
    #[getter]
    fn is_held(&self) -> bool {
        matches!(
            self.info.state(),
            LockState::HeldShared | LockState::HeldExclusive
        )
    }

    /// The holder's record, if it wrote one.
    #[getter]
    fn holder(&self) -> Option<Holder> {
        self.info.holder().cloned().map(Holder::new)
    }

    fn __repr__(&self) -> String {
        format!(
            "LockInfo(name={:?}, state={:?})",
            self.info.name(),
            self.info.state().to_string()
        )
    }
}

/// `list()`'s answer, as Python sees it.
pub(crate) fn listed(
    py: Python<'_>,
    infos: Result<Vec<LockInfo>, lockyard::Error>,
) -> PyResult<Vec<Info>> {
    match infos {
        Ok(infos) => Ok(infos.into_iter().map(Info::new).collect()),
        Err(e) => Err(to_py(py, &e)),
    }
}

/// A directory of named locks: `LockDir(dir).lock("deploy")` is the lock
/// file `dir/deploy.lock`, whatever characters the name holds (they are
/// encoded into a safe file name).
#[pyclass(module = "lockyard._lockyard", frozen, name = "LockDir")]
pub(crate) struct Dir {
    dir: lockyard::LockDir,
}

#[pymethods]
impl Dir {
    /// Locks in `dir` (made when the first is taken), with the options of
    /// `Lock`.
    #[new]
    #[pyo3(signature = (dir, *, soft = false, lease = None, owner = None, mode = None))]
    fn new(
        dir: PathBuf,
        soft: bool,
        lease: Option<f64>,
        owner: Option<String>,
        mode: Option<u32>,
    ) -> PyResult<Self> {
        let options = file_options(soft, lease, owner, mode)?;
        Ok(Dir {
            dir: lockyard::LockDir::new(dir).with_options(options),
        })
    }

    /// The lock called `name`. Raises `LockyardError` (kind
    /// `"invalid_path"`) for an empty name.
    fn lock(&self, py: Python<'_>, name: &str) -> PyResult<Lock> {
        match self.dir.handle(name) {
            Ok(lock) => Ok(Lock::new_of(Target::File(lock))),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// Every lock in the directory, with its state and holder.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Info>> {
        usable(py)?;
        let dir = self.dir.clone();
        listed(py, py.detach(move || dir.list()))
    }

    /// Removes lock files whose holder is provably gone (never a live
    /// holder's, never a file lockyard did not make); returns their paths.
    fn clean_stale(&self, py: Python<'_>) -> PyResult<Vec<PathBuf>> {
        usable(py)?;
        let dir = self.dir.clone();
        match py.detach(move || dir.clean_stale()) {
            Ok(report) => Ok(report
                .removed()
                .iter()
                .map(|s| s.path().to_path_buf())
                .collect()),
            Err(e) => Err(to_py(py, &e)),
        }
    }

    /// The directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn __repr__(&self) -> String {
        format!("LockDir({:?})", self.dir.path())
    }
}
