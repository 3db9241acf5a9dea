//! What a [`LockOptions`] is set to: one getter per builder method, named
//! like it with `get_` in front, as `std::process::Command` names its
//! getters (the plain names are the builder methods).

use std::time::Duration;

use super::LockOptions;
use crate::engine::Backoff;
use crate::mode::WaitStrategy;
use crate::record::LockKind;

impl LockOptions {
    /// The backoff schedule; see [`backoff`](Self::backoff).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{Backoff, LockOptions};
    ///
    /// assert_eq!(LockOptions::new().get_backoff(), Backoff::default());
    /// ```
    pub fn get_backoff(&self) -> Backoff {
        self.backoff
    }

    /// How a contended wait waits; see [`wait_strategy`](Self::wait_strategy).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::{LockOptions, WaitStrategy};
    ///
    /// assert_eq!(LockOptions::new().get_wait_strategy(), WaitStrategy::Adaptive);
    /// ```
    pub fn get_wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Whether a lock file lockyard made is removed on release; see
    /// [`remove_on_release`](Self::remove_on_release).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(LockOptions::new().remove_on_release(true).get_remove_on_release());
    /// ```
    pub fn get_remove_on_release(&self) -> bool {
        self.remove_on_release
    }

    /// Whether each lock is followed by an identity check (always so with
    /// [`remove_on_release`](Self::remove_on_release)); see
    /// [`verify_identity`](Self::verify_identity).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(!LockOptions::new().get_verify_identity());
    /// assert!(LockOptions::new().verify_identity(true).get_verify_identity());
    /// ```
    pub fn get_verify_identity(&self) -> bool {
        self.verify_identity || self.remove_on_release
    }

    /// Whether a missing parent directory is created; see
    /// [`create_parent`](Self::create_parent).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(!LockOptions::new().get_create_parent());
    /// assert!(LockOptions::new().create_parent(true).get_create_parent());
    /// ```
    pub fn get_create_parent(&self) -> bool {
        self.create_parent
    }

    /// Whether async acquisitions open the lock file on a blocking thread;
    /// see [`offload_open`](Self::offload_open).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(LockOptions::new().offload_open(true).get_offload_open());
    /// ```
    pub fn get_offload_open(&self) -> bool {
        self.offload_open
    }

    /// The permission bits a new lock file is created with; see
    /// [`file_mode`](Self::file_mode).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert_eq!(LockOptions::new().file_mode(0o600).get_file_mode(), 0o600);
    /// ```
    pub fn get_file_mode(&self) -> u32 {
        self.file_mode
    }

    /// Whether waiters watch for releases in other processes and holders
    /// announce theirs; see [`file_events`](Self::file_events).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(LockOptions::new().get_file_events());
    /// assert!(!LockOptions::new().file_events(false).get_file_events());
    /// ```
    pub fn get_file_events(&self) -> bool {
        self.file_events
    }

    /// The kind of lock: strict unless [`soft`](Self::soft) or
    /// [`lease`](Self::lease) was asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{LockKind, LockOptions};
    ///
    /// assert_eq!(LockOptions::new().get_kind(), LockKind::Strict);
    /// assert_eq!(LockOptions::new().lease(Duration::from_secs(5)).get_kind(), LockKind::Lease);
    /// ```
    pub fn get_kind(&self) -> LockKind {
        self.kind
    }

    /// A lease's time to live, if this is a lease; see [`lease`](Self::lease).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::LockOptions;
    ///
    /// let ttl = Duration::from_secs(30);
    /// assert_eq!(LockOptions::new().lease(ttl).get_lease(), Some(ttl));
    /// assert_eq!(LockOptions::new().get_lease(), None);
    /// ```
    pub fn get_lease(&self) -> Option<Duration> {
        self.lease_ttl
    }

    /// Whether holders write a holder record; see [`metadata`](Self::metadata).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(LockOptions::new().get_metadata());
    /// assert!(!LockOptions::new().metadata(false).get_metadata());
    /// ```
    pub fn get_metadata(&self) -> bool {
        self.metadata
    }

    /// The owner label written into holder records; see [`owner`](Self::owner).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert_eq!(LockOptions::new().owner("etl").get_owner(), Some("etl"));
    /// assert_eq!(LockOptions::new().get_owner(), None);
    /// ```
    pub fn get_owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The age past which a soft lock whose holder cannot be checked counts
    /// as stale (`None`: never by age); see [`stale_after`](Self::stale_after).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockyard::{LockOptions, DEFAULT_STALE_AFTER};
    ///
    /// assert_eq!(LockOptions::new().soft().get_stale_after(), Some(DEFAULT_STALE_AFTER));
    /// let hour = Duration::from_secs(3600);
    /// assert_eq!(LockOptions::new().soft().stale_after(Some(hour)).get_stale_after(), Some(hour));
    /// ```
    pub fn get_stale_after(&self) -> Option<Duration> {
        self.stale_after
    }

    /// Whether an [`on_stale`](Self::on_stale) hook is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(!LockOptions::new().has_on_stale());
    /// assert!(LockOptions::new().soft().on_stale(|_| true).has_on_stale());
    /// ```
    pub fn has_on_stale(&self) -> bool {
        self.on_stale.is_some()
    }

    /// Whether a soft lock trusts the OS lock on its control file; see
    /// [`trust_os_lock`](Self::trust_os_lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// let options = LockOptions::new().soft().trust_os_lock(true);
    /// assert!(options.get_trust_os_lock());
    /// ```
    pub fn get_trust_os_lock(&self) -> bool {
        self.trust_os_lock
    }

    /// Whether strict locks are taken where OS locks stay on one machine;
    /// see [`local_os_locks`](Self::local_os_locks).
    ///
    /// # Examples
    ///
    /// ```
    /// use lockyard::LockOptions;
    ///
    /// assert!(!LockOptions::new().get_local_os_locks());
    /// assert!(LockOptions::new().local_os_locks(true).get_local_os_locks());
    /// ```
    pub fn get_local_os_locks(&self) -> bool {
        self.local_os_locks
    }
}
