//! The commands of the `lockbench` binary, as library functions: each
//! takes its parsed arguments, prints what it finds and returns the exit
//! code of docs/design.md's CLI contract. The binary only parses flags, starts
//! the runtime and handles signals.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use lockbench::backend;
use lockbench::check::{self, Verdict};
use lockbench::error::{Error, Result};
use lockbench::history::{self, Event, HistoryFormat};
use lockbench::report::words::IncidentText;
use lockbench::report::{self, baseline};
use lockbench::run::{RunOptions, RunOutcome, run_atlas, run_backend, run_matrix};
use lockbench::scenario::{Mode, Scenario};
use lockbench::summary::Summary;

/// Whether `dir` can be created and written (a file made in it and
/// removed); why not.
fn writable(dir: &Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let probe = tempfile::Builder::new()
        .prefix(".lockbench-write-check-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write in it: {e}"))?;
    drop(probe);
    Ok(())
}

/// Exit code for bad input.
pub const BAD_INPUT: u8 = 2;

/// A history's format on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// lockbench's history v1 (docs/design.md).
    Jsonl,
    /// Jepsen's history.edn of a lock workload (:acquire/:release; a
    /// process whose operation ended :info has crashed).
    Edn,
}

/// The regression gate's flags (`lockbench run` and `lockbench report`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Gate {
    /// Compare each run with the newest earlier run of the same scenario and
    /// backend under DIR (an out dir: `DIR/<scenario>/<backend>/<timestamp>/`).
    /// Flags a worse verdict or new violations, and acquire p99 latency or
    /// throughput worse by more than --threshold percent; shown on the pages
    /// and printed.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// The regression threshold, percent.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub threshold: f64,
    /// Exit 1 when a run regressed against the baseline.
    #[arg(long, requires = "baseline")]
    pub fail_on_regression: bool,
}

/// What `lockbench run` was asked.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// Scenario files, all validated before anything starts.
    pub scenarios: Vec<PathBuf>,
    /// Root of the run directories.
    pub out: PathBuf,
    /// Seed for every random choice (overrides the scenarios').
    pub seed: Option<u64>,
    /// Only these backends of the scenarios.
    pub only: Option<Vec<String>>,
    /// Replaces every scenario's duration (`--duration`).
    pub duration: Option<std::time::Duration>,
    /// Runs per atlas cell (`--repeat`).
    pub repeat: u32,
    /// Show a progress bar.
    pub progress: bool,
    /// A missing server fails instead of being skipped.
    pub require_backends: bool,
    /// Cancelled on Ctrl-C: the runs stop early but keep what they recorded.
    pub cancel: CancellationToken,
    /// The regression gate.
    pub gate: Gate,
    /// Where results go for CI.
    pub ci: CiOutputs,
    /// How histories are stored.
    pub history_format: HistoryFormat,
    /// Print the fault schedules and hook commands; run nothing.
    pub dry_run: bool,
    /// This process is one agent of several (`--agent I/N`).
    pub agent: Option<lockbench::run::agents::AgentRole>,
    /// Run each backend with N local agents (`--agents N`).
    pub local_agents: Option<lockbench::run::agents::LocalAgents>,
    /// Servers to use instead of starting them (`--endpoint`).
    pub endpoints: Vec<(String, Vec<String>)>,
}

/// Results for CI systems and scripts.
#[derive(Debug, Clone, Default)]
pub struct CiOutputs {
    /// Write a JUnit XML file here.
    pub junit: Option<PathBuf>,
    /// Append a Markdown table here.
    pub summary_md: Option<PathBuf>,
    /// One JSON line per finished run on stdout; human output on stderr.
    pub json: bool,
}

/// Writes the JUnit file and the Markdown summary `ci` asks for; a file
/// that cannot be written is said, and the run's exit code stands.
fn write_ci_outputs(ci: &CiOutputs, records: &[report::ci::Record]) {
    if let Some(path) = &ci.junit
        && let Err(e) = std::fs::write(path, report::ci::junit(records))
    {
        eprintln!("lockbench: --junit {}: {e}", path.display());
    }
    if let Some(path) = &ci.summary_md
        && !records.is_empty()
    {
        append_markdown(path, &report::ci::markdown(records));
    }
}

/// Appends `text` to the Markdown summary at `path`; a file that cannot be
/// written is said, and the run's exit code stands.
fn append_markdown(path: &Path, text: &str) {
    use std::io::Write as _;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        eprintln!("lockbench: summary {}: {e}", path.display());
    }
}

/// Human output: on stdout, or on stderr when stdout carries JSON lines.
#[derive(Debug, Clone, Copy)]
struct Say {
    to_stderr: bool,
}

impl Say {
    fn line(self, text: impl std::fmt::Display) {
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// What `lockbench run` found so far, over every scenario: what decides
/// its exit code, and the records for the CI outputs.
#[derive(Default)]
struct Tally {
    records: Vec<report::ci::Record>,
    /// Verdicts (and atlas cells) other than expected, one line each.
    mismatches: Vec<String>,
    /// Runs that could not be made (errors), counted.
    failures: usize,
    /// Runs slower than their baseline.
    regressed: Vec<String>,
}

/// The scenario files of `lockbench run`, loaded, narrowed to `--backends`
/// and shortened to `--duration`: every error printed, `None` on bad input.
fn load_scenarios(
    paths: &[PathBuf],
    only: Option<&[String]>,
    duration: Option<std::time::Duration>,
    endpoints: &[(String, Vec<String>)],
) -> Option<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    for p in paths {
        match Scenario::load(p) {
            Ok(mut s) => {
                for (backend, addrs) in endpoints {
                    s.endpoints.insert(backend.clone(), addrs.clone());
                }
                scenarios.push(s)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return None;
            }
        }
    }
    if let Some(only) = only {
        for name in only {
            let known = scenarios.iter().any(|s| s.registry().get(name).is_some());
            if !known {
                let mut known: Vec<String> =
                    backend::names().iter().map(|n| n.to_string()).collect();
                for s in &scenarios {
                    for d in &s.drivers {
                        if !known.contains(&d.name) {
                            known.push(d.name.clone());
                        }
                    }
                }
                eprintln!(
                    "error: --backends: unknown backend {name:?}\n  hint: known backends: {}",
                    known.join(", ")
                );
                return None;
            }
        }
        // Every mode runs only these: a scenario's runs and the property
        // matrix's rows alike.
        for s in &mut scenarios {
            s.backends.retain(|b| only.contains(b));
        }
    }
    if let Some(d) = duration {
        for s in &mut scenarios {
            if let Err(why) = s.shorten(d) {
                eprintln!("error: --duration: {why}");
                return None;
            }
        }
    }
    Some(scenarios)
}

/// Why the scenarios cannot run as agents (`--agent`, `--agents`), if
/// they cannot: agents run contention scenarios, and an agent's servers
/// must be named, since each agent would otherwise start its own.
fn agents_refusal(args: &RunArgs, scenarios: &[Scenario]) -> Option<String> {
    if args.agent.is_none() && args.local_agents.is_none() {
        return None;
    }
    if let Some(s) = scenarios.iter().find(|s| s.mode != Mode::Contend) {
        return Some(format!(
            "{}: agents run contention scenarios, not mode = {:?}\n  hint: give a scenario \
             without `mode`, such as scenarios/quick.toml",
            s.path.display(),
            s.mode
        ));
    }
    // Local agents (`--agents`) get the servers this process starts.
    args.agent.as_ref()?;
    scenarios.iter().find_map(|s| {
        let b = s
            .backends
            .iter()
            .find(|b| !s.endpoints.contains_key(*b) && !s.deployments.contains_key(*b))?;
        Some(format!(
            "{}: --agent: the agents of a run share the servers under test, but {b}'s are not \
             named (each agent would start its own)\n  hint: --endpoint {b}=HOST:PORT, or \
             [endpoints] / [deployment.{b}] in the scenario",
            s.path.display()
        ))
    })
}

/// `lockbench run`: every scenario of `args` on each of its backends,
/// printed as it goes; the exit code (0 as expected, 1 not, 2 bad input,
/// 130 interrupted).
pub async fn run_scenarios(args: RunArgs) -> Result<u8> {
    let say = Say {
        to_stderr: args.ci.json,
    };
    let gate = &args.gate;
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
    // Validate everything before starting anything.
    let Some(scenarios) = load_scenarios(
        &args.scenarios,
        args.only.as_deref(),
        args.duration,
        &args.endpoints,
    ) else {
        return Ok(BAD_INPUT);
    };
    if let Some(why) = agents_refusal(&args, &scenarios) {
        eprintln!("error: {why}");
        return Ok(BAD_INPUT);
    }
    if args.dry_run {
        for scenario in &scenarios {
            let seed = args.seed.or(scenario.seed).unwrap_or_else(rand::random);
            print!("{}", lockbench::run::dry_run(scenario, seed));
        }
        return Ok(0);
    }
    // Before any server starts: can the run directories be written?
    let out = &args.out;
    if let Err(why) = writable(out) {
        eprintln!(
            "error: --out {}: {why}\n  hint: give a directory lockbench can create and write",
            out.display()
        );
        return Ok(BAD_INPUT);
    }
    let opts = RunOptions {
        out_dir: out.clone(),
        progress: args.progress,
        cancel: args.cancel.clone(),
        require_backends: args.require_backends,
        human_to_stderr: args.ci.json,
        history_format: args.history_format,
        agent: args.agent.clone(),
    };
    let mut tally = Tally::default();
    for scenario in &scenarios {
        if scenario.backends.is_empty() {
            say.line(format_args!(
                "{}: none of its backends is in --backends",
                scenario.name
            ));
            continue;
        }
        let seed = args.seed.or(scenario.seed).unwrap_or_else(rand::random);
        say.line(format_args!(
            "{}: seed {seed} (repeat with: lockbench run {} --seed {seed})",
            scenario.name,
            scenario.path.display()
        ));
        match scenario.mode {
            Mode::Atlas => tally.atlas(say, scenario, seed, &args, &opts).await,
            Mode::Properties => tally.matrix(say, scenario, seed, &opts).await,
            Mode::Contend => tally.runs(say, scenario, seed, &args, &opts).await,
        }
    }
    write_ci_outputs(&args.ci, &tally.records);
    if args.cancel.is_cancelled() {
        eprintln!(
            "lockbench: interrupted; what was recorded is in {}",
            out.display()
        );
        return Ok(130);
    }
    if !tally.mismatches.is_empty() {
        eprintln!("\nNot what the scenario expects:");
        for m in &tally.mismatches {
            eprintln!("  {m}");
        }
    }
    if !tally.regressed.is_empty() {
        say.line(format_args!(
            "\nREGRESSION against the baseline: {}",
            tally.regressed.join(", ")
        ));
        if gate.fail_on_regression {
            return Ok(1);
        }
    }
    Ok(if tally.mismatches.is_empty() && tally.failures == 0 {
        0
    } else {
        1
    })
}

impl Tally {
    /// A run that could not be made: counted, and said with its seed.
    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display, seed: u64) {
        self.failures += 1;
        eprintln!("  {what}: error: {e} (seed {seed})");
    }

    /// An atlas scenario: its cells, contradictions and failures.
    async fn atlas(
        &mut self,
        say: Say,
        scenario: &Scenario,
        seed: u64,
        args: &RunArgs,
        opts: &RunOptions,
    ) {
        let a = match run_atlas(scenario, seed, args.repeat, opts).await {
            Ok(a) => a,
            Err(e) => return self.failed("atlas", &e, seed),
        };
        say.line(format_args!("  atlas: {}", a.page.display()));
        for (row, cell) in a.atlas.contradictions() {
            self.mismatches.push(format!(
                "{}/{} under {}: {} but the atlas expects {} ({}; seed {seed})",
                scenario.name,
                row.backend,
                cell.column.heading(),
                cell.words,
                cell.expect.expect.name(),
                cell.expect.why
            ));
        }
        for (row, cell) in a.atlas.failures() {
            self.failures += 1;
            eprintln!(
                "  {} under {}: {} (seed {seed})",
                row.backend,
                cell.column.heading(),
                cell.words
            );
        }
        if let Some(path) = &args.ci.summary_md {
            append_markdown(path, &report::atlas_markdown(&a.atlas));
        }
    }

    /// A property-matrix scenario: its rows' errors and exclusion verdicts.
    async fn matrix(&mut self, say: Say, scenario: &Scenario, seed: u64, opts: &RunOptions) {
        let m = match run_matrix(scenario, seed, opts).await {
            Ok(m) => m,
            Err(e) => return self.failed("properties", &e, seed),
        };
        say.line(format_args!("  matrix: {}", m.page.display()));
        for row in &m.matrix.rows {
            if let Some(why) = &row.error {
                self.failures += 1;
                eprintln!("  {}: {why} (seed {seed})", row.backend);
            }
        }
        for (backend, verdict) in &m.exclusion {
            if *verdict != scenario.expect_for(backend) {
                self.mismatches.push(format!(
                    "{}/{backend}: exclusion {verdict} but the scenario expects {} (seed {seed})",
                    scenario.name,
                    scenario.expect_for(backend)
                ));
            }
        }
    }

    /// A scenario's run on each of its backends, then their comparison.
    async fn runs(
        &mut self,
        say: Say,
        scenario: &Scenario,
        seed: u64,
        args: &RunArgs,
        opts: &RunOptions,
    ) {
        let mut completed = Vec::new();
        for backend in &scenario.backends {
            if args.cancel.is_cancelled() {
                break;
            }
            let record = self
                .run_one(say, scenario, backend, seed, args, opts, &mut completed)
                .await;
            if args.ci.json {
                println!("{}", report::ci::json_line(&record));
            }
            self.records.push(record);
        }
        if completed.len() > 1 {
            let dir = args.out.join(&scenario.name);
            match report::write_comparison(&dir, &completed) {
                Ok(page) => say.line(format_args!("  comparison: {}", page.display())),
                Err(e) => eprintln!("  comparison page not written: {e}"),
            }
        }
    }

    /// One run of `scenario` on `backend`, printed and judged.
    #[allow(clippy::too_many_arguments)]
    async fn run_one(
        &mut self,
        say: Say,
        scenario: &Scenario,
        backend: &str,
        seed: u64,
        args: &RunArgs,
        opts: &RunOptions,
        completed: &mut Vec<(PathBuf, Summary)>,
    ) -> report::ci::Record {
        let gate = &args.gate;
        // Found before the run, so the new run cannot be its own baseline.
        let base = gate
            .baseline
            .as_ref()
            .and_then(|dir| baseline::find_baseline(dir, &scenario.name, backend, None));
        let outcome = match &args.local_agents {
            Some(agents) => {
                lockbench::run::agents::run_local(scenario, backend, seed, opts, agents).await
            }
            None => run_backend(scenario, backend, seed, opts).await,
        };
        match outcome {
            Ok(RunOutcome::Skipped { reason }) => {
                say.line(format_args!("  {backend:<18} skipped: {reason}"));
                report::ci::Record::Skipped {
                    scenario: scenario.name.clone(),
                    backend: backend.to_string(),
                    reason,
                }
            }
            Ok(RunOutcome::Completed { run_dir, summary }) => {
                print_run(say, &summary, &run_dir);
                if gate.baseline.is_some()
                    && apply_baseline(say, &run_dir, &summary, base, gate.threshold)
                {
                    self.regressed
                        .push(format!("{}/{}", summary.scenario, summary.backend));
                }
                if !summary.matches_expectation {
                    self.mismatches.push(format!(
                        "{}/{}: {} but the scenario expects {} (seed {seed}; {})",
                        summary.scenario,
                        summary.backend,
                        summary.verdict,
                        summary.expect,
                        run_dir.join("index.html").display()
                    ));
                }
                completed.push((run_dir.clone(), (*summary).clone()));
                report::ci::Record::Completed { run_dir, summary }
            }
            Err(e) => {
                self.failures += 1;
                eprintln!("  {backend:<18} error: {e} (seed {seed})");
                report::ci::Record::Failed {
                    scenario: scenario.name.clone(),
                    backend: backend.to_string(),
                    error: e.to_string(),
                }
            }
        }
    }
}

fn print_run(say: Say, s: &Summary, run_dir: &Path) {
    let mark = if s.matches_expectation {
        "as expected"
    } else {
        "NOT AS EXPECTED"
    };
    say.line(format_args!(
        "  {:<18} {:<8} ({mark}, expects {}) {:>9.0} acq/s  acquire p50 {} µs p99 {} µs  {} violations",
        s.backend,
        s.verdict.as_str(),
        s.expect,
        s.throughput_per_s,
        s.acquire_latency_us.p50,
        s.acquire_latency_us.p99,
        s.violations
    ));
    for i in s.incidents.iter().take(5) {
        say.line(format_args!("      incident: {}", IncidentText(i)));
    }
    if s.incidents.len() > 5 {
        say.line(format_args!(
            "      ... {} incidents in all (summary.json)",
            s.incidents.len()
        ));
    }
    // The events that prove the first (all of them: summary.json, the page).
    let proof = if s.incidents.is_empty() { 3 } else { 1 };
    for w in s.witnesses.iter().take(proof) {
        say.line(format_args!("      witness: {w}"));
    }
    if let Some(reason) = &s.verdict_reason {
        say.line(format_args!("      {reason}"));
    }
    if let Some(a) = &s.agents {
        for c in &a.clocks {
            say.line(format_args!(
                "      {}",
                lockbench::run::merge::clock_note(c)
            ));
        }
    }
    say.line(format_args!(
        "      report: {}",
        run_dir.join("index.html").display()
    ));
}

/// Compares a finished run with its baseline (if any), records the result
/// in the run directory, rebuilds the run page and prints the outcome.
/// True when the run regressed.
fn apply_baseline(
    say: Say,
    run_dir: &Path,
    summary: &Summary,
    base: Option<(PathBuf, Summary)>,
    threshold: f64,
) -> bool {
    let Some((base_dir, base)) = base else {
        say.line(format_args!(
            "      baseline: none found for this scenario and backend (this run can be one)"
        ));
        return false;
    };
    let cmp = baseline::compare(summary, &base, &base_dir, threshold);
    if let Err(e) = baseline::write(run_dir, &cmp) {
        eprintln!("      baseline comparison not saved: {e}");
    }
    if let Err(e) = report::write_run_report(run_dir, summary) {
        eprintln!("      report not rebuilt: {e}");
    }
    if cmp.regressed() {
        say.line(format_args!(
            "      REGRESSION against {}:",
            base_dir.display()
        ));
        for r in &cmp.regressions {
            say.line(format_args!("        {r}"));
        }
    } else {
        say.line(format_args!(
            "      baseline: no regression against {} (threshold {} %)",
            base_dir.display(),
            threshold
        ));
    }
    cmp.regressed()
}

/// Reads a history in `format`; the error is printed.
fn load_events(path: &Path, format: Format) -> Option<Vec<Event>> {
    let loaded = match format {
        Format::Jsonl => history::read_jsonl(path),
        Format::Edn => history::read_edn(path),
    };
    match loaded {
        Ok(h) => Some(h.events),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// What `lockbench check` prints of an analysis of `events` events: each
/// checker's result with its witnesses, or why it is `unknown`.
fn print_analysis(analysis: &check::Analysis, events: u64) {
    let m = &analysis.mutex;
    println!(
        "{}: {} ({} events, {} violations)",
        m.checker, m.verdict, events, m.violations
    );
    if !m.classes.is_empty() {
        let classes: Vec<String> = m
            .classes
            .iter()
            .map(|(c, n)| format!("{c} × {n}"))
            .collect();
        println!("  classes: {}", classes.join(", "));
    }
    for i in &m.incidents {
        println!("  incident: {}", IncidentText(i));
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
    if let Some(reason) = &o.reason {
        println!("  {reason}");
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
    if let Some(reason) = &f.reason {
        println!("  {reason}");
    }
    let l = &analysis.liveness;
    println!(
        "liveness: Jain index {:.3}, longest wait {:.1} ms, {} deadlocks, {} starved clients",
        l.jain_index,
        l.longest_wait_ms,
        l.deadlocks.len(),
        l.starved_clients
    );
    if let Some(reason) = &l.reason {
        println!("  {reason}");
    }
}

/// `lockbench check`: the verdicts of a recorded history, printed with
/// their witnesses; the exit code (0 valid, 1 invalid, 2 bad input, 3
/// unknown).
pub fn check_history(path: &Path, format: Format, linearizable: bool) -> Result<u8> {
    let opts = check::AnalysisOptions::default();
    let mut events = None;
    let analysed = match format {
        Format::Jsonl => check::analyze_file(path, opts),
        Format::Edn => match load_events(path, format) {
            Some(ev) => {
                let a = check::analyze_events(&ev, opts);
                let stats = history::StreamStats {
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
    print_analysis(&analysis, stats.events);
    let mut verdict = analysis.verdict();
    if linearizable {
        let r = match events {
            Some(ev) => check::check_linearizable(&ev, check::Budget::default()),
            // A history v1 file streams: memory holds the per-key
            // operations, not the events. A second pass, after the other
            // checkers freed theirs: one pass feeding both was 26% faster
            // on 2M events (0.75 s against 1.01 s) but peaked at 82 MB
            // against 51, and memory is what very long histories run
            // out of.
            None => match check::check_linearizable_file(path, check::Budget::default()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(BAD_INPUT);
                }
            },
        };
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

/// `lockbench export --format porcupine`: the history as Porcupine's
/// operations, to `output` or stdout; the exit code (0 written, 2 bad
/// input).
pub fn export_porcupine(path: &Path, format: Format, output: Option<&Path>) -> Result<u8> {
    use std::io::Write as _;
    // EDN is parsed in memory; a history v1 file (plain or zstd) streams.
    let events = match format {
        Format::Edn => match load_events(path, format) {
            Some(events) => Some(events),
            None => return Ok(BAD_INPUT),
        },
        Format::Jsonl => None,
    };
    let write = |out: &mut dyn std::io::Write| match &events {
        Some(events) => history::porcupine::write_porcupine(events, out),
        None => history::porcupine::write_porcupine_file(path, out),
    };
    match output {
        Some(file) => {
            let created = std::fs::File::create(file).map_err(|e| Error::io(file, e))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 16, created);
            if let Err(e) = write(&mut out) {
                drop(out);
                // No half-written array left behind.
                let _ = std::fs::remove_file(file);
                eprintln!("error: {e}");
                return Ok(BAD_INPUT);
            }
            eprintln!("wrote {}", file.display());
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            if let Err(e) = write(&mut out) {
                let _ = out.flush();
                eprintln!("error: {e}");
                return Ok(BAD_INPUT);
            }
        }
    }
    Ok(0)
}

/// `lockbench report`: the run pages rebuilt from the run directories, and
/// a comparison page when there are several; the exit code (0 every run
/// valid or as expected, 1 not, 2 bad input).
pub fn report_runs(runs: &[PathBuf], out: &Path, gate: &Gate) -> Result<u8> {
    let mut loaded = Vec::new();
    let mut regressed = false;
    for dir in runs {
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
            let base =
                baseline::find_baseline(base_dir, &summary.scenario, &summary.backend, Some(dir));
            println!("{}:", dir.display());
            regressed |= apply_baseline(
                Say { to_stderr: false },
                dir,
                &summary,
                base,
                gate.threshold,
            );
        }
        let page = report::write_run_report(dir, &summary)?;
        println!("{}", page.display());
        loaded.push((dir.clone(), summary));
    }
    if loaded.len() > 1 {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let page = report::write_comparison(out, &loaded)?;
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

/// `lockbench merge`: the agents' run directories (or directories holding
/// them) made one run; the exit code is the merged verdict's.
pub fn merge_agents(dirs: &[PathBuf], out: &Path) -> Result<u8> {
    let mut found = Vec::new();
    for d in dirs {
        let before = found.len();
        lockbench::run::merge::find_agent_dirs(d, &mut found);
        if found.len() == before {
            eprintln!(
                "error: {}: no agent run directory (one holding agent.json) in it\n  hint: \
                 give the --out directories of `lockbench run --agent I/N`",
                d.display()
            );
            return Ok(BAD_INPUT);
        }
    }
    if let Err(why) = writable(out) {
        eprintln!("error: --out {}: {why}", out.display());
        return Ok(BAD_INPUT);
    }
    let first = Summary::read(&found[0].join("summary.json"))?;
    let run_dir = lockbench::run::merge::new_merged_dir(out, &first.scenario, &first.backend)?;
    let s = lockbench::run::merge::merge_runs(&found, &run_dir, None)?;
    print_run(Say { to_stderr: false }, &s, &run_dir);
    Ok(s.verdict.exit_code() as u8)
}

/// `lockbench kubernetes job`: the Indexed Job of a scenario's agents, on
/// stdout.
pub fn kubernetes_job(scenario: &Path, job: &lockbench::run::agents::JobOptions) -> Result<u8> {
    let scenario = match Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(BAD_INPUT);
        }
    };
    match lockbench::run::agents::kubernetes_job(&scenario, job) {
        Ok(yaml) => {
            print!("{yaml}");
            Ok(0)
        }
        Err(why) => {
            eprintln!("error: {why}");
            Ok(BAD_INPUT)
        }
    }
}
