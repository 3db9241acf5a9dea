//! The records this process writes: who it is, and the next fencing token.

use std::time::{SystemTime, UNIX_EPOCH};

use super::host;
use crate::mode::LockMode;
use crate::options::LockOptions;
use crate::record::{HolderRecord, LockKind, RecordState};

/// A new record for this process.
pub(crate) fn new_record(
    kind: LockKind,
    mode: LockMode,
    token: u64,
    opts: &LockOptions,
) -> HolderRecord {
    let me = host::me();
    let now = SystemTime::now();
    HolderRecord {
        pid: me.pid,
        kind,
        state: RecordState::Held,
        mode,
        host: me.host.clone(),
        boot_id: me.boot_id.clone(),
        start_time: me.start_time,
        acquired: now,
        renewed: now,
        // A lease's TTL, or a PostgreSQL session's idle limit.
        ttl: if matches!(
            kind,
            LockKind::Lease | LockKind::Postgres | LockKind::ObjectStore
        ) {
            opts.lease_ttl
        } else {
            None
        },
        owner: opts.owner.clone(),
        token,
        nonce: (kind != LockKind::Strict).then(|| fastrand::u128(..)),
    }
}

/// The next fencing token after `last`: one more, and never behind the
/// clock in microseconds, so tokens keep increasing even when the file
/// that remembered the last one is deleted (as long as the wall clock
/// does not step back).
pub(crate) fn next_token(last: u64) -> u64 {
    next_token_at(last, SystemTime::now())
}

/// [`next_token`] with the clock read at `now`.
pub(crate) fn next_token_at(last: u64, now: SystemTime) -> u64 {
    let micros = now
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    last.saturating_add(1).max(micros)
}
