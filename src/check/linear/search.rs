//! The search for a linearization of one key's operations (Wing & Gong's,
//! as Lowe's just-in-time linearization and Porcupine run it), over any
//! operations that say what they need of the holder and what they leave
//! ([`Op::step`]). The module above explains the search.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use super::Budget;
use super::model::{NOBODY, Op, predecessors};

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
pub(super) enum KeyOutcome {
    Valid,
    Invalid { longest: u64, unplaceable: Vec<u64> },
    Unknown(String),
}

/// The shared budget across keys.
pub(super) struct Meter {
    start: Instant,
    budget: Budget,
    states: u64,
}

impl Meter {
    /// A meter of `budget`, starting now.
    pub(super) fn new(budget: Budget) -> Self {
        Meter {
            start: Instant::now(),
            budget,
            states: 0,
        }
    }

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

impl List {
    /// The doubly linked list of the operations' entries in time order (2i
    /// is op i's call, 2i+1 its return), with its head and tail sentinels.
    fn of_entries(ops: &[Op]) -> (List, usize, usize) {
        let n = ops.len();
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
        (list, head, tail)
    }
}

pub(super) fn check_key(ops: &[Op], meter: &mut Meter) -> KeyOutcome {
    let n = ops.len();
    if n == 0 {
        return KeyOutcome::Valid;
    }
    let (mut list, head, tail) = List::of_entries(ops);

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
