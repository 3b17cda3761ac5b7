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
        ("regressions", regressions(runs, &labels)),
        ("checks", checks_table(runs, &labels)),
        ("matrix", matrix_section(out_dir, runs)),
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
            escape(&s.backend_label()),
            verdict_class(s.verdict),
            escape(s.verdict.as_str()),
            fmt_count(s.violations),
            escape(&fmt_rate(s.throughput_per_s)),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// The violation classes of a run, as HTML.
pub(crate) fn classes_text(s: &Summary) -> String {
    if s.violation_classes.is_empty() {
        return if s.violations == 0 {
            "none".into()
        } else {
            "not classified".into()
        };
    }
    s.violation_classes
        .iter()
        .map(|(c, n)| {
            format!(
                "<span class=\"red\">{}</span> × {}",
                escape(c),
                fmt_count(*n)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ownership, as HTML.
pub(crate) fn ownership_text(s: &Summary) -> String {
    let o = &s.ownership;
    if let Some(why) = &o.reason {
        return format!("{}: {}", escape(o.verdict.as_str()), escape(why));
    }
    if o.violations == 0 {
        format!(
            "{} (no release by a non-holder)",
            escape(o.verdict.as_str())
        )
    } else {
        format!(
            "<span class=\"red\">{}</span>: {} release{} by a non-holder",
            escape(o.verdict.as_str()),
            fmt_count(o.violations),
            if o.violations == 1 { "" } else { "s" }
        )
    }
}

/// The fencing outcome, as HTML.
pub(crate) fn fencing_text(s: &Summary) -> String {
    use crate::check::FencingOutcome as O;
    let f = &s.fencing;
    if let Some(why) = &f.reason {
        return format!("unknown: {}", escape(why));
    }
    let what = match f.outcome {
        O::NoFence => "no fencing tokens (the backend has none)".to_string(),
        O::Safe => "safe: tokens only grew".to_string(),
        O::ExclusionViolatedResourceSafe => {
            "exclusion violated, but the resource rejected every stale write".to_string()
        }
        O::StaleWritesAccepted => format!(
            "<span class=\"red\">stale writes accepted: {}</span>",
            fmt_count(f.stale_accepted)
        ),
    };
    if f.writes == 0 {
        what
    } else {
        format!(
            "{what} · {} writes, {} accepted, {} rejected",
            fmt_count(f.writes),
            fmt_count(f.accepted),
            fmt_count(f.rejected)
        )
    }
}

/// Liveness, as HTML.
pub(crate) fn liveness_text(s: &Summary) -> String {
    let l = &s.liveness;
    if let Some(why) = &l.reason {
        return format!("unknown: {}", escape(why));
    }
    let mut out = format!(
        "Jain index {:.3} · longest wait {:.1} ms{} · acquisitions per client {}–{}",
        l.jain_index,
        l.longest_wait_ms,
        l.longest_wait_process
            .map(|p| format!(" (client {p})"))
            .unwrap_or_default(),
        fmt_count(l.min_acquisitions),
        fmt_count(l.max_acquisitions)
    );
    if l.starved_clients > 0 {
        let _ = write!(
            out,
            " · <span class=\"red\">{} starved</span>",
            fmt_count(l.starved_clients)
        );
    }
    if !l.deadlocks.is_empty() {
        let _ = write!(
            out,
            " · <span class=\"red\">{} deadlock{}</span>",
            l.deadlocks.len(),
            if l.deadlocks.len() == 1 { "" } else { "s" }
        );
    }
    out
}

/// Fault recovery, as HTML.
pub(crate) fn recovery_text(s: &Summary) -> String {
    let r = &s.recovery;
    if let Some(why) = &r.reason {
        return format!("unknown: {}", escape(why));
    }
    if s.faults.is_empty() && r.faults.is_empty() {
        return "no faults injected".into();
    }
    let mut parts: Vec<String> = r
        .faults
        .iter()
        .take(6)
        .map(|f| match f.next_acquire_ms {
            Some(ms) => format!("{} → next acquire {:.0} ms", escape(&f.fault), ms),
            None => format!(
                "{} → <span class=\"red\">no acquire after it</span>",
                escape(&f.fault)
            ),
        })
        .collect();
    if r.faults.len() > 6 {
        parts.push(format!("… ({} fault ends)", r.faults.len()));
    }
    parts.push(format!(
        "unavailable {:.0} ms ({:.1} %)",
        r.unavailable_ms,
        r.unavailable_fraction * 100.0
    ));
    parts.push(format!(
        "{} info during faults",
        fmt_count(r.info_during_faults)
    ));
    parts.join(" · ")
}

/// The table of verdicts, classes, fencing, liveness and recovery per run.
fn checks_table(runs: &[(PathBuf, Summary)], labels: &[String]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<div class=\"wide\"><table class=\"checks\">\n<thead><tr><th>run</th><th>verdict (expected)</th>\
         <th>violation classes</th><th>ownership</th><th>fencing</th><th>liveness</th>\
         <th>fault outcomes</th></tr></thead>\n<tbody>\n",
    );
    for ((_, s), label) in runs.iter().zip(labels) {
        let _ = writeln!(
            out,
            "<tr><th><code>{}</code></th><td><span class=\"badge {}\">{}</span> ({}{})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label),
            verdict_class(s.verdict),
            escape(s.verdict.as_str()),
            escape(s.expect.as_str()),
            if s.matches_expectation {
                " ✓"
            } else {
                " <span class=\"mismatch\">✗</span>"
            },
            classes_text(s),
            ownership_text(s),
            fencing_text(s),
            liveness_text(s),
            recovery_text(s),
        );
    }
    out.push_str(
        "</tbody></table></div>\n<p class=\"note\">Violation classes: <code>lease-expired</code> \
         (the earlier holder outlived its lease: a slow or paused client), <code>lock-lost</code> \
         (the overlap began while its lease was valid: failover, restart, clock), \
         <code>unknown-lease</code> (the backend grants no lease). Jain index: 1 when every client \
         acquired equally often. Fault outcomes: time from each fault's end to the next successful \
         acquire; time in which clients waited and nobody held the key.</p>",
    );
    out
}

/// The regression gate's findings, when the runs were compared with a
/// baseline (`baseline.json` in their run directories).
fn regressions(runs: &[(PathBuf, Summary)], labels: &[String]) -> String {
    let found: Vec<(&String, super::baseline::BaselineComparison)> = runs
        .iter()
        .zip(labels)
        .filter_map(|((dir, _), l)| super::baseline::read(dir).map(|c| (l, c)))
        .collect();
    if found.is_empty() {
        return String::new();
    }
    let mut out = String::from("<section>\n<h2>Against the baseline</h2>\n");
    let bad = found.iter().filter(|(_, c)| c.regressed()).count();
    if bad > 0 {
        let _ = write!(
            out,
            "<div class=\"regression\"><strong>REGRESSION in {bad} of {} runs</strong><ul>",
            found.len()
        );
        for (l, c) in &found {
            for r in &c.regressions {
                let _ = write!(out, "<li><code>{}</code>: {}</li>", escape(l), escape(r));
            }
        }
        out.push_str("</ul></div>\n");
    } else {
        let _ = writeln!(
            out,
            "<p>✓ no regression in {} runs compared with their baselines.</p>",
            found.len()
        );
    }
    out.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th>run</th><th class=\"num\">acquire p99 (µs)</th>\
         <th class=\"num\">baseline</th><th class=\"num\">throughput / s</th><th class=\"num\">baseline</th>\
         <th>baseline run</th></tr></thead>\n<tbody>\n",
    );
    for (l, c) in &found {
        let _ = writeln!(
            out,
            "<tr><th><code>{}</code></th><td class=\"num\">{} ({:+.0} %)</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.1} ({:+.0} %)</td><td class=\"num\">{:.1}</td><td><code>{}</code></td></tr>",
            escape(l),
            fmt_count(c.p99_us),
            super::baseline::pct(c.p99_us as f64, c.baseline_p99_us as f64),
            fmt_count(c.baseline_p99_us),
            c.throughput_per_s,
            super::baseline::pct(c.throughput_per_s, c.baseline_throughput_per_s),
            c.baseline_throughput_per_s,
            escape(&c.baseline_dir)
        );
    }
    out.push_str("</tbody></table></div>\n</section>");
    out
}

/// Where a `matrix.json` from a properties run may be: beside the page and
/// the runs' scenario directories.
fn find_matrix(out_dir: &Path, runs: &[(PathBuf, Summary)]) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = vec![out_dir.to_path_buf()];
    if let Some(p) = out_dir.parent() {
        roots.push(p.to_path_buf());
    }
    for (dir, _) in runs {
        // out/<scenario>/<backend>/<timestamp>: `out` is three up.
        if let Some(out) = dir.ancestors().nth(3) {
            roots.push(out.to_path_buf());
        }
    }
    roots.dedup();
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for root in roots {
        let mut candidates = vec![root.join("matrix.json")];
        if let Ok(entries) = std::fs::read_dir(&root) {
            candidates.extend(
                entries
                    .flatten()
                    .take(10_000)
                    .map(|e| e.path().join("matrix.json")),
            );
        }
        for c in candidates {
            let Ok(meta) = std::fs::metadata(&c) else {
                continue;
            };
            let Ok(t) = meta.modified() else { continue };
            if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                best = Some((t, c));
            }
        }
    }
    best.map(|(_, p)| p)
}

/// The property matrix, if a properties run left one nearby.
fn matrix_section(out_dir: &Path, runs: &[(PathBuf, Summary)]) -> String {
    let missing = "<p class=\"nodata\">No property matrix found beside these runs. Produce one \
                   with <code>lockbench run scenarios/properties.toml</code> (same <code>--out</code> \
                   directory), then rebuild this page.</p>";
    let Some(path) = find_matrix(out_dir, runs) else {
        return missing.into();
    };
    let matrix: crate::summary::matrix::Matrix = match std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(m) => m,
        None => return missing.into(),
    };
    let mut out =
        String::from("<div class=\"wide\"><table class=\"matrix\">\n<thead><tr><th>backend</th>");
    for (key, title) in crate::summary::matrix::PROPERTIES {
        let _ = write!(out, "<th>{}</th>", escape(&matrix.heading(key, title)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &matrix.rows {
        let _ = write!(
            out,
            "<tr><th title=\"{}\"><code>{}</code></th>",
            escape(&row.recipe),
            escape(&row.backend)
        );
        if let Some(why) = row.skipped.as_ref().or(row.error.as_ref()) {
            let _ = writeln!(
                out,
                "<td colspan=\"{}\" class=\"note\">{}</td></tr>",
                crate::summary::matrix::PROPERTIES.len(),
                escape(why)
            );
            continue;
        }
        for (key, _) in crate::summary::matrix::PROPERTIES {
            match row.cells.iter().find(|(k, _)| k == key) {
                Some((_, cell)) => {
                    let class = match cell.good {
                        Some(true) => "good",
                        Some(false) => "bad",
                        None => "",
                    };
                    let _ = write!(out, "<td class=\"{class}\">{}</td>", escape(&cell.text));
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    let page = path.with_file_name("matrix.html");
    let link = relative_path(out_dir, &page)
        .map(|rel| format!("<a href=\"{}\">matrix.html</a>", escape(&href(&rel))))
        .unwrap_or_else(|| format!("<code>{}</code>", escape(&page.display().to_string())));
    let _ = write!(
        out,
        "</tbody></table></div>\n<p class=\"note\">From <code>{}</code> (scenario {}, seed {}); \
         green: the safe answer, red: the unsafe one. Each cell's evidence: {link}.</p>",
        escape(&path.display().to_string()),
        escape(&matrix.scenario),
        matrix.seed
    );
    out
}
