//! An etcd cluster on loopback. etcd members share one membership list
//! (the cluster id is derived from it), so every member must see the same
//! peer URLs and per-pair proxies are impossible: each member listens on
//! its real peer port and advertises the port of one inbound proxy (see
//! [`EtcdCluster::isolate`] for what that cuts).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cluster::topology::{
    InboundPeers, Members, PEER_PATIENCE, POLL, Replicated, Role, START_TIMEOUT, backend_error,
    check_index, data_dir, join_ordered, loopback, members_from_fields, restart_member,
};
use crate::cluster::{
    Launch, PortReservation, ServerKind, ServerProcess, reserve_port, reserved_port,
};
use crate::error::Result;
use crate::net::Proxy;

/// An etcd cluster on loopback: member `i` listens for peers on its real
/// peer port and advertises the address of its own inbound proxy, which
/// forwards to it. Members are numbered from 0 (named `lockbench-<i+1>`).
#[derive(Debug)]
pub struct EtcdCluster {
    servers: Vec<ServerProcess>,
    /// Each member's inbound peer proxy.
    peers: InboundPeers,
    /// Member i's id, as etcd reports it (filled at start).
    ids: Vec<u64>,
    version: String,
    /// Which etcd: Debian's or a pinned version.
    kind: ServerKind,
    /// Every member's client and peer ports, held for the cluster's life:
    /// its peer proxies bind port 0 before the members start, and a
    /// killed member binds its ports again (see [`PortReservation`]).
    _reserved: Vec<PortReservation>,
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
    pub async fn start(n: usize, kind: ServerKind, log_dir: &Path) -> Result<EtcdCluster> {
        crate::cluster::start_on_fresh_ports("etcd cluster", || {
            EtcdCluster::start_once(n, kind, log_dir)
        })
        .await
    }

    async fn start_once(n: usize, kind: ServerKind, log_dir: &Path) -> Result<EtcdCluster> {
        if n == 0 {
            return Err(backend_error("etcd", "", "a cluster needs members"));
        }
        let installed = crate::cluster::ensure_installed(kind.name(), kind)?;
        let mut client_ports = Vec::with_capacity(n);
        let mut peer_ports = Vec::with_capacity(n);
        let mut peer_proxies = Vec::with_capacity(n);
        let mut reserved = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let client = reserved_port(&mut reserved, reserve_port()?);
            let peer = reserved_port(&mut reserved, reserve_port()?);
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
            peers: InboundPeers::new(peer_proxies),
            ids: vec![0; n],
            version: String::new(),
            kind,
            _reserved: reserved,
        };
        cluster.wait_ready(START_TIMEOUT).await?;
        let first = cluster
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        cluster.version = super::probe(&first).await.unwrap_or_default();
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

    /// The member a majority of members name as the leader now.
    pub async fn named_leader(&self) -> Option<usize> {
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
        self.named_leader()
            .await
            .map(|_| ())
            .ok_or_else(|| "no leader named by a majority".to_string())
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
        self.peers.isolate(i);
        Ok(())
    }

    /// Where member `i`'s data directory is (for tests and reports).
    pub fn data_dir(&self, i: usize) -> Option<PathBuf> {
        self.servers.get(i).map(|s| s.data_dir().to_path_buf())
    }
}

members_from_fields!(EtcdCluster);

#[async_trait]
impl Replicated for EtcdCluster {
    fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Leader (the one a majority names), follower, or why a member
    /// serves no linearizable read.
    async fn roles(&self) -> Vec<Role> {
        let (seen, leader) = (self.serving().await, self.named_leader().await);
        seen.into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(()) if Some(i) == leader => Role::Leader,
                Ok(()) => Role::Follower,
                Err(e) => Role::NotServing(e),
            })
            .collect()
    }

    async fn leader(&self) -> Option<usize> {
        self.named_leader().await
    }

    /// Starts member `i` again with the same ports and data directory (it
    /// rejoins as the same member); returns once it serves a linearizable
    /// read (within [`START_TIMEOUT`]).
    async fn restart(&mut self, i: usize) -> Result<()> {
        check_index("etcd", i, self.servers.len())?;
        restart_member(
            &mut self.servers[i],
            START_TIMEOUT,
            POLL,
            |addr| async move { etcd_serves(&addr).await },
        )
        .await
    }

    /// Cuts what reaches each member of `set` ([`EtcdCluster::isolate`]),
    /// so members of `set` do not reach each other either.
    fn isolate_set(&self, set: &[usize]) -> Result<()> {
        set.iter().try_for_each(|&i| self.isolate(i))
    }

    fn heal(&self) {
        self.peers.heal();
    }
}
