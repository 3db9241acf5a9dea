//! The crate's one error type: which lock, what went wrong, and why.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::Duration;

use crate::record::HolderRecord;
use crate::record::OsHolder;
use crate::sys::{self, NotFile};

/// What went wrong, without the details. Match on it to decide what to do.
///
/// New kinds may be added in minor releases, so a `match` needs a wildcard
/// arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A single attempt ([`Wait::TryOnce`](crate::Wait::TryOnce), `try_lock`)
    /// found the lock held in a conflicting mode, by another process or by
    /// another guard in this one.
    WouldBlock,
    /// The lock was still held when the deadline passed.
    /// [`Error::waited`] says how long the call waited.
    TimedOut,
    /// The lock file's parent directory is missing, and
    /// [`LockOptions::create_parent`](crate::LockOptions::create_parent) is
    /// off (the default) or creating it failed (permission, a file in the
    /// way, a read-only filesystem).
    CreateDir,
    /// The lock path names something that is not a regular file: a
    /// directory, a FIFO, a socket or a device.
    NotAFile,
    /// The lock path is a symbolic link. Lock files are never followed
    /// through links, so that a link planted in a shared directory cannot
    /// redirect the lock (or its creation) elsewhere.
    Symlink,
    /// The path cannot be a lock path at all: it is empty or contains a NUL
    /// byte, or names no file (`.`, `..`, `/`); or a lock name (of a
    /// [`LockDir`](crate::LockDir) or a PostgreSQL lock) is empty, too long
    /// or contains NUL.
    InvalidPath,
    /// A backend's configuration cannot be used: a connection string that
    /// does not parse, an `sslmode` that needs a TLS connector none was
    /// given, a table name that is not a plain identifier. Nothing was
    /// connected. [`Error::path`] names what was configured (`postgres`,
    /// or the table), never a password.
    InvalidConfig,
    /// This platform or filesystem does not support file locks.
    Unsupported,
    /// A shared hold, or a conversion, was asked of a soft lock or lease,
    /// which are exclusive only: a usage error, whatever the filesystem.
    ExclusiveOnly,
    /// A lock this guard held is no longer its own: a soft lock or lease
    /// that lapsed (or was judged stale) and was broken by another process,
    /// or a PostgreSQL lock whose session ended (terminated, server
    /// restarted, network cut). The guard's fencing token is stale.
    Lost,
    /// Any other operating-system error (permission denied, read-only
    /// filesystem, too many open files, ...); [`std::error::Error::source`]
    /// has the `io::Error`.
    Io,
}

/// The step that failed, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Open,
    Lock,
    Unlock,
    Remove,
    Inspect,
    Wait,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Lock => "lock",
            Op::Unlock => "unlock",
            Op::Remove => "remove",
            Op::Inspect => "inspect",
            Op::Wait => "wait for",
        }
    }
}

/// An error from lockyard: the lock path, a [`kind`](Error::kind), and the
/// underlying cause where there is one.
///
/// `Display` says what failed and names the lock, e.g.
/// `timed out after 5.00 s waiting for lock data/state.lock` or
/// `cannot open lock data/state.lock`; the underlying cause, if any, is
/// the error's [`source`](std::error::Error::source) and is not repeated
/// in `Display` (anyhow's `{:#}` prints the whole chain once).
///
/// # Examples
///
/// ```
/// use lockyard::{ErrorKind, FileLock};
///
/// let dir = tempfile::tempdir()?;
/// let lock = FileLock::new(dir.path().join("state.lock"));
/// let _held = lock.try_lock()?;
/// let err = lock.try_lock().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::WouldBlock);
/// assert!(err.to_string().contains("state.lock"));
///
/// // The cause is the source: a chain says it once.
/// std::fs::write(dir.path().join("plain"), "a file, not a directory")?;
/// let e = FileLock::new(dir.path().join("plain/x.lock")).try_lock().unwrap_err();
/// let cause = std::error::Error::source(&e).expect("an OS error").to_string();
/// assert!(!e.to_string().contains(&cause));
/// let chain = format!("{:#}", anyhow::Error::from(e));
/// assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Error {
    kind: ErrorKind,
    /// The lock's path, or a remote lock's address.
    name: PathBuf,
    /// `name` is a file's path.
    names_a_file: bool,
    op: Op,
    source: Option<io::Error>,
    waited: Option<Duration>,
    detail: Option<Detail>,
    /// Who holds a busy lock, boxed: most errors have none, and an error
    /// travels in every `Result` of the crate.
    holders: Option<Box<Holding>>,
}

impl fmt::Display for ErrorKind {
    /// A few words for the kind: `would block`, `timed out`, ...
    ///
    /// ```
    /// assert_eq!(lockyard::ErrorKind::TimedOut.to_string(), "timed out");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::WouldBlock => "would block",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::CreateDir => "cannot create the directory",
            ErrorKind::NotAFile => "not a regular file",
            ErrorKind::Symlink => "a symbolic link",
            ErrorKind::InvalidPath => "invalid path",
            ErrorKind::InvalidConfig => "invalid configuration",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::ExclusiveOnly => "exclusive only",
            ErrorKind::Lost => "lost",
            ErrorKind::Io => "I/O error",
        })
    }
}

/// An `io::Error` payload saying the path is not a regular file; lets
/// lower layers that speak `io::Error` report it precisely.
#[derive(Debug)]
pub(crate) struct NotFileError(pub(crate) NotFile);

impl fmt::Display for NotFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a regular file ({:?})", self.0)
    }
}

impl std::error::Error for NotFileError {}

impl NotFileError {
    pub(crate) fn io(what: NotFile) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, NotFileError(what))
    }
}

/// The `io::Error` for a shared hold or a conversion asked of a lock that
/// is exclusive only.
pub(crate) fn exclusive_only() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, ExclusiveOnlyError)
}

#[derive(Debug)]
struct ExclusiveOnlyError;

impl fmt::Display for ExclusiveOnlyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("soft locks and leases are exclusive only: they have no shared mode")
    }
}

impl std::error::Error for ExclusiveOnlyError {}

/// The `io::Error` that carries a panic of the user's `on_stale` hook
/// through the engine, which cleans up as after any failed attempt; the
/// panic resumes at the API's edge ([`Error::resume_panic`]).
pub(crate) fn hook_panicked(payload: Box<dyn std::any::Any + Send>) -> io::Error {
    io::Error::other(HookPanic(std::sync::Mutex::new(Some(payload))))
}

struct HookPanic(std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>);

impl fmt::Debug for HookPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HookPanic")
    }
}

impl fmt::Display for HookPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the on_stale hook panicked")
    }
}

impl std::error::Error for HookPanic {}

/// The `io::Error` for a lock that was taken over.
pub(crate) fn lost() -> io::Error {
    io::Error::other(LostError)
}

#[derive(Debug)]
struct LostError;

impl fmt::Display for LostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the lock was taken over by another holder")
    }
}

impl std::error::Error for LostError {}

#[derive(Clone, Debug)]
enum Detail {
    NotFile(NotFile),
    Nul,
    Empty,
    /// The path ends in no file name (`.`, `..`, `/`).
    NoFileName,
    Name(std::borrow::Cow<'static, str>),
    /// The parent directory is missing and creating it is off.
    NoParent,
}

/// What an error is about: a lock file's path, or a remote lock's address.
#[derive(Clone, Copy)]
pub(crate) struct Subject<'a> {
    name: &'a Path,
    names_a_file: bool,
}

impl<'a> Subject<'a> {
    pub(crate) fn file(path: &'a Path) -> Self {
        Subject {
            name: path,
            names_a_file: true,
        }
    }

    /// A lock that is not a file: `address` is what messages call it
    /// (`postgres://host:port/db#name`).
    pub(crate) fn remote(address: &'a Path) -> Self {
        Subject {
            name: address,
            names_a_file: false,
        }
    }
}

impl<'a> From<&'a Path> for Subject<'a> {
    fn from(path: &'a Path) -> Self {
        Subject::file(path)
    }
}

impl<'a> From<&'a PathBuf> for Subject<'a> {
    fn from(path: &'a PathBuf) -> Self {
        Subject::file(path)
    }
}

impl Error {
    pub(crate) fn would_block<'a>(path: impl Into<Subject<'a>>) -> Self {
        Self::bare(ErrorKind::WouldBlock, path, Op::Lock)
    }

    /// Resumes the panic of a user's hook that this error carried through
    /// the engine; any other error comes back as it is.
    pub(crate) fn resume_panic(self) -> Self {
        let payload = self
            .source
            .as_ref()
            .and_then(|e| e.get_ref())
            .and_then(|e| e.downcast_ref::<HookPanic>())
            .and_then(|p| p.0.lock().unwrap_or_else(PoisonError::into_inner).take());
        match payload {
            Some(payload) => std::panic::resume_unwind(payload),
            None => self,
        }
    }

    pub(crate) fn lost<'a>(path: impl Into<Subject<'a>>) -> Self {
        let path = path.into();
        crate::trace::lost(path.name);
        Self::bare(ErrorKind::Lost, path, Op::Lock)
    }

    pub(crate) fn timed_out<'a>(path: impl Into<Subject<'a>>, waited: Duration) -> Self {
        let mut e = Self::bare(ErrorKind::TimedOut, path, Op::Wait);
        e.waited = Some(waited);
        e
    }

    pub(crate) fn not_a_file<'a>(path: impl Into<Subject<'a>>, what: NotFile) -> Self {
        let kind = if what == NotFile::Symlink {
            ErrorKind::Symlink
        } else {
            ErrorKind::NotAFile
        };
        let mut e = Self::bare(kind, path, Op::Open);
        e.detail = Some(Detail::NotFile(what));
        e
    }

    pub(crate) fn invalid_path<'a>(path: impl Into<Subject<'a>>, nul: bool) -> Self {
        let mut e = Self::bare(ErrorKind::InvalidPath, path, Op::Open);
        e.detail = Some(if nul { Detail::Nul } else { Detail::Empty });
        e
    }

    /// A lock path that ends in no file name (`.`, `..`, `/`).
    pub(crate) fn no_file_name<'a>(path: impl Into<Subject<'a>>) -> Self {
        let mut e = Self::bare(ErrorKind::InvalidPath, path, Op::Open);
        e.detail = Some(Detail::NoFileName);
        e
    }

    /// A backend configuration that cannot be used; `what` names what was
    /// configured (never with a password).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn invalid_config<'a>(
        what: impl Into<Subject<'a>>,
        why: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        let mut e = Self::bare(ErrorKind::InvalidConfig, what, Op::Open);
        // What was configured (a URL, a table) is never a lock file.
        e.names_a_file = false;
        e.detail = Some(Detail::Name(why.into()));
        e
    }

    /// A lock name (for a [`LockDir`](crate::LockDir)) that cannot name a
    /// lock; `path` is the directory joined with the name as given.
    pub(crate) fn invalid_name<'a>(
        path: impl Into<Subject<'a>>,
        why: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        let mut e = Self::bare(ErrorKind::InvalidPath, path, Op::Open);
        e.detail = Some(Detail::Name(why.into()));
        e
    }

    pub(crate) fn create_dir<'a>(path: impl Into<Subject<'a>>, source: io::Error) -> Self {
        let mut e = Self::bare(ErrorKind::CreateDir, path, Op::Open);
        e.source = Some(source);
        e
    }

    /// The lock's directory is missing, and
    /// [`LockOptions::create_parent`](crate::LockOptions::create_parent)
    /// says not to create it.
    pub(crate) fn no_parent<'a>(path: impl Into<Subject<'a>>, source: io::Error) -> Self {
        let mut e = Self::create_dir(path, source);
        e.detail = Some(Detail::NoParent);
        e
    }

    /// Classifies an OS error met while doing `op` on the lock at `path`.
    pub(crate) fn io<'a>(path: impl Into<Subject<'a>>, op: Op, source: io::Error) -> Self {
        let path = path.into();
        if let Some(NotFileError(what)) = source.get_ref().and_then(|e| e.downcast_ref()) {
            return Self::not_a_file(path, *what);
        }
        if source
            .get_ref()
            .is_some_and(|e| e.is::<ExclusiveOnlyError>())
        {
            return Self::bare(ErrorKind::ExclusiveOnly, path, op);
        }
        if source.get_ref().is_some_and(|e| e.is::<LostError>()) {
            crate::trace::lost(path.name);
            return Self::bare(ErrorKind::Lost, path, op);
        }
        let kind = if sys::is_unsupported(&source) {
            ErrorKind::Unsupported
        } else if sys::is_symlink_refusal(&source) {
            ErrorKind::Symlink
        } else if sys::is_directory(&source) {
            ErrorKind::NotAFile
        } else if op == Op::Open && sys::is_not_a_directory(&source) {
            ErrorKind::CreateDir
        } else {
            ErrorKind::Io
        };
        let mut e = Self::bare(kind, path, op);
        if kind == ErrorKind::NotAFile {
            e.detail = Some(Detail::NotFile(NotFile::Directory));
        }
        e.source = Some(source);
        e
    }

    fn bare<'a>(kind: ErrorKind, subject: impl Into<Subject<'a>>, op: Op) -> Self {
        let subject = subject.into();
        Error {
            kind,
            name: subject.name.to_path_buf(),
            names_a_file: subject.names_a_file,
            op,
            source: None,
            waited: None,
            detail: None,
            holders: None,
        }
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::ErrorKind;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The lock file this error is about; `None` for a lock that is not a
    /// file (a [`PgLock`](crate::postgres::PgLock)), whose address
    /// [`name`](Self::name) gives.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// assert_eq!(lock.try_lock().unwrap_err().path(), Some(lock.path()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.names_a_file.then_some(self.name.as_path())
    }

    /// What the lock this error is about is called, whatever its backend:
    /// a file lock's path ([`FileLock::path`](crate::FileLock::path)), a
    /// PostgreSQL lock's address (`postgres://host:port/dbname#name`, as
    /// [`PgLock::address`](crate::postgres::PgLock::address) gives it:
    /// server and name, never credentials). For a configuration error, what
    /// was configured.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// let e = lock.try_lock().unwrap_err();
    /// assert_eq!(e.name(), lock.path().as_os_str());
    /// eprintln!("{} is busy", e.name().display());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &std::ffi::OsStr {
        self.name.as_os_str()
    }

    /// For [`ErrorKind::TimedOut`], how long the call waited before giving
    /// up; `None` for other kinds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// let e = lock.lock_blocking_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(e.waited() >= Some(Duration::from_millis(10)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn waited(&self) -> Option<Duration> {
        self.waited
    }

    /// Whether this is [`ErrorKind::WouldBlock`] or [`ErrorKind::TimedOut`]:
    /// the lock exists and works, somebody else simply has it.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// assert!(lock.try_lock().unwrap_err().is_contended());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_contended(&self) -> bool {
        matches!(self.kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
    }

    /// For [`ErrorKind::WouldBlock`] and [`ErrorKind::TimedOut`], who held
    /// the lock, when its holder record could be read.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let lock = lockyard::FileLock::new(dir.path().join("job.lock"));
    /// let _held = lock.try_lock()?;
    /// let e = lock.try_lock().unwrap_err();
    /// assert_eq!(e.holder().map(|h| h.pid()), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self) -> Option<&HolderRecord> {
        self.holders.as_ref().and_then(|h| h.record.as_ref())
    }

    fn holding(&mut self) -> &mut Holding {
        self.holders.get_or_insert_with(Box::default)
    }

    pub(crate) fn with_holder(mut self, holder: Option<HolderRecord>) -> Self {
        if holder.is_some() {
            self.holding().record = holder;
        }
        self
    }

    /// For [`ErrorKind::WouldBlock`] and [`ErrorKind::TimedOut`] on a file
    /// that holds data (which carries no holder record), who held it as
    /// the kernel's lock table says (Linux; empty elsewhere, and for lock
    /// files, whose record says who). See [`FileLock::os_holders`](crate::FileLock::os_holders).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("log.jsonl");
    /// std::fs::write(&data, "{}\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// let e = lock.try_lock().unwrap_err();
    /// if cfg!(target_os = "linux") {
    ///     assert!(e.os_holders().iter().any(|h| h.is_this_process()));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn os_holders(&self) -> &[OsHolder] {
        self.holders.as_ref().map_or(&[], |h| &h.os)
    }

    /// For [`ErrorKind::WouldBlock`] and [`ErrorKind::TimedOut`] on a soft
    /// lock or lease whose holder can only be outlived (a lease, or a holder
    /// on another host): how long until it may be taken over as stale, as
    /// far as this process could tell when the error was made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let options = LockOptions::new().lease(Duration::from_secs(30));
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), options.clone());
    /// let _held = lock.try_lock()?;
    /// let other = FileLock::with_options(dir.path().join("job.lock"), options);
    /// let e = other.try_lock().unwrap_err();
    /// assert!(e.breakable_in().is_some_and(|d| d <= Duration::from_secs(30)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn breakable_in(&self) -> Option<Duration> {
        self.holders.as_ref().and_then(|h| h.breakable_in)
    }

    /// For [`ErrorKind::WouldBlock`] and [`ErrorKind::TimedOut`] on a soft
    /// lock or lease: whether what keeps it busy is a file at its path that
    /// is not a lockyard lock file (it has no complete holder record). Such
    /// a file is never broken or removed, however old, because it may be
    /// someone's data: the lock stays busy until someone removes it.
    /// [`FileLock::state`](crate::FileLock::state) says
    /// [`LockState::Foreign`](crate::LockState::Foreign) for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{ErrorKind, FileLock, LockOptions, LockState};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("job.lock");
    /// std::fs::write(&path, "not a lock")?;
    /// let lock = FileLock::with_options(&path, LockOptions::new().soft());
    /// let e = lock.try_lock().unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::WouldBlock);
    /// assert!(e.is_foreign_file());
    /// assert!(e.to_string().contains("not a lockyard lock file"));
    /// assert_eq!(lock.state()?, LockState::Foreign);
    /// assert_eq!(std::fs::read(&path)?, b"not a lock"); // never touched
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_foreign_file(&self) -> bool {
        self.holders.as_ref().is_some_and(|h| h.foreign)
    }

    pub(crate) fn with_foreign(mut self, foreign: bool) -> Self {
        if foreign {
            self.holding().foreign = true;
        }
        self
    }

    pub(crate) fn with_breakable_in(mut self, after: Option<Duration>) -> Self {
        if after.is_some() {
            self.holding().breakable_in = after;
        }
        self
    }

    pub(crate) fn with_os_holders(mut self, holders: Vec<OsHolder>) -> Self {
        if !holders.is_empty() {
            self.holding().os = holders;
        }
        self
    }

    /// `pid 4242 (flock), exclusive; this process (pid 77), shared`.
    fn write_os_holders(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.os_holders().iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if h.is_this_process() {
                let mode = if h.is_exclusive() {
                    "exclusive"
                } else {
                    "shared"
                };
                write!(f, "this process (pid {}), {mode}", h.pid())?;
            } else {
                write!(f, "{h}")?;
            }
        }
        f.write_str(" (per the kernel)")
    }

    /// The operating-system error behind this one, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// // A directory cannot be a lock file.
    /// let e = lockyard::FileLock::new(dir.path()).try_lock().unwrap_err();
    /// assert_eq!(e.kind(), lockyard::ErrorKind::NotAFile);
    /// # let _ = e.io_error();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        self.source.as_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("name", &self.name);
        if let Some(w) = self.waited {
            d.field("waited", &w);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        if let Some(h) = self.holder() {
            d.field("holder", h);
        }
        if !self.os_holders().is_empty() {
            d.field("os_holders", &self.os_holders());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.name.display();
        match self.kind {
            ErrorKind::WouldBlock => match self.holder() {
                Some(h) => {
                    write!(f, "lock {path} is held by ")?;
                    write_holder(f, h)?;
                    self.write_breakable(f)
                }
                None if !self.os_holders().is_empty() => {
                    write!(f, "lock {path} is held by ")?;
                    self.write_os_holders(f)
                }
                None if self.is_foreign_file() => {
                    write!(f, "lock {path} is busy: ")?;
                    f.write_str(FOREIGN)
                }
                None => write!(f, "lock {path} is held elsewhere"),
            },
            ErrorKind::TimedOut => {
                let waited = self.waited.unwrap_or_default().as_secs_f64();
                write!(f, "timed out after {waited:.2} s waiting for lock {path}")?;
                match self.holder() {
                    Some(h) => {
                        f.write_str(", held by ")?;
                        write_holder(f, h)?;
                        self.write_breakable(f)
                    }
                    None if !self.os_holders().is_empty() => {
                        f.write_str(", held by ")?;
                        self.write_os_holders(f)
                    }
                    None if self.is_foreign_file() => {
                        f.write_str(": ")?;
                        f.write_str(FOREIGN)
                    }
                    None => Ok(()),
                }
            }
            ErrorKind::Lost => write!(f, "lock {path} was taken over by another holder"),
            ErrorKind::CreateDir => match &self.detail {
                Some(Detail::NoParent) => write!(
                    f,
                    "the directory for lock {path} does not exist (and creating it is off)"
                ),
                _ => write!(f, "cannot create the directory for lock {path}"),
            },
            ErrorKind::NotAFile | ErrorKind::Symlink => {
                let what = match &self.detail {
                    Some(Detail::NotFile(NotFile::Directory)) => "a directory",
                    Some(Detail::NotFile(NotFile::Fifo)) => "a FIFO",
                    Some(Detail::NotFile(NotFile::Socket)) => "a socket",
                    Some(Detail::NotFile(NotFile::Device)) => "a device",
                    Some(Detail::NotFile(NotFile::Other)) => "not a regular file",
                    _ => "a symbolic link (lock files are never followed through links)",
                };
                write!(f, "lock path {path} is {what}")
            }
            ErrorKind::InvalidPath => match &self.detail {
                Some(Detail::Nul) => write!(f, "lock path {path:?} contains a NUL byte"),
                Some(Detail::Name(why)) => write!(f, "invalid lock name {path:?}: {why}"),
                Some(Detail::NoFileName) => write!(
                    f,
                    "lock path {path:?} names no file (it ends in `.`, `..` or a root)"
                ),
                _ => write!(f, "lock path is empty"),
            },
            ErrorKind::InvalidConfig => match &self.detail {
                Some(Detail::Name(why)) => write!(f, "invalid configuration of {path}: {why}"),
                _ => write!(f, "invalid configuration of {path}"),
            },
            ErrorKind::Unsupported => write!(f, "file locking is not supported for {path}"),
            ErrorKind::ExclusiveOnly => write!(
                f,
                "lock {path} is a soft lock or lease, which is exclusive only: \
                 it has no shared mode"
            ),
            ErrorKind::Io => write!(f, "cannot {} lock {path}", self.op.verb()),
        }
    }
}

impl Error {
    /// `; breakable as stale in 3h 59m`, for a holder that can only be
    /// outlived.
    fn write_breakable(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(after) = self.breakable_in() else {
            return Ok(());
        };
        let secs = after.as_secs();
        match secs {
            3600.. => write!(
                f,
                "; breakable as stale in {}h {:02}m",
                secs / 3600,
                secs % 3600 / 60
            ),
            60.. => write!(
                f,
                "; breakable as stale in {}m {:02}s",
                secs / 60,
                secs % 60
            ),
            _ => write!(f, "; breakable as stale in {:.1} s", after.as_secs_f64()),
        }
    }
}

/// What a soft lock blocked by a file that is not lockyard's says.
const FOREIGN: &str = "the file at its path is not a lockyard lock file (no holder record \
     this version can read): it is never broken, however old; remove it if nothing uses it";

/// Who holds a busy lock, as far as the error knows.
#[derive(Debug, Default)]
struct Holding {
    record: Option<HolderRecord>,
    os: Vec<OsHolder>,
    breakable_in: Option<Duration>,
    foreign: bool,
}

/// A holder, saying so when it is this very process: another guard or
/// handle of ours holds the lock, and waiting for it where that guard
/// lives would never end.
fn write_holder(f: &mut fmt::Formatter<'_>, h: &HolderRecord) -> fmt::Result {
    if h.pid() == std::process::id() && h.host() == crate::sys::process::hostname() {
        write!(
            f,
            "this process ({h}): another guard or handle here holds it"
        )
    } else {
        write!(f, "{h}")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<Error> for io::Error {
    /// Keeps the whole lockyard error as the inner error, with the
    /// `io::ErrorKind` a caller of std would expect: `WouldBlock`,
    /// `TimedOut`, `Unsupported`, `InvalidInput`, or the OS error's own kind.
    fn from(err: Error) -> io::Error {
        let kind = match err.kind {
            ErrorKind::WouldBlock => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::InvalidPath
            | ErrorKind::InvalidConfig
            | ErrorKind::NotAFile
            | ErrorKind::Symlink
            | ErrorKind::ExclusiveOnly => io::ErrorKind::InvalidInput,
            ErrorKind::Lost => io::ErrorKind::Other,
            ErrorKind::CreateDir | ErrorKind::Io => err
                .source
                .as_ref()
                .map_or(io::ErrorKind::Other, io::Error::kind),
        };
        io::Error::new(kind, err)
    }
}
