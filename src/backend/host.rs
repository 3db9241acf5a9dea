//! This process's identity (for the records it writes) and the liveness of
//! the processes named in records it reads.

use std::sync::{Arc, OnceLock};

use crate::record::HolderRecord;
use crate::sys::process::{boot_id, hostname, pid_alive, start_time};

/// Who this process is, computed once.
#[derive(Debug)]
pub(crate) struct Me {
    pub(crate) pid: u32,
    pub(crate) host: Arc<str>,
    pub(crate) boot_id: Option<Arc<str>>,
    pub(crate) start_time: Option<u64>,
}

pub(crate) fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        Me {
            pid,
            host: hostname().into(),
            boot_id: boot_id().map(Into::into),
            start_time: start_time(pid),
        }
    })
}

/// Whether the process a record names is alive, as far as this machine
/// can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    /// No process has that PID.
    Dead,
    /// A process has that PID, but it started at another time: a reuse.
    Reused,
    /// The record comes from another machine, or this platform cannot tell.
    Unknown,
}

impl Me {
    /// Whether `record` was provably written on this machine during this
    /// boot: the same host name *and* the same boot id. Two machines can
    /// share a host name (containers, cloned VMs) and a filesystem; a
    /// record from a machine with our name but another boot id may be a
    /// previous boot of ours or another machine, and proves nothing. Where
    /// the platform has no boot id, the host name decides.
    pub(crate) fn same_host(&self, record: &HolderRecord) -> bool {
        record.host == self.host
            && match (record.boot_id.as_deref(), self.boot_id.as_deref()) {
                (Some(theirs), Some(ours)) => theirs == ours,
                (None, None) => true,
                _ => false,
            }
    }

    /// Whether the record's holder is known not to be running any more.
    pub(crate) fn provably_dead(&self, record: &HolderRecord) -> bool {
        matches!(self.liveness(record), Liveness::Dead | Liveness::Reused)
    }

    pub(crate) fn liveness(&self, record: &HolderRecord) -> Liveness {
        if !self.same_host(record) {
            return Liveness::Unknown;
        }
        match pid_alive(record.pid) {
            Some(false) => Liveness::Dead,
            Some(true) => match (record.start_time, start_time(record.pid)) {
                (Some(theirs), Some(now)) if theirs != now => Liveness::Reused,
                _ => Liveness::Alive,
            },
            None => Liveness::Unknown,
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn knows_itself() {
        let me = me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.boot_id.is_some());
        assert!(me.start_time.is_some());
        assert_eq!(crate::sys::process::pid_alive(me.pid), Some(true));
    }
}
