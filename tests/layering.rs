//! The layers of `src/` depend downwards only (README, "Architecture"). One crate cannot make
//! the compiler hold that line, so this test does: it reads every source file, finds each
//! `crate::<module>` path outside comments, and fails on a path into a module of a higher layer
//! (or into a module it does not know, so a new top-level module must be placed in a layer).
#![allow(clippy::expect_used)] // a broken checkout should fail the test loudly

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules from the bottom up; modules on one line share a layer and may use one
/// another (the test also refuses a cycle between two of them).
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["domain", "config"],
    &["telemetry", "auth"],
    &["db"],
    &["audit"],
    &["kpi"],
    &["realtime", "limits"],
    &["state"],
    &["access", "ingest", "management", "reports", "dashboards"],
    &["seed"],
    &["graphql"],
    &["http"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file under `src/` belongs to (`kpi/query.rs` → `kpi`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path under src/ has a first component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<name>` in the code of `text` (line comments and doc comments skipped).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !preceded_by_ident && !name.is_empty() {
                found.push((number + 1, name));
            }
        }
    }
    found
}

/// (from module, to module) → the first place that made the edge.
fn edges() -> BTreeMap<(String, String), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("file is under src/");
        if relative == Path::new("lib.rs") || relative == Path::new("main.rs") {
            continue; // the crate roots declare and re-export every module
        }
        let from = module_of(relative);
        let text = std::fs::read_to_string(&file).expect("source file is UTF-8");
        for (line, to) in crate_paths(&text) {
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| format!("src/{}:{line}", relative.display()));
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let mut violations = Vec::new();
    for ((from, to), at) in edges() {
        match (layer_of(&from), layer_of(&to)) {
            (None, _) => violations.push(format!("{at}: module `{from}` is in no layer of LAYERS")),
            (_, None) => violations.push(format!("{at}: `{from}` uses `{to}`, which is in no layer of LAYERS")),
            (Some(f), Some(t)) if t > f => violations.push(format!("{at}: `{from}` uses `{to}`, a layer above it")),
            _ => {}
        }
    }
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}

#[test]
fn modules_of_one_layer_do_not_import_each_other_both_ways() {
    let edges = edges();
    let cycles: Vec<String> = edges
        .keys()
        .filter(|(from, to)| from < to && edges.contains_key(&(to.clone(), from.clone())))
        .map(|(a, b)| {
            let ab = &edges[&(a.clone(), b.clone())];
            let ba = &edges[&(b.clone(), a.clone())];
            format!("`{a}` ⇄ `{b}` ({ab}; {ba})")
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scanner_sees_paths_and_skips_comments() {
    let text = "use crate::db::calls;\n// crate::http is only named here\nlet x = crate::kpi::f(); // crate::cli\nmy_crate::http";
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["db", "kpi"]);
}
