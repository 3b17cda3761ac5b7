//! Real servers for the backends: started here, or given as endpoints.
//!
//! A started server gets a free 127.0.0.1 port, its own temporary data
//! directory and a log file in the run directory; lockbench waits until it
//! really serves (each kind has its own probe), and it stops when its
//! [`ServerProcess`] drops, on Ctrl-C (the binary calls [`kill_all`]), and
//! when lockbench dies, even by SIGKILL (each server is spawned with
//! `PR_SET_PDEATHSIG`). Servers the user runs (`docker compose up`, a real
//! deployment) are used through their endpoints as they are.
//!
//! Each kind of server is one file with the same four parts: `locate` (the
//! installed binaries, or a hint), `prepare` (data directory and arguments),
//! `probe` (serving yet? which version?) and `START_TIMEOUT`.

pub mod driver;
mod etcd;
pub mod hazelcast;
pub mod hooks;
pub(crate) mod mariadb;
mod memcached;
mod postgres;
mod process;
pub(crate) mod redis;
pub mod topology;
mod zookeeper;

pub use redis::sentinel;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use process::{
    Launch, PortReservation, START_ATTEMPTS, ServerProcess, descendants, find_binary, find_runtime,
    free_port, kill_all, port_race, proc_pids, reserve_port, reserved_port, spawn_tracked,
    start_on_fresh_ports, untrack,
};

use crate::error::{Error, Result};
use crate::net::clock::{self, LeaseClock, SkewControl};
use crate::summary::ServerInfo;

/// The kinds of server lockbench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `redis-server`.
    Redis,
    /// `memcached`.
    Memcached,
    /// ZooKeeper standalone (`ZooKeeperServerMain` from the Debian jars).
    ZooKeeper,
    /// ZooKeeper 3.9, its jars fetched from Maven Central by the install
    /// script (`tools/zookeeper39`), beside Debian's 3.8.
    ZooKeeper39,
    /// `etcd` (Debian's package: 3.4).
    Etcd,
    /// etcd 3.6, built from its Go modules by the install script
    /// (`tools/etcd36`), beside Debian's 3.4.
    Etcd36,
    /// MariaDB (`mariadbd`).
    MariaDb,
    /// PostgreSQL (`postgres`).
    Postgres,
    /// Hazelcast members with the CP subsystem (from the Hazelcast jar).
    Hazelcast,
}

/// A version of a server kind that lockbench builds or fetches itself, beside
/// the version the distribution packages: the same server, so everything but
/// where it is installed follows its family ([`ServerKind::family`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    /// The kind it is a version of.
    pub family: ServerKind,
    /// The version, as its name says it (`3.6`).
    pub version: &'static str,
    /// Where the install script puts it, relative to the checkout.
    pub built: &'static str,
    /// The variable that names another build instead.
    pub env: &'static str,
    /// The file that pins its exact version, relative to the checkout.
    pub pin: &'static str,
}

impl Pinned {
    /// Where it is: `$env` if set, else the install script's build.
    pub fn path(self) -> PathBuf {
        std::env::var_os(self.env)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(self.built))
    }

    /// Says it is missing, and how to get it.
    fn missing(self, path: &Path) -> String {
        format!(
            "{} (scripts/install-backends.sh builds it from {}, or set {})",
            path.display(),
            self.pin,
            self.env
        )
    }
}

/// Where a kind's programs are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The server program (for ZooKeeper: `java`).
    pub binary: PathBuf,
    /// Whatever else it needs (jars, `initdb`, `mariadb-install-db`).
    pub extra: Vec<PathBuf>,
}

impl ServerKind {
    /// Every kind.
    pub const ALL: [ServerKind; 9] = [
        ServerKind::Redis,
        ServerKind::Memcached,
        ServerKind::ZooKeeper,
        ServerKind::ZooKeeper39,
        ServerKind::Etcd,
        ServerKind::Etcd36,
        ServerKind::MariaDb,
        ServerKind::Postgres,
        ServerKind::Hazelcast,
    ];

    /// The kind called `name` (as [`ServerKind::name`] says it).
    pub fn from_name(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The version lockbench builds or fetches itself, for a kind that is
    /// one; `None` for the distribution's servers.
    pub fn pinned(self) -> Option<Pinned> {
        match self {
            ServerKind::ZooKeeper39 => Some(Pinned {
                family: ServerKind::ZooKeeper,
                version: "3.9",
                built: "tools/zookeeper39/target/lib",
                env: "LOCKBENCH_ZOOKEEPER39",
                pin: "tools/zookeeper39/pom.xml",
            }),
            ServerKind::Etcd36 => Some(Pinned {
                family: ServerKind::Etcd,
                version: "3.6",
                built: "tools/etcd36/bin/etcd",
                env: "LOCKBENCH_ETCD36",
                pin: "tools/etcd36/go.mod",
            }),
            _ => None,
        }
    }

    /// The kind this is a version of (itself, for the distribution's).
    pub fn family(self) -> ServerKind {
        self.pinned().map_or(self, |p| p.family)
    }

    /// Short name, used for server names (`redis-1`).
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis",
            ServerKind::Memcached => "memcached",
            ServerKind::ZooKeeper => "zookeeper",
            ServerKind::ZooKeeper39 => "zookeeper-3.9",
            ServerKind::Etcd => "etcd",
            ServerKind::Etcd36 => "etcd-3.6",
            ServerKind::MariaDb => "mariadb",
            ServerKind::Postgres => "postgres",
            ServerKind::Hazelcast => "hazelcast",
        }
    }

    /// The Debian/Ubuntu package that provides it (for a pinned version,
    /// the file that pins it).
    pub fn package(self) -> &'static str {
        if let Some(pinned) = self.pinned() {
            return pinned.pin;
        }
        match self {
            ServerKind::Redis => "redis-server",
            ServerKind::Memcached => "memcached",
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => "zookeeper",
            ServerKind::Etcd | ServerKind::Etcd36 => "etcd-server",
            ServerKind::MariaDb => "mariadb-server",
            ServerKind::Postgres => "postgresql",
            // Not a Debian package: the JVM drivers' Maven build brings it.
            ServerKind::Hazelcast => "maven (drivers/java/pom.xml)",
        }
    }

    /// One line telling how to get the server.
    pub fn install_hint(self) -> String {
        if self == ServerKind::Hazelcast {
            return "run scripts/install-backends.sh: it builds the JVM drivers with Maven, which \
                    copies the Hazelcast jar (pinned in drivers/java/pom.xml) into \
                    drivers/java/target/hazelcast/"
                .into();
        }
        if let Some(pinned) = self.pinned() {
            return format!(
                "run scripts/install-backends.sh: it builds {} {} (the version {} pins) into {}",
                pinned.family.name(),
                pinned.version,
                pinned.pin,
                pinned.built
            );
        }
        format!(
            "install it with scripts/install-backends.sh (Debian/Ubuntu package {}), \
             or run `docker compose up -d {}` and point the scenario at it with \
             [endpoints] <backend> = \"127.0.0.1:PORT\"",
            self.package(),
            self.name()
        )
    }

    /// Finds the installed programs.
    pub fn locate(self) -> std::result::Result<Installed, String> {
        if let Some(pinned) = self.pinned() {
            let path = pinned.path();
            return match pinned.family {
                ServerKind::ZooKeeper => zookeeper::locate_built(&path),
                ServerKind::Etcd => etcd::locate_built(&path),
                // No other family has a pinned version.
                _ => None,
            }
            .ok_or_else(|| pinned.missing(&path));
        }
        match self {
            ServerKind::Redis => redis::locate(),
            ServerKind::Memcached => memcached::locate(),
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => zookeeper::locate(),
            ServerKind::Etcd | ServerKind::Etcd36 => etcd::locate(),
            ServerKind::MariaDb => mariadb::locate(),
            ServerKind::Postgres => postgres::locate(),
            ServerKind::Hazelcast => hazelcast::locate(),
        }
    }

    /// Writes what the server needs into `data_dir` and says how to start it
    /// on `port`. Blocking (it may run `initdb`).
    fn prepare(self, installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
        match self {
            ServerKind::Redis => redis::prepare(installed, port, data_dir),
            ServerKind::Memcached => memcached::prepare(installed, port, data_dir),
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => {
                zookeeper::prepare(installed, port, data_dir)
            }
            ServerKind::Etcd | ServerKind::Etcd36 => etcd::prepare(installed, port, data_dir),
            ServerKind::MariaDb => mariadb::prepare(installed, port, data_dir),
            ServerKind::Postgres => postgres::prepare(installed, port, data_dir),
            ServerKind::Hazelcast => hazelcast::prepare(installed, port, data_dir),
        }
    }

    /// Whether the server at `addr` serves; if so, its version.
    pub async fn probe(self, addr: &str) -> std::result::Result<String, String> {
        match self {
            ServerKind::Redis => redis::probe(addr).await,
            ServerKind::Memcached => memcached::probe(addr).await,
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => zookeeper::probe(addr).await,
            ServerKind::Etcd | ServerKind::Etcd36 => etcd::probe(addr).await,
            ServerKind::MariaDb => mariadb::probe(addr).await,
            ServerKind::Postgres => postgres::probe(addr).await,
            ServerKind::Hazelcast => hazelcast::probe(addr).await,
        }
    }

    /// Which clock this kind's leases follow, if lockbench can skew it; if not, why
    /// not.
    pub fn lease_clock(self) -> std::result::Result<LeaseClock, String> {
        clock::require_library()?;
        match self {
            // Measured (tests/clock_skew.rs): TIME jumps by the offset, and at
            // rate 10 a 5 s key (PX 5000) is gone after about 0.5 s.
            ServerKind::Redis => Ok(LeaseClock::Wall),
            // Measured by hand with memcached 1.6: with the wall clock at rate
            // 10 a 3 s key lives its 3 s; with CLOCK_MONOTONIC at rate 10 a
            // 20 s key is gone after 2.0 s and a 30 s key after 3.0 s.
            // memcached ticks its clock once a second, so expiry is early by
            // up to one tick's worth of fake seconds (rate x 1 s).
            ServerKind::Memcached => Ok(LeaseClock::Monotonic),
            ServerKind::Etcd | ServerKind::Etcd36 => {
                Err("etcd is a Go program: Go reads the clock through the vDSO \
                                     without calling libc, so a preload library cannot skew it"
                    .into())
            }
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => {
                Err("ZooKeeper (Java) expires sessions by the JVM's \
                                          System.nanoTime (CLOCK_MONOTONIC); whether the preload \
                                          library reaches the JVM's clock has not been measured, \
                                          so it is not offered"
                    .into())
            }
            ServerKind::MariaDb => Err("lockbench does not skew MariaDB's clock: GET_LOCK and \
                                        row locks have no lease (they end with the session), and \
                                        whether the preload library reaches mysqld's NOW(6), \
                                        which mysql-table's leases are compared with, has not \
                                        been measured"
                .into()),
            ServerKind::Postgres => Err(
                "PostgreSQL advisory locks have no lease: they end with the \
                                         session, so a skewed clock changes nothing"
                    .into(),
            ),
            ServerKind::Hazelcast => Err("Hazelcast (Java) expires CP sessions by the JVM's \
                                          clock; whether the preload library reaches it has not \
                                          been measured, so it is not offered"
                .into()),
        }
    }

    /// Whether servers of this kind can have their lease clock skewed with
    /// [`SkewControl`]; if not, why not. [`ServerKind::lease_clock`] says
    /// which clock.
    pub fn skew_support(self) -> std::result::Result<(), String> {
        self.lease_clock().map(|_| ())
    }

    /// How long a start may take before it is a failure.
    fn start_timeout(self) -> Duration {
        match self {
            ServerKind::Redis => redis::START_TIMEOUT,
            ServerKind::Memcached => memcached::START_TIMEOUT,
            ServerKind::ZooKeeper | ServerKind::ZooKeeper39 => zookeeper::START_TIMEOUT,
            ServerKind::Etcd | ServerKind::Etcd36 => etcd::START_TIMEOUT,
            ServerKind::MariaDb => mariadb::START_TIMEOUT,
            ServerKind::Postgres => postgres::START_TIMEOUT,
            ServerKind::Hazelcast => hazelcast::START_TIMEOUT,
        }
    }
}

/// Starts one server of `kind` named `name`; returns it, ready, with its
/// version.
pub async fn start_server(
    kind: ServerKind,
    name: &str,
    log_dir: &Path,
) -> Result<(ServerProcess, String)> {
    start_server_inner(kind, name, log_dir, false)
        .await
        .map(|(server, version, _)| (server, version))
}

/// Like [`start_server`], with the clock skew library preloaded and its
/// control file in the server's data directory (see [`crate::net::clock`]).
pub async fn start_server_with_clock(
    kind: ServerKind,
    name: &str,
    log_dir: &Path,
) -> Result<(ServerProcess, String, SkewControl)> {
    require_skew(kind)?;
    let (server, version, clock) = start_server_inner(kind, name, log_dir, true).await?;
    match clock {
        Some(clock) => Ok((server, version, clock)),
        None => Err(server.start_error("started without its clock control")),
    }
}

/// Fails, saying why, when servers of `kind` cannot run with a skewed clock.
fn require_skew(kind: ServerKind) -> Result<()> {
    kind.skew_support().map_err(|message| Error::Backend {
        backend: kind.name().into(),
        endpoint: String::new(),
        message: format!("cannot skew this server's clock: {message}"),
    })
}

async fn start_server_inner(
    kind: ServerKind,
    name: &str,
    log_dir: &Path,
    with_clock: bool,
) -> Result<(ServerProcess, String, Option<SkewControl>)> {
    let installed = kind.locate().map_err(|why| Error::MissingServer {
        backend: kind.name().into(),
        binary: why,
        hint: kind.install_hint(),
    })?;
    start_on_fresh_ports(name, || async {
        let reserved = reserve_port()?;
        let port = reserved.port();
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("lockbench-{name}-"))
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let dir = data_dir.path().to_path_buf();
        let inst = installed.clone();
        let mut launch = tokio::task::spawn_blocking(move || kind.prepare(&inst, port, &dir))
            .await
            .map_err(|e| Error::io("prepare", std::io::Error::other(e)))??;
        // The control file lives in the data directory, so a restart (same
        // directory, same Launch) keeps the server's skewed clock.
        let clock = if with_clock {
            let clock = SkewControl::create(data_dir.path())?;
            launch.env.extend(clock.env());
            Some(clock)
        } else {
            None
        };
        let mut server =
            ServerProcess::spawn(name, log_dir, port, data_dir, launch)?.holding(reserved);
        let version = wait_ready(kind, &mut server).await?;
        Ok((server, version, clock))
    })
    .await
}

/// Waits until `server` serves; its version.
pub async fn wait_ready(kind: ServerKind, server: &mut ServerProcess) -> Result<String> {
    let timeout = kind.start_timeout();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = server.exited() {
            return Err(server.exited_error(status));
        }
        let why = match kind.probe(&server.addr()).await {
            Ok(version) => return Ok(version),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(server.start_error(format!("not serving after {timeout:?} ({why})")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The servers a backend runs on (`topology =`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// What each recipe needs at least: one server (Redlock: five
    /// independent masters). The default.
    Single,
    /// What users deploy for availability: Redis with Sentinel, a
    /// ZooKeeper ensemble, an etcd cluster (each backend names its own).
    Replicated,
    /// What users deploy to shard: a Redis Cluster.
    Cluster,
}

/// An address clients connect to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The server's name in the cluster (`redis-1`).
    pub name: String,
    /// `host:port`.
    pub addr: String,
    /// The address the server's peers know it by, where that differs
    /// from `addr` (a replicated topology's inbound peer proxy): Sentinel
    /// answers with it, and clients map it back to `addr`.
    pub announced: Option<String>,
}

/// The servers one backend uses during one run.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Which kind (`None` for in-process backends).
    kind: Option<ServerKind>,
    /// Servers started here; dropping them stops them.
    servers: Vec<ServerProcess>,
    /// Where clients connect, in order.
    endpoints: Vec<Endpoint>,
    /// What summary.json says about each server.
    infos: Vec<ServerInfo>,
    /// Each server's clock control, when started with
    /// [`Cluster::start_with_clock`] (same order as `servers`).
    clocks: Vec<SkewControl>,
    /// A replicated topology, which owns its processes (then `servers`
    /// is empty and member operations go to it).
    replicated: Option<Box<dyn topology::Replicated>>,
    /// The replicated shape asked for, if any (independent masters have
    /// no [`topology::Replicated`], only this).
    shape: Option<topology::Shape>,
    /// A deployment lockbench did not start, and the hooks that act on it.
    deployment: Option<hooks::Deployment>,
}

impl Cluster {
    /// No servers (in-process backends).
    pub fn none() -> Self {
        Cluster::default()
    }

    /// Starts `count` servers of `kind`, logging into `log_dir`.
    pub async fn start(kind: ServerKind, count: usize, log_dir: &Path) -> Result<Cluster> {
        Cluster::start_inner(kind, count, log_dir, false).await
    }

    /// Like [`Cluster::start`], but every server runs with lockbench's clock
    /// skew library and its own control file: [`Cluster::set_clock`] skews
    /// it. Refused for kinds that cannot be skewed
    /// ([`ServerKind::skew_support`] says why).
    pub async fn start_with_clock(
        kind: ServerKind,
        count: usize,
        log_dir: &Path,
    ) -> Result<Cluster> {
        Cluster::start_inner(kind, count, log_dir, true).await
    }

    async fn start_inner(
        kind: ServerKind,
        count: usize,
        log_dir: &Path,
        with_clock: bool,
    ) -> Result<Cluster> {
        let mut cluster = Cluster {
            kind: Some(kind),
            ..Cluster::default()
        };
        if with_clock {
            require_skew(kind)?;
        }
        if kind == ServerKind::Hazelcast {
            for (server, version) in hazelcast::start_members(count, log_dir).await? {
                cluster.push_started(server, version, log_dir);
            }
            return Ok(cluster);
        }
        for i in 1..=count {
            let name = format!("{}-{i}", kind.name());
            let server = if with_clock {
                let (server, version, clock) =
                    start_server_with_clock(kind, &name, log_dir).await?;
                cluster.clocks.push(clock);
                (server, version)
            } else {
                start_server(kind, &name, log_dir).await?
            };
            let (server, version) = server;
            cluster.push_started(server, version, log_dir);
        }
        Ok(cluster)
    }

    /// Adds a started, ready server (its endpoint and what summary.json
    /// says of it).
    fn push_started(&mut self, server: ServerProcess, version: String, log_dir: &Path) {
        let name = server.name().to_string();
        self.endpoints.push(Endpoint {
            name: name.clone(),
            addr: server.addr(),
            announced: None,
        });
        self.infos.push(ServerInfo {
            name,
            addr: server.addr(),
            version,
            started_by_lockbench: true,
            log: server
                .log_path()
                .strip_prefix(log_dir)
                .ok()
                .map(|p| p.display().to_string()),
        });
        self.servers.push(server);
    }

    /// Starts the replicated topology `shape`, logging into `log_dir`.
    pub async fn start_replicated(shape: topology::Shape, log_dir: &Path) -> Result<Cluster> {
        Cluster::start_replicated_inner(shape, log_dir, false).await
    }

    /// Like [`Cluster::start_replicated`], with every data server (not the
    /// sentinels) running lockbench's clock skew library, as
    /// [`Cluster::start_with_clock`]: one member's clock can then be
    /// skewed. Refused where the members cannot be skewed (ZooKeeper,
    /// etcd: [`ServerKind::lease_clock`] says why).
    pub async fn start_replicated_with_clock(
        shape: topology::Shape,
        log_dir: &Path,
    ) -> Result<Cluster> {
        Cluster::start_replicated_inner(shape, log_dir, true).await
    }

    async fn start_replicated_inner(
        shape: topology::Shape,
        log_dir: &Path,
        with_clock: bool,
    ) -> Result<Cluster> {
        if let topology::Shape::Masters(n) = shape {
            let mut cluster = Cluster::start_inner(shape.kind(), n, log_dir, with_clock).await?;
            cluster.shape = Some(shape);
            return Ok(cluster);
        }
        let mut replicated = topology::start(shape, log_dir, with_clock).await?;
        let clocks = replicated.take_clocks();
        let version = replicated.version().to_string();
        let endpoints = replicated.endpoints();
        let infos = replicated
            .all_processes()
            .into_iter()
            .map(|p| ServerInfo {
                name: p.name().to_string(),
                addr: p.addr(),
                version: version.clone(),
                started_by_lockbench: true,
                log: p
                    .log_path()
                    .strip_prefix(log_dir)
                    .ok()
                    .map(|p| p.display().to_string()),
            })
            .collect();
        Ok(Cluster {
            kind: Some(replicated.kind()),
            servers: Vec::new(),
            endpoints,
            infos,
            clocks,
            replicated: Some(replicated),
            shape: Some(shape),
            deployment: None,
        })
    }

    /// The replicated shape this cluster was started as (`None`: a single
    /// server per backend server, as `topology = "single"`).
    pub fn shape(&self) -> Option<topology::Shape> {
        self.shape
    }

    /// Every member's role, asked now; `None` when the servers do not
    /// replicate (a single server, independent masters).
    pub async fn roles(&self) -> Option<Vec<topology::Role>> {
        if let (Some(d), Some(kind)) = (&self.deployment, self.kind) {
            // Independent masters replicate nothing: no roles, as started here.
            if matches!(self.shape, None | Some(topology::Shape::Masters(_))) {
                return None;
            }
            return Some(topology::ask_roles(kind, &d.data_members()).await);
        }
        match &self.replicated {
            Some(r) => Some(r.roles().await),
            None => None,
        }
    }

    /// The member that leads now (the primary, for Sentinel). A single
    /// server leads itself; independent masters have no leader.
    pub async fn leader(&self) -> std::result::Result<usize, String> {
        if self.deployment.is_some() {
            return match self.roles().await {
                Some(roles) => topology::single_leader(&roles)
                    .ok_or_else(|| format!("no member leads now: {roles:?}")),
                None if self.member_count() == 1 => Ok(0),
                None => Err("the deployment's members are independent: none leads".into()),
            };
        }
        match &self.replicated {
            Some(r) => r
                .leader()
                .await
                .ok_or_else(|| "no member leads now".to_string()),
            None if self.servers.len() == 1 => Ok(0),
            None => Err(format!(
                "the {} servers are independent: none leads",
                self.servers.len()
            )),
        }
    }

    /// The member serving `key` as primary now and its replicas (a Redis
    /// Cluster's shard).
    pub async fn shard_of(&self, key: &str) -> std::result::Result<(usize, Vec<usize>), String> {
        match &self.replicated {
            Some(r) => r.shard_of(key).await,
            None => Err("only a Redis Cluster (topology = \"cluster\") has shards".into()),
        }
    }

    /// Cuts the members in `set` from the other members (traffic between
    /// servers only; clients still reach every member).
    pub fn isolate(&self, set: &[usize]) -> Result<()> {
        match &self.replicated {
            Some(r) => r.isolate_set(set),
            None => Err(self.no_links(set.first().copied().unwrap_or(0))),
        }
    }

    /// Makes member `bridge` the only link between two halves of the
    /// other members ([`topology::Replicated::bridge`]).
    pub fn bridge(&self, bridge: usize) -> Result<()> {
        match &self.replicated {
            Some(r) => r.bridge(bridge),
            None => Err(self.no_links(bridge)),
        }
    }

    /// Why links between servers cannot be cut here (at server `i`).
    fn no_links(&self, i: usize) -> Error {
        self.error_at(
            i,
            "these servers do not talk to each other: there is no link between \
             them to cut (use topology = \"replicated\")"
                .into(),
        )
    }

    /// Removes every fault between members.
    pub fn heal_members(&self) {
        if let Some(r) = &self.replicated {
            r.heal();
        }
    }

    /// Servers run by the user at `addrs`; asks each for its version.
    pub async fn external(kind: ServerKind, addrs: &[String]) -> Result<Cluster> {
        let mut cluster = Cluster {
            kind: Some(kind),
            ..Cluster::default()
        };
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("{}-{}", kind.name(), i + 1);
            let version = kind.probe(addr).await.map_err(|message| Error::Backend {
                backend: kind.name().into(),
                endpoint: addr.clone(),
                message,
            })?;
            cluster.endpoints.push(Endpoint {
                name: name.clone(),
                addr: addr.clone(),
                announced: None,
            });
            cluster.infos.push(ServerInfo {
                name,
                addr: addr.clone(),
                version,
                started_by_lockbench: false,
                log: None,
            });
        }
        Ok(cluster)
    }

    /// A deployment the user runs: asks each member for its version, and
    /// acts on it through its hooks. Clients get the data members (named
    /// by kind, `redis-1`...) then the sentinels (`sentinel-1`...), as from
    /// a topology lockbench starts.
    pub async fn deployment(kind: ServerKind, deployment: hooks::Deployment) -> Result<Cluster> {
        let mut cluster = Cluster {
            kind: Some(kind),
            shape: deployment.shape(kind),
            ..Cluster::default()
        };
        let data = deployment.data_members();
        let sentinels = deployment.sentinels();
        let named = data
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("{}-{}", kind.name(), i + 1), *m))
            .chain(
                sentinels
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (format!("sentinel-{}", i + 1), *m)),
            );
        for (endpoint_name, m) in named {
            let version = if m.role == "sentinel" {
                String::from("sentinel")
            } else {
                kind.probe(&m.addr)
                    .await
                    .map_err(|message| Error::Backend {
                        backend: kind.name().into(),
                        endpoint: format!("{} ({})", m.addr, m.name),
                        message,
                    })?
            };
            cluster.endpoints.push(Endpoint {
                name: endpoint_name,
                addr: m.addr.clone(),
                announced: m.announce.clone(),
            });
            cluster.infos.push(ServerInfo {
                name: m.name.clone(),
                addr: m.addr.clone(),
                version,
                started_by_lockbench: false,
                log: None,
            });
        }
        cluster.deployment = Some(deployment);
        Ok(cluster)
    }

    /// The deployment this cluster acts on through hooks, if it is one.
    pub fn hooked(&self) -> Option<&hooks::Deployment> {
        self.deployment.as_ref()
    }

    /// How many members faults can target: the data servers started here,
    /// or a deployment's data members.
    pub fn member_count(&self) -> usize {
        match &self.deployment {
            Some(d) => d.data_members().len(),
            None => self.servers().len(),
        }
    }

    /// Where clients connect.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The servers, for summary.json.
    pub fn infos(&self) -> &[ServerInfo] {
        &self.infos
    }

    /// The processes started here (empty for external endpoints): a
    /// replicated topology's data servers, not its sentinels.
    pub fn servers(&self) -> &[ServerProcess] {
        match &self.replicated {
            Some(r) => r.servers(),
            None => &self.servers,
        }
    }

    /// Every process started here, helpers included (a Sentinel
    /// topology's sentinels), in the order of [`Cluster::infos`].
    pub fn processes(&self) -> Vec<&ServerProcess> {
        match &self.replicated {
            Some(r) => r.all_processes(),
            None => self.servers.iter().collect(),
        }
    }

    /// The PIDs of the servers started here.
    pub fn pids(&self) -> Vec<u32> {
        self.servers().iter().map(|s| s.pid()).collect()
    }

    /// Kills server `i` with SIGKILL and starts it again on the same port
    /// and data directory; returns when it serves again.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        if let Some(r) = &mut self.replicated {
            return r.restart(i).await;
        }
        let (Some(kind), Some(server)) = (self.kind, self.servers.get_mut(i)) else {
            return Err(Error::Backend {
                backend: self.kind.map_or("inproc", |k| k.name()).into(),
                endpoint: String::new(),
                message: format!("no server {i} started by lockbench to restart"),
            });
        };
        server.restart()?;
        wait_ready(kind, server).await.map(|_| ())
    }

    /// Kills server `i` with SIGKILL and leaves it down; [`Cluster::restart`]
    /// brings it back on the same port and data directory.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(r) = &mut self.replicated {
            return r.kill(i);
        }
        let server = self.server_mut(i)?;
        server.stop();
        Ok(())
    }

    /// Sends `signal` (SIGSTOP, SIGCONT) to server `i`'s process group.
    pub fn signal(&self, i: usize, signal: i32) -> Result<()> {
        match self.servers().get(i) {
            Some(s) => {
                s.signal(signal);
                Ok(())
            }
            None => Err(self.no_server(i)),
        }
    }

    /// Whether the servers run with the clock skew library.
    pub fn has_clock_control(&self) -> bool {
        !self.clocks.is_empty()
    }

    /// Server `i`'s clock control, if it was started with
    /// [`Cluster::start_with_clock`].
    pub fn clock(&self, i: usize) -> Result<&SkewControl> {
        self.clocks.get(i).ok_or_else(|| {
            self.error_at(
                i,
                format!(
                    "server {} was not started with clock control (Cluster::start_with_clock)",
                    i + 1
                ),
            )
        })
    }

    /// Skews the clock server `i`'s leases follow: jumps it by `offset_ns`
    /// now and runs it at `rate` from now on; the server keeps running.
    /// Wall-clock kinds (redis) take both ([`SkewControl::set`]);
    /// monotonic-clock kinds (memcached) take only a rate and refuse a
    /// non-zero offset ([`SkewControl::set_monotonic_rate`]).
    pub fn set_clock(&self, i: usize, offset_ns: i64, rate: f64) -> Result<()> {
        let clock = self.clock(i)?;
        let kind = self.kind.ok_or_else(|| self.no_server(i))?;
        match kind.lease_clock() {
            Ok(LeaseClock::Wall) => clock.set(offset_ns, rate),
            Ok(LeaseClock::Monotonic) if offset_ns == 0 => clock.set_monotonic_rate(rate),
            Ok(LeaseClock::Monotonic) => Err(self.error_at(
                i,
                format!(
                    "{}'s expiry follows its monotonic clock, which cannot jump: \
                     use a rate (clock drift), not an offset",
                    kind.name()
                ),
            )),
            Err(message) => Err(self.error_at(i, message)),
        }
    }

    /// Puts server `i`'s clock back to real time ([`SkewControl::reset`]).
    pub fn reset_clock(&self, i: usize) -> Result<()> {
        self.clock(i)?.reset();
        Ok(())
    }

    /// Puts every server's clock back to real time (for the end of a run).
    pub fn reset_clocks(&self) {
        for c in &self.clocks {
            c.reset();
        }
    }

    fn server_mut(&mut self, i: usize) -> Result<&mut ServerProcess> {
        let err = self.no_server(i);
        self.servers.get_mut(i).ok_or(err)
    }

    /// An error about server `i`, naming its address.
    fn error_at(&self, i: usize, message: String) -> Error {
        Error::Backend {
            backend: self.kind.map_or("inproc", |k| k.name()).into(),
            endpoint: self
                .endpoints
                .get(i)
                .map(|e| e.addr.clone())
                .unwrap_or_default(),
            message,
        }
    }

    fn no_server(&self, i: usize) -> Error {
        self.error_at(i, format!("no server {} started by lockbench", i + 1))
    }

    /// Stops every server now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(r) = &mut self.replicated {
            r.stop();
        }
        for s in &mut self.servers {
            s.stop();
        }
    }
}

/// Checks that the programs for `kind` are installed.
pub fn ensure_installed(backend: &str, kind: ServerKind) -> Result<Installed> {
    kind.locate().map_err(|binary| Error::MissingServer {
        backend: backend.to_string(),
        binary,
        hint: kind.install_hint(),
    })
}

/// Finds `binary` or says which one is missing (for `locate`).
pub(crate) fn require_binary(binary: &str) -> std::result::Result<PathBuf, String> {
    find_binary(binary).ok_or_else(|| binary.to_string())
}
