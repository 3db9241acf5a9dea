//! `clean_stale`: remove what is provably unused from a lock directory.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::record_io::{self, Read};
use super::soft::{sidecar, stale};
use crate::error::Error;
use crate::error::Op;
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{LockKind, RecordState};
use crate::record::{StaleLock, StaleReason};
use crate::sys;

/// A publication's temporary file younger than this may still be in use.
const TEMP_GRACE: Duration = Duration::from_secs(60);

/// What [`clean_stale`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub(crate) removed: Vec<StaleLock>,
    pub(crate) kept: Vec<PathBuf>,
}

impl CleanReport {
    /// The lock files removed, each with its record and the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{clean_stale, FileLock, LockOptions, StaleReason};
    ///
    /// let dir = tempfile::tempdir()?;
    /// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
    /// let report = clean_stale(dir.path(), &LockOptions::new())?;
    /// assert_eq!(report.removed().len(), 1);
    /// assert_eq!(report.removed()[0].reason(), StaleReason::Unused);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn removed(&self) -> &[StaleLock] {
        &self.removed
    }

    /// Lock files left alone: held, not provably stale, or not recognised
    /// as lockyard lock files; and soft locks' control files (`*.ctl`),
    /// which are never removed (see [`clean_stale`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{clean_stale, FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::new(dir.path().join("busy.lock"));
    /// let _held = lock.try_lock()?;
    /// let report = clean_stale(dir.path(), &LockOptions::new())?;
    /// assert_eq!(report.kept(), [lock.path().to_path_buf()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kept(&self) -> &[PathBuf] {
        &self.kept
    }
}

/// Removes the lock files in `dir` (not its subdirectories) that are
/// provably unused, and reports what it removed. `options` decides what
/// counts as stale for soft locks (`stale_after`, `trust_os_lock`,
/// `on_stale`).
///
/// - A **strict** lock file with a holder record is removed when nobody
///   holds it: it is locked first, marked "removed" in its record, and
///   deleted while still locked. A process that opened it earlier and
///   locks it afterwards reads that mark and starts over with a fresh file
///   (this needs holder metadata, the default, or
///   [`verify_identity`](LockOptions::verify_identity) in the processes
///   that use the lock). Files without a record are kept: nothing says
///   their users would notice.
/// - A **soft** lock or **lease** is removed when stale, with the same
///   protocol as a waiter breaking it.
/// - Temporary files left by a process that died while creating a lock
///   file or publishing a soft lock are removed once unlocked and older
///   than a minute, and only when everything says lockyard made them: the
///   exact temporary name (`.NAME.PID.HEX16.tmp`) and a complete holder
///   record (or control file header) inside; for a soft lock's, also the
///   control file `NAME.ctl` beside it.
/// - Nothing else is touched: not files without a holder record, not other
///   `.tmp` files, not files whose record is damaged.
/// - Control files (`*.ctl`) are kept, even for an unused soft lock: on a
///   local disk the control file is the break lock, which every process
///   takes (an OS lock) through a descriptor it keeps open, and no
///   process can see which others keep one. Removed under them, the next
///   user would create a new control file and two breakers could each
///   hold "the" break lock on a different file, the race that breaks a
///   live holder. It also holds the fencing-token history. They are
///   listed in [`CleanReport::kept`].
///
/// A held lock is never removed.
///
/// # Errors
///
/// When `dir` cannot be listed. Problems with single files leave them in
/// [`CleanReport::kept`].
///
/// # Examples
///
/// ```
/// use lockyard::{clean_stale, FileLock, LockOptions};
///
/// let dir = tempfile::tempdir()?;
/// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
/// let held = FileLock::new(dir.path().join("busy.lock"));
/// let _guard = held.try_lock()?;
///
/// let report = clean_stale(dir.path(), &LockOptions::new())?;
/// assert_eq!(report.removed().len(), 1);
/// assert!(report.removed()[0].path().ends_with("old.lock"));
/// assert!(held.path().exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean_stale(dir: impl AsRef<Path>, options: &LockOptions) -> Result<CleanReport, Error> {
    clean(dir.as_ref(), options, Act::Remove)
}

/// What [`clean_stale`] would remove from `dir` right now, removing
/// nothing: [`CleanReport::removed`] lists the files it would remove.
///
/// The same checks run (strict lock files are probed with a non-blocking
/// lock released at once; the [`on_stale`](LockOptions::on_stale) hook is
/// asked), so the report is exact for that instant; a lock taken or
/// released afterwards changes the answer.
///
/// # Errors
///
/// When `dir` cannot be listed.
///
/// # Examples
///
/// ```
/// use lockyard::{clean_stale_dry_run, FileLock, LockOptions};
///
/// let dir = tempfile::tempdir()?;
/// drop(FileLock::new(dir.path().join("old.lock")).try_lock()?);
/// let report = clean_stale_dry_run(dir.path(), &LockOptions::new())?;
/// assert_eq!(report.removed().len(), 1); // would be removed...
/// assert!(dir.path().join("old.lock").exists()); // ...but is still there
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn clean_stale_dry_run(
    dir: impl AsRef<Path>,
    options: &LockOptions,
) -> Result<CleanReport, Error> {
    clean(dir.as_ref(), options, Act::Report)
}

/// Whether cleaning removes files or only says what it would remove.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Remove,
    Report,
}

fn clean(dir: &Path, options: &LockOptions, act: Act) -> Result<CleanReport, Error> {
    let list_err = |e| Error::io(dir, Op::Inspect, e);
    let mut report = CleanReport::default();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let path = entry.path();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_file || super::temp::is_tombstone(&name) {
            continue;
        }
        if name.ends_with(".ctl") {
            // Never removed: see the docs of `clean_stale`.
            report.kept.push(path);
            continue;
        }
        let outcome = if let Some(target) = super::temp::target_of(&name) {
            clean_temp(&path, &dir.join(target), act)
        } else {
            clean_one(&path, options, act)
        };
        match outcome {
            Ok(Some(removed)) => report.removed.push(removed),
            Ok(None) | Err(_) => report.kept.push(path),
        }
    }
    Ok(report)
}

fn clean_one(path: &Path, options: &LockOptions, act: Act) -> io::Result<Option<StaleLock>> {
    // Read-only first: a file that is not a lock file is never opened for
    // writing (which would stop a program from executing it, and tell
    // watchers it was written).
    let Some(file) = sys::open_existing(path)? else {
        return Ok(None);
    };
    let rec = match record_io::read(&file)? {
        Read::Record(r) => r,
        Read::Invalid(_) => return Ok(None),
    };
    if rec.kind == LockKind::Strict {
        let Some(file) = sys::open_existing_rw(path)? else {
            return Ok(None);
        };
        return clean_strict(path, &file, act);
    }
    drop(file);
    let Some(found) = sidecar::inspect(path)? else {
        return Ok(None);
    };
    let Some(reason) = stale::judge(&found.evidence(), options) else {
        return Ok(None);
    };
    let verdict = StaleLock {
        path: path.to_path_buf(),
        record: found.record.clone(),
        reason,
    };
    if let Some(hook) = &options.on_stale {
        if !(hook.0)(&verdict) {
            return Ok(None);
        }
    }
    let Some(ctl) = open_control(path)? else {
        // A sidecar without its control file was not made by lockyard.
        return Ok(None);
    };
    if act == Act::Report {
        return Ok(Some(verdict));
    }
    let ctl = sidecar::Ctl {
        file: &ctl,
        ours: true,
        shared: sys::os_locks_shared(&ctl),
    };
    if sidecar::break_stale(ctl, path, &found.publication(), options)?
        && sys::path_id(path)? != Some(found.id)
    {
        Ok(Some(verdict))
    } else {
        Ok(None)
    }
}

/// Removes an unheld strict lock file: lock, mark, unlink, unlock.
fn clean_strict(path: &Path, file: &File, act: Act) -> io::Result<Option<StaleLock>> {
    if !sys::try_lock(file, LockMode::Exclusive)? {
        return Ok(None);
    }
    let result = (|| {
        let id = match sys::identify(file)? {
            Ok(id) => id,
            Err(_) => return Ok(None),
        };
        if sys::path_id(path)? != Some(id) {
            return Ok(None);
        }
        // Read again under the lock: what is there now decides.
        let mut rec = match record_io::read(file)? {
            Read::Record(r) if r.kind == LockKind::Strict => r,
            _ => return Ok(None),
        };
        let unused = StaleLock {
            path: path.to_path_buf(),
            record: Some(rec.clone()),
            reason: StaleReason::Unused,
        };
        if act == Act::Remove {
            rec.state = RecordState::Removed;
            record_io::write(file, &rec)?;
            crate::sys::remove_file(path)?;
        }
        Ok(Some(unused))
    })();
    sys::unlock(file)?;
    result
}

/// The control file of the soft lock at `sidecar`, if lockyard made it.
fn open_control(sidecar: &Path) -> io::Result<Option<File>> {
    let Some(ctl) = sys::open_existing(&sidecar::ctl_path(sidecar))? else {
        return Ok(None);
    };
    Ok(sidecar::is_control(&ctl)?.then_some(ctl))
}

/// Removes a temporary file of lockyard's that was never published (its
/// writer died between making it and linking it into place): only one
/// with the exact temporary name of `target`, holding what lockyard puts
/// there (a complete holder record, or a control file's header), not
/// locked, and older than a minute. A soft lock's also needs that lock's
/// control file beside it.
fn clean_temp(path: &Path, target: &Path, act: Act) -> io::Result<Option<StaleLock>> {
    let Some(file) = sys::open_existing(path)? else {
        return Ok(None);
    };
    let record = match record_io::read(&file)? {
        Read::Record(r) if r.kind == LockKind::Strict => Some(r),
        Read::Record(r) if open_control(target)?.is_some() => Some(r),
        Read::Record(_) => return Ok(None),
        Read::Invalid(_) if sidecar::is_control(&file)? => None,
        Read::Invalid(_) => return Ok(None),
    };
    let age = file
        .metadata()?
        .modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    if age < TEMP_GRACE || !sys::try_lock(&file, LockMode::Shared)? {
        return Ok(None);
    }
    if act == Act::Remove {
        crate::sys::remove_file(path)?;
    }
    Ok(Some(StaleLock {
        path: path.to_path_buf(),
        record,
        reason: StaleReason::Unpublished,
    }))
}
