//! Deployments lockbench did not start (`[deployment.<backend>]`): these
//! tests start real servers themselves, outside lockbench's cluster layer,
//! as a user runs theirs, and give lockbench hooks that are shell commands
//! acting on those servers' PIDs. lockbench runs each hook with a timeout,
//! records it in the history, and reports a hook that fails or hangs as a
//! fault that did not happen while the run goes on.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::owned::{Owned, free_port, wait_for};

use lockbench::summary::Summary;

/// Sends `request` to 127.0.0.1:`port` and returns what comes back (empty
/// when nothing listens yet).
fn ask(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(request).is_err() {
        return String::new();
    }
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A redis-server on `port`, data in `dir`, `extra` arguments after.
fn redis(dir: &Path, port: u16, extra: &[&str]) -> Owned {
    let data = dir.join(format!("redis-{port}"));
    std::fs::create_dir_all(&data).unwrap();
    let server = Owned::spawn(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&data)
            .args(extra),
        &dir.join(format!("redis-{port}.log")),
    );
    wait_for("redis-server", Duration::from_secs(10), || {
        ask(port, b"PING\r\n").starts_with("+PONG")
    });
    server
}

/// Runs `lockbench run` on `scenario` (plain history), returning its exit
/// code, stdout and stderr.
fn run(scenario: &Path, out: &Path) -> (Option<i32>, String, String) {
    let o = common::lockbench()
        .args(["run", "--history-format", "jsonl", "--no-progress", "--out"])
        .arg(out)
        .arg(scenario)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The nemesis events of a run's history.
fn nemesis_events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["process"] == "nemesis")
        .collect()
}

fn summary(run_dir: &Path) -> Summary {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap()
}

/// The state letter of a process (`S`, `T` when stopped), from /proc.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn hooks_pause_a_redis_lockbench_did_not_start_and_a_failing_or_hanging_hook_is_reported() {
    if !common::server_available("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = redis(dir.path(), port, &[]);
    let pid = server.pid();
    // A single Redis paused, then a kill whose hook fails (so no kill
    // happens) and an isolation whose hook hangs past its timeout: no
    // server is lost and none fails over, so exclusion holds (valid).
    let scenario = common::scenario(
        dir.path(),
        "hooked",
        &format!(
            r#"
name = "hooked"
backends = ["redis"]
expect = "valid"
seed = 3
duration = "4s"
clients = 4
lease = "10s"
acquire_timeout = "1s"
op_timeout = "300ms"
hold = "50ms"

[deployment.redis]
members = [{{ name = "cache-a", addr = "127.0.0.1:{port}", role = "primary" }}]
hook_timeout = "700ms"
[deployment.redis.hooks]
pause = ["kill", "-STOP", "{pid}"]
resume = ["kill", "-CONT", "{pid}"]
kill = ["sh", "-c", "echo refusing to kill {{member}} at {{addr}} >&2; exit 1"]
start = ["true"]
isolate = ["sleep", "30"]
heal = ["true"]

[[nemesis]]
at = "500ms"
fault = "pause-server"
duration = "1s"

[[nemesis]]
at = "2s"
fault = "kill-server"
duration = "300ms"

[[nemesis]]
at = "2600ms"
fault = "isolate-server"
duration = "300ms"
"#
        ),
    );
    let out = dir.path().join("out");
    let (code, stdout, stderr) = run(&scenario, &out);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let run_dir = common::run_dir(&out, "hooked", "redis");
    let events = nemesis_events(&run_dir);
    let find = |fault: &str, edge: &str| {
        events
            .iter()
            .find(|e| e["value"]["fault"] == fault && e["value"]["edge"] == edge)
            .unwrap_or_else(|| panic!("no {fault} {edge} in {events:#?}"))
    };
    // The pause: the hook's command, its exit status, its log, on the
    // member by its name.
    let paused = find("pause-server", "start");
    let hook = &paused["value"]["hooks"][0];
    assert_eq!(
        hook["command"],
        serde_json::json!(["kill", "-STOP", pid.to_string()])
    );
    assert_eq!(hook["status"], 0);
    assert_eq!(hook["member"], "cache-a");
    // It returned before its event was recorded, on the run's clock.
    let returned = hook["returned_ns"].as_u64().unwrap();
    assert!(returned > 400_000_000 && returned <= paused["time_ns"].as_u64().unwrap());
    assert!(paused["error"].is_null(), "{paused}");
    // One server replicates nothing: it has no role to ask.
    assert_eq!(paused["value"]["targets"][0], "cache-a");
    let resumed = find("pause-server", "stop");
    assert_eq!(resumed["value"]["hooks"][0]["command"][1], "-CONT");
    // While it was paused the clients' operations timed out: the pause
    // really happened.
    let (from, to) = (
        paused["time_ns"].as_u64().unwrap(),
        resumed["time_ns"].as_u64().unwrap(),
    );
    let timed_out = std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "info" && e["process"] != "nemesis")
        .filter(|e| (from..to + 400_000_000).contains(&e["time_ns"].as_u64().unwrap_or(0)))
        .count();
    assert!(timed_out > 0, "no client timed out during the pause");
    // The failing kill: an error with the exit status and the output kept.
    let killed = find("kill-server", "start");
    let why = killed["error"].as_str().unwrap();
    assert!(why.contains("exited 1"), "{why}");
    let log = killed["value"]["hooks"][0]["log"].as_str().unwrap();
    let said = std::fs::read_to_string(run_dir.join(log)).unwrap();
    assert_eq!(
        said.trim(),
        format!("refusing to kill cache-a at 127.0.0.1:{port}")
    );
    // The hanging isolation: killed at its timeout, reported.
    let isolated = find("isolate-server", "start");
    assert!(
        isolated["value"]["hooks"][0]["status"].is_null(),
        "{isolated}"
    );
    assert!(
        isolated["error"]
            .as_str()
            .unwrap()
            .contains("still running after 700ms")
    );
    // summary.json and the report say which faults did not happen.
    let s = summary(&run_dir);
    assert_eq!(s.verdict, lockbench::Verdict::Valid);
    let errors: Vec<(&str, bool)> = s
        .faults
        .iter()
        .map(|f| (f.fault.as_str(), f.error.is_some()))
        .collect();
    assert_eq!(
        errors,
        [
            ("pause-server", false),
            ("kill-server", true),
            ("isolate-server", true)
        ]
    );
    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(
        page.contains("exited 1"),
        "the report names the failed hook"
    );
    // The server was resumed, and lives on: lockbench stops only what it started.
    assert!(matches!(state(pid), Some('S' | 'R')), "{:?}", state(pid));
}

#[test]
fn without_hooks_a_server_fault_on_a_deployment_names_the_missing_hook() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::scenario(
        dir.path(),
        "unhooked",
        r#"
backends = ["redis"]
[deployment.redis]
members = [
  { name = "a", addr = "127.0.0.1:7000", role = "primary" },
  { name = "b", addr = "127.0.0.1:7001", role = "replica" },
]
[deployment.redis.hooks]
pause = ["true"]
[deployment.redis.role_hooks.primary]
resume = ["true"]

[[nemesis]]
at = "1s"
fault = "pause-server"
duration = "1s"
"#,
    );
    let (code, _, stderr) = run(&scenario, &dir.path().join("out"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unhooked.toml:15:"),
        "the fault's line: {stderr}"
    );
    assert!(
        stderr.contains("needs the `resume` hook for member b"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[deployment.redis.role_hooks.replica]"),
        "{stderr}"
    );
    // Plain endpoints say where hooks go.
    let plain = common::scenario(
        dir.path(),
        "plain",
        "backends = [\"redis\"]\n[endpoints]\nredis = \"127.0.0.1:7000\"\n\
         [[nemesis]]\nat = \"1s\"\nfault = \"kill-server\"\nduration = \"1s\"\n",
    );
    let (code, _, stderr) = run(&plain, &dir.path().join("out"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("[deployment.redis] with hooks"), "{stderr}");
    // A dry run prints each command with its time and starts nothing.
    let o = common::lockbench()
        .args(["run", "--dry-run"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "still refused: a hook is missing");
}

#[test]
fn a_dry_run_prints_every_hook_command_with_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = common::scenario(
        dir.path(),
        "dry",
        r#"
backends = ["zookeeper"]
duration = "20s"
[deployment.zookeeper]
members = [
  { name = "zk-0", addr = "10.1.0.10:2181" },
  { name = "zk-1", addr = "10.1.0.11:2181" },
  { name = "zk-2", addr = "10.1.0.12:2181" },
]
[deployment.zookeeper.hooks]
kill = ["kubectl", "delete", "pod", "{member}", "--grace-period=0", "--force"]
start = ["kubectl", "wait", "--for=condition=Ready", "pod/{member}", "--timeout=60s"]

[[nemesis]]
at = "5s"
fault = "kill-server"
targets = ["server-2"]
duration = "4s"
"#,
    );
    let o = common::lockbench()
        .args(["run", "--dry-run"])
        .arg(&scenario)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("5.000s kill zk-1: kubectl delete pod zk-1 --grace-period=0 --force"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "9.000s start zk-1: kubectl wait --for=condition=Ready pod/zk-1 --timeout=60s"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("zk-0:") && !stdout.contains("zk-2:"),
        "{stdout}"
    );
    // Nothing ran: no run directory was made.
    assert!(!Path::new("reports/dry").exists());
}

/// A ZooKeeper server started as its package runs it: standalone, on
/// `port`, data in `dir`.
fn zookeeper(dir: &Path, port: u16) -> Option<Owned> {
    let jars = [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/slf4j-simple.jar",
    ];
    if !Path::new(jars[0]).exists() {
        assert!(
            !common::backends_required(),
            "zookeeper.jar is not installed"
        );
        return None;
    }
    let data = dir.join("zk-data");
    std::fs::create_dir_all(&data).unwrap();
    let server = Owned::spawn(
        Command::new("java")
            .arg("-cp")
            .arg(jars.join(":"))
            .args([
                "-Dzookeeper.admin.enableServer=false",
                "-Dzookeeper.4lw.commands.whitelist=*",
            ])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(port.to_string())
            .arg(&data),
        &dir.join("zk.log"),
    );
    wait_for("zookeeper", Duration::from_secs(60), || {
        ask(port, b"srvr").contains("Mode:")
    });
    Some(server)
}

#[test]
fn a_pause_hook_on_a_zookeeper_member_shows_in_the_history_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let Some(server) = zookeeper(dir.path(), port) else {
        return;
    };
    let pid = server.pid();
    // Paused for 600 ms, well within the recipe's session timeout: the
    // sessions outlive it and exclusion holds (valid).
    let scenario = common::scenario(
        dir.path(),
        "zk-hooked",
        &format!(
            r#"
name = "zk-hooked"
backends = ["zookeeper"]
expect = "valid"
seed = 4
duration = "4s"
clients = 3
acquire_timeout = "2s"
op_timeout = "2s"
hold = "20ms"

[deployment.zookeeper]
members = [{{ name = "zk-own", addr = "127.0.0.1:{port}" }}]
[deployment.zookeeper.role_hooks.member]
pause = ["kill", "-STOP", "{pid}"]
resume = ["kill", "-CONT", "{pid}"]

[[nemesis]]
at = "1s"
fault = "pause-server"
targets = ["server-1"]
duration = "600ms"
"#
        ),
    );
    let out = dir.path().join("out");
    let (code, stdout, stderr) = run(&scenario, &out);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let run_dir = common::run_dir(&out, "zk-hooked", "zookeeper");
    let events = nemesis_events(&run_dir);
    let start = events
        .iter()
        .find(|e| e["value"]["fault"] == "pause-server" && e["value"]["edge"] == "start")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(start["value"]["hooks"][0]["command"][2], pid.to_string());
    assert_eq!(start["value"]["hooks"][0]["status"], 0);
    assert!(
        start["value"]["targets"][0]
            .as_str()
            .unwrap()
            .starts_with("zk-own")
    );
    let s = summary(&run_dir);
    assert_eq!(s.faults.len(), 1);
    assert!(s.faults[0].error.is_none(), "{:?}", s.faults[0]);
    assert!(!s.servers[0].started_by_lockbench);
    let page = std::fs::read_to_string(run_dir.join("index.html")).unwrap();
    assert!(
        page.contains("pause-server") && page.contains("zk-own"),
        "the report shows the fault on the member"
    );
    assert!(
        matches!(state(pid), Some('S' | 'R')),
        "resumed: {:?}",
        state(pid)
    );
}

/// A relay between a Redis primary and its peers: the replicas and the
/// sentinels reach the primary only through it, as through a network. A
/// Python process of one thread, so SIGSTOP freezes every byte it carries
/// (the clients reach the primary directly).
const RELAY: &str = r#"
import asyncio, sys
listen, target = int(sys.argv[1]), int(sys.argv[2])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def serve(r, w):
    try:
        tr, tw = await asyncio.open_connection("127.0.0.1", target)
    except Exception:
        w.close()
        return
    await asyncio.gather(pipe(r, tw), pipe(tr, w))
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

#[test]
fn a_sentinel_failover_through_hooks_loses_the_lock_as_lockbench_s_own_isolation_does() {
    if !common::server_available("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (p, relay_port) = (free_port(), free_port());
    let primary = redis(d, p, &[]);
    std::fs::write(d.join("relay.py"), RELAY).unwrap();
    let relay = Owned::spawn(
        Command::new("python3")
            .arg(d.join("relay.py"))
            .args([relay_port.to_string(), p.to_string()]),
        &d.join("relay.log"),
    );
    wait_for("relay", Duration::from_secs(10), || {
        ask(relay_port, b"PING\r\n").starts_with("+PONG")
    });
    let relay_s = relay_port.to_string();
    let replica_ports = [free_port(), free_port()];
    let replicas: Vec<Owned> = replica_ports
        .iter()
        .map(|&port| {
            let own = port.to_string();
            redis(
                d,
                port,
                &[
                    "--replicaof",
                    "127.0.0.1",
                    &relay_s,
                    "--replica-announce-ip",
                    "127.0.0.1",
                    "--replica-announce-port",
                    &own,
                    "--repl-diskless-sync",
                    "yes",
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            )
        })
        .collect();
    let sentinel_ports = [free_port(), free_port(), free_port()];
    let mut sentinels = Vec::new();
    for &port in &sentinel_ports {
        let conf = d.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                 sentinel announce-ip 127.0.0.1\nsentinel announce-port {port}\n\
                 sentinel monitor lockbench 127.0.0.1 {relay_port} 2\n\
                 sentinel down-after-milliseconds lockbench 1000\n\
                 sentinel failover-timeout lockbench 5000\n\
                 sentinel parallel-syncs lockbench 1\n",
                dir = d.display()
            ),
        )
        .unwrap();
        sentinels.push(Owned::spawn(
            Command::new("redis-server").arg(&conf).arg("--sentinel"),
            &d.join(format!("sentinel-{port}.log")),
        ));
    }
    // Every replica in sync, every sentinel seeing both replicas and the
    // other two sentinels.
    wait_for("replication and sentinels", Duration::from_secs(30), || {
        replica_ports
            .iter()
            .all(|&r| ask(r, b"INFO replication\r\n").contains("master_link_status:up"))
            && sentinel_ports.iter().all(|&s| {
                let info = ask(s, b"SENTINEL MASTER lockbench\r\n");
                info.contains("num-slaves\r\n$1\r\n2\r\n")
                    && info.contains("num-other-sentinels\r\n$1\r\n2\r\n")
            })
    });
    let members = format!(
        r#"members = [
  {{ name = "cache-primary", addr = "127.0.0.1:{p}", role = "primary", announce = "127.0.0.1:{relay_port}" }},
  {{ name = "cache-replica-1", addr = "127.0.0.1:{}", role = "replica" }},
  {{ name = "cache-replica-2", addr = "127.0.0.1:{}", role = "replica" }},
  {{ name = "sentinel-a", addr = "127.0.0.1:{}", role = "sentinel" }},
  {{ name = "sentinel-b", addr = "127.0.0.1:{}", role = "sentinel" }},
  {{ name = "sentinel-c", addr = "127.0.0.1:{}", role = "sentinel" }},
]"#,
        replica_ports[0], replica_ports[1], sentinel_ports[0], sentinel_ports[1], sentinel_ports[2]
    );
    // The timings of scenarios/topologies/redis-sentinel-failover.toml, whose
    // expectation (invalid, lock-lost: asynchronous replication loses the
    // lock the old primary granted while cut off) this test checks through
    // hooks on a deployment lockbench did not start. The cut: the relay
    // frozen, so the replicas and sentinels no longer reach the primary
    // while the clients still do.
    let scenario = common::scenario(
        d,
        "sentinel-hooked",
        &format!(
            r#"
name = "sentinel-hooked"
backends = ["redis"]
expect = "invalid"
seed = 57
duration = "28s"
clients = 8
hosts = 2
keys = 1
lease = "5s"
acquire_timeout = "2s"
op_timeout = "500ms"
hold = "2s"
think = "0ms"

[deployment.redis]
{members}
[deployment.redis.role_hooks.primary]
isolate = ["kill", "-STOP", "{relay}"]
heal = ["kill", "-CONT", "{relay}"]
# Only the first primary has a relay to freeze: should the role resolve
# to a replica, its hook fails and the report says so.
[deployment.redis.role_hooks.replica]
isolate = ["sh", "-c", "echo no relay in front of {{member}}; exit 1"]
heal = ["true"]

[[nemesis]]
at = "3s"
fault = "isolate-server"
targets = ["primary"]
duration = "8s"
"#,
            relay = relay.pid()
        ),
    );
    let out = d.join("out");
    let (code, stdout, stderr) = run(&scenario, &out);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let s = summary(&common::run_dir(&out, "sentinel-hooked", "redis"));
    assert_eq!(s.verdict, lockbench::Verdict::Invalid);
    assert!(
        s.violation_classes.contains_key("lock-lost"),
        "{:?}",
        s.violation_classes
    );
    assert!(s.faults[0].error.is_none(), "{:?}", s.faults[0]);
    drop((primary, replicas, sentinels, relay));
}
