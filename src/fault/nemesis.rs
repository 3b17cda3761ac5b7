//! The nemesis: runs a scenario's fault timeline against the run's links
//! and servers, and records every fault's start and end in the history.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{FaultKind, FaultSpec, ToxiPlan};
use crate::cluster::hooks::HookRun;
use crate::cluster::{Cluster, Endpoint};
use crate::error::{Error, Result};
use crate::history::{Clock, Event, F, OpType, Process, RecorderHandle};
use crate::net::toxiproxy::Toxiproxy;
use crate::net::{Direction, LinkState, Proxy};
use crate::summary::FaultRecord;
use crate::workload::ClientSlot;

/// One proxy per (host, server): every connection from a host's clients to
/// a server goes through its own link, so a fault can cut one host off.
#[derive(Debug)]
pub struct Links {
    /// `per_host[h][s]`: host `h`'s link to server `s`.
    per_host: Vec<Vec<Proxy>>,
    /// Per host: the network faults active on its links, by token.
    active: Mutex<Vec<Vec<(u64, FaultKind)>>>,
    /// The next fault's token.
    next: std::sync::atomic::AtomicU64,
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
        Ok(Links {
            active: Mutex::new(vec![Vec::new(); per_host.len()]),
            per_host,
            next: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The endpoints host `h`'s clients use: its proxies, in server order.
    pub fn endpoints_for(&self, h: usize, servers: &[Endpoint]) -> Vec<Endpoint> {
        self.per_host[h]
            .iter()
            .zip(servers)
            .map(|(p, ep)| Endpoint {
                name: ep.name.clone(),
                addr: p.addr().to_string(),
                announced: ep.announced.clone(),
            })
            .collect()
    }

    /// Removes every fault from every link.
    pub fn heal_all(&self) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.iter_mut().for_each(Vec::clear);
        for p in self.per_host.iter().flatten() {
            p.heal();
        }
    }

    /// Adds `kind` to the hosts' links; the token ends it in [`heal`].
    fn apply(&self, hosts: &[usize], kind: FaultKind) -> u64 {
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        for &h in hosts {
            if let Some(list) = active.get_mut(h) {
                list.push((token, kind));
                self.set_host(h, list);
            }
        }
        token
    }

    /// Ends the fault `token` on the hosts' links; faults still active on
    /// them stay (two overlapping faults end each at its own time).
    fn heal(&self, hosts: &[usize], token: u64) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        for &h in hosts {
            if let Some(list) = active.get_mut(h) {
                list.retain(|(t, _)| *t != token);
                self.set_host(h, list);
            }
        }
    }

    /// Sets host `h`'s links to the sum of its active faults, in one step.
    fn set_host(&self, h: usize, faults: &[(u64, FaultKind)]) {
        let mut state = LinkState::default();
        for (_, kind) in faults {
            add_fault(&mut state, *kind);
        }
        for p in self.per_host.get(h).into_iter().flatten() {
            p.set(state);
        }
    }
}

/// What a network fault does to a link's state. Latency and bandwidth of
/// a later fault replace an earlier one's; blackholes and resets add up.
fn add_fault(state: &mut LinkState, kind: FaultKind) {
    match kind {
        // A paused client's links carry nothing, as a stopped process
        // sends and reads nothing.
        FaultKind::Partition | FaultKind::PauseClient => {
            state.upstream.blackhole = true;
            state.downstream.blackhole = true;
        }
        FaultKind::PartitionReset => state.reset = true,
        FaultKind::PartitionOneWay(Direction::Upstream) => state.upstream.blackhole = true,
        FaultKind::PartitionOneWay(Direction::Downstream) => state.downstream.blackhole = true,
        FaultKind::Latency { delay, jitter } => {
            for t in [&mut state.upstream, &mut state.downstream] {
                t.latency = delay;
                t.jitter = jitter;
            }
        }
        FaultKind::Bandwidth(rate) => {
            for t in [&mut state.upstream, &mut state.downstream] {
                t.bandwidth = Some(rate.max(1));
            }
        }
        FaultKind::KillServer
        | FaultKind::PauseServer
        | FaultKind::CrashClient
        | FaultKind::ClockSkew(_)
        | FaultKind::ClockDrift(_)
        | FaultKind::IsolateServer
        | FaultKind::Bridge => {}
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
    /// The clients' slots, by slot index (slot `i` is on host `i % hosts`).
    pub slots: Arc<Vec<Arc<ClientSlot>>>,
    /// Draws "holder" targets.
    pub seed: u64,
    /// The driver process of each host, for a driver backend (empty for
    /// lockbench's own recipes): client faults act on these processes.
    pub processes: Vec<Arc<crate::cluster::driver::DriverProcess>>,
    /// The user's Toxiproxy in front of a deployment's members: network
    /// faults become toxics there instead of acting on `links`.
    pub toxi: Option<Arc<ToxiLinks>>,
    /// Where a deployment's hooks write their output (the run directory).
    pub hook_logs: std::path::PathBuf,
    /// Numbers the hooks' log files.
    pub hook_seq: Arc<std::sync::atomic::AtomicU64>,
}

impl Targets {
    /// For a driver backend, a client fault hits the host's process and so
    /// every client of that host: `v` grown to whole hosts.
    fn whole_hosts(&self, v: &[usize]) -> Vec<usize> {
        if self.processes.is_empty() {
            return v.to_vec();
        }
        let hosts: Vec<usize> = v
            .iter()
            .filter_map(|&i| self.slots.get(i))
            .map(|s| s.host)
            .collect();
        (0..self.slots.len())
            .filter(|&i| hosts.contains(&self.slots[i].host))
            .collect()
    }

    /// The driver processes of the hosts of slots `v`.
    fn processes_of(&self, v: &[usize]) -> Vec<&Arc<crate::cluster::driver::DriverProcess>> {
        let mut hosts: Vec<usize> = v
            .iter()
            .filter_map(|&i| self.slots.get(i))
            .map(|s| s.host)
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
            .iter()
            .filter_map(|&h| self.processes.get(h))
            .collect()
    }
}

/// What one fault acts on, resolved when it starts.
#[derive(Debug, Clone, PartialEq)]
enum On {
    Hosts(Vec<usize>),
    Servers(Vec<usize>),
    /// Client slots (and, for a pause, their hosts' links).
    Slots(Vec<usize>),
}

impl On {
    fn names(&self, slots: &[Arc<ClientSlot>]) -> Vec<String> {
        match self {
            On::Hosts(h) => h.iter().map(|i| format!("h{}", i + 1)).collect(),
            On::Servers(s) => s.iter().map(|i| format!("server-{}", i + 1)).collect(),
            On::Slots(v) => v
                .iter()
                .filter_map(|&i| slots.get(i))
                .map(|s| format!("c{}", s.id.load(std::sync::atomic::Ordering::Relaxed)))
                .collect(),
        }
    }

    fn hosts(&self, slots: &[Arc<ClientSlot>]) -> Vec<usize> {
        match self {
            On::Hosts(h) => h.clone(),
            On::Servers(_) => Vec::new(),
            On::Slots(v) => {
                let mut h: Vec<usize> = v
                    .iter()
                    .filter_map(|&i| slots.get(i))
                    .map(|s| s.host)
                    .collect();
                h.sort_unstable();
                h.dedup();
                h
            }
        }
    }
}

/// Waits (at most `patience`) for some client to hold a lock, and draws
/// one of the holders.
async fn pick_holder(
    slots: &[Arc<ClientSlot>],
    rng: &mut StdRng,
    patience: Duration,
) -> Option<usize> {
    let until = tokio::time::Instant::now() + patience;
    loop {
        let holders: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].is_holding())
            .collect();
        if !holders.is_empty() {
            return Some(holders[rng.random_range(0..holders.len())]);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The servers a server fault targets, with their names for the history:
/// `server-N`, and in a replicated topology the role each member had when
/// the fault started (`server-2 (leader)`). Role targets are resolved by
/// asking the servers now.
async fn resolve_servers(
    spec: &FaultSpec,
    cluster: &Cluster,
    rng: &mut StdRng,
) -> std::result::Result<(Vec<usize>, Vec<String>), String> {
    use crate::cluster::topology::{Role, Shape};
    let n = cluster.member_count();
    let roles = cluster.roles().await;
    let mut set = spec.target_indices(n);
    let mut leader = None;
    for t in &spec.targets {
        let role_target = t.as_str();
        if let Some((primary, key)) = super::shard_target(role_target) {
            let (p, replicas) = cluster.shard_of(key).await?;
            if primary {
                set.push(p);
            } else if replicas.is_empty() {
                return Err(format!("the primary of {key:?} has no replica"));
            } else {
                set.push(replicas[rng.random_range(0..replicas.len())]);
            }
            continue;
        }
        if !super::ROLE_TARGETS.contains(&role_target) {
            continue;
        }
        if matches!(role_target, "leader" | "primary" | "follower" | "followers") {
            leader = Some(match leader {
                Some(l) => l,
                None => cluster.leader().await.map_err(|why| match &roles {
                    Some(r) => format!("{why}: roles {r:?}"),
                    None => why,
                })?,
            });
        }
        let others = |l: usize| (0..n).filter(move |&i| i != l);
        match (role_target, leader) {
            ("leader" | "primary", Some(l)) => set.push(l),
            ("follower", Some(l)) => {
                let pool: Vec<usize> = others(l).collect();
                if pool.is_empty() {
                    return Err("no follower: the leader is the only member".into());
                }
                set.push(pool[rng.random_range(0..pool.len())]);
            }
            ("followers", Some(l)) => set.extend(others(l)),
            ("minority" | "majority", _) => {
                let k = if role_target == "minority" {
                    ((n.saturating_sub(1)) / 2).max(1)
                } else {
                    n / 2 + 1
                };
                let mut pool: Vec<usize> = (0..n).collect();
                for _ in 0..k.min(n) {
                    set.push(pool.swap_remove(rng.random_range(0..pool.len())));
                }
            }
            _ => {}
        }
    }
    set.sort_unstable();
    set.dedup();
    // Redis says primary and replica.
    let redis = matches!(
        cluster.shape(),
        Some(Shape::Sentinel { .. } | Shape::RedisCluster { .. })
    );
    let names = set
        .iter()
        .map(|&i| {
            let role = roles.as_ref().and_then(|r| r.get(i)).map(|r| match r {
                Role::Leader if redis => "primary",
                Role::Leader => "leader",
                Role::Follower if redis => "replica",
                Role::Follower => "follower",
                Role::NotServing(_) => "not serving",
                Role::Down(_) => "down",
            });
            // A deployment's members go by the names the scenario gave.
            let name = cluster
                .hooked()
                .and_then(|d| d.data_members().get(i).map(|m| m.name.clone()))
                .unwrap_or_else(|| format!("server-{}", i + 1));
            match role {
                Some(role) => format!("{name} ({role})"),
                None => name,
            }
        })
        .collect();
    Ok((set, names))
}

/// What `spec` acts on, and the names the history gives its targets.
async fn resolve_targets(
    spec: &FaultSpec,
    targets: &Targets,
    rng: &mut StdRng,
) -> std::result::Result<(On, Vec<String>), String> {
    if spec.kind.on_servers() {
        let cluster = targets.servers.lock().await;
        let (set, names) = resolve_servers(spec, &cluster, rng).await?;
        return Ok((On::Servers(set), names));
    }
    let on = resolve_client_targets(spec, targets, rng).await?;
    let names = on.names(&targets.slots);
    Ok((on, names))
}

async fn resolve_client_targets(
    spec: &FaultSpec,
    targets: &Targets,
    rng: &mut StdRng,
) -> std::result::Result<On, String> {
    let holder = spec.targets.iter().any(|t| t == "holder");
    let slots = &targets.slots;
    if spec.kind.on_clients() {
        if holder {
            let patience = spec.duration.min(Duration::from_secs(2));
            return match pick_holder(slots, rng, patience).await {
                Some(i) => Ok(On::Slots(targets.whole_hosts(&[i]))),
                None => Err(format!("no client held a lock within {patience:?}")),
            };
        }
        let hosts = spec.target_indices(targets.hosts);
        return Ok(On::Slots(
            (0..slots.len())
                .filter(|i| hosts.contains(&slots[*i].host))
                .collect(),
        ));
    }
    if holder {
        let patience = spec.duration.min(Duration::from_secs(2));
        return match pick_holder(slots, rng, patience).await {
            Some(i) => Ok(On::Hosts(vec![slots[i].host])),
            None => Err(format!("no client held a lock within {patience:?}")),
        };
    }
    Ok(On::Hosts(spec.target_indices(targets.hosts)))
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
            let mut rng = StdRng::seed_from_u64(targets.seed ^ spec.at.as_nanos() as u64);
            let resolved = resolve_targets(&spec, &targets, &mut rng).await;
            let (on, names) = resolved
                .clone()
                .unwrap_or((On::Hosts(Vec::new()), Vec::new()));
            // A deployment lockbench did not start: its hooks act on it.
            let hooked = spec.kind.on_servers() && targets.servers.lock().await.hooked().is_some();
            let (applied, mut hook_runs, hooked_on) =
                start_fault(&spec, &on, resolved.map(|_| ()), &targets, hooked).await;
            stamp(&mut hook_runs, clock);
            let started_ns = clock.now_ns();
            let fault = spec.kind.name();
            let mark = |edge: &str, runs: &[HookRun]| {
                let mut m = serde_json::json!({ "fault": fault, "edge": edge });
                if hooked {
                    m["hooks"] = serde_json::json!(runs);
                }
                if let (Some(toxi), true) = (&targets.toxi, spec.kind.needs_links()) {
                    m["via"] = serde_json::json!(format!("toxiproxy {}", toxi.api()));
                }
                m
            };
            record(
                &recorder,
                start_name,
                &names,
                mark("start", &hook_runs),
                applied.as_ref().err(),
            )
            .await;
            if applied.is_ok() {
                tokio::select! {
                    _ = tokio::time::sleep(spec.duration) => {}
                    _ = stop.cancelled() => {}
                }
            }
            // A restart takes a while (a ZooKeeper member rejoins its
            // quorum): its end is an invoke when it begins and an info when
            // it is done, as docs/design.md allows, so checkers time the fault's
            // end from the moment the server was started again.
            let slow_undo = spec.kind == FaultKind::KillServer && applied.is_ok();
            if slow_undo {
                record_as(
                    &recorder,
                    OpType::Invoke,
                    stop_name,
                    &names,
                    mark("stop", &[]),
                    None,
                )
                .await;
            }
            let (undone, mut undo_runs) =
                end_fault(&spec, &on, &applied, hooked_on, &targets, hooked).await;
            stamp(&mut undo_runs, clock);
            record(
                &recorder,
                stop_name,
                &names,
                mark("stop", &undo_runs),
                undone.as_ref().err(),
            )
            .await;
            if let Ok(mut r) = records.lock() {
                r.push(FaultRecord {
                    fault: spec.kind.name().to_string(),
                    start_ns: started_ns,
                    end_ns: Some(clock.now_ns()),
                    targets: names,
                    error: applied.err().or(undone.err()),
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if let Some(links) = &targets.links {
        links.heal_all();
    }
    if let Some(toxi) = &targets.toxi {
        toxi.heal_all().await;
    }
    let mut out = records.lock().map(|r| r.clone()).unwrap_or_default();
    out.sort_by_key(|r| r.start_ns);
    out
}

/// Puts each hook's return on the run's clock, for the history.
fn stamp(runs: &mut [HookRun], clock: Clock) {
    for r in runs {
        r.returned_ns = r.returned.map(|t| clock.ns_at(t));
    }
}

/// What a fault's start did: the token that ends it (or why it did not
/// happen), the hooks it ran, and the members whose hook succeeded.
type Started = (
    std::result::Result<Option<u64>, String>,
    Vec<HookRun>,
    Vec<usize>,
);

/// Starts `spec` on `on` (`resolved`: whether its targets were found): by
/// the deployment's hooks when `hooked`, else by lockbench's own means.
async fn start_fault(
    spec: &FaultSpec,
    on: &On,
    resolved: std::result::Result<(), String>,
    targets: &Targets,
    hooked: bool,
) -> Started {
    match resolved {
        Ok(()) if hooked => {
            let (done, runs) = by_hooks(spec, on, targets, true, None).await;
            let failed = runs.iter().find_map(|r| r.error.clone());
            (failed.map_or(Ok(None), Err), runs, done)
        }
        Ok(()) => (apply(spec, on, targets).await, Vec::new(), Vec::new()),
        Err(why) => (Err(why), Vec::new(), Vec::new()),
    }
}

/// Ends `spec`: hooks are undone on every member they acted on
/// (`hooked_on`), even when they failed on another; lockbench's own
/// faults are undone if they started.
async fn end_fault(
    spec: &FaultSpec,
    on: &On,
    applied: &std::result::Result<Option<u64>, String>,
    hooked_on: Vec<usize>,
    targets: &Targets,
    hooked: bool,
) -> (std::result::Result<(), String>, Vec<HookRun>) {
    match applied {
        _ if hooked => {
            let (_, runs) = by_hooks(spec, on, targets, false, Some(&hooked_on)).await;
            let failed = runs.iter().find_map(|r| r.error.clone());
            (failed.map_or(Ok(()), Err), runs)
        }
        Ok(token) => (undo(spec, on, targets, *token).await, Vec::new()),
        Err(_) => (Ok(()), Vec::new()),
    }
}

/// The user's Toxiproxy proxies in front of a deployment's members. A
/// Toxiproxy proxy serves every client alike, so a network fault through
/// it reaches every host's clients, whichever host it targets.
#[derive(Debug)]
pub struct ToxiLinks {
    api: Toxiproxy,
    proxies: Vec<String>,
    /// Faults in force, by token, so that the end of the run removes what
    /// a failed undo left.
    active: Mutex<std::collections::BTreeMap<u64, FaultKind>>,
    next: std::sync::atomic::AtomicU64,
}

impl ToxiLinks {
    /// The proxies `proxies` of the Toxiproxy at `api`; checks that the
    /// API answers and has every one of them.
    pub async fn connect(api: &str, proxies: Vec<String>) -> Result<ToxiLinks> {
        let api = Toxiproxy::new(api);
        let err = |message: String| Error::Backend {
            backend: "toxiproxy".into(),
            endpoint: api.api().to_string(),
            message,
        };
        api.version().await.map_err(err)?;
        for p in &proxies {
            api.proxy(p)
                .await
                .map_err(|e| err(format!("{e} (is proxy {p:?} created?)")))?;
        }
        Ok(ToxiLinks {
            api,
            proxies,
            active: Mutex::new(Default::default()),
            next: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// Where its API is, for the history.
    pub fn api(&self) -> &str {
        self.api.api()
    }

    /// Starts a network fault on every proxy; the token that ends it.
    async fn apply(&self, kind: FaultKind) -> std::result::Result<u64, String> {
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut a) = self.active.lock() {
            a.insert(token, kind);
        }
        match kind.toxiproxy(&format!("lockbench-{token}")) {
            ToxiPlan::Disable => {
                for p in &self.proxies {
                    self.api.set_enabled(p, false).await?;
                }
            }
            ToxiPlan::Toxics(toxics) => {
                for p in &self.proxies {
                    for t in &toxics {
                        self.api.add(p, t).await?;
                    }
                }
            }
            ToxiPlan::Nothing => {
                return Err(format!("Toxiproxy has no toxic for {}", kind.name()));
            }
        }
        Ok(token)
    }

    /// Ends the fault `token` started, on every proxy (every step tried;
    /// the first error returned).
    async fn heal(&self, token: u64) -> std::result::Result<(), String> {
        let kind = self.active.lock().ok().and_then(|mut a| a.remove(&token));
        let Some(kind) = kind else {
            return Ok(());
        };
        let mut first = Ok(());
        let mut keep = |r: std::result::Result<(), String>| {
            if first.is_ok() {
                first = r;
            }
        };
        match kind.toxiproxy(&format!("lockbench-{token}")) {
            ToxiPlan::Disable => {
                for p in &self.proxies {
                    keep(self.api.set_enabled(p, true).await);
                }
            }
            ToxiPlan::Toxics(toxics) => {
                for p in &self.proxies {
                    for t in &toxics {
                        keep(self.api.remove(p, &t.name).await);
                    }
                }
            }
            ToxiPlan::Nothing => {}
        }
        first
    }

    /// Ends every fault still in force (the end of a run).
    async fn heal_all(&self) {
        let tokens: Vec<u64> = self
            .active
            .lock()
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default();
        for t in tokens {
            if let Err(e) = self.heal(t).await {
                tracing::warn!("toxiproxy at {}: {e}", self.api());
            }
        }
    }
}

/// Records a nemesis event: its name, its targets, and `mark` (the fault
/// it starts or stops, and which: docs/design.md, "history v1").
async fn record(
    recorder: &RecorderHandle,
    name: &str,
    targets: &[String],
    mark: serde_json::Value,
    error: Option<&String>,
) {
    record_as(recorder, OpType::Info, name, targets, mark, error).await;
}

async fn record_as(
    recorder: &RecorderHandle,
    kind: OpType,
    name: &str,
    targets: &[String],
    mut mark: serde_json::Value,
    error: Option<&String>,
) {
    let mut e = Event::new(0, Process::Nemesis, kind, F::Fault(name.to_string()));
    mark["targets"] = serde_json::json!(targets);
    e.value = Some(mark);
    e.error = error.cloned();
    recorder.record(e).await;
}

/// Starts (`start`) or ends a server fault on a deployment lockbench did not
/// start, through its hooks, member by member in the order of
/// [`hook_plan`]; a start stops at the first hook that fails, an end acts
/// only on the members in `only` (those whose start hook succeeded). The
/// members whose hook succeeded, and every hook's run.
async fn by_hooks(
    spec: &FaultSpec,
    on: &On,
    targets: &Targets,
    start: bool,
    only: Option<&[usize]>,
) -> (Vec<usize>, Vec<HookRun>) {
    let On::Servers(set) = on else {
        return (Vec::new(), Vec::new());
    };
    let Some(deployment) = targets.servers.lock().await.hooked().cloned() else {
        return (Vec::new(), Vec::new());
    };
    let (mut done, mut runs) = (Vec::new(), Vec::new());
    let Some((begin, end, extra)) = spec.kind.hook_actions() else {
        return (done, runs);
    };
    let action = if start { begin } else { end };
    let members = deployment.data_members();
    for (i, peers) in hook_plan(spec.kind, set, &deployment) {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        let Some(member) = members.get(i) else {
            continue;
        };
        let seq = targets
            .hook_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut vars = extra.clone();
        vars.extend(peer_vars(&peers));
        let run = deployment
            .hooks
            .run(action, member, &vars, &targets.hook_logs, seq + 1)
            .await;
        let failed = run.error.is_some();
        runs.push(run);
        if !failed {
            done.push(i);
        } else if start {
            break;
        }
    }
    (done, runs)
}

/// `{peers}` (their hosts, each once) and `{peer_addrs}`, comma-separated.
pub fn peer_vars(peers: &[&crate::cluster::hooks::Member]) -> Vec<(&'static str, String)> {
    let mut hosts: Vec<&str> = peers
        .iter()
        .map(|p| p.addr.rsplit_once(':').map_or(p.addr.as_str(), |(h, _)| h))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    let addrs: Vec<&str> = peers.iter().map(|p| p.addr.as_str()).collect();
    vec![("peers", hosts.join(",")), ("peer_addrs", addrs.join(","))]
}

/// Which data members a hooked fault acts on, each with the members it is
/// cut from (`{peers}`): an isolated member from every member outside the
/// isolated set, sentinels included; for a bridge, each member other than
/// the bridge from the other half (the others split in two by member
/// order, as lockbench's own bridge splits them), the bridge itself left
/// alone; for any other fault the targets, with no peers.
pub fn hook_plan<'a>(
    kind: FaultKind,
    set: &[usize],
    deployment: &'a crate::cluster::hooks::Deployment,
) -> Vec<(usize, Vec<&'a crate::cluster::hooks::Member>)> {
    let data = deployment.data_members();
    match kind {
        FaultKind::IsolateServer => set
            .iter()
            .map(|&i| {
                let inside: Vec<&str> = set
                    .iter()
                    .filter_map(|&j| data.get(j))
                    .map(|m| m.name.as_str())
                    .collect();
                let peers = deployment
                    .members
                    .iter()
                    .filter(|m| !inside.contains(&m.name.as_str()))
                    .collect();
                (i, peers)
            })
            .collect(),
        FaultKind::Bridge => {
            let Some(&bridge) = set.first() else {
                return Vec::new();
            };
            let others: Vec<usize> = (0..data.len()).filter(|&i| i != bridge).collect();
            let (a, b) = others.split_at(others.len() / 2);
            let side = |half: &[usize]| half.iter().map(|&j| data[j]).collect::<Vec<_>>();
            a.iter()
                .map(|&i| (i, side(b)))
                .chain(b.iter().map(|&i| (i, side(a))))
                .collect()
        }
        _ => set.iter().map(|&i| (i, Vec::new())).collect(),
    }
}

/// Starts the fault; for a fault on links, gives the token that ends it.
async fn apply(
    spec: &FaultSpec,
    on: &On,
    targets: &Targets,
) -> std::result::Result<Option<u64>, String> {
    match (spec.kind, on) {
        (FaultKind::KillServer, On::Servers(v)) => {
            let mut cluster = targets.servers.lock().await;
            for &i in v {
                cluster.kill(i).map_err(|e| e.to_string())?;
            }
            Ok(None)
        }
        (FaultKind::PauseServer, On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            for &i in v {
                // The server first (it forks no new children while
                // stopped), then children that left its process group.
                cluster
                    .signal(i, libc::SIGSTOP)
                    .map_err(|e| e.to_string())?;
                signal_descendants(cluster.pids().get(i).copied(), libc::SIGSTOP);
            }
            Ok(None)
        }
        (FaultKind::ClockSkew(offset_ns), On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            for &i in v {
                set_clock(&cluster, i, offset_ns, 1.0)?;
            }
            Ok(None)
        }
        (FaultKind::ClockDrift(rate), On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            for &i in v {
                set_clock(&cluster, i, 0, rate)?;
            }
            Ok(None)
        }
        (FaultKind::CrashClient, On::Slots(v)) => {
            for &i in v {
                targets.slots[i].crash();
            }
            // A driver's clients die with its process: SIGKILL.
            for p in targets.processes_of(v) {
                p.kill_on_purpose();
            }
            Ok(None)
        }
        (FaultKind::Bridge, On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            match v.as_slice() {
                [bridge] => cluster.bridge(*bridge).map_err(|e| e.to_string())?,
                _ => return Err(format!("a bridge is one member, not {}", v.len())),
            }
            Ok(None)
        }
        (FaultKind::IsolateServer, On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            cluster.isolate(v).map_err(|e| e.to_string())?;
            Ok(None)
        }
        (FaultKind::PauseClient, On::Slots(v)) => {
            for &i in v {
                targets.slots[i].set_paused(true);
            }
            if !targets.processes.is_empty() {
                // The real GC pause: the driver process stops, its library's
                // threads too, and the kernel still answers TCP.
                for p in targets.processes_of(v) {
                    p.signal(libc::SIGSTOP);
                }
                return Ok(None);
            }
            Ok(targets
                .links
                .as_ref()
                .map(|links| links.apply(&on.hosts(&targets.slots), FaultKind::PauseClient)))
        }
        (kind, On::Hosts(h)) => match (&targets.toxi, &targets.links) {
            (Some(toxi), _) => toxi.apply(kind).await.map(Some),
            (None, Some(links)) => Ok(Some(links.apply(h, kind))),
            (None, None) => {
                Err("no links to fault: this backend's clients do not go through proxies".into())
            }
        },
        (kind, on) => Err(format!("{} cannot act on {on:?}", kind.name())),
    }
}

async fn undo(
    spec: &FaultSpec,
    on: &On,
    targets: &Targets,
    token: Option<u64>,
) -> std::result::Result<(), String> {
    match (spec.kind, on) {
        (FaultKind::KillServer, On::Servers(v)) => {
            let mut cluster = targets.servers.lock().await;
            for &i in v {
                // Bounded: a restart waits at most the kind's start timeout.
                cluster.restart(i).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        (FaultKind::PauseServer, On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            for &i in v {
                signal_descendants(cluster.pids().get(i).copied(), libc::SIGCONT);
                cluster
                    .signal(i, libc::SIGCONT)
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        (FaultKind::ClockSkew(_) | FaultKind::ClockDrift(_), On::Servers(v)) => {
            let cluster = targets.servers.lock().await;
            for &i in v {
                set_clock(&cluster, i, 0, 1.0)?;
            }
            Ok(())
        }
        (FaultKind::CrashClient, On::Slots(v)) => {
            for &i in v {
                targets.slots[i].restart();
            }
            Ok(())
        }
        (FaultKind::IsolateServer | FaultKind::Bridge, On::Servers(_)) => {
            // Every cut between members heals (the topologies keep no
            // per-fault record of their links).
            targets.servers.lock().await.heal_members();
            Ok(())
        }
        (FaultKind::PauseClient, On::Slots(v)) => {
            // Links first: a process that wakes finds its sockets working.
            if let (Some(links), Some(t)) = (&targets.links, token) {
                links.heal(&on.hosts(&targets.slots), t);
            }
            for p in targets.processes_of(v) {
                p.signal(libc::SIGCONT);
            }
            for &i in v {
                targets.slots[i].set_paused(false);
            }
            Ok(())
        }
        (_, On::Hosts(h)) => {
            if let (Some(toxi), Some(t)) = (&targets.toxi, token) {
                return toxi.heal(t).await;
            }
            if let (Some(links), Some(t)) = (&targets.links, token) {
                links.heal(h, t);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Skews server `i`'s clock (or, with offset 0 and rate 1, puts it back),
/// through the clock library the cluster was started with.
fn set_clock(
    cluster: &Cluster,
    i: usize,
    offset_ns: i64,
    rate: f64,
) -> std::result::Result<(), String> {
    let done = if offset_ns == 0 && rate == 1.0 {
        cluster.reset_clock(i)
    } else {
        cluster.set_clock(i, offset_ns, rate)
    };
    done.map_err(|e| e.to_string())
}

/// Sends `signal` to every descendant of `root` that is not in `root`'s
/// process group: PostgreSQL's backends call setsid(), so a signal to the
/// server's group misses them, and a "paused" PostgreSQL would go on
/// serving its open connections. Only processes lockbench started (the
/// server it spawned, and what that server forked) are signalled, by PID.
fn signal_descendants(root: Option<u32>, signal: i32) {
    let Some(root) = root else {
        return;
    };
    for pid in crate::cluster::descendants(root) {
        // SAFETY: kill(2) with a PID we just read as a child of our server.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// How long undoing a fault may take at the end of a run (a restart).
pub const UNDO_GRACE: Duration = Duration::from_secs(40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_found_through_the_parent_chain() {
        // sh → sleep: both are descendants of this test process.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let found = crate::cluster::descendants(std::process::id());
        let mine = crate::cluster::descendants(child.id());
        child.kill().ok();
        for &pid in &mine {
            // SAFETY: kill(2) of processes this test started.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        child.wait().ok();
        assert!(found.contains(&child.id()), "{found:?}");
        assert_eq!(mine.len(), 1, "sh's child, sleep: {mine:?}");
        assert!(found.contains(&mine[0]), "the grandchild too: {found:?}");
    }

    #[test]
    fn a_hooked_cut_names_each_member_s_peers_and_a_bridge_splits_the_others() {
        use crate::cluster::hooks::{Deployment, Member};
        let m = |name: &str, host: &str, role: &str| Member {
            name: name.into(),
            addr: format!("{host}:2181"),
            role: role.into(),
            announce: None,
            proxy: None,
        };
        let d = Deployment {
            members: vec![
                m("a", "10.0.0.1", "member"),
                m("b", "10.0.0.2", "member"),
                m("c", "10.0.0.3", "member"),
                m("d", "10.0.0.4", "member"),
                m("e", "10.0.0.5", "member"),
            ],
            ..Deployment::default()
        };
        let names = |plan: Vec<(usize, Vec<&Member>)>| {
            plan.into_iter()
                .map(|(i, peers)| {
                    let p: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
                    (i, p.join(""))
                })
                .collect::<Vec<_>>()
        };
        // Isolated: cut from every member outside the isolated set.
        assert_eq!(
            names(hook_plan(FaultKind::IsolateServer, &[1, 3], &d)),
            [(1, "ace".to_string()), (3, "ace".to_string())]
        );
        // Bridge c: a and b lose d and e, and the other way round; c keeps all.
        assert_eq!(
            names(hook_plan(FaultKind::Bridge, &[2], &d)),
            [
                (0, "de".to_string()),
                (1, "de".to_string()),
                (3, "ab".to_string()),
                (4, "ab".to_string())
            ]
        );
        let plan = hook_plan(FaultKind::Bridge, &[2], &d);
        assert_eq!(
            peer_vars(&plan[0].1),
            [
                ("peers", "10.0.0.4,10.0.0.5".to_string()),
                ("peer_addrs", "10.0.0.4:2181,10.0.0.5:2181".to_string())
            ]
        );
        assert_eq!(
            names(hook_plan(FaultKind::PauseServer, &[4], &d)),
            [(4, String::new())]
        );
    }

    #[tokio::test]
    async fn overlapping_faults_end_each_at_its_own_time() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint {
            name: "s".into(),
            addr: server.local_addr().unwrap().to_string(),
            announced: None,
        };
        let links = Links::start(&[ep], 2, 1).await.unwrap();
        let delay = Duration::from_millis(50);
        let part = links.apply(&[0], FaultKind::Partition);
        let slow = links.apply(
            &[0, 1],
            FaultKind::Latency {
                delay,
                jitter: Duration::ZERO,
            },
        );
        let s0 = links.per_host[0][0].state();
        assert!(s0.upstream.blackhole && s0.downstream.latency == delay);
        // The partition ends; host 0 keeps its latency.
        links.heal(&[0], part);
        let s0 = links.per_host[0][0].state();
        assert!(!s0.upstream.blackhole && !s0.downstream.blackhole);
        assert_eq!(s0.upstream.latency, delay);
        links.heal(&[0, 1], slow);
        for h in 0..2 {
            assert_eq!(links.per_host[h][0].state(), LinkState::default());
        }
    }
}
