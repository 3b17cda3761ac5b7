//! The one-way layers of docs/design.md: a top-level module of `src/` uses only
//! the modules before it in [`LAYERS`], never one after it.
//!
//! Every `crate::<module>` path in a module's files counts, in code and in
//! doc links alike (a doc link to a later layer is a reader sent the wrong
//! way), and so does a name re-exported at the crate root (`crate::Error`)
//! through the module it comes from. The binary (`src/bin/`) is the top and
//! may use everything.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first (docs/design.md, "Layers").
const LAYERS: &[&str] = &[
    "error", "duration", "history", "check", "summary", "metrics", "net", "cluster", "backend",
    "workload", "fault", "probe", "scenario", "report", "run",
];

/// An import of a later layer: (the module, the file, the module it uses).
type Upward = (String, PathBuf, String);

/// The top-level module a file of `src` belongs to (`None`: lib.rs, bin).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" || first == "bin" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// Names the crate root re-exports, and the module each comes from
/// (`pub use error::{Error, Result};`).
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        let Some(rest) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// Every module a file's text names through `crate::`.
fn used_modules(text: &str, exports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        // `crate::{a, b::C}`: each item's first segment.
        let group: Vec<&str> = match after.strip_prefix('{') {
            Some(inner) => inner.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![after],
        };
        for item in group {
            let ident: String = item
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some(m) = exports.get(&ident) {
                out.insert(m.clone());
            } else if !ident.is_empty() {
                out.insert(ident);
            }
        }
        rest = after;
    }
    out
}

/// The imports of later layers in the tree at `src`, and the top-level
/// modules that have no layer.
fn check_tree(src: &Path) -> (Vec<Upward>, Vec<String>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let exports = root_exports(&lib);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut files = Vec::new();
    common::rust_files(src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unranked = BTreeSet::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let Some(own) = rank(&module) else {
            unranked.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for used in used_modules(&text, &exports) {
            match rank(&used) {
                Some(r) if r > own => upward.push((module.clone(), file.clone(), used)),
                Some(_) => {}
                // `crate::` followed by something that is no module of
                // ours (a macro's `$crate`, say) is not an edge.
                None => {}
            }
        }
    }
    (upward, unranked.into_iter().collect())
}

#[test]
fn every_module_uses_only_the_layers_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (upward, unranked) = check_tree(&src);
    assert!(
        unranked.is_empty(),
        "top-level modules with no layer in LAYERS (add them where they belong): {unranked:?}"
    );
    let lines: Vec<String> = upward
        .iter()
        .map(|(m, f, u)| format!("{m} -> {u} in {}", f.display()))
        .collect();
    assert!(
        lines.is_empty(),
        "imports of a later layer (docs/design.md, Layers):\n{}",
        lines.join("\n")
    );
}

#[test]
fn every_layer_is_a_module_of_the_crate() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("read src/lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let layers: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(
        declared, layers,
        "every module of lib.rs has a layer, and no more"
    );
    // The Layout section of lib.rs lists them in layer order.
    let listed: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! - [`"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert_eq!(listed, LAYERS, "lib.rs's Layout lists the layers in order");
}

#[test]
fn an_upward_import_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod error;\npub mod history;\npub use error::{Error, Result};\n",
    )
    .expect("write lib.rs");
    std::fs::create_dir_all(src.join("error")).expect("mkdir");
    std::fs::write(
        src.join("error/mod.rs"),
        "use crate::{history::Event, Result};\n",
    )
    .expect("write");
    std::fs::write(src.join("history.rs"), "use crate::Error;\n").expect("write");
    let (upward, unranked) = check_tree(src);
    assert!(unranked.is_empty(), "{unranked:?}");
    let edges: Vec<(String, String)> = upward.into_iter().map(|(m, _, u)| (m, u)).collect();
    assert_eq!(edges, vec![("error".to_string(), "history".to_string())]);
}
