//! The lock libraries lockbench ships drivers for (drivers/python), on the
//! real servers and with the libraries' real code: every library keeps
//! mutual exclusion without faults and is named with its version, and the
//! known-result scenarios of scenarios/libraries/ reach the verdicts their
//! comments explain (each with its source).

mod common;

use std::path::Path;

use lockbench::Verdict;
use lockbench::history::{F, OpType, Process, read_jsonl};
use lockbench::summary::Summary;

/// The shipped drivers' libraries are installed (or the test is skipped,
/// or fails when backends are required).
fn libraries_installed(backends: &[&str]) -> bool {
    for b in backends {
        let info = lockbench::backend::info(b).expect("a shipped library");
        if let Some((path, hint)) = info.missing() {
            if common::backends_required() {
                panic!("{b}: {path} is missing and LOCKBENCH_REQUIRE_BACKENDS=1; {hint}");
            }
            eprintln!("skipped: {b}: {path} is missing; {hint}");
            return false;
        }
        let kind = info.server.expect("a library needs a server");
        if !common::kind_available(kind) {
            return false;
        }
    }
    true
}

fn summary(out: &Path, scenario: &str, backend: &str) -> (std::path::PathBuf, Summary) {
    let dir = common::run_dir(out, scenario, backend);
    let s = Summary::read(&dir.join("summary.json")).expect("summary.json");
    (dir, s)
}

#[test]
fn every_shipped_library_keeps_exclusion_and_names_its_version() {
    let backends = [
        "redis-py",
        "python-redis-lock",
        "python-redis-lock-renewal",
        "pottery-redlock",
        "kazoo",
    ];
    if !libraries_installed(&backends) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok("scenarios/libraries.toml", out.path(), &[]);
    let libraries = [
        ("redis-py", "redis-py"),
        ("python-redis-lock", "python-redis-lock"),
        ("python-redis-lock-renewal", "python-redis-lock"),
        ("pottery-redlock", "pottery"),
        ("kazoo", "kazoo"),
    ];
    for (backend, library) in libraries {
        let (dir, s) = summary(out.path(), "libraries", backend);
        assert_eq!(s.verdict, Verdict::Valid, "{backend}: {:?}", s.witnesses);
        let l = s.library.as_ref().expect("named by its driver");
        assert_eq!(l.name, library);
        assert!(
            l.version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{backend}: version {:?}",
            l.version
        );
        let acquired = s.ops.get("acquire").and_then(|m| m.get("ok")).copied();
        assert!(acquired.unwrap_or(0) > 10, "{backend}: {:?}", s.ops);
        // The run page names the library with its version.
        let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(page.contains(&l.version), "{backend}");
    }
}

#[test]
fn kazoo_reports_the_lost_session_after_another_client_was_granted() {
    if !libraries_installed(&["kazoo"]) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok("scenarios/libraries/kazoo-partition.toml", out.path(), &[]);
    let (dir, s) = summary(out.path(), "kazoo-partition", "kazoo");
    assert_eq!(s.verdict, Verdict::Invalid);
    let events = read_jsonl(&dir.join("history.jsonl")).unwrap().events;
    let lost = events
        .iter()
        .find(|e| e.f == F::Lost)
        .expect("the driver reported the LOST session");
    let other_grant = events.iter().find(|e| {
        e.f == F::Acquire
            && e.kind == OpType::Ok
            && e.process != lost.process
            && matches!(e.process, Process::Client(_))
    });
    let other_grant = other_grant.expect("another client was granted the lock");
    assert!(
        other_grant.time_ns < lost.time_ns,
        "the grant ({} ns) came before the lost event ({} ns)",
        other_grant.time_ns,
        lost.time_ns
    );
}

#[test]
fn redis_libraries_paused_past_their_lease_lose_exclusion() {
    if !libraries_installed(&["redis-py", "python-redis-lock-renewal"]) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok("scenarios/libraries/pause-past-lease.toml", out.path(), &[]);
    for backend in ["redis-py", "python-redis-lock-renewal"] {
        let (_, s) = summary(out.path(), "libraries-pause-past-lease", backend);
        assert_eq!(s.verdict, Verdict::Invalid, "{backend}");
        assert!(s.violations > 0, "{backend}");
    }
}

#[test]
fn pottery_redlock_loses_exclusion_when_masters_clocks_jump() {
    if !libraries_installed(&["pottery-redlock"]) {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok(
        "scenarios/libraries/pottery-clock-jump.toml",
        out.path(),
        &[],
    );
    let (_, s) = summary(out.path(), "pottery-clock-jump", "pottery-redlock");
    assert_eq!(s.verdict, Verdict::Invalid);
}
