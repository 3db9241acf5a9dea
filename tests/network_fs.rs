//! Soft locks on a real network filesystem: two independent sshfs mounts
//! of one directory (two SSH connections, two SFTP sessions), which is what
//! two machines sharing the directory see. Processes on both mounts race
//! for the lock; another view of the truth, a local directory that every
//! process on this machine shares, checks that there is never more than
//! one holder.
//!
//! The mounts come from `.ci/sshfs-bed start DIR`, which prints
//! `LOCKYARD_TEST_SSHFS=A:B` (caches off) and `LOCKYARD_TEST_SSHFS_CACHED`
//! (sshfs's default caches). Without them each test is reported as
//! ignored, with the reason, unless `LOCKYARD_REQUIRE_SSHFS` is set (CI
//! sets it): then it fails.

#[cfg(unix)]
#[path = "network_fs/cases.rs"]
mod cases;
#[cfg(unix)]
mod common;
mod harness;

#[cfg(unix)]
fn main() {
    use harness::{case, SSHFS, SSHFS_CACHED, UNSHARE_UTS};
    harness::main(vec![
        case!(entry cases::child_main),
        case!(
            cases::try_lock_across_two_mounts_has_one_holder_per_round,
            [SSHFS]
        ),
        case!(
            cases::sixteen_processes_on_two_mounts_break_a_stale_lock_once_per_round,
            [SSHFS]
        ),
        case!(
            cases::a_renewed_lease_is_not_taken_over_from_the_other_mount,
            [SSHFS]
        ),
        case!(
            cases::waiting_across_two_mounts_never_overlaps_and_tokens_increase,
            [SSHFS]
        ),
        case!(
            cases::a_killed_holder_is_broken_once_and_a_live_one_never,
            [SSHFS]
        ),
        case!(
            cases::a_stopped_lease_holder_is_taken_over_after_its_ttl_and_finds_out,
            [SSHFS]
        ),
        case!(cases::once_across_two_mounts_runs_the_work_once, [SSHFS]),
        case!(
            cases::our_host_name_with_another_boot_id_is_not_ours_on_a_network_filesystem,
            [SSHFS]
        ),
        case!(
            cases::a_holder_under_another_host_name_is_not_broken_before_stale_after,
            [SSHFS, UNSHARE_UTS]
        ),
        case!(
            cases::strict_locks_are_refused_where_os_locks_stay_on_each_machine,
            [SSHFS]
        ),
        case!(cases::cached_mounts_still_exclude, [SSHFS_CACHED]),
        case!(cases::a_release_is_seen_soon_without_caches, [SSHFS]),
    ]);
}

#[cfg(not(unix))]
fn main() {
    harness::main(Vec::new());
}
