//! Cross-process wake-ups: a waiter whose backoff would not retry for an
//! hour still gets the lock as soon as another process lets go, because it
//! watches the lock file (inotify on Linux, kqueue on macOS and the BSDs,
//! its directory's change notifications on Windows).
//! Each holder is a real child process that releases the way a given kind
//! of program does, and stays alive afterwards so that its exit cannot be
//! what wakes the waiter. Closes are seen by inotify only (kqueue reports
//! none on macOS): those tests, and the ones that look inside the inotify
//! instance, are Linux-only.
#![cfg(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    windows
))]

mod common;

use common::wait_for_file;

use std::path::Path;
use std::time::Duration;

use lockyard::{FileLock, LockOptions};

use common::{
    env_path, expect_success, say, spawn_child, tempdir, wait_for_line, wake_only, ROLE_VAR,
};

const ENTRY: &str = "wake_child";

/// Long enough that only a failure, never a slow machine, reaches it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Child entry point; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn wake_child() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let lock_path = env_path("LOCK");
    let release = env_path("RELEASE");
    let done = env_path("DONE");
    // Kept open past the release, so no close can be the signal.
    let keep: Option<FileLock> = match role.as_str() {
        // A program that releases by closing its descriptor (std, flock(1),
        // Python's filelock, Go's flock).
        "std_close" => {
            let file = open_rw(&lock_path);
            file.lock().unwrap();
            say("locked");
            wait_for_file(&release);
            drop(file);
            None
        }
        // A holder that writes to the lock file while it holds it (as a
        // new lockyard holder stamps its record), then closes it on `done`.
        #[cfg(target_os = "linux")]
        "std_write" => {
            let file = open_rw(&lock_path);
            file.lock().unwrap();
            say("locked");
            wait_for_file(&release);
            std::os::unix::fs::FileExt::write_all_at(&file, b"4242\n", 0).unwrap();
            say("wrote");
            wait_for_file(&done);
            drop(file);
            None
        }
        // lockyard, with and without its holder record: unlocks with
        // LOCK_UN and keeps the descriptor open; its announcement after the
        // unlock is the signal. "Silent": file events off, so a bare
        // LOCK_UN and no announcement.
        "lockyard" | "lockyard_bare" | "lockyard_silent" => {
            let options = LockOptions::new()
                .metadata(role == "lockyard")
                .file_events(role != "lockyard_silent");
            let lock = FileLock::with_options(&lock_path, options);
            let guard = lock.lock_blocking().unwrap();
            say("locked");
            wait_for_file(&release);
            guard.unlock().unwrap();
            Some(lock)
        }
        // lockyard downgrading to shared: its announcement lets shared
        // waiters in; it keeps holding the lock shared.
        "lockyard_downgrade" => {
            let lock = FileLock::new(&lock_path);
            let guard = lock.lock_blocking().unwrap();
            say("locked");
            wait_for_file(&release);
            let shared = guard.downgrade().unwrap();
            say("released");
            wait_for_file(&done);
            drop(shared);
            return;
        }
        // A soft lock: the sidecar's removal is the signal.
        "soft" => {
            let lock = FileLock::with_options(&lock_path, LockOptions::new().soft());
            let guard = lock.lock_blocking().unwrap();
            say("locked");
            wait_for_file(&release);
            guard.unlock().unwrap();
            Some(lock)
        }
        other => panic!("unknown role {other}"),
    };
    say("released");
    wait_for_file(&done);
    drop(keep);
}

fn open_rw(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// Starts a child holding the lock at `lock` as `role`; it releases when
/// `release` appears and exits when `done` does.
fn spawn_holder(role: &str, lock: &Path, release: &Path, done: &Path) -> common::Kid {
    spawn_child(
        ENTRY,
        role,
        &[
            ("LOCK", lock.to_str().unwrap()),
            ("RELEASE", release.to_str().unwrap()),
            ("DONE", done.to_str().unwrap()),
        ],
    )
}

#[derive(Clone, Copy)]
enum How {
    Async,
    Blocking,
    /// `lock_shared().await`.
    AsyncShared,
    /// Inside a tokio runtime: with the `tokio` feature, tokio's reactor
    /// serves the watch.
    #[cfg(feature = "tokio")]
    Tokio,
    /// Inside a tokio runtime with a timer but no reactor: async-io's
    /// reactor serves the watch.
    #[cfg(feature = "tokio")]
    TokioWithoutIo,
}

/// Starts a holder child playing `role`, waits on the lock with a backoff
/// that never retries in time, has the child release, and returns what the
/// wait came back with.
fn wait_while_child_releases(
    role: &str,
    options: LockOptions,
    how: How,
    timeout: Duration,
) -> Result<(), lockyard::Error> {
    let dir = tempdir();
    let lock_path = dir.path().join("wake.lock");
    let release = dir.path().join("release");
    let done = dir.path().join("done");
    let mut child = spawn_holder(role, &lock_path, &release, &done);
    wait_for_line(&mut child, "locked");

    let lock = FileLock::with_options(&lock_path, options);
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || match how {
            How::Async => futures::executor::block_on(lock.lock_timeout(timeout)).map(drop),
            How::Blocking => lock.lock_blocking_timeout(timeout).map(drop),
            How::AsyncShared => {
                futures::executor::block_on(lock.lock_shared_timeout(timeout)).map(drop)
            }
            #[cfg(feature = "tokio")]
            How::Tokio => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(lock.lock_timeout(timeout))
                .map(drop),
            #[cfg(feature = "tokio")]
            How::TokioWithoutIo => tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime")
                .block_on(lock.lock_timeout(timeout))
                .map(drop),
        })
    };
    // Release only once the waiter is queued (its first attempt failed).
    while lock.waiters() == 0 && !waiter.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::fs::write(&release, b"").unwrap();
    let released = std::time::Instant::now();
    let result = waiter.join().unwrap();
    // The deadline makes one last attempt, which would succeed too: only
    // coming back long before it shows that the event woke the waiter.
    assert!(
        released.elapsed() < PATIENCE / 2,
        "{role}: not woken by the release, only by the deadline"
    );
    wait_for_line(&mut child, "released");
    std::fs::write(&done, b"").unwrap();
    expect_success(child);
    result
}

fn watching() -> LockOptions {
    wake_only()
}

/// The tests share the process's one inotify instance; the last one
/// inspects it, so they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(target_os = "linux")]
#[test]
fn close_by_another_program_wakes_an_async_waiter() {
    let _turn = serial();
    wait_while_child_releases("std_close", watching(), How::Async, PATIENCE)
        .expect("woken by the close");
}

#[cfg(target_os = "linux")]
#[test]
fn close_by_another_program_wakes_a_blocking_waiter() {
    let _turn = serial();
    wait_while_child_releases("std_close", watching(), How::Blocking, PATIENCE)
        .expect("woken by the close");
}

#[test]
fn lockyard_release_in_another_process_wakes_the_waiter() {
    let _turn = serial();
    for role in ["lockyard", "lockyard_bare"] {
        wait_while_child_releases(role, watching(), How::Async, PATIENCE)
            .unwrap_or_else(|e| panic!("{role}: not woken by the announcement: {e}"));
        wait_while_child_releases(role, watching(), How::Blocking, PATIENCE)
            .unwrap_or_else(|e| panic!("{role}: not woken by the announcement: {e}"));
    }
}

#[cfg(feature = "tokio")]
#[test]
fn a_waiter_in_a_tokio_runtime_is_woken() {
    let _turn = serial();
    // kqueue reports no close on macOS, nor does Windows: there, only
    // lockyard's announcement.
    let roles: &[&str] = if cfg!(target_os = "linux") {
        &["std_close", "lockyard"]
    } else {
        &["lockyard"]
    };
    for role in roles {
        wait_while_child_releases(role, watching(), How::Tokio, PATIENCE)
            .unwrap_or_else(|e| panic!("{role}: not woken: {e}"));
        wait_while_child_releases(role, watching(), How::TokioWithoutIo, PATIENCE)
            .unwrap_or_else(|e| panic!("{role}, runtime without I/O: not woken: {e}"));
    }
}

#[test]
fn a_downgrade_in_another_process_wakes_a_shared_waiter() {
    let _turn = serial();
    wait_while_child_releases("lockyard_downgrade", watching(), How::AsyncShared, PATIENCE)
        .expect("woken by the downgrade's announcement");
}

#[test]
fn soft_lock_release_in_another_process_wakes_the_waiter() {
    let _turn = serial();
    wait_while_child_releases("soft", watching().soft(), How::Async, PATIENCE)
        .expect("woken by the sidecar's removal");
}

/// Records whether it was woken.
#[cfg(target_os = "linux")]
struct Flag(std::sync::atomic::AtomicBool);

#[cfg(target_os = "linux")]
impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The files through which a test drives its holder child.
#[cfg(target_os = "linux")]
struct Signals {
    release: std::path::PathBuf,
    done: std::path::PathBuf,
}

#[cfg(target_os = "linux")]
/// Polls a waiting future by hand, with a waker that records wake-ups,
/// while a child holds the lock as `role`. `script` drives the child and is
/// handed `woken_within(patience)`; what it returns is the outcome. If the
/// waiter was woken, it must then take the lock.
fn with_polled_waiter(
    options: LockOptions,
    role: &str,
    script: impl FnOnce(&mut std::process::Child, &Signals, &dyn Fn(Duration) -> bool) -> bool,
) -> bool {
    use std::future::Future;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    let dir = tempdir();
    let lock_path = dir.path().join("wake.lock");
    let signals = Signals {
        release: dir.path().join("release"),
        done: dir.path().join("done"),
    };
    let mut child = spawn_holder(role, &lock_path, &signals.release, &signals.done);
    wait_for_line(&mut child, "locked");
    let lock = FileLock::with_options(&lock_path, options.offload_open(false));
    let flag = Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut fut = Box::pin(lock.lock());
    let mut cx = Context::from_waker(&waker);
    assert!(
        fut.as_mut().poll(&mut cx).is_pending(),
        "the child holds it"
    );
    let woken_within = |patience: Duration| {
        let since = std::time::Instant::now();
        while !flag.0.load(Ordering::SeqCst) && since.elapsed() < patience {
            std::thread::sleep(Duration::from_millis(5));
        }
        flag.0.load(Ordering::SeqCst)
    };
    let outcome = script(&mut child, &signals, &woken_within);
    if flag.0.load(Ordering::SeqCst) {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(result) => drop(result.expect("acquired after the wake-up")),
            Poll::Pending => panic!("woken, but the lock was not taken"),
        }
    }
    drop(fut);
    std::fs::write(&signals.done, b"").unwrap();
    expect_success(child);
    outcome
}

#[cfg(target_os = "linux")]
/// Whether anything woke a waiter within `patience` after a child that
/// releases by closing let go.
fn woken_by_release(options: LockOptions, patience: Duration) -> bool {
    with_polled_waiter(options, "std_close", |child, signals, woken_within| {
        std::fs::write(&signals.release, b"").unwrap();
        wait_for_line(child, "released");
        woken_within(patience)
    })
}

/// The control that makes the tests above mean something: the same
/// waiter is woken by the release with file events on, and is not woken at
/// all with them off (its next backoff attempt is an hour away).
#[cfg(target_os = "linux")]
#[test]
fn the_wake_up_comes_from_the_file_event() {
    let _turn = serial();
    assert!(
        woken_by_release(watching(), PATIENCE),
        "not woken by the release"
    );
    assert!(
        !woken_by_release(watching().file_events(false), Duration::from_millis(500)),
        "woken with file events off: something else wakes waiters"
    );
}

/// With file events off, a lockyard holder releases with a bare LOCK_UN
/// and announces nothing: its waiters are left to backoff.
#[cfg(target_os = "linux")]
#[test]
fn a_holder_with_file_events_off_announces_nothing() {
    let _turn = serial();
    let woken = with_polled_waiter(
        watching(),
        "lockyard_silent",
        |child, signals, woken_within| {
            std::fs::write(&signals.release, b"").unwrap();
            wait_for_line(child, "released");
            woken_within(Duration::from_millis(500))
        },
    );
    assert!(!woken, "woken although the holder announced nothing");
}

/// Writing to the lock file (what a new lockyard holder does to stamp its
/// record) must not wake the waiters: only a sign of release may. The
/// close that follows does, so the waiter was listening all along.
#[cfg(target_os = "linux")]
#[test]
fn writes_to_a_held_lock_file_wake_nobody() {
    let _turn = serial();
    let woken_by_close =
        with_polled_waiter(watching(), "std_write", |child, signals, woken_within| {
            std::fs::write(&signals.release, b"").unwrap();
            wait_for_line(child, "wrote");
            assert!(
                !woken_within(Duration::from_millis(500)),
                "a write to the held lock file woke the waiter"
            );
            std::fs::write(&signals.done, b"").unwrap();
            wait_for_line(child, "released");
            woken_within(PATIENCE)
        });
    assert!(woken_by_close, "not woken by the close after the write");
}

#[cfg(target_os = "linux")]
/// The kernel watches of this process's one inotify instance.
fn inotify_watches() -> usize {
    let mut instances = 0;
    let mut watches = 0;
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if target.to_string_lossy() != "anon_inode:inotify" {
            continue;
        }
        instances += 1;
        let name = fd.file_name();
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(&name)).unwrap();
        watches += info
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .count();
    }
    assert!(instances <= 1, "one inotify instance per process");
    watches
}

/// Waiters on one lock file share one kernel watch, kept while the lock's
/// handles live (the next wait needs no new one, and nobody removes it on
/// the way to the lock); once the handles are gone, nothing is watched.
#[cfg(target_os = "linux")]
#[test]
fn one_watch_per_lock_file_gone_with_its_handles() {
    let _turn = serial();
    let dir = tempdir();
    let lock_path = dir.path().join("kept.lock");
    let lock = FileLock::with_options(&lock_path, watching());
    for round in 0..2 {
        let release = dir.path().join(format!("release{round}"));
        let done = dir.path().join(format!("done{round}"));
        let mut child = spawn_holder("std_close", &lock_path, &release, &done);
        wait_for_line(&mut child, "locked");
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || {
                futures::executor::block_on(lock.lock_timeout(PATIENCE)).map(drop)
            })
        };
        while lock.waiters() == 0 && !waiter.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::write(&release, b"").unwrap();
        waiter.join().unwrap().expect("woken by the close");
        wait_for_line(&mut child, "released");
        std::fs::write(&done, b"").unwrap();
        expect_success(child);
        assert_eq!(
            inotify_watches(),
            1,
            "round {round}: the watch is kept and reused"
        );
    }
    drop(lock);
    assert_eq!(inotify_watches(), 0, "watches left behind");
}
