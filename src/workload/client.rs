use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ProtectedResource;
use crate::backend::{AcquireOptions, Guard, LockClient, Outcome};
use crate::history::{Clock, Event, F, OpType, Process, RecorderHandle};
use crate::metrics::{Counts, Metrics};
use crate::scenario::{KeyChoice, TimeDist};

/// What every client of a run shares: the workload's shape.
#[derive(Debug)]
pub struct ClientPlan {
    /// The lock keys.
    pub keys: Vec<String>,
    /// How each cycle picks its key.
    pub key_choice: KeyChoice,
    /// Lease to ask for.
    pub lease: Duration,
    /// How long an acquire keeps trying.
    pub acquire_timeout: Duration,
    /// Hold time.
    pub hold: TimeDist,
    /// Think time.
    pub think: TimeDist,
    /// Acquire attempts left for the whole run (`u64::MAX`: unbounded).
    pub budget: AtomicU64,
    /// Set when the run should end; clients finish their cycle and stop.
    pub stop: CancellationToken,
}

impl ClientPlan {
    fn take_ticket(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// One client, ready to run.
pub struct ClientTask {
    /// Its id: `process` in the history.
    pub id: u64,
    /// Its connection to the lock service.
    pub lock: Box<dyn LockClient>,
    /// Its own generator (key choice, hold and think times).
    pub rng: StdRng,
    /// Where its events go.
    pub recorder: RecorderHandle,
    /// The run's clock.
    pub clock: Clock,
    /// The run's metrics.
    pub metrics: Arc<Metrics>,
    /// The protected resource.
    pub resource: Arc<ProtectedResource>,
    /// The shared plan.
    pub plan: Arc<ClientPlan>,
    /// Its own operation counts, added to `metrics` when it ends (also when
    /// it is aborted: see `Drop`).
    counts: Counts,
}

impl Drop for ClientTask {
    fn drop(&mut self) {
        self.metrics.add_counts(self.id, &self.counts);
    }
}

impl ClientTask {
    /// A client with a generator seeded from the run's seed and its id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        seed: u64,
        lock: Box<dyn LockClient>,
        recorder: RecorderHandle,
        clock: Clock,
        metrics: Arc<Metrics>,
        resource: Arc<ProtectedResource>,
        plan: Arc<ClientPlan>,
    ) -> Self {
        ClientTask {
            id,
            lock,
            rng: StdRng::seed_from_u64(seed),
            recorder,
            clock,
            metrics,
            resource,
            plan,
            counts: Counts::default(),
        }
    }

    /// A new event; the recorder stamps its time as it takes it.
    fn event(&self, kind: OpType, f: F, key: &str) -> Event {
        let mut e = Event::new(0, Process::Client(self.id), kind, f);
        // Always named, even with one lock: witnesses then say which.
        e.key = Some(key.to_string());
        e
    }

    async fn record(&mut self, e: Event) {
        self.counts.count(&e.f, e.kind);
        self.recorder.record(e).await;
    }

    async fn record_outcome<T>(
        &mut self,
        f: F,
        key: &str,
        out: &Outcome<T>,
        fill: impl FnOnce(&mut Event, &T),
    ) {
        let (kind, error) = match out {
            Outcome::Ok(_) => (OpType::Ok, None),
            Outcome::Fail(why) => (OpType::Fail, Some(why.clone())),
            Outcome::Info(why) => (OpType::Info, Some(why.clone())),
        };
        let mut e = self.event(kind, f, key);
        e.error = error;
        if let Outcome::Ok(v) = out {
            fill(&mut e, v);
        }
        self.record(e).await;
    }

    /// Hold: wait the hold time, then write the fence to the resource.
    async fn hold(&mut self, guard: &Guard) {
        let hold = self.plan.hold.sample(&mut self.rng);
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        let mut invoke = self.event(OpType::Invoke, F::Write, &guard.key);
        invoke.fence = guard.fence;
        self.record(invoke).await;
        let accepted = self.resource.write(&guard.key, guard.fence);
        let mut ok = self.event(OpType::Ok, F::Write, &guard.key);
        ok.fence = guard.fence;
        ok.value = Some(serde_json::json!({ "accepted": accepted }));
        self.record(ok).await;
    }

    /// Release, retrying a definite failure a few times while the lease
    /// lasts: a failed release did not happen, so we still hold the lock.
    async fn release(&mut self, guard: &Guard, acquired: Instant) {
        for attempt in 0..3 {
            let mut invoke = self.event(OpType::Invoke, F::Release, &guard.key);
            invoke.fence = guard.fence;
            let invoked = Instant::now();
            self.record(invoke).await;
            let out = self.lock.release(guard).await;
            self.record_outcome(F::Release, &guard.key, &out, |e, r| {
                if !r.was_held {
                    e.value = Some(serde_json::json!({ "was_held": false }));
                }
            })
            .await;
            match out {
                Outcome::Ok(_) => {
                    self.metrics
                        .released(self.id, invoked.elapsed(), invoked - acquired);
                    return;
                }
                Outcome::Info(_) => return,
                Outcome::Fail(_) => {
                    let lease_left = guard.lease_deadline().is_none_or(|d| d > Instant::now());
                    if attempt == 2 || !lease_left {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                }
            }
        }
    }

    /// Runs cycles until the plan says stop.
    pub async fn run(mut self) {
        let opts = AcquireOptions {
            lease: self.plan.lease,
            timeout: self.plan.acquire_timeout,
        };
        // When the client meant to start its next acquire: latency counts
        // from here, so time lost to an overloaded runtime is not hidden.
        let mut intended = Instant::now();
        loop {
            if self.plan.stop.is_cancelled() || !self.plan.take_ticket() {
                break;
            }
            let n = self.plan.keys.len();
            let i = match self.plan.key_choice {
                KeyChoice::Random => self.rng.random_range(0..n),
                KeyChoice::Own => (self.id % n as u64) as usize,
            };
            let key = self.plan.keys[i].clone();
            let mut invoke = self.event(OpType::Invoke, F::Acquire, &key);
            invoke.lease_ms = Some(opts.lease.as_millis() as u64);
            self.record(invoke).await;
            let out = self.lock.acquire(&key, &opts).await;
            let done = Instant::now();
            self.record_outcome(F::Acquire, &key, &out, |e, g| {
                e.fence = g.fence;
                e.lease_ms = g.lease.map(|l| l.as_millis() as u64);
            })
            .await;
            if let Outcome::Ok(guard) = out {
                self.metrics.acquired(
                    self.id,
                    done.saturating_duration_since(intended),
                    done.saturating_duration_since(self.clock.started().into()),
                );
                self.hold(&guard).await;
                self.release(&guard, done).await;
            }
            // An `info` acquire may have taken the lock, but without its
            // token we cannot release it: its lease frees it, as it would
            // for a real client that lost its answer.
            let think = self.plan.think.sample(&mut self.rng);
            intended = Instant::now() + think;
            if !think.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep_until(intended) => {}
                    _ = self.plan.stop.cancelled() => break,
                }
            } else {
                // Without think time, let other tasks run between cycles.
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Runs one client to the end of the plan.
pub async fn run_client(task: ClientTask) {
    task.run().await
}
