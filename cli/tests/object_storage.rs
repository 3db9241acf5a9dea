//! `lockyard run`, `wait` and `status` on object-storage locks
//! (`s3://bucket/prefix#name`, `gs://bucket/prefix#name`), against the
//! buckets `LOCKYARD_TEST_S3` and `LOCKYARD_TEST_GCS` name (`.ci/s3-bed`
//! and `.ci/gcs-bed` start servers). Unix only: the tests drive the command
//! with shell commands.

#[cfg(all(unix, feature = "s3"))]
#[path = "object_storage/cases.rs"]
mod cases;
#[cfg(all(unix, feature = "s3"))]
mod common;
#[path = "../../tests/harness/mod.rs"]
mod harness;

#[cfg(all(unix, feature = "s3"))]
fn main() {
    use harness::{case, AZURE, GCS, S3};
    harness::main(vec![
        case!(cases::run_wait_and_status_on_an_s3_lock, [S3]),
        case!(cases::run_wait_and_status_on_a_gcs_lock, [GCS]),
        case!(cases::run_wait_and_status_on_an_azure_lock, [AZURE]),
        case!(cases::run_renews_the_lease_while_its_command_runs, [S3]),
        case!(cases::bad_object_arguments_get_clear_errors, [S3]),
    ]);
}

#[cfg(not(all(unix, feature = "s3")))]
fn main() {
    harness::main(Vec::new());
}
