//! `memcached` and `memcached-get-set`: locks in a memcached cache (seeds
//! 000 and 004).
//!
//! `memcached` takes the lock with an atomic `add key token exptime` (the
//! meta command `ms <key> ME T<exptime>`): it stores only if the key does
//! not exist, so of two clients racing for a free key exactly one wins.
//! A blocking acquire retries with jittered backoff until its timeout.
//! Release is compare-and-delete in two steps made safe by the item's CAS
//! value: `mg <key> v c` reads the value with its CAS, and only if the value
//! is our token, `md <key> C<cas>` deletes it — and the server refuses the
//! delete if the item changed in between (expired and re-added by someone
//! else), so a release can never delete another holder's lock. Renew is
//! the same read, then `ms <key> <token> C<cas> T<exptime>`: it re-stores
//! our own token with a fresh expiry only if the item is still the one we
//! read.
//!
//! **Lease.** memcached expiry is in whole seconds, checked against a clock
//! that ticks once a second, so an item stored with exptime `n` lives
//! somewhere between `n - 1` and `n` seconds (memcached issue #307: "the
//! smallest realistic TTL is 2, and that'll still be +/- 1"). The lease
//! reported in [`Guard::lease`] is the requested lease rounded up to whole
//! seconds, at least 2 s; the exptime sent is one second more, so the
//! reported lease is one the server really keeps (the lock may linger up
//! to one second longer after its holder died). A 300 ms request gives a
//! 2 s lease sent as exptime 3. Leases are capped at 30 days less a second,
//! because memcached reads a larger exptime as an absolute wall-clock time.
//!
//! **Fence.** The fence is the CAS value the server gave the item when the
//! `add` stored it (`ms ... c` returns it in the same reply). memcached
//! takes every new CAS from one global counter that only goes up
//! (`get_cas_id()` in its `items.c`), inside the store of the item, under
//! the key's item lock; a later grant of the same key is a later store, so
//! its CAS is larger. This makes the fence atomic with the grant, unlike an
//! `incr` of a counter taken after the `add`, which a pause between the two
//! steps can reorder. Caveats, said plainly: this is how memcached is built,
//! not a documented promise; the counter starts again from 1 when the server
//! restarts (as does everything else: memcached has no persistence), so
//! fences only order holders while one server process lives; and a server
//! run with `-C` (CAS disabled) returns no CAS, which gives no fence.
//!
//! `memcached-get-set` is the naive cache recipe of seed 000, broken on
//! purpose: `mg` to see whether the key is free, then a plain `ms` (set, not
//! add). Two clients can both see the key free and both set it. Its release
//! is naive too (read, compare, delete without CAS) and it has no fence.
//!
//! Client: the `memcache` crate's meta-protocol tokio client
//! ([`AsyncMetaClient`], marked experimental), one per lock client with a
//! single connection, dialed when the client is made. Every request is
//! bounded by the scenario's `op_timeout` (the crate's dial and exchange
//! timeouts), with a backstop of twice that for a dial followed by an
//! exchange. A request written in full but not answered is
//! [`McError::Ambiguous`] in the crate, hence `Info` here; a failure before
//! the request left, a `SERVER_ERROR` or `CLIENT_ERROR` reply is `Fail`.
//!
//! What breaks it: memcached is a cache. It may evict a lock item under
//! memory pressure before it expires (its protocol documentation: even an
//! item that never expires may be deleted to make room for others), a
//! restart or crash loses every lock, and a holder paused past its lease
//! keeps acting as if it held the lock (only the fence can stop its
//! writes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use memcache::exp::{AsyncMetaClient, Error as McError, Meta, MutationStatus, Ttl};
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
    /// `add` with expiry; compare-and-delete release.
    Add,
    /// GET then SET: broken on purpose.
    GetThenSet,
}

impl Recipe {
    fn name(self) -> &'static str {
        match self {
            Recipe::Add => "memcached",
            Recipe::GetThenSet => "memcached-get-set",
        }
    }
}

/// The smallest lease granted: an exptime of 1 can expire at once.
const MIN_LEASE_SECS: u64 = 2;
/// The largest lease: exptime (one more) must stay a relative time.
const MAX_LEASE_SECS: u64 = 30 * 24 * 60 * 60 - 1;

/// The lease the holder can count on for a requested `lease`, and the
/// exptime to send for it (one second more: see the module docs).
pub fn lease_and_exptime(lease: Duration) -> (Duration, u32) {
    let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
    let secs = secs.clamp(MIN_LEASE_SECS, MAX_LEASE_SECS);
    // Cannot overflow: secs + 1 <= 30 days < u32::MAX.
    (Duration::from_secs(secs), (secs + 1) as u32)
}

/// A memcached lock backend over one server.
#[derive(Debug, Clone)]
struct MemcachedBackend {
    recipe: Recipe,
    /// `host:port`.
    addr: String,
    /// Makes owner tokens unique across this backend's acquisitions.
    tokens: Arc<AtomicU64>,
    /// Makes owner tokens unique across backends (and runs) on one server.
    nonce: u64,
}

/// Connects the backend to its servers.
pub async fn connect(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let name = recipe.name();
    let endpoint = endpoints.first().ok_or_else(|| Error::Backend {
        backend: name.into(),
        endpoint: String::new(),
        message: "no memcached endpoint".into(),
    })?;
    let err = |message: String| Error::Backend {
        backend: name.into(),
        endpoint: endpoint.addr.clone(),
        message,
    };
    // Check it serves the meta protocol (memcached >= 1.6) before any client.
    let limit = Duration::from_secs(5);
    let probe = async {
        let client = AsyncMetaClient::builder()
            .connect_timeout(Some(limit))
            .io_timeout(Some(limit))
            .connect_async(endpoint.addr.as_str())
            .await?;
        client.noop().await
    };
    tokio::time::timeout(limit, probe)
        .await
        .map_err(|_| err("no answer within 5 s".into()))?
        .map_err(|e| {
            err(format!(
                "{e} (the meta protocol needs memcached 1.6 or later)"
            ))
        })?;
    Ok(Arc::new(MemcachedBackend {
        recipe,
        addr: endpoint.addr.clone(),
        tokens: Arc::new(AtomicU64::new(0)),
        nonce: rand::random(),
    }))
}

#[async_trait]
impl LockBackend for MemcachedBackend {
    fn name(&self) -> &str {
        self.recipe.name()
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let err = |message: String| Error::Backend {
            backend: self.name().into(),
            endpoint: self.addr.clone(),
            message,
        };
        // One connection per lock client, as a separate process would have.
        let client = AsyncMetaClient::builder()
            .connect_timeout(Some(config.op_timeout))
            .io_timeout(Some(config.op_timeout))
            .max_idle(1)
            .max_connections(Some(1))
            .connect_async(self.addr.as_str())
            .await
            .map_err(|e| err(e.to_string()))?;
        // Dial now (the crate dials lazily), so the first lock operation
        // does not pay for it and a dead server shows here.
        tokio::time::timeout(config.op_timeout * 2, client.noop())
            .await
            .map_err(|_| err(format!("no answer within {:?}", config.op_timeout * 2)))?
            .map_err(|e| err(e.to_string()))?;
        Ok(Box::new(MemcachedClient {
            recipe: self.recipe,
            client,
            tokens: self.tokens.clone(),
            nonce: self.nonce,
            id: config.id,
            op_timeout: config.op_timeout,
            backoff: Backoff::new(config.seed),
        }))
    }
}

/// One lock client's connection and state.
struct MemcachedClient {
    recipe: Recipe,
    /// Its own connection.
    client: AsyncMetaClient,
    tokens: Arc<AtomicU64>,
    nonce: u64,
    /// Part of every owner token, so tokens name their client.
    id: u64,
    /// Bound of one request.
    op_timeout: Duration,
    /// Jittered waits between tries of a blocking acquire.
    backoff: Backoff,
}

/// The memcached key of a lock.
fn lock_key(key: &str) -> String {
    format!("lockbench:{key}")
}

/// Why a request failed, and whether it may have taken effect.
enum ReqError {
    /// It definitely did not take effect.
    NotDone(String),
    /// It may have.
    Unknown(String),
}

impl ReqError {
    fn outcome<T>(self) -> Outcome<T> {
        match self {
            ReqError::NotDone(why) => Outcome::Fail(why),
            ReqError::Unknown(why) => Outcome::Info(why),
        }
    }

    fn attempt(self) -> Attempt {
        match self {
            ReqError::NotDone(why) => Attempt::Failed(why),
            ReqError::Unknown(why) => Attempt::Unknown(why),
        }
    }
}

impl From<McError> for ReqError {
    fn from(e: McError) -> Self {
        let why = e.to_string();
        match e {
            // The crate says these were not applied: nothing was written in
            // full (Timeout alone is a deadline hit before that), the server
            // refused it, or it never left this process.
            McError::Io(_)
            | McError::Timeout { .. }
            | McError::Server(_)
            | McError::Rejected(_)
            | McError::Usage(_)
            | McError::EmptyValue
            | McError::Encode(_) => ReqError::NotDone(why),
            // Written but unanswered, a reply we could not read, or anything
            // newer than this code: it may have happened.
            _ => ReqError::Unknown(why),
        }
    }
}

/// An unexpected reply status to a request that may have changed something.
fn unexpected(what: &str, status: MutationStatus) -> ReqError {
    ReqError::Unknown(format!("unexpected reply to {what}: {status:?}"))
}

impl MemcachedClient {
    fn new_token(&self) -> String {
        format!(
            "c{}-{:016x}-{}",
            self.id,
            self.nonce,
            self.tokens.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Runs one request under the backstop deadline.
    async fn bounded<T>(
        op_timeout: Duration,
        request: impl Future<Output = std::result::Result<T, McError>>,
    ) -> std::result::Result<T, ReqError> {
        // The crate bounds the dial and the exchange by op_timeout each;
        // this only stops a dial followed by a slow exchange from running
        // on. A cut-off request may have left: unknown.
        let limit = op_timeout * 2;
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(ReqError::from),
            Err(_) => Err(ReqError::Unknown(format!("no answer within {limit:?}"))),
        }
    }

    /// The value of `key` and its CAS, or `None` if the key is absent.
    async fn read(
        client: &AsyncMetaClient,
        op_timeout: Duration,
        key: &str,
    ) -> std::result::Result<Option<(Vec<u8>, Option<u64>)>, ReqError> {
        let got = Self::bounded(
            op_timeout,
            client.get(lock_key(key)).meta(Meta::NONE.cas()).send(),
        )
        .await?;
        if !got.hit() {
            return Ok(None);
        }
        Ok(Some((got.value.unwrap_or_default(), got.item.cas)))
    }

    /// One `add`: the atomic recipe.
    async fn try_add(
        client: &AsyncMetaClient,
        op_timeout: Duration,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Attempt {
        let (granted, exptime) = lease_and_exptime(lease);
        let started = Instant::now();
        let stored = Self::bounded(
            op_timeout,
            client
                .set(lock_key(key), token)
                .ttl(Ttl::secs(exptime))
                .add()
                .return_cas()
                .send(),
        )
        .await;
        match stored {
            Ok(r) if r.status == MutationStatus::Applied => Attempt::Acquired(Guard {
                key: key.to_string(),
                token: token.to_string(),
                // CAS 0 means the server runs without CAS (-C).
                fence: r.cas.filter(|&c| c != 0),
                lease: Some(granted),
                // The server starts the expiry when it processes the add,
                // after this: counting from the send is the safe side.
                acquired_at: started,
            }),
            Ok(r) if r.status == MutationStatus::AlreadyExists => Attempt::Busy,
            Ok(r) => unexpected("add", r.status).attempt(),
            Err(e) => e.attempt(),
        }
    }

    /// The broken recipe: look, then set. The gap between the two round
    /// trips is the race.
    async fn try_get_then_set(
        client: &AsyncMetaClient,
        op_timeout: Duration,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Attempt {
        match Self::read(client, op_timeout, key).await {
            Ok(Some(_)) => return Attempt::Busy,
            Ok(None) => {}
            Err(e) => return e.attempt(),
        }
        let (granted, exptime) = lease_and_exptime(lease);
        let started = Instant::now();
        let stored = Self::bounded(
            op_timeout,
            client
                .set(lock_key(key), token)
                .ttl(Ttl::secs(exptime))
                .send(),
        )
        .await;
        match stored {
            Ok(r) if r.status == MutationStatus::Applied => Attempt::Acquired(Guard {
                key: key.to_string(),
                token: token.to_string(),
                fence: None,
                lease: Some(granted),
                acquired_at: started,
            }),
            Ok(r) => unexpected("set", r.status).attempt(),
            Err(e) => e.attempt(),
        }
    }

    /// Compare-and-delete with the CAS: deletes only the item we read.
    async fn release_cas(&self, guard: &Guard) -> std::result::Result<bool, ReqError> {
        let Some((value, cas)) = Self::read(&self.client, self.op_timeout, &guard.key).await?
        else {
            return Ok(false);
        };
        if value != guard.token.as_bytes() {
            return Ok(false);
        }
        let Some(cas) = cas else {
            return Err(ReqError::NotDone(
                "the server returned no CAS value (is it run with -C?): nothing deleted".into(),
            ));
        };
        let deleted = Self::bounded(
            self.op_timeout,
            self.client
                .delete(lock_key(&guard.key))
                .compare_cas(cas)
                .send(),
        )
        .await?;
        match deleted.status {
            MutationStatus::Applied => Ok(true),
            // Expired, or expired and taken by another since our read.
            MutationStatus::NotFound | MutationStatus::CasMismatch => Ok(false),
            other => Err(unexpected("delete", other)),
        }
    }

    /// The naive release: compare, then delete whatever is there now.
    async fn release_naive(&self, guard: &Guard) -> std::result::Result<bool, ReqError> {
        match Self::read(&self.client, self.op_timeout, &guard.key).await? {
            Some((value, _)) if value == guard.token.as_bytes() => {}
            _ => return Ok(false),
        }
        let deleted = Self::bounded(
            self.op_timeout,
            self.client.delete(lock_key(&guard.key)).send(),
        )
        .await?;
        match deleted.status {
            MutationStatus::Applied => Ok(true),
            MutationStatus::NotFound => Ok(false),
            other => Err(unexpected("delete", other)),
        }
    }
}

#[async_trait]
impl LockClient for MemcachedClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let recipe = self.recipe;
        let token = self.new_token();
        let op_timeout = self.op_timeout;
        let MemcachedClient {
            client, backoff, ..
        } = self;
        let client = &*client;
        acquire_with_retry(backoff, opts.timeout, || {
            let token = token.as_str();
            async move {
                match recipe {
                    Recipe::Add => Self::try_add(client, op_timeout, key, token, opts.lease).await,
                    Recipe::GetThenSet => {
                        Self::try_get_then_set(client, op_timeout, key, token, opts.lease).await
                    }
                }
            }
        })
        .await
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let released = match self.recipe {
            Recipe::Add => self.release_cas(guard).await,
            Recipe::GetThenSet => self.release_naive(guard).await,
        };
        match released {
            Ok(was_held) => Outcome::Ok(Released { was_held }),
            Err(e) => e.outcome(),
        }
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let (value, cas) = match Self::read(&self.client, self.op_timeout, &guard.key).await {
            Ok(Some((value, Some(cas)))) => (value, cas),
            Ok(Some((_, None))) => {
                return Outcome::Fail(
                    "the server returned no CAS value (is it run with -C?): not renewed".into(),
                );
            }
            Ok(None) => return Outcome::Fail("not held: the key expired".into()),
            Err(e) => return e.outcome(),
        };
        if value != guard.token.as_bytes() {
            return Outcome::Fail("not held: the key holds another token".into());
        }
        let (granted, exptime) = lease_and_exptime(lease);
        let started = Instant::now();
        // Re-store our own token with a new expiry, only if the item is
        // still the one we read: a touch guarded by the CAS.
        let stored = Self::bounded(
            self.op_timeout,
            self.client
                .set(lock_key(&guard.key), &guard.token)
                .ttl(Ttl::secs(exptime))
                .compare_cas(cas)
                .send(),
        )
        .await;
        match stored {
            Ok(r) if r.status == MutationStatus::Applied => {
                guard.lease = Some(granted);
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            Ok(r)
                if matches!(
                    r.status,
                    MutationStatus::NotFound | MutationStatus::CasMismatch
                ) =>
            {
                Outcome::Fail("not held: the key expired or changed since it was read".into())
            }
            Ok(r) => unexpected("renew", r.status).outcome(),
            Err(e) => e.outcome(),
        }
    }
}

/// The memcached recipes, as the registry knows them.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            Recipe::Add.name(),
            Some(ServerKind::Memcached),
            "add key token exptime (whole seconds, +1 s for memcached's 1 s clock); compare-and-delete on the CAS value; fence = the add's CAS",
            |eps| async move { connect(Recipe::Add, &eps).await },
        ),
        super::BackendInfo::new(
            Recipe::GetThenSet.name(),
            Some(ServerKind::Memcached),
            "GET to check, then SET: two clients can both see the key free (broken on purpose)",
            |eps| async move { connect(Recipe::GetThenSet, &eps).await },
        )
        .broken(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_up_to_whole_seconds_at_least_two_and_send_one_more() {
        let ms = Duration::from_millis;
        assert_eq!(lease_and_exptime(ms(300)), (Duration::from_secs(2), 3));
        assert_eq!(lease_and_exptime(ms(0)), (Duration::from_secs(2), 3));
        assert_eq!(lease_and_exptime(ms(2_000)), (Duration::from_secs(2), 3));
        assert_eq!(lease_and_exptime(ms(2_001)), (Duration::from_secs(3), 4));
        assert_eq!(lease_and_exptime(ms(10_000)), (Duration::from_secs(10), 11));
        let (lease, exptime) = lease_and_exptime(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(lease, Duration::from_secs(MAX_LEASE_SECS));
        assert_eq!(exptime, 30 * 24 * 3600);
    }
}
