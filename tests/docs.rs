//! The documents stay true to the repository (issue 29):
//!
//! - every repository path named in README.md, docs/, and the comments of
//!   scenarios/ and scripts/ exists;
//! - docs/scenarios.md names every field, fault kind and atlas column the
//!   parser accepts. The fields are the parser's own list: each table of
//!   a scenario is given an unknown field, and the error lists the ones it
//!   knows, so the page and the parser cannot drift apart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if ext.is_empty()
            || p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| ext.contains(&x))
        {
            out.push(p);
        }
    }
}

/// The top-level folders whose paths a text may name.
const TOP: &[&str] = &[
    "src/",
    "tests/",
    "scenarios/",
    "docs/",
    "drivers/",
    "scripts/",
    "benches/",
    "examples/",
    "assets/",
    ".ci/",
    ".github/",
];

/// What is built or installed, not committed: named in texts, absent on a
/// fresh clone (.gitignore).
const BUILT: &[&str] = &[
    "drivers/python/.venv",
    "drivers/node/node_modules",
    "drivers/go/bin",
    "drivers/java/target",
];

/// Repository paths in `text`: words that start with a top-level folder,
/// up to the first character a path does not have here.
fn paths_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.char_indices() {
        let rest = &text[i..];
        let Some(top) = TOP.iter().find(|t| rest.starts_with(**t)) else {
            continue;
        };
        // A path starts a word: not in the middle of another path or URL.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || "/._-~".contains(c)) {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || "/._-".contains(c)))
            .unwrap_or(rest.len());
        let mut path = rest[..end].trim_end_matches(['.', ',']).to_string();
        // `docs/results/` in a sentence names a folder; so does `src/`.
        if path.len() <= top.len() {
            continue;
        }
        // Patterns (`scenarios/faults/*.toml`, `<name>`) are not paths.
        let after = &rest[end..];
        if after.starts_with('*') || after.starts_with('<') || after.starts_with('{') {
            continue;
        }
        if path.ends_with('/') {
            path.pop();
        }
        out.push(path);
    }
    out
}

#[test]
fn the_path_reader_finds_paths_and_leaves_patterns() {
    let found = paths_in(
        "see `src/run/atlas.rs`, scenarios/faults/*.toml and docs/results/. \
         In [the page](docs/design.md): x/src/no, https://x.org/docs/no, `drivers/<lang>/`.",
    );
    assert_eq!(
        found,
        vec!["src/run/atlas.rs", "docs/results", "docs/design.md"]
    );
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = root();
    let mut texts = vec![root.join("README.md")];
    files_under(&root.join("docs"), &["md"], &mut texts);
    let mut commented = Vec::new();
    files_under(&root.join("scenarios"), &["toml"], &mut commented);
    files_under(&root.join("scripts"), &[], &mut commented);
    let mut missing = BTreeSet::new();
    let mut seen = 0;
    for file in texts.iter().chain(&commented) {
        let text = std::fs::read_to_string(file).unwrap();
        let text: String = if commented.contains(file) {
            // Only what the comments say: commands in the code are checked
            // by running them.
            text.lines()
                .filter_map(|l| l.trim_start().strip_prefix('#'))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            text
        };
        for path in paths_in(&text) {
            seen += 1;
            if BUILT.iter().any(|b| path.starts_with(b)) {
                continue;
            }
            if !root.join(&path).exists() {
                missing.insert(format!(
                    "{}: {path}",
                    file.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(seen > 50, "only {seen} paths found: is the reader blind?");
    assert!(
        missing.is_empty(),
        "paths named that do not exist:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The names the parser knows in one table of a scenario: the ones its
/// error lists when the table is given a field it does not know.
fn known_fields(scenario: &str) -> Vec<String> {
    let e = lockbench::scenario::Scenario::parse(Path::new("s.toml"), scenario)
        .expect_err("an unknown field is refused")
        .to_string();
    let list = e
        .split("expected one of ")
        .nth(1)
        .or_else(|| e.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no list of known fields in: {e}"));
    let list = list.split('\n').next().unwrap_or(list);
    let names: Vec<String> = list
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, n)| n.to_string())
        .collect();
    assert!(!names.is_empty(), "no names in: {e}");
    names
}

#[test]
fn docs_scenarios_names_every_field_fault_and_column_the_parser_knows() {
    let page = std::fs::read_to_string(root().join("docs/scenarios.md")).unwrap();
    let base = "backends = [\"redis\"]\nduration = \"5s\"\n";
    let tables = [
        ("a scenario", format!("{base}zzz_unknown = 1\n")),
        (
            "[[nemesis]]",
            format!("{base}[[nemesis]]\nat = \"1s\"\nfault = \"partition\"\nzzz_unknown = 1\n"),
        ),
        (
            "[random_nemesis]",
            format!("{base}[random_nemesis]\nzzz_unknown = 1\n"),
        ),
        (
            "[[driver]]",
            format!("{base}[[driver]]\nname = \"d\"\nzzz_unknown = 1\n"),
        ),
        (
            "[deployment.<backend>]",
            format!(
                "{base}[deployment.redis]\nmembers = [{{ name = \"a\", addr = \"127.0.0.1:1\" }}]\nzzz_unknown = 1\n"
            ),
        ),
        (
            "a deployment's member",
            format!(
                "{base}[deployment.redis]\nmembers = [{{ name = \"a\", addr = \"127.0.0.1:1\", zzz_unknown = 1 }}]\n"
            ),
        ),
        (
            "an atlas cell",
            format!(
                "{base}mode = \"atlas\"\n[atlas.all]\npause = {{ expect = \"safe\", zzz_unknown = 1 }}\n"
            ),
        ),
    ];
    let mut absent = Vec::new();
    for (what, text) in &tables {
        for f in known_fields(text) {
            if !page.contains(&format!("`{f}`")) {
                absent.push(format!("{what}: field `{f}`"));
            }
        }
    }
    for f in lockbench::fault::FAULTS {
        if !page.contains(&format!("`{f}`")) {
            absent.push(format!("fault kind `{f}`"));
        }
    }
    for c in lockbench::summary::atlas::Column::ALL {
        if !page.contains(&format!("`{}`", c.name())) {
            absent.push(format!("atlas column `{}`", c.name()));
        }
    }
    assert!(
        absent.is_empty(),
        "docs/scenarios.md does not name what the parser accepts:\n{}",
        absent.join("\n")
    );
}
