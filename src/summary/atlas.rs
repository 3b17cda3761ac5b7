//! `atlas.json` (the contract of the atlas): every backend under every
//! fault that breaks locks in the field, one cell per backend and fault,
//! each cell the outcome of N runs with different seeds (k of N unsafe,
//! the worst incident, the spread of the timings), what was expected of it
//! and why. Written by the atlas run (`mode = "atlas"`), read by its page,
//! its Markdown table and other tools.
//!
//! The cell logic lives here, apart from the runs: [`classify`] reads one
//! run's summary into a [`CellRun`], [`CellRun::not_measured`] and
//! [`CellRun::failed`] say why a run has no outcome, and [`aggregate`]
//! makes the cell from its runs and its expectation.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Summary;
use crate::check::{FencingOutcome, HoldEnd, Verdict};

/// The fault columns, in the order the page shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Column {
    /// No fault: what the lock costs (throughput, acquire latency).
    Baseline,
    /// The holder's process stops (SIGSTOP; a task's pause for recipes)
    /// for 3× its lease or session, then goes on as if nothing happened.
    Pause,
    /// The holder's host is cut off from the servers (bytes stop, the
    /// connections stay open) for 3× its lease or session, then healed.
    Cut,
    /// The holder is killed (SIGKILL): how long until the lock is free.
    Crash,
    /// The servers' clocks jump forward by 2× the lease (a majority of
    /// Redlock's masters).
    Clock,
    /// The server is killed (-9) and started again with its default
    /// persistence (a majority of Redlock's masters).
    Restart,
    /// On the replicated topology: the leader (primary; a minority of
    /// Redlock's masters) killed, restarted 8 s later.
    MemberKilled,
    /// On the replicated topology: the leader cut from its peers, healed
    /// 8 s later (clients still reach it).
    MemberCut,
}

impl Column {
    /// Every column, in page order.
    pub const ALL: [Column; 8] = [
        Column::Baseline,
        Column::Pause,
        Column::Cut,
        Column::Crash,
        Column::Clock,
        Column::Restart,
        Column::MemberKilled,
        Column::MemberCut,
    ];

    /// Its name in the expectation file and `atlas.json`.
    pub fn name(self) -> &'static str {
        match self {
            Column::Baseline => "baseline",
            Column::Pause => "pause",
            Column::Cut => "cut",
            Column::Crash => "crash",
            Column::Clock => "clock",
            Column::Restart => "restart",
            Column::MemberKilled => "member-killed",
            Column::MemberCut => "member-cut",
        }
    }

    /// The column called `name`.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its heading on the page.
    pub fn heading(self) -> &'static str {
        match self {
            Column::Baseline => "no fault",
            Column::Pause => "holder paused",
            Column::Cut => "holder cut off",
            Column::Crash => "holder crashed",
            Column::Clock => "server clock jumps",
            Column::Restart => "server restart",
            Column::MemberKilled => "member killed",
            Column::MemberCut => "member cut",
        }
    }

    /// What it does, in a sentence, for the page's "how to read".
    pub fn describe(self) -> &'static str {
        match self {
            Column::Baseline => {
                "three clients contend for one key, no fault: throughput and acquire latency"
            }
            Column::Pause => {
                "the holder's process stops for 3× its lease or session, then resumes and finishes its hold"
            }
            Column::Cut => {
                "the holder's host is cut off from the servers for 3× its lease or session (bytes stop, connections stay open), then healed"
            }
            Column::Crash => {
                "the holder is killed with SIGKILL; the cell gives the time until another client is granted the lock"
            }
            Column::Clock => {
                "the servers' wall clocks jump forward by 2× the lease (a majority of Redlock's masters)"
            }
            Column::Restart => {
                "the server is killed with SIGKILL and started again at once, with its default persistence"
            }
            Column::MemberKilled => {
                "on the replicated topology, the leader or primary (Redlock: 2 of 5 masters) is killed and restarted 8 s later"
            }
            Column::MemberCut => {
                "on the replicated topology, the leader or primary is cut from its peers for 8 s; clients still reach it"
            }
        }
    }

    /// Whether a run of it can break exclusion (the baseline and crash
    /// columns measure; a violation there is still a finding).
    pub fn is_fault(self) -> bool {
        self != Column::Baseline
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the documentation or the recipe's reasoning says a cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expected {
    /// Exclusion holds in every run.
    Safe,
    /// Exclusion breaks in every run.
    Unsafe,
    /// It depends on timing: some runs may break it, some not.
    Timing,
}

impl Expected {
    /// Its name in the expectation file.
    pub fn name(self) -> &'static str {
        match self {
            Expected::Safe => "safe",
            Expected::Unsafe => "unsafe",
            Expected::Timing => "timing",
        }
    }

    /// The expectation called `name`.
    pub fn from_name(name: &str) -> Option<Expected> {
        [Expected::Safe, Expected::Unsafe, Expected::Timing]
            .into_iter()
            .find(|e| e.name() == name)
    }
}

/// A cell's expectation and its source (a paper, the vendor's docs, an
/// issue, or the recipe's reasoning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// What should happen.
    pub expect: Expected,
    /// Why, with the source.
    pub why: String,
}

/// What one run of a cell found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// Exclusion held.
    Safe,
    /// Two clients held the lock at once.
    Unsafe,
    /// The checker could not tell.
    Unknown,
    /// The fault cannot act on this backend (see `why`).
    NotMeasured,
    /// The run did not complete (see `why`).
    Failed,
}

/// One run of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRun {
    /// Its seed.
    pub seed: u64,
    /// What it found.
    pub found: Found,
    /// Its run page, relative to the atlas page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Why it was not measured or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Overlapping pairs of holds.
    #[serde(default)]
    pub violations: u64,
    /// The longest time in which a holder still held the lock while
    /// others were granted it (from the first such grant to the end of its
    /// hold), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_s: Option<f64>,
    /// The most grants to other clients during one such hold.
    #[serde(default)]
    pub overlapping_grants: u64,
    /// Writes of a stale holder the protected resource accepted.
    #[serde(default)]
    pub stale_accepted: u64,
    /// Writes the resource rejected for a stale fencing token.
    #[serde(default)]
    pub stale_rejected: u64,
    /// How long after another client was granted the lock the earlier
    /// holder's library reported it lost (`lost`), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_after_s: Option<f64>,
    /// The longest stretch of the fault in which nobody was granted the
    /// lock, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_s: Option<f64>,
    /// Crash: from the kill to the next grant to another client, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_after_s: Option<f64>,
    /// Successful acquisitions per second over the run.
    #[serde(default)]
    pub throughput_per_s: f64,
    /// Median acquire latency, microseconds.
    #[serde(default)]
    pub acquire_p50_us: u64,
}

impl CellRun {
    fn empty(seed: u64, found: Found, why: Option<String>) -> CellRun {
        CellRun {
            seed,
            found,
            link: None,
            why,
            violations: 0,
            overlap_s: None,
            overlapping_grants: 0,
            stale_accepted: 0,
            stale_rejected: 0,
            lost_after_s: None,
            unavailable_s: None,
            free_after_s: None,
            throughput_per_s: 0.0,
            acquire_p50_us: 0,
        }
    }

    /// A run the fault cannot act in, and why.
    pub fn not_measured(seed: u64, why: impl Into<String>) -> CellRun {
        CellRun::empty(seed, Found::NotMeasured, Some(why.into()))
    }

    /// A run that did not complete, and why.
    pub fn failed(seed: u64, why: impl Into<String>) -> CellRun {
        CellRun::empty(seed, Found::Failed, Some(why.into()))
    }

    /// Whether it has an outcome (safe or unsafe).
    pub fn measured(&self) -> bool {
        matches!(self.found, Found::Safe | Found::Unsafe)
    }

    /// The figure the cell's spread is about: the overlap for an unsafe
    /// run, the time until free after a crash, else the unavailable time.
    fn figure(&self, column: Column) -> Option<f64> {
        if self.found == Found::Unsafe {
            return self.overlap_s;
        }
        match column {
            Column::Crash => self.free_after_s,
            _ => self.unavailable_s,
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One run's summary as a cell run. `fault` is the start event of the
/// column's fault in the history (`pause-client`), whose recovery entry
/// gives the unavailable time; `free_after_s` is measured from the history
/// by the caller (crash).
pub fn classify(summary: &Summary, fault: Option<&str>, free_after_s: Option<f64>) -> CellRun {
    let mut run = CellRun::empty(summary.seed, Found::Safe, None);
    if let Some(why) = summary
        .notes
        .iter()
        .find(|n| n.contains("did not apply") || n.contains("cannot"))
    {
        run.found = Found::NotMeasured;
        run.why = Some(why.clone());
    }
    if let Some(e) = summary.faults.iter().find_map(|f| f.error.as_ref()) {
        run.found = Found::NotMeasured;
        run.why = Some(e.clone());
    }
    if run.found == Found::Safe {
        run.found = match summary.verdict {
            Verdict::Valid => Found::Safe,
            Verdict::Invalid => Found::Unsafe,
            Verdict::Unknown => {
                run.why = summary.verdict_reason.clone();
                Found::Unknown
            }
            Verdict::NotChecked => {
                run.why = Some("the history was not recorded".into());
                Found::Unknown
            }
        };
    }
    run.violations = summary.violations;
    // Each incident is one hold that others' grants overlapped: from the
    // first of them to the end of that hold (the run's end if it never
    // ended), two clients held the lock.
    let run_end = (summary.duration_s * 1e9) as u64;
    run.overlap_s = summary
        .incidents
        .iter()
        .map(|i| {
            secs(
                i.holder
                    .end_ns
                    .unwrap_or(run_end)
                    .saturating_sub(i.first_overlap_ns),
            )
        })
        .reduce(f64::max)
        .or_else(|| {
            summary
                .witnesses
                .iter()
                .map(|w| {
                    secs(
                        w.overlap_end_ns
                            .unwrap_or(run_end)
                            .saturating_sub(w.overlap_start_ns),
                    )
                })
                .reduce(f64::max)
        });
    run.overlapping_grants = summary
        .incidents
        .iter()
        .map(|i| i.overlaps)
        .max()
        .unwrap_or(0);
    run.lost_after_s = summary
        .witnesses
        .iter()
        .filter(|w| w.first.end == HoldEnd::Lost)
        .filter_map(|w| {
            w.first
                .end_ns
                .map(|e| secs(e.saturating_sub(w.overlap_start_ns)))
        })
        .reduce(f64::max);
    // The stale holders' writes: without a fence the resource takes them
    // all; with one, it takes those whose token is not stale.
    let stale_writes: u64 = summary
        .incidents
        .iter()
        .map(|i| u64::from(i.writes.accepted))
        .sum();
    run.stale_accepted = if summary.fencing.outcome == FencingOutcome::NoFence {
        stale_writes
    } else {
        summary.fencing.stale_accepted
    };
    run.stale_rejected = summary
        .incidents
        .iter()
        .map(|i| u64::from(i.writes.rejected))
        .sum();
    if let Some(fault) = fault
        && let Some(f) = summary
            .recovery
            .faults
            .iter()
            .find(|f| f.started_as.as_deref() == Some(fault))
    {
        // Nobody was granted the lock while the fault lasted: unavailable
        // from its start to the first grant after its end (a restarted
        // server's own recovery counts). Otherwise the longest stretch of
        // the fault without a grant.
        run.unavailable_s = if f.acquired_during == 0 {
            f.start_ns
                .zip(f.next_acquire_ms)
                .map(|(start, next)| secs(f.end_ns.saturating_sub(start)) + next / 1e3)
        } else {
            f.longest_gap_ms.map(|ms| ms / 1e3)
        };
    }
    run.free_after_s = free_after_s;
    run.throughput_per_s = summary.throughput_per_s;
    run.acquire_p50_us = summary.acquire_latency_us.p50;
    run
}

/// How a cell stands against its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// What happened is what was expected.
    Agrees,
    /// What happened contradicts the expectation: `lockbench run` exits 1.
    Contradicts,
    /// Expected to depend on timing: never a contradiction.
    Timing,
    /// No run could measure it (the fault cannot act on this backend).
    NotMeasured,
    /// No run completed, or the checker could not tell.
    Failed,
}

/// One backend under one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasCell {
    /// The column.
    pub column: Column,
    /// What was expected, and why.
    pub expect: Expectation,
    /// Its runs, one per seed.
    pub runs: Vec<CellRun>,
    /// Runs with an outcome (safe or unsafe).
    pub measured: u64,
    /// Of those, the unsafe ones.
    pub unsafe_runs: u64,
    /// How it stands against the expectation.
    pub status: Status,
    /// The cell in words.
    pub words: String,
    /// The run the words' incident comes from (the worst), relative to the
    /// page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl AtlasCell {
    /// Green (safe as expected), amber (timing, unknown, not measured) or
    /// red (unsafe in some run, or a contradiction).
    pub fn colour(&self) -> &'static str {
        match self.status {
            Status::Contradicts => "red",
            Status::NotMeasured | Status::Failed => "grey",
            _ if self.unsafe_runs > 0 => "red",
            Status::Timing => "amber",
            _ => "green",
        }
    }
}

/// `2.0–6.1 s`, `0.03 s`, `6985 /s`: the spread of `values`, to a
/// precision that shows them (two decimals under one, none over 100).
fn range(values: &[f64], unit: &str) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let digits = if hi >= 100.0 {
        0
    } else if hi < 1.0 {
        2
    } else {
        1
    };
    let close = (hi - lo).abs() < 0.5 * 10f64.powi(-digits);
    if values.is_empty() {
        String::new()
    } else if close {
        format!("{lo:.digits$} {unit}", digits = digits as usize)
    } else {
        format!(
            "{lo:.digits$}–{hi:.digits$} {unit}",
            digits = digits as usize
        )
    }
}

/// The cell from its runs and its expectation.
pub fn aggregate(column: Column, expect: Expectation, runs: Vec<CellRun>) -> AtlasCell {
    let measured = runs.iter().filter(|r| r.measured()).count() as u64;
    let unsafe_runs = runs.iter().filter(|r| r.found == Found::Unsafe).count() as u64;
    let n = runs.len() as u64;
    let worst = runs
        .iter()
        .filter(|r| r.found == Found::Unsafe)
        .max_by(|a, b| {
            (a.stale_accepted, a.overlap_s.unwrap_or(0.0))
                .partial_cmp(&(b.stale_accepted, b.overlap_s.unwrap_or(0.0)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let status = if measured == 0 {
        if runs.iter().all(|r| r.found == Found::NotMeasured) && n > 0 {
            Status::NotMeasured
        } else {
            Status::Failed
        }
    } else {
        match expect.expect {
            Expected::Timing => Status::Timing,
            Expected::Safe if unsafe_runs > 0 => Status::Contradicts,
            Expected::Unsafe if unsafe_runs == 0 => Status::Contradicts,
            _ => Status::Agrees,
        }
    };
    let figures: Vec<f64> = runs
        .iter()
        .filter(|r| r.measured())
        .filter(|r| (r.found == Found::Unsafe) == (unsafe_runs > 0))
        .filter_map(|r| r.figure(column))
        .collect();
    let words = match status {
        Status::NotMeasured | Status::Failed if measured == 0 => {
            let why = runs
                .iter()
                .find_map(|r| r.why.clone())
                .unwrap_or_else(|| "no run".into());
            if status == Status::NotMeasured {
                format!("not measured: {why}")
            } else {
                format!("no outcome: {why}")
            }
        }
        _ if column == Column::Baseline => {
            let rates: Vec<f64> = runs.iter().map(|r| r.throughput_per_s).collect();
            let mut p50: Vec<u64> = runs.iter().map(|r| r.acquire_p50_us).collect();
            p50.sort_unstable();
            let mid = p50.get(p50.len() / 2).copied().unwrap_or(0);
            let safe = if unsafe_runs > 0 {
                format!("unsafe in {unsafe_runs}/{measured}; ")
            } else {
                String::new()
            };
            format!(
                "{safe}{}, acquire p50 {}",
                range(&rates, "acquires/s"),
                fmt_us(mid)
            )
        }
        _ => match worst {
            Some(w) => {
                let mut s = format!(
                    "unsafe in {unsafe_runs}/{measured}: 2 holders for {}",
                    if figures.is_empty() {
                        "?".to_string()
                    } else {
                        range(&figures, "s")
                    }
                );
                if w.overlapping_grants > 1 {
                    s.push_str(&format!(" ({} grants)", w.overlapping_grants));
                }
                if w.stale_accepted > 0 {
                    s.push_str(", the stale write accepted");
                } else if w.stale_rejected > 0 {
                    s.push_str(", but the fence rejected the stale write");
                }
                if let Some(l) = w.lost_after_s {
                    s.push_str(&format!(
                        "; the library reported the lock lost {l:.1} s after another client got it"
                    ));
                }
                s
            }
            None => {
                let mut s = format!("safe in {measured}/{measured}");
                if !figures.is_empty() {
                    let what = if column == Column::Crash {
                        "free after"
                    } else {
                        "unavailable for"
                    };
                    s.push_str(&format!("; {what} {}", range(&figures, "s")));
                }
                s
            }
        },
    };
    let link = worst
        .or_else(|| runs.iter().find(|r| r.measured()))
        .and_then(|r| r.link.clone());
    AtlasCell {
        column,
        expect,
        runs,
        measured,
        unsafe_runs,
        status,
        words,
        link,
    }
}

fn fmt_us(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// One backend's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtlasRow {
    /// The backend.
    pub backend: String,
    /// Its recipe in one line.
    pub recipe: String,
    /// The server kind it runs on (`None`: in-process).
    #[serde(default)]
    pub server: Option<String>,
    /// The library and version, for a driver backend (from its runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The servers' versions seen in its runs.
    #[serde(default)]
    pub versions: Vec<String>,
    /// The hold limit its columns are timed by: the scenario's lease, or
    /// the session a silent client's lock lives for.
    pub hold_limit_ms: u64,
    /// Its cells, in [`Column::ALL`] order.
    pub cells: Vec<AtlasCell>,
}

/// The whole atlas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Atlas {
    /// The scenario's name.
    pub scenario: String,
    /// The first seed; run `r` of a cell used `seed + r`.
    pub seed: u64,
    /// Runs per cell.
    pub repeat: u32,
    /// The base lease, ms.
    pub lease_ms: u64,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole atlas, seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// lockbench's version.
    pub lockbench_version: String,
    /// The command that made it.
    #[serde(default)]
    pub command: String,
    /// The machine it ran on (OS, cores, memory).
    #[serde(default)]
    pub machine: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// One row per backend.
    pub rows: Vec<AtlasRow>,
}

impl Atlas {
    /// The cells whose outcome contradicts their expectation.
    pub fn contradictions(&self) -> Vec<(&AtlasRow, &AtlasCell)> {
        self.rows
            .iter()
            .flat_map(|r| r.cells.iter().map(move |c| (r, c)))
            .filter(|(_, c)| c.status == Status::Contradicts)
            .collect()
    }

    /// The cells no run completed.
    pub fn failures(&self) -> Vec<(&AtlasRow, &AtlasCell)> {
        self.rows
            .iter()
            .flat_map(|r| r.cells.iter().map(move |c| (r, c)))
            .filter(|(_, c)| c.status == Status::Failed)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(found: Found, overlap: Option<f64>) -> CellRun {
        let mut r = CellRun::empty(1, found, None);
        r.overlap_s = overlap;
        r.violations = u64::from(found == Found::Unsafe);
        r.unavailable_s = Some(1.0);
        r
    }

    fn expect(e: Expected) -> Expectation {
        Expectation {
            expect: e,
            why: "because".into(),
        }
    }

    #[test]
    fn k_of_n_unsafe_is_counted_and_the_worst_overlap_is_shown() {
        let runs = vec![
            run(Found::Safe, None),
            run(Found::Unsafe, Some(2.0)),
            run(Found::Unsafe, Some(6.1)),
        ];
        let c = aggregate(Column::Pause, expect(Expected::Timing), runs);
        assert_eq!((c.unsafe_runs, c.measured), (2, 3));
        assert_eq!(c.status, Status::Timing);
        assert!(
            c.words
                .starts_with("unsafe in 2/3: 2 holders for 2.0–6.1 s"),
            "{}",
            c.words
        );
        assert_eq!(c.colour(), "red");
    }

    #[test]
    fn a_contradicted_expectation_is_marked_and_timing_never_is() {
        let unsafe_once = || vec![run(Found::Safe, None), run(Found::Unsafe, Some(1.0))];
        let c = aggregate(Column::Cut, expect(Expected::Safe), unsafe_once());
        assert_eq!(c.status, Status::Contradicts);
        let c = aggregate(Column::Cut, expect(Expected::Timing), unsafe_once());
        assert_eq!(c.status, Status::Timing);
        let c = aggregate(Column::Cut, expect(Expected::Unsafe), unsafe_once());
        assert_eq!(c.status, Status::Agrees);
        let safe = vec![run(Found::Safe, None), run(Found::Safe, None)];
        let c = aggregate(Column::Cut, expect(Expected::Unsafe), safe.clone());
        assert_eq!(c.status, Status::Contradicts);
        let c = aggregate(Column::Cut, expect(Expected::Safe), safe);
        assert_eq!(c.status, Status::Agrees);
        assert_eq!(c.words, "safe in 2/2; unavailable for 1.0 s");
        assert_eq!(c.colour(), "green");
    }

    #[test]
    fn a_cell_no_run_could_measure_says_why_and_is_no_contradiction() {
        let runs = vec![CellRun::not_measured(
            1,
            "memcached's clock cannot be moved",
        )];
        let c = aggregate(Column::Clock, expect(Expected::Unsafe), runs);
        assert_eq!(c.status, Status::NotMeasured);
        assert_eq!(c.words, "not measured: memcached's clock cannot be moved");
        let runs = vec![CellRun::failed(1, "servers did not start")];
        let c = aggregate(Column::Clock, expect(Expected::Safe), runs);
        assert_eq!(c.status, Status::Failed);
    }

    #[test]
    fn the_fence_and_the_lost_report_are_told() {
        let mut fenced = run(Found::Unsafe, Some(3.0));
        fenced.stale_rejected = 1;
        fenced.lost_after_s = Some(4.2);
        let c = aggregate(Column::Pause, expect(Expected::Unsafe), vec![fenced]);
        assert!(
            c.words.contains("but the fence rejected the stale write"),
            "{}",
            c.words
        );
        assert!(
            c.words
                .contains("reported the lock lost 4.2 s after another client got it"),
            "{}",
            c.words
        );
        let mut accepted = run(Found::Unsafe, Some(3.0));
        accepted.stale_accepted = 1;
        let c = aggregate(Column::Pause, expect(Expected::Unsafe), vec![accepted]);
        assert!(c.words.contains("the stale write accepted"), "{}", c.words);
    }

    #[test]
    fn names_round_trip() {
        for c in Column::ALL {
            assert_eq!(Column::from_name(c.name()), Some(c));
        }
        for e in [Expected::Safe, Expected::Unsafe, Expected::Timing] {
            assert_eq!(Expected::from_name(e.name()), Some(e));
        }
    }
}
