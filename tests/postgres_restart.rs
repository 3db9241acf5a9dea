//! A server restart, in a test binary of its own (test binaries run one
//! after another, so no other test sees the server go away): holds are
//! lost, and tokens keep increasing across it.

mod harness;
#[cfg(unix)]
mod pg;

#[cfg(unix)]
fn main() {
    use harness::{case, POSTGRES, POSTGRES_CLUSTER};
    harness::main(vec![case!(
        tokens_increase_across_a_server_restart_and_holds_are_lost,
        [POSTGRES, POSTGRES_CLUSTER]
    )]);
}

#[cfg(not(unix))]
fn main() {
    harness::main(Vec::new());
}

#[cfg(unix)]
fn tokens_increase_across_a_server_restart_and_holds_are_lost() {
    use std::process::Command;
    use std::time::Duration;

    use lockyard::{LockMode, Wait};
    use pg::{fresh_table, locks, server};

    let url = server();
    let data = std::env::var("LOCKYARD_TEST_POSTGRES_DATA").expect("the harness checked it");
    let bin = std::env::var("LOCKYARD_TEST_POSTGRES_BIN").expect("the harness checked it");
    let table = fresh_table("restart");
    let pg = locks(&url, &table);
    let lock = pg.lock_named("r").unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(lock.try_lock().unwrap().token().unwrap());
    }
    let held = lock.try_lock().unwrap();
    tokens.push(held.token().unwrap());
    let pg_ctl = format!("{bin}/pg_ctl");
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let status = cmd
        .args(["-D", &data, "-m", "immediate", "-w", "restart"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl restart failed");
    assert!(!held.still_held().unwrap(), "a hold survived the restart");
    drop(held);
    for _ in 0..3 {
        let g = lock
            .acquire_blocking(LockMode::Exclusive, Wait::For(Duration::from_secs(10)))
            .unwrap();
        tokens.push(g.token().unwrap());
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens: {tokens:?}");
    eprintln!("tokens across an immediate restart: {tokens:?}");
}
