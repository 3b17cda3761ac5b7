//! What every correct backend must do, against its real server. Each
//! backend's test file calls these, then tests what is particular to its
//! recipe.

use std::time::Duration;

use lockbench::Verdict;
use lockbench::backend::{self, AcquireOptions, ClientConfig, Guard, LockClient, Outcome};
use lockbench::cluster::Cluster;
use lockbench::run::{RunOptions, RunOutcome, harness, run_backend};
use lockbench::scenario::Scenario;

/// Starts the servers `name` needs (as many as it uses), logging into `logs`.
pub async fn cluster(name: &str, logs: &std::path::Path) -> Cluster {
    let info = backend::info(name).unwrap_or_else(|| panic!("unknown backend {name}"));
    let kind = info
        .server
        .unwrap_or_else(|| panic!("{name} has no server"));
    Cluster::start(kind, info.servers, logs)
        .await
        .unwrap_or_else(|e| panic!("{name}: cannot start its servers: {e}"))
}

/// `n` clients of `name` on `cluster`, each request bounded by 2 s.
pub async fn clients(name: &str, cluster: &Cluster, n: u64) -> Vec<Box<dyn LockClient>> {
    clients_with(name, cluster, n, Duration::from_secs(2)).await
}

/// `n` clients of `name` on `cluster` (ids 0..n), each request bounded by
/// `op_timeout`.
pub async fn clients_with(
    name: &str,
    cluster: &Cluster,
    n: u64,
    op_timeout: Duration,
) -> Vec<Box<dyn LockClient>> {
    let b = backend::build(name, cluster.endpoints())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut v = Vec::new();
    for id in 0..n {
        let config = ClientConfig {
            id,
            seed: id,
            op_timeout,
        };
        v.push(
            b.client(config)
                .await
                .unwrap_or_else(|e| panic!("{name}: client: {e}")),
        );
    }
    v
}

#[allow(unused_imports)]
pub use lockbench::run::harness::opts;

/// Acquires or panics with the outcome.
pub async fn must_acquire(c: &mut Box<dyn LockClient>, key: &str, o: AcquireOptions) -> Guard {
    match c.acquire(key, &o).await {
        Outcome::Ok(g) => g,
        other => panic!("acquire {key:?} must succeed: {other:?}"),
    }
}

/// A held key is not granted to another client, other keys are, a release
/// frees it, fences grow, and a stale guard's release does nothing
/// (`run::harness::exclusion_and_release`).
pub async fn exclusion_and_release(name: &str) {
    let logs = tempfile::tempdir().unwrap();
    let cluster = cluster(name, logs.path()).await;
    let mut c = clients(name, &cluster, 2).await;
    if let Err(why) = harness::exclusion_and_release(&mut c).await {
        panic!("{name}: {why}");
    }
}

/// A waiter blocked in acquire gets the lock soon after the holder
/// releases, well before its own timeout (`run::harness::blocking_hand_off`).
pub async fn blocking_hand_off(name: &str) {
    let logs = tempfile::tempdir().unwrap();
    let cluster = cluster(name, logs.path()).await;
    let c = clients(name, &cluster, 2).await;
    if let Err(why) = harness::blocking_hand_off(c).await {
        panic!("{name}: {why}");
    }
}

/// A short contended run through the real runner: the history must check
/// valid, with many acquisitions.
pub async fn contended_run_is_valid(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "backends = [\"{name}\"]\nduration = \"2s\"\nclients = 8\nhosts = 2\nkeys = 2\n\
         lease = \"10s\"\nhold = {{ min = \"1ms\", max = \"4ms\" }}\nthink = \"1ms\"\nacquire_timeout = \"5s\"\n"
    );
    let scenario = Scenario::parse(std::path::Path::new("conformance.toml"), &text).unwrap();
    let opts = RunOptions {
        out_dir: dir.path().to_path_buf(),
        require_backends: super::backends_required(),
        ..RunOptions::default()
    };
    match run_backend(&scenario, name, 1, &opts).await {
        Ok(RunOutcome::Completed { summary, .. }) => {
            assert_eq!(
                summary.verdict,
                Verdict::Valid,
                "{name}: {:?}",
                summary.witnesses
            );
            assert!(
                summary.acquire_latency_us.count >= 20,
                "{name}: only {} acquisitions in 2 s",
                summary.acquire_latency_us.count
            );
        }
        Ok(RunOutcome::Skipped { reason }) => panic!("{name}: skipped: {reason}"),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// One server of `kind` started by the cluster layer: it runs (as a process
/// whose command line holds `process`), logs into the run directory, and is
/// gone once its cluster is dropped. Returns the version it reported, for
/// the caller's own check.
pub async fn server_lifecycle(kind: lockbench::cluster::ServerKind, process: &str) -> String {
    let logs = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(kind, 1, logs.path())
        .await
        .unwrap_or_else(|e| panic!("{}: cannot start: {e}", kind.name()));
    let version = cluster.infos()[0].version.clone();
    let pid = cluster.pids()[0];
    assert!(
        super::process_alive(pid, process),
        "{} is not running",
        kind.name()
    );
    assert!(logs.path().join(format!("{}-1.log", kind.name())).exists());
    drop(cluster);
    assert!(
        !super::process_alive(pid, process),
        "{} outlived its cluster",
        kind.name()
    );
    version
}
