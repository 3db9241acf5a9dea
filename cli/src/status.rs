//! `lockyard status`: for each lock, free / held shared / held exclusive /
//! stale, and who holds it, for people or (`--json`) for programs.

use std::path::{Path, PathBuf};

use lockyard::{decode_lock_name, FileLock, LockInfo, LockOptions, LockState};
use serde_json::{json, Value};

use crate::holder;
use crate::report::chain;
use lockyard::OsHolder;

/// The version of the `--json` shape; it changes only when a field is
/// removed or changes meaning.
pub const JSON_VERSION: u32 = 1;

/// One lock as `status` reports it.
#[derive(Debug)]
pub struct Report {
    path: PathBuf,
    name: Option<String>,
    kind: Kind,
    found: Result<LockInfo, lockyard::Error>,
    os: Vec<OsHolder>,
}

/// Where a reported lock lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Strict,
    Soft,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
    #[cfg_attr(
        not(any(feature = "s3", feature = "gcs", feature = "azure")),
        allow(dead_code)
    )]
    Object,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Strict => "strict",
            Kind::Soft => "soft",
            Kind::Postgres => "postgres",
            Kind::Object => "object",
        }
    }
}

/// The locks at `target`: the lock file itself, every lock in a directory
/// (`*.lock` files, and soft locks known by their `.ctl` file), one lock in
/// PostgreSQL (`postgres://...#name`), or every lock held in a PostgreSQL
/// table (`postgres://...`). `table` is the PostgreSQL table, if not the
/// default.
pub fn collect(target: &Path, table: Option<&str>) -> Result<Vec<Report>, String> {
    if let Some((url, name)) = crate::target::object_address(target) {
        return collect_object(url, name);
    }
    if let Some(address) = crate::target::pg_address(target) {
        return collect_pg(&address, table);
    }
    let is_dir = match std::fs::metadata(target) {
        Ok(meta) => meta.is_dir(),
        // No lock file: a lock nobody holds (the question is most often
        // "is anybody running this job?"), reported as the library sees it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(format!("cannot read {}: {e}", target.display())),
    };
    let paths = if is_dir {
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

/// A PostgreSQL lock, or every lock held in the table: from `pg_locks`
/// and the table's records.
#[cfg(feature = "postgres")]
fn collect_pg(
    address: &crate::target::PgAddress<'_>,
    table: Option<&str>,
) -> Result<Vec<Report>, String> {
    let settings = crate::target::PgSettings {
        table: table.map(str::to_owned),
        ..Default::default()
    };
    let locks = crate::target::pg_locks(address.url, &settings)?;
    let report = |path: PathBuf, name: String, found| Report {
        path,
        name: Some(name),
        kind: Kind::Postgres,
        found,
        os: Vec::new(),
    };
    match address.name {
        Some(name) => {
            let lock = locks.lock_named(name).map_err(|e| chain(&e))?;
            let path = PathBuf::from(lock.address());
            Ok(vec![report(path, name.to_owned(), lock.inspect())])
        }
        None => {
            let held = locks.list().map_err(|e| chain(&e))?;
            Ok(held
                .into_iter()
                .map(|info| {
                    let path = info.path().to_path_buf();
                    report(path, info.name().to_owned(), Ok(info))
                })
                .collect())
        }
    }
}

/// An object-storage lock, or every lock held under the prefix.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn collect_object(url: &str, name: Option<&str>) -> Result<Vec<Report>, String> {
    let locks = crate::target::object_locks(url, &crate::target::PgSettings::default())?;
    let report = |path: PathBuf, name: String, found| Report {
        path,
        name: Some(name),
        kind: Kind::Object,
        found,
        os: Vec::new(),
    };
    match name {
        Some(name) => {
            let lock = locks.lock_named(name).map_err(|e| chain(&e))?;
            let path = PathBuf::from(lock.address());
            Ok(vec![report(path, name.to_owned(), lock.inspect())])
        }
        None => {
            let held = locks.list().map_err(|e| chain(&e))?;
            Ok(held
                .into_iter()
                .map(|info| {
                    let path = info.path().to_path_buf();
                    report(path, info.name().to_owned(), Ok(info))
                })
                .collect())
        }
    }
}

#[cfg(not(any(feature = "s3", feature = "gcs", feature = "azure")))]
fn collect_object(url: &str, _name: Option<&str>) -> Result<Vec<Report>, String> {
    Err(format!(
        "{url}: this lockyard was built without object storage support (feature `s3`)"
    ))
}

#[cfg(not(feature = "postgres"))]
fn collect_pg(
    address: &crate::target::PgAddress<'_>,
    _table: Option<&str>,
) -> Result<Vec<Report>, String> {
    Err(format!(
        "{}: this lockyard was built without PostgreSQL support (feature `postgres`)",
        crate::target::without_credentials(address.url)
    ))
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
        kind: if soft { Kind::Soft } else { Kind::Strict },
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
        Err(e) => return format!("{path}: cannot inspect: {}", chain(e)),
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
        LockState::Foreign => format!(
            "{path}: busy: not a lockyard lock file (no holder record this version can \
             read); never broken or cleaned, however old: remove it if nothing uses it"
        ),
        _ => format!("{path}: unknown state"),
    }
}

/// The documented `--json` object for one lock.
/// A lock's object is the library's `LockInfo` (its `serde` form: path,
/// name, state, holder), with the lock kind, the kernel's holders and the
/// error added; a lock that could not be inspected has state "unknown".
pub fn json(r: &Report) -> Value {
    let mut object = match &r.found {
        Ok(info) => serde_json::to_value(info).unwrap_or_default(),
        Err(e) => json!({ "state": "unknown", "holder": null, "error": chain(e) }),
    };
    if let Some(fields) = object.as_object_mut() {
        // The path and name as given, which for a directory's entries and
        // PostgreSQL locks is what the user asked about.
        fields.insert("path".into(), r.path.display().to_string().into());
        fields.insert("name".into(), r.name.clone().into());
        fields.insert("kind".into(), r.kind.name().into());
        fields.entry("error").or_insert(Value::Null);
        fields.insert(
            "os_holders".into(),
            r.os.iter()
                .map(|h| {
                    json!({
                        "pid": h.pid(),
                        "mode": if h.is_exclusive() { "exclusive" } else { "shared" },
                        "lock": h.kind(),
                        "command": h.command(),
                    })
                })
                .collect(),
        );
    }
    object
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
