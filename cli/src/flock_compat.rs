//! flock(1)'s own command line, for scripts written for it:
//!
//! ```text
//! lockyard [OPTIONS] FILE COMMAND [ARGS...]
//! lockyard [OPTIONS] FILE -c COMMAND
//! lockyard [OPTIONS] NUMBER
//! ```
//!
//! Options as flock has them: `-s`/`--shared`, `-x`/`-e`/`--exclusive`,
//! `-u`/`--unlock`, `-n`/`--nb`/`--nonblock`, `-w`/`--wait`/`--timeout
//! SECONDS`, `-E`/`--conflict-exit-code N`, `-o`/`--close`, `-v`/`--verbose`,
//! and exit codes as flock has them: 1 (or `-E N`) when the lock is busy
//! with `-n` or the wait ran out, 64 for a bad command line, 65 for a
//! descriptor that is not open, 66 for a lock file that cannot be opened.
//! A busy lock with `-n` prints nothing, as with flock. Unlike flock, the
//! lock's descriptor is never inherited by the command (`-o` is what
//! lockyard always does), except with `-F`, where the command replaces
//! lockyard and holds the lock itself. A directory is locked as flock
//! locks it, on a descriptor of lockyard's own (`descriptor`); `-F` and
//! directories need a Unix system.

use std::path::PathBuf;
use std::time::Duration;

use lockyard::{FileLock, LockMode, LockOptions, Wait};

use crate::output::say;
use crate::run::{self, Codes, RunArgs};
use crate::signals::Signals;
use crate::target;
use crate::waiting::Ui;

/// flock's exit codes that lockyard's own commands do not share.
#[cfg_attr(not(unix), allow(dead_code))]
const BAD_DESCRIPTOR: u8 = 65;

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Request {
    mode: LockMode,
    unlock: bool,
    wait: Wait,
    conflict: u8,
    verbose: bool,
    /// `-F`: the command replaces lockyard and holds the lock itself.
    no_fork: bool,
    target: Target,
}

#[derive(Debug, PartialEq)]
enum Target {
    Descriptor(i32),
    Command { file: PathBuf, command: Vec<String> },
}

/// Runs flock's form; `args` excludes the program name.
pub fn main(args: &[String]) -> u8 {
    let request = match parse(args) {
        Ok(r) => r,
        Err(msg) => {
            say!("lockyard: {msg}");
            say!(
                "usage: lockyard [-s|-x] [-n|-w SECONDS] [-E N] [-o] FILE COMMAND [ARGS...]\n\
                 \x20      lockyard [-s|-x] [-n|-w SECONDS] [-E N] FILE -c COMMAND\n\
                 \x20      lockyard [-s|-x|-u] [-n|-w SECONDS] [-E N] NUMBER\n\
                 \x20      lockyard run|wait|status|clean ... (see lockyard --help)"
            );
            return crate::exit::USAGE;
        }
    };
    match request.target {
        Target::Descriptor(fd) => descriptor(fd, &request),
        Target::Command {
            ref file,
            ref command,
        } => run_command(file.clone(), command, &request),
    }
}

#[cfg(unix)]
fn descriptor(fd: i32, request: &Request) -> u8 {
    use crate::descriptor::{self, Outcome};
    let outcome = if request.unlock {
        descriptor::unlock(fd)
    } else {
        descriptor::lock(fd, request.mode, request.wait)
    };
    match outcome {
        Outcome::Locked => 0,
        Outcome::Busy => request.conflict,
        Outcome::NotOpen => {
            say!("lockyard: {fd}: bad file descriptor (not open in this process)");
            BAD_DESCRIPTOR
        }
        Outcome::Failed(e) => {
            say!("lockyard: {fd}: {e}");
            crate::exit::LOCK_ERROR
        }
    }
}

#[cfg(not(unix))]
fn descriptor(fd: i32, _request: &Request) -> u8 {
    say!("lockyard: {fd}: the descriptor form needs a Unix system");
    crate::exit::USAGE
}

fn run_command(file: PathBuf, command: &[String], request: &Request) -> u8 {
    if request.unlock {
        say!("lockyard: -u unlocks a descriptor: lockyard -u NUMBER");
        return crate::exit::USAGE;
    }
    // As flock: the lock file is created if missing, its directory never
    // (a typo must not build a tree).
    let lock = FileLock::with_options(&file, LockOptions::new().create_parent(false));
    let ui = Ui {
        quiet: false,
        verbose: request.verbose,
        quiet_conflict: true,
    };
    // flock: a lock file that cannot be opened is 66; its directory is
    // never created.
    if !parent_exists(&file) {
        say!(
            "lockyard: cannot open lock file {}: its directory does not exist",
            file.display()
        );
        return crate::exit::CANNOT_OPEN;
    }
    if request.no_fork || file.is_dir() {
        return own_descriptor(&file, command, request, ui);
    }
    let signals = Signals::install();
    run::run(
        RunArgs {
            lock: target::Target::File(lock),
            mode: request.mode,
            wait: request.wait,
            lease: None,
            command,
            codes: Codes {
                conflict: request.conflict,
                timeout: request.conflict,
            },
            ui,
        },
        &signals,
    )
}

/// `-F`, or a directory: a lock on a descriptor of lockyard's own.
#[cfg(unix)]
fn own_descriptor(file: &std::path::Path, command: &[String], request: &Request, ui: Ui) -> u8 {
    let how = crate::descriptor::Held {
        mode: request.mode,
        wait: request.wait,
        conflict: request.conflict,
        ui,
    };
    if request.no_fork {
        crate::descriptor::exec_holding(file, command, &how)
    } else {
        crate::descriptor::run_holding(file, command, &how)
    }
}

#[cfg(not(unix))]
fn own_descriptor(file: &std::path::Path, _command: &[String], request: &Request, _ui: Ui) -> u8 {
    if request.no_fork {
        say!("lockyard: -F (--no-fork) needs a Unix system");
    } else {
        say!(
            "lockyard: {}: a directory cannot be locked on this system",
            file.display()
        );
    }
    crate::exit::USAGE
}

fn parent_exists(file: &std::path::Path) -> bool {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.is_dir(),
        _ => true,
    }
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut request = Request {
        mode: LockMode::Exclusive,
        unlock: false,
        wait: Wait::Forever,
        conflict: crate::exit::WOULD_BLOCK,
        verbose: false,
        no_fork: false,
        target: Target::Descriptor(-1),
    };
    let mut rest = args.iter();
    let mut positional = None;
    let value_for = |flag: &str, rest: &mut std::slice::Iter<'_, String>| {
        rest.next()
            .cloned()
            .ok_or_else(|| format!("option {flag} needs a value"))
    };
    while let Some(arg) = rest.next() {
        if let Some(long) = arg.strip_prefix("--") {
            if long.is_empty() {
                positional = rest.next().cloned();
                break;
            }
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "shared" => request.mode = LockMode::Shared,
                "exclusive" => request.mode = LockMode::Exclusive,
                "unlock" => request.unlock = true,
                "nb" | "nonblock" => request.wait = Wait::TryOnce,
                "close" => {}
                "verbose" => request.verbose = true,
                "no-fork" => request.no_fork = true,
                "wait" | "timeout" => {
                    let v = match inline {
                        Some(v) => v,
                        None => value_for(arg, &mut rest)?,
                    };
                    request.wait = seconds(&v)?;
                }
                "conflict-exit-code" => {
                    let v = match inline {
                        Some(v) => v,
                        None => value_for(arg, &mut rest)?,
                    };
                    request.conflict = exit_code(&v)?;
                }
                _ => return Err(format!("unknown option --{name}")),
            }
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            positional = Some(arg.clone());
            break;
        };
        for (i, c) in cluster.char_indices() {
            match c {
                's' => request.mode = LockMode::Shared,
                'x' | 'e' => request.mode = LockMode::Exclusive,
                'u' => request.unlock = true,
                'n' => request.wait = Wait::TryOnce,
                'o' => {}
                'v' => request.verbose = true,
                'F' => request.no_fork = true,
                'w' | 'E' => {
                    let attached = &cluster[i + 1..];
                    let v = if attached.is_empty() {
                        value_for(&format!("-{c}"), &mut rest)?
                    } else {
                        attached.to_string()
                    };
                    if c == 'w' {
                        request.wait = seconds(&v)?;
                    } else {
                        request.conflict = exit_code(&v)?;
                    }
                    break;
                }
                'c' => return Err("-c comes after the lock file: lockyard FILE -c COMMAND".into()),
                other => return Err(format!("unknown option -{other}")),
            }
        }
    }
    let Some(first) = positional else {
        return Err("a lock file or descriptor number is needed".into());
    };
    let after: Vec<String> = rest.cloned().collect();
    request.target = match after.split_first() {
        None if is_number(&first) => Target::Descriptor(
            first
                .parse()
                .map_err(|_| format!("{first}: bad descriptor"))?,
        ),
        None => {
            return Err(format!(
                "{first}: a command is needed with a lock file (or a descriptor number alone)"
            ))
        }
        Some((flag, cmd)) if flag == "-c" || flag == "--command" => match cmd {
            // As flock: through the user's shell, `$SHELL` or /bin/sh.
            [one] => Target::Command {
                file: PathBuf::from(&first),
                command: vec![shell(), "-c".into(), one.clone()],
            },
            _ => return Err("-c takes exactly one command string".into()),
        },
        Some(_) => Target::Command {
            file: PathBuf::from(&first),
            command: after,
        },
    };
    Ok(request)
}

/// Whether `arg` is a descriptor number in flock's sense: digits only.
pub fn is_number(arg: &str) -> bool {
    !arg.is_empty() && arg.len() <= 9 && arg.bytes().all(|b| b.is_ascii_digit())
}

fn shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into())
}

/// flock's `-w SECONDS` (fractions allowed); 0 means "do not wait".
fn seconds(v: &str) -> Result<Wait, String> {
    let secs: f64 = v
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("invalid timeout {v:?}: a number of seconds"))?;
    if secs == 0.0 {
        return Ok(Wait::TryOnce);
    }
    Duration::try_from_secs_f64(secs)
        .map(Wait::For)
        .map_err(|_| format!("invalid timeout {v:?}"))
}

fn exit_code(v: &str) -> Result<u8, String> {
    v.parse()
        .map_err(|_| format!("invalid exit code {v:?}: 0 to 255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn flock_forms() {
        let r = parse(&args("-n 9")).unwrap();
        assert_eq!((r.wait, r.target), (Wait::TryOnce, Target::Descriptor(9)));
        let r = parse(&args("-sw 2.5 -E 75 9")).unwrap();
        assert_eq!(r.mode, LockMode::Shared);
        assert_eq!(r.wait, Wait::For(Duration::from_millis(2500)));
        assert_eq!(r.conflict, 75);
        let r = parse(&args("-w 0 f.lock true")).unwrap();
        assert_eq!(r.wait, Wait::TryOnce);
        let r = parse(&args("--timeout=3 f.lock -c echo")).unwrap();
        assert_eq!(
            r.target,
            Target::Command {
                file: "f.lock".into(),
                command: vec![shell(), "-c".into(), "echo".into()]
            }
        );
        // Options after the lock file belong to the command.
        let r = parse(&args("f.lock ls -n")).unwrap();
        assert_eq!(r.wait, Wait::Forever);
        assert_eq!(
            r.target,
            Target::Command {
                file: "f.lock".into(),
                command: args("ls -n")
            }
        );
        assert!(parse(&args("-u 9")).unwrap().unlock);
    }

    #[test]
    fn no_fork_is_a_flag() {
        let r = parse(&args("-F -n f.lock true")).unwrap();
        assert!(r.no_fork);
        assert_eq!(r.wait, Wait::TryOnce);
        assert!(parse(&args("--no-fork f.lock true")).unwrap().no_fork);
        assert!(!parse(&args("f.lock true")).unwrap().no_fork);
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in ["f.lock", "-c x f.lock", "-w -1 9", "-E 300 9", "-q 9", ""] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
