//! `mysql-table`, `mysql-for-update` and `mysql-get-lock`: seed 003's
//! database locks, on MariaDB.
//!
//! Every client has one dedicated connection (a [`mysql_async::Conn`], not
//! a pool), as a separate process would, opened lazily and opened again
//! for the next operation after it broke. The backend's `connect` creates
//! the database `lockbench` and its tables if they are missing.
//!
//! # `mysql-table`: a lock table with a unique index
//!
//! `lockbench.locks(name PRIMARY KEY, token, expires_at)`. Acquire is an
//! `INSERT` of the lock's name; a duplicate key means someone holds it.
//! Release is `DELETE ... WHERE name = ? AND token = ?`. Seed 003 lists the
//! recipe's problems and their fixes; here is what this implementation
//! does about each:
//!
//! - *No expiry* (a holder that dies keeps the row forever): fixed. The row
//!   carries `expires_at = NOW(6) + lease`, and a cleaner deletes stale
//!   rows: before giving up on a duplicate key, the acquirer runs
//!   `DELETE ... WHERE name = ? AND expires_at < NOW(6)` and inserts again
//!   if it deleted one. The cleaner is what makes the lease real, so the
//!   lease runs on the *database server's* wall clock (a clock step on the
//!   server moves every lease), and a row nobody contends stays until
//!   someone asks for it.
//! - *Non-blocking* (an `INSERT` either wins or fails): fixed by polling
//!   with [`acquire_with_retry`], jittered backoff up to the timeout.
//! - *Non-reentrant* (the holder's second `INSERT` is a duplicate too):
//!   kept, and tested. The fix (store host and thread of the holder and
//!   check them) is not built: a second acquire by the holder is busy.
//! - *Single point of failure*: one server, as in every backend here.
//!
//! Renew moves `expires_at` forward only while the row is ours and alive.
//! Release says `was_held: false` when the row was gone, held another
//! token, or had expired (`DELETE ... RETURNING` tells which).
//!
//! # `mysql-for-update`: an InnoDB row lock held by an open transaction
//!
//! A row per lock name in `lockbench.lock_rows` (created by
//! `INSERT IGNORE` the first time a client meets the name, after a plain
//! read shows it missing: on an existing row `INSERT IGNORE` takes a shared
//! lock and would queue behind the holder); acquire runs `SELECT ... FROM lock_rows WHERE name = ?
//! FOR UPDATE WAIT n` in a transaction (the session runs with
//! `autocommit = 0`, so the `SELECT` opens it). The name is the primary key,
//! so InnoDB locks that one record; without a usable index it would lock
//! every row it scans, i.e. the table. Holding is keeping the transaction
//! open; `COMMIT` releases; a lock wait timeout (error 1205) is busy.
//! MariaDB's `WAIT n` takes whole seconds (`WAIT 0.4` does not wait at all):
//! the acquire timeout is rounded up to whole seconds, and a zero timeout is
//! `NOWAIT`. There is **no lease**: the lock lasts until `COMMIT` or until
//! the connection dies, so `Guard::lease` is `None`. A transaction is one
//! per connection: a client that holds one key and asks for another opens a
//! second connection for it (one transaction per held key), so keys are
//! released independently.
//!
//! # `mysql-get-lock`: user-level locks
//!
//! `SELECT GET_LOCK(name, timeout)`: 1 is taken, 0 is a timeout (busy),
//! NULL an error. `SELECT RELEASE_LOCK(name)`: 1 released, 0 held by another
//! connection, NULL no such lock. The server releases a connection's locks
//! when the connection ends, so a client that dies frees its locks at once.
//! The timeout is in seconds, with microseconds allowed on MariaDB
//! (https://mariadb.com/kb/en/get_lock/; measured: `GET_LOCK(n, 0.3)` gives
//! up after 0.3 s), so it is the acquire timeout as it is. There is **no lease**: `Guard::lease`
//! is `None`. The name is `lockbench/<key>`, at most 64 characters.
//!
//! # Reentrancy
//!
//! Measured on MariaDB 10.11 and tested: `mysql-table` is not reentrant
//! (busy); `GET_LOCK` on a connection that already holds the name succeeds
//! at once and counts, so it must be released as often as it was taken
//! (documented on the GET_LOCK page); `SELECT ... FOR UPDATE` again in the
//! transaction that holds the row succeeds at once (an exclusive row lock
//! stops only *other* transactions, per MariaDB's "InnoDB Lock Modes").
//! Both are kept: each guard of a reentrant hold is released on its own,
//! and the lock goes at the last release. Reentrancy is per client (per
//! connection), not per host or thread as seed 003's fix proposes.
//!
//! # Fencing tokens
//!
//! Every recipe hands out a fence taken right after the grant, on the same
//! connection, so fences order holders only while the lock excludes.
//! `mysql-table` and `mysql-get-lock` bump a counter row per key,
//! `INSERT INTO fences ... ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(n + 1)`
//! (autocommitted: it only grows). `mysql-for-update` cannot: inside the
//! holding transaction the bump would be rolled back with it when the holder
//! dies, and the next holder would get the same fence. It inserts into an
//! `AUTO_INCREMENT` table instead: InnoDB never hands an auto-increment
//! value out twice, not even after a rollback, and since MariaDB 10.2.4
//! not after a restart either. Those fences grow across all keys, hence per
//! key; the row is deleted again at `COMMIT`.
//!
//! # Outcomes
//!
//! A refused or failed connect and an error reply from the server are
//! `Fail`; a timeout (`op_timeout`, plus the server-side wait for the
//! blocking recipes) or a connection lost mid-request is `Info`, and the
//! connection is dropped: for `mysql-get-lock` and `mysql-for-update` that
//! also gives back, through the server, whatever the lost request may have
//! taken, and every lock the connection held is forgotten (their releases
//! then say `was_held: false`). The first request on a connection the
//! server closed (a server restart) is `Info` too: the client cannot tell
//! it from a request lost in flight.
//!
//! A client's crash drops its connections; mysql_async then sends
//! `COM_QUIT` from a background task where a killed process would only
//! close its sockets. For the server both end the session the same way
//! (locks freed, transaction rolled back).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use tokio::time::Instant;

use super::{
    AcquireOptions, Attempt, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome,
    Released, acquire_with_retry,
};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::error::{Error, Result};

/// Which recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// Lock table with a unique index: `INSERT` / `DELETE`, expiry column.
    Table,
    /// `SELECT ... FOR UPDATE` in a transaction; `COMMIT` releases.
    ForUpdate,
    /// `GET_LOCK` / `RELEASE_LOCK`.
    GetLock,
}

impl Recipe {
    fn name(self) -> &'static str {
        match self {
            Recipe::Table => "mysql-table",
            Recipe::ForUpdate => "mysql-for-update",
            Recipe::GetLock => "mysql-get-lock",
        }
    }
}

/// The schema, created by `connect` if missing. Names compare as bytes:
/// the default collation would make `K` and `k` one lock.
const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS lockbench",
    "CREATE TABLE IF NOT EXISTS lockbench.locks (
        name VARCHAR(191) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        token VARCHAR(64) NOT NULL,
        expires_at DATETIME(6) NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS lockbench.lock_rows (
        name VARCHAR(191) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS lockbench.fences (
        name VARCHAR(191) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
        n BIGINT UNSIGNED NOT NULL
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS lockbench.fence_ids (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY
     ) ENGINE=InnoDB",
];

/// Bumps the key's counter row; the new value comes back as the
/// statement's insert id (`LAST_INSERT_ID(expr)` sets it).
const FENCE_COUNTER: &str = "INSERT INTO fences (name, n) VALUES (?, LAST_INSERT_ID(1)) \
                             ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(n + 1)";

/// MySQL/MariaDB error codes we act on.
const ER_DUP_ENTRY: u16 = 1062;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;

/// A MariaDB lock backend over one server.
#[derive(Debug, Clone)]
pub struct MysqlBackend {
    recipe: Recipe,
    /// How each client connects (database `lockbench`).
    opts: Opts,
    /// `host:port`, for messages.
    addr: String,
    /// Makes owner tokens unique across clients and acquisitions.
    tokens: Arc<AtomicU64>,
}

/// Connects the backend to its servers: checks the first endpoint answers
/// and creates the database and tables if missing.
pub async fn connect(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let endpoint = endpoints.first().ok_or_else(|| Error::Backend {
        backend: recipe.name().into(),
        endpoint: String::new(),
        message: "no mariadb endpoint".into(),
    })?;
    let err = |message: String| Error::Backend {
        backend: recipe.name().into(),
        endpoint: endpoint.addr.clone(),
        message,
    };
    let base = crate::cluster::mariadb::opts(&endpoint.addr).map_err(err)?;
    let setup = async {
        let mut conn = Conn::new(base.clone()).await?;
        for stmt in SCHEMA {
            conn.query_drop(*stmt).await?;
        }
        let _ = conn.disconnect().await;
        Ok::<_, mysql_async::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(10), setup)
        .await
        .map_err(|_| err("no answer within 10 s".into()))?
        .map_err(|e| err(e.to_string()))?;
    let mut builder = base.db_name(Some("lockbench"));
    if recipe == Recipe::ForUpdate {
        // The SELECT ... FOR UPDATE then opens the holding transaction.
        builder = builder.setup(vec!["SET autocommit = 0"]);
    }
    Ok(Arc::new(MysqlBackend {
        recipe,
        opts: Opts::from(builder),
        addr: endpoint.addr.clone(),
        tokens: Arc::new(AtomicU64::new(0)),
    }))
}

#[async_trait]
impl LockBackend for MysqlBackend {
    fn name(&self) -> &str {
        self.recipe.name()
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let conn = open(&self.opts, config.op_timeout)
            .await
            .map_err(|message| Error::Backend {
                backend: self.name().into(),
                endpoint: self.addr.clone(),
                message,
            })?;
        Ok(Box::new(MysqlClient {
            recipe: self.recipe,
            opts: self.opts.clone(),
            tokens: self.tokens.clone(),
            id: config.id,
            op_timeout: config.op_timeout,
            backoff: Backoff::new(config.seed),
            conn: Some(conn),
            held: HashMap::new(),
            known_rows: HashSet::new(),
        }))
    }
}

/// Opens a connection; the error says why (nothing was sent that could
/// take a lock, so callers report it as `Fail`).
async fn open(opts: &Opts, op_timeout: Duration) -> std::result::Result<Conn, String> {
    match tokio::time::timeout(op_timeout, Conn::new(opts.clone())).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("connect: {e}")),
        Err(_) => Err(format!("connect: no answer within {op_timeout:?}")),
    }
}

/// Why a request did not complete.
#[derive(Debug)]
enum Problem {
    /// It definitely did not take effect (an error reply from the server).
    Failed(String),
    /// It may have (timeout, connection lost): the connection is unusable.
    Lost(String),
}

impl Problem {
    fn outcome<T>(self) -> Outcome<T> {
        match self {
            Problem::Failed(why) => Outcome::Fail(why),
            Problem::Lost(why) => Outcome::Info(why),
        }
    }

    fn attempt(self) -> Attempt {
        match self {
            Problem::Failed(why) => Attempt::Failed(why),
            Problem::Lost(why) => Attempt::Unknown(why),
        }
    }
}

/// Runs one request with a deadline and sorts its errors.
async fn bounded<T, F>(limit: Duration, fut: F) -> std::result::Result<T, Problem>
where
    F: std::future::Future<Output = mysql_async::Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(mysql_async::Error::Server(e))) => Err(Problem::Failed(e.to_string())),
        Ok(Err(e)) => Err(Problem::Lost(e.to_string())),
        Err(_) => Err(Problem::Lost(format!("no answer within {limit:?}"))),
    }
}

/// The server error code of a failed request, if it was an error reply.
fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// One held lock (a key may be held several times by a reentrant client).
struct Held {
    /// Owner tokens of the guards out on this key, oldest first.
    tokens: Vec<String>,
    /// `mysql-for-update`: the connection whose transaction holds the row.
    conn: Option<Conn>,
    /// `mysql-for-update`: the fence rows to delete at `COMMIT`.
    fence_ids: Vec<u64>,
}

/// One client's connection(s) and state.
struct MysqlClient {
    recipe: Recipe,
    opts: Opts,
    tokens: Arc<AtomicU64>,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    /// Bound of one request (plus the server-side wait when it blocks).
    op_timeout: Duration,
    /// Jittered waits between tries (`mysql-table`).
    backoff: Backoff,
    /// The client's connection (for `mysql-for-update`: the idle one);
    /// `None` after it broke, until the next operation opens another.
    conn: Option<Conn>,
    /// Locks held through a connection (`mysql-get-lock`: through `conn`;
    /// `mysql-for-update`: each through its own transaction).
    held: HashMap<String, Held>,
    /// `mysql-for-update`: lock rows this client knows exist.
    known_rows: HashSet<String>,
}

impl MysqlClient {
    fn new_token(&self) -> String {
        format!(
            "c{}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The client's connection, opened if it broke before.
    async fn conn(&mut self) -> std::result::Result<&mut Conn, String> {
        if self.conn.is_none() {
            self.conn = Some(open(&self.opts, self.op_timeout).await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "connection unavailable".to_string())
    }

    /// Forgets a broken connection. For `mysql-get-lock` its locks go with
    /// it (the server frees them when it notices the connection closed).
    fn lose_conn(&mut self) {
        self.conn = None;
        if self.recipe == Recipe::GetLock {
            self.held.clear();
        }
    }
}

/// Bumps the key's counter row: the next fence.
async fn counter_fence(
    conn: &mut Conn,
    key: &str,
    limit: Duration,
) -> std::result::Result<u64, Problem> {
    bounded(limit, conn.exec_drop(FENCE_COUNTER, (key,))).await?;
    conn.last_insert_id()
        .ok_or_else(|| Problem::Lost("the fence counter returned no value".into()))
}

// ---------------------------------------------------------------- table

/// One try of `mysql-table`: INSERT; on a duplicate key, clean a stale row
/// and INSERT again once.
async fn table_attempt(
    slot: &tokio::sync::Mutex<Option<Conn>>,
    opts: &Opts,
    op_timeout: Duration,
    key: &str,
    token: &str,
    lease: Duration,
) -> Attempt {
    let mut slot = slot.lock().await;
    if slot.is_none() {
        match open(opts, op_timeout).await {
            Ok(c) => *slot = Some(c),
            Err(why) => return Attempt::Failed(why),
        }
    }
    let Some(conn) = slot.as_mut() else {
        return Attempt::Failed("connection unavailable".into());
    };
    let lease_us = lease_micros(lease);
    let result = table_insert_or_clean(conn, op_timeout, key, token, lease_us).await;
    match result {
        Ok(Some(started)) => match counter_fence(conn, key, op_timeout).await {
            Ok(fence) => Attempt::Acquired(Guard {
                key: key.to_string(),
                token: token.to_string(),
                fence: Some(fence),
                lease: Some(Duration::from_micros(lease_us)),
                // The server started the lease after we sent: counting
                // from the send is the safe side.
                acquired_at: started,
            }),
            // The row is ours but we return no guard: its lease frees it.
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    *slot = None;
                }
                Attempt::Unknown(format!("inserted, but the fence failed: {p:?}"))
            }
        },
        Ok(None) => Attempt::Busy,
        Err(p) => {
            if matches!(p, Problem::Lost(_)) {
                *slot = None;
            }
            p.attempt()
        }
    }
}

/// The lease in whole microseconds (`DATETIME(6)`), rounded up, at least 1.
fn lease_micros(lease: Duration) -> u64 {
    let us = lease.as_nanos().div_ceil(1_000);
    u64::try_from(us).unwrap_or(u64::MAX).max(1)
}

/// `Some(sent_at)` if our row is in, `None` if the name is held.
async fn table_insert_or_clean(
    conn: &mut Conn,
    limit: Duration,
    key: &str,
    token: &str,
    lease_us: u64,
) -> std::result::Result<Option<Instant>, Problem> {
    for _ in 0..2 {
        let started = Instant::now();
        let insert = conn.exec_drop(
            "INSERT INTO locks (name, token, expires_at) \
             VALUES (?, ?, NOW(6) + INTERVAL ? MICROSECOND)",
            (key, token, lease_us),
        );
        match tokio::time::timeout(limit, insert).await {
            Ok(Ok(())) => return Ok(Some(started)),
            Ok(Err(e)) if server_code(&e) == Some(ER_DUP_ENTRY) => {}
            Ok(Err(mysql_async::Error::Server(e))) => return Err(Problem::Failed(e.to_string())),
            Ok(Err(e)) => return Err(Problem::Lost(e.to_string())),
            Err(_) => return Err(Problem::Lost(format!("no answer within {limit:?}"))),
        }
        // The cleaner: a row past its expiry is a dead holder's.
        bounded(
            limit,
            conn.exec_drop(
                "DELETE FROM locks WHERE name = ? AND expires_at < NOW(6)",
                (key,),
            ),
        )
        .await?;
        if conn.affected_rows() == 0 {
            return Ok(None);
        }
    }
    // Cleaned, then lost the INSERT race to another client.
    Ok(None)
}

impl MysqlClient {
    async fn table_acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = self.new_token();
        let slot = tokio::sync::Mutex::new(self.conn.take());
        let (copts, op_timeout, lease) = (self.opts.clone(), self.op_timeout, opts.lease);
        let out = acquire_with_retry(&mut self.backoff, opts.timeout, || {
            table_attempt(&slot, &copts, op_timeout, key, &token, lease)
        })
        .await;
        self.conn = slot.into_inner();
        out
    }

    async fn table_release(&mut self, guard: &Guard) -> Outcome<Released> {
        let limit = self.op_timeout;
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        // RETURNING tells an expired row (the lease had run out: the lock
        // was free, only not yet cleaned) from a live one.
        let deleted: std::result::Result<Option<i64>, Problem> = bounded(
            limit,
            conn.exec_first(
                "DELETE FROM locks WHERE name = ? AND token = ? \
                 RETURNING expires_at >= NOW(6)",
                (&guard.key, &guard.token),
            ),
        )
        .await;
        match deleted {
            Ok(alive) => Outcome::Ok(Released {
                was_held: alive == Some(1),
            }),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
                }
                p.outcome()
            }
        }
    }

    async fn table_renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let limit = self.op_timeout;
        let lease_us = lease_micros(lease);
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let started = Instant::now();
        let updated = bounded(
            limit,
            conn.exec_drop(
                "UPDATE locks SET expires_at = NOW(6) + INTERVAL ? MICROSECOND \
                 WHERE name = ? AND token = ? AND expires_at >= NOW(6)",
                (lease_us, &guard.key, &guard.token),
            ),
        )
        .await;
        match updated {
            Ok(()) if conn.affected_rows() == 1 => {
                guard.lease = Some(Duration::from_micros(lease_us));
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            Ok(()) => Outcome::Fail("not held: the row expired or holds another token".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
                }
                p.outcome()
            }
        }
    }
}

// ------------------------------------------------------------- get-lock

/// The user-level lock name of `key`.
fn lock_name(key: &str) -> std::result::Result<String, String> {
    let name = format!("lockbench/{key}");
    // MariaDB refuses longer names (ER_TOO_LONG_IDENT).
    if name.chars().count() > 64 {
        return Err(format!("lock name {name:?} is longer than 64 characters"));
    }
    Ok(name)
}

impl MysqlClient {
    async fn get_lock_acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let name = match lock_name(key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let token = self.new_token();
        let limit = self.op_timeout;
        // The server waits up to the timeout; the answer then needs a
        // request's time to come back.
        let wait_limit = opts.timeout + limit;
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let started = Instant::now();
        let got: std::result::Result<Option<Option<i64>>, Problem> = bounded(
            wait_limit,
            conn.exec_first("SELECT GET_LOCK(?, ?)", (&name, opts.timeout.as_secs_f64())),
        )
        .await;
        match got {
            Ok(Some(Some(1))) => {}
            Ok(Some(Some(_))) => {
                return Outcome::Fail(format!(
                    "busy: still held by another connection after {:?}",
                    opts.timeout
                ));
            }
            Ok(_) => return Outcome::Fail("GET_LOCK returned NULL (an error)".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    // Dropping the connection frees what it may have taken.
                    self.lose_conn();
                }
                return p.outcome();
            }
        }
        let fence = match self.conn().await {
            Ok(conn) => counter_fence(conn, key, limit).await,
            Err(why) => Err(Problem::Lost(why)),
        };
        match fence {
            Ok(fence) => {
                self.held
                    .entry(key.to_string())
                    .or_insert_with(|| Held {
                        tokens: Vec::new(),
                        conn: None,
                        fence_ids: Vec::new(),
                    })
                    .tokens
                    .push(token.clone());
                Outcome::Ok(Guard {
                    key: key.to_string(),
                    token,
                    fence: Some(fence),
                    lease: None,
                    acquired_at: started,
                })
            }
            Err(p) => {
                // Taken but unusable without a fence: closing the
                // connection gives it back.
                self.lose_conn();
                Outcome::Info(format!("locked, but the fence failed: {p:?}"))
            }
        }
    }

    /// Whether `guard` is one of the holds this client's connection has.
    fn holds(&self, guard: &Guard) -> bool {
        self.held
            .get(&guard.key)
            .is_some_and(|h| h.tokens.contains(&guard.token))
    }

    fn forget(&mut self, guard: &Guard) {
        if let Some(h) = self.held.get_mut(&guard.key) {
            h.tokens.retain(|t| *t != guard.token);
            if h.tokens.is_empty() {
                self.held.remove(&guard.key);
            }
        }
    }

    async fn get_lock_release(&mut self, guard: &Guard) -> Outcome<Released> {
        // A stale guard must not release a later hold of the same name by
        // this connection: the server only knows the connection.
        if !self.holds(guard) {
            return Outcome::Ok(Released { was_held: false });
        }
        let name = match lock_name(&guard.key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let limit = self.op_timeout;
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        let released: std::result::Result<Option<Option<i64>>, Problem> =
            bounded(limit, conn.exec_first("SELECT RELEASE_LOCK(?)", (&name,))).await;
        match released {
            Ok(r) => {
                self.forget(guard);
                Outcome::Ok(Released {
                    was_held: r == Some(Some(1)),
                })
            }
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
                }
                p.outcome()
            }
        }
    }

    async fn get_lock_renew(&mut self, guard: &Guard) -> Outcome<()> {
        if !self.holds(guard) {
            return Outcome::Fail("not held by this connection".into());
        }
        let name = match lock_name(&guard.key) {
            Ok(n) => n,
            Err(why) => return Outcome::Fail(why),
        };
        let limit = self.op_timeout;
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(why) => return Outcome::Fail(why),
        };
        // No lease to extend: check that the server still has it ours.
        let ours: std::result::Result<Option<Option<i64>>, Problem> = bounded(
            limit,
            conn.exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&name,)),
        )
        .await;
        match ours {
            Ok(Some(Some(1))) => Outcome::Ok(()),
            Ok(_) => Outcome::Fail("not held: the server has it free or another's".into()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.lose_conn();
                }
                p.outcome()
            }
        }
    }
}

// ----------------------------------------------------------- for-update

/// `WAIT n` / `NOWAIT` for an acquire timeout: whole seconds, rounded up.
fn wait_clause(timeout: Duration) -> (String, Duration) {
    if timeout.is_zero() {
        return ("NOWAIT".into(), Duration::ZERO);
    }
    let secs = timeout.as_nanos().div_ceil(1_000_000_000);
    let secs = u64::try_from(secs).unwrap_or(u64::MAX).min(31_536_000);
    (format!("WAIT {secs}"), Duration::from_secs(secs))
}

/// Outcome of one `SELECT ... FOR UPDATE`.
enum RowLock {
    Locked,
    Busy,
    /// The row is missing (should not happen once created).
    NoRow,
}

async fn select_for_update(
    conn: &mut Conn,
    key: &str,
    timeout: Duration,
    op_timeout: Duration,
) -> std::result::Result<RowLock, Problem> {
    let (clause, wait) = wait_clause(timeout);
    let sql = format!("SELECT name FROM lock_rows WHERE name = ? FOR UPDATE {clause}");
    let limit = wait + op_timeout;
    match tokio::time::timeout(limit, conn.exec_first::<String, _, _>(sql, (key,))).await {
        Ok(Ok(Some(_))) => Ok(RowLock::Locked),
        Ok(Ok(None)) => Ok(RowLock::NoRow),
        Ok(Err(e)) if server_code(&e) == Some(ER_LOCK_WAIT_TIMEOUT) => Ok(RowLock::Busy),
        Ok(Err(mysql_async::Error::Server(e))) => Err(Problem::Failed(e.to_string())),
        Ok(Err(e)) => Err(Problem::Lost(e.to_string())),
        Err(_) => Err(Problem::Lost(format!("no answer within {limit:?}"))),
    }
}

/// A fence that survives the rollback of the holding transaction.
async fn auto_increment_fence(
    conn: &mut Conn,
    limit: Duration,
) -> std::result::Result<u64, Problem> {
    bounded(limit, conn.query_drop("INSERT INTO fence_ids () VALUES ()")).await?;
    conn.last_insert_id()
        .ok_or_else(|| Problem::Lost("the fence insert returned no id".into()))
}

impl MysqlClient {
    async fn for_update_acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = self.new_token();
        let limit = self.op_timeout;
        let started = Instant::now();
        // Reentrant: the transaction that holds the row locks it again at
        // once.
        if let Some(held) = self.held.get_mut(key) {
            let Some(conn) = held.conn.as_mut() else {
                return Outcome::Fail("held, but its connection is gone".into());
            };
            let locked = select_for_update(conn, key, Duration::ZERO, limit).await;
            let fence = match locked {
                Ok(RowLock::Locked) => auto_increment_fence(conn, limit).await,
                Ok(_) => Err(Problem::Failed(
                    "the holding transaction lost its row".into(),
                )),
                Err(p) => Err(p),
            };
            return match fence {
                Ok(fence) => {
                    held.tokens.push(token.clone());
                    held.fence_ids.push(fence);
                    Outcome::Ok(Guard {
                        key: key.to_string(),
                        token,
                        fence: Some(fence),
                        lease: None,
                        acquired_at: started,
                    })
                }
                Err(p) => {
                    if matches!(p, Problem::Lost(_)) {
                        // The transaction goes with its connection.
                        self.held.remove(key);
                    }
                    p.outcome()
                }
            };
        }
        // A key held already uses the idle connection's slot: take it, or
        // open another for this key's transaction.
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => match open(&self.opts, limit).await {
                Ok(c) => c,
                Err(why) => return Outcome::Fail(why),
            },
        };
        let out = self
            .for_update_on(&mut conn, key, opts.timeout, &token, started)
            .await;
        match out {
            Ok(Some(guard)) => {
                self.held.insert(
                    key.to_string(),
                    Held {
                        tokens: vec![token],
                        conn: Some(conn),
                        fence_ids: guard.fence.into_iter().collect(),
                    },
                );
                Outcome::Ok(guard)
            }
            Ok(None) => {
                self.park(conn);
                Outcome::Fail(format!(
                    "busy: row still locked by another transaction after {:?}",
                    wait_clause(opts.timeout).1
                ))
            }
            // The transaction was ended (rolled back) before returning.
            Err(Problem::Failed(why)) => {
                self.park(conn);
                Outcome::Fail(why)
            }
            // Dropping the connection rolls back whatever it took.
            Err(Problem::Lost(why)) => Outcome::Info(why),
        }
    }

    /// Keeps `conn` as the idle connection, or closes it if there is one.
    fn park(&mut self, conn: Conn) {
        if self.conn.is_none() {
            self.conn = Some(conn);
        }
    }

    /// Takes the row lock in a new transaction on `conn`. `Ok(None)`: busy,
    /// and the transaction is rolled back.
    async fn for_update_on(
        &mut self,
        conn: &mut Conn,
        key: &str,
        timeout: Duration,
        token: &str,
        started: Instant,
    ) -> std::result::Result<Option<Guard>, Problem> {
        let limit = self.op_timeout;
        if !self.known_rows.contains(key) {
            // Look first with a plain (non-locking) read: INSERT IGNORE on an
            // existing row takes a shared lock on it, so it would queue
            // behind the holder.
            let exists: Option<i64> = bounded(
                limit,
                conn.exec_first("SELECT 1 FROM lock_rows WHERE name = ?", (key,)),
            )
            .await?;
            if exists.is_none() {
                bounded(
                    limit,
                    conn.exec_drop("INSERT IGNORE INTO lock_rows (name) VALUES (?)", (key,)),
                )
                .await?;
            }
            // Ends the read view too, so the lock's transaction starts fresh.
            bounded(limit, conn.query_drop("COMMIT")).await?;
            self.known_rows.insert(key.to_string());
        }
        let locked = select_for_update(conn, key, timeout, limit).await;
        let fence = match locked {
            Ok(RowLock::Locked) => auto_increment_fence(conn, limit).await,
            Ok(RowLock::Busy) => {
                bounded(limit, conn.query_drop("ROLLBACK")).await?;
                return Ok(None);
            }
            Ok(RowLock::NoRow) => {
                self.known_rows.remove(key);
                Err(Problem::Failed(format!("no lock row for {key:?}")))
            }
            Err(p) => Err(p),
        };
        match fence {
            Ok(fence) => Ok(Some(Guard {
                key: key.to_string(),
                token: token.to_string(),
                fence: Some(fence),
                lease: None,
                acquired_at: started,
            })),
            Err(Problem::Failed(why)) => {
                bounded(limit, conn.query_drop("ROLLBACK")).await?;
                Err(Problem::Failed(why))
            }
            Err(p) => Err(p),
        }
    }

    async fn for_update_release(&mut self, guard: &Guard) -> Outcome<Released> {
        if !self.holds(guard) {
            return Outcome::Ok(Released { was_held: false });
        }
        let Some(mut held) = self.held.remove(&guard.key) else {
            return Outcome::Ok(Released { was_held: false });
        };
        if held.tokens.len() > 1 {
            // An inner reentrant hold: the row stays locked by the outer.
            held.tokens.retain(|t| *t != guard.token);
            self.held.insert(guard.key.clone(), held);
            return Outcome::Ok(Released { was_held: true });
        }
        let Some(mut conn) = held.conn.take() else {
            return Outcome::Ok(Released { was_held: false });
        };
        let ids: Vec<String> = held.fence_ids.iter().map(u64::to_string).collect();
        let mut sql = String::new();
        if !ids.is_empty() {
            sql = format!("DELETE FROM fence_ids WHERE id IN ({}); ", ids.join(","));
        }
        sql.push_str("COMMIT");
        match bounded(self.op_timeout, conn.query_drop(sql)).await {
            Ok(()) => {
                self.park(conn);
                Outcome::Ok(Released { was_held: true })
            }
            // Whatever failed, the connection is dropped, which rolls the
            // transaction back and frees the row: we no longer hold it,
            // but cannot tell whether the server has seen that yet.
            Err(p) => Outcome::Info(format!("commit: {p:?}")),
        }
    }

    async fn for_update_renew(&mut self, guard: &Guard) -> Outcome<()> {
        if !self.holds(guard) {
            return Outcome::Fail("not held by this client".into());
        }
        let limit = self.op_timeout;
        let Some(conn) = self.held.get_mut(&guard.key).and_then(|h| h.conn.as_mut()) else {
            return Outcome::Fail("not held by this client".into());
        };
        // No lease to extend: the transaction lives while its connection
        // does, so check the connection.
        match bounded(limit, conn.query_drop("SELECT 1")).await {
            Ok(()) => Outcome::Ok(()),
            Err(p) => {
                if matches!(p, Problem::Lost(_)) {
                    self.held.remove(&guard.key);
                }
                p.outcome()
            }
        }
    }
}

#[async_trait]
impl LockClient for MysqlClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        match self.recipe {
            Recipe::Table => self.table_acquire(key, opts).await,
            Recipe::ForUpdate => self.for_update_acquire(key, opts).await,
            Recipe::GetLock => self.get_lock_acquire(key, opts).await,
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        match self.recipe {
            Recipe::Table => self.table_release(guard).await,
            Recipe::ForUpdate => self.for_update_release(guard).await,
            Recipe::GetLock => self.get_lock_release(guard).await,
        }
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        match self.recipe {
            Recipe::Table => self.table_renew(guard, lease).await,
            Recipe::ForUpdate => self.for_update_renew(guard).await,
            Recipe::GetLock => self.get_lock_renew(guard).await,
        }
    }
}

/// The MariaDB recipes, as the registry knows them.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            Recipe::Table.name(),
            Some(ServerKind::MariaDb),
            "INSERT into a lock table with a unique index; DELETE to release; expiry column and cleaner",
            |eps| async move { connect(Recipe::Table, &eps).await },
        ),
        super::BackendInfo::new(
            Recipe::ForUpdate.name(),
            Some(ServerKind::MariaDb),
            "SELECT ... FOR UPDATE on the lock's row in a transaction; COMMIT releases",
            |eps| async move { connect(Recipe::ForUpdate, &eps).await },
        )
        .notified("blocking call in the server"),
        super::BackendInfo::new(
            Recipe::GetLock.name(),
            Some(ServerKind::MariaDb),
            "GET_LOCK(name, timeout) / RELEASE_LOCK on a dedicated connection",
            |eps| async move { connect(Recipe::GetLock, &eps).await },
        )
        .notified("blocking call in the server"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_update_waits_whole_seconds_rounded_up() {
        assert_eq!(wait_clause(Duration::ZERO).0, "NOWAIT");
        assert_eq!(wait_clause(Duration::from_millis(300)).0, "WAIT 1");
        assert_eq!(wait_clause(Duration::from_secs(2)).0, "WAIT 2");
        assert_eq!(wait_clause(Duration::from_millis(2001)).0, "WAIT 3");
    }

    #[test]
    fn leases_round_up_to_microseconds() {
        assert_eq!(lease_micros(Duration::from_nanos(1)), 1);
        assert_eq!(lease_micros(Duration::from_millis(5)), 5_000);
        assert_eq!(lease_micros(Duration::from_nanos(1_500)), 2);
    }

    #[test]
    fn long_lock_names_are_refused() {
        assert!(lock_name("k").is_ok());
        assert!(lock_name(&"x".repeat(60)).is_err());
    }
}
