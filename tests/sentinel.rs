//! Redis with Sentinel (src/cluster/sentinel.rs): a primary, 2 replicas and
//! 3 sentinels started by lockbench, the links between servers through
//! fault proxies; and the `redis` backend following a failover through the
//! sentinels. Every wait is bounded; timings are printed.

mod common;

use std::time::{Duration, Instant};

use lockbench::backend::{self, AcquireOptions, ClientConfig, LockClient, Outcome, Released};
use lockbench::cluster::Endpoint;
use lockbench::cluster::sentinel::RedisSentinel;
use lockbench::cluster::topology::{Members, Replicated, Role};

/// Bound on a failover (the sentinels deem a server down after 1 s).
const FAILOVER_WAIT: Duration = Duration::from_secs(20);

/// Bound on the demotion of a healed old primary (the sentinels wait about
/// 8 s after they see it again before they reconfigure it).
const DEMOTION_WAIT: Duration = Duration::from_secs(25);

async fn start(logs: &std::path::Path) -> RedisSentinel {
    let t0 = Instant::now();
    let topology = RedisSentinel::start(2, 3, logs).await.unwrap();
    println!(
        "sentinel topology (1 primary, 2 replicas, 3 sentinels) ready in {:?}",
        t0.elapsed()
    );
    topology
}

/// Waits (bounded) until a majority of sentinels name a primary other than
/// `old`; that primary and how long it took.
async fn wait_new_primary(t: &RedisSentinel, old: usize) -> (usize, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(p) = t.primary().await
            && p != old
        {
            return (p, t0.elapsed());
        }
        assert!(
            t0.elapsed() < FAILOVER_WAIT,
            "no failover within {FAILOVER_WAIT:?}: sentinels name {:?}, roles {:?}",
            t.primaries_named().await,
            t.roles().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until server `i` reports itself a replica with its link
/// up; how long it took.
async fn wait_follower(t: &RedisSentinel, i: usize) -> Duration {
    let t0 = Instant::now();
    loop {
        let roles = t.roles().await;
        if roles[i] == Role::Follower {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < DEMOTION_WAIT,
            "server {i} not a replica within {DEMOTION_WAIT:?}: roles {roles:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replicas the sentinel at `addr` lists (`ip:port`).
async fn sentinel_replicas(addr: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<Vec<String>> = redis::cmd("SENTINEL")
        .arg("replicas")
        .arg("lockbench")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|fields| {
            let get = |name: &str| {
                let at = fields.iter().position(|f| f == name).unwrap();
                fields[at + 1].clone()
            };
            format!("{}:{}", get("ip"), get("port"))
        })
        .collect()
}

/// Waits (bounded) until every sentinel names server `i`'s announced
/// address (a client asks them in order, and must not meet a late one).
async fn wait_all_sentinels_name(t: &RedisSentinel, i: usize) {
    let t0 = Instant::now();
    let want = t.announced_addrs()[i].clone();
    loop {
        let named = t.primaries_named().await;
        if named.iter().all(|n| n.as_deref() == Ok(want.as_str())) {
            return;
        }
        assert!(
            t0.elapsed() < FAILOVER_WAIT,
            "sentinels still name {named:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn endpoints(t: &RedisSentinel) -> Vec<Endpoint> {
    let mut v: Vec<Endpoint> = t
        .client_addrs()
        .into_iter()
        .zip(t.announced_addrs())
        .enumerate()
        .map(|(i, (addr, announced))| Endpoint {
            name: format!("redis-{}", i + 1),
            addr,
            announced: Some(announced),
        })
        .collect();
    v.extend(
        t.sentinel_addrs()
            .into_iter()
            .enumerate()
            .map(|(k, addr)| Endpoint {
                name: format!("sentinel-{}", k + 1),
                addr,
                announced: None,
            }),
    );
    v
}

async fn client(b: &dyn backend::LockBackend, id: u64) -> Box<dyn LockClient> {
    b.client(ClientConfig {
        id,
        seed: id,
        op_timeout: Duration::from_secs(1),
    })
    .await
    .unwrap()
}

fn opts(lease_ms: u64) -> AcquireOptions {
    AcquireOptions {
        lease: Duration::from_millis(lease_ms),
        timeout: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_starts_with_server_0_primary_and_stops_cleanly() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut t = start(logs.path()).await;
    assert_eq!(t.len(), 3);
    assert!(
        t.version().starts_with(|c: char| c.is_ascii_digit()),
        "{}",
        t.version()
    );
    assert_eq!(
        t.roles().await,
        vec![Role::Leader, Role::Follower, Role::Follower]
    );
    assert_eq!(t.primary().await, Some(0));
    for named in t.primaries_named().await {
        assert_eq!(named.unwrap(), t.announced_addrs()[0]);
    }
    // The announced addresses are the proxies, not the real ports.
    for (real, announced) in t.client_addrs().iter().zip(t.announced_addrs()) {
        assert_ne!(*real, announced);
    }
    // The sentinels know the replicas by their proxies too (they learn
    // them from the primary, to which each replica announces its proxy).
    for sentinel in t.sentinel_addrs() {
        let mut seen = sentinel_replicas(&sentinel).await;
        seen.sort();
        let mut expected = t.announced_addrs()[1..].to_vec();
        expected.sort();
        assert_eq!(seen, expected, "sentinel {sentinel}");
    }
    // Both recipes run in Sentinel mode on the primary.
    for name in ["redis", "redis-get-set"] {
        let b = backend::build(name, &endpoints(&t)).await.unwrap();
        let mut c = client(&*b, 1).await;
        let Outcome::Ok(g) = c.acquire("k", &opts(10_000)).await else {
            panic!("{name}: acquire on the primary")
        };
        assert_eq!(
            c.release(&g).await,
            Outcome::Ok(Released { was_held: true }),
            "{name}"
        );
    }
    // A killed replica stays down; restarted (empty), it syncs again.
    t.kill(2).unwrap();
    assert!(matches!(t.roles().await[2], Role::Down(_)));
    t.restart(2).await.unwrap();
    let took = wait_follower(&t, 2).await;
    println!("restarted replica in sync after {took:?}");
    // A paused replica does not answer; resumed, it does.
    t.pause(1).unwrap();
    assert!(matches!(t.roles().await[1], Role::Down(_)));
    t.resume(1).unwrap();
    wait_follower(&t, 1).await;
    assert!(t.restart(3).await.is_err());
    assert!(t.kill(3).is_err());
    assert!(t.isolate(7).is_err());
    assert!(t.pause(3).is_err());

    let pids: Vec<u32> = t
        .servers()
        .iter()
        .chain(t.sentinel_processes())
        .map(|s| s.pid())
        .collect();
    assert_eq!(pids.len(), 6);
    for &pid in &pids {
        assert!(common::process_alive(pid, "redis-server"), "{pid}");
    }
    drop(t);
    for &pid in &pids {
        assert!(
            !common::process_alive(pid, "redis-server"),
            "pid {pid} still runs after drop"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_primary_makes_the_sentinels_promote_a_replica() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let t = start(logs.path()).await;
    assert_eq!(t.primary().await, Some(0));

    t.isolate(0).unwrap();
    let (new, took) = wait_new_primary(&t, 0).await;
    println!("isolate(primary): sentinels named server {new} after {took:?}");
    assert_ne!(new, 0);
    let roles = t.roles().await;
    assert_eq!(roles[new], Role::Leader, "{roles:?}");
    // The isolated old primary cannot know: it still says master.
    assert_eq!(roles[0], Role::Leader, "{roles:?}");

    t.heal();
    let took = wait_follower(&t, 0).await;
    println!("heal(): the old primary became a replica after {took:?}");
    assert_eq!(t.primary().await, Some(new));
}

/// The split brain the Redis docs warn about, through the `redis` backend
/// in Sentinel mode: a write the isolated primary accepted never reaches
/// the replica that is promoted, so two clients hold the same lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_clients_follow_the_failover_into_a_split_brain() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let t = start(logs.path()).await;
    let eps = endpoints(&t);
    let b = backend::build("redis", &eps).await.unwrap();
    let mut c1 = client(&*b, 1).await;

    // A lock taken before the partition reaches both replicas.
    let Outcome::Ok(g0) = c1.acquire("k0", &opts(60_000)).await else {
        panic!("acquire k0 on the primary")
    };
    let acked: i64 = {
        let client = redis::Client::open(format!("redis://{}/", t.client_addrs()[0])).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("WAIT")
            .arg(2)
            .arg(2000)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(acked, 2, "both replicas must have k0 before the partition");

    // The primary is cut from its replicas and the sentinels; client 1,
    // on the primary's real port, is not, and takes k there. The write
    // cannot be replicated.
    t.isolate(0).unwrap();
    let Outcome::Ok(g1) = c1.acquire("k", &opts(60_000)).await else {
        panic!("client 1 must take k on the isolated primary, which still says master")
    };

    let (new, took) = wait_new_primary(&t, 0).await;
    println!("failover to server {new} after {took:?}");
    wait_all_sentinels_name(&t, new).await;

    // A client built now from the same endpoints finds the new primary.
    let mut c2 = client(&*b, 2).await;
    match c2.acquire("k0", &opts(60_000)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("k0 was replicated: the new primary must refuse it: {other:?}"),
    }
    let got = c2.acquire("k", &opts(60_000)).await;
    let Outcome::Ok(g2) = got else {
        panic!("client 2 must take k on the new primary: {got:?}")
    };
    // Both acquires returned Ok: two holders of k at once. And the fencing
    // token does not tell them apart: each primary's counter started from
    // nothing for k (the old one's INCR never reached the replicas).
    assert_eq!(g1.fence, Some(1));
    assert_eq!(g2.fence, g1.fence);
    let roles = t.roles().await;
    assert_eq!(roles[0], Role::Leader, "{roles:?}");
    assert_eq!(roles[new], Role::Leader, "{roles:?}");

    t.heal();
    let took = wait_follower(&t, 0).await;
    println!("old primary demoted to replica {took:?} after heal");

    // Client 1 still thinks it holds k. But the sentinels demoted server 0
    // with `CLIENT KILL TYPE normal` after `REPLICAOF`, so client 1's
    // connection to it is gone: its first release of k ends in an error
    // the client cannot tell from a lost reply, so Info; it does not
    // pretend it released anything.
    match c1.release(&g1).await {
        Outcome::Info(_) => {}
        other => panic!("the demoted primary closed client 1's connection: {other:?}"),
    }
    // The next try finds the new primary through the sentinels, where k
    // holds client 2's token: the release deletes nothing and says the
    // lock was no longer client 1's (never was_held=true: client 2's lock
    // is untouched). Server 0's copy of client 1's k is gone too: the full
    // resync replaced its data with the new primary's.
    assert_eq!(
        c1.release(&g1).await,
        Outcome::Ok(Released { was_held: false })
    );
    // k0 was replicated before the partition: still client 1's.
    assert_eq!(
        c1.release(&g0).await,
        Outcome::Ok(Released { was_held: true })
    );
    // Client 2's lock survived all this.
    assert_eq!(
        c2.release(&g2).await,
        Outcome::Ok(Released { was_held: true })
    );
}
