//! Nothing to use: this package holds lockyard's runnable examples
//! (`cargo run --example turns`, `download`, `handoff`, `postgres`,
//! `peers_worker`), kept apart from the library so that running one builds
//! only what it needs.
