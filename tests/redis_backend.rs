//! The `redis` and `redis-get-set` backends against a real redis-server
//! started by lockbench's cluster layer.

mod common;

use common::conformance::clients_with as clients;
use common::conformance::opts;

use std::time::Duration;

use lockbench::backend::{Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};

#[tokio::test]
async fn set_nx_excludes_hands_off_and_fences_grow() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    assert!(
        cluster.infos()[0]
            .version
            .starts_with(|c: char| c.is_ascii_digit())
    );
    let mut c = clients("redis", &cluster, 2, Duration::from_secs(1)).await;

    let Outcome::Ok(g1) = c[0].acquire("k", &opts(10_000, 0)).await else {
        panic!("first acquire must succeed")
    };
    assert!(g1.fence.is_some());
    match c[1].acquire("k", &opts(10_000, 100)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("a held lock must not be granted: {other:?}"),
    }
    // Another key is independent.
    assert!(matches!(
        c[1].acquire("other", &opts(10_000, 0)).await,
        Outcome::Ok(_)
    ));

    assert_eq!(
        c[0].release(&g1).await,
        Outcome::Ok(Released { was_held: true })
    );
    let Outcome::Ok(g2) = c[1].acquire("k", &opts(10_000, 0)).await else {
        panic!("the released lock must be free")
    };
    assert!(g2.fence > g1.fence, "{:?} then {:?}", g1.fence, g2.fence);
    // Releasing with a stale guard does nothing and says so.
    assert_eq!(
        c[0].release(&g1).await,
        Outcome::Ok(Released { was_held: false })
    );
    assert!(matches!(
        c[0].acquire("k", &opts(10_000, 0)).await,
        Outcome::Fail(_)
    ));
}

#[tokio::test]
async fn a_lease_runs_out_and_renew_extends_only_a_live_one() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    let mut c = clients("redis", &cluster, 2, Duration::from_secs(1)).await;
    let Outcome::Ok(mut g) = c[0].acquire("k", &opts(300, 0)).await else {
        panic!()
    };
    assert_eq!(
        c[0].renew(&mut g, Duration::from_millis(300)).await,
        Outcome::Ok(())
    );
    // A blocking acquire gets it once the (renewed) lease runs out.
    let start = std::time::Instant::now();
    let Outcome::Ok(_) = c[1].acquire("k", &opts(10_000, 3_000)).await else {
        panic!("the lease must run out")
    };
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(
        c[0].renew(&mut g, Duration::from_millis(300)).await,
        Outcome::Fail(_)
    ));
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: false })
    );
}

#[tokio::test]
async fn a_timeout_after_the_request_left_is_info_not_fail() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    let mut c = clients("redis", &cluster, 1, Duration::from_millis(200)).await;
    assert!(matches!(
        c[0].acquire("warm", &opts(1_000, 0)).await,
        Outcome::Ok(_)
    ));
    // A frozen server takes the request and never answers.
    cluster.servers()[0].signal(libc::SIGSTOP);
    let out = c[0].acquire("k", &opts(1_000, 1_000)).await;
    cluster.servers()[0].signal(libc::SIGCONT);
    assert!(matches!(out, Outcome::Info(_)), "{out:?}");
}

#[tokio::test]
async fn dropping_the_cluster_stops_the_server() {
    if !common::server_available("redis-server") {
        return;
    }
    common::conformance::server_lifecycle(ServerKind::Redis, "redis-server").await;
}

#[tokio::test]
async fn get_then_set_lets_two_clients_hold_at_once() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    // Race pairs of clients on fresh keys: when both GETs land before
    // either SET, both clients are granted the same key.
    let mut doubles = 0;
    for round in 0..200 {
        let c = clients("redis-get-set", &cluster, 2, Duration::from_secs(1)).await;
        let key = format!("race-{round}");
        let mut handles = Vec::new();
        for mut client in c {
            let key = key.clone();
            handles.push(tokio::spawn(async move {
                client.acquire(&key, &opts(10_000, 0)).await
            }));
        }
        let mut granted = 0;
        for h in handles {
            if matches!(h.await.unwrap(), Outcome::Ok(_)) {
                granted += 1;
            }
        }
        if granted == 2 {
            doubles += 1;
            break;
        }
    }
    assert!(
        doubles > 0,
        "GET-then-SET never granted one key twice in 200 races"
    );
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if common::server_available("redis-server") {
        common::conformance::exclusion_and_release("redis").await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if common::server_available("redis-server") {
        common::conformance::blocking_hand_off("redis").await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if common::server_available("redis-server") {
        common::conformance::contended_run_is_valid("redis").await;
    }
}

#[test]
fn a_panic_while_servers_run_stops_them() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let cluster = Cluster::start(ServerKind::Redis, 1, &dir).await.unwrap();
            tx.send(cluster.pids()[0]).unwrap();
            panic!("a bug in the middle of a run");
        })
    })
    .join();
    assert!(joined.is_err(), "the thread must have panicked");
    let pid = rx.recv().unwrap();
    assert!(
        !common::process_alive(pid, "redis-server"),
        "redis-server {pid} outlived the panic"
    );
}
