//! This machine and its processes, as far as the platform tells: host
//! name, boot id, a process's start time, whether a PID is alive.

pub(crate) fn hostname() -> String {
    #[cfg(unix)]
    {
        let name = rustix::system::uname();
        let name = name.nodename().to_string_lossy().into_owned();
        if !name.is_empty() {
            return name;
        }
    }
    #[cfg(windows)]
    if let Some(name) = std::env::var_os("COMPUTERNAME") {
        return name.to_string_lossy().into_owned();
    }
    "localhost".to_string()
}

pub(crate) fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        if !id.is_empty() && id.len() <= 64 {
            return Some(id.to_string());
        }
    }
    None
}

/// A process's start time in clock ticks since boot: field 22 of
/// `/proc/PID/stat` (Linux). Fields are counted after the last `)`, since
/// the command name (field 2) may itself contain spaces and parentheses.
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // `after` starts at field 3; field 22 is the 20th from there.
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    None
}

/// `Some(alive)` when this platform can tell, `None` when it cannot.
#[cfg(unix)]
pub(crate) fn pid_alive(pid: u32) -> Option<bool> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)?;
    match rustix::process::test_kill_process(pid) {
        Ok(()) => Some(true),
        // Exists, but belongs to another user.
        Err(rustix::io::Errno::PERM) => Some(true),
        Err(rustix::io::Errno::SRCH) => Some(false),
        Err(_) => None,
    }
}

#[cfg(not(unix))]
pub(crate) fn pid_alive(_pid: u32) -> Option<bool> {
    None
}
