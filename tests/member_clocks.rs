//! Clock faults on one member of a replicated topology: the members run
//! with lockbench's clock library (the sentinels keep real time), a fault
//! targets one member by role, and the verdict is what that member's clock
//! does to the recipe. ZooKeeper and etcd members cannot be skewed: the
//! run says so instead of pretending. (Redlock's masters: the shipped
//! scenario scenarios/topologies/redlock-clock-jump.toml.)

mod common;

use lockbench::summary::Summary;

/// Runs `text` as a scenario named `name`; exits 0 (the expected verdict
/// was reached) and returns the backend's summary.
fn run(name: &str, backend: &str, text: &str) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let path = common::scenario(dir.path(), name, text);
    let out = dir.path().join("out");
    let stdout = common::run_shipped_ok(path.to_str().unwrap(), &out, &[]);
    println!("{stdout}");
    Summary::read(&common::run_dir(&out, name, backend).join("summary.json")).unwrap()
}

fn available(backend: &str) -> bool {
    let kind = lockbench::backend::server_kind(backend).unwrap();
    kind.locate().is_ok() || common::backends_required()
}

fn assert_applied(s: &Summary) {
    assert!(
        !s.notes.iter().any(|n| n.contains("did not apply")),
        "{:?}",
        s.notes
    );
}

/// Expected invalid (lock-lost): the primary's keys expire by its own wall
/// clock (Redis docs, "EXPIRE"), ten times too fast, and the primary
/// replicates the expiry as a DEL, so another client is granted the lock
/// while its holder, by real time, still has most of its lease. Sentinel
/// sees nothing wrong: the primary answers.
#[test]
fn a_sentinel_primary_whose_clock_runs_fast_ends_leases_early() {
    if !available("redis") {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let s = run(
        "primary-clock",
        "redis",
        r#"
name = "primary-clock"
backends = ["redis"]
topology = "replicated"
expect = "invalid"
seed = 61
duration = "8s"
clients = 4
hosts = 1
keys = 1
lease = "1s"
acquire_timeout = "2s"
op_timeout = "500ms"
hold = "300ms"
think = "10ms"

[[nemesis]]
at = "2s"
fault = "clock-drift"
targets = ["primary"]
rate = 10.0
duration = "4s"
"#,
    );
    assert_applied(&s);
    assert_eq!(s.faults[0].targets, vec!["server-1 (primary)"]);
    assert!(s.violations > 0);
    assert!(
        s.violation_classes.contains_key("lock-lost"),
        "{:?}",
        s.violation_classes
    );
}

/// ZooKeeper's members cannot be skewed by lockbench (summary notes say
/// why); the run goes ahead without the fault.
#[test]
fn a_clock_fault_on_an_ensemble_member_is_reported_as_not_applied() {
    if !available("zookeeper") {
        eprintln!("skipped: ZooKeeper is not installed");
        return;
    }
    let s = run(
        "ensemble-clock",
        "zookeeper",
        r#"
name = "ensemble-clock"
backends = ["zookeeper"]
topology = "replicated"
expect = "valid"
seed = 63
duration = "3s"
clients = 2
keys = 1
hold = "50ms"

[[nemesis]]
at = "1s"
fault = "clock-drift"
targets = ["leader"]
rate = 10.0
duration = "1s"
"#,
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("clock faults did not apply to zookeeper")),
        "{:?}",
        s.notes
    );
}
