//! `lockyard run`: the command runs with the lock held; the lock is
//! released when it exits, and its exit status is ours.

use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use lockyard::{LockGuard, LockMode, Wait};

use crate::exit;
use crate::holder;
use crate::report::chain;
use crate::signals::Signals;
use crate::target::Target;
use crate::waiting::{self, Outcome, Ui};

/// What `run` needs from the command line.
#[derive(Debug)]
pub struct RunArgs<'a> {
    pub lock: Target,
    pub mode: LockMode,
    pub wait: Wait,
    pub lease: Option<Duration>,
    pub command: &'a [String],
    pub codes: Codes,
    pub ui: Ui,
}

/// The exit codes a user may choose.
#[derive(Clone, Copy, Debug)]
pub struct Codes {
    pub conflict: u8,
    pub timeout: u8,
}

/// Maps a failed or interrupted wait to its exit code, saying why.
pub fn wait_failed(outcome: Outcome, codes: Codes, ui: Ui) -> u8 {
    match outcome {
        Outcome::Got(_) => 0,
        Outcome::Interrupted(sig) => {
            ui.say("interrupted while waiting; nothing was locked");
            exit::SIGNAL_BASE.saturating_add(sig as u8)
        }
        Outcome::Failed(e) => {
            // A holder that wrote no record may still be in the kernel's
            // table (the error names it already for files that hold data).
            let os = e.path().map(holder::os_holders).unwrap_or_default();
            match holder::describe_os(&os)
                .filter(|_| e.holder().is_none() && e.os_holders().is_empty())
            {
                _ if e.is_contended() && ui.quiet_conflict => {}
                Some(os) if e.is_contended() => ui.say(format_args!("{e} (by {os})")),
                _ => ui.say(chain(&e)),
            }
            if e.kind() == lockyard::ErrorKind::Unsupported && chain(&e).contains("soft()") {
                ui.say("hint: on this filesystem, take it as a soft lock: --soft (or --lease TTL)");
            }
            if e.kind() == lockyard::ErrorKind::CreateDir && !chain(&e).contains("cannot create") {
                ui.say("hint: --create-dirs creates missing directories");
            }
            match e.kind() {
                lockyard::ErrorKind::WouldBlock => codes.conflict,
                lockyard::ErrorKind::TimedOut => codes.timeout,
                // As flock: the lock file cannot be opened.
                lockyard::ErrorKind::CreateDir => crate::exit::CANNOT_OPEN,
                _ => exit::LOCK_ERROR,
            }
        }
    }
}

pub fn run(args: RunArgs<'_>, signals: &Signals) -> u8 {
    let guard = match waiting::acquire(&args.lock, args.mode, args.wait, args.ui, signals) {
        Outcome::Got(guard) => guard,
        other => return wait_failed(other, args.codes, args.ui),
    };
    let mut child = match start(args.command, args.ui, signals) {
        Ok(child) => child,
        Err(code) => return code,
    };
    let (stop, stopped) = mpsc::channel::<()>();
    let held = match args.lease {
        Some(ttl) => {
            let ui = args.ui;
            Held::Renewing(std::thread::spawn(move || renew(guard, ttl, &stopped, ui)))
        }
        None => Held::Plain(guard),
    };
    let status = child.wait();
    signals.stop_forwarding();
    drop(stop);
    match held {
        Held::Plain(guard) => release(guard, args.ui),
        Held::Renewing(renewer) => {
            let _ = renewer.join();
        }
    }
    status_code(status, args.ui)
}

/// Starts the command (held under a lock already) and forwards signals to
/// it from now on; `Err` is the exit code when it cannot be started.
pub fn start(command: &[String], ui: Ui, signals: &Signals) -> Result<Child, u8> {
    let Some((program, rest)) = command.split_first() else {
        return Err(exit::USAGE);
    };
    if ui.verbose {
        ui.say(format_args!("running {}", command.join(" ")));
    }
    let child = Command::new(program).args(rest).spawn().map_err(|e| {
        ui.say(format_args!("cannot run {program}: {e}"));
        match e.kind() {
            std::io::ErrorKind::NotFound => exit::NOT_FOUND,
            _ => exit::CANNOT_EXECUTE,
        }
    })?;
    signals.forward_to(child.id());
    // A signal that came between the lock and the spawn is the command's.
    if let Some(sig) = signals.caught() {
        forward_now(&child, sig);
    }
    Ok(child)
}

/// The exit code for how the command's wait ended.
pub fn status_code(status: std::io::Result<ExitStatus>, ui: Ui) -> u8 {
    match status {
        Ok(status) => code_of(status),
        Err(e) => {
            ui.say(format_args!("cannot wait for the command: {e}"));
            exit::LOCK_ERROR
        }
    }
}

/// The lock while the command runs.
enum Held {
    Plain(LockGuard),
    /// A lease, owned by the thread that renews it and releases it at the end.
    Renewing(std::thread::JoinHandle<()>),
}

fn release(guard: LockGuard, ui: Ui) {
    if let Err(e) = guard.unlock() {
        ui.say(format_args!("releasing the lock failed: {}", chain(&e)));
    }
}

/// Keeps a lease alive while the command runs (renewing at a third of its
/// TTL), then releases it.
fn renew(guard: LockGuard, ttl: Duration, stop: &mpsc::Receiver<()>, ui: Ui) {
    let every = (ttl / 3).max(Duration::from_millis(10));
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        if let Err(e) = guard.refresh() {
            ui.say(format_args!(
                "the lease was lost while the command ran: {}",
                chain(&e)
            ));
            return;
        }
    }
    release(guard, ui);
}

/// The command's exit status as a shell reports it.
fn code_of(status: ExitStatus) -> u8 {
    #[cfg(windows)]
    if let Some(code) = status.code() {
        return windows_code(code);
    }
    if let Some(code) = status.code() {
        return code as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return exit::SIGNAL_BASE.saturating_add(sig as u8);
        }
    }
    exit::LOCK_ERROR
}

/// A Windows exit status as one byte: a command ended by Ctrl-C
/// (`STATUS_CONTROL_C_EXIT`) is 130, as a Unix shell reports SIGINT; any
/// other status above 255 is 255, so a failure never reads as success.
#[cfg(windows)]
fn windows_code(code: i32) -> u8 {
    const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;
    match u8::try_from(code) {
        Ok(code) => code,
        Err(_) if code as u32 == STATUS_CONTROL_C_EXIT => exit::SIGNAL_BASE + 2,
        Err(_) => u8::MAX,
    }
}

fn forward_now(child: &std::process::Child, sig: i32) {
    #[cfg(unix)]
    if let (Some(pid), Some(sig)) = (
        rustix::process::Pid::from_raw(child.id() as i32),
        rustix::process::Signal::from_named_raw(sig),
    ) {
        let _ = rustix::process::kill_process(pid, sig);
    }
    #[cfg(not(unix))]
    let _ = (child, sig);
}

#[cfg(all(test, windows))]
mod tests {
    #[test]
    fn windows_statuses_fit_a_byte_without_reading_as_success() {
        assert_eq!(super::windows_code(0), 0);
        assert_eq!(super::windows_code(7), 7);
        assert_eq!(super::windows_code(256), 255);
        assert_eq!(super::windows_code(0xC000_013A_u32 as i32), 130);
        assert_eq!(super::windows_code(-1), 255);
    }
}
