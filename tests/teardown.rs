//! A run whose future is dropped midway (a caller's timeout, a test's
//! cancelled task) still undoes its faults and stops its servers: the
//! nemesis resumes the paused redis-server at once instead of at the end of
//! its schedule, and the server's process goes with the run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use lockbench::run::{RunOptions, run_backend};
use lockbench::scenario::Scenario;

/// The pids `servers.json` names under `out`.
fn server_pids(out: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in walk(out) {
        if entry.file_name().is_some_and(|n| n == "servers.json") {
            let text = std::fs::read_to_string(&entry).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            for s in v.as_array().unwrap() {
                if let Some(pid) = s["pid"].as_i64() {
                    pids.push(pid as i32);
                }
            }
        }
    }
    pids
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for this purpose: it no longer serves.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_dropped_while_its_server_is_paused_resumes_and_stops_it() {
    if !common::server_available("redis-server") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // The server is paused from 300 ms for 60 s: were the fault left to its
    // schedule, the process would live on for a minute after the drop.
    let scenario = Scenario::parse(
        Path::new("dropped.toml"),
        r#"
name = "dropped"
backends = ["redis"]
duration = "90s"
clients = 2
op_timeout = "200ms"
[[nemesis]]
at = "300ms"
fault = "pause-server"
duration = "60s"
"#,
    )
    .unwrap();
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        progress: false,
        ..RunOptions::default()
    };
    let run = run_backend(&scenario, "redis", 1, &opts);
    let dropped = tokio::time::timeout(Duration::from_secs(3), run).await;
    assert!(dropped.is_err(), "the run was meant to be cut short");
    let pids = server_pids(out.path());
    assert_eq!(pids.len(), 1, "{pids:?}");
    let since = Instant::now();
    while alive(pids[0]) && since.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !alive(pids[0]),
        "redis-server {} still runs {:?} after its run was dropped",
        pids[0],
        since.elapsed()
    );
}
