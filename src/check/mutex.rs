//! Mutual exclusion, by design.md's rule.
//!
//! A client holds a key from its `acquire` `ok` until the `invoke` of its next
//! `release` of that key that does not end in `fail`, its `crash`, or the end
//! of the history. Two holds of one key by different processes that overlap
//! in time are a violation. An `acquire` that ends `info` opens no hold, so it
//! can never alone prove a violation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::{CheckResult, Checker, Verdict};
use crate::history::{Event, F, OpType, Process};

/// How many witnesses a result carries; the count covers them all.
const MAX_WITNESSES: usize = 20;

/// Why a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldEnd {
    /// The holder invoked a release that did not fail.
    Release,
    /// The holder crashed.
    Crash,
    /// The history ended while it held.
    EndOfHistory,
}

/// One interval in which a process held a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// The holder.
    pub process: Process,
    /// The key held.
    pub key: String,
    /// Time of the `acquire` `ok`.
    pub start_ns: u64,
    /// Index of the `acquire` `ok` event.
    pub start_index: u64,
    /// Time the hold ended; `None` if it lasted to the end of the history.
    pub end_ns: Option<u64>,
    /// Index of the event that ended it (release invoke or crash).
    pub end_index: Option<u64>,
    /// What ended it.
    pub end: HoldEnd,
    /// The fencing token the acquire returned.
    pub fence: Option<u64>,
    /// The lease granted, in ms.
    pub lease_ms: Option<u64>,
}

impl Hold {
    fn end_or_max(&self) -> u64 {
        self.end_ns.unwrap_or(u64::MAX)
    }
}

/// Proof of a violation: two holds of one key by different processes that
/// overlap in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Witness {
    /// The key.
    pub key: String,
    /// The hold that began first.
    pub first: Hold,
    /// The hold that began while `first` was still held.
    pub second: Hold,
    /// When both held (the second's start).
    pub overlap_start_ns: u64,
    /// When the overlap ended (`None`: both held to the end of the history).
    pub overlap_end_ns: Option<u64>,
    /// Why exclusion broke, as far as the history tells.
    #[serde(default)]
    pub class: ViolationClass,
}

/// The cause of a violation (issue 6): read from the earlier hold's lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationClass {
    /// The earlier holder held past the lease it was granted (a slow or
    /// paused client): the lock service freed the lock as designed.
    LeaseExpired,
    /// The overlap began while the earlier holder's lease was still valid:
    /// the service lost the lock (failover, restart, clock).
    LockLost,
    /// The backend grants no lease, so the history cannot tell.
    #[default]
    UnknownLease,
}

impl ViolationClass {
    /// Its name in reports and summary.json.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationClass::LeaseExpired => "lease-expired",
            ViolationClass::LockLost => "lock-lost",
            ViolationClass::UnknownLease => "unknown-lease",
        }
    }
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |ns: u64| ns as f64 / 1e9;
        let (a, b) = (&self.first, &self.second);
        if self.key.is_empty() {
            f.write_str("the lock")?;
        } else {
            write!(f, "key {:?}", self.key)?;
        }
        write!(
            f,
            ": process {} held it from {:.6} s (event {}{})",
            a.process,
            secs(a.start_ns),
            a.start_index,
            fence_note(a.fence)
        )?;
        match (a.end_ns, a.end_index) {
            (Some(end), Some(idx)) => write!(
                f,
                " to {:.6} s ({} at event {})",
                secs(end),
                match a.end {
                    HoldEnd::Release => "release invoked",
                    HoldEnd::Crash => "crashed",
                    HoldEnd::EndOfHistory => "end",
                },
                idx
            )?,
            _ => write!(f, " to the end of the history")?,
        }
        write!(
            f,
            "; process {} acquired it at {:.6} s (event {}{}) while {} still held it",
            b.process,
            secs(b.start_ns),
            b.start_index,
            fence_note(b.fence),
            a.process
        )?;
        match self.overlap_end_ns {
            Some(end) => write!(
                f,
                ": both held it for {:.3} ms",
                (end - self.overlap_start_ns) as f64 / 1e6
            ),
            None => write!(f, ": both held it to the end of the history"),
        }
    }
}

fn fence_note(fence: Option<u64>) -> String {
    fence.map(|t| format!(", fence {t}")).unwrap_or_default()
}

/// Error for a history that breaks design.md's structure rules.
#[derive(Debug)]
pub struct Inconsistent(pub String);

/// An invoke still waiting for its completion: only what the rule needs.
#[derive(Debug)]
struct PendingOp {
    f: F,
    key: String,
    index: u64,
    time_ns: u64,
    fence: Option<u64>,
    lease_ms: Option<u64>,
}

/// Builds holds from events fed one at a time, in file order, so a history
/// of any length is checked in memory proportional to its open holds.
#[derive(Debug, Default)]
pub struct HoldTracker {
    /// Each process's invoke that has not completed yet.
    pending: HashMap<u64, PendingOp>,
    /// Holds not ended yet, by (process, key).
    open: HashMap<(u64, String), Hold>,
    /// Holds that ended.
    done: Vec<Hold>,
}

impl HoldTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next event, or says why the history is inconsistent (a
    /// completion without an invoke, two invokes in a row).
    pub fn push(&mut self, e: &Event) -> Result<(), Inconsistent> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        if e.f == F::Crash {
            // A release in flight at the crash never ended, so it did not
            // end in `fail`: the hold ended at its invoke.
            if let Some(op) = self.pending.remove(&p)
                && op.f == F::Release
            {
                self.close_at_release(p, &op);
            }
            let keys: Vec<(u64, String)> =
                self.open.keys().filter(|(q, _)| *q == p).cloned().collect();
            for k in keys {
                if let Some(mut hold) = self.open.remove(&k) {
                    hold.end_ns = Some(e.time_ns.max(hold.start_ns));
                    hold.end_index = Some(e.index);
                    hold.end = HoldEnd::Crash;
                    self.done.push(hold);
                }
            }
            return Ok(());
        }
        if e.kind == OpType::Invoke {
            if let Some(prev) = self.pending.get(&p) {
                return Err(Inconsistent(format!(
                    "process {p} invoked {} at event {} while its {} from event {} had not completed",
                    e.f.as_str(),
                    e.index,
                    prev.f.as_str(),
                    prev.index
                )));
            }
            self.pending.insert(
                p,
                PendingOp {
                    f: e.f.clone(),
                    key: e.key_or_default().to_string(),
                    index: e.index,
                    time_ns: e.time_ns,
                    fence: e.fence,
                    lease_ms: e.lease_ms,
                },
            );
            return Ok(());
        }
        let Some(op) = self.pending.remove(&p) else {
            return Err(Inconsistent(format!(
                "event {}: process {p} completed {} without an invoke",
                e.index,
                e.f.as_str()
            )));
        };
        if op.f != e.f {
            return Err(Inconsistent(format!(
                "event {}: process {p} completed {} but had invoked {} at event {}",
                e.index,
                e.f.as_str(),
                op.f.as_str(),
                op.index
            )));
        }
        match (&e.f, e.kind) {
            (F::Acquire, OpType::Ok) => {
                // A second acquire by the holder (reentrancy) keeps the
                // first hold.
                let key = op.key;
                self.open.entry((p, key.clone())).or_insert_with(|| Hold {
                    process: e.process,
                    key,
                    start_ns: e.time_ns,
                    start_index: e.index,
                    end_ns: None,
                    end_index: None,
                    end: HoldEnd::EndOfHistory,
                    fence: e.fence.or(op.fence),
                    lease_ms: e.lease_ms.or(op.lease_ms),
                });
            }
            (F::Release, OpType::Ok | OpType::Info) => self.close_at_release(p, &op),
            _ => {}
        }
        Ok(())
    }

    fn close_at_release(&mut self, p: u64, op: &PendingOp) {
        if let Some(mut hold) = self.open.remove(&(p, op.key.clone())) {
            hold.end_ns = Some(op.time_ns.max(hold.start_ns));
            hold.end_index = Some(op.index);
            hold.end = HoldEnd::Release;
            self.done.push(hold);
        }
    }

    /// Ends the history: every hold, in the order they began.
    pub fn finish(mut self) -> Vec<Hold> {
        // A release still in flight when the history ends may have happened.
        let pending: Vec<(u64, PendingOp)> = self.pending.drain().collect();
        for (p, op) in pending {
            if op.f == F::Release {
                self.close_at_release(p, &op);
            }
        }
        let mut done = self.done;
        done.extend(self.open.into_values());
        done.sort_by_key(|h| (h.start_ns, h.start_index));
        done
    }
}

/// The holds in a history, in the order they began, or why the history is
/// inconsistent.
pub fn holds(events: &[Event]) -> Result<Vec<Hold>, Inconsistent> {
    let mut order: Vec<&Event> = events.iter().collect();
    // File order is the contract; sorting by index only guards against
    // events handed over out of order.
    order.sort_by_key(|e| e.index);
    let mut tracker = HoldTracker::new();
    for e in order {
        tracker.push(e)?;
    }
    Ok(tracker.finish())
}

/// The direct mutual-exclusion checker.
#[derive(Debug, Default, Clone, Copy)]
pub struct MutexChecker;

impl Checker for MutexChecker {
    fn name(&self) -> &'static str {
        "mutual-exclusion"
    }

    fn check(&self, events: &[Event]) -> CheckResult {
        match holds(events) {
            Ok(h) => self.check_holds(&h),
            Err(why) => self.inconsistent(why),
        }
    }
}

impl MutexChecker {
    /// The verdict for a history whose structure is broken.
    pub fn inconsistent(&self, Inconsistent(why): Inconsistent) -> CheckResult {
        CheckResult::unknown(self.name(), format!("inconsistent history: {why}"))
    }

    /// The verdict over holds, however they were gathered.
    pub fn check_holds(&self, holds: &[Hold]) -> CheckResult {
        let mut by_key: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
        for h in holds {
            by_key.entry(h.key.as_str()).or_default().push(h);
        }
        let mut violations = 0u64;
        let mut witnesses = Vec::new();
        for (key, holds) in by_key {
            // Holds arrive sorted by start. `active` keeps those not yet
            // ended, smallest end first, so each is popped once.
            let mut active: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
            for (i, h) in holds.iter().enumerate() {
                while let Some(Reverse((end, _))) = active.peek() {
                    if *end <= h.start_ns {
                        active.pop();
                    } else {
                        break;
                    }
                }
                for Reverse((_, j)) in active.iter() {
                    let a = holds[*j];
                    // Half-open intervals [start, end): touching is a hand-off.
                    if a.process == h.process || a.start_ns >= h.end_or_max() {
                        continue;
                    }
                    violations += 1;
                    if witnesses.len() < MAX_WITNESSES {
                        let end = a.end_or_max().min(h.end_or_max());
                        witnesses.push(Witness {
                            key: key.to_string(),
                            first: a.clone(),
                            second: (*h).clone(),
                            overlap_start_ns: h.start_ns,
                            overlap_end_ns: (end != u64::MAX).then_some(end),
                            class: ViolationClass::UnknownLease,
                        });
                    }
                }
                active.push(Reverse((h.end_or_max(), i)));
            }
        }
        witnesses.sort_by_key(|w| (w.overlap_start_ns, w.first.start_index));
        CheckResult {
            checker: self.name().to_string(),
            verdict: if violations == 0 {
                Verdict::Valid
            } else {
                Verdict::Invalid
            },
            violations,
            witnesses,
            reason: None,
            classes: Default::default(),
        }
    }
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
    fn a_clean_hand_off_is_valid() {
        let h = vec![
            ev(0, 0, 1, OpType::Invoke, F::Acquire),
            ev(1, 1, 1, OpType::Ok, F::Acquire),
            ev(2, 2, 2, OpType::Invoke, F::Acquire),
            ev(3, 5, 1, OpType::Invoke, F::Release),
            ev(4, 6, 2, OpType::Ok, F::Acquire),
            ev(5, 7, 1, OpType::Ok, F::Release),
        ];
        let r = MutexChecker.check(&h);
        assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    }

    #[test]
    fn acquiring_before_the_release_is_invoked_is_a_violation() {
        let h = vec![
            ev(0, 0, 1, OpType::Invoke, F::Acquire),
            ev(1, 1, 1, OpType::Ok, F::Acquire),
            ev(2, 2, 2, OpType::Invoke, F::Acquire),
            ev(3, 4, 2, OpType::Ok, F::Acquire),
            ev(4, 5, 1, OpType::Invoke, F::Release),
            ev(5, 7, 1, OpType::Ok, F::Release),
        ];
        let r = MutexChecker.check(&h);
        assert_eq!(r.verdict, Verdict::Invalid);
        assert_eq!(r.violations, 1);
        let w = &r.witnesses[0];
        assert_eq!((w.overlap_start_ns, w.overlap_end_ns), (4, Some(5)));
        assert_eq!(w.first.process, Process::Client(1));
    }

    #[test]
    fn a_completion_without_invoke_is_unknown() {
        let h = vec![ev(0, 0, 1, OpType::Ok, F::Acquire)];
        assert_eq!(MutexChecker.check(&h).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_panicking_checker_gives_unknown() {
        struct Boom;
        impl Checker for Boom {
            fn name(&self) -> &'static str {
                "boom"
            }
            fn check(&self, _: &[Event]) -> CheckResult {
                panic!("kaput")
            }
        }
        let r = super::super::run_checker(&Boom, &[]);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert!(r.reason.unwrap().contains("kaput"));
    }
}
