//! Signals: while waiting for a lock, SIGINT/SIGTERM/SIGHUP interrupt the
//! wait (the acquire future is dropped, which gives back anything it had);
//! while a command runs, they are forwarded to it, and the lock is released
//! when it exits.
//!
//! On Windows the console's events stand for them: Ctrl-C for SIGINT (exit
//! 130), Ctrl-Break for SIGBREAK (21: exit 149), closing the console for
//! SIGHUP (129), log-off and shutdown for SIGTERM (143). A running command
//! shares the console and gets each event itself, as a Unix command in the
//! terminal's process group gets Ctrl-C: nothing is forwarded.

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
    /// Starts catching signals (console events on Windows). Where that is
    /// not possible, they keep their default effect.
    pub fn install() -> Arc<Signals> {
        let shared = Arc::new(Signals::default());
        #[cfg(unix)]
        unix::spawn(Arc::clone(&shared));
        #[cfg(windows)]
        windows::install(Arc::clone(&shared));
        shared
    }

    /// Signal `sig` came: it interrupts the wait if no command runs yet.
    /// Whether a command ran is returned.
    fn arrive(&self, sig: i32) -> bool {
        if self.child.load(Ordering::SeqCst) != 0 {
            return true;
        }
        let _ = self
            .caught
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        self.arrived.notify(usize::MAX);
        false
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
                if !shared.arrive(origin.signal) {
                    continue;
                }
                let pid = shared.child.load(Ordering::SeqCst);
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

#[cfg(windows)]
mod windows {
    //! The console's control events. The handler is the one `unsafe`
    //! call: registering a function with the console.
    #![allow(unsafe_code)]

    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
        CTRL_SHUTDOWN_EVENT,
    };

    use super::Signals;

    static SHARED: OnceLock<Arc<Signals>> = OnceLock::new();

    /// The Unix signal number a console event stands for.
    fn signal_of(event: u32) -> Option<i32> {
        match event {
            CTRL_C_EVENT => Some(2),
            CTRL_BREAK_EVENT => Some(21),
            CTRL_CLOSE_EVENT => Some(1),
            CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => Some(15),
            _ => None,
        }
    }

    /// Runs on a thread the console starts for the event.
    unsafe extern "system" fn on_event(event: u32) -> BOOL {
        let (Some(shared), Some(sig)) = (SHARED.get(), signal_of(event)) else {
            // Not ours to handle: the next handler (the default ends us).
            return 0;
        };
        shared.arrive(sig);
        if matches!(
            event,
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
        ) {
            // Windows ends the process when this handler returns (and
            // within seconds in any case): hold it off while the main
            // thread gives back the lock and exits with its own status.
            std::thread::sleep(Duration::from_secs(10));
        }
        1
    }

    #[cfg(test)]
    #[test]
    fn console_events_stand_for_signals() {
        assert_eq!(signal_of(CTRL_C_EVENT), Some(2));
        assert_eq!(signal_of(CTRL_BREAK_EVENT), Some(21));
        assert_eq!(signal_of(CTRL_CLOSE_EVENT), Some(1));
        assert_eq!(signal_of(CTRL_SHUTDOWN_EVENT), Some(15));
        assert_eq!(signal_of(99), None);
    }

    pub(super) fn install(shared: Arc<Signals>) {
        if SHARED.set(shared).is_err() {
            return;
        }
        // SAFETY: `on_event` has the signature a handler routine needs,
        // lives for the whole program, and only touches `SHARED`, which is
        // set before the handler is registered.
        let _ = unsafe { SetConsoleCtrlHandler(Some(on_event), 1) };
    }
}

#[cfg(test)]
mod tests {
    use super::Signals;

    #[test]
    fn a_signal_interrupts_the_wait_only_while_no_command_runs() {
        let signals = Signals::default();
        signals.forward_to(4242);
        assert!(signals.arrive(2), "a running command takes the signal");
        assert_eq!(signals.caught(), None);
        signals.stop_forwarding();
        assert!(!signals.arrive(21));
        assert!(!signals.arrive(2), "the first signal is kept");
        assert_eq!(signals.caught(), Some(21));
        assert_eq!(futures_lite::future::block_on(signals.interrupted()), 21);
    }
}
