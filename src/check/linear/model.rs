//! The owner-aware mutex model: per key, the holder (nobody, or one
//! process); each operation of the history, what it needs and what it
//! leaves. Also the history cut into each key's operations, with the
//! windows of optional operations closed and the hopeless ones pruned.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Event, F, OpType, Process};

/// What an operation does to the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Needs nobody or p; leaves p.
    Acquire,
    /// Needs p; leaves nobody.
    Release,
    /// `was_held: false` release, or crash: frees the key if p held it.
    Drop,
}

/// One operation of one key's sub-history.
#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) kind: Kind,
    /// Dense process number (the holder is stored as this).
    pub(super) proc: u32,
    pub(super) call: u64,
    /// `u64::MAX` when the window never closes.
    pub(super) ret: u64,
    pub(super) optional: bool,
    /// The invoke's index (the crash event's, for a crash).
    pub(super) index: u64,
    /// The client process id, to find the next acquire.
    pub(super) client: u64,
}

pub(super) const NOBODY: u32 = u32::MAX;

impl Op {
    /// The holder after this operation, or `None` if it does not fit.
    pub(super) fn step(&self, holder: u32) -> Option<u32> {
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
    pub(super) index: u64,
    time_ns: u64,
}

/// Splits the history into per-key operation lists, or says why it is
/// inconsistent (as the direct checker does, so both give `unknown`).
pub(super) fn per_key_ops(events: &[Event]) -> Result<BTreeMap<String, Vec<Op>>, String> {
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
    // (process, key) whose last release failed: the hold ends at the
    // process's next acquire of the key (design.md's hold rule).
    let mut failed_release: HashSet<(u64, String)> = HashSet::new();
    let drop_at = |e: &Event, proc: u32, p: u64| Op {
        kind: Kind::Drop,
        proc,
        call: e.time_ns,
        ret: e.time_ns,
        optional: false,
        index: e.index,
        client: p,
    };
    for e in order {
        let Process::Client(p) = e.process else {
            continue;
        };
        let proc = dense(p);
        if e.f == F::Lost {
            // The client stopped acting on the key: from here on it does
            // not hold it, whatever the service thinks.
            let key = e.key_or_default().to_string();
            failed_release.remove(&(p, key.clone()));
            keys.entry(key).or_default().push(drop_at(e, proc, p));
            continue;
        }
        if e.f == F::Crash {
            if let Some(op) = pending.remove(&p)
                && let Some((key, op)) = optional(p, proc, &op)
            {
                keys.entry(key).or_default().push(op);
            }
            for key in touched.get(&p).into_iter().flatten() {
                keys.entry(key.clone())
                    .or_default()
                    .push(drop_at(e, proc, p));
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
            if e.f == F::Acquire && failed_release.remove(&(p, key.clone())) {
                keys.entry(key.clone())
                    .or_default()
                    .push(drop_at(e, proc, p));
            }
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
        if e.f == F::Release {
            if e.kind == OpType::Fail {
                failed_release.insert((p, op.key.clone()));
            } else {
                failed_release.remove(&(p, op.key.clone()));
            }
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
pub(super) fn predecessors(ops: &[Op]) -> Vec<usize> {
    let mut last: HashMap<u64, usize> = HashMap::new();
    ops.iter()
        .enumerate()
        .map(|(i, o)| last.insert(o.client, i).unwrap_or(usize::MAX))
        .collect()
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
