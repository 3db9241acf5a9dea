//! `lockyard clean`: remove the locks in a directory that are provably
//! unused or stale, or (`--dry-run`) say which they would be.

use std::path::Path;

use lockyard::{clean_stale, clean_stale_dry_run, LockOptions};

use crate::exit;
use crate::holder;
use crate::output::out;
use crate::waiting::Ui;

pub fn clean(dir: &Path, dry_run: bool, ui: Ui) -> u8 {
    let options = LockOptions::new();
    let report = if dry_run {
        clean_stale_dry_run(dir, &options)
    } else {
        clean_stale(dir, &options)
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            ui.say(crate::report::chain(&e));
            return exit::LOCK_ERROR;
        }
    };
    let verb = if dry_run { "would remove" } else { "removed" };
    for stale in report.removed() {
        let last = stale
            .record()
            .map(|r| format!("; last held by {}", holder::describe_last(r)))
            .unwrap_or_default();
        out!(
            "{verb} {} ({}{last})",
            stale.path().display(),
            stale.reason()
        );
    }
    if ui.verbose {
        for kept in report.kept() {
            if kept.extension().is_some_and(|e| e == "ctl") {
                out!(
                    "kept {} (a soft lock's control file: its break lock and last token, \
                     never removed while a process may use the lock)",
                    kept.display()
                );
            } else {
                out!("kept {}", kept.display());
            }
        }
    }
    if report.removed().is_empty() {
        ui.say(format_args!("nothing to remove in {}", dir.display()));
    }
    0
}
