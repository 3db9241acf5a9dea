//! `lockyard`: run commands under file locks, wait for locks, and see who
//! holds them. See `lockyard --help` and this crate's README (its "guide"
//! section).

#![deny(unsafe_code)]

mod clean;
#[cfg(unix)]
mod descriptor;
mod duration;
mod exit;
mod flock_compat;
mod holder;
mod kind;
mod output;
mod report;
mod run;
mod signals;
mod status;
mod target;
mod waiting;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lockyard::{LockMode, LockOptions, Wait};

use crate::output::{out, say};
use crate::run::{Codes, RunArgs};
use crate::target::PgSettings;
use crate::waiting::{Outcome, Ui};

const EXIT_CODES: &str = "\
Exit codes:
  the command's own     run: the command's exit status (128+N if killed by signal N)
  0                     success (status, clean, wait)
  1                     the lock is busy and --no-wait was given (--conflict-exit-code)
  124                   --timeout passed with the lock still held (--timeout-exit-code)
  64                    bad command line
  66                    the lock file's directory is missing (see --create-dirs)
  71                    the lock could not be opened, locked or inspected
  74                    the output could not be written (status, clean)
  126 / 127             the command cannot be run / was not found
  128+N                 interrupted by signal N while waiting (130 for Ctrl-C)
  141                   stdout was closed early (status | head): quiet, as ls and cat

flock(1)'s own form works too, so scripts written for it need only the name
changed (exit codes are flock's in this form: 1 busy or timed out, or -E N):
  lockyard [-s|-x] [-n|-w SECS] [-E N] FILE COMMAND [ARGS...]
  lockyard [-s|-x] [-n|-w SECS] [-E N] FILE -c 'COMMAND'
  lockyard [-s|-x|-u] [-n|-w SECS] [-E N] FD       (a descriptor the shell opened)";

/// Run commands under file locks, wait for locks, and see who holds them.
#[derive(Debug, Parser)]
#[command(name = "lockyard", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Take the lock, run the command with it held, release it, and exit
    /// with the command's status.
    Run {
        #[command(flatten)]
        lock: LockArgs,
        /// Lock options: soft (sidecar) lock instead of an OS lock. Taken
        /// without it when the lock's control file (PATH.ctl) exists.
        #[arg(long, conflicts_with_all = ["lease", "shared"])]
        soft: bool,
        /// A lease: a soft lock with this time to live, renewed while the
        /// command runs; another process may take over if it lapses.
        #[arg(long, value_name = "TTL", value_parser = duration::parse, conflicts_with = "shared")]
        lease: Option<Duration>,
        /// An owner id written into the holder record (shown by `status`).
        #[arg(long, value_name = "ID")]
        owner: Option<String>,
        /// For a PostgreSQL lock: the table that keeps names and tokens
        /// (default `lockyard_locks`).
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
        /// Exit code when the lock is busy and --no-wait was given.
        #[arg(short = 'E', long, value_name = "N", default_value_t = exit::WOULD_BLOCK)]
        conflict_exit_code: u8,
        /// Exit code when --timeout passes.
        #[arg(long, value_name = "N", default_value_t = exit::TIMED_OUT)]
        timeout_exit_code: u8,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Wait until the lock is free, then exit without running anything.
    ///
    /// Like `flock PATH true`: the lock is taken and let go at once, so
    /// the answer is exact at that instant.
    Wait {
        #[command(flatten)]
        lock: LockArgs,
        /// The lock is a soft (sidecar) lock. Found without it when the
        /// lock's control file (PATH.ctl) exists.
        #[arg(long, conflicts_with = "shared")]
        soft: bool,
        /// For a PostgreSQL lock: the table that keeps names and tokens.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
        /// Exit code when the lock is busy and --no-wait was given.
        #[arg(short = 'E', long, value_name = "N", default_value_t = exit::WOULD_BLOCK)]
        conflict_exit_code: u8,
        /// Exit code when --timeout passes.
        #[arg(long, value_name = "N", default_value_t = exit::TIMED_OUT)]
        timeout_exit_code: u8,
    },
    /// Show each lock (a lock file, or every lock in a directory): free,
    /// held shared, held exclusive or stale, and who holds it.
    Status {
        /// A lock file, a directory of lock files, a PostgreSQL lock
        /// (`postgres://user@host/db#name`) or a PostgreSQL database
        /// (`postgres://user@host/db`: every lock held there), an S3 lock
        /// (`s3://bucket/prefix#name`) or prefix (every lock held there).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// For PostgreSQL: the table that keeps names and tokens.
        #[arg(long, value_name = "TABLE")]
        table: Option<String>,
        /// Print JSON (documented in the command's README; `version` field).
        #[arg(long)]
        json: bool,
    },
    /// Remove the lock files in a directory that are provably unused or
    /// stale; held locks are never touched.
    Clean {
        dir: PathBuf,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also list what was kept.
        #[arg(short, long)]
        verbose: bool,
        /// Say nothing when nothing is removed.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Debug, Args)]
struct LockArgs {
    /// The lock file (created if missing; its directory only with
    /// --create-dirs, so that a typo does not build a tree). Any existing
    /// file may be locked: one that is not a lockyard lock file (data, a
    /// script, an empty file) is locked as it is and never written, so no
    /// holder record or token is kept for it; `status` then names the
    /// holder from the kernel's lock table.
    ///
    /// Or a lock in PostgreSQL: `postgres://user@host:port/db#name` (the
    /// name after the first `#`; the password from PGPASSWORD, the user
    /// from PGUSER when the URL has none). Or a lock in S3:
    /// `s3://bucket/prefix#name` (endpoint and credentials from the AWS_*
    /// variables; always a lease, renewed while `run`'s command runs).
    path: PathBuf,
    /// Take a shared lock instead of an exclusive one.
    #[arg(short, long)]
    shared: bool,
    /// Take an exclusive lock (the default; flock's -x and -e).
    #[arg(short = 'x', long, short_alias = 'e', conflicts_with = "shared")]
    exclusive: bool,
    /// Give up after this long (10s, 500ms, 2m, or seconds).
    #[arg(short = 'w', long, visible_alias = "wait", value_name = "DURATION", value_parser = duration::parse)]
    timeout: Option<Duration>,
    /// Fail at once if the lock is busy (flock's --nb and --nonblock too).
    #[arg(short, long, visible_aliases = ["nb", "nonblock"], conflicts_with = "timeout")]
    no_wait: bool,
    /// Print nothing of our own on stderr (the live waiting line included).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Say how long getting the lock took, and when a stale lock is taken
    /// over.
    #[arg(short, long)]
    verbose: bool,
    /// Create the lock file's missing directories (without it, a missing
    /// directory is exit 66, as with flock).
    #[arg(long)]
    create_dirs: bool,
}

impl LockArgs {
    fn mode(&self) -> LockMode {
        if self.shared {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        }
    }

    fn wait(&self) -> Wait {
        match (self.no_wait, self.timeout) {
            (true, _) => Wait::TryOnce,
            (false, Some(d)) => Wait::For(d),
            (false, None) => Wait::Forever,
        }
    }

    /// `options` with the directory creation asked for.
    fn dirs(&self, options: LockOptions) -> LockOptions {
        options.create_parent(self.create_dirs)
    }

    fn ui(&self) -> Ui {
        Ui {
            quiet: self.quiet,
            verbose: self.verbose,
            quiet_conflict: false,
        }
    }
}

/// The first arguments that select lockyard's own command line; anything
/// else is flock(1)'s form (`lockyard [OPTIONS] FILE COMMAND`, `lockyard
/// [OPTIONS] NUMBER`).
const OWN: &[&str] = &[
    "run",
    "wait",
    "status",
    "clean",
    "help",
    "-h",
    "--help",
    "-V",
    "--version",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| !OWN.contains(&a.as_str())) {
        return ExitCode::from(flock_compat::main(&args));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            match flock_flag_hint(&e) {
                Some(hint) => say!("{hint}\n\nFor more information, try '--help'."),
                None => {
                    let _ = e.print();
                }
            }
            return ExitCode::from(code);
        }
    };
    ExitCode::from(dispatch(cli.command))
}

fn dispatch(command: Cmd) -> u8 {
    match command {
        Cmd::Run {
            lock,
            soft,
            lease,
            owner,
            table,
            conflict_exit_code,
            timeout_exit_code,
            command,
        } => {
            if let Some(code) = refuse_descriptor(&lock) {
                return code;
            }
            if let Some(code) = refuse_soft_postgres(&lock, soft) {
                return code;
            }
            let mut options = LockOptions::new();
            if soft || (lease.is_none() && kind::is_soft(&lock.path)) {
                options = options.soft();
            }
            if let Some(ttl) = lease {
                options = options.lease(ttl);
            }
            if let Some(owner) = owner.clone() {
                options = options.owner(owner);
            }
            let options = say_takeovers(lock.dirs(options), lock.ui());
            let pg = PgSettings {
                table,
                lease,
                owner,
            };
            let target = match open_target(&lock, options, &pg) {
                Ok(target) => target,
                Err(code) => return code,
            };
            let signals = signals::Signals::install();
            let lease = target.lease(lease);
            let args = RunArgs {
                lock: target,
                mode: lock.mode(),
                wait: lock.wait(),
                lease,
                command: &command,
                codes: Codes {
                    conflict: conflict_exit_code,
                    timeout: timeout_exit_code,
                },
                ui: lock.ui(),
            };
            run::run(args, &signals)
        }
        Cmd::Wait {
            lock,
            soft,
            table,
            conflict_exit_code,
            timeout_exit_code,
        } => {
            if let Some(code) = refuse_descriptor(&lock) {
                return code;
            }
            if let Some(code) = refuse_soft_postgres(&lock, soft) {
                return code;
            }
            let options = if soft || kind::is_soft(&lock.path) {
                LockOptions::new().soft()
            } else {
                LockOptions::new()
            };
            let options = say_takeovers(lock.dirs(options), lock.ui());
            let pg = PgSettings {
                table,
                ..PgSettings::default()
            };
            let target = match open_target(&lock, options, &pg) {
                Ok(target) => target,
                Err(code) => return code,
            };
            let signals = signals::Signals::install();
            let codes = Codes {
                conflict: conflict_exit_code,
                timeout: timeout_exit_code,
            };
            match waiting::acquire(&target, lock.mode(), lock.wait(), lock.ui(), &signals) {
                Outcome::Got(guard) => match guard.unlock() {
                    Ok(()) => 0,
                    Err(e) => {
                        lock.ui().say(report::chain(&e));
                        exit::LOCK_ERROR
                    }
                },
                other => run::wait_failed(other, codes, lock.ui()),
            }
        }
        Cmd::Status { paths, json, table } => {
            let mut reports = Vec::new();
            for path in &paths {
                match status::collect(path, table.as_deref()) {
                    Ok(found) => reports.extend(found),
                    Err(e) => {
                        say!("lockyard: {e}");
                        return exit::LOCK_ERROR;
                    }
                }
            }
            if json {
                out!("{:#}", status::json_document(&reports));
            } else {
                for r in &reports {
                    out!("{}", status::human(r));
                }
            }
            if status::any_error(&reports) {
                exit::LOCK_ERROR
            } else {
                0
            }
        }
        Cmd::Clean {
            dir,
            dry_run,
            verbose,
            quiet,
        } => clean::clean(
            &dir,
            dry_run,
            Ui {
                quiet,
                verbose,
                quiet_conflict: false,
            },
        ),
    }
}

/// The lock `lock.path` names, or the usage error's exit code (said).
fn open_target(
    lock: &LockArgs,
    options: LockOptions,
    pg: &PgSettings,
) -> Result<target::Target, u8> {
    target::open(&lock.path, options, pg).map_err(|e| {
        lock.ui().say(e);
        exit::USAGE
    })
}

/// `--soft` for a PostgreSQL or object-storage lock: soft locks are files
/// beside a lock file; the others are held in their server.
fn refuse_soft_postgres(lock: &LockArgs, soft: bool) -> Option<u8> {
    if soft && target::pg_address(&lock.path).is_some() {
        lock.ui()
            .say("--soft is for lock files; a PostgreSQL lock is held by the server");
        return Some(exit::USAGE);
    }
    if soft && target::object_address(&lock.path).is_some() {
        lock.ui()
            .say("--soft is for lock files; an object-storage lock is a lock object");
        return Some(exit::USAGE);
    }
    None
}

/// `run N` and `wait N` where `N` is a number and no file of that name
/// exists: a script written for flock(1) meant its descriptor form, and
/// locking a new file `./N` would leave it running unlocked. Refused with
/// the form that does what it meant.
fn refuse_descriptor(lock: &LockArgs) -> Option<u8> {
    let text = lock.path.to_str()?;
    if !flock_compat::is_number(text) || lock.path.exists() {
        return None;
    }
    lock.ui().say(format_args!(
        "{text} looks like flock's descriptor form: `lockyard {text}` (with -s, -n, -w, -u) \
         locks descriptor {text} and leaves it locked; write ./{text} for a file of that name"
    ));
    Some(exit::USAGE)
}

/// With `-v`, a stale soft lock or lapsed lease is not broken without a
/// word: the command says whose it was and why it counts as stale.
fn say_takeovers(options: LockOptions, ui: waiting::Ui) -> LockOptions {
    if !ui.verbose || ui.quiet {
        return options;
    }
    options.on_stale(move |stale| {
        let whose = stale
            .record()
            .map(|r| format!(", left by {r}"))
            .unwrap_or_default();
        ui.say(format_args!(
            "taking over stale lock {} ({}){whose}",
            stale.path().display(),
            stale.reason()
        ));
        true
    })
}

/// For one of flock's flags that `run` and `wait` do not take, what to do
/// instead: clap's own tip ("to pass '-F' as a value, use '-- -F'") would
/// hand the flag to the command.
fn flock_flag_hint(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split('=').next().unwrap_or(arg);
    let instead = match flag {
        "-o" | "--close" => {
            "lockyard never passes the lock's descriptor to a command, as flock does with -o: \
             leave the flag out"
        }
        "-F" | "--no-fork" => {
            "the command holds the lock itself only in flock's form: lockyard -F FILE COMMAND"
        }
        "-c" | "--command" => {
            "a shell command string goes in flock's form, lockyard FILE -c 'COMMAND', \
             or after -- here: lockyard run FILE -- sh -c 'COMMAND'"
        }
        "-u" | "--unlock" => "unlocking a descriptor is flock's form: lockyard -u NUMBER",
        _ => return None,
    };
    Some(format!("lockyard: {flag} is flock(1)'s: {instead}"))
}
