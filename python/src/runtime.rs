//! Where waits run: a blocking wait on the caller's thread with the
//! interpreter detached, and async waits on one lockyard thread.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_lite::FutureExt;
use pyo3::prelude::*;

/// How often a blocking wait looks for a pending signal (Ctrl-C): the wait
/// itself is woken by the lock's release, not by this.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The process that first used lockyard's threads (0: none yet).
static USED_BY: AtomicU32 = AtomicU32::new(0);

/// Refuses use in a process forked from one that had used lockyard: only
/// the forking thread survives `fork`, so lockyard's threads (the event
/// reactor, the blocking pool, file watches) are missing in the child
/// while their state says they run, and a wait would hang. A clear error
/// instead; a child forked before any use, or started with `spawn` /
/// `forkserver`, is unaffected.
///
/// # Errors
///
/// `LockyardError` (kind `"unsupported"`) in such a child.
pub(crate) fn usable(py: Python<'_>) -> PyResult<()> {
    let me = std::process::id();
    match USED_BY.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(first) if first == me => Ok(()),
        Err(first) => Err(crate::errors::unsupported(
            py,
            &format!(
                "lockyard cannot be used in process {me}, forked from process {first} after \
                 that process used lockyard (its threads do not survive fork): use \
                 multiprocessing's \"spawn\" or \"forkserver\" start method, or fork before \
                 taking locks"
            ),
        )),
    }
}

/// Runs `work` to its end on this thread with the interpreter free for
/// other threads. A pending signal (KeyboardInterrupt) drops `work` and is
/// raised instead.
pub(crate) fn wait_blocking<T: Send>(
    py: Python<'_>,
    work: impl Future<Output = T> + Send,
) -> PyResult<T> {
    usable(py)?;
    py.detach(move || {
        let done = async { Ok(work.await) };
        let signals = async {
            loop {
                async_io::Timer::after(SIGNAL_CHECK).await;
                Python::attach(|py| py.check_signals())?;
            }
        };
        // The work first, so work that finished is never dropped for a
        // signal that came with it.
        async_io::block_on(done.or(signals))
    })
}

/// The executor of async acquisitions: one thread, which waits in
/// async-io's reactor (no polling) and calls back into Python only when
/// an acquisition ends. Threads do not survive `fork`, so a child process
/// starts its own.
///
/// # Errors
///
/// `RuntimeError` when the thread cannot be started.
pub(crate) fn executor() -> PyResult<&'static async_executor::Executor<'static>> {
    static EXECUTOR: Mutex<Option<(u32, &'static async_executor::Executor<'static>)>> =
        Mutex::new(None);
    let mut running = EXECUTOR.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some((owner, ex)) = *running {
        if owner == pid {
            return Ok(ex);
        }
    }
    // Leaked on purpose: the thread runs for the life of the process (a
    // forked child's copy of the parent's executor is left untouched).
    let ex: &'static async_executor::Executor<'static> =
        Box::leak(Box::new(async_executor::Executor::new()));
    std::thread::Builder::new()
        .name("lockyard-async".into())
        .spawn(move || async_io::block_on(ex.run(std::future::pending::<()>())))
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start lockyard's thread for async waits: {e}"
            ))
        })?;
    *running = Some((pid, ex));
    Ok(ex)
}
