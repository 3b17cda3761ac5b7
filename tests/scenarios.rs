//! Every shipped scenario file is a test (issue 34): each file under
//! `scenarios/` runs through the `lockbench` binary and must end with exit
//! 0, which means every backend reached the verdict the file expects (its
//! comments say why). A changed hold rule, recipe or library that moves a
//! verdict fails here, with the scenario's name and the backend's; a new
//! file is picked up without editing this test.
//!
//! A file is run here unless another test already runs all of its
//! backends and checks more of it: `ELSEWHERE` names that test, and this
//! test makes sure the named file still runs it (its path appears there as
//! a string, and no `--backends` narrows it). Long files run in a short
//! form (`SHORT`); the scheduled workflow job runs them whole.

mod common;

use std::path::{Path, PathBuf};

/// Files another test runs whole (every backend), with more assertions:
/// the file that runs them.
const ELSEWHERE: &[(&str, &str)] = &[
    ("faults/server-kill.toml", "tests/nemesis.rs"),
    ("faults/clock-jump.toml", "tests/nemesis.rs"),
    ("faults/pause-past-lease.toml", "tests/nemesis.rs"),
    ("faults/holder-crash.toml", "tests/nemesis.rs"),
    ("faults/partition-host.toml", "tests/nemesis.rs"),
    ("broken-recipe.toml", "tests/run_cli.rs"),
    ("libraries.toml", "tests/libraries.rs"),
    ("libraries/curator-206.toml", "tests/libraries.rs"),
    ("libraries/etcd-mutex-pause.toml", "tests/libraries.rs"),
    (
        "libraries/hazelcast-fencedlock-pause.toml",
        "tests/libraries.rs",
    ),
    ("libraries/kazoo-partition.toml", "tests/libraries.rs"),
    ("libraries/jvm-lease-pause.toml", "tests/libraries.rs"),
    ("libraries/pause-past-lease.toml", "tests/libraries.rs"),
    ("libraries/pottery-clock-jump.toml", "tests/libraries.rs"),
    (
        "libraries/redisson-watchdog-pause.toml",
        "tests/libraries.rs",
    ),
    ("libraries/redlock-clock-jump.toml", "tests/libraries.rs"),
    (
        "topologies/etcd-cluster-partition.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/etcd-paused-holder.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/redis-sentinel-failover.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/redis-cluster-failover.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/redlock-clock-jump.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/redlock-member-loss.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/redlock-restart-without-persistence.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/zookeeper-bridge.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/zookeeper-ensemble-partition.toml",
        "tests/topology_scenarios.rs",
    ),
    (
        "topologies/zookeeper-paused-holder.toml",
        "tests/topology_scenarios.rs",
    ),
];

/// Files too long for every `cargo test`, and the flags of their short
/// form. Their verdicts do not depend on how long they run: random faults,
/// each explained in the file, from its first few seconds on.
const SHORT: &[(&str, &[&str])] = &[
    // An hour of random faults on Redis: its first 8 s.
    ("soak.toml", &["--duration", "8s"]),
    // 60 s of random faults on nine backends: their first 5 s.
    ("faults/partition-random.toml", &["--duration", "5s"]),
    // The whole matrix is 26 rows of about 45 s each: one row here.
    ("properties.toml", &["--backends", "inproc"]),
    // The whole atlas is 25 backends under 8 faults, repeated: the quick
    // atlas here (a lease lock, a session lock, a lock tied to a
    // connection; one run a cell), as the workflow runs it.
    (
        "atlas.toml",
        &["--backends", "redis,zookeeper,postgres-advisory"],
    ),
];

/// Every `.toml` under `scenarios/`, as paths relative to it.
fn shipped() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let rel = path.strip_prefix(&root).unwrap();
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found.sort();
    found
}

/// The servers a file's backends need are installed (else skipped, or a
/// failure when backends are required).
fn installed(file: &str) -> bool {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let scenario = lockbench::scenario::Scenario::load(&path).unwrap();
    let registry = scenario.registry();
    for b in &scenario.backends {
        let info = registry.get(b).unwrap();
        if let Some(kind) = info.server
            && !common::kind_available(kind)
        {
            return false;
        }
        if let Some((path, hint)) = info.missing() {
            assert!(
                !common::backends_required(),
                "{file}: {b}: {path} is missing; {hint}"
            );
            eprintln!("skipped {file}: {b}: {path} is missing");
            return false;
        }
    }
    true
}

#[test]
fn every_claim_of_another_test_is_true() {
    let files = shipped();
    for (file, test) in ELSEWHERE {
        assert!(
            files.iter().any(|f| f == file),
            "{file} is claimed by {test} but is not shipped"
        );
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(test))
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        let quoted = format!("\"scenarios/{file}\"");
        let at = text
            .find(&quoted)
            .unwrap_or_else(|| panic!("{test} no longer runs {file}: {quoted} is not in it"));
        // The call that runs it: up to its closing `);`, with no backends
        // narrowed.
        let call = &text[at..];
        let call = &call[..call.find(");").unwrap_or(call.len())];
        assert!(
            !call.contains("--backends"),
            "{test} runs {file} with --backends: not every backend; run it here instead"
        );
    }
    for (file, _) in SHORT {
        assert!(files.iter().any(|f| f == file), "{file} is not shipped");
    }
}

/// Runs the shipped files `pick` selects (relative to `scenarios/`), one
/// after another, each through the binary, asserting exit 0.
fn run_files(pick: impl Fn(&str) -> bool) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut ran = Vec::new();
    for file in shipped().into_iter().filter(|f| pick(f)) {
        if ELSEWHERE.iter().any(|(f, _)| *f == file) {
            continue;
        }
        if !installed(&file) {
            continue;
        }
        let flags: Vec<&str> = SHORT
            .iter()
            .find(|(f, _)| *f == file)
            .map(|(_, flags)| flags.to_vec())
            .unwrap_or_default();
        let out = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let o = common::lockbench()
            .arg("run")
            .args(&flags)
            .arg("--out")
            .arg(out.path())
            .arg(root.join(&file))
            .output()
            .expect("run lockbench");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(0),
            "scenarios/{file} {}: not what it expects\n{stdout}\n{stderr}",
            flags.join(" ")
        );
        eprintln!(
            "scenarios/{file} {}: as expected in {:.0} s",
            flags.join(" "),
            started.elapsed().as_secs_f64()
        );
        ran.push(file);
    }
    eprintln!("{} files run here", ran.len());
}

/// The files are run in two halves, by two tests that run at once (the
/// runs mostly wait on faults and timers; two share the two cores): the
/// atlas and the property matrix, the two longest (about 160 s and 55 s
/// here), in one; everything else (the faults, quick) in the other.
fn in_the_long_half(file: &str) -> bool {
    matches!(file, "atlas.toml" | "properties.toml")
}

#[test]
fn the_atlas_and_the_property_matrix_reach_the_verdicts_they_expect() {
    run_files(in_the_long_half);
}

#[test]
fn every_other_shipped_scenario_reaches_the_verdicts_it_expects() {
    run_files(|f| !in_the_long_half(f));
}
