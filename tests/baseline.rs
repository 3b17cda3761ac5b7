//! The regression gate (`--baseline`, `--fail-on-regression`) catches a
//! deliberately slowed run and passes a same-speed rerun.

mod common;

use std::path::Path;

/// An inproc scenario named `gate`: 8 clients on one key, holding
/// `hold_ms` each time.
fn scenario(dir: &Path, file: &str, hold_ms: u64) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "name = \"gate\"\nbackends = [\"inproc\"]\nexpect = \"valid\"\nseed = 3\n\
             duration = \"1500ms\"\nclients = 8\nhosts = 2\nkeys = 1\nlease = \"5s\"\n\
             acquire_timeout = \"3s\"\nop_timeout = \"1s\"\nhold = \"{hold_ms}ms\"\nthink = \"0ms\"\n"
        ),
    )
    .unwrap();
    path
}

fn run(out: &Path, scenario: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = common::lockbench()
        .arg("run")
        .arg("--no-progress")
        .arg("--out")
        .arg(out)
        .args(extra)
        .arg(scenario)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn newest_run_page(out: &Path) -> String {
    let dir = out.join("gate").join("inproc");
    let mut runs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    std::fs::read_to_string(runs.last().unwrap().join("index.html")).unwrap()
}

#[test]
fn gate_catches_a_slowed_run_and_passes_a_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let fast = scenario(tmp.path(), "fast.toml", 1);
    let slow = scenario(tmp.path(), "slow.toml", 15);

    let (code, stdout) = run(&out, &fast, &[]);
    assert_eq!(code, Some(0), "{stdout}");

    // 15× the hold time on one contended key: throughput falls about
    // tenfold, far past a 50 % threshold.
    let base = out.to_str().unwrap();
    let (code, stdout) = run(
        &out,
        &slow,
        &[
            "--baseline",
            base,
            "--threshold",
            "50",
            "--fail-on-regression",
        ],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("REGRESSION"), "{stdout}");
    assert!(stdout.contains("throughput regressed"), "{stdout}");
    let page = newest_run_page(&out);
    assert!(page.contains("Against the baseline"));
    assert!(page.contains("throughput regressed"));

    // Without --fail-on-regression the same finding does not fail the run.
    let (code, stdout) = run(&out, &slow, &["--baseline", base, "--threshold", "50"]);
    assert_eq!(code, Some(0), "{stdout}");

    // A same-speed rerun against the slow baseline, generous threshold.
    let (code, stdout) = run(
        &out,
        &slow,
        &[
            "--baseline",
            base,
            "--threshold",
            "400",
            "--fail-on-regression",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("no regression"), "{stdout}");
    assert!(newest_run_page(&out).contains("no regression"));
}

#[test]
fn bad_baseline_dir_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let fast = scenario(tmp.path(), "fast.toml", 1);
    let missing = tmp.path().join("nope");
    let (code, _) = run(
        &tmp.path().join("out"),
        &fast,
        &["--baseline", missing.to_str().unwrap()],
    );
    assert_eq!(code, Some(2));
}
