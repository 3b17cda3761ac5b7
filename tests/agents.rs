//! Agents as local processes (`lockbench run --agents N`) against one
//! real redis-server that lockbench starts: the merged verdict of a correct
//! recipe is valid, a broken recipe's overlaps across agents are definite,
//! and a clock that is off is either measured and removed (with the
//! reference), or, without one, its overlaps are only possible while the
//! declared bound covers it, and definite once it does not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use lockbench::summary::Summary;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `lockbench run SCENARIO --backends B --duration 2s --agents N FLAGS`.
fn run_agents(out: &Path, scenario: &str, backend: &str, n: u32, flags: &[&str]) -> Output {
    common::lockbench()
        .arg("run")
        .arg(root().join(scenario))
        .args(["--backends", backend, "--duration", "2s"])
        .args(["--agents", &n.to_string()])
        .args(flags)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// The merged run's directory and summary.
fn merged(out: &Path, scenario: &str, backend: &str) -> (PathBuf, Summary) {
    let dir = common::run_dir(out, scenario, backend);
    let s = Summary::read(&dir.join("summary.json")).unwrap();
    (dir, s)
}

#[test]
fn four_agents_against_one_redis_give_one_valid_merged_run_with_each_agent_s_clock() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = run_agents(tmp.path(), "scenarios/quick.toml", "redis", 4, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (dir, s) = merged(tmp.path(), "quick", "redis");
    assert_eq!(s.verdict.as_str(), "valid", "{:?}", s.verdict_reason);
    let agents = s.agents.as_ref().expect("a merged run says its agents");
    assert_eq!(agents.clocks.len(), 4);
    assert_eq!(agents.definite, 0);
    assert_eq!(s.clients, 16);
    // The servers are the ones this process started for the agents.
    assert!(!s.servers.is_empty());
    assert!(
        s.servers.iter().all(|v| v.started_by_lockbench),
        "{:?}",
        s.servers
    );
    for (i, c) in agents.clocks.iter().enumerate() {
        assert_eq!(c.index as usize, i + 1);
        // Measured over loopback: a bound above zero, far below a
        // millisecond's worth of slack for scheduling noise... and the
        // offset within it (one machine, one clock).
        assert!(c.bound_ns() > 0 && c.bound_ns() < 20_000_000, "{c:?}");
        assert!(
            c.start.offset_ns.unsigned_abs() <= c.start.bound_ns,
            "{c:?}"
        );
        assert!(c.end.is_some(), "{c:?}");
        assert!(text(&o).contains(&format!("agent {}/4: clock offset", i + 1)));
    }
    // Each agent ran only its own process ids, and the merged history
    // holds every agent's client events.
    let mut client_events = 0;
    let mut agent_dirs = Vec::new();
    lockbench::run::merge::find_agent_dirs(&dir.join("agents"), &mut agent_dirs);
    assert_eq!(agent_dirs.len(), 4);
    for d in &agent_dirs {
        let clock = lockbench::history::AgentClock::read(d).unwrap();
        let h = lockbench::history::read_jsonl(&lockbench::history::history_in(d)).unwrap();
        for e in &h.events {
            if let lockbench::history::Process::Client(id) = e.process {
                assert_eq!(id % 4, u64::from(clock.index - 1), "{}", d.display());
                client_events += 1;
            }
        }
    }
    let all = lockbench::history::read_jsonl(&lockbench::history::history_in(&dir)).unwrap();
    assert_eq!(all.events.len(), client_events);
    assert!(
        all.events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns),
        "the merged history is in time order"
    );
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        page.contains("agent 2/4: clock offset"),
        "the report shows the clocks"
    );
    assert!(
        page.contains("clock uncertainty"),
        "the report shows the overlaps"
    );

    // `lockbench merge` of the same agents gives the same verdict; with one
    // agent left out, it refuses (exit 2) and says what is missing.
    let again = tmp.path().join("again");
    let m = common::lockbench()
        .arg("merge")
        .arg(dir.join("agents"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(0), "{}", text(&m));
    let (_, s2) = merged(&again, "quick", "redis");
    assert_eq!(s2.verdict, s.verdict);
    assert_eq!(s2.history_events, s.history_events);
    let m = common::lockbench()
        .arg("merge")
        .args(&agent_dirs[..3])
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(2), "{}", text(&m));
    assert!(
        text(&m).contains("3 of 4 agents were given"),
        "{}",
        text(&m)
    );
}

#[test]
fn a_broken_recipe_across_agents_breaks_exclusion_definitely() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // scenarios/broken-recipe.toml expects `invalid`: GET then SET is not
    // atomic (see its comments), whichever machine the clients are on.
    let o = run_agents(
        tmp.path(),
        "scenarios/broken-recipe.toml",
        "redis-get-set",
        2,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (_, s) = merged(tmp.path(), "broken-recipe", "redis-get-set");
    assert_eq!(s.verdict.as_str(), "invalid");
    let agents = s.agents.unwrap();
    assert!(agents.definite > 0);
    assert_eq!(s.violations, agents.definite);
    // Definite overlaps between the two agents' clients, where the
    // clocks' bounds came into it, not only within one agent.
    assert!(agents.definite_across > 0, "{agents:?}");
}

/// Two agents on the quick scenario's Redis, agent 2's clock 40 ms ahead;
/// with `bound`, no reference and that bound declared. The exit code must
/// be `code`; the merged summary.
fn forty_ms_off(out: &Path, bound: Option<&str>, code: i32) -> Summary {
    let mut flags = vec!["--agent-clock-offset", "2=40ms"];
    if let Some(b) = bound {
        flags.extend(["--clock-reference", "none", "--clock-bound", b]);
    }
    let o = run_agents(out, "scenarios/quick.toml", "redis", 2, &flags);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    merged(out, "quick", "redis").1
}

#[test]
fn a_clock_that_is_off_is_measured_away_or_covered_by_its_bound_or_caught() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The reference measures agent 2's offset, and the merge removes it.
    let s = forty_ms_off(&tmp.path().join("measured"), None, 0);
    let a = s.agents.unwrap();
    let two = &a.clocks[1];
    assert_eq!(two.clock_offset_ns, 40_000_000);
    assert!(
        (two.start.offset_ns + 40_000_000).unsigned_abs() <= two.start.bound_ns,
        "{two:?}"
    );
    assert_eq!(a.definite, 0);
    assert_eq!(s.verdict.as_str(), "valid");

    // No reference: the offset is unknown, and each agent declares 60 ms.
    // The 40 ms error puts agent 2's holds into agent 1's on the merged
    // timeline, but never deeper than the bounds allow: possible, not
    // definite, and the run stays valid.
    let s = forty_ms_off(&tmp.path().join("covered"), Some("60ms"), 0);
    let a = s.agents.unwrap();
    assert!(a.possible > 0, "the 40 ms error shows as possible overlaps");
    assert_eq!(a.definite, 0);
    assert_eq!(s.verdict.as_str(), "valid");
    let e = &a.possible_examples[0];
    assert_eq!(e.bound_ns, 120_000_000);
    assert!(e.separated_by_ns.unsigned_abs() <= e.bound_ns);

    // The same error with a declared bound of 1 ms: the bound is wrong,
    // and the overlaps it cannot explain are definite. The check trusts
    // the bounds; this is what a wrong one does.
    let s = forty_ms_off(&tmp.path().join("wrong"), Some("1ms"), 1);
    assert!(s.agents.unwrap().definite > 0);
    assert_eq!(s.verdict.as_str(), "invalid");
}

#[test]
fn an_in_process_lock_is_skipped_under_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_agents(tmp.path(), "scenarios/quick.toml", "inproc", 2, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("skipped: inproc lives inside one process"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_agent_flags_are_refused_with_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--agent", "3/2"], "agents are numbered 1 to N"),
        (&["--agent", "x"], "is not I/N"),
        (&["--agent", "1/2"], "needs --clock-bound"),
        (
            &[
                "--agent",
                "1/2",
                "--clock-bound",
                "1ms",
                "--backends",
                "redis",
            ],
            "redis's are not named",
        ),
        (
            &["--agent", "1/2", "--clock-reference", "ntp.example"],
            "is not host:port, chrony or none",
        ),
        (
            &["--agents", "2", "--clock-reference", "none"],
            "needs --clock-bound",
        ),
        (
            &["--agents", "2", "--agent-clock-offset", "3=1ms"],
            "numbered 1 to 2",
        ),
    ];
    for (flags, says) in cases {
        let o = common::lockbench()
            .arg("run")
            .arg(root().join("scenarios/quick.toml"))
            .args(*flags)
            .arg("--out")
            .arg(std::env::temp_dir().join("lockbench-agent-flags"))
            .output()
            .unwrap();
        let t = text(&o);
        assert!(t.contains(says), "{flags:?}: {t}");
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {t}");
    }
}

#[test]
fn killing_the_parent_stops_its_agents_and_their_servers() {
    if !common::server_available("redis-server") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut parent = common::lockbench()
        .arg("run")
        .arg(root().join("scenarios/quick.toml"))
        .args(["--backends", "redis", "--duration", "60s", "--agents", "2"])
        .arg("--out")
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both agents run (their command lines say --agent).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let agents = loop {
        let below = lockbench::cluster::descendants(parent.id());
        let agents: Vec<u32> = below
            .iter()
            .copied()
            .filter(|&p| common::process_alive(p, "--agent"))
            .collect();
        if agents.len() == 2 {
            break below;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agents did not start: {below:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        agents
            .iter()
            .any(|&p| common::process_alive(p, "redis-server")),
        "{agents:?}"
    );
    parent.kill().unwrap();
    parent.wait().unwrap();
    // SIGKILL leaves no handler to run: the agents and the server go by
    // the parent-death signal they were started with.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: Vec<u32> = agents
            .iter()
            .copied()
            .filter(|&p| p != parent.id() && common::process_alive(p, ""))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after the parent was killed: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
