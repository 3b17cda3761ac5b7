//! The corpus of hand-written histories in `tests/data/histories/`, checked
//! through the library (`MutexChecker`) and through the CLI
//! (`lockbench check`).
//!
//! A file's name starts with its expected verdict: `valid-`, `invalid-` or
//! `unknown-` (see the README next to the files for why each verdict is what
//! it is, by design.md's rule). Every mismatch in the corpus is collected and
//! reported at once, not just the first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lockbench::check::{CheckResult, HoldEnd, MutexChecker, Verdict, Witness, run_checker};
use lockbench::history::{Event, Process, read_jsonl};

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
        }] += 1;
        let (events, result) = check(&path);
        if result.verdict != want {
            let detail = match result.verdict {
                Verdict::Invalid => result
                    .witnesses
                    .iter()
                    .map(|w| format!("\n      witness: {w}"))
                    .collect::<String>(),
                _ => format!(" ({})", result.reason.as_deref().unwrap_or("no reason")),
            };
            failures.push(format!(
                "{name}: expected {want}, checker said {} with {} violation(s){detail}",
                result.verdict, result.violations
            ));
            continue;
        }
        match want {
            Verdict::Valid => {
                if result.violations != 0 || !result.witnesses.is_empty() {
                    failures.push(format!("{name}: valid but carries violations: {result:?}"));
                }
            }
            Verdict::Invalid => {
                if result.violations == 0 || result.witnesses.is_empty() {
                    failures.push(format!(
                        "{name}: invalid with {} violations and {} witnesses",
                        result.violations,
                        result.witnesses.len()
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
            let (_, result) = check(&path);
            let w = &result.witnesses[0];
            let mut missing = Vec::new();
            if !stdout.contains("invalid") {
                missing.push("the word \"invalid\"".to_string());
            }
            if !w.key.is_empty() && !stdout.contains(&w.key) {
                missing.push(format!("the key {:?}", w.key));
            }
            for p in [&w.first.process, &w.second.process] {
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
