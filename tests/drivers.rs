//! Driver backends (drivers/PROTOCOL.md): a driver a user writes runs from
//! a scenario file, and a driver that misbehaves is an outcome recorded in
//! a whole, checkable history, never a hung run. The drivers here are the
//! fixtures of tests/data/drivers/ (Python, standard library only), run
//! against the real redis-server lockbench starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use lockbench::history::{Event, F, OpType, Process, read_jsonl};
use lockbench::summary::Summary;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/drivers")
        .join(name)
}

fn python_available() -> bool {
    common::server_available("python3")
}

/// A scenario running `backends`, which may name the declared `driver`
/// (a `[[driver]]` table's body).
fn scenario_text(name: &str, backends: &str, driver: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nbackends = [{backends}]\nseed = 3\nduration = \"2s\"\n\
         clients = 2\nhosts = 1\nlease = \"1s\"\nacquire_timeout = \"300ms\"\n\
         op_timeout = \"200ms\"\nhold = \"5ms\"\nthink = \"5ms\"\n{extra}\n[[driver]]\n{driver}\n"
    )
}

/// Runs `lockbench run` on `text` under `dir`; its output and how long it
/// took.
fn run(dir: &Path, name: &str, text: &str) -> (Output, Duration) {
    let path = common::scenario(dir, name, text);
    let t0 = Instant::now();
    let out = common::lockbench()
        .arg("run")
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&path)
        .env("LOCKBENCH_REQUIRE_BACKENDS", "1")
        .output()
        .expect("run lockbench");
    (out, t0.elapsed())
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn events(run_dir: &Path) -> Vec<Event> {
    read_jsonl(&lockbench::history::history_in(run_dir))
        .expect("the history reads back whole")
        .events
}

/// `lockbench check` on the run's history: the exit code.
fn check(run_dir: &Path) -> Option<i32> {
    common::lockbench()
        .arg("check")
        .arg(lockbench::history::history_in(run_dir))
        .output()
        .expect("run lockbench check")
        .status
        .code()
}

fn count(events: &[Event], f: F, kind: OpType) -> usize {
    events.iter().filter(|e| e.f == f && e.kind == kind).count()
}

fn misbehaving(mode: &str) -> String {
    format!(
        "name = \"bad\"\nserver = \"redis\"\ncommand = [\"python3\", \"{}\", \"{mode}\"]",
        fixture("misbehaving.py").display()
    )
}

#[test]
fn a_driver_a_user_writes_runs_from_the_scenario_file() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Relative to the scenario file's folder, as a user writes it.
    std::fs::copy(fixture("resp_lock.py"), dir.path().join("resp_lock.py")).unwrap();
    let text = String::from(
        "name = \"mine\"\nbackends = [\"my-lock\"]\nseed = 4\nduration = \"2s\"\nclients = 4\n\
         hosts = 2\nlease = \"2s\"\nacquire_timeout = \"1s\"\nop_timeout = \"500ms\"\n\
         hold = \"2ms\"\nthink = \"1ms\"\n\n[[driver]]\nname = \"my-lock\"\nserver = \"redis\"\n\
         command = [\"python3\", \"resp_lock.py\"]\nrecipe = \"SET NX PX over a socket\"\n",
    );
    let (out, _) = run(dir.path(), "mine", &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), "mine", "my-lock");
    let summary = Summary::read(&run_dir.join("summary.json")).unwrap();
    assert_eq!(summary.verdict, lockbench::Verdict::Valid);
    let library = summary.library.expect("the driver names its library");
    assert_eq!(
        (library.name.as_str(), library.version.as_str()),
        ("resp-lock", "1")
    );
    let ev = events(&run_dir);
    assert!(
        count(&ev, F::Acquire, OpType::Ok) > 10,
        "{}",
        describe(&out)
    );
    // One process per host, each with its log.
    assert!(run_dir.join("driver-my-lock-h1.log").exists());
    assert!(run_dir.join("driver-my-lock-h2.log").exists());
}

#[test]
fn a_silent_driver_ends_every_request_info_and_the_run_ends() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = scenario_text("silent", "\"bad\"", &misbehaving("silent"), "");
    let (out, took) = run(dir.path(), "silent", &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Bounded: each request gives up after its timeout plus 2 s of grace.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let run_dir = common::run_dir(&dir.path().join("out"), "silent", "bad");
    let ev = events(&run_dir);
    let infos = count(&ev, F::Acquire, OpType::Info);
    assert!(infos >= 2, "every client's acquire ended info: {infos}");
    assert_eq!(count(&ev, F::Acquire, OpType::Ok), 0);
    assert_eq!(count(&ev, F::Acquire, OpType::Invoke), infos);
    assert!(
        ev.iter()
            .filter(|e| e.kind == OpType::Info && e.f == F::Acquire)
            .all(|e| e.error.as_deref().is_some_and(|w| w.contains("no reply"))),
        "{ev:?}"
    );
    assert_eq!(check(&run_dir), Some(0));
}

#[test]
fn a_driver_that_talks_nonsense_is_logged_and_its_requests_end_info() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = scenario_text("garbage", "\"bad\"", &misbehaving("garbage"), "");
    let (out, _) = run(dir.path(), "garbage", &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), "garbage", "bad");
    let log = std::fs::read_to_string(run_dir.join("driver-bad-h1.log")).unwrap();
    assert!(
        log.contains("not protocol") && log.contains("this is not protocol"),
        "{log}"
    );
    assert!(log.contains("reply to no request in flight"), "{log}");
    let ev = events(&run_dir);
    assert!(count(&ev, F::Acquire, OpType::Info) >= 2);
    assert_eq!(count(&ev, F::Acquire, OpType::Ok), 0);
    assert_eq!(check(&run_dir), Some(0));
}

#[test]
fn a_driver_that_exits_crashes_its_clients_and_is_restarted_a_bounded_number_of_times() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = scenario_text("exits", "\"bad\"", &misbehaving("exits"), "");
    let (out, _) = run(dir.path(), "exits", &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), "exits", "bad");
    let ev = events(&run_dir);
    let crashes: Vec<&Event> = ev
        .iter()
        .filter(|e| e.f == F::Crash && e.kind == OpType::Info)
        .collect();
    // Both clients of the host die with each exit; the first process and
    // at most 3 restarts.
    assert!(crashes.len() >= 2, "{ev:?}");
    assert!(crashes.len() <= 2 * 4, "{} crashes", crashes.len());
    // Each crashed client's request in flight ended info first, and a
    // successor with a new id took over after the first exit.
    let first_ids: Vec<u64> = vec![0, 1];
    assert!(
        ev.iter()
            .any(|e| matches!(e.process, Process::Client(p) if !first_ids.contains(&p))),
        "no successor client: {ev:?}"
    );
    let log = std::fs::read_to_string(run_dir.join("driver-bad-h1.log")).unwrap();
    let exits = log.matches("exiting after 3 requests").count();
    assert!((2..=4).contains(&exits), "{exits} exits:\n{log}");
    assert_eq!(check(&run_dir), Some(0));
}

#[test]
fn a_driver_that_fails_init_fails_its_backend_and_the_others_go_on() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = scenario_text(
        "badinit",
        "\"bad\", \"inproc\"",
        &misbehaving("bad-init"),
        "",
    );
    let (out, _) = run(dir.path(), "badinit", &text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr.contains("cannot start (on purpose)"),
        "the error carries the tail of the driver's log: {}",
        describe(&out)
    );
    let inproc = common::run_dir(&dir.path().join("out"), "badinit", "inproc");
    let summary = Summary::read(&inproc.join("summary.json")).unwrap();
    assert_eq!(summary.verdict, lockbench::Verdict::Valid);
}

#[test]
fn a_client_crash_kills_the_hosts_driver_and_a_new_one_starts_when_the_fault_ends() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"crash\"\nbackends = [\"my-lock\"]\nseed = 5\nduration = \"4s\"\nclients = 4\n\
         hosts = 2\nlease = \"2s\"\nacquire_timeout = \"1s\"\nop_timeout = \"500ms\"\n\
         hold = \"5ms\"\nthink = \"5ms\"\n\n[[nemesis]]\nat = \"1s\"\nfault = \"crash-client\"\n\
         targets = [\"h1\"]\nduration = \"1s\"\n\n[[driver]]\nname = \"my-lock\"\n\
         server = \"redis\"\ncommand = [\"python3\", \"{}\"]\n",
        fixture("resp_lock.py").display()
    );
    let (out, _) = run(dir.path(), "crash", &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), "crash", "my-lock");
    let ev = events(&run_dir);
    // Host h1 runs clients 0 and 2: both crash with its process.
    let crashed: Vec<u64> = ev
        .iter()
        .filter(|e| e.f == F::Crash)
        .filter_map(|e| match e.process {
            Process::Client(p) => Some(p),
            Process::Nemesis => None,
        })
        .collect();
    assert_eq!(crashed.len(), 2, "{crashed:?}");
    assert!(crashed.contains(&0) && crashed.contains(&2), "{crashed:?}");
    // Their successors (new ids) acquire after the fault ends, in a new
    // process; h2's clients went on throughout.
    let restarted = ev
        .iter()
        .find(|e| matches!(&e.f, F::Fault(n) if n == "restart-client"))
        .expect("the fault ended")
        .time_ns;
    let successors = ev
        .iter()
        .filter(|e| e.f == F::Acquire && e.kind == OpType::Ok && e.time_ns > restarted)
        .filter(|e| matches!(e.process, Process::Client(p) if p >= 4))
        .count();
    assert!(successors > 0, "no successor acquired: {ev:?}");
    // h1's process was killed and started again; h2's ran throughout.
    let starts = |host: u32| {
        std::fs::read_to_string(run_dir.join(format!("driver-my-lock-h{host}.log")))
            .unwrap_or_default()
            .matches("resp_lock: started")
            .count()
    };
    assert_eq!((starts(1), starts(2)), (2, 1));
    assert_eq!(check(&run_dir), Some(0));
}

/// One run of `timed.py MODE` (a 2 ms library behind a 30 ms pipe): its
/// summary, and each acquire's time from invoke to `ok` in the history.
fn timed_run(mode: &str) -> (Summary, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let driver = format!(
        "name = \"timed\"\nserver = \"redis\"\ncommand = [\"python3\", \"{}\", \"{mode}\"]",
        fixture("timed.py").display()
    );
    let text = scenario_text(mode, "\"timed\"", &driver, "")
        .replace("clients = 2", "clients = 1")
        .replace("duration = \"2s\"", "duration = \"1500ms\"");
    let (out, _) = run(dir.path(), mode, &text);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let run_dir = common::run_dir(&dir.path().join("out"), mode, "timed");
    assert_eq!(check(&run_dir), Some(0), "the history checks valid");
    let summary = Summary::read(&run_dir.join("summary.json")).unwrap();
    let mut invoked = None;
    let mut acquires = Vec::new();
    for e in events(&run_dir) {
        match (e.f, e.kind) {
            (F::Acquire, OpType::Invoke) => invoked = Some(e.time_ns),
            (F::Acquire, OpType::Ok) => {
                let from = invoked.take().expect("an ok follows its invoke");
                acquires.push(Duration::from_nanos(e.time_ns - from));
            }
            _ => {}
        }
    }
    assert!(acquires.len() >= 5, "{} acquires", acquires.len());
    (summary, acquires)
}

#[test]
fn latencies_are_the_librarys_time_as_its_driver_timed_it_and_not_the_pipes() {
    if !common::server_available("redis-server") || !python_available() {
        return;
    }
    // The driver's library takes 2 ms, its replies 30 ms more: lockbench
    // reports the library's time, and the history ends each operation
    // when the library returned (one client: no other event is recorded
    // in between, so the file's time order needs no later time).
    let (summary, acquires) = timed_run("honest");
    for (what, p) in [
        ("acquire", &summary.acquire_latency_us),
        ("release", &summary.release_latency_us),
    ] {
        assert!(
            (2_000..20_000).contains(&p.p50),
            "{what} p50 {} µs: the library's 2 ms, not the pipe's 30",
            p.p50
        );
    }
    assert!(
        acquires.iter().all(|d| *d < Duration::from_millis(20)),
        "{acquires:?}"
    );
    // Times on another clock, or none: lockbench's own call, pipe and all.
    for mode in ["foreign", "none"] {
        let (summary, acquires) = timed_run(mode);
        assert!(
            summary.acquire_latency_us.p50 >= 30_000,
            "{mode}: p50 {} µs",
            summary.acquire_latency_us.p50
        );
        assert!(
            acquires.iter().all(|d| *d >= Duration::from_millis(30)),
            "{mode}: {acquires:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drivers_process_stops_when_its_backend_and_clients_are_dropped() {
    use lockbench::backend::driver::{DriverSpec, HostPlace, connect};
    use lockbench::backend::{AcquireOptions, ClientConfig, Outcome};
    if !python_available() {
        return;
    }
    // A suite runs many backends in one lockbench: each run's drivers must
    // go with the run, not linger (idle, or retrying servers already
    // stopped) beside the runs after it until lockbench exits.
    let dir = tempfile::tempdir().unwrap();
    let spec = DriverSpec {
        name: "timed".into(),
        command: vec![
            "python3".into(),
            fixture("timed.py").display().to_string(),
            "honest".into(),
        ],
        dir: dir.path().to_path_buf(),
        options: serde_json::json!({}),
    };
    let place = HostPlace {
        host: 1,
        log_dir: dir.path().to_path_buf(),
    };
    let backend = connect(&spec, &[], &place).await.unwrap();
    let mut client = backend
        .client(ClientConfig {
            id: 0,
            seed: 1,
            op_timeout: Duration::from_secs(2),
        })
        .await
        .unwrap();
    let opts = AcquireOptions {
        lease: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
    };
    let Outcome::Ok(guard) = client.acquire("k", &opts).await else {
        panic!("the driver's lock is free");
    };
    assert!(matches!(client.release(&guard).await, Outcome::Ok(_)));
    let pid = backend
        .host_process()
        .and_then(|p| p.pid())
        .expect("the driver runs");
    let alive = || common::process_alive(pid, "timed.py");
    assert!(alive(), "driver {pid} runs while its backend is in use");
    drop(client);
    drop(backend);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive(),
        "driver {pid} still runs 10 s after its backend and clients were dropped"
    );
}
