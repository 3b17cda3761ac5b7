//! Replicated topologies: what users deploy for availability (Redis with
//! Sentinel, a ZooKeeper ensemble, an etcd cluster) on loopback, with the
//! traffic between servers through fault proxies ([`Proxy`]) so that a
//! partition can split servers from each other, not only clients from
//! servers.
//!
//! Each system's topology lives beside its single-server code
//! (`redis/sentinel.rs`, `zookeeper/ensemble.rs`, `etcd/cluster.rs`) and
//! implements [`Replicated`], as Jepsen's `db.clj` has `DB` with `Kill`
//! and `Pause` beside it: killing, restarting, pausing and stopping a
//! member are written once here, and a topology writes what differs (how
//! to ask a member its role, when a restarted member serves, which links
//! a cut blackholes).
//!
//! Client traffic goes straight to the real client ports (client-side
//! faults are the nemesis's own proxies). Every process stops when its
//! topology drops ([`ServerProcess`] does it), and the proxies with it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Endpoint, ServerKind, ServerProcess};
use crate::error::{Error, Result};
use crate::net::Proxy;
use crate::net::clock::SkewControl;

pub use super::etcd::cluster::EtcdCluster;
pub use super::redis::cluster::RedisCluster;
pub use super::redis::sentinel::RedisSentinel;
pub use super::zookeeper::ensemble::ZkEnsemble;

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
pub(super) const POLL: Duration = Duration::from_millis(100);

pub(super) fn backend_error(
    backend: &str,
    endpoint: impl Into<String>,
    message: impl Into<String>,
) -> Error {
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

pub(super) fn loopback(port: u16) -> SocketAddr {
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
/// Every member's role in a deployment lockbench did not start: asked now
/// where the kind says (Redis `ROLE`, ZooKeeper `srvr`), else as declared
/// (`primary` and `leader` lead, any other role follows).
pub(super) async fn ask_roles(kind: ServerKind, members: &[&super::hooks::Member]) -> Vec<Role> {
    let asks = members
        .iter()
        .map(|m| {
            let (addr, declared) = (m.addr.clone(), m.role.clone());
            async move {
                match kind.family() {
                    ServerKind::Redis => super::redis::sentinel::role_at(&addr).await,
                    ServerKind::ZooKeeper => super::zookeeper::ensemble::role_at(&addr).await,
                    _ if matches!(declared.as_str(), "primary" | "leader") => Role::Leader,
                    _ => Role::Follower,
                }
            }
        })
        .collect();
    join_ordered(asks).await
}

pub(super) fn single_leader(roles: &[Role]) -> Option<usize> {
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
pub(super) fn check_index(backend: &str, i: usize, n: usize) -> Result<()> {
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

/// ` (3.9)` for a pinned version, nothing for the distribution's.
fn version_of(kind: ServerKind) -> String {
    kind.pinned()
        .map(|p| format!(" ({})", p.version))
        .unwrap_or_default()
}

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
    /// A ZooKeeper ensemble ([`ZkEnsemble`]) of that many servers of that
    /// version (`ServerKind::ZooKeeper` or a pinned one).
    Ensemble(usize, ServerKind),
    /// An etcd cluster ([`EtcdCluster`]), likewise.
    EtcdCluster(usize, ServerKind),
    /// Independent masters, as the single topology already starts them
    /// (Redlock): nothing replicates, nobody leads.
    Masters(usize),
    /// A Redis Cluster ([`RedisCluster`]): `primaries` shards, each with
    /// `replicas` replicas (`topology = "cluster"`).
    RedisCluster {
        /// Primaries, each serving a third (of three) of the hash slots.
        primaries: usize,
        /// Replicas of each primary.
        replicas: usize,
    },
}

impl Shape {
    /// The number of data servers (the members faults can target).
    pub fn members(self) -> usize {
        match self {
            Shape::Sentinel { replicas, .. } => replicas + 1,
            Shape::Ensemble(n, _) | Shape::EtcdCluster(n, _) | Shape::Masters(n) => n,
            Shape::RedisCluster {
                primaries,
                replicas,
            } => primaries * (1 + replicas),
        }
    }

    /// The kind of its data servers.
    pub fn kind(self) -> ServerKind {
        match self {
            Shape::Sentinel { .. } | Shape::Masters(_) | Shape::RedisCluster { .. } => {
                ServerKind::Redis
            }
            Shape::Ensemble(_, kind) | Shape::EtcdCluster(_, kind) => kind,
        }
    }

    /// How reports name it.
    pub fn describe(self) -> String {
        match self {
            Shape::Sentinel {
                replicas,
                sentinels,
            } => format!("Redis primary + {replicas} replicas + {sentinels} sentinels"),
            Shape::Ensemble(n, kind) => format!("ZooKeeper ensemble of {n}{}", version_of(kind)),
            Shape::EtcdCluster(n, kind) => format!("etcd cluster of {n}{}", version_of(kind)),
            Shape::Masters(n) => format!("{n} independent Redis masters"),
            Shape::RedisCluster {
                primaries,
                replicas,
            } => format!("Redis Cluster of {primaries} primaries with {replicas} replica(s) each"),
        }
    }
}

/// What every replicated topology says about its data servers (the
/// members faults target); the rest comes with these two.
pub trait Members {
    /// The data servers, in member order (numbered from 0).
    fn servers(&self) -> &[ServerProcess];

    /// The data servers, to kill and restart them.
    fn servers_mut(&mut self) -> &mut [ServerProcess];

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

/// Implements [`Members`] for a topology whose data servers and version
/// are its fields `servers` and `version` (every topology here).
macro_rules! members_from_fields {
    ($topology:ty) => {
        impl $crate::cluster::topology::Members for $topology {
            fn servers(&self) -> &[$crate::cluster::ServerProcess] {
                &self.servers
            }

            fn servers_mut(&mut self) -> &mut [$crate::cluster::ServerProcess] {
                &mut self.servers
            }

            fn version(&self) -> &str {
                &self.version
            }
        }
    };
}
pub(super) use members_from_fields;

/// A running replicated topology. What is the same for every system is
/// written here once (kill, pause, resume, stop, the leader from the
/// roles); each topology says what differs.
#[async_trait]
pub trait Replicated: Members + std::fmt::Debug + Send + Sync {
    /// The kind of its data servers.
    fn kind(&self) -> ServerKind;

    /// Every member's role, asked now.
    async fn roles(&self) -> Vec<Role>;

    /// The member that leads now: the one member that says it leads while
    /// a majority serve.
    async fn leader(&self) -> Option<usize> {
        single_leader(&self.roles().await)
    }

    /// Where clients connect: the data servers, named by kind.
    fn endpoints(&self) -> Vec<Endpoint> {
        named_endpoints(self.client_addrs(), self.kind().name())
    }

    /// Every process it runs, for summary.json: the data servers, then
    /// any helpers.
    fn all_processes(&self) -> Vec<&ServerProcess> {
        self.servers().iter().collect()
    }

    /// The data servers' clock controls, in member order (empty unless
    /// started with the clock library; empty after the first call).
    fn take_clocks(&mut self) -> Vec<SkewControl> {
        Vec::new()
    }

    /// Kills member `i` with SIGKILL and leaves it down.
    fn kill(&mut self, i: usize) -> Result<()> {
        check_index(self.kind().name(), i, self.len())?;
        self.servers_mut()[i].stop();
        Ok(())
    }

    /// Starts member `i` again on the same ports and data directory;
    /// returns once it serves again.
    async fn restart(&mut self, i: usize) -> Result<()>;

    /// Freezes member `i` (SIGSTOP to its process group).
    fn pause(&self, i: usize) -> Result<()> {
        check_index(self.kind().name(), i, self.len())?;
        self.servers()[i].signal(libc::SIGSTOP);
        Ok(())
    }

    /// Resumes member `i` (SIGCONT).
    fn resume(&self, i: usize) -> Result<()> {
        check_index(self.kind().name(), i, self.len())?;
        self.servers()[i].signal(libc::SIGCONT);
        Ok(())
    }

    /// Cuts every member of `set` from the members outside it.
    fn isolate_set(&self, set: &[usize]) -> Result<()>;

    /// Splits the members other than `bridge` into two halves (by member
    /// order) that no longer reach each other, while both still reach
    /// `bridge` (Jepsen's bridge nemesis). Only where links are cut per
    /// pair of members.
    fn bridge(&self, bridge: usize) -> Result<()> {
        let _ = bridge;
        Err(backend_error(
            self.kind().name(),
            "",
            "a bridge cuts single links between members; this topology's members \
             are cut as a whole (isolate-server)",
        ))
    }

    /// The member serving `key` as primary now, and its replicas: a Redis
    /// Cluster's shard of the key's hash slot. The other topologies keep
    /// every key on every member and have no shards.
    async fn shard_of(&self, _key: &str) -> std::result::Result<(usize, Vec<usize>), String> {
        Err("only a Redis Cluster (topology = \"cluster\") has shards".into())
    }

    /// Removes every fault between servers.
    fn heal(&self);

    /// Stops every process now (also done on drop).
    fn stop(&mut self) {
        for s in self.servers_mut() {
            s.stop();
        }
    }
}

/// Starts `shape` (not [`Shape::Masters`], which is an ordinary cluster),
/// logging into `log_dir`; `with_clock`: every data server runs with
/// lockbench's clock skew library ([`Replicated::take_clocks`]), refused
/// where the members' clocks cannot be skewed
/// ([`ServerKind::lease_clock`] says why).
pub async fn start(shape: Shape, log_dir: &Path, with_clock: bool) -> Result<Box<dyn Replicated>> {
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
        } if with_clock => {
            Box::new(RedisSentinel::start_with_clock(replicas, sentinels, log_dir).await?)
        }
        Shape::Sentinel {
            replicas,
            sentinels,
        } => Box::new(RedisSentinel::start(replicas, sentinels, log_dir).await?),
        Shape::RedisCluster { .. } if with_clock => {
            return Err(backend_error(
                "redis",
                "",
                "lockbench does not skew the clocks of a Redis Cluster's nodes",
            ));
        }
        Shape::RedisCluster {
            primaries,
            replicas,
        } => Box::new(RedisCluster::start(primaries, replicas, log_dir).await?),
        Shape::Ensemble(n, kind) => Box::new(ZkEnsemble::start(n, kind, log_dir).await?),
        Shape::EtcdCluster(n, kind) => Box::new(EtcdCluster::start(n, kind, log_dir).await?),
        Shape::Masters(_) => {
            return Err(backend_error(
                "redis",
                "",
                "independent masters are started as an ordinary cluster",
            ));
        }
    })
}

/// Endpoints named `<prefix>-1`, `<prefix>-2`, ... for `addrs`.
pub(super) fn named_endpoints(addrs: Vec<String>, prefix: &str) -> Vec<Endpoint> {
    addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| Endpoint {
            name: format!("{prefix}-{}", i + 1),
            addr,
            announced: None,
        })
        .collect()
}

/// Each member's inbound peer proxy, where a system's members share one
/// view of each other's addresses (etcd's membership list, the addresses
/// Redis replicas announce): cutting member `i` blackholes what reaches
/// it, both ways.
#[derive(Debug)]
pub(super) struct InboundPeers {
    /// Member i's inbound peer proxy.
    proxies: Vec<Proxy>,
}

impl InboundPeers {
    pub(super) fn new(proxies: Vec<Proxy>) -> Self {
        InboundPeers { proxies }
    }

    /// Blackholes member `i`'s inbound proxy, both ways.
    pub(super) fn isolate(&self, i: usize) {
        if let Some(p) = self.proxies.get(i) {
            p.partition();
        }
    }

    /// Blackholes what `source` sends through every member's proxy but
    /// member `except`'s (a member's connections to its peers come from
    /// its own loopback address).
    pub(super) fn cut_source(&self, except: usize, source: std::net::IpAddr) -> Result<()> {
        self.proxies
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != except)
            .try_for_each(|(_, p)| p.cut_source(source))
    }

    /// Removes every fault.
    pub(super) fn heal(&self) {
        for p in &self.proxies {
            p.heal();
        }
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
}
