//! The `postgres-advisory` backend against a real PostgreSQL started by
//! lockbench's cluster layer (`initdb` + `postgres`).

mod common;

use common::conformance::clients_with;

use std::time::Duration;

use lockbench::backend::{AcquireOptions, Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};

const NAME: &str = "postgres-advisory";

fn opts(timeout_ms: u64) -> AcquireOptions {
    AcquireOptions {
        lease: Duration::from_secs(10),
        timeout: Duration::from_millis(timeout_ms),
    }
}

async fn start(logs: &std::path::Path) -> Cluster {
    Cluster::start(ServerKind::Postgres, 1, logs).await.unwrap()
}

#[tokio::test]
async fn the_server_starts_reports_its_version_and_stops_on_drop() {
    if !common::server_available("postgres") {
        return;
    }
    let version = common::conformance::server_lifecycle(ServerKind::Postgres, "postgres").await;
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
}

#[tokio::test]
async fn a_dropped_holder_connection_frees_the_lock_at_once() {
    if !common::server_available("postgres") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("postgres-advisory", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(g) = c[0].acquire("k", &opts(0)).await else {
        panic!("first acquire must succeed")
    };
    assert_eq!(g.lease, None, "session locks have no lease");
    assert!(g.fence.is_some());
    let holder = c.remove(0);
    let mut waiter = c.pop().unwrap();
    // The holder dies like a killed process: its socket closes, no unlock.
    holder.crash();
    let started = std::time::Instant::now();
    let Outcome::Ok(g2) = waiter.acquire("k", &opts(5_000)).await else {
        panic!("the lock of a dead session must be freed")
    };
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(g2.fence > g.fence);
}

#[tokio::test]
async fn session_locks_are_reentrant_and_renew_checks_the_hold() {
    if !common::server_available("postgres") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("postgres-advisory", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(mut g1) = c[0].acquire("k", &opts(0)).await else {
        panic!()
    };
    // The same session takes it again at once (PostgreSQL manual,
    // "Advisory Locks": session locks stack and must be unlocked as many
    // times as they were taken).
    let Outcome::Ok(g2) = c[0].acquire("k", &opts(0)).await else {
        panic!("a session lock is reentrant")
    };
    assert!(g2.fence > g1.fence);
    assert_eq!(
        c[0].renew(&mut g1, Duration::from_secs(1)).await,
        Outcome::Ok(())
    );
    assert_eq!(
        c[0].release(&g1).await,
        Outcome::Ok(Released { was_held: true })
    );
    // Still held once: another client cannot take it.
    assert!(matches!(
        c[1].acquire("k", &opts(0)).await,
        Outcome::Fail(ref why) if why.starts_with("busy")
    ));
    assert_eq!(
        c[0].release(&g2).await,
        Outcome::Ok(Released { was_held: true })
    );
    // Fully released now: a third unlock finds nothing.
    assert_eq!(
        c[0].release(&g2).await,
        Outcome::Ok(Released { was_held: false })
    );
    assert!(matches!(
        c[0].renew(&mut g1, Duration::from_secs(1)).await,
        Outcome::Fail(_)
    ));
    assert!(matches!(c[1].acquire("k", &opts(0)).await, Outcome::Ok(_)));
}

#[tokio::test]
async fn a_blocked_acquire_times_out_as_busy() {
    if !common::server_available("postgres") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("postgres-advisory", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(_g) = c[0].acquire("k", &opts(0)).await else {
        panic!()
    };
    let started = std::time::Instant::now();
    match c[1].acquire("k", &opts(300)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // The waiter's session is still usable after the lock timeout.
    assert!(matches!(
        c[1].acquire("other", &opts(0)).await,
        Outcome::Ok(_)
    ));
}

/// Signals the postmaster and its descendants. PostgreSQL's backends call
/// setsid(), so a signal to the postmaster's process group misses them.
fn signal_all(postmaster: u32, signal: i32) {
    let mut pids = vec![postmaster];
    pids.extend(lockbench::cluster::descendants(postmaster));
    for pid in pids {
        // SAFETY: kill(2) on PIDs of the server this test started.
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }
}

#[tokio::test]
async fn a_frozen_server_makes_acquire_info_not_fail() {
    if !common::server_available("postgres") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("postgres-advisory", &cluster, 1, Duration::from_millis(300)).await;
    let pid = cluster.pids()[0];
    signal_all(pid, libc::SIGSTOP);
    let out = c[0].acquire("k", &opts(0)).await;
    signal_all(pid, libc::SIGCONT);
    assert!(matches!(out, Outcome::Info(_)), "{out:?}");
    // The next operation opens a new session and works.
    assert!(matches!(
        c[0].acquire("k", &opts(2_000)).await,
        Outcome::Ok(_)
    ));
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if common::server_available("postgres") {
        common::conformance::exclusion_and_release(NAME).await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if common::server_available("postgres") {
        common::conformance::blocking_hand_off(NAME).await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if common::server_available("postgres") {
        common::conformance::contended_run_is_valid(NAME).await;
    }
}

#[tokio::test]
async fn a_restarted_server_serves_again_and_has_forgotten_the_locks() {
    if !common::server_available("postgres") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut cluster = start(logs.path()).await;
    let mut c = clients_with("postgres-advisory", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(g) = c[0].acquire("k", &opts(0)).await else {
        panic!()
    };
    cluster.restart(0).await.unwrap();
    // The holder's session died with the server: its lock is gone, and its
    // next operation finds out (the old connection is closed).
    let mut released = c[0].release(&g).await;
    if matches!(released, Outcome::Info(_) | Outcome::Fail(_)) {
        released = c[0].release(&g).await;
    }
    assert_eq!(released, Outcome::Ok(Released { was_held: false }));
    assert!(matches!(
        c[1].acquire("k", &opts(2_000)).await,
        Outcome::Ok(_)
    ));
}
