//! Real servers for the backends: started here, or given as endpoints.
//!
//! A started server gets a free 127.0.0.1 port, its own temporary data
//! directory and a log file in the run directory; lockbench waits until it
//! really serves, and it stops when its [`ServerProcess`] drops, on Ctrl-C
//! (the binary calls [`kill_all`]), and when lockbench dies, even by SIGKILL
//! (each server is spawned with `PR_SET_PDEATHSIG`). Servers the user runs
//! (`docker compose up`, a real deployment) are used through their
//! endpoints as they are.

mod process;
mod redis;

use std::path::{Path, PathBuf};

pub use process::{ServerProcess, find_binary, free_port, kill_all};

use crate::error::{Error, Result};
use crate::summary::ServerInfo;

/// The kinds of server lockbench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `redis-server`.
    Redis,
}

impl ServerKind {
    /// Short name, used for server names (`redis-1`) and endpoint tables.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis",
        }
    }

    /// The binary that must be installed.
    pub fn binary(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis-server",
        }
    }

    /// One line telling how to get the server.
    pub fn install_hint(self) -> String {
        let package = match self {
            ServerKind::Redis => "redis-server",
        };
        format!(
            "install it with scripts/install-backends.sh (Debian/Ubuntu package {package}), \
             or run `docker compose up -d {}` and point the scenario at it with \
             [endpoints] {} = \"127.0.0.1:PORT\"",
            self.name(),
            self.name()
        )
    }
}

/// An address clients connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The server's name in the cluster (`redis-1`).
    pub name: String,
    /// `host:port`.
    pub addr: String,
}

/// The servers one backend uses during one run.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Servers started here; dropping them stops them.
    servers: Vec<ServerProcess>,
    /// Where clients connect, in order.
    endpoints: Vec<Endpoint>,
    /// What summary.json says about each server.
    infos: Vec<ServerInfo>,
}

impl Cluster {
    /// No servers (in-process backends).
    pub fn none() -> Self {
        Cluster::default()
    }

    /// Starts `count` servers of `kind`, logging into `log_dir`.
    pub async fn start(kind: ServerKind, count: usize, log_dir: &Path) -> Result<Cluster> {
        let mut cluster = Cluster::default();
        for i in 1..=count {
            let name = format!("{}-{i}", kind.name());
            let (server, version) = match kind {
                ServerKind::Redis => redis::start(&name, log_dir).await?,
            };
            cluster.endpoints.push(Endpoint {
                name: name.clone(),
                addr: server.addr(),
            });
            cluster.infos.push(ServerInfo {
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
            cluster.servers.push(server);
        }
        Ok(cluster)
    }

    /// Servers run by the user at `addrs`; asks each for its version.
    pub async fn external(kind: ServerKind, addrs: &[String]) -> Result<Cluster> {
        let mut cluster = Cluster::default();
        for (i, addr) in addrs.iter().enumerate() {
            let name = format!("{}-{}", kind.name(), i + 1);
            let version = match kind {
                ServerKind::Redis => {
                    redis::version(addr)
                        .await
                        .map_err(|message| Error::Backend {
                            backend: kind.name().into(),
                            endpoint: addr.clone(),
                            message,
                        })?
                }
            };
            cluster.endpoints.push(Endpoint {
                name: name.clone(),
                addr: addr.clone(),
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

    /// Where clients connect.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The servers, for summary.json.
    pub fn infos(&self) -> &[ServerInfo] {
        &self.infos
    }

    /// The processes started here (empty for external endpoints).
    pub fn servers(&self) -> &[ServerProcess] {
        &self.servers
    }

    /// The PIDs of the servers started here.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.pid()).collect()
    }

    /// Stops every server now (also done on drop).
    pub fn stop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
    }
}

/// Whether `LOCKBENCH_REQUIRE_BACKENDS=1`: a missing server is an error,
/// not a skip.
pub fn backends_required() -> bool {
    std::env::var("LOCKBENCH_REQUIRE_BACKENDS").is_ok_and(|v| v == "1" || v == "true")
}

/// Checks that the binary for `kind` is installed.
pub fn ensure_installed(backend: &str, kind: ServerKind) -> Result<PathBuf> {
    find_binary(kind.binary()).ok_or_else(|| Error::MissingServer {
        backend: backend.to_string(),
        binary: kind.binary().to_string(),
        hint: kind.install_hint(),
    })
}
