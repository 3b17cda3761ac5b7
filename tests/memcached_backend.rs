//! The `memcached` and `memcached-get-set` backends against a real
//! memcached started by lockbench's cluster layer.

mod common;

use common::conformance::clients_with as clients;

use std::time::Duration;

use lockbench::Verdict;
use lockbench::backend::{Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};
use lockbench::run::{RunOptions, RunOutcome, run_backend};
use lockbench::scenario::Scenario;

use common::conformance::{must_acquire, opts};

async fn start(logs: &std::path::Path) -> Cluster {
    Cluster::start(ServerKind::Memcached, 1, logs)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_server_reports_its_version_and_stops_on_drop() {
    if !common::server_available("memcached") {
        return;
    }
    let version = common::conformance::server_lifecycle(ServerKind::Memcached, "memcached").await;
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
}

#[tokio::test]
async fn a_short_lease_is_rounded_up_to_two_seconds_and_really_expires() {
    if !common::server_available("memcached") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients("memcached", &cluster, 2, Duration::from_secs(1)).await;
    let g = must_acquire(&mut c[0], "k", opts(300, 0)).await;
    assert_eq!(g.lease, Some(Duration::from_secs(2)));
    assert!(g.fence.is_some(), "the add's CAS is the fence");
    let granted = std::time::Instant::now();
    // A blocking acquire gets the key only once it expires on the server:
    // not before the 2 s lease, and not much after the 3 s exptime sent.
    let g2 = must_acquire(&mut c[1], "k", opts(10_000, 6_000)).await;
    let waited = granted.elapsed();
    eprintln!(
        "lease {:?}, fences {:?} then {:?}, expired after {waited:?}",
        g.lease, g.fence, g2.fence
    );
    assert!(
        waited >= Duration::from_millis(1_900),
        "expired after {waited:?}, before the 2 s lease"
    );
    assert!(waited <= Duration::from_millis(3_600), "{waited:?}");
    assert!(g2.fence > g.fence, "{:?} then {:?}", g.fence, g2.fence);
    // The first holder's lock is gone: it can neither renew nor release it.
    let mut stale = g.clone();
    assert!(matches!(
        c[0].renew(&mut stale, Duration::from_secs(2)).await,
        Outcome::Fail(_)
    ));
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: false })
    );
    assert_eq!(
        c[1].release(&g2).await,
        Outcome::Ok(Released { was_held: true })
    );
}

#[tokio::test]
async fn renew_keeps_the_lock_past_its_first_expiry() {
    if !common::server_available("memcached") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients("memcached", &cluster, 2, Duration::from_secs(1)).await;
    let mut g = must_acquire(&mut c[0], "k", opts(2_000, 0)).await;
    let fence = g.fence;
    // Renew every second for 4 s: well past the first exptime (3 s).
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            c[0].renew(&mut g, Duration::from_secs(2)).await,
            Outcome::Ok(())
        );
        assert!(matches!(
            c[1].acquire("k", &opts(2_000, 0)).await,
            Outcome::Fail(ref why) if why.starts_with("busy")
        ));
    }
    assert_eq!(g.fence, fence, "renew keeps the fence");
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
    must_acquire(&mut c[1], "k", opts(2_000, 0)).await;
}

#[tokio::test]
async fn a_restart_loses_every_lock_and_starts_the_fences_again() {
    if !common::server_available("memcached") {
        return;
    }
    // What the module docs warn about: no persistence. After a kill -9 and
    // restart, a lock whose lease still runs is free to take, and the new
    // holder's fence is no larger than the old one's.
    let logs = tempfile::tempdir().unwrap();
    let mut cluster = start(logs.path()).await;
    let mut c = clients("memcached", &cluster, 2, Duration::from_secs(1)).await;
    for i in 0..5 {
        must_acquire(&mut c[0], &format!("warm-{i}"), opts(10_000, 0)).await;
    }
    let g1 = must_acquire(&mut c[0], "k", opts(10_000, 0)).await;
    cluster.restart(0).await.unwrap();
    let g2 = must_acquire(&mut c[1], "k", opts(10_000, 1_000)).await;
    assert!(g2.fence <= g1.fence, "{:?} then {:?}", g1.fence, g2.fence);
    assert_eq!(
        c[0].release(&g1).await,
        Outcome::Ok(Released { was_held: false })
    );
}

#[tokio::test]
async fn a_timeout_after_the_request_left_is_info_not_fail() {
    if !common::server_available("memcached") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients("memcached", &cluster, 1, Duration::from_millis(200)).await;
    must_acquire(&mut c[0], "warm", opts(2_000, 0)).await;
    // A frozen server takes the request and never answers.
    cluster.servers()[0].signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let out = c[0].acquire("k", &opts(2_000, 5_000)).await;
    let took = started.elapsed();
    cluster.servers()[0].signal(libc::SIGCONT);
    assert!(matches!(out, Outcome::Info(_)), "{out:?}");
    // Ended by the 200 ms request timeout, not by retrying until the 5 s
    // acquire timeout (the margin is for a loaded machine).
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn get_then_set_is_caught_under_contention() {
    if !common::server_available("memcached") {
        return;
    }
    // The scenario the seeds warn about: 16 clients on one key, no think
    // time. GET and SET are two round trips; another client's GET fits in
    // between, and both clients hold the key.
    let dir = tempfile::tempdir().unwrap();
    let text = "backends = [\"memcached-get-set\"]\nexpect = \"invalid\"\nduration = \"3s\"\n\
                clients = 16\nhosts = 2\nkeys = 1\nlease = \"5s\"\nacquire_timeout = \"1s\"\n\
                op_timeout = \"1s\"\nhold = \"2ms\"\nthink = \"0ms\"\n";
    let scenario = Scenario::parse(std::path::Path::new("get-set.toml"), text).unwrap();
    let run = RunOptions {
        out_dir: dir.path().to_path_buf(),
        require_backends: common::backends_required(),
        ..RunOptions::default()
    };
    match run_backend(&scenario, "memcached-get-set", 7, &run).await {
        Ok(RunOutcome::Completed { summary, .. }) => {
            assert_eq!(summary.verdict, Verdict::Invalid, "{summary:?}");
            assert!(summary.violations > 0);
            assert!(summary.matches_expectation);
        }
        Ok(RunOutcome::Skipped { reason }) => panic!("skipped: {reason}"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_atomic_add_is_valid_in_the_same_contention() {
    if !common::server_available("memcached") {
        return;
    }
    // The same scenario with `add` instead of GET then SET: no violation.
    let dir = tempfile::tempdir().unwrap();
    let text = "backends = [\"memcached\"]\nduration = \"3s\"\n\
                clients = 16\nhosts = 2\nkeys = 1\nlease = \"5s\"\nacquire_timeout = \"1s\"\n\
                op_timeout = \"1s\"\nhold = \"2ms\"\nthink = \"0ms\"\n";
    let scenario = Scenario::parse(std::path::Path::new("add.toml"), text).unwrap();
    let run = RunOptions {
        out_dir: dir.path().to_path_buf(),
        require_backends: common::backends_required(),
        ..RunOptions::default()
    };
    match run_backend(&scenario, "memcached", 7, &run).await {
        Ok(RunOutcome::Completed { summary, .. }) => {
            assert_eq!(summary.verdict, Verdict::Valid, "{:?}", summary.witnesses);
            assert!(summary.acquire_latency_us.count >= 20);
        }
        Ok(RunOutcome::Skipped { reason }) => panic!("skipped: {reason}"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if common::server_available("memcached") {
        common::conformance::exclusion_and_release("memcached").await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if common::server_available("memcached") {
        common::conformance::blocking_hand_off("memcached").await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if common::server_available("memcached") {
        common::conformance::contended_run_is_valid("memcached").await;
    }
}
