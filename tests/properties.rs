//! The property matrix on real servers: the cells that the vendors'
//! documentation fixes must come out that way.

mod common;

use std::path::Path;

use lockbench::cluster::ServerKind;
use lockbench::run::RunOptions;
use lockbench::run::run_matrix;
use lockbench::scenario::Scenario;
use lockbench::summary::matrix::{Cell, Matrix};

/// The matrices run one at a time: each starts several clusters, and two
/// at once on a small machine would slow the elections they measure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cell `prop` of `backend`'s row, which must have no error.
fn cell(matrix: &Matrix, backend: &str, prop: &str) -> Cell {
    let row = matrix.rows.iter().find(|r| r.backend == backend).unwrap();
    assert!(row.error.is_none(), "{backend}: {:?}", row.error);
    row.cells.iter().find(|(k, _)| k == prop).unwrap().1.clone()
}

#[tokio::test]
async fn the_matrix_measures_what_the_docs_say() {
    if !common::server_available("redis-server") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let out = tempfile::tempdir().unwrap();
    let text = "name = \"m\"\nmode = \"properties\"\nbackends = [\"inproc\", \"redis\"]\n\
                lease = \"1s\"\nclients = 8\nduration = \"500ms\"\nhold = \"0ms\"\nthink = \"0ms\"\n";
    let scenario = Scenario::parse(Path::new("m.toml"), text).unwrap();
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        require_backends: common::backends_required(),
        ..RunOptions::default()
    };
    let lockbench::run::MatrixRun { page, matrix, .. } =
        run_matrix(&scenario, 1, &opts).await.unwrap();
    assert!(page.exists());
    assert!(out.path().join("m/matrix.json").exists());
    let cell = |backend: &str, prop: &str| cell(&matrix, backend, prop);
    for backend in ["inproc", "redis"] {
        assert_eq!(cell(backend, "exclusion").text, "valid", "{backend}");
        assert_eq!(cell(backend, "fencing").text, "yes, grows", "{backend}");
        // A crashed holder's lock comes free when its 1 s lease ends.
        let free_after = cell(backend, "expiry").data["free_after_ms"]
            .as_f64()
            .unwrap();
        assert!(
            (900.0..5_000.0).contains(&free_after),
            "{backend}: {free_after} ms: {:?}",
            cell(backend, "expiry")
        );
        // Neither is reentrant: the second acquire waits out its timeout.
        assert!(
            cell(backend, "reentrancy").text.starts_with("blocks"),
            "{backend}"
        );
        // Every cell links to what measured it.
        let link = cell(backend, "one_key").link.unwrap();
        assert!(out.path().join("m").join(link).exists(), "{backend}");
    }
    // Redis without persistence forgets its keys on a kill -9 (Redis docs,
    // "Distributed Locks with Redis"), and the INCR fence starts again.
    let restart = cell("redis", "restart");
    assert_eq!(
        restart.data["kept"],
        serde_json::json!(false),
        "{restart:?}"
    );
    assert!(restart.text.contains("fence went back"), "{restart:?}");
    assert_eq!(cell("inproc", "restart").text, "n/a (no server)");
    // No server, no member to lose.
    for prop in ["member_lost", "member_cut"] {
        assert_eq!(cell("inproc", prop).text, "no server");
        assert_eq!(cell("inproc", prop).good, None);
    }
}

/// Seed 003: a single cache server goes down with its server; a lock
/// over a majority of servers keeps serving while a majority lives
/// (the seed says it of ZooKeeper's ensemble; Redlock's five masters
/// here, see below why).
#[tokio::test]
async fn the_matrix_shows_which_lock_is_a_single_point_of_failure() {
    if !common::server_available("memcached") {
        return;
    }
    if let Err(missing) = ServerKind::Redis.locate() {
        assert!(!common::backends_required(), "{missing}");
        eprintln!("skipped: {missing} is not installed (scripts/install-backends.sh)");
        return;
    }
    let _serial = SERIAL.lock().await;
    let out = tempfile::tempdir().unwrap();
    let text = "name = \"s\"\nmode = \"properties\"\nbackends = [\"memcached\", \"redlock\"]\n\
                lease = \"1s\"\nclients = 8\nhosts = 2\nduration = \"500ms\"\nhold = \"0ms\"\nthink = \"0ms\"\n";
    let scenario = Scenario::parse(Path::new("s.toml"), text).unwrap();
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        require_backends: common::backends_required(),
        ..RunOptions::default()
    };
    let lockbench::run::MatrixRun { page, matrix, .. } =
        run_matrix(&scenario, 5, &opts).await.unwrap();
    let topology = |backend: &str| {
        let row = matrix.rows.iter().find(|r| r.backend == backend).unwrap();
        row.topology.clone()
    };
    assert_eq!(topology("memcached").as_deref(), Some("single server"));
    assert_eq!(
        topology("redlock").as_deref(),
        Some("5 independent Redis masters")
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("member faults: 5 independent Redis masters"),
        "{html}"
    );

    // memcached: its one server killed, nobody acquires until it is back.
    let lost = cell(&matrix, "memcached", "member_lost");
    assert_eq!(lost.good, Some(false), "{lost:?}");
    assert!(lost.text.contains("unavailable while down"), "{lost:?}");
    assert_eq!(lost.data["acquired_during_fault"], 0, "{lost:?}");
    assert_eq!(lost.data["targets"], serde_json::json!(["server-1"]));
    // It came back (restarted on the same port) and was acquired again.
    assert!(lost.data["recovered_ms"].is_f64(), "{lost:?}");
    let link = lost.link.clone().unwrap();
    assert!(out.path().join("s").join(link).exists(), "{lost:?}");
    let cut = cell(&matrix, "memcached", "member_cut");
    assert_eq!(cut.text, "no peers (single server)");
    assert_eq!(cut.good, None);

    // redlock: two of its five masters killed, the three others are a
    // majority, and the lock goes on being granted, once at a time.
    // The consensus clusters are measured in the matrix but not asserted
    // here: Debian's ZooKeeper 3.8.0 can stay without a leader for a whole
    // fault (ZOOKEEPER-4685, see
    // scenarios/topologies/zookeeper-ensemble-partition.toml), and an etcd
    // holder's keep-alives routed to the killed leader can let its 1 s
    // lease run out while it holds (lease-expired, seen in 1 of 2 runs).
    let lost = cell(&matrix, "redlock", "member_lost");
    assert_eq!(lost.good, Some(true), "{lost:?}");
    assert_eq!(lost.data["verdict"], "valid", "{lost:?}");
    assert!(
        lost.data["acquired_during_fault"].as_u64().unwrap() > 0,
        "{lost:?}"
    );
    let targets = lost.data["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{lost:?}");
    assert!(lost.text.contains("2 of 5 masters, a minority"), "{lost:?}");
    // Independent masters have no links between them to cut.
    let cut = cell(&matrix, "redlock", "member_cut");
    assert_eq!(cut.text, "no peers (5 independent masters)");
    assert_eq!(cut.good, None);
}
