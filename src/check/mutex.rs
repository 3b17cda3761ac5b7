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
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |ns: u64| ns as f64 / 1e9;
        let (a, b) = (&self.first, &self.second);
        write!(
            f,
            "key {:?}: process {} held it from {:.6} s (event {}{})",
            self.key,
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

/// The holds in a history, in the order they began, or why the history is
/// inconsistent (a completion without an invoke, two invokes in a row).
pub fn holds(events: &[Event]) -> Result<Vec<Hold>, Inconsistent> {
    struct Pending<'a> {
        invoke: &'a Event,
    }
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut open: HashMap<(u64, &str), Hold> = HashMap::new();
    let mut done = Vec::new();
    let mut order: Vec<&Event> = events.iter().collect();
    // File order is the contract; sorting by index only guards against files
    // that were concatenated or edited by hand.
    order.sort_by_key(|e| e.index);

    for e in order {
        let Process::Client(p) = e.process else {
            continue;
        };
        if e.f == F::Crash {
            // A release in flight at the crash never ended, so it did not
            // end in `fail`: the hold ended at its invoke.
            if let Some(Pending { invoke }) = pending.remove(&p)
                && invoke.f == F::Release
            {
                close_at_release(&mut open, &mut done, p, invoke.key_or_default(), invoke);
            }
            let keys: Vec<(u64, &str)> = open.keys().filter(|(q, _)| *q == p).copied().collect();
            for k in keys {
                if let Some(mut hold) = open.remove(&k) {
                    hold.end_ns = Some(e.time_ns.max(hold.start_ns));
                    hold.end_index = Some(e.index);
                    hold.end = HoldEnd::Crash;
                    done.push(hold);
                }
            }
            continue;
        }
        match e.kind {
            OpType::Invoke => {
                if let Some(prev) = pending.get(&p) {
                    return Err(Inconsistent(format!(
                        "process {p} invoked {} at event {} while its {} from event {} had not completed",
                        e.f.as_str(),
                        e.index,
                        prev.invoke.f.as_str(),
                        prev.invoke.index
                    )));
                }
                pending.insert(p, Pending { invoke: e });
            }
            OpType::Ok | OpType::Fail | OpType::Info => {
                let Some(Pending { invoke }) = pending.remove(&p) else {
                    return Err(Inconsistent(format!(
                        "event {}: process {p} completed {} without an invoke",
                        e.index,
                        e.f.as_str()
                    )));
                };
                if invoke.f != e.f {
                    return Err(Inconsistent(format!(
                        "event {}: process {p} completed {} but had invoked {} at event {}",
                        e.index,
                        e.f.as_str(),
                        invoke.f.as_str(),
                        invoke.index
                    )));
                }
                let key = invoke.key_or_default();
                match (&e.f, e.kind) {
                    (F::Acquire, OpType::Ok) => {
                        // A second acquire by the holder (reentrancy) keeps
                        // the first hold.
                        open.entry((p, key)).or_insert_with(|| Hold {
                            process: e.process,
                            key: key.to_string(),
                            start_ns: e.time_ns,
                            start_index: e.index,
                            end_ns: None,
                            end_index: None,
                            end: HoldEnd::EndOfHistory,
                            fence: e.fence.or(invoke.fence),
                            lease_ms: e.lease_ms.or(invoke.lease_ms),
                        });
                    }
                    (F::Release, OpType::Ok | OpType::Info) => {
                        close_at_release(&mut open, &mut done, p, key, invoke);
                    }
                    _ => {}
                }
            }
        }
    }
    // A release still in flight when the history ends may have happened.
    for (p, Pending { invoke }) in pending {
        if invoke.f == F::Release {
            close_at_release(&mut open, &mut done, p, invoke.key_or_default(), invoke);
        }
    }
    done.extend(open.into_values());
    done.sort_by_key(|h| (h.start_ns, h.start_index));
    Ok(done)
}

fn close_at_release<'a>(
    open: &mut HashMap<(u64, &'a str), Hold>,
    done: &mut Vec<Hold>,
    p: u64,
    key: &'a str,
    invoke: &Event,
) {
    if let Some(mut hold) = open.remove(&(p, key)) {
        hold.end_ns = Some(invoke.time_ns.max(hold.start_ns));
        hold.end_index = Some(invoke.index);
        hold.end = HoldEnd::Release;
        done.push(hold);
    }
}

/// The direct mutual-exclusion checker.
#[derive(Debug, Default, Clone, Copy)]
pub struct MutexChecker;

impl Checker for MutexChecker {
    fn name(&self) -> &'static str {
        "mutual-exclusion"
    }

    fn check(&self, events: &[Event]) -> CheckResult {
        let holds = match holds(events) {
            Ok(h) => h,
            Err(Inconsistent(why)) => {
                return CheckResult::unknown(self.name(), format!("inconsistent history: {why}"));
            }
        };
        let mut by_key: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
        for h in &holds {
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
