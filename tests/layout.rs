//! The architecture, checked: which top-level module of `src/` may import
//! which, and no cycle between them.
//!
//! Every `crate::…` path outside comments and test modules counts as an
//! import of the top-level module it names (a root re-export counts as the
//! module that defines it). CONTRIBUTING.md explains the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each layer and the layers it may import. The engine knows neither the
/// public veneer (`api`, `options`) nor any backend (`backend`, `notify`,
/// `sys`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("mode", &[]),
    ("rt", &[]),
    ("record", &["mode"]),
    // Events for `tracing` subscribers: anyone may report, it knows no one.
    ("trace", &["mode", "record"]),
    ("sys", &["mode", "record"]),
    ("error", &["mode", "record", "sys", "trace"]),
    ("engine", &["mode", "record", "error", "rt", "trace"]),
    ("options", &["mode", "record", "engine"]),
    ("notify", &["rt", "engine", "sys", "trace"]),
    (
        "backend",
        &[
            "mode", "record", "sys", "rt", "error", "engine", "options", "notify", "trace",
        ],
    ),
    (
        "api",
        &[
            "mode", "record", "sys", "rt", "error", "engine", "options", "notify", "backend",
        ],
    ),
    // Built on the public API (`clean_stale` is the file backend's), with
    // the platform's careful open and directory sync for `once` markers.
    (
        "patterns",
        &[
            "mode", "record", "sys", "error", "options", "api", "backend",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            // A `tests.rs` is a test module of its own (`mod tests;`).
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`lib` for the crate root).
fn node_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its test modules
/// (`#[cfg(test)]` followed by a `mod … {` block, skipped to its closing
/// brace).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut skipping: Option<i32> = None;
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(depth) = skipping.as_mut() {
            *depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *depth <= 0 {
                skipping = None;
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines.peek().map(|n| n.trim_start()).unwrap_or_default();
            if (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
                && next.ends_with('{')
            {
                lines.next();
                skipping = Some(1);
                continue;
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            // A trailing comment (`//` inside a string is rare here and
            // only makes the check see less).
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of every `crate::` path in `code`, braces
/// (`crate::{a, b::c}`) expanded.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if !(c == ',' && depth == 1) {
                    item.push(c);
                }
            }
            items.push(item);
            out.extend(
                items
                    .iter()
                    .map(|i| ident_at(i.trim()))
                    .filter(|i| !i.is_empty() && i != "self"),
            );
        } else {
            out.push(ident_at(rest));
        }
    }
    out
}

/// Top-level modules, and which module each root re-export comes from.
fn root(lib: &str) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let code = code(lib);
    let modules = code
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mut exports = BTreeMap::new();
    for stmt in code.split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use crate::") else {
            continue;
        };
        let module = ident_at(path);
        let names = match (path.find('{'), path.rfind('}')) {
            (Some(a), Some(b)) => path[a + 1..b].to_string(),
            _ => path.rsplit("::").next().unwrap_or_default().to_string(),
        };
        for name in names.split(',') {
            let name = name.split(" as ").last().unwrap_or_default().trim();
            if !name.is_empty() {
                exports.insert(name.to_string(), module.clone());
            }
        }
    }
    (modules, exports)
}

/// Which layer imports which, as the code stands.
fn imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let (modules, exports) = root(&lib);
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let node = node_of(&file);
        let text = std::fs::read_to_string(&file).unwrap();
        for first in crate_paths(&code(&text)) {
            let target = if modules.contains(&first) {
                first.clone()
            } else if let Some(m) = exports.get(&first) {
                m.clone()
            } else {
                panic!(
                    "{}: `crate::{first}` is neither a top-level module nor a root re-export",
                    file.display()
                );
            };
            if target != node {
                let rel = file.strip_prefix(src()).unwrap().display().to_string();
                graph
                    .entry(node.clone())
                    .or_default()
                    .entry(target)
                    .or_default()
                    .insert(rel);
            }
        }
    }
    graph
}

#[test]
fn every_layer_imports_only_what_it_may() {
    let allowed: BTreeMap<_, _> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (node, targets) in imports() {
        if node == "lib" {
            continue;
        }
        let Some(may) = allowed.get(node.as_str()) else {
            wrong.push(format!("`{node}` is not a known layer: add it to ALLOWED"));
            continue;
        };
        for (target, files) in targets {
            if !may.contains(&target.as_str()) {
                wrong.push(format!("`{node}` imports `{target}` in {files:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "forbidden imports:\n{}", wrong.join("\n"));
}

#[test]
fn no_cycle_between_layers() {
    let graph = imports();
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|t| t.keys()) {
            if next != "lib" {
                if let Some(cycle) = visit(next, graph, path, done) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys().filter(|n| *n != "lib") {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The check sees what it must: a forbidden import planted in a copy of
/// the engine's code is reported.
#[test]
fn the_check_sees_imports_in_every_form() {
    let planted = "use crate::api::FileLock;\n\
                   use crate::{mode::LockMode, backend};\n\
                   // crate::patterns\n\
                   fn f() { crate::FileLock::new(\"x\"); }\n\
                   #[cfg(test)]\n\
                   mod tests {\n    use crate::options;\n    fn g() {}\n}\n\
                   use crate::notify::Watch;\n";
    let found = crate_paths(&code(planted));
    assert_eq!(found, ["api", "mode", "backend", "FileLock", "notify"]);
}
