//! The tokio adapter: used only for acquisitions first polled inside a tokio
//! runtime that has a timer.
//!
//! A runtime built without time (or without I/O) panics when a timer (or a
//! registration with its reactor) is created in it, and tokio offers no
//! public way to ask which drivers a runtime has (tokio-rs/tokio#8361). So
//! each runtime is probed once, by creating a timer under `catch_unwind`
//! with the panic message kept quiet, and the answer is remembered by
//! runtime id. A runtime without time gets the runtime-free path (async-io
//! timers, the `blocking` pool), as if the feature were off; one without
//! I/O gets async-io's reactor for file events. Where panics abort the
//! process (`panic = "abort"`), nothing can be probed: the runtime is taken
//! to have both, as tokio's own timers and sockets take it.

use std::cell::Cell;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::runtime::{Handle, Id};

/// Whether the current thread is inside a tokio runtime that has a timer.
pub(super) fn in_runtime_with_time() -> bool {
    let Ok(handle) = Handle::try_current() else {
        return false;
    };
    drivers(&handle).time
}

/// Whether the current tokio runtime has an I/O reactor, given that the
/// caller is inside one.
#[cfg(unix)]
pub(crate) fn has_io() -> bool {
    Handle::try_current().is_ok_and(|handle| drivers(&handle).io)
}

/// tokio's clock as a `std::time::Instant` (it differs from
/// `Instant::now()` while time is paused).
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(super) fn sleep_until(at: Instant) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at))
}

/// Spawns on the current runtime's blocking pool, or hands `f` back if the
/// runtime is gone.
pub(super) fn spawn_blocking<T, F>(f: F) -> Result<tokio::task::JoinHandle<T>, F>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => Ok(handle.spawn_blocking(f)),
        Err(_) => Err(f),
    }
}

/// The drivers a runtime was built with.
#[derive(Clone, Copy, Debug)]
struct Drivers {
    time: bool,
    // Read only where file events come through a reactor (Unix).
    #[cfg_attr(not(unix), allow(dead_code))]
    io: bool,
}

/// How many runtimes' answers are kept; the oldest goes first.
const REMEMBERED: usize = 16;

fn drivers(handle: &Handle) -> Drivers {
    thread_local! {
        // The last runtime this thread asked about: a worker thread
        // belongs to one runtime for its whole life.
        static LAST: Cell<Option<(Id, Drivers)>> = const { Cell::new(None) };
    }
    let id = handle.id();
    if let Some((last, drivers)) = LAST.get() {
        if last == id {
            return drivers;
        }
    }
    static KNOWN: Mutex<Vec<(Id, Drivers)>> = Mutex::new(Vec::new());
    // Nothing panics under this lock.
    let known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let found = known.iter().find(|(k, _)| *k == id).map(|(_, d)| *d);
    drop(known);
    let drivers = found.unwrap_or_else(|| {
        let drivers = probe(handle);
        let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= REMEMBERED {
            known.remove(0);
        }
        known.push((id, drivers));
        drivers
    });
    LAST.set(Some((id, drivers)));
    drivers
}

/// Asks the runtime by trying: a timer, and a registration with its
/// reactor (of a socket nobody uses).
#[cfg(panic = "unwind")]
fn probe(handle: &Handle) -> Drivers {
    let _entered = handle.enter();
    let time = quietly(|| drop(tokio::time::sleep(std::time::Duration::ZERO)));
    let io = quietly(|| {
        let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0));
        // No socket to register (no network at all): the reactor cannot
        // be asked, and file events do not need one; take it as present.
        if let Ok(socket) = socket.and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            drop(tokio::net::UdpSocket::from_std(socket));
        }
    });
    Drivers { time, io }
}

#[cfg(not(panic = "unwind"))]
fn probe(_handle: &Handle) -> Drivers {
    Drivers {
        time: true,
        io: true,
    }
}

#[cfg(panic = "unwind")]
thread_local! {
    /// Set while this thread probes: the panic hook stays quiet.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`; false if it panicked. The panic hook in force says nothing of
/// a panic on this thread meanwhile; every other panic reaches it as before.
#[cfg(panic = "unwind")]
fn quietly(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    static HOOKED: std::sync::Once = std::sync::Once::new();
    HOOKED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PROBING.get() {
                previous(info);
            }
        }));
    });
    PROBING.set(true);
    let ran = std::panic::catch_unwind(f).is_ok();
    PROBING.set(false);
    ran
}
