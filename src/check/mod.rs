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

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::history::{Event, OpType, Process, StreamStats, stream_jsonl};
use mutex::Ev;

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
            let (recs, keys) = tracker.finish_recs();
            match std::panic::catch_unwind(|| checker.check_recs(&recs, &keys)) {
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

/// Analyses a history file in one streaming pass: memory grows with the
/// holds, keys, clients and faults, not with the events. Malformed input is
/// an error; an inconsistent history gives `unknown` verdicts.
pub fn analyze_file(path: &Path, opts: AnalysisOptions) -> Result<(Analysis, StreamStats)> {
    let mut analyzer = Analyzer::new(opts);
    let stats = stream_jsonl_fast(path, |e| analyzer.push(e))?;
    Ok((analyzer.finish(), stats))
}

/// [`analyze_file`] over events already in memory (an EDN history, say),
/// taken in index order.
pub fn analyze_events(events: &[Event], opts: AnalysisOptions) -> Analysis {
    let mut analyzer = Analyzer::new(opts);
    for e in mutex::in_index_order(events) {
        analyzer.push(&Ev::of(e));
    }
    analyzer.finish()
}

/// A client's operation between its invoke and its completion.
#[derive(Debug, Clone, Copy)]
struct Open<'k> {
    f: mutex::Fn<'k>,
    key: u32,
    time_ns: u64,
    fence: Option<u64>,
}

/// The one pass: every checker's state, fed each event in file order.
struct Analyzer {
    tracker: HoldTracker,
    broken: Option<Inconsistent>,
    /// Each client's operation in flight (its `f` kept only for client
    /// functions, which borrow nothing).
    pending: HashMap<u64, Open<'static>>,
    ownership: ownership::OwnershipState,
    fencing: fencing::FencingState,
    liveness: liveness::LivenessState,
    /// A nemesis `invoke` whose completion repeats it.
    nemesis_pending: Option<String>,
}

impl Analyzer {
    fn new(opts: AnalysisOptions) -> Self {
        Analyzer {
            tracker: HoldTracker::new(),
            broken: None,
            pending: HashMap::new(),
            ownership: Default::default(),
            fencing: Default::default(),
            liveness: liveness::LivenessState::new(opts.deadlock_bound),
            nemesis_pending: None,
        }
    }

    fn push(&mut self, e: &Ev<'_>) {
        self.liveness.tick(e.time_ns, e.lease_ms);
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
                self.liveness.nemesis(name, &e.targets, e.time_ns);
                return;
            }
        };
        let key = self.tracker.keys_mut().id(e.key);
        if self.broken.is_none()
            && let Err(why) = self.tracker.push_ev(e, key)
        {
            self.broken = Some(why);
        }
        use mutex::Fn;
        if e.f == Fn::Crash {
            let op = self.pending.remove(&p);
            self.ownership.crash(p);
            let waiting = op.filter(|o| o.f == Fn::Acquire).map(|o| o.key);
            self.liveness.crashed(p, waiting, e.time_ns);
            return;
        }
        if e.kind == OpType::Invoke {
            let f = match e.f {
                Fn::Acquire => Fn::Acquire,
                Fn::Release => Fn::Release,
                Fn::Renew => Fn::Renew,
                Fn::Write => Fn::Write,
                _ => Fn::Crash,
            };
            if f == Fn::Acquire {
                self.liveness.acquire_invoked(p, key, e.time_ns);
            }
            if let Some(old) = self.pending.insert(
                p,
                Open {
                    f,
                    key,
                    time_ns: e.time_ns,
                    fence: e.fence,
                },
            ) && old.f == Fn::Acquire
            {
                // Two invokes in a row (an inconsistent history): the
                // first wait is over, whatever became of it.
                self.liveness.crashed(p, Some(old.key), e.time_ns);
            }
            return;
        }
        let Some(op) = self.pending.remove(&p) else {
            return;
        };
        if e.kind == OpType::Info {
            self.liveness.info_completion();
        }
        match op.f {
            Fn::Acquire => {
                let ok = e.kind == OpType::Ok;
                self.ownership.acquire(p, op.key, e.kind);
                if ok {
                    self.fencing
                        .granted(op.key, e.process, e.fence.or(op.fence));
                }
                self.liveness
                    .acquire_done(p, op.key, op.time_ns, e.time_ns, ok);
            }
            Fn::Release => {
                self.ownership.release(
                    p,
                    op.key,
                    e.kind,
                    e.was_held,
                    e.index,
                    e.time_ns,
                    &self.tracker,
                );
                if matches!(e.kind, OpType::Ok | OpType::Info) {
                    self.liveness.released(p, op.key, e.time_ns);
                }
            }
            Fn::Write if e.kind == OpType::Ok => {
                self.fencing.write(
                    op.key,
                    e.process,
                    e.fence.or(op.fence),
                    e.accepted,
                    e.index,
                    e.time_ns,
                );
            }
            _ => {}
        }
    }

    fn finish(self) -> Analysis {
        let consistent = self.broken.is_none();
        let checker = MutexChecker;
        let (recs, keys) = self.tracker.finish_recs();
        let mutex = match self.broken {
            Some(why) => checker.inconsistent(why),
            None => match std::panic::catch_unwind(|| checker.check_recs(&recs, &keys)) {
                Ok(r) => r,
                Err(_) => CheckResult::unknown(checker.name(), "checker crashed"),
            },
        };
        let ownership = self.ownership.finish(&keys, consistent);
        let fencing = self
            .fencing
            .finish(&keys, mutex.verdict == Verdict::Invalid);
        let (liveness, recovery) = self.liveness.finish(&keys);
        Analysis {
            mutex,
            ownership,
            fencing,
            liveness,
            recovery,
        }
    }
}

/// Streams a history file as borrowed events: each line is read by a
/// small hand-written parser that borrows from it (no allocation for the
/// usual event), and by serde into an [`Event`] when it holds anything the
/// fast parser does not take (escapes, unknown fields, odd values): serde
/// then accepts it or gives the error `stream_jsonl` would.
fn stream_jsonl_fast(path: &Path, mut each: impl FnMut(&Ev<'_>)) -> Result<StreamStats> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut stats = StreamStats::default();
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            return Ok(stats);
        }
        number += 1;
        let complete = line.ends_with('\n');
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(ev) = fast::parse(text) {
            stats.events += 1;
            each(&ev);
            continue;
        }
        match serde_json::from_str::<Event>(text) {
            Ok(event) => {
                stats.events += 1;
                each(&Ev::of(&event));
            }
            // As in `stream_jsonl`: a cut last line is the end of a killed run.
            Err(_) if !complete => {
                stats.truncated = true;
                return Ok(stats);
            }
            Err(e) => {
                return Err(Error::HistoryParse {
                    path: path.to_path_buf(),
                    line: number,
                    message: format!(
                        "{e}; each line must be one history v1 event, e.g. \
                         {{\"index\":0,\"time_ns\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}}"
                    ),
                });
            }
        }
    }
}

/// The fast, borrowing reader of one history v1 line. It returns `None`
/// for anything it is not sure of, and the caller falls back to serde.
mod fast {
    use super::mutex::{Ev, Fn};
    use crate::history::{OpType, Process};

    struct P<'a> {
        text: &'a str,
        s: &'a [u8],
        i: usize,
    }

    impl<'a> P<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.s.get(self.i) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// `null`, consumed.
        fn null(&mut self) -> bool {
            self.ws();
            if self.s[self.i..].starts_with(b"null") {
                self.i += 4;
                true
            } else {
                false
            }
        }

        /// A string without escapes, borrowed.
        fn plain_str(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let out = self.text.get(start..self.i)?;
            self.i += 1;
            Some(out)
        }

        /// Any string, skipped.
        fn skip_str(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => {
                        // Only JSON's escapes, as serde would insist.
                        match *self.s.get(self.i + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                            b'u' => {
                                let hex = self.s.get(self.i + 2..self.i + 6)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return None;
                                }
                                self.i += 6;
                            }
                            _ => return None,
                        }
                    }
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
        }

        fn u64(&mut self) -> Option<u64> {
            self.ws();
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(c @ b'0'..=b'9') = self.s.get(self.i).copied() {
                v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                self.i += 1;
            }
            let digits = self.i - start;
            if digits == 0 || (digits > 1 && self.s[start] == b'0') {
                return None;
            }
            match self.s.get(self.i) {
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(v),
            }
        }

        /// An object or array, skipped; its text (checked by serde later).
        fn compound(&mut self) -> Option<&'a str> {
            self.ws();
            let start = self.i;
            let mut depth = 0usize;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => {
                        self.skip_str()?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            self.i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                self.i += 1;
            }
            self.text.get(start..self.i)
        }
    }

    /// Reads `value` the way `Ev::of` does: the two flags, and the targets
    /// of a nemesis event.
    fn read_value(text: &str, nemesis: bool) -> Option<(Option<bool>, Option<bool>, String)> {
        match text {
            r#"{"accepted":true}"# => return Some((Some(true), None, String::new())),
            r#"{"accepted":false}"# => return Some((Some(false), None, String::new())),
            r#"{"was_held":false}"# => return Some((None, Some(false), String::new())),
            r#"{"was_held":true}"# => return Some((None, Some(true), String::new())),
            _ => {}
        }
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let flag = |name: &str| v.get(name).and_then(serde_json::Value::as_bool);
        let targets = if nemesis {
            v.get("targets").map(|t| t.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Some((flag("accepted"), flag("was_held"), targets))
    }

    /// One line, or `None` when serde must decide.
    pub(super) fn parse(text: &str) -> Option<Ev<'_>> {
        let mut p = P {
            text,
            s: text.as_bytes(),
            i: 0,
        };
        p.eat(b'{')?;
        let mut seen = 0u16;
        let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut key, mut fence, mut lease_ms, mut value) = (None, None, None, None);
        loop {
            let name = p.plain_str()?;
            p.eat(b':')?;
            let bit = match name {
                "index" => {
                    index = Some(p.u64()?);
                    1
                }
                "time_ns" => {
                    time_ns = Some(p.u64()?);
                    2
                }
                "process" => {
                    process = Some(if p.peek()? == b'"' {
                        (p.plain_str()? == "nemesis").then_some(Process::Nemesis)?
                    } else {
                        Process::Client(p.u64()?)
                    });
                    4
                }
                "type" => {
                    kind = Some(match p.plain_str()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return None,
                    });
                    8
                }
                "f" => {
                    f = Some(Fn::from_name(p.plain_str()?));
                    16
                }
                "key" => {
                    if !p.null() {
                        key = Some(p.plain_str()?);
                    }
                    32
                }
                "fence" => {
                    if !p.null() {
                        fence = Some(p.u64()?);
                    }
                    64
                }
                "lease_ms" => {
                    if !p.null() {
                        lease_ms = Some(p.u64()?);
                    }
                    128
                }
                "value" => {
                    if !p.null() {
                        value = Some(p.compound()?);
                    }
                    256
                }
                "error" => {
                    if !p.null() {
                        p.skip_str()?;
                    }
                    512
                }
                _ => return None,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        p.ws();
        if p.i != p.s.len() {
            return None;
        }
        let process = process?;
        let (accepted, was_held, targets) = match value {
            Some(v) => read_value(v, process == Process::Nemesis)?,
            None => (None, None, String::new()),
        };
        Some(Ev {
            index: index?,
            time_ns: time_ns?,
            process,
            kind: kind?,
            f: f?,
            key: key.unwrap_or(""),
            fence,
            lease_ms,
            accepted,
            was_held,
            targets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reader takes a line exactly as serde + `Ev::of` would, or
    /// leaves it to serde.
    #[test]
    fn the_fast_reader_agrees_with_serde() {
        let same = [
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","key":"lock","lease_ms":30}"#,
            r#"{"index":1,"time_ns":2,"process":1,"type":"ok","f":"acquire","key":"lock","fence":7,"lease_ms":30}"#,
            r#"{"index":2,"time_ns":3,"process":1,"type":"ok","f":"write","key":"k","fence":7,"value":{"accepted":false}}"#,
            r#"{"index":3,"time_ns":4,"process":1,"type":"ok","f":"release","key":"k","value":{"was_held":false}}"#,
            r#"{"index":4,"time_ns":5,"process":"nemesis","type":"info","f":"start-partition","value":{"targets":["h1", "h2"],"x":{"y":[1,2]}}}"#,
            r#" { "index" : 5 , "time_ns":6,"process":2,"type":"fail","f":"acquire","key":"ключ","error":"held \"by\" \u00e9 other"} "#,
            r#"{"index":6,"time_ns":7,"process":2,"type":"info","f":"crash","key":null,"fence":null,"value":null,"error":null}"#,
            r#"{"index":7,"time_ns":8,"process":2,"type":"ok","f":"write","value":{"accepted":true,"note":"]}"}}"#,
        ];
        for line in same {
            let event: Event = serde_json::from_str(line.trim()).unwrap();
            let slow = format!("{:?}", Ev::of(&event));
            let fast = fast::parse(line.trim()).map(|e| format!("{e:?}"));
            assert_eq!(fast.as_deref(), Some(slow.as_str()), "{line}");
        }
        let rejected = [
            r#"{"index":0,"time_ns":1,"process":"x","type":"invoke","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"maybe","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","extra":1}"#,
            r#"{"index":0,"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":0.5,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":-1,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":01,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","error":"bad \q"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"ok","f":"write","value":{"accepted":tru}}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire",}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire"} x"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acq"#,
        ];
        for line in rejected {
            assert!(fast::parse(line).is_none(), "fast reader took {line}");
            assert!(
                serde_json::from_str::<Event>(line).is_err(),
                "serde took {line}"
            );
        }
    }

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
}
