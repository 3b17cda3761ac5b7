//! The `redlock` backend against five real redis-server masters started by
//! lockbench's cluster layer.

mod common;

use common::conformance::clients_with;
use common::conformance::opts;

use std::time::Duration;

use lockbench::backend::{Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};

const NAME: &str = "redlock";

async fn start(logs: &std::path::Path) -> Cluster {
    Cluster::start(ServerKind::Redis, 5, logs).await.unwrap()
}

/// Freezes some masters (SIGSTOP) and thaws them when dropped, even when
/// the test fails.
struct Frozen<'a> {
    cluster: &'a Cluster,
    which: Vec<usize>,
}

impl<'a> Frozen<'a> {
    fn new(cluster: &'a Cluster, which: &[usize]) -> Self {
        for &i in which {
            cluster.servers()[i].signal(libc::SIGSTOP);
        }
        Frozen {
            cluster,
            which: which.to_vec(),
        }
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        for &i in &self.which {
            self.cluster.servers()[i].signal(libc::SIGCONT);
        }
    }
}

#[tokio::test]
async fn the_lease_is_the_validity_and_there_is_no_fence() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("redlock", &cluster, 2, Duration::from_secs(1)).await;
    let Outcome::Ok(mut g) = c[0].acquire("k", &opts(1_000, 0)).await else {
        panic!("acquire must succeed")
    };
    assert_eq!(g.fence, None, "Redlock has no fencing token");
    let lease = g.lease.unwrap();
    // 1 000 ms minus the drift (10 ms + 2 ms) minus the time it took.
    assert!(
        lease <= Duration::from_millis(988) && lease > Duration::from_millis(800),
        "{lease:?}"
    );
    assert_eq!(
        c[0].renew(&mut g, Duration::from_millis(400)).await,
        Outcome::Ok(())
    );
    assert!(g.lease.unwrap() <= Duration::from_millis(394));
    // After the renewed TTL the keys expire on every master: another client
    // gets the lock, and the old holder can neither renew nor release it.
    let started = std::time::Instant::now();
    let Outcome::Ok(g2) = c[1].acquire("k", &opts(10_000, 3_000)).await else {
        panic!("the TTL must run out")
    };
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        c[0].renew(&mut g, Duration::from_millis(400)).await,
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
async fn two_frozen_masters_of_five_still_grant_the_lock() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("redlock", &cluster, 2, Duration::from_millis(500)).await;
    let _frozen = Frozen::new(&cluster, &[0, 3]);
    let Outcome::Ok(g) = c[0].acquire("k", &opts(10_000, 2_000)).await else {
        panic!("3 of 5 masters are a majority")
    };
    // The other client sees it busy on the three live masters.
    match c[1].acquire("k", &opts(10_000, 200)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("a held lock must not be granted: {other:?}"),
    }
    // Deleted on the three live masters: a majority.
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
    assert!(matches!(
        c[1].acquire("k", &opts(10_000, 2_000)).await,
        Outcome::Ok(_)
    ));
}

#[tokio::test]
async fn three_frozen_masters_of_five_refuse_the_lock() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path()).await;
    let mut c = clients_with("redlock", &cluster, 1, Duration::from_millis(500)).await;
    let frozen = Frozen::new(&cluster, &[1, 2, 4]);
    let started = std::time::Instant::now();
    match c[0].acquire("k", &opts(10_000, 500)).await {
        // Not Info: a try without a majority grants the lock to nobody.
        Outcome::Fail(why) => assert!(why.contains("only 2 of 5"), "{why}"),
        other => panic!("2 of 5 masters are not a majority: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(frozen);
    // Once thawed, the masters' queued requests run: the SETs of the failed
    // tries land, followed by their deletes, so nothing is left held.
    let out = c[0].acquire("k", &opts(10_000, 3_000)).await;
    assert!(matches!(out, Outcome::Ok(_)), "{out:?}");
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if common::server_available("redis-server") {
        common::conformance::exclusion_and_release(NAME).await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if common::server_available("redis-server") {
        common::conformance::blocking_hand_off(NAME).await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if common::server_available("redis-server") {
        common::conformance::contended_run_is_valid(NAME).await;
    }
}
