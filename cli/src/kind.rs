//! Which kind of lock is at a path: a soft lock is known by its control
//! file (`PATH.ctl`) beside it.

use std::path::{Path, PathBuf};

/// The control file a soft lock at `path` keeps beside it.
pub fn ctl_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".ctl");
    PathBuf::from(p)
}

/// Whether `path` is a soft lock (or lease): its control file exists.
/// Taking such a lock as an OS lock would not exclude its soft holders and
/// would make the sidecar lockyard's strict lock file, so commands that
/// take a lock ask this first.
pub fn is_soft(path: &Path) -> bool {
    ctl_path(path).symlink_metadata().is_ok()
}
