//! The corpus of hand-written histories in `tests/data/histories/`, checked
//! through the library (the streaming analysis, and `MutexChecker`, which
//! must agree with it) and through the CLI (`lockbench check`).
//!
//! A file's name starts with its expected verdict: `valid-`, `invalid-` or
//! `unknown-` (see the README next to the files for why each verdict is what
//! it is, by docs/design.md's rule): the run's verdict, mutual exclusion and
//! ownership together (`Analysis::verdict`). Every mismatch in the corpus is
//! collected and reported at once, not just the first. The files that show
//! one finding (a cause, a release by a non-holder, a stale write) have
//! their own tests below.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockbench::check::Checker;
use lockbench::check::{
    Analysis, AnalysisOptions, CheckResult, FencingOutcome, HoldEnd, MutexChecker, Verdict,
    ViolationClass, Witness, analyze_events, analyze_file, run_checker,
};
use lockbench::history::{Event, F, Process, read_edn, read_jsonl};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/histories")
}

/// Every `*.jsonl` file of the corpus, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no histories in {}", dir.display());
    files
}

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 file name")
}

/// The verdict a file's name promises.
fn expected_verdict(path: &Path) -> Verdict {
    let name = file_name(path);
    if name.starts_with("valid-") {
        Verdict::Valid
    } else if name.starts_with("invalid-") {
        Verdict::Invalid
    } else if name.starts_with("unknown-") {
        Verdict::Unknown
    } else {
        panic!("{name}: a corpus file must start with valid-, invalid- or unknown-")
    }
}

fn load(path: &Path) -> Vec<Event> {
    read_jsonl(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .events
}

fn check(path: &Path) -> (Vec<Event>, CheckResult) {
    let events = load(path);
    let result = run_checker(&MutexChecker, &events);
    (events, result)
}

/// The streaming analysis of a corpus file (`.jsonl` from the file, `.edn`
/// read into memory), with its events.
fn analyze(name: &str) -> (Vec<Event>, Analysis) {
    let path = corpus_dir().join(name);
    if name.ends_with(".edn") {
        let events = read_edn(&path)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .events;
        let analysis = analyze_events(&events, AnalysisOptions::default());
        (events, analysis)
    } else {
        let (analysis, stats) = analyze_file(&path, AnalysisOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let events = load(&path);
        assert_eq!(stats.events, events.len() as u64, "{name}: events streamed");
        (events, analysis)
    }
}

/// One expected witness, written with event indices (the time of an event is
/// read from the history, so the files can change their clocks freely).
struct W {
    key: &'static str,
    first: u64,
    /// Index of the first holder's `acquire` `ok`.
    first_start: u64,
    /// Index of the event that ended the first hold (`None`: end of history).
    first_end: Option<u64>,
    second: u64,
    /// Index of the second holder's `acquire` `ok`: the overlap starts here.
    second_start: u64,
    /// Index of the event at whose time the overlap ends (`None`: both held
    /// to the end of the history).
    overlap_end: Option<u64>,
}

struct Expect {
    file: &'static str,
    violations: u64,
    witnesses: &'static [W],
}

/// The exact witnesses of the invalid files (see the README).
const EXPECTED: &[Expect] = &[
    Expect {
        file: "invalid-two-holders-overlap.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 2,
            first_end: Some(8),
            second: 1,
            second_start: 3,
            overlap_end: Some(8),
        }],
    },
    Expect {
        file: "invalid-three-holders-overlap.jsonl",
        violations: 3,
        witnesses: &[
            W {
                key: "lock",
                first: 0,
                first_start: 3,
                first_end: Some(12),
                second: 1,
                second_start: 4,
                overlap_end: Some(12),
            },
            W {
                key: "lock",
                first: 0,
                first_start: 3,
                first_end: Some(12),
                second: 2,
                second_start: 5,
                overlap_end: Some(12),
            },
            W {
                key: "lock",
                first: 1,
                first_start: 4,
                first_end: Some(14),
                second: 2,
                second_start: 5,
                overlap_end: Some(14),
            },
        ],
    },
    Expect {
        file: "invalid-failed-release-then-acquire.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: None,
            second: 1,
            second_start: 7,
            overlap_end: Some(10),
        }],
    },
    Expect {
        file: "invalid-crash-after-overlap.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: Some(12),
            second: 1,
            second_start: 5,
            overlap_end: Some(12),
        }],
    },
    Expect {
        file: "invalid-several-keys-overlap-on-one.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "acct-2",
            first: 1,
            first_start: 4,
            first_end: Some(18),
            second: 0,
            second_start: 15,
            overlap_end: Some(18),
        }],
    },
    Expect {
        file: "invalid-hold-to-end-overlapped.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: None,
            second: 1,
            second_start: 7,
            overlap_end: Some(10),
        }],
    },
    Expect {
        file: "invalid-both-hold-to-end.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: None,
            second: 1,
            second_start: 3,
            overlap_end: None,
        }],
    },
    Expect {
        file: "invalid-release-by-non-holder.jsonl",
        violations: 0,
        witnesses: &[],
    },
    Expect {
        file: "invalid-stale-fenced-write-accepted.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: Some(10),
            second: 1,
            second_start: 4,
            overlap_end: Some(10),
        }],
    },
    Expect {
        file: "invalid-stale-fenced-write-rejected.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: Some(10),
            second: 1,
            second_start: 4,
            overlap_end: Some(10),
        }],
    },
    Expect {
        file: "invalid-paused-holder-past-lease.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: Some(12),
            second: 1,
            second_start: 6,
            overlap_end: Some(12),
        }],
    },
    Expect {
        file: "invalid-lock-lost-within-lease.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "lock",
            first: 0,
            first_start: 1,
            first_end: Some(12),
            second: 1,
            second_start: 7,
            overlap_end: Some(12),
        }],
    },
    Expect {
        file: "invalid-no-key-overlap.jsonl",
        violations: 1,
        witnesses: &[W {
            key: "",
            first: 0,
            first_start: 1,
            first_end: Some(6),
            second: 1,
            second_start: 5,
            overlap_end: Some(6),
        }],
    },
];

fn time_of(events: &[Event], index: u64) -> u64 {
    events
        .iter()
        .find(|e| e.index == index)
        .unwrap_or_else(|| panic!("no event with index {index}"))
        .time_ns
}

/// Differences between a witness and its expectation, as readable lines.
fn compare_witness(events: &[Event], got: &Witness, want: &W) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut diff = |what: &str, got: String, want: String| {
        if got != want {
            diffs.push(format!("{what}: got {got}, want {want}"));
        }
    };
    diff("key", format!("{:?}", got.key), format!("{:?}", want.key));
    diff(
        "first process",
        format!("{:?}", got.first.process),
        format!("{:?}", Process::Client(want.first)),
    );
    diff(
        "first start index",
        got.first.start_index.to_string(),
        want.first_start.to_string(),
    );
    diff(
        "first start time",
        got.first.start_ns.to_string(),
        time_of(events, want.first_start).to_string(),
    );
    diff(
        "first end index",
        format!("{:?}", got.first.end_index),
        format!("{:?}", want.first_end),
    );
    diff(
        "first end time",
        format!("{:?}", got.first.end_ns),
        format!("{:?}", want.first_end.map(|i| time_of(events, i))),
    );
    if want.first_end.is_none() {
        diff(
            "first end",
            format!("{:?}", got.first.end),
            format!("{:?}", HoldEnd::EndOfHistory),
        );
    }
    diff(
        "second process",
        format!("{:?}", got.second.process),
        format!("{:?}", Process::Client(want.second)),
    );
    diff(
        "second start index",
        got.second.start_index.to_string(),
        want.second_start.to_string(),
    );
    diff(
        "overlap start",
        got.overlap_start_ns.to_string(),
        time_of(events, want.second_start).to_string(),
    );
    diff(
        "overlap end",
        format!("{:?}", got.overlap_end_ns),
        format!("{:?}", want.overlap_end.map(|i| time_of(events, i))),
    );
    diffs
}

/// The corpus itself follows the format: `index` 0.. in file order,
/// `time_ns` strictly increasing.
#[test]
fn corpus_files_are_well_formed() {
    let mut problems = Vec::new();
    for path in corpus() {
        let name = file_name(&path);
        let _ = expected_verdict(&path);
        let events = load(&path);
        let mut last = None;
        for (i, e) in events.iter().enumerate() {
            if e.index != i as u64 {
                problems.push(format!("{name}: line {} has index {}", i + 1, e.index));
            }
            if last.is_some_and(|t| e.time_ns <= t) {
                problems.push(format!(
                    "{name}: line {}: time_ns {} does not increase",
                    i + 1,
                    e.time_ns
                ));
            }
            last = Some(e.time_ns);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).expect("README.md");
    for path in corpus() {
        assert!(
            readme.contains(file_name(&path)),
            "README.md does not describe {}",
            file_name(&path)
        );
    }
}

/// Part (a): the library's verdict on every file matches its name.
#[test]
fn checker_verdicts_match_file_names() {
    let mut failures = Vec::new();
    let mut seen = [0usize; 3];
    for path in corpus() {
        let name = file_name(&path).to_string();
        let want = expected_verdict(&path);
        seen[match want {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
            Verdict::NotChecked => panic!("{name}: a file name never promises `not checked`"),
        }] += 1;
        let (events, direct) = check(&path);
        let (_, analysis) = analyze(&name);
        // The streaming pass and the checker over events in memory are one
        // rule: they must give the same result, witnesses and classes.
        if direct != analysis.mutex {
            failures.push(format!(
                "{name}: MutexChecker and analyze_file disagree:\n      {direct:?}\n      {:?}",
                analysis.mutex
            ));
        }
        let result = &analysis.mutex;
        let own = &analysis.ownership;
        let verdict = analysis.verdict();
        if verdict != want {
            let detail = match verdict {
                Verdict::Invalid => result
                    .witnesses
                    .iter()
                    .map(|w| format!("\n      witness: {w}"))
                    .chain(
                        own.witnesses
                            .iter()
                            .map(|w| format!("\n      ownership: {w}")),
                    )
                    .collect::<String>(),
                _ => format!(" ({})", result.reason.as_deref().unwrap_or("no reason")),
            };
            failures.push(format!(
                "{name}: expected {want}, the analysis said {} with {} mutex and {} ownership violation(s){detail}",
                verdict, result.violations, own.violations
            ));
            continue;
        }
        // Every violation has a cause, and the counts by cause add up.
        let by_class: u64 = result.classes.values().sum();
        if by_class != result.violations {
            failures.push(format!(
                "{name}: classes {:?} count {by_class}, violations {}",
                result.classes, result.violations
            ));
        }
        for w in &result.witnesses {
            if !result.classes.contains_key(w.class.as_str()) {
                failures.push(format!(
                    "{name}: witness class {} not counted",
                    w.class.as_str()
                ));
            }
        }
        match want {
            Verdict::Valid => {
                if result.violations != 0 || !result.witnesses.is_empty() || own.violations != 0 {
                    failures.push(format!(
                        "{name}: valid but carries violations: {result:?} {own:?}"
                    ));
                }
            }
            Verdict::Invalid => {
                let mutex_ok = (result.violations == 0) == result.witnesses.is_empty();
                let own_ok = (own.violations == 0) == own.witnesses.is_empty();
                if result.violations + own.violations == 0 || !mutex_ok || !own_ok {
                    failures.push(format!(
                        "{name}: invalid with {} + {} violations and {} + {} witnesses",
                        result.violations,
                        own.violations,
                        result.witnesses.len(),
                        own.witnesses.len()
                    ));
                }
                // Every witness, expected or not, is two holders of one key
                // overlapping from the second's start.
                for w in &result.witnesses {
                    let ok = w.first.process != w.second.process
                        && w.first.key == w.key
                        && w.second.key == w.key
                        && w.first.start_ns <= w.second.start_ns
                        && w.overlap_start_ns == w.second.start_ns
                        && w.first.end_ns.is_none_or(|end| end > w.overlap_start_ns)
                        && w.overlap_end_ns.is_none_or(|end| end > w.overlap_start_ns);
                    if !ok {
                        failures.push(format!("{name}: malformed witness {w:?}"));
                    }
                }
            }
            Verdict::Unknown => {
                let reason = result.reason.as_deref().unwrap_or("");
                if !reason.contains("inconsistent") {
                    failures.push(format!(
                        "{name}: unknown, but the reason does not say the history is inconsistent: {reason:?}"
                    ));
                }
            }
            // Only a run without a history is not checked.
            Verdict::NotChecked => failures.push(format!("{name}: not checked")),
        }
        if let Some(expect) = EXPECTED.iter().find(|x| x.file == name) {
            if result.violations != expect.violations {
                failures.push(format!(
                    "{name}: {} violations, want {}",
                    result.violations, expect.violations
                ));
            }
            if result.witnesses.len() != expect.witnesses.len() {
                failures.push(format!(
                    "{name}: {} witnesses, want {}",
                    result.witnesses.len(),
                    expect.witnesses.len()
                ));
            }
            for (i, (got, want)) in result.witnesses.iter().zip(expect.witnesses).enumerate() {
                for d in compare_witness(&events, got, want) {
                    failures.push(format!("{name}: witness {i}: {d}"));
                }
            }
        } else if want == Verdict::Invalid {
            failures.push(format!("{name}: add its witnesses to EXPECTED"));
        }
    }
    for expect in EXPECTED {
        if !corpus_dir().join(expect.file).exists() {
            failures.push(format!("{}: listed in EXPECTED but missing", expect.file));
        }
    }
    assert!(
        seen.iter().all(|&n| n > 0),
        "the corpus needs valid, invalid and unknown files: {seen:?}"
    );
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn lockbench(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockbench"))
        .args(args)
        .output()
        .expect("run lockbench")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `text` names client `p`, as prose ("process 1") or JSON
/// (`"process":1`).
fn mentions_process(text: &str, p: &Process) -> bool {
    [
        format!("process {p}"),
        format!("\"process\":{p}"),
        format!("\"process\": {p}"),
    ]
    .iter()
    .any(|s| text.contains(s.as_str()))
}

/// Part (b): `lockbench check FILE` exits 0 valid, 1 invalid, 3 unknown, and
/// an invalid verdict names the key and both processes.
#[test]
fn cli_check_exit_codes_match_file_names() {
    let mut failures = Vec::new();
    for path in corpus() {
        let name = file_name(&path);
        let want = expected_verdict(&path);
        let out = lockbench(&["check".as_ref(), path.as_os_str()]);
        if out.status.code() != Some(want.exit_code()) {
            failures.push(format!(
                "{name}: expected exit {} ({want}), got {}",
                want.exit_code(),
                describe(&out)
            ));
            continue;
        }
        if want == Verdict::Invalid {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let (_, analysis) = analyze(name);
            // The first witness: of mutual exclusion, or else of ownership.
            let (key, processes) = match analysis.mutex.witnesses.first() {
                Some(w) => (w.key.clone(), vec![w.first.process, w.second.process]),
                None => {
                    let w = &analysis.ownership.witnesses[0];
                    (w.key.clone(), vec![w.process])
                }
            };
            let mut missing = Vec::new();
            if !stdout.contains("invalid") {
                missing.push("the word \"invalid\"".to_string());
            }
            if !key.is_empty() && !stdout.contains(&key) {
                missing.push(format!("the key {key:?}"));
            }
            for p in &processes {
                if !mentions_process(&stdout, p) {
                    missing.push(format!("process {p}"));
                }
            }
            if !missing.is_empty() {
                failures.push(format!(
                    "{name}: stdout does not mention {}: {}",
                    missing.join(", "),
                    describe(&out)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Part (c): a missing file is bad input (exit 2) and says which file.
#[test]
fn cli_check_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-history.jsonl");
    let out = lockbench(&["check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-history.jsonl"),
        "stderr does not name the file: {}",
        describe(&out)
    );
}

/// Part (c): a malformed line in the middle is bad input (exit 2), and the
/// message names the file and the line.
#[test]
fn cli_check_malformed_file_exits_2_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("malformed.jsonl");
    let text = concat!(
        r#"{"index":0,"time_ns":1000,"process":0,"type":"invoke","f":"acquire","key":"lock"}"#,
        "\n",
        r#"{"index":1,"time_ns":2000,"process":0,"type":"ok","f":"acquire","key":"lock","fence":1}"#,
        "\n",
        "{oops}\n",
        r#"{"index":3,"time_ns":4000,"process":0,"type":"invoke","f":"release","key":"lock"}"#,
        "\n",
        r#"{"index":4,"time_ns":5000,"process":0,"type":"ok","f":"release","key":"lock"}"#,
        "\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = lockbench(&["check".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("malformed.jsonl"),
        "stderr does not name the file: {}",
        describe(&out)
    );
    assert!(
        stderr.contains("malformed.jsonl:3") || stderr.contains("line 3"),
        "stderr does not name line 3: {}",
        describe(&out)
    );
}

/// Jepsen `history.edn` files: `lockbench check --format edn` gives the
/// verdict the file name says.
#[test]
fn cli_check_edn_files_match_file_names() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "edn"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected Jepsen histories in the corpus");
    for path in files {
        let expected = expected_verdict(&path);
        let out = lockbench(&[
            "check".as_ref(),
            "--format".as_ref(),
            "edn".as_ref(),
            path.as_os_str(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(expected.exit_code()),
            "{}: {}",
            file_name(&path),
            describe(&out)
        );
    }
}

// ---- The findings of the files that show one thing each (see the README).

const MS: f64 = 1e6;

#[test]
fn failed_then_retried_releases_are_valid_and_owned() {
    let (_, a) = analyze("valid-release-failed-twice-then-retried.jsonl");
    assert_eq!(a.verdict(), Verdict::Valid, "{a:?}");
    assert_eq!(a.mutex.violations, 0);
    // The retries succeeded for the holder: no ownership violation.
    assert_eq!(a.ownership.verdict, Verdict::Valid);
    assert_eq!(a.ownership.violations, 0);
    assert_eq!(a.fencing.outcome, FencingOutcome::Safe);
    assert_eq!((a.fencing.accepted, a.fencing.fence_regressions), (2, 0));
}

#[test]
fn a_release_by_a_non_holder_is_an_ownership_violation() {
    let (events, a) = analyze("invalid-release-by-non-holder.jsonl");
    assert_eq!(a.verdict(), Verdict::Invalid);
    // Mutual exclusion itself held: only ownership is violated.
    assert_eq!(a.mutex.verdict, Verdict::Valid);
    assert_eq!(a.ownership.verdict, Verdict::Invalid);
    // Client 2's release said was_held=false: honest, not counted.
    assert_eq!(a.ownership.violations, 1, "{:?}", a.ownership);
    let w = &a.ownership.witnesses[0];
    assert_eq!(w.key, "lock");
    assert_eq!(w.process, Process::Client(1));
    assert_eq!(w.index, 5);
    assert_eq!(w.time_ns, events[5].time_ns);
    assert_eq!(w.holder, Some(Process::Client(0)));
    let text = w.to_string();
    assert!(
        text.contains("process 1") && text.contains("process 0"),
        "{text}"
    );
}

#[test]
fn a_jepsen_release_by_a_non_holder_is_an_ownership_violation() {
    let (_, a) = analyze("invalid-jepsen-release-by-non-holder.edn");
    assert_eq!(a.verdict(), Verdict::Invalid);
    assert_eq!(a.mutex.verdict, Verdict::Valid);
    assert_eq!(a.ownership.violations, 1);
    let w = &a.ownership.witnesses[0];
    assert_eq!(
        (w.key.as_str(), w.process, w.holder),
        ("orders", Process::Client(1), Some(Process::Client(0)))
    );
}

#[test]
fn a_stale_fenced_write_accepted_breaks_the_resource() {
    let (events, a) = analyze("invalid-stale-fenced-write-accepted.jsonl");
    assert_eq!(a.verdict(), Verdict::Invalid);
    assert_eq!(a.fencing.verdict, Some(Verdict::Invalid));
    assert_eq!(a.fencing.outcome, FencingOutcome::StaleWritesAccepted);
    assert_eq!(a.fencing.stale_accepted, 1);
    let w = &a.fencing.witnesses[0];
    assert_eq!(
        (w.key.as_str(), w.process, w.index),
        ("lock", Process::Client(0), 9)
    );
    assert_eq!((w.fence, w.max_before), (1, 2));
    assert_eq!(w.time_ns, events[9].time_ns);
    // The paused holder outlived its 10 ms lease.
    assert_eq!(a.mutex.witnesses[0].class, ViolationClass::LeaseExpired);
}

#[test]
fn a_stale_fenced_write_rejected_keeps_the_resource_safe() {
    let (_, a) = analyze("invalid-stale-fenced-write-rejected.jsonl");
    assert_eq!(
        a.verdict(),
        Verdict::Invalid,
        "exclusion was still violated"
    );
    assert_eq!(a.mutex.violations, 1);
    assert_eq!(a.fencing.verdict, Some(Verdict::Valid));
    assert_eq!(
        a.fencing.outcome,
        FencingOutcome::ExclusionViolatedResourceSafe
    );
    assert_eq!(
        (
            a.fencing.accepted,
            a.fencing.rejected,
            a.fencing.stale_accepted
        ),
        (1, 1, 0)
    );
    assert!(a.fencing.witnesses.is_empty());
}

#[test]
fn a_paused_holder_past_its_lease_is_lease_expired() {
    let (events, a) = analyze("invalid-paused-holder-past-lease.jsonl");
    assert_eq!(a.verdict(), Verdict::Invalid);
    assert_eq!(a.mutex.violations, 1);
    assert_eq!(
        a.mutex.classes.get("lease-expired"),
        Some(&1),
        "{:?}",
        a.mutex.classes
    );
    assert_eq!(a.mutex.classes.len(), 1);
    assert!(a.mutex.witnesses[0].to_string().contains("lease-expired"));
    // No write carried a token.
    assert_eq!(a.fencing.outcome, FencingOutcome::NoFence);
    assert_eq!(a.fencing.unfenced, 2);
    // The pause ended (resume-client) and no acquire followed it.
    assert_eq!(a.recovery.faults.len(), 1);
    assert_eq!(a.recovery.faults[0].fault, "resume-client");
    assert_eq!(a.recovery.faults[0].end_ns, events[9].time_ns);
    assert_eq!(a.recovery.faults[0].next_acquire_ms, None);
}

#[test]
fn a_lock_lost_within_the_lease_is_lock_lost() {
    let (events, a) = analyze("invalid-lock-lost-within-lease.jsonl");
    assert_eq!(a.verdict(), Verdict::Invalid);
    // Client 0 renewed at 80 ms for 100 ms; client 1 got the lock at
    // 121 ms, after the server restarted: the lease was certainly running.
    assert_eq!(
        a.mutex.classes.get("lock-lost"),
        Some(&1),
        "{:?}",
        a.mutex.classes
    );
    assert_eq!(a.mutex.witnesses[0].class, ViolationClass::LockLost);
    assert!(a.mutex.witnesses[0].to_string().contains("lock-lost"));
    // The restarted server handed out fence 1 again, and the resource
    // accepted both holders' writes with it: it cannot tell two holders
    // with one token apart, so the second is a stale write.
    assert_eq!(a.fencing.fence_regressions, 1);
    assert_eq!(a.fencing.outcome, FencingOutcome::StaleWritesAccepted);
    assert_eq!(a.fencing.stale_accepted, 1);
    assert_eq!(
        (a.fencing.witnesses[0].process, a.fencing.witnesses[0].index),
        (Process::Client(0), 11)
    );
    // Recovery: from the restart to client 1's acquire.
    assert_eq!(a.recovery.faults.len(), 1);
    assert_eq!(a.recovery.faults[0].fault, "restart-server");
    let want = (events[7].time_ns - events[5].time_ns) as f64 / MS;
    assert_eq!(a.recovery.faults[0].next_acquire_ms, Some(want));
}

#[test]
fn an_info_acquire_that_could_explain_an_overlap_proves_nothing() {
    let (events, a) = analyze("valid-acquire-info-could-explain-overlap.jsonl");
    assert_eq!(a.verdict(), Verdict::Valid, "{a:?}");
    assert_eq!(a.mutex.violations, 0);
    // Client 1's clean-up release after its info acquire may be its own.
    assert_eq!(a.ownership.violations, 0);
    // The info came inside the partition.
    assert_eq!(a.recovery.info_during_faults, 1);
    assert_eq!(a.recovery.faults.len(), 1);
    let want = (events[11].time_ns - events[5].time_ns) as f64 / MS;
    assert_eq!(a.recovery.faults[0].next_acquire_ms, Some(want));
    // Client 1 waited from its invoke to the timeout.
    assert_eq!(a.liveness.longest_wait_process, Some(Process::Client(1)));
    let wait = (events[4].time_ns - events[3].time_ns) as f64 / MS;
    assert_eq!(a.liveness.longest_wait_ms, wait);
    assert_eq!(a.liveness.starved_clients, 1);
}

#[test]
fn an_info_acquire_that_could_not_explain_an_overlap_proves_nothing() {
    let (_, a) = analyze("valid-acquire-info-cannot-explain-overlap.jsonl");
    assert_eq!(a.verdict(), Verdict::Valid, "{a:?}");
    assert_eq!(a.mutex.violations, 0);
    assert_eq!(a.ownership.violations, 0);
    assert_eq!(a.recovery.info_during_faults, 0);
    assert!(a.liveness.deadlocks.is_empty());
}

#[test]
fn a_crashed_holder_frees_the_lock_without_a_deadlock() {
    let (events, a) = analyze("valid-crashed-holder-lock-freed-after-lease.jsonl");
    assert_eq!(a.verdict(), Verdict::Valid, "{a:?}");
    assert_eq!(a.ownership.violations, 0);
    assert!(a.liveness.deadlocks.is_empty(), "{:?}", a.liveness);
    // Client 1 waited out the crashed holder's lease.
    assert_eq!(a.liveness.longest_wait_process, Some(Process::Client(1)));
    let wait = (events[4].time_ns - events[2].time_ns) as f64 / MS;
    assert_eq!(a.liveness.longest_wait_ms, wait);
    // Unavailable: client 0's own wait, from the crash to client 1's
    // acquire, then client 3's wait from its invoke to its ok.
    let gaps = (events[1].time_ns - events[0].time_ns)
        + (events[4].time_ns - events[3].time_ns)
        + (events[10].time_ns - events[9].time_ns);
    assert_eq!(a.recovery.unavailable_ms, gaps as f64 / MS);
    // A deadlock bound shorter than the wait finds it.
    let opts = AnalysisOptions {
        deadlock_bound: Some(std::time::Duration::from_millis(20)),
    };
    let (b, _) = analyze_file(
        &corpus_dir().join("valid-crashed-holder-lock-freed-after-lease.jsonl"),
        opts,
    )
    .unwrap();
    assert_eq!(b.liveness.deadlocks.len(), 1);
    assert_eq!(b.liveness.deadlocks[0].start_ns, events[3].time_ns);
    assert_eq!(b.liveness.deadlocks[0].end_ns, events[4].time_ns);
}

/// Parses a Jepsen EDN history (literal text) and checks it.
fn check_edn(text: &str) -> Verdict {
    let h = lockbench::history::parse_edn(Path::new("h.edn"), text).unwrap();
    MutexChecker.check(&h.events).verdict
}

#[test]
fn edn_reads_a_clean_hand_off() {
    let text = r#"
{:type :invoke, :f :acquire, :value nil, :process 0, :time 10, :index 0}
{:type :ok, :f :acquire, :value nil, :process 0, :time 20, :index 1}
{:type :invoke, :f :acquire, :value nil, :process 1, :time 25, :index 2}
{:type :info, :f :start, :value [:n1 :n2], :process :nemesis, :time 27, :index 3}
{:type :invoke, :f :release, :value nil, :process 0, :time 30, :index 4}
{:type :ok, :f :acquire, :value nil, :process 1, :time 35, :index 5}
{:type :ok, :f :release, :value nil, :process 0, :time 40, :index 6}
"#;
    assert_eq!(check_edn(text), Verdict::Valid);
}

#[test]
fn edn_an_overlap_is_invalid_and_an_info_crashes_its_process() {
    let overlap = r#"[{:type :invoke :f :acquire :process 0 :time 1}
 {:type :ok :f :acquire :process 0 :time 2}
 {:type :invoke :f :acquire :process 1 :time 3}
 {:type :ok :f :acquire :process 1 :time 4}]"#;
    assert_eq!(check_edn(overlap), Verdict::Invalid);
    // Process 0's release ended :info: it crashed, so its hold ended
    // at the release's invoke; process 1's later grant is no overlap.
    let crashed = r#"{:type :invoke :f :acquire :process 0 :time 1}
{:type :ok :f :acquire :process 0 :time 2}
{:type :invoke :f :release :process 0 :time 3}
{:type :info :f :release :process 0 :time 9 :error :timeout}
{:type :invoke :f :acquire :process 1 :time 4}
{:type :ok :f :acquire :process 1 :time 5}"#;
    let h = lockbench::history::parse_edn(Path::new("h.edn"), crashed).unwrap();
    assert!(
        h.events
            .iter()
            .any(|e| e.f == F::Crash && e.process == Process::Client(0))
    );
    assert_eq!(MutexChecker.check(&h.events).verdict, Verdict::Valid);
}

#[test]
fn edn_values_name_locks() {
    let text = r#"{:type :invoke :f :acquire :value "a" :process 0 :time 1}
{:type :ok :f :acquire :value "a" :process 0 :time 2}
{:type :invoke :f :acquire :value "b" :process 1 :time 3}
{:type :ok :f :acquire :value "b" :process 1 :time 4}"#;
    assert_eq!(check_edn(text), Verdict::Valid);
}
