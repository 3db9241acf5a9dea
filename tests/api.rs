//! The public surface: auto traits, path conventions, error conversions and
//! messages, and tokio's paused clock.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lockyard::{
    Acquire, Backoff, Error, ErrorKind, FileLock, LockGuard, LockMode, LockOptions, Wait,
};
use static_assertions::{assert_impl_all, assert_not_impl_any};

use common::tempdir;

// Handles are shared freely; guards and futures move between threads (a
// guard can be sent to, or held across `.await` in, a spawned task).
assert_impl_all!(FileLock: Send, Sync, Clone, std::fmt::Debug);
assert_impl_all!(LockGuard: Send, Sync, std::fmt::Debug);
assert_impl_all!(Acquire: Send, std::future::Future<Output = Result<LockGuard, Error>>, std::fmt::Debug);
assert_impl_all!(Error: Send, Sync, std::error::Error, Into<io::Error>);
assert_impl_all!(LockOptions: Send, Sync, Clone, std::fmt::Debug, Default);
assert_impl_all!(Backoff: Send, Sync, Copy, std::fmt::Debug);
assert_impl_all!(Wait: Send, Sync, Copy, std::fmt::Debug, std::hash::Hash);
// Usable across `catch_unwind`, as std's handles are.
assert_impl_all!(FileLock: std::panic::UnwindSafe, std::panic::RefUnwindSafe);
assert_impl_all!(LockGuard: std::panic::UnwindSafe, std::panic::RefUnwindSafe);
assert_impl_all!(lockyard::LockDir: std::panic::UnwindSafe, std::panic::RefUnwindSafe);
// Comparable and hashable where their contents are.
assert_impl_all!(lockyard::LockInfo: Eq, std::hash::Hash);
assert_impl_all!(lockyard::HolderRecord: Eq, std::hash::Hash);
assert_impl_all!(lockyard::StaleLock: Eq, std::hash::Hash);
assert_impl_all!(lockyard::LockState: Eq, std::hash::Hash);
assert_impl_all!(Backoff: Eq, std::hash::Hash);
assert_impl_all!(lockyard::WaitStrategy: Eq, std::hash::Hash);
assert_impl_all!(lockyard::CleanReport: Eq);
// A guard is proof of holding the lock: it cannot be duplicated, and an
// acquisition in progress cannot be either.
assert_not_impl_any!(LockGuard: Clone, Copy);
assert_not_impl_any!(Acquire: Clone, Copy);
assert_not_impl_any!(Error: Clone);

#[test]
fn guards_are_owned_and_can_be_spawned() {
    let dir = tempdir();
    let lock = Arc::new(FileLock::new(dir.path().join("owned.lock")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let guard = lock.lock().await.unwrap();
        // The guard is 'static: it outlives the borrow of `lock` and moves
        // into another task, which releases it.
        let released = tokio::spawn(async move {
            assert!(guard.is_exclusive());
            drop(guard);
        });
        released.await.unwrap();
        let again = lock.try_lock().unwrap();
        assert_eq!(again.mode(), LockMode::Exclusive);
    });
}

#[test]
fn path_conventions() {
    assert_eq!(
        FileLock::new("a/state.lock").path(),
        Path::new("a/state.lock")
    );
    assert_eq!(
        FileLock::for_file("data/state.json").path(),
        Path::new("data/state.json.lock")
    );
    assert_eq!(
        FileLock::for_file("Makefile").path(),
        Path::new("Makefile.lock")
    );
    assert_eq!(
        FileLock::for_file_in("/run/locks", "data/state.json").path(),
        Path::new("/run/locks/state.json.lock")
    );
}

/// Missing directories are an error by default, as for the command (and
/// flock(1)), for every constructor; `create_parent(true)` makes them.
#[test]
fn missing_parent_directories_are_created_only_when_asked() {
    let dir = tempdir();
    let path = dir.path().join("a").join("b").join("x.lock");
    for lock in [
        FileLock::new(&path),
        FileLock::for_file(dir.path().join("a/b/x")),
        FileLock::for_file_in(dir.path().join("a/b"), "x"),
        FileLock::with_options(&path, LockOptions::new().soft()),
    ] {
        let e = lock.try_lock().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CreateDir, "{e}");
        assert!(!dir.path().join("a").exists(), "a directory was made");
    }
    let lock = FileLock::with_options(&path, LockOptions::new().create_parent(true));
    let guard = lock.try_lock().unwrap();
    assert!(path.is_file());
    assert_eq!(guard.path(), Some(path.as_path()));
    assert_eq!(guard.name(), path.as_os_str());
}

#[cfg(unix)]
#[test]
fn lock_files_get_the_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let path = dir.path().join("mode.lock");
    let old = rustix::process::umask(rustix::fs::Mode::empty());
    let guard = FileLock::with_options(&path, LockOptions::new().file_mode(0o640)).try_lock();
    rustix::process::umask(old);
    drop(guard.unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn errors_convert_to_io_errors() {
    let dir = tempdir();
    let lock = FileLock::new(dir.path().join("io.lock"));
    let _held = lock.try_lock().unwrap();
    let e: io::Error = lock.try_lock().unwrap_err().into();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert!(e.to_string().contains("io.lock"));
    let e: io::Error = lock
        .lock_blocking_timeout(Duration::from_millis(10))
        .unwrap_err()
        .into();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    let e: io::Error = FileLock::new("nul\0.lock").try_lock().unwrap_err().into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e: io::Error = FileLock::new(dir.path()).try_lock().unwrap_err().into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    // The lockyard error survives inside, for callers who downcast.
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>()).unwrap();
    assert_eq!(inner.kind(), ErrorKind::NotAFile);
}

#[test]
fn messages_name_the_path_and_the_cause() {
    let dir = tempdir();
    let path = dir.path().join("msg.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().owner("indexer"));
    let _held = lock.try_lock().unwrap();
    let shown = path.display().to_string();

    // With a holder record (the default), the message names the holder.
    let e = lock.try_lock().unwrap_err();
    let text = e.to_string();
    let pid = std::process::id();
    let prefix = format!("lock {shown} is held by this process (pid {pid} on ");
    assert!(text.starts_with(&prefix), "{text}");
    assert!(
        text.contains(" (owner \"indexer\") for ")
            && text.ends_with(" s): another guard or handle here holds it"),
        "{text}"
    );
    assert_eq!(e.holder().unwrap().pid(), pid);
    assert!(e.is_contended());
    assert_eq!(e.waited(), None);

    // Without one, the kernel's lock table says who, where there is one
    // (Linux); elsewhere the message says so plainly.
    let bare_path = dir.path().join("bare.lock");
    let bare = FileLock::with_options(&bare_path, LockOptions::new().metadata(false));
    let _bare_held = bare.try_lock().unwrap();
    let e = bare.try_lock().unwrap_err();
    let expected = if cfg!(target_os = "linux") {
        format!(
            "lock {} is held by this process (pid {pid}), exclusive (per the kernel)",
            bare_path.display()
        )
    } else {
        format!("lock {} is held elsewhere", bare_path.display())
    };
    assert_eq!(e.to_string(), expected);
    assert!(e.holder().is_none());

    let e = lock
        .lock_blocking_timeout(Duration::from_millis(20))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("timed out after ")
            && text.contains(&format!(
                "waiting for lock {shown}, held by this process (pid {pid}"
            )),
        "{text}"
    );
    assert!(e.waited().unwrap() >= Duration::from_millis(20));

    let e = FileLock::new(dir.path()).try_lock().unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&dir.path().display().to_string()) && text.contains("directory"),
        "{text}"
    );
    assert!(!e.is_contended());
}

#[test]
fn zero_timeout_is_one_attempt_and_reports_a_timeout() {
    let dir = tempdir();
    let lock = FileLock::new(dir.path().join("zero.lock"));
    let _held = lock.try_lock().unwrap();
    let e = lock.lock_blocking_timeout(Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    let e = lock
        .acquire_blocking(LockMode::Exclusive, Wait::TryOnce)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(lock.waiters(), 0);
}

/// Under the `tokio` feature, `keep_alive` renews on tokio's clock: with
/// time paused, a minute of virtual time passes at once and the lease
/// (TTL 30 s) is renewed meanwhile, within milliseconds of real time.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn paused_tokio_clock_drives_keep_alive() {
    let dir = tempdir();
    let options = LockOptions::new().lease(Duration::from_secs(30));
    let lock = FileLock::with_options(dir.path().join("lease.lock"), options);
    let guard = lock.lock().await.unwrap();
    let taken = guard.record().unwrap().renewed_at();
    let started = std::time::Instant::now();
    tokio::select! {
        lost = guard.keep_alive() => panic!("the lease was lost: {lost:?}"),
        () = tokio::time::sleep(Duration::from_secs(60)) => {}
    }
    let renewed = lock.holder().unwrap().unwrap().renewed_at();
    assert!(renewed > taken, "no renewal in a minute of tokio's time");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "renewals waited for real time"
    );
    assert!(guard.still_held().unwrap());
}

/// Under the `tokio` feature, acquisitions inside a runtime use tokio's
/// clock: with time paused, an hour-long timeout elapses at once, in
/// virtual time.
#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn paused_tokio_clock_drives_timeouts_and_backoff() {
    if let Some(why) = common::std_unlock_is_unreliable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("paused.lock");
    // Held through a second handle with its own descriptor would be shared
    // with ours (one descriptor per file per process), so hold it from a
    // plain std file: a different open file description, like another
    // process.
    let other = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap();
    other.lock().unwrap();
    let lock = FileLock::new(&path);
    let start = tokio::time::Instant::now();
    let e = lock
        .lock_timeout(Duration::from_secs(3600))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
    assert!(e.waited().unwrap() >= Duration::from_secs(3600));
    assert!(tokio::time::Instant::now() - start >= Duration::from_secs(3600));
    assert_eq!(lock.waiters(), 0);

    // Backoff retries run on the same clock: released in virtual time, the
    // waiter notices on its next retry.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        other.unlock().unwrap();
    });
    let guard = lock.lock_timeout(Duration::from_secs(60)).await.unwrap();
    assert!(tokio::time::Instant::now() - start >= Duration::from_secs(3610));
    release.await.unwrap();
    drop(guard);
}

/// Messages say what happened: a missing directory with `create_parent`
/// off is not "cannot create", and an invalid `LockDir` name shows the
/// name, not just the directory.
#[test]
fn messages_say_what_happened() {
    let dir = tempdir();
    let e = FileLock::with_options(
        dir.path().join("missing/x.lock"),
        LockOptions::new().create_parent(false),
    )
    .try_lock()
    .unwrap_err();
    assert_eq!(e.kind(), lockyard::ErrorKind::CreateDir);
    let text = e.to_string();
    assert!(
        text.contains("does not exist") && !text.contains("cannot create"),
        "{text}"
    );
    assert!(!dir.path().join("missing").exists());
    let e = lockyard::LockDir::new(dir.path()).try_lock("").unwrap_err();
    assert!(e.to_string().contains("the name \"\""), "{e}");

    // Held by this very process: said so (the classic self-deadlock).
    let lock = FileLock::new(dir.path().join("self.lock"));
    let _held = lock.try_lock().unwrap();
    let text = lock.try_lock().unwrap_err().to_string();
    assert!(text.contains("held by this process (pid"), "{text}");
    let text = lock
        .lock_blocking_timeout(Duration::from_millis(20))
        .unwrap_err()
        .to_string();
    assert!(text.contains("held by this process (pid"), "{text}");

    // A shared soft lock is a usage error, not an unsupported filesystem.
    let soft = FileLock::with_options(dir.path().join("soft.lock"), LockOptions::new().soft());
    let e = soft.try_lock_shared().unwrap_err();
    assert_eq!(e.kind(), lockyard::ErrorKind::ExclusiveOnly);
    assert!(e.to_string().contains("exclusive only"), "{e}");
}

/// The `serde` form is the `status --json` shape: every state's name, a
/// holder's fields, and no holder for a free lock whose last record stays.
#[cfg(feature = "serde")]
#[test]
fn serialized_shape_is_the_commands() {
    use lockyard::LockState;
    let names: Vec<_> = [
        LockState::Free,
        LockState::HeldShared,
        LockState::HeldExclusive,
        LockState::Stale,
    ]
    .iter()
    .map(|s| serde_json::to_value(s).unwrap())
    .collect();
    assert_eq!(
        names,
        ["free", "held-shared", "held-exclusive", "stale"].map(serde_json::Value::from)
    );

    let dir = tempdir();
    let path = dir.path().join("shape.lock");
    let options = LockOptions::new()
        .owner("etl")
        .lease(Duration::from_secs(30));
    let lock = FileLock::with_options(&path, options);
    let guard = lock.try_lock().unwrap();
    let json = serde_json::to_value(lock.inspect().unwrap()).unwrap();
    assert_eq!(json["path"], path.to_str().unwrap());
    assert_eq!(json["name"], "shape.lock");
    assert_eq!(json["state"], "held-exclusive");
    let h = &json["holder"];
    let fields: Vec<_> = h.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        fields,
        [
            "acquired_at",
            "age_secs",
            "host",
            "kind",
            "owner",
            "pid",
            "renewed_at",
            "token",
            "ttl_secs"
        ]
    );
    assert_eq!(h["pid"], std::process::id());
    assert_eq!(h["owner"], "etl");
    assert_eq!(h["kind"], "lease");
    assert_eq!(h["ttl_secs"], 30.0);
    assert_eq!(h["token"], guard.token().unwrap());
    assert!(h["acquired_at"].as_f64().unwrap() > 1.6e9);
    drop(guard);

    let strict = FileLock::new(dir.path().join("strict.lock"));
    drop(strict.try_lock().unwrap());
    let json = serde_json::to_value(strict.inspect().unwrap()).unwrap();
    assert_eq!(json["state"], "free");
    assert_eq!(json["holder"], serde_json::Value::Null);
}

/// Every order of `soft`, `lease` and `stale_after` (strict when neither
/// kind is asked for) gives the same options, and the lock taken with them
/// is what was asked for: a lease whenever `lease` was called, whatever
/// came after it.
#[test]
fn the_kind_of_lock_does_not_depend_on_the_order_of_the_calls() {
    use lockyard::LockKind;
    #[derive(Clone, Copy, Debug)]
    enum Call {
        Soft,
        Lease,
        StaleAfter,
    }
    let ttl = Duration::from_secs(30);
    let age = Some(Duration::from_secs(77));
    let apply = |calls: &[Call]| {
        calls.iter().fold(LockOptions::new(), |o, call| match call {
            Call::Soft => o.soft(),
            Call::Lease => o.lease(ttl),
            Call::StaleAfter => o.stale_after(age),
        })
    };
    // Every ordered selection of the three calls, the empty one included.
    let all = [Call::Soft, Call::Lease, Call::StaleAfter];
    let mut orders: Vec<Vec<Call>> = vec![Vec::new()];
    for _ in 0..all.len() {
        let longer: Vec<Vec<Call>> = orders
            .iter()
            .flat_map(|o| {
                all.iter()
                    .filter(|c| {
                        !o.iter()
                            .any(|d| std::mem::discriminant(*c) == std::mem::discriminant(d))
                    })
                    .map(move |c| [o.clone(), vec![*c]].concat())
            })
            .collect();
        orders.extend(longer);
    }
    orders.sort_by_key(|o| format!("{o:?}"));
    orders.dedup_by_key(|o| format!("{o:?}"));
    assert_eq!(orders.len(), 16); // 1 + 3 + 6 + 6
    let dir = tempdir();
    for (i, calls) in orders.iter().enumerate() {
        let has = |c: Call| {
            calls
                .iter()
                .any(|d| std::mem::discriminant(&c) == std::mem::discriminant(d))
        };
        let options = apply(calls);
        let (kind, lease) = if has(Call::Lease) {
            (LockKind::Lease, Some(ttl))
        } else if has(Call::Soft) {
            (LockKind::Soft, None)
        } else {
            (LockKind::Strict, None)
        };
        assert_eq!(options.get_kind(), kind, "{calls:?}");
        assert_eq!(options.get_lease(), lease, "{calls:?}");
        let want_age = if has(Call::StaleAfter) {
            age
        } else {
            LockOptions::new().get_stale_after()
        };
        assert_eq!(options.get_stale_after(), want_age, "{calls:?}");
        // The same calls in reverse order give equal options.
        let reversed: Vec<Call> = calls.iter().rev().copied().collect();
        assert_eq!(apply(&reversed), options, "{calls:?} reversed");
        // And the lock taken is the kind asked for, with its TTL recorded.
        let lock = FileLock::with_options(dir.path().join(format!("k{i}.lock")), options);
        let guard = lock.try_lock().unwrap();
        let record = guard
            .record()
            .expect("every kind writes a record by default");
        assert_eq!(record.kind(), kind, "{calls:?}");
        assert_eq!(record.ttl(), lease, "{calls:?}");
    }
}

/// The guard stays usable while it is kept alive (`keep_alive(&self)`):
/// the work reads its token and asks `still_held` meanwhile, and the
/// renewal's failure comes out through `?` as `ErrorKind::Lost`.
#[test]
fn a_guard_is_usable_while_it_is_kept_alive() {
    let dir = tempdir();
    let options = LockOptions::new().lease(Duration::from_millis(150));
    let lock = FileLock::with_options(dir.path().join("kept.lock"), options);
    let guard = lock.try_lock().unwrap();
    let token = guard.token();
    let run = async {
        futures_lite::future::or(
            async {
                let mut checks = 0;
                // Renewed all along: still held well past the TTL.
                while checks < 40 {
                    assert_eq!(guard.token(), token);
                    assert!(guard.still_held()?);
                    async_io::Timer::after(Duration::from_millis(10)).await;
                    checks += 1;
                }
                // Then taken away behind the holder's back.
                std::fs::rename(lock.path(), dir.path().join("elsewhere")).unwrap();
                std::future::pending::<()>().await;
                Ok::<(), Error>(())
            },
            async {
                match guard.keep_alive().await {
                    Err(lost) => Err(lost),
                }
            },
        )
        .await?;
        Ok::<(), Error>(())
    };
    let e = futures::executor::block_on(run).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Lost, "{e}");
}

/// Every lock type offers the same acquisition methods, with the same
/// signatures: the list below type-checks against each (nothing runs), so
/// a method missing from one of them fails the build.
macro_rules! same_acquisition_methods {
    ($($lock:ty),* $(,)?) => {$(
        const _: () = {
            #[allow(dead_code, unused_must_use, clippy::let_underscore_future)]
            fn check(l: &$lock) {
                let d = Duration::ZERO;
                let _: Acquire = l.lock();
                let _: Acquire = l.lock_shared();
                let _: Acquire = l.lock_timeout(d);
                let _: Acquire = l.lock_shared_timeout(d);
                let _: Acquire = l.acquire(LockMode::Exclusive, Wait::TryOnce);
                let _: Result<LockGuard, Error> = l.try_lock();
                let _: Result<LockGuard, Error> = l.try_lock_shared();
                let _: Acquire = l.try_lock_async();
                let _: Acquire = l.try_lock_shared_async();
                let _: Result<LockGuard, Error> = l.lock_blocking();
                let _: Result<LockGuard, Error> = l.lock_shared_blocking();
                let _: Result<LockGuard, Error> = l.lock_blocking_timeout(d);
                let _: Result<LockGuard, Error> = l.lock_shared_blocking_timeout(d);
                let _: Result<LockGuard, Error> =
                    l.acquire_blocking(LockMode::Shared, Wait::For(d));
                let _: Result<u8, Error> = l.with_lock(|| 1u8);
                let _: Result<u8, Error> = l.with_lock_shared(|| 1u8);
                let _ = l.with_lock_async(|| async { 1u8 });
                let _ = l.with_lock_shared_async(|| async { 1u8 });
                let _: usize = l.waiters();
                let _: Result<Option<lockyard::HolderRecord>, Error> = l.holder();
                let _: Result<lockyard::LockInfo, Error> = l.inspect();
            }
        };
    )*};
}

#[cfg(feature = "postgres")]
same_acquisition_methods!(FileLock, lockyard::postgres::PgLock);
#[cfg(feature = "s3")]
same_acquisition_methods!(lockyard::object::ObjectLock);
#[cfg(not(feature = "postgres"))]
same_acquisition_methods!(FileLock);

/// A PostgreSQL configuration that cannot be used is `InvalidConfig`
/// (a lock name that cannot name a lock stays `InvalidPath`), and nothing
/// in it is connected; the message never shows a password.
#[cfg(feature = "postgres")]
#[test]
fn postgres_configuration_errors_have_their_own_kind() {
    use lockyard::postgres::PgLocks;
    for url in [
        "postgres://[::1",
        "postgres://u:secret@h/db?sslmode=require",
    ] {
        let e = PgLocks::from_url(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{url}: {e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        // What was configured is named; it is no lock file.
        assert_eq!(e.path(), None, "{e:?}");
    }
    let locks = PgLocks::from_url("postgres://app@127.0.0.1:1/app").unwrap();
    let e = locks.clone().table("no-dashes").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    let e = locks.lock_named("").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
    assert_eq!(e.path(), None);
    assert_eq!(e.name(), "postgres://127.0.0.1:1/app#");
    // The former name still works, deprecated.
    #[allow(deprecated)]
    let old = PgLocks::connect("postgres://app@127.0.0.1:1/app");
    assert!(old.is_ok());
}
