//! Incidents: the violations grouped by the hold the other grants
//! overlapped, each told in one sentence (a reading aid beside the
//! violation count, which stays as it is). Literal histories for the
//! grouping; shipped invalid scenarios for the page and the terminal.

mod common;

use std::path::Path;

use lockbench::check::{AnalysisOptions, ViolationClass, analyze_events};
use lockbench::history::parse_jsonl;

fn analysis(text: &str) -> lockbench::check::Analysis {
    let events = parse_jsonl(Path::new("h.jsonl"), text)
        .expect("parse")
        .events;
    analyze_events(&events, AnalysisOptions::default())
}

/// `(time, process, type, f, extra fields)` rows on key `k`.
fn history(rows: &[(u64, &str, &str, &str, &str)]) -> String {
    rows.iter()
        .enumerate()
        .map(|(i, (t, p, kind, f, extra))| {
            format!(
                "{{\"index\":{i},\"time_ns\":{t},\"process\":{p},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"k\"{extra}}}\n"
            )
        })
        .collect()
}

const S: u64 = 1_000_000_000;

#[test]
fn a_paused_holder_overlapped_by_three_grants_is_one_incident() {
    let h = history(&[
        (0, "1", "invoke", "acquire", ",\"lease_ms\":1000"),
        (1, "1", "ok", "acquire", ",\"fence\":7,\"lease_ms\":1000"),
        (
            S,
            "\"nemesis\"",
            "info",
            "pause-client",
            ",\"value\":{\"fault\":\"pause-client\",\"edge\":\"start\",\"targets\":[\"c1\"]}",
        ),
        (2 * S, "2", "invoke", "acquire", ",\"lease_ms\":1000"),
        (
            2 * S + 1,
            "2",
            "ok",
            "acquire",
            ",\"fence\":8,\"lease_ms\":1000",
        ),
        (2 * S + 2, "2", "invoke", "release", ""),
        (2 * S + 3, "2", "ok", "release", ""),
        (3 * S, "3", "invoke", "acquire", ",\"lease_ms\":1000"),
        (
            3 * S + 1,
            "3",
            "ok",
            "acquire",
            ",\"fence\":9,\"lease_ms\":1000",
        ),
        (3 * S + 2, "3", "invoke", "release", ""),
        (3 * S + 3, "3", "ok", "release", ""),
        (4 * S, "2", "invoke", "acquire", ",\"lease_ms\":1000"),
        (
            4 * S + 1,
            "2",
            "ok",
            "acquire",
            ",\"fence\":10,\"lease_ms\":1000",
        ),
        (4 * S + 2, "2", "invoke", "release", ""),
        (4 * S + 3, "2", "ok", "release", ""),
        (
            5 * S,
            "\"nemesis\"",
            "info",
            "resume-client",
            ",\"value\":{\"fault\":\"pause-client\",\"edge\":\"stop\",\"targets\":[\"c1\"]}",
        ),
        (5 * S + 1, "1", "invoke", "write", ",\"fence\":7"),
        (
            5 * S + 2,
            "1",
            "ok",
            "write",
            ",\"fence\":7,\"value\":{\"accepted\":false}",
        ),
        (5 * S + 3, "1", "invoke", "release", ""),
        (
            5 * S + 4,
            "1",
            "ok",
            "release",
            ",\"value\":{\"was_held\":false}",
        ),
    ]);
    let a = analysis(&h);
    assert_eq!(a.mutex.violations, 3);
    let [inc] = a.mutex.incidents.as_slice() else {
        panic!("one incident: {:?}", a.mutex.incidents)
    };
    assert_eq!(inc.holder.process.to_string(), "1");
    assert_eq!(inc.overlaps, 3);
    assert_eq!((inc.first_fence, inc.last_fence), (Some(8), Some(10)));
    assert_eq!((inc.writes.accepted, inc.writes.rejected), (0, 1));
    assert_eq!(inc.class, ViolationClass::LeaseExpired);
    assert_eq!(inc.faults.len(), 1, "{:?}", inc.faults);
    assert_eq!(inc.faults[0].fault, "pause-client");
    assert_eq!(inc.faults[0].targets, ["c1"]);
    let sentence = lockbench::report::words::IncidentText(inc).to_string();
    for part in [
        "process 1 held \"k\" from 0.00 s to 5.00 s",
        "past its 1 s lease",
        "during pause-client of c1 (1.00–5.00 s)",
        "3 grants to others overlapped it (fences 8–10)",
        "its write with fence 7 was rejected",
        "[lease-expired]",
    ] {
        assert!(sentence.contains(part), "{part:?} in {sentence}");
    }
}

#[test]
fn two_holds_others_overlapped_are_two_incidents() {
    // Process 1 holds 0-3 s, process 2 overlaps it from 1 s and holds to
    // 6 s; process 3 overlaps process 2 from 4 s: two overlapped holds.
    let h = history(&[
        (0, "1", "invoke", "acquire", ""),
        (1, "1", "ok", "acquire", ",\"fence\":1"),
        (S, "2", "invoke", "acquire", ""),
        (S + 1, "2", "ok", "acquire", ",\"fence\":2"),
        (3 * S, "1", "invoke", "release", ""),
        (3 * S + 1, "1", "ok", "release", ""),
        (4 * S, "3", "invoke", "acquire", ""),
        (4 * S + 1, "3", "ok", "acquire", ",\"fence\":3"),
        (6 * S, "2", "invoke", "release", ""),
        (6 * S + 1, "2", "ok", "release", ""),
        (7 * S, "3", "invoke", "release", ""),
        (7 * S + 1, "3", "ok", "release", ""),
    ]);
    let a = analysis(&h);
    assert_eq!(a.mutex.violations, 2);
    let holders: Vec<String> = a
        .mutex
        .incidents
        .iter()
        .map(|i| i.holder.process.to_string())
        .collect();
    assert_eq!(holders, ["1", "2"]);
    assert!(a.mutex.incidents.iter().all(|i| i.overlaps == 1));
    assert!(
        a.mutex.incidents.iter().all(|i| i.faults.is_empty()),
        "no fault in this history"
    );
}

#[test]
fn a_valid_history_has_no_incident() {
    let h = history(&[
        (0, "1", "invoke", "acquire", ""),
        (1, "1", "ok", "acquire", ""),
        (2, "1", "invoke", "release", ""),
        (3, "1", "ok", "release", ""),
    ]);
    assert!(analysis(&h).mutex.incidents.is_empty());
}

/// The run page's verdict box and the terminal tell each run's incidents.
fn shows_incidents(scenario: &str, name: &str, backend: &str, flags: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let stdout = common::run_shipped_ok(scenario, out.path(), flags);
    assert!(stdout.contains("incident: process"), "{stdout}");
    let dir = common::run_dir(out.path(), name, backend);
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let verdict_box = page
        .split("aria-label=\"verdict\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_default();
    assert!(
        verdict_box.contains("<ul class=\"incidents\">"),
        "{scenario}: no incidents in the verdict box"
    );
    let summary = lockbench::summary::Summary::read(&dir.join("summary.json")).unwrap();
    assert!(!summary.incidents.is_empty());
    assert!(summary.incidents.len() as u64 <= summary.violations);
}

#[test]
fn the_pause_past_lease_run_tells_its_incident() {
    if !common::server_available("redis-server") {
        return;
    }
    shows_incidents(
        "scenarios/faults/pause-past-lease.toml",
        "pause-past-lease",
        "redis",
        &["--backends", "redis"],
    );
}

#[test]
fn the_server_kill_run_tells_its_incidents() {
    if !common::server_available("redis-server") {
        return;
    }
    shows_incidents(
        "scenarios/faults/server-kill.toml",
        "server-kill",
        "redis",
        &[],
    );
}

#[test]
fn the_broken_recipe_run_tells_its_incidents() {
    if !common::server_available("redis-server") {
        return;
    }
    shows_incidents(
        "scenarios/broken-recipe.toml",
        "broken-recipe",
        "redis-get-set",
        &["--backends", "redis-get-set"],
    );
}
