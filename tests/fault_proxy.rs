//! The fault proxy acting on real traffic: a real redis-server behind it,
//! lockbench's own Redis lock client in front.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockbench::backend::{self, AcquireOptions, ClientConfig, LockClient, Outcome};
use lockbench::cluster::{Cluster, Endpoint, ServerKind};
use lockbench::net::{Direction, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts() -> AcquireOptions {
    AcquireOptions {
        lease: Duration::from_secs(10),
        timeout: Duration::ZERO,
    }
}

/// A redis server, a proxy in front of it, and a lock client through the
/// proxy.
async fn setup(
    logs: &std::path::Path,
    op_timeout: Duration,
) -> (Cluster, Proxy, Box<dyn LockClient>) {
    let cluster = Cluster::start(ServerKind::Redis, 1, logs).await.unwrap();
    let upstream: SocketAddr = cluster.endpoints()[0].addr.parse().unwrap();
    let proxy = Proxy::start(upstream, 7).await.unwrap();
    let through = [Endpoint {
        name: "redis-1 via proxy".into(),
        addr: proxy.addr().to_string(),
        announced: None,
    }];
    let b = backend::build("redis", &through).await.unwrap();
    let client = b
        .client(ClientConfig {
            id: 0,
            seed: 0,
            op_timeout,
        })
        .await
        .unwrap();
    (cluster, proxy, client)
}

async fn cycle(c: &mut Box<dyn LockClient>, key: &str) -> Outcome<()> {
    match c.acquire(key, &opts()).await {
        Outcome::Ok(g) => match c.release(&g).await {
            Outcome::Ok(_) => Outcome::Ok(()),
            Outcome::Fail(e) => Outcome::Fail(e),
            Outcome::Info(e) => Outcome::Info(e),
        },
        Outcome::Fail(e) => Outcome::Fail(e),
        Outcome::Info(e) => Outcome::Info(e),
    }
}

#[tokio::test]
async fn a_blackholed_link_times_out_as_info_and_heals() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (_cluster, proxy, mut c) = setup(logs.path(), Duration::from_millis(300)).await;
    assert_eq!(cycle(&mut c, "a").await, Outcome::Ok(()));
    proxy.partition();
    let started = Instant::now();
    let out = c.acquire("b", &opts()).await;
    assert!(
        matches!(out, Outcome::Info(_)),
        "a request into a blackhole is unknown: {out:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    proxy.heal();
    // The held request is delivered on heal; afterwards the link works.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Outcome::Ok(()) = cycle(&mut c, "c").await {
            break;
        }
        assert!(Instant::now() < deadline, "the link did not heal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_one_way_blackhole_stops_replies_only() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (cluster, proxy, mut c) = setup(logs.path(), Duration::from_millis(300)).await;
    // Load the scripts first: a cold EVALSHA needs the NOSCRIPT reply back
    // before it sends EVAL, and replies are what this fault stops.
    assert_eq!(cycle(&mut c, "warm").await, Outcome::Ok(()));
    proxy.blackhole(Direction::Downstream);
    let out = c.acquire("one-way", &opts()).await;
    assert!(matches!(out, Outcome::Info(_)), "{out:?}");
    // The request itself reached the server: the key is set there.
    let direct = [cluster.endpoints()[0].clone()];
    let b = backend::build("redis", &direct).await.unwrap();
    let mut other = b
        .client(ClientConfig {
            id: 1,
            seed: 1,
            op_timeout: Duration::from_secs(1),
        })
        .await
        .unwrap();
    assert!(
        matches!(other.acquire("one-way", &opts()).await, Outcome::Fail(_)),
        "the upstream half delivered the SET, so the lock is held"
    );
    proxy.heal();
}

#[tokio::test]
async fn a_reset_link_cuts_connections_and_refuses_new_ones_until_healed() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (_cluster, proxy, mut c) = setup(logs.path(), Duration::from_millis(500)).await;
    assert_eq!(cycle(&mut c, "a").await, Outcome::Ok(()));
    proxy.reset();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = cycle(&mut c, "b").await;
    assert!(
        !matches!(out, Outcome::Ok(())),
        "a reset link must not carry a request: {out:?}"
    );
    // A fresh connection is refused at once.
    let fresh = tokio::net::TcpStream::connect(proxy.addr()).await;
    if let Ok(mut s) = fresh {
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a new connection must be closed at once: {read:?}"
        );
    }
    proxy.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Outcome::Ok(()) = cycle(&mut c, "c").await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client did not reconnect after the heal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `connected_clients` from a server's `INFO clients`, asked directly.
async fn connected_clients(addr: &str) -> u64 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "INFO: connection closed");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            && text.ends_with("\r\n\r\n")
        {
            // Minus this connection.
            return v.trim().parse::<u64>().unwrap() - 1;
        }
    }
}

/// A partition stops new connections before the server: they wait in the
/// proxy's listen queue (the server sees none of them, and the proxy holds
/// no socket for them), and healing delivers them with what they sent.
#[tokio::test]
async fn new_connections_across_a_partition_wait_unseen_and_arrive_on_heal() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (cluster, proxy, mut c) = setup(logs.path(), Duration::from_millis(500)).await;
    assert_eq!(cycle(&mut c, "a").await, Outcome::Ok(()));
    let direct = cluster.endpoints()[0].addr.clone();
    let before = connected_clients(&direct).await;
    proxy.partition();
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"PING\r\n").await.unwrap();
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        connected_clients(&direct).await,
        before,
        "the server saw connections made across a partition"
    );
    proxy.heal();
    for s in &mut conns {
        let mut reply = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut reply))
            .await
            .expect("a queued connection was not delivered on heal")
            .unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
    }
    assert_eq!(connected_clients(&direct).await, before + 20);
}

#[tokio::test]
async fn latency_shifts_the_median_by_about_the_delay() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let (_cluster, proxy, mut c) = setup(logs.path(), Duration::from_secs(2)).await;
    async fn median(c: &mut Box<dyn LockClient>) -> Duration {
        let mut v = Vec::new();
        for i in 0..15 {
            let t = Instant::now();
            assert_eq!(cycle(c, &format!("lat-{i}")).await, Outcome::Ok(()));
            v.push(t.elapsed());
        }
        v.sort();
        v[v.len() / 2]
    }
    let before = median(&mut c).await;
    proxy.latency(
        Direction::Upstream,
        Duration::from_millis(40),
        Duration::ZERO,
    );
    let after = median(&mut c).await;
    // A cycle is two round trips (acquire, release): 2 × 40 ms added. The
    // lower bound is exact (nothing can arrive early); the upper is loose,
    // since the machine is shared.
    let shift = after.saturating_sub(before);
    assert!(
        shift >= Duration::from_millis(75),
        "shift {shift:?} ({before:?} → {after:?})"
    );
    assert!(
        shift < Duration::from_millis(600),
        "shift {shift:?} ({before:?} → {after:?})"
    );
}

#[tokio::test]
async fn bandwidth_paces_delivery() {
    // An echo server of our own: the proxy carries any bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    });
    let proxy = Proxy::start(addr, 1).await.unwrap();
    proxy.bandwidth(Direction::Upstream, 256 * 1024);
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let payload = vec![7u8; 256 * 1024];
    let started = Instant::now();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&payload).await.unwrap();
    };
    let recv = async {
        let mut got = vec![0u8; payload.len()];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let (_, got) = tokio::join!(send, recv);
    assert_eq!(got, payload);
    // 256 KiB at 256 KiB/s: at least most of a second.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn only_loopback_targets_are_proxied() {
    let err = Proxy::start("192.0.2.1:6379".parse().unwrap(), 0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}
