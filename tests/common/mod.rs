//! Helpers shared by the integration tests: temporary directories, child
//! processes that re-run this test binary, and descriptor counting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lockyard::{Backoff, LockOptions};

/// The environment variable that tells a re-executed test binary which
/// child role to play.
pub const ROLE_VAR: &str = "LOCKYARD_TEST_ROLE";

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// Options whose backoff is so long that a waiter can only get the lock
/// promptly by being woken by an in-process release.
pub fn wake_only() -> LockOptions {
    let hour = Duration::from_secs(3600);
    LockOptions::new().backoff(Backoff::new(hour, 1, hour))
}

/// Starts this test binary again as a child running only `entry` (an
/// `#[ignore]`d test that dispatches on [`ROLE_VAR`]), with `role` and
/// `args` passed in the environment. The child is killed and reaped if the
/// test ends (or fails) without waiting for it.
pub fn spawn_child(entry: &str, role: &str, args: &[(&str, &str)]) -> Kid {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        entry,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE_VAR, role)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in args {
        cmd.env(k, v);
    }
    Kid(cmd.spawn().expect("spawn child test process"))
}

/// A child process that is killed and reaped when dropped, so a failed test
/// never leaves one behind (under wine, one would keep the test's output
/// pipe open and hang `cargo test`). Waiting for it first is harmless:
/// killing a reaped child does nothing.
#[derive(Debug)]
pub struct Kid(pub Child);

impl std::ops::Deref for Kid {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Kid {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `msg` to the parent test. The test harness may have written
/// part of a line already ("test child_main ... "), so messages are framed
/// with markers rather than taken to be whole lines.
pub fn say(msg: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "<<{msg}>>").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// The next framed message from a child, or `None` once its stdout closes.
/// Reads byte by byte so nothing beyond the message is taken from the pipe.
pub fn next_message(child: &mut Child) -> Option<String> {
    use std::io::Read;
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = out.read(&mut byte).expect("read child stdout");
        if n == 0 {
            return None;
        }
        if byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        if let Some(start) = text.find("<<") {
            if let Some(len) = text[start + 2..].find(">>") {
                return Some(text[start + 2..start + 2 + len].to_string());
            }
        }
    }
}

/// Reads messages from a child until one equals `msg`.
pub fn wait_for_line(child: &mut Child, msg: &str) {
    loop {
        match next_message(child) {
            Some(m) if m == msg => return,
            Some(_) => {}
            None => panic!("child exited before saying {msg:?}"),
        }
    }
}

/// Waits for a child and asserts it succeeded.
pub fn expect_success(mut child: Kid) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "child failed: {status}");
}

/// Number of open descriptors of this process (Linux).
#[cfg(target_os = "linux")]
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// How many of this process's descriptors are open on `path` (Linux):
/// the files behind `/proc/self/fd` compared with the path's, so
/// descriptors other tests open meanwhile do not count.
#[cfg(target_os = "linux")]
pub fn fds_of(path: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else {
        return 0;
    };
    // By file identity: a descriptor's link names the path it was opened
    // through, which need not be this one.
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|m| m.dev() == target.dev() && m.ino() == target.ino())
        .count()
}

/// Waits until `path` exists (a parent's or child's signal), for at most
/// two minutes: a signal that never comes fails the test (or ends the
/// child) instead of hanging it.
pub fn wait_for_file(path: &Path) {
    let since = std::time::Instant::now();
    while !path.exists() {
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn env_path(var: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| panic!("{var} not set")))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// What a forged holder record says.
pub struct Forged<'a> {
    pub pid: u32,
    pub kind: &'a str,
    pub host: &'a str,
    pub boot: Option<&'a str>,
    pub start: Option<u64>,
    /// Seconds since the Unix epoch.
    pub acquired: u64,
    pub ttl_secs: Option<u64>,
    pub token: u64,
}

/// A holder record written from the format's description (not with the
/// crate's own writer), so tests also pin the format down.
pub fn forge_record(f: &Forged<'_>) -> Vec<u8> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut s = format!("{}\nlockyard-holder 1\n", f.pid);
    s += &format!("kind {}\nstate held\nmode exclusive\n", f.kind);
    s += &format!("host {}\n", f.host);
    s += &format!("boot {}\n", opt(f.boot.map(str::to_string)));
    s += &format!("start {}\n", opt(f.start.map(|v| v.to_string())));
    s += &format!(
        "acquired {}.000000000\nrenewed {}.000000000\n",
        f.acquired, f.acquired
    );
    s += &format!(
        "ttl {}\n",
        opt(f.ttl_secs.map(|t| format!("{t}.000000000")))
    );
    s += &format!("owner forged\ntoken {}\n", f.token);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    s += &format!("check {h:016x}\n");
    s.into_bytes()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// This machine's host name and boot id as lockyard records them (read back
/// from a record this process wrote).
pub fn local_identity(dir: &Path) -> (String, Option<String>, Option<u64>) {
    let lock = lockyard::FileLock::new(dir.join("identity-probe.lock"));
    let guard = lock.try_lock().expect("probe lock");
    let rec = guard.record().expect("record").clone();
    (
        rec.host().to_string(),
        rec.boot_id().map(str::to_string),
        rec.process_start(),
    )
}

/// A PID no process has (above Linux's maximum).
pub const DEAD_PID: u32 = 0x7fff_fff0;

/// Waits for `thread` to finish, failing the test (instead of hanging it)
/// if it takes longer than `limit`; `what` says what a timeout means.
pub fn join_within<T>(thread: std::thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let since = std::time::Instant::now();
    while !thread.is_finished() {
        assert!(since.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    thread.join().expect("the thread panicked")
}

/// Children that are killed if the test fails before waiting for them, so
/// a failed test never leaves processes behind (each [`Kid`] sees to it).
pub struct Children(pub Vec<Kid>);

/// Why std's `File::unlock` cannot be trusted here, if it cannot: under
/// wine 8.0 it fails with `ERROR_LOCK_VIOLATION` (33) on a file it locked.
/// Wine's `UnlockFile` answers 33 for a range that holds no lock, where
/// Windows answers `ERROR_NOT_LOCKED`, which std accepts. Probed, not
/// assumed: tests that unlock through std skip only where it fails.
#[allow(dead_code)]
pub fn std_unlock_is_unreliable() -> Option<&'static str> {
    let dir = tempdir();
    let file = std::fs::File::create(dir.path().join("unlock-probe")).ok()?;
    file.lock().ok()?;
    match file.unlock() {
        Err(e) if cfg!(windows) && e.raw_os_error() == Some(33) => Some(
            "std's File::unlock fails with ERROR_LOCK_VIOLATION (33): wine's UnlockFile \
             answers 33 for an unlocked range, where Windows answers ERROR_NOT_LOCKED",
        ),
        _ => None,
    }
}
