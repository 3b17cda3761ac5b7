//! Ownership: a release that succeeds for a process that does not hold the
//! lock is a violation.
//!
//! A process holds a key from its `acquire` `ok` to its release; a lock
//! may be reentrant, so each `ok` counts and each release takes one back.
//! A release that is not certainly unowned passes: one after an `acquire`
//! that ended `info` (it may have been granted), after a `release` that
//! ended `info` (it may not have happened), or after a `fail`ed release
//! (which did not happen, so the process still holds).

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::compose::{Cx, Done, Step, StreamCheck};
use super::mutex::{HoldTracker, Keys};
use crate::history::{OpType, Process};

/// How many witnesses the report carries; the count covers them all.
const MAX_WITNESSES: usize = 20;

/// A release that succeeded (`ok`, `was_held` not false) for a process that
/// did not hold the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipViolation {
    /// The key.
    pub key: String,
    /// Who released.
    pub process: Process,
    /// Index of the release's `ok`.
    pub index: u64,
    /// Its time.
    pub time_ns: u64,
    /// Who held the key then, if anybody.
    pub holder: Option<Process>,
}

/// The ownership check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipReport {
    /// Valid, invalid, unknown.
    pub verdict: Verdict,
    /// How many such releases.
    pub violations: u64,
    /// The first few.
    pub witnesses: Vec<OwnershipViolation>,
    /// Why the verdict is `unknown` (the checker crashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Default for OwnershipReport {
    fn default() -> Self {
        OwnershipReport {
            verdict: Verdict::Unknown,
            violations: 0,
            witnesses: Vec::new(),
            reason: None,
        }
    }
}

/// What one process has of one key.
#[derive(Debug, Default, Clone, Copy)]
struct Own {
    /// Acquisitions not released yet (reentrant locks count).
    count: u32,
    /// It may hold the key: an `info` acquire or release left it unknown.
    maybe: bool,
}

/// The ownership check, fed one completion at a time.
#[derive(Debug, Default)]
pub(crate) struct OwnershipState {
    held: FxHashMap<(u64, u32), Own>,
    violations: u64,
    witnesses: Vec<(u32, OwnershipViolation)>,
}

impl OwnershipState {
    /// An acquire of `key` by `p` completed.
    pub(crate) fn acquire(&mut self, p: u64, key: u32, kind: OpType) {
        match kind {
            OpType::Ok => self.held.entry((p, key)).or_default().count += 1,
            OpType::Info => self.held.entry((p, key)).or_default().maybe = true,
            _ => {}
        }
    }

    /// A release of `key` by `p` completed (`e` is its completion).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn release(
        &mut self,
        p: u64,
        key: u32,
        kind: OpType,
        was_held: Option<bool>,
        index: u64,
        time_ns: u64,
        tracker: Option<&HoldTracker>,
    ) {
        match kind {
            OpType::Ok if was_held == Some(false) => {
                // The service says the lock was no longer ours: an honest
                // answer, and nothing is held any more.
                self.held.remove(&(p, key));
            }
            OpType::Ok => {
                let own = self.held.entry((p, key)).or_default();
                if own.count > 0 {
                    own.count -= 1;
                } else if own.maybe {
                    own.maybe = false;
                } else {
                    self.violations += 1;
                    if self.witnesses.len() < MAX_WITNESSES {
                        self.witnesses.push((
                            key,
                            OwnershipViolation {
                                key: String::new(),
                                process: Process::Client(p),
                                index,
                                time_ns,
                                holder: tracker.and_then(|t| t.other_holder(p, key)),
                            },
                        ));
                    }
                }
                if own.count == 0 && !own.maybe {
                    self.held.remove(&(p, key));
                }
            }
            OpType::Info => {
                // It may or may not have happened.
                let own = self.held.entry((p, key)).or_default();
                own.count = own.count.saturating_sub(1);
                own.maybe = true;
            }
            _ => {}
        }
    }

    /// `p` crashed: it holds nothing any more.
    pub(crate) fn crash(&mut self, p: u64) {
        self.held.retain(|(q, _), _| *q != p);
    }

    /// The report; `consistent` is false when the history broke the
    /// structure rules (then the verdict is `unknown`).
    pub(crate) fn finish(self, keys: &Keys, consistent: bool) -> OwnershipReport {
        OwnershipReport {
            // A broken history cannot say who held what.
            verdict: match (consistent, self.violations) {
                (false, _) => Verdict::Unknown,
                (true, 0) => Verdict::Valid,
                (true, _) => Verdict::Invalid,
            },
            violations: self.violations,
            witnesses: self
                .witnesses
                .into_iter()
                .map(|(key, mut w)| {
                    w.key = keys.name(key).to_string();
                    w
                })
                .collect(),
            reason: None,
        }
    }
}

impl StreamCheck for OwnershipState {
    type Report = OwnershipReport;
    const NAME: &'static str = "ownership";

    fn step(&mut self, step: &Step<'_>, cx: &Cx<'_>) {
        match *step {
            Step::Crash { p, .. } => self.crash(p),
            Step::AcquireDone { p, key, kind, .. } => self.acquire(p, key, kind),
            Step::ReleaseDone {
                p,
                key,
                kind,
                was_held,
                index,
                time_ns,
            } => self.release(p, key, kind, was_held, index, time_ns, cx.tracker),
            _ => {}
        }
    }

    fn finish(self, done: &Done<'_>) -> OwnershipReport {
        OwnershipState::finish(self, done.keys, done.consistent)
    }

    fn crashed(reason: String) -> OwnershipReport {
        OwnershipReport {
            reason: Some(reason),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for OwnershipViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str("the lock")?;
        } else {
            write!(f, "key {:?}", self.key)?;
        }
        write!(
            f,
            ": process {} released it successfully at {:.6} s (event {}) without holding it",
            self.process,
            self.time_ns as f64 / 1e9,
            self.index
        )?;
        match self.holder {
            Some(h) => write!(f, " while process {h} held it"),
            None => write!(f, " while nobody held it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::{AnalysisOptions, FencingOutcome, Verdict, ViolationClass, analyze_events};
    use crate::history::{Event, F, OpType, Process};

    const MS: u64 = 1_000_000;

    fn c(ms: u64, p: u64, kind: OpType, f: F) -> Event {
        let mut e = Event::new(ms * MS, Process::Client(p), kind, f);
        e.key = Some("a".into());
        e
    }

    fn numbered(mut events: Vec<Event>) -> Vec<Event> {
        for (i, e) in events.iter_mut().enumerate() {
            e.index = i as u64;
        }
        events
    }

    #[test]
    fn reentrant_acquires_allow_as_many_releases_and_no_more() {
        use OpType::*;
        let mut h = vec![
            c(0, 1, Invoke, F::Acquire),
            c(1, 1, Ok, F::Acquire),
            c(2, 1, Invoke, F::Acquire),
            c(3, 1, Ok, F::Acquire),
            c(4, 1, Invoke, F::Release),
            c(5, 1, Ok, F::Release),
            c(6, 1, Invoke, F::Release),
            c(7, 1, Ok, F::Release),
        ];
        let a = analyze_events(&numbered(h.clone()), AnalysisOptions::default());
        assert_eq!(a.ownership.verdict, Verdict::Valid, "{:?}", a.ownership);
        h.push(c(8, 1, Invoke, F::Release));
        h.push(c(9, 1, Ok, F::Release));
        let a = analyze_events(&numbered(h), AnalysisOptions::default());
        assert_eq!(a.ownership.verdict, Verdict::Invalid);
        assert_eq!(a.ownership.violations, 1);
        let w = &a.ownership.witnesses[0];
        assert_eq!(
            (w.index, w.process, w.holder),
            (9, Process::Client(1), None)
        );
        assert_eq!(w.key, "a");
    }

    #[test]
    fn releases_after_unknown_outcomes_and_was_held_false_pass() {
        use OpType::*;
        let mut not_held = c(7, 2, Ok, F::Release);
        not_held.value = Some(serde_json::json!({ "was_held": false }));
        let h = numbered(vec![
            // An acquire that ended info may have been granted.
            c(0, 1, Invoke, F::Acquire),
            c(1, 1, Info, F::Acquire),
            c(2, 1, Invoke, F::Release),
            c(3, 1, Ok, F::Release),
            // A release that ended info may not have happened: retried.
            c(4, 2, Invoke, F::Acquire),
            c(5, 2, Ok, F::Acquire),
            c(5, 2, Invoke, F::Release),
            c(6, 2, Info, F::Release),
            c(6, 2, Invoke, F::Release),
            not_held,
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        assert_eq!(a.ownership.verdict, Verdict::Valid, "{:?}", a.ownership);
        assert_eq!(a.mutex.verdict, Verdict::Valid);
    }

    #[test]
    fn a_crashed_holder_holds_nothing_after() {
        use OpType::*;
        let h = numbered(vec![
            c(0, 1, Invoke, F::Acquire),
            c(1, 1, Ok, F::Acquire),
            c(2, 1, Info, F::Crash),
            c(3, 2, Invoke, F::Acquire),
            c(4, 2, Ok, F::Acquire),
            // Client 1's id comes back (a reused id), releasing: it holds
            // nothing since its crash.
            c(5, 1, Invoke, F::Release),
            c(6, 1, Ok, F::Release),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        assert_eq!(a.mutex.verdict, Verdict::Valid);
        assert_eq!(a.ownership.violations, 1);
        assert_eq!(a.ownership.witnesses[0].holder, Some(Process::Client(2)));
    }

    #[test]
    fn fences_must_grow_across_holders() {
        use OpType::*;
        let grant = |ms, p, fence| {
            let mut e = c(ms, p, Ok, F::Acquire);
            e.fence = Some(fence);
            e
        };
        let mut h = Vec::new();
        let mut t = 0;
        for (p, fence) in [(1, 1), (2, 2), (3, 2), (4, 1), (4, 1)] {
            h.push(c(t, p, Invoke, F::Acquire));
            h.push(grant(t + 1, p, fence));
            h.push(c(t + 2, p, Invoke, F::Release));
            h.push(c(t + 3, p, Ok, F::Release));
            t += 4;
        }
        let a = analyze_events(&numbered(h), AnalysisOptions::default());
        // 3 got 2 after 2 had it; 4 got 1 after 2; 4 again got 1 (< 2).
        assert_eq!(a.fencing.fence_regressions, 3, "{:?}", a.fencing);
        assert_eq!(a.fencing.outcome, FencingOutcome::NoFence);
        assert_eq!(a.fencing.verdict, Some(Verdict::Valid));
    }

    #[test]
    fn the_lease_is_counted_from_the_acquire_invoke_and_renewals() {
        use OpType::*;
        let acquire = |ms, p, kind| {
            let mut e = c(ms, p, kind, F::Acquire);
            e.lease_ms = Some(100);
            e
        };
        // Client 1's acquire was invoked at 0 and granted 100 ms: client 2
        // getting the lock at 99 ms is certainly within it; at 100 ms it
        // may have run out.
        for (at, class) in [
            (99, ViolationClass::LockLost),
            (100, ViolationClass::LeaseExpired),
        ] {
            let h = numbered(vec![
                acquire(0, 1, Invoke),
                acquire(10, 1, Ok),
                acquire(at - 1, 2, Invoke),
                acquire(at, 2, Ok),
            ]);
            let a = analyze_events(&h, AnalysisOptions::default());
            assert_eq!(a.mutex.witnesses[0].class, class, "at {at} ms");
            assert_eq!(a.mutex.classes.get(class.as_str()), Some(&1));
            assert!(a.mutex.witnesses[0].to_string().contains(class.as_str()));
        }
        // A renewal invoked at 50 ms carries the lease to 150 ms.
        let mut renew = c(50, 1, Invoke, F::Renew);
        renew.lease_ms = Some(100);
        let h = numbered(vec![
            acquire(0, 1, Invoke),
            acquire(10, 1, Ok),
            renew,
            c(51, 1, Ok, F::Renew),
            acquire(119, 2, Invoke),
            acquire(120, 2, Ok),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        assert_eq!(a.mutex.witnesses[0].class, ViolationClass::LockLost);
        // Without a lease the cause is unknown.
        let h = numbered(vec![
            c(0, 1, Invoke, F::Acquire),
            c(1, 1, Ok, F::Acquire),
            c(2, 2, Invoke, F::Acquire),
            c(3, 2, Ok, F::Acquire),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        assert_eq!(a.mutex.witnesses[0].class, ViolationClass::UnknownLease);
        assert_eq!(a.mutex.classes.get("unknown-lease"), Some(&1));
    }
}
