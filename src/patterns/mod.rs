//! Patterns built on the public API: named locks in one directory,
//! run-once across processes, closure helpers and a reentrant lock.

pub(crate) mod dir;
pub(crate) mod helpers;
pub(crate) mod names;
pub(crate) mod once;
pub(crate) mod reentrant;
