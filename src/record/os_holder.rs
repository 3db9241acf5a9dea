//! Who holds a file locked, as the kernel's lock table says: the type.
//! Reading the table is platform code (`sys/os_holders.rs`).

use std::fmt;

/// One lock the kernel reports on a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OsHolder {
    pid: u32,
    exclusive: bool,
    kind: String,
    command: Option<String>,
}

impl OsHolder {
    pub(crate) fn new(pid: u32, exclusive: bool, kind: String) -> Self {
        OsHolder {
            pid,
            exclusive,
            kind,
            command: None,
        }
    }

    /// The same holder, with its command name.
    // Only Linux's lock table names commands.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn with_command(mut self, command: Option<String>) -> Self {
        self.command = command;
        self
    }

    /// The process that took the lock, as the kernel recorded it (for a
    /// lock inherited across `fork`, the process that first took it).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.csv");
    /// std::fs::write(&data, "a,b\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// for holder in lock.os_holders() {   // empty off Linux
    ///     assert_eq!(holder.pid(), std::process::id());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Exclusive (`WRITE` in the table) or shared (`READ`).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.csv");
    /// std::fs::write(&data, "a,b\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// for holder in lock.os_holders() {   // empty off Linux
    ///     assert!(holder.is_exclusive());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// The kind of lock: `FLOCK` (what lockyard and flock(1) take),
    /// `POSIX` or `OFDLCK`.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.csv");
    /// std::fs::write(&data, "a,b\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// for holder in lock.os_holders() {   // empty off Linux
    ///     assert_eq!(holder.kind(), "FLOCK");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The process's command name, if it still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.csv");
    /// std::fs::write(&data, "a,b\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// for holder in lock.os_holders() {   // empty off Linux
    ///     println!("held by {:?}", holder.command());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// Whether the holder is this process.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let data = dir.path().join("data.csv");
    /// std::fs::write(&data, "a,b\n")?;
    /// let lock = lockyard::FileLock::new(&data);
    /// let _held = lock.try_lock()?;
    /// for holder in lock.os_holders() {   // empty off Linux
    ///     assert!(holder.is_this_process());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_this_process(&self) -> bool {
        self.pid == std::process::id()
    }
}

impl fmt::Display for OsHolder {
    /// `pid 4242 (flock), exclusive`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(c) = &self.command {
            write!(f, " ({c})")?;
        }
        let mode = if self.exclusive {
            "exclusive"
        } else {
            "shared"
        };
        write!(f, ", {mode}")
    }
}
