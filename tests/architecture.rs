//! The crate's layering, checked from its source: which top-level module uses which (a
//! `crate::X` path, or a `super::X` path from a top-level module's own files). The graph must
//! have no cycle, every module may use only the layers below its own, and clap is spoken
//! only at the edge (`cli.rs` and `main.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the edge down; a module may use its own layer's other modules only where
/// listed in `SIDEWAYS`, and any module of a lower layer.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["commands"],
    &["daemon", "sync"],
    &["cognito", "hasura", "state", "events"],
    &["model", "config", "telemetry"],
];

/// Uses within one layer, each a deliberate one-way dependency.
const SIDEWAYS: &[(&str, &str)] = &[
    // The daemon runs the scheduled reconcile, an engine of `sync`.
    ("daemon", "sync"),
    // Run records and leases are rows in Hasura.
    ("state", "hasura"),
    // Hasura's operations convert the records the model defines.
    ("hasura", "model"),
    ("cognito", "model"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Every `crate::name` mentioned in `text` (code and doc links alike: a doc link to a module
/// is a dependency of the reader's understanding too, and keeps the rule simple).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `cognito_hasura_sync::` is not a `crate::` path.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(crate_paths(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            let (from, to) = (layer_of(module), layer_of(used));
            let allowed = to > from || (to == from && SIDEWAYS.contains(&(module, used)));
            if !allowed {
                wrong.push(format!("{module} -> {used}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the layering: {wrong:?}\nthe graph: {graph:#?}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    // Kahn's algorithm: whatever cannot be removed lies on a cycle.
    let mut remaining = graph.clone();
    loop {
        let leaves: Vec<String> = remaining
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !remaining.contains_key(u)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            remaining.remove(&leaf);
        }
    }
    assert!(
        remaining.is_empty(),
        "modules on an import cycle: {:?}",
        remaining.keys().collect::<Vec<_>>()
    );
}

#[test]
fn clap_is_spoken_only_at_the_edge() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !(f.ends_with("src/cli.rs") || f.ends_with("src/main.rs")))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("clap::") || text.contains("#[arg(") || text.contains("#[command(")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "clap outside the edge: {offenders:?}");
}

#[test]
fn the_checker_sees_a_cycle_and_a_wrong_way_use() {
    // The parser itself: a path is found, a longer crate name is not taken for `crate::`.
    let found =
        crate_paths("use crate::hasura::X; cognito_hasura_sync::cli::Cli; [`crate::model`]");
    assert_eq!(
        found,
        BTreeSet::from(["hasura".to_owned(), "model".to_owned()])
    );
    assert!(layer_of("cli") < layer_of("commands"));
    assert!(layer_of("hasura") > layer_of("sync"));
}
