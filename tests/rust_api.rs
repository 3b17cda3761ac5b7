//! The Rust API for a lock crate's author (`lockbench::run::harness`), on
//! the lock of `examples/my_lock.rs` against a real redis-server: its
//! conformance checks pass and a contended run checks valid; and the
//! checks catch a lock that breaks exclusion.

mod common;

#[path = "../examples/my_lock.rs"]
#[allow(dead_code)]
mod my_lock;

use lockbench::Verdict;
use lockbench::backend::BackendInfo;
use lockbench::cluster::ServerKind;
use lockbench::run::harness;

#[tokio::test]
async fn a_correct_lock_of_ones_own_passes_conformance_and_a_contended_run() {
    if !common::server_available("redis-server") {
        return;
    }
    let lock = my_lock::my_lock();
    let report = harness::conformance(&lock).await.expect("servers start");
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks.len(), 2);
    let out = tempfile::tempdir().unwrap();
    let summary = harness::contended(&lock, &harness::Contended::in_dir(out.path()))
        .await
        .expect("the run completes");
    assert_eq!(summary.verdict, Verdict::Valid, "{:?}", summary.witnesses);
    assert!(summary.acquire_latency_us.count > 20);
    assert_eq!(summary.backend, "my-lock");
}

#[tokio::test]
async fn the_checks_catch_a_lock_that_grants_a_held_key() {
    if !common::server_available("redis-server") {
        return;
    }
    // lockbench's own broken recipe, declared as if it were the user's.
    let broken = lockbench::backend::info("redis-get-set").expect("registered");
    let lock = BackendInfo::new(
        "users-broken-lock",
        Some(ServerKind::Redis),
        "GET then SET",
        |eps| async move { lockbench::backend::build("redis-get-set", &eps).await },
    );
    assert!(broken.broken);
    let out = tempfile::tempdir().unwrap();
    let how = harness::Contended {
        clients: 16,
        keys: 1,
        ..harness::Contended::in_dir(out.path())
    };
    let summary = harness::contended(&lock, &how)
        .await
        .expect("the run completes");
    assert_eq!(summary.verdict, Verdict::Invalid, "{summary:?}");
}
