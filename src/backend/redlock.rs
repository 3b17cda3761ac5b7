//! `redlock`: the Redlock algorithm over N independent Redis masters.
//!
//! The recipe of redis.io's "Distributed Locks with Redis" page, section
//! "The Redlock Algorithm":
//!
//! 1. Note the current time.
//! 2. `SET key token NX PX ttl` on all N masters in parallel, each request
//!    bounded by a timeout far below the TTL (`min(op_timeout, ttl / 10,
//!    50 ms)`), so a dead master costs little.
//! 3. The lock is taken when a majority (`N / 2 + 1`) said yes and the
//!    validity left, `ttl − elapsed − drift` with `drift = ttl × 1 % + 2 ms`,
//!    is positive. `Guard::lease` is that validity, counted from
//!    `Guard::acquired_at` = the moment of step 1 (the safe side: the keys
//!    were set after it).
//! 4. Otherwise the client deletes its key on *all* masters (also those that
//!    seemed to fail: their answer may only have been lost) and tries again
//!    after a random delay ([`Backoff`]).
//!
//! Release is the compare-and-delete script on all masters; renew is a
//! compare-and-`PEXPIRE` on all, valid when a majority extended it within
//! the new validity.
//!
//! **No fence.** Redlock has no fencing token: the masters are independent,
//! so nothing counts grants in one order, and a random token cannot be
//! compared (Kleppmann, "How to do distributed locking", 2016). A holder
//! paused past its validity can write after the next holder: only the
//! lease, and the holder's own clock, stand between them.
//!
//! **Clocks.** Safety rests on the masters' expiry clocks running at about
//! the same rate as the client's; a master whose clock jumps, or one that
//! restarts without persistence and forgets keys, can give a second client
//! a majority (the page's own "Safety arguments" and "Performance, crash
//! recovery and fsync" sections).
//!
//! Every client has its own connection to each master. A master that cannot
//! be reached when the client starts is connected again on later requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Value};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    AcquireOptions, Attempt, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome,
    Released, acquire_with_retry,
};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::cluster::topology::Shape;
use crate::error::{Error, Result};

const NAME: &str = "redlock";

/// The longest a single master may take to answer during an acquire.
const MAX_INSTANCE_TIMEOUT: Duration = Duration::from_millis(50);

// The scripts and key naming are the single-instance `redis` backend's.
// They are sent with `EVAL`, not `EVALSHA`: a master that has not seen a
// script answers `NOSCRIPT`, and the client's fallback (load, then retry)
// never happens when the request was abandoned at the per-master timeout,
// e.g. on a frozen master. Its queued delete would then fail when the
// master thaws, leaving the key set until its TTL. `EVAL` is one
// self-contained command.
use super::redis::{RELEASE, RENEW, definitely_not_run, lock_key};

/// How many masters make a majority of `n`.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The clock drift allowance of the Redlock page: 1 % of the TTL plus 2 ms
/// for the timers' granularity.
pub fn drift(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// What the client may rely on after `elapsed` of a `ttl`: `ttl − elapsed −
/// drift`, or `None` if nothing is left.
pub fn validity(ttl: Duration, elapsed: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed + drift(ttl))
        .filter(|v| !v.is_zero())
}

/// Connects the backend to its masters, checking that a majority answers
/// `PING`.
pub async fn connect(endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let err = |endpoint: &str, message: String| Error::Backend {
        backend: NAME.into(),
        endpoint: endpoint.to_string(),
        message,
    };
    if endpoints.is_empty() {
        return Err(err("", "no redis endpoints".into()));
    }
    let mut masters = Vec::new();
    for e in endpoints {
        let client = redis::Client::open(format!("redis://{}/", e.addr))
            .map_err(|x| err(&e.addr, x.to_string()))?;
        masters.push((e.addr.clone(), client));
    }
    let mut pings = JoinSet::new();
    for (addr, client) in &masters {
        let (addr, client) = (addr.clone(), client.clone());
        pings.spawn(async move {
            let ping = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await
            };
            match tokio::time::timeout(Duration::from_secs(5), ping).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("{addr}: {e}")),
                Err(_) => Err(format!("{addr}: no answer within 5 s")),
            }
        });
    }
    let mut down = Vec::new();
    while let Some(r) = pings.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(why)) => down.push(why),
            Err(e) => down.push(e.to_string()),
        }
    }
    if masters.len() - down.len() < quorum(masters.len()) {
        return Err(err(
            &endpoints
                .iter()
                .map(|e| e.addr.as_str())
                .collect::<Vec<_>>()
                .join(","),
            format!(
                "fewer than a majority of the {} masters answer: {}",
                masters.len(),
                down.join("; ")
            ),
        ));
    }
    Ok(Arc::new(RedlockBackend {
        masters,
        tokens: Arc::new(AtomicU64::new(0)),
    }))
}

/// The backend: the masters; each lock client opens its own connections.
struct RedlockBackend {
    /// `host:port` and client of each master.
    masters: Vec<(String, redis::Client)>,
    /// Makes owner tokens unique across clients and acquisitions.
    tokens: Arc<AtomicU64>,
}

#[async_trait]
impl LockBackend for RedlockBackend {
    fn name(&self) -> &str {
        NAME
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let cm_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.op_timeout))
            .set_connection_timeout(Some(config.op_timeout))
            .set_number_of_retries(2);
        let masters = Masters(Arc::new(MastersInner {
            clients: self.masters.iter().map(|(_, c)| c.clone()).collect(),
            conns: Mutex::new(vec![None; self.masters.len()]),
            cm_config,
        }));
        // Connect to every master now; one that does not answer is tried
        // again on later requests (and counts as a failed instance).
        let pings = masters
            .on_all(config.op_timeout, |mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            })
            .await;
        let up = pings.iter().filter(|r| matches!(r, Reply::Ok(_))).count();
        if up == 0 {
            return Err(Error::Backend {
                backend: NAME.into(),
                endpoint: self
                    .masters
                    .iter()
                    .map(|(a, _)| a.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                message: "no master answers".into(),
            });
        }
        Ok(Box::new(RedlockClient {
            masters,
            tokens: self.tokens.clone(),
            id: config.id,
            op_timeout: config.op_timeout,
            backoff: Backoff::new(config.seed),
        }))
    }
}

/// One client's connections to every master, shared with the tasks that
/// talk to them in parallel.
#[derive(Clone)]
struct Masters(Arc<MastersInner>);

struct MastersInner {
    clients: Vec<redis::Client>,
    /// `None` until a connection has been made (reconnects by itself after).
    conns: Mutex<Vec<Option<ConnectionManager>>>,
    cm_config: ConnectionManagerConfig,
}

/// One master's answer.
#[derive(Debug)]
enum Reply<T> {
    /// It answered.
    Ok(T),
    /// It definitely did not run the command (refused, error reply).
    NotRun(String),
    /// No answer in time, or the connection broke: it may have run it.
    Lost(String),
}

impl Masters {
    fn len(&self) -> usize {
        self.0.clients.len()
    }

    /// Runs `op` on every master at once, each bounded by `limit` (connect
    /// included, for a master not connected yet); the answers in master
    /// order.
    async fn on_all<T, F, Fut>(&self, limit: Duration, op: F) -> Vec<Reply<T>>
    where
        T: Send + 'static,
        F: Fn(ConnectionManager) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
    {
        let conns: Vec<Option<ConnectionManager>> = self
            .0
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let deadline = Instant::now() + limit;
        let mut tasks = JoinSet::new();
        for (i, conn) in conns.into_iter().enumerate() {
            let client = self.0.clients[i].clone();
            let cm_config = self.0.cm_config.clone();
            let op = op.clone();
            tasks.spawn(async move {
                let (conn, fresh) = match conn {
                    Some(c) => (c, false),
                    None => {
                        let connect = ConnectionManager::new_with_config(client, cm_config);
                        match tokio::time::timeout_at(deadline, connect).await {
                            Ok(Ok(c)) => (c, true),
                            // Nothing was sent: the command did not run.
                            Ok(Err(e)) => return (i, None, Reply::NotRun(format!("connect: {e}"))),
                            Err(_) => {
                                return (
                                    i,
                                    None,
                                    Reply::NotRun(format!("connect: no answer within {limit:?}")),
                                );
                            }
                        }
                    }
                };
                let reply = match tokio::time::timeout_at(deadline, op(conn.clone())).await {
                    Ok(Ok(v)) => Reply::Ok(v),
                    Ok(Err(e)) if definitely_not_run(&e) => Reply::NotRun(e.to_string()),
                    Ok(Err(e)) => Reply::Lost(e.to_string()),
                    Err(_) => Reply::Lost(format!("no answer within {limit:?}")),
                };
                (i, fresh.then_some(conn), reply)
            });
        }
        let mut replies: Vec<Option<Reply<T>>> = (0..self.len()).map(|_| None).collect();
        let mut fresh = Vec::new();
        while let Some(done) = tasks.join_next().await {
            // A task that panicked leaves its slot empty: treated as lost.
            if let Ok((i, conn, reply)) = done {
                replies[i] = Some(reply);
                if let Some(c) = conn {
                    fresh.push((i, c));
                }
            }
        }
        if !fresh.is_empty() {
            let mut conns = self.0.conns.lock().unwrap_or_else(|p| p.into_inner());
            for (i, c) in fresh {
                conns[i].get_or_insert(c);
            }
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Reply::Lost("task failed".into())))
            .collect()
    }

    /// Deletes our key on every master (compare-and-delete); the answers.
    async fn unlock_all(&self, key: &str, token: &str, limit: Duration) -> Vec<Reply<u64>> {
        let (key, token) = (lock_key(key), token.to_string());
        self.on_all(limit, move |mut conn| {
            let (key, token) = (key.clone(), token.clone());
            async move {
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(key)
                    .arg(token)
                    .query_async::<u64>(&mut conn)
                    .await
            }
        })
        .await
    }
}

/// Tallies of the masters' answers.
#[derive(Debug, Default)]
struct Tally {
    /// Said yes (set, deleted, extended).
    yes: usize,
    /// Answered no (held by another, not ours).
    no: usize,
    /// Definitely did not run it.
    not_run: usize,
    /// May have run it.
    lost: usize,
    /// Why, for the ones that did not answer.
    errors: Vec<String>,
}

impl Tally {
    fn of<T>(replies: &[Reply<T>], yes: impl Fn(&T) -> bool) -> Tally {
        let mut t = Tally::default();
        for r in replies {
            match r {
                Reply::Ok(v) if yes(v) => t.yes += 1,
                Reply::Ok(_) => t.no += 1,
                Reply::NotRun(why) => {
                    t.not_run += 1;
                    t.errors.push(why.clone());
                }
                Reply::Lost(why) => {
                    t.lost += 1;
                    t.errors.push(why.clone());
                }
            }
        }
        t
    }

    fn why(&self) -> String {
        if self.errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.errors.join("; "))
        }
    }
}

/// One lock client: a connection to every master.
struct RedlockClient {
    masters: Masters,
    tokens: Arc<AtomicU64>,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    op_timeout: Duration,
    /// Random waits between tries.
    backoff: Backoff,
}

impl RedlockClient {
    /// The per-master timeout for a TTL: far below it, so that a dead
    /// master does not eat the validity.
    fn instance_timeout(&self, ttl: Duration) -> Duration {
        self.op_timeout
            .min(ttl / 10)
            .min(MAX_INSTANCE_TIMEOUT)
            .max(Duration::from_millis(1))
    }

    /// One try of the algorithm (steps 1 to 4).
    async fn attempt(
        masters: Masters,
        key: String,
        token: String,
        ttl: Duration,
        limit: Duration,
    ) -> Attempt {
        let n = masters.len();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let started = Instant::now();
        let k = lock_key(&key);
        let tok = token.clone();
        let replies = masters
            .on_all(limit, move |mut conn| {
                let (k, tok) = (k.clone(), tok.clone());
                async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(tok)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async::<Value>(&mut conn)
                        .await
                }
            })
            .await;
        let elapsed = started.elapsed();
        let tally = Tally::of(&replies, |v| matches!(v, Value::Okay));
        let valid = validity(ttl, elapsed);
        if tally.yes >= quorum(n)
            && let Some(validity) = valid
        {
            return Attempt::Acquired(Guard {
                key,
                token,
                fence: None,
                lease: Some(validity),
                // Validity counts from before the first SET was sent: the
                // safe side.
                acquired_at: started,
            });
        }
        // Not taken: delete our key everywhere, also where the answer was
        // lost (the SET may have landed). If a delete does not land either,
        // the key lingers on that master until its TTL. That grants the lock
        // to nobody: we never act as holder, and another client is only kept
        // waiting. So the try definitely did not take effect as a lock: Busy
        // or Failed, never Unknown.
        masters.unlock_all(&key, &token, limit).await;
        if tally.yes >= quorum(n) {
            return Attempt::Failed(format!(
                "a majority granted but the validity ran out: took {elapsed:?} of a {ttl:?} TTL"
            ));
        }
        if tally.no > 0 {
            return Attempt::Busy;
        }
        Attempt::Failed(format!(
            "only {} of {n} masters granted, {} needed{}",
            tally.yes,
            quorum(n),
            tally.why()
        ))
    }
}

#[async_trait]
impl LockClient for RedlockClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let token = format!(
            "c{}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        );
        let limit = self.instance_timeout(opts.lease);
        let RedlockClient {
            masters, backoff, ..
        } = self;
        acquire_with_retry(backoff, opts.timeout, || {
            Self::attempt(
                masters.clone(),
                key.to_string(),
                token.clone(),
                opts.lease,
                limit,
            )
        })
        .await
    }

    /// Compare-and-delete on every master. Held if a majority deleted it.
    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let n = self.masters.len();
        let q = quorum(n);
        let limit = self.op_timeout;
        let replies = self
            .masters
            .unlock_all(&guard.key, &guard.token, limit)
            .await;
        let t = Tally::of(&replies, |d| *d > 0);
        if t.yes >= q {
            return Outcome::Ok(Released { was_held: true });
        }
        if t.yes + t.not_run + t.lost < q {
            // Even if every master that did not answer had our key, we
            // could not have held a majority: the lock was not ours.
            return Outcome::Ok(Released { was_held: false });
        }
        if t.yes == 0 && t.lost == 0 {
            return Outcome::Fail(format!("no master ran the release{}", t.why()));
        }
        Outcome::Info(format!(
            "deleted on {} of {n} masters, {} unknown{}",
            t.yes,
            t.not_run + t.lost,
            t.why()
        ))
    }

    /// Compare-and-`PEXPIRE` on every master: renewed when a majority
    /// extended it and validity is left.
    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let n = self.masters.len();
        let q = quorum(n);
        let limit = self.instance_timeout(lease);
        let ttl_ms = lease.as_millis().max(1) as u64;
        let started = Instant::now();
        let (key, token) = (lock_key(&guard.key), guard.token.clone());
        let replies = self
            .masters
            .on_all(limit, move |mut conn| {
                let (key, token) = (key.clone(), token.clone());
                async move {
                    redis::cmd("EVAL")
                        .arg(RENEW)
                        .arg(1)
                        .arg(key)
                        .arg(token)
                        .arg(ttl_ms)
                        .query_async::<u64>(&mut conn)
                        .await
                }
            })
            .await;
        let elapsed = started.elapsed();
        let t = Tally::of(&replies, |x| *x == 1);
        match validity(lease, elapsed) {
            Some(v) if t.yes >= q => {
                guard.lease = Some(v);
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            // The keys were extended but the client may not rely on it.
            None if t.yes >= q => Outcome::Info(format!(
                "extended on a majority but the validity ran out: took {elapsed:?}"
            )),
            _ if t.yes + t.lost < q => Outcome::Fail(format!(
                "not held: extended on {} of {n} masters, {q} needed{}",
                t.yes,
                t.why()
            )),
            _ => Outcome::Info(format!(
                "extended on {} of {n} masters, {} unknown{}",
                t.yes,
                t.lost,
                t.why()
            )),
        }
    }
}

/// Redlock, as the registry knows it: five independent masters, which is
/// also its replicated topology (nothing to add: they do not replicate).
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            NAME,
            Some(ServerKind::Redis),
            "Redlock: SET NX PX on a majority of 5 independent masters within the validity time",
            |eps| async move { connect(&eps).await },
        )
        .servers(5)
        .replicated(Shape::Masters(5)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
    }

    #[test]
    fn validity_subtracts_elapsed_and_drift() {
        let ttl = Duration::from_secs(10);
        // drift = 100 ms + 2 ms
        assert_eq!(
            validity(ttl, Duration::from_millis(98)),
            Some(Duration::from_millis(9_800))
        );
        assert_eq!(validity(ttl, Duration::from_millis(9_898)), None);
        assert_eq!(validity(Duration::from_millis(2), Duration::ZERO), None);
    }

    #[test]
    fn tally_counts_each_kind() {
        let replies = vec![
            Reply::Ok(1u64),
            Reply::Ok(0),
            Reply::NotRun("refused".into()),
            Reply::Lost("timeout".into()),
            Reply::Ok(1),
        ];
        let t = Tally::of(&replies, |v| *v > 0);
        assert_eq!((t.yes, t.no, t.not_run, t.lost), (2, 1, 1, 1));
        assert!(t.why().contains("refused"));
    }
}
