//! File locks that `.await` in any executor.
//!
//! lockyard takes exclusive and shared OS file locks (`flock(2)` on Unix,
//! `LockFileEx` on Windows) from async code under any executor, or from
//! blocking code, with explicit timeouts and guards that are safe to cancel.
//!
//! ```
//! use std::time::Duration;
//! use lockyard::FileLock;
//!
//! # futures_lite::future::block_on(async {
//! # let dir = tempfile::tempdir()?;
//! # let state = dir.path().join("state.json");
//! let lock = FileLock::for_file(&state);                 // state.json.lock
//! let guard = lock.lock().await?;                        // exclusive, waits
//! drop(guard);
//! let guard = lock.lock_shared().await?;                 // shared, waits
//! drop(guard);
//! let guard = lock.try_lock()?;                          // never waits
//! drop(guard);
//! let guard = lock.lock_timeout(Duration::from_secs(5)).await?;
//! drop(guard);
//! let guard = lock.lock_blocking()?;                     // sync code
//! # drop(guard);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # The model
//!
//! - **Per open file, not per process.** Locks behave as `flock` does: two
//!   handles in one process exclude each other exactly as two processes do.
//!   (POSIX `fcntl` locks, which a process never conflicts with, are not
//!   used.)
//! - **One queue per lock file per process.** All tasks and threads of a
//!   process waiting for one lock file wait in a FIFO queue keyed by the
//!   file's identity. A release wakes the next one directly; shared waiters
//!   at the head are admitted together; a shared request never jumps an
//!   earlier exclusive one. Only the head of the queue watches for *other
//!   processes*: it watches the lock file (one inotify instance per
//!   process on Linux, one kqueue on macOS and the BSDs) and retries as
//!   soon as another process announces its release (a lockyard holder sets
//!   the file's times right after unlocking, on Linux only when a waiter
//!   has marked the file), closes it (seen on Linux), or
//!   removes a soft lock's sidecar, with an
//!   exponential [`Backoff`] underneath for releases that fire no event
//!   (see [`LockOptions::file_events`]). When other processes keep taking
//!   the lock back to back and win every race, or when asked to, it parks
//!   one blocking-pool thread in the kernel instead ([`WaitStrategy`]). The
//!   process uses one descriptor per lock file however many wait, and no
//!   thread per waiter.
//! - **Cancellation.** Dropping an [`Acquire`] future at any point gives
//!   everything back; dropping a [`LockGuard`] releases the lock.
//!   [`LockGuard::unlock`] releases it and reports errors.
//! - **No reentrancy.** A task that holds a lock exclusively and asks for it
//!   again waits for itself, forever with [`Wait::Forever`] (as with
//!   `std::sync::Mutex`). Use [`Wait::TryOnce`] or a timeout where that can
//!   happen.
//! - **Fairness between processes** is the kernel's: a release lets any
//!   process's waiter in; the next in-process waiter retries at once.
//!
//! # Which lock do I need?
//!
//! | kind | use it when | a dead holder is detected by | never |
//! |---|---|---|---|
//! | **strict** (default) | the filesystem has working OS locks shared by every machine using it: local disks, NFS with a lock manager (refused on sshfs: see [`LockOptions::local_os_locks`]) | the kernel, at once | broken by age or PID |
//! | **soft** ([`LockOptions::soft`]) | OS locks are missing or stay on each machine (sshfs and other FUSE or network filesystems shared by several machines), or the lock must be visible as a file | a free OS lock on its file (local disks only), its PID and start time (same host name and boot id), or `stale_after` | broken while its holder is provably alive |
//! | **lease** ([`LockOptions::lease`]) | a holder may hang or be partitioned away, and others must be able to take over after a TTL | its TTL lapsing without renewal | taken over before the TTL the holder declared |
//!
//! Every exclusive acquisition of a lock file writes a **holder record** (PID, host, boot
//! id, process start time, time, owner id, TTL, fencing token) that
//! [`FileLock::holder`] and error messages show:
//! `lock data/state.lock is held by pid 4242 on build-3 (owner "indexer") for 12.3 s`.
//! The **fencing token** ([`LockGuard::token`]) increases with every
//! acquisition; a resource that remembers the highest token it has seen
//! can refuse a delayed former holder. [`LockOptions::metadata`] turns
//! records off for strict locks. [`clean_stale`] removes provably unused
//! lock files from a directory.
//!
//! **Locking a file that holds data never changes it.** lockyard writes
//! only into lock files it made (it created them, or they begin with a
//! complete holder record); any other file is locked as it is, opened
//! read-only, with no record and no token. See [`FileLock::new`].
//!
//! # Runtimes
//!
//! | feature | what it changes |
//! |---|---|
//! | *(none)* | async-io timers and the `blocking` pool: works under any executor, including `futures::executor`, smol and async-std |
//! | `tokio` | inside a tokio runtime, tokio's clock, timers, blocking pool and I/O reactor, so `tokio::time::pause()` governs timeouts and `keep_alive`; a runtime built without time or I/O gets the runtime-free timer or reactor instead (never a panic; under `panic = "abort"`, where a runtime cannot be probed, it is taken to have both); outside one, nothing changes |
//! | `smol`, `async-std` | nothing: these runtimes already use async-io and `blocking`; the features exist so a manifest can state them |
//!
//! Feature `postgres` adds [`postgres`], the same locks in a PostgreSQL
//! database; feature `serde` implements `serde::Serialize` for
//! [`LockInfo`], [`LockState`] and [`HolderRecord`], in the shape of
//! `lockyard status --json`; feature `tracing` emits events under the
//! target `lockyard` for a wait that blocks (path, mode, holder), how it
//! ended, a stale lock broken (previous holder, reason), a lease lost and a
//! watch limit reached.
//!
//! # Platforms
//!
//! Unix: `flock(2)` through rustix. Windows: `LockFileEx` on one byte far
//! past the end of the file, which conflicts with whole-file locks such as
//! std's `File::lock` but leaves the file's content readable. Elsewhere
//! every operation fails with [`ErrorKind::Unsupported`]. On NFS, `flock`
//! is emulated with byte-range locks by Linux (since 2.6.12); the lock file
//! is opened read-write because NFSv4 needs that for exclusive locks.
#![deny(missing_docs, missing_debug_implementations, unsafe_code)]
// docs.rs (nightly, `--cfg docsrs`) marks every item that needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(rust_2018_idioms, unreachable_pub)]

// Layers, each importing only those listed before it (checked by
// `tests/layout.rs`): the shared vocabulary (`mode`, `record`, `error`,
// `rt`, `sys`), the backend-agnostic `engine`, `options`, the file
// backends' `notify`, the `backend`s, the public `api`, and the
// `patterns` built on it. CONTRIBUTING.md has the map.
mod api;
mod backend;
mod engine;
mod error;
pub mod guide;
mod mode;
mod notify;
mod options;
mod patterns;
mod record;
mod rt;
mod sys;
mod trace;

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
pub use crate::api::object;
#[cfg(feature = "postgres")]
pub use crate::api::postgres;
pub use crate::api::{Acquire, ConvertError, FileLock, LockGuard, LockInfo, LockState};

/// The former name of [`LockGuard`], which every lock type's guard now
/// bears (a PostgreSQL lock's guard is no file's).
#[deprecated(since = "0.1.0", note = "renamed `LockGuard`")]
pub type FileLockGuard = LockGuard;
pub use crate::backend::clean::{clean_stale, clean_stale_dry_run, CleanReport};
pub use crate::engine::Backoff;
pub use crate::error::{Error, ErrorKind};
pub use crate::mode::{LockMode, Wait, WaitStrategy};
pub use crate::options::{LockOptions, DEFAULT_STALE_AFTER};
pub use crate::patterns::dir::LockDir;
pub use crate::patterns::helpers::{
    with_lock, with_lock_async, with_lock_shared, with_lock_shared_async,
};
#[allow(deprecated)]
pub use crate::patterns::helpers::{
    with_read_lock, with_read_lock_async, with_write_lock, with_write_lock_async,
};
pub use crate::patterns::names::{decode_lock_name, encode_lock_name, NameError, MAX_ENCODED_NAME};
pub use crate::patterns::once::{
    once, once_async, once_keyed, once_keyed_async, once_with, OnceOutcome,
};
pub use crate::patterns::reentrant::{ReentrantGuard, ReentrantLock};
pub use crate::record::{parse as parse_record, HolderRecord, LockKind, RecordError};
pub use crate::record::{OsHolder, StaleLock, StaleReason};

// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
