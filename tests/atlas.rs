//! The atlas (`mode = "atlas"`, issue 28) through the `lockbench` binary,
//! on `inproc` (no server, so it runs anywhere in seconds): a cell's runs
//! are counted k of N, a cell that contradicts its expectation makes the
//! run exit 1 and is marked, a `timing` cell never does, a column that
//! cannot act says why, and the expectation tables are checked before
//! anything runs. The shipped atlas's quick form (a few real backends) is
//! `scenarios/atlas.toml` in tests/scenarios.rs.

mod common;

use std::path::Path;

use lockbench::summary::atlas::{Atlas, Column, Found, Status};

/// An atlas of `inproc` whose pause column expects `pause` (its lease runs
/// out under the paused holder: unsafe in every run, the fence rejecting
/// the stale write).
fn atlas_text(pause: &str) -> String {
    format!(
        r#"name = "tiny-atlas"
mode = "atlas"
backends = ["inproc"]
seed = 5
clients = 3
hosts = 3
lease = "300ms"
acquire_timeout = "2s"
hold = "100ms"
think = "5ms"

[atlas.all]
baseline = {{ expect = "safe", why = "no fault" }}
crash = {{ expect = "safe", why = "a dead holder stops" }}
cut = {{ expect = "safe", why = "not measured on inproc" }}
clock = {{ expect = "safe", why = "no server" }}
restart = {{ expect = "safe", why = "no server" }}
member-killed = {{ expect = "safe", why = "no server" }}
member-cut = {{ expect = "safe", why = "no server" }}

[atlas.inproc]
pause = {{ expect = "{pause}", why = "the lease runs out under the paused holder" }}
"#
    )
}

fn run(dir: &Path, text: &str, flags: &[&str]) -> (Option<i32>, String, Option<Atlas>) {
    let path = common::scenario(dir, "tiny-atlas", text);
    let out = dir.join("out");
    let o = common::lockbench()
        .arg("run")
        .args(flags)
        .arg("--out")
        .arg(&out)
        .arg(&path)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("run lockbench");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let atlas = std::fs::read_to_string(out.join("tiny-atlas/atlas.json"))
        .ok()
        .map(|t| serde_json::from_str(&t).expect("atlas.json parses"));
    (o.status.code(), text, atlas)
}

#[test]
fn an_unsafe_cell_counts_its_runs_and_its_expectation_decides_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text, atlas) = run(dir.path(), &atlas_text("unsafe"), &["--repeat", "2"]);
    assert_eq!(code, Some(0), "{text}");
    let atlas = atlas.expect("atlas.json");
    assert_eq!(atlas.repeat, 2);
    let row = &atlas.rows[0];
    assert_eq!(row.backend, "inproc");
    assert_eq!(row.cells.len(), Column::ALL.len());
    let pause = row
        .cells
        .iter()
        .find(|c| c.column == Column::Pause)
        .unwrap();
    assert_eq!((pause.unsafe_runs, pause.measured), (2, 2), "{pause:?}");
    assert_eq!(pause.status, Status::Agrees);
    assert!(pause.words.starts_with("unsafe in 2/2"), "{}", pause.words);
    assert!(
        pause.words.contains("the fence rejected the stale write"),
        "{}",
        pause.words
    );
    // Seeds 5 and 6, each run linked from the page.
    let seeds: Vec<u64> = pause.runs.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, vec![5, 6]);
    assert!(pause.runs.iter().all(|r| r.link.is_some()));
    // No server, no network: those columns say why, once.
    for column in [
        Column::Cut,
        Column::Clock,
        Column::Restart,
        Column::MemberKilled,
    ] {
        let c = row.cells.iter().find(|c| c.column == column).unwrap();
        assert_eq!(c.status, Status::NotMeasured, "{column}: {c:?}");
        assert!(c.words.starts_with("not measured: "), "{}", c.words);
        assert_eq!(c.runs.len(), 1);
        assert_eq!(c.runs[0].found, Found::NotMeasured);
    }
    let crash = row
        .cells
        .iter()
        .find(|c| c.column == Column::Crash)
        .unwrap();
    assert_eq!(crash.status, Status::Agrees, "{crash:?}");
    assert!(
        crash.runs.iter().all(|r| r.free_after_s.is_some()),
        "{crash:?}"
    );
    // The page and the Markdown are written beside atlas.json.
    let page = std::fs::read_to_string(dir.path().join("out/tiny-atlas/atlas.html")).unwrap();
    assert!(page.contains("unsafe in 2/2"));
    let md = std::fs::read_to_string(dir.path().join("out/tiny-atlas/atlas.md")).unwrap();
    assert!(md.contains("| `inproc` |"), "{md}");

    // The same runs, expected safe: a contradiction, marked, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let (code, text, atlas) = run(dir.path(), &atlas_text("safe"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("but the atlas expects safe"), "{text}");
    let atlas = atlas.unwrap();
    let pause = atlas.rows[0]
        .cells
        .iter()
        .find(|c| c.column == Column::Pause)
        .unwrap();
    assert_eq!(pause.status, Status::Contradicts);
    let page = std::fs::read_to_string(dir.path().join("out/tiny-atlas/atlas.html")).unwrap();
    assert!(page.contains("not as expected"));

    // Expected to depend on timing: never a contradiction.
    let dir = tempfile::tempdir().unwrap();
    let (code, text, atlas) = run(dir.path(), &atlas_text("timing"), &[]);
    assert_eq!(code, Some(0), "{text}");
    let pause = atlas.unwrap().rows[0].cells[Column::ALL
        .iter()
        .position(|c| *c == Column::Pause)
        .unwrap()]
    .clone();
    assert_eq!(pause.status, Status::Timing);
    assert_eq!(pause.unsafe_runs, 1);
}

#[test]
fn the_expectation_tables_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            atlas_text("unsafe").replace("pause = {", "paws = {"),
            "\"paws\" is not a column",
        ),
        (
            atlas_text("sometimes"),
            "expect = \"sometimes\" is not an expectation",
        ),
        (
            atlas_text("unsafe").replace(
                "crash = { expect = \"safe\", why = \"a dead holder stops\" }\n",
                "",
            ),
            "no expectation for inproc under crash",
        ),
        (
            atlas_text("unsafe").replace("[atlas.inproc]", "[atlas.redis]"),
            "redis is not one of this scenario's backends",
        ),
        (
            atlas_text("unsafe").replace("why = \"no fault\"", "why = \" \""),
            "why is empty",
        ),
        (
            atlas_text("unsafe").replace("mode = \"atlas\"\n", ""),
            "only read by an atlas",
        ),
    ];
    for (text, wanted) in cases {
        let (code, out, atlas) = run(dir.path(), &text, &[]);
        assert_eq!(code, Some(2), "{wanted}: {out}");
        assert!(out.contains(wanted), "{wanted}: {out}");
        assert!(out.contains("tiny-atlas.toml:"), "the file is named: {out}");
        assert!(atlas.is_none());
    }
}
