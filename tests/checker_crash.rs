//! A checker that panics is that checker's `unknown`, not a crashed run
//! (src/check/compose.rs, after Jepsen's `check-safe`): a whole
//! `lockbench run` with one checker made to panic by the failpoint still
//! finishes, and the other checkers' results are those of the same history
//! checked without the failpoint.

mod common;

use lockbench::Verdict;
use lockbench::check::{AnalysisOptions, analyze_file};
use lockbench::summary::Summary;

/// A short inproc run whose holder crashes once: there is a fault for the
/// liveness checker's recovery measures and holds for the others.
const SCENARIO: &str = "backends = [\"inproc\"]\nexpect = \"valid\"\nseed = 7\n\
    duration = \"2s\"\nclients = 4\nkeys = 1\nlease = \"500ms\"\n\
    acquire_timeout = \"1s\"\nhold = \"20ms\"\nthink = \"5ms\"\n\
    [[nemesis]]\nat = \"500ms\"\nfault = \"crash-client\"\ntargets = [\"holder\"]\n\
    duration = \"10ms\"\n";

/// Runs the scenario with `LOCKBENCH_FAILPOINT=panic-checker:<checker>`;
/// returns the exit code, the summary, the history's analysis without the
/// failpoint, and the run page.
fn run_with_panicking(checker: &str) -> (Option<i32>, Summary, lockbench::check::Analysis, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = common::scenario(tmp.path(), "crashing-checker", SCENARIO);
    let out = common::lockbench()
        .env("LOCKBENCH_FAILPOINT", format!("panic-checker:{checker}"))
        .args(["run", "--no-progress", "--out"])
        .arg(tmp.path())
        .arg(&path)
        .output()
        .unwrap();
    let dir = common::run_dir(tmp.path(), "crashing-checker", "inproc");
    let summary = Summary::read(&dir.join("summary.json")).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let history = lockbench::history::history_in(&dir);
    // This test's own process has no failpoint: every checker runs.
    let (whole, _) = analyze_file(&history, AnalysisOptions::default()).unwrap();
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap_or_default();
    (out.status.code(), summary, whole, page)
}

#[test]
fn a_panicking_liveness_checker_is_unknown_and_the_run_goes_on() {
    let (code, s, whole, page) = run_with_panicking("liveness");
    // The run page says why liveness and recovery are missing.
    assert!(page.contains("unknown: checker crashed"), "{page}");
    assert_eq!(
        s.liveness.verdict,
        Some(Verdict::Unknown),
        "{:?}",
        s.liveness
    );
    let why = s.liveness.reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("checker crashed") && why.contains("liveness"),
        "{why}"
    );
    assert!(s.recovery.reason.is_some(), "{:?}", s.recovery);
    // The others are what they are without the failpoint.
    assert_eq!(whole.liveness.verdict, None);
    assert!(whole.liveness.jain_index > 0.0, "{:?}", whole.liveness);
    assert_eq!(s.verdict, whole.verdict());
    assert_eq!(s.verdict, Verdict::Valid, "{:?}", s.witnesses);
    assert_eq!(s.violations, whole.mutex.violations);
    assert_eq!(s.ownership, whole.ownership);
    assert_eq!(s.fencing, whole.fencing);
    // Liveness does not decide the verdict: the run passes as expected.
    assert_eq!(code, Some(0));
}

#[test]
fn a_panicking_mutex_checker_is_an_unknown_verdict_and_the_others_stand() {
    let (code, s, whole, _) = run_with_panicking("mutual-exclusion");
    assert_eq!(s.verdict, Verdict::Unknown);
    let why = s.verdict_reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("checker crashed") && why.contains("mutual-exclusion"),
        "{why}"
    );
    assert_eq!(whole.mutex.verdict, Verdict::Valid);
    assert_eq!(s.ownership.verdict, Verdict::Valid);
    // summary.json carries floats to about 16 digits: compare them so.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let (l, w) = (&s.liveness, &whole.liveness);
    assert_eq!(l.verdict, None);
    assert_eq!(
        (
            &l.deadlocks,
            l.min_acquisitions,
            l.max_acquisitions,
            l.starved_clients
        ),
        (
            &w.deadlocks,
            w.min_acquisitions,
            w.max_acquisitions,
            w.starved_clients
        )
    );
    assert!(close(l.jain_index, w.jain_index) && close(l.longest_wait_ms, w.longest_wait_ms));
    assert_eq!(s.recovery.faults.len(), whole.recovery.faults.len());
    assert!(!s.recovery.faults.is_empty(), "the crash is a fault");
    assert!(close(
        s.recovery.unavailable_fraction,
        whole.recovery.unavailable_fraction
    ));
    assert_eq!(s.fencing, whole.fencing);
    // `unknown` is not the `valid` the scenario expects.
    assert_eq!(code, Some(1));
}
