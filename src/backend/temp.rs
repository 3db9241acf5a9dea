//! Temporary files that publish a file whole: written under a private
//! name, then hard-linked into place (which fails if something is there),
//! so nobody ever sees the file at its real path half-made.
//!
//! The name is `.NAME.PID.HEX16.tmp` beside the target `NAME`. A process
//! that dies between creating it and removing it leaves it behind;
//! [`clean_stale`](crate::clean_stale) recognises exactly this form
//! ([`target_of`]) and nothing looser.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys;

/// A private temporary path beside `path`.
pub(crate) fn path_for(path: &Path) -> PathBuf {
    sys::private_path(path, ".tmp")
}

/// Creates the file `path` whole: a temporary file beside it, written by
/// `init`, then hard-linked into place. `None` if something is at `path`
/// already. A link that loses the race over SFTP v3 fails with the generic
/// failure sshfs reports as `EPERM`: whatever is at the path then decides.
/// Other errors (a filesystem without hard links among them) are the
/// caller's.
pub(crate) fn publish(
    path: &Path,
    mode: u32,
    init: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<Option<File>> {
    let tmp = path_for(path);
    let file = sys::create_new(&tmp, mode)?;
    let _removed = Removed(&tmp);
    init(&file)?;
    match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(_) if sys::path_id(path)?.is_some() => Ok(None),
        Err(e) => Err(e),
    }
}

/// If `name` has the exact form of a temporary file made by [`path_for`],
/// the name of the file it was made for.
pub(crate) fn target_of(name: &str) -> Option<&str> {
    target_with_suffix(name, ".tmp")
}

/// Whether `name` has the exact form of a tombstone: the name a file
/// takes on Windows just before it is deleted, `.NAME.PID.HEX16.gone`
/// (see `sys::remove_file`). It lasts until the last handle to the file
/// closes, and is neither a lock nor something to clean.
pub(crate) fn is_tombstone(name: &str) -> bool {
    target_with_suffix(name, ".gone").is_some()
}

fn target_with_suffix<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let rest = name.strip_prefix('.')?.strip_suffix(suffix)?;
    let (rest, random) = rest.rsplit_once('.')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && digits && !target.is_empty()).then_some(target)
}

/// Removes the temporary file when it goes out of scope, published or not
/// (a published file is another name for the same file).
pub(crate) struct Removed<'a>(pub(crate) &'a Path);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = crate::sys::remove_file(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_recognised_by_their_exact_form() {
        assert!(is_tombstone(".job.lock.42.0123456789abcdef.gone"));
        assert!(is_tombstone(
            "..job.lock.42.0123456789abcdef.tmp.42.0123456789abcdef.gone"
        ));
        for other in [
            "job.lock",
            ".job.lock.42.0123456789abcdef.tmp",
            ".job.lock.42.0123.gone",
            ".job.lock.x.0123456789abcdef.gone",
            "job.lock.42.0123456789abcdef.gone",
        ] {
            assert!(!is_tombstone(other), "{other}");
        }
    }

    #[test]
    fn only_the_exact_form_names_a_target() {
        let made = path_for(Path::new("dir/job.lock"));
        let name = made.file_name().unwrap().to_str().unwrap();
        assert_eq!(target_of(name), Some("job.lock"));
        for foreign in [
            ".x.tmp",
            ".report.txt.tmp",
            ".job.lock.12x4.0123456789abcdef.tmp",
            ".job.lock.1234.0123456789abcdeg.tmp",
            ".job.lock.1234.0123456789abcde.tmp",
            "job.lock.1234.0123456789abcdef.tmp",
            "..1234.0123456789abcdef.tmp",
        ] {
            assert_eq!(target_of(foreign), None, "{foreign}");
        }
    }
}
