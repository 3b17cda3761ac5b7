//! `etcd`: a lease and a transaction on the key's create revision.
//!
//! **Acquire.** Grant a lease of the scenario's lease rounded *up* to whole
//! seconds (etcd's TTLs are seconds; the server raises a TTL below its
//! minimum, ceil(1.5 × election timeout): 1 s on the server lockbench starts,
//! 2 s with etcd's defaults), then one transaction:
//! `if create_revision(key) == 0 then put(key, token, lease) else get(key)`.
//! The lock is ours when the comparison held. The TTL the server granted is
//! `Guard.lease`.
//!
//! **Waiting.** A busy acquire does not poll: it watches the key for a
//! delete starting just after the revision its transaction saw, so a
//! release (or an expiry) between the two requests is not missed, then
//! tries the transaction again. Every waiter watches the same key, so a
//! release wakes them all and all try again (the herd effect, costly
//! here: a transaction with a put in it goes through Raft and the disk
//! even when its comparison fails; etcd's own
//! `concurrency.Mutex` avoids it with one key per waiter, each watching the
//! next-lower create revision). A watch that cannot be made or breaks is
//! replaced by a jittered wait before the next try. When the timeout
//! passes, the acquire is `Fail` ("busy"): its transactions all failed, so
//! it took nothing.
//!
//! **Fence.** The key's create revision: the revision of the transaction
//! that created it. etcd's revision is one counter for the whole store that
//! only grows, and every acquisition creates the key anew, so the fence
//! grows per key (this is the fencing token Jepsen's etcd 3.4.3 analysis
//! recommends).
//!
//! **Keep-alive = lease.** From its grant (so also while it waits), the
//! lease is kept alive by a background task at a third of the TTL. The task
//! stops when the server says the lease is gone, or when a whole TTL has
//! passed since the last keep-alive the server confirmed (the client can no
//! longer know it holds the lock): from then on the lock is lost, and only
//! the next release or renew tells the holder (`was_held: false`, `Fail`).
//! `Guard.acquired_at` is when the grant, or the latest keep-alive the
//! server confirmed before the winning transaction, was sent, so
//! `acquired_at + lease` is before the server can expire the key. [`LockClient::renew`] is one more keep-alive: `Ok` while the
//! lease lives; an etcd lease's TTL is fixed at its grant, so the lease
//! asked for is ignored.
//!
//! **Release** deletes the key in a transaction that compares its value
//! with our token and its create revision with our fence
//! (`was_held: false` when it no longer matches), stops the keep-alive and
//! revokes the lease in the background. Dropping a client (or crashing it)
//! stops its keep-alives and says nothing to the server: its keys stay
//! until their leases run out, as a killed process's would.
//!
//! **What breaks it.** A holder that pauses (GC, SIGSTOP) or is cut off
//! for longer than the TTL loses the lease on the server while it still
//! believes it holds the lock: etcd's locks cannot guarantee mutual
//! exclusion on their own (Jepsen, "etcd 3.4.3", 2020), only the fence
//! checked by the protected resource can. The other way round, a leader
//! change or a restart renews every lease to its full TTL (etcd issues
//! #9395, #9888), so a dead holder's lock can last longer than its TTL.
//!
//! Each client has its own etcd client (its connections to every member,
//! over which it spreads its requests). Every request is bounded by
//! `op_timeout`; one refused at connect (a dead member) is sent again at
//! once, twice at most, as etcd's Go client retries a request that was
//! never sent (watches and keep-alives on an open stream are not). A
//! request that timed out or whose
//! connection broke is `Info`, except a lease grant, which is `Fail` (an
//! orphan lease holds no key and runs out by itself). An error status from
//! the server (e.g. "requested lease not found") is `Fail`. An acquire
//! that ends `Info` revokes its lease in the background, which frees the
//! key if the put did happen.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client as etcd;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    AcquireOptions, Backoff, ClientConfig, Guard, LockBackend, LockClient, Outcome, Released,
};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::cluster::topology::Shape;
use crate::error::{Error, Result};

/// The backend's name.
const NAME: &str = "etcd";

/// How long `connect` waits for the server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The etcd lock backend over one server.
#[derive(Debug, Clone)]
pub struct EtcdBackend {
    /// `host:port` of the server.
    /// Every member's address, comma-separated (one for a single server).
    addr: String,
    /// Makes owner tokens unique across clients and acquisitions.
    tokens: Arc<AtomicU64>,
}

/// Connects the backend to its servers: checks that the first endpoint
/// answers a status request.
pub async fn connect(endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let endpoint = endpoints.first().ok_or_else(|| Error::Backend {
        backend: NAME.into(),
        endpoint: String::new(),
        message: "no etcd endpoint".into(),
    })?;
    let err = |message: String| Error::Backend {
        backend: NAME.into(),
        endpoint: endpoint.addr.clone(),
        message,
    };
    let check = async {
        let mut client = open(&endpoint.addr, CONNECT_TIMEOUT).await?;
        client.status().await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, check)
        .await
        .map_err(|_| err(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(EtcdBackend {
        // A cluster's clients know every member, as etcd's own clients
        // are configured: requests spread over them, and a member that
        // stops answering is not the only way in.
        addr: endpoints
            .iter()
            .map(|e| e.addr.as_str())
            .collect::<Vec<_>>()
            .join(","),
        tokens: Arc::new(AtomicU64::new(0)),
    }))
}

/// A new etcd client with its own connections to `addrs` (one address,
/// or several separated by commas).
async fn open(
    addrs: &str,
    connect_timeout: Duration,
) -> std::result::Result<etcd::Client, etcd::Error> {
    let options = etcd::ConnectOptions::new().with_connect_timeout(connect_timeout);
    let urls: Vec<String> = addrs.split(',').map(|a| format!("http://{a}")).collect();
    etcd::Client::connect(urls, Some(options)).await
}

#[async_trait]
impl LockBackend for EtcdBackend {
    fn name(&self) -> &str {
        NAME
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let client = open(&self.addr, config.op_timeout)
            .await
            .map_err(|e| Error::Backend {
                backend: NAME.into(),
                endpoint: self.addr.clone(),
                message: e.to_string(),
            })?;
        Ok(Box::new(EtcdClient {
            kv: client.kv_client(),
            watch: client.watch_client(),
            lease: client.lease_client(),
            tokens: self.tokens.clone(),
            id: config.id,
            op_timeout: config.op_timeout,
            backoff: Backoff::new(config.seed),
            held: HashMap::new(),
        }))
    }
}

/// A lease kept alive by a background task; dropping it stops the task.
struct KeepAlive {
    /// The lease.
    id: i64,
    /// The TTL the server granted.
    ttl: Duration,
    /// When the last keep-alive (or the grant) the server confirmed was sent.
    refreshed: Arc<Mutex<Instant>>,
    /// The task sending keep-alives.
    task: JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeepAlive {
    fn start(
        lease: etcd::LeaseClient,
        id: i64,
        ttl: Duration,
        granted: Instant,
        op_timeout: Duration,
    ) -> Self {
        let refreshed = Arc::new(Mutex::new(granted));
        let task = tokio::spawn(keep_lease_alive(
            lease,
            id,
            ttl,
            op_timeout,
            refreshed.clone(),
        ));
        KeepAlive {
            id,
            ttl,
            refreshed,
            task,
        }
    }

    fn refreshed(&self) -> Instant {
        *self.refreshed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_refreshed(&self, at: Instant) {
        let mut r = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
        *r = (*r).max(at);
    }
}

/// Sends a keep-alive every third of the TTL until the lease is gone or a
/// whole TTL passed without one confirmed (then the lock is lost).
async fn keep_lease_alive(
    mut lease: etcd::LeaseClient,
    id: i64,
    ttl: Duration,
    op_timeout: Duration,
    refreshed: Arc<Mutex<Instant>>,
) {
    let period = (ttl / 3).max(Duration::from_millis(100));
    let mut stream: Option<(etcd::LeaseKeeper, etcd::LeaseKeepAliveStream)> = None;
    loop {
        tokio::time::sleep(period).await;
        let last = *refreshed.lock().unwrap_or_else(|p| p.into_inner());
        if Instant::now() >= last + ttl {
            tracing::debug!("etcd lease {id:x}: no keep-alive confirmed for {ttl:?}; lock lost");
            return;
        }
        let sent = Instant::now();
        match keep_alive_once(&mut lease, &mut stream, id, op_timeout).await {
            Ok(true) => {
                let mut r = refreshed.lock().unwrap_or_else(|p| p.into_inner());
                *r = (*r).max(sent);
            }
            Ok(false) => {
                tracing::debug!("etcd lease {id:x} is gone; lock lost");
                return;
            }
            // Open a new stream at the next tick, until the TTL runs out.
            Err(_) => stream = None,
        }
    }
}

/// One keep-alive on `stream` (opened if needed). `Ok(false)`: the server
/// says the lease no longer exists.
async fn keep_alive_once(
    lease: &mut etcd::LeaseClient,
    stream: &mut Option<(etcd::LeaseKeeper, etcd::LeaseKeepAliveStream)>,
    id: i64,
    op_timeout: Duration,
) -> std::result::Result<bool, String> {
    let Some((keeper, responses)) = stream else {
        // Opening the stream sends the first keep-alive and reads its answer.
        let opening = bounded_retry(op_timeout, || {
            let mut lease = lease.clone();
            async move { lease.keep_alive(id).await }
        });
        return match opening.await {
            Ok(opened) => {
                *stream = Some(opened);
                Ok(true)
            }
            Err(Failure::Definite(why)) if why.contains("lease not found") => Ok(false),
            Err(f) => Err(f.why()),
        };
    };
    let exchange = async {
        keeper.keep_alive().await?;
        responses.message().await
    };
    match bounded(op_timeout, exchange).await {
        Ok(Some(resp)) => Ok(resp.ttl() > 0),
        Ok(None) => Err("keep-alive stream closed".into()),
        Err(f) => Err(f.why()),
    }
}

/// One held (or being acquired) lock.
struct Held {
    /// The lock key, as the client named it.
    key: String,
    /// The lease and its keep-alive task.
    keep_alive: KeepAlive,
}

/// One client's etcd connection and state.
struct EtcdClient {
    /// Key-value requests, on the client's own connection.
    kv: etcd::KvClient,
    /// Watches, on the same connection.
    watch: etcd::WatchClient,
    /// Lease requests, on the same connection.
    lease: etcd::LeaseClient,
    tokens: Arc<AtomicU64>,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    /// Bound of one request.
    op_timeout: Duration,
    /// Jittered waits after a watch could not be made.
    backoff: Backoff,
    /// What this client holds, by owner token.
    held: HashMap<String, Held>,
}

/// Why a request did not answer.
enum Failure {
    /// It definitely did not take effect.
    Definite(String),
    /// It may have taken effect.
    Unknown(String),
}

impl Failure {
    fn why(self) -> String {
        match self {
            Failure::Definite(w) | Failure::Unknown(w) => w,
        }
    }

    fn outcome<T>(self) -> Outcome<T> {
        match self {
            Failure::Definite(w) => Outcome::Fail(w),
            Failure::Unknown(w) => Outcome::Info(w),
        }
    }
}

/// Whether an error means the request definitely did not take effect.
fn definitely_not_run(e: &etcd::Error) -> bool {
    match e {
        etcd::Error::GRpcStatus(s) => {
            // gRPC codes the server answers only for a request it refused:
            // InvalidArgument, NotFound, AlreadyExists, PermissionDenied,
            // ResourceExhausted, FailedPrecondition, OutOfRange,
            // Unimplemented, Unauthenticated.
            let refused = matches!(s.code() as i32, 3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16);
            let msg = s.message();
            refused || msg.contains("tcp connect error") || msg.contains("Connection refused")
        }
        etcd::Error::TransportError(t) => t.to_string().contains("refused"),
        etcd::Error::InvalidArgs(_)
        | etcd::Error::InvalidUri(_)
        | etcd::Error::InvalidMetadataValue(_)
        | etcd::Error::EndpointError(_)
        | etcd::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

/// Runs one request bounded by `limit`, classifying what went wrong.
async fn bounded<T>(
    limit: Duration,
    request: impl Future<Output = std::result::Result<T, etcd::Error>>,
) -> std::result::Result<T, Failure> {
    match tokio::time::timeout(limit, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if definitely_not_run(&e) => Err(Failure::Definite(e.to_string())),
        Ok(Err(e)) => Err(Failure::Unknown(e.to_string())),
        Err(_) => Err(Failure::Unknown(format!("no answer within {limit:?}"))),
    }
}

/// How many more times a request refused at connect is sent.
const REFUSED_RETRIES: u32 = 2;

/// Whether the request was refused at connect: it never reached a member.
fn refused_at_connect(f: &Failure) -> bool {
    matches!(f, Failure::Definite(why)
        if why.contains("tcp connect error") || why.contains("Connection refused"))
}

/// [`bounded`] for a request `make` can build again: one refused at
/// connect (a dead member: the client's balanced channel still picks it
/// now and then) is sent again at once, up to [`REFUSED_RETRIES`] more
/// times within `limit`, and the channel picks a member again. etcd's Go
/// client likewise retries a request that was never sent.
async fn bounded_retry<T, Fut>(
    limit: Duration,
    mut make: impl FnMut() -> Fut,
) -> std::result::Result<T, Failure>
where
    Fut: Future<Output = std::result::Result<T, etcd::Error>>,
{
    let deadline = Instant::now() + limit;
    let mut retries = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match bounded(left, make()).await {
            Err(f) if refused_at_connect(&f) && retries < REFUSED_RETRIES && !left.is_zero() => {
                retries += 1;
            }
            done => return done,
        }
    }
}

/// The etcd key of a lock.
fn lock_key(key: &str) -> String {
    format!("lockbench/lock/{key}")
}

/// The lease to ask for: `lease` rounded up to whole seconds, at least 1.
fn ttl_seconds(lease: Duration) -> i64 {
    let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// What waiting for a busy key ended with.
enum Waited {
    /// The key was deleted (or the watch can no longer tell): try again.
    Deleted,
    /// The acquire's timeout passed.
    Deadline,
    /// The watch could not be made or broke.
    Broken(String),
}

impl EtcdClient {
    fn new_token(&self) -> String {
        format!(
            "c{}-{}",
            self.id,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Stops a lease's keep-alive and revokes it without waiting: the
    /// lease then frees whatever key it may hold at once, instead of at the
    /// end of its TTL.
    fn discard(&self, keep_alive: KeepAlive) {
        let id = keep_alive.id;
        drop(keep_alive);
        let mut lease = self.lease.clone();
        let limit = self.op_timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(limit, lease.revoke(id)).await;
        });
    }

    /// One transaction, bounded by `op_timeout` ([`bounded_retry`]).
    async fn txn(&self, txn: etcd::Txn) -> std::result::Result<etcd::TxnResponse, Failure> {
        bounded_retry(self.op_timeout, || {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// Waits until `key` is deleted at or after revision `from`.
    async fn wait_for_delete(&mut self, key: &str, from: i64, deadline: Instant) -> Waited {
        let options = etcd::WatchOptions::new()
            .with_start_revision(from)
            .with_filters([etcd::WatchFilterType::NoPut]);
        let limit = self
            .op_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let mut stream = match bounded(limit, self.watch.watch(key, Some(options))).await {
            Ok(s) => s,
            Err(_) if Instant::now() >= deadline => return Waited::Deadline,
            Err(f) => return Waited::Broken(f.why()),
        };
        // Bounded by the deadline; each message is one server event batch.
        loop {
            let msg = match tokio::time::timeout_at(deadline, stream.message()).await {
                Err(_) => return Waited::Deadline,
                Ok(Err(e)) => return Waited::Broken(e.to_string()),
                Ok(Ok(None)) => return Waited::Broken("watch closed".into()),
                Ok(Ok(Some(m))) => m,
            };
            // A cancelled watch (e.g. the revision was compacted) cannot
            // tell us more: look again.
            if msg.canceled()
                || msg
                    .events()
                    .iter()
                    .any(|e| e.event_type() == etcd::EventType::Delete)
            {
                return Waited::Deleted;
            }
        }
    }
}

#[async_trait]
impl LockClient for EtcdClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        // A grant of this key whose release failed and was not retried has
        // been given up (docs/design.md, the hold rule): stop keeping its
        // lease alive, or the key would stay taken for as long as this
        // client lives.
        let given_up: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.key == key)
            .map(|(t, _)| t.clone())
            .collect();
        for token in given_up {
            if let Some(h) = self.held.remove(&token) {
                self.discard(h.keep_alive);
            }
        }
        let deadline = Instant::now() + opts.timeout;
        let token = self.new_token();
        let ttl_asked = ttl_seconds(opts.lease);
        let granted_at = Instant::now();
        // A grant that failed in any way took no lock: at worst it left a
        // lease with no key, which runs out by itself.
        let granting = bounded_retry(self.op_timeout, || {
            let mut lease = self.lease.clone();
            async move { lease.grant(ttl_asked, None).await }
        });
        let grant = match granting.await {
            Ok(g) => g,
            Err(f) => return Outcome::Fail(format!("lease grant: {}", f.why())),
        };
        if grant.ttl() <= 0 {
            return Outcome::Fail(format!("lease grant refused: {}", grant.error()));
        }
        let ttl = Duration::from_secs(grant.ttl().unsigned_abs());
        let keep_alive = KeepAlive::start(
            self.lease.clone(),
            grant.id(),
            ttl,
            granted_at,
            self.op_timeout,
        );
        let etcd_key = lock_key(key);
        self.backoff.reset();
        // Each turn is one transaction; bounded by the deadline (every
        // wait below ends by it).
        loop {
            let txn = etcd::Txn::new()
                .when([etcd::Compare::create_revision(
                    etcd_key.clone(),
                    etcd::CompareOp::Equal,
                    0,
                )])
                .and_then([etcd::TxnOp::put(
                    etcd_key.clone(),
                    token.clone(),
                    Some(etcd::PutOptions::new().with_lease(keep_alive.id)),
                )])
                .or_else([etcd::TxnOp::get(etcd_key.clone(), None)]);
            let resp = match self.txn(txn).await {
                Ok(r) => r,
                Err(f) => {
                    self.discard(keep_alive);
                    return f.outcome();
                }
            };
            let revision = resp.header().map_or(0, |h| h.revision());
            if resp.succeeded() {
                let acquired_at = keep_alive.refreshed();
                self.held.insert(
                    token.clone(),
                    Held {
                        key: key.to_string(),
                        keep_alive,
                    },
                );
                return Outcome::Ok(Guard {
                    key: key.to_string(),
                    token,
                    // The put created the key in this transaction's revision.
                    fence: u64::try_from(revision).ok().filter(|&r| r > 0),
                    lease: Some(ttl),
                    acquired_at,
                });
            }
            if Instant::now() >= deadline {
                break;
            }
            match self
                .wait_for_delete(&etcd_key, revision + 1, deadline)
                .await
            {
                Waited::Deleted => {}
                Waited::Deadline => break,
                Waited::Broken(why) => {
                    tracing::debug!("etcd watch on {etcd_key}: {why}");
                    if !self.backoff.wait(deadline).await {
                        break;
                    }
                }
            }
        }
        self.discard(keep_alive);
        Outcome::Fail(format!(
            "busy: still held by another client after {:?}",
            opts.timeout
        ))
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let etcd_key = lock_key(&guard.key);
        let mut when = vec![etcd::Compare::value(
            etcd_key.clone(),
            etcd::CompareOp::Equal,
            guard.token.clone(),
        )];
        if let Some(fence) = guard.fence.and_then(|f| i64::try_from(f).ok()) {
            when.push(etcd::Compare::create_revision(
                etcd_key.clone(),
                etcd::CompareOp::Equal,
                fence,
            ));
        }
        let txn = etcd::Txn::new()
            .when(when)
            .and_then([etcd::TxnOp::delete(etcd_key, None)]);
        let held = self.held.remove(&guard.token);
        match self.txn(txn).await {
            Ok(resp) => {
                if let Some(h) = held {
                    self.discard(h.keep_alive);
                }
                Outcome::Ok(Released {
                    was_held: resp.succeeded(),
                })
            }
            Err(Failure::Definite(why)) => {
                // Nothing happened: we still hold it, keep it alive.
                if let Some(h) = held {
                    self.held.insert(guard.token.clone(), h);
                }
                Outcome::Fail(why)
            }
            Err(Failure::Unknown(why)) => {
                if let Some(h) = held {
                    self.discard(h.keep_alive);
                }
                Outcome::Info(why)
            }
        }
    }

    async fn renew(&mut self, guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        let Some(held) = self.held.get(&guard.token) else {
            return Outcome::Fail("not held: released by this client".into());
        };
        let (id, ttl) = (held.keep_alive.id, held.keep_alive.ttl);
        let sent = Instant::now();
        // Its own stream, so it does not interleave with the background
        // task's answers.
        let renewing = bounded_retry(self.op_timeout, || {
            let mut lease = self.lease.clone();
            async move { lease.keep_alive(id).await }
        });
        match renewing.await {
            Ok(_) => {
                held.keep_alive.set_refreshed(sent);
                guard.lease = Some(ttl);
                guard.acquired_at = sent;
                Outcome::Ok(())
            }
            Err(Failure::Definite(why)) if why.contains("lease not found") => {
                Outcome::Fail("not held: the lease expired".into())
            }
            Err(f) => f.outcome(),
        }
    }
}

/// The etcd recipe, as the registry knows it: a cluster of three under
/// `topology = "replicated"`.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            NAME,
            Some(ServerKind::Etcd),
            "lease + transaction on create_revision == 0, kept alive while held; fence = create revision",
            |eps| async move { connect(&eps).await },
        )
        .replicated(Shape::EtcdCluster(3, ServerKind::Etcd))
        .notified("watch on the key"),
        // The same recipe on etcd 3.6, to set the versions side by side: one
        // server, or a cluster of three 3.6s.
        super::BackendInfo::new(
            "etcd-3.6",
            Some(ServerKind::Etcd36),
            "the etcd recipe on etcd 3.6 (built from its Go modules): lease + transaction on \
             create_revision == 0, kept alive while held; fence = create revision",
            |eps| async move { connect(&eps).await },
        )
        .replicated(Shape::EtcdCluster(3, ServerKind::Etcd36))
        .notified("watch on the key"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(300)), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(ttl_seconds(Duration::from_secs(10)), 10);
    }

    /// Calls `make` through [`bounded_retry`], each call answering the next
    /// of `answers` (the last one from then on); returns the result and
    /// how many requests were made.
    async fn retried(answers: &[Result<u32, &str>]) -> (Result<u32, Failure>, usize) {
        let calls = std::cell::Cell::new(0);
        let result = bounded_retry(Duration::from_secs(1), || {
            let i = calls.get();
            calls.set(i + 1);
            let answer = answers[i.min(answers.len() - 1)];
            async move { answer.map_err(|why| etcd::Error::EndpointError(why.to_string())) }
        })
        .await;
        (result, calls.get())
    }

    #[tokio::test]
    async fn a_request_refused_at_connect_is_sent_again_twice_at_most() {
        let refused = "tcp connect error: Connection refused";
        let (r, calls) = retried(&[Err(refused), Err(refused), Ok(7)]).await;
        assert_eq!((r.ok(), calls), (Some(7), 3));
        let (r, calls) = retried(&[Err(refused)]).await;
        assert!(
            r.as_ref().is_err_and(refused_at_connect),
            "{:?}",
            r.err().map(|f| f.why())
        );
        assert_eq!(calls, 3);
        // Refused for another reason: it reached the server, not sent again.
        let (r, calls) = retried(&[Err("requested lease not found"), Ok(7)]).await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
