//! The pages `lockbench run` and `lockbench report` write: the comparison
//! page of a multi-backend run, the run page's timeline, and a broken
//! recipe's red overlaps with their class.

mod common;

use std::path::{Path, PathBuf};

fn write_scenario(dir: &Path, name: &str, backends: &str, expect: &str) -> PathBuf {
    common::scenario(
        dir,
        name,
        &format!(
            "name = \"{name}\"\nbackends = [{backends}]\nexpect = \"{expect}\"\nseed = 5\n\
             duration = \"1500ms\"\nclients = 8\nhosts = 2\nkeys = 1\nlease = \"5s\"\n\
             acquire_timeout = \"2s\"\nop_timeout = \"1s\"\nhold = \"2ms\"\nthink = \"0ms\"\n"
        ),
    )
}

fn run_ok(out: &Path, scenario: &Path) -> String {
    let scenario = scenario.to_str().expect("a UTF-8 temp path");
    common::run_shipped_ok(scenario, out, &["--no-progress"])
}

fn run_dirs(out: &Path, scenario: &str, backend: &str) -> Vec<PathBuf> {
    std::fs::read_dir(out.join(scenario).join(backend))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn comparison_page_of_two_backends() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let sc = write_scenario(tmp.path(), "pair", "\"inproc\", \"redis\"", "valid");
    let stdout = run_ok(&out, &sc);
    assert!(stdout.contains("comparison:"), "{stdout}");
    let page = std::fs::read_to_string(out.join("pair").join("comparison.html")).unwrap();
    for backend in ["inproc", "redis"] {
        assert!(
            page.contains(&format!("<code>{backend}</code>")),
            "{backend}"
        );
    }
    assert!(
        page.matches("<svg").count() >= 2,
        "latency and throughput charts"
    );
    assert!(page.contains("Acquire latency by percentile"));
    assert!(page.contains("percentile (nines scale"));
    assert!(page.contains("successful acquisitions / s"));
    assert!(page.contains("Verdicts and checks per backend"));
    assert!(page.contains("Jain index"));
    assert!(page.contains("Property matrix"));
    assert!(page.contains("lockbench run scenarios/properties.toml"));
    assert!(page.contains("@media print"));
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(external), "self-contained: {external}");
    }

    // `lockbench report` of the two run directories rebuilds the same page.
    let mut dirs = run_dirs(&out, "pair", "inproc");
    dirs.extend(run_dirs(&out, "pair", "redis"));
    let again = tmp.path().join("again");
    let o = common::lockbench()
        .arg("report")
        .args(&dirs)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let page = std::fs::read_to_string(again.join("comparison.html")).unwrap();
    assert!(page.contains("<code>inproc</code>") && page.contains("<code>redis</code>"));

    // The run page holds the timeline: an example window and the overview.
    let run_page = std::fs::read_to_string(dirs[0].join("index.html")).unwrap();
    assert!(run_page.contains("<h2>Timeline</h2>"));
    assert!(run_page.contains("Holds of key"));
    assert!(run_page.contains("Overview: when each key was held"));
    assert!(run_page.contains("time since the run started (s)"));
    assert!(
        !run_page.contains("class=\"overlap\""),
        "a valid run has no red overlaps"
    );
}

#[test]
fn inproc_run_page_has_the_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let sc = write_scenario(tmp.path(), "solo", "\"inproc\"", "valid");
    run_ok(&out, &sc);
    let dir = &run_dirs(&out, "solo", "inproc")[0];
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("<h2>Timeline</h2>"));
    assert!(page.contains("(no violations: an example)"));
    assert!(page.contains("<h2>Other checks</h2>"));
}

#[test]
fn broken_recipe_shows_red_overlaps_and_the_class() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let sc = write_scenario(tmp.path(), "broken", "\"redis-get-set\"", "invalid");
    run_ok(&out, &sc);
    let dir = &run_dirs(&out, "broken", "redis-get-set")[0];
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let classes = summary["violation_classes"].as_object().unwrap();
    assert!(!classes.is_empty());
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(page.contains("class=\"overlap\""), "red overlaps drawn");
    assert!(page.contains("#d93025"));
    for class in classes.keys() {
        assert!(page.contains(&format!("class <span class=\"red\">{class}</span>")));
    }
}

#[test]
fn check_and_export_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let sc = write_scenario(tmp.path(), "hist", "\"inproc\"", "valid");
    run_ok(&out, &sc);
    let run_dir = run_dirs(&out, "hist", "inproc")[0].clone();
    // Compressed by default.
    let history = run_dir.join("history.jsonl.zst");
    assert!(
        history.exists(),
        "no history.jsonl.zst in {}",
        run_dir.display()
    );
    assert!(!run_dir.join("history.jsonl").exists());
    // Its plain text, as `zstdcat` would print it: every reader takes
    // both, by content, whatever the name.
    let plain = tmp.path().join("plain-named.jsonl.zst");
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut lockbench::history::open_history(&history).unwrap(),
        &mut text,
    )
    .unwrap();
    assert!(text.starts_with(b"{\"index\":0,"));
    std::fs::write(&plain, &text).unwrap();
    let mut outputs = Vec::new();
    for h in [&history, &plain] {
        let o = common::lockbench().arg("check").arg(h).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(0), "{stdout}");
        for line in ["ownership:", "fencing:", "liveness:"] {
            assert!(stdout.contains(line), "{stdout}");
        }
        outputs.push(stdout);
    }
    assert_eq!(outputs[0], outputs[1], "the same history, two forms");
    let ops = tmp.path().join("ops.json");
    let o = common::lockbench()
        .args(["export", "--format", "porcupine"])
        .arg(&history)
        .arg("-o")
        .arg(&ops)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ops).unwrap()).unwrap();
    assert!(!parsed.as_array().unwrap().is_empty());

    // On request, plain text.
    let plain_out = tmp.path().join("plain");
    let sc = sc.to_str().expect("a UTF-8 temp path");
    common::run_shipped_ok(
        sc,
        &plain_out,
        &["--no-progress", "--history-format", "jsonl"],
    );
    let plain_run = run_dirs(&plain_out, "hist", "inproc")[0].clone();
    assert!(plain_run.join("history.jsonl").exists());
    assert!(!plain_run.join("history.jsonl.zst").exists());
    let o = common::lockbench()
        .arg("check")
        .arg(plain_run.join("history.jsonl"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));

    let missing = tmp.path().join("missing.jsonl");
    for args in [vec!["check"], vec!["export", "--format", "porcupine"]] {
        let o = common::lockbench()
            .args(&args)
            .arg(&missing)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}
