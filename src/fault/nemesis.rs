//! The nemesis: runs a scenario's fault timeline against the run's links
//! and servers, and records every fault's start and end in the history.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Direction, Proxy};
use crate::cluster::{Cluster, Endpoint};
use crate::error::{Error, Result};
use crate::history::{Clock, Event, F, OpType, Process, RecorderHandle};
use crate::scenario::{FaultKind, FaultSpec};
use crate::summary::FaultRecord;

/// One proxy per (host, server): every connection from a host's clients to
/// a server goes through its own link, so a fault can cut one host off.
#[derive(Debug)]
pub struct Links {
    /// `per_host[h][s]`: host `h`'s link to server `s`.
    per_host: Vec<Vec<Proxy>>,
}

impl Links {
    /// Starts a proxy for each of `hosts` hosts to each endpoint (which must
    /// resolve to loopback addresses).
    pub async fn start(endpoints: &[Endpoint], hosts: usize, seed: u64) -> Result<Links> {
        let mut per_host = Vec::with_capacity(hosts);
        for h in 0..hosts {
            let mut links = Vec::with_capacity(endpoints.len());
            for (s, ep) in endpoints.iter().enumerate() {
                let addr = resolve(&ep.addr).await?;
                let seed = seed ^ ((h as u64) << 32) ^ s as u64;
                links.push(Proxy::start(addr, seed).await?);
            }
            per_host.push(links);
        }
        Ok(Links { per_host })
    }

    /// The endpoints host `h`'s clients use: its proxies, in server order.
    pub fn endpoints_for(&self, h: usize, servers: &[Endpoint]) -> Vec<Endpoint> {
        self.per_host[h]
            .iter()
            .zip(servers)
            .map(|(p, ep)| Endpoint {
                name: ep.name.clone(),
                addr: p.addr().to_string(),
            })
            .collect()
    }

    /// Removes every fault from every link.
    pub fn heal_all(&self) {
        for p in self.per_host.iter().flatten() {
            p.heal();
        }
    }

    fn apply(&self, hosts: &[usize], kind: FaultKind) {
        for &h in hosts {
            for p in self.per_host.get(h).into_iter().flatten() {
                match kind {
                    FaultKind::Partition => p.partition(),
                    FaultKind::PartitionReset => p.reset(),
                    FaultKind::PartitionOneWay(dir) => p.blackhole(dir),
                    FaultKind::Latency { delay, jitter } => {
                        p.latency(Direction::Upstream, delay, jitter);
                        p.latency(Direction::Downstream, delay, jitter);
                    }
                    FaultKind::Bandwidth(rate) => {
                        p.bandwidth(Direction::Upstream, rate);
                        p.bandwidth(Direction::Downstream, rate);
                    }
                    FaultKind::KillServer | FaultKind::PauseServer => {}
                }
            }
        }
    }

    fn heal(&self, hosts: &[usize]) {
        for &h in hosts {
            for p in self.per_host.get(h).into_iter().flatten() {
                p.heal();
            }
        }
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr> {
    let mut found = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| Error::io(addr, e))?;
    found.next().ok_or_else(|| Error::Backend {
        backend: "proxy".into(),
        endpoint: addr.into(),
        message: "the address does not resolve".into(),
    })
}

/// What the nemesis works on.
#[derive(Clone)]
pub struct Targets {
    /// The hosts' links, when the timeline has network faults.
    pub links: Option<Arc<Links>>,
    /// The servers lockbench started.
    pub servers: Arc<tokio::sync::Mutex<Cluster>>,
    /// Number of hosts.
    pub hosts: usize,
}

/// Runs `plan` from the clients' start until `stop`; returns what was
/// injected. Every fault ends by its duration or at `stop`, whichever is
/// first, and is undone (healed, resumed, restarted) before this returns.
pub async fn run(
    plan: Vec<FaultSpec>,
    targets: Targets,
    recorder: RecorderHandle,
    clock: Clock,
    stop: CancellationToken,
) -> Vec<FaultRecord> {
    let records = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let start = tokio::time::Instant::from_std(clock.started());
    for spec in plan {
        let (targets, recorder, stop, records) = (
            targets.clone(),
            recorder.clone(),
            stop.clone(),
            records.clone(),
        );
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(start + spec.at) => {}
                _ = stop.cancelled() => return,
            }
            let (start_name, stop_name) = spec.kind.event_names();
            let on = if spec.kind.on_servers() {
                let n = targets.servers.lock().await.servers().len();
                spec.target_indices(n)
            } else {
                spec.target_indices(targets.hosts)
            };
            let names: Vec<String> = on
                .iter()
                .map(|i| {
                    if spec.kind.on_servers() {
                        format!("server-{}", i + 1)
                    } else {
                        format!("h{}", i + 1)
                    }
                })
                .collect();
            let applied = apply(&spec, &on, &targets).await;
            let started_ns = clock.now_ns();
            record(&recorder, start_name, &names, applied.as_ref().err()).await;
            if applied.is_ok() {
                tokio::select! {
                    _ = tokio::time::sleep(spec.duration) => {}
                    _ = stop.cancelled() => {}
                }
            }
            let undone = undo(&spec, &on, &targets).await;
            record(&recorder, stop_name, &names, undone.as_ref().err()).await;
            if let Ok(mut r) = records.lock() {
                r.push(FaultRecord {
                    fault: spec.kind.name().to_string(),
                    start_ns: started_ns,
                    end_ns: Some(clock.now_ns()),
                    targets: names,
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if let Some(links) = &targets.links {
        links.heal_all();
    }
    let mut out = records.lock().map(|r| r.clone()).unwrap_or_default();
    out.sort_by_key(|r| r.start_ns);
    out
}

async fn record(recorder: &RecorderHandle, name: &str, targets: &[String], error: Option<&String>) {
    let mut e = Event::new(
        0,
        Process::Nemesis,
        OpType::Info,
        F::Fault(name.to_string()),
    );
    e.value = Some(serde_json::json!({ "targets": targets }));
    e.error = error.cloned();
    recorder.record(e).await;
}

async fn apply(
    spec: &FaultSpec,
    on: &[usize],
    targets: &Targets,
) -> std::result::Result<(), String> {
    match spec.kind {
        FaultKind::KillServer => {
            let mut cluster = targets.servers.lock().await;
            for &i in on {
                cluster.kill(i).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        FaultKind::PauseServer => {
            let cluster = targets.servers.lock().await;
            for &i in on {
                cluster
                    .signal(i, libc::SIGSTOP)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        kind => match &targets.links {
            Some(links) => {
                links.apply(on, kind);
                Ok(())
            }
            None => {
                Err("no links to fault: this backend's clients do not go through proxies".into())
            }
        },
    }
}

async fn undo(
    spec: &FaultSpec,
    on: &[usize],
    targets: &Targets,
) -> std::result::Result<(), String> {
    match spec.kind {
        FaultKind::KillServer => {
            let mut cluster = targets.servers.lock().await;
            for &i in on {
                // Bounded: a restart waits at most the kind's start timeout.
                cluster.restart(i).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        FaultKind::PauseServer => {
            let cluster = targets.servers.lock().await;
            for &i in on {
                cluster
                    .signal(i, libc::SIGCONT)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        _ => {
            if let Some(links) = &targets.links {
                links.heal(on);
            }
            Ok(())
        }
    }
}

/// How long undoing a fault may take at the end of a run (a restart).
pub const UNDO_GRACE: Duration = Duration::from_secs(40);
