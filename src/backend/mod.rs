//! Lock backends: one trait pair, one file per recipe.
//!
//! A [`LockBackend`] is a recipe bound to its servers; it hands out one
//! [`LockClient`] per simulated client, each with its own connections, as
//! separate processes would have. Every operation returns an [`Outcome`]:
//! `Fail` only when the operation definitely did not happen, `Info` when it
//! may have (a timeout after the request left), as in Jepsen.

pub mod driver;
pub mod etcd;
pub mod inproc;
pub mod libraries;
pub mod memcached;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod redlock;
mod registry;
pub mod zookeeper;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::error::Result;

pub use registry::{
    BackendInfo, Registry, Waiters, build, info, library_names, names, server_kind,
};

/// The result of one lock operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It happened.
    Ok(T),
    /// It definitely did not happen (e.g. the lock is held by another
    /// client, the connection was refused).
    Fail(String),
    /// Unknown: it may have happened (e.g. a timeout after the request left).
    Info(String),
}

/// What a successful acquire returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// The lock key.
    pub key: String,
    /// The owner token: unique to this acquisition, checked on release.
    pub token: String,
    /// The fencing token, where the backend has one.
    pub fence: Option<u64>,
    /// The lease granted, where the backend has leases.
    pub lease: Option<Duration>,
    /// When the acquire completed, on the client's clock: with `lease`, the
    /// earliest moment the server may have let the lock go is after this.
    pub acquired_at: Instant,
}

impl Guard {
    /// When the lease runs out, as far as the client can tell.
    pub fn lease_deadline(&self) -> Option<Instant> {
        self.lease.map(|l| self.acquired_at + l)
    }
}

/// How to acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireOptions {
    /// Lease (TTL) to ask for.
    pub lease: Duration,
    /// How long to keep trying while the lock is busy; zero tries once.
    pub timeout: Duration,
}

/// Result of a release that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// False when the lock was no longer ours (the lease ran out, or another
    /// client holds it now): nothing was deleted, and we do not hold it.
    pub was_held: bool,
}

/// One simulated client's handle on a lock recipe.
#[async_trait]
pub trait LockClient: Send + Sync {
    /// Takes the lock on `key`, retrying while it is busy until the timeout.
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard>;
    /// Gives the lock back, only if `guard` still owns it.
    async fn release(&mut self, guard: &Guard) -> Outcome<Released>;
    /// Extends the lease of a lock `guard` still owns.
    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()>;

    /// Dies like a killed process: connections are closed by the operating
    /// system and nothing is said to the server (no release, no goodbye such
    /// as ZooKeeper's close-session). The default drops the client, which
    /// is that for clients whose drop only closes sockets; a client whose
    /// drop says goodbye overrides this.
    fn crash(self: Box<Self>) {
        drop(self);
    }

    /// The locks this client's library says are gone, as it says so (a
    /// ZooKeeper session lost, a renewal that failed): the workload records
    /// a `lost` event for each and stops acting on the lock. Taken once;
    /// `None` (the default) for recipes that never say.
    fn take_lost(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<LostLock>> {
        None
    }

    /// Why the client is gone, when the process it lived in ended on its
    /// own (a driver that exited): the workload records its `crash` and
    /// replaces it. `None` (the default) while it lives.
    fn gone(&self) -> Option<String> {
        None
    }

    /// When the library itself was busy with the request just answered,
    /// when that is narrower than the client's own call: a driver process
    /// times its library's call and says so in its reply
    /// (drivers/PROTOCOL.md), so that latencies are the library's and not
    /// the pipe's. `None` (the default): the client's call is the
    /// library's.
    fn served(&self) -> Option<Served> {
        None
    }
}

/// How a request was served, for a client whose library is timed apart
/// from its own call ([`LockClient::served`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// When the client's call sent the request.
    pub sent: std::time::Instant,
    /// When the library was called.
    pub called: std::time::Instant,
    /// When the library returned.
    pub returned: std::time::Instant,
}

/// A lock the client's library says is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostLock {
    /// Its key.
    pub key: String,
    /// What the library said.
    pub reason: String,
}

/// Per-client settings a backend needs to make a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// The client's id (its `process` in the history).
    pub id: u64,
    /// Seed for the client's own random choices (backoff jitter).
    pub seed: u64,
    /// Timeout of one request.
    pub op_timeout: Duration,
}

/// A lock recipe bound to its servers.
#[async_trait]
pub trait LockBackend: Send + Sync {
    /// The backend's name (`redis`).
    fn name(&self) -> &str;
    /// A new client with its own connections.
    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>>;

    /// The lock library and its version, for a driver backend (lockbench's
    /// own recipes: `None`).
    fn library(&self) -> Option<(String, String)> {
        None
    }

    /// The process its clients run in, for a driver backend: client faults
    /// kill and stop it.
    fn host_process(&self) -> Option<Arc<crate::cluster::driver::DriverProcess>> {
        None
    }
}

/// One try at taking a lock.
#[derive(Debug)]
pub enum Attempt {
    /// Taken.
    Acquired(Guard),
    /// Held by someone else: try again later.
    Busy,
    /// Definitely not taken, for another reason (connection refused).
    Failed(String),
    /// Unknown whether it was taken.
    Unknown(String),
}

/// Exponential backoff with full jitter, from a seeded generator.
#[derive(Debug)]
pub struct Backoff {
    /// The cap of the next wait.
    next: Duration,
    /// The first cap.
    min: Duration,
    /// The largest cap.
    max: Duration,
    /// The client's own generator, so runs repeat from their seed.
    rng: StdRng,
}

impl Backoff {
    /// Waits of up to 1 ms at first, doubling to at most 50 ms.
    pub fn new(seed: u64) -> Self {
        Backoff {
            next: Duration::from_millis(1),
            min: Duration::from_millis(1),
            max: Duration::from_millis(50),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Starts again from the smallest wait.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// Sleeps a jittered wait, never past `deadline`. False if the deadline
    /// has already passed.
    pub async fn wait(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let cap = self.next.as_micros().max(1) as u64;
        let jittered = Duration::from_micros(self.rng.random_range(cap / 2..=cap));
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep_until((now + jittered).min(deadline)).await;
        true
    }
}

/// Runs `attempt` until it takes the lock, the timeout passes, or the outcome
/// becomes unknown. The blocking acquire of every polling recipe.
pub async fn acquire_with_retry<F, Fut>(
    backoff: &mut Backoff,
    timeout: Duration,
    mut attempt: F,
) -> Outcome<Guard>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let deadline = Instant::now() + timeout;
    backoff.reset();
    let mut last_failure: Option<String>;
    loop {
        match attempt().await {
            Attempt::Acquired(guard) => return Outcome::Ok(guard),
            Attempt::Unknown(why) => return Outcome::Info(why),
            Attempt::Busy => last_failure = None,
            Attempt::Failed(why) => last_failure = Some(why),
        }
        if !backoff.wait(deadline).await {
            return Outcome::Fail(match last_failure {
                Some(why) => why,
                None => format!("busy: still held by another client after {timeout:?}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_at_the_deadline_with_fail() {
        let mut backoff = Backoff::new(1);
        let start = Instant::now();
        let mut tries = 0;
        let out = acquire_with_retry(&mut backoff, Duration::from_millis(200), || {
            tries += 1;
            async { Attempt::Busy }
        })
        .await;
        assert!(
            matches!(out, Outcome::Fail(ref why) if why.starts_with("busy")),
            "{out:?}"
        );
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        assert!(tries > 5, "{tries}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_attempt_ends_the_acquire_as_info() {
        let mut backoff = Backoff::new(1);
        let out = acquire_with_retry(&mut backoff, Duration::from_secs(1), || async {
            Attempt::Unknown("timed out".into())
        })
        .await;
        assert_eq!(out, Outcome::Info("timed out".into()));
    }
}
