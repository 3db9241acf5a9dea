//! Soft (sidecar) locks and leases: the lock is the existence of a file.
//!
//! # Files
//! - `<path>`: the sidecar. It exists exactly while the lock is held (or
//!   left behind by a dead holder); its content is the holder record.
//! - `<path>.ctl`: the control file, never deleted. Its OS lock is the
//!   *break lock*, and its content remembers the last fencing token.
//!
//! # Acquiring (hybrid design)
//! The holder writes its record into a private temporary file, takes an
//! OS lock on it, and only then publishes it with `link(2)`, which fails if
//! the sidecar exists. So a published sidecar is always complete and, on a
//! filesystem with working OS locks, always locked by a live holder: a
//! successful try-lock of a left-behind sidecar proves its holder gone.
//!
//! # Breaking (why there is never a second holder)
//! A stale sidecar is removed only under the break lock, after checking
//! that the file at the path is still the one judged stale and judging it
//! again. Every deletion of a sidecar (breaking it, or its holder
//! releasing it) happens under the break lock, and creation only succeeds
//! when nothing is at the path; so between the check and the `unlink` the
//! file at the path cannot change, and the `unlink` removes exactly the
//! stale file. Breakers racing each other are serialised; the losers find
//! the path empty or holding a fresh, live sidecar.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::break_lock;
use super::stale::{self, Evidence};
use crate::backend::record_io::{self, Read};
use crate::backend::{new_record, next_token, temp};
use crate::error::{lost, NotFileError};
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::StaleLock;
use crate::record::{HolderRecord, LockKind};
use crate::sys::{self, FileId};

/// A soft lock this process holds.
#[derive(Debug)]
pub(crate) struct SoftHeld {
    /// The sidecar, open and OS-locked for as long as it is held.
    file: File,
    id: FileId,
    pub(crate) record: HolderRecord,
}

impl SoftHeld {
    fn publication(&self) -> Publication {
        Publication {
            id: self.id,
            nonce: self.record.nonce,
        }
    }
}

/// A soft lock's control file, as its entry keeps it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctl<'a> {
    pub(crate) file: &'a File,
    /// lockyard made it: the last token may be written into it.
    pub(crate) ours: bool,
    /// Its filesystem's OS locks are seen by every process that can open
    /// it (`sys::os_locks_shared`), found once when the entry was made: the
    /// sidecar lives in the same directory.
    pub(crate) shared: bool,
}

/// One publication of a sidecar: what tells it from every other.
///
/// The record's nonce decides. The file's identity (device and inode)
/// serves only for a record that has no nonce: a network filesystem may
/// show one file under two inode numbers (sshfs shows a hard link under
/// another one), and reuse an inode number for a new file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Publication {
    id: FileId,
    nonce: Option<u128>,
}

impl Publication {
    pub(crate) fn is(&self, other: &Publication) -> bool {
        match (self.nonce, other.nonce) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.id == other.id,
            _ => false,
        }
    }
}

/// Outcome of one soft attempt.
pub(crate) enum SoftTry {
    Locked(SoftHeld),
    /// Held by someone else, as last seen.
    Busy(Seen),
    /// Stale: ask the `on_stale` hook whether this publication of the
    /// sidecar may be broken, then try again.
    Ask(Box<StaleLock>, Publication),
}

/// A busy sidecar as an attempt saw it: its record when readable, and its
/// OS lock where that means something (see [`Found::os_free`]), for saying
/// who holds it and when it becomes breakable.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) record: Option<HolderRecord>,
    pub(crate) os_free: Option<bool>,
    /// The file at the path is not a lockyard lock file (see
    /// [`Found::is_foreign`]).
    pub(crate) foreign: bool,
}

impl Seen {
    pub(crate) fn evidence(&self) -> Evidence<'_> {
        Evidence {
            record: self.record.as_ref(),
            os_free: self.os_free,
        }
    }
}

/// The control file's path for a soft lock at `path`.
pub(crate) fn ctl_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".ctl");
    PathBuf::from(name)
}

/// One attempt to take the soft lock at `path`, breaking it first if it is
/// stale. `ctl` is the open control file.
///
/// With an [`on_stale`](LockOptions::on_stale) hook, a stale sidecar is
/// broken only once the hook approved breaking that very file
/// (`approved`); before that the attempt returns [`SoftTry::Ask`].
///
/// The last token is remembered in `ctl` only when it is a control file
/// lockyard made (`ctl.ours`); a file of someone else's at that path is
/// never written.
pub(crate) fn try_acquire(
    ctl: Ctl<'_>,
    path: &Path,
    opts: &LockOptions,
    approved: Option<Publication>,
) -> io::Result<SoftTry> {
    let kind = if opts.kind == LockKind::Lease {
        LockKind::Lease
    } else {
        LockKind::Soft
    };
    let mut seen_token = 0;
    let mut holder = Seen::default();
    // A few rounds: a sidecar can vanish or be broken between our steps.
    for _ in 0..4 {
        let token = next_token(read_token_now(ctl, path).max(seen_token));
        let record = new_record(kind, LockMode::Exclusive, token, opts);
        if let Some(mut held) = publish(path, record, opts.file_mode)? {
            if let Err(e) = settle_token(ctl, path, &mut held) {
                // Not held with a token we can stand by: give it back. The
                // sidecar is ours while it is at the path, so nobody else's
                // file is removed.
                if is_ours(path, &held)? {
                    crate::sys::remove_file(path)?;
                }
                return Err(e);
            }
            // Best effort: the clock floor in `next_token` covers a loss.
            if ctl.ours {
                let _ = write_token(ctl.file, held.record.token);
            }
            return Ok(SoftTry::Locked(held));
        }
        let Some(found) = inspect_as(path, Some(ctl.shared))? else {
            continue; // released in between: try again
        };
        if let Some(r) = &found.record {
            seen_token = seen_token.max(r.token);
        }
        holder = found.seen();
        let Some(reason) = stale::judge(&found.evidence(), opts) else {
            return Ok(SoftTry::Busy(holder));
        };
        let verdict = StaleLock {
            path: path.to_path_buf(),
            record: found.record.clone(),
            reason,
        };
        let seen = found.publication();
        if opts.on_stale.is_some() && !approved.is_some_and(|a| a.is(&seen)) {
            // The hook is the user's code: the caller runs it with no lock
            // of ours held, and comes back with its answer.
            return Ok(SoftTry::Ask(Box::new(verdict), seen));
        }
        if !break_stale(ctl, path, &seen, opts)? {
            return Ok(SoftTry::Busy(holder));
        }
    }
    Ok(SoftTry::Busy(holder))
}

/// Makes the token of a lock just published higher than every earlier
/// holder's.
///
/// The token was chosen before publishing; meanwhile other processes may
/// have taken and released the lock with higher ones (each holder writes
/// its token into the control file before it releases). Read after
/// publishing, the control file therefore knows every earlier holder's
/// token: if ours is not above it, the record, which only we can change
/// now, is rewritten with the next token after it.
fn settle_token(ctl: Ctl<'_>, path: &Path, held: &mut SoftHeld) -> io::Result<()> {
    let last = read_token_now(ctl, path);
    if held.record.token > last {
        return Ok(());
    }
    let mut rec = held.record.clone();
    rec.token = next_token(last);
    record_io::write(&held.file, &rec)?;
    held.record = rec;
    Ok(())
}

/// Removes the sidecar at `path` if it is still the publication `judged`
/// and still stale, under the break lock. `Ok(false)` if another process
/// holds the break lock (try later); `Ok(true)` if the path is worth
/// another try.
pub(crate) fn break_stale(
    ctl: Ctl<'_>,
    path: &Path,
    judged: &Publication,
    opts: &LockOptions,
) -> io::Result<bool> {
    let Some(_break_lock) = break_lock::try_take(ctl, path)? else {
        return Ok(false);
    };
    let Some(found) = inspect_as(path, Some(ctl.shared))? else {
        return Ok(true);
    };
    if !found.publication().is(judged) {
        return Ok(true); // replaced: judge the new one afresh
    }
    let Some(reason) = stale::judge(&found.evidence(), opts) else {
        return Ok(false);
    };
    match crate::sys::remove_file(path) {
        Ok(()) => {
            crate::trace::took_over(path, found.record.as_ref(), &reason);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Releases a soft lock: deletes the sidecar if it is still ours. `Err`
/// with a "lost" payload if it was broken meanwhile.
///
/// Never waits in the kernel: the caller may be an executor's thread, or a
/// guard's `drop`. Breakers hold the break lock for a few system calls, so
/// a few tries normally get it; if another process keeps holding it (one
/// that was stopped, say), the release finishes on a blocking-pool thread
/// and this returns `Ok` at once. Until then the sidecar stays (other
/// processes see the lock held, and its holder, this process, alive).
pub(crate) fn release(ctl: Ctl<'_>, path: &Path, held: SoftHeld) -> io::Result<()> {
    for _ in 0..BREAK_LOCK_TRIES {
        if let Some(_break_lock) = break_lock::try_take(ctl, path)? {
            return remove_if_ours(path, &held);
        }
        std::thread::yield_now();
    }
    let path = path.to_path_buf();
    blocking::unblock(move || {
        // A break lock of its own: it also excludes this process's other
        // users of the break lock.
        let done =
            break_lock::take_blocking(&path).and_then(|_break_lock| remove_if_ours(&path, &held));
        if let Err(e) = done {
            log::warn!("releasing soft lock {}: {e}", path.display());
        }
        // `held.file` closes here, dropping its OS lock.
    })
    .detach();
    Ok(())
}

/// How many non-blocking tries for the break lock before a release is
/// handed to a blocking thread.
const BREAK_LOCK_TRIES: usize = 16;

fn remove_if_ours(path: &Path, held: &SoftHeld) -> io::Result<()> {
    if is_ours(path, held)? {
        crate::sys::remove_file(path)
    } else {
        Err(lost())
    }
}

/// Whether the sidecar at `path` is `held`'s publication: by the nonce in
/// its record (see [`Publication`]).
fn is_ours(path: &Path, held: &SoftHeld) -> io::Result<bool> {
    Ok(inspect_record(path)?.is_some_and(|found| found.publication().is(&held.publication())))
}

/// Renews a lease: rewrites the record with a new renewal time, if the
/// sidecar is still ours. The caller holds the break lock.
pub(crate) fn refresh_locked(path: &Path, held: &mut SoftHeld) -> io::Result<()> {
    if !is_ours(path, held)? {
        return Err(lost());
    }
    let mut rec = held.record.clone();
    rec.renewed = SystemTime::now();
    record_io::write(&held.file, &rec)?;
    held.record = rec;
    Ok(())
}

/// Whether the sidecar at `path` is still `held`'s, and its lease (if any)
/// has not lapsed.
pub(crate) fn still_held(path: &Path, held: &SoftHeld) -> io::Result<bool> {
    if !is_ours(path, held)? {
        return Ok(false);
    }
    Ok(held
        .record
        .expires_at()
        .is_none_or(|t| SystemTime::now() < t))
}

/// Writes `record` into a private file, locks it, and links it into place.
/// `None` if a sidecar already exists.
fn publish(path: &Path, record: HolderRecord, mode: u32) -> io::Result<Option<SoftHeld>> {
    let published = temp::publish(path, mode, |file| {
        match sys::try_lock(file, LockMode::Exclusive) {
            Ok(_) => {}
            // No OS locks here: liveness falls back to the record.
            Err(e) if sys::is_unsupported(&e) => {}
            Err(e) => return Err(e),
        }
        record_io::write(file, &record)
    })?;
    let Some(file) = published else {
        return Ok(None);
    };
    let id = match sys::identify(&file)? {
        Ok(id) => id,
        Err(what) => return Err(NotFileError::io(what)),
    };
    Ok(Some(SoftHeld { file, id, record }))
}

/// A sidecar found at the path.
pub(crate) struct Found {
    pub(crate) id: FileId,
    pub(crate) record: Option<HolderRecord>,
    pub(crate) os_free: Option<bool>,
}

impl Found {
    /// What a busy attempt reports of it.
    pub(crate) fn seen(&self) -> Seen {
        Seen {
            record: self.record.clone(),
            os_free: self.os_free,
            foreign: self.is_foreign(),
        }
    }

    /// Whether the file is not a lockyard lock file: lockyard publishes a
    /// sidecar only once its record is complete, so a file without one was
    /// put there by something else, and is never broken or removed.
    pub(crate) fn is_foreign(&self) -> bool {
        self.record.is_none()
    }

    pub(crate) fn publication(&self) -> Publication {
        Publication {
            id: self.id,
            nonce: self.record.as_ref().and_then(|r| r.nonce),
        }
    }

    pub(crate) fn evidence(&self) -> Evidence<'_> {
        Evidence {
            record: self.record.as_ref(),
            os_free: self.os_free,
        }
    }
}

/// Looks at the sidecar at `path` without disturbing a live holder: reads
/// its record and tests its OS lock with a shared try-lock (which a
/// read-only descriptor may take, even on NFS). `None` if there is none.
pub(crate) fn inspect(path: &Path) -> io::Result<Option<Found>> {
    inspect_as(path, None)
}

/// [`inspect`], where whether the filesystem shares OS locks is known
/// (`Some`) or must be found (`None`).
fn inspect_as(path: &Path, shared: Option<bool>) -> io::Result<Option<Found>> {
    let Some((file, mut found)) = read_sidecar(path)? else {
        return Ok(None);
    };
    // On a filesystem whose OS locks other machines do not see, the lock
    // says nothing either way.
    if shared.unwrap_or_else(|| sys::os_locks_shared(&file)) {
        found.os_free = match sys::try_lock(&file, LockMode::Shared) {
            Ok(true) => {
                sys::unlock(&file)?;
                Some(true)
            }
            Ok(false) => Some(false),
            Err(e) if sys::is_unsupported(&e) => None,
            Err(e) => return Err(e),
        };
    }
    Ok(Some(found))
}

/// [`inspect`] without the OS lock test: the record and the identity.
fn inspect_record(path: &Path) -> io::Result<Option<Found>> {
    Ok(read_sidecar(path)?.map(|(_, found)| found))
}

fn read_sidecar(path: &Path) -> io::Result<Option<(File, Found)>> {
    let Some(file) = crate::backend::open::open_existing(path)? else {
        return Ok(None);
    };
    // A network filesystem may answer "no such file" through a descriptor
    // opened a moment ago (sshfs looks the path up again): removed in
    // between, as if the open had found nothing.
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let id = match sys::identify(&file) {
        Ok(Ok(id)) => id,
        Ok(Err(what)) => return Err(NotFileError::io(what)),
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let record = match record_io::read(&file) {
        Ok(Read::Record(r)) => Some(r),
        Ok(Read::Invalid(_)) => None,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let found = Found {
        id,
        record,
        os_free: None,
    };
    Ok(Some((file, found)))
}

/// The last fencing token the control file of the soft lock at `path`
/// remembers, read through a descriptor opened now: a network filesystem
/// may serve a descriptor kept open from a cache of its own (FUSE keeps
/// pages of an open file), and miss what another machine wrote. Through
/// `ctl` if the file cannot be opened again, or on a local filesystem.
fn read_token_now(ctl: Ctl<'_>, path: &Path) -> u64 {
    // A local filesystem's page cache is the file: no need to open again.
    if ctl.shared {
        return read_token(ctl.file);
    }
    match sys::open_existing(&ctl_path(path)) {
        Ok(Some(fresh)) => read_token(&fresh),
        _ => read_token(ctl.file),
    }
}

/// The last fencing token the control file remembers (0 if none or
/// unreadable).
fn read_token(ctl: &File) -> u64 {
    let mut buf = [0u8; 64];
    let n = sys::pio::read_start(ctl, &mut buf, false).unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("token ")))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// The first line of every control file.
const CONTROL_HEADER: &[u8] = b"lockyard-ctl 1\n";

/// Whether `file` begins as a control file lockyard wrote.
pub(crate) fn is_control(file: &File) -> io::Result<bool> {
    let mut buf = [0u8; CONTROL_HEADER.len()];
    let n = sys::pio::read_start(file, &mut buf, false)?;
    Ok(buf[..n] == *CONTROL_HEADER)
}

/// The content of a control file just created.
pub(crate) fn init_control(ctl: &File) -> io::Result<()> {
    write_token(ctl, 0)
}

fn write_token(ctl: &File, token: u64) -> io::Result<()> {
    let text = format!("lockyard-ctl 1\ntoken {token}\n");
    sys::pio::write_start(ctl, text.as_bytes())?;
    ctl.set_len(text.len() as u64)
}
