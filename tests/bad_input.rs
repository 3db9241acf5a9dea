//! Bad lock paths and exhausted resources: each gives a typed error that
//! names the path and the cause; none panics, hangs or leaves a lock behind.

// The child-process machinery below serves Unix-only checks.
#![cfg_attr(not(unix), allow(unused))]

mod common;

use std::path::Path;
use std::time::Duration;

use lockyard::{Error, ErrorKind, FileLock, LockOptions};

use common::{env_path, expect_success, next_message, say, spawn_child, tempdir, ROLE_VAR};

/// Every way of taking the lock fails the same way, and the error names the
/// path.
fn all_fail(path: &Path, kind: ErrorKind) -> Error {
    all_fail_with(path, LockOptions::new(), kind)
}

/// [`all_fail`] with `options`; shared requests are left out for soft
/// locks, which are exclusive only.
fn all_fail_with(path: &Path, options: LockOptions, kind: ErrorKind) -> Error {
    let shared_ok = options.get_kind() == lockyard::LockKind::Strict;
    let lock = FileLock::with_options(path, options);
    let errors = [
        lock.try_lock().unwrap_err(),
        lock.lock_blocking_timeout(Duration::from_millis(200))
            .unwrap_err(),
        if shared_ok {
            lock.lock_shared_blocking().unwrap_err()
        } else {
            lock.lock_blocking().unwrap_err()
        },
        futures::executor::block_on(lock.lock()).unwrap_err(),
        futures::executor::block_on(lock.lock_timeout(Duration::from_millis(200))).unwrap_err(),
    ];
    for e in &errors {
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.path(), Some(path));
        assert_eq!(e.name(), path.as_os_str());
        let (shown, quoted) = (path.display().to_string(), format!("{path:?}"));
        let text = e.to_string();
        assert!(text.contains(&shown) || text.contains(&quoted), "{e}");
    }
    assert_eq!(lock.waiters(), 0);
    errors.into_iter().next().unwrap()
}

/// Every question about the lock (`holder`, `state`, `inspect`) gives the
/// same typed answer as taking it, naming the path.
fn all_questions_fail(path: &Path, options: LockOptions, kind: ErrorKind) {
    let lock = FileLock::with_options(path, options);
    let errors = [
        lock.holder().unwrap_err(),
        lock.state().unwrap_err(),
        lock.inspect().unwrap_err(),
    ];
    for e in &errors {
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.path(), Some(path));
        assert_eq!(e.name(), path.as_os_str());
    }
}

/// [`all_fail_with`] and [`all_questions_fail`] for a strict lock, a soft
/// lock and a lease at `path`.
fn every_kind_fails(path: &Path, kind: ErrorKind) {
    for options in [
        LockOptions::new(),
        LockOptions::new().soft(),
        LockOptions::new().lease(Duration::from_secs(5)),
    ] {
        all_fail_with(path, options.clone(), kind);
        all_questions_fail(path, options, kind);
    }
}

#[test]
fn directory_is_not_a_lock_file() {
    let dir = tempdir();
    let e = all_fail(dir.path(), ErrorKind::NotAFile);
    assert!(e.to_string().contains("directory"), "{e}");
    every_kind_fails(dir.path(), ErrorKind::NotAFile);
}

/// A path that names no file (`.`, `..`, a root) is refused by `new` and
/// `for_file` alike, for every question, instead of locking a neighbour
/// such as `./.lock`.
#[test]
fn paths_with_no_file_name_are_invalid() {
    let dir = tempdir();
    for path in [".", "..", "a/..", "/", ""] {
        let e = all_fail(Path::new(path), ErrorKind::InvalidPath);
        assert!(
            e.to_string().contains(&format!("{path:?}")) || path.is_empty(),
            "{e}"
        );
        every_kind_fails(Path::new(path), ErrorKind::InvalidPath);
        for lock in [
            FileLock::for_file(path),
            FileLock::for_file_in(dir.path(), path),
        ] {
            assert_eq!(lock.path(), Path::new(path));
            assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::InvalidPath);
            assert_eq!(lock.holder().unwrap_err().kind(), ErrorKind::InvalidPath);
            assert_eq!(lock.state().unwrap_err().kind(), ErrorKind::InvalidPath);
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "something was created"
    );
    for stray in ["./.lock", "./...lock", "./..lock"] {
        assert!(!Path::new(stray).exists(), "{stray} was created");
    }
    // A data path that ends in a separator still gets its lock beside it.
    assert_eq!(
        FileLock::for_file("data/state.json/").path(),
        Path::new("data/state.json.lock")
    );
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn fifo_is_not_a_lock_file_and_does_not_hang() {
    let dir = tempdir();
    let path = dir.path().join("fifo.lock");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let e = all_fail(&path, ErrorKind::NotAFile);
    assert!(e.to_string().contains("FIFO"), "{e}");
    every_kind_fails(&path, ErrorKind::NotAFile);
}

#[cfg(unix)]
#[test]
fn dangling_symlink_is_refused_and_not_followed() {
    let dir = tempdir();
    let target = dir.path().join("elsewhere.lock");
    let path = dir.path().join("link.lock");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = all_fail(&path, ErrorKind::Symlink);
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(
        !target.exists(),
        "the link was followed and its target created"
    );
}

#[cfg(unix)]
#[test]
fn symlink_to_a_real_file_is_refused() {
    let dir = tempdir();
    let target = dir.path().join("real.lock");
    std::fs::write(&target, "").unwrap();
    let path = dir.path().join("link.lock");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    all_fail(&path, ErrorKind::Symlink);
}

#[test]
fn a_file_in_the_way_of_the_parent() {
    let dir = tempdir();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let path = blocker.join("sub").join("x.lock");
    let e = all_fail(&path, ErrorKind::CreateDir);
    assert!(e.io_error().is_some(), "the OS error is kept as the source");
    // Directly below the file: open says ENOTDIR, still a directory problem.
    all_fail(&blocker.join("x.lock"), ErrorKind::CreateDir);
}

#[test]
fn missing_parent_is_an_error_when_creation_is_off() {
    let dir = tempdir();
    let path = dir.path().join("missing").join("x.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().create_parent(false));
    assert_eq!(lock.try_lock().unwrap_err().kind(), ErrorKind::CreateDir);
    assert!(!path.parent().unwrap().exists());
}

#[test]
fn nul_and_empty_paths_are_invalid() {
    let e = all_fail(Path::new("state\0.lock"), ErrorKind::InvalidPath);
    assert!(e.to_string().contains("NUL"), "{e}");
    all_fail(Path::new(""), ErrorKind::InvalidPath);
}

/// A soft lock or lease with an empty path writes nothing (its control
/// file would otherwise be `.ctl` in the working directory).
#[test]
fn empty_soft_and_lease_paths_are_invalid_and_write_nothing() {
    let dir = tempdir();
    // The working directory is process-wide: look for the file there
    // rather than change it.
    let cwd_ctl = std::env::current_dir().unwrap().join(".ctl");
    let existed = cwd_ctl.exists();
    for options in [
        LockOptions::new().soft(),
        LockOptions::new().lease(Duration::from_secs(5)),
    ] {
        all_fail_with(Path::new(""), options.clone(), ErrorKind::InvalidPath);
        all_fail_with(Path::new("soft\0.lock"), options, ErrorKind::InvalidPath);
    }
    assert_eq!(
        cwd_ctl.exists(),
        existed,
        "a .ctl file appeared in the working directory"
    );
    drop(dir);
}

/// A Unix socket at the lock path is "not a file", like a FIFO, however
/// the lock is asked about.
#[cfg(unix)]
#[test]
fn unix_socket_is_not_a_lock_file() {
    let dir = tempdir();
    let path = dir.path().join("sock.lock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let e = all_fail(&path, ErrorKind::NotAFile);
    assert!(e.to_string().contains("socket"), "{e}");
    every_kind_fails(&path, ErrorKind::NotAFile);
}

#[cfg(unix)]
#[test]
fn parent_without_permission() {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::geteuid().is_root() {
        eprintln!("skipped: running as root, which bypasses directory permissions");
        return;
    }
    let dir = tempdir();
    let locked_dir = dir.path().join("ro");
    std::fs::create_dir(&locked_dir).unwrap();
    std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    all_fail(&locked_dir.join("sub").join("x.lock"), ErrorKind::CreateDir);
    let e = all_fail(&locked_dir.join("x.lock"), ErrorKind::Io);
    assert_eq!(
        e.io_error().unwrap().kind(),
        std::io::ErrorKind::PermissionDenied
    );
    std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// A read-only filesystem: an existing lock file still locks (opened
/// read-only; `flock` does not need write access locally), a new one is a
/// clear error. Needs a mount, so it runs only where this test may mount.
#[cfg(target_os = "linux")]
#[test]
fn read_only_filesystem() {
    use std::process::Command;
    let dir = tempdir();
    let mnt = dir.path();
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount(&["-t", "tmpfs", "tmpfs", mnt.to_str().unwrap()]) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        return;
    }
    let existing = mnt.join("existing.lock");
    std::fs::write(&existing, "").unwrap();
    let remounted = mount(&["-o", "remount,ro", mnt.to_str().unwrap()]);
    if remounted {
        let existing_locks = FileLock::new(&existing).try_lock().map(drop);
        let e = FileLock::new(mnt.join("new.lock")).try_lock().unwrap_err();
        let e2 = FileLock::new(mnt.join("sub").join("new.lock"))
            .try_lock()
            .unwrap_err();
        let unmounted = Command::new("umount").arg(mnt).status();
        assert!(
            existing_locks.is_ok(),
            "existing lock file on a read-only mount: {:?}",
            existing_locks.err()
        );
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert!(
            e.to_string().contains("new.lock") && cause.is_some_and(|c| c.contains("Read-only")),
            "{e:?}"
        );
        assert_eq!(e2.kind(), ErrorKind::CreateDir, "{e2}");
        assert!(unmounted.is_ok_and(|s| s.success()));
    } else {
        let _ = Command::new("umount").arg(mnt).status();
        eprintln!("skipped: could not remount the tmpfs read-only");
    }
}

/// Windows device names name devices in every directory: a lock there
/// would lock nothing anyone else sees.
#[cfg(windows)]
#[test]
fn reserved_device_names_are_not_lock_files() {
    let dir = tempdir();
    for path in [Path::new("NUL").to_path_buf(), dir.path().join("NUL")] {
        let e = all_fail(&path, ErrorKind::NotAFile);
        assert!(e.to_string().contains("device"), "{e}");
    }
}

/// A path longer than `MAX_PATH` (260 characters) locks like any other:
/// std passes such paths to Windows in their `\\?\` form.
#[cfg(windows)]
#[test]
fn paths_longer_than_max_path_lock() {
    let dir = tempdir();
    let mut path = dir.path().to_path_buf();
    for i in 0..6 {
        path.push(format!("{i:0>50}"));
    }
    std::fs::create_dir_all(&path).unwrap();
    path.push("long.lock");
    assert!(path.as_os_str().len() > 260);
    let lock = FileLock::new(&path);
    let guard = lock.try_lock().expect("a long path locks");
    assert_eq!(
        FileLock::new(&path).try_lock().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert!(path.is_file());
    drop(guard);
    FileLock::new(&path).try_lock().expect("free again");
}

/// A read-only data file locks, shared and exclusive (a lock needs only
/// read access), and stays as it was: same bytes, still read-only.
#[cfg(windows)]
#[test]
fn a_read_only_file_locks_and_is_left_alone() {
    let dir = tempdir();
    let path = dir.path().join("read-only.dat");
    std::fs::write(&path, b"data").unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let lock = FileLock::new(&path);
    drop(lock.try_lock().expect("exclusive"));
    drop(lock.try_lock_shared().expect("shared"));
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
}

/// A file some program opened without sharing it (share mode 0) cannot be
/// opened at all until it closes: a typed I/O error naming the path, with
/// the sharing violation as its cause, from every way of locking. Sharing
/// is checked per file, whatever process holds the other handle.
#[cfg(windows)]
#[test]
fn a_file_opened_without_sharing_is_a_clear_error() {
    use std::os::windows::fs::OpenOptionsExt;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    let dir = tempdir();
    let path = dir.path().join("unshared.dat");
    std::fs::write(&path, b"data").unwrap();
    let unshared = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(0)
        .open(&path)
        .unwrap();
    let e = all_fail(&path, ErrorKind::Io);
    assert_eq!(
        e.io_error().and_then(std::io::Error::raw_os_error),
        Some(ERROR_SHARING_VIOLATION),
        "{e:?}"
    );
    drop(unshared);
    drop(FileLock::new(&path).try_lock().expect("locks once closed"));
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

/// Out of descriptors: a typed I/O error naming the path, and the lock
/// works again once descriptors are free. Runs in a child, whose limit can
/// be lowered without disturbing the other tests.
#[cfg(unix)]
#[test]
fn descriptor_limit_reached() {
    let dir = tempdir();
    let path = dir.path().join("emfile.lock");
    let mut child = spawn_child("child_main", "emfile", &[("LOCK", path.to_str().unwrap())]);
    assert_eq!(next_message(&mut child).as_deref(), Some("ok"));
    expect_success(child);
}

/// The entry point of child processes; does nothing unless started as one.
#[test]
#[ignore = "entry point for child processes started by the other tests in this file"]
fn child_main() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let path = env_path("LOCK");
    match role.as_str() {
        #[cfg(unix)]
        "emfile" => {
            use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
            // Fill the descriptor table up to a low limit.
            let old = getrlimit(Resource::Nofile);
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(64),
                    maximum: old.maximum,
                },
            )
            .unwrap();
            let mut hog = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
            }
            let lock = FileLock::new(&path);
            let e = lock.try_lock().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
            assert_eq!(
                e.io_error().and_then(|io| io.raw_os_error()),
                Some(rustix::io::Errno::MFILE.raw_os_error())
            );
            assert!(e.to_string().contains("emfile.lock"), "{e}");
            let e = futures::executor::block_on(lock.lock()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
            assert_eq!(lock.waiters(), 0);
            drop(hog);
            let guard = lock.try_lock().expect("lock once descriptors are free");
            assert!(guard.is_exclusive());
            say("ok");
        }
        other => panic!("unknown role {other}"),
    }
}
