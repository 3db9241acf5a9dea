//! The break lock of a soft lock: whoever removes its sidecar (the holder
//! releasing it, a waiter breaking a stale one, a lease holder renewing
//! it) holds the break lock meanwhile. So between reading which
//! publication is at the path and removing it, nobody else removes it, and
//! the path cannot change under the remover (nobody publishes while a
//! sidecar is there).
//!
//! Two ways to hold it:
//! - **OS lock** on the control file, where the filesystem's OS locks are
//!   seen by everyone who can open it (a local disk): one `flock`.
//! - **Marker file** `<sidecar>.break`, published whole with `link(2)`
//!   (which fails if one is there), everywhere else: on sshfs an OS lock
//!   taken through one machine's mount does not exclude another's, while
//!   a link is decided by the server. The marker carries a holder record
//!   with a nonce; its owner removes it after checking the nonce. A marker
//!   whose owner provably died (same host and boot, no such process) or
//!   that is older than [`MARKER_STALE`] is removed by the next taker: a
//!   break lock is held for a few requests to the server, never longer.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::sidecar;
use crate::backend::host::{self, Liveness};
use crate::backend::record_io::{self, Read};
use crate::backend::temp;
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{HolderRecord, LockKind};
use crate::sys;

/// A marker older than this is abandoned: its owner held it for a few
/// requests at most, and died or hung.
const MARKER_STALE: Duration = Duration::from_secs(30);

/// A held break lock; dropping it lets go.
#[derive(Debug)]
pub(crate) enum BreakLock<'a> {
    /// The OS lock on the entry's descriptor of the control file.
    Os(&'a File),
    /// The OS lock on a descriptor of the control file of its own.
    OsOwned(File),
    /// The marker at `path`, ours while it carries `nonce`.
    Marker { path: PathBuf, nonce: Option<u128> },
}

impl Drop for BreakLock<'_> {
    fn drop(&mut self) {
        match self {
            BreakLock::Os(ctl) => {
                let _ = sys::unlock(ctl);
            }
            BreakLock::OsOwned(ctl) => {
                let _ = sys::unlock(ctl);
            }
            BreakLock::Marker { path, nonce } => {
                // Only ours: a taker that judged ours abandoned may have
                // replaced it.
                if marker_nonce(path).ok().flatten() == *nonce {
                    let _ = crate::sys::remove_file(&*path);
                }
            }
        }
    }
}

/// The marker's path for the soft lock at `sidecar`.
pub(crate) fn marker_path(sidecar: &Path) -> PathBuf {
    let mut name = sidecar.as_os_str().to_os_string();
    name.push(".break");
    PathBuf::from(name)
}

/// Takes the break lock of the soft lock at `sidecar` if nobody holds it;
/// `ctl` is its open control file.
pub(crate) fn try_take<'a>(
    ctl: sidecar::Ctl<'a>,
    sidecar: &Path,
) -> io::Result<Option<BreakLock<'a>>> {
    if ctl.shared {
        if !sys::try_lock(ctl.file, LockMode::Exclusive)? {
            return Ok(None);
        }
        return Ok(Some(BreakLock::Os(ctl.file)));
    }
    try_marker(sidecar)
}

/// Takes the break lock, waiting as long as it takes (its holders keep it
/// for a few system calls; an abandoned marker goes after
/// [`MARKER_STALE`]). Opens a control file descriptor of its own, so the
/// lock also excludes this process's other users. Call it where blocking
/// is fine, with no other lock held.
pub(crate) fn take_blocking(sidecar: &Path) -> io::Result<BreakLock<'static>> {
    let Some(ctl) = sys::open_existing(&sidecar::ctl_path(sidecar))? else {
        return Err(crate::error::lost());
    };
    if sys::os_locks_shared(&ctl) {
        sys::lock_wait(&ctl, LockMode::Exclusive)?;
        return Ok(BreakLock::OsOwned(ctl));
    }
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(held) = try_marker(sidecar)? {
            return Ok(held);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn try_marker(sidecar: &Path) -> io::Result<Option<BreakLock<'static>>> {
    let path = marker_path(sidecar);
    // Twice: once more after removing an abandoned marker.
    for _ in 0..2 {
        let mut rec =
            crate::backend::new_record(LockKind::Soft, LockMode::Exclusive, 0, &LockOptions::new());
        rec.nonce = Some(fastrand::u128(..));
        let nonce = rec.nonce;
        if temp::publish(&path, 0o644, |file| record_io::write(file, &rec))?.is_some() {
            return Ok(Some(BreakLock::Marker { path, nonce }));
        }
        let found = match read_marker(&path)? {
            Marker::Gone => continue,
            // Not lockyard's: never removed; the break lock stays busy
            // until someone removes it.
            Marker::Foreign => return Ok(None),
            Marker::Record(found) => found,
        };
        if !abandoned(&found) {
            return Ok(None);
        }
        // Still that marker? Then it goes. (Two takers removing the same
        // abandoned marker at once could remove each other's new one: that
        // needs a remover dead in the middle of a break, and two more
        // racing past it within microseconds.)
        if marker_nonce(&path)? == found.nonce {
            match crate::sys::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(None)
}

fn abandoned(marker: &HolderRecord) -> bool {
    let me = host::me();
    if me.same_host(marker) && matches!(me.liveness(marker), Liveness::Dead | Liveness::Reused) {
        return true;
    }
    SystemTime::now()
        .duration_since(marker.acquired)
        .is_ok_and(|age| age > MARKER_STALE)
}

/// What is at a marker's path.
enum Marker {
    Gone,
    /// A file without a valid record: not lockyard's (markers are
    /// published whole).
    Foreign,
    Record(HolderRecord),
}

fn read_marker(path: &Path) -> io::Result<Marker> {
    let Some(file) = sys::open_existing(path)? else {
        return Ok(Marker::Gone);
    };
    match record_io::read(&file) {
        Ok(Read::Record(r)) => Ok(Marker::Record(r)),
        Ok(Read::Invalid(_)) => Ok(Marker::Foreign),
        // A network filesystem may say so through a descriptor just
        // opened: removed in between.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Marker::Gone),
        Err(e) => Err(e),
    }
}

fn marker_nonce(path: &Path) -> io::Result<Option<u128>> {
    Ok(match read_marker(path)? {
        Marker::Record(r) => r.nonce,
        Marker::Gone | Marker::Foreign => None,
    })
}
