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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ErrorKind, RedisError, Script};
use tokio::time::Instant;

use super::{
    AcquireOptions, Attempt, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome,
    Released, acquire_with_retry,
};
use crate::cluster::Endpoint;
use crate::error::{Error, Result};

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

/// The scripts, loaded once and shared (they cache their SHA1).
#[derive(Debug)]
struct Scripts {
    acquire: Script,
    release: Script,
    renew: Script,
}

/// A Redis lock backend over one server.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    /// Which recipe.
    recipe: Recipe,
    /// Client for the server; each lock client opens its own connection.
    client: redis::Client,
    /// `host:port`, for messages.
    addr: String,
    /// Shared scripts.
    scripts: Arc<Scripts>,
    /// Makes owner tokens unique across clients and acquisitions.
    tokens: Arc<AtomicU64>,
}

impl RedisBackend {
    /// Connects to the first endpoint and checks that it answers `PING`.
    pub async fn connect(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Self> {
        let name = match recipe {
            Recipe::SetNx => "redis",
            Recipe::GetThenSet => "redis-get-set",
        };
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
            client,
            addr: endpoint.addr.clone(),
            scripts: Arc::new(Scripts {
                acquire: Script::new(ACQUIRE),
                release: Script::new(RELEASE),
                renew: Script::new(RENEW),
            }),
            tokens: Arc::new(AtomicU64::new(0)),
        })
    }
}

#[async_trait]
impl LockBackend for RedisBackend {
    fn name(&self) -> &str {
        match self.recipe {
            Recipe::SetNx => "redis",
            Recipe::GetThenSet => "redis-get-set",
        }
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        // redis-rs's default response timeout is 500 ms; use the scenario's.
        let cm_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.op_timeout))
            .set_connection_timeout(Some(config.op_timeout))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(self.client.clone(), cm_config)
            .await
            .map_err(|e| Error::Backend {
                backend: self.name().into(),
                endpoint: self.addr.clone(),
                message: e.to_string(),
            })?;
        Ok(Box::new(RedisClient {
            recipe: self.recipe,
            conn,
            scripts: self.scripts.clone(),
            tokens: self.tokens.clone(),
            id: config.id,
            backoff: Backoff::new(config.seed),
        }))
    }
}

/// One client's connection and state.
struct RedisClient {
    recipe: Recipe,
    /// Its own connection (reconnects by itself after a drop).
    conn: ConnectionManager,
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

    async fn try_set_nx(
        conn: &mut ConnectionManager,
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
    async fn try_get_then_set(
        conn: &mut ConnectionManager,
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
}

#[async_trait]
impl LockClient for RedisClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let recipe = self.recipe;
        let token = self.new_token();
        let RedisClient {
            conn,
            scripts,
            backoff,
            ..
        } = self;
        let scripts = scripts.clone();
        acquire_with_retry(backoff, opts.timeout, || {
            let mut conn = conn.clone();
            let token = token.clone();
            let scripts = scripts.clone();
            async move {
                match recipe {
                    Recipe::SetNx => {
                        Self::try_set_nx(&mut conn, &scripts, key, token, opts.lease).await
                    }
                    Recipe::GetThenSet => {
                        Self::try_get_then_set(&mut conn, key, token, opts.lease).await
                    }
                }
            }
        })
        .await
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let deleted: redis::RedisResult<u64> = match self.recipe {
            Recipe::SetNx => {
                self.scripts
                    .release
                    .key(lock_key(&guard.key))
                    .arg(&guard.token)
                    .invoke_async(&mut self.conn)
                    .await
            }
            Recipe::GetThenSet => {
                // Also the naive way: compare, then delete, in two steps.
                match self
                    .conn
                    .get::<_, Option<String>>(lock_key(&guard.key))
                    .await
                {
                    Ok(Some(t)) if t == guard.token => self.conn.del(lock_key(&guard.key)).await,
                    Ok(_) => Ok(0),
                    Err(e) => Err(e),
                }
            }
        };
        match deleted {
            Ok(n) => Outcome::Ok(Released { was_held: n > 0 }),
            Err(e) => classify(e),
        }
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let started = Instant::now();
        let renewed: redis::RedisResult<u64> = self
            .scripts
            .renew
            .key(lock_key(&guard.key))
            .arg(&guard.token)
            .arg(lease.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn)
            .await;
        match renewed {
            Ok(1) => {
                guard.lease = Some(lease);
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            Ok(_) => Outcome::Fail("not held: the key expired or holds another token".into()),
            Err(e) => classify(e),
        }
    }
}
