//! Results where CI systems look for them (JUnit XML, a job summary, JSON
//! lines), and run failures handled as carefully as bad input: a run
//! without a history, an output directory that cannot be written, a disk
//! that fills up mid-run, a history that is not UTF-8.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use lockbench::Verdict;
use lockbench::summary::Summary;

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// inproc (expected invalid, so its test case fails) and redis (whose
/// server is hidden, so it is skipped).
const MIXED: &str = "name = \"mixed\"\nbackends = [\"inproc\", \"redis\"]\nexpect = \"invalid\"\n\
                     seed = 2\nduration = \"300ms\"\nclients = 2\nhold = \"1ms\"\n";

fn run_mixed(dir: &Path, flags: &[&str], env: &[(&str, &Path)]) -> Output {
    let scenario = common::scenario(dir, "mixed", MIXED);
    let empty = dir.join("no-servers");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = common::lockbench();
    cmd.arg("run")
        .args(flags)
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&scenario)
        // No server is found here: redis is skipped, not required.
        .env("LOCKBENCH_BIN_DIRS", &empty)
        .env_remove("LOCKBENCH_REQUIRE_BACKENDS")
        .env_remove("GITHUB_STEP_SUMMARY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lockbench")
}

#[test]
fn the_junit_file_reads_back_with_a_failure_and_a_skip() {
    if !common::server_available("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("results.xml");
    let out = run_mixed(dir.path(), &["--junit", junit.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // Read back by an XML reader, checked as JUnit consumers read it.
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == ("2", "1", "1", "0"), root.attrib
[suite] = root.findall("testsuite")
assert suite.get("name") == "mixed", suite.attrib
cases = {c.get("name"): c for c in suite.findall("testcase")}
assert set(cases) == {"inproc", "redis"}, cases
failure = cases["inproc"].find("failure")
assert failure is not None and failure.get("message") == "valid but the scenario expects invalid", failure
assert "report: " in failure.text and "index.html" in failure.text, failure.text
skipped = cases["redis"].find("skipped")
assert skipped is not None and "redis-server" in skipped.get("message"), skipped
assert cases["inproc"].get("classname") == "lockbench.mixed"
assert float(cases["inproc"].get("time")) > 0
print("ok")
"#;
    let read = Command::new("python3")
        .arg("-c")
        .arg(check)
        .arg(&junit)
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}\n{}",
        describe(&read),
        std::fs::read_to_string(&junit).unwrap_or_default()
    );
}

#[test]
fn the_job_summary_gets_a_table_of_the_runs() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("summary.md");
    std::fs::write(&md, "earlier content\n").unwrap();
    let out = run_mixed(dir.path(), &[], &[("GITHUB_STEP_SUMMARY", &md)]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(
        text.starts_with("earlier content\n"),
        "appended, not replaced"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| mixed |"))
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains("| inproc | valid | invalid | ❌ |") && rows[0].contains("index.html"),
        "{text}"
    );
    assert!(rows[1].contains("| redis | skipped |"), "{text}");
    // --summary-md names a file of its own.
    let other = dir.path().join("other.md");
    let out = run_mixed(dir.path(), &["--summary-md", other.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        std::fs::read_to_string(&other)
            .unwrap()
            .contains("| throughput (acq/s) |")
    );
}

#[test]
fn json_lines_go_to_stdout_and_the_human_output_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_mixed(dir.path(), &["--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["backend"], "inproc");
    assert_eq!(lines[0]["verdict"], "valid");
    assert_eq!(lines[0]["expected"], "invalid");
    assert_eq!(lines[0]["matches_expectation"], false);
    assert!(lines[0]["acquire_latency_us"]["p99"].is_u64());
    assert!(lines[0]["report"].as_str().unwrap().ends_with("index.html"));
    assert_eq!(lines[1]["status"], "skipped");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mixed: seed 2"), "{stderr}");
    assert!(stderr.contains("report:"), "{stderr}");
}

#[test]
fn a_run_without_history_is_not_checked_and_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::scenario(
        dir.path(),
        "nohist",
        "name = \"nohist\"\nbackends = [\"inproc\"]\nexpect = \"invalid\"\nhistory = false\n\
         duration = \"300ms\"\nclients = 4\n",
    );
    let out = common::lockbench()
        .arg("run")
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), "nohist", "inproc");
    let s = Summary::read(&run_dir.join("summary.json")).unwrap();
    assert_eq!(s.verdict, Verdict::NotChecked);
    assert!(s.matches_expectation);
    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(page.contains("not checked"), "the page says so");
    assert!(page.contains("history = false"), "and why");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not checked"));
}

#[test]
fn an_unwritable_output_directory_fails_once_before_any_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::scenario(
        dir.path(),
        "unwritable",
        "backends = [\"redis\", \"memcached\"]\nduration = \"1s\"\n",
    );
    let t0 = std::time::Instant::now();
    let out = common::lockbench()
        .arg("run")
        .args(["--out", "/proc/lockbench-cannot-be-here"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("error:").count(),
        1,
        "one error, not one per backend: {stderr}"
    );
    assert!(
        stderr.contains("/proc/lockbench-cannot-be-here") && stderr.contains("cannot create it"),
        "{stderr}"
    );
    // Nothing started: no server, no seed line.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("seed"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_full_disk_stops_the_run_and_keeps_its_prefix() {
    // A 2 MB tmpfs as the output directory, in a mount namespace of its
    // own (root only: the namespace and the mount vanish with the run).
    if unsafe { libc::geteuid() } != 0 || !common::server_available("unshare") {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::scenario(
        dir.path(),
        "full",
        "name = \"full\"\nbackends = [\"inproc\"]\nduration = \"20s\"\nclients = 32\n\
         keys = 32\nkey_choice = \"own\"\nhold = \"0ms\"\n",
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let lockbench = env!("CARGO_BIN_EXE_lockbench");
    let copy = dir.path().join("copy");
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs '{m}' && '{lb}' run --out '{m}' '{s}'; rc=$?; \
         cp -r '{m}' '{c}'; exit $rc",
        m = mnt.display(),
        lb = lockbench,
        s = scenario.display(),
        c = copy.display()
    );
    let t0 = std::time::Instant::now();
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "the run stopped when the disk filled, not at its end"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the run stopped:"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains("summary.json and the report of the recorded prefix are in")
            || stderr.contains("could not be written either"),
        "the error says what became of the summary: {stderr}"
    );
    // The recorded prefix is a history that checks.
    let run_dir = common::run_dir(&copy, "full", "inproc");
    let check = common::lockbench()
        .arg("check")
        .arg(lockbench::history::history_in(&run_dir))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", describe(&check));
}

#[test]
fn a_history_that_is_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let mut bytes =
        b"{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}\n"
            .to_vec();
    bytes.extend_from_slice(
        b"{\"index\":1,\"time_ns\":2,\"process\":1,\"type\":\"ok\",\"f\":\"acq\xffuire\"}\n",
    );
    std::fs::write(&path, &bytes).unwrap();
    let out = common::lockbench()
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", path.display())) && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );
}
