//! A ZooKeeper ensemble on loopback: `QuorumPeerMain` servers, each
//! server's own `zoo.cfg` listing itself at its real quorum and election
//! ports and every other server `j` at the ports of two proxies dedicated
//! to the directed pair (this server → `j`), one per port. A partition
//! between `i` and `j` blackholes both directed pairs, and nothing else.
//! ZooKeeper (3.8, Debian) accepts these addresses; but its election
//! connections from a higher `myid` to a lower one go to the address the
//! lower server announces (its real port), around the proxies: a
//! partition destroys those with `ss -K` (root), see
//! [`ZkEnsemble::partition`].

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cluster::topology::{
    Members, PEER_PATIENCE, POLL, Replicated, Role, START_TIMEOUT, backend_error, check_index,
    data_dir, join_ordered, loopback, members_from_fields, restart_member, single_leader,
};
use crate::cluster::{
    Installed, Launch, PortReservation, ServerKind, ServerProcess, reserve_port, reserved_port,
};
use crate::error::{Error, Result};
use crate::net::Proxy;

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
    /// Which ZooKeeper: Debian's or a pinned version.
    kind: ServerKind,
    /// Every member's three ports, held for the ensemble's life: a member
    /// binds its quorum port only once elected, and binds all three again
    /// after a kill (see [`PortReservation`]).
    _reserved: Vec<PortReservation>,
}

/// The `zoo.cfg` of member `me` (0-based): itself at its real ports, every
/// other member at the proxies of the pair (me → other).
fn zk_config(
    me: usize,
    ports: &[ZkPorts],
    proxied: &HashMap<(usize, usize), (u16, u16)>,
    data: &Path,
) -> String {
    let mut cfg = super::base_config(ports[me].client, data);
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
    super::launch(
        installed,
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        cfg,
    )
}

/// Asks the ZooKeeper server at `addr` for its role now (`srvr`).
pub(in crate::cluster) async fn role_at(addr: &str) -> Role {
    zk_role(super::four_letter_word(addr, "srvr").await)
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
    pub async fn start(n: usize, kind: ServerKind, log_dir: &Path) -> Result<ZkEnsemble> {
        crate::cluster::start_on_fresh_ports("zookeeper ensemble", || {
            ZkEnsemble::start_once(n, kind, log_dir)
        })
        .await
    }

    async fn start_once(n: usize, kind: ServerKind, log_dir: &Path) -> Result<ZkEnsemble> {
        if n == 0 {
            return Err(backend_error("zookeeper", "", "an ensemble needs members"));
        }
        let installed = crate::cluster::ensure_installed(kind.name(), kind)?;
        let mut ports = Vec::with_capacity(n);
        let mut reserved = Vec::with_capacity(3 * n);
        for _ in 0..n {
            ports.push(ZkPorts {
                client: reserved_port(&mut reserved, reserve_port()?),
                quorum: reserved_port(&mut reserved, reserve_port()?),
                election: reserved_port(&mut reserved, reserve_port()?),
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
            kind,
            _reserved: reserved,
        };
        ensemble.wait_ready(START_TIMEOUT).await?;
        let first = ensemble
            .client_addrs()
            .into_iter()
            .next()
            .unwrap_or_default();
        ensemble.version = super::probe(&first).await.unwrap_or_default();
        Ok(ensemble)
    }

    /// Member `i`'s real (quorum, election) ports.
    pub fn peer_ports(&self, i: usize) -> Option<(u16, u16)> {
        self.ports.get(i).map(|p| (p.quorum, p.election))
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
}

members_from_fields!(ZkEnsemble);

#[async_trait]
impl Replicated for ZkEnsemble {
    fn kind(&self) -> ServerKind {
        self.kind
    }

    /// Asks every member `srvr` now.
    async fn roles(&self) -> Vec<Role> {
        let asks = self
            .servers
            .iter()
            .map(|s| {
                let addr = s.addr();
                async move { zk_role(super::four_letter_word(&addr, "srvr").await) }
            })
            .collect::<Vec<_>>();
        join_ordered(asks).await
    }

    /// Starts member `i` again on the same ports and data directory;
    /// returns once it answers `srvr` as leader or follower (within
    /// [`START_TIMEOUT`]), which needs a quorum.
    async fn restart(&mut self, i: usize) -> Result<()> {
        check_index("zookeeper", i, self.servers.len())?;
        restart_member(
            &mut self.servers[i],
            START_TIMEOUT,
            POLL,
            |addr| async move {
                match zk_role(super::four_letter_word(&addr, "srvr").await) {
                    role if role.is_serving() => Ok(()),
                    role => Err(format!("{role:?}")),
                }
            },
        )
        .await
    }

    /// Cuts every member of `set` from every member outside it (members of
    /// `set` still reach each other): a majority/minority split when `set`
    /// is a minority.
    fn isolate_set(&self, set: &[usize]) -> Result<()> {
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
    fn bridge(&self, bridge: usize) -> Result<()> {
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
    fn heal(&self) {
        for link in self.links.values() {
            link.heal();
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

#[cfg(test)]
mod tests {
    use super::*;

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
