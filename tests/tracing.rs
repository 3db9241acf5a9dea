//! The `tracing` feature's events, caught by a small subscriber of the
//! test's own: a wait that blocks (with its holder), its end, a stale lock
//! broken (with the previous holder and why), a lease lost.
#![cfg(feature = "tracing")]

mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockyard::{ErrorKind, FileLock, LockOptions};

use common::{forge_record, local_identity, now_secs, tempdir, Forged, DEAD_PID};

/// Every event, as "message field=value ...".
#[derive(Clone, Default)]
struct Caught(Arc<Mutex<Vec<String>>>);

impl Caught {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn find(&self, message: &str) -> Option<String> {
        self.lines().into_iter().find(|l| l.starts_with(message))
    }
}

struct Fields(String, String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

impl tracing::Subscriber for Caught {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == "lockyard"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new(), String::new());
        event.record(&mut fields);
        let line = format!("{}{}", fields.0, fields.1);
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_wait_that_blocks_says_who_holds_it_and_how_it_ended() {
    let caught = Caught::default();
    let dir = tempdir();
    let path = dir.path().join("busy.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().owner("indexer"));
    tracing::subscriber::with_default(caught.clone(), || {
        let held = lock.try_lock().unwrap();
        assert!(
            caught.lines().is_empty(),
            "an uncontended lock said something"
        );
        let e = lock
            .lock_blocking_timeout(Duration::from_millis(100))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        let waiting = caught
            .find("blocking: waiting for the lock")
            .expect("no wait event");
        assert!(
            waiting.contains(&path.display().to_string())
                && waiting.contains(&format!("pid {}", std::process::id()))
                && waiting.contains("indexer"),
            "{waiting}"
        );
        let gave_up = caught.find("gave up waiting").expect("no deadline event");
        assert!(gave_up.contains("waited_ms="), "{gave_up}");

        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        drop(lock.lock_blocking_timeout(Duration::from_secs(30)).unwrap());
        releaser.join().unwrap();
        let got = caught
            .find("acquired the lock after waiting")
            .expect("no end event");
        assert!(got.contains("waited_ms="), "{got}");
    });
}

#[test]
fn a_broken_stale_lock_names_the_previous_holder_and_why() {
    let caught = Caught::default();
    let dir = tempdir();
    let (host, boot, _) = local_identity(dir.path());
    let path = dir.path().join("stale.lock");
    let forged = Forged {
        pid: DEAD_PID,
        kind: "soft",
        host: &host,
        boot: boot.as_deref(),
        start: None,
        acquired: now_secs(),
        ttl_secs: None,
        token: 3,
    };
    std::fs::write(&path, forge_record(&forged)).unwrap();
    tracing::subscriber::with_default(caught.clone(), || {
        let lock = FileLock::with_options(&path, LockOptions::new().soft());
        drop(lock.try_lock().expect("the stale lock is broken"));
    });
    let broke = caught
        .find("broke a stale lock")
        .expect("no takeover event");
    assert!(
        broke.contains(&format!("pid {DEAD_PID}")) && broke.contains("reason="),
        "{broke}"
    );
}

#[test]
fn a_lost_lease_is_reported() {
    let caught = Caught::default();
    let dir = tempdir();
    let path = dir.path().join("lease.lock");
    let lock = FileLock::with_options(&path, LockOptions::new().lease(Duration::from_secs(30)));
    let guard = lock.try_lock().unwrap();
    // Taken away behind the holder's back.
    std::fs::rename(&path, dir.path().join("moved-away")).unwrap();
    let e = tracing::subscriber::with_default(caught.clone(), || guard.unlock().unwrap_err());
    assert_eq!(e.kind(), ErrorKind::Lost);
    let lost = caught
        .find("the lock was taken over")
        .expect("no lost event");
    assert!(lost.contains("lease.lock"), "{lost}");
}
