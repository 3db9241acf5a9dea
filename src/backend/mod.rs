//! The backends: where a lock lives, behind the engine's
//! [`Resource`] seam.
//!
//! - `strict/`: the OS lock on a lock file.
//! - `soft/`: a sidecar file whose existence is the lock (soft locks and
//!   leases), with stale judgement and a break lock.
//! - `memory.rs`: a lock in this process's memory, the reference backend
//!   the behaviour suite also runs against.
//! - Shared by the file backends: `open.rs` (opening a lock path without
//!   ever writing someone's data), `temp.rs` (whole creation), `host.rs`
//!   (this process's identity), `records.rs` (new records and tokens), and
//!   `clean.rs` (removing what lockyard provably left behind).

pub(crate) mod clean;
pub(crate) mod host;
pub(crate) mod memory;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
pub(crate) mod object;
pub(crate) mod open;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record_io;
mod records;
pub(crate) mod soft;
pub(crate) mod strict;
pub(crate) mod temp;

use std::path::PathBuf;

pub(crate) use records::{new_record, next_token, next_token_at};

use crate::engine::{Abandon, Key, Opener, Params, Resource};
use crate::error::Error;
use crate::options::LockOptions;
use crate::record::LockKind;
use crate::sys::{self, FileId};

/// Opens the file behind a strict or soft lock.
#[derive(Debug)]
pub(crate) struct FileOpener {
    /// The lock path.
    pub(crate) path: PathBuf,
    /// The file the lock is anchored on: the lock file itself, or a soft
    /// lock's control file.
    pub(crate) anchor: PathBuf,
    pub(crate) options: LockOptions,
}

impl FileOpener {
    pub(crate) fn new(path: PathBuf, options: LockOptions) -> Self {
        let anchor = match options.kind {
            LockKind::Strict => path.clone(),
            _ => sidecar_ctl(&path),
        };
        FileOpener {
            path,
            anchor,
            options,
        }
    }

    fn format(&self) -> open::Format {
        match self.options.kind {
            LockKind::Strict => open::Format::Record,
            _ => open::Format::Control,
        }
    }
}

/// A soft lock's control file path.
fn sidecar_ctl(path: &std::path::Path) -> PathBuf {
    soft::sidecar::ctl_path(path)
}

/// A file's identity as a registry key in `space`.
fn file_key(space: &'static str, id: FileId) -> Key {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&id.device.to_le_bytes());
    bytes.extend_from_slice(&id.index.to_le_bytes());
    Key {
        space,
        id: bytes.into_boxed_slice(),
    }
}

/// The file backends' view of a handle's [`Params`]: its [`FileOpener`].
fn settings(p: Params<'_>) -> std::io::Result<&FileOpener> {
    p.downcast_ref::<FileOpener>().ok_or_else(|| {
        std::io::Error::other("a lock file was driven through a handle of another backend")
    })
}

impl Opener for FileOpener {
    fn open(&self, _abandon: &Abandon) -> Result<(Key, Box<dyn Resource>), Error> {
        let opened = open::open_lock_file(&self.path, &self.anchor, &self.options, self.format())?;
        let open::Opened { file, id, ours } = opened;
        Ok(match self.options.kind {
            LockKind::Strict => (
                file_key("flock", id),
                Box::new(strict::StrictLock::new(file, id, ours)),
            ),
            _ => {
                let shared = sys::os_locks_shared(&file);
                (
                    file_key("sidecar", id),
                    Box::new(soft::SoftLock::new(file, ours, shared)),
                )
            }
        })
    }
}
