//! Network faults through the user's Toxiproxy: a real Toxiproxy server
//! (2.5.0, built from the Go module proxy by scripts/install-backends.sh
//! into tools/toxiproxy/bin) stands in front of a redis-server this test
//! starts, as a team runs it in CI; lockbench adds and removes toxics there
//! instead of standing its own proxies on the links.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::owned::{Owned, free_port, wait_for};

use lockbench::net::toxiproxy::Toxiproxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_on_a_deployment_become_toxics_on_the_users_toxiproxy() {
    if !common::server_available("redis-server") {
        return;
    }
    let Some(bin) = common::built_tool("tools/toxiproxy/bin/toxiproxy-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (redis_port, api_port, listen_port) = (free_port(), free_port(), free_port());
    let _redis = Owned::spawn(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(d),
        &d.join("redis.log"),
    );
    let _toxiproxy = Owned::spawn(
        Command::new(&bin).args(["-host", "127.0.0.1", "-port", &api_port.to_string()]),
        &d.join("toxiproxy.log"),
    );
    let api = Toxiproxy::new(&format!("127.0.0.1:{api_port}"));
    let since = Instant::now();
    while api.version().await.is_err() {
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "toxiproxy does not answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listen = format!("127.0.0.1:{listen_port}");
    api.create("cache", &listen, &format!("127.0.0.1:{redis_port}"))
        .await
        .unwrap();
    wait_for("redis through the proxy", Duration::from_secs(15), || {
        std::net::TcpStream::connect(&listen).is_ok()
    });
    // A blackhole, then 200 ms each way, then every connection reset: the
    // lock waits them out (valid), and each shows in the clients' history.
    // The 1 s lease frees the lock whose release the blackhole lost.
    let scenario = common::scenario(
        d,
        "toxic",
        &format!(
            r#"
name = "toxic"
backends = ["redis"]
expect = "valid"
seed = 9
duration = "5s"
clients = 3
lease = "1s"
acquire_timeout = "3s"
op_timeout = "2s"
hold = "20ms"

[deployment.redis]
toxiproxy = "127.0.0.1:{api_port}"
members = [{{ name = "cache", addr = "{listen}", role = "primary", proxy = "cache" }}]

[[nemesis]]
at = "700ms"
fault = "partition"
duration = "1s"

[[nemesis]]
at = "2200ms"
fault = "latency"
delay = "200ms"
duration = "1200ms"

[[nemesis]]
at = "4s"
fault = "partition-reset"
duration = "300ms"
"#
        ),
    );
    let out = d.join("out");
    let o = common::lockbench()
        .args(["run", "--history-format", "jsonl", "--no-progress", "--out"])
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let run_dir = common::run_dir(&out, "toxic", "redis");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let window = |fault: &str| {
        let at = |edge: &str| {
            let e = events
                .iter()
                .find(|e| e["value"]["fault"] == fault && e["value"]["edge"] == edge)
                .unwrap_or_else(|| panic!("no {fault} {edge}"));
            assert!(e["error"].is_null(), "{e}");
            assert_eq!(e["value"]["via"], format!("toxiproxy 127.0.0.1:{api_port}"));
            e["time_ns"].as_u64().unwrap()
        };
        (at("start"), at("stop"))
    };
    // Each client operation: (invoke time, completion time, completion type).
    let mut open = std::collections::HashMap::new();
    let mut ops = Vec::new();
    for e in &events {
        if e["process"] == "nemesis" {
            continue;
        }
        let (p, t) = (e["process"].to_string(), e["time_ns"].as_u64().unwrap());
        if e["type"] == "invoke" {
            open.insert(p, t);
        } else if let Some(start) = open.remove(&p) {
            // Writes go to the protected resource, in lockbench itself.
            if e["f"] != "write" {
                ops.push((start, t, e["type"].as_str().unwrap_or("").to_string()));
            }
        }
    }
    let (cut, healed) = window("partition");
    let timed_out = ops
        .iter()
        .filter(|(s, end, ty)| *s >= cut && *end <= healed + 500_000_000 && ty == "info")
        .count();
    assert!(timed_out > 0, "no operation timed out in the blackhole");
    let (slow, fast) = window("latency");
    // Inside: begun after the toxics were added, done before their removal
    // began (the stop event is recorded once both are removed).
    let inside: Vec<u64> = ops
        .iter()
        .filter(|(s, end, ty)| *s >= slow && *end + 100_000_000 <= fast && ty == "ok")
        .map(|(s, end, _)| end - s)
        .collect();
    assert!(!inside.is_empty(), "no operation completed under latency");
    // A round trip is delayed 200 ms each way.
    assert!(
        inside.iter().all(|&ns| ns >= 350_000_000),
        "faster than the toxics allow: {inside:?}"
    );
    window("partition-reset");
    // Every toxic removed, the proxy enabled again.
    assert_eq!(api.toxics("cache").await.unwrap(), Vec::<String>::new());
    assert!(api.enabled("cache").await.unwrap());
}
