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
use lockbench::run::{RunOptions, RunOutcome, run_backend};
use lockbench::scenario::{Mode, Scenario};
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
    /// Worker threads of the runtime that drives the clients (default: one
    /// per core). The servers share the machine: on a small one, fewer
    /// driver threads leave them more CPU, and one thread saves a thread
    /// hop per request.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios: one run directory per scenario and backend.
    ///
    /// Exit code 0 when every verdict is what its scenario expects, 1 when one
    /// is not (or, under --fail-on-regression, when a run regressed against
    /// its --baseline), 2 on a bad scenario or flag.
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
        #[command(flatten)]
        gate: Gate,
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
        /// Also check linearizability against an owner-aware mutex model
        /// (a search per key; may end `unknown` on its time budget).
        #[arg(long)]
        linearizable: bool,
    },
    /// Write a history in another tool's form.
    ///
    /// Exit code 0 written, 2 bad input.
    Export {
        /// The output form: `porcupine` (Porcupine's operations, one JSON
        /// array).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The history (history v1 JSONL, or Jepsen EDN with --input edn).
        #[arg(value_name = "HISTORY")]
        history: PathBuf,
        /// The input history's format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        input: Format,
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
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
        #[command(flatten)]
        gate: Gate,
    },
}

/// The regression gate's flags.
#[derive(clap::Args, Clone)]
struct Gate {
    /// Compare each run with the newest earlier run of the same scenario and
    /// backend under DIR (an out dir: DIR/<scenario>/<backend>/<timestamp>/).
    /// Flags a worse verdict or new violations, and acquire p99 latency or
    /// throughput worse by more than --threshold percent; shown on the pages
    /// and printed.
    #[arg(long, value_name = "DIR")]
    baseline: Option<PathBuf>,
    /// The regression threshold, percent.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    threshold: f64,
    /// Exit 1 when a run regressed against the baseline.
    #[arg(long, requires = "baseline")]
    fail_on_regression: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// Porcupine's operation form (client id, input, call, output, return).
    Porcupine,
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
    // `check`, `export` and `report` only print and write files: let them
    // end quietly when their output pipe closes (`lockbench check h | head`),
    // as Unix tools do. `run` keeps SIGPIPE ignored: it writes to sockets.
    if matches!(
        cli.command,
        Command::Check { .. } | Command::Export { .. } | Command::Report { .. }
    ) {
        // SAFETY: setting a signal's disposition to its default, before any
        // thread is started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.enable_all().build() {
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
                gate,
            } => run(scenarios, out, seed, backends, !no_progress, gate).await,
            Command::Check {
                history,
                format,
                linearizable,
            } => check(history, format, linearizable).await,
            Command::Export {
                format: ExportFormat::Porcupine,
                history,
                input,
                output,
            } => export(history, input, output),
            Command::Report { runs, out, gate } => report(runs, out, gate),
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
    gate: Gate,
) -> anyhow::Result<u8> {
    if let Some(dir) = &gate.baseline
        && !dir.is_dir()
    {
        eprintln!("error: --baseline: {} is not a directory", dir.display());
        return Ok(BAD_INPUT);
    }
    if !(gate.threshold.is_finite() && gate.threshold >= 0.0) {
        eprintln!("error: --threshold must be a percentage >= 0");
        return Ok(BAD_INPUT);
    }
    let mut regressed = Vec::new();
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
        require_backends: std::env::var("LOCKBENCH_REQUIRE_BACKENDS")
            .is_ok_and(|v| v == "1" || v == "true"),
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
            match lockbench::run::run_matrix(scenario, seed, &opts).await {
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
            // Found before the run, so the new run cannot be its own baseline.
            let base = gate.baseline.as_ref().and_then(|dir| {
                lockbench::report::baseline::find_baseline(dir, &scenario.name, backend, None)
            });
            match run_backend(scenario, backend, seed, &opts).await {
                Ok(RunOutcome::Skipped { reason }) => println!("  {backend:<18} skipped: {reason}"),
                Ok(RunOutcome::Completed { run_dir, summary }) => {
                    print_run(&summary, &run_dir);
                    if gate.baseline.is_some()
                        && apply_baseline(&run_dir, &summary, base, gate.threshold)
                    {
                        regressed.push(format!("{}/{}", summary.scenario, summary.backend));
                    }
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
    if !regressed.is_empty() {
        println!(
            "\nREGRESSION against the baseline: {}",
            regressed.join(", ")
        );
        if gate.fail_on_regression {
            return Ok(1);
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

/// Compares a finished run with its baseline (if any), records the result
/// in the run directory, rebuilds the run page and prints the outcome.
/// True when the run regressed.
fn apply_baseline(
    run_dir: &std::path::Path,
    summary: &Summary,
    base: Option<(PathBuf, Summary)>,
    threshold: f64,
) -> bool {
    use lockbench::report::baseline;
    let Some((base_dir, base)) = base else {
        println!("      baseline: none found for this scenario and backend (this run can be one)");
        return false;
    };
    let cmp = baseline::compare(summary, &base, &base_dir, threshold);
    if let Err(e) = baseline::write(run_dir, &cmp) {
        eprintln!("      baseline comparison not saved: {e}");
    }
    if let Err(e) = lockbench::report::write_run_report(run_dir, summary) {
        eprintln!("      report not rebuilt: {e}");
    }
    if cmp.regressed() {
        println!("      REGRESSION against {}:", base_dir.display());
        for r in &cmp.regressions {
            println!("        {r}");
        }
    } else {
        println!(
            "      baseline: no regression against {} (threshold {} %)",
            base_dir.display(),
            threshold
        );
    }
    cmp.regressed()
}

/// Reads a history in `format`; the error is printed.
fn load_events(path: &std::path::Path, format: Format) -> Option<Vec<lockbench::history::Event>> {
    let loaded = match format {
        Format::Jsonl => lockbench::history::read_jsonl(path),
        Format::Edn => lockbench::history::read_edn(path),
    };
    match loaded {
        Ok(h) => Some(h.events),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

async fn check(path: PathBuf, format: Format, linearizable: bool) -> anyhow::Result<u8> {
    let opts = check::AnalysisOptions::default();
    let mut events = None;
    let analysed = match format {
        Format::Jsonl => check::analyze_file(&path, opts),
        Format::Edn => match load_events(&path, format) {
            Some(ev) => {
                let a = check::analyze_events(&ev, opts);
                let stats = lockbench::history::StreamStats {
                    events: ev.len() as u64,
                    truncated: false,
                };
                events = Some(ev);
                Ok((a, stats))
            }
            None => return Ok(BAD_INPUT),
        },
    };
    let (analysis, stats) = match analysed {
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
    let m = &analysis.mutex;
    println!(
        "{}: {} ({} events, {} violations)",
        m.checker, m.verdict, stats.events, m.violations
    );
    if !m.classes.is_empty() {
        let classes: Vec<String> = m
            .classes
            .iter()
            .map(|(c, n)| format!("{c} × {n}"))
            .collect();
        println!("  classes: {}", classes.join(", "));
    }
    for w in &m.witnesses {
        println!("  witness: {w}");
    }
    if let Some(reason) = &m.reason {
        println!("  {reason}");
    }
    let o = &analysis.ownership;
    println!(
        "ownership: {} ({} releases by a non-holder)",
        o.verdict, o.violations
    );
    for w in &o.witnesses {
        println!("  witness: {w}");
    }
    let f = &analysis.fencing;
    let outcome = serde_json::to_value(f.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", f.outcome));
    println!(
        "fencing: {outcome} ({} writes, {} accepted, {} rejected, {} stale accepted)",
        f.writes, f.accepted, f.rejected, f.stale_accepted
    );
    for w in f.witnesses.iter().take(10) {
        println!("  witness: {w}");
    }
    let l = &analysis.liveness;
    println!(
        "liveness: Jain index {:.3}, longest wait {:.1} ms, {} deadlocks, {} starved clients",
        l.jain_index,
        l.longest_wait_ms,
        l.deadlocks.len(),
        l.starved_clients
    );
    let mut verdict = analysis.verdict();
    if linearizable {
        let events = match events {
            Some(ev) => ev,
            None => match load_events(&path, format) {
                Some(ev) => ev,
                None => return Ok(BAD_INPUT),
            },
        };
        let r = check::check_linearizable(&events, check::Budget::default());
        print!("linearizable: {} ({} keys", r.verdict, r.keys);
        if let Some(key) = &r.key {
            print!(", key {key:?}");
        }
        if let Some(n) = r.longest_prefix {
            print!(", longest linearizable prefix {n} operations");
        }
        println!(")");
        if !r.unplaceable.is_empty() {
            println!("  cannot be placed: events {:?}", r.unplaceable);
        }
        if let Some(reason) = &r.reason {
            println!("  {reason}");
        }
        if r.verdict == Verdict::Invalid {
            verdict = Verdict::Invalid;
        }
    }
    Ok(verdict.exit_code() as u8)
}

fn export(path: PathBuf, format: Format, output: Option<PathBuf>) -> anyhow::Result<u8> {
    let Some(events) = load_events(&path, format) else {
        return Ok(BAD_INPUT);
    };
    let mut buf = Vec::new();
    if let Err(e) = lockbench::history::porcupine::write_porcupine(&events, &mut buf) {
        eprintln!("error: {e}");
        return Ok(BAD_INPUT);
    }
    match output {
        Some(file) => {
            std::fs::write(&file, &buf).with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&buf)
                .context("writing to stdout")?;
        }
    }
    Ok(0)
}

fn report(runs: Vec<PathBuf>, out: PathBuf, gate: Gate) -> anyhow::Result<u8> {
    let mut loaded = Vec::new();
    let mut regressed = false;
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
        if let Some(base_dir) = &gate.baseline {
            let base = lockbench::report::baseline::find_baseline(
                base_dir,
                &summary.scenario,
                &summary.backend,
                Some(dir),
            );
            println!("{}:", dir.display());
            regressed |= apply_baseline(dir, &summary, base, gate.threshold);
        }
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
    if regressed && gate.fail_on_regression {
        return Ok(1);
    }
    Ok(if all_valid { 0 } else { 1 })
}
