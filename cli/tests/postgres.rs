//! `lockyard run`, `wait` and `status` on PostgreSQL locks
//! (`postgres://...#name`), against the server `LOCKYARD_TEST_POSTGRES`
//! names (`.ci/postgres-bed` starts one). Unix only: the tests drive the
//! command with shell commands.

#[cfg(all(unix, feature = "postgres"))]
#[path = "postgres/cases.rs"]
mod cases;
#[cfg(all(unix, feature = "postgres"))]
mod common;
#[path = "../../tests/harness/mod.rs"]
mod harness;

#[cfg(all(unix, feature = "postgres"))]
fn main() {
    use harness::{case, POSTGRES, POSTGRES_TLS};
    harness::main(vec![
        case!(cases::run_wait_and_status_on_a_postgres_lock, [POSTGRES]),
        case!(cases::runs_exclude_each_other, [POSTGRES]),
        case!(cases::bad_postgres_arguments_get_clear_errors, [POSTGRES]),
        case!(cases::tls_with_sslmode_require, [POSTGRES, POSTGRES_TLS]),
    ]);
}

#[cfg(not(all(unix, feature = "postgres")))]
fn main() {
    harness::main(Vec::new());
}
