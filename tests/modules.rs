//! The shape of the source: the modules of src/ import only downwards, in the order of DESIGN.md's
//! architecture table, so there is no import cycle between the folders (each counted as one
//! module) or between the files; and the ops print nothing (their errors are values). Read from the
//! source's `crate::`, `pggan::` and `super::` paths, comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules of src/, lowest first: each may import only those before it. A folder is one
/// module here; the binary is `cli/` and `main.rs`.
const LAYERS: &[&str] = &[
    "clock",
    "print",
    "files",
    "rng",
    "gpu",
    "check",
    "ops",
    "nn",
    "data",
    "samples",
    "metrics",
    "checkpoint",
    "proto",
    "tensorboard",
    "train",
    "selftest",
    "bench",
    "export",
    "serve",
    "web",
    "lib",
    "cli",
    "main",
];

/// A source file's module path: `src/train/sample.rs` is `train/sample`, `src/train/mod.rs` is
/// `train`.
fn module_of(rel: &str) -> String {
    rel.trim_end_matches(".rs").trim_end_matches("/mod").into()
}

/// The source files of src/, by module path, each with its text (comments removed).
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path).unwrap();
                let code: Vec<&str> = text.lines().map(|l| l.split("//").next().unwrap()).collect();
                out.insert(module_of(&rel), code.join("\n"));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// The identifiers a path names after `prefix` (`crate::a::b`, `super::{a, b::c}`): the first
/// segment of each, and the second where the first is a folder.
fn targets(code: &str, prefix: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(list) => list[..list.find('}').unwrap_or(list.len())].split(',').collect(),
            None => vec![rest],
        };
        for item in items {
            let item = item.trim();
            let segment = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
            let first = segment(item);
            // A macro (`crate::coop_prelude!`) is not a module.
            if first.is_empty() || item[first.len()..].starts_with('!') {
                continue;
            }
            let second = item[first.len()..].strip_prefix("::").map(segment);
            out.push((first, second.filter(|s| !s.is_empty())));
        }
    }
    out
}

/// Every file's imports as module paths of files that exist.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = sources();
    let resolve = |base: &str, (first, second): (String, Option<String>)| -> Option<String> {
        let top = if base.is_empty() {
            first.clone()
        } else {
            format!("{base}/{first}")
        };
        let deeper = second.map(|s| format!("{top}/{s}"));
        deeper
            .filter(|d| src.contains_key(d))
            .or(src.contains_key(&top).then_some(top))
    };
    let mut graph = BTreeMap::new();
    for (module, code) in &src {
        let folder = module.rsplit_once('/').map_or("", |(f, _)| f);
        let mut deps = BTreeSet::new();
        // In the binary, `crate` is main.rs, whose modules live under cli/ (`crate::cli::train`).
        for t in targets(code, "pggan::").into_iter().chain(targets(code, "crate::")) {
            deps.extend(resolve("", t));
        }
        // `super::` in a folder's file is the folder (in a top-level file, its own tests' parent).
        if !folder.is_empty() {
            for t in targets(code, "super::") {
                deps.extend(resolve(folder, t).or_else(|| src.contains_key(folder).then(|| folder.to_string())));
            }
        }
        deps.remove(module);
        graph.insert(module.clone(), deps);
    }
    graph
}

/// The layer of a module path: its top folder (or file).
fn layer(module: &str) -> usize {
    let top = module.split('/').next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("src/{top} is not in this test's LAYERS: add it at its place"))
}

/// A cycle of `graph`, if any, as the modules along it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            return Some(path[at..].to_vec());
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_import_only_lower_layers() {
    let graph = imports();
    assert!(graph.contains_key("train/trainer") && graph["train/trainer"].contains("train/step"));
    let upward: Vec<String> = graph
        .iter()
        .flat_map(|(m, deps)| deps.iter().map(move |d| (m, d)))
        .filter(|(m, d)| layer(m) < layer(d))
        .map(|(m, d)| format!("{m} imports {d}"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one: {upward:#?}"
    );
}

#[test]
fn no_import_cycle_between_files_or_folders() {
    let files = imports();
    assert_eq!(cycle(&files), None, "an import cycle between files");
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let top = |m: &str| m.split('/').next().unwrap().to_string();
    for (m, deps) in &files {
        let entry = folders.entry(top(m)).or_default();
        entry.extend(deps.iter().map(|d| top(d)).filter(|d| *d != top(m)));
    }
    assert!(folders["train"].contains("nn"));
    assert_eq!(cycle(&folders), None, "an import cycle between folders");
}

#[test]
fn ops_do_not_print() {
    let printing: Vec<String> = sources()
        .into_iter()
        .filter(|(m, code)| {
            m.starts_with("ops")
                && ["eprintln!", "println!", "eprint!", "print!"]
                    .iter()
                    .any(|p| code.contains(p))
        })
        .map(|(m, _)| m)
        .collect();
    assert!(
        printing.is_empty(),
        "ops that print (return the message instead): {printing:?}"
    );
}
