//! Histories of clients using a simulated lock, for benchmarks and
//! property tests of the checkers (a generator, not a checker).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Event, F, OpType, Process};

/// How [`synthetic_history`] simulates clients of a lock.
#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    /// Client processes (ids 1..=clients).
    pub clients: u64,
    /// Keys (`k0`, `k1`, ...).
    pub keys: u64,
    /// Stop after about this many lock operations (invoke + completion).
    pub operations: u64,
    /// Chance that a completion is `info`.
    pub info: f64,
    /// Chance that a completion is `fail` (failed releases are retried).
    pub fail: f64,
    /// Chance per step that a holder crashes.
    pub crash: f64,
    /// Chance that a waiting acquire is granted although the key is held
    /// (a broken lock: a violation).
    pub double_grant: f64,
    /// Chance per step that a holder's lease silently expires (the lock
    /// frees the key; the holder goes on and later sees `was_held: false`).
    pub lease_expiry: f64,
    /// Chance that an event has the same time as the one before it.
    pub same_time: f64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions {
            clients: 4,
            keys: 1,
            operations: 40,
            info: 0.05,
            fail: 0.05,
            crash: 0.0,
            double_grant: 0.0,
            lease_expiry: 0.0,
            same_time: 0.0,
        }
    }
}

/// A history of clients using a simulated lock, for benchmarks and property
/// tests. With `double_grant` and `lease_expiry` at zero the lock is correct,
/// so the history keeps mutual exclusion; `info` outcomes may or may not
/// have taken effect (a request lost on the way back, or on the way out).
pub fn synthetic_history(seed: u64, o: &SyntheticOptions) -> Vec<Event> {
    let nc = o.clients.max(1) as usize;
    let nk = o.keys.max(1) as usize;
    let mut sim = Sim {
        rng: StdRng::seed_from_u64(seed),
        o,
        nk,
        clients: vec![C::Idle; nc],
        locks: vec![
            Lock {
                holder: None,
                ghost_until: None,
                fence: 0,
            };
            nk
        ],
        out: Vec::new(),
        t: 0,
        ops: 0,
    };
    let max_steps = o.operations.saturating_mul(50).max(1000);
    for step in 0..max_steps {
        if sim.ops >= o.operations {
            break;
        }
        sim.step(step, nc);
    }
    sim.out
}

/// What a simulated client is doing (with the key it is doing it to).
#[derive(Clone, Copy, PartialEq)]
enum C {
    Idle,
    Acquiring(usize),
    Holding(usize),
    Reacquiring(usize),
    Writing(usize),
    Releasing(usize),
}

/// A simulated lock.
#[derive(Clone, Copy)]
struct Lock {
    holder: Option<usize>,
    /// Step at which a hold its holder no longer knows of expires.
    ghost_until: Option<u64>,
    fence: u64,
}

/// The simulation behind [`synthetic_history`].
struct Sim<'o> {
    rng: StdRng,
    o: &'o SyntheticOptions,
    nk: usize,
    clients: Vec<C>,
    locks: Vec<Lock>,
    out: Vec<Event>,
    t: u64,
    ops: u64,
}

impl Sim<'_> {
    /// Appends an event of client `c` now; its index in the history.
    fn emit(&mut self, c: usize, kind: OpType, f: F, key: Option<usize>) -> usize {
        let mut e = Event::new(self.t, Process::Client(c as u64 + 1), kind, f);
        e.index = self.out.len() as u64;
        if self.nk > 1 {
            e.key = key.map(|k| format!("k{k}"));
        }
        self.out.push(e);
        self.out.len() - 1
    }

    /// One step: leases past their ghost hold expire, then one client,
    /// chosen at random, moves on.
    fn step(&mut self, step: u64, nc: usize) {
        for l in self.locks.iter_mut() {
            if l.ghost_until.is_some_and(|s| s <= step) {
                l.holder = None;
                l.ghost_until = None;
            }
        }
        let c = self.rng.random_range(0..nc);
        if !self.rng.random_bool(self.o.same_time.clamp(0.0, 1.0)) {
            self.t += self.rng.random_range(1..20u64);
        }
        let roll: f64 = self.rng.random();
        match self.clients[c] {
            C::Idle => {
                let k = self.rng.random_range(0..self.nk);
                self.emit(c, OpType::Invoke, F::Acquire, Some(k));
                self.clients[c] = C::Acquiring(k);
            }
            C::Acquiring(k) => self.acquiring(c, k, step, roll),
            C::Holding(k) => self.holding(c, k, roll),
            C::Reacquiring(k) => {
                let i = self.emit(c, OpType::Ok, F::Acquire, Some(k));
                self.out[i].fence = Some(self.locks[k].fence);
                self.clients[c] = C::Holding(k);
                self.ops += 1;
            }
            C::Writing(k) => {
                let i = self.emit(c, OpType::Ok, F::Write, Some(k));
                self.out[i].value = Some(serde_json::json!({ "accepted": true }));
                self.clients[c] = C::Holding(k);
            }
            C::Releasing(k) => self.releasing(c, k, step, roll),
        }
    }

    /// Client `c`'s acquire of `k` ends: granted, refused, or timed out.
    fn acquiring(&mut self, c: usize, k: usize, step: u64, roll: f64) {
        let o = self.o;
        let free = self.locks[k].holder.is_none();
        if roll < o.info {
            // Timed out: taken on the server, or not.
            if free && self.rng.random_bool(0.5) {
                self.locks[k].holder = Some(c);
                self.locks[k].ghost_until = Some(step + self.rng.random_range(1..30u64));
            }
            self.emit(c, OpType::Info, F::Acquire, Some(k));
            self.clients[c] = C::Idle;
            self.ops += 1;
        } else if roll < o.info + o.fail || (!free && self.rng.random_bool(0.1)) {
            self.emit(c, OpType::Fail, F::Acquire, Some(k));
            self.clients[c] = C::Idle;
            self.ops += 1;
        } else if free || self.rng.random_bool(o.double_grant.clamp(0.0, 1.0)) {
            self.locks[k].holder = Some(c);
            self.locks[k].ghost_until = None;
            self.locks[k].fence += 1;
            let i = self.emit(c, OpType::Ok, F::Acquire, Some(k));
            self.out[i].fence = Some(self.locks[k].fence);
            self.clients[c] = C::Holding(k);
            self.ops += 1;
        }
    }

    /// Client `c`, holding `k`: crashes, loses its lease, or invokes its
    /// next operation.
    fn holding(&mut self, c: usize, k: usize, roll: f64) {
        let o = self.o;
        if self.rng.random_bool(o.crash.clamp(0.0, 1.0)) {
            if self.locks[k].holder == Some(c) {
                self.locks[k].holder = None;
            }
            self.emit(c, OpType::Info, F::Crash, None);
            self.clients[c] = C::Idle;
        } else if self.rng.random_bool(o.lease_expiry.clamp(0.0, 1.0)) {
            if self.locks[k].holder == Some(c) {
                self.locks[k].holder = None;
            }
        } else if roll < 0.05 {
            self.emit(c, OpType::Invoke, F::Acquire, Some(k));
            self.clients[c] = C::Reacquiring(k);
        } else if roll < 0.3 {
            self.emit(c, OpType::Invoke, F::Write, Some(k));
            self.clients[c] = C::Writing(k);
        } else {
            self.emit(c, OpType::Invoke, F::Release, Some(k));
            self.clients[c] = C::Releasing(k);
        }
    }

    /// Client `c`'s release of `k` ends: done, failed, lost on the way, or
    /// the client crashes.
    fn releasing(&mut self, c: usize, k: usize, step: u64, roll: f64) {
        let o = self.o;
        let held = self.locks[k].holder == Some(c);
        if self.rng.random_bool((o.crash / 2.0).clamp(0.0, 1.0)) {
            if held {
                self.locks[k].holder = None;
            }
            self.emit(c, OpType::Info, F::Crash, None);
            self.clients[c] = C::Idle;
        } else if roll < o.info {
            if held && self.rng.random_bool(0.5) {
                // Lost on the way out: the lease frees it later.
                self.locks[k].ghost_until = Some(step + self.rng.random_range(1..30u64));
            } else if held {
                self.locks[k].holder = None;
            }
            self.emit(c, OpType::Info, F::Release, Some(k));
            self.clients[c] = C::Idle;
            self.ops += 1;
        } else if roll < o.info + o.fail {
            self.emit(c, OpType::Fail, F::Release, Some(k));
            self.clients[c] = C::Holding(k);
            self.ops += 1;
        } else {
            if held {
                self.locks[k].holder = None;
            }
            let i = self.emit(c, OpType::Ok, F::Release, Some(k));
            if !held {
                self.out[i].value = Some(serde_json::json!({ "was_held": false }));
            }
            self.clients[c] = C::Idle;
            self.ops += 1;
        }
    }
}

impl SyntheticOptions {
    /// Options that vary with `seed`, for a property checked over many
    /// histories: 2 to 5 clients, 1 to 3 keys, crashes, and on some seeds
    /// double grants (even seeds) and expired leases (every third): valid
    /// and invalid histories both.
    pub fn varied(seed: u64, operations: u64) -> Self {
        SyntheticOptions {
            clients: 2 + seed % 4,
            keys: 1 + seed % 3,
            operations,
            crash: 0.02,
            double_grant: if seed.is_multiple_of(2) { 0.05 } else { 0.0 },
            lease_expiry: if seed.is_multiple_of(3) { 0.03 } else { 0.0 },
            ..SyntheticOptions::default()
        }
    }
}

/// The history v1 text of `events`: one JSON line each.
pub fn to_jsonl(events: &[Event]) -> String {
    let mut text = String::new();
    for e in events {
        // An `Event` always serializes (no maps with non-string keys).
        if let Ok(line) = serde_json::to_string(e) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}
