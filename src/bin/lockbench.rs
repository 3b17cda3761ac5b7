//! `lockbench`: the command-line front end. Everything it does is in the
//! library; this file parses flags, prints, and picks exit codes
//! (design.md): 0 as expected / valid, 1 not as expected / invalid,
//! 2 bad input, 3 unknown.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use lockbench::Verdict;
use lockbench::check;
use lockbench::scenario::{Mode, RunOptions, RunOutcome, Scenario, run_backend};
use lockbench::summary::Summary;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "lockbench",
    version,
    about = "Measures distributed locks on real servers: contention, a checked history, an HTML report.",
    long_about = "lockbench runs simulated clients that contend for locks on real servers \
                  (started by lockbench on free 127.0.0.1 ports, or given as endpoints), records \
                  every operation in history.jsonl, checks mutual exclusion from that history, \
                  and writes summary.json and an HTML report per run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios: one run directory per scenario and backend.
    ///
    /// Exit code 0 when every verdict is what its scenario expects, 1 when one
    /// is not, 2 on a bad scenario or flag.
    Run {
        /// Scenario files (TOML), e.g. scenarios/quick.toml. All are
        /// validated before anything starts.
        #[arg(required = true, value_name = "SCENARIO.toml")]
        scenarios: Vec<PathBuf>,
        /// Where run directories go: DIR/<scenario>/<backend>/<timestamp>/.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
        /// Seed for every random choice (overrides the scenario's). Without
        /// one, a seed is drawn and printed so the run can be repeated.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Only run these backends of the scenarios (comma-separated).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        backends: Option<Vec<String>>,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
    },
    /// Check a recorded history and print the verdict with its witness.
    ///
    /// Exit code 0 valid, 1 invalid, 2 bad input, 3 unknown.
    Check {
        /// history.jsonl of a run (or any history v1 file).
        #[arg(value_name = "HISTORY")]
        history: PathBuf,
        /// The history's format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Rebuild index.html of recorded runs; given several, also write a
    /// page that compares them.
    Report {
        /// Run directories (each holding summary.json).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Where the comparison page goes when several runs are given.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// lockbench's history v1 (design.md).
    Jsonl,
    /// Jepsen's history.edn of a lock workload (:acquire/:release; a
    /// process whose operation ended :info has crashed).
    Edn,
}

/// Exit code for bad input.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    // lockbench's own warnings by default; client libraries only on error
    // (they warn on every reconnect, which faults cause on purpose).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCKBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,lockbench=warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lockbench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run {
                scenarios,
                out,
                seed,
                backends,
                no_progress,
            } => run(scenarios, out, seed, backends, !no_progress).await,
            Command::Check { history, format } => check(history, format).await,
            Command::Report { runs, out } => report(runs, out),
        }
    });
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lockbench: {e:#}");
            let bad_input = e
                .downcast_ref::<lockbench::Error>()
                .is_some_and(|e| e.is_bad_input());
            ExitCode::from(if bad_input { BAD_INPUT } else { 1 })
        }
    }
}

/// Ctrl-C (or SIGTERM) once: stop the run, keep what was recorded. Twice:
/// kill the servers and leave at once.
fn install_signal_handlers(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupts = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
            }
            interrupts += 1;
            if interrupts == 1 {
                eprintln!(
                    "\nlockbench: stopping; the run writes what it recorded (press Ctrl-C again to quit at once)"
                );
                cancel.cancel();
            } else {
                lockbench::cluster::kill_all();
                std::process::exit(130);
            }
        }
    });
}

async fn run(
    paths: Vec<PathBuf>,
    out: PathBuf,
    seed: Option<u64>,
    only: Option<Vec<String>>,
    progress: bool,
) -> anyhow::Result<u8> {
    // Validate everything before starting anything.
    let mut scenarios = Vec::new();
    for p in &paths {
        match Scenario::load(p) {
            Ok(s) => scenarios.push(s),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(BAD_INPUT);
            }
        }
    }
    if let Some(only) = &only {
        for name in only {
            if lockbench::backend::info(name).is_none() {
                eprintln!(
                    "error: --backends: unknown backend {name:?}\n  hint: known backends: {}",
                    lockbench::backend::names().join(", ")
                );
                return Ok(BAD_INPUT);
            }
        }
    }
    let cancel = CancellationToken::new();
    install_signal_handlers(cancel.clone());
    let opts = RunOptions {
        out_dir: out.clone(),
        progress: progress && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none(),
        cancel: cancel.clone(),
    };
    let mut mismatches = Vec::new();
    let mut failures = 0;
    for scenario in &scenarios {
        let seed = seed.or(scenario.seed).unwrap_or_else(rand::random);
        println!(
            "{}: seed {seed} (repeat with: lockbench run {} --seed {seed})",
            scenario.name,
            scenario.path.display()
        );
        if scenario.mode == Mode::Properties {
            match lockbench::properties::run_matrix(scenario, seed, &opts).await {
                Ok((page, matrix)) => {
                    println!("  matrix: {}", page.display());
                    for row in &matrix.rows {
                        if let Some(why) = &row.error {
                            failures += 1;
                            eprintln!("  {}: {why} (seed {seed})", row.backend);
                        }
                        let exclusion = row.cells.iter().find(|(k, _)| k == "exclusion");
                        if let Some((_, cell)) = exclusion
                            && cell.text != scenario.expect.as_str()
                        {
                            mismatches.push(format!(
                                "{}/{}: exclusion {} but the scenario expects {} (seed {seed})",
                                scenario.name, row.backend, cell.text, scenario.expect
                            ));
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("  properties: error: {e} (seed {seed})");
                }
            }
            continue;
        }
        let mut completed = Vec::new();
        for backend in &scenario.backends {
            if only.as_ref().is_some_and(|o| !o.contains(backend)) {
                continue;
            }
            if cancel.is_cancelled() {
                break;
            }
            match run_backend(scenario, backend, seed, &opts).await {
                Ok(RunOutcome::Skipped { reason }) => println!("  {backend:<18} skipped: {reason}"),
                Ok(RunOutcome::Completed { run_dir, summary }) => {
                    print_run(&summary, &run_dir);
                    if !summary.matches_expectation {
                        mismatches.push(format!(
                            "{}/{}: {} but the scenario expects {} (seed {seed}; {})",
                            summary.scenario,
                            summary.backend,
                            summary.verdict,
                            summary.expect,
                            run_dir.join("index.html").display()
                        ));
                    }
                    completed.push((run_dir, *summary));
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("  {backend:<18} error: {e} (seed {seed})");
                }
            }
        }
        if completed.len() > 1 {
            let dir = out.join(&scenario.name);
            match lockbench::report::write_comparison(&dir, &completed) {
                Ok(page) => println!("  comparison: {}", page.display()),
                Err(e) => eprintln!("  comparison page not written: {e}"),
            }
        }
    }
    if cancel.is_cancelled() {
        eprintln!(
            "lockbench: interrupted; what was recorded is in {}",
            out.display()
        );
        return Ok(130);
    }
    if !mismatches.is_empty() {
        eprintln!("\nNot what the scenario expects:");
        for m in &mismatches {
            eprintln!("  {m}");
        }
    }
    Ok(if mismatches.is_empty() && failures == 0 {
        0
    } else {
        1
    })
}

fn print_run(s: &Summary, run_dir: &std::path::Path) {
    let mark = if s.matches_expectation {
        "as expected"
    } else {
        "NOT AS EXPECTED"
    };
    println!(
        "  {:<18} {:<8} ({mark}, expects {}) {:>9.0} acq/s  acquire p50 {} µs p99 {} µs  {} violations",
        s.backend,
        s.verdict.as_str(),
        s.expect,
        s.throughput_per_s,
        s.acquire_latency_us.p50,
        s.acquire_latency_us.p99,
        s.violations
    );
    for w in s.witnesses.iter().take(3) {
        println!("      witness: {w}");
    }
    if let Some(reason) = &s.verdict_reason {
        println!("      {reason}");
    }
    println!("      report: {}", run_dir.join("index.html").display());
}

async fn check(path: PathBuf, format: Format) -> anyhow::Result<u8> {
    let checked = match format {
        Format::Jsonl => check::check_file(&path),
        Format::Edn => lockbench::history::read_edn(&path).map(|h| {
            let stats = lockbench::history::StreamStats {
                events: h.events.len() as u64,
                truncated: false,
            };
            (check::run_checker(&check::MutexChecker, &h.events), stats)
        }),
    };
    let (result, stats) = match checked {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(BAD_INPUT);
        }
    };
    if stats.truncated {
        println!(
            "note: the last line of {} was cut off (a killed run); checked the prefix",
            path.display()
        );
    }
    println!(
        "{}: {} ({} events, {} violations)",
        result.checker, result.verdict, stats.events, result.violations
    );
    for w in &result.witnesses {
        println!("  witness: {w}");
    }
    if let Some(reason) = &result.reason {
        println!("  {reason}");
    }
    Ok(result.verdict.exit_code() as u8)
}

fn report(runs: Vec<PathBuf>, out: PathBuf) -> anyhow::Result<u8> {
    let mut loaded = Vec::new();
    for dir in &runs {
        let summary = match Summary::read(&dir.join("summary.json")) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "error: {e}\n  hint: give run directories written by `lockbench run` (they hold summary.json)"
                );
                return Ok(BAD_INPUT);
            }
        };
        let page = lockbench::report::write_run_report(dir, &summary)
            .with_context(|| format!("writing the report of {}", dir.display()))?;
        println!("{}", page.display());
        loaded.push((dir.clone(), summary));
    }
    if loaded.len() > 1 {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let page = lockbench::report::write_comparison(&out, &loaded)?;
        println!("{}", page.display());
    }
    let all_valid = loaded
        .iter()
        .all(|(_, s)| s.verdict == Verdict::Valid || s.matches_expectation);
    Ok(if all_valid { 0 } else { 1 })
}
