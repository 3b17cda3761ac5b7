//! `lockbench run` end to end: the shipped scenarios, Ctrl-C, SIGKILL, and
//! `lockbench report` on what they leave.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lockbench::Verdict;
use lockbench::summary::Summary;

fn check_exit(history: &Path) -> Option<i32> {
    common::lockbench()
        .arg("check")
        .arg(history)
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn quick_scenario_is_valid_for_inproc_and_redis() {
    if !common::server_available("redis-server") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let stdout = common::run_shipped_ok(
        "scenarios/quick.toml",
        out.path(),
        &["--backends", "inproc,redis"],
    );
    assert!(stdout.contains("seed 20261121"), "{stdout}");
    for backend in ["inproc", "redis"] {
        let dir = common::run_dir(out.path(), "quick", backend);
        let s = Summary::read(&dir.join("summary.json")).unwrap();
        assert_eq!(s.verdict, Verdict::Valid, "{backend}: {:?}", s.witnesses);
        assert!(
            s.acquire_latency_us.count > 100,
            "{backend}: {:?}",
            s.acquire_latency_us
        );
        assert!(s.throughput_per_s > 10.0);
        assert_eq!(s.seed, 20261121);
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(html.contains("<svg"), "{backend}: the report has no chart");
        assert_eq!(check_exit(&lockbench::history::history_in(&dir)), Some(0));
        if backend == "redis" {
            assert!(dir.join("redis-1.log").exists());
            assert!(
                s.servers[0]
                    .version
                    .starts_with(|c: char| c.is_ascii_digit())
            );
        }
    }
    assert!(out.path().join("quick/comparison.html").exists());
}

#[test]
fn broken_recipe_is_caught_and_that_is_what_it_expects() {
    if !common::server_available("redis-server") || !common::server_available("memcached") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let stdout = common::run_shipped_ok("scenarios/broken-recipe.toml", out.path(), &[]);
    assert!(stdout.contains("invalid"), "{stdout}");
    assert!(stdout.contains("witness: key"), "{stdout}");
    for backend in ["redis-get-set", "memcached-get-set"] {
        let dir = common::run_dir(out.path(), "broken-recipe", backend);
        let s = Summary::read(&dir.join("summary.json")).unwrap();
        assert_eq!(s.verdict, Verdict::Invalid, "{backend}");
        assert!(s.violations > 0 && !s.witnesses.is_empty(), "{backend}");
        let w = &s.witnesses[0];
        assert_ne!(w.first.process, w.second.process);
        assert!(w.second.start_ns < w.first.end_ns.unwrap_or(u64::MAX));
        // The history alone proves it again.
        assert_eq!(
            check_exit(&lockbench::history::history_in(&dir)),
            Some(1),
            "{backend}"
        );
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(html.contains("invalid"), "{backend}");
    }
}

#[test]
fn a_verdict_other_than_expected_exits_1_and_prints_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::scenario(
        dir.path(),
        "wrong",
        "backends = [\"inproc\"]\nexpect = \"invalid\"\nduration = \"300ms\"\nclients = 4\n",
    );
    let o = common::lockbench()
        .args(["run", "--seed", "99", "--out"])
        .arg(dir.path().join("out"))
        .arg(&s)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("wrong/inproc: valid but the scenario expects invalid (seed 99"),
        "{stderr}"
    );
}

/// A `lockbench run` child that is killed if the test fails midway, so no
/// run outlives its test.
struct Running(Option<std::process::Child>);

impl Running {
    fn take(&mut self) -> std::process::Child {
        self.0.take().expect("child already taken")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `lockbench run` on a long redis scenario and waits until its
/// server is up and the history has some events.
fn start_long_run(dir: &Path) -> (Running, std::path::PathBuf, u32) {
    let s = common::scenario(
        dir,
        "long",
        "backends = [\"redis\"]\nduration = \"60s\"\nclients = 8\nhold = \"2ms\"\n",
    );
    let out = dir.join("out");
    let child = common::lockbench()
        .args(["run", "--no-progress", "--out"])
        .arg(&out)
        .arg(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Running(Some(child));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the run did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
        let Ok(base) = std::fs::read_dir(out.join("long/redis")) else {
            continue;
        };
        let Some(run) = base.flatten().next().map(|e| e.path()) else {
            continue;
        };
        let Ok(servers) = std::fs::read_to_string(run.join("servers.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&servers) else {
            continue;
        };
        let Some(pid) = v[0]["pid"].as_u64() else {
            continue;
        };
        let lines = lockbench::history::open_history(&lockbench::history::history_in(&run))
            .map(|r| r.lines().count())
            .unwrap_or(0);
        if lines > 200 {
            return (child, run, pid as u32);
        }
    }
}

#[test]
fn sigkill_leaves_no_server_and_a_readable_history_prefix() {
    if !common::server_available("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut running, run, server_pid) = start_long_run(dir.path());
    assert!(common::process_alive(server_pid, "redis-server"));
    let mut child = running.take();
    child.kill().unwrap(); // SIGKILL: no destructor, no handler runs.
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::process_alive(server_pid, "redis-server") {
        assert!(
            Instant::now() < deadline,
            "redis-server {server_pid} outlived lockbench"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let history = lockbench::history::read_jsonl(&lockbench::history::history_in(&run)).unwrap();
    assert!(history.events.len() > 200, "{}", history.events.len());
    let code = check_exit(&lockbench::history::history_in(&run));
    assert_eq!(
        code,
        Some(0),
        "the prefix of a correct run must check valid"
    );
}

#[test]
fn ctrl_c_stops_the_run_keeps_its_files_and_its_server_goes() {
    if !common::server_available("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut running, run, server_pid) = start_long_run(dir.path());
    let child = running.take();
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    assert!(!common::process_alive(server_pid, "redis-server"));
    let s = Summary::read(&run.join("summary.json")).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.verdict, Verdict::Valid);
    assert!(run.join("index.html").exists());
}

#[test]
fn report_rebuilds_pages_and_compares_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::scenario(
        dir.path(),
        "tiny",
        "backends = [\"inproc\"]\nduration = \"200ms\"\nclients = 4\n",
    );
    let out = dir.path().join("out");
    for _ in 0..2 {
        let o = common::lockbench()
            .arg("run")
            .arg("--out")
            .arg(&out)
            .arg(&s)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
    let runs: Vec<_> = std::fs::read_dir(out.join("tiny/inproc"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 2);
    for r in &runs {
        std::fs::remove_file(r.join("index.html")).unwrap();
    }
    let o = common::lockbench()
        .arg("report")
        .args(&runs)
        .arg("--out")
        .arg(dir.path().join("cmp"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    for r in &runs {
        assert!(r.join("index.html").exists());
    }
    assert!(dir.path().join("cmp/comparison.html").exists());
    let o = common::lockbench()
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "a directory without summary.json is bad input"
    );
}

#[test]
fn a_missing_server_is_skipped_with_a_hint_or_fails_when_required() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::scenario(
        dir.path(),
        "missing",
        "backends = [\"inproc\", \"redis\"]\nduration = \"200ms\"\nclients = 2\n",
    );
    // An empty directory as the only place to look for servers.
    let empty = dir.path().join("no-servers-here");
    std::fs::create_dir(&empty).unwrap();
    let run = |required: bool| {
        let mut cmd = common::lockbench();
        cmd.env("LOCKBENCH_BIN_DIRS", &empty);
        if required {
            cmd.env("LOCKBENCH_REQUIRE_BACKENDS", "1");
        } else {
            cmd.env_remove("LOCKBENCH_REQUIRE_BACKENDS");
        }
        cmd.args(["run", "--out"])
            .arg(dir.path().join("out"))
            .arg(&s)
            .output()
            .unwrap()
    };
    let o = run(false);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    let skips: Vec<&str> = stdout.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skips.len(), 1, "{stdout}");
    assert!(
        skips[0].contains("`redis-server` is not installed"),
        "{stdout}"
    );
    assert!(skips[0].contains("scripts/install-backends.sh"), "{stdout}");
    assert!(
        stdout.contains("inproc") && stdout.contains("valid"),
        "inproc still runs: {stdout}"
    );

    let o = run(true);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`redis-server` is not installed"),
        "{stderr}"
    );
}

#[test]
fn the_counter_workload_counts_lost_updates() {
    use lockbench::summary::Summary;
    let tmp = tempfile::tempdir().unwrap();
    // A correct lock loses nothing: the counter ends at the increments
    // acknowledged.
    let path = common::scenario(
        tmp.path(),
        "counter",
        "backends = [\"inproc\"]\nworkload = \"counter\"\nduration = \"1s\"\nclients = 8\n\
         hold = \"1ms\"\nthink = \"0ms\"\n",
    );
    common::run_shipped_ok(path.to_str().unwrap(), tmp.path(), &[]);
    let s = Summary::read(&common::run_dir(tmp.path(), "counter", "inproc").join("summary.json"))
        .unwrap();
    let lost = s
        .lost_updates
        .expect("lost_updates with the counter workload");
    assert!(lost.acknowledged > 100, "{lost:?}");
    assert_eq!((lost.final_value, lost.lost), (lost.acknowledged, 0));

    if !common::server_available("redis-server") {
        return;
    }
    // GET-then-SET lets holders overlap: increments are lost.
    common::run_shipped_ok(
        "scenarios/lost-updates.toml",
        tmp.path(),
        &["--backends", "redis-get-set"],
    );
    let s = Summary::read(
        &common::run_dir(tmp.path(), "lost-updates", "redis-get-set").join("summary.json"),
    )
    .unwrap();
    let lost = s.lost_updates.expect("lost_updates");
    assert!(
        lost.lost > 0 && lost.final_value < lost.acknowledged,
        "{lost:?}"
    );
    assert!(s.violations > 0);
}

/// A run with more connections than the soft limit on open files it was
/// started with: `run` raises the soft limit to the hard one, as a 1024
/// soft limit (a common default) would otherwise stop a run of a thousand
/// clients with "Too many open files". Here the soft limit is 200 and 300
/// clients each hold a Redis connection.
#[test]
fn a_run_raises_a_low_soft_limit_on_open_files() {
    use std::os::unix::process::CommandExt;
    if !common::server_available("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::scenario(
        dir.path(),
        "many-connections",
        r#"
name = "many-connections"
backends = ["redis"]
expect = "valid"
seed = 7
duration = "1s"
clients = 300
keys = 8
lease = "2s"
hold = "1ms"
"#,
    );
    let hard = lockbench::error::open_files_limit().expect("getrlimit");
    if hard.rlim_max < 1024 {
        eprintln!("skipped: the hard limit on open files is {}", hard.rlim_max);
        return;
    }
    let mut cmd = common::lockbench();
    cmd.arg("run")
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg(&path);
    // SAFETY: only getrlimit and setrlimit, async-signal-safe, between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let Some(mut l) = lockbench::error::open_files_limit() else {
                return Err(std::io::Error::last_os_error());
            };
            l.rlim_cur = 200;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = Summary::read(
        &common::run_dir(&dir.path().join("out"), "many-connections", "redis").join("summary.json"),
    )
    .unwrap();
    assert_eq!(s.verdict, Verdict::Valid, "{stdout}");
}
