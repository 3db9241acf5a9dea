//! Patterns built on the public API: named locks in one directory,
//! run-once across processes (on files and on PostgreSQL), closure helpers and a reentrant lock.

pub(crate) mod dir;
pub(crate) mod helpers;
pub(crate) mod names;
pub(crate) mod once;
#[cfg(feature = "postgres")]
mod pg_once;
pub(crate) mod reentrant;
