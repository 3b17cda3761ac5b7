//! The one registry of backends: everything lockbench knows about a
//! backend (its name, the server it needs and how many, its replicated
//! topology, how its waiters learn the lock is free, whether it is broken
//! on purpose, how to build it) is declared once, by the file of its
//! recipe, and collected here. Nothing else matches backend names.
//!
//! Backends declared at run time (a scenario's lock-library drivers) join
//! the built-in ones in a [`Registry`] of their own.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use super::LockBackend;
use super::driver::{DriverSpec, HostPlace};
use crate::cluster::topology::Shape;
use crate::cluster::{Endpoint, ServerKind};
use crate::error::{Error, Result};

/// How a backend is built over its servers' endpoints, for one host.
type Builder = Arc<
    dyn Fn(
            Vec<Endpoint>,
            HostPlace,
        ) -> Pin<Box<dyn Future<Output = Result<Arc<dyn LockBackend>>> + Send>>
        + Send
        + Sync,
>;

/// How a backend's waiters learn that the lock is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiters {
    /// The server (or the process) tells them; how, in a few words.
    Notified(String),
    /// They ask again, with backoff.
    Poll,
}

impl fmt::Display for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiters::Notified(how) => write!(f, "notified ({how})"),
            Waiters::Poll => f.write_str("poll (retry with backoff)"),
        }
    }
}

/// What lockbench knows about one backend.
#[derive(Clone)]
pub struct BackendInfo {
    /// The name used in scenarios.
    pub name: String,
    /// The server it needs, or `None` for in-process.
    pub server: Option<ServerKind>,
    /// How many independent servers of that kind it uses.
    pub servers: usize,
    /// What `topology = "replicated"` starts for it (what users deploy
    /// for availability), if lockbench has one.
    pub replicated: Option<Shape>,
    /// What `topology = "cluster"` starts for it (a Redis Cluster), if it
    /// runs on one.
    pub clustered: Option<Shape>,
    /// How its waiters learn the lock is free.
    pub waiters: Waiters,
    /// The recipe in one line.
    pub recipe: String,
    /// Whether this recipe is deliberately broken (it exists to be caught).
    pub broken: bool,
    /// For a lock library: how its driver runs (one process per host).
    pub driver: Option<DriverSpec>,
    /// What must be installed besides the server (a driver's interpreter
    /// and files), with the hint that installs it.
    pub requires: Vec<(PathBuf, String)>,
    /// How long the servers keep a silent holder's lock when that is not
    /// the lease a client asks for: a session's timeout (ZooKeeper
    /// libraries, Hazelcast's CP sessions) or a watchdog's (Redisson).
    /// `None`: the lease.
    pub session: Option<std::time::Duration>,
    /// How to build it.
    build: Builder,
}

impl fmt::Debug for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendInfo")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("servers", &self.servers)
            .field("replicated", &self.replicated)
            .field("clustered", &self.clustered)
            .field("waiters", &self.waiters)
            .field("recipe", &self.recipe)
            .field("broken", &self.broken)
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

impl BackendInfo {
    /// A backend called `name` on one server of `server` (none:
    /// in-process), polling, built by `build`.
    pub fn new<F, Fut>(
        name: impl Into<String>,
        server: Option<ServerKind>,
        recipe: impl Into<String>,
        build: F,
    ) -> Self
    where
        F: Fn(Vec<Endpoint>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<dyn LockBackend>>> + Send + 'static,
    {
        BackendInfo {
            name: name.into(),
            server,
            servers: usize::from(server.is_some()),
            replicated: None,
            clustered: None,
            waiters: Waiters::Poll,
            recipe: recipe.into(),
            broken: false,
            driver: None,
            requires: Vec::new(),
            session: None,
            build: Arc::new(move |eps, _| Box::pin(build(eps))),
        }
    }

    /// A lock library run by its driver (drivers/PROTOCOL.md), one process
    /// per host, on `servers` servers of `server`.
    pub fn driver(
        spec: DriverSpec,
        server: ServerKind,
        servers: usize,
        recipe: impl Into<String>,
    ) -> Self {
        let for_build = spec.clone();
        BackendInfo {
            name: spec.name.clone(),
            server: Some(server),
            servers,
            replicated: None,
            clustered: None,
            waiters: Waiters::Poll,
            recipe: recipe.into(),
            broken: false,
            driver: Some(spec),
            requires: Vec::new(),
            session: None,
            build: Arc::new(move |eps, place| {
                let spec = for_build.clone();
                Box::pin(async move { super::driver::connect(&spec, &eps, &place).await })
            }),
        }
    }

    /// Needs `path` installed; `hint` says how.
    pub fn requires(mut self, path: PathBuf, hint: impl Into<String>) -> Self {
        self.requires.push((path, hint.into()));
        self
    }

    /// What is missing for it besides its server (the path), with the
    /// hint that installs it.
    pub fn missing(&self) -> Option<(String, String)> {
        self.requires
            .iter()
            .find(|(p, _)| !p.exists())
            .map(|(p, hint)| (p.display().to_string(), hint.clone()))
    }

    /// Uses `n` independent servers.
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// The servers keep a silent holder's lock for `d`, whatever lease it
    /// asked for (see [`BackendInfo::session`]).
    pub fn session(mut self, d: std::time::Duration) -> Self {
        self.session = Some(d);
        self
    }

    /// How long the servers keep the lock of a holder that stops talking
    /// to them, given the lease it asked for.
    pub fn hold_limit(&self, lease: std::time::Duration) -> std::time::Duration {
        self.session.unwrap_or(lease)
    }

    /// Runs on `shape` under `topology = "replicated"`.
    pub fn replicated(mut self, shape: Shape) -> Self {
        self.replicated = Some(shape);
        self
    }

    /// Runs on `shape` under `topology = "cluster"`.
    pub fn clustered(mut self, shape: Shape) -> Self {
        self.clustered = Some(shape);
        self
    }

    /// What `topology` starts for it: `None` for one server (or Redlock's
    /// masters), else its replicated or cluster shape, if it has one.
    pub fn shape(&self, topology: crate::cluster::Topology) -> Option<Shape> {
        match topology {
            crate::cluster::Topology::Single => None,
            crate::cluster::Topology::Replicated => self.replicated,
            crate::cluster::Topology::Cluster => self.clustered,
        }
    }

    /// Its waiters are notified, `how`.
    pub fn notified(mut self, how: impl Into<String>) -> Self {
        self.waiters = Waiters::Notified(how.into());
        self
    }

    /// Broken on purpose.
    pub fn broken(mut self) -> Self {
        self.broken = true;
        self
    }

    /// Builds the backend over `endpoints` (empty for in-process).
    pub async fn build(&self, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
        let place = HostPlace {
            host: 1,
            log_dir: std::env::temp_dir(),
        };
        (self.build)(endpoints.to_vec(), place).await
    }

    /// Builds the backend for the clients of one host (a driver backend
    /// starts that host's process, logging into `place.log_dir`).
    pub async fn build_for(
        &self,
        endpoints: &[Endpoint],
        place: HostPlace,
    ) -> Result<Arc<dyn LockBackend>> {
        (self.build)(endpoints.to_vec(), place).await
    }
}

/// A set of backends by name: the built-in ones, plus those a scenario
/// declares.
#[derive(Debug, Clone)]
pub struct Registry {
    /// In the order users see them.
    backends: Vec<BackendInfo>,
}

impl Registry {
    /// Every backend lockbench has, one list from each recipe's file.
    pub fn builtin() -> &'static Registry {
        static BUILTIN: OnceLock<Registry> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut backends = Vec::new();
            backends.extend(super::inproc::backends());
            backends.extend(super::redis::backends());
            backends.extend(super::redlock::backends());
            backends.extend(super::memcached::backends());
            backends.extend(super::zookeeper::backends());
            backends.extend(super::etcd::backends());
            backends.extend(super::mysql::backends());
            backends.extend(super::postgres::backends());
            backends.extend(super::libraries::backends());
            Registry { backends }
        })
    }

    /// The built-in backends and `extra`; fails naming a name declared
    /// twice.
    pub fn with(extra: Vec<BackendInfo>) -> std::result::Result<Registry, String> {
        let mut all = Registry::builtin().clone();
        for b in extra {
            if all.get(&b.name).is_some() {
                return Err(format!("backend {:?} is declared twice", b.name));
            }
            all.backends.push(b);
        }
        Ok(all)
    }

    /// The backend called `name`.
    pub fn get(&self, name: &str) -> Option<&BackendInfo> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The backend called `name`, or the one "unknown backend" error.
    pub fn require(&self, name: &str) -> Result<&BackendInfo> {
        self.get(name).ok_or_else(|| Error::Backend {
            backend: name.to_string(),
            endpoint: String::new(),
            message: format!("unknown backend; known: {}", self.names().join(", ")),
        })
    }

    /// Every name, in order.
    pub fn names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name.as_str()).collect()
    }

    /// Every backend, in order.
    pub fn iter(&self) -> impl Iterator<Item = &BackendInfo> {
        self.backends.iter()
    }
}

/// What lockbench knows about the built-in backend `name`.
pub fn info(name: &str) -> Option<&'static BackendInfo> {
    Registry::builtin().get(name)
}

/// The names of the shipped lock libraries (the built-in backends run by a
/// driver), in the order the tables list them.
pub fn library_names() -> Vec<&'static str> {
    Registry::builtin()
        .iter()
        .filter(|b| b.driver.is_some())
        .map(|b| b.name.as_str())
        .collect()
}

/// The names of every built-in backend.
pub fn names() -> Vec<&'static str> {
    Registry::builtin().names()
}

/// The kind of server the built-in backend `name` needs (`None` for
/// unknown or in-process).
pub fn server_kind(name: &str) -> Option<ServerKind> {
    info(name).and_then(|b| b.server)
}

/// Builds the built-in backend `name` over its endpoints (empty for
/// in-process).
pub async fn build(name: &str, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    Registry::builtin().require(name)?.build(endpoints).await
}
