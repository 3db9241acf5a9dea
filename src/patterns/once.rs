//! Run once across processes: lock, re-check a durable marker, do the work,
//! publish the marker.
//!
//! The protocol, for a marker path `M` (lock file `M.lock`):
//! 1. If `M` exists and records the wanted key, the work is done: return
//!    without locking.
//! 2. Otherwise take `M.lock` exclusively, and check `M` again (another
//!    process may have finished while we waited).
//! 3. Run `init`. If it fails, panics, or the process dies, no marker is
//!    written, the lock is released (by unwinding, or by the kernel), and
//!    the next waiter runs `init` itself.
//! 4. On success, write the marker durably: a temporary file in the same
//!    directory, `fsync`, `rename` over `M`, `fsync` of the directory. Only
//!    then release the lock.
//!
//! The marker's content is untrusted input: anything that is not a marker
//! for the wanted key counts as "not done" (the work runs again).

use std::future::Future;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::Op;
use crate::{Error, FileLock, LockOptions};

const HEADER: &str = "lockyard-once 1";

/// What a run-once call did.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OnceOutcome<T> {
    /// This call ran the work, which returned this value.
    Ran(T),
    /// The work had been done already (by this or another process).
    AlreadyDone,
}

impl<T> OnceOutcome<T> {
    /// Whether this call did the work.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let marker = dir.path().join("done");
    /// assert!(lockyard::once(&marker, || Ok::<_, std::io::Error>(()))?.ran());
    /// assert!(!lockyard::once(&marker, || Ok::<_, std::io::Error>(()))?.ran());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ran(&self) -> bool {
        matches!(self, OnceOutcome::Ran(_))
    }

    /// The work's value, if this call ran it.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let marker = dir.path().join("done");
    /// let outcome = lockyard::once(&marker, || Ok::<_, std::io::Error>(42))?;
    /// assert_eq!(outcome.into_value(), Some(42));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_value(self) -> Option<T> {
        match self {
            OnceOutcome::Ran(v) => Some(v),
            OnceOutcome::AlreadyDone => None,
        }
    }
}

/// Runs `init` once across all processes that call this with the same
/// `marker` path: the first caller runs it while the others wait; once it
/// succeeds, every later call returns [`OnceOutcome::AlreadyDone`] without
/// taking the lock. Blocking.
///
/// The error is the work's own type: lockyard's errors (taking the lock,
/// writing the marker) are converted into it, so `?` works in one line
/// wherever the work's errors do.
///
/// # Examples
///
/// With `anyhow`:
///
/// ```
/// fn install(marker: &std::path::Path) -> anyhow::Result<bool> {
///     let outcome = lockyard::once(marker, || -> anyhow::Result<()> {
///         // ... download, unpack ...
///         Ok(())
///     })?;
///     Ok(outcome.ran())
/// }
///
/// let dir = tempfile::tempdir()?;
/// assert!(install(&dir.path().join("installed"))?);
/// assert!(!install(&dir.path().join("installed"))?);
/// // A lock error arrives as anyhow's, with its cause chain.
/// std::fs::write(dir.path().join("plain"), "a file")?;
/// let e = install(&dir.path().join("plain/installed")).unwrap_err();
/// assert!(e.downcast_ref::<lockyard::Error>().is_some());
/// # Ok::<(), anyhow::Error>(())
/// ```
///
/// With `std::io::Error`, and the value the work returned:
///
/// ```
/// use lockyard::{once, OnceOutcome};
///
/// let dir = tempfile::tempdir()?;
/// let marker = dir.path().join("cache.built");
/// let first = once(&marker, || Ok::<_, std::io::Error>(42))?;
/// assert_eq!(first, OnceOutcome::Ran(42));
/// let second = once(&marker, || -> Result<u32, std::io::Error> { unreachable!() })?;
/// assert!(!second.ran());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As for [`once_with`].
///
/// # Blocking
///
/// Blocks while another process does the work, then for as long as `init`
/// runs here.
pub fn once<T, E>(
    marker: impl AsRef<Path>,
    init: impl FnOnce() -> Result<T, E>,
) -> Result<OnceOutcome<T>, E>
where
    E: From<Error>,
{
    once_keyed(marker, "", init)
}

/// [`once`], for work identified by `key` (e.g. `llvm-18.1.8`): the work
/// runs again when the key recorded in the marker differs.
///
/// # Examples
///
/// ```
/// use lockyard::once_keyed;
///
/// let dir = tempfile::tempdir()?;
/// let marker = dir.path().join("toolchain.installed");
/// assert!(once_keyed(&marker, "v1", || Ok::<_, std::io::Error>(()))?.ran());
/// assert!(!once_keyed(&marker, "v1", || Ok::<_, std::io::Error>(()))?.ran());
/// // A new version runs the work again.
/// assert!(once_keyed(&marker, "v2", || Ok::<_, std::io::Error>(()))?.ran());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// As for [`once_with`].
///
/// # Blocking
///
/// Blocks while another process does the work, then for as long as `init`
/// runs here.
pub fn once_keyed<T, E>(
    marker: impl AsRef<Path>,
    key: &str,
    init: impl FnOnce() -> Result<T, E>,
) -> Result<OnceOutcome<T>, E>
where
    E: From<Error>,
{
    once_with(marker, key, &LockOptions::new(), init)
}

/// [`once_keyed`] with the lock taken with `options`: a soft lock
/// ([`LockOptions::soft`]) where the marker lives on a filesystem shared
/// by several machines whose OS locks do not cross them (sshfs, say).
///
/// # Examples
///
/// ```
/// use lockyard::{once_with, LockOptions};
///
/// let dir = tempfile::tempdir()?;
/// let marker = dir.path().join("toolchain.installed");
/// let soft = LockOptions::new().soft();
/// let first = once_with(&marker, "v1", &soft, || Ok::<_, std::io::Error>(()))?;
/// assert!(first.ran());
/// assert!(!once_with(&marker, "v1", &soft, || Ok::<_, std::io::Error>(()))?.ran());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// The work's own error when `init` fails (no marker is written; the next
/// call runs it again). lockyard's errors are converted into the work's
/// error type `E`, which `anyhow::Error`, `std::io::Error` and `Box<dyn
/// Error + Send + Sync>` allow (your own type needs a `From<lockyard::Error>`
/// impl): when the lock cannot be taken ([`Error::path`] is the lock
/// file's), and when the marker cannot be written ([`Error::path`] is the
/// marker's; the work ran, and will run again).
pub fn once_with<T, E>(
    marker: impl AsRef<Path>,
    key: &str,
    options: &LockOptions,
    init: impl FnOnce() -> Result<T, E>,
) -> Result<OnceOutcome<T>, E>
where
    E: From<Error>,
{
    let marker = marker.as_ref();
    if is_done(marker, key) {
        return Ok(OnceOutcome::AlreadyDone);
    }
    let lock = FileLock::with_options(lock_path(marker), options.clone());
    let _guard = lock.lock_blocking().map_err(E::from)?;
    if is_done(marker, key) {
        return Ok(OnceOutcome::AlreadyDone);
    }
    let value = init()?;
    publish(marker, key).map_err(|e| E::from(Error::io(marker, Op::Open, e)))?;
    Ok(OnceOutcome::Ran(value))
}

/// [`once`] for async work: awaits the future `init` makes. Dropping the
/// returned future before it finishes releases the lock and writes no
/// marker.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let marker = dir.path().join("cache.warm");
/// let outcome = lockyard::once_async(&marker, || async { Ok::<_, std::io::Error>("warmed") }).await?;
/// assert_eq!(outcome.into_value(), Some("warmed"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// As for [`once_with`].
///
/// # Cancel safety
///
/// Dropping the future releases the lock (or gives back its place in the
/// queue) and writes no marker: the next call runs the work.
pub async fn once_async<T, E, F>(
    marker: impl AsRef<Path>,
    init: impl FnOnce() -> F,
) -> Result<OnceOutcome<T>, E>
where
    E: From<Error>,
    F: Future<Output = Result<T, E>>,
{
    once_keyed_async(marker, "", init).await
}

/// [`once_keyed`] for async work.
///
/// # Examples
///
/// ```
/// # futures_lite::future::block_on(async {
/// let dir = tempfile::tempdir()?;
/// let marker = dir.path().join("schema.migrated");
/// let ran = lockyard::once_keyed_async(&marker, "v7", || async { Ok::<_, std::io::Error>(()) }).await?;
/// assert!(ran.ran());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Errors
///
/// As for [`once_with`].
///
/// # Cancel safety
///
/// As for [`once_async`].
pub async fn once_keyed_async<T, E, F>(
    marker: impl AsRef<Path>,
    key: &str,
    init: impl FnOnce() -> F,
) -> Result<OnceOutcome<T>, E>
where
    E: From<Error>,
    F: Future<Output = Result<T, E>>,
{
    let marker = marker.as_ref();
    if is_done(marker, key) {
        return Ok(OnceOutcome::AlreadyDone);
    }
    let lock = FileLock::for_file(marker);
    let _guard = lock.lock().await.map_err(E::from)?;
    if is_done(marker, key) {
        return Ok(OnceOutcome::AlreadyDone);
    }
    let value = init().await?;
    publish(marker, key).map_err(|e| E::from(Error::io(marker, Op::Open, e)))?;
    Ok(OnceOutcome::Ran(value))
}

/// The lock file of the marker `marker`: the name with `.lock` appended.
fn lock_path(marker: &Path) -> PathBuf {
    let mut name = marker.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether `marker` is a marker for `key`. Reads at most 4 KiB.
fn is_done(marker: &Path, key: &str) -> bool {
    use std::io::Read;
    let Ok(Some(file)) = crate::sys::open_existing(marker) else {
        return false;
    };
    let mut buf = Vec::with_capacity(512);
    if file.take(4096).read_to_end(&mut buf).is_err() {
        return false;
    }
    let Ok(text) = std::str::from_utf8(&buf) else {
        return false;
    };
    let mut lines = text.lines();
    lines.next() == Some(HEADER) && lines.next() == Some(&format!("key {}", escape(key)))
}

fn escape(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes the marker for `key` durably (temp file, fsync, rename, fsync
/// of the directory).
fn publish(marker: &Path, key: &str) -> io::Result<()> {
    let name = marker
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = marker.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let done = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!(
        "{HEADER}\nkey {}\ndone {done}\npid {}\n",
        escape(key),
        std::process::id()
    );
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, marker)?;
        crate::sys::sync_dir(marker)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
