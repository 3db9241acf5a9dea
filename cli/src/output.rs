//! Writing to stdout and stderr without ever panicking.
//!
//! `println!` panics when stdout is a pipe whose reader has gone
//! (`lockyard status DIR | head -1`): Rust ignores `SIGPIPE`, so the write
//! fails with `EPIPE` instead of ending the process as it ends `ls` or
//! `cat`. The command behaves as those do: a closed stdout ends it quietly
//! with status 141 (128 + `SIGPIPE`, what a shell reports for them), on
//! Windows too. Any other failure to write stdout (`> /dev/full`) is said
//! on stderr and ends it with [`exit::OUTPUT_ERROR`]. Messages to stderr
//! are best effort: a closed stderr never changes what the command does,
//! so a lock held by `run` is never given up over a diagnostic.
//!
//! Only `status` and `clean` write to stdout, after their work is done
//! and with nothing held, so ending the process there loses nothing.

use std::fmt;
use std::io::{self, Write};

use crate::exit;

/// One line on stdout; a closed or failing stdout ends the process (see
/// the module docs).
pub fn line(text: fmt::Arguments<'_>) {
    let mut stdout = io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(exit::BROKEN_PIPE));
        }
        message(format_args!("lockyard: cannot write the output: {e}"));
        std::process::exit(i32::from(exit::OUTPUT_ERROR));
    }
}

/// One line on stderr, best effort.
pub fn message(text: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// `println!` for the command's results: [`line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: [`message`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::message(format_args!($($arg)*))
    };
}

pub(crate) use {out, say};
