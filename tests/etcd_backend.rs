//! The `etcd` backend against a real etcd started by lockbench's cluster
//! layer.

mod common;

use common::conformance::clients_with;
use common::conformance::opts;

use std::time::Duration;

use lockbench::backend::{Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};

async fn start() -> Option<(tempfile::TempDir, Cluster)> {
    if !common::server_available("etcd") {
        return None;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::Etcd, 1, logs.path())
        .await
        .unwrap();
    Some((logs, cluster))
}

#[tokio::test]
async fn the_server_starts_says_its_version_and_stops_on_drop() {
    if !common::server_available("etcd") {
        return;
    }
    let version = common::conformance::server_lifecycle(ServerKind::Etcd, "etcd").await;
    assert!(version.starts_with('3'), "{version}");
}

#[tokio::test]
async fn the_fence_is_the_create_revision_and_grows() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 1, Duration::from_secs(2)).await;
    let mut raw = etcd_client::Client::connect([cluster.endpoints()[0].addr.as_str()], None)
        .await
        .unwrap();
    let mut last = 0;
    for _ in 0..5 {
        let Outcome::Ok(g) = c[0].acquire("k", &opts(5_000, 0)).await else {
            panic!("a free lock must be granted")
        };
        let fence = g.fence.unwrap();
        assert!(fence > last, "{last} then {fence}");
        last = fence;
        let got = raw.get("lockbench/lock/k", None).await.unwrap();
        let kv = &got.kvs()[0];
        assert_eq!(kv.create_revision() as u64, fence);
        assert_eq!(kv.value(), g.token.as_bytes());
        // Another key's acquisition moves the revision too: fences only grow.
        let Outcome::Ok(other) = c[0].acquire("other", &opts(5_000, 0)).await else {
            panic!()
        };
        assert!(other.fence.unwrap() > fence);
        for guard in [&g, &other] {
            assert_eq!(
                c[0].release(guard).await,
                Outcome::Ok(Released { was_held: true })
            );
        }
    }
}

#[tokio::test]
async fn the_lease_is_rounded_up_to_whole_seconds_and_reported() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 1, Duration::from_secs(2)).await;
    for (asked_ms, granted) in [(300, 1), (1_000, 1), (1_500, 2), (2_001, 3)] {
        let Outcome::Ok(g) = c[0].acquire("k", &opts(asked_ms, 0)).await else {
            panic!()
        };
        assert_eq!(
            g.lease,
            Some(Duration::from_secs(granted)),
            "asked {asked_ms} ms"
        );
        assert_eq!(
            c[0].release(&g).await,
            Outcome::Ok(Released { was_held: true })
        );
    }
}

#[tokio::test]
async fn a_holder_keeps_its_lease_alive_past_the_ttl_and_renews() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(mut g) = c[0].acquire("k", &opts(1_000, 0)).await else {
        panic!()
    };
    assert_eq!(g.lease, Some(Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        matches!(c[1].acquire("k", &opts(1_000, 0)).await, Outcome::Fail(ref w) if w.starts_with("busy")),
        "the kept-alive lock must still be held"
    );
    let before = g.acquired_at;
    assert_eq!(
        c[0].renew(&mut g, Duration::from_secs(1)).await,
        Outcome::Ok(())
    );
    assert!(g.acquired_at > before);
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
    assert!(matches!(
        c[0].renew(&mut g, Duration::from_secs(1)).await,
        Outcome::Fail(_)
    ));
}

#[tokio::test]
async fn a_holder_that_stops_keeping_its_lease_loses_the_lock_after_the_ttl() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 2, Duration::from_secs(2)).await;
    let mut waiter = c.pop().unwrap();
    let mut holder = c.pop().unwrap();
    let mut observer = clients_with("etcd", &cluster, 1, Duration::from_secs(2)).await;
    let Outcome::Ok(g) = holder.acquire("k", &opts(2_000, 0)).await else {
        panic!()
    };
    let ttl = g.lease.unwrap();
    assert_eq!(ttl, Duration::from_secs(2));
    // A crash: the keep-alives stop, nothing is said to the server.
    holder.crash();
    let Outcome::Ok(g2) = waiter.acquire("k", &opts(2_000, 10_000)).await else {
        panic!("the lease must run out")
    };
    let elapsed = tokio::time::Instant::now() - g.acquired_at;
    eprintln!(
        "lease {ttl:?}: the waiter got the lock {elapsed:?} after the crashed holder's grant"
    );
    assert!(
        elapsed >= ttl - Duration::from_millis(50),
        "granted {elapsed:?} after the first grant, before the {ttl:?} lease ran out"
    );
    assert!(elapsed < ttl + Duration::from_secs(3), "{elapsed:?}");
    assert!(g2.fence > g.fence);
    // The dead holder's guard no longer releases anything.
    assert_eq!(
        observer[0].release(&g).await,
        Outcome::Ok(Released { was_held: false })
    );
    assert_eq!(
        waiter.release(&g2).await,
        Outcome::Ok(Released { was_held: true })
    );
}

#[tokio::test]
async fn a_release_to_a_frozen_server_is_info_not_fail() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 1, Duration::from_millis(300)).await;
    let Outcome::Ok(g) = c[0].acquire("k", &opts(5_000, 0)).await else {
        panic!()
    };
    cluster.servers()[0].signal(libc::SIGSTOP);
    let released = c[0].release(&g).await;
    // A lease cannot be granted by a frozen server: definitely no lock.
    let acquired = c[0].acquire("k2", &opts(5_000, 0)).await;
    cluster.servers()[0].signal(libc::SIGCONT);
    assert!(matches!(released, Outcome::Info(_)), "{released:?}");
    assert!(matches!(acquired, Outcome::Fail(_)), "{acquired:?}");
}

#[tokio::test]
async fn a_restarted_server_keeps_the_lock_and_the_holder_releases_it() {
    let Some((_logs, mut cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 2, Duration::from_secs(2)).await;
    let Outcome::Ok(g) = c[0].acquire("k", &opts(10_000, 0)).await else {
        panic!()
    };
    cluster.restart(0).await.unwrap();
    // etcd persists keys and leases: the lock survives a kill -9.
    let mut busy = None;
    for _ in 0..20 {
        match c[1].acquire("k", &opts(10_000, 0)).await {
            Outcome::Fail(w) if w.starts_with("busy") => {
                busy = Some(w);
                break;
            }
            Outcome::Ok(g) => panic!("granted a lock held across a restart: {g:?}"),
            // The client's connection may still be coming back.
            other => {
                eprintln!("after the restart: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(busy.is_some());
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if common::server_available("etcd") {
        common::conformance::exclusion_and_release("etcd").await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if common::server_available("etcd") {
        common::conformance::blocking_hand_off("etcd").await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if common::server_available("etcd") {
        common::conformance::contended_run_is_valid("etcd").await;
    }
}

#[tokio::test]
async fn a_refused_connection_is_fail_not_info() {
    let Some((_logs, cluster)) = start().await else {
        return;
    };
    let mut c = clients_with("etcd", &cluster, 1, Duration::from_millis(500)).await;
    let Outcome::Ok(g) = c[0].acquire("k", &opts(5_000, 0)).await else {
        panic!()
    };
    cluster.servers()[0].signal(libc::SIGKILL);
    // Wait (bounded) until nothing listens, then a moment more for the
    // client's channel to see its connection close: from then on its
    // requests are refused at connect and never leave.
    let addr = cluster.endpoints()[0].addr.clone();
    let t0 = std::time::Instant::now();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{addr} still listens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = c[0].release(&g).await;
    assert!(matches!(released, Outcome::Fail(_)), "{released:?}");
    let acquired = c[0].acquire("k", &opts(5_000, 0)).await;
    assert!(matches!(acquired, Outcome::Fail(_)), "{acquired:?}");
}
