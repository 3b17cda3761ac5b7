//! A port taken between lockbench's probe and the server's bind: the start
//! is tried again on fresh ports, for single servers and for topologies
//! (`cluster::start_on_fresh_ports`, the one place that handles it).
//!
//! The other process of the race is played by the cluster layer's test
//! hook (`cluster::port_race`), which keeps chosen probed ports bound, so
//! the server handed one fails exactly as when another process took it.
//! The hook is global to this test binary: the tests take turns.

mod common;

use std::path::Path;

use lockbench::cluster::sentinel::RedisSentinel;
use lockbench::cluster::topology::{Members, ZkEnsemble};
use lockbench::cluster::{Cluster, START_ATTEMPTS, ServerKind, port_race};
use lockbench::error::Error;

/// One test at a time uses the hook.
static HOOK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = HOOK.lock().await;
    port_race::release();
    guard
}

/// The log file of `name` under `logs` mentions the lost bind.
fn log_says_in_use(logs: &Path, name: &str) -> bool {
    std::fs::read_to_string(logs.join(format!("{name}.log")))
        .unwrap_or_default()
        .to_ascii_lowercase()
        .contains("address already in use")
}

#[tokio::test]
async fn a_single_server_whose_port_was_taken_starts_on_another() {
    if !common::server_available("redis-server") {
        return;
    }
    let _turn = turn().await;
    let logs = tempfile::tempdir().unwrap();
    // The next probed port is the server's own.
    port_race::take(&[0]);
    let cluster = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .expect("started on a fresh port");
    let held = port_race::held();
    assert_eq!(held.len(), 1, "the hook took the first port");
    let addr = &cluster.endpoints()[0].addr;
    assert_ne!(*addr, format!("127.0.0.1:{}", held[0]));
    port_race::release();
}

#[tokio::test]
async fn a_peer_port_taken_at_an_etcd_start_is_retried_too() {
    if !common::server_available("etcd") {
        return;
    }
    let _turn = turn().await;
    let logs = tempfile::tempdir().unwrap();
    // Port 0 is the client port, 1 the peer port etcd binds beside it.
    port_race::take(&[1]);
    let cluster = Cluster::start(ServerKind::Etcd, 1, logs.path())
        .await
        .expect("started on fresh ports");
    assert_eq!(port_race::held().len(), 1);
    assert_eq!(cluster.endpoints().len(), 1);
    port_race::release();
}

#[tokio::test]
async fn every_attempt_lost_names_every_attempt() {
    if !common::server_available("redis-server") {
        return;
    }
    let _turn = turn().await;
    let logs = tempfile::tempdir().unwrap();
    let all: Vec<usize> = (0..START_ATTEMPTS).collect();
    port_race::take(&all);
    let err = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .expect_err("every port was taken");
    port_race::release();
    let text = err.to_string();
    assert!(matches!(err, Error::ServerStart { .. }), "{err:?}");
    for attempt in 1..=START_ATTEMPTS {
        assert!(text.contains(&format!("attempt {attempt}:")), "{text}");
    }
    assert!(log_says_in_use(logs.path(), "redis-1"), "{text}");
}

#[tokio::test]
async fn a_sentinel_topology_retries_a_data_server_and_a_sentinel_port() {
    if !common::server_available("redis-server") {
        return;
    }
    let _turn = turn().await;
    // Ports are probed for the 3 data servers (0, 1, 2), then for each
    // sentinel (3, 4, 5) once the replicas are in sync.
    for (taken, what) in [(1, "a replica's port"), (3, "a sentinel's port")] {
        let logs = tempfile::tempdir().unwrap();
        port_race::take(&[taken]);
        let topology = RedisSentinel::start(2, 3, logs.path())
            .await
            .unwrap_or_else(|e| panic!("{what} taken: {e}"));
        assert_eq!(port_race::held().len(), 1, "{what}");
        assert_eq!(topology.len(), 3);
        drop(topology);
        port_race::release();
    }
}

#[tokio::test]
async fn a_zookeeper_ensemble_whose_member_lost_its_port_starts_again() {
    if !common::kind_available(ServerKind::ZooKeeper) {
        return;
    }
    let _turn = turn().await;
    let logs = tempfile::tempdir().unwrap();
    // Member 1's client port.
    port_race::take(&[0]);
    let ensemble = ZkEnsemble::start(3, ServerKind::ZooKeeper, logs.path())
        .await
        .expect("started on fresh ports");
    assert_eq!(port_race::held().len(), 1);
    assert_eq!(ensemble.len(), 3);
    port_race::release();
}

/// Every port a server binds is held for it while it lives, down or up
/// (`PortReservation`), and it binds them again on restart: for the kinds
/// whose ports were probed and released until session 11 (Hazelcast's
/// members; a single etcd's peer port), now held like every other
/// server's.
#[tokio::test]
async fn a_killed_member_keeps_its_ports_until_it_comes_back() {
    // (kind, servers, ports each binds)
    for (kind, n, ports) in [(ServerKind::Hazelcast, 3, 1), (ServerKind::Etcd, 1, 2)] {
        if !common::kind_available(kind) {
            continue;
        }
        let _turn = turn().await;
        let logs = tempfile::tempdir().unwrap();
        let mut cluster = Cluster::start(kind, n, logs.path())
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let addr = cluster.endpoints()[0].addr.clone();
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        for s in cluster.servers() {
            assert_eq!(s.held_ports().len(), ports, "{kind:?}: {}", s.addr());
        }
        cluster.kill(0).unwrap();
        let held = cluster.servers()[0].held_ports();
        assert!(held.contains(&port), "{kind:?}: {port} not in {held:?}");
        cluster
            .restart(0)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: restart on {addr}: {e}"));
        assert_eq!(cluster.endpoints()[0].addr, addr);
        assert_eq!(cluster.servers()[0].held_ports(), held);
    }
}
