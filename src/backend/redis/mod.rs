//! `redis` and `redis-get-set`: single-instance Redis locks.
//!
//! `redis` is the recipe from Redis's distributed-locks page for one
//! instance: `SET key token NX PX ttl`, with release and renew as Lua
//! scripts that act only if the key still holds our token. The fencing token
//! is an `INCR` run in the same script as the `SET`, so token order is grant
//! order.
//!
//! `redis-get-set` is the recipe the seeds warn about: `GET` to see whether
//! the key is free, then a plain `SET` (no `NX`). Two clients can both see
//! the key free and both set it. It exists to be caught.
//!
//! Every client has its own connection. A request that fails after it may
//! have left (a timeout, a dropped connection) is `Info`; a refused
//! connection or an error reply from the server is `Fail`.
//!
//! **Sentinel mode**: when the endpoints include sentinels, both recipes
//! run against the primary they name (`discovery.rs`).
//!
//! **Cluster mode**: when the endpoints are a Redis Cluster's nodes
//! (`redis-cluster-N`), each client has a cluster connection (redis-rs's),
//! which routes a command to the primary of its key's hash slot and
//! follows `MOVED` and `ASK` redirections. The lock key and the fence key
//! share a hash tag, so both scripts' keys are in one slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{AsyncCommands, ErrorKind, RedisError, Script, Value};
use tokio::time::Instant;

use super::{
    AcquireOptions, Attempt, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome,
    Released, acquire_with_retry,
};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::cluster::topology::Shape;
use crate::error::{Error, Result};

mod discovery;

use discovery::{Discovery, SentinelLink};

/// Take the lock and, only if taken, the next fence, in one atomic step.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
";

/// Delete the key only if it still holds our token.
pub(crate) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Extend the TTL only if the key still holds our token.
pub(crate) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Which of the two recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// `SET NX PX` + scripts: correct on one instance.
    SetNx,
    /// `GET`, then `SET` without `NX`: broken on purpose.
    GetThenSet,
}

impl Recipe {
    /// Its backend name.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::SetNx => "redis",
            Recipe::GetThenSet => "redis-get-set",
        }
    }
}

/// The scripts, loaded once and shared (they cache their SHA1).
#[derive(Debug)]
struct Scripts {
    acquire: Script,
    release: Script,
    renew: Script,
}

/// Where the lock clients find their server.
#[derive(Debug, Clone)]
enum Target {
    /// One server; each lock client opens its own connection to it.
    Direct(redis::Client),
    /// Whichever data server the sentinels name as the primary.
    Sentinel(Arc<Discovery>),
    /// A Redis Cluster: each lock client opens its own cluster connection.
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// A Redis lock backend over one server, or over the primary that
/// sentinels name.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    /// Which recipe.
    recipe: Recipe,
    /// The server, or how to find it.
    target: Target,
    /// `host:port` (the sentinels' in Sentinel mode), for messages.
    addr: String,
    /// Shared scripts.
    scripts: Arc<Scripts>,
    /// Makes owner tokens unique across clients and acquisitions.
    tokens: Arc<AtomicU64>,
}

impl RedisBackend {
    /// Connects to the first endpoint and checks that it answers `PING`;
    /// or, when the endpoints include sentinels, checks that they name a
    /// primary that says it is one.
    pub async fn connect(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Self> {
        let name = recipe.name();
        if let Some(discovery) = Discovery::from_endpoints(endpoints) {
            let addr = discovery.sentinels.join(",");
            discovery
                .primary(Duration::from_secs(5))
                .await
                .map_err(|message| Error::Backend {
                    backend: name.into(),
                    endpoint: addr.clone(),
                    message,
                })?;
            return Ok(RedisBackend {
                recipe,
                target: Target::Sentinel(Arc::new(discovery)),
                addr,
                scripts: Arc::new(Scripts::new()),
                tokens: Arc::new(AtomicU64::new(0)),
            });
        }
        if endpoints
            .iter()
            .any(|e| e.name.starts_with("redis-cluster-"))
        {
            return RedisBackend::connect_cluster(recipe, endpoints).await;
        }
        let endpoint = endpoints.first().ok_or_else(|| Error::Backend {
            backend: name.into(),
            endpoint: String::new(),
            message: "no redis endpoint".into(),
        })?;
        let err = |message: String| Error::Backend {
            backend: name.into(),
            endpoint: endpoint.addr.clone(),
            message,
        };
        let client = redis::Client::open(format!("redis://{}/", endpoint.addr))
            .map_err(|e| err(e.to_string()))?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| err("no answer within 5 s".into()))?
        .map_err(|e| err(e.to_string()))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(RedisBackend {
            recipe,
            target: Target::Direct(client),
            addr: endpoint.addr.clone(),
            scripts: Arc::new(Scripts::new()),
            tokens: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl RedisBackend {
    /// A Redis Cluster's nodes: clients start from every node's real
    /// address, and map each node's announced address (what `CLUSTER
    /// SLOTS` and `MOVED` name) to its real one. Checks that the cluster
    /// answers a routed command.
    async fn connect_cluster(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Self> {
        use redis::cluster::{ClusterClientBuilder, NodeAddress};
        let addr = endpoints
            .iter()
            .map(|e| e.addr.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let err = |message: String| Error::Backend {
            backend: recipe.name().into(),
            endpoint: addr.clone(),
            message,
        };
        let node = |a: &str| {
            let (host, port) = a.rsplit_once(':')?;
            Some(NodeAddress::new(host.to_string(), port.parse().ok()?))
        };
        let map = endpoints
            .iter()
            .filter_map(|e| Some((node(e.announced.as_deref()?)?, node(&e.addr)?)))
            .collect();
        let client =
            ClusterClientBuilder::new(endpoints.iter().map(|e| format!("redis://{}/", e.addr)))
                .node_address_map(map)
                // A redirection or a refused node is tried again twice, as a
                // Sentinel client asks again once; not redis-rs's default 16.
                .retries(2)
                .build()
                .map_err(|e| err(e.to_string()))?;
        let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_async_connection())
            .await
            .map_err(|_| err("no answer within 5 s".into()))?
            .map_err(|e| err(e.to_string()))?;
        let _: Option<String> = redis::cmd("GET")
            .arg(lock_key("lockbench-probe"))
            .query_async(&mut conn)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(RedisBackend {
            recipe,
            target: Target::Cluster(Box::new(client)),
            addr,
            scripts: Arc::new(Scripts::new()),
            tokens: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
            renew: Script::new(RENEW),
        }
    }
}

#[async_trait]
impl LockBackend for RedisBackend {
    fn name(&self) -> &str {
        self.recipe.name()
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let err = |message: String| Error::Backend {
            backend: self.name().into(),
            endpoint: self.addr.clone(),
            message,
        };
        let link = match &self.target {
            Target::Direct(client) => {
                // redis-rs's default response timeout is 500 ms; use the
                // scenario's.
                let cm_config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(config.op_timeout))
                    .set_connection_timeout(Some(config.op_timeout))
                    .set_number_of_retries(2);
                let conn = ConnectionManager::new_with_config(client.clone(), cm_config)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Link::Direct(conn)
            }
            Target::Sentinel(discovery) => {
                // Found now, as a direct client connects now: a client that
                // cannot find a primary at all is an error here too.
                let (_, conn) = discovery.primary(config.op_timeout).await.map_err(err)?;
                Link::Sentinel(SentinelLink {
                    discovery: discovery.clone(),
                    op_timeout: config.op_timeout,
                    current: std::sync::Mutex::new(Some(conn)),
                })
            }
            Target::Cluster(client) => {
                // The client's own cluster connection, with the scenario's
                // timeouts and two retries (a redirection is one).
                let cluster_config = redis::cluster::ClusterConfig::new()
                    .set_response_timeout(config.op_timeout)
                    .set_connection_timeout(config.op_timeout);
                let conn = client
                    .get_async_connection_with_config(cluster_config)
                    .await
                    .map_err(|e| err(e.to_string()))?;
                Link::Cluster(conn)
            }
        };
        Ok(Box::new(RedisClient {
            recipe: self.recipe,
            link,
            scripts: self.scripts.clone(),
            tokens: self.tokens.clone(),
            id: config.id,
            backoff: Backoff::new(config.seed),
        }))
    }
}

/// How one client reaches its server.
enum Link {
    /// Its own connection (reconnects by itself after a drop).
    Direct(ConnectionManager),
    /// A connection to the primary the sentinels named.
    Sentinel(SentinelLink),
    /// Its own cluster connection.
    Cluster(redis::cluster_async::ClusterConnection),
}

/// The connection one request goes out on.
enum Conn {
    /// The client's own connection to its server.
    Direct(ConnectionManager),
    /// A connection to the primary the sentinels named.
    Primary(MultiplexedConnection),
    /// The client's cluster connection.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Direct(c) => c.req_packed_command(cmd),
            Conn::Primary(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Primary(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Direct(c) => c.get_db(),
            Conn::Primary(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Link {
    /// The connection for the next request: the client's own, or the
    /// primary's (found again after an error). Nothing was sent when this
    /// fails.
    async fn connection(&self) -> std::result::Result<Conn, String> {
        match self {
            Link::Direct(c) => Ok(Conn::Direct(c.clone())),
            Link::Sentinel(link) => link.connection().await.map(Conn::Primary),
            Link::Cluster(c) => Ok(Conn::Cluster(c.clone())),
        }
    }

    /// After a request that failed or may have: in Sentinel mode the
    /// primary may have changed, so it is looked up again next time.
    fn failed(&self) {
        if let Link::Sentinel(link) = self {
            link.forget();
        }
    }
}

/// One client's connection and state.
struct RedisClient {
    recipe: Recipe,
    /// Its connection.
    link: Link,
    scripts: Arc<Scripts>,
    tokens: Arc<AtomicU64>,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    /// Jittered waits between tries of a blocking acquire.
    backoff: Backoff,
}

/// The Redis key of a lock, with a hash tag so lock and fence share a slot.
pub(crate) fn lock_key(key: &str) -> String {
    format!("lockbench:{{{key}}}")
}

fn fence_key(key: &str) -> String {
    format!("lockbench:{{{key}}}:fence")
}

/// Whether an error means the command definitely did not run.
pub(crate) fn definitely_not_run(e: &RedisError) -> bool {
    e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(_) | ErrorKind::InvalidClientConfig | ErrorKind::AuthenticationFailed
        )
}

fn classify<T>(e: RedisError) -> Outcome<T> {
    if definitely_not_run(&e) {
        Outcome::Fail(e.to_string())
    } else {
        Outcome::Info(e.to_string())
    }
}

fn attempt_error(e: RedisError) -> Attempt {
    if definitely_not_run(&e) {
        Attempt::Failed(e.to_string())
    } else {
        Attempt::Unknown(e.to_string())
    }
}

impl RedisClient {
    fn new_token(&self) -> String {
        format!(
            "c{}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    async fn try_set_nx<C: ConnectionLike + Send + Sync>(
        conn: &mut C,
        scripts: &Scripts,
        key: &str,
        token: String,
        lease: Duration,
    ) -> Attempt {
        let started = Instant::now();
        let result: redis::RedisResult<u64> = scripts
            .acquire
            .key(lock_key(key))
            .key(fence_key(key))
            .arg(&token)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(conn)
            .await;
        match result {
            Ok(0) => Attempt::Busy,
            Ok(fence) => Attempt::Acquired(Guard {
                key: key.to_string(),
                token,
                fence: Some(fence),
                lease: Some(lease),
                // The server started the TTL after we sent: counting from the
                // send is the safe side.
                acquired_at: started,
            }),
            Err(e) => attempt_error(e),
        }
    }

    /// The broken recipe: look, then set. The gap between the two round
    /// trips is the race.
    async fn try_get_then_set<C: ConnectionLike + Send + Sync>(
        conn: &mut C,
        key: &str,
        token: String,
        lease: Duration,
    ) -> Attempt {
        let started = Instant::now();
        let current: Option<String> = match conn.get(lock_key(key)).await {
            Ok(v) => v,
            Err(e) => return attempt_error(e),
        };
        if current.is_some() {
            return Attempt::Busy;
        }
        let set: redis::RedisResult<()> = conn
            .pset_ex(lock_key(key), &token, lease.as_millis().max(1) as u64)
            .await;
        if let Err(e) = set {
            return attempt_error(e);
        }
        // The fence is taken after the SET: another client may take one in
        // between, so even the fence order is not the grant order here.
        let fence: Option<u64> = conn.incr(fence_key(key), 1u64).await.ok();
        Attempt::Acquired(Guard {
            key: key.to_string(),
            token,
            fence,
            lease: Some(lease),
            acquired_at: started,
        })
    }

    async fn try_acquire<C: ConnectionLike + Send + Sync>(
        recipe: Recipe,
        conn: &mut C,
        scripts: &Scripts,
        key: &str,
        token: String,
        lease: Duration,
    ) -> Attempt {
        match recipe {
            Recipe::SetNx => Self::try_set_nx(conn, scripts, key, token, lease).await,
            Recipe::GetThenSet => Self::try_get_then_set(conn, key, token, lease).await,
        }
    }

    /// Deletes the key if it holds our token: the number of keys deleted.
    async fn release_on<C: ConnectionLike + Send + Sync>(
        recipe: Recipe,
        conn: &mut C,
        scripts: &Scripts,
        guard: &Guard,
    ) -> redis::RedisResult<u64> {
        match recipe {
            Recipe::SetNx => {
                scripts
                    .release
                    .key(lock_key(&guard.key))
                    .arg(&guard.token)
                    .invoke_async(conn)
                    .await
            }
            Recipe::GetThenSet => {
                // Also the naive way: compare, then delete, in two steps.
                match conn.get::<_, Option<String>>(lock_key(&guard.key)).await {
                    Ok(Some(t)) if t == guard.token => conn.del(lock_key(&guard.key)).await,
                    Ok(_) => Ok(0),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Extends the TTL if the key holds our token: 1 if it did.
    async fn renew_on<C: ConnectionLike + Send + Sync>(
        conn: &mut C,
        scripts: &Scripts,
        guard: &Guard,
        lease: Duration,
    ) -> redis::RedisResult<u64> {
        scripts
            .renew
            .key(lock_key(&guard.key))
            .arg(&guard.token)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(conn)
            .await
    }
}

fn released(deleted: redis::RedisResult<u64>) -> Outcome<Released> {
    match deleted {
        Ok(n) => Outcome::Ok(Released { was_held: n > 0 }),
        Err(e) => classify(e),
    }
}

fn renewed(
    result: redis::RedisResult<u64>,
    guard: &mut Guard,
    lease: Duration,
    started: Instant,
) -> Outcome<()> {
    match result {
        Ok(1) => {
            guard.lease = Some(lease);
            guard.acquired_at = started;
            Outcome::Ok(())
        }
        Ok(_) => Outcome::Fail("not held: the key expired or holds another token".into()),
        Err(e) => classify(e),
    }
}

#[async_trait]
impl LockClient for RedisClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let recipe = self.recipe;
        let token = self.new_token();
        let RedisClient {
            link,
            scripts,
            backoff,
            ..
        } = self;
        let (link, scripts) = (&*link, &**scripts);
        acquire_with_retry(backoff, opts.timeout, || {
            let token = token.clone();
            async move {
                let mut conn = match link.connection().await {
                    Ok(conn) => conn,
                    Err(why) => return Attempt::Failed(why),
                };
                let attempt =
                    Self::try_acquire(recipe, &mut conn, scripts, key, token, opts.lease).await;
                if matches!(attempt, Attempt::Failed(_) | Attempt::Unknown(_)) {
                    link.failed();
                }
                attempt
            }
        })
        .await
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let mut conn = match self.link.connection().await {
            Ok(conn) => conn,
            Err(why) => return Outcome::Fail(why),
        };
        let deleted = Self::release_on(self.recipe, &mut conn, &self.scripts, guard).await;
        if deleted.is_err() {
            self.link.failed();
        }
        released(deleted)
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let started = Instant::now();
        let mut conn = match self.link.connection().await {
            Ok(conn) => conn,
            Err(why) => return Outcome::Fail(why),
        };
        let result = Self::renew_on(&mut conn, &self.scripts, guard, lease).await;
        if result.is_err() {
            self.link.failed();
        }
        renewed(result, guard, lease, started)
    }
}

/// The single-server Redis recipes, as the registry knows them: both run
/// on Redis with Sentinel under `topology = "replicated"`.
/// What `topology = "cluster"` starts for the Redis backends that run on
/// one: three primaries with a replica each, as `redis-cli --cluster
/// create --cluster-replicas 1` makes the smallest cluster Redis documents.
pub(crate) const CLUSTER: Shape = Shape::RedisCluster {
    primaries: 3,
    replicas: 1,
};

pub(super) fn backends() -> Vec<super::BackendInfo> {
    let sentinel = Shape::Sentinel {
        replicas: 2,
        sentinels: 3,
    };
    vec![
        super::BackendInfo::new(
            Recipe::SetNx.name(),
            Some(ServerKind::Redis),
            "SET key token NX PX ttl with INCR fence in one script; compare-and-delete release",
            |eps| async move {
                Ok(Arc::new(RedisBackend::connect(Recipe::SetNx, &eps).await?) as Arc<dyn LockBackend>)
            },
        )
        .replicated(sentinel)
        .clustered(CLUSTER),
        super::BackendInfo::new(
            Recipe::GetThenSet.name(),
            Some(ServerKind::Redis),
            "GET to check, then SET without NX: two clients can both see the key free (broken on purpose)",
            |eps| async move {
                Ok(Arc::new(RedisBackend::connect(Recipe::GetThenSet, &eps).await?)
                    as Arc<dyn LockBackend>)
            },
        )
        .replicated(sentinel)
        .broken(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readonly_means_the_command_did_not_run() {
        let err =
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica.\r\n")
                .and_then(|v| v.extract_error())
                .unwrap_err();
        assert!(definitely_not_run(&err), "{err:?}");
        match classify::<()>(err) {
            Outcome::Fail(why) => assert!(why.contains("read only replica"), "{why}"),
            other => panic!("READONLY must be Fail: {other:?}"),
        }
    }
}
