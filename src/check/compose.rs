//! Many checkers over one pass (Jepsen's `compose` and `check-safe`).
//!
//! The pass decodes each client event once into a [`Step`] (an acquire
//! granted, a release answered, a crash) and hands it to every checker in
//! turn. Each checker runs inside a [`Guarded`]: a panic in its `step` or
//! its `finish` ends that checker only, whose report then says `unknown`
//! with the panic's message, while the other checkers and the run go on.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Verdict;
use super::mutex::{HoldTracker, Keys};
use crate::history::{FaultMark, OpType};

/// One client event, as the checkers see it: the pass has already paired
/// each completion with its invoke.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    /// Every event's time, first (with its lease, if it names one).
    Tick { time_ns: u64, lease_ms: Option<u64> },
    /// A nemesis event (`targets` as compact JSON), with the fault it
    /// starts or stops if it names one.
    Nemesis {
        name: &'a str,
        mark: Option<&'a FaultMark>,
        targets: &'a str,
        time_ns: u64,
    },
    /// Client `p` let `key` go (`lost`): it no longer acts as holder.
    Lost { p: u64, key: u32, time_ns: u64 },
    /// Client `p` crashed, with an acquire of `waiting_for` in flight or
    /// none.
    Crash {
        p: u64,
        waiting_for: Option<u32>,
        time_ns: u64,
    },
    /// Client `p` asked for `key`.
    AcquireInvoked { p: u64, key: u32, time_ns: u64 },
    /// Client `p` invoked again with an acquire of `key` still open (an
    /// inconsistent history): that wait is over.
    AcquireAbandoned { p: u64, key: u32, time_ns: u64 },
    /// Client `p`'s acquire of `key`, invoked at `invoked_ns`, completed.
    AcquireDone {
        p: u64,
        key: u32,
        kind: OpType,
        invoked_ns: u64,
        time_ns: u64,
        fence: Option<u64>,
    },
    /// Client `p`'s release of `key` completed.
    ReleaseDone {
        p: u64,
        key: u32,
        kind: OpType,
        was_held: Option<bool>,
        index: u64,
        time_ns: u64,
    },
    /// Client `p`'s write to `key`'s resource completed `ok`.
    WriteDone {
        p: u64,
        key: u32,
        fence: Option<u64>,
        accepted: Option<bool>,
        index: u64,
        time_ns: u64,
    },
    /// A client operation completed `info` (before its `…Done` step).
    Info,
}

/// What a checker may read of the pass besides the step: the holds the
/// mutex checker tracks (`None` when that checker crashed).
pub(crate) struct Cx<'a> {
    pub tracker: Option<&'a HoldTracker>,
}

/// What a checker's `finish` may read: the keys by number, whether the
/// history kept the structure rules, and the mutex checker's verdict.
pub(crate) struct Done<'a> {
    pub keys: &'a Keys,
    pub consistent: bool,
    pub mutex: Verdict,
}

/// A property checked in one streaming pass over the history.
pub(crate) trait StreamCheck {
    /// The checker's result.
    type Report;
    /// Its name, in reports and in `LOCKBENCH_FAILPOINT`.
    const NAME: &'static str;
    /// Takes one step of the history.
    fn step(&mut self, step: &Step<'_>, cx: &Cx<'_>);
    /// The result, after the last step.
    fn finish(self, done: &Done<'_>) -> Self::Report;
    /// The result of a checker that crashed: `unknown`, saying why.
    fn crashed(reason: String) -> Self::Report;
}

/// Runs `f`, turning a panic into its message.
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        format!("checker crashed: {msg}")
    })
}

/// The checker a failpoint makes panic, for tests of this module's promise
/// on whole runs: `LOCKBENCH_FAILPOINT=panic-checker:<name>` (`mutual-exclusion`,
/// `ownership`, `fencing`, `liveness`). Read once per pass.
pub(crate) fn failpoint() -> Option<String> {
    std::env::var("LOCKBENCH_FAILPOINT")
        .ok()?
        .strip_prefix("panic-checker:")
        .map(str::to_string)
}

/// Panics as the failpoint asks, if it asks it of checker `name`.
pub(crate) fn trip(fail: bool, name: &str) {
    if fail {
        panic!("LOCKBENCH_FAILPOINT made the {name} checker panic");
    }
}

/// A checker inside the pass: after a panic it takes no more steps, and
/// its report is `unknown` with the panic's message.
pub(crate) struct Guarded<C> {
    state: Result<C, String>,
    /// Panic at the first step (the failpoint).
    fail: bool,
}

impl<C: StreamCheck> Guarded<C> {
    pub(crate) fn new(checker: C, failpoint: Option<&str>) -> Self {
        Guarded {
            state: Ok(checker),
            fail: failpoint == Some(C::NAME),
        }
    }

    pub(crate) fn step(&mut self, step: &Step<'_>, cx: &Cx<'_>) {
        let Ok(checker) = &mut self.state else {
            return;
        };
        let fail = self.fail;
        if let Err(why) = guard(|| {
            trip(fail, C::NAME);
            checker.step(step, cx)
        }) {
            self.state = Err(why);
        }
    }

    pub(crate) fn finish(self, done: &Done<'_>) -> C::Report {
        match self.state {
            Ok(checker) => guard(|| checker.finish(done)).unwrap_or_else(C::crashed),
            Err(why) => C::crashed(why),
        }
    }
}
