//! `matrix.html`: the property matrix as one self-contained page.

use super::html::{escape, href};
use crate::summary::matrix::{Matrix, PROPERTIES};

/// The page for `matrix`.
pub fn render(matrix: &Matrix) -> String {
    let mut head = String::from("<tr><th>backend</th>");
    for (key, title) in PROPERTIES {
        head.push_str(&format!("<th>{}</th>", escape(&matrix.heading(key, title))));
    }
    head.push_str("</tr>");
    let mut rows = String::new();
    for row in &matrix.rows {
        // The member-fault columns may run on more servers than the others.
        let topology = row
            .topology
            .as_ref()
            .map(|t| format!("<br><small>member faults: {}</small>", escape(t)))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><th title=\"{}\"><code>{}</code>{topology}</th>",
            escape(&row.recipe),
            escape(&row.backend)
        ));
        let empty = match (&row.skipped, &row.error) {
            (Some(why), _) => Some(("skip", format!("skipped: {why}"))),
            (_, Some(why)) => Some(("bad", format!("error: {why}"))),
            _ => None,
        };
        if let Some((class, text)) = empty {
            rows.push_str(&format!(
                "<td colspan=\"{}\" class=\"{class}\">{}</td></tr>",
                PROPERTIES.len(),
                escape(&text)
            ));
            continue;
        }
        for (key, _) in PROPERTIES {
            let Some((_, cell)) = row.cells.iter().find(|(k, _)| k == key) else {
                rows.push_str("<td></td>");
                continue;
            };
            let class = match cell.good {
                Some(true) => "good",
                Some(false) => "bad",
                None => "",
            };
            let text = escape(&cell.text);
            let body = match &cell.link {
                Some(link) => format!("<a href=\"{}\">{text}</a>", href(link)),
                None => text,
            };
            rows.push_str(&format!("<td class=\"{class}\">{body}</td>"));
        }
        rows.push_str("</tr>");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>lockbench property matrix: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border: 1px solid #d0d0d5; padding: 0.4rem 0.6rem; text-align: left; vertical-align: top; }}
thead th {{ background: #f2f2f5; }}
td.good {{ background: #e6f4ea; }}
td.bad {{ background: #fbe7e7; }}
td.skip {{ color: #666; font-style: italic; }}
a {{ color: inherit; }}
p.note {{ color: #555; max-width: 70rem; }}
th small {{ font-weight: normal; color: #555; }}
</style></head><body>
<h1>Property matrix: {name}</h1>
<p class="note">Each cell is measured on the backend's real server (started by lockbench) and links to the run or probe file that measured it.
Probes ask for a lease of {lease} ms; contended runs use {clients} clients (seed {seed}). Green: the safe answer; red: the unsafe one.
"Holder crashes" kills the holding client without a release or goodbye; "server restart" kills the server with SIGKILL and starts it again on the same port and data directory while a lock is held.</p>
{spof}
<table><thead>{head}</thead><tbody>{rows}</tbody></table>
</body></html>
"#,
        name = escape(&matrix.scenario),
        lease = matrix.lease_ms,
        clients = matrix.clients,
        seed = matrix.seed,
        spof = spof_note(matrix),
    )
}

/// The note on the member-fault columns, with their timings where the
/// matrix has them.
fn spof_note(matrix: &Matrix) -> String {
    let (when_run, when_fault) = match matrix.member_fault {
        Some(t) => (
            format!("in a {} s run of the same clients on one key", t.run_s),
            format!("from {} s to {} s", t.at_s, t.at_s + t.for_s),
        ),
        None => (
            "in a run of the same clients on one key".to_string(),
            "for part of the run".to_string(),
        ),
    };
    format!(
        r#"<p class="note">The last two columns ask whether the lock is a single point of failure: {when_run}, one member is killed (-9, restarted when the fault ends) or cut from its peers (clients still reach it) {when_fault}, on the topology named under the backend: the leader or primary of a replicated topology, a minority of Redlock's masters, the server itself otherwise. Each cell: the member hit (its role when the fault began); whether exclusion was kept; whether clients still acquired the lock while the member was gone, with the longest gap; the time from the moment the restart began (or the heal) to the next acquire. Green: exclusion kept and available.</p>"#
    )
}
