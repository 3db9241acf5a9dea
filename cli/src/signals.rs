//! Signals: while waiting for a lock, SIGINT/SIGTERM/SIGHUP interrupt the
//! wait (the acquire future is dropped, which gives back anything it had);
//! while a command runs, they are forwarded to it, and the lock is released
//! when it exits.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// What the signal thread and the main thread share.
#[derive(Debug, Default)]
pub struct Signals {
    /// The first signal caught while no command ran (0: none).
    caught: AtomicI32,
    /// The running command's PID (0: none).
    child: AtomicU32,
    arrived: Event,
}

impl Signals {
    /// Starts catching signals. Where that is not possible (non-Unix),
    /// signals keep their default effect.
    pub fn install() -> Arc<Signals> {
        let shared = Arc::new(Signals::default());
        #[cfg(unix)]
        unix::spawn(Arc::clone(&shared));
        shared
    }

    /// Resolves when a signal interrupts the wait, with its number.
    pub async fn interrupted(&self) -> i32 {
        loop {
            let sig = self.caught.load(Ordering::SeqCst);
            if sig != 0 {
                return sig;
            }
            let listener = self.arrived.listen();
            let sig = self.caught.load(Ordering::SeqCst);
            if sig != 0 {
                return sig;
            }
            listener.await;
        }
    }

    /// From now on, signals go to the command `pid`.
    pub fn forward_to(&self, pid: u32) {
        self.child.store(pid, Ordering::SeqCst);
    }

    /// The command is gone: signals are caught again.
    pub fn stop_forwarding(&self) {
        self.child.store(0, Ordering::SeqCst);
    }

    /// The signal caught before or after the command ran, if any.
    pub fn caught(&self) -> Option<i32> {
        Some(self.caught.load(Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

#[cfg(unix)]
mod unix {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::exfiltrator::WithOrigin;
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::low_level::siginfo::Cause;

    use super::Signals;

    pub(super) fn spawn(shared: Arc<Signals>) {
        let Ok(mut incoming) = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP]) else {
            return; // default effects stay: the kernel still releases the lock
        };
        std::thread::spawn(move || {
            for origin in incoming.forever() {
                let pid = shared.child.load(Ordering::SeqCst);
                if pid == 0 {
                    let _ = shared.caught.compare_exchange(
                        0,
                        origin.signal,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    shared.arrived.notify(usize::MAX);
                    continue;
                }
                // A Ctrl-C from the terminal already reached the command
                // (same process group); sending it again could count as a
                // second one. Forward only what was sent to us alone.
                if matches!(origin.cause, Cause::Kernel) {
                    continue;
                }
                let (Some(target), Some(sig)) = (
                    rustix::process::Pid::from_raw(pid as i32),
                    rustix::process::Signal::from_named_raw(origin.signal),
                ) else {
                    continue;
                };
                let _ = rustix::process::kill_process(target, sig);
            }
        });
    }
}
