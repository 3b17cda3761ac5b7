//! The owner-aware mutex model: per key, the holder (nobody, or one
//! process); each operation of the history, what it needs and what it
//! leaves. Also the history cut into each key's operations, with the
//! windows of optional operations closed and the hopeless ones pruned.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Event, EventRef, F, FnRef, OpType, Process};

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
    let mut split = Splitter::default();
    for e in order {
        split.push(&EventRef::of(e))?;
    }
    Ok(split.finish())
}

/// The split, one event at a time in index order: what is kept is the
/// compact per-key operations, not the events.
#[derive(Default)]
pub(super) struct Splitter {
    pending: HashMap<u64, Pending>,
    touched: HashMap<u64, Vec<String>>,
    procs: HashMap<u64, u32>,
    keys: BTreeMap<String, Vec<Op>>,
    /// (process, key) whose last release failed: the hold ends at the
    /// process's next acquire of the key (docs/design.md's hold rule).
    failed_release: HashSet<(u64, String)>,
}

impl Splitter {
    fn dense(&mut self, p: u64) -> u32 {
        let n = self.procs.len() as u32;
        *self.procs.entry(p).or_insert(n)
    }

    fn optional(p: u64, proc: u32, op: &Pending) -> Option<(String, Op)> {
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
    }

    fn drop_at(e: &EventRef<'_>, proc: u32, p: u64) -> Op {
        Op {
            kind: Kind::Drop,
            proc,
            call: e.time_ns,
            ret: e.time_ns,
            optional: false,
            index: e.index,
            client: p,
        }
    }

    fn key(&mut self, key: String) -> &mut Vec<Op> {
        self.keys.entry(key).or_default()
    }

    /// Takes the next event in index order.
    pub(super) fn push(&mut self, e: &EventRef<'_>) -> Result<(), String> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        let proc = self.dense(p);
        if e.f == FnRef::Lost {
            // The client stopped acting on the key: from here on it does
            // not hold it, whatever the service thinks.
            let key = e.key.to_string();
            self.failed_release.remove(&(p, key.clone()));
            self.key(key).push(Self::drop_at(e, proc, p));
            return Ok(());
        }
        if e.f == FnRef::Crash {
            if let Some(op) = self.pending.remove(&p)
                && let Some((key, op)) = Self::optional(p, proc, &op)
            {
                self.key(key).push(op);
            }
            let touched = self.touched.get(&p).cloned().unwrap_or_default();
            for key in touched {
                self.key(key).push(Self::drop_at(e, proc, p));
            }
            return Ok(());
        }
        if e.kind == OpType::Invoke {
            if let Some(prev) = self.pending.get(&p) {
                return Err(format!(
                    "process {p} invoked {} at event {} while its {} from event {} had not completed",
                    e.f.as_str(),
                    e.index,
                    prev.f.as_str(),
                    prev.index
                ));
            }
            let key = e.key.to_string();
            if e.f == FnRef::Acquire && self.failed_release.remove(&(p, key.clone())) {
                self.key(key.clone()).push(Self::drop_at(e, proc, p));
            }
            if matches!(e.f, FnRef::Acquire | FnRef::Release) {
                let t = self.touched.entry(p).or_default();
                if !t.contains(&key) {
                    t.push(key.clone());
                }
            }
            self.pending.insert(
                p,
                Pending {
                    f: F::from_name(e.f.as_str()),
                    key,
                    index: e.index,
                    time_ns: e.time_ns,
                },
            );
            return Ok(());
        }
        let Some(op) = self.pending.remove(&p) else {
            return Err(format!(
                "event {}: process {p} completed {} without an invoke",
                e.index,
                e.f.as_str()
            ));
        };
        if op.f.as_str() != e.f.as_str() {
            return Err(format!(
                "event {}: process {p} completed {} but had invoked {} at event {}",
                e.index,
                e.f.as_str(),
                op.f.as_str(),
                op.index
            ));
        }
        if e.f == FnRef::Release {
            if e.kind == OpType::Fail {
                self.failed_release.insert((p, op.key.clone()));
            } else {
                self.failed_release.remove(&(p, op.key.clone()));
            }
        }
        let kind = match (e.f, e.kind) {
            (_, OpType::Fail) => return Ok(()),
            (FnRef::Acquire | FnRef::Release, OpType::Info) => {
                if let Some((key, op)) = Self::optional(p, proc, &op) {
                    self.key(key).push(op);
                }
                return Ok(());
            }
            (FnRef::Acquire, _) => Kind::Acquire,
            (FnRef::Release, _) => {
                if e.was_held == Some(false) {
                    Kind::Drop
                } else {
                    Kind::Release
                }
            }
            _ => return Ok(()),
        };
        let key = op.key.clone();
        self.key(key).push(Op {
            kind,
            proc,
            call: op.time_ns,
            ret: e.time_ns.max(op.time_ns),
            optional: false,
            index: op.index,
            client: p,
        });
        Ok(())
    }

    /// The per-key operations, windows closed and hopeless ones pruned.
    pub(super) fn finish(mut self) -> BTreeMap<String, Vec<Op>> {
        let pending: Vec<(u64, Pending)> = self.pending.drain().collect();
        for (p, op) in pending {
            let proc = self.dense(p);
            if let Some((key, op)) = Self::optional(p, proc, &op) {
                self.key(key).push(op);
            }
        }
        for ops in self.keys.values_mut() {
            close_windows_and_prune(ops);
        }
        self.keys
    }
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
