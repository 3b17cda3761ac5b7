//! The page comparing several runs: `comparison.html`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::charts::{self, Curve};
use super::html::{escape, fill, fmt_count, fmt_rate, href, relative_path};
use super::report_error;
use super::run::{figure, verdict_class};
use crate::error::Result;
use crate::summary::Summary;

const TEMPLATE: &str = include_str!("comparison.html");

/// The comparison page; `path` is where it will be written, `out_dir` the
/// directory links are relative to.
pub(crate) fn render(path: &Path, out_dir: &Path, runs: &[(PathBuf, Summary)]) -> Result<String> {
    let labels = labels(runs);

    let curves: Vec<Curve<'_>> = runs
        .iter()
        .zip(&labels)
        .map(|((_, s), label)| Curve {
            label: label.clone(),
            points: &s.acquire_latency_curve,
        })
        .collect();
    let latency_chart = if curves.is_empty() {
        None
    } else {
        charts::latency_chart(path, "Acquire latency by percentile", &curves, None)?
    };
    let latency_chart = figure(
        latency_chart,
        "One line per run. Latency from when a client meant to start an acquire to its \
         <code>ok</code>; each step right on the x axis adds a nine.",
        "No latency chart: none of the runs recorded a successful acquisition.",
    );

    let bars: Vec<(String, f64)> = runs
        .iter()
        .zip(&labels)
        .map(|((_, s), label)| (label.clone(), s.throughput_per_s))
        .collect();
    let throughput_chart = figure(
        charts::throughput_bars(path, &bars)?,
        "Mean successful acquisitions per second over each run.",
        "No throughput chart: there are no runs.",
    );

    let scenarios: BTreeSet<&str> = runs.iter().map(|(_, s)| s.scenario.as_str()).collect();
    let backends: BTreeSet<&str> = runs.iter().map(|(_, s)| s.backend.as_str()).collect();
    let heading = match scenarios.len() {
        0 => "No runs".to_string(),
        1 => format!(
            "{} — {} backend{}",
            scenarios.iter().next().copied().unwrap_or_default(),
            backends.len(),
            if backends.len() == 1 { "" } else { "s" }
        ),
        n => format!("{} runs of {n} scenarios", runs.len()),
    };
    let mismatches = runs.iter().filter(|(_, s)| !s.matches_expectation).count();
    let meta = format!(
        "{} run{} · {} as the scenario expects{}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        runs.len() - mismatches,
        if mismatches > 0 {
            format!(" · {mismatches} not as expected")
        } else {
            String::new()
        }
    );

    let vars = [
        ("base_css", super::BASE_CSS.to_string()),
        ("title", escape(&format!("lockbench comparison: {heading}"))),
        ("version", escape(env!("CARGO_PKG_VERSION"))),
        ("heading", escape(&heading)),
        ("meta", escape(&meta)),
        ("table", table(out_dir, runs, &labels)),
        ("latency_chart", latency_chart),
        ("throughput_chart", throughput_chart),
    ];
    fill(TEMPLATE, &vars).map_err(|m| report_error(path, m))
}

/// A label per run for legends: the backend, with the scenario when the runs
/// cover several, and a number when that is still ambiguous.
fn labels(runs: &[(PathBuf, Summary)]) -> Vec<String> {
    let many_scenarios = runs
        .iter()
        .map(|(_, s)| s.scenario.as_str())
        .collect::<BTreeSet<_>>()
        .len()
        > 1;
    let base: Vec<String> = runs
        .iter()
        .map(|(_, s)| {
            if many_scenarios {
                format!("{} · {}", s.backend, s.scenario)
            } else {
                s.backend.clone()
            }
        })
        .collect();
    base.iter()
        .enumerate()
        .map(|(i, label)| {
            if base.iter().filter(|l| *l == label).count() > 1 {
                format!("{label} #{}", i + 1)
            } else {
                label.clone()
            }
        })
        .collect()
}

fn table(out_dir: &Path, runs: &[(PathBuf, Summary)], labels: &[String]) -> String {
    if runs.is_empty() {
        return "<p class=\"nodata\">No runs to compare.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"wide\"><table>\n<thead><tr><th class=\"num\">run</th><th>scenario</th><th>backend</th>\
         <th>verdict</th><th>expected</th><th class=\"num\">violations</th>\
         <th class=\"num\">throughput / s</th><th class=\"num\">acquire p50 (µs)</th>\
         <th class=\"num\">acquire p99 (µs)</th><th>report</th></tr></thead>\n<tbody>\n",
    );
    for (i, ((dir, s), label)) in runs.iter().zip(labels).enumerate() {
        let c = charts::color(i);
        let swatch = format!(
            "<span class=\"swatch\" style=\"background: rgb({}, {}, {})\"></span>",
            c.0, c.1, c.2
        );
        let expected = if s.matches_expectation {
            format!("✓ {}", escape(s.expect.as_str()))
        } else {
            format!(
                "<span class=\"mismatch\">✗ expected {}</span>",
                escape(s.expect.as_str())
            )
        };
        let (p50, p99) = if s.acquire_latency_us.count == 0 {
            ("—".to_string(), "—".to_string())
        } else {
            (
                fmt_count(s.acquire_latency_us.p50),
                fmt_count(s.acquire_latency_us.p99),
            )
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let link = relative_path(out_dir, dir)
            .map(|rel| {
                if rel == "." {
                    "index.html".to_string()
                } else {
                    format!("{rel}/index.html")
                }
            })
            .map(|rel| {
                format!(
                    "<a href=\"{}\" title=\"{}\">{}</a>",
                    escape(&href(&rel)),
                    escape(&dir.display().to_string()),
                    escape(&name)
                )
            })
            .unwrap_or_else(|| format!("<code>{}</code>", escape(&dir.display().to_string())));
        let _ = writeln!(
            out,
            "<tr><td class=\"num\" title=\"{}\">{swatch}{}</td><td>{}</td><td><code>{}</code></td>\
             <td><span class=\"badge {}\">{}</span></td><td>{expected}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{p50}</td>\
             <td class=\"num\">{p99}</td><td>{link}</td></tr>",
            escape(label),
            i + 1,
            escape(&s.scenario),
            escape(&s.backend),
            verdict_class(s.verdict),
            escape(s.verdict.as_str()),
            fmt_count(s.violations),
            escape(&fmt_rate(s.throughput_per_s)),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}
