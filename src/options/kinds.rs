//! The options that choose the kind of lock and what it records: soft
//! locks and leases, holder records, and when a left-behind lock counts as
//! abandoned.

use std::sync::Arc;
use std::time::Duration;

use super::{LockOptions, StaleHook};
use crate::record::{LockKind, StaleLock};

impl LockOptions {
    /// A soft lock: a sidecar file at the lock path, created with
    /// `O_CREAT | O_EXCL` and holding the holder record, for filesystems
    /// whose OS locks are missing or unreliable. See the crate docs'
    /// "Which lock do I need".
    ///
    /// A companion file `<path>.ctl` stays beside it: it serialises the
    /// breaking of stale locks and remembers the last fencing token. Soft
    /// locks are exclusive; a shared request fails with
    /// [`ErrorKind::ExclusiveOnly`](crate::ErrorKind::ExclusiveOnly).
    ///
    /// A file at the path without a complete holder record is never broken
    /// or removed, however old: lockyard publishes a sidecar only once its
    /// record is complete, so such a file may be someone's data. The lock
    /// stays busy until someone removes it.
    ///
    /// A [`lease`](Self::lease) is a soft lock already: after `lease(ttl)`,
    /// `soft()` keeps the lease and its TTL (see "The kind of lock" on
    /// [`LockOptions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().soft());
    /// let guard = lock.try_lock()?;
    /// assert!(lock.path().exists()); // the sidecar exists while held
    /// drop(guard);
    /// assert!(!lock.path().exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn soft(mut self) -> Self {
        // A lease is the stronger requirement and includes this one.
        if self.kind != LockKind::Lease {
            self.kind = LockKind::Soft;
        }
        self
    }

    /// A lease: a soft lock that lapses `ttl` after its last renewal unless
    /// the holder renews it ([`LockGuard::refresh`](crate::LockGuard::refresh),
    /// [`LockGuard::keep_alive`](crate::LockGuard::keep_alive)).
    /// After that another process may take over, and the former holder's
    /// [`still_held`](crate::LockGuard::still_held) turns false.
    ///
    /// Called before or after [`soft`](Self::soft), the result is the same
    /// lease; called twice, the last TTL counts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().lease(Duration::from_secs(30)));
    /// let guard = lock.try_lock()?;
    /// assert_eq!(guard.record().and_then(|r| r.ttl()), Some(Duration::from_secs(30)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.kind = LockKind::Lease;
        self.lease_ttl = Some(ttl);
        self
    }

    /// Write a holder record on every exclusive acquisition (on by
    /// default). Off saves a read and a write per acquisition and per
    /// release, and leaves [`FileLock::holder`](crate::FileLock::holder)
    /// and fencing tokens without data. Soft locks always write one.
    ///
    /// A lock file lockyard creates begins with a "free" record either
    /// way: that record is what marks it as a lock file, one lockyard may
    /// write into. Files that hold data never get a record, whatever this
    /// says (see [`FileLock::new`](crate::FileLock::new)).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("hot.lock"), LockOptions::new().metadata(false));
    /// let guard = lock.try_lock()?;
    /// assert_eq!(guard.token(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn metadata(mut self, on: bool) -> Self {
        self.metadata = on;
        self
    }

    /// An owner id recorded in the holder record, e.g. `ingestion-service-1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let lock = FileLock::with_options(dir.path().join("job.lock"), LockOptions::new().owner("ingest-1"));
    /// let _guard = lock.try_lock()?;
    /// assert_eq!(lock.holder()?.and_then(|h| h.owner().map(String::from)), Some("ingest-1".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into().into());
        self
    }

    /// How old a soft lock must be before it is treated as abandoned when
    /// its holder's liveness cannot be checked (a holder on another host,
    /// or an unreadable record). `None` never breaks such a lock by age.
    /// Five minutes by default. A holder proven alive is never broken by
    /// age; a lease lapses by its own TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::LockOptions;
    ///
    /// // Never break a lock whose holder cannot be checked, however old.
    /// let patient = LockOptions::new().soft().stale_after(None);
    /// // Break it after an hour.
    /// let hourly = LockOptions::new().soft().stale_after(Some(Duration::from_secs(3600)));
    /// # drop((patient, hourly));
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn stale_after(mut self, age: Option<Duration>) -> Self {
        self.stale_after = age;
        self
    }

    /// Called with each stale soft lock before it is broken; returning
    /// `false` refuses the takeover (the acquisition keeps waiting). Use it
    /// to log takeovers or to veto them.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// let options = LockOptions::new().soft().on_stale(|stale| {
    ///     eprintln!("taking over {}: {}", stale.path().display(), stale.reason());
    ///     true
    /// });
    /// # drop(options);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn on_stale(mut self, hook: impl Fn(&StaleLock) -> bool + Send + Sync + 'static) -> Self {
        self.on_stale = Some(StaleHook(Arc::new(hook)));
        self
    }

    /// Whether a free OS lock on a left-behind soft lock file proves its
    /// holder (on this host) dead (on by default). Turn it off on
    /// filesystems whose locks always succeed; liveness then rests on the
    /// PID, process start time and boot id in the record.
    ///
    /// Whatever this says, the OS lock counts as evidence only on a
    /// filesystem that only this machine's kernel serves (a local disk):
    /// on Linux, ext2/3/4, xfs, btrfs, tmpfs, ramfs, f2fs, zfs, overlayfs,
    /// bcachefs, reiserfs, jfs, nilfs, vfat, exfat and ntfs3; on macOS and
    /// FreeBSD apfs, hfs, ufs, zfs, tmpfs, msdos and exfat. Network and
    /// FUSE filesystems (NFS, SMB, sshfs...) are never trusted for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// // On a filesystem whose locks always succeed, judge by PID and boot id.
    /// let options = LockOptions::new().soft().trust_os_lock(false);
    /// # drop(options);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn trust_os_lock(mut self, on: bool) -> Self {
        self.trust_os_lock = on;
        self
    }

    /// Accept a strict (OS) lock on a filesystem whose OS locks are known
    /// to stay on this machine (off by default).
    ///
    /// On some network filesystems each machine's kernel keeps its own
    /// locks: on sshfs, a `flock` by a process on one machine does not
    /// exclude a process on another. A strict lock there would exclude
    /// only this machine's processes, so by default it fails with
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported), pointing
    /// to [`soft`](Self::soft), which works there. Turn this on when every
    /// user of the lock runs on this machine. Known today (Linux): FUSE
    /// mounts of sshfs, rclone, s3fs, gcsfuse and goofys.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{FileLock, LockOptions};
    ///
    /// // Only this machine's processes use this lock, whatever the mount.
    /// let options = LockOptions::new().local_os_locks(true);
    /// let lock = FileLock::with_options("/mnt/remote/job.lock", options);
    /// # drop(lock);
    /// ```
    #[must_use = "a builder method returns the changed value; the original is unchanged"]
    pub fn local_os_locks(mut self, on: bool) -> Self {
        self.local_os_locks = on;
        self
    }
}
