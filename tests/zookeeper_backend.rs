//! The `zookeeper` and `zookeeper-herd` backends against a real ZooKeeper
//! started by lockbench's cluster layer (`java ... ZooKeeperServerMain`).

mod common;

use std::time::{Duration, Instant};

use lockbench::backend::{self, AcquireOptions, ClientConfig, LockClient, Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// True if java and the ZooKeeper jars are installed (else skip, or fail
/// under LOCKBENCH_REQUIRE_BACKENDS=1).
fn zookeeper_available() -> bool {
    match ServerKind::ZooKeeper.locate() {
        Ok(_) => true,
        Err(missing) => {
            if common::backends_required() {
                panic!("{missing} is not installed and LOCKBENCH_REQUIRE_BACKENDS=1");
            }
            eprintln!("skipped: {missing} is not installed (scripts/install-backends.sh)");
            false
        }
    }
}

fn opts(lease_ms: u64, timeout_ms: u64) -> AcquireOptions {
    AcquireOptions {
        lease: Duration::from_millis(lease_ms),
        timeout: Duration::from_millis(timeout_ms),
    }
}

async fn start() -> (Cluster, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(ServerKind::ZooKeeper, 1, logs.path())
        .await
        .unwrap();
    (cluster, logs)
}

async fn clients(name: &str, cluster: &Cluster, n: u64) -> Vec<Box<dyn LockClient>> {
    let b = backend::build(name, cluster.endpoints()).await.unwrap();
    let mut v = Vec::new();
    for id in 0..n {
        v.push(
            b.client(ClientConfig {
                id,
                seed: id,
                op_timeout: Duration::from_secs(2),
            })
            .await
            .unwrap(),
        );
    }
    v
}

/// The reply to a four-letter word.
async fn four_letter_word(addr: &str, word: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(word.as_bytes()).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(2), conn.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    reply
}

/// Requests the server has received so far (`srvr`'s `Received:`).
async fn received(addr: &str) -> u64 {
    four_letter_word(addr, "srvr")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("Received:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn server_serves_with_its_version() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let info = &cluster.infos()[0];
    assert!(
        info.version.starts_with("3."),
        "version {:?} should be ZooKeeper's",
        info.version
    );
    let srvr = four_letter_word(&info.addr, "srvr").await;
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
}

#[tokio::test]
async fn fence_is_the_czxid_and_grows() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let addr = cluster.endpoints()[0].addr.clone();
    let zk = zookeeper_client::Client::connect(&addr).await.unwrap();
    for name in ["zookeeper", "zookeeper-herd"] {
        let mut c = clients(name, &cluster, 2).await;
        let mut last = 0;
        for round in 0..4 {
            let i = round % 2;
            let Outcome::Ok(g) = c[i].acquire("k", &opts(5_000, 0)).await else {
                panic!("{name}: the free lock must be granted");
            };
            let fence = g.fence.expect("zookeeper has a fence");
            let (_, stat) = zk.get_data(&g.token).await.unwrap();
            assert_eq!(fence, stat.czxid as u64, "{name}: fence = czxid");
            assert!(fence > last, "{name}: fences grow: {last} then {fence}");
            last = fence;
            assert_eq!(
                c[i].release(&g).await,
                Outcome::Ok(Released { was_held: true })
            );
            assert_eq!(zk.check_stat(&g.token).await.unwrap(), None);
        }
    }
}

#[tokio::test]
async fn lease_is_the_clamped_session_timeout() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let mut c = clients("zookeeper", &cluster, 1).await;
    // tickTime 500 ms: sessions are clamped to 1 s .. 10 s.
    for (asked, granted) in [(100, 1_000), (2_000, 2_000), (60_000, 10_000)] {
        let Outcome::Ok(mut g) = c[0].acquire("k", &opts(asked, 0)).await else {
            panic!("acquire")
        };
        assert_eq!(
            g.lease,
            Some(Duration::from_millis(granted)),
            "asked {asked}"
        );
        // Renew only checks that the session and node live.
        assert_eq!(
            c[0].renew(&mut g, Duration::from_secs(30)).await,
            Outcome::Ok(())
        );
        assert_eq!(g.lease, Some(Duration::from_millis(granted)));
        assert_eq!(
            c[0].release(&g).await,
            Outcome::Ok(Released { was_held: true })
        );
        assert!(matches!(
            c[0].renew(&mut g, Duration::from_secs(1)).await,
            Outcome::Fail(_)
        ));
    }
}

#[tokio::test]
async fn a_crashed_holders_lock_frees_after_its_session_timeout() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    for name in ["zookeeper", "zookeeper-herd"] {
        let mut c = clients(name, &cluster, 3).await;
        let key = format!("crash-{name}");
        let g = match c[0].acquire(&key, &opts(2_000, 0)).await {
            Outcome::Ok(g) => g,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(g.lease, Some(Duration::from_secs(2)));
        // The holder dies without a word: no release, no close-session.
        let holder = c.remove(0);
        holder.crash();
        let crashed = Instant::now();
        let out = c[0].acquire(&key, &opts(2_000, 10_000)).await;
        let waited = crashed.elapsed();
        let Outcome::Ok(g2) = out else {
            panic!("{name}: {out:?}")
        };
        eprintln!("{name}: lock freed {waited:?} after the holder crashed (session timeout 2 s)");
        // Expiry is checked every tick; allow the timeout plus slack.
        assert!(
            waited >= Duration::from_millis(1_000) && waited < Duration::from_secs(5),
            "{name}: freed after {waited:?}"
        );
        // The crashed holder's guard: its node is gone.
        assert_eq!(
            c[1].release(&g).await,
            Outcome::Ok(Released { was_held: false })
        );
        assert_eq!(
            c[0].release(&g2).await,
            Outcome::Ok(Released { was_held: true })
        );
    }
}

#[tokio::test]
async fn an_expired_session_loses_the_lock_and_the_next_acquire_gets_a_new_one() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let mut c = clients("zookeeper", &cluster, 2).await;
    let Outcome::Ok(mut g) = c[0].acquire("k", &opts(1_000, 0)).await else {
        panic!("acquire")
    };
    // Freeze the server past the 1 s session: when it wakes, it expires
    // the session before the client's pings count.
    let pid = cluster.pids()[0] as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    tokio::time::sleep(Duration::from_secs(4)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = c[1].acquire("k", &opts(1_000, 5_000)).await;
    let Outcome::Ok(g1) = out else {
        panic!("the expired session's lock must be granted: {out:?}")
    };
    assert!(g1.fence > g.fence);
    assert!(matches!(
        c[0].renew(&mut g, Duration::from_secs(1)).await,
        Outcome::Fail(_)
    ));
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: false })
    );
    // The old holder works again, on a new session.
    assert!(matches!(
        c[0].acquire("other", &opts(1_000, 0)).await,
        Outcome::Ok(_)
    ));
    assert_eq!(
        c[1].release(&g1).await,
        Outcome::Ok(Released { was_held: true })
    );
}

/// 16 clients queue on one key; each takes the lock once, holds it 2 ms and
/// releases it. Prints the time and the requests the server received for
/// each recipe: with the herd every release wakes every waiter. No timing
/// is asserted (speed targets live in benchmarks).
#[tokio::test]
async fn herd_and_next_lower_with_16_waiters() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let addr = cluster.endpoints()[0].addr.clone();
    // The first round warms the JVM up and is not printed.
    for (round, name) in [
        "zookeeper",
        "zookeeper",
        "zookeeper-herd",
        "zookeeper",
        "zookeeper-herd",
    ]
    .into_iter()
    .enumerate()
    {
        let c = clients(name, &cluster, 16).await;
        let before = received(&addr).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for mut client in c {
            tasks.push(tokio::spawn(async move {
                let g = match client.acquire("herd", &opts(10_000, 20_000)).await {
                    Outcome::Ok(g) => g,
                    other => panic!("{other:?}"),
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
                assert_eq!(
                    client.release(&g).await,
                    Outcome::Ok(Released { was_held: true })
                );
                client
            }));
        }
        let mut done = Vec::new();
        for t in tasks {
            done.push(t.await.unwrap());
        }
        let took = started.elapsed();
        // srvr itself counts as one request.
        let requests = received(&addr).await - before - 1;
        if round > 0 {
            eprintln!("{name}: 16 waiters on one key: {took:?}, {requests} requests to the server");
        }
        // The clients (and their sessions) end here, before the next recipe.
        drop(done);
    }
}

#[tokio::test]
async fn conformance_exclusion_and_release() {
    if zookeeper_available() {
        common::conformance::exclusion_and_release("zookeeper").await;
        common::conformance::exclusion_and_release("zookeeper-herd").await;
    }
}

#[tokio::test]
async fn conformance_blocking_hand_off() {
    if zookeeper_available() {
        common::conformance::blocking_hand_off("zookeeper").await;
        common::conformance::blocking_hand_off("zookeeper-herd").await;
    }
}

#[tokio::test]
async fn conformance_contended_run_is_valid() {
    if zookeeper_available() {
        common::conformance::contended_run_is_valid("zookeeper").await;
        common::conformance::contended_run_is_valid("zookeeper-herd").await;
    }
}

/// A release whose delete never reached the server (sent into a
/// partition, then the connection reset) ends `info`, and the session
/// lives on after the heal. The client's next acquire must delete that
/// node first (Curator's guaranteed delete): otherwise the client queues
/// behind its own old node and nobody ever gets the key again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_lost_in_a_partition_does_not_leave_the_key_locked() {
    if !zookeeper_available() {
        return;
    }
    let (cluster, _logs) = start().await;
    let upstream: std::net::SocketAddr = cluster.endpoints()[0].addr.parse().unwrap();
    let proxy = lockbench::net::Proxy::start(upstream, 1).await.unwrap();
    let through = [lockbench::cluster::Endpoint {
        name: "zookeeper-1 via proxy".into(),
        addr: proxy.addr().to_string(),
        announced: None,
    }];
    let b = backend::build("zookeeper", &through).await.unwrap();
    let mut c = b
        .client(ClientConfig {
            id: 0,
            seed: 0,
            op_timeout: Duration::from_millis(500),
        })
        .await
        .unwrap();
    // A 10 s session outlives the partition below.
    let g = match c.acquire("k", &opts(10_000, 1_000)).await {
        Outcome::Ok(g) => g,
        other => panic!("first acquire: {other:?}"),
    };
    proxy.partition();
    let released = c.release(&g).await;
    assert!(matches!(released, Outcome::Info(_)), "{released:?}");
    // The held delete is dropped with the connections, never delivered.
    proxy.reset();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.heal();
    let t0 = Instant::now();
    let again = c.acquire("k", &opts(10_000, 3_000)).await;
    println!(
        "acquire after the lost release: {again:?} in {:?}",
        t0.elapsed()
    );
    assert!(matches!(again, Outcome::Ok(_)), "{again:?}");
    // And another client can have it after this one releases.
    if let Outcome::Ok(g) = again {
        assert_eq!(
            c.release(&g).await,
            Outcome::Ok(Released { was_held: true })
        );
    }
    let mut other = clients("zookeeper", &cluster, 1).await.remove(0);
    assert!(matches!(
        other.acquire("k", &opts(10_000, 3_000)).await,
        Outcome::Ok(_)
    ));
}
