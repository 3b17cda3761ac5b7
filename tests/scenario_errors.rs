//! Every kind of mistake in a scenario file gets a message with file, line,
//! what was wrong and a hint, and `lockbench run` exits 2 without starting
//! anything.

mod common;

use std::path::Path;

use lockbench::scenario::Scenario;

fn error(text: &str) -> String {
    Scenario::parse(Path::new("bad.toml"), text)
        .expect_err("this scenario must be rejected")
        .to_string()
}

#[test]
fn an_unknown_field_names_its_line_and_the_field_meant() {
    let e = error("backends = [\"inproc\"]\nclinets = 4\n");
    assert!(
        e.starts_with("bad.toml:2:1: unknown field `clinets`"),
        "{e}"
    );
    assert!(e.contains("hint: did you mean `clients`?"), "{e}");
}

#[test]
fn an_unknown_backend_lists_the_known_ones() {
    let e = error("backends = [\"inproc\", \"zookeepr\"]\n");
    assert!(
        e.starts_with("bad.toml:1:23: unknown backend \"zookeepr\""),
        "{e}"
    );
    assert!(e.contains("known backends: inproc, redis"), "{e}");
}

#[test]
fn a_near_miss_backend_gets_a_suggestion() {
    let e = error("backends = [\"Redis\"]\n");
    assert!(e.contains("did you mean \"redis\"?"), "{e}");
}

#[test]
fn a_count_out_of_range_gives_the_range() {
    let e = error("backends = [\"inproc\"]\nclients = 0\n");
    assert!(
        e.starts_with("bad.toml:2:11: clients = 0 is out of range"),
        "{e}"
    );
    assert!(e.contains("between 1 and 100000"), "{e}");
    let e = error("backends = [\"inproc\"]\nclients = 4\nhosts = 5\n");
    assert!(
        e.starts_with("bad.toml:3:9: hosts = 5 is out of range"),
        "{e}"
    );
}

#[test]
fn a_duration_without_unit_is_explained() {
    let e = error("backends = [\"inproc\"]\nlease = \"30\"\n");
    assert!(e.starts_with("bad.toml:2:9:"), "{e}");
    assert!(e.contains("has no unit"), "{e}");
    let e = error("backends = [\"inproc\"]\nlease = 30\n");
    assert!(e.starts_with("bad.toml:2:9:"), "{e}");
    assert!(e.contains("duration string"), "{e}");
}

#[test]
fn a_duration_out_of_range_gives_the_range() {
    let e = error("backends = [\"inproc\"]\nduration = \"1ms\"\n");
    assert!(
        e.starts_with("bad.toml:2:12: duration = 1ms is out of range"),
        "{e}"
    );
}

#[test]
fn a_bad_distribution_says_what_it_needs() {
    let e = error("backends = [\"inproc\"]\nhold = { min = \"5ms\" }\n");
    assert!(e.starts_with("bad.toml:2:8:"), "{e}");
    assert!(e.contains("needs exactly min and max"), "{e}");
    let e = error("backends = [\"inproc\"]\nhold = { min = \"5ms\", max = \"1ms\" }\n");
    assert!(e.contains("min (5ms) is larger than max (1ms)"), "{e}");
}

#[test]
fn an_unknown_expectation_lists_the_two() {
    let e = error("backends = [\"inproc\"]\nexpect = \"ok\"\n");
    assert!(e.starts_with("bad.toml:2:10:"), "{e}");
    assert!(
        e.contains("expect = \"valid\" or expect = \"invalid\""),
        "{e}"
    );
}

#[test]
fn missing_or_empty_backends_are_errors() {
    let e = error("clients = 3\n");
    assert!(e.contains("missing field `backends`"), "{e}");
    let e = error("backends = []\n");
    assert!(e.starts_with("bad.toml:1:12: `backends` is empty"), "{e}");
    let e = error("backends = [\"inproc\", \"inproc\"]\n");
    assert!(e.contains("listed twice"), "{e}");
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let e = error("backends = [\"inproc\"\nclients = 3\n");
    assert!(e.starts_with("bad.toml:"), "{e}");
    let line: usize = e
        .split(':')
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(line >= 1, "{e}");
}

#[test]
fn endpoints_must_be_host_and_port_of_a_server_backend() {
    let e = error("backends = [\"redis\"]\n[endpoints]\nredis = \"localhost\"\n");
    assert!(
        e.starts_with("bad.toml:3:9: endpoint \"localhost\" is not host:port"),
        "{e}"
    );
    let e = error("backends = [\"inproc\"]\n[endpoints]\ninproc = \"127.0.0.1:1\"\n");
    assert!(e.contains("runs in-process and has no server"), "{e}");
}

#[test]
fn bad_keys_are_explained() {
    let e = error("backends = [\"inproc\"]\nkeys = [\"a\", \"a\"]\n");
    assert!(e.contains("non-empty list of distinct names"), "{e}");
    let e = error("backends = [\"inproc\"]\nkeys = 0\n");
    assert!(e.contains("keys = 0 is out of range"), "{e}");
}

#[test]
fn the_cli_exits_2_on_a_bad_scenario_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::scenario(
        dir.path(),
        "good",
        "backends = [\"inproc\"]\nduration = \"50ms\"\n",
    );
    let bad = common::scenario(dir.path(), "bad", "backends = [\"inproc\"]\nclients = -1\n");
    let out = dir.path().join("out");
    // The good one comes first: nothing of it may run, since all are
    // validated before anything starts.
    let o = common::lockbench()
        .args(["run", "--out"])
        .arg(&out)
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad.toml:2:11: clients = -1 is out of range"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing may run when one scenario is bad");
}

#[test]
fn the_cli_exits_2_on_a_missing_file_and_a_bad_flag() {
    let o = common::lockbench()
        .args(["run", "no/such/scenario.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/scenario.toml: cannot read"));
    let o = common::lockbench()
        .args(["run", "--sed", "3", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = common::lockbench()
        .args(["run", "--backends", "nope", "scenarios/quick.toml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown backend \"nope\""));
}

/// Every scenario the project ships loads, including those no test runs
/// (scenarios/soak.toml takes an hour).
#[test]
fn every_shipped_scenario_loads() {
    fn walk(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
        &mut found,
    );
    assert!(found.iter().any(|p| p.ends_with("soak.toml")));
    for path in found {
        if let Err(e) = Scenario::load(&path) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn a_fault_its_topology_cannot_carry_is_refused_in_a_timeline_and_in_a_random_schedule() {
    // Single servers have no peers to be cut from.
    let e = error(
        "backends = [\"redis\"]\n[[nemesis]]\nat = \"1s\"\nfault = \"isolate-server\"\n\
         targets = [\"server-1\"]\nduration = \"1s\"\n",
    );
    assert!(e.starts_with("bad.toml:4:"), "{e}");
    assert!(
        e.contains("isolate-server cuts the links between the members"),
        "{e}"
    );
    assert!(e.contains("topology = \"replicated\""), "{e}");
    let e = error(
        "backends = [\"redis\"]\n[random_nemesis]\nfaults = [\"partition\", \"isolate-server\"]\n\
         targets = [\"minority\"]\n",
    );
    assert!(e.starts_with("bad.toml:3:"), "{e}");
    assert!(
        e.contains("isolate-server cuts the links between the members"),
        "{e}"
    );
    // A bridge needs a ZooKeeper ensemble, in a random schedule too.
    let e = error(
        "backends = [\"etcd\"]\ntopology = \"replicated\"\n[random_nemesis]\nfaults = [\"bridge\"]\n\
         targets = [\"minority\"]\n",
    );
    assert!(
        e.contains("bridge cuts single links between members"),
        "{e}"
    );
    assert!(e.contains("not for etcd"), "{e}");
}
