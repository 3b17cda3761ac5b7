//! Checkers: from a history to a verdict.
//!
//! As in Jepsen, a checker is a function of the history alone, and its
//! verdict has three values. A checker that panics gives `unknown`, never a
//! crashed run.

mod fencing;
pub mod linear;
mod liveness;
mod mutex;
mod ownership;

use serde::{Deserialize, Serialize};

pub use fencing::{FenceWitness, FencingOutcome, FencingReport};
pub use linear::{Budget, LinearResult, check_linearizable};
pub use liveness::{Deadlock, FaultRecovery, Liveness, Recovery};
pub use mutex::{
    Hold, HoldEnd, HoldTracker, Inconsistent, MutexChecker, ViolationClass, Witness, holds,
};
pub use ownership::{OwnershipReport, OwnershipViolation};

use std::path::Path;

use crate::error::Result;
use crate::history::{Event, StreamStats, stream_jsonl};

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
}

impl Verdict {
    /// The verdict's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }

    /// The exit code `lockbench check` gives for it (design.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 3,
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
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checker.check(events))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            CheckResult::unknown(checker.name(), format!("checker crashed: {msg}"))
        }
    }
}

/// Checks mutual exclusion of a history file, streaming it: memory grows
/// with the holds, not with the events. Malformed input is an error; a
/// checker crash or an inconsistent history is an `unknown` verdict.
pub fn check_file(path: &Path) -> Result<(CheckResult, StreamStats)> {
    let mut tracker = HoldTracker::new();
    let mut broken: Option<Inconsistent> = None;
    let stats = stream_jsonl(path, |e| {
        if broken.is_none()
            && let Err(why) = tracker.push(&e)
        {
            broken = Some(why);
        }
    })?;
    let checker = MutexChecker;
    let result = match broken {
        Some(why) => checker.inconsistent(why),
        None => {
            let holds = tracker.finish();
            match std::panic::catch_unwind(|| checker.check_holds(&holds)) {
                Ok(r) => r,
                Err(_) => CheckResult::unknown(checker.name(), "checker crashed"),
            }
        }
    };
    Ok((result, stats))
}

/// Everything the streaming pass over a history finds (issue 6): the
/// direct mutual-exclusion check with causes, ownership, fencing, liveness,
/// and the recovery measures around faults (issue 4).
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

/// Analyses a history file in one streaming pass.
/// SCAFFOLD: only the mutex part is real so far.
pub fn analyze_file(path: &Path, opts: AnalysisOptions) -> Result<(Analysis, StreamStats)> {
    let _ = opts;
    let (mutex, stats) = check_file(path)?;
    Ok((
        Analysis {
            mutex,
            ownership: OwnershipReport::default(),
            fencing: FencingReport::default(),
            liveness: Liveness::default(),
            recovery: Recovery::default(),
        },
        stats,
    ))
}
