//! The tests of `object_storage.rs`: see there.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{code, lockyard, run, Holder, Kid};

const S3: &str = "LOCKYARD_TEST_S3";
const GCS: &str = "LOCKYARD_TEST_GCS";
const AZURE: &str = "LOCKYARD_TEST_AZURE";

/// A prefix of this test's own in the bucket `var` names, so runs never
/// see each other's locks.
fn prefix(var: &str, test: &str) -> String {
    let bucket = std::env::var(var).unwrap_or_else(|_| panic!("{var} names no bucket"));
    format!(
        "{bucket}/cli-{test}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    )
}

fn status_json(args: &[&str]) -> Value {
    let out = run(&[&["status", "--json"], args].concat());
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn run_wait_and_status_on_an_s3_lock() {
    run_wait_and_status(S3);
}

pub(crate) fn run_wait_and_status_on_a_gcs_lock() {
    run_wait_and_status(GCS);
}

pub(crate) fn run_wait_and_status_on_an_azure_lock() {
    run_wait_and_status(AZURE);
}

fn run_wait_and_status(var: &str) {
    let at = prefix(var, "rws");
    let lock = format!("{at}#jobs/nightly");
    let l = lock.as_str();

    // The command's own status; the lock is free again after.
    let out = run(&["run", l, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), 7, "{}", String::from_utf8_lossy(&out.stderr));
    let doc = status_json(&[l]);
    assert_eq!(doc["locks"][0]["state"], "free", "{doc}");

    let holder = Holder::start(&["--owner", "cli-test"], l);
    // Busy: flock's codes, and the message names the lock and the holder.
    let busy = run(&["run", "-n", l, "--", "true"]);
    assert_eq!(code(&busy), 1);
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(
        said.contains("#jobs/nightly") && said.contains(&format!("pid {}", holder.pid())),
        "{said}"
    );
    assert_eq!(code(&run(&["run", "-n", "-E", "42", l, "--", "true"])), 42);
    let started = Instant::now();
    assert_eq!(code(&run(&["run", "-w", "300ms", l, "--", "true"])), 124);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(code(&run(&["wait", "-n", l])), 1);

    // status: the lock, and the whole prefix.
    let doc = status_json(&[l]);
    let one = &doc["locks"][0];
    assert_eq!(one["state"], "held-exclusive", "{doc}");
    assert_eq!(one["kind"], "object");
    assert_eq!(one["name"], "jobs/nightly");
    assert_eq!(one["holder"]["pid"], holder.pid());
    assert_eq!(one["holder"]["owner"], "cli-test");
    let all = status_json(&[at.as_str()]);
    let names: Vec<&str> = all["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs/nightly"]);
    let human = run(&["status", l]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("held exclusive by pid") && human.contains("cli-test"),
        "{human}"
    );

    // wait returns once the holder lets go, holding nothing.
    let mut waiter = Kid::spawn(lockyard().args(["wait", l]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(waiter.try_wait().unwrap().is_none(), "wait returned early");
    assert_eq!(holder.release(), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = waiter.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "wait did not return");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let doc = status_json(&[l]);
    assert_eq!(doc["locks"][0]["state"], "free", "{doc}");
}

/// A command that runs for three leases keeps the lock: `run` renews it.
pub(crate) fn run_renews_the_lease_while_its_command_runs() {
    for var in [S3, GCS, AZURE] {
        if std::env::var_os(var).is_some() {
            run_renews(var);
        }
    }
}

fn run_renews(var: &str) {
    let at = prefix(var, "renew");
    let lock = format!("{at}#long");
    let l = lock.as_str();
    let holder = Holder::start(&["--lease", "600ms"], l);
    let since = Instant::now();
    while since.elapsed() < Duration::from_millis(1800) {
        assert_eq!(
            code(&run(&["run", "-n", l, "--", "true"])),
            1,
            "taken from a live run"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(holder.release(), 0);
    assert_eq!(code(&run(&["run", "-n", l, "--", "true"])), 0);
}

pub(crate) fn bad_object_arguments_get_clear_errors() {
    let at = prefix(S3, "bad");
    for (args, want) in [
        (
            vec!["run", at.as_str(), "--", "true"],
            "name the lock after `#`",
        ),
        (
            vec!["run", "az://account-only#n", "--", "true"],
            "names the account, then the container",
        ),
        (
            vec!["run", "--soft", "s3://b/x#n", "--", "true"],
            "--soft is for lock files",
        ),
    ] {
        let out = run(&args);
        assert_eq!(code(&out), 64, "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(want), "{args:?}: {said}");
    }
    // A bucket that does not exist: a lock error naming the lock.
    let missing = format!("s3://no-such-bucket-{}#x", fastrand::u32(..));
    let out = run(&["run", "-n", missing.as_str(), "--", "true"]);
    assert_eq!(code(&out), 71, "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("NoSuchBucket") && said.contains("#x"),
        "{said}"
    );
}
