use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{KeyChoice, ProtectedResource, Workload};
use crate::backend::{AcquireOptions, Guard, LockClient, LostLock, Outcome};
use crate::duration::TimeDist;
use crate::history::{Clock, Event, F, KeyId, Op, OpF, OpType, Process, RecorderHandle, Recording};
use crate::metrics::{Counts, Metrics};

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
    /// What a holder does with the protected resource.
    pub workload: Workload,
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

/// The nemesis's handle on one client's place in the run: a crashed
/// client's successor takes over the same slot (and host).
#[derive(Debug)]
pub struct ClientSlot {
    /// The host its links belong to (0-based).
    pub host: usize,
    /// The process id of the client in the slot now.
    pub id: AtomicU64,
    /// Whether that client holds a lock (set at the acquire `ok`, cleared
    /// at the release invoke): the nemesis's "holder" target.
    pub holding: AtomicBool,
    /// True while the client is paused.
    pause: tokio::sync::watch::Sender<bool>,
    /// Kills the client in the slot.
    crash: tokio::sync::Notify,
    /// Lets a crashed client's successor start.
    restart_gate: tokio::sync::Notify,
}

impl ClientSlot {
    /// A slot on `host` whose first client is `id`.
    pub fn new(host: usize, id: u64) -> Self {
        ClientSlot {
            host,
            id: AtomicU64::new(id),
            holding: AtomicBool::new(false),
            pause: tokio::sync::watch::channel(false).0,
            crash: tokio::sync::Notify::new(),
            restart_gate: tokio::sync::Notify::new(),
        }
    }

    /// Lets the successor of the slot's crashed client start.
    pub fn restart(&self) {
        self.restart_gate.notify_one();
    }

    /// Waits until the nemesis lets a successor start.
    pub async fn restarted(&self) {
        self.restart_gate.notified().await
    }

    /// Freezes (true) or resumes (false) the slot's client.
    pub fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }

    /// Kills the slot's client where it stands.
    pub fn crash(&self) {
        self.crash.notify_one();
    }

    /// Whether the slot's client holds a lock.
    pub fn is_holding(&self) -> bool {
        self.holding.load(Ordering::Relaxed)
    }
}

/// Runs `fut`, but not while `pause` says paused: a paused client is not
/// polled at all, so its timers fire late and its requests wait, as in a
/// stopped process. Time passed during the pause is not made up.
async fn unless_paused<T>(
    pause: &mut tokio::sync::watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    loop {
        if *pause.borrow_and_update() {
            // Bounded by the fault's duration: the nemesis always resumes.
            while *pause.borrow_and_update() {
                if pause.changed().await.is_err() {
                    break;
                }
            }
        }
        tokio::select! {
            biased;
            changed = pause.changed() => {
                if changed.is_err() {
                    // The slot is gone: nobody can pause us any more.
                    return fut.await;
                }
            }
            out = &mut fut => return out,
        }
    }
}

/// A lock client that does nothing: what a crashed client's slot holds
/// while its connections are being dropped.
struct Dead;

#[async_trait::async_trait]
impl LockClient for Dead {
    async fn acquire(&mut self, _: &str, _: &AcquireOptions) -> Outcome<Guard> {
        Outcome::Fail("the client crashed".into())
    }
    async fn release(&mut self, _: &Guard) -> Outcome<crate::backend::Released> {
        Outcome::Fail("the client crashed".into())
    }
    async fn renew(&mut self, _: &mut Guard, _: Duration) -> Outcome<()> {
        Outcome::Fail("the client crashed".into())
    }
}

/// One client, ready to run.
pub struct ClientTask {
    /// Its id: `process` in the history.
    pub id: u64,
    /// Its connection to the lock service.
    pub lock: Box<dyn LockClient>,
    /// Its own generator (key choice, hold and think times): a small one
    /// (32 bytes against `StdRng`'s 320), as there is one per client and
    /// nothing here needs a cryptographic generator.
    pub rng: SmallRng,
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
    /// The nemesis's handle on it, when the run has client faults.
    slot: Option<Arc<ClientSlot>>,
    /// Paused while this says true.
    pause: tokio::sync::watch::Receiver<bool>,
    /// The locks its library says are gone (driver backends).
    lost: Option<tokio::sync::mpsc::UnboundedReceiver<LostLock>>,
    /// Why its client ended on its own (its driver process exited), once
    /// it has.
    gone: Option<String>,
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
        let mut lock = lock;
        let lost = lock.take_lost();
        ClientTask {
            id,
            lock,
            rng: SmallRng::seed_from_u64(seed),
            recorder,
            clock,
            metrics,
            resource,
            plan,
            counts: Counts::default(),
            slot: None,
            pause: tokio::sync::watch::channel(false).1,
            lost,
            gone: None,
        }
    }

    /// Puts the client in `slot`, so the nemesis can pause or crash it.
    pub fn in_slot(mut self, slot: Arc<ClientSlot>) -> Self {
        slot.id.store(self.id, Ordering::Relaxed);
        self.pause = slot.pause.subscribe();
        self.slot = Some(slot);
        self
    }

    /// The slot it runs in, if the run has one for it.
    pub fn slot(&self) -> Option<&Arc<ClientSlot>> {
        self.slot.as_ref()
    }

    fn set_holding(&self, holding: bool) {
        if let Some(s) = &self.slot {
            s.holding.store(holding, Ordering::Relaxed);
        }
    }

    /// A new event; the recorder stamps its time as it takes it.
    fn event(&self, kind: OpType, f: F, key: &str) -> Event {
        let mut e = Event::new(0, Process::Client(self.id), kind, f);
        // Always named, even with one lock: witnesses then say which.
        e.key = Some(key.to_string());
        e
    }

    // The recording calls are not `async`: each returns the small
    // `Recording` to await, so a client's task does not carry their state
    // (it is held across every await of the cycle, for every client).
    fn record(&mut self, e: Event) -> Recording {
        self.counts.count(&e.f, e.kind);
        self.recorder.record(e)
    }

    /// An operation on one of the run's keys (`plan.keys[key]`).
    fn op(&self, kind: OpType, f: OpF, key: KeyId) -> Op {
        Op::new(self.id, kind, f, key)
    }

    /// Records `op` (at `at`, a time just read, or now), or, when it
    /// carries an error or a value beyond a write's `accepted`, the same
    /// event in its general form.
    fn record_op(
        &mut self,
        op: Op,
        at: Option<Instant>,
        value: Option<serde_json::Value>,
        error: Option<String>,
    ) -> Recording {
        self.counts.count(&op.f.f(), op.kind);
        if value.is_none() && error.is_none() {
            self.recorder.record_op_at(op, at.map(Instant::into_std))
        } else {
            let mut e = op.to_event(0, &self.plan.keys);
            if value.is_some() {
                e.value = value;
            }
            e.error = error;
            self.recorder.record(e)
        }
    }

    /// Records the completion of an operation; `fill` completes an `ok`
    /// and may give it a value.
    fn record_outcome<T>(
        &mut self,
        f: OpF,
        key: KeyId,
        at: Option<Instant>,
        out: &Outcome<T>,
        fill: impl FnOnce(&mut Op, &T) -> Option<serde_json::Value>,
    ) -> Recording {
        let (kind, error) = match out {
            Outcome::Ok(_) => (OpType::Ok, None),
            Outcome::Fail(why) => (OpType::Fail, Some(why.clone())),
            Outcome::Info(why) => (OpType::Info, Some(why.clone())),
        };
        let mut op = self.op(kind, f, key);
        let value = match out {
            Outcome::Ok(v) => fill(&mut op, v),
            _ => None,
        };
        self.record_op(op, at, value, error)
    }

    /// When the request just answered completed, and how much of its
    /// time before that was not the library's: by default now and
    /// nothing. A client whose library is timed apart from its call (a
    /// driver's, behind a pipe) completes when the library returned, and
    /// the request's way to the library is not the library's. The history
    /// keeps the invoke recorded before the request left, so its interval
    /// still holds the operation (the recorder may raise the completion's
    /// time to keep its file in time order); latencies leave the pipe out
    /// both ways.
    fn served(&self) -> (Instant, Duration) {
        match self.lock.served() {
            Some(s) => (
                Instant::from_std(s.returned),
                s.called.saturating_duration_since(s.sent),
            ),
            None => (Instant::now(), Duration::ZERO),
        }
    }

    /// Records the `lost` events its library has sent so far; whether one
    /// was for `key`.
    async fn record_lost(&mut self, key: Option<&str>) -> bool {
        let mut hit = false;
        while let Some(l) = self.lost.as_mut().and_then(|rx| rx.try_recv().ok()) {
            hit |= key == Some(l.key.as_str());
            self.record_lost_lock(l).await;
        }
        hit
    }

    fn record_lost_lock(&mut self, l: LostLock) -> Recording {
        let mut e = self.event(OpType::Info, F::Lost, &l.key);
        if !l.reason.is_empty() {
            e.error = Some(l.reason);
        }
        self.record(e)
    }

    /// Waits `hold`, unless the library says first that the lock on `key`
    /// is gone: then false (the client stops acting on it).
    async fn hold_for(&mut self, key: &str, hold: Duration) -> bool {
        let Some(mut rx) = self.lost.take() else {
            unless_paused(&mut self.pause, tokio::time::sleep(hold)).await;
            return true;
        };
        let deadline = tokio::time::Instant::now() + hold;
        let mut kept = true;
        loop {
            let next = unless_paused(&mut self.pause, async {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => None,
                    l = rx.recv() => l,
                }
            })
            .await;
            match next {
                None => break,
                Some(l) => {
                    let mine = l.key == key;
                    self.record_lost_lock(l).await;
                    if mine {
                        kept = false;
                        break;
                    }
                }
            }
        }
        self.lost = Some(rx);
        kept
    }

    /// Hold: wait the hold time, then write the fence to the resource (or,
    /// with the counter workload, read the counter first and write it back
    /// plus one after the hold). A lock its library says is gone is not
    /// acted on: no write.
    async fn hold(&mut self, guard: &Guard, key: KeyId) {
        let hold = self.plan.hold.sample(&mut self.rng);
        let read = match self.plan.workload {
            Workload::Counter => Some(self.resource.read(&guard.key)),
            Workload::Fence => None,
        };
        if !hold.is_zero() && !self.hold_for(&guard.key, hold).await {
            return;
        }
        // A client paused during its hold resumes here, as if it still
        // held the lock.
        unless_paused(&mut self.pause, std::future::ready(())).await;
        if self.record_lost(Some(&guard.key)).await {
            return;
        }
        let mut invoke = self.op(OpType::Invoke, OpF::Write, key);
        invoke.fence = guard.fence;
        self.record_op(invoke, None, None, None).await;
        let mut ok = self.op(OpType::Ok, OpF::Write, key);
        ok.fence = guard.fence;
        let value = match read {
            Some(n) => {
                let accepted = self.resource.write_counter(&guard.key, guard.fence, n + 1);
                Some(serde_json::json!({ "accepted": accepted, "read": n, "wrote": n + 1 }))
            }
            None => {
                ok.accepted = Some(self.resource.write(&guard.key, guard.fence));
                None
            }
        };
        self.record_op(ok, None, value, None).await;
    }

    /// Release, retrying a definite failure a few times while the lease
    /// lasts: a failed release did not happen, so we still hold the lock.
    async fn release(&mut self, guard: &Guard, key: KeyId, acquired: Instant) {
        for attempt in 0..3 {
            let mut invoke = self.op(OpType::Invoke, OpF::Release, key);
            invoke.fence = guard.fence;
            let invoked = Instant::now();
            self.set_holding(false);
            self.record_op(invoke, Some(invoked), None, None).await;
            let out = unless_paused(&mut self.pause, self.lock.release(guard)).await;
            let (done, plumbing) = self.served();
            self.record_outcome(OpF::Release, key, Some(done), &out, |_, r| {
                (!r.was_held).then(|| serde_json::json!({ "was_held": false }))
            })
            .await;
            match out {
                Outcome::Ok(_) => {
                    self.metrics.released(
                        self.id,
                        done.saturating_duration_since(invoked)
                            .saturating_sub(plumbing),
                        invoked - acquired,
                    );
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
        self.cycles().await
    }

    /// Runs cycles until the plan says stop (`None`) or the nemesis
    /// crashes the client: then its connections are dropped without a
    /// release, its `crash` event is recorded, and the task is handed back
    /// (`Some`) so its slot can be refilled.
    pub async fn run_until_crash(mut self) -> Option<ClientTask> {
        // The cycles' state lives in a box of its own: held inline, the
        // compiler lays it out beside this function's own state instead of
        // over it, and every client's task would be that much larger.
        let Some(slot) = self.slot.clone() else {
            Box::pin(self.cycles()).await;
            return None;
        };
        let crashed = tokio::select! {
            // A crash the nemesis asks for wins over an end seen at the
            // same time (a driver killed for the fault ends every client
            // of its host).
            biased;
            _ = slot.crash.notified() => true,
            _ = Box::pin(self.cycles()) => self.gone.is_some(),
        };
        if !crashed {
            return None;
        }
        slot.holding.store(false, Ordering::Relaxed);
        let lock = std::mem::replace(&mut self.lock, Box::new(Dead));
        if self.gone.is_none() {
            lock.crash();
        }
        let crash = Event::new(0, Process::Client(self.id), OpType::Info, F::Crash);
        self.record(crash).await;
        Some(self)
    }

    /// Why the client ended on its own (its driver exited), if it did: its
    /// successor starts at once, not at the end of a fault.
    pub fn gone(&self) -> Option<&str> {
        self.gone.as_deref()
    }

    /// Takes a new lock client and process id: the successor of a crashed
    /// client, in the same slot.
    pub fn reborn(mut self, id: u64, seed: u64, lock: Box<dyn LockClient>) -> Self {
        self.metrics
            .add_counts(self.id, &std::mem::take(&mut self.counts));
        self.id = id;
        self.rng = SmallRng::seed_from_u64(seed);
        let mut lock = lock;
        self.lost = lock.take_lost();
        self.gone = None;
        self.lock = lock;
        if let Some(slot) = &self.slot {
            slot.id.store(id, Ordering::Relaxed);
        }
        self
    }

    async fn cycles(&mut self) {
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
            let plan = self.plan.clone();
            let key = plan.keys[i].as_str();
            let key_id = KeyId(i as u32);
            self.record_lost(None).await;
            let mut invoke = self.op(OpType::Invoke, OpF::Acquire, key_id);
            invoke.lease_ms = Some(opts.lease.as_millis() as u64);
            self.record_op(invoke, None, None, None).await;
            let out = unless_paused(&mut self.pause, self.lock.acquire(key, &opts)).await;
            let (done, plumbing) = self.served();
            if matches!(out, Outcome::Ok(_)) {
                self.set_holding(true);
            }
            self.record_outcome(OpF::Acquire, key_id, Some(done), &out, |op, g| {
                op.fence = g.fence;
                op.lease_ms = g.lease.map(|l| l.as_millis() as u64);
                None
            })
            .await;
            if let Outcome::Ok(guard) = out {
                self.metrics.acquired(
                    self.id,
                    done.saturating_duration_since(intended)
                        .saturating_sub(plumbing),
                    done.saturating_duration_since(self.clock.started().into()),
                );
                self.hold(&guard, key_id).await;
                self.release(&guard, key_id, done).await;
            }
            if let Some(why) = self.lock.gone() {
                // Its process ended on its own: the client died with it.
                self.gone = Some(why);
                return;
            }
            // An `info` acquire may have taken the lock, but without its
            // token we cannot release it: its lease frees it, as it would
            // for a real client that lost its answer.
            let think = self.plan.think.sample(&mut self.rng);
            intended = Instant::now() + think;
            if !think.is_zero() {
                let stop = self.plan.stop.clone();
                let stopped = unless_paused(&mut self.pause, async {
                    tokio::select! {
                        _ = tokio::time::sleep_until(intended) => false,
                        _ = stop.cancelled() => true,
                    }
                })
                .await;
                if stopped {
                    break;
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
