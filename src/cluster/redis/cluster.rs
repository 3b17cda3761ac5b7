//! Redis Cluster: primaries and their replicas on loopback, sharding the
//! 16384 hash slots, with the traffic between nodes through fault proxies.
//!
//! Each node `i` listens on its real client port (what lock clients use)
//! and its real cluster bus port (`cluster-port`), and has two inbound peer
//! proxies in front of them. A node announces only its proxies
//! (`cluster-announce-port`, `cluster-announce-bus-port`), so its peers'
//! bus links and its replicas' replication links go through them, and
//! blackholing both ([`RedisCluster::isolate`]) cuts node `i` from the
//! cluster bus and from its replicas, while clients on its real port still
//! reach it: the partition of the Redis Cluster specification's write-loss
//! window ("a client in the minority partition with a master ... may write
//! to it until the node timeout"). `CLUSTER SLOTS` and `MOVED` name the
//! proxies, so clients map each announced address to the real one
//! ([`Endpoint::announced`]), as they map NAT'ed addresses.
//!
//! A node's own connections to its peers (its bus links, a replica's
//! replication link) come from an address of its own, `127.0.0.(10 + i)`
//! (`bind-source-addr`), so a cut also blackholes them in the other
//! nodes' proxies ([`Proxy::cut_source`]): Redis counts any data received
//! from a node, on either link, as a sign of life, so cutting only what
//! reaches node `i` would leave it alive in its peers' eyes.
//!
//! The cluster is formed by `redis-cli --cluster create` over the
//! announced addresses, each node keeping its `nodes.conf` in its own data
//! directory (so a killed node restarts into the cluster it knew). The node
//! timeout is [`NODE_TIMEOUT_MS`]: a primary cut off is failed over by its
//! replica about that long later, plus the replicas' election.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Value;

use super::sentinel::{restart_at, role_at, roles_at};
use crate::cluster::topology::{
    InboundPeers, Members, Replicated, Role, check_index, data_dir, join_ordered,
    members_from_fields,
};
use crate::cluster::{
    Endpoint, PortReservation, ServerKind, ServerProcess, find_binary, reserve_port, reserved_port,
};
use crate::error::{Error, Result};
use crate::net::Proxy;

/// How long the whole cluster may take to form.
pub const START_TIMEOUT: Duration = Duration::from_secs(40);

/// `cluster-node-timeout`: after this long without an answer a node is
/// suspected (PFAIL), and a majority of primaries agreeing makes it FAIL.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// How often readiness is asked.
const POLL: Duration = Duration::from_millis(100);

/// Bound on one question to one node.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The number of hash slots.
const SLOTS: u16 = 16384;

/// At most this many nodes: each connects from its own `127.0.0.N`, N < 64.
const MAX_NODES: usize = 50;

/// The loopback address node `i` connects to its peers from.
fn source_of(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 10 + i as u8])
}

fn backend_error(endpoint: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "redis".into(),
        endpoint: endpoint.into(),
        message: message.into(),
    }
}

async fn ask(addr: &str, cmd: redis::Cmd) -> std::result::Result<Value, String> {
    super::query_once(addr, &cmd, ASK_TIMEOUT, ASK_TIMEOUT).await
}

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with (the
/// specification's appendix: polynomial 0x1021, initial value 0).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key`: of its hash tag (the text between the first `{`
/// and the next `}`, when not empty), else of the whole key.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % SLOTS
}

/// One line of `CLUSTER NODES`: the announced client address, whether it
/// is a primary, the primary it replicates, and the slots it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeLine {
    id: String,
    addr: String,
    primary: bool,
    failed: bool,
    replicates: Option<String>,
    slots: Vec<(u16, u16)>,
}

/// Parses `CLUSTER NODES` (`<id> <ip:port@cport[,hostname]> <flags>
/// <primary> <ping> <pong> <epoch> <link> <slot> ...`).
fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next()?.to_string();
            let flags: Vec<&str> = f[2].split(',').collect();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                addr,
                primary: flags.contains(&"master"),
                failed: flags.contains(&"fail"),
                replicates: (f[3] != "-").then(|| f[3].to_string()),
                slots,
            })
        })
        .collect()
}

/// A Redis Cluster lockbench started.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<ServerProcess>,
    /// Each node's announced client address (its client proxy).
    announced: Vec<String>,
    /// Each node's inbound client-port proxy (replication, `redis-cli`).
    client_peers: InboundPeers,
    /// Each node's inbound bus proxy.
    bus_peers: InboundPeers,
    version: String,
    /// Every node's client and bus ports, held for the cluster's life.
    _reserved: Vec<PortReservation>,
}

members_from_fields!(RedisCluster);

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each, logging
    /// into `log_dir`; returns once every node says the cluster is ok,
    /// knows every other node, and every replica's link is up.
    pub async fn start(primaries: usize, replicas: usize, log_dir: &Path) -> Result<RedisCluster> {
        crate::cluster::start_on_fresh_ports("redis cluster", || {
            RedisCluster::start_once(primaries, replicas, log_dir)
        })
        .await
    }

    async fn start_once(primaries: usize, replicas: usize, log_dir: &Path) -> Result<RedisCluster> {
        if primaries < 3 {
            return Err(backend_error(
                "",
                "a Redis Cluster needs at least 3 primaries (redis-cli refuses fewer)",
            ));
        }
        let installed = crate::cluster::ensure_installed("redis", ServerKind::Redis)?;
        let cli = find_binary("redis-cli").ok_or_else(|| Error::MissingServer {
            backend: "redis".into(),
            binary: "redis-cli".into(),
            hint: ServerKind::Redis.install_hint(),
        })?;
        let n = primaries * (1 + replicas);
        if n > MAX_NODES {
            return Err(backend_error(
                "",
                format!("at most {MAX_NODES} nodes, not {n}"),
            ));
        }
        let mut reserved = Vec::with_capacity(2 * n);
        let (mut client_proxies, mut bus_proxies) = (Vec::new(), Vec::new());
        let mut servers = Vec::with_capacity(n);
        for i in 0..n {
            let port = reserved_port(&mut reserved, reserve_port()?);
            let bus = reserved_port(&mut reserved, reserve_port()?);
            let loopback = |p| SocketAddr::from(([127, 0, 0, 1], p));
            let client_proxy = Proxy::start(loopback(port), 0).await?;
            let bus_proxy = Proxy::start(loopback(bus), 0).await?;
            let name = format!("redis-{}", i + 1);
            let dir = data_dir(&name)?;
            let launch = super::prepare(&installed, port, dir.path())?
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-announce-ip", "127.0.0.1"])
                .args([
                    "--cluster-announce-port",
                    &client_proxy.addr().port().to_string(),
                ])
                .args([
                    "--cluster-announce-bus-port",
                    &bus_proxy.addr().port().to_string(),
                ])
                // A replica may fail over however long its link was down
                // (the default refuses after 10 node timeouts).
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--bind-source-addr", &source_of(i).to_string()])
                .args(["--repl-diskless-sync-delay", "0"]);
            servers.push(ServerProcess::spawn(&name, log_dir, port, dir, launch)?);
            client_proxies.push(client_proxy);
            bus_proxies.push(bus_proxy);
        }
        let announced: Vec<String> = client_proxies
            .iter()
            .map(|p| p.addr().to_string())
            .collect();
        let mut cluster = RedisCluster {
            servers,
            announced,
            client_peers: InboundPeers::new(client_proxies),
            bus_peers: InboundPeers::new(bus_proxies),
            version: String::new(),
            _reserved: reserved,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        cluster.wait_each_answers(deadline).await?;
        cluster.create(&cli, replicas, log_dir).await?;
        cluster.wait_formed(deadline).await?;
        let first = cluster
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        cluster.version = super::probe(&first).await.unwrap_or_default();
        Ok(cluster)
    }

    /// Waits until every node answers `PING`.
    async fn wait_each_answers(&mut self, deadline: Instant) -> Result<()> {
        for i in 0..self.servers.len() {
            loop {
                if let Some(status) = self.servers[i].exited() {
                    return Err(self.servers[i].exited_error(status));
                }
                let addr = self.servers[i].addr();
                match ask(&addr, redis::cmd("PING")).await {
                    Ok(_) => break,
                    Err(why) if Instant::now() >= deadline => {
                        return Err(self.servers[i].start_error(format!("no PING answer ({why})")));
                    }
                    Err(_) => tokio::time::sleep(POLL).await,
                }
            }
        }
        Ok(())
    }

    /// `redis-cli --cluster create` over the announced addresses, bounded
    /// by the start timeout and stopped with lockbench; its output goes to
    /// `redis-cli.log`.
    async fn create(&mut self, cli: &Path, replicas: usize, log_dir: &Path) -> Result<()> {
        let log = log_dir.join("redis-cli.log");
        let mut command = vec![
            cli.display().to_string(),
            "--cluster".into(),
            "create".into(),
        ];
        command.extend(self.announced.iter().cloned());
        command.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let status = crate::cluster::hooks::run_bounded(
            &command,
            &log,
            START_TIMEOUT,
            &format!("the cluster did not form; see {}", log.display()),
        )
        .await
        .map_err(|why| backend_error("", format!("redis-cli --cluster create: {why}")))?;
        if status != 0 {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            return Err(backend_error(
                "",
                format!(
                    "redis-cli --cluster create exited {status}: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ),
            ));
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok`, knows every node,
    /// and every replica's link to its primary is up.
    async fn wait_formed(&mut self, deadline: Instant) -> Result<()> {
        let n = self.servers.len();
        loop {
            let asks = self
                .client_addrs()
                .into_iter()
                .map(|addr| async move {
                    let info = ask(&addr, redis::cmd("CLUSTER").arg("INFO").clone()).await?;
                    let info: String = redis::from_redis_value(info).map_err(|e| e.to_string())?;
                    let ok = info.lines().any(|l| l.trim() == "cluster_state:ok");
                    let known = info
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("cluster_known_nodes:"))
                        .and_then(|v| v.parse::<usize>().ok());
                    if !ok || known != Some(n) {
                        return Err(format!("{addr}: state ok {ok}, knows {known:?} of {n}"));
                    }
                    match role_at(&addr).await {
                        Role::Leader | Role::Follower => Ok(()),
                        other => Err(format!("{addr}: {other:?}")),
                    }
                })
                .collect();
            let pending = join_ordered(asks)
                .await
                .into_iter()
                .enumerate()
                .find_map(|(i, r)| r.err().map(|why| (i, why)));
            let Some((i, why)) = pending else {
                return Ok(());
            };
            if let Some(status) = self.servers[i].exited() {
                return Err(self.servers[i].exited_error(status));
            }
            if Instant::now() >= deadline {
                return Err(self.servers[i].start_error(format!(
                    "cluster not formed after {START_TIMEOUT:?} ({why})"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Cuts node `i` from the cluster bus and from its replicas (both of
    /// its inbound proxies blackholed); its clients still reach it.
    pub fn isolate(&self, i: usize) -> Result<()> {
        check_index("redis", i, self.servers.len())?;
        self.client_peers.isolate(i);
        self.bus_peers.isolate(i);
        self.client_peers.cut_source(i, source_of(i))?;
        self.bus_peers.cut_source(i, source_of(i))
    }
}

#[async_trait]
impl Replicated for RedisCluster {
    fn kind(&self) -> ServerKind {
        ServerKind::Redis
    }

    /// Every node's `ROLE` now: primaries lead (each its own shard).
    async fn roles(&self) -> Vec<Role> {
        roles_at(self.client_addrs()).await
    }

    /// No single leader: each shard has its primary (target
    /// `primary-of:KEY`).
    async fn leader(&self) -> Option<usize> {
        None
    }

    /// Every node, named `redis-cluster-N`, with the address its peers and
    /// `CLUSTER SLOTS` know it by.
    fn endpoints(&self) -> Vec<Endpoint> {
        self.client_addrs()
            .into_iter()
            .zip(&self.announced)
            .enumerate()
            .map(|(i, (addr, announced))| Endpoint {
                name: format!("redis-cluster-{}", i + 1),
                addr,
                announced: Some(announced.clone()),
            })
            .collect()
    }

    /// Starts node `i` again on its ports and data directory (its
    /// `nodes.conf` brings it back into the cluster, empty: no
    /// persistence); returns once it answers `PING`.
    async fn restart(&mut self, i: usize) -> Result<()> {
        restart_at(&mut self.servers, i).await
    }

    fn isolate_set(&self, set: &[usize]) -> Result<()> {
        set.iter().try_for_each(|&i| self.isolate(i))
    }

    /// The shard of `key` now, as the first node that answers sees it: the
    /// member that serves its slot as primary, and that primary's replicas.
    async fn shard_of(&self, key: &str) -> std::result::Result<(usize, Vec<usize>), String> {
        let slot = key_slot(key);
        let mut last = String::from("no node answered");
        for addr in self.client_addrs() {
            let reply = match ask(&addr, redis::cmd("CLUSTER").arg("NODES").clone()).await {
                Ok(r) => r,
                Err(why) => {
                    last = why;
                    continue;
                }
            };
            let text: String = redis::from_redis_value(reply).map_err(|e| e.to_string())?;
            let nodes = parse_nodes(&text);
            let member = |line: &NodeLine| self.announced.iter().position(|a| *a == line.addr);
            let Some(primary) = nodes.iter().find(|l| {
                l.primary && !l.failed && l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            }) else {
                last = format!("{addr}: no primary serves slot {slot}");
                continue;
            };
            let replicas = nodes
                .iter()
                .filter(|l| l.replicates.as_deref() == Some(&primary.id))
                .filter_map(member)
                .collect();
            return member(primary)
                .map(|p| (p, replicas))
                .ok_or_else(|| format!("{}: not a member", primary.addr));
        }
        Err(last)
    }

    fn heal(&self) {
        self.client_peers.heal();
        self.bus_peers.heal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_specification() {
        // The specification's test vector: CRC16("123456789") = 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Hash tags: only the text inside the first {...} counts.
        assert_eq!(key_slot("lockbench:{lock}"), key_slot("lock"));
        assert_eq!(key_slot("lockbench:{lock}:fence"), key_slot("lock"));
        assert_eq!(key_slot("{}lock"), crc16(b"{}lock") % SLOTS);
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot("foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
    }

    #[test]
    fn cluster_nodes_lines_parse() {
        let text = "a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:30002@40002 master,fail - 0 0 2 connected 5461-10922 12000\n\
                    c3 127.0.0.1:30003@40003,host slave a1 0 0 1 connected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].addr, "127.0.0.1:30001");
        assert!(nodes[0].primary && !nodes[0].failed);
        assert_eq!(nodes[0].slots, vec![(0, 5460)]);
        assert!(nodes[1].failed);
        assert_eq!(nodes[1].slots, vec![(5461, 10922), (12000, 12000)]);
        assert_eq!(nodes[2].replicates.as_deref(), Some("a1"));
        assert!(!nodes[2].primary);
    }
}
