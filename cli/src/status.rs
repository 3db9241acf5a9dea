//! `lockyard status`: for each lock, free / held shared / held exclusive /
//! stale, and who holds it, for people or (`--json`) for programs.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use lockyard::{
    decode_lock_name, FileLock, HolderRecord, LockInfo, LockKind, LockOptions, LockState,
};
use serde_json::{json, Value};

use crate::holder;
use lockyard::OsHolder;

/// The version of the `--json` shape; it changes only when a field is
/// removed or changes meaning.
pub const JSON_VERSION: u32 = 1;

/// One lock as `status` reports it.
#[derive(Debug)]
pub struct Report {
    path: PathBuf,
    name: Option<String>,
    soft: bool,
    found: Result<LockInfo, lockyard::Error>,
    os: Vec<OsHolder>,
}

/// The locks at `target`: the lock file itself, or every lock in a
/// directory (`*.lock` files, and soft locks known by their `.ctl` file).
pub fn collect(target: &Path) -> Result<Vec<Report>, String> {
    let meta =
        std::fs::metadata(target).map_err(|e| format!("cannot read {}: {e}", target.display()))?;
    let paths = if meta.is_dir() {
        lock_files_in(target).map_err(|e| format!("cannot list {}: {e}", target.display()))?
    } else {
        vec![target.to_path_buf()]
    };
    Ok(paths.into_iter().map(|p| report(&p)).collect())
}

fn lock_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") {
            out.push(path);
        } else if let Some(sidecar) = name.strip_suffix(".ctl").filter(|n| n.ends_with(".lock")) {
            // A free soft lock has only its control file.
            let sidecar = dir.join(sidecar);
            if !sidecar.exists() {
                out.push(sidecar);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn report(path: &Path) -> Report {
    let soft = crate::kind::is_soft(path);
    let options = if soft {
        LockOptions::new().soft()
    } else {
        LockOptions::new()
    };
    let lock = FileLock::with_options(path, options);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".lock"))
        .and_then(decode_lock_name);
    Report {
        path: path.to_path_buf(),
        name,
        soft,
        found: lock.inspect(),
        os: if soft {
            Vec::new()
        } else {
            holder::os_holders(path)
        },
    }
}

/// `data/state.lock: held exclusive by pid 4242 on build-3 (owner
/// "indexer") for 12 s, token 7`.
pub fn human(r: &Report) -> String {
    let path = r.path.display();
    let info = match &r.found {
        Ok(info) => info,
        Err(e) => return format!("{path}: cannot inspect: {e}"),
    };
    let by_record = info.holder().map(|h| {
        let mut s = holder::describe(h);
        s.push_str(&format!(", token {}", h.token()));
        if let Some(ttl) = h.ttl() {
            s.push_str(&format!(", lease {}", crate::duration::human(ttl)));
        }
        s
    });
    let by_os = holder::describe_os(&r.os);
    let who = |what: &str| match (&by_record, &by_os) {
        (Some(rec), _) => format!("{path}: {what} by {rec}"),
        (None, Some(os)) => format!("{path}: {what} by {os} (no holder record)"),
        (None, None) => format!("{path}: {what}"),
    };
    match info.state() {
        LockState::Free => format!("{path}: free"),
        LockState::HeldShared => match by_os {
            Some(os) => format!("{path}: held shared by {os}"),
            None => format!("{path}: held shared"),
        },
        LockState::HeldExclusive => who("held exclusive"),
        LockState::Stale => who("stale (its holder is gone or its lease lapsed), left"),
        _ => format!("{path}: unknown state"),
    }
}

/// The documented `--json` object for one lock.
pub fn json(r: &Report) -> Value {
    let (state, holder, error) = match &r.found {
        Ok(info) => {
            let current = matches!(info.state(), LockState::HeldExclusive | LockState::Stale);
            let holder = info.holder().filter(|_| current).map(record_json);
            (state_name(info.state()), holder, None)
        }
        Err(e) => ("unknown", None, Some(e.to_string())),
    };
    json!({
        "path": r.path.display().to_string(),
        "name": r.name,
        "kind": if r.soft { "soft" } else { "strict" },
        "state": state,
        "holder": holder,
        "os_holders": r.os.iter().map(|h| json!({
            "pid": h.pid(),
            "mode": if h.is_exclusive() { "exclusive" } else { "shared" },
            "lock": h.kind(),
            "command": h.command(),
        })).collect::<Vec<_>>(),
        "error": error,
    })
}

fn state_name(state: LockState) -> &'static str {
    match state {
        LockState::Free => "free",
        LockState::HeldShared => "held-shared",
        LockState::HeldExclusive => "held-exclusive",
        LockState::Stale => "stale",
        _ => "unknown",
    }
}

fn record_json(h: &HolderRecord) -> Value {
    let unix =
        |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).ok();
    json!({
        "pid": h.pid(),
        "host": h.host(),
        "owner": h.owner(),
        "kind": match h.kind() { LockKind::Strict => "strict", LockKind::Soft => "soft", _ => "lease" },
        "acquired_at": unix(h.acquired_at()),
        "renewed_at": unix(h.renewed_at()),
        "age_secs": h.age().as_secs_f64(),
        "ttl_secs": h.ttl().map(|t| t.as_secs_f64()),
        "token": h.token(),
    })
}

/// The whole `--json` document.
pub fn json_document(reports: &[Report]) -> Value {
    json!({
        "version": JSON_VERSION,
        "locks": reports.iter().map(json).collect::<Vec<_>>(),
    })
}

/// Whether any report is an error (for the exit code).
pub fn any_error(reports: &[Report]) -> bool {
    reports.iter().any(|r| r.found.is_err())
}
