//! lockbench for a lock crate's author: run lockbench's conformance checks
//! and a contended, checked run against your own [`LockBackend`](crate::backend::LockBackend), from your
//! own `cargo test`.
//!
//! Describe your lock as a [`BackendInfo`] (its name, the server it needs,
//! how to build it over the servers' endpoints); lockbench starts the
//! server on a free loopback port, drives your clients, records the
//! history and checks it:
//!
//! ```no_run
//! use std::sync::Arc;
//! use lockbench::backend::{BackendInfo, LockBackend};
//! use lockbench::cluster::ServerKind;
//! use lockbench::run::harness;
//!
//! # async fn my_backend(eps: Vec<lockbench::cluster::Endpoint>)
//! #     -> lockbench::Result<Arc<dyn LockBackend>> { unimplemented!() }
//! # async fn test() -> lockbench::Result<()> {
//! let lock = BackendInfo::new("my-lock", Some(ServerKind::Redis), "SET NX PX", my_backend);
//! let report = harness::conformance(&lock).await?;
//! assert!(report.passed(), "{report}");
//! let out = tempfile::tempdir().unwrap();
//! let summary = harness::contended(&lock, &harness::Contended::in_dir(out.path())).await?;
//! assert_eq!(summary.verdict, lockbench::Verdict::Valid, "{:?}", summary.witnesses);
//! # Ok(()) }
//! ```
//!
//! `examples/my_lock.rs` is a whole one, on Redis.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::runner::{RunOptions, RunOutcome, run_with};
use crate::backend::{
    AcquireOptions, BackendInfo, ClientConfig, Guard, LockClient, Outcome, Released,
};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::scenario::Scenario;
use crate::summary::Summary;

/// One conformance check and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What it checks.
    pub name: &'static str,
    /// `Err` says what went wrong.
    pub outcome: std::result::Result<(), String>,
}

/// Every conformance check of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conformance {
    /// The lock's name.
    pub lock: String,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Conformance {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }
}

impl fmt::Display for Conformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            match &c.outcome {
                Ok(()) => writeln!(f, "{}: {}: ok", self.lock, c.name)?,
                Err(why) => writeln!(f, "{}: {}: FAILED: {why}", self.lock, c.name)?,
            }
        }
        Ok(())
    }
}

/// Acquire options: `lease_ms` lease, `timeout_ms` blocking timeout.
pub fn opts(lease_ms: u64, timeout_ms: u64) -> AcquireOptions {
    AcquireOptions {
        lease: Duration::from_millis(lease_ms),
        timeout: Duration::from_millis(timeout_ms),
    }
}

/// Starts the servers `lock` needs (none in-process), logging into `logs`.
pub async fn servers(lock: &BackendInfo, logs: &Path) -> Result<Cluster> {
    match lock.server {
        Some(kind) => Cluster::start(kind, lock.servers.max(1), logs).await,
        None => Ok(Cluster::none()),
    }
}

/// `n` clients of `lock` on `cluster` (ids 0..n), each request bounded by
/// `op_timeout`.
pub async fn clients(
    lock: &BackendInfo,
    cluster: &Cluster,
    n: u64,
    op_timeout: Duration,
) -> Result<Vec<Box<dyn LockClient>>> {
    let backend = lock.build(cluster.endpoints()).await?;
    let mut v = Vec::new();
    for id in 0..n {
        let config = ClientConfig {
            id,
            seed: id,
            op_timeout,
        };
        v.push(backend.client(config).await?);
    }
    Ok(v)
}

async fn acquired(
    c: &mut Box<dyn LockClient>,
    key: &str,
    o: AcquireOptions,
) -> std::result::Result<Guard, String> {
    match c.acquire(key, &o).await {
        Outcome::Ok(g) => Ok(g),
        other => Err(format!("acquire {key:?} must succeed: {other:?}")),
    }
}

fn expect<T: PartialEq + fmt::Debug>(
    got: T,
    want: T,
    what: &str,
) -> std::result::Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got:?}, not {want:?}"))
    }
}

/// A held key is not granted to another client, other keys are, a release
/// frees it, fences grow, and a stale guard's release does nothing and
/// says so.
pub async fn exclusion_and_release(
    c: &mut [Box<dyn LockClient>],
) -> std::result::Result<(), String> {
    let [a, b, ..] = c else {
        return Err("needs two clients".into());
    };
    let g1 = acquired(a, "k", opts(10_000, 0)).await?;
    match b.acquire("k", &opts(10_000, 300)).await {
        Outcome::Fail(_) => {}
        other => return Err(format!("a held lock must not be granted: {other:?}")),
    }
    let other = acquired(b, "other", opts(10_000, 0)).await?;
    expect(
        a.release(&g1).await,
        Outcome::Ok(Released { was_held: true }),
        "the holder's release",
    )?;
    let g2 = acquired(b, "k", opts(10_000, 2_000)).await?;
    if let (Some(x), Some(y)) = (g1.fence, g2.fence)
        && y <= x
    {
        return Err(format!("fences must grow: {x} then {y}"));
    }
    expect(
        a.release(&g1).await,
        Outcome::Ok(Released { was_held: false }),
        "a stale guard's release must do nothing and say so",
    )?;
    if !matches!(a.acquire("k", &opts(10_000, 200)).await, Outcome::Fail(_)) {
        return Err("the stale release must not have freed the new holder's lock".into());
    }
    expect(
        b.release(&g2).await,
        Outcome::Ok(Released { was_held: true }),
        "the new holder's release",
    )?;
    expect(
        b.release(&other).await,
        Outcome::Ok(Released { was_held: true }),
        "the other key's release",
    )
}

/// A waiter blocked in acquire gets the lock after the holder releases,
/// not before, and well before its own timeout.
pub async fn blocking_hand_off(mut c: Vec<Box<dyn LockClient>>) -> std::result::Result<(), String> {
    let (Some(mut waiter), Some(mut holder)) = (c.pop(), c.pop()) else {
        return Err("needs two clients".into());
    };
    let g = acquired(&mut holder, "k", opts(10_000, 0)).await?;
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let out = waiter.acquire("k", &opts(10_000, 8_000)).await;
        (out, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    expect(
        holder.release(&g).await,
        Outcome::Ok(Released { was_held: true }),
        "the holder's release",
    )?;
    let (out, waited) = task
        .await
        .map_err(|e| format!("the waiter panicked: {e}"))?;
    if !matches!(out, Outcome::Ok(_)) {
        return Err(format!("the waiter must get the lock: {out:?}"));
    }
    if waited < Duration::from_millis(290) {
        return Err(format!("granted while held ({waited:?})"));
    }
    if released_at.elapsed() >= Duration::from_secs(3) {
        return Err(format!("hand-off took {:?}", released_at.elapsed()));
    }
    Ok(())
}

/// Runs every conformance check of `lock` on servers started for it.
/// `Err` only when the servers or clients cannot start.
pub async fn conformance(lock: &BackendInfo) -> Result<Conformance> {
    let logs = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let mut checks = Vec::new();
    let cluster = servers(lock, logs.path()).await?;
    let mut c = clients(lock, &cluster, 2, Duration::from_secs(2)).await?;
    checks.push(Check {
        name: "exclusion and release",
        outcome: exclusion_and_release(&mut c).await,
    });
    drop(c);
    drop(cluster);
    let cluster = servers(lock, logs.path()).await?;
    let c = clients(lock, &cluster, 2, Duration::from_secs(2)).await?;
    checks.push(Check {
        name: "blocking hand-off",
        outcome: blocking_hand_off(c).await,
    });
    Ok(Conformance {
        lock: lock.name.clone(),
        checks,
    })
}

/// How [`contended`] runs.
#[derive(Debug, Clone)]
pub struct Contended {
    /// Clients contending.
    pub clients: u32,
    /// Hosts they are grouped into.
    pub hosts: u32,
    /// Keys they contend for.
    pub keys: u32,
    /// How long.
    pub duration: Duration,
    /// The run's seed.
    pub seed: u64,
    /// Where the run directory goes.
    pub out_dir: PathBuf,
}

impl Contended {
    /// 8 clients in 2 hosts on 2 keys for 2 s, seed 1, under `out_dir`.
    pub fn in_dir(out_dir: &Path) -> Self {
        Contended {
            clients: 8,
            hosts: 2,
            keys: 2,
            duration: Duration::from_secs(2),
            seed: 1,
            out_dir: out_dir.to_path_buf(),
        }
    }
}

/// A contended run of `lock` through lockbench's runner: servers started,
/// clients contending with short holds, the history recorded and checked,
/// `summary.json` and the report written under `how.out_dir`. The summary
/// says the verdict, with witnesses.
pub async fn contended(lock: &BackendInfo, how: &Contended) -> Result<Summary> {
    let text = format!(
        "name = \"harness\"\nbackends = [\"inproc\"]\nduration = \"{}ms\"\nclients = {}\n\
         hosts = {}\nkeys = {}\nlease = \"10s\"\nhold = {{ min = \"1ms\", max = \"4ms\" }}\n\
         think = \"1ms\"\nacquire_timeout = \"5s\"\n",
        how.duration.as_millis(),
        how.clients,
        how.hosts,
        how.keys,
    );
    let mut scenario = Scenario::parse(Path::new("harness.toml"), &text)?;
    scenario.backends = vec![lock.name.clone()];
    scenario.name = lock.name.clone();
    let opts = RunOptions {
        out_dir: how.out_dir.clone(),
        require_backends: true,
        ..RunOptions::default()
    };
    match run_with(&scenario, lock, how.seed, &opts).await? {
        RunOutcome::Completed { summary, .. } => Ok(*summary),
        RunOutcome::Skipped { reason } => Err(Error::Backend {
            backend: lock.name.clone(),
            endpoint: String::new(),
            message: reason,
        }),
    }
}
