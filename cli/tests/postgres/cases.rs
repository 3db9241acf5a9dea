//! The tests of `postgres.rs`: see there.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{code, lockyard, run, Holder, Kid};

/// The server under test; the harness runs a test that needs it only when
/// it is set.
fn server() -> String {
    std::env::var("LOCKYARD_TEST_POSTGRES").expect("LOCKYARD_TEST_POSTGRES names the server")
}

/// A table of this test's own, so runs never see each other's locks.
fn table(test: &str) -> String {
    format!("cli_{test}_{}_{}", std::process::id(), fastrand::u32(..))
}

fn status_json(args: &[&str]) -> Value {
    let out = run(&[&["status", "--json"], args].concat());
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn run_wait_and_status_on_a_postgres_lock() {
    let url = server();
    let t = table("rws");
    let lock = format!("{url}#jobs/nightly");
    let l = lock.as_str();
    let tbl = ["--table", t.as_str()];

    // The command's own status; the lock is free again after.
    let out = run(&[&["run"][..], &tbl, &[l, "--", "sh", "-c", "exit 7"]].concat());
    assert_eq!(code(&out), 7, "{}", String::from_utf8_lossy(&out.stderr));

    let holder = Holder::start(&[&tbl[..], &["--owner", "cli-test"]].concat(), l);
    // Busy: flock's codes, and the message names the lock and the holder.
    let busy = run(&[&["run", "-n"][..], &tbl, &[l, "--", "true"]].concat());
    assert_eq!(code(&busy), 1);
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(
        said.contains("#jobs/nightly") && said.contains(&format!("pid {}", holder.pid())),
        "{said}"
    );
    assert!(
        !said.contains("postgres@"),
        "credentials in a message: {said}"
    );
    let e42 = run(&[&["run", "-n", "-E", "42"][..], &tbl, &[l, "--", "true"]].concat());
    assert_eq!(code(&e42), 42);
    let started = Instant::now();
    let timed = run(&[&["run", "-w", "300ms"][..], &tbl, &[l, "--", "true"]].concat());
    assert_eq!(code(&timed), 124);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(code(&run(&[&["wait", "-n"][..], &tbl, &[l]].concat())), 1);

    // status: the lock, and the whole table.
    let doc = status_json(&[&tbl[..], &[l]].concat());
    let one = &doc["locks"][0];
    assert_eq!(one["state"], "held-exclusive", "{doc}");
    assert_eq!(one["kind"], "postgres");
    assert_eq!(one["name"], "jobs/nightly");
    assert_eq!(one["holder"]["pid"], holder.pid());
    assert_eq!(one["holder"]["owner"], "cli-test");
    assert!(one["holder"]["token"].as_u64().unwrap() >= 2, "{doc}");
    let all = status_json(&[&tbl[..], &[url.as_str()]].concat());
    let names: Vec<&str> = all["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs/nightly"]);
    let human = run(&[&["status"][..], &tbl, &[l]].concat());
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("held exclusive by pid") && human.contains("cli-test"),
        "{human}"
    );

    // wait returns once the holder lets go, holding nothing.
    let mut waiter = Kid::spawn(lockyard().args([&["wait"][..], &tbl, &[l]].concat()));
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
    let doc = status_json(&[&tbl[..], &[l]].concat());
    assert_eq!(doc["locks"][0]["state"], "free", "{doc}");

    // Shared holders share, and keep writers out.
    let reader = Holder::start(&[&tbl[..], &["--shared"]].concat(), l);
    let shared = run(&[&["run", "-n", "-s"][..], &tbl, &[l, "--", "true"]].concat());
    assert_eq!(code(&shared), 0);
    let doc = status_json(&[&tbl[..], &[l]].concat());
    assert_eq!(doc["locks"][0]["state"], "held-shared", "{doc}");
    assert_eq!(
        code(&run(
            &[&["run", "-n"][..], &tbl, &[l, "--", "true"]].concat()
        )),
        1
    );
    assert_eq!(reader.release(), 0);
}

/// Two commands appending under the lock never interleave: each run's
/// critical section (read the count, sleep, write count + 1) stays whole.
pub(crate) fn runs_exclude_each_other() {
    let url = server();
    let t = table("excl");
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    std::fs::write(&counter, "0").unwrap();
    let script = format!(
        "n=$(cat {c}); sleep 0.02; echo $((n+1)) > {c}",
        c = counter.display()
    );
    let lock = format!("{url}#counter");
    let kids: Vec<Kid> = (0..4)
        .map(|_| {
            Kid::spawn(lockyard().args([
                "run",
                "--table",
                &t,
                &lock,
                "--",
                "sh",
                "-c",
                &format!("for i in 1 2 3 4 5; do {script}; done"),
            ]))
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "20");
}

pub(crate) fn bad_postgres_arguments_get_clear_errors() {
    // Unreachable server: 71, naming the server and the lock, not the password.
    let out = run(&["run", "postgres://u:hunter2@127.0.0.1:1/db#a", "--", "true"]);
    assert_eq!(code(&out), 71);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("postgres://127.0.0.1:1/db#a"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
    // No name, --soft, a bad table name, a malformed URL: usage errors.
    let out = run(&["run", "postgres://u:hunter2@127.0.0.1:1/db", "--", "true"]);
    assert_eq!(code(&out), 64);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    let out = run(&["run", "--soft", "postgres://127.0.0.1:1/db#a", "--", "true"]);
    assert_eq!(code(&out), 64);
    let out = run(&[
        "run",
        "--table",
        "x; DROP TABLE y",
        "postgres://127.0.0.1:1/db#a",
        "--",
        "true",
    ]);
    assert_eq!(code(&out), 64);
    let out = run(&["run", "postgres://[::1#a", "--", "true"]);
    assert_eq!(code(&out), 64);
    // A role that does not exist, taken from PGUSER as psql would.
    let url = server();
    let no_user = url.replacen("postgres@", "", 1);
    if no_user != url {
        let out = lockyard()
            .args(["run", &format!("{no_user}#a"), "--", "true"])
            .env("PGUSER", "no_such_role_here")
            .output()
            .unwrap();
        assert_eq!(code(&out), 71);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("no_such_role_here"), "{said}");
    } else {
        eprintln!("PGUSER case skipped: the test URL names no user `postgres`");
    }
}

/// `sslmode=require`: TLS checked against PGSSLROOTCERT (or the system's
/// roots, which do not know the test server's CA: refused).
pub(crate) fn tls_with_sslmode_require() {
    let url = server();
    let ca = std::env::var("LOCKYARD_TEST_POSTGRES_CA").expect("the harness checked it");
    let t = table("tls");
    let lock = format!("{url}?sslmode=require#tls");
    let trusted = lockyard()
        .args([
            "run", "-n", "--table", &t, &lock, "--", "sh", "-c", "exit 3",
        ])
        .env("PGSSLROOTCERT", &ca)
        .output()
        .unwrap();
    assert_eq!(
        code(&trusted),
        3,
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = lockyard()
        .args(["run", "-n", "--table", &t, &lock, "--", "true"])
        .env_remove("PGSSLROOTCERT")
        .output()
        .unwrap();
    assert_eq!(code(&untrusted), 71);
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(said.contains("certificate"), "{said}");
    let missing = lockyard()
        .args(["run", "-n", &lock, "--", "true"])
        .env("PGSSLROOTCERT", "/nonexistent/ca.pem")
        .output()
        .unwrap();
    assert_eq!(code(&missing), 64);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("PGSSLROOTCERT"));
}
