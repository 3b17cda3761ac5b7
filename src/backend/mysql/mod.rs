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
//!   with [`super::acquire_with_retry`], jittered backoff up to the timeout.
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
//! (<https://mariadb.com/kb/en/get_lock/>; measured: `GET_LOCK(n, 0.3)` gives
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

mod for_update;
mod get_lock;
mod table;

use super::{Attempt, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome};
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
        let s = Session {
            opts: self.opts.clone(),
            tokens: self.tokens.clone(),
            id: config.id,
            op_timeout: config.op_timeout,
            conn: Some(conn),
        };
        Ok(match self.recipe {
            Recipe::Table => Box::new(table::TableClient {
                s,
                backoff: Backoff::new(config.seed),
            }),
            Recipe::ForUpdate => Box::new(for_update::ForUpdateClient {
                s,
                held: Holds::default(),
                known_rows: HashSet::new(),
            }),
            Recipe::GetLock => Box::new(get_lock::GetLockClient {
                s,
                held: Holds::default(),
            }),
        })
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

/// The connection helper every recipe's client has: one dedicated
/// connection, opened lazily and opened again after it broke, and the
/// owner tokens.
struct Session {
    opts: Opts,
    tokens: Arc<AtomicU64>,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    /// Bound of one request (plus the server-side wait when it blocks).
    op_timeout: Duration,
    /// The client's connection (for `mysql-for-update`: the idle one);
    /// `None` after it broke, until the next operation opens another.
    conn: Option<Conn>,
}

/// Locks held through a connection (`mysql-get-lock`: through the
/// session's; `mysql-for-update`: each through its own transaction), by
/// key.
#[derive(Default)]
struct Holds {
    map: HashMap<String, Held>,
}

impl Holds {
    /// Whether `guard` is one of the holds this client has.
    fn holds(&self, guard: &Guard) -> bool {
        self.map
            .get(&guard.key)
            .is_some_and(|h| h.tokens.contains(&guard.token))
    }

    /// Forgets `guard`'s hold (the key, with its last guard).
    fn forget(&mut self, guard: &Guard) {
        if let Some(h) = self.map.get_mut(&guard.key) {
            h.tokens.retain(|t| *t != guard.token);
            if h.tokens.is_empty() {
                self.map.remove(&guard.key);
            }
        }
    }
}

impl Session {
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

    /// Forgets a broken connection.
    fn lose_conn(&mut self) {
        self.conn = None;
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
