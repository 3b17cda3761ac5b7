//! Clock skew and drift on a real redis-server started with lockbench's
//! preload library (src/fault/skew.c, src/fault/clock.rs).

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lockbench::cluster::{Cluster, ServerKind};

const HOUR_NS: i64 = 3_600_000_000_000;

async fn conn(addr: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The server's `TIME`, in µs since the epoch.
async fn server_time_us(c: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(c).await.unwrap();
    s * 1_000_000 + us
}

fn real_time_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// How far the server's `TIME` is from lockbench's clock, in µs.
async fn offset_us(c: &mut redis::aio::MultiplexedConnection) -> i64 {
    server_time_us(c).await - real_time_us()
}

/// How much the server's `TIME` advances during `real` of real time.
async fn advance_us(c: &mut redis::aio::MultiplexedConnection, real: Duration) -> (i64, Duration) {
    let t0 = Instant::now();
    let a = server_time_us(c).await;
    tokio::time::sleep(real).await;
    let b = server_time_us(c).await;
    (b - a, t0.elapsed())
}

#[test]
fn redis_is_skewable_and_etcd_is_not() {
    if ServerKind::Redis.skew_support().is_err() {
        // Only when the build had no C compiler; then every kind says so.
        assert!(
            ServerKind::Etcd
                .skew_support()
                .unwrap_err()
                .contains("C compiler")
        );
        return;
    }
    assert!(
        ServerKind::Etcd
            .skew_support()
            .unwrap_err()
            .contains("vDSO")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_redis_time_jumps_drifts_and_expires_keys_early() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let skewed = Cluster::start_with_clock(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    let plain = Cluster::start(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    let mut s = conn(&skewed.endpoints()[0].addr).await;
    let mut p = conn(&plain.endpoints()[0].addr).await;

    // Started with the library but not skewed yet: real time.
    assert!(offset_us(&mut s).await.abs() < 2_000_000);

    // A jump of one hour shows in TIME at once.
    skewed.set_clock(0, HOUR_NS, 1.0).unwrap();
    let off = offset_us(&mut s).await;
    assert!((off - 3_600_000_000).abs() < 2_000_000, "offset {off} µs");

    // Rate 10 from here, continuous: no second jump, then 10× speed.
    skewed.set_clock(0, 0, 10.0).unwrap();
    let off = offset_us(&mut s).await;
    assert!((off - 3_600_000_000).abs() < 5_000_000, "offset {off} µs");
    let (adv, real) = advance_us(&mut s, Duration::from_millis(500)).await;
    // 10× would be 5 s; demand well over 2×, however slow the machine.
    assert!(
        adv > 2 * real.as_micros() as i64,
        "advanced {adv} µs in {real:?}"
    );

    // A 5 s key on the skewed server is gone long before 5 s of real time;
    // the same key on an unskewed server is still there then.
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(5000)
        .query_async(&mut s)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(5000)
        .query_async(&mut p)
        .await
        .unwrap();
    let t0 = Instant::now();
    let mut gone_after = None;
    while t0.elapsed() < Duration::from_millis(2500) {
        let n: i64 = redis::cmd("EXISTS")
            .arg("k")
            .query_async(&mut s)
            .await
            .unwrap();
        if n == 0 {
            gone_after = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone_after = gone_after.expect("the 5 s key outlived 2.5 s on a 10x clock");
    let n: i64 = redis::cmd("EXISTS")
        .arg("k")
        .query_async(&mut p)
        .await
        .unwrap();
    if t0.elapsed() < Duration::from_millis(4500) {
        assert_eq!(
            n,
            1,
            "the unskewed server lost its 5 s key after {:?}",
            t0.elapsed()
        );
    }
    eprintln!("5 s key gone after {gone_after:?} of real time at rate 10");

    // Rate back to 1: TIME advances at real speed again.
    skewed.set_clock(0, 0, 1.0).unwrap();
    let (adv, real) = advance_us(&mut s, Duration::from_millis(500)).await;
    let real_us = real.as_micros() as i64;
    assert!(
        adv <= real_us + 50_000 && adv >= real_us / 2,
        "advanced {adv} µs in {real:?}"
    );

    // Reset: back to real time; the server served throughout.
    skewed.reset_clock(0).unwrap();
    assert!(offset_us(&mut s).await.abs() < 2_000_000);
    let pong: String = redis::cmd("PING").query_async(&mut s).await.unwrap();
    assert_eq!(pong, "PONG");

    // An unskewed cluster has no clock to set.
    assert!(plain.set_clock(0, HOUR_NS, 1.0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_skewed_clock() {
    if !common::server_available("redis-server") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_with_clock(ServerKind::Redis, 1, logs.path())
        .await
        .unwrap();
    cluster.set_clock(0, -HOUR_NS, 1.0).unwrap();
    let pid = cluster.pids()[0];
    cluster.restart(0).await.unwrap();
    assert_ne!(cluster.pids()[0], pid);
    let mut c = conn(&cluster.endpoints()[0].addr).await;
    let off = offset_us(&mut c).await;
    assert!(
        (off + 3_600_000_000).abs() < 2_000_000,
        "offset {off} µs after restart"
    );
    cluster.reset_clock(0).unwrap();
    assert!(offset_us(&mut c).await.abs() < 2_000_000);
}

/// Sends one memcached text command, returns the first reply chunk.
async fn mc(stream: &mut tokio::net::TcpStream, cmd: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(cmd).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_drifts_through_its_monotonic_clock() {
    if !common::server_available("memcached") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let skewed = Cluster::start_with_clock(ServerKind::Memcached, 1, logs.path())
        .await
        .unwrap();
    let plain = Cluster::start(ServerKind::Memcached, 1, logs.path())
        .await
        .unwrap();
    // A monotonic clock cannot jump.
    assert!(skewed.set_clock(0, HOUR_NS, 1.0).is_err());
    skewed.set_clock(0, 0, 10.0).unwrap();
    let mut s = tokio::net::TcpStream::connect(&skewed.endpoints()[0].addr)
        .await
        .unwrap();
    let mut p = tokio::net::TcpStream::connect(&plain.endpoints()[0].addr)
        .await
        .unwrap();
    assert_eq!(mc(&mut s, b"set k 0 20 1\r\nv\r\n").await, "STORED\r\n");
    assert_eq!(mc(&mut p, b"set k 0 20 1\r\nv\r\n").await, "STORED\r\n");
    let t0 = Instant::now();
    let mut gone_after = None;
    while t0.elapsed() < Duration::from_secs(8) {
        if mc(&mut s, b"get k\r\n").await == "END\r\n" {
            gone_after = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_after = gone_after.expect("a 20 s key outlived 8 s on a 10x clock");
    if t0.elapsed() < Duration::from_secs(18) {
        assert!(
            mc(&mut p, b"get k\r\n").await.starts_with("VALUE k"),
            "the unskewed server lost its 20 s key after {:?}",
            t0.elapsed()
        );
    }
    eprintln!("memcached: 20 s key gone after {gone_after:?} of real time at monotonic rate 10");
    skewed.reset_clock(0).unwrap();
    assert!(mc(&mut s, b"version\r\n").await.starts_with("VERSION"));
}
