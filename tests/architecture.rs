//! The module graph, read from the source's own paths (`crate::x`,
//! `super::x`). Rules checked:
//! - the pure parts (`domain`, `catalog`, `model`, `allocate`, `chuanliu`,
//!   `engine`) name none of the layers above them, nor `tokio` or `tonic`;
//! - durability and log formats (`events`, `wal`, `snapshot`, `traffic`)
//!   name none of the edges (`cluster`, `sim`, `replay`, `server`, `load`,
//!   `train`);
//! - `config` is above the pure parts and below everything that runs;
//! - no two top-level modules, and no two files of one folder, name each
//!   other;
//! - no source file grows past 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const PURE: &[&str] = &[
    "domain", "catalog", "model", "allocate", "chuanliu", "engine",
];
const ABOVE_PURE: &[&str] = &[
    "config", "events", "wal", "snapshot", "traffic", "cluster", "sim", "replay", "server",
    "proto", "load", "train", "fuzz",
];
const DURABILITY: &[&str] = &["events", "wal", "snapshot", "traffic"];
const EDGES: &[&str] = &[
    "cluster", "sim", "replay", "server", "load", "train", "fuzz",
];

/// The most lines a source file may have.
const MAX_LINES: usize = 600;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is, as path segments (`src/sim/world.rs` -> sim, world).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix` followed by a path, as its segments.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        out.push(segments);
    }
    out
}

struct Graph {
    /// Top-level module -> top-level modules (and `tokio`, `tonic`) it names.
    top: BTreeMap<String, BTreeSet<String>>,
    /// File module -> sibling file modules it names.
    files: BTreeSet<(Vec<String>, Vec<String>)>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph {
        top: BTreeMap::new(),
        files: BTreeSet::new(),
    };
    for file in &files {
        let module = module_of(&src, file);
        // Tests sit above everything they test. The binary (`src/bin/`) is
        // its own crate on top: its `crate::` names its own files.
        if module.iter().any(|m| m == "tests") || module[0] == "bin" || module == ["lib"] {
            continue;
        }
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut named: Vec<Vec<String>> = paths_after(&text, "crate::")
            .into_iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect();
        for p in paths_after(&text, "super::") {
            let mut base = module.clone();
            base.pop();
            let mut depth = p.iter().take_while(|s| **s == "super").count();
            while depth > 0 {
                base.pop();
                depth -= 1;
            }
            base.extend(p.iter().filter(|s| **s != "super").map(|s| s.to_string()));
            named.push(base);
        }
        let top = module[0].clone();
        let deps = graph.top.entry(top.clone()).or_default();
        for crate_name in ["tokio", "tonic"] {
            if !paths_after(&text, &format!("{crate_name}::")).is_empty() {
                deps.insert(crate_name.to_string());
            }
        }
        for path in named {
            let Some(first) = path.first() else { continue };
            if *first != top {
                deps.insert(first.clone());
            }
            // The longest prefix that is a file of the same folder.
            if let Some(target) = (1..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|m| modules.contains(m))
                && target != module
                && target.len() == module.len()
                && target[..target.len() - 1] == module[..module.len() - 1]
            {
                graph.files.insert((module.clone(), target));
            }
        }
    }
    graph
}

fn breaks(graph: &Graph) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (from, deps) in &graph.top {
        let banned: &[&str] = if PURE.contains(&from.as_str()) {
            ABOVE_PURE
        } else if DURABILITY.contains(&from.as_str()) {
            EDGES
        } else if from == "config" {
            &[
                "events", "wal", "snapshot", "traffic", "sim", "replay", "server",
            ]
        } else {
            &[]
        };
        for dep in deps {
            let forbidden = banned.contains(&dep.as_str())
                || PURE.contains(&from.as_str()) && (dep == "tokio" || dep == "tonic");
            let mutual = graph.top.get(dep).is_some_and(|d| d.contains(from));
            if forbidden || mutual {
                out.insert((from.clone(), dep.clone()));
            }
        }
    }
    out
}

#[test]
fn layers_point_one_way() {
    let found = breaks(&graph());
    assert!(found.is_empty(), "imports against the layers: {found:?}");
}

#[test]
fn no_two_files_of_a_folder_name_each_other() {
    let graph = graph();
    let cycles: Vec<_> = graph
        .files
        .iter()
        .filter(|(a, b)| a < b && graph.files.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| format!("{} <-> {}", a.join("::"), b.join("::")))
        .collect();
    assert!(cycles.is_empty(), "{cycles:?}");
}

#[test]
fn the_checks_see_what_they_check() {
    // The reader must see real edges, or the rules above pass vacuously.
    let graph = graph();
    assert!(graph.top["engine"].contains("allocate"));
    assert!(graph.top["server"].contains("tonic"));
    assert!(graph.top["server"].contains("engine"));
    // Config builds the params the pure parts own, the engine's included.
    assert!(graph.top["config"].contains("engine"));
    assert!(graph.top["config"].contains("chuanliu"));
    assert!(graph.files.contains(&(
        vec!["sim".into(), "evaluate".into()],
        vec!["sim".into(), "hindsight".into()]
    )));
}

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut over = Vec::new();
    for file in files {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        let name = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if lines > MAX_LINES {
            over.push(format!("{name}: {lines} lines (at most {MAX_LINES})"));
        }
    }
    assert!(over.is_empty(), "{over:?}");
}
