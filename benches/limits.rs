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
//!
//! A row whose process fails is printed as an error and the others go on;
//! the bench exits 1 at the end. Under `cargo test` (the smoke run,
//! benches/common) every row runs once, a hundredth of its size.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Failures;

/// The rows that failed, with why.
static FAILED: Failures = Failures::new();

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
fn measure(mut cmd: Command) -> Result<Measured, String> {
    let started = Instant::now();
    // The child is reaped below by wait4, which also gives its rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start lockbench: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 fills the two out-parameters we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let wall = started.elapsed();
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    Ok(Measured {
        code,
        wall,
        rss_mb: usage.ru_maxrss as f64 / 1024.0,
    })
}

fn lockbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockbench"))
}

/// Runs one scenario (TOML text) into `out`; the measurement and the run
/// directory, or why not (lockbench's exit code other than 0 included).
fn run_scenario(dir: &Path, name: &str, text: &str) -> Result<(Measured, PathBuf), String> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{text}"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let out = dir.join("out");
    let mut cmd = lockbench();
    cmd.args(["run", "--no-progress", "--seed", "16", "--out"])
        .arg(&out)
        .arg(&path);
    let m = measure(cmd)?;
    if m.code != Some(0) {
        return Err(format!("lockbench run of {name} exited {:?}", m.code));
    }
    let backend_dir = out.join(name).join("inproc");
    let run_dir = std::fs::read_dir(&backend_dir)
        .map_err(|e| format!("{}: {e}", backend_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .max()
        .ok_or_else(|| format!("no run directory under {}", backend_dir.display()))?;
    Ok((m, run_dir))
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
    std::fs::read_to_string(run_dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
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
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn row(name: &str, now: String, goal: &str) {
    println!("| {name} | {now} | {goal} |");
}

/// What every row is given.
struct Setup<'a> {
    dir: &'a Path,
    rounds: usize,
    /// 1, or 100 in the smoke run: sizes and durations are divided by it.
    scale: u64,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let smoke = common::smoke();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if smoke { 1 } else { 3 })
        .max(1);
    common::banner(
        "limits",
        "issue 16's table, whole lockbench processes",
        Duration::from_secs(180),
        "ONLY=<row name part> runs some rows.",
    );
    let only = std::env::var("ONLY").unwrap_or_default();
    let wants = |name: &str| only.is_empty() || name.contains(only.as_str());
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("limits: no temp dir: {e}");
            std::process::exit(1);
        }
    };
    let setup = Setup {
        dir: dir.path(),
        rounds,
        scale: if smoke { 100 } else { 1 },
    };
    println!("| figure | measured | goal |");
    println!("| --- | --- | --- |");
    if wants("recording")
        && let Err(e) = recording(&setup)
    {
        FAILED.record("recording", e);
    }
    for (clients, goal) in [(10_000u32, "≤ 150 MB"), (100_000, "≤ 500 MB")] {
        let name = format!("rss-{clients}");
        if wants(&name)
            && let Err(e) = peak_rss(&setup, &name, clients, goal)
        {
            FAILED.record(&name, e);
        }
    }
    if (wants("check") || wants("export") || wants("linearizable"))
        && let Err(e) = million(&setup, &wants)
    {
        FAILED.record("check, 1M operations", e);
    }
    if wants("report")
        && let Err(e) = report(&setup)
    {
        FAILED.record("report, 5M events", e);
    }
    if std::env::var("REDIS").is_ok_and(|v| v == "1") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(root.join("scripts/compare-redis-benchmark.sh"))
            .env("LOCKBENCH", env!("CARGO_BIN_EXE_lockbench"))
            .env("ROUNDS", rounds.to_string())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            FAILED.record(
                "redis",
                format!("compare-redis-benchmark.sh failed: {status:?}"),
            );
        }
    }
    FAILED.finish("limits");
}

/// Recording on and off at saturation, and the history's bytes per event.
fn recording(setup: &Setup) -> Result<(), String> {
    let secs = (5 / setup.scale).max(1);
    let base = format!(
        "backends = [\"inproc\"]\nclients = 64\nkeys = 64\nkey_choice = \"own\"\n\
         duration = \"{secs}s\"\nhold = \"0s\"\nthink = \"0s\"\n"
    );
    let (mut on, mut off, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wall_on, mut wall_off) = (Vec::new(), Vec::new());
    for _ in 0..setup.rounds {
        for history in [true, false] {
            let (m, run_dir) = run_scenario(
                setup.dir,
                "recording",
                &format!("{base}history = {history}\n"),
            )?;
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
        &format!("recording on / off at saturation (inproc, 64 clients, own keys, {secs} s)"),
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
    Ok(())
}

/// The whole `lockbench run` of `clients` inproc clients: its peak RSS.
fn peak_rss(setup: &Setup, name: &str, clients: u32, goal: &str) -> Result<(), String> {
    let clients = (clients as u64 / setup.scale) as u32;
    let secs = (10 / setup.scale).max(1);
    let (m, run_dir) = run_scenario(
        setup.dir,
        name,
        &format!(
            "backends = [\"inproc\"]\nclients = {clients}\nhosts = 100\nkeys = 100\n\
             duration = \"{secs}s\"\nhold = \"1ms\"\nthink = {{ min = \"0ms\", max = \"10ms\" }}\n\
             acquire_timeout = \"5s\"\n"
        ),
    )?;
    row(
        &format!("peak RSS, inproc with {clients} clients for {secs} s"),
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
    Ok(())
}

/// `check`, `check --linearizable` and `export` of a 2M-event history.
fn million(setup: &Setup, wants: &dyn Fn(&str) -> bool) -> Result<(), String> {
    // 2M events: 1M operations, each an invoke and its completion.
    let (_, run_dir) = run_scenario(setup.dir, "million", &saturated(340_000 / setup.scale))?;
    let history = history_file(&run_dir).ok_or("the run wrote no history")?;
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
        for _ in 0..setup.rounds {
            let mut cmd = lockbench();
            cmd.args(args).arg(&history);
            let m = measure(cmd)?;
            if !matches!(m.code, Some(0) | Some(1)) {
                return Err(format!("lockbench {name} exited {:?}", m.code));
            }
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
    Ok(())
}

/// `lockbench report` of a run with a 5M-event history.
fn report(setup: &Setup) -> Result<(), String> {
    let (_, run_dir) = run_scenario(setup.dir, "five-million", &saturated(840_000 / setup.scale))?;
    let events = events_in(&run_dir);
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..setup.rounds {
        let mut cmd = lockbench();
        cmd.arg("report").arg(&run_dir);
        let m = measure(cmd)?;
        if m.code != Some(0) {
            return Err(format!("lockbench report exited {:?}", m.code));
        }
        walls.push(m.wall.as_secs_f64());
        rss.push(m.rss_mb);
    }
    row(
        &format!("lockbench report, {events} events"),
        format!("{:.2} s, {:.0} MB", median(walls), median(rss)),
        "≤ 100 MB",
    );
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(())
}
