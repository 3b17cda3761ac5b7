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
    #[derive(Clone, Copy, PartialEq)]
    enum C {
        Idle,
        Acquiring(usize),
        Holding(usize),
        Reacquiring(usize),
        Writing(usize),
        Releasing(usize),
    }
    #[derive(Clone, Copy)]
    struct Lock {
        holder: Option<usize>,
        /// Step at which a hold its holder no longer knows of expires.
        ghost_until: Option<u64>,
        fence: u64,
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let nc = o.clients.max(1) as usize;
    let nk = o.keys.max(1) as usize;
    let mut clients = vec![C::Idle; nc];
    let mut locks = vec![
        Lock {
            holder: None,
            ghost_until: None,
            fence: 0,
        };
        nk
    ];
    let mut out: Vec<Event> = Vec::new();
    let mut t = 0u64;
    let mut ops = 0u64;
    let max_steps = o.operations.saturating_mul(50).max(1000);
    for step in 0..max_steps {
        if ops >= o.operations {
            break;
        }
        for l in locks.iter_mut() {
            if l.ghost_until.is_some_and(|s| s <= step) {
                l.holder = None;
                l.ghost_until = None;
            }
        }
        let c = rng.random_range(0..nc);
        let p = Process::Client(c as u64 + 1);
        if !rng.random_bool(o.same_time.clamp(0.0, 1.0)) {
            t += rng.random_range(1..20u64);
        }
        let emit = |out: &mut Vec<Event>, kind: OpType, f: F, key: Option<usize>| {
            let mut e = Event::new(t, p, kind, f);
            e.index = out.len() as u64;
            if nk > 1 {
                e.key = key.map(|k| format!("k{k}"));
            }
            out.push(e);
            out.len() - 1
        };
        let roll: f64 = rng.random();
        match clients[c] {
            C::Idle => {
                let k = rng.random_range(0..nk);
                emit(&mut out, OpType::Invoke, F::Acquire, Some(k));
                clients[c] = C::Acquiring(k);
            }
            C::Acquiring(k) => {
                let free = locks[k].holder.is_none();
                if roll < o.info {
                    // Timed out: taken on the server, or not.
                    if free && rng.random_bool(0.5) {
                        locks[k].holder = Some(c);
                        locks[k].ghost_until = Some(step + rng.random_range(1..30u64));
                    }
                    emit(&mut out, OpType::Info, F::Acquire, Some(k));
                    clients[c] = C::Idle;
                    ops += 1;
                } else if roll < o.info + o.fail || (!free && rng.random_bool(0.1)) {
                    emit(&mut out, OpType::Fail, F::Acquire, Some(k));
                    clients[c] = C::Idle;
                    ops += 1;
                } else if free || rng.random_bool(o.double_grant.clamp(0.0, 1.0)) {
                    locks[k].holder = Some(c);
                    locks[k].ghost_until = None;
                    locks[k].fence += 1;
                    let i = emit(&mut out, OpType::Ok, F::Acquire, Some(k));
                    out[i].fence = Some(locks[k].fence);
                    clients[c] = C::Holding(k);
                    ops += 1;
                }
            }
            C::Holding(k) => {
                if rng.random_bool(o.crash.clamp(0.0, 1.0)) {
                    if locks[k].holder == Some(c) {
                        locks[k].holder = None;
                    }
                    emit(&mut out, OpType::Info, F::Crash, None);
                    clients[c] = C::Idle;
                } else if rng.random_bool(o.lease_expiry.clamp(0.0, 1.0)) {
                    if locks[k].holder == Some(c) {
                        locks[k].holder = None;
                    }
                } else if roll < 0.05 {
                    emit(&mut out, OpType::Invoke, F::Acquire, Some(k));
                    clients[c] = C::Reacquiring(k);
                } else if roll < 0.3 {
                    emit(&mut out, OpType::Invoke, F::Write, Some(k));
                    clients[c] = C::Writing(k);
                } else {
                    emit(&mut out, OpType::Invoke, F::Release, Some(k));
                    clients[c] = C::Releasing(k);
                }
            }
            C::Reacquiring(k) => {
                let i = emit(&mut out, OpType::Ok, F::Acquire, Some(k));
                out[i].fence = Some(locks[k].fence);
                clients[c] = C::Holding(k);
                ops += 1;
            }
            C::Writing(k) => {
                let i = emit(&mut out, OpType::Ok, F::Write, Some(k));
                out[i].value = Some(serde_json::json!({ "accepted": true }));
                clients[c] = C::Holding(k);
            }
            C::Releasing(k) => {
                let held = locks[k].holder == Some(c);
                if rng.random_bool((o.crash / 2.0).clamp(0.0, 1.0)) {
                    if held {
                        locks[k].holder = None;
                    }
                    emit(&mut out, OpType::Info, F::Crash, None);
                    clients[c] = C::Idle;
                } else if roll < o.info {
                    if held && rng.random_bool(0.5) {
                        // Lost on the way out: the lease frees it later.
                        locks[k].ghost_until = Some(step + rng.random_range(1..30u64));
                    } else if held {
                        locks[k].holder = None;
                    }
                    emit(&mut out, OpType::Info, F::Release, Some(k));
                    clients[c] = C::Idle;
                    ops += 1;
                } else if roll < o.info + o.fail {
                    emit(&mut out, OpType::Fail, F::Release, Some(k));
                    clients[c] = C::Holding(k);
                    ops += 1;
                } else {
                    if held {
                        locks[k].holder = None;
                    }
                    let i = emit(&mut out, OpType::Ok, F::Release, Some(k));
                    if !held {
                        out[i].value = Some(serde_json::json!({ "was_held": false }));
                    }
                    clients[c] = C::Idle;
                    ops += 1;
                }
            }
        }
    }
    out
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
