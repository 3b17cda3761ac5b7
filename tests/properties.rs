//! The property matrix on inproc and a real Redis: the cells that the
//! vendors' documentation fixes must come out that way.

mod common;

use std::path::Path;

use lockbench::properties::run_matrix;
use lockbench::scenario::{RunOptions, Scenario};

#[tokio::test]
async fn the_matrix_measures_what_the_docs_say() {
    if !common::server_available("redis-server") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let text = "name = \"m\"\nmode = \"properties\"\nbackends = [\"inproc\", \"redis\"]\n\
                lease = \"1s\"\nclients = 8\nduration = \"500ms\"\nhold = \"0ms\"\nthink = \"0ms\"\n";
    let scenario = Scenario::parse(Path::new("m.toml"), text).unwrap();
    let opts = RunOptions {
        out_dir: out.path().to_path_buf(),
        ..RunOptions::default()
    };
    let (page, matrix) = run_matrix(&scenario, 1, &opts).await.unwrap();
    assert!(page.exists());
    assert!(out.path().join("m/matrix.json").exists());
    let cell = |backend: &str, prop: &str| {
        let row = matrix.rows.iter().find(|r| r.backend == backend).unwrap();
        assert!(row.error.is_none(), "{backend}: {:?}", row.error);
        row.cells.iter().find(|(k, _)| k == prop).unwrap().1.clone()
    };
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
}
