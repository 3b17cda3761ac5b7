//! The nemesis timeline on real servers: the known-result scenarios reach
//! their verdicts, faults land in the history and summary.json, and faults
//! that cannot apply are refused before anything starts.

mod common;

use std::path::Path;

use lockbench::Verdict;
use lockbench::scenario::Scenario;
use lockbench::summary::Summary;

fn nemesis_events(run_dir: &Path) -> Vec<String> {
    lockbench::history::read_jsonl(&run_dir.join("history.jsonl"))
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.process == lockbench::history::Process::Nemesis)
        .map(|e| e.f.as_str().to_string())
        .collect()
}

#[test]
fn killing_redis_without_persistence_breaks_exclusion() {
    if !common::server_available("redis-server") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok("scenarios/faults/server-kill.toml", out.path(), &[]);
    let dir = common::run_dir(out.path(), "server-kill", "redis");
    let s = Summary::read(&dir.join("summary.json")).unwrap();
    assert_eq!(s.verdict, Verdict::Invalid);
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.faults[0].fault, "kill-server");
    assert_eq!(s.faults[0].targets, vec!["server-1"]);
    assert_eq!(nemesis_events(&dir), vec!["kill-server", "restart-server"]);
    // The second holder was granted the lock after the restart began.
    let w = &s.witnesses[0];
    assert!(w.second.start_ns > s.faults[0].start_ns, "{w:?}");
}

#[test]
fn a_partitioned_host_times_out_and_exclusion_holds() {
    if !common::server_available("redis-server") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok("scenarios/faults/partition-host.toml", out.path(), &[]);
    let dir = common::run_dir(out.path(), "partition-host", "redis");
    let s = Summary::read(&dir.join("summary.json")).unwrap();
    assert_eq!(s.verdict, Verdict::Valid);
    assert_eq!(s.faults[0].fault, "partition");
    assert_eq!(s.faults[0].targets, vec!["h1"]);
    assert_eq!(
        nemesis_events(&dir),
        vec!["start-partition", "stop-partition"]
    );
    // h1's clients (even ids) saw timeouts: `info`, never `fail`.
    let infos = s
        .ops
        .get("acquire")
        .and_then(|o| o.get("info"))
        .copied()
        .unwrap_or(0)
        + s.ops
            .get("release")
            .and_then(|o| o.get("info"))
            .copied()
            .unwrap_or(0);
    assert!(infos > 0, "{:?}", s.ops);
    // After the heal (and at most a lease), clients acquire again.
    let end = s.faults[0].end_ns.unwrap();
    let after = lockbench::history::read_jsonl(&dir.join("history.jsonl"))
        .unwrap()
        .events
        .iter()
        .filter(|e| {
            e.f == lockbench::history::F::Acquire && e.kind == lockbench::history::OpType::Ok
        })
        .filter(|e| e.time_ns > end)
        .count();
    assert!(after > 10, "only {after} acquisitions after the heal");
}

fn error(text: &str) -> String {
    Scenario::parse(Path::new("f.toml"), text)
        .unwrap_err()
        .to_string()
}

#[test]
fn faults_that_cannot_apply_are_refused_at_validation() {
    let base = "backends = [\"redis\"]\nhosts = 2\nclients = 4\nduration = \"5s\"\n";
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"1s\"\nfault = \"partition\"\ntargets = [\"h3\"]\nduration = \"1s\"\n"
    ));
    assert!(e.contains("target \"h3\" is not a host"), "{e}");
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"1s\"\nfault = \"split-brain\"\nduration = \"1s\"\n"
    ));
    assert!(
        e.starts_with("f.toml:7:9: unknown fault \"split-brain\""),
        "{e}"
    );
    assert!(e.contains("kill-server"), "{e}");
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"9s\"\nfault = \"partition\"\nduration = \"1s\"\n"
    ));
    assert!(e.contains("not before the end of the run"), "{e}");
    let e = error(&format!("{base}[[endpoints]]\n"));
    assert!(!e.is_empty());
    // Killing a server the user runs is impossible.
    let e = error(&format!(
        "{base}[endpoints]\nredis = \"127.0.0.1:6379\"\n[[nemesis]]\nat = \"1s\"\nfault = \"kill-server\"\nduration = \"1s\"\n"
    ));
    assert!(e.contains("external endpoints"), "{e}");
    // inproc has neither servers nor links.
    let e = error(
        "backends = [\"inproc\"]\nduration = \"5s\"\n[[nemesis]]\nat = \"1s\"\nfault = \"partition\"\nduration = \"1s\"\n",
    );
    assert!(e.contains("runs in-process"), "{e}");
    let e = error(
        "backends = [\"inproc\"]\nduration = \"5s\"\n[[nemesis]]\nat = \"1s\"\nfault = \"pause-server\"\nduration = \"1s\"\n",
    );
    assert!(e.contains("runs in-process and has no server"), "{e}");
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"1s\"\nfault = \"latency\"\nduration = \"1s\"\n"
    ));
    assert!(e.contains("latency needs a delay"), "{e}");
}
