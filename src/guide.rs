//! The guide: how lockyard behaves, page by page, beyond what each item's
//! reference says. Every example in it is compiled and run as a test.
//!
//! - [`semantics`]: what a lock is (per open file), fairness, reentrancy,
//!   cancellation, deadlines, lock files, and locking a file that holds
//!   data without changing it.
//! - [`holders`]: holder records and fencing tokens; strict locks, soft
//!   locks and leases; stale locks and what is never broken; network
//!   filesystems.
//! - [`patterns`]: named locks in a directory, run-once across processes,
//!   closure helpers, reentrant locks.
//! - [`postgres`]: the same locks in PostgreSQL, how they work and how they
//!   compare with files.
//! - [`object_storage`]: the same locks in S3 (feature `s3`): the
//!   protocol, leases, and what object storage cannot do.
//! - [`platforms`]: what each operating system and filesystem gives.
//!
//! The command-line tool has its own guide (the `lockyard-cli` crate's
//! README), and the measurements theirs (`benches/README.md` in the
//! repository).

#[doc = include_str!("../docs/guide/semantics.md")]
pub mod semantics {}

#[doc = include_str!("../docs/guide/holders.md")]
pub mod holders {}

#[doc = include_str!("../docs/guide/patterns.md")]
pub mod patterns {}

#[doc = include_str!("../docs/guide/postgres.md")]
pub mod postgres {}

#[doc = include_str!("../docs/guide/object-storage.md")]
pub mod object_storage {}

#[doc = include_str!("../docs/guide/platforms.md")]
pub mod platforms {}
