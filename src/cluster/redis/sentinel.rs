//! Redis with Sentinel: a primary, replicas and `redis-server
//! --sentinel` processes on loopback, with the traffic between servers
//! (replication, sentinels' monitoring) through fault proxies.
//!
//! Each data server `i` listens on its real port (what lock clients use)
//! and has one inbound peer proxy ([`Proxy`]) in front of it, whose address
//! is the only one its peers and the sentinels know: replicas replicate
//! from the primary's proxy, every data server announces its own proxy as
//! its replica address (`replica-announce-ip/port`, so the primary's
//! `INFO replication`, and from it the sentinels, list the proxies), and
//! the sentinels monitor the primary at its proxy. Blackholing a proxy
//! ([`RedisSentinel::isolate`]) therefore cuts that server from its
//! replicas or primary and from every sentinel, while clients on its real
//! port still reach it: the partition of the Redis docs' split-brain
//! warning.
//!
//! Not proxied: the sentinels' links to each other (votes, hello messages
//! sent directly). A sentinel announces its own real address, so there is
//! nothing to map; faults here split data servers, not sentinels.
//!
//! Sentinel is `redis-server <conf> --sentinel` (the same program as
//! `redis-sentinel`), each with its own writable configuration file in its
//! data directory, since Sentinel rewrites it as it learns.
//!
//! Every process stops when the topology drops ([`ServerProcess`] does
//! it), and the proxies with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Value;

use crate::cluster::topology::{
    InboundPeers, Members, Replicated, Role, check_index, data_dir, join_ordered,
    members_from_fields, named_endpoints, restart_member,
};
use crate::cluster::{
    Endpoint, Launch, PortReservation, ServerKind, ServerProcess, reserve_port, reserved_port,
};
use crate::error::{Error, Result};
use crate::net::Proxy;
use crate::net::clock::SkewControl;

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "lockbench";

/// How long the whole topology may take to be ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// After this long without an answer a sentinel deems a server down.
const DOWN_AFTER_MS: u64 = 1000;

/// Sentinel's failover timeout: also how long a failed failover waits
/// before the next try (twice this), so it is kept short.
const FAILOVER_TIMEOUT_MS: u64 = 5000;

/// How often readiness is asked.
const POLL: Duration = Duration::from_millis(100);

/// Bound on one question to one process.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

fn backend_error(endpoint: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "redis".into(),
        endpoint: endpoint.into(),
        message: message.into(),
    }
}

/// Sends one command to the server at `addr` on a fresh connection, all
/// within `timeout`.
async fn ask(addr: &str, cmd: redis::Cmd, timeout: Duration) -> std::result::Result<Value, String> {
    super::query_once(addr, &cmd, timeout, timeout).await
}

fn text(v: &Value) -> Option<String> {
    redis::from_redis_value_ref::<String>(v).ok()
}

/// Asks the Redis server at `addr` for its role now.
pub(in crate::cluster) async fn role_at(addr: &str) -> Role {
    role_of(ask(addr, redis::cmd("ROLE"), ASK_TIMEOUT).await)
}

/// The roles of the Redis servers at `addrs`, asked at once.
pub(super) async fn roles_at(addrs: Vec<String>) -> Vec<Role> {
    let asks = addrs
        .into_iter()
        .map(|addr| async move { role_at(&addr).await })
        .collect();
    join_ordered(asks).await
}

/// Starts Redis server `i` of `servers` again on its port and data
/// directory; returns once it answers `PING`, within the standalone
/// server's start timeout.
pub(super) async fn restart_at(servers: &mut [ServerProcess], i: usize) -> Result<()> {
    check_index("redis", i, servers.len())?;
    restart_member(
        &mut servers[i],
        super::START_TIMEOUT,
        Duration::from_millis(50),
        |addr| async move {
            ask(&addr, redis::cmd("PING"), ASK_TIMEOUT)
                .await
                .map(|_| ())
        },
    )
    .await
}

/// What a `ROLE` reply says: master → Leader, a replica whose link to its
/// primary is up (`connected`) → Follower, any other replica state (or a
/// sentinel) → NotServing.
fn role_of(reply: std::result::Result<Value, String>) -> Role {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return Role::Down(e),
    };
    let Value::Array(items) = reply else {
        return Role::NotServing(format!("unexpected ROLE reply {reply:?}"));
    };
    match items.first().and_then(text).as_deref() {
        Some("master") => Role::Leader,
        Some("slave") => match items.get(3).and_then(text) {
            Some(state) if state == "connected" => Role::Follower,
            Some(state) => Role::NotServing(format!("replica, link {state}")),
            None => Role::NotServing("replica, link state unknown".into()),
        },
        Some(other) => Role::NotServing(other.to_string()),
        None => Role::NotServing("empty ROLE reply".into()),
    }
}

/// `[ip, port]` from `SENTINEL get-master-addr-by-name` as `ip:port`.
fn master_addr(reply: &Value) -> Option<String> {
    let Value::Array(items) = reply else {
        return None;
    };
    let ip = text(items.first()?)?;
    let port = text(items.get(1)?)?;
    Some(format!("{ip}:{port}"))
}

/// A flat field/value reply (`SENTINEL master`, one entry of
/// `SENTINEL replicas`) as a map.
fn fields(reply: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    match reply {
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [k, v] = pair
                    && let (Some(k), Some(v)) = (text(k), text(v))
                {
                    out.insert(k, v);
                }
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let (Some(k), Some(v)) = (text(k), text(v)) {
                    out.insert(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

/// The sentinel configuration: monitor `lockbench` at the primary's proxy,
/// announce the sentinel's own real address.
fn sentinel_config(port: u16, dir: &Path, primary: &str, quorum: usize) -> String {
    let (ip, primary_port) = primary.rsplit_once(':').unwrap_or(("127.0.0.1", primary));
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         protected-mode no\n\
         daemonize no\n\
         dir {dir}\n\
         sentinel announce-ip 127.0.0.1\n\
         sentinel announce-port {port}\n\
         sentinel monitor {MASTER_NAME} {ip} {primary_port} {quorum}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
    )
}

/// A Redis primary with replicas, watched by sentinels. Data servers are
/// numbered from 0 (`redis-<i+1>`); server 0 is the first primary.
#[derive(Debug)]
pub struct RedisSentinel {
    servers: Vec<ServerProcess>,
    sentinels: Vec<ServerProcess>,
    /// Data server i's inbound peer proxy address (what peers and the
    /// sentinels know it by).
    announced: Vec<String>,
    version: String,
    /// Each data server's inbound peer proxy.
    peers: InboundPeers,
    /// Data server i's clock control, when started with
    /// [`RedisSentinel::start_with_clock`] (the sentinels keep real time).
    clocks: Vec<SkewControl>,
    /// Every server's and sentinel's port, held for the topology's life:
    /// its peer proxies bind port 0 before the servers start, and a
    /// killed server binds its port again (see [`PortReservation`]).
    _reserved: Vec<PortReservation>,
}

members_from_fields!(RedisSentinel);

impl RedisSentinel {
    /// Starts a primary, `replicas` replicas and `sentinels` sentinels,
    /// logging into `log_dir`; returns once every replica is in sync and
    /// every sentinel names the primary and sees the replicas and the other
    /// sentinels. The quorum is a majority of the sentinels (2 of 3).
    pub async fn start(replicas: usize, sentinels: usize, log_dir: &Path) -> Result<RedisSentinel> {
        RedisSentinel::start_inner(replicas, sentinels, log_dir, false).await
    }

    /// Like [`RedisSentinel::start`], with every data server running
    /// lockbench's clock skew library and its own control file (in its
    /// data directory, so a restarted member keeps its clock):
    /// [`RedisSentinel::take_clocks`] hands them over.
    pub async fn start_with_clock(
        replicas: usize,
        sentinels: usize,
        log_dir: &Path,
    ) -> Result<RedisSentinel> {
        RedisSentinel::start_inner(replicas, sentinels, log_dir, true).await
    }

    async fn start_inner(
        replicas: usize,
        sentinels: usize,
        log_dir: &Path,
        with_clock: bool,
    ) -> Result<RedisSentinel> {
        crate::cluster::start_on_fresh_ports("redis sentinel topology", || {
            RedisSentinel::start_once(replicas, sentinels, log_dir, with_clock)
        })
        .await
    }

    async fn start_once(
        replicas: usize,
        sentinels: usize,
        log_dir: &Path,
        with_clock: bool,
    ) -> Result<RedisSentinel> {
        if sentinels == 0 {
            return Err(backend_error("", "a Sentinel topology needs sentinels"));
        }
        let installed = crate::cluster::ensure_installed("redis", ServerKind::Redis)?;
        let n = replicas + 1;
        let mut ports = Vec::with_capacity(n);
        let mut peer_proxies = Vec::with_capacity(n);
        let mut reserved = Vec::with_capacity(n + sentinels);
        for _ in 0..n {
            let port = reserved_port(&mut reserved, reserve_port()?);
            ports.push(port);
            // The seed only draws jitter, which these links do not use.
            peer_proxies.push(Proxy::start(SocketAddr::from(([127, 0, 0, 1], port)), 0).await?);
        }
        let announced: Vec<String> = peer_proxies.iter().map(|p| p.addr().to_string()).collect();
        let primary_port = peer_proxies[0].addr().port();
        let deadline = Instant::now() + START_TIMEOUT;

        let mut servers = Vec::with_capacity(n);
        let mut clocks = Vec::new();
        for (i, &port) in ports.iter().enumerate() {
            let name = format!("redis-{}", i + 1);
            let dir = data_dir(&name)?;
            let own = peer_proxies[i].addr().port().to_string();
            // Every server announces its proxy, the primary too: after a
            // failover it may be demoted to a replica.
            let mut launch = super::prepare(&installed, port, dir.path())?
                .args(["--replica-announce-ip", "127.0.0.1"])
                .args(["--replica-announce-port", &own])
                // Redis 7 waits 5 s by default before a diskless full sync,
                // for more replicas to join it: that would delay the start
                // and every resync after a failover.
                .args(["--repl-diskless-sync-delay", "0"]);
            if i > 0 {
                launch = launch.args(["--replicaof", "127.0.0.1", &primary_port.to_string()]);
            }
            if with_clock {
                let clock = SkewControl::create(dir.path())?;
                launch.env.extend(clock.env());
                clocks.push(clock);
            }
            servers.push(ServerProcess::spawn(&name, log_dir, port, dir, launch)?);
        }
        let mut topology = RedisSentinel {
            servers,
            sentinels: Vec::new(),
            announced,
            version: String::new(),
            peers: InboundPeers::new(peer_proxies),
            clocks,
            _reserved: reserved,
        };
        // Replicas first, in sync, before any sentinel starts: a sentinel
        // learns the replicas from the primary's INFO, which it asks at
        // connect and then only every 10 s.
        topology.wait_replicas_up(deadline).await?;

        let quorum = sentinels / 2 + 1;
        for k in 0..sentinels {
            let name = format!("sentinel-{}", k + 1);
            let dir = data_dir(&name)?;
            let port = reserved_port(&mut topology._reserved, reserve_port()?);
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                sentinel_config(port, dir.path(), &topology.announced[0], quorum),
            )
            .map_err(|e| Error::io(&conf, e))?;
            let launch = Launch::new(&installed.binary).arg(&conf).arg("--sentinel");
            topology
                .sentinels
                .push(ServerProcess::spawn(&name, log_dir, port, dir, launch)?);
        }
        topology.wait_sentinels_ready(deadline).await?;
        let first = topology
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        topology.version = super::probe(&first).await.unwrap_or_default();
        Ok(topology)
    }

    /// Fails with the log tail of a process that exited.
    fn check_alive(&mut self) -> Result<()> {
        for s in self.servers.iter_mut().chain(self.sentinels.iter_mut()) {
            if let Some(status) = s.exited() {
                return Err(s.exited_error(status));
            }
        }
        Ok(())
    }

    /// Waits until the primary answers and every replica's link is up.
    async fn wait_replicas_up(&mut self, deadline: Instant) -> Result<()> {
        loop {
            self.check_alive()?;
            let roles = self.roles().await;
            let pending = roles.iter().enumerate().find(|(i, r)| {
                *r != if *i == 0 {
                    &Role::Leader
                } else {
                    &Role::Follower
                }
            });
            let Some((i, role)) = pending else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(self.servers[i]
                    .start_error(format!("not ready after {START_TIMEOUT:?} (role {role:?})")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every sentinel names server 0, sees every replica up
    /// and every other sentinel.
    async fn wait_sentinels_ready(&mut self, deadline: Instant) -> Result<()> {
        loop {
            self.check_alive()?;
            let asks = self
                .sentinel_addrs()
                .into_iter()
                .map(|addr| {
                    let primary = self.announced[0].clone();
                    let replicas = self.servers.len() - 1;
                    let others = self.sentinels.len() - 1;
                    async move { sentinel_ready(&addr, &primary, replicas, others).await }
                })
                .collect();
            let pending = join_ordered(asks)
                .await
                .into_iter()
                .enumerate()
                .find_map(|(k, r)| r.err().map(|why| (k, why)));
            let Some((k, why)) = pending else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(self.sentinels[k]
                    .start_error(format!("not ready after {START_TIMEOUT:?} ({why})")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Each data server's announced address (its inbound peer proxy): what
    /// the sentinels answer when asked for the primary.
    pub fn announced_addrs(&self) -> Vec<String> {
        self.announced.clone()
    }

    /// Each sentinel's address.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| s.addr()).collect()
    }

    /// The sentinel processes.
    pub fn sentinel_processes(&self) -> &[ServerProcess] {
        &self.sentinels
    }

    /// What each sentinel names as the primary now (its announced
    /// address), or why it did not answer.
    pub async fn primaries_named(&self) -> Vec<std::result::Result<String, String>> {
        let asks = self
            .sentinel_addrs()
            .into_iter()
            .map(|addr| async move {
                let mut cmd = redis::cmd("SENTINEL");
                cmd.arg("get-master-addr-by-name").arg(MASTER_NAME);
                let reply = ask(&addr, cmd, ASK_TIMEOUT).await?;
                master_addr(&reply).ok_or_else(|| format!("{addr}: no master named"))
            })
            .collect();
        join_ordered(asks).await
    }

    /// The primary a majority of sentinels name now, as a member index.
    pub async fn primary(&self) -> Option<usize> {
        let named = self.primaries_named().await;
        let mut votes: HashMap<String, usize> = HashMap::new();
        for addr in named.into_iter().flatten() {
            *votes.entry(addr).or_default() += 1;
        }
        let (addr, _) = votes
            .into_iter()
            .find(|(_, c)| c * 2 > self.sentinels.len())?;
        self.announced.iter().position(|a| *a == addr)
    }

    /// Cuts data server `i` from its peers and the sentinels (its inbound
    /// peer proxy carries nothing, both ways); clients still reach it.
    ///
    /// Every link that ends at `i` is cut: replicas replicating from it
    /// and the sentinels' command and hello links to it. A primary `i` is
    /// thus lost to the sentinels (they fail over) and to its replicas
    /// (which keep a stalled link: Redis notices only after `repl-timeout`,
    /// 60 s, unless the sentinels reconfigure them first). A replica `i`
    /// replicates through the *primary's* proxy, which stays open: it only
    /// loses the sentinels.
    pub fn isolate(&self, i: usize) -> Result<()> {
        check_index("redis", i, self.servers.len())?;
        self.peers.isolate(i);
        Ok(())
    }
}

#[async_trait]
impl Replicated for RedisSentinel {
    fn kind(&self) -> ServerKind {
        ServerKind::Redis
    }

    /// Asks every data server its role now (`ROLE`): master → Leader,
    /// replica with its link up → Follower.
    async fn roles(&self) -> Vec<Role> {
        roles_at(self.client_addrs()).await
    }

    /// The primary a majority of the sentinels name.
    async fn leader(&self) -> Option<usize> {
        self.primary().await
    }

    /// The data servers (each with the address its peers know it by),
    /// then the sentinels.
    fn endpoints(&self) -> Vec<Endpoint> {
        let mut eps = named_endpoints(self.client_addrs(), "redis");
        for (ep, a) in eps.iter_mut().zip(self.announced_addrs()) {
            ep.announced = Some(a);
        }
        eps.extend(named_endpoints(self.sentinel_addrs(), "sentinel"));
        eps
    }

    fn all_processes(&self) -> Vec<&ServerProcess> {
        self.servers.iter().chain(self.sentinels.iter()).collect()
    }

    fn take_clocks(&mut self) -> Vec<SkewControl> {
        std::mem::take(&mut self.clocks)
    }

    /// Starts data server `i` again on the same port (empty: no
    /// persistence; with the arguments it first had, so a first primary
    /// comes back as an empty primary until the sentinels demote it);
    /// returns once it answers `PING`, within the standalone server's
    /// start timeout.
    async fn restart(&mut self, i: usize) -> Result<()> {
        restart_at(&mut self.servers, i).await
    }

    /// Cuts each data server of `set` ([`RedisSentinel::isolate`]).
    fn isolate_set(&self, set: &[usize]) -> Result<()> {
        set.iter().try_for_each(|&i| self.isolate(i))
    }

    /// Removes every fault between servers.
    fn heal(&self) {
        self.peers.heal();
    }

    /// Stops every process, the sentinels too (also done on drop).
    fn stop(&mut self) {
        for s in self.servers.iter_mut().chain(self.sentinels.iter_mut()) {
            s.stop();
        }
    }
}

/// Whether the sentinel at `addr` names `primary`, sees `replicas` replicas
/// with their links up and `others` other sentinels.
async fn sentinel_ready(
    addr: &str,
    primary: &str,
    replicas: usize,
    others: usize,
) -> std::result::Result<(), String> {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name").arg(MASTER_NAME);
    let named = master_addr(&ask(addr, cmd, ASK_TIMEOUT).await?);
    if named.as_deref() != Some(primary) {
        return Err(format!("names {named:?}, not {primary}"));
    }
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("master").arg(MASTER_NAME);
    let master = fields(&ask(addr, cmd, ASK_TIMEOUT).await?);
    let seen_others = master
        .get("num-other-sentinels")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if seen_others < others {
        return Err(format!("sees {seen_others} other sentinels of {others}"));
    }
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("replicas").arg(MASTER_NAME);
    let listed = ask(addr, cmd, ASK_TIMEOUT).await?;
    let up = match &listed {
        Value::Array(entries) => entries
            .iter()
            .map(fields)
            .filter(|f| {
                f.get("flags").map(String::as_str) == Some("slave")
                    && f.get("master-link-status").map(String::as_str) == Some("ok")
            })
            .count(),
        _ => 0,
    };
    if up < replicas {
        return Err(format!("sees {up} replicas up of {replicas}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn role_replies_map_to_roles() {
        let master = Value::Array(vec![bulk("master"), Value::Int(10), Value::Array(vec![])]);
        assert_eq!(role_of(Ok(master)), Role::Leader);
        let replica = |state: &str| {
            Value::Array(vec![
                bulk("slave"),
                bulk("127.0.0.1"),
                Value::Int(6379),
                bulk(state),
                Value::Int(10),
            ])
        };
        assert_eq!(role_of(Ok(replica("connected"))), Role::Follower);
        assert!(matches!(
            role_of(Ok(replica("sync"))),
            Role::NotServing(ref s) if s.contains("sync")
        ));
        assert!(matches!(role_of(Err("refused".into())), Role::Down(_)));
    }

    #[test]
    fn sentinel_replies_parse() {
        let addr = Value::Array(vec![bulk("127.0.0.1"), bulk("4000")]);
        assert_eq!(master_addr(&addr).as_deref(), Some("127.0.0.1:4000"));
        assert_eq!(master_addr(&Value::Nil), None);
        let f = fields(&Value::Array(vec![
            bulk("flags"),
            bulk("slave"),
            bulk("num-other-sentinels"),
            bulk("2"),
        ]));
        assert_eq!(f.get("flags").map(String::as_str), Some("slave"));
        assert_eq!(f.get("num-other-sentinels").map(String::as_str), Some("2"));
    }

    #[test]
    fn sentinels_monitor_the_proxy_and_announce_themselves() {
        let cfg = sentinel_config(26000, Path::new("/d"), "127.0.0.1:4000", 2);
        assert!(
            cfg.contains("sentinel monitor lockbench 127.0.0.1 4000 2\n"),
            "{cfg}"
        );
        assert!(cfg.contains("sentinel announce-port 26000\n"), "{cfg}");
        assert!(cfg.contains("port 26000\n"), "{cfg}");
    }
}
