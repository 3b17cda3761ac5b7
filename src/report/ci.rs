//! Results where CI systems look for them: a JUnit XML file (one test case
//! per scenario and backend, the scenario as the suite), a Markdown table
//! for a job summary (GitHub's `GITHUB_STEP_SUMMARY`), and one JSON line
//! per finished run for scripts.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::summary::Summary;

/// What became of one scenario on one backend, for CI.
#[derive(Debug, Clone)]
pub enum Record {
    /// It ran.
    Completed {
        /// Its run directory.
        run_dir: PathBuf,
        /// What it found.
        summary: Box<Summary>,
    },
    /// Its server is not installed.
    Skipped {
        /// The scenario.
        scenario: String,
        /// The backend.
        backend: String,
        /// Why, with the install hint.
        reason: String,
    },
    /// It could not run to the end.
    Failed {
        /// The scenario.
        scenario: String,
        /// The backend.
        backend: String,
        /// What went wrong.
        error: String,
    },
}

impl Record {
    fn scenario(&self) -> &str {
        match self {
            Record::Completed { summary, .. } => &summary.scenario,
            Record::Skipped { scenario, .. } | Record::Failed { scenario, .. } => scenario,
        }
    }

    fn backend(&self) -> &str {
        match self {
            Record::Completed { summary, .. } => &summary.backend,
            Record::Skipped { backend, .. } | Record::Failed { backend, .. } => backend,
        }
    }
}

/// Text for XML content and attributes.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML of `records`: a suite per scenario, a test case per
/// backend, failed when the verdict is not what the scenario expects
/// (with the witness and the report's path), an error when the run could
/// not finish, skipped when its server is missing.
pub fn junit(records: &[Record]) -> String {
    let mut suites: Vec<(&str, Vec<&Record>)> = Vec::new();
    for r in records {
        match suites.iter_mut().find(|(s, _)| *s == r.scenario()) {
            Some((_, v)) => v.push(r),
            None => suites.push((r.scenario(), vec![r])),
        }
    }
    let count = |v: &[&Record], f: &dyn Fn(&Record) -> bool| v.iter().filter(|r| f(r)).count();
    let failed =
        |r: &Record| matches!(r, Record::Completed { summary, .. } if !summary.matches_expectation);
    let errored = |r: &Record| matches!(r, Record::Failed { .. });
    let skipped = |r: &Record| matches!(r, Record::Skipped { .. });
    let all: Vec<&Record> = records.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"lockbench\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        all.len(),
        count(&all, &failed),
        count(&all, &errored),
        count(&all, &skipped)
    );
    for (scenario, cases) in &suites {
        let time: f64 = cases
            .iter()
            .map(|r| match r {
                Record::Completed { summary, .. } => summary.duration_s,
                _ => 0.0,
            })
            .sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
            xml(scenario),
            cases.len(),
            count(cases, &failed),
            count(cases, &errored),
            count(cases, &skipped)
        );
        for r in cases {
            let name = xml(r.backend());
            let classname = format!("lockbench.{}", xml(scenario));
            match r {
                Record::Completed { run_dir, summary } => {
                    let _ = write!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{classname}\" time=\"{:.3}\"",
                        summary.duration_s
                    );
                    if summary.matches_expectation {
                        out.push_str("/>\n");
                        continue;
                    }
                    let message = format!(
                        "{} but the scenario expects {}",
                        summary.verdict, summary.expect
                    );
                    let mut body = String::new();
                    for i in summary.incidents.iter().take(3) {
                        let _ = writeln!(body, "incident: {}", super::words::IncidentText(i));
                    }
                    for w in summary.witnesses.iter().take(3) {
                        let _ = writeln!(body, "witness: {w}");
                    }
                    let _ = writeln!(
                        body,
                        "report: {}\nrepeat: lockbench run {} --seed {}",
                        run_dir.join("index.html").display(),
                        summary.scenario_file,
                        summary.seed
                    );
                    let _ = write!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"verdict\">{}</failure>\n    </testcase>\n",
                        xml(&message),
                        xml(&body)
                    );
                }
                Record::Skipped { reason, .. } => {
                    let _ = write!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{classname}\" time=\"0\">\n      \
                         <skipped message=\"{}\"/>\n    </testcase>\n",
                        xml(reason)
                    );
                }
                Record::Failed { error, .. } => {
                    let _ = write!(
                        out,
                        "    <testcase name=\"{name}\" classname=\"{classname}\" time=\"0\">\n      \
                         <error message=\"{}\" type=\"run\">{}</error>\n    </testcase>\n",
                        xml(error.lines().next().unwrap_or("")),
                        xml(error)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A Markdown table of `records` for a CI job's summary.
pub fn markdown(records: &[Record]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from(
        "### lockbench\n\n| scenario | backend | verdict | expects | | throughput (acq/s) | acquire p99 (µs) | report |\n\
         | --- | --- | --- | --- | --- | ---: | ---: | --- |\n",
    );
    for r in records {
        match r {
            Record::Completed { run_dir, summary } => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | `{}` |",
                    cell(&summary.scenario),
                    cell(&summary.backend_label()),
                    summary.verdict,
                    summary.expect,
                    if summary.matches_expectation {
                        "✅"
                    } else {
                        "❌"
                    },
                    summary.throughput_per_s,
                    summary.acquire_latency_us.p99,
                    cell(&run_dir.join("index.html").display().to_string())
                );
            }
            Record::Skipped {
                scenario,
                backend,
                reason,
            } => {
                let _ = writeln!(
                    out,
                    "| {} | {} | skipped | | ⏭️ | | | {} |",
                    cell(scenario),
                    cell(backend),
                    cell(reason)
                );
            }
            Record::Failed {
                scenario,
                backend,
                error,
            } => {
                let _ = writeln!(
                    out,
                    "| {} | {} | error | | ❌ | | | {} |",
                    cell(scenario),
                    cell(backend),
                    cell(error)
                );
            }
        }
    }
    out
}

/// One JSON line for a finished run (for `--json`).
pub fn json_line(record: &Record) -> String {
    let v = match record {
        Record::Completed { run_dir, summary } => serde_json::json!({
            "scenario": summary.scenario,
            "backend": summary.backend,
            "library": summary.library,
            "status": "completed",
            "verdict": summary.verdict,
            "expected": summary.expect,
            "matches_expectation": summary.matches_expectation,
            "violations": summary.violations,
            "incidents": summary.incidents.len(),
            "ops": summary.ops,
            "acquire_latency_us": summary.acquire_latency_us,
            "throughput_per_s": summary.throughput_per_s,
            "seed": summary.seed,
            "run_dir": run_dir,
            "report": run_dir.join("index.html"),
        }),
        Record::Skipped {
            scenario,
            backend,
            reason,
        } => serde_json::json!({
            "scenario": scenario, "backend": backend, "status": "skipped", "reason": reason,
        }),
        Record::Failed {
            scenario,
            backend,
            error,
        } => serde_json::json!({
            "scenario": scenario, "backend": backend, "status": "error", "error": error,
        }),
    };
    v.to_string()
}
