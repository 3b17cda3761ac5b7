//! Replicated topologies (issue 5): a ZooKeeper ensemble and an etcd
//! cluster on loopback, with the traffic between servers through fault
//! proxies ([`Proxy`]), so that a partition can split servers from each
//! other, not only clients from servers.
//!
//! - [`ZkEnsemble`]: `QuorumPeerMain` servers. Each server's own `zoo.cfg`
//!   lists itself at its real quorum and election ports, and every other
//!   server `j` at the ports of two proxies dedicated to the directed pair
//!   (this server → `j`), one per port. A partition between `i` and `j`
//!   blackholes both directed pairs, and nothing else. ZooKeeper (3.8,
//!   Debian) accepts these addresses; but its election connections from a
//!   higher `myid` to a lower one go to the address the lower server
//!   announces (its real port), around the proxies: a partition destroys
//!   those with `ss -K` (root), see [`ZkEnsemble::partition`].
//! - [`EtcdCluster`]: etcd members share one membership list (the cluster
//!   id is derived from it), so every member must see the same peer URLs
//!   and per-pair proxies are impossible. Each member listens on its real
//!   peer port and advertises the port of one inbound proxy; see
//!   [`EtcdCluster::isolate`] for what that cuts.
//!
//! Client traffic goes straight to the real client ports (client-side
//! faults are the nemesis's own proxies). Every process stops when its
//! topology drops ([`ServerProcess`] does it), and the proxies with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sentinel::RedisSentinel;
use super::{Installed, Launch, ServerKind, ServerProcess, free_port};
use crate::error::{Error, Result};
use crate::net::Proxy;

/// How long a whole topology may take to elect its first leader.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a peer proxy retries a refused connect (see
/// [`Proxy::start_patient`]).
pub(super) const PEER_PATIENCE: Duration = Duration::from_secs(2);

/// Restarts `server` (SIGKILL, then the same ports, data directory and
/// arguments) and polls `serving` on its address every `poll` until it
/// answers, the process exits, or `timeout` passes (then the last answer
/// is the error, with the server's log tail).
pub(super) async fn restart_member<F, Fut>(
    server: &mut ServerProcess,
    timeout: Duration,
    poll: Duration,
    serving: F,
) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    server.restart()?;
    let addr = server.addr();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.exited() {
            return Err(server.start_error(format!("exited at restart ({status})")));
        }
        let why = match serving(addr.clone()).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(
                server.start_error(format!("not serving {timeout:?} after restart ({why})"))
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// How often readiness is asked.
const POLL: Duration = Duration::from_millis(100);

fn backend_error(backend: &str, endpoint: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: backend.into(),
        endpoint: endpoint.into(),
        message: message.into(),
    }
}

/// Runs `tasks` concurrently; their outputs in order (a paused member
/// must not delay the answers of the others).
pub(super) async fn join_ordered<F, T>(tasks: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            // A task only fails by panicking, which the asks do not do.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn data_dir(name: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("lockbench-{name}-"))
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))
}

/// The role a member reports when asked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It leads.
    Leader,
    /// It follows a leader.
    Follower,
    /// It answers but serves no requests (electing, cut from a quorum).
    NotServing(String),
    /// It does not answer (killed, paused, unreachable).
    Down(String),
}

impl Role {
    /// Leader or follower.
    pub fn is_serving(&self) -> bool {
        matches!(self, Role::Leader | Role::Follower)
    }
}

/// The leader among `roles`: the one member that says it leads, and only
/// while a majority of the members serve (a deposed leader that has not
/// noticed yet makes two, which is no answer).
fn single_leader(roles: &[Role]) -> Option<usize> {
    let leaders: Vec<usize> = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == Role::Leader)
        .map(|(i, _)| i)
        .collect();
    let serving = roles.iter().filter(|r| r.is_serving()).count();
    match leaders.as_slice() {
        [one] if serving * 2 > roles.len() => Some(*one),
        _ => None,
    }
}

/// Fails with `what` unless `0 <= i < n`.
fn check_index(backend: &str, i: usize, n: usize) -> Result<()> {
    if i < n {
        Ok(())
    } else {
        Err(backend_error(
            backend,
            "",
            format!("no member {i} (the topology has {n}, numbered from 0)"),
        ))
    }
}

// ---------------------------------------------------------------------------
// The topology a scenario asks for
// ---------------------------------------------------------------------------

/// What `topology = "replicated"` starts for a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A Redis primary, replicas and sentinels ([`RedisSentinel`]).
    Sentinel {
        /// Replicas of the primary.
        replicas: usize,
        /// `redis-server --sentinel` processes.
        sentinels: usize,
    },
    /// A ZooKeeper ensemble ([`ZkEnsemble`]).
    Ensemble(usize),
    /// An etcd cluster ([`EtcdCluster`]).
    EtcdCluster(usize),
    /// Independent masters, as the single topology already starts them
    /// (Redlock): nothing replicates, nobody leads.
    Masters(usize),
}

impl Shape {
    /// The number of data servers (the members faults can target).
    pub fn members(self) -> usize {
        match self {
            Shape::Sentinel { replicas, .. } => replicas + 1,
            Shape::Ensemble(n) | Shape::EtcdCluster(n) | Shape::Masters(n) => n,
        }
    }

    /// The kind of its data servers.
    pub fn kind(self) -> ServerKind {
        match self {
            Shape::Sentinel { .. } | Shape::Masters(_) => ServerKind::Redis,
            Shape::Ensemble(_) => ServerKind::ZooKeeper,
            Shape::EtcdCluster(_) => ServerKind::Etcd,
        }
    }

    /// How reports name it.
    pub fn describe(self) -> String {
        match self {
            Shape::Sentinel {
                replicas,
                sentinels,
            } => format!("Redis primary + {replicas} replicas + {sentinels} sentinels"),
            Shape::Ensemble(n) => format!("ZooKeeper ensemble of {n}"),
            Shape::EtcdCluster(n) => format!("etcd cluster of {n}"),
            Shape::Masters(n) => format!("{n} independent Redis masters"),
        }
    }
}

/// What every replicated topology says about its data servers (the
/// members faults target); the rest comes with these two.
pub trait Members {
    /// The data servers, in member order (numbered from 0).
    fn servers(&self) -> &[ServerProcess];

    /// The version the first member reported at start.
    fn version(&self) -> &str;

    /// The number of members.
    fn len(&self) -> usize {
        self.servers().len()
    }

    /// Whether there are no members (never, once started).
    fn is_empty(&self) -> bool {
        self.servers().is_empty()
    }

    /// Each member's real client address (`127.0.0.1:PORT`), in member
    /// order: what lock clients connect to.
    fn client_addrs(&self) -> Vec<String> {
        self.servers().iter().map(|s| s.addr()).collect()
    }

    /// The members' PIDs.
    fn pids(&self) -> Vec<u32> {
        self.servers().iter().map(|s| s.pid()).collect()
    }
}

impl Members for ZkEnsemble {
    fn servers(&self) -> &[ServerProcess] {
        &self.servers
    }

    fn version(&self) -> &str {
        &self.version
    }
}

impl Members for EtcdCluster {
    fn servers(&self) -> &[ServerProcess] {
        &self.servers
    }

    fn version(&self) -> &str {
        &self.version
    }
}

/// A running replicated topology.
#[derive(Debug)]
pub enum Replicated {
    /// Redis with Sentinel.
    Sentinel(RedisSentinel),
    /// A ZooKeeper ensemble.
    Zk(ZkEnsemble),
    /// An etcd cluster.
    Etcd(EtcdCluster),
}

impl Replicated {
    /// Starts `shape` (not [`Shape::Masters`], which is an ordinary
    /// cluster), logging into `log_dir`; `with_clock`: every data server
    /// runs with lockbench's clock skew library
    /// ([`Replicated::take_clocks`]), refused where the members' clocks
    /// cannot be skewed ([`ServerKind::lease_clock`] says why).
    pub async fn start(shape: Shape, log_dir: &Path, with_clock: bool) -> Result<Replicated> {
        if with_clock && let Err(why) = shape.kind().lease_clock() {
            return Err(backend_error(
                shape.kind().name(),
                "",
                format!("cannot skew the members' clocks: {why}"),
            ));
        }
        Ok(match shape {
            Shape::Sentinel {
                replicas,
                sentinels,
            } if with_clock => Replicated::Sentinel(
                RedisSentinel::start_with_clock(replicas, sentinels, log_dir).await?,
            ),
            Shape::Sentinel {
                replicas,
                sentinels,
            } => Replicated::Sentinel(RedisSentinel::start(replicas, sentinels, log_dir).await?),
            Shape::Ensemble(n) => Replicated::Zk(ZkEnsemble::start(n, log_dir).await?),
            Shape::EtcdCluster(n) => Replicated::Etcd(EtcdCluster::start(n, log_dir).await?),
            Shape::Masters(_) => {
                return Err(backend_error(
                    "redis",
                    "",
                    "independent masters are started as an ordinary cluster",
                ));
            }
        })
    }

    /// The data servers' clock controls, in member order (empty unless
    /// started `with_clock`; empty after the first call).
    pub fn take_clocks(&mut self) -> Vec<crate::net::clock::SkewControl> {
        match self {
            Replicated::Sentinel(t) => t.take_clocks(),
            Replicated::Zk(_) | Replicated::Etcd(_) => Vec::new(),
        }
    }

    /// The kind of its data servers.
    pub fn kind(&self) -> ServerKind {
        match self {
            Replicated::Sentinel(_) => ServerKind::Redis,
            Replicated::Zk(_) => ServerKind::ZooKeeper,
            Replicated::Etcd(_) => ServerKind::Etcd,
        }
    }

    /// Its members.
    pub fn members(&self) -> &dyn Members {
        match self {
            Replicated::Sentinel(t) => t,
            Replicated::Zk(t) => t,
            Replicated::Etcd(t) => t,
        }
    }

    /// The data servers (the members faults target), in member order.
    pub fn servers(&self) -> &[ServerProcess] {
        self.members().servers()
    }

    /// The version its first member reported.
    pub fn version(&self) -> &str {
        self.members().version()
    }

    /// Where clients connect: the data servers (with the address peers
    /// know each by, for Sentinel), then the sentinels.
    pub fn endpoints(&self) -> Vec<super::Endpoint> {
        let named = |addrs: Vec<String>, prefix: &str| -> Vec<super::Endpoint> {
            addrs
                .into_iter()
                .enumerate()
                .map(|(i, addr)| super::Endpoint {
                    name: format!("{prefix}-{}", i + 1),
                    addr,
                    announced: None,
                })
                .collect()
        };
        match self {
            Replicated::Sentinel(t) => {
                let mut eps = named(t.client_addrs(), "redis");
                for (ep, a) in eps.iter_mut().zip(t.announced_addrs()) {
                    ep.announced = Some(a);
                }
                eps.extend(named(t.sentinel_addrs(), "sentinel"));
                eps
            }
            Replicated::Zk(t) => named(t.client_addrs(), "zookeeper"),
            Replicated::Etcd(t) => named(t.client_addrs(), "etcd"),
        }
    }

    /// Every process it runs, for summary.json: data servers, then the
    /// sentinels.
    pub fn all_processes(&self) -> Vec<&ServerProcess> {
        let mut all: Vec<&ServerProcess> = self.servers().iter().collect();
        if let Replicated::Sentinel(t) = self {
            all.extend(t.sentinel_processes());
        }
        all
    }

    /// Every member's role, asked now.
    pub async fn roles(&self) -> Vec<Role> {
        match self {
            Replicated::Sentinel(t) => t.roles().await,
            Replicated::Zk(t) => t.roles().await,
            Replicated::Etcd(t) => {
                let (seen, leader) = (t.serving().await, t.leader().await);
                seen.into_iter()
                    .enumerate()
                    .map(|(i, r)| match r {
                        Ok(()) if Some(i) == leader => Role::Leader,
                        Ok(()) => Role::Follower,
                        Err(e) => Role::NotServing(e),
                    })
                    .collect()
            }
        }
    }

    /// The member that leads (the primary the sentinels name), asked now.
    pub async fn leader(&self) -> Option<usize> {
        match self {
            Replicated::Sentinel(t) => t.primary().await,
            Replicated::Zk(t) => t.leader().await,
            Replicated::Etcd(t) => t.leader().await,
        }
    }

    /// Kills member `i` (SIGKILL); it stays down.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        match self {
            Replicated::Sentinel(t) => t.kill(i),
            Replicated::Zk(t) => t.kill(i),
            Replicated::Etcd(t) => t.kill(i),
        }
    }

    /// Starts member `i` again, on the same ports.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        match self {
            Replicated::Sentinel(t) => t.restart(i).await,
            Replicated::Zk(t) => t.restart(i).await,
            Replicated::Etcd(t) => t.restart(i).await,
        }
    }

    /// Cuts every member of `set` from the members outside it. etcd and
    /// Sentinel cut what reaches each member of `set` (its inbound peer
    /// proxy), so members of `set` do not reach each other either.
    pub fn isolate(&self, set: &[usize]) -> Result<()> {
        match self {
            Replicated::Sentinel(t) => set.iter().try_for_each(|&i| t.isolate(i)),
            Replicated::Zk(t) => t.isolate_set(set),
            Replicated::Etcd(t) => set.iter().try_for_each(|&i| t.isolate(i)),
        }
    }

    /// Splits the members other than `bridge` into two halves (by member
    /// order) that no longer reach each other, while both still reach
    /// `bridge` (Jepsen's bridge nemesis). Only a ZooKeeper ensemble's
    /// links are cut per pair; etcd's and Sentinel's are cut per member.
    pub fn bridge(&self, bridge: usize) -> Result<()> {
        match self {
            Replicated::Zk(t) => t.bridge(bridge),
            Replicated::Sentinel(_) | Replicated::Etcd(_) => Err(backend_error(
                self.kind().name(),
                "",
                "a bridge cuts single links between members; this topology's members \
                 are cut as a whole (isolate-server)",
            )),
        }
    }

    /// Removes every fault between servers.
    pub fn heal(&self) {
        match self {
            Replicated::Sentinel(t) => t.heal(),
            Replicated::Zk(t) => t.heal(),
            Replicated::Etcd(t) => t.heal(),
        }
    }

    /// Stops every process now (also done on drop).
    pub fn stop(&mut self) {
        match self {
            Replicated::Sentinel(t) => t.stop(),
            Replicated::Zk(t) => t.stop(),
            Replicated::Etcd(t) => t.stop(),
        }
    }
}

// ---------------------------------------------------------------------------
// ZooKeeper
// ---------------------------------------------------------------------------

/// One ensemble member's real ports.
#[derive(Debug, Clone, Copy)]
struct ZkPorts {
    client: u16,
    quorum: u16,
    election: u16,
}

/// The two proxies of one directed pair (from → to).
#[derive(Debug)]
struct PairLink {
    quorum: Proxy,
    election: Proxy,
}

impl PairLink {
    fn partition(&self) {
        self.quorum.partition();
        self.election.partition();
    }

    fn heal(&self) {
        self.quorum.heal();
        self.election.heal();
    }
}

/// A ZooKeeper ensemble of `QuorumPeerMain` servers on loopback, with the
/// quorum and election traffic between every directed pair of servers
/// through its own pair of proxies. Members are numbered from 0 here;
/// server `i` has `myid` `i + 1`.
#[derive(Debug)]
pub struct ZkEnsemble {
    servers: Vec<ServerProcess>,
    ports: Vec<ZkPorts>,
    /// (from, to) → the proxies `from` uses to reach `to`.
    links: HashMap<(usize, usize), PairLink>,
    version: String,
}

/// The `zoo.cfg` of member `me` (0-based): itself at its real ports, every
/// other member at the proxies of the pair (me → other).
fn zk_config(
    me: usize,
    ports: &[ZkPorts],
    proxied: &HashMap<(usize, usize), (u16, u16)>,
    data: &Path,
) -> String {
    let mut cfg = super::zookeeper::base_config(ports[me].client, data);
    cfg.push_str("initLimit=10\nsyncLimit=5\n");
    for (j, p) in ports.iter().enumerate() {
        let (quorum, election) = if j == me {
            (p.quorum, p.election)
        } else {
            proxied.get(&(me, j)).copied().unwrap_or((0, 0))
        };
        cfg.push_str(&format!(
            "server.{id}=127.0.0.1:{quorum}:{election}\n",
            id = j + 1
        ));
    }
    cfg
}

/// The launch of `QuorumPeerMain`, as the standalone server is launched
/// (same JVM flags and logging), on `cfg`.
fn zk_launch(installed: &Installed, cfg: &Path) -> Result<Launch> {
    super::zookeeper::launch(
        installed,
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        cfg,
    )
}

/// What `srvr` says about a member's role.
fn zk_role(reply: std::result::Result<String, String>) -> Role {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return Role::Down(e),
    };
    let mode = reply
        .lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(str::trim);
    match mode {
        Some("leader") => Role::Leader,
        Some("follower") => Role::Follower,
        Some(other) => Role::NotServing(other.to_string()),
        None => Role::NotServing(reply.lines().next().unwrap_or("").trim().to_string()),
    }
}

impl ZkEnsemble {
    /// Starts an ensemble of `n` servers (3 is the usual), logging into
    /// `log_dir/zookeeper-<i>.log`; returns once every member serves and
    /// exactly one leads.
    pub async fn start(n: usize, log_dir: &Path) -> Result<ZkEnsemble> {
        super::start_on_fresh_ports("zookeeper ensemble", || ZkEnsemble::start_once(n, log_dir))
            .await
    }

    async fn start_once(n: usize, log_dir: &Path) -> Result<ZkEnsemble> {
        if n == 0 {
            return Err(backend_error("zookeeper", "", "an ensemble needs members"));
        }
        let installed = super::ensure_installed("zookeeper", ServerKind::ZooKeeper)?;
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            ports.push(ZkPorts {
                client: free_port()?,
                quorum: free_port()?,
                election: free_port()?,
            });
        }
        let mut links = HashMap::new();
        let mut proxied = HashMap::new();
        for from in 0..n {
            for to in (0..n).filter(|&to| to != from) {
                // The seed only draws jitter, which these links do not use.
                let quorum =
                    Proxy::start_patient(loopback(ports[to].quorum), 0, PEER_PATIENCE).await?;
                let election =
                    Proxy::start_patient(loopback(ports[to].election), 0, PEER_PATIENCE).await?;
                proxied.insert((from, to), (quorum.addr().port(), election.addr().port()));
                links.insert((from, to), PairLink { quorum, election });
            }
        }
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("zookeeper-{}", i + 1);
            let dir = data_dir(&name)?;
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).map_err(|e| Error::io(&data, e))?;
            let myid = data.join("myid");
            std::fs::write(&myid, format!("{}\n", i + 1)).map_err(|e| Error::io(&myid, e))?;
            let cfg = dir.path().join("zoo.cfg");
            std::fs::write(&cfg, zk_config(i, &ports, &proxied, &data))
                .map_err(|e| Error::io(&cfg, e))?;
            let launch = zk_launch(&installed, &cfg)?;
            servers.push(ServerProcess::spawn(
                &name,
                log_dir,
                ports[i].client,
                dir,
                launch,
            )?);
        }
        let mut ensemble = ZkEnsemble {
            servers,
            ports,
            links,
            version: String::new(),
        };
        ensemble.wait_ready(START_TIMEOUT).await?;
        let first = ensemble
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        ensemble.version = super::zookeeper::probe(&first).await.unwrap_or_default();
        Ok(ensemble)
    }

    /// Member `i`'s real (quorum, election) ports.
    pub fn peer_ports(&self, i: usize) -> Option<(u16, u16)> {
        self.ports.get(i).map(|p| (p.quorum, p.election))
    }

    /// Asks every member `srvr` now; their roles, in member order.
    pub async fn roles(&self) -> Vec<Role> {
        let asks = self
            .servers
            .iter()
            .map(|s| {
                let addr = s.addr();
                async move { zk_role(super::zookeeper::four_letter_word(&addr, "srvr").await) }
            })
            .collect::<Vec<_>>();
        join_ordered(asks).await
    }

    /// The member that leads now, asking the servers: `None` unless exactly
    /// one says `Mode: leader` and a majority serve.
    pub async fn leader(&self) -> Option<usize> {
        single_leader(&self.roles().await)
    }

    /// Waits (at most `timeout`) until every member serves with one leader.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for s in &mut self.servers {
                if let Some(status) = s.exited() {
                    return Err(s.exited_error(status));
                }
            }
            let roles = self.roles().await;
            if roles.iter().all(Role::is_serving) && single_leader(&roles).is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if let Some(taken) = self.servers.iter().find_map(|s| s.port_taken()) {
                    return Err(taken);
                }
                return Err(backend_error(
                    "zookeeper",
                    self.client_addrs().join(","),
                    format!("ensemble not ready after {timeout:?}: roles {roles:?}"),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits (at most `timeout`) until `pred` holds for the members' roles;
    /// the last roles seen.
    pub async fn wait_roles(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Role]) -> bool,
    ) -> std::result::Result<Vec<Role>, Vec<Role>> {
        let deadline = Instant::now() + timeout;
        loop {
            let roles = self.roles().await;
            if pred(&roles) {
                return Ok(roles);
            }
            if Instant::now() >= deadline {
                return Err(roles);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn server_mut(&mut self, i: usize) -> Result<&mut ServerProcess> {
        check_index("zookeeper", i, self.servers.len())?;
        self.servers
            .get_mut(i)
            .ok_or_else(|| backend_error("zookeeper", "", format!("no member {i}")))
    }

    /// Kills member `i` with SIGKILL and leaves it down.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.server_mut(i)?.stop();
        Ok(())
    }

    /// Kills member `i` (if running) and starts it again on the same ports
    /// and data directory; returns once it answers `srvr` as leader or
    /// follower (within [`START_TIMEOUT`]), which needs a quorum.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        restart_member(
            self.server_mut(i)?,
            START_TIMEOUT,
            POLL,
            |addr| async move {
                match zk_role(super::zookeeper::four_letter_word(&addr, "srvr").await) {
                    role if role.is_serving() => Ok(()),
                    role => Err(format!("{role:?}")),
                }
            },
        )
        .await
    }

    /// Freezes member `i` (SIGSTOP to its process group).
    pub fn pause(&self, i: usize) -> Result<()> {
        check_index("zookeeper", i, self.servers.len())?;
        self.servers[i].signal(libc::SIGSTOP);
        Ok(())
    }

    /// Resumes member `i` (SIGCONT).
    pub fn resume(&self, i: usize) -> Result<()> {
        check_index("zookeeper", i, self.servers.len())?;
        self.servers[i].signal(libc::SIGCONT);
        Ok(())
    }

    /// Cuts members `i` and `j` from each other: blackholes the quorum and
    /// election proxies of both directed pairs, both ways. Connections stay
    /// open; bytes stop (as in a real partition, the servers find out by
    /// their own timeouts: `syncLimit` ticks). ZooKeeper opens some
    /// election connections around the proxies ([`ZkEnsemble::direct_links`]);
    /// those between `i` and `j` are destroyed with `ss -K` (root), and
    /// this fails if one exists and cannot be.
    pub fn partition(&self, i: usize, j: usize) -> Result<()> {
        let n = self.servers.len();
        check_index("zookeeper", i, n)?;
        check_index("zookeeper", j, n)?;
        for key in [(i, j), (j, i)] {
            if let Some(link) = self.links.get(&key) {
                link.partition();
            }
        }
        // Election connections that bypass the proxies (see
        // `cut_direct_links`) are cut too; with the proxies blackholed no
        // new one can form until the heal.
        self.cut_direct_links(i, j)?;
        self.cut_direct_links(j, i)
    }

    /// The directed pairs (from, to) where member `from` holds a connection
    /// straight to one of `to`'s real peer ports, around the proxies (see
    /// [`ZkEnsemble::partition`]): election links opened from a higher
    /// `myid` to a lower one. Read from `/proc`.
    pub fn direct_links(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (from, server) in self.servers.iter().enumerate() {
            for (to, ports) in self.ports.iter().enumerate() {
                if from != to
                    && !direct_connections(server.pid(), &[ports.quorum, ports.election]).is_empty()
                {
                    pairs.push((from, to));
                }
            }
        }
        pairs
    }

    /// Destroys any TCP connection member `from`'s process holds straight
    /// to one of member `to`'s real peer ports.
    ///
    /// Why they exist: when a lower `myid` connects (through its proxy) to
    /// a higher one's election port, ZooKeeper keeps only connections
    /// opened by the higher id: it closes this one and connects back to the
    /// election address the lower server *announced in its first message*,
    /// which is its own real port (`QuorumCnxManager.handleConnection`,
    /// seen with Debian's 3.8), not the proxy of its own `zoo.cfg`. So
    /// election traffic from higher to lower ids may not pass through the
    /// proxies. Such connections are destroyed with `ss -K` (needs root
    /// and `CONFIG_INET_DIAG_DESTROY`); when that is impossible and one
    /// exists, the partition is incomplete and this says so.
    fn cut_direct_links(&self, from: usize, to: usize) -> Result<()> {
        let (Some(server), Some(ports)) = (self.servers.get(from), self.ports.get(to)) else {
            return Ok(());
        };
        let targets = [ports.quorum, ports.election];
        let direct = direct_connections(server.pid(), &targets);
        for (local, remote) in direct {
            let out = std::process::Command::new("ss")
                .args(["-K", "-t", "-n", "src"])
                .arg(format!("127.0.0.1:{local}"))
                .arg("dst")
                .arg(format!("127.0.0.1:{remote}"))
                .output();
            let cut = match out {
                Ok(o) if o.status.success() => {
                    // `ss -K` succeeds also when it could not destroy:
                    // check that the socket is gone.
                    direct_connections(server.pid(), &targets)
                        .iter()
                        .all(|&(l, _)| l != local)
                }
                _ => false,
            };
            if !cut {
                return Err(backend_error(
                    "zookeeper",
                    server.addr(),
                    format!(
                        "member {from} holds an election connection straight to member \
                         {to} (127.0.0.1:{local} -> 127.0.0.1:{remote}) that the proxies \
                         cannot stop, and `ss -K` could not destroy it (needs root): \
                         the partition would be incomplete"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Cuts member `i` from every other member (its client port stays
    /// reachable, so clients see what an isolated server says).
    pub fn isolate(&self, i: usize) -> Result<()> {
        check_index("zookeeper", i, self.servers.len())?;
        for j in (0..self.servers.len()).filter(|&j| j != i) {
            self.partition(i, j)?;
        }
        Ok(())
    }

    /// Cuts every member of `set` from every member outside it (members
    /// of `set` still reach each other): a majority/minority split when
    /// `set` is a minority.
    pub fn isolate_set(&self, set: &[usize]) -> Result<()> {
        let n = self.servers.len();
        for &i in set {
            check_index("zookeeper", i, n)?;
            for j in (0..n).filter(|j| !set.contains(j)) {
                self.partition(i, j)?;
            }
        }
        Ok(())
    }

    /// Splits the members other than `bridge` into two halves, the first
    /// ⌊(n − 1)/2⌋ of them in member order and the rest, and cuts every
    /// link between the halves; `bridge` keeps its links to both.
    pub fn bridge(&self, bridge: usize) -> Result<()> {
        let n = self.servers.len();
        check_index("zookeeper", bridge, n)?;
        let others: Vec<usize> = (0..n).filter(|&j| j != bridge).collect();
        let (left, right) = others.split_at(others.len() / 2);
        for &i in left {
            for &j in right {
                self.partition(i, j)?;
            }
        }
        Ok(())
    }

    /// Removes every fault between servers (held bytes flow again).
    pub fn heal(&self) {
        for link in self.links.values() {
            link.heal();
        }
    }

    /// Stops every member now (also done on drop).
    pub fn stop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
    }
}

/// Established TCP connections of process `pid` to 127.0.0.1 at one of
/// `ports`: (local port, remote port). Read from `/proc` (a process's
/// sockets are its `socket:[inode]` descriptors).
fn direct_connections(pid: u32, ports: &[u16]) -> Vec<(u16, u16)> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: std::collections::HashSet<String> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    let port_of = |addr: &str| {
        addr.split_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st ... inode (field 9); st 01 = ESTABLISHED.
            let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
            if *state != "01" || !remote.starts_with("0100007F:") || !inodes.contains(*inode) {
                return None;
            }
            let remote = port_of(remote)?;
            ports.contains(&remote).then_some((port_of(local)?, remote))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------

/// An etcd cluster on loopback: member `i` listens for peers on its real
/// peer port and advertises the address of its own inbound proxy, which
/// forwards to it. Members are numbered from 0 (named `lockbench-<i+1>`).
#[derive(Debug)]
pub struct EtcdCluster {
    servers: Vec<ServerProcess>,
    /// Member i's inbound peer proxy.
    peer_proxies: Vec<Proxy>,
    /// Member i's id, as etcd reports it (filled at start).
    ids: Vec<u64>,
    version: String,
}

/// Heartbeat and election timeout (ms): as the single-member etcd of
/// lockbench (src/cluster/etcd.rs), so leases may be as short as 1 s; on
/// loopback three members keep a leader with these.
const ETCD_HEARTBEAT_MS: &str = "50";
const ETCD_ELECTION_MS: &str = "500";

fn etcd_member_name(i: usize) -> String {
    format!("lockbench-{}", i + 1)
}

fn etcd_client_options() -> etcd_client::ConnectOptions {
    etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2))
}

/// Member at `addr`: (its own id, the leader it knows, 0 if none).
async fn etcd_status(addr: &str) -> std::result::Result<(u64, u64), String> {
    let attempt = async {
        let mut client =
            etcd_client::Client::connect([format!("http://{addr}")], Some(etcd_client_options()))
                .await
                .map_err(|e| e.to_string())?;
        let status = client.status().await.map_err(|e| e.to_string())?;
        let me = status.header().map(|h| h.member_id()).unwrap_or(0);
        Ok((me, status.leader()))
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 3 s"))?
}

/// Whether the member at `addr` serves a linearizable read (which needs
/// the leader's confirmation).
async fn etcd_serves(addr: &str) -> std::result::Result<(), String> {
    let attempt = async {
        let mut client =
            etcd_client::Client::connect([format!("http://{addr}")], Some(etcd_client_options()))
                .await
                .map_err(|e| e.to_string())?;
        client
            .get("lockbench/probe", None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| format!("{addr}: no linearizable read within 3 s"))?
}

impl EtcdCluster {
    /// Starts `n` members (3 is the usual), logging into
    /// `log_dir/etcd-<i>.log`; returns once every member serves a
    /// linearizable read and they agree on one leader.
    pub async fn start(n: usize, log_dir: &Path) -> Result<EtcdCluster> {
        super::start_on_fresh_ports("etcd cluster", || EtcdCluster::start_once(n, log_dir)).await
    }

    async fn start_once(n: usize, log_dir: &Path) -> Result<EtcdCluster> {
        if n == 0 {
            return Err(backend_error("etcd", "", "a cluster needs members"));
        }
        let installed = super::ensure_installed("etcd", ServerKind::Etcd)?;
        let mut client_ports = Vec::with_capacity(n);
        let mut peer_ports = Vec::with_capacity(n);
        let mut peer_proxies = Vec::with_capacity(n);
        for _ in 0..n {
            let client = free_port()?;
            let peer = free_port()?;
            client_ports.push(client);
            peer_ports.push(peer);
            peer_proxies.push(Proxy::start_patient(loopback(peer), 0, PEER_PATIENCE).await?);
        }
        let initial_cluster = peer_proxies
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=http://{}", etcd_member_name(i), p.addr()))
            .collect::<Vec<_>>()
            .join(",");
        // Distinct per start, so two clusters never mistake each other.
        let token = format!(
            "lockbench-{}-{}",
            std::process::id(),
            peer_proxies[0].addr().port()
        );
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("etcd-{}", i + 1);
            let dir = data_dir(&name)?;
            let client_url = format!("http://127.0.0.1:{}", client_ports[i]);
            let listen_peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let advertise_peer = format!("http://{}", peer_proxies[i].addr());
            let launch = Launch::new(&installed.binary)
                .args(["--name", &etcd_member_name(i)])
                .arg("--data-dir")
                .arg(dir.path().join("member"))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &listen_peer])
                .args(["--initial-advertise-peer-urls", &advertise_peer])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--heartbeat-interval", ETCD_HEARTBEAT_MS])
                .args(["--election-timeout", ETCD_ELECTION_MS])
                .args(["--logger", "zap"])
                .args(["--log-outputs", "stderr"])
                .args(["--log-level", "warn"]);
            servers.push(ServerProcess::spawn(
                &name,
                log_dir,
                client_ports[i],
                dir,
                launch,
            )?);
        }
        let mut cluster = EtcdCluster {
            servers,
            peer_proxies,
            ids: vec![0; n],
            version: String::new(),
        };
        cluster.wait_ready(START_TIMEOUT).await?;
        let first = cluster
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        cluster.version = super::etcd::probe(&first).await.unwrap_or_default();
        Ok(cluster)
    }

    /// Member `i`'s id in etcd's membership.
    pub fn member_id(&self, i: usize) -> Option<u64> {
        self.ids.get(i).copied()
    }

    /// Asks every member its status now: per member, the leader id it
    /// knows (0: none), or why it did not answer.
    pub async fn leaders_seen(&self) -> Vec<std::result::Result<u64, String>> {
        let asks = self
            .servers
            .iter()
            .map(|s| {
                let addr = s.addr();
                async move { etcd_status(&addr).await.map(|(_, leader)| leader) }
            })
            .collect::<Vec<_>>();
        join_ordered(asks).await
    }

    /// The member that leads now: the leader a majority of members name.
    pub async fn leader(&self) -> Option<usize> {
        let seen = self.leaders_seen().await;
        let n = self.servers.len();
        let mut votes: HashMap<u64, usize> = HashMap::new();
        for id in seen.into_iter().flatten().filter(|&id| id != 0) {
            *votes.entry(id).or_default() += 1;
        }
        let (id, _) = votes.into_iter().find(|(_, c)| c * 2 > n)?;
        self.ids.iter().position(|&m| m == id)
    }

    /// Whether each member serves a linearizable read now.
    pub async fn serving(&self) -> Vec<std::result::Result<(), String>> {
        let asks = self
            .servers
            .iter()
            .map(|s| {
                let addr = s.addr();
                async move { etcd_serves(&addr).await }
            })
            .collect::<Vec<_>>();
        join_ordered(asks).await
    }

    /// Waits (at most `timeout`) until every member serves a linearizable
    /// read and a majority name one leader; learns the member ids.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            for s in &mut self.servers {
                if let Some(status) = s.exited() {
                    return Err(s.exited_error(status));
                }
            }
            let why = match self.ready_now().await {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(backend_error(
                    "etcd",
                    self.client_addrs().join(","),
                    format!("cluster not ready after {timeout:?}: {why}"),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn ready_now(&mut self) -> std::result::Result<(), String> {
        for (i, s) in self.servers.iter().enumerate() {
            let (me, _) = etcd_status(&s.addr()).await?;
            self.ids[i] = me;
        }
        for r in self.serving().await {
            r?;
        }
        self.leader()
            .await
            .map(|_| ())
            .ok_or_else(|| "no leader named by a majority".to_string())
    }

    fn server_mut(&mut self, i: usize) -> Result<&mut ServerProcess> {
        check_index("etcd", i, self.servers.len())?;
        self.servers
            .get_mut(i)
            .ok_or_else(|| backend_error("etcd", "", format!("no member {i}")))
    }

    /// Kills member `i` with SIGKILL and leaves it down.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.server_mut(i)?.stop();
        Ok(())
    }

    /// Kills member `i` (if running) and starts it again with the same
    /// ports and data directory (it rejoins as the same member); returns
    /// once it serves a linearizable read (within [`START_TIMEOUT`]).
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        restart_member(
            self.server_mut(i)?,
            START_TIMEOUT,
            POLL,
            |addr| async move { etcd_serves(&addr).await },
        )
        .await
    }

    /// Freezes member `i` (SIGSTOP).
    pub fn pause(&self, i: usize) -> Result<()> {
        check_index("etcd", i, self.servers.len())?;
        self.servers[i].signal(libc::SIGSTOP);
        Ok(())
    }

    /// Resumes member `i` (SIGCONT).
    pub fn resume(&self, i: usize) -> Result<()> {
        check_index("etcd", i, self.servers.len())?;
        self.servers[i].signal(libc::SIGCONT);
        Ok(())
    }

    /// Blackholes member `i`'s inbound peer proxy, both ways.
    ///
    /// What it cuts: every peer connection that *ends* at `i`: the other
    /// members' raft stream readers attached to `i` (which carry `i`'s
    /// messages, heartbeats and votes included, to them) and their
    /// pipeline posts to `i`. What it does not cut: connections `i` opens
    /// to the others (through *their* proxies), so messages from the others
    /// still reach `i` over the streams `i` reads. The effect: nothing `i`
    /// says reaches anyone: a leader `i` is deposed (the others elect a new
    /// one), and `i` cannot serve linearizable reads or writes, but it does
    /// learn the new term. It is a one-way isolation, not a full one.
    pub fn isolate(&self, i: usize) -> Result<()> {
        check_index("etcd", i, self.servers.len())?;
        self.peer_proxies[i].partition();
        Ok(())
    }

    /// Removes every fault between members.
    pub fn heal(&self) {
        for p in &self.peer_proxies {
            p.heal();
        }
    }

    /// Stops every member now (also done on drop).
    pub fn stop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
    }

    /// Where member `i`'s data directory is (for tests and reports).
    pub fn data_dir(&self, i: usize) -> Option<PathBuf> {
        self.servers.get(i).map(|s| s.data_dir().to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_needs_a_serving_majority() {
        use Role::*;
        let down = || Down("x".into());
        assert_eq!(single_leader(&[Follower, Leader, Follower]), Some(1));
        assert_eq!(single_leader(&[Leader, Follower, down()]), Some(0));
        assert_eq!(single_leader(&[Leader, Leader, Follower]), None);
        assert_eq!(single_leader(&[Leader, down(), down()]), None);
        assert_eq!(single_leader(&[Follower, Follower, Follower]), None);
    }

    #[test]
    fn each_member_sees_itself_real_and_others_proxied() {
        let ports = vec![
            ZkPorts {
                client: 1,
                quorum: 10,
                election: 11,
            },
            ZkPorts {
                client: 2,
                quorum: 20,
                election: 21,
            },
        ];
        let proxied = HashMap::from([((0, 1), (120, 121)), ((1, 0), (210, 211))]);
        let cfg = zk_config(0, &ports, &proxied, Path::new("/d"));
        assert!(cfg.contains("server.1=127.0.0.1:10:11\n"), "{cfg}");
        assert!(cfg.contains("server.2=127.0.0.1:120:121\n"), "{cfg}");
        assert!(cfg.contains("clientPort=1\n"));
        let cfg = zk_config(1, &ports, &proxied, Path::new("/d"));
        assert!(cfg.contains("server.1=127.0.0.1:210:211\n"), "{cfg}");
        assert!(cfg.contains("server.2=127.0.0.1:20:21\n"), "{cfg}");
    }

    #[test]
    fn srvr_modes_map_to_roles() {
        assert_eq!(zk_role(Ok("Mode: leader\n".into())), Role::Leader);
        assert_eq!(zk_role(Ok("x\nMode: follower\n".into())), Role::Follower);
        assert!(
            !zk_role(Ok(
                "This ZooKeeper instance is not currently serving requests\n".into()
            ))
            .is_serving()
        );
        assert!(matches!(zk_role(Err("refused".into())), Role::Down(_)));
    }
}
