//! `mysql-table`, `mysql-for-update` and `mysql-get-lock` against a real
//! mariadbd started by lockbench's cluster layer.

mod common;

use std::time::{Duration, Instant};

use common::conformance::{clients, must_acquire, opts};
use lockbench::backend::{Outcome, Released};
use lockbench::cluster::{Cluster, ServerKind};

const SERVER: &str = "mariadbd";

async fn mariadb(logs: &std::path::Path) -> Cluster {
    Cluster::start(ServerKind::MariaDb, 1, logs).await.unwrap()
}

#[tokio::test]
async fn the_server_serves_sql_over_tcp_and_stops_on_drop() {
    if !common::server_available(SERVER) {
        return;
    }
    let started = Instant::now();
    let version = common::conformance::server_lifecycle(ServerKind::MariaDb, "mariadbd").await;
    eprintln!(
        "mariadb install + start + stop took {:?}",
        started.elapsed()
    );
    assert!(version.contains("MariaDB"), "{version}");
}

#[tokio::test]
async fn table_fences_count_up_per_key() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-table", &cluster, 1).await;
    let mut fences = Vec::new();
    for _ in 0..3 {
        let g = must_acquire(&mut c[0], "f", opts(10_000, 0)).await;
        assert_eq!(g.lease, Some(Duration::from_secs(10)));
        fences.push(g.fence.unwrap());
        assert_eq!(
            c[0].release(&g).await,
            Outcome::Ok(Released { was_held: true })
        );
    }
    assert_eq!(fences, vec![1, 2, 3]);
}

/// A dead holder's row stays until its expiry; then the cleaner (run by
/// the next acquirer) deletes it and the lock is taken.
#[tokio::test]
async fn table_dead_holder_is_cleaned_after_its_lease() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-table", &cluster, 2).await;
    let lease = Duration::from_millis(1_000);
    let g = must_acquire(&mut c[0], "k", opts(1_000, 0)).await;
    c.remove(0).crash();
    let out = c[0].acquire("k", &opts(10_000, 5_000)).await;
    let after = g.acquired_at.elapsed();
    assert!(matches!(out, Outcome::Ok(_)), "{out:?}");
    // The server's clock and ours both count the lease; allow for the
    // round trip between our send and the server's NOW(6).
    assert!(
        after >= lease - Duration::from_millis(50),
        "taken {after:?} after a holder with a {lease:?} lease"
    );
    assert!(after < lease + Duration::from_secs(1), "{after:?}");
}

/// The table's release and renew see an expired row as not ours.
#[tokio::test]
async fn table_expired_row_is_not_held() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-table", &cluster, 1).await;
    let mut g = must_acquire(&mut c[0], "k", opts(200, 0)).await;
    assert_eq!(
        c[0].renew(&mut g, Duration::from_millis(300)).await,
        Outcome::Ok(())
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        c[0].renew(&mut g, Duration::from_millis(300)).await,
        Outcome::Fail(_)
    ));
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: false })
    );
}

/// Seed 003: the table recipe is non-reentrant; the holder's second
/// INSERT hits the unique index like anyone else's.
#[tokio::test]
async fn table_is_not_reentrant() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-table", &cluster, 1).await;
    let g = must_acquire(&mut c[0], "k", opts(10_000, 0)).await;
    match c[0].acquire("k", &opts(10_000, 200)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("the holder's second acquire must be busy: {other:?}"),
    }
    assert_eq!(
        c[0].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
}

/// The holder's connection dies: the server frees its lock at once.
async fn dropped_connection_frees_at_once(name: &str) {
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients(name, &cluster, 2).await;
    let g = must_acquire(&mut c[0], "k", opts(10_000, 0)).await;
    assert_eq!(g.lease, None, "{name} has no lease");
    assert!(matches!(
        c[1].acquire("k", &opts(10_000, 0)).await,
        Outcome::Fail(_)
    ));
    c.remove(0).crash();
    let started = Instant::now();
    let out = c[0].acquire("k", &opts(10_000, 5_000)).await;
    assert!(matches!(out, Outcome::Ok(_)), "{name}: {out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{name}: freed only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn get_lock_dropped_connection_frees_at_once() {
    if common::server_available(SERVER) {
        dropped_connection_frees_at_once("mysql-get-lock").await;
    }
}

#[tokio::test]
async fn for_update_dropped_connection_frees_at_once() {
    if common::server_available(SERVER) {
        dropped_connection_frees_at_once("mysql-for-update").await;
    }
}

/// The holder takes the lock again: granted at once, and the lock stays
/// until each guard is released. Both are documented:
/// - GET_LOCK may be set recursively by one connection, and a name set n
///   times must be released n times (https://mariadb.com/kb/en/get_lock/).
/// - An InnoDB exclusive row lock stops *other* transactions from locking
///   the row (https://mariadb.com/kb/en/innodb-lock-modes/), and FOR UPDATE
///   locks last until the transaction commits
///   (https://mariadb.com/kb/en/lock-in-share-mode/): the holding
///   transaction's second FOR UPDATE does not wait.
///
/// `mysql-table` is the opposite (seed 003: non-reentrant), tested above.
async fn reentrant_hold_counts(name: &str) {
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients(name, &cluster, 2).await;
    let outer = must_acquire(&mut c[0], "k", opts(10_000, 0)).await;
    let started = Instant::now();
    let inner = must_acquire(&mut c[0], "k", opts(10_000, 2_000)).await;
    assert!(started.elapsed() < Duration::from_millis(500), "{name}");
    assert!(inner.fence > outer.fence, "{name}");
    assert_eq!(
        c[0].release(&inner).await,
        Outcome::Ok(Released { was_held: true })
    );
    assert!(
        matches!(c[1].acquire("k", &opts(10_000, 0)).await, Outcome::Fail(_)),
        "{name}: the outer hold must remain"
    );
    assert_eq!(
        c[0].release(&outer).await,
        Outcome::Ok(Released { was_held: true })
    );
    let g = must_acquire(&mut c[1], "k", opts(10_000, 1_000)).await;
    assert_eq!(
        c[1].release(&g).await,
        Outcome::Ok(Released { was_held: true })
    );
}

#[tokio::test]
async fn get_lock_is_reentrant_and_counts() {
    if common::server_available(SERVER) {
        reentrant_hold_counts("mysql-get-lock").await;
    }
}

#[tokio::test]
async fn for_update_is_reentrant_in_its_transaction() {
    if common::server_available(SERVER) {
        reentrant_hold_counts("mysql-for-update").await;
    }
}

/// One client holds two keys and releases them separately: for-update
/// keeps one transaction (so one connection) per held key.
#[tokio::test]
async fn for_update_releases_keys_independently() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-for-update", &cluster, 2).await;
    let a = must_acquire(&mut c[0], "a", opts(10_000, 0)).await;
    let b = must_acquire(&mut c[0], "b", opts(10_000, 0)).await;
    assert_eq!(
        c[0].release(&a).await,
        Outcome::Ok(Released { was_held: true })
    );
    let a2 = must_acquire(&mut c[1], "a", opts(10_000, 0)).await;
    assert!(matches!(
        c[1].acquire("b", &opts(10_000, 0)).await,
        Outcome::Fail(_)
    ));
    assert!(a2.fence > b.fence && b.fence > a.fence);
    assert_eq!(
        c[0].release(&b).await,
        Outcome::Ok(Released { was_held: true })
    );
    assert_eq!(
        c[1].release(&a2).await,
        Outcome::Ok(Released { was_held: true })
    );
}

/// A busy FOR UPDATE waits whole seconds (MariaDB's `WAIT n`), rounded up.
#[tokio::test]
async fn for_update_busy_waits_the_timeout_rounded_up_to_seconds() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let cluster = mariadb(logs.path()).await;
    let mut c = clients("mysql-for-update", &cluster, 2).await;
    let _g = must_acquire(&mut c[0], "k", opts(10_000, 0)).await;
    let started = Instant::now();
    match c[1].acquire("k", &opts(10_000, 300)).await {
        Outcome::Fail(why) => assert!(why.starts_with("busy"), "{why}"),
        other => panic!("{other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

/// After a server kill and restart, each recipe's client reconnects by
/// itself for a later operation.
#[tokio::test]
async fn clients_reconnect_after_a_server_restart() {
    if !common::server_available(SERVER) {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let mut cluster = mariadb(logs.path()).await;
    let names = ["mysql-table", "mysql-for-update", "mysql-get-lock"];
    let mut all = Vec::new();
    for name in names {
        all.push(clients(name, &cluster, 1).await);
    }
    cluster.restart(0).await.unwrap();
    for (name, c) in names.iter().zip(all.iter_mut()) {
        let mut got = None;
        for _ in 0..3 {
            match c[0].acquire("r", &opts(10_000, 0)).await {
                Outcome::Ok(g) => {
                    got = Some(g);
                    break;
                }
                other => eprintln!("{name} right after the restart: {other:?}"),
            }
        }
        let g = got.unwrap_or_else(|| panic!("{name}: no reconnect after the restart"));
        assert_eq!(
            c[0].release(&g).await,
            Outcome::Ok(Released { was_held: true }),
            "{name}"
        );
    }
}

#[tokio::test]
async fn conformance_table_exclusion_and_release() {
    if common::server_available(SERVER) {
        common::conformance::exclusion_and_release("mysql-table").await;
    }
}

#[tokio::test]
async fn conformance_table_blocking_hand_off() {
    if common::server_available(SERVER) {
        common::conformance::blocking_hand_off("mysql-table").await;
    }
}

#[tokio::test]
async fn conformance_table_contended_run_is_valid() {
    if common::server_available(SERVER) {
        common::conformance::contended_run_is_valid("mysql-table").await;
    }
}

#[tokio::test]
async fn conformance_for_update_exclusion_and_release() {
    if common::server_available(SERVER) {
        common::conformance::exclusion_and_release("mysql-for-update").await;
    }
}

#[tokio::test]
async fn conformance_for_update_blocking_hand_off() {
    if common::server_available(SERVER) {
        common::conformance::blocking_hand_off("mysql-for-update").await;
    }
}

#[tokio::test]
async fn conformance_for_update_contended_run_is_valid() {
    if common::server_available(SERVER) {
        common::conformance::contended_run_is_valid("mysql-for-update").await;
    }
}

#[tokio::test]
async fn conformance_get_lock_exclusion_and_release() {
    if common::server_available(SERVER) {
        common::conformance::exclusion_and_release("mysql-get-lock").await;
    }
}

#[tokio::test]
async fn conformance_get_lock_blocking_hand_off() {
    if common::server_available(SERVER) {
        common::conformance::blocking_hand_off("mysql-get-lock").await;
    }
}

#[tokio::test]
async fn conformance_get_lock_contended_run_is_valid() {
    if common::server_available(SERVER) {
        common::conformance::contended_run_is_valid("mysql-get-lock").await;
    }
}
