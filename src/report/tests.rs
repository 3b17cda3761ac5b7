//! Tests of the pages as a whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::baseline;
use super::*;
use crate::check::{Hold, HoldEnd, Verdict, ViolationClass, Witness};
use crate::history::Process;
use crate::summary::{CurvePoint, FaultRecord, Percentiles, ServerInfo};

/// The latency of the synthetic distribution at percentile `p`.
fn synthetic_us(scale_us: f64, p: f64) -> u64 {
    let rest = 1.0 - p / 100.0;
    (scale_us * (1.0 + 3.0 * (-rest.log10())).powf(2.2)) as u64
}

/// A curve like HdrHistogram's: many points in the body, fewer in the tail.
pub(crate) fn curve(scale_us: f64) -> Vec<CurvePoint> {
    let mut out = Vec::new();
    let mut p = 0.0_f64;
    while p < 99.99 {
        out.push(CurvePoint {
            percentile: p,
            us: synthetic_us(scale_us, p),
        });
        p += (100.0 - p) * 0.15;
    }
    out.push(CurvePoint {
        percentile: 100.0,
        us: (scale_us * 400.0) as u64,
    });
    out
}

/// Percentiles that agree with [`curve`].
fn percentiles(count: u64, scale: u64) -> Percentiles {
    let s = scale as f64;
    Percentiles {
        count,
        mean: s * 9.0,
        p50: synthetic_us(s, 50.0),
        p90: synthetic_us(s, 90.0),
        p99: synthetic_us(s, 99.0),
        p999: synthetic_us(s, 99.9),
        max: scale * 400,
    }
}

fn hold(process: u64, start_ns: u64, end_ns: Option<u64>, fence: u64) -> Hold {
    Hold {
        process: Process::Client(process),
        key: "lock-0".into(),
        start_ns,
        start_index: start_ns / 1_000_000,
        end_ns,
        end_index: end_ns.map(|n| n / 1_000_000),
        end: HoldEnd::Release,
        fence: Some(fence),
        lease_ms: Some(2_000),
    }
}

/// A valid run with samples, servers and no faults.
pub(crate) fn valid_summary() -> Summary {
    let mut ops = BTreeMap::new();
    ops.insert(
        "acquire".to_string(),
        BTreeMap::from([
            ("invoke".to_string(), 12_040),
            ("ok".to_string(), 11_980),
            ("fail".to_string(), 55),
            ("info".to_string(), 5),
        ]),
    );
    ops.insert(
        "release".to_string(),
        BTreeMap::from([("invoke".to_string(), 11_980), ("ok".to_string(), 11_980)]),
    );
    Summary {
        scenario: "contention-basic".into(),
        scenario_file: "scenarios/contention-basic.toml".into(),
        backend: "redis".into(),
        seed: 42,
        expect: Verdict::Valid,
        verdict: Verdict::Valid,
        matches_expectation: true,
        violations: 0,
        witnesses: Vec::new(),
        verdict_reason: None,
        violation_classes: BTreeMap::new(),
        ownership: Default::default(),
        fencing: Default::default(),
        liveness: Default::default(),
        recovery: Default::default(),
        lost_updates: None,
        notes: Vec::new(),
        ops,
        acquire_latency_us: percentiles(11_980, 310),
        acquire_latency_curve: curve(310.0),
        release_latency_us: percentiles(11_980, 95),
        hold_time_us: percentiles(11_980, 1_200),
        throughput_per_s: 399.3,
        throughput_timeline: (0..30).map(|i| 380 + (i * 37 % 41)).collect(),
        duration_s: 30.0,
        clients: 16,
        hosts: 4,
        keys: vec!["lock-0".into(), "lock-1".into()],
        lease_ms: 2_000,
        faults: Vec::new(),
        servers: vec![ServerInfo {
            name: "redis-1".into(),
            addr: "127.0.0.1:40123".into(),
            version: "7.2.4".into(),
            started_by_lockbench: true,
            log: Some("servers/redis-1.log".into()),
        }],
        topology: None,
        started_at: "2025-11-21T15:30:00Z".into(),
        history_events: 47_000,
        interrupted: false,
        lockbench_version: "0.1.0".into(),
        agents: None,
        library: None,
        incidents: Vec::new(),
    }
}

/// An invalid run with two witnesses and two faults (one open-ended).
pub(crate) fn invalid_summary() -> Summary {
    let mut s = valid_summary();
    s.scenario = "pause-holder <script>".into();
    s.backend = "redis-get-set".into();
    s.expect = Verdict::Invalid;
    s.verdict = Verdict::Invalid;
    s.matches_expectation = true;
    s.violations = 7;
    s.witnesses = vec![
        Witness {
            key: "lock-0".into(),
            first: hold(3, 12_000_000_000, Some(14_500_000_000), 17),
            second: hold(9, 14_100_000_000, Some(14_900_000_000), 18),
            overlap_start_ns: 14_100_000_000,
            overlap_end_ns: Some(14_500_000_000),
            class: ViolationClass::LeaseExpired,
        },
        Witness {
            key: "lock-0".into(),
            first: hold(5, 20_000_000_000, None, 30),
            second: hold(2, 21_000_000_000, None, 31),
            overlap_start_ns: 21_000_000_000,
            overlap_end_ns: None,
            class: ViolationClass::UnknownLease,
        },
    ];
    s.faults = vec![
        FaultRecord {
            fault: "pause".into(),
            start_ns: 10_000_000_000,
            end_ns: Some(15_000_000_000),
            targets: vec!["redis-1".into()],
            error: None,
        },
        FaultRecord {
            fault: "partition".into(),
            start_ns: 25_000_000_000,
            end_ns: None,
            targets: vec![],
            error: None,
        },
    ];
    s.throughput_timeline[11] = 3;
    s.throughput_timeline[12] = 0;
    s
}

/// A run with no samples at all.
pub(crate) fn empty_summary() -> Summary {
    Summary {
        scenario: "empty".into(),
        scenario_file: "scenarios/empty file.toml".into(),
        backend: "inproc".into(),
        seed: 0,
        expect: Verdict::Valid,
        verdict: Verdict::Unknown,
        matches_expectation: false,
        violations: 0,
        witnesses: Vec::new(),
        verdict_reason: Some("the history is empty".into()),
        violation_classes: BTreeMap::new(),
        ownership: Default::default(),
        fencing: Default::default(),
        liveness: Default::default(),
        recovery: Default::default(),
        lost_updates: None,
        notes: Vec::new(),
        ops: BTreeMap::new(),
        acquire_latency_us: Percentiles::default(),
        acquire_latency_curve: Vec::new(),
        release_latency_us: Percentiles::default(),
        hold_time_us: Percentiles::default(),
        throughput_per_s: 0.0,
        throughput_timeline: Vec::new(),
        duration_s: 0.0,
        clients: 0,
        hosts: 0,
        keys: Vec::new(),
        lease_ms: 0,
        faults: Vec::new(),
        servers: Vec::new(),
        topology: None,
        started_at: String::new(),
        history_events: 0,
        interrupted: true,
        lockbench_version: "0.1.0".into(),
        agents: None,
        library: None,
        incidents: Vec::new(),
    }
}

/// Whether the page refers to anything outside itself (SVG namespaces aside).
fn external_refs(page: &str) -> Vec<String> {
    let cleaned = page.replace("http://www.w3.org/", "");
    ["http://", "https://", "src=\"", "url(", "@import"]
        .iter()
        .filter(|needle| cleaned.contains(*needle))
        .map(|needle| needle.to_string())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn valid_run_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = valid_summary();
    let path = write_run_report(dir.path(), &s).unwrap();
    assert_eq!(path, dir.path().join("index.html"));
    let page = read(&path);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 2, "two charts");
    assert!(page.contains(">valid<"));
    assert!(page.contains("as expected"));
    assert!(page.contains("repeat with: lockbench run scenarios/contention-basic.toml --seed 42"));
    assert!(page.contains("href=\"servers/redis-1.log\""));
    assert!(page.contains("7.2.4"));
    assert!(!page.contains("{{"), "no placeholder left");
    assert!(!page.contains("Witnesses"));
    assert_eq!(external_refs(&page), Vec::<String>::new());
    // The verdict comes before the tables, the tables before the charts.
    let verdict = page.find("class=\"verdict").unwrap();
    let summary = page.find("<h2>Summary</h2>").unwrap();
    let chart = page.find("<svg").unwrap();
    assert!(verdict < summary && summary < chart);
}

#[test]
fn invalid_run_report_shows_witnesses_and_faults() {
    let dir = tempfile::tempdir().unwrap();
    let s = invalid_summary();
    let page = read(&write_run_report(dir.path(), &s).unwrap());
    assert!(page.contains(">invalid<"));
    assert!(page.contains("7 mutual-exclusion violations"));
    for w in &s.witnesses {
        assert!(
            page.contains(&html::escape(&w.to_string())),
            "witness text missing: {w}"
        );
    }
    // The table: holders, times, overlap.
    assert!(page.contains("process 3 (fence 17)"));
    assert!(page.contains("12.000000"));
    assert!(page.contains(">400.000<"));
    assert!(page.contains("to the end"));
    // Data is escaped.
    assert!(page.contains("pause-holder &lt;script&gt;"));
    assert!(!page.contains("<script"));
    // The fault windows are drawn (translucent bands) and listed.
    assert!(page.contains("fault window"));
    assert!(page.contains("end of run"));
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(external_refs(&page), Vec::<String>::new());
}

#[test]
fn empty_run_report_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = empty_summary();
    let page = read(&write_run_report(dir.path(), &s).unwrap());
    assert!(page.contains(">unknown<"));
    assert!(page.contains("NOT as expected"));
    assert!(page.contains("the history is empty"));
    assert!(page.contains("Interrupted"));
    assert!(page.contains("No acquire latency chart"));
    assert!(page.contains("No throughput chart"));
    assert!(!page.contains("<svg"));
    assert!(page.contains("--seed 0"));
    assert!(page.contains("&#39;scenarios/empty file.toml&#39;"));
    assert_eq!(external_refs(&page), Vec::<String>::new());
}

#[test]
fn odd_data_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = valid_summary();
    // Zero latencies, one point, NaN and out-of-range percentiles.
    s.acquire_latency_curve = vec![
        CurvePoint {
            percentile: f64::NAN,
            us: 5,
        },
        CurvePoint {
            percentile: 150.0,
            us: 0,
        },
    ];
    s.acquire_latency_us = percentiles(1, 0);
    s.throughput_timeline = vec![0];
    s.throughput_per_s = f64::NAN;
    s.duration_s = f64::INFINITY;
    s.faults = vec![FaultRecord {
        fault: "backwards".into(),
        start_ns: 50_000_000_000,
        end_ns: Some(1),
        targets: vec![],
        error: None,
    }];
    let page = read(&write_run_report(dir.path(), &s).unwrap());
    assert_eq!(page.matches("<svg").count(), 2);

    // Only points at 100 %, identical latencies.
    s.acquire_latency_curve = vec![CurvePoint {
        percentile: 100.0,
        us: 7,
    }];
    write_run_report(dir.path(), &s).unwrap();
}

#[test]
fn comparison_page() {
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let mut runs: Vec<(PathBuf, Summary)> = Vec::new();
    for (name, s) in [
        ("a", valid_summary()),
        ("b", invalid_summary()),
        ("c", empty_summary()),
    ] {
        let run = runs_dir.join(name);
        std::fs::create_dir_all(&run).unwrap();
        write_run_report(&run, &s).unwrap();
        runs.push((run, s));
    }
    let out = dir.path().join("cmp");
    let path = write_comparison(&out, &runs).unwrap();
    assert_eq!(path, out.join("comparison.html"));
    let page = read(&path);
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(page.matches("<tr><td class=\"num\" title=").count(), 3);
    assert!(page.contains("href=\"../runs/a/index.html\""));
    assert!(page.contains("href=\"../runs/c/index.html\""));
    assert!(page.contains("badge invalid"));
    assert!(page.contains("✗ expected valid"));
    assert!(page.contains("redis-get-set · pause-holder &lt;script&gt;"));
    assert!(!page.contains("{{"));
    assert_eq!(external_refs(&page), Vec::<String>::new());
}

#[test]
fn comparison_of_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let page = read(&write_comparison(dir.path(), &[]).unwrap());
    assert!(page.contains("No runs to compare"));
    assert!(!page.contains("<svg"));

    let only_empty = vec![(dir.path().join("x"), empty_summary())];
    let page = read(&write_comparison(dir.path(), &only_empty).unwrap());
    assert!(page.contains("No latency chart"));
}

#[test]
fn font_registers_once() {
    register_font().unwrap();
    register_font().unwrap();
}

/// Writes sample pages to `$LOCKBENCH_REPORT_SAMPLE` (a directory) when set,
/// for looking at them in a browser.
#[test]
fn sample_pages() {
    let Some(dir) = std::env::var_os("LOCKBENCH_REPORT_SAMPLE") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = if std::env::var_os("LOCKBENCH_REPORT_SAMPLE_VALID").is_some() {
        valid_summary()
    } else {
        invalid_summary()
    };
    write_run_report(&dir, &s).unwrap();
    let mut other = valid_summary();
    other.backend = "inproc".into();
    other.acquire_latency_curve = curve(12.0);
    other.acquire_latency_us = percentiles(100_000, 12);
    other.throughput_per_s = 9_512.0;
    let mut third = invalid_summary();
    third.scenario = valid_summary().scenario;
    let runs = vec![
        (dir.clone(), s),
        (dir.join("other"), other),
        (dir.join("third"), third),
    ];
    write_comparison(&dir, &runs).unwrap();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    write_run_report(&empty, &empty_summary()).unwrap();
}

#[test]
fn baseline_flags_slower_runs_and_new_violations() {
    let base = valid_summary();
    let dir = Path::new("reports/x/redis/1");
    let same = baseline::compare(&base, &base, dir, 10.0);
    assert!(!same.regressed(), "{:?}", same.regressions);

    let mut slow = valid_summary();
    slow.throughput_per_s = base.throughput_per_s / 2.0;
    slow.acquire_latency_us.p99 = base.acquire_latency_us.p99 * 2;
    let cmp = baseline::compare(&slow, &base, dir, 10.0);
    assert_eq!(cmp.regressions.len(), 2, "{:?}", cmp.regressions);
    assert!(cmp.regressions.iter().any(|r| r.contains("throughput")));
    assert!(cmp.regressions.iter().any(|r| r.contains("p99")));
    // The same change is within a 150 % threshold.
    assert!(!baseline::compare(&slow, &base, dir, 150.0).regressed());

    let mut broken = valid_summary();
    broken.verdict = Verdict::Invalid;
    broken.violations = 3;
    let cmp = baseline::compare(&broken, &base, dir, 10.0);
    assert!(cmp.regressions.iter().any(|r| r.contains("verdict")));

    // Written into the run directory, shown on the run page.
    let run = tempfile::tempdir().unwrap();
    baseline::write(run.path(), &cmp).unwrap();
    let page = read(&write_run_report(run.path(), &broken).unwrap());
    assert!(page.contains("REGRESSION"));
    assert!(page.contains("verdict got worse"));
}

#[test]
fn find_baseline_takes_the_newest_run() {
    let out = tempfile::tempdir().unwrap();
    let mut s = valid_summary();
    for (name, at) in [("a", "2025-01-01T00:00:00Z"), ("b", "2025-03-01T00:00:00Z")] {
        let dir = out.path().join(&s.scenario).join(&s.backend).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        s.started_at = at.into();
        s.write(&dir.join("summary.json")).unwrap();
    }
    let (dir, found) = baseline::find_baseline(out.path(), &s.scenario, &s.backend, None).unwrap();
    assert!(dir.ends_with("b"));
    assert_eq!(found.started_at, "2025-03-01T00:00:00Z");
    let newest = out.path().join(&s.scenario).join(&s.backend).join("b");
    let (dir, _) =
        baseline::find_baseline(out.path(), &s.scenario, &s.backend, Some(&newest)).unwrap();
    assert!(dir.ends_with("a"));
    assert!(baseline::find_baseline(out.path(), "other", &s.backend, None).is_none());
}

/// One history line.
fn line(index: u64, ms: u64, process: u64, kind: &str, f: &str) -> String {
    format!(
        "{{\"index\":{index},\"time_ns\":{},\"process\":{process},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"lock-0\"}}\n",
        ms * 1_000_000
    )
}

#[test]
fn timeline_draws_holds_and_red_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    // Client 1 holds 10..50 ms, client 2 acquires at 30 ms: overlap 30..50.
    let history = [
        line(0, 9, 1, "invoke", "acquire"),
        line(1, 10, 1, "ok", "acquire"),
        line(2, 29, 2, "invoke", "acquire"),
        line(3, 30, 2, "ok", "acquire"),
        line(4, 50, 1, "invoke", "release"),
        line(5, 51, 1, "ok", "release"),
        line(6, 60, 2, "invoke", "release"),
        line(7, 61, 2, "ok", "release"),
    ]
    .concat();
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    let mut s = invalid_summary();
    let mut w = s.witnesses[0].clone();
    w.key = "lock-0".into();
    w.first = hold(1, 10_000_000, Some(50_000_000), 1);
    w.second = hold(2, 30_000_000, Some(60_000_000), 2);
    w.overlap_start_ns = 30_000_000;
    w.overlap_end_ns = Some(50_000_000);
    w.class = ViolationClass::LockLost;
    s.witnesses = vec![w];
    s.violations = 1;
    s.violation_classes = BTreeMap::from([("lock-lost".to_string(), 1)]);
    let page = read(&write_run_report(dir.path(), &s).unwrap());
    assert!(page.contains("<h2>Timeline</h2>"));
    // Two holds drawn, the overlap in red on both clients' rows.
    assert_eq!(page.matches("class=\"overlap\"").count(), 2);
    assert!(page.contains("client 1 held lock-0"));
    assert!(page.contains("client 2 held lock-0"));
    assert!(page.contains("class <span class=\"red\">lock-lost</span>"));
    assert!(page.contains("Overview: when each key was held"));
    assert_eq!(external_refs(&page), Vec::<String>::new());
}

#[test]
fn timeline_of_a_long_run_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // 40 clients taking turns, 20,000 holds in all.
    let mut history = String::new();
    let mut index = 0;
    for i in 0..20_000u64 {
        let p = i % 40;
        for (ms, kind, f) in [
            (i * 2, "invoke", "acquire"),
            (i * 2, "ok", "acquire"),
            (i * 2 + 1, "invoke", "release"),
            (i * 2 + 1, "ok", "release"),
        ] {
            history.push_str(&line(index, ms, p, kind, f));
            index += 1;
        }
    }
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    let s = valid_summary();
    let page = read(&write_run_report(dir.path(), &s).unwrap());
    assert!(page.contains("(no violations: an example)"));
    assert!(
        page.contains("Capped:"),
        "the example window says it is capped"
    );
    assert!(page.len() < 600_000, "page size {}", page.len());
}

#[test]
fn a_capped_window_counts_each_client_once() {
    let dir = tempfile::tempdir().unwrap();
    // 25 clients taking turns, a hold every 100 µs: the example window
    // (at least 10 ms) holds about 90, each client's three or four times,
    // and the 25th client is not drawn.
    let mut history = String::new();
    let mut index = 0;
    for i in 0..3_000u64 {
        let p = i % 25;
        let t = i * 100_000;
        for (ns, kind, f) in [
            (t, "invoke", "acquire"),
            (t + 10_000, "ok", "acquire"),
            (t + 50_000, "invoke", "release"),
            (t + 60_000, "ok", "release"),
        ] {
            history.push_str(&format!(
                "{{\"index\":{index},\"time_ns\":{ns},\"process\":{p},\"type\":\"{kind}\",\"f\":\"{f}\",\"key\":\"lock-0\"}}\n"
            ));
            index += 1;
        }
    }
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    let page = read(&write_run_report(dir.path(), &valid_summary()).unwrap());
    assert!(
        page.contains("Capped: 24 of 25 clients shown"),
        "{}",
        &page[page.find("Capped").unwrap_or(0)..][..80.min(page.len())]
    );
}
