//! The kernel's lock table: who holds a file locked, even when the holder
//! wrote no record (`flock(1)`, std's `File::lock`, any other program, or
//! lockyard on a file that holds data). Linux reads `/proc/locks`; other
//! platforms have no such table and report nobody.

use std::path::Path;

use crate::record::OsHolder;

/// The granted locks on the file at `path` (waiters are left out).
/// Reading the table takes no lock and creates nothing; unreadable entries
/// are skipped.
#[cfg(target_os = "linux")]
pub(crate) fn of(path: &Path) -> Vec<OsHolder> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Vec::new();
    };
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let dev = meta.dev();
    let id = (rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino());
    parse(&table)
        .into_iter()
        .filter(|(file, _)| *file == id)
        .map(|(_, holder)| {
            let command = std::fs::read_to_string(format!("/proc/{}/comm", holder.pid()))
                .ok()
                .map(|c| c.trim_end().to_string());
            holder.with_command(command)
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn of(_path: &Path) -> Vec<OsHolder> {
    Vec::new()
}

/// Parses `/proc/locks` lines such as
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1837 0 EOF` into
/// ((major, minor, inode), holder). Lines it does not understand, waiters
/// (`->`) and OFD locks (no PID) are skipped.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse(table: &str) -> Vec<((u32, u32, u64), OsHolder)> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let kind = fields.next()?;
            if kind == "->" {
                return None;
            }
            let _advisory = fields.next()?;
            let exclusive = match fields.next()? {
                "WRITE" => true,
                "READ" => false,
                _ => return None,
            };
            let pid: u32 = fields.next()?.parse().ok().filter(|&p| p > 0)?;
            let mut file = fields.next()?.split(':');
            let major = u32::from_str_radix(file.next()?, 16).ok()?;
            let minor = u32::from_str_radix(file.next()?, 16).ok()?;
            let inode: u64 = file.next()?.parse().ok()?;
            // A waiter's mark (`sys::waiters`): a one-byte read lock past
            // any content, which holds nothing.
            let start: u64 = fields.next()?.parse().ok()?;
            if kind == "OFDLCK" && !exclusive && start >= i32::MAX as u64 - 1 {
                return None;
            }
            let holder = OsHolder::new(pid, exclusive, kind.to_string());
            Some(((major, minor, inode), holder))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_granted_locks_and_skips_the_rest() {
        let table = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1837 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 4243 fd:01:1837 0 EOF\n\
                     2: FLOCK  ADVISORY  READ 77 08:10:99 0 EOF\n\
                     3: OFDLCK ADVISORY  WRITE -1 08:10:99 0 EOF\n\
                     5: OFDLCK ADVISORY  READ 99 08:10:99 9223372036854775806 9223372036854775806\n\
                     garbage\n\
                     4: POSIX  ADVISORY  WRITE 12 103:02:5 0 EOF\n";
        let got = parse(table);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, (0xfd, 1, 1837));
        assert!(got[0].1.is_exclusive() && got[0].1.pid() == 4242 && got[0].1.kind() == "FLOCK");
        assert_eq!(got[1].0, (8, 0x10, 99));
        assert!(!got[1].1.is_exclusive());
        assert_eq!(got[2].0, (0x103, 2, 5));
        assert_eq!(got[0].1.to_string(), "pid 4242, exclusive");
    }
}
