//! `inproc`: a lock service inside the lockbench process.
//!
//! A table of keys behind one mutex; each entry has the holder's token and
//! lease deadline; fences come from one counter, so their order is the order
//! of grants. Waiters sleep on a per-key [`Notify`] and wake at a release or
//! when the holder's lease runs out. It needs no server, so it is the
//! default, and it is the ceiling every networked backend is measured
//! against. Time comes from tokio, so tests can drive leases with
//! `tokio::time::pause()`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{AcquireOptions, ClientConfig, Guard, LockBackend, LockClient, Outcome, Released};
use crate::error::Result;

/// One key's state.
#[derive(Debug, Default)]
struct Entry {
    /// Token and lease deadline of the holder, if any.
    holder: Option<(String, Instant)>,
    /// Wakes one waiter when the key is released.
    released: Arc<Notify>,
}

/// The shared lock table.
#[derive(Debug, Default)]
pub struct LockService {
    /// Keys ever used; entries stay so waiters keep their `Notify`.
    table: Mutex<HashMap<String, Entry>>,
    /// Source of fencing tokens (shared by all keys: still grows per key).
    fence: AtomicU64,
    /// Source of owner tokens.
    tokens: AtomicU64,
}

enum Try {
    Taken(Guard),
    Wait(Arc<Notify>, Instant),
}

impl LockService {
    fn try_take(&self, key: &str, lease: Duration) -> Try {
        let now = Instant::now();
        // A poisoned table only means another client panicked mid-update;
        // every update is a single assignment, so the data is whole.
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let entry = table.entry(key.to_string()).or_default();
        match &entry.holder {
            Some((_, deadline)) if *deadline > now => Try::Wait(entry.released.clone(), *deadline),
            _ => {
                let token = format!("t{}", self.tokens.fetch_add(1, Ordering::Relaxed));
                let fence = self.fence.fetch_add(1, Ordering::Relaxed) + 1;
                entry.holder = Some((token.clone(), now + lease));
                Try::Taken(Guard {
                    key: key.to_string(),
                    token,
                    fence: Some(fence),
                    lease: Some(lease),
                    acquired_at: now,
                })
            }
        }
    }

    fn release(&self, guard: &Guard) -> Released {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = table.get_mut(&guard.key) else {
            return Released { was_held: false };
        };
        match &entry.holder {
            Some((token, deadline)) if *token == guard.token => {
                let was_held = *deadline > now;
                entry.holder = None;
                entry.released.notify_one();
                Released { was_held }
            }
            _ => Released { was_held: false },
        }
    }

    fn renew(&self, guard: &mut Guard, lease: Duration) -> bool {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get_mut(&guard.key).and_then(|e| e.holder.as_mut()) {
            Some((token, deadline)) if *token == guard.token && *deadline > now => {
                *deadline = now + lease;
                guard.lease = Some(lease);
                guard.acquired_at = now;
                true
            }
            _ => false,
        }
    }
}

/// The `inproc` backend.
#[derive(Debug, Default, Clone)]
pub struct InprocBackend {
    /// The table every client of this backend shares.
    service: Arc<LockService>,
}

impl InprocBackend {
    /// A fresh, empty lock service.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LockBackend for InprocBackend {
    fn name(&self) -> &str {
        "inproc"
    }

    async fn client(&self, _config: ClientConfig) -> Result<Box<dyn LockClient>> {
        Ok(Box::new(InprocClient {
            service: self.service.clone(),
        }))
    }
}

/// A client of the in-process service.
#[derive(Debug)]
pub struct InprocClient {
    /// The shared table.
    service: Arc<LockService>,
}

#[async_trait]
impl LockClient for InprocClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let deadline = Instant::now() + opts.timeout;
        loop {
            match self.service.try_take(key, opts.lease) {
                Try::Taken(guard) => return Outcome::Ok(guard),
                Try::Wait(released, lease_end) => {
                    if Instant::now() >= deadline {
                        return Outcome::Fail(format!(
                            "busy: still held by another client after {:?}",
                            opts.timeout
                        ));
                    }
                    // Wake at a release, at the holder's lease end, or at
                    // our own deadline, whichever comes first.
                    tokio::select! {
                        _ = released.notified() => {}
                        _ = tokio::time::sleep_until(lease_end.min(deadline)) => {}
                    }
                }
            }
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        Outcome::Ok(self.service.release(guard))
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        if self.service.renew(guard, lease) {
            Outcome::Ok(())
        } else {
            Outcome::Fail("not held: the lease ran out or another client holds the lock".into())
        }
    }
}

/// The in-process backend, as the registry knows it.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            "inproc",
            None,
            "in-process lock table with leases and fencing; correct by construction, the speed ceiling",
            |_| async { Ok(Arc::new(InprocBackend::new()) as Arc<dyn LockBackend>) },
        )
        .notified("in-process wake-up"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(lease_ms: u64, timeout_ms: u64) -> AcquireOptions {
        AcquireOptions {
            lease: Duration::from_millis(lease_ms),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    async fn client(b: &InprocBackend, id: u64) -> Box<dyn LockClient> {
        b.client(ClientConfig {
            id,
            seed: id,
            op_timeout: Duration::from_secs(1),
        })
        .await
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_lock_blocks_until_released_and_fences_grow() {
        let b = InprocBackend::new();
        let (mut c1, mut c2) = (client(&b, 1).await, client(&b, 2).await);
        let g1 = match c1.acquire("k", &opts(10_000, 0)).await {
            Outcome::Ok(g) => g,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            c2.acquire("k", &opts(10_000, 0)).await,
            Outcome::Fail(_)
        ));
        let waiter = tokio::spawn(async move { (c2.acquire("k", &opts(10_000, 5_000)).await, c2) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            c1.release(&g1).await,
            Outcome::Ok(Released { was_held: true })
        );
        let (out, _) = waiter.await.unwrap();
        match out {
            Outcome::Ok(g2) => assert!(g2.fence > g1.fence),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_frees_the_lock_and_the_late_release_says_so() {
        let b = InprocBackend::new();
        let (mut c1, mut c2) = (client(&b, 1).await, client(&b, 2).await);
        let Outcome::Ok(g1) = c1.acquire("k", &opts(100, 0)).await else {
            panic!()
        };
        let start = Instant::now();
        let Outcome::Ok(_) = c2.acquire("k", &opts(100, 1_000)).await else {
            panic!()
        };
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(
            c1.release(&g1).await,
            Outcome::Ok(Released { was_held: false })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn renew_extends_only_a_live_lease() {
        let b = InprocBackend::new();
        let mut c1 = client(&b, 1).await;
        let Outcome::Ok(mut g) = c1.acquire("k", &opts(100, 0)).await else {
            panic!()
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            c1.renew(&mut g, Duration::from_millis(100)).await,
            Outcome::Ok(())
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(matches!(
            c1.renew(&mut g, Duration::from_millis(100)).await,
            Outcome::Fail(_)
        ));
    }
}
