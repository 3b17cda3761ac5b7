//! `lockbench merge`: the run directories of several agents become one
//! run: their histories on one timeline (`history::agent::merge`), checked
//! as one history with mutual exclusion widened by each agent's clock
//! bound (`check::uncertain`), measured again from the merged history, and
//! written as a run directory of its own (history, `summary.json`,
//! `index.html`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, uncertain};
use crate::error::{Error, Result};
use crate::history::{self, AgentClock, Event, F, OpType, Process};
use crate::metrics::{Counts, Metrics};
use crate::summary::{AgentsReport, Summary};

/// One agent's run directory, read.
struct AgentRun {
    dir: PathBuf,
    clock: AgentClock,
    summary: Summary,
    events: Vec<Event>,
}

fn bad(dir: &Path, message: impl Into<String>) -> Error {
    Error::RunDir {
        path: dir.to_path_buf(),
        message: message.into(),
    }
}

/// Reads the agents' run directories and checks that they belong
/// together: one scenario, backend and seed, agents 1 to N each once.
fn read_agents(dirs: &[PathBuf]) -> Result<Vec<AgentRun>> {
    let mut runs = Vec::new();
    for dir in dirs {
        let clock = AgentClock::read(dir).map_err(|e| {
            bad(
                dir,
                format!(
                    "not an agent's run directory ({e}); hint: agents are runs made with \
                     `lockbench run --agent I/N`"
                ),
            )
        })?;
        let summary = Summary::read(&dir.join("summary.json"))?;
        let events = history::read_jsonl(&history::history_in(dir))?.events;
        runs.push(AgentRun {
            dir: dir.clone(),
            clock,
            summary,
            events,
        });
    }
    runs.sort_by_key(|r| r.clock.index);
    let Some(first) = runs.first() else {
        return Err(bad(Path::new("."), "no agent run directories were given"));
    };
    let count = first.clock.count;
    for (n, r) in runs.iter().enumerate() {
        let same = r.summary.scenario == first.summary.scenario
            && r.summary.backend == first.summary.backend
            && r.summary.seed == first.summary.seed;
        if !same {
            return Err(bad(
                &r.dir,
                format!(
                    "ran {} on {} with seed {}, but {} ran {} on {} with seed {}: the agents \
                     of one run share the scenario, backend and seed",
                    r.summary.scenario,
                    r.summary.backend,
                    r.summary.seed,
                    first.dir.display(),
                    first.summary.scenario,
                    first.summary.backend,
                    first.summary.seed
                ),
            ));
        }
        if r.clock.count != count || r.clock.index != n as u32 + 1 {
            return Err(bad(
                &r.dir,
                format!(
                    "is agent {}/{}; a merge needs agents 1 to {count}, each once",
                    r.clock.index, r.clock.count
                ),
            ));
        }
    }
    if runs.len() != count as usize {
        return Err(bad(
            &runs[runs.len() - 1].dir,
            format!(
                "{} of {count} agents were given; a merge needs them all",
                runs.len()
            ),
        ));
    }
    Ok(runs)
}

/// The latencies and counts of a merged history: each operation's time
/// from its invoke to its completion (one agent stamped both), holds from
/// the acquire's `ok` to the release's invoke.
fn metrics_of(events: &[Event]) -> Metrics {
    let metrics = Metrics::new();
    let mut invoked = std::collections::HashMap::new();
    let mut held_since = std::collections::HashMap::new();
    let mut held_for = std::collections::HashMap::new();
    let mut counts = std::collections::HashMap::<u64, Counts>::new();
    for e in events {
        let Process::Client(id) = e.process else {
            continue;
        };
        counts.entry(id).or_default().count(&e.f, e.kind);
        let ns = Duration::from_nanos;
        match (e.kind, &e.f) {
            (OpType::Invoke, F::Release) => {
                invoked.insert(id, e.time_ns);
                if let Some(at) = held_since.remove(&id) {
                    held_for.insert(id, e.time_ns.saturating_sub(at));
                }
            }
            (OpType::Invoke, _) => {
                invoked.insert(id, e.time_ns);
            }
            (OpType::Ok, F::Acquire) => {
                let from = invoked.remove(&id).unwrap_or(e.time_ns);
                metrics.acquired(id, ns(e.time_ns - from.min(e.time_ns)), ns(e.time_ns));
                held_since.insert(id, e.time_ns);
            }
            (OpType::Ok, F::Release) => {
                let from = invoked.remove(&id).unwrap_or(e.time_ns);
                let held = held_for.remove(&id).unwrap_or(0);
                metrics.released(id, ns(e.time_ns - from.min(e.time_ns)), ns(held));
            }
            _ => {}
        }
    }
    for (id, c) in counts {
        metrics.add_counts(id, &c);
    }
    metrics
}

/// Merges the agents' run directories `dirs` into `out_dir` (created):
/// its history, summary.json and index.html. `servers`, when given, are
/// the servers the summary names (the agents saw them as endpoints; the
/// process that started them knows better). The merged summary.
pub fn merge_runs(
    dirs: &[PathBuf],
    out_dir: &Path,
    servers: Option<Vec<crate::summary::ServerInfo>>,
) -> Result<Summary> {
    let mut runs = read_agents(dirs)?;
    // The events move into the merge: one copy of the history in memory.
    let pairs: Vec<(AgentClock, Vec<Event>)> = runs
        .iter_mut()
        .map(|r| (r.clock.clone(), std::mem::take(&mut r.events)))
        .collect();
    let merged = history::agent::merge(&pairs)?;
    drop(pairs);
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = out_dir.join(history::HISTORY_FILES[0]);
    let text = history::synthetic::to_jsonl(&merged);
    let packed = zstd::encode_all(text.as_bytes(), 3).map_err(|e| Error::io(&path, e))?;
    std::fs::write(&path, packed).map_err(|e| Error::io(&path, e))?;
    drop(text);

    let mut analysis = check::analyze_events(&merged, check::AnalysisOptions::default());
    let clocks: Vec<AgentClock> = runs.iter().map(|r| r.clock.clone()).collect();
    let widened = uncertain::check_merged(&merged, &clocks, &analysis.mutex);
    let incidents = if widened.definite > 0 {
        std::mem::take(&mut analysis.mutex.incidents)
    } else {
        Vec::new()
    };
    analysis.mutex = widened.result.clone();
    let snap = metrics_of(&merged).snapshot();
    let mut s = runs[0].summary.clone();
    let duration_s = runs
        .iter()
        .map(|r| r.summary.duration_s)
        .fold(0.0, f64::max)
        .max(1e-9);
    s.verdict = analysis.verdict();
    s.matches_expectation = s.verdict == s.expect;
    s.violations = analysis.mutex.violations;
    s.incidents = incidents;
    s.witnesses = analysis.mutex.witnesses.clone();
    s.verdict_reason = analysis.mutex.reason.clone();
    s.violation_classes = analysis.mutex.classes.clone();
    s.ownership = analysis.ownership;
    s.fencing = analysis.fencing;
    s.liveness = analysis.liveness;
    s.recovery = analysis.recovery;
    s.lost_updates = None;
    s.notes = runs[0]
        .summary
        .notes
        .iter()
        .filter(|n| !n.starts_with("agent "))
        .cloned()
        .chain(clocks.iter().map(clock_note))
        .collect();
    s.ops = snap.ops;
    s.acquire_latency_us = snap.acquire;
    s.acquire_latency_curve = snap.acquire_curve;
    s.release_latency_us = snap.release;
    s.hold_time_us = snap.hold;
    s.throughput_per_s = snap.acquisitions as f64 / duration_s;
    s.throughput_timeline = snap.per_second;
    s.duration_s = duration_s;
    s.clients = runs.iter().map(|r| r.summary.clients).sum();
    s.history_events = merged.len() as u64;
    s.interrupted = runs.iter().any(|r| r.summary.interrupted);
    if let Some(servers) = servers {
        s.servers = servers;
    }
    s.agents = Some(AgentsReport {
        clocks,
        definite: widened.definite,
        definite_across: widened.definite_across,
        possible: widened.possible,
        possible_examples: widened.possible_examples,
    });
    s.write(&out_dir.join("summary.json"))?;
    crate::report::write_run_report(out_dir, &s)?;
    Ok(s)
}

/// Adds to `found` the agent run directories (holding `agent.json`) at or
/// under `dir` (five levels deep at most), in path order.
pub fn find_agent_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut here = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        if d.join(crate::history::AGENT_FILE).is_file() {
            here.push(d);
            continue;
        }
        if depth >= 5 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    here.sort();
    found.extend(here);
}

/// A new run directory for a merged run: `out/<scenario>/<backend>/<timestamp>/`.
pub fn new_merged_dir(out: &Path, scenario: &str, backend: &str) -> Result<PathBuf> {
    super::runner::new_run_dir(out, scenario, backend)
}

/// One line on an agent's clock, for the report's notes.
pub fn clock_note(c: &AgentClock) -> String {
    let ms = |ns: i64| ns as f64 / 1e6;
    let end = c.end.map_or_else(
        || "not measured at the end".to_string(),
        |e| {
            format!(
                "{:+.3} ms ± {:.3} ms at the end",
                ms(e.offset_ns),
                ms(e.bound_ns as i64)
            )
        },
    );
    format!(
        "agent {}/{}: clock offset {:+.3} ms ± {:.3} ms at the start, {end} (reference {}); \
         its times are known within ±{:.3} ms",
        c.index,
        c.count,
        ms(c.start.offset_ns),
        ms(c.start.bound_ns as i64),
        c.reference,
        ms(c.bound_ns() as i64)
    )
}
