//! The one switch between platform backends.
//!
//! Every backend exposes the same few functions over `std::fs::File`:
//! `open`, `identify`, `try_lock`, `lock_wait`, `unlock`, `path_id`. A target
//! with no backend gets `other`, which compiles everywhere and answers
//! `Unsupported` instead of panicking.

pub(crate) mod os_holders;
pub(crate) mod pio;
pub(crate) mod process;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod waiters;

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(unix, windows)))]
mod other;
#[cfg(not(any(unix, windows)))]
pub(crate) use other::*;

/// A private name beside `path` for a file lockyard makes on the way to
/// another: `.NAME.PID.HEX16` followed by `suffix` (`.tmp` for a file being
/// published, `.gone` for one being removed on Windows).
pub(crate) fn private_path(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{:016x}{suffix}",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// Identity of an open file: two descriptors lock the same thing exactly
/// when their ids are equal (device + inode on Unix, volume + file index on
/// Windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) device: u64,
    pub(crate) index: u64,
}

/// What kind of thing a lock path turned out to be, when it is not a regular
/// file. Used for error messages only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Windows has no socket files.
#[cfg_attr(windows, allow(dead_code))]
pub(crate) enum NotFile {
    Directory,
    Fifo,
    Socket,
    Device,
    Symlink,
    Other,
}

/// Outcome of converting a shared lock to an exclusive one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upgrade {
    Upgraded,
    /// Another holder is in the way; the shared lock is held again.
    StillShared,
    /// Another holder is in the way and took the lock in the gap: nothing
    /// is held any more.
    Lost,
}

/// Shared -> exclusive without waiting. Not atomic anywhere: Windows has
/// no conversion (so the shared lock is released first), and Linux's
/// `flock` drops the shared lock before it finds the conflict. So on
/// failure the shared lock is taken again, which can itself fail if an
/// exclusive waiter got in between. An `Err` means the shared lock is held
/// again.
pub(crate) fn try_upgrade(file: &std::fs::File) -> std::io::Result<Upgrade> {
    use crate::mode::LockMode;
    if cfg!(windows) {
        unlock(file)?;
    }
    let failure = match try_lock(file, LockMode::Exclusive) {
        Ok(true) => return Ok(Upgrade::Upgraded),
        Ok(false) => None,
        Err(e) => Some(e),
    };
    match (try_lock(file, LockMode::Shared), failure) {
        (Ok(true), None) => Ok(Upgrade::StillShared),
        (Ok(true), Some(e)) => Err(e),
        _ => Ok(Upgrade::Lost),
    }
}

/// Exclusive -> shared; `Ok(false)` if the lock was lost on the way. With
/// `flock` nobody else can hold the file while we hold it exclusively, so
/// the conversion meets no conflict, and an `Err` leaves the exclusive lock
/// in place. Windows releases first; after that any failure is a loss.
pub(crate) fn downgrade(file: &std::fs::File) -> std::io::Result<bool> {
    use crate::mode::LockMode;
    if cfg!(windows) {
        unlock(file)?;
        return Ok(matches!(try_lock(file, LockMode::Shared), Ok(true)));
    }
    try_lock(file, LockMode::Shared)
}

/// Makes a rename in `marker`'s directory durable (fsyncs the directory).
#[cfg(unix)]
pub(crate) fn sync_dir(marker: &std::path::Path) -> std::io::Result<()> {
    let dir = match marker.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_marker: &std::path::Path) -> std::io::Result<()> {
    // Windows offers no directory fsync through std; NTFS journals renames.
    Ok(())
}
