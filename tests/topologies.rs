//! Replicated topologies (src/cluster/topology.rs): a ZooKeeper ensemble and
//! an etcd cluster started by lockbench, with the traffic between servers
//! through fault proxies. Every wait is bounded; timings are printed.

mod common;

use std::time::{Duration, Instant};

use lockbench::cluster::ServerKind;
use lockbench::cluster::topology::{EtcdCluster, Members, Replicated, Role, ZkEnsemble};

/// Bound on every wait for an election or a recovery.
const WAIT: Duration = Duration::from_secs(30);

fn zk_available() -> bool {
    common::kind_available(lockbench::cluster::ServerKind::ZooKeeper)
}

fn assert_all_gone(pids: &[u32], needle: &str) {
    for &pid in pids {
        assert!(
            !common::process_alive(pid, needle),
            "member pid {pid} ({needle}) still runs after drop"
        );
    }
}

async fn zk_client(addr: &str) -> zookeeper_client::Client {
    tokio::time::timeout(
        Duration::from_secs(10),
        zookeeper_client::Client::connector()
            .with_session_timeout(Duration::from_secs(5))
            .connect(addr),
    )
    .await
    .expect("connect within 10 s")
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_ensemble_starts_with_one_leader_and_stops_cleanly() {
    if !zk_available() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let zk = ZkEnsemble::start(3, ServerKind::ZooKeeper, logs.path())
        .await
        .unwrap();
    println!("zookeeper ensemble of 3 ready in {:?}", t0.elapsed());
    assert_eq!(zk.len(), 3);
    let roles = zk.roles().await;
    assert_eq!(
        roles.iter().filter(|r| **r == Role::Leader).count(),
        1,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == Role::Follower).count(),
        2,
        "{roles:?}"
    );
    assert!(zk.leader().await.is_some());
    println!(
        "zookeeper: election links around the proxies: {:?}",
        zk.direct_links()
    );
    let pids = zk.pids();
    assert_eq!(pids.len(), 3);
    for &pid in &pids {
        assert!(common::process_alive(pid, "QuorumPeerMain"));
    }
    drop(zk);
    assert_all_gone(&pids, "QuorumPeerMain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_isolated_leader_is_replaced_and_heals() {
    if !zk_available() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let zk = ZkEnsemble::start(3, ServerKind::ZooKeeper, logs.path())
        .await
        .unwrap();
    let old = zk.leader().await.expect("a leader at start");
    let t0 = Instant::now();
    zk.isolate(old).unwrap();
    // The two others elect a new leader among themselves; the isolated
    // one stops serving.
    let roles = zk
        .wait_roles(WAIT, |r| {
            let leaders: Vec<usize> = (0..r.len()).filter(|&i| r[i] == Role::Leader).collect();
            leaders.len() == 1
                && leaders[0] != old
                && !r[old].is_serving()
                && (0..r.len())
                    .filter(|&i| i != old)
                    .all(|i| r[i].is_serving())
        })
        .await;
    match roles {
        Ok(roles) => println!(
            "zookeeper: leader {old} isolated, new roles {roles:?} after {:?}",
            t0.elapsed()
        ),
        // Debian's ZooKeeper 3.8.0 can fail to form the new quorum again
        // and again: the new leader's sync with the remaining follower
        // ends in "NEWLEADER ACK from sid: N is from a different epoch"
        // (ZOOKEEPER-4685), it gives up after initLimit, and the election
        // starts over (README, "Replicated topologies"; 1 of 7 runs of a
        // 14 s cut served nothing). That server bug, named by its own log
        // line, is the one excuse: any other reason fails the test.
        Err(r) => {
            let bug = std::fs::read_dir(logs.path())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .any(|log| log.contains("is from a different epoch"));
            assert!(bug, "no new leader without {old} within {WAIT:?}: {r:?}");
            println!(
                "zookeeper: no new leader without {old} within {WAIT:?} (ZOOKEEPER-4685 in the \
                 members' logs: \"is from a different epoch\"): {r:?}"
            );
        }
    }
    // No election link around the proxies joins the isolated member.
    let direct = zk.direct_links();
    assert!(
        direct.iter().all(|&(a, b)| a != old && b != old),
        "direct links during the isolation: {direct:?}"
    );
    let t1 = Instant::now();
    zk.heal();
    let roles = zk
        .wait_roles(WAIT, |r| {
            r.iter().all(Role::is_serving) && r.iter().filter(|x| **x == Role::Leader).count() == 1
        })
        .await
        .unwrap_or_else(|r| panic!("not healed within {WAIT:?}: {r:?}"));
    println!(
        "zookeeper: healed, all serve again after {:?}: {roles:?}",
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_write_through_one_member_reads_through_another() {
    if !zk_available() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let zk = ZkEnsemble::start(3, ServerKind::ZooKeeper, logs.path())
        .await
        .unwrap();
    let addrs = zk.client_addrs();
    let a = zk_client(&addrs[0]).await;
    let value = format!("written-at-{:?}", Instant::now());
    a.create(
        "/topology-test",
        value.as_bytes(),
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    let b = zk_client(&addrs[2]).await;
    // sync() makes member 2 catch up with the leader before the read.
    b.sync("/topology-test").await.unwrap();
    let (data, _) = b.get_data("/topology-test").await.unwrap();
    assert_eq!(data, value.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_member_kill_restart_pause() {
    if !zk_available() {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut zk = ZkEnsemble::start(3, ServerKind::ZooKeeper, logs.path())
        .await
        .unwrap();
    let leader = zk.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    zk.kill(follower).unwrap();
    let roles = zk.roles().await;
    assert!(matches!(roles[follower], Role::Down(_)), "{roles:?}");
    assert_eq!(
        zk.leader().await,
        Some(leader),
        "a follower's loss keeps the leader"
    );
    let t0 = Instant::now();
    zk.restart(follower).await.unwrap();
    println!("zookeeper: follower restarted in {:?}", t0.elapsed());
    zk.pause(follower).unwrap();
    // SIGSTOP is delivered asynchronously: poll (bounded) for the silence.
    let paused = zk
        .wait_roles(Duration::from_secs(5), |r| {
            matches!(r[follower], Role::Down(_))
        })
        .await;
    assert!(paused.is_ok(), "paused: {paused:?}");
    zk.resume(follower).unwrap();
    zk.wait_roles(WAIT, |r| r.iter().all(Role::is_serving))
        .await
        .unwrap_or_else(|r| panic!("not serving after resume: {r:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_starts_with_one_leader_and_stops_cleanly() {
    if !common::server_available("etcd") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let etcd = EtcdCluster::start(3, ServerKind::Etcd, logs.path())
        .await
        .unwrap();
    println!("etcd cluster of 3 ready in {:?}", t0.elapsed());
    let seen = etcd.leaders_seen().await;
    let ids: Vec<u64> = seen.iter().map(|r| *r.as_ref().unwrap()).collect();
    assert!(ids[0] != 0 && ids.iter().all(|&x| x == ids[0]), "{seen:?}");
    let leader = etcd.leader().await.expect("a leader");
    assert_eq!(etcd.member_id(leader), Some(ids[0]));
    let pids = etcd.pids();
    for &pid in &pids {
        assert!(common::process_alive(pid, "etcd"));
    }
    drop(etcd);
    assert_all_gone(&pids, "etcd");
}

async fn etcd_client(addr: &str) -> etcd_client::Client {
    etcd_client::Client::connect([format!("http://{addr}")], None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_isolated_leader_is_replaced_and_heals() {
    if !common::server_available("etcd") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let etcd = EtcdCluster::start(3, ServerKind::Etcd, logs.path())
        .await
        .unwrap();
    let old = etcd.leader().await.expect("a leader at start");
    let t0 = Instant::now();
    etcd.isolate(old).unwrap();
    let deadline = Instant::now() + WAIT;
    let new = loop {
        if let Some(l) = etcd.leader().await
            && l != old
        {
            break l;
        }
        assert!(Instant::now() < deadline, "no new leader within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "etcd: leader {old} isolated, new leader {new} after {:?}",
        t0.elapsed()
    );
    // The isolated member cannot serve a linearizable read.
    let serving = etcd.serving().await;
    assert!(serving[old].is_err(), "isolated member serves: {serving:?}");
    assert!(
        serving[new].is_ok(),
        "new leader does not serve: {serving:?}"
    );
    let t1 = Instant::now();
    etcd.heal();
    let deadline = Instant::now() + WAIT;
    loop {
        let serving = etcd.serving().await;
        if serving.iter().all(|r| r.is_ok()) && etcd.leader().await.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healed within {WAIT:?}: {serving:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("etcd: healed, all serve after {:?}", t1.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_write_through_one_member_reads_through_another() {
    if !common::server_available("etcd") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let etcd = EtcdCluster::start(3, ServerKind::Etcd, logs.path())
        .await
        .unwrap();
    let addrs = etcd.client_addrs();
    let value = format!("written-at-{:?}", Instant::now());
    etcd_client(&addrs[0])
        .await
        .put("topology-test", value.clone(), None)
        .await
        .unwrap();
    // A linearizable read through another member.
    let got = etcd_client(&addrs[2])
        .await
        .get("topology-test", None)
        .await
        .unwrap();
    assert_eq!(got.kvs().len(), 1);
    assert_eq!(got.kvs()[0].value(), value.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_member_kill_restart_pause() {
    if !common::server_available("etcd") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut etcd = EtcdCluster::start(3, ServerKind::Etcd, logs.path())
        .await
        .unwrap();
    let leader = etcd.leader().await.unwrap();
    let follower = (leader + 1) % 3;
    etcd.kill(follower).unwrap();
    let seen = etcd.leaders_seen().await;
    assert!(seen[follower].is_err(), "killed member answers: {seen:?}");
    assert_eq!(
        etcd.leader().await,
        Some(leader),
        "a follower's loss keeps the leader"
    );
    let t0 = Instant::now();
    etcd.restart(follower).await.unwrap();
    println!("etcd: follower restarted in {:?}", t0.elapsed());
    assert!(etcd.serving().await.iter().all(|r| r.is_ok()));
    etcd.pause(follower).unwrap();
    let serving = etcd.serving().await;
    assert!(
        serving[follower].is_err(),
        "paused member serves: {serving:?}"
    );
    etcd.resume(follower).unwrap();
    let deadline = Instant::now() + WAIT;
    while !etcd.serving().await.iter().all(|r| r.is_ok()) {
        assert!(Instant::now() < deadline, "not serving after resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
