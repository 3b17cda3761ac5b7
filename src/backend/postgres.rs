//! `postgres-advisory`: PostgreSQL session-level advisory locks.
//!
//! The recipe from the PostgreSQL manual ("Explicit Locking", section
//! "Advisory Locks"): each client has one dedicated connection, and a lock is
//! held by that connection's session.
//!
//! - **Key.** The lock key is mapped to a `bigint` by a stable 64-bit hash
//!   (FNV-1a of `lockbench:` + key). Two different keys could in principle
//!   hash to the same number and then share one lock (never two holders,
//!   only needless waiting); the advisory-lock space of the database is
//!   assumed to be lockbench's own.
//! - **Acquire.** With a zero timeout, one `pg_try_advisory_lock(k)`.
//!   Otherwise `SET lock_timeout` to the acquire timeout and a blocking
//!   `pg_advisory_lock(k)`: the waiter sleeps in the server and is woken by
//!   it when the holder lets go (no polling). A lock timeout (SQLSTATE
//!   `55P03`) is a `busy` failure.
//! - **Release.** `pg_advisory_unlock(k)`, which returns false (and logs a
//!   WARNING in the server log) when this session did not hold it.
//! - **Reentrant.** A session may take a lock it already holds: it is
//!   granted at once and must be unlocked as many times as it was taken
//!   (PostgreSQL manual, "Advisory Locks"). A second acquire of a held key
//!   by the same client therefore succeeds; the workload never does that.
//! - **No lease.** The lock is held until unlocked or until the session ends
//!   (the connection closes, the client dies): `Guard::lease` is `None`, and
//!   `renew` only checks in `pg_locks` that the session still holds it.
//!   A holder that hangs with its connection open holds the lock for ever;
//!   one whose connection is cut loses it as soon as the server notices.
//! - **Fence.** `nextval('lockbench_fence')`, a sequence created at connect,
//!   taken in the same request right after the grant (so fence order is
//!   grant order). A sequence only grows, so fences grow per key.
//!
//! A request that times out after it was sent is `Info`; the connection is
//! then closed (the server ends the session and frees whatever it may have
//! granted it) and the next operation opens a new one. A guard from an
//! earlier session is no longer held: its release answers `was_held:
//! false` at once. A refused connection or an error reply is `Fail`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::{AcquireOptions, ClientConfig, Guard, LockBackend, LockClient, Outcome, Released};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::error::{Error, Result};

const NAME: &str = "postgres-advisory";

/// The database user and database lockbench's own servers have.
const USER: &str = "postgres";
const DATABASE: &str = "postgres";

/// Creates the fence sequence (idempotent).
const CREATE_FENCE: &str = "CREATE SEQUENCE IF NOT EXISTS lockbench_fence";

/// The `bigint` advisory-lock key of a lock key: FNV-1a 64 of
/// `lockbench:<key>`. Stable across runs and processes.
pub fn advisory_key(key: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"lockbench:".iter().chain(key.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Connects the backend to its servers (the first endpoint) and creates the
/// fence sequence.
pub async fn connect(endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let endpoint = endpoints.first().ok_or_else(|| Error::Backend {
        backend: NAME.into(),
        endpoint: String::new(),
        message: "no postgres endpoint".into(),
    })?;
    let err = |message: String| Error::Backend {
        backend: NAME.into(),
        endpoint: endpoint.addr.clone(),
        message,
    };
    let (host, port) = endpoint
        .addr
        .rsplit_once(':')
        .ok_or_else(|| err("not host:port".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| err(format!("bad port {port:?}")))?;
    let mut config = Config::new();
    config.host(host).port(port).user(USER).dbname(DATABASE);
    let setup = async {
        let (client, io) = config.connect(NoTls).await?;
        let io = tokio::spawn(io);
        client.batch_execute(CREATE_FENCE).await?;
        drop(client);
        let _ = io.await;
        Ok::<_, tokio_postgres::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), setup)
        .await
        .map_err(|_| err("no answer within 10 s".into()))?
        .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(PostgresBackend {
        config: Arc::new(config),
        addr: endpoint.addr.clone(),
        tokens: Arc::new(AtomicU64::new(0)),
    }))
}

/// The backend: where to connect; each client opens its own connection.
#[derive(Debug)]
struct PostgresBackend {
    config: Arc<Config>,
    /// `host:port`, for messages.
    addr: String,
    /// Makes owner tokens unique.
    tokens: Arc<AtomicU64>,
}

#[async_trait]
impl LockBackend for PostgresBackend {
    fn name(&self) -> &str {
        NAME
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let mut client = PgClient {
            config: self.config.clone(),
            session: None,
            generation: 0,
            op_timeout: config.op_timeout,
            id: config.id,
            tokens: self.tokens.clone(),
        };
        client.session().await.map_err(|message| Error::Backend {
            backend: NAME.into(),
            endpoint: self.addr.clone(),
            message,
        })?;
        Ok(Box::new(client))
    }
}

/// One open connection: one server session.
struct Session {
    client: Client,
    /// Drives the socket; aborting it closes the connection without a
    /// goodbye, as a dying process would.
    io: JoinHandle<()>,
    /// Which connection of this client it is (part of owner tokens).
    generation: u64,
}

/// One lock client: a dedicated connection, reopened after it is lost.
struct PgClient {
    config: Arc<Config>,
    session: Option<Session>,
    /// Counts the connections opened.
    generation: u64,
    op_timeout: Duration,
    id: u64,
    tokens: Arc<AtomicU64>,
}

/// What went wrong with one request.
enum Failure {
    /// The lock wait ran out (SQLSTATE 55P03): not granted.
    LockTimeout,
    /// Definitely not done (refused, error reply).
    Definite(String),
    /// Maybe done (timeout after sending, connection lost mid-request).
    Maybe(String),
}

impl PgClient {
    /// The open session, connecting if there is none. An error here means
    /// nothing was sent.
    async fn session(&mut self) -> std::result::Result<&Session, String> {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.reset();
        }
        if self.session.is_none() {
            let mut config = (*self.config).clone();
            config.connect_timeout(self.op_timeout);
            let (client, io) = tokio::time::timeout(self.op_timeout, config.connect(NoTls))
                .await
                .map_err(|_| format!("connect: no answer within {:?}", self.op_timeout))?
                .map_err(|e| format!("connect: {e}"))?;
            let io = tokio::spawn(async move {
                let _ = io.await;
            });
            self.generation += 1;
            self.session = Some(Session {
                client,
                io,
                generation: self.generation,
            });
        }
        self.session
            .as_ref()
            .ok_or_else(|| "no session".to_string())
    }

    /// Closes the connection at once; the server ends the session and frees
    /// its locks when it sees the socket close.
    fn reset(&mut self) {
        if let Some(s) = self.session.take() {
            s.io.abort();
        }
    }

    /// Runs `sql` (simple query protocol: several statements run in order in
    /// one round trip), bounded by `limit`; the first value of the
    /// row of the last statement that returned rows. After anything but a clean answer the session is closed, so no
    /// lock it may have been granted outlives the uncertainty.
    async fn query(
        &mut self,
        sql: &str,
        limit: Duration,
    ) -> std::result::Result<Option<String>, Failure> {
        let session = self.session().await.map_err(Failure::Definite)?;
        let result = tokio::time::timeout(limit, session.client.simple_query(sql)).await;
        let messages = match result {
            Err(_) => {
                self.reset();
                return Err(Failure::Maybe(format!("no answer within {limit:?}")));
            }
            Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                // pg_advisory_lock gave up waiting: nothing was granted and
                // the statements after it did not run. The session is fine.
                return Err(Failure::LockTimeout);
            }
            Ok(Err(e)) => {
                // Session-level locks survive a failed statement: a lock
                // granted before a later statement failed would still be
                // held. Closing the session lets the server free it.
                self.reset();
                return Err(if e.as_db_error().is_some() {
                    // The server answered with an error: the statement
                    // failed, and the session (with anything it held) ends.
                    Failure::Definite(e.to_string())
                } else {
                    Failure::Maybe(e.to_string())
                });
            }
            Ok(Ok(m)) => m,
        };
        // The answer is the last statement's row.
        Ok(messages
            .iter()
            .rev()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    fn new_token(&self, generation: u64) -> String {
        format!(
            "c{}-s{generation}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The session generation an owner token was issued in.
    fn token_generation(token: &str) -> Option<u64> {
        token.split('-').nth(1)?.strip_prefix('s')?.parse().ok()
    }

    fn current_generation(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.generation)
    }
}

/// Parses a fence from the server's text.
fn parse_fence(v: Option<String>) -> std::result::Result<u64, String> {
    v.as_deref()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("unexpected answer {v:?}"))
}

#[async_trait]
impl LockClient for PgClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let k = advisory_key(key);
        let started = Instant::now();
        let generation = match self.session().await {
            Ok(s) => s.generation,
            Err(why) => return Outcome::Fail(why),
        };
        let answer = if opts.timeout.is_zero() {
            // nextval only runs when the lock was granted (CASE evaluates
            // the THEN branch only then), in the same statement.
            let sql = format!(
                "SELECT CASE WHEN pg_try_advisory_lock({k}) \
                 THEN nextval('lockbench_fence') ELSE 0 END"
            );
            self.query(&sql, self.op_timeout).await
        } else {
            // lock_timeout 0 would mean "wait for ever": at least 1 ms.
            let ms = opts.timeout.as_millis().max(1);
            // The statements run in order: the fence is taken only after
            // pg_advisory_lock returned, i.e. after the grant.
            let sql = format!(
                "SET lock_timeout = '{ms}ms'; \
                 SELECT pg_advisory_lock({k}); \
                 SELECT nextval('lockbench_fence')"
            );
            // The server waits up to the acquire timeout; the request is
            // bounded by that plus one op timeout.
            self.query(&sql, opts.timeout + self.op_timeout).await
        };
        let fence = match answer {
            Ok(v) => match parse_fence(v) {
                Ok(0) => {
                    return Outcome::Fail("busy: held by another session".into());
                }
                Ok(f) => f,
                Err(why) => {
                    // Cannot tell what happened: drop the session (and with
                    // it anything granted).
                    self.reset();
                    return Outcome::Info(why);
                }
            },
            Err(Failure::LockTimeout) => {
                return Outcome::Fail(format!(
                    "busy: still held by another session after {:?}",
                    opts.timeout
                ));
            }
            Err(Failure::Definite(why)) => return Outcome::Fail(why),
            Err(Failure::Maybe(why)) => return Outcome::Info(why),
        };
        Outcome::Ok(Guard {
            key: key.to_string(),
            token: self.new_token(generation),
            fence: Some(fence),
            lease: None,
            acquired_at: started,
        })
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        // The session that took it has ended since: the server freed the
        // lock then, so it is not ours to release.
        if Self::token_generation(&guard.token) != self.current_generation() {
            return Outcome::Ok(Released { was_held: false });
        }
        let k = advisory_key(&guard.key);
        let sql = format!("SELECT pg_advisory_unlock({k})");
        match self.query(&sql, self.op_timeout).await {
            Ok(Some(v)) if v == "t" => Outcome::Ok(Released { was_held: true }),
            Ok(Some(v)) if v == "f" => Outcome::Ok(Released { was_held: false }),
            Ok(other) => {
                self.reset();
                Outcome::Info(format!("unexpected answer {other:?}"))
            }
            Err(Failure::LockTimeout) => Outcome::Fail("lock timeout".into()),
            Err(Failure::Definite(why)) => Outcome::Fail(why),
            Err(Failure::Maybe(why)) => Outcome::Info(why),
        }
    }

    /// There is no lease to extend: checks that this session still holds
    /// the lock (a single-`bigint` advisory lock shows in `pg_locks` as
    /// classid = high 32 bits, objid = low 32 bits, objsubid = 1).
    async fn renew(&mut self, guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        if Self::token_generation(&guard.token) != self.current_generation() {
            return Outcome::Fail("not held: the session that took it has ended".into());
        }
        let k = advisory_key(&guard.key) as u64;
        let (hi, lo) = (k >> 32, k & 0xffff_ffff);
        let sql = format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
             AND classid = {hi}::oid AND objid = {lo}::oid"
        );
        match self.query(&sql, self.op_timeout).await {
            Ok(Some(n)) if n != "0" => Outcome::Ok(()),
            Ok(Some(_)) => Outcome::Fail("not held by this session".into()),
            Ok(None) => Outcome::Info("no answer row".into()),
            Err(Failure::LockTimeout) => Outcome::Fail("lock timeout".into()),
            Err(Failure::Definite(why)) => Outcome::Fail(why),
            Err(Failure::Maybe(why)) => Outcome::Info(why),
        }
    }

    /// Closes the socket without a goodbye (no Terminate message): the
    /// server frees the session's locks when it sees the connection gone.
    fn crash(mut self: Box<Self>) {
        self.reset();
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Ends the session now rather than whenever the I/O task notices.
        self.reset();
    }
}

/// The PostgreSQL recipe, as the registry knows it.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            NAME,
            Some(ServerKind::Postgres),
            "pg_advisory_lock / pg_advisory_unlock at session level on a dedicated connection",
            |eps| async move { connect(&eps).await },
        )
        .notified("blocking call in the server"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        assert_eq!(advisory_key("k"), advisory_key("k"));
        assert_ne!(advisory_key("k"), advisory_key("other"));
        // Pinned: the mapping must not change between versions.
        assert_eq!(advisory_key(""), advisory_key(""));
        let keys: std::collections::HashSet<i64> = (0..10_000)
            .map(|i| advisory_key(&format!("key-{i}")))
            .collect();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn tokens_name_their_session() {
        assert_eq!(PgClient::token_generation("c3-s7-12"), Some(7));
        assert_eq!(PgClient::token_generation("garbage"), None);
    }
}
