//! Checkers: from a history to a verdict.
//!
//! As in Jepsen, a checker is a function of the history alone, and its
//! verdict has three values. A checker that panics gives `unknown`, never a
//! crashed run.

mod compose;
mod fencing;
pub mod linear;
mod liveness;
mod mutex;
mod ownership;
pub mod uncertain;

use serde::{Deserialize, Serialize};

pub use fencing::{FenceWitness, FencingOutcome, FencingReport};
pub use linear::{Budget, LinearResult, check_linearizable, check_linearizable_file};
pub use liveness::{Deadlock, FaultRecovery, Liveness, Recovery};
pub use mutex::{
    Hold, HoldEnd, HoldSpan, HoldTracker, Incident, IncidentFault, Inconsistent, MutexChecker,
    ViolationClass, Witness, Writes, holds,
};
pub use ownership::{OwnershipReport, OwnershipViolation};

use rustc_hash::FxHashMap;
use std::path::Path;

use crate::error::Result;
use crate::history::{Event, EventRef, FnRef, OpType, Process, StreamStats, stream_refs};
use compose::{Cx, Done, Guarded, Step};

/// Valid, invalid, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The property held in this history.
    Valid,
    /// The property was violated; the result carries a witness.
    Invalid,
    /// The checker could not decide (inconsistent history, a crash, a budget).
    Unknown,
    /// Nothing was checked: the run recorded no history (`history =
    /// false`, as benchmarks run). Not a failure, and no expectation is
    /// judged against it.
    #[serde(rename = "not-checked")]
    NotChecked,
}

impl Verdict {
    /// The verdict's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
            Verdict::NotChecked => "not checked",
        }
    }

    /// The exit code `lockbench check` gives for it (docs/design.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown | Verdict::NotChecked => 3,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The checker's name.
    pub checker: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// How many violations it counted (overlapping pairs of holds, for mutex).
    pub violations: u64,
    /// The first few violations, each with the events that prove it.
    pub witnesses: Vec<Witness>,
    /// Why the verdict is `unknown`, or notes on a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Violations counted by cause (`lease-expired`, `lock-lost`,
    /// `unknown-lease`), over all of them, not only the witnesses.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub classes: std::collections::BTreeMap<String, u64>,
    /// The violations grouped by the hold others overlapped (a reading
    /// aid: one sentence each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
}

impl CheckResult {
    /// An `unknown` result with its reason.
    pub fn unknown(checker: &str, reason: impl Into<String>) -> Self {
        CheckResult {
            checker: checker.to_string(),
            verdict: Verdict::Unknown,
            violations: 0,
            witnesses: Vec::new(),
            reason: Some(reason.into()),
            classes: Default::default(),
            incidents: Vec::new(),
        }
    }
}

/// A property checked over a history.
pub trait Checker {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// Checks the history (events in file order).
    fn check(&self, events: &[Event]) -> CheckResult;
}

/// Runs a checker, turning a panic into an `unknown` verdict.
pub fn run_checker(checker: &dyn Checker, events: &[Event]) -> CheckResult {
    check_safe(checker.name(), || checker.check(events))
}

/// The one place a checker's panic becomes an `unknown` verdict (Jepsen's
/// `check-safe`): the run goes on, and the report says why.
fn check_safe(name: &str, check: impl FnOnce() -> CheckResult) -> CheckResult {
    compose::guard(check).unwrap_or_else(|crash| CheckResult::unknown(name, crash))
}

/// Checks mutual exclusion of a history file, streaming it: memory grows
/// with the holds, not with the events. Malformed input is an error; a
/// checker crash or an inconsistent history is an `unknown` verdict. The
/// mutual-exclusion part of [`analyze_file`].
pub fn check_file(path: &Path) -> Result<(CheckResult, StreamStats)> {
    let (analysis, stats) = analyze_file(path, AnalysisOptions::default())?;
    Ok((analysis.mutex, stats))
}

/// Everything the streaming pass over a history finds: the
/// direct mutual-exclusion check with causes, ownership, fencing, liveness,
/// and the recovery measures around faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Mutual exclusion, with witnesses and their classes.
    pub mutex: CheckResult,
    /// Releases by non-holders.
    pub ownership: OwnershipReport,
    /// Fencing tokens at the protected resource.
    pub fencing: FencingReport,
    /// Deadlock, starvation, fairness, longest wait.
    pub liveness: Liveness,
    /// Recovery after faults.
    pub recovery: Recovery,
}

impl Analysis {
    /// The run's verdict: mutual exclusion and ownership together (an
    /// `unknown` in either wins over `valid`, an `invalid` wins over all).
    pub fn verdict(&self) -> Verdict {
        match (self.mutex.verdict, self.ownership.verdict) {
            (Verdict::Invalid, _) | (_, Verdict::Invalid) => Verdict::Invalid,
            (Verdict::Valid, Verdict::Valid) => Verdict::Valid,
            _ => Verdict::Unknown,
        }
    }
}

/// Options of the analysis.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalysisOptions {
    /// The longest a lock may stay unheld while clients wait, with no fault
    /// active, before it counts as a deadlock (the scenario's lease plus
    /// slack). `None`: from the largest `lease_ms` in the history.
    pub deadlock_bound: Option<std::time::Duration>,
}

/// Analyses a history file in one streaming pass: memory grows with the
/// holds, keys, clients and faults, not with the events. Malformed input is
/// an error; an inconsistent history gives `unknown` verdicts.
pub fn analyze_file(path: &Path, opts: AnalysisOptions) -> Result<(Analysis, StreamStats)> {
    let mut analyzer = Analyzer::new(opts);
    let stats = stream_refs(path, |e| analyzer.push(e))?;
    Ok((analyzer.finish(), stats))
}

/// What [`stream_holds`] found besides the holds.
#[derive(Debug, Clone, Default)]
pub struct HeldKeys {
    /// Every client key, by the number a [`HoldSpan`] names it with.
    pub names: Vec<String>,
    /// The largest event time in the history.
    pub end_ns: u64,
}

/// Streams the holds of a history file to `each` as they end, then those
/// that lasted to its end, in memory that grows with the clients and keys,
/// not with the history's length. The inner error says why the history is
/// inconsistent (the holds given before it stand); the outer one, why it
/// could not be read.
pub fn stream_holds(
    path: &Path,
    mut each: impl FnMut(HoldSpan),
) -> Result<std::result::Result<HeldKeys, Inconsistent>> {
    let mut tracker = HoldTracker::new();
    let mut broken = None;
    let mut end_ns = 0u64;
    stream_refs(path, |e| {
        end_ns = end_ns.max(e.time_ns);
        if broken.is_some() || !matches!(e.process, Process::Client(_)) {
            return;
        }
        let key = tracker.keys_mut().id(e.key);
        if let Err(why) = tracker.push_ev(e, key) {
            broken = Some(why);
            return;
        }
        tracker.drain_closed().for_each(|r| each(r.span()));
    })?;
    if let Some(why) = broken {
        return Ok(Err(why));
    }
    tracker.drain_closed().for_each(|r| each(r.span()));
    let (rest, keys) = tracker.finish_recs();
    rest.iter().for_each(|r| each(r.span()));
    Ok(Ok(HeldKeys {
        names: keys.into_names(),
        end_ns,
    }))
}

/// [`analyze_file`] over events already in memory (an EDN history, say),
/// taken in index order.
pub fn analyze_events(events: &[Event], opts: AnalysisOptions) -> Analysis {
    let mut analyzer = Analyzer::new(opts);
    for e in mutex::in_index_order(events) {
        analyzer.push(&EventRef::of(e));
    }
    analyzer.finish()
}

/// Names, for each incident, the faults that were active at some time
/// during its hold.
fn attach_faults(incidents: &mut [Incident], faults: &[FaultRecovery]) {
    for inc in incidents {
        let (from, to) = (inc.holder.start_ns, inc.holder.end_ns.unwrap_or(u64::MAX));
        inc.faults = faults
            .iter()
            .filter(|f| f.start_ns.unwrap_or(0) < to && f.end_ns > from)
            .map(|f| IncidentFault {
                fault: f.started_as.clone().unwrap_or_else(|| f.fault.clone()),
                targets: f.targets.clone(),
                start_ns: f.start_ns,
                end_ns: f.end_ns,
            })
            .collect();
    }
}

/// A client's operation between its invoke and its completion.
#[derive(Debug, Clone, Copy)]
struct Open<'k> {
    f: FnRef<'k>,
    key: u32,
    time_ns: u64,
    fence: Option<u64>,
}

/// The one pass: the mutex checker's holds, and every other checker
/// composed over the steps decoded from the events, in file order.
struct Analyzer {
    tracker: HoldTracker,
    broken: Option<Inconsistent>,
    /// Why the mutex checker stopped (it panicked), if it did.
    mutex_crash: Option<String>,
    /// The failpoint's checker, read once.
    failpoint: Option<String>,
    /// Each client's operation in flight (its `f` kept only for client
    /// functions, which borrow nothing).
    pending: FxHashMap<u64, Open<'static>>,
    ownership: Guarded<ownership::OwnershipState>,
    fencing: Guarded<fencing::FencingState>,
    liveness: Guarded<liveness::LivenessState>,
    /// A nemesis `invoke` whose completion repeats it.
    nemesis_pending: Option<String>,
}

impl Analyzer {
    fn new(opts: AnalysisOptions) -> Self {
        let failpoint = compose::failpoint();
        let fp = failpoint.as_deref();
        Analyzer {
            tracker: HoldTracker::new(),
            broken: None,
            mutex_crash: None,
            pending: FxHashMap::default(),
            ownership: Guarded::new(Default::default(), fp),
            fencing: Guarded::new(Default::default(), fp),
            liveness: Guarded::new(liveness::LivenessState::new(opts.deadlock_bound), fp),
            nemesis_pending: None,
            failpoint,
        }
    }

    /// Hands a step to every composed checker.
    fn step(&mut self, step: Step<'_>) {
        let cx = Cx {
            tracker: self.mutex_crash.is_none().then_some(&self.tracker),
        };
        self.ownership.step(&step, &cx);
        self.fencing.step(&step, &cx);
        self.liveness.step(&step, &cx);
    }

    /// The mutex checker's step: its holds, guarded like the others.
    fn track(&mut self, e: &EventRef<'_>, key: u32) {
        if self.broken.is_some() || self.mutex_crash.is_some() {
            return;
        }
        let name = MutexChecker.name();
        let fail = self.failpoint.as_deref() == Some(name);
        let tracker = &mut self.tracker;
        match compose::guard(|| {
            compose::trip(fail, name);
            tracker.push_ev(e, key)
        }) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => self.broken = Some(why),
            Err(crash) => self.mutex_crash = Some(crash),
        }
    }

    fn push(&mut self, e: &EventRef<'_>) {
        self.step(Step::Tick {
            time_ns: e.time_ns,
            lease_ms: e.lease_ms,
        });
        let p = match e.process {
            Process::Client(p) => p,
            Process::Nemesis => {
                let name = e.f.as_str();
                if e.kind != OpType::Invoke && self.nemesis_pending.as_deref() == Some(name) {
                    // The completion of a fault already counted at its invoke.
                    self.nemesis_pending = None;
                    return;
                }
                if e.kind == OpType::Invoke {
                    self.nemesis_pending = Some(name.to_string());
                }
                self.step(Step::Nemesis {
                    name,
                    mark: e.mark.as_ref(),
                    targets: &e.targets,
                    time_ns: e.time_ns,
                });
                return;
            }
        };
        let key = self.tracker.keys_mut().id(e.key);
        self.track(e, key);
        let time_ns = e.time_ns;
        if e.f == FnRef::Lost {
            // The client let the key go; the service may still hold it
            // (ownership goes on as before), but no client acts as holder.
            self.step(Step::Lost { p, key, time_ns });
            return;
        }
        if e.f == FnRef::Crash {
            let op = self.pending.remove(&p);
            let waiting_for = op.filter(|o| o.f == FnRef::Acquire).map(|o| o.key);
            self.step(Step::Crash {
                p,
                waiting_for,
                time_ns,
            });
            return;
        }
        if e.kind == OpType::Invoke {
            self.invoked(p, key, e);
            return;
        }
        let Some(op) = self.pending.remove(&p) else {
            return;
        };
        if e.kind == OpType::Info {
            self.step(Step::Info);
        }
        let step = match op.f {
            FnRef::Acquire => Step::AcquireDone {
                p,
                key: op.key,
                kind: e.kind,
                invoked_ns: op.time_ns,
                time_ns,
                fence: e.fence.or(op.fence),
            },
            FnRef::Release => Step::ReleaseDone {
                p,
                key: op.key,
                kind: e.kind,
                was_held: e.was_held,
                index: e.index,
                time_ns,
            },
            FnRef::Write if e.kind == OpType::Ok => Step::WriteDone {
                p,
                key: op.key,
                fence: e.fence.or(op.fence),
                accepted: e.accepted,
                index: e.index,
                time_ns,
            },
            _ => return,
        };
        self.step(step);
    }

    /// Client `p` invoked an operation on `key`.
    fn invoked(&mut self, p: u64, key: u32, e: &EventRef<'_>) {
        let f = match e.f {
            FnRef::Acquire => FnRef::Acquire,
            FnRef::Release => FnRef::Release,
            FnRef::Renew => FnRef::Renew,
            FnRef::Write => FnRef::Write,
            _ => FnRef::Crash,
        };
        let time_ns = e.time_ns;
        if f == FnRef::Acquire {
            self.step(Step::AcquireInvoked { p, key, time_ns });
        }
        let open = Open {
            f,
            key,
            time_ns,
            fence: e.fence,
        };
        if let Some(old) = self.pending.insert(p, open)
            && old.f == FnRef::Acquire
        {
            // Two invokes in a row (an inconsistent history): the first
            // wait is over, whatever became of it.
            self.step(Step::AcquireAbandoned {
                p,
                key: old.key,
                time_ns,
            });
        }
    }

    fn finish(self) -> Analysis {
        let consistent = self.broken.is_none();
        let checker = MutexChecker;
        let (recs, keys) = self.tracker.finish_recs();
        let mut mutex = match (self.broken, self.mutex_crash) {
            (Some(why), _) => checker.inconsistent(why),
            (None, Some(crash)) => CheckResult::unknown(checker.name(), crash),
            (None, None) => check_safe(checker.name(), || checker.check_recs(&recs, &keys)),
        };
        let done = Done {
            keys: &keys,
            consistent,
            mutex: mutex.verdict,
        };
        let ownership = self.ownership.finish(&done);
        let fencing = self.fencing.finish(&done);
        let (liveness, recovery) = self.liveness.finish(&done);
        attach_faults(&mut mutex.incidents, &recovery.faults);
        Analysis {
            mutex,
            ownership,
            fencing,
            liveness,
            recovery,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyze_file_reads_a_cut_last_line_as_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(
            &path,
            "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}\n{\"index\":1,\"ti",
        )
        .unwrap();
        let (a, stats) = analyze_file(&path, AnalysisOptions::default()).unwrap();
        assert_eq!((stats.events, stats.truncated), (1, true));
        assert_eq!(a.mutex.verdict, Verdict::Valid);
        std::fs::write(&path, "{oops}\n{}\n").unwrap();
        let err = analyze_file(&path, AnalysisOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("h.jsonl:1"), "{err}");
    }

    /// The holds streamed from a file are the holds of its events, each
    /// once: with crashes, lost leases, failed releases and unknown
    /// outcomes.
    #[test]
    fn streamed_holds_are_the_holds_of_the_history() {
        use crate::history::synthetic::{SyntheticOptions, synthetic_history, to_jsonl};
        let dir = tempfile::tempdir().unwrap();
        for seed in 0..8u64 {
            let events = synthetic_history(seed, &SyntheticOptions::varied(seed, 400));
            let path = dir.path().join(format!("{seed}.jsonl"));
            std::fs::write(&path, to_jsonl(&events)).unwrap();
            let mut spans = Vec::new();
            let keys = stream_holds(&path, |h| spans.push(h)).unwrap().unwrap();
            spans.sort();
            let streamed: Vec<_> = spans
                .iter()
                .map(|h| {
                    let key = keys.names[h.key as usize].clone();
                    (h.start_ns, h.start_index, h.process, key, h.end_ns, h.fence)
                })
                .collect();
            let expected: Vec<_> = holds(&events)
                .unwrap()
                .into_iter()
                .map(|h| {
                    (
                        h.start_ns,
                        h.start_index,
                        h.process,
                        h.key,
                        h.end_ns,
                        h.fence,
                    )
                })
                .collect();
            assert!(!expected.is_empty(), "seed {seed}");
            assert_eq!(streamed, expected, "seed {seed}");
            assert_eq!(keys.end_ns, events.iter().map(|e| e.time_ns).max().unwrap());
        }
    }
}
