//! Behaviour that must hold under every executor and on every backend.
//! Each behaviour (`behaviour/suite.rs`) is an async function;
//! `under_every_runtime!` runs it on tokio (current-thread and
//! multi-thread), smol, async-std and `futures::executor::block_on`. The
//! suite runs twice: on lock files (`files`), and on the in-memory
//! reference backend (`memory`), which shares no code with the file
//! backends, so the engine's queue, state machine and guards are proven
//! through its backend seam. Concurrency inside a behaviour comes from
//! joining futures in one task, so no behaviour depends on a runtime's
//! spawn.

mod common;

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use futures::future::join_all;
use futures_lite::future::{self, poll_once};
use lockyard::{ErrorKind, FileLock, LockMode, LockOptions, Wait};

use common::{join_within, tempdir, wake_only};

/// Polls `f` a few times so it reaches its waiting state.
async fn settle<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
    for _ in 0..3 {
        if let Some(out) = poll_once(&mut *f).await {
            return Some(out);
        }
        future::yield_now().await;
    }
    None
}

/// Runs `behaviour` on its own thread, failing the test if it takes more
/// than a minute: the wake-only options wait an hour between retries, so a
/// lost wake-up would otherwise hang the suite.
fn within_a_minute(behaviour: impl FnOnce() + Send + 'static) {
    let thread = std::thread::spawn(behaviour);
    join_within(
        thread,
        Duration::from_secs(60),
        "the behaviour did not finish in a minute",
    );
}

macro_rules! under_every_runtime {
    ($($name:ident),* $(,)?) => {
        mod tokio_current_thread {
            $(#[test] fn $name() {
                super::within_a_minute(|| {
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
                        .block_on(super::$name());
                });
            })*
        }
        mod tokio_multi_thread {
            $(#[test] fn $name() {
                super::within_a_minute(|| {
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
                        .block_on(super::$name());
                });
            })*
        }
        // Runtimes without a timer or a reactor: with the `tokio` feature,
        // lockyard must fall back to its own (tokio would panic).
        mod tokio_without_drivers {
            $(#[test] fn $name() {
                super::within_a_minute(|| {
                    tokio::runtime::Builder::new_current_thread().build().unwrap()
                        .block_on(super::$name());
                });
            })*
        }
        mod tokio_time_without_io {
            $(#[test] fn $name() {
                super::within_a_minute(|| {
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap()
                        .block_on(super::$name());
                });
            })*
        }
        mod smol_runtime {
            $(#[test] fn $name() { super::within_a_minute(|| smol::block_on(super::$name())); })*
        }
        mod async_std_runtime {
            $(#[test] fn $name() {
                super::within_a_minute(|| async_std::task::block_on(super::$name()));
            })*
        }
        mod futures_executor {
            $(#[test] fn $name() {
                super::within_a_minute(|| futures::executor::block_on(super::$name()));
            })*
        }
    };
}

/// Where the suite's locks live.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Files,
    Memory,
}

mod files {
    use super::*;
    const BACKEND: Backend = Backend::Files;
    include!("behaviour/suite.rs");
}

mod memory {
    use super::*;
    const BACKEND: Backend = Backend::Memory;
    include!("behaviour/suite.rs");
}
