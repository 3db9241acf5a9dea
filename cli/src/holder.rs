//! Saying who holds a lock, for people: one phrase used by the waiting
//! line and by `status`.

use std::path::Path;

use lockyard::HolderRecord;

use crate::duration::human;
use lockyard::OsHolder;

/// `pid 4242 on build-3 (owner "indexer") for 12 s`.
pub fn describe(rec: &HolderRecord) -> String {
    let mut s = format!("pid {} on {}", rec.pid(), rec.host());
    if let Some(owner) = rec.owner() {
        s.push_str(&format!(" (owner {owner:?})"));
    }
    s.push_str(&format!(" for {}", human(rec.age())));
    s
}

/// `pid 4242 on build-3 (owner "indexer"), taken 3 min ago`: for a record
/// whose holder is gone.
pub fn describe_last(rec: &HolderRecord) -> String {
    let mut s = format!("pid {} on {}", rec.pid(), rec.host());
    if let Some(owner) = rec.owner() {
        s.push_str(&format!(" (owner {owner:?})"));
    }
    s.push_str(&format!(", taken {} ago", human(rec.age())));
    s
}

/// `pid 4242 (flock)`, `pids 10 (cat), 11 (python3)`.
pub fn describe_os(holders: &[OsHolder]) -> Option<String> {
    let parts: Vec<String> = holders
        .iter()
        .map(|h| match h.command() {
            Some(c) => format!("{} ({c})", h.pid()),
            None => h.pid().to_string(),
        })
        .collect();
    match parts.len() {
        0 => None,
        1 => Some(format!("pid {}", parts[0])),
        _ => Some(format!("pids {}", parts.join(", "))),
    }
}

/// The best phrase we have for whoever holds `path` now: its record, or
/// the kernel's lock table where there is one, or nothing.
pub fn now(lock: &lockyard::FileLock) -> Option<String> {
    if let Ok(Some(rec)) = lock.holder() {
        return Some(describe(&rec));
    }
    describe_os(&os_holders(lock.path()))
}

/// The kernel's view of who holds `path`, without our own process.
pub fn os_holders(path: &Path) -> Vec<OsHolder> {
    lockyard::FileLock::new(path)
        .os_holders()
        .into_iter()
        .filter(|h| !h.is_this_process())
        .collect()
}
