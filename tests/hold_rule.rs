//! docs/design.md's hold rule, on literal histories: a hold also ends at the
//! holder's `lost` event for its key, and, after a release of the key that
//! failed, at the invoke of the holder's next acquire of the key (a retried
//! release keeps the hold). Each case is checked by the direct checker
//! (streamed from a file, as `lockbench check` reads it), by the analysis
//! in memory, and by the linearizability search, which must agree.

use std::path::Path;

use lockbench::Verdict;
use lockbench::check::{AnalysisOptions, Budget, analyze_events, check_file, check_linearizable};
use lockbench::history::parse_jsonl;

/// One event line: `(time, process, type, f)` on key `k`, with `extra`
/// fields (`"fence":1`) when given.
fn line(index: usize, t: u64, p: u64, kind: &str, f: &str) -> String {
    format!(
        r#"{{"index":{index},"time_ns":{t},"process":{p},"type":"{kind}","f":"{f}","key":"k"}}"#
    )
}

/// A history from `(time, process, type, f)` rows, in file order.
fn history(rows: &[(u64, u64, &str, &str)]) -> String {
    rows.iter()
        .enumerate()
        .map(|(i, &(t, p, kind, f))| line(i, t, p, kind, f) + "\n")
        .collect()
}

/// Every checker's verdict on `text`: (direct from a file, analysis,
/// linearizability).
fn verdicts(text: &str) -> (Verdict, Verdict, Verdict) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    std::fs::write(&path, text).expect("write history");
    let (direct, _) = check_file(&path).expect("check the file");
    let events = parse_jsonl(Path::new("h.jsonl"), text)
        .expect("parse")
        .events;
    let analysis = analyze_events(&events, AnalysisOptions::default());
    let linear = check_linearizable(&events, Budget::default());
    (direct.verdict, analysis.verdict(), linear.verdict)
}

fn assert_all(text: &str, want: Verdict) {
    let (direct, analysis, linear) = verdicts(text);
    assert_eq!(
        (direct, analysis, linear),
        (want, want, want),
        "(direct, analysis, linearizable) on\n{text}"
    );
}

#[test]
fn a_lost_lock_ends_the_hold_at_the_lost_event() {
    // Process 1 holds from 2; its library tells it at 5 that the lock is
    // gone; process 2 is granted at 6: no overlap.
    let h = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 2, "invoke", "acquire"),
        (5, 1, "info", "lost"),
        (6, 2, "ok", "acquire"),
    ]);
    assert_all(&h, Verdict::Valid);
    // Without the lost event process 1 still holds at 6.
    let without = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 2, "invoke", "acquire"),
        (6, 2, "ok", "acquire"),
    ]);
    assert_all(&without, Verdict::Invalid);
}

#[test]
fn a_grant_before_the_lost_event_overlaps_the_hold() {
    // Process 2 is granted at 4, while process 1 still acts as holder
    // until its library tells it at 5 (kazoo's LOST after the other
    // client's grant: two holders for a while).
    let h = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 2, "invoke", "acquire"),
        (4, 2, "ok", "acquire"),
        (5, 1, "info", "lost"),
    ]);
    assert_all(&h, Verdict::Invalid);
}

#[test]
fn a_lost_event_of_another_key_does_not_end_the_hold() {
    let mut h = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 2, "invoke", "acquire"),
    ]);
    h.push_str(r#"{"index":3,"time_ns":5,"process":1,"type":"info","f":"lost","key":"other"}"#);
    h.push('\n');
    h.push_str(&line(4, 6, 2, "ok", "acquire"));
    h.push('\n');
    assert_all(&h, Verdict::Invalid);
}

#[test]
fn after_a_failed_release_the_next_acquire_ends_the_hold() {
    // Process 1's release fails at 4 (the server was down); it gives the
    // grant up and asks again at 5; process 2 is granted at 6.
    let h = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 1, "invoke", "release"),
        (4, 1, "fail", "release"),
        (5, 1, "invoke", "acquire"),
        (5, 2, "invoke", "acquire"),
        (6, 2, "ok", "acquire"),
        (7, 1, "fail", "acquire"),
    ]);
    assert_all(&h, Verdict::Valid);
}

#[test]
fn between_a_failed_release_and_the_next_acquire_the_hold_goes_on() {
    // Process 2 is granted at 4.5, after process 1's release failed but
    // before process 1 moved on: process 1 still held.
    let h = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 1, "invoke", "release"),
        (4, 1, "fail", "release"),
        (4, 2, "invoke", "acquire"),
        (5, 2, "ok", "acquire"),
        (6, 1, "invoke", "acquire"),
        (7, 1, "fail", "acquire"),
    ]);
    assert_all(&h, Verdict::Invalid);
}

#[test]
fn a_retried_release_keeps_the_hold_until_its_invoke() {
    // The release fails at 4 and is retried at 6: the hold lasts until 6,
    // so a grant at 5 overlaps it and one at 7 does not.
    let overlapping = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 1, "invoke", "release"),
        (4, 1, "fail", "release"),
        (4, 2, "invoke", "acquire"),
        (5, 2, "ok", "acquire"),
        (6, 1, "invoke", "release"),
        (7, 1, "ok", "release"),
    ]);
    assert_all(&overlapping, Verdict::Invalid);
    let clean = history(&[
        (1, 1, "invoke", "acquire"),
        (2, 1, "ok", "acquire"),
        (3, 1, "invoke", "release"),
        (4, 1, "fail", "release"),
        (4, 2, "invoke", "acquire"),
        (6, 1, "invoke", "release"),
        (7, 2, "ok", "acquire"),
        (8, 1, "ok", "release"),
    ]);
    assert_all(&clean, Verdict::Valid);
}
