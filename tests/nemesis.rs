//! The nemesis timeline on real servers: the known-result scenarios reach
//! their verdicts, faults land in the history and summary.json, and faults
//! that cannot apply are refused before anything starts.

mod common;

use std::path::Path;

use lockbench::Verdict;
use lockbench::history::OpType;
use lockbench::scenario::Scenario;
use lockbench::summary::Summary;

/// Runs a shipped scenario (asserting exit 0) and reads its run of
/// `backend`: the temp dir (keep it alive), the run dir and the summary.
fn run_shipped(
    scenario: &str,
    name: &str,
    backend: &str,
    flags: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, Summary) {
    let out = tempfile::tempdir().unwrap();
    common::run_shipped_ok(scenario, out.path(), flags);
    let dir = common::run_dir(out.path(), name, backend);
    let s = Summary::read(&dir.join("summary.json")).unwrap();
    (out, dir, s)
}

fn nemesis_events(run_dir: &Path) -> Vec<String> {
    lockbench::history::read_jsonl(&lockbench::history::history_in(run_dir))
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
    let (_out, dir, s) = run_shipped(
        "scenarios/faults/server-kill.toml",
        "server-kill",
        "redis",
        &[],
    );
    assert_eq!(s.verdict, Verdict::Invalid);
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.faults[0].fault, "kill-server");
    assert_eq!(s.faults[0].targets, vec!["server-1"]);
    // The restart is an invoke when it begins and an info when it is done.
    assert_eq!(
        nemesis_events(&dir),
        vec!["kill-server", "restart-server", "restart-server"]
    );
    let kinds: Vec<OpType> = lockbench::history::read_jsonl(&lockbench::history::history_in(&dir))
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.process == lockbench::history::Process::Nemesis)
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![OpType::Info, OpType::Invoke, OpType::Info]);
    // The second holder was granted the lock after the restart began.
    let w = &s.witnesses[0];
    assert!(w.second.start_ns > s.faults[0].start_ns, "{w:?}");
    // The server came back on the same port: the clients, which know only
    // that address, acquire again after the restart.
    let back = s.faults[0].end_ns.unwrap();
    let after = events(&dir)
        .iter()
        .filter(|e| {
            e.f == lockbench::history::F::Acquire
                && e.kind == lockbench::history::OpType::Ok
                && e.time_ns > back
        })
        .count();
    assert!(after > 0, "no acquisition after the restart");
    // The restarted server forgot a lock whose lease was still running.
    assert_eq!(
        s.violation_classes.get("lock-lost").copied(),
        Some(s.violations),
        "{:?}",
        s.violation_classes
    );
}

#[test]
fn a_fast_server_clock_ends_leases_early() {
    if !common::server_available("redis-server") {
        return;
    }
    let (_out, _dir, s) = run_shipped(
        "scenarios/faults/clock-jump.toml",
        "clock-jump",
        "redis",
        &[],
    );
    assert_eq!(s.verdict, Verdict::Invalid);
    assert_eq!(s.faults[0].fault, "clock-drift");
    assert_eq!(s.faults[0].error, None);
    // Every overlap began inside the first holder's lease by real time,
    // and inside the drift.
    assert!(s.violation_classes.get("lock-lost").copied().unwrap_or(0) > 0);
    for w in &s.witnesses {
        assert!(w.second.start_ns >= s.faults[0].start_ns, "{w:?}");
    }
}

#[test]
fn a_partitioned_host_times_out_and_exclusion_holds() {
    if !common::server_available("redis-server") {
        return;
    }
    let (_out, dir, s) = run_shipped(
        "scenarios/faults/partition-host.toml",
        "partition-host",
        "redis",
        &[],
    );
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
    let after = lockbench::history::read_jsonl(&lockbench::history::history_in(&dir))
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

fn events(run_dir: &Path) -> Vec<lockbench::history::Event> {
    lockbench::history::read_jsonl(&lockbench::history::history_in(run_dir))
        .unwrap()
        .events
}

#[test]
fn a_paused_holder_resumes_believing_it_holds_and_writes() {
    use lockbench::history::{F, OpType, Process};
    if !common::server_available("redis-server") {
        return;
    }
    let (_out, dir, s) = run_shipped(
        "scenarios/faults/pause-past-lease.toml",
        "pause-past-lease",
        "redis",
        &[],
    );
    assert_eq!(s.verdict, Verdict::Invalid);
    assert_eq!(s.faults[0].fault, "pause-client");
    let paused: u64 = s.faults[0].targets[0]
        .strip_prefix('c')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("target {:?}", s.faults[0].targets));
    let (start, end) = (s.faults[0].start_ns, s.faults[0].end_ns.unwrap());
    let h = events(&dir);
    let mine = |e: &&lockbench::history::Event| e.process == Process::Client(paused);
    // Frozen: none of its operations completed during the pause.
    assert!(
        !h.iter()
            .filter(mine)
            .any(|e| e.kind != OpType::Invoke && e.time_ns > start + 50_000_000 && e.time_ns < end),
        "the paused client acted during its pause"
    );
    // It woke up believing it held the lock: it wrote with its old fence
    // and the resource, which had seen the new holders' larger fences,
    // rejected it.
    let write = h
        .iter()
        .filter(mine)
        .find(|e| e.f == F::Write && e.kind == OpType::Ok && e.time_ns >= end)
        .expect("a write after the pause");
    assert_eq!(
        write.value.as_ref().and_then(|v| v.get("accepted")),
        Some(&serde_json::Value::Bool(false)),
        "{write:?}"
    );
    // Other clients held the lock during the pause, and the witnesses say
    // the paused holder's lease had run out.
    assert!(
        s.witnesses
            .iter()
            .all(|w| w.first.process == Process::Client(paused))
    );
    assert!(
        s.violation_classes
            .get("lease-expired")
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        s.violation_classes
    );
}

#[test]
fn a_crashed_holder_is_replaced_and_the_lock_comes_free() {
    use lockbench::history::{F, Process};
    if !common::server_available("redis-server") {
        return;
    }
    let (_out, dir, s) = run_shipped(
        "scenarios/faults/holder-crash.toml",
        "holder-crash",
        "redis",
        &[],
    );
    assert_eq!(s.verdict, Verdict::Valid);
    let h = events(&dir);
    let crashed: Vec<u64> = h
        .iter()
        .filter(|e| e.f == F::Crash)
        .filter_map(|e| match e.process {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        })
        .collect();
    assert_eq!(crashed.len(), 2, "two crash faults, two crash events");
    // Each crashed client had the lock when it died, and its successors
    // (new process ids) acquired later.
    let successors: Vec<u64> = h
        .iter()
        .filter_map(|e| match e.process {
            Process::Client(p) if p >= u64::from(s.clients) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!successors.is_empty(), "no successor client acted");
    // The lock came free after about the lease (2 s), not never.
    let rec = &s.recovery.faults;
    assert_eq!(rec.len(), 2, "{rec:?}");
    for r in rec {
        let ms = r.next_acquire_ms.expect("an acquire after the crash");
        assert!(ms < 4_000.0, "{ms} ms to recover");
    }
}

#[test]
fn a_random_schedule_repeats_with_its_seed() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = common::scenario(
        tmp.path(),
        "random",
        "backends = [\"redis\"]\nduration = \"6s\"\nclients = 4\nhosts = 3\nlease = \"1s\"\n\
         hold = \"2ms\"\nthink = \"2ms\"\nop_timeout = \"300ms\"\nacquire_timeout = \"1s\"\n\
         [random_nemesis]\nstart = \"500ms\"\ninterval = \"300ms\"\n\
         duration = { min = \"200ms\", max = \"700ms\" }\n\
         faults = [\"partition\", \"latency\", \"pause-server\"]\n\
         targets = [\"one-host\", \"minority\"]\ndelay = \"20ms\"\n",
    );
    let mut runs = Vec::new();
    for n in 0..2 {
        let out = tmp.path().join(format!("out{n}"));
        common::run_shipped_ok(path.to_str().unwrap(), &out, &["--seed", "5"]);
        let dir = common::run_dir(&out, "random", "redis");
        runs.push(Summary::read(&dir.join("summary.json")).unwrap().faults);
    }
    let (a, b) = (&runs[0], &runs[1]);
    assert!(a.len() >= 4, "{a:?}");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((&x.fault, &x.targets), (&y.fault, &y.targets));
        // Same start within scheduling jitter.
        assert!(
            x.start_ns.abs_diff(y.start_ns) < 200_000_000,
            "{x:?} vs {y:?}"
        );
    }
}

#[test]
fn client_and_random_faults_are_validated() {
    let base = "backends = [\"redis\"]\nhosts = 2\nclients = 4\nduration = \"5s\"\n";
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"1s\"\nfault = \"pause-client\"\ntargets = [\"server-1\"]\nduration = \"1s\"\n"
    ));
    assert!(e.contains("is not a host or \"holder\""), "{e}");
    let e = error(&format!(
        "{base}[random_nemesis]\nfaults = [\"partition\", \"meteor\"]\n"
    ));
    assert!(e.contains("unknown fault \"meteor\""), "{e}");
    let e = error(&format!(
        "{base}[random_nemesis]\nfaults = [\"partition\"]\ntargets = [\"everyone\"]\n"
    ));
    assert!(e.contains("not a random target"), "{e}");
    let e = error(
        "backends = [\"inproc\"]\nduration = \"5s\"\n[random_nemesis]\nfaults = [\"latency\"]\ndelay = \"5ms\"\n",
    );
    assert!(e.contains("runs in-process"), "{e}");
    let e = error(&format!(
        "{base}[[nemesis]]\nat = \"1s\"\nfault = \"clock-drift\"\nrate = -2.0\nduration = \"1s\"\n"
    ));
    assert!(e.contains("rate must be above 0"), "{e}");
    // A client crash needs no link: inproc takes it.
    Scenario::parse(
        Path::new("f.toml"),
        "backends = [\"inproc\"]\nduration = \"5s\"\n[[nemesis]]\nat = \"1s\"\nfault = \"crash-client\"\ntargets = [\"holder\"]\nduration = \"1s\"\n",
    )
    .unwrap();
}

#[test]
fn pausing_postgres_stops_its_backends_too() {
    use lockbench::history::{F, OpType};
    if !common::server_available("postgres") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = common::scenario(
        tmp.path(),
        "pg-pause",
        "backends = [\"postgres-advisory\"]\nduration = \"5s\"\nclients = 4\nlease = \"2s\"\n\
         hold = \"5ms\"\nacquire_timeout = \"1s\"\nop_timeout = \"500ms\"\n\
         [[nemesis]]\nat = \"1500ms\"\nfault = \"pause-server\"\ntargets = [\"server-1\"]\nduration = \"2s\"\n",
    );
    let out = tmp.path().join("out");
    common::run_shipped_ok(path.to_str().unwrap(), &out, &[]);
    let dir = common::run_dir(&out, "pg-pause", "postgres-advisory");
    let s = Summary::read(&dir.join("summary.json")).unwrap();
    let (start, end) = (s.faults[0].start_ns, s.faults[0].end_ns.unwrap());
    let oks: Vec<u64> = events(&dir)
        .iter()
        .filter(|e| e.f == F::Acquire && e.kind == OpType::Ok)
        .map(|e| e.time_ns)
        .collect();
    // Backends (which left the postmaster's process group) are stopped
    // too: no lock is granted while the server is paused, some before and
    // after.
    let during = oks
        .iter()
        .filter(|&&t| t > start + 100_000_000 && t < end)
        .count();
    assert_eq!(during, 0, "granted while paused");
    assert!(oks.iter().any(|&t| t < start) && oks.iter().any(|&t| t > end));
}
