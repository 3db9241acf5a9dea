//! The harness of the suites that need a test bed (a PostgreSQL server, two
//! sshfs mounts): libtest's own cannot decide at run time that a test did
//! not run, so a test whose bed is missing would report `ok` having done
//! nothing. Here it is reported as ignored, with the reason on its line and
//! counted in the summary (`12 ignored`), unless the bed is required
//! (`LOCKYARD_REQUIRE_POSTGRES`, `LOCKYARD_REQUIRE_SSHFS`,
//! `LOCKYARD_REQUIRE_S3`, all set by CI):
//! then its absence fails the test.
//!
//! Each suite's `main` lists its tests with [`case!`] and hands them to
//! [`main`]; the usual libtest flags (`--exact`, `--ignored`,
//! `--nocapture`, `--test-threads`, a filter) work as before, so child
//! processes re-executing the test binary are started the same way.
#![allow(dead_code, unused_macros, unused_imports)]

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// A condition a test needs to run.
#[derive(Clone, Copy, Debug)]
pub struct Bed {
    /// `Err(why it is missing, and how to set it up)` when it is missing.
    check: fn() -> Result<(), String>,
    /// The variable that makes its absence a failure.
    required_by: Option<&'static str>,
}

/// A PostgreSQL server (`.ci/postgres-bed start DIR` prints its URL).
pub const POSTGRES: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_POSTGRES",
            "`.ci/postgres-bed start DIR` starts a server",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_POSTGRES"),
};

/// The PostgreSQL server offers TLS, with the CA that signed its certificate.
pub const POSTGRES_TLS: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_POSTGRES_CA",
            "the server offers no TLS (.ci/postgres-bed sets it up)",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_POSTGRES"),
};

/// The PostgreSQL cluster's data directory and binaries, to restart it.
pub const POSTGRES_CLUSTER: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_POSTGRES_DATA",
            "the cluster cannot be restarted (.ci/postgres-bed sets it)",
        )?;
        env_set(
            "LOCKYARD_TEST_POSTGRES_BIN",
            "the cluster cannot be restarted (.ci/postgres-bed sets it)",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_POSTGRES"),
};

/// An S3 bucket that honours conditional writes (`.ci/s3-bed start DIR`
/// starts LocalStack and prints its URL and the AWS variables).
pub const S3: Bed = Bed {
    check: || env_set("LOCKYARD_TEST_S3", "`.ci/s3-bed start DIR` starts a server"),
    required_by: Some("LOCKYARD_REQUIRE_S3"),
};

/// The S3 bed's directory, to restart its server.
pub const S3_BED: Bed = Bed {
    check: || env_set("LOCKYARD_TEST_S3_BED", "`.ci/s3-bed start DIR` sets it"),
    required_by: Some("LOCKYARD_REQUIRE_S3"),
};

/// A GCS bucket that honours preconditions (`.ci/gcs-bed start DIR` starts
/// fake-gcs-server and prints its URL and `STORAGE_EMULATOR_HOST`).
pub const GCS: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_GCS",
            "`.ci/gcs-bed start DIR` starts a server",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_GCS"),
};

/// The GCS bed's directory, to restart its server.
pub const GCS_BED: Bed = Bed {
    check: || env_set("LOCKYARD_TEST_GCS_BED", "`.ci/gcs-bed start DIR` sets it"),
    required_by: Some("LOCKYARD_REQUIRE_GCS"),
};

/// An Azure Blob container (`.ci/azure-bed start DIR` starts Azurite and
/// prints the URL and the connection string).
pub const AZURE: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_AZURE",
            "`.ci/azure-bed start DIR` starts a server",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_AZURE"),
};

/// The Azure bed's directory, to restart its server.
pub const AZURE_BED: Bed = Bed {
    check: || {
        env_set(
            "LOCKYARD_TEST_AZURE_BED",
            "`.ci/azure-bed start DIR` sets it",
        )
    },
    required_by: Some("LOCKYARD_REQUIRE_AZURE"),
};

/// Two sshfs mounts of one directory, without attribute caches.
pub const SSHFS: Bed = Bed {
    check: || env_set("LOCKYARD_TEST_SSHFS", SSHFS_SETUP),
    required_by: Some("LOCKYARD_REQUIRE_SSHFS"),
};

/// Two sshfs mounts of one directory, with sshfs's default caches.
pub const SSHFS_CACHED: Bed = Bed {
    check: || env_set("LOCKYARD_TEST_SSHFS_CACHED", SSHFS_SETUP),
    required_by: Some("LOCKYARD_REQUIRE_SSHFS"),
};

const SSHFS_SETUP: &str = "`.ci/sshfs-bed start DIR` sets up the bed";

/// `unshare --uts` works here (a child under another host name). Never
/// required: some sandboxes refuse it to root.
pub const UNSHARE_UTS: Bed = Bed {
    check: || {
        let works = std::process::Command::new("unshare")
            .args(["--uts", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            Ok(())
        } else {
            Err("`unshare --uts` is not permitted here".into())
        }
    },
    required_by: None,
};

fn env_set(var: &str, how: &str) -> Result<(), String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(format!("{var} is not set: {how}")),
    }
}

/// One test of a suite.
pub struct Case {
    pub name: &'static str,
    pub run: fn(),
    pub needs: &'static [Bed],
    /// An entry point for child processes: run only when asked for by
    /// name with `--ignored`.
    pub entry: bool,
}

/// `case!(test_fn, [BED, ...])`: the test `test_fn`, run when every bed is
/// present. `case!(entry child_main)`: the child processes' entry point.
macro_rules! case {
    (entry $f:path) => {
        $crate::harness::Case {
            name: stringify!($f),
            run: $f,
            needs: &[],
            entry: true,
        }
    };
    ($f:path, [$($bed:expr),* $(,)?]) => {
        $crate::harness::Case {
            name: stringify!($f),
            run: $f,
            needs: &[$($bed),*],
            entry: false,
        }
    };
}
pub(crate) use case;

/// Runs `cases` as libtest would, a missing bed making its tests ignored
/// (or failed, where the bed is required).
pub fn main(cases: Vec<Case>) -> ! {
    let mut args = Arguments::from_args();
    if cases.is_empty() {
        // A suite with no test on this platform starts no worker threads:
        // libtest-mimic's pool would spawn them anyway, and a thread still
        // exiting when the process does is killed by wine's server
        // (SIGQUIT), a race under load that a test run can do without.
        args.test_threads = Some(1);
    }
    let trials = cases.into_iter().map(trial).collect();
    libtest_mimic::run(&args, trials).exit()
}

/// [`main`], running one test at a time unless `--test-threads` says
/// otherwise: for suites whose tests share one server and measure time (a
/// hand-off, a stalled proxy), which a heavy neighbour (a hundred
/// processes) would skew.
pub fn main_one_at_a_time(cases: Vec<Case>) -> ! {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let trials = cases.into_iter().map(trial).collect();
    libtest_mimic::run(&args, trials).exit()
}

fn trial(case: Case) -> Trial {
    let Case {
        name,
        run,
        needs,
        entry,
    } = case;
    // A path like `cases::a_test` names the test `a_test`, as libtest does.
    let name = name.rsplit("::").next().unwrap_or(name).trim();
    let trial = Trial::ignorable_test(name, move || {
        for bed in needs {
            if let Err(why) = (bed.check)() {
                return match bed.required_by {
                    Some(var) if std::env::var_os(var).is_some() => {
                        Err(Failed::from(format!("{var} is set, but {why}")))
                    }
                    _ => Ok(Completion::ignored_with(format!("not run: {why}"))),
                };
            }
        }
        run();
        Ok(Completion::Completed)
    });
    trial.with_ignored_flag(entry)
}
