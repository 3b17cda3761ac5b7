//! The report of one run: `index.html`.

use std::fmt::Write as _;
use std::path::Path;

use super::charts::{self, Curve};
use super::html::{
    escape, fill, fmt_count, fmt_duration_s, fmt_ns_as_s, fmt_rate, fmt_us, fmt_us_f, href,
    shell_quote,
};
use super::report_error;
use crate::check::{Verdict, Witness};
use crate::error::Result;
use crate::summary::{Percentiles, Summary};

const TEMPLATE: &str = include_str!("run.html");

/// How many keys the summary table names before it only counts them.
const KEYS_SHOWN: usize = 12;

/// The page for one run; `path` is where it will be written (for errors).
pub(crate) fn render(path: &Path, s: &Summary) -> Result<String> {
    let run_dir = path.parent().unwrap_or(Path::new("."));
    let latency_chart = charts::latency_chart(
        path,
        "Acquire latency by percentile",
        &[Curve {
            label: s.backend.clone(),
            points: &s.acquire_latency_curve,
        }],
        Some(&s.acquire_latency_us),
    )?;
    let latency_chart = figure(
        latency_chart,
        "Latency from when a client meant to start an acquire to its <code>ok</code>. \
         The x axis spreads the tail: each step right adds a nine (90%, 99%, 99.9%, …); \
         the rightmost point is the largest sample.",
        "No acquire latency chart: the run recorded no successful acquisitions.",
    );
    let throughput_chart = charts::throughput_chart(
        path,
        &s.throughput_timeline,
        s.throughput_per_s,
        s.duration_s,
        &s.faults,
    )?;
    let throughput_chart = figure(
        throughput_chart,
        "Successful acquisitions in each one-second bucket since the clients started; \
         shaded bands are the windows in which a fault was active.",
        "No throughput chart: the run has no throughput timeline.",
    );

    let title = format!(
        "lockbench: {} on {} — {}",
        s.scenario,
        s.backend_label(),
        s.verdict.as_str()
    );
    let vars = [
        ("base_css", super::BASE_CSS.to_string()),
        ("title", escape(&title)),
        ("version", escape(&s.lockbench_version)),
        ("scenario", escape(&s.scenario)),
        ("backend", escape(&s.backend_label())),
        (
            "started",
            if s.started_at.is_empty() {
                String::new()
            } else {
                format!("started {} · ", escape(&s.started_at))
            },
        ),
        ("duration", escape(&fmt_duration_s(s.duration_s))),
        ("seed", s.seed.to_string()),
        ("verdict_class", verdict_class(s.verdict).to_string()),
        ("verdict", escape(s.verdict.as_str())),
        ("expectation", expectation(s)),
        ("verdict_details", verdict_details(s)),
        ("interrupted", interrupted(s)),
        ("witnesses", witnesses(s)),
        ("repeat_command", escape(&repeat_command(s))),
        ("summary_table", summary_table(s)),
        ("latency_table", latency_table(s)),
        ("ops_table", ops_table(s)),
        ("servers", servers(s)),
        ("faults", faults(s)),
        (
            "baseline",
            super::baseline::section(super::baseline::read(run_dir).as_ref()),
        ),
        ("timeline", super::timeline::section(run_dir, s)),
        ("checks", checks(s)),
        ("latency_chart", latency_chart),
        ("throughput_chart", throughput_chart),
    ];
    fill(TEMPLATE, &vars).map_err(|m| report_error(path, m))
}

/// The command that repeats the run.
pub(crate) fn repeat_command(s: &Summary) -> String {
    format!(
        "lockbench run {} --seed {}",
        shell_quote(&s.scenario_file),
        s.seed
    )
}

/// The CSS class for a verdict.
pub(crate) fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::NotChecked => "unknown",
        v => v.as_str(),
    }
}

/// A chart in a `<figure>` with its caption, or a sentence saying why there
/// is none. `caption` and `missing` are trusted HTML.
pub(crate) fn figure(svg: Option<String>, caption: &str, missing: &str) -> String {
    match svg {
        Some(svg) => format!("<figure>\n{svg}<figcaption>{caption}</figcaption>\n</figure>"),
        None => format!("<p class=\"nodata\">{missing}</p>"),
    }
}

fn expectation(s: &Summary) -> String {
    if s.matches_expectation {
        format!(
            "<div class=\"expect\">✓ as expected: the scenario expects {}</div>",
            escape(s.expect.as_str())
        )
    } else {
        format!(
            "<div class=\"expect mismatch\">✗ NOT as expected: the scenario expects {}</div>",
            escape(s.expect.as_str())
        )
    }
}

fn verdict_details(s: &Summary) -> String {
    let mut out = String::new();
    if s.violations > 0 || s.verdict == Verdict::Invalid {
        let _ = write!(
            out,
            "<p>{} mutual-exclusion violation{} (overlapping pairs of holds of one key).</p>",
            fmt_count(s.violations),
            if s.violations == 1 { "" } else { "s" }
        );
    } else if s.verdict == Verdict::Valid {
        out.push_str("<p>No two clients held the same key at the same time in the history.</p>");
    }
    if !s.incidents.is_empty() {
        let _ = write!(
            out,
            "<p>{} incident{} (a client's hold that grants to other clients overlapped):</p>\n\
             <ul class=\"incidents\">\n",
            s.incidents.len(),
            if s.incidents.len() == 1 { "" } else { "s" }
        );
        for i in &s.incidents {
            let _ = writeln!(
                out,
                "<li>{}</li>",
                escape(&super::words::IncidentText(i).to_string())
            );
        }
        out.push_str("</ul>\n");
    }
    if let Some(reason) = &s.verdict_reason {
        let _ = write!(out, "<p>Reason: {}</p>", escape(reason));
    }
    out
}

fn interrupted(s: &Summary) -> String {
    if s.interrupted {
        "<p class=\"warning\"><strong>Interrupted:</strong> the run was stopped early \
         (Ctrl-C); its numbers cover only the part that ran.</p>"
            .into()
    } else {
        String::new()
    }
}

fn witnesses(s: &Summary) -> String {
    if s.witnesses.is_empty() {
        if s.verdict == Verdict::Invalid {
            return "<section>\n<h2>Witnesses</h2>\n<p class=\"note\">The checker recorded no \
                    witness for this verdict.</p>\n</section>"
                .into();
        }
        return String::new();
    }
    let shown = s.witnesses.len() as u64;
    let mut out = format!(
        "<section>\n<details>\n<summary><h2>Witnesses ({} shown)</h2></summary>\n",
        fmt_count(shown)
    );
    if s.violations > shown {
        let _ = writeln!(
            out,
            "<p class=\"note\">The first {} of {} violations, each with the events that prove it \
             (event numbers are the <code>index</code> fields of the history).</p>",
            fmt_count(shown),
            fmt_count(s.violations)
        );
    } else {
        out.push_str(
            "<p class=\"note\">Each with the events that prove it (event numbers are the \
             <code>index</code> fields of the history).</p>\n",
        );
    }
    out.push_str("<ol class=\"witnesses\">\n");
    for w in &s.witnesses {
        let _ = writeln!(out, "<li><code>{}</code></li>", escape(&w.to_string()));
    }
    out.push_str("</ol>\n");
    out.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th>key</th><th>first holder</th>\
         <th class=\"num\">held from (s)</th><th class=\"num\">held to (s)</th>\
         <th>second holder</th><th class=\"num\">acquired at (s)</th>\
         <th class=\"num\">overlap (ms)</th></tr></thead>\n<tbody>\n",
    );
    for w in &s.witnesses {
        out.push_str(&witness_row(w));
    }
    out.push_str("</tbody></table></div>\n</details>\n</section>");
    out
}

fn witness_row(w: &Witness) -> String {
    let holder = |h: &crate::check::Hold| {
        let mut text = format!("process {}", h.process);
        if let Some(fence) = h.fence {
            let _ = write!(text, " (fence {fence})");
        }
        escape(&text)
    };
    let held_to = match w.first.end_ns {
        Some(ns) => fmt_ns_as_s(ns),
        None => "end of history".into(),
    };
    let overlap = match w.overlap_end_ns {
        Some(end) => format!("{:.3}", end.saturating_sub(w.overlap_start_ns) as f64 / 1e6),
        None => "to the end".into(),
    };
    format!(
        "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
        escape(&w.key),
        holder(&w.first),
        fmt_ns_as_s(w.first.start_ns),
        escape(&held_to),
        holder(&w.second),
        fmt_ns_as_s(w.second.start_ns),
        escape(&overlap),
    )
}

fn summary_table(s: &Summary) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push(("backend", format!("<code>{}</code>", escape(&s.backend))));
    if let Some(l) = &s.library {
        rows.push((
            "lock library",
            format!("{} <code>{}</code>", escape(&l.name), escape(&l.version)),
        ));
    }
    rows.push((
        "scenario",
        format!(
            "{} <span class=\"note\">(<code>{}</code>)</span>",
            escape(&s.scenario),
            escape(&s.scenario_file)
        ),
    ));
    rows.push(("started", escape(&s.started_at)));
    rows.push(("duration", escape(&fmt_duration_s(s.duration_s))));
    rows.push((
        "clients",
        format!(
            "{} client{} on {} host{}",
            fmt_count(u64::from(s.clients)),
            if s.clients == 1 { "" } else { "s" },
            fmt_count(u64::from(s.hosts)),
            if s.hosts == 1 { "" } else { "s" }
        ),
    ));
    let mut keys = s
        .keys
        .iter()
        .take(KEYS_SHOWN)
        .map(|k| format!("<code>{}</code>", escape(k)))
        .collect::<Vec<_>>()
        .join(", ");
    if s.keys.len() > KEYS_SHOWN {
        let _ = write!(keys, ", … ({} keys)", fmt_count(s.keys.len() as u64));
    } else if s.keys.is_empty() {
        keys = "none".into();
    }
    rows.push(("keys", keys));
    rows.push((
        "lease",
        if s.lease_ms == 0 {
            "—".into()
        } else {
            escape(&fmt_us(s.lease_ms.saturating_mul(1000)))
        },
    ));
    rows.push((
        "throughput",
        format!(
            "<strong>{}</strong> successful acquisitions / s",
            escape(&fmt_rate(s.throughput_per_s))
        ),
    ));
    rows.push((
        "acquire latency",
        if s.acquire_latency_us.count == 0 {
            "no samples".into()
        } else {
            let p = &s.acquire_latency_us;
            escape(&format!(
                "p50 {} · p90 {} · p99 {} · p99.9 {} · max {}",
                fmt_us(p.p50),
                fmt_us(p.p90),
                fmt_us(p.p99),
                fmt_us(p.p999),
                fmt_us(p.max)
            ))
        },
    ));
    rows.push(("history events", fmt_count(s.history_events)));
    rows.push((
        "faults injected",
        if s.faults.is_empty() {
            "none".into()
        } else {
            fmt_count(s.faults.len() as u64)
        },
    ));
    rows.push((
        "interrupted",
        if s.interrupted {
            "<strong>yes</strong> (stopped early)".into()
        } else {
            "no".into()
        },
    ));
    rows.push(("lockbench", escape(&s.lockbench_version)));

    let mut out = String::from("<table class=\"kv\">\n<tbody>\n");
    for (name, value) in rows {
        let _ = writeln!(out, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn latency_table(s: &Summary) -> String {
    let mut out = String::from(
        "<div class=\"wide\"><table>\n<thead><tr><th></th><th class=\"num\">samples</th>\
         <th class=\"num\">mean</th><th class=\"num\">p50</th><th class=\"num\">p90</th>\
         <th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">max</th>\
         </tr></thead>\n<tbody>\n",
    );
    let rows: [(&str, &Percentiles); 3] = [
        ("acquire", &s.acquire_latency_us),
        ("release", &s.release_latency_us),
        ("hold time", &s.hold_time_us),
    ];
    for (name, p) in rows {
        if p.count == 0 {
            let _ = writeln!(
                out,
                "<tr><th>{name}</th><td class=\"num\">0</td><td colspan=\"6\" class=\"note\">no samples</td></tr>"
            );
        } else {
            let _ = writeln!(
                out,
                "<tr><th>{name}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                fmt_count(p.count),
                escape(&fmt_us_f(p.mean)),
                escape(&fmt_us(p.p50)),
                escape(&fmt_us(p.p90)),
                escape(&fmt_us(p.p99)),
                escape(&fmt_us(p.p999)),
                escape(&fmt_us(p.max)),
            );
        }
    }
    out.push_str(
        "</tbody></table></div>\n<p class=\"note\">Acquire: from when the client meant to \
                  start to the <code>ok</code>. Release: invoke to completion. Hold time: acquire \
                  <code>ok</code> to release invoke.</p>",
    );
    out
}

/// Completion types in the order they read best; others follow by name.
const TYPE_ORDER: [&str; 4] = ["invoke", "ok", "fail", "info"];

fn ops_table(s: &Summary) -> String {
    if s.ops.is_empty() {
        return "<p class=\"note\">No operations were recorded.</p>".into();
    }
    let mut types: Vec<&str> = TYPE_ORDER
        .iter()
        .copied()
        .filter(|t| s.ops.values().any(|m| m.contains_key(*t)))
        .collect();
    let mut others: Vec<&str> = s
        .ops
        .values()
        .flat_map(|m| m.keys().map(String::as_str))
        .filter(|t| !TYPE_ORDER.contains(t))
        .collect();
    others.sort_unstable();
    others.dedup();
    types.extend(others);

    let mut out = String::from("<div class=\"wide\"><table>\n<thead><tr><th>operation</th>");
    for t in &types {
        let _ = write!(out, "<th class=\"num\">{}</th>", escape(t));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (f, counts) in &s.ops {
        let _ = write!(out, "<tr><th>{}</th>", escape(f));
        for t in &types {
            let n = counts.get(*t).copied().unwrap_or(0);
            let _ = write!(out, "<td class=\"num\">{}</td>", fmt_count(n));
        }
        out.push_str("</tr>\n");
    }
    out.push_str(
        "</tbody></table></div>\n<p class=\"note\"><code>info</code>: the outcome is unknown \
         (a timeout or a lost connection); such an operation may or may not have taken effect.</p>",
    );
    out
}

fn servers(s: &Summary) -> String {
    if s.servers.is_empty() {
        return "<p class=\"note\">No servers (the backend runs in process).</p>".into();
    }
    let mut out = match &s.topology {
        Some(t) => format!("<p>Topology: {}.</p>\n", escape(t)),
        None => String::new(),
    };
    out.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th>name</th><th>address</th><th>version</th>\
         <th>started by lockbench</th><th>log</th></tr></thead>\n<tbody>\n",
    );
    for srv in &s.servers {
        let log = match &srv.log {
            Some(log) => format!(
                "<a href=\"{}\"><code>{}</code></a>",
                escape(&href(log)),
                escape(log)
            ),
            None => "—".into(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&srv.name),
            escape(&srv.addr),
            escape(&srv.version),
            if srv.started_by_lockbench {
                "yes"
            } else {
                "no (external)"
            },
            log
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn faults(s: &Summary) -> String {
    if s.faults.is_empty() {
        return "<p class=\"note\">No faults were injected.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"wide\"><table>\n<thead><tr><th>fault</th><th>targets</th>\
         <th class=\"num\">from (s)</th><th class=\"num\">to (s)</th>\
         <th class=\"num\">acquired during</th><th class=\"num\">longest gap without one (ms)</th>\
         <th class=\"num\">next acquire after the end (ms)</th>\
         </tr></thead>\n<tbody>\n",
    );
    for f in &s.faults {
        // The checker's entry for this fault: the one that ended nearest.
        let recovered = f.end_ns.and_then(|end| {
            s.recovery
                .faults
                .iter()
                .min_by_key(|r| r.end_ns.abs_diff(end))
                .filter(|r| r.end_ns.abs_diff(end) < 1_000_000_000)
        });
        let during = recovered.map_or("—".to_string(), |r| r.acquired_during.to_string());
        let gap = match recovered.and_then(|r| r.longest_gap_ms) {
            Some(ms) => format!("{ms:.0}"),
            None => "—".into(),
        };
        let next = match recovered.map(|r| r.next_acquire_ms) {
            Some(Some(ms)) => format!("{ms:.0}"),
            Some(None) => "none".into(),
            None => "—".into(),
        };
        let to = match f.end_ns {
            Some(ns) => format!("{:.3}", ns as f64 / 1e9),
            None => "end of run".into(),
        };
        let targets = if f.targets.is_empty() {
            "—".to_string()
        } else {
            f.targets.join(", ")
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&f.fault),
            escape(&targets),
            f.start_ns as f64 / 1e9,
            escape(&to),
            escape(&during),
            escape(&gap),
            escape(&next)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// What the agents' clock bounds did to the mutual-exclusion check.
fn agents_text(a: &crate::summary::AgentsReport) -> String {
    let ms = |ns: i64| ns as f64 / 1e6;
    let mut t = format!(
        "{} agents; {} definite overlaps (they hold under every clock offset within the bounds; \
         {} of them between two agents' clients), {} possible (an offset within the bounds \
         separates them)",
        a.clocks.len(),
        a.definite,
        a.definite_across,
        a.possible
    );
    if let Some(e) = a.possible_examples.first() {
        let how = if e.overlap_ns <= 0 {
            format!(
                "{:.3} ms apart on the merged timeline, closer than their bounds (±{:.3} ms \
                 together) can tell apart",
                ms(-e.overlap_ns),
                ms(e.bound_ns as i64)
            )
        } else {
            format!(
                "{:.3} ms into each other on the merged timeline, apart if their clocks differ \
                 by {:+.3} ms (within their bounds, ±{:.3} ms together)",
                ms(e.overlap_ns),
                ms(e.separated_by_ns),
                ms(e.bound_ns as i64)
            )
        };
        t.push_str(&format!(
            "; e.g. processes {} and {} on {:?}, {how}",
            e.first, e.second, e.key
        ));
    }
    t
}

/// Ownership, fencing, liveness and recovery, as the checkers found them.
fn checks(s: &Summary) -> String {
    let mut out = String::from("<section>\n<h2>Other checks</h2>\n<table class=\"kv\"><tbody>\n");
    let _ = writeln!(
        out,
        "<tr><th>violation classes</th><td>{}</td></tr>",
        super::compare::classes_text(s)
    );
    let _ = writeln!(
        out,
        "<tr><th>ownership</th><td>{}</td></tr>",
        super::compare::ownership_text(s)
    );
    let _ = writeln!(
        out,
        "<tr><th>fencing</th><td>{}</td></tr>",
        super::compare::fencing_text(s)
    );
    let _ = writeln!(
        out,
        "<tr><th>liveness</th><td>{}</td></tr>",
        super::compare::liveness_text(s)
    );
    let _ = writeln!(
        out,
        "<tr><th>fault recovery</th><td>{}</td></tr>",
        super::compare::recovery_text(s)
    );
    if let Some(l) = &s.lost_updates {
        let _ = writeln!(
            out,
            "<tr><th>lost updates</th><td>{} of {} acknowledged increments lost (final value {})</td></tr>",
            l.lost, l.acknowledged, l.final_value
        );
    }
    if let Some(a) = &s.agents {
        let _ = writeln!(
            out,
            "<tr><th>clock uncertainty</th><td>{}</td></tr>",
            escape(&agents_text(a))
        );
    }
    for n in &s.notes {
        let _ = writeln!(out, "<tr><th>note</th><td>{}</td></tr>", escape(n));
    }
    out.push_str("</tbody></table>\n</section>");
    out
}
