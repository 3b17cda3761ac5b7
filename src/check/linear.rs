//! Linearizability against an owner-aware mutex model (issue 6, item 5).
//!
//! # Model
//!
//! Per key, the state is the holder: nobody, or one process. The history's
//! lock operations act on it:
//!
//! | operation | needs | leaves |
//! | --- | --- | --- |
//! | `acquire` `ok` by p | nobody, or p (reentrant) | p |
//! | `release` `ok` by p | p | nobody |
//! | `release` `ok` with `{"was_held": false}` by p | anything | nobody if p held, else unchanged |
//! | `crash` of p (instantaneous, at its time) | anything | nobody if p held, else unchanged |
//!
//! `fail` completions did not happen and are dropped. An operation that
//! ended `info`, or was still in flight at a crash or at the end of the
//! history, is *optional*: it took effect at one point after its invoke, or
//! never. Its window closes at the same process's next operation on that
//! key (or never, if there is none): the process has moved on, and owner
//! tokens belong to one acquisition, so a late request cannot touch a later
//! one. (In Jepsen's histories a process whose operation ended `info` never
//! issues another, so there the window is open to the end, as Knossos and
//! Porcupine treat it.) This is also what makes the verdict agree with the
//! direct rule of design.md, which ends a hold at the invoke of a release
//! that did not fail: a window open to the end would let a timed-out
//! release free the same client's *next* hold. Writes, renews and nemesis
//! events do not change the holder and are left out.
//!
//! Real time: operation a must precede b when a returned strictly before b
//! was invoked. Equal times are concurrent, so an `acquire` `ok` at the very
//! time the previous holder invoked its release is a clean hand-off, as the
//! direct checker's half-open holds say. One process's operations also keep
//! their program order when their times are equal.
//!
//! # Search
//!
//! Keys are checked one at a time (P-compositionality: a history is
//! linearizable iff each key's sub-history is). Per key, the search is
//! Wing & Gong's, in the form of Lowe's "just-in-time" linearization as
//! Porcupine implements it: the calls and returns sorted by time in a
//! doubly linked list; walk it; at a call, try the operation on the model
//! and, if it fits, lift it out and restart from the head; at a return of
//! an operation not yet placed, backtrack. Each visited (set of placed
//! operations, holder) pair is memoised so that no state is explored twice.
//! The set is kept as a 128-bit Zobrist hash (XOR of one random value per
//! operation), not as a bitset: O(1) per step, at a collision chance of about
//! n²/2¹²⁹ for n states. An optional operation whose window closes is
//! lifted out as "never happened" (no choice, so backtracking steps over
//! it); one whose window never closes is simply left out at the end.
//!
//! Pruning: an optional `acquire` by p is dropped before the search when no
//! `release` `ok` (one that needs p as holder) of p follows its invoke on
//! that key: "nobody holds" allows every operation that "p holds" allows
//! except such a release, so applying the acquire can never help.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::{Event, F, OpType, Process};

/// Limits on the search.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Give up (verdict `unknown`) after this long.
    pub time: Duration,
    /// Or after visiting this many search states.
    pub states: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            time: Duration::from_secs(60),
            states: 10_000_000,
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearResult {
    /// Valid, invalid or unknown (budget).
    pub verdict: Verdict,
    /// Keys checked.
    pub keys: u64,
    /// For an invalid history: the key that failed.
    pub key: Option<String>,
    /// For an invalid history: how many of that key's operations the
    /// longest linearizable prefix holds.
    pub longest_prefix: Option<u64>,
    /// Event indices (invokes) of the operations that cannot be placed.
    pub unplaceable: Vec<u64>,
    /// Why unknown.
    pub reason: Option<String>,
}

impl LinearResult {
    fn unknown(keys: u64, why: String) -> Self {
        LinearResult {
            verdict: Verdict::Unknown,
            keys,
            key: None,
            longest_prefix: None,
            unplaceable: Vec::new(),
            reason: Some(why),
        }
    }
}

/// What an operation does to the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Needs nobody or p; leaves p.
    Acquire,
    /// Needs p; leaves nobody.
    Release,
    /// `was_held: false` release, or crash: frees the key if p held it.
    Drop,
}

/// One operation of one key's sub-history.
#[derive(Debug, Clone)]
struct Op {
    kind: Kind,
    /// Dense process number (the holder is stored as this).
    proc: u32,
    call: u64,
    /// `u64::MAX` when the window never closes.
    ret: u64,
    optional: bool,
    /// The invoke's index (the crash event's, for a crash).
    index: u64,
    /// The client process id, to find the next acquire.
    client: u64,
}

const NOBODY: u32 = u32::MAX;

impl Op {
    /// The holder after this operation, or `None` if it does not fit.
    fn step(&self, holder: u32) -> Option<u32> {
        match self.kind {
            Kind::Acquire => (holder == NOBODY || holder == self.proc).then_some(self.proc),
            Kind::Release => (holder == self.proc).then_some(NOBODY),
            Kind::Drop => Some(if holder == self.proc { NOBODY } else { holder }),
        }
    }
}

/// An invoke waiting for its completion.
struct Pending {
    f: F,
    key: String,
    index: u64,
    time_ns: u64,
}

/// Splits the history into per-key operation lists, or says why it is
/// inconsistent (as the direct checker does, so both give `unknown`).
fn per_key_ops(events: &[Event]) -> Result<BTreeMap<String, Vec<Op>>, String> {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by_key(|e| e.index);
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut touched: HashMap<u64, Vec<String>> = HashMap::new();
    let mut procs: HashMap<u64, u32> = HashMap::new();
    let mut keys: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let mut dense = |p: u64| {
        let n = procs.len() as u32;
        *procs.entry(p).or_insert(n)
    };
    let optional = |p: u64, proc: u32, op: &Pending| -> Option<(String, Op)> {
        let kind = match op.f {
            F::Acquire => Kind::Acquire,
            F::Release => Kind::Release,
            _ => return None,
        };
        Some((
            op.key.clone(),
            Op {
                kind,
                proc,
                call: op.time_ns,
                ret: u64::MAX,
                optional: true,
                index: op.index,
                client: p,
            },
        ))
    };
    for e in order {
        let Process::Client(p) = e.process else {
            continue;
        };
        let proc = dense(p);
        if e.f == F::Crash {
            if let Some(op) = pending.remove(&p)
                && let Some((key, op)) = optional(p, proc, &op)
            {
                keys.entry(key).or_default().push(op);
            }
            for key in touched.get(&p).into_iter().flatten() {
                keys.entry(key.clone()).or_default().push(Op {
                    kind: Kind::Drop,
                    proc,
                    call: e.time_ns,
                    ret: e.time_ns,
                    optional: false,
                    index: e.index,
                    client: p,
                });
            }
            continue;
        }
        if e.kind == OpType::Invoke {
            if let Some(prev) = pending.get(&p) {
                return Err(format!(
                    "process {p} invoked {} at event {} while its {} from event {} had not completed",
                    e.f.as_str(),
                    e.index,
                    prev.f.as_str(),
                    prev.index
                ));
            }
            let key = e.key_or_default().to_string();
            if matches!(e.f, F::Acquire | F::Release) {
                let t = touched.entry(p).or_default();
                if !t.contains(&key) {
                    t.push(key.clone());
                }
            }
            pending.insert(
                p,
                Pending {
                    f: e.f.clone(),
                    key,
                    index: e.index,
                    time_ns: e.time_ns,
                },
            );
            continue;
        }
        let Some(op) = pending.remove(&p) else {
            return Err(format!(
                "event {}: process {p} completed {} without an invoke",
                e.index,
                e.f.as_str()
            ));
        };
        if op.f != e.f {
            return Err(format!(
                "event {}: process {p} completed {} but had invoked {} at event {}",
                e.index,
                e.f.as_str(),
                op.f.as_str(),
                op.index
            ));
        }
        let kind = match (&e.f, e.kind) {
            (_, OpType::Fail) => continue,
            (F::Acquire | F::Release, OpType::Info) => {
                if let Some((key, op)) = optional(p, proc, &op) {
                    keys.entry(key).or_default().push(op);
                }
                continue;
            }
            (F::Acquire, _) => Kind::Acquire,
            (F::Release, _) => {
                let was_held = e
                    .value
                    .as_ref()
                    .and_then(|v| v.get("was_held"))
                    .and_then(|v| v.as_bool());
                if was_held == Some(false) {
                    Kind::Drop
                } else {
                    Kind::Release
                }
            }
            _ => continue,
        };
        keys.entry(op.key.clone()).or_default().push(Op {
            kind,
            proc,
            call: op.time_ns,
            ret: e.time_ns.max(op.time_ns),
            optional: false,
            index: op.index,
            client: p,
        });
    }
    for (p, op) in pending {
        let proc = dense(p);
        if let Some((key, op)) = optional(p, proc, &op) {
            keys.entry(key).or_default().push(op);
        }
    }
    for ops in keys.values_mut() {
        close_windows_and_prune(ops);
    }
    Ok(keys)
}

/// Drops optional acquires that can never help (module doc), sorts the
/// operations by invoke, and closes each optional operation's window at its
/// process's next operation on the key.
fn close_windows_and_prune(ops: &mut Vec<Op>) {
    ops.sort_by_key(|o| (o.call, o.index));
    let mut last_strict_release: HashMap<u64, u64> = HashMap::new();
    for o in ops
        .iter()
        .filter(|o| o.kind == Kind::Release && !o.optional)
    {
        let r = last_strict_release.entry(o.client).or_insert(0);
        *r = (*r).max(o.ret);
    }
    ops.retain(|o| {
        !(o.optional
            && o.kind == Kind::Acquire
            && last_strict_release
                .get(&o.client)
                .is_none_or(|&r| r < o.call))
    });
    let mut next_call: HashMap<u64, u64> = HashMap::new();
    for o in ops.iter_mut().rev() {
        if o.optional
            && let Some(&c) = next_call.get(&o.client)
        {
            o.ret = c;
        }
        next_call.insert(o.client, o.call);
    }
}

/// For each operation, the one before it of the same process: a process's
/// operations take effect in its program order, even at equal times.
fn predecessors(ops: &[Op]) -> Vec<usize> {
    let mut last: HashMap<u64, usize> = HashMap::new();
    ops.iter()
        .enumerate()
        .map(|(i, o)| last.insert(o.client, i).unwrap_or(usize::MAX))
        .collect()
}

/// A hasher for keys that are already random (Zobrist hashes).
#[derive(Default, Clone, Copy)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64).rotate_left(17);
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Default, Clone, Copy)]
struct MixState;

impl BuildHasher for MixState {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

/// SplitMix64: deterministic per-operation random values.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One key's outcome.
enum KeyOutcome {
    Valid,
    Invalid { longest: u64, unplaceable: Vec<u64> },
    Unknown(String),
}

/// The shared budget across keys.
struct Meter {
    start: Instant,
    budget: Budget,
    states: u64,
}

impl Meter {
    fn exhausted(&self) -> Option<String> {
        if self.states >= self.budget.states {
            return Some(format!(
                "search budget exhausted: {} states visited (limit {})",
                self.states, self.budget.states
            ));
        }
        if self.start.elapsed() >= self.budget.time {
            return Some(format!(
                "search budget exhausted: {:.1} s (limit {:.1} s)",
                self.start.elapsed().as_secs_f64(),
                self.budget.time.as_secs_f64()
            ));
        }
        None
    }
}

/// A placed operation on the search stack.
struct Frame {
    op: usize,
    holder: u32,
    /// Lifted as "never happened" because its window closed: no choice.
    forced: bool,
}

/// The list cells: `0..m` entries, then head and tail sentinels.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = n;
        self.prev[n] = p;
    }
    fn relink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        self.prev[n] = i;
    }
}

/// How many unplaceable operations a result lists.
const MAX_UNPLACEABLE: usize = 32;

fn check_key(ops: &[Op], meter: &mut Meter) -> KeyOutcome {
    let n = ops.len();
    if n == 0 {
        return KeyOutcome::Valid;
    }
    // Entries: 2i is op i's call, 2i+1 its return.
    let mut order: Vec<usize> = (0..2 * n).collect();
    order.sort_by_key(|&e| {
        let op = &ops[e / 2];
        let (t, kind) = if e.is_multiple_of(2) {
            (op.call, 0)
        } else {
            (op.ret, 1)
        };
        (t, kind, op.index, e)
    });
    let m = 2 * n;
    let (head, tail) = (m, m + 1);
    let mut list = List {
        next: vec![tail; m + 2],
        prev: vec![head; m + 2],
    };
    let mut last = head;
    for &e in &order {
        list.next[last] = e;
        list.prev[e] = last;
        last = e;
    }
    list.next[last] = tail;
    list.prev[tail] = last;

    let mut seed = 0x6c6f_636b_6265_6e63u64 ^ n as u64;
    let zob: Vec<u128> = (0..n)
        .map(|_| (u128::from(splitmix(&mut seed)) << 64) | u128::from(splitmix(&mut seed)))
        .collect();
    let mut seen: HashSet<(u128, u32), MixState> = HashSet::with_hasher(MixState);
    let mut stack: Vec<Frame> = Vec::new();
    let (mut hash, mut holder, mut placed) = (0u128, NOBODY, 0u64);
    let mut best: Option<(u64, Vec<u64>)> = None;
    let mut steps = 0u64;
    let mut entry = list.next[head];
    let pred = predecessors(ops);
    // Placed, or lifted as never happened.
    let mut done = vec![false; n];
    let lift = |list: &mut List, done: &mut [bool], op: usize| {
        list.unlink(2 * op);
        list.unlink(2 * op + 1);
        done[op] = true;
    };
    let unlift = |list: &mut List, done: &mut [bool], op: usize| {
        list.relink(2 * op + 1);
        list.relink(2 * op);
        done[op] = false;
    };
    loop {
        if entry == tail {
            return KeyOutcome::Valid;
        }
        steps += 1;
        if (steps.is_multiple_of(4096) || meter.states >= meter.budget.states)
            && let Some(why) = meter.exhausted()
        {
            return KeyOutcome::Unknown(why);
        }
        let i = entry / 2;
        let op = &ops[i];
        if entry.is_multiple_of(2) {
            let ready = pred[i] == usize::MAX || done[pred[i]];
            if ready && let Some(next_holder) = op.step(holder) {
                let h = hash ^ zob[i];
                if seen.insert((h, next_holder)) {
                    meter.states += 1;
                    stack.push(Frame {
                        op: i,
                        holder,
                        forced: false,
                    });
                    (hash, holder) = (h, next_holder);
                    placed += 1;
                    lift(&mut list, &mut done, i);
                    entry = list.next[head];
                    continue;
                }
            }
            entry = list.next[entry];
            continue;
        }
        // The return of an operation not placed yet.
        if op.optional {
            if op.ret == u64::MAX {
                // Every operation left is optional with an open window.
                return KeyOutcome::Valid;
            }
            let h = hash ^ zob[i];
            if seen.insert((h, holder)) {
                meter.states += 1;
                stack.push(Frame {
                    op: i,
                    holder,
                    forced: true,
                });
                hash = h;
                lift(&mut list, &mut done, i);
                entry = list.next[head];
                continue;
            }
        } else if best.as_ref().is_none_or(|(b, _)| placed > *b) {
            best = Some((placed, frontier(ops, &list, head, entry)));
        }
        // Backtrack to the last choice.
        loop {
            let Some(f) = stack.pop() else {
                let (longest, unplaceable) = best.unwrap_or_default();
                return KeyOutcome::Invalid {
                    longest,
                    unplaceable,
                };
            };
            unlift(&mut list, &mut done, f.op);
            hash ^= zob[f.op];
            holder = f.holder;
            if !f.forced {
                placed -= 1;
                entry = list.next[2 * f.op];
                break;
            }
        }
    }
}

/// The required operations that could not be placed at a dead end: those
/// whose calls come before the blocking return, and the blocked one.
fn frontier(ops: &[Op], list: &List, head: usize, blocked: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut e = list.next[head];
    while e != blocked && out.len() < MAX_UNPLACEABLE {
        if e.is_multiple_of(2) && !ops[e / 2].optional {
            out.push(ops[e / 2].index);
        }
        e = list.next[e];
    }
    let b = ops[blocked / 2].index;
    if !out.contains(&b) {
        out.push(b);
    }
    out.sort_unstable();
    out
}

/// Checks `events` (file order).
pub fn check_linearizable(events: &[Event], budget: Budget) -> LinearResult {
    let keys = match per_key_ops(events) {
        Ok(k) => k,
        Err(why) => return LinearResult::unknown(0, format!("inconsistent history: {why}")),
    };
    let mut meter = Meter {
        start: Instant::now(),
        budget,
        states: 0,
    };
    let mut unknown: Option<String> = None;
    for (key, ops) in &keys {
        match check_key(ops, &mut meter) {
            KeyOutcome::Valid => {}
            KeyOutcome::Invalid {
                longest,
                unplaceable,
            } => {
                return LinearResult {
                    verdict: Verdict::Invalid,
                    keys: keys.len() as u64,
                    key: Some(key.clone()),
                    longest_prefix: Some(longest),
                    unplaceable,
                    reason: None,
                };
            }
            KeyOutcome::Unknown(why) => {
                // Other keys may still prove the history invalid.
                unknown.get_or_insert(format!("key {key:?}: {why}"));
            }
        }
    }
    match unknown {
        Some(why) => LinearResult::unknown(keys.len() as u64, why),
        None => LinearResult {
            verdict: Verdict::Valid,
            keys: keys.len() as u64,
            key: None,
            longest_prefix: None,
            unplaceable: Vec::new(),
            reason: None,
        },
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: u64, t: u64, p: u64, kind: OpType, f: F) -> Event {
        let mut e = Event::new(t, Process::Client(p), kind, f);
        e.index = index;
        e
    }

    #[test]
    fn an_info_acquire_without_a_later_release_is_pruned() {
        let h = vec![
            ev(0, 0, 1, OpType::Invoke, F::Acquire),
            ev(1, 1, 1, OpType::Info, F::Acquire),
            ev(2, 2, 2, OpType::Invoke, F::Acquire),
            ev(3, 3, 2, OpType::Ok, F::Acquire),
        ];
        let ops = per_key_ops(&h).unwrap();
        assert_eq!(ops[""].len(), 1);
        assert_eq!(ops[""][0].index, 2);
    }

    #[test]
    fn an_optional_window_closes_at_the_next_operation() {
        let h = vec![
            ev(0, 0, 1, OpType::Invoke, F::Acquire),
            ev(1, 1, 1, OpType::Ok, F::Acquire),
            ev(2, 2, 1, OpType::Invoke, F::Release),
            ev(3, 3, 1, OpType::Info, F::Release),
            ev(4, 5, 1, OpType::Invoke, F::Acquire),
            ev(5, 6, 1, OpType::Ok, F::Acquire),
        ];
        let ops = per_key_ops(&h).unwrap();
        let rel = ops[""].iter().find(|o| o.kind == Kind::Release).unwrap();
        assert!(rel.optional);
        assert_eq!((rel.call, rel.ret), (2, 5));
    }
}
