//! A lock of your own, checked by lockbench from Rust: a Redis lock
//! (`SET key token NX PX lease`, released by a compare-and-delete script)
//! written against the `redis` crate the way a crate author would, then
//! lockbench's conformance checks and a contended, checked run on a real
//! redis-server that lockbench starts.
//!
//! ```sh
//! cargo run --example my_lock
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lockbench::backend::{
    AcquireOptions, BackendInfo, ClientConfig, Guard, LockBackend, LockClient, Outcome, Released,
};
use lockbench::cluster::{Endpoint, ServerKind};
use lockbench::run::harness;

/// Deletes the key only if it still holds our token.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// The lock service: one Redis server.
pub struct MyLock {
    client: redis::Client,
    tokens: Arc<AtomicU64>,
}

/// One user of the lock, with its own connection.
pub struct MyClient {
    conn: redis::aio::MultiplexedConnection,
    tokens: Arc<AtomicU64>,
    id: u64,
}

/// Builds the lock over the server lockbench started.
pub async fn connect(endpoints: Vec<Endpoint>) -> lockbench::Result<Arc<dyn LockBackend>> {
    let addr = endpoints
        .first()
        .map(|e| e.addr.clone())
        .unwrap_or_default();
    let client =
        redis::Client::open(format!("redis://{addr}/")).map_err(|e| lockbench::Error::Backend {
            backend: "my-lock".into(),
            endpoint: addr.clone(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(MyLock {
        client,
        tokens: Arc::new(AtomicU64::new(0)),
    }))
}

/// A failure that happened before the request left is definite; any other
/// may have taken effect (lockbench's `fail` / `info`).
fn outcome<T>(e: redis::RedisError) -> Outcome<T> {
    if e.is_connection_refusal() {
        Outcome::Fail(e.to_string())
    } else {
        Outcome::Info(e.to_string())
    }
}

#[async_trait::async_trait]
impl LockBackend for MyLock {
    fn name(&self) -> &str {
        "my-lock"
    }

    async fn client(&self, config: ClientConfig) -> lockbench::Result<Box<dyn LockClient>> {
        let conn = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| lockbench::Error::Backend {
                backend: "my-lock".into(),
                endpoint: String::new(),
                message: e.to_string(),
            })?;
        Ok(Box::new(MyClient {
            conn,
            tokens: self.tokens.clone(),
            id: config.id,
        }))
    }
}

#[async_trait::async_trait]
impl LockClient for MyClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = format!(
            "c{}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        );
        let started = tokio::time::Instant::now();
        let deadline = started + opts.timeout;
        loop {
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(opts.lease.as_millis().max(1) as u64)
                .query_async(&mut self.conn)
                .await;
            match set {
                Ok(Some(_)) => {
                    return Outcome::Ok(Guard {
                        key: key.to_string(),
                        token,
                        fence: None,
                        lease: Some(opts.lease),
                        acquired_at: started,
                    });
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(None) => return Outcome::Fail("busy".into()),
                Err(e) => return outcome(e),
            }
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let deleted: redis::RedisResult<u64> = redis::Script::new(RELEASE)
            .key(&guard.key)
            .arg(&guard.token)
            .invoke_async(&mut self.conn)
            .await;
        match deleted {
            Ok(n) => Outcome::Ok(Released { was_held: n > 0 }),
            Err(e) => outcome(e),
        }
    }

    async fn renew(&mut self, _guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        Outcome::Fail("my-lock does not renew".into())
    }
}

/// How lockbench knows the lock: its name, its server, how to build it.
pub fn my_lock() -> BackendInfo {
    BackendInfo::new(
        "my-lock",
        Some(ServerKind::Redis),
        "SET NX PX, compare-and-delete release",
        connect,
    )
}

#[tokio::main]
async fn main() -> lockbench::Result<()> {
    let lock = my_lock();
    let report = harness::conformance(&lock).await?;
    print!("{report}");
    let out = std::env::temp_dir().join("lockbench-my-lock");
    let summary = harness::contended(&lock, &harness::Contended::in_dir(&out)).await?;
    println!(
        "contended run: {} ({} acquisitions, report under {})",
        summary.verdict,
        summary.acquire_latency_us.count,
        out.display()
    );
    Ok(())
}
