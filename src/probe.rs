//! Probes: one lock property measured directly on a backend's real
//! servers, outside the runner (expiry after a crashed holder, hand-off
//! with waiters queued, reentrancy, fencing tokens, uncontended latency,
//! a server restart under a held lock). Each gives one cell of the
//! property matrix; `run::properties` starts the servers and lays out
//! the row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::driver::HostPlace;
use crate::backend::{AcquireOptions, ClientConfig, LockBackend, LockClient, Outcome};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::summary::matrix::Cell;

/// The probes' shared setup.
pub struct Probes<'a> {
    /// The backend the probe clients are made from.
    pub backend: Arc<dyn LockBackend>,
    /// For a driver backend: each probe client gets a process of its own
    /// (a crashed holder is its whole process), built from this, on these
    /// servers, logging into this folder.
    pub driver: Option<(
        &'a crate::backend::BackendInfo,
        Vec<crate::cluster::Endpoint>,
        PathBuf,
    )>,
    /// The lease the probes ask for.
    pub lease: Duration,
    /// Each operation's timeout.
    pub op_timeout: Duration,
    /// The next probe client's process id.
    pub next_id: std::sync::atomic::AtomicU64,
    /// The seed the probe clients' seeds come from.
    pub seed: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration as the matrix writes it: seconds from 1 s, else ms or µs.
pub fn fmt_ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        fmt_us(d)
    }
}

/// A probe client of a driver backend with the process it runs in.
struct OwnProcess {
    client: Box<dyn LockClient>,
    /// Keeps the client's process running; dropped with it.
    _backend: Arc<dyn LockBackend>,
}

#[async_trait::async_trait]
impl LockClient for OwnProcess {
    async fn acquire(
        &mut self,
        key: &str,
        opts: &AcquireOptions,
    ) -> Outcome<crate::backend::Guard> {
        self.client.acquire(key, opts).await
    }

    async fn release(
        &mut self,
        guard: &crate::backend::Guard,
    ) -> Outcome<crate::backend::Released> {
        self.client.release(guard).await
    }

    async fn renew(&mut self, guard: &mut crate::backend::Guard, lease: Duration) -> Outcome<()> {
        self.client.renew(guard, lease).await
    }

    fn crash(self: Box<Self>) {
        self.client.crash();
    }
}

impl Probes<'_> {
    async fn client(&self) -> Result<Box<dyn LockClient>> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = ClientConfig {
            id,
            seed: self.seed ^ id,
            op_timeout: self.op_timeout,
        };
        match &self.driver {
            Some((info, eps, log_dir)) => {
                let place = HostPlace {
                    host: id as usize + 1,
                    log_dir: log_dir.clone(),
                };
                let backend = info.build_for(eps, place).await?;
                let client = backend.client(config).await?;
                // The process lives as long as its client.
                Ok(Box::new(OwnProcess {
                    client,
                    _backend: backend,
                }))
            }
            None => self.backend.client(config).await,
        }
    }

    fn opts(&self, timeout: Duration) -> AcquireOptions {
        AcquireOptions {
            lease: self.lease,
            timeout,
        }
    }

    /// A lease far longer than the probe's waits, so that a lease running
    /// out cannot be mistaken for the property being probed.
    fn long_opts(&self, timeout: Duration) -> AcquireOptions {
        AcquireOptions {
            lease: self.lease.max(Duration::from_secs(30)),
            timeout,
        }
    }

    fn failed(what: &str, why: impl std::fmt::Display) -> Cell {
        Cell::new(
            format!("probe failed: {what}"),
            None,
            serde_json::json!({ "error": format!("{what}: {why}") }),
        )
    }

    /// The holder crashes; how long until another client gets the lock.
    pub async fn expiry(&self) -> Cell {
        let (mut a, mut b) = match (self.client().await, self.client().await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Self::failed("client", e),
        };
        let guard = match a.acquire("expiry", &self.opts(Duration::ZERO)).await {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        a.crash();
        let crashed = Instant::now();
        // Long enough for any lease or session to run out, bounded.
        let bound = (self.lease * 3 + Duration::from_secs(10)).min(Duration::from_secs(60));
        let out = b.acquire("expiry", &self.opts(bound)).await;
        let after = crashed.elapsed();
        let lease_ms = guard.lease.map(|l| l.as_millis() as u64);
        match out {
            Outcome::Ok(g) => {
                let _ = b.release(&g).await;
                Cell::new(
                    fmt_ms(after),
                    Some(true),
                    serde_json::json!({"free_after_ms": ms(after), "lease_ms": lease_ms}),
                )
            }
            Outcome::Fail(why) => Cell::new(
                format!("never within {} (deadlock)", fmt_ms(bound)),
                Some(false),
                serde_json::json!({"free_after_ms": null, "bound_ms": ms(bound), "error": why}),
            ),
            Outcome::Info(why) => {
                Cell::new("unknown (info)", None, serde_json::json!({"error": why}))
            }
        }
    }

    /// Eight waiters queue behind a holder; each releases as soon as it
    /// acquires. The gaps between successive grants are hand-offs.
    pub async fn handoff(&self) -> Cell {
        const WAITERS: usize = 8;
        let mut holder = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let guard = match holder
            .acquire("handoff", &self.long_opts(Duration::ZERO))
            .await
        {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let mut tasks = Vec::new();
        for _ in 0..WAITERS {
            let mut c = match self.client().await {
                Ok(c) => c,
                Err(e) => return Self::failed("client", e),
            };
            let o = self.long_opts(Duration::from_secs(20));
            tasks.push(tokio::spawn(async move {
                match c.acquire("handoff", &o).await {
                    Outcome::Ok(g) => {
                        let at = Instant::now();
                        let _ = c.release(&g).await;
                        Some(at)
                    }
                    _ => None,
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let released = Instant::now();
        let _ = holder.release(&guard).await;
        let mut grants = Vec::new();
        for t in tasks {
            if let Ok(Some(at)) = t.await {
                grants.push(at);
            }
        }
        grants.sort();
        if grants.len() < WAITERS {
            return Cell::new(
                format!("{} of {WAITERS} waiters got the lock", grants.len()),
                Some(false),
                serde_json::json!({"granted": grants.len()}),
            );
        }
        let mut gaps: Vec<Duration> =
            std::iter::once(grants[0].saturating_duration_since(released))
                .chain(grants.windows(2).map(|w| w[1] - w[0]))
                .collect();
        let raw: Vec<f64> = gaps.iter().map(|d| ms(*d)).collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        Cell::new(
            format!("median {}", fmt_ms(median)),
            None,
            serde_json::json!({"median_ms": ms(median), "gaps_ms": raw, "waiters": WAITERS}),
        )
    }

    /// The holder asks for the lock again.
    pub async fn reentrancy(&self) -> Cell {
        let mut a = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let first = match a
            .acquire("reentrant", &self.long_opts(Duration::ZERO))
            .await
        {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let timeout = Duration::from_millis(1000);
        let started = Instant::now();
        let again = a.acquire("reentrant", &self.long_opts(timeout)).await;
        let took = started.elapsed();
        let cell = match &again {
            Outcome::Ok(_) => Cell::new(
                "succeeds (reentrant)",
                None,
                serde_json::json!({"outcome": "ok", "ms": ms(took)}),
            ),
            Outcome::Fail(why) if took < timeout / 2 => Cell::new(
                "fails at once",
                None,
                serde_json::json!({"outcome": "fail", "ms": ms(took), "error": why}),
            ),
            Outcome::Fail(why) => Cell::new(
                "blocks (self-deadlock until the timeout)",
                None,
                serde_json::json!({"outcome": "blocks", "ms": ms(took), "error": why}),
            ),
            Outcome::Info(why) => {
                Cell::new("unknown (info)", None, serde_json::json!({"error": why}))
            }
        };
        if let Outcome::Ok(g) = again {
            let _ = a.release(&g).await;
        }
        let _ = a.release(&first).await;
        cell
    }

    /// Twenty grants alternating between two clients: are there tokens, and
    /// do they only grow?
    pub async fn fencing(&self) -> Cell {
        let mut cs = Vec::new();
        for _ in 0..2 {
            match self.client().await {
                Ok(c) => cs.push(c),
                Err(e) => return Self::failed("client", e),
            }
        }
        let mut fences = Vec::new();
        for i in 0..20 {
            let c = &mut cs[i % 2];
            match c.acquire("fence", &self.opts(Duration::from_secs(5))).await {
                Outcome::Ok(g) => {
                    fences.push(g.fence);
                    let _ = c.release(&g).await;
                }
                other => return Self::failed("acquire", format!("{other:?}")),
            }
        }
        let tokens: Vec<u64> = fences.iter().flatten().copied().collect();
        if tokens.is_empty() {
            return Cell::new("none", Some(false), serde_json::json!({"fences": fences}));
        }
        let grows = tokens.len() == fences.len() && tokens.windows(2).all(|w| w[1] > w[0]);
        Cell::new(
            if grows { "yes, grows" } else { "not monotonic" },
            Some(grows),
            serde_json::json!({"fences": fences}),
        )
    }

    /// Two hundred uncontended acquire+release cycles by one client.
    pub async fn latency(&self) -> Cell {
        let mut a = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let mut cycles = Vec::with_capacity(200);
        for _ in 0..200 {
            let start = Instant::now();
            match a
                .acquire("latency", &self.opts(Duration::from_secs(5)))
                .await
            {
                Outcome::Ok(g) => {
                    if !matches!(a.release(&g).await, Outcome::Ok(_)) {
                        return Self::failed("release", "did not complete ok");
                    }
                }
                other => return Self::failed("acquire", format!("{other:?}")),
            }
            cycles.push(start.elapsed());
        }
        cycles.sort();
        let p50 = cycles[cycles.len() / 2];
        let p99 = cycles[cycles.len() * 99 / 100];
        Cell::new(
            format!("{} / {}", fmt_us(p50), fmt_us(p99)),
            None,
            serde_json::json!({"p50_us": p50.as_micros() as u64, "p99_us": p99.as_micros() as u64, "cycles": cycles.len()}),
        )
    }

    /// The first server is killed (-9) and restarted while a client holds a
    /// lock; then another client tries to take it.
    pub async fn restart(&self, servers: &mut Cluster) -> Cell {
        if servers.servers().is_empty() {
            return Cell::new("n/a (no server)", None, serde_json::Value::Null);
        }
        let (mut a, mut b) = match (self.client().await, self.client().await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Self::failed("client", e),
        };
        // A lease long enough not to run out during the restart.
        let long = AcquireOptions {
            lease: Duration::from_secs(30),
            timeout: Duration::ZERO,
        };
        let held = match a.acquire("restart", &long).await {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let members = servers.servers().len();
        let started = Instant::now();
        if let Err(e) = servers.restart(0).await {
            return Self::failed("restart", e);
        }
        let restart_ms = ms(started.elapsed());
        // Clients reconnect by themselves; keep asking until a definite answer.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last: String;
        let cell = loop {
            match b.acquire("restart", &long).await {
                Outcome::Ok(g) => {
                    let went_back = matches!((held.fence, g.fence), (Some(x), Some(y)) if y <= x);
                    let text = if went_back {
                        "lost; fence went back"
                    } else {
                        "lost: another client acquired it"
                    };
                    let _ = b.release(&g).await;
                    break Cell::new(
                        text,
                        Some(false),
                        serde_json::json!({"kept": false, "fence_before": held.fence, "fence_after": g.fence, "restart_ms": restart_ms, "members": members}),
                    );
                }
                Outcome::Fail(why) if why.starts_with("busy") => {
                    break Cell::new(
                        "kept",
                        Some(true),
                        serde_json::json!({"kept": true, "restart_ms": restart_ms, "members": members}),
                    );
                }
                Outcome::Fail(why) | Outcome::Info(why) => last = why,
            }
            if Instant::now() >= deadline {
                break Cell::new(
                    "no answer after the restart",
                    None,
                    serde_json::json!({"error": last, "restart_ms": restart_ms}),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = a.release(&held).await;
        if members > 1 {
            let mut c = cell;
            c.text = format!("{} (1 of {members} restarted)", c.text);
            c
        } else {
            cell
        }
    }
}

fn fmt_us(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}
