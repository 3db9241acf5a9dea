//! `serde::Serialize` for what inspection returns (the `serde` feature): the
//! shape of the `lockyard status --json` document, whose `locks` entries
//! extend a [`LockInfo`]'s object.
//!
//! - [`LockState`]: `"free"`, `"held-shared"`, `"held-exclusive"`, `"stale"`, `"foreign"` (a soft lock blocked by a file that is not lockyard's).
//! - [`HolderRecord`]: `pid`, `host`, `owner` (or null), `kind` (`"strict"`,
//!   `"soft"`, `"lease"`, `"postgres"`), `acquired_at` and `renewed_at`
//!   (seconds since the Unix epoch, or null before it), `age_secs`,
//!   `ttl_secs` (or null), `token`.
//! - [`LockInfo`]: `path`, `name`, `state`, and `holder`: the record of the
//!   holder the state names (held exclusive, or stale), otherwise null; a
//!   record left by a released holder names nobody.
//!
//! Written by hand rather than derived: no proc-macro dependency, and the
//! shape is a documented format that must not follow field renames.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{LockInfo, LockState};
use crate::record::{HolderRecord, LockKind};

impl Serialize for LockState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            LockState::Free => "free",
            LockState::HeldShared => "held-shared",
            LockState::HeldExclusive => "held-exclusive",
            LockState::Stale => "stale",
            LockState::Foreign => "foreign",
        })
    }
}

fn unix_secs(t: SystemTime) -> Option<f64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
}

fn kind_name(kind: LockKind) -> &'static str {
    match kind {
        LockKind::Strict => "strict",
        LockKind::Soft => "soft",
        LockKind::Lease => "lease",
        LockKind::Postgres => "postgres",
        LockKind::ObjectStore => "object",
    }
}

impl Serialize for HolderRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("HolderRecord", 9)?;
        s.serialize_field("pid", &self.pid())?;
        s.serialize_field("host", self.host())?;
        s.serialize_field("owner", &self.owner())?;
        s.serialize_field("kind", kind_name(self.kind()))?;
        s.serialize_field("acquired_at", &unix_secs(self.acquired_at()))?;
        s.serialize_field("renewed_at", &unix_secs(self.renewed_at()))?;
        s.serialize_field("age_secs", &self.age().as_secs_f64())?;
        s.serialize_field("ttl_secs", &self.ttl().map(|t| t.as_secs_f64()))?;
        s.serialize_field("token", &self.token())?;
        s.end()
    }
}

impl Serialize for LockInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let current = matches!(self.state(), LockState::HeldExclusive | LockState::Stale);
        let mut s = serializer.serialize_struct("LockInfo", 4)?;
        s.serialize_field("path", &self.path().to_string_lossy())?;
        s.serialize_field("name", self.name())?;
        s.serialize_field("state", &self.state())?;
        s.serialize_field("holder", &self.holder().filter(|_| current))?;
        s.end()
    }
}
