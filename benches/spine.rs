//! The spine's speed figures, side by side in one run:
//!
//! - history recording on vs off, 64 clients on `inproc` (target: ≤ 3 %
//!   throughput difference), saturated (no hold, no think) and paced
//!   (quick.toml's holds and think times);
//! - `inproc` with 10,000 clients: runs to completion, peak RSS of the
//!   `lockbench` process (target: ≤ 300 MB);
//! - Redis with 64 clients, each on its own key and all on one key:
//!   throughput and acquire p50/p99.
//!
//! Each measurement is a whole lockbench run through `run_backend`; the time
//! criterion sees is the run's own duration (clients' start until the
//! history is on disk), via `iter_custom`, so server start-up, checking and
//! report drawing are not counted.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

mod common;

use common::Failures;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use lockbench::run::{RunOptions, RunOutcome, run_backend};
use lockbench::scenario::Scenario;
use lockbench::summary::Summary;

/// Acquire percentiles seen per benchmark, printed at the end.
static SEEN: Mutex<Vec<(String, f64, u64, u64)>> = Mutex::new(Vec::new());

/// The rows that failed (by `group/id`).
static FAILED: Failures = Failures::new();

/// The operations of a run: the smoke run (`cargo test`) makes a
/// fiftieth of them.
fn ops(n: u64) -> u64 {
    if common::smoke() { n / 50 } else { n }
}

fn scenario(text: &str) -> Scenario {
    match Scenario::parse(Path::new("bench.toml"), text) {
        Ok(s) => s,
        Err(e) => panic!("bench scenario (written in this file): {e}"),
    }
}

/// One run; `Err` when the backend's server is missing (with why) or
/// the run failed (recorded in [`FAILED`] under `row`).
fn run(
    rt: &tokio::runtime::Runtime,
    s: &Scenario,
    backend: &str,
    row: &str,
) -> Result<Summary, ()> {
    let out = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            FAILED.record(row, format!("no temp dir: {e}"));
            return Err(());
        }
    };
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        require_backends: std::env::var_os("LOCKBENCH_REQUIRE_BACKENDS").is_some_and(|v| v == "1"),
        ..RunOptions::default()
    };
    match rt.block_on(run_backend(s, backend, 1, &opts)) {
        Ok(RunOutcome::Completed { summary, .. }) => Ok(*summary),
        Ok(RunOutcome::Skipped { reason }) => {
            eprintln!("skipped {row}: {reason}");
            Err(())
        }
        Err(e) => {
            FAILED.record(row, e.to_string());
            Err(())
        }
    }
}

fn measure(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    cases: &[(&str, &str, &Scenario)],
    ops: u64,
) {
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(ops));
    for (id, backend, s) in cases {
        let row = format!("{group}/{id}");
        if run(rt, s, backend, &row).is_err() {
            continue;
        }
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if FAILED.has(&row) {
                        // The row is an error; its figure means nothing.
                        return Duration::from_nanos(iters.max(1));
                    }
                    let Ok(summary) = run(rt, s, backend, &row) else {
                        return total.max(Duration::from_nanos(1));
                    };
                    total += Duration::from_secs_f64(summary.duration_s);
                    SEEN.lock().unwrap_or_else(|p| p.into_inner()).push((
                        format!("{group}/{id}"),
                        summary.throughput_per_s,
                        summary.acquire_latency_us.p50,
                        summary.acquire_latency_us.p99,
                    ));
                }
                total
            })
        });
    }
    g.finish();
}

fn history_overhead(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    // Saturated: no hold, no think; every client cycles as fast as the lock
    // table allows (millions of events per second). The worst case for
    // recording.
    let saturated_ops = ops(50_000);
    let saturated = format!(
        "backends = [\"inproc\"]\nclients = 64\nkeys = 64\nops = {saturated_ops}\nduration = \"60s\"\nhold = \"0s\"\nthink = \"0s\"\n"
    );
    let on = scenario(&format!("{saturated}history = true\n"));
    let off = scenario(&format!("{saturated}history = false\n"));
    measure(
        c,
        rt,
        "history_inproc_64_clients_saturated",
        &[("on", "inproc", &on), ("off", "inproc", &off)],
        saturated_ops,
    );
    // Paced: quick.toml's shape with 64 clients (holds of 1-5 ms, think
    // 0-2 ms, 16 keys): how a lock is used.
    let paced_ops = ops(10_000);
    let paced = format!(
        "backends = [\"inproc\"]\nclients = 64\nkeys = 16\nops = {paced_ops}\nduration = \"60s\"\nhold = {{ min = \"1ms\", max = \"5ms\" }}\nthink = {{ min = \"0ms\", max = \"2ms\" }}\n"
    );
    let on = scenario(&format!("{paced}history = true\n"));
    let off = scenario(&format!("{paced}history = false\n"));
    measure(
        c,
        rt,
        "history_inproc_64_clients_paced",
        &[("on", "inproc", &on), ("off", "inproc", &off)],
        paced_ops,
    );
}

fn redis_contention(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let n = ops(20_000);
    let own = scenario(&format!(
        "backends = [\"redis\"]\nclients = 64\nkeys = 64\nkey_choice = \"own\"\nops = {n}\nduration = \"60s\"\nhold = \"0s\"\nthink = \"0s\"\nhistory = false\n"
    ));
    let one = scenario(&format!(
        "backends = [\"redis\"]\nclients = 64\nkeys = 1\nops = {n}\nduration = \"60s\"\nhold = \"0s\"\nthink = \"0s\"\nacquire_timeout = \"10s\"\nhistory = false\n"
    ));
    measure(
        c,
        rt,
        "redis_64_clients",
        &[("own-key", "redis", &own), ("one-key", "redis", &one)],
        n,
    );
}

/// Runs the `lockbench` binary with 10,000 `inproc` clients and reports its
/// peak RSS (the largest resident size of any waited-for child).
fn ten_thousand_clients() {
    const ROW: &str = "clients_10k";
    let run = || -> Result<(std::process::ExitStatus, f64), String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let path = dir.path().join("clients-10k.toml");
        std::fs::write(
            &path,
            "backends = [\"inproc\"]\nclients = 10000\nhosts = 100\nkeys = 100\nduration = \"5s\"\n\
             hold = \"1ms\"\nthink = { min = \"0ms\", max = \"10ms\" }\nacquire_timeout = \"5s\"\n",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let started = std::time::Instant::now();
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_lockbench"))
            .args(["run", "--no-progress", "--seed", "1", "--out"])
            .arg(dir.path().join("out"))
            .arg(&path)
            .stdout(std::process::Stdio::inherit())
            .status()
            .map_err(|e| format!("cannot run lockbench: {e}"))?;
        Ok((status, started.elapsed().as_secs_f64()))
    };
    let (status, secs) = match run() {
        Ok(r) => r,
        Err(e) => {
            FAILED.record(ROW, e);
            return;
        }
    };
    if !status.success() {
        FAILED.record(ROW, format!("lockbench exited with {status}"));
    }
    // SAFETY: getrusage only fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
    }
    println!(
        "inproc, 10,000 clients: exit {:?} after {secs:.1} s, lockbench peak RSS {:.1} MB (target ≤ 300 MB)",
        status.code(),
        usage.ru_maxrss as f64 / 1024.0
    );
}

fn main() {
    // criterion draws its plots with plotters, which (with ab_glyph) only
    // knows fonts registered by the program.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
    common::banner(
        "spine",
        "recording on and off, 10,000 clients' memory, Redis with 64 clients",
        Duration::from_secs(300),
        "`cargo bench --bench spine -- redis` runs the rows whose name contains `redis`.",
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spine: no runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut c = common::criterion();
    let filter_allows = |name: &str| {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        args.is_empty() || args.iter().any(|a| name.contains(a.as_str()))
    };
    if filter_allows("clients_10k") && !common::smoke() && !std::env::args().any(|a| a == "--list")
    {
        ten_thousand_clients();
    }
    history_overhead(&mut c, &rt);
    redis_contention(&mut c, &rt);
    c.final_summary();
    print_medians();
    FAILED.finish("spine");
}

fn print_medians() {
    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut names: Vec<&String> = seen.iter().map(|s| &s.0).collect();
    names.dedup();
    println!("\nmedians over the measured runs:");
    for name in names {
        let mut rows: Vec<_> = seen.iter().filter(|s| &s.0 == name).collect();
        rows.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mid = rows[rows.len() / 2];
        let mut p50: Vec<u64> = rows.iter().map(|r| r.2).collect();
        let mut p99: Vec<u64> = rows.iter().map(|r| r.3).collect();
        p50.sort_unstable();
        p99.sort_unstable();
        println!(
            "  {name:<40} {:>10.0} acq/s   acquire p50 {:>6} µs   p99 {:>6} µs   ({} runs)",
            mid.1,
            p50[p50.len() / 2],
            p99[p99.len() / 2],
            rows.len()
        );
    }
}
