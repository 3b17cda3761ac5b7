//! Issue 16's table, every row measured in one run, side by side: the
//! figures are whole `lockbench` processes (the binary users run), each
//! with its own wall time and peak RSS (from `wait4`, per child).
//!
//! | row | what runs |
//! | --- | --- |
//! | recording on / off | `inproc`, 64 clients on their own keys, no hold or think, 5 s, `history = true` then `false`, alternating, median of `ROUNDS` |
//! | history on disk | bytes of the recorded history per event, from those runs |
//! | peak RSS, 10,000 / 100,000 clients | `inproc` for 10 s, the whole `lockbench run` (run, check, report) |
//! | check, 1M operations | `lockbench check` of a recorded `inproc` history of 2M events (1M invoke/completion pairs) |
//! | check --linearizable | the same history |
//! | export --format porcupine | the same history, to /dev/null |
//! | report, 5M events | `lockbench report` of a run directory with a 5M-event history |
//!
//! The Redis rows (throughput ratio against redis-benchmark, one client's
//! cycle against two round trips) are `scripts/compare-redis-benchmark.sh`,
//! run last when `REDIS=1` (it needs redis-server and redis-benchmark).
//!
//! Usage: `cargo bench --bench limits` (about 3 minutes); env `ROUNDS`
//! (default 3), `ONLY=<row name part>` to run some rows, `REDIS=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A finished child: its exit code, wall time and peak RSS.
struct Measured {
    code: Option<i32>,
    wall: Duration,
    rss_mb: f64,
}

/// Runs `cmd` to its end and measures it alone (wait4 gives the child's
/// own rusage, not the sum over every child this process waited for).
///
/// Its output goes to /dev/null, never into this process: Linux counts the
/// high-water mark of the memory a process had before its exec in its
/// `ru_maxrss`, and a child spawned with vfork (as `Command` does) had this
/// process's memory then. Capturing the export's 100 MB of output once made
/// every later row report at least that.
fn measure(mut cmd: Command) -> Measured {
    let started = Instant::now();
    // The child is reaped below by wait4, which also gives its rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lockbench");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 fills the two out-parameters we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    Measured {
        code,
        wall,
        rss_mb: usage.ru_maxrss as f64 / 1024.0,
    }
}

fn lockbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockbench"))
}

/// Runs one scenario (TOML text) into `out`; returns the measurement and
/// the run directory.
fn run_scenario(dir: &Path, name: &str, text: &str) -> (Measured, PathBuf) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{text}")).expect("write scenario");
    let out = dir.join("out");
    let mut cmd = lockbench();
    cmd.args(["run", "--no-progress", "--seed", "16", "--out"])
        .arg(&out)
        .arg(&path);
    let m = measure(cmd);
    let backend_dir = out.join(name).join("inproc");
    let run_dir = std::fs::read_dir(&backend_dir)
        .expect("run directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max()
        .expect("one run");
    (m, run_dir)
}

/// 100 `inproc` clients on 10 keys, no hold or think, until `ops`
/// acquires: about six events each.
fn saturated(ops: u64) -> String {
    format!(
        "backends = [\"inproc\"]\nclients = 100\nhosts = 10\nkeys = 10\nops = {ops}\n\
         duration = \"120s\"\nhold = \"0s\"\nthink = \"0s\"\n"
    )
}

fn summary(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json parses")
}

/// The run's history file, whichever form it was written in.
fn history_file(run_dir: &Path) -> Option<PathBuf> {
    ["history.jsonl.zst", "history.jsonl"]
        .iter()
        .map(|n| run_dir.join(n))
        .find(|p| p.exists())
}

fn events_in(run_dir: &Path) -> u64 {
    let Some(path) = history_file(run_dir) else {
        return 0;
    };
    lockbench::history::stream_jsonl(&path, |_| {})
        .map(|s| s.events)
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn row(name: &str, now: String, goal: &str) {
    println!("| {name} | {now} | {goal} |");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way: this bench runs whole processes and is not a test.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("ONLY").unwrap_or_default();
    let wants = |name: &str| only.is_empty() || name.contains(only.as_str());
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    println!("| figure | measured | goal |");
    println!("| --- | --- | --- |");

    if wants("recording") {
        let base = "backends = [\"inproc\"]\nclients = 64\nkeys = 64\nkey_choice = \"own\"\n\
                    duration = \"5s\"\nhold = \"0s\"\nthink = \"0s\"\n";
        let (mut on, mut off, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut wall_on, mut wall_off) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for history in [true, false] {
                let (m, run_dir) =
                    run_scenario(dir, "recording", &format!("{base}history = {history}\n"));
                assert_eq!(m.code, Some(0), "recording run failed");
                let rate = summary(&run_dir)["throughput_per_s"]
                    .as_f64()
                    .unwrap_or(0.0);
                if history {
                    wall_on.push(m.wall.as_secs_f64());
                    on.push(rate);
                    if let Some(h) = history_file(&run_dir) {
                        let size = std::fs::metadata(&h).map(|m| m.len()).unwrap_or(0);
                        let events = events_in(&run_dir).max(1);
                        bytes.push((size as f64 / events as f64, events, size, h));
                    }
                } else {
                    wall_off.push(m.wall.as_secs_f64());
                    off.push(rate);
                }
                let _ = std::fs::remove_dir_all(&run_dir);
            }
        }
        let (on, off) = (median(on), median(off));
        row(
            "recording on / off at saturation (inproc, 64 clients, own keys, 5 s)",
            format!(
                "{:.0}k / {:.0}k acquires/s = {:.2} (whole process {:.1} s / {:.1} s: \
                 the history's conversion and check included)",
                on / 1e3,
                off / 1e3,
                on / off,
                median(wall_on),
                median(wall_off)
            ),
            "≥ 0.85",
        );
        bytes.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((per, events, size, path)) = bytes.get(bytes.len() / 2) {
            row(
                "history on disk",
                format!(
                    "{per:.1} bytes per event ({events} events, {:.1} MB, {})",
                    *size as f64 / 1e6,
                    path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
                ),
                "≤ 20 bytes per event",
            );
        }
    }

    for (clients, goal) in [(10_000u32, "≤ 150 MB"), (100_000, "≤ 500 MB")] {
        let name = format!("rss-{clients}");
        if !wants(&name) {
            continue;
        }
        let (m, run_dir) = run_scenario(
            dir,
            &name,
            &format!(
                "backends = [\"inproc\"]\nclients = {clients}\nhosts = 100\nkeys = 100\n\
                 duration = \"10s\"\nhold = \"1ms\"\nthink = {{ min = \"0ms\", max = \"10ms\" }}\n\
                 acquire_timeout = \"5s\"\n"
            ),
        );
        row(
            &format!("peak RSS, inproc with {clients} clients for 10 s"),
            format!(
                "{:.0} MB (exit {:?}, {:.1} s, {} events)",
                m.rss_mb,
                m.code,
                m.wall.as_secs_f64(),
                events_in(&run_dir)
            ),
            goal,
        );
        let _ = std::fs::remove_dir_all(&run_dir);
    }

    if wants("check") || wants("export") || wants("linearizable") {
        // 2M events: 1M operations, each an invoke and its completion.
        let (m, run_dir) = run_scenario(dir, "million", &saturated(340_000));
        assert_eq!(m.code, Some(0), "the 1M-operation run failed");
        let history = history_file(&run_dir).expect("history");
        let events = events_in(&run_dir);
        let cases: [(&str, &[&str], &str); 3] = [
            ("check", &["check"], "≤ 0.5 s"),
            (
                "check --linearizable",
                &["check", "--linearizable"],
                "≤ 2 s, ≤ 200 MB",
            ),
            (
                "export --format porcupine",
                &["export", "--format", "porcupine"],
                "streaming, ≤ 100 MB",
            ),
        ];
        for (name, args, goal) in cases {
            if !wants(name.split(' ').next().unwrap_or(name)) && !wants(name) {
                continue;
            }
            let mut walls = Vec::new();
            let mut rss = Vec::new();
            for _ in 0..rounds {
                let mut cmd = lockbench();
                cmd.args(args).arg(&history);
                let m = measure(cmd);
                assert!(
                    matches!(m.code, Some(0) | Some(1)),
                    "{name} exited {:?}",
                    m.code
                );
                walls.push(m.wall.as_secs_f64());
                rss.push(m.rss_mb);
            }
            row(
                &format!("lockbench {name}, {events} events"),
                format!("{:.2} s, {:.0} MB", median(walls), median(rss)),
                goal,
            );
        }
        let _ = std::fs::remove_dir_all(&run_dir);
    }

    if wants("report") {
        let (m, run_dir) = run_scenario(dir, "five-million", &saturated(840_000));
        assert_eq!(m.code, Some(0), "the 5M-event run failed");
        let events = events_in(&run_dir);
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..rounds {
            let mut cmd = lockbench();
            cmd.arg("report").arg(&run_dir);
            let m = measure(cmd);
            assert_eq!(m.code, Some(0), "report failed");
            walls.push(m.wall.as_secs_f64());
            rss.push(m.rss_mb);
        }
        row(
            &format!("lockbench report, {events} events"),
            format!("{:.2} s, {:.0} MB", median(walls), median(rss)),
            "≤ 100 MB",
        );
        let _ = std::fs::remove_dir_all(&run_dir);
    }

    if std::env::var("REDIS").is_ok_and(|v| v == "1") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(root.join("scripts/compare-redis-benchmark.sh"))
            .env("LOCKBENCH", env!("CARGO_BIN_EXE_lockbench"))
            .env("ROUNDS", rounds.to_string())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            println!("compare-redis-benchmark.sh failed: {status:?}");
        }
    }
}
