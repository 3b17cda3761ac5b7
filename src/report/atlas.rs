//! The atlas as a page (`atlas.html`, self-contained like every page) and
//! as Markdown (`atlas.md`: the job summary's table and the published
//! `docs/atlas.md`), both from `atlas.json` alone.

use std::fmt::Write as _;

use super::html::{escape, href};
use crate::summary::atlas::{Atlas, AtlasCell, AtlasRow, Column, Status};

/// Where a server kind sits on the page: backends grouped by server.
fn group_order(server: Option<&str>) -> usize {
    match server {
        None => 0,
        Some("redis") => 1,
        Some("memcached") => 2,
        Some("zookeeper") => 3,
        Some("etcd") => 4,
        Some("mariadb") => 5,
        Some("postgres") => 6,
        Some("hazelcast") => 7,
        Some(_) => 8,
    }
}

fn grouped(atlas: &Atlas) -> Vec<&AtlasRow> {
    let mut rows: Vec<&AtlasRow> = atlas.rows.iter().collect();
    rows.sort_by_key(|r| group_order(r.server.as_deref()));
    rows
}

fn cell(row: &AtlasRow, column: Column) -> Option<&AtlasCell> {
    row.cells.iter().find(|c| c.column == column)
}

/// The sentences under the table's title: which locks stayed safe under
/// which faults, and which broke.
fn findings(atlas: &Atlas) -> Vec<String> {
    let mut out = Vec::new();
    for column in atlas.columns.iter().copied().filter(|c| c.is_fault()) {
        let mut safe = Vec::new();
        let mut broke = Vec::new();
        for row in &atlas.rows {
            let Some(c) = cell(row, column) else { continue };
            if c.measured == 0 {
                continue;
            }
            if c.unsafe_runs > 0 {
                broke.push(format!(
                    "{} ({}/{})",
                    row.backend, c.unsafe_runs, c.measured
                ));
            } else {
                safe.push(row.backend.clone());
            }
        }
        if safe.is_empty() && broke.is_empty() {
            continue;
        }
        let mut s = format!("**{}**: ", column.heading());
        if broke.is_empty() {
            s.push_str("every lock measured kept exclusion");
        } else {
            let _ = write!(s, "exclusion broke for {}", broke.join(", "));
            if !safe.is_empty() {
                let _ = write!(s, "; it held for {}", safe.join(", "));
            }
        }
        s.push('.');
        out.push(s);
    }
    out
}

fn status_mark(c: &AtlasCell) -> &'static str {
    match c.status {
        Status::Contradicts => " NOT AS EXPECTED",
        _ => "",
    }
}

/// `atlas.md`: what was run, the findings and the table.
pub fn markdown(atlas: &Atlas) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# The atlas: every lock under every fault\n");
    let _ = writeln!(
        md,
        "Made {} by lockbench {} in {:.0} min on {}, with `{}`: {} run(s) a cell, seeds {} on, lease {} ms ({} backends).\n",
        atlas.started_at.get(..10).unwrap_or(&atlas.started_at),
        atlas.lockbench_version,
        atlas.duration_s / 60.0,
        if atlas.machine.is_empty() {
            "this machine"
        } else {
            &atlas.machine
        },
        atlas.command,
        atlas.repeat,
        atlas.seed,
        atlas.lease_ms,
        atlas.rows.len()
    );
    let _ = writeln!(md, "## What the cells say\n");
    for f in findings(atlas) {
        let _ = writeln!(md, "- {f}");
    }
    let contradictions = atlas.contradictions();
    if !contradictions.is_empty() {
        let _ = writeln!(md, "\nNot as expected:\n");
        for (r, c) in contradictions {
            let _ = writeln!(
                md,
                "- {} under {}: {} (expected {}: {})",
                r.backend,
                c.column.heading(),
                c.words,
                c.expect.expect.name(),
                c.expect.why
            );
        }
    }
    let _ = writeln!(md, "\n## The table\n");
    let _ = write!(md, "| backend |");
    for c in &atlas.columns {
        let _ = write!(md, " {} |", c.heading());
    }
    let _ = write!(md, "\n| --- |");
    for _ in &atlas.columns {
        let _ = write!(md, " --- |");
    }
    md.push('\n');
    for row in grouped(atlas) {
        let label = match &row.library {
            Some(l) => format!("`{}` ({l})", row.backend),
            None => format!("`{}`", row.backend),
        };
        let _ = write!(md, "| {label} |");
        for column in &atlas.columns {
            let text = match cell(row, *column) {
                Some(c) => {
                    let icon = match c.colour() {
                        "green" => "🟢",
                        "amber" => "🟠",
                        "red" => "🔴",
                        _ => "⚪",
                    };
                    format!("{icon} {}{}", c.words.replace('|', "/"), status_mark(c))
                }
                None => String::new(),
            };
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\n## How to read it\n");
    let _ = writeln!(
        md,
        "Each cell is {} run(s) of three clients on one key with one fault at a fixed time; \"unsafe in k/N\" counts the runs in which two clients held the lock at once (the history proves it), with the longest overlap and what the protected resource did with the stale holder's write. 🟢 safe in every run, as expected; 🟠 depends on timing; 🔴 unsafe in some run, or not what was expected; ⚪ not measured, with why. H is a backend's hold limit: its lease, or the session or watchdog that keeps a silent holder's lock.\n",
        atlas.repeat
    );
    for c in &atlas.columns {
        let _ = writeln!(md, "- **{}**: {}.", c.heading(), c.describe());
    }
    let _ = writeln!(md, "\n## Why each cell is expected to be what it is\n");
    for row in grouped(atlas) {
        let _ = writeln!(
            md,
            "- `{}` ({}; hold limit {} ms):",
            row.backend, row.recipe, row.hold_limit_ms
        );
        for c in &row.cells {
            let _ = writeln!(
                md,
                "  - {}: {}. {}",
                c.column.heading(),
                c.expect.expect.name(),
                c.expect.why
            );
        }
    }
    let _ = writeln!(md, "\n## Versions\n");
    for row in grouped(atlas) {
        let mut what = row.versions.join(", ");
        if let Some(l) = &row.library {
            what = if what.is_empty() {
                l.clone()
            } else {
                format!("{l}; {what}")
            };
        }
        if !what.is_empty() {
            let _ = writeln!(md, "- `{}`: {what}", row.backend);
        }
    }
    md
}

/// One cell of the atlas's table, as HTML (an empty one where the row has
/// no such column).
fn cell_html(rows: &mut String, c: Option<&AtlasCell>) {
    let Some(c) = c else {
        rows.push_str("<td></td>");
        return;
    };
    let text = escape(&c.words);
    let body = match &c.link {
        Some(link) => format!("<a href=\"{}\">{text}</a>", href(link)),
        None => text,
    };
    let mark = if c.status == Status::Contradicts {
        "<br><strong>not as expected</strong>"
    } else {
        ""
    };
    let _ = write!(
        rows,
        "<td class=\"{}\" title=\"expected {}: {}\">{body}{mark}<br><small>expected {}</small></td>",
        c.colour(),
        c.expect.expect.name(),
        escape(&c.expect.why),
        c.expect.expect.name()
    );
}

/// `atlas.html`.
pub fn render(atlas: &Atlas) -> String {
    let mut head = String::from("<tr><th>backend</th>");
    for c in &atlas.columns {
        let _ = write!(
            head,
            "<th title=\"{}\">{}</th>",
            escape(c.describe()),
            escape(c.heading())
        );
    }
    head.push_str("</tr>");
    let mut rows = String::new();
    let mut group: Option<Option<String>> = None;
    for row in grouped(atlas) {
        if group.as_ref() != Some(&row.server) {
            let _ = write!(
                rows,
                "<tr class=\"group\"><th colspan=\"{}\">{}</th></tr>",
                atlas.columns.len() + 1,
                escape(row.server.as_deref().unwrap_or("in-process"))
            );
            group = Some(row.server.clone());
        }
        let library = row
            .library
            .as_ref()
            .map(|l| format!("<br><small>{}</small>", escape(l)))
            .unwrap_or_default();
        let _ = write!(
            rows,
            "<tr><th title=\"{}\"><code>{}</code>{library}<br><small>H = {} ms</small></th>",
            escape(&row.recipe),
            escape(&row.backend),
            row.hold_limit_ms
        );
        for column in &atlas.columns {
            cell_html(&mut rows, cell(row, *column));
        }
        rows.push_str("</tr>");
    }
    let findings: String = findings(atlas)
        .iter()
        .map(|f| {
            // The Markdown's bold heading, as HTML.
            let f = escape(f);
            let f = f
                .replacen("**", "<strong>", 1)
                .replacen("**", "</strong>", 1);
            format!("<li>{f}</li>")
        })
        .collect();
    let columns: String = atlas
        .columns
        .iter()
        .map(|c| {
            format!(
                "<li><strong>{}</strong>: {}.</li>",
                escape(c.heading()),
                escape(c.describe())
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>lockbench atlas: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }}
th, td {{ border: 1px solid #d0d0d5; padding: 0.4rem 0.5rem; text-align: left; vertical-align: top; }}
thead th {{ background: #f2f2f5; position: sticky; top: 0; }}
tr.group th {{ background: #e8e8ee; text-transform: uppercase; font-size: 0.75rem; letter-spacing: 0.05em; }}
td.green {{ background: #e6f4ea; }}
td.amber {{ background: #fff4d6; }}
td.red {{ background: #fbe7e7; }}
td.grey {{ background: #f4f4f6; color: #666; }}
td small, th small {{ color: #555; font-weight: normal; }}
a {{ color: inherit; }}
p.note, ul {{ max-width: 70rem; }}
</style></head><body>
<h1>Atlas: every lock under every fault</h1>
<p class="note">{repeat} run(s) a cell, seeds from {seed}, lease {lease} ms; {rows} backends, made {date} in {minutes:.0} min by lockbench {version}. Each cell links to the run whose incident it tells; hover a cell for why it was expected.</p>
<h2>What the cells say</h2>
<ul>{findings}</ul>
<h2>How to read it</h2>
<p class="note">Green: safe in every run, as expected. Amber: expected to depend on timing. Red: two clients held the lock at once in some run (k/N), or the cell is not what was expected. Grey: not measured, with why. H is the backend's hold limit: its lease, or the session or watchdog that keeps a silent holder's lock.</p>
<ul>{columns}</ul>
<table><thead>{head}</thead><tbody>{rows_html}</tbody></table>
</body></html>
"#,
        name = escape(&atlas.scenario),
        repeat = atlas.repeat,
        seed = atlas.seed,
        lease = atlas.lease_ms,
        rows = atlas.rows.len(),
        date = escape(&atlas.started_at),
        minutes = atlas.duration_s / 60.0,
        version = escape(&atlas.lockbench_version),
        rows_html = rows,
    )
}
