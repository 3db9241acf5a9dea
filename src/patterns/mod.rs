//! Patterns built on the public API: named locks in one directory,
//! run-once across processes (on files, PostgreSQL and object storage),
//! closure helpers and a reentrant lock.

pub(crate) mod dir;
pub(crate) mod helpers;
pub(crate) mod names;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
mod object_once;
pub(crate) mod once;
#[cfg(feature = "postgres")]
mod pg_once;
pub(crate) mod reentrant;
