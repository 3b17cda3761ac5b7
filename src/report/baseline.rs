//! Baselines and the regression gate: a new run against the newest earlier
//! run of the same scenario and backend.
//!
//! The comparison is written into the run directory as `baseline.json`, so
//! the run page and the comparison page show it whenever they are rebuilt.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::check::Verdict;
use crate::error::{Error, Result};
use crate::summary::Summary;

/// The file in a run directory that holds its [`BaselineComparison`].
pub const BASELINE_FILE: &str = "baseline.json";

/// A run compared with its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The baseline's run directory.
    pub baseline_dir: String,
    /// The threshold, percent.
    pub threshold_pct: f64,
    /// Baseline acquire p99, µs.
    pub baseline_p99_us: u64,
    /// This run's acquire p99, µs.
    pub p99_us: u64,
    /// Baseline throughput, acquisitions / s.
    pub baseline_throughput_per_s: f64,
    /// This run's throughput, acquisitions / s.
    pub throughput_per_s: f64,
    /// Baseline verdict and violation count.
    pub baseline_verdict: Verdict,
    /// Baseline violations.
    pub baseline_violations: u64,
    /// Each regression found, one sentence each; empty: none.
    pub regressions: Vec<String>,
}

impl BaselineComparison {
    /// True when the run regressed.
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Rank of a verdict, worse is higher.
fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Valid => 0,
        Verdict::Unknown | Verdict::NotChecked => 1,
        Verdict::Invalid => 2,
    }
}

/// Compares `new` with `base`: a worse verdict or violations where there were
/// none, acquire p99 or throughput worse by more than `threshold_pct` percent.
pub fn compare(
    new: &Summary,
    base: &Summary,
    base_dir: &Path,
    threshold_pct: f64,
) -> BaselineComparison {
    let mut regressions = Vec::new();
    if rank(new.verdict) > rank(base.verdict) {
        regressions.push(format!(
            "verdict got worse: {} (baseline {})",
            new.verdict, base.verdict
        ));
    } else if new.violations > 0 && base.violations == 0 {
        regressions.push(format!(
            "new violations: {} (baseline none)",
            new.violations
        ));
    }
    let limit = 1.0 + threshold_pct / 100.0;
    let (p99, bp99) = (new.acquire_latency_us.p99, base.acquire_latency_us.p99);
    if new.acquire_latency_us.count > 0
        && base.acquire_latency_us.count > 0
        && p99 as f64 > bp99 as f64 * limit
    {
        regressions.push(format!(
            "acquire p99 latency regressed: {p99} µs vs baseline {bp99} µs ({:+.0} %, threshold {threshold_pct} %)",
            pct(p99 as f64, bp99 as f64)
        ));
    }
    let (tp, btp) = (new.throughput_per_s, base.throughput_per_s);
    if btp > 0.0 && tp * limit < btp {
        regressions.push(format!(
            "throughput regressed: {tp:.1}/s vs baseline {btp:.1}/s ({:+.0} %, threshold {threshold_pct} %)",
            pct(tp, btp)
        ));
    }
    BaselineComparison {
        baseline_dir: base_dir.display().to_string(),
        threshold_pct,
        baseline_p99_us: bp99,
        p99_us: p99,
        baseline_throughput_per_s: btp,
        throughput_per_s: tp,
        baseline_verdict: base.verdict,
        baseline_violations: base.violations,
        regressions,
    }
}

/// Relative change of `new` against `base`, percent.
pub(crate) fn pct(new: f64, base: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        (new - base) / base * 100.0
    }
}

/// The newest run of `scenario` on `backend` under `dir`
/// (`dir/<scenario>/<backend>/<timestamp>/summary.json`), other than
/// `exclude`. Newest: the latest `started_at`, then the largest directory
/// name. `None` when there is none; unreadable summaries are passed over.
pub fn find_baseline(
    dir: &Path,
    scenario: &str,
    backend: &str,
    exclude: Option<&Path>,
) -> Option<(PathBuf, Summary)> {
    let parent = dir.join(scenario).join(backend);
    let entries = std::fs::read_dir(&parent).ok()?;
    let exclude = exclude.and_then(|p| p.canonicalize().ok());
    let mut best: Option<(String, String, PathBuf, Summary)> = None;
    for entry in entries.flatten().take(100_000) {
        let path = entry.path();
        if exclude.is_some() && path.canonicalize().ok() == exclude {
            continue;
        }
        let Ok(s) = Summary::read(&path.join("summary.json")) else {
            continue;
        };
        if s.scenario != scenario || s.backend != backend {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let newer = match &best {
            None => true,
            Some((at, n, _, _)) => (&s.started_at, &name) > (at, n),
        };
        if newer {
            best = Some((s.started_at.clone(), name, path, s));
        }
    }
    best.map(|(_, _, p, s)| (p, s))
}

/// Writes `cmp` as `baseline.json` into `run_dir`.
pub fn write(run_dir: &Path, cmp: &BaselineComparison) -> Result<()> {
    let path = run_dir.join(BASELINE_FILE);
    let json = serde_json::to_string_pretty(cmp).map_err(|e| super::report_error(&path, e))?;
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
}

/// Reads `baseline.json` of `run_dir`, if there is one and it parses.
pub fn read(run_dir: &Path) -> Option<BaselineComparison> {
    let text = std::fs::read_to_string(run_dir.join(BASELINE_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The HTML section for a run page (empty without a comparison).
pub(crate) fn section(cmp: Option<&BaselineComparison>) -> String {
    use super::html::escape;
    let Some(c) = cmp else {
        return String::new();
    };
    let mut out = String::from("<section>\n<h2>Against the baseline</h2>\n");
    if c.regressed() {
        out.push_str("<div class=\"regression\"><strong>REGRESSION</strong><ul>");
        for r in &c.regressions {
            out.push_str(&format!("<li>{}</li>", escape(r)));
        }
        out.push_str("</ul></div>\n");
    } else {
        out.push_str(&format!(
            "<p class=\"expect\">✓ no regression (threshold {} %)</p>\n",
            c.threshold_pct
        ));
    }
    out.push_str(&format!(
        "<table class=\"kv\"><tbody>\
         <tr><th>baseline run</th><td><code>{}</code></td></tr>\
         <tr><th>verdict</th><td>{} (baseline {}, {} violations)</td></tr>\
         <tr><th>acquire p99</th><td>{} µs (baseline {} µs, {:+.0} %)</td></tr>\
         <tr><th>throughput</th><td>{:.1} / s (baseline {:.1} / s, {:+.0} %)</td></tr>\
         </tbody></table>\n</section>",
        escape(&c.baseline_dir),
        if c.regressions
            .iter()
            .any(|r| r.contains("verdict") || r.contains("violations"))
        {
            "worse"
        } else {
            "no worse"
        },
        escape(c.baseline_verdict.as_str()),
        c.baseline_violations,
        c.p99_us,
        c.baseline_p99_us,
        pct(c.p99_us as f64, c.baseline_p99_us as f64),
        c.throughput_per_s,
        c.baseline_throughput_per_s,
        pct(c.throughput_per_s, c.baseline_throughput_per_s),
    ));
    out
}
