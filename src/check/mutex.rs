//! Mutual exclusion, by docs/design.md's rule.
//!
//! A client holds a key from its `acquire` `ok` until the `invoke` of its next
//! `release` of that key that does not end in `fail`, its `crash`, or the end
//! of the history. Two holds of one key by different processes that overlap
//! in time are a violation. An `acquire` that ends `info` opens no hold, so it
//! can never alone prove a violation.

use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::{Deserialize, Serialize};

use super::{CheckResult, Checker, Verdict};
use crate::history::{Event, EventRef, FnRef, OpType, Process};

/// How many witnesses a result carries; the count covers them all.
const MAX_WITNESSES: usize = 20;

/// At most this many incidents are kept (violations are all counted).
const MAX_INCIDENTS: usize = 20;

/// Why a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldEnd {
    /// The holder invoked a release that did not fail.
    Release,
    /// The holder crashed.
    Crash,
    /// The holder's lock library said the lock was gone (`lost`).
    Lost,
    /// The holder's release failed and it moved on: it invoked its next
    /// acquire of the key instead of retrying the release.
    GaveUp,
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

/// The cause of a violation: read from the earlier hold's lease.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
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
                    HoldEnd::Lost => "lost",
                    HoldEnd::GaveUp => "next acquire after a failed release",
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
                end.saturating_sub(self.overlap_start_ns) as f64 / 1e6
            )?,
            None => write!(f, ": both held it to the end of the history")?,
        }
        write!(f, " [{}]", self.class.as_str())
    }
}

/// A reading aid over the violations: one hold that others overlapped,
/// with every grant to another client that overlapped it. Violations stay
/// counted pair by pair; incidents only group them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The key.
    pub key: String,
    /// The hold the others overlapped.
    pub holder: Hold,
    /// Why exclusion broke at the first overlap.
    pub class: ViolationClass,
    /// When its lease ran out by real time, where the backend has leases.
    pub lease_end_ns: Option<u64>,
    /// Grants to other clients that overlapped it.
    pub overlaps: u64,
    /// When the first of them began.
    pub first_overlap_ns: u64,
    /// The lowest fence among them.
    pub first_fence: Option<u64>,
    /// The highest fence among them.
    pub last_fence: Option<u64>,
    /// What the protected resource did with the holder's writes.
    pub writes: Writes,
    /// The faults active during the hold.
    #[serde(default)]
    pub faults: Vec<IncidentFault>,
}

/// A fault active during an incident's hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentFault {
    /// Its name (`pause-client`).
    pub fault: String,
    /// What it hit (`c1`, `server-1 (leader)`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// When it began (`None`: not in the history).
    pub start_ns: Option<u64>,
    /// When it ended.
    pub end_ns: u64,
}

fn fence_note(fence: Option<u64>) -> String {
    fence.map(|t| format!(", fence {t}")).unwrap_or_default()
}

/// Error for a history that breaks docs/design.md's structure rules.
#[derive(Debug)]
pub struct Inconsistent(pub String);

/// A hold as a stream of holds gives it ([`super::stream_holds`]): where
/// it lies in time, its key by number. Ordered by start (then by the
/// index of its acquire's `ok`, which is unique).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HoldSpan {
    /// Time of the `acquire` `ok`.
    pub start_ns: u64,
    /// Index of the `acquire` `ok` event.
    pub start_index: u64,
    /// The holder.
    pub process: Process,
    /// The key held, by number (see [`super::HeldKeys`]).
    pub key: u32,
    /// Time the hold ended; `None` if it lasted to the end of the history.
    pub end_ns: Option<u64>,
    /// The fencing token the acquire returned.
    pub fence: Option<u64>,
}

/// Keys seen, each given a small number so per-event state needs no
/// string copies.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Keys {
    pub(crate) fn id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(key.to_string());
        self.ids.insert(key.to_string(), id);
        id
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// An invoke still waiting for its completion: only what the rule needs.
#[derive(Debug, Clone, Copy)]
struct PendingOp {
    f: Op,
    key: u32,
    index: u64,
    time_ns: u64,
    fence: Option<u64>,
    lease_ms: Option<u64>,
}

/// Client operations the hold rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Acquire,
    Release,
    Renew,
    Other,
}

/// A hold as the tracker keeps it: compact (104 bytes; a long run keeps
/// every hold until the check), with the lease grants the cause of a
/// violation is read from. Optional values are plain numbers with a bit in
/// `has` saying whether they are there.
#[derive(Debug, Clone)]
pub(crate) struct Rec {
    start_ns: u64,
    start_index: u64,
    /// With `ENDED`.
    end_ns: u64,
    /// With `END_INDEX` (set with `ENDED` by the tracker).
    end_index: u64,
    /// With `FENCE`.
    fence: u64,
    /// With `LEASE`.
    lease_ms: u64,
    /// The first grant, with `GRANT`: (invoke time of the acquire or of a
    /// renew that ended `ok`, lease in ms). A lease was granted no earlier
    /// than that invoke, so it ran at least until invoke + lease.
    grant: (u64, u64),
    /// Later grants (renewals), in order; most holds have none. Boxed, so
    /// the field is one word instead of a `Vec`'s three.
    #[allow(clippy::box_collection)]
    renewals: Option<Box<Vec<(u64, u64)>>>,
    /// The holder's client id (or the nemesis, with `NEMESIS`).
    process: u64,
    /// With `WRITE_FENCE`: the fence of the holder's last write.
    write_fence: u64,
    /// The holder's writes the protected resource accepted during the hold.
    accepted: u32,
    /// And those it rejected.
    rejected: u32,
    key: u32,
    end: HoldEnd,
    has: u8,
}

const ENDED: u8 = 1;
const FENCE: u8 = 2;
const LEASE: u8 = 4;
const GRANT: u8 = 8;
const WRITE_FENCE: u8 = 16;
const NEMESIS: u8 = 32;
const END_INDEX: u8 = 64;

/// What the protected resource did with a holder's writes during a hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writes {
    /// Writes it accepted.
    pub accepted: u32,
    /// Writes it rejected (a fence lower than one it had seen).
    pub rejected: u32,
    /// The fence of the last write.
    pub fence: Option<u64>,
}

impl Rec {
    /// A hold that begins now and has not ended.
    #[allow(clippy::too_many_arguments)]
    fn new(
        process: Process,
        key: u32,
        start_ns: u64,
        start_index: u64,
        fence: Option<u64>,
        lease_ms: Option<u64>,
        grant: Option<(u64, u64)>,
    ) -> Self {
        let (process, nemesis) = match process {
            Process::Client(p) => (p, 0),
            Process::Nemesis => (0, NEMESIS),
        };
        let mut rec = Rec {
            start_ns,
            start_index,
            end_ns: 0,
            end_index: 0,
            fence: 0,
            lease_ms: 0,
            grant: (0, 0),
            renewals: None,
            process,
            write_fence: 0,
            accepted: 0,
            rejected: 0,
            key,
            end: HoldEnd::EndOfHistory,
            has: nemesis,
        };
        rec.fence = rec.put(FENCE, fence);
        rec.lease_ms = rec.put(LEASE, lease_ms);
        if let Some(g) = grant {
            rec.grant = g;
            rec.has |= GRANT;
        }
        rec
    }

    /// Marks `flag` when `v` is there; the number to store.
    fn put(&mut self, flag: u8, v: Option<u64>) -> u64 {
        match v {
            Some(v) => {
                self.has |= flag;
                v
            }
            None => {
                self.has &= !flag;
                0
            }
        }
    }

    fn get(&self, flag: u8, v: u64) -> Option<u64> {
        (self.has & flag != 0).then_some(v)
    }

    fn process(&self) -> Process {
        if self.has & NEMESIS != 0 {
            Process::Nemesis
        } else {
            Process::Client(self.process)
        }
    }

    fn end_ns(&self) -> Option<u64> {
        self.get(ENDED, self.end_ns)
    }

    fn fence(&self) -> Option<u64> {
        self.get(FENCE, self.fence)
    }

    fn writes(&self) -> Writes {
        Writes {
            accepted: self.accepted,
            rejected: self.rejected,
            fence: self.get(WRITE_FENCE, self.write_fence),
        }
    }

    /// Every grant, in order.
    fn grants(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        let first = (self.has & GRANT != 0).then_some(self.grant);
        first
            .into_iter()
            .chain(self.renewals.iter().flat_map(|r| r.iter().copied()))
    }

    /// Adds a grant (a renewal that ended `ok`).
    fn grant(&mut self, g: (u64, u64)) {
        if self.has & GRANT == 0 {
            self.grant = g;
            self.has |= GRANT;
        } else {
            self.renewals.get_or_insert_default().push(g);
        }
    }

    /// By when the lease had run out by real time, where the backend has
    /// leases: its last grant (no earlier than the hold's start, when the
    /// acquire returned) plus the lease.
    fn lease_end_ns(&self) -> Option<u64> {
        self.grants().next_back().map(|(from, ms)| {
            from.max(self.start_ns)
                .saturating_add(ms.saturating_mul(1_000_000))
        })
    }

    fn end_or_max(&self) -> u64 {
        self.end_ns().unwrap_or(u64::MAX)
    }

    /// Where the hold lies in time, its key by number.
    pub(crate) fn span(&self) -> HoldSpan {
        HoldSpan {
            start_ns: self.start_ns,
            start_index: self.start_index,
            process: self.process(),
            key: self.key,
            end_ns: self.end_ns(),
            fence: self.fence(),
        }
    }

    fn to_hold(&self, keys: &Keys) -> Hold {
        Hold {
            process: self.process(),
            key: keys.name(self.key).to_string(),
            start_ns: self.start_ns,
            start_index: self.start_index,
            end_ns: self.end_ns(),
            end_index: self.get(END_INDEX, self.end_index),
            end: self.end,
            fence: self.fence(),
            lease_ms: self.get(LEASE, self.lease_ms),
        }
    }

    /// Why a hold that began at `at` could overlap this one: read from the
    /// last grant invoked before `at`. Lock-lost is claimed only when the
    /// lease was certainly still running (its earliest possible end was
    /// after `at`).
    fn class_at(&self, at: u64) -> ViolationClass {
        let grant = self.grants().rev().find(|(from, _)| *from < at);
        match grant.or(self.grants().next()) {
            None => ViolationClass::UnknownLease,
            Some((from, ms)) => {
                if at >= from.saturating_add(ms.saturating_mul(1_000_000)) {
                    ViolationClass::LeaseExpired
                } else {
                    ViolationClass::LockLost
                }
            }
        }
    }
}

/// Builds holds from events fed one at a time, in file order, so a history
/// of any length is checked in memory proportional to its holds.
#[derive(Debug, Default)]
pub struct HoldTracker {
    keys: Keys,
    /// Each process's invoke that has not completed yet.
    pending: FxHashMap<u64, PendingOp>,
    /// Holds not ended yet, by (process, key).
    open: FxHashMap<(u64, u32), Rec>,
    /// Holds ended, in the order they ended, until
    /// [`drain_closed`](Self::drain_closed) takes them.
    closed: Vec<Rec>,
    /// Holds whose last release failed, by (process, key): the holder's
    /// next acquire of the key ends them at its invoke (docs/design.md: it has
    /// given the grant up), a retried release as usual.
    failed_release: FxHashSet<(u64, u32)>,
}

impl HoldTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next event, or says why the history is inconsistent (a
    /// completion without an invoke, two invokes in a row).
    pub fn push(&mut self, e: &Event) -> Result<(), Inconsistent> {
        let ev = EventRef::of(e);
        let key = self.keys.id(ev.key);
        self.push_ev(&ev, key)
    }

    /// The key table, shared with the other streaming checkers.
    pub(crate) fn keys_mut(&mut self) -> &mut Keys {
        &mut self.keys
    }

    /// Some other process that holds `key` now.
    pub(crate) fn other_holder(&self, p: u64, key: u32) -> Option<Process> {
        self.open
            .iter()
            .find(|((q, k), _)| *k == key && *q != p)
            .map(|((q, _), _)| Process::Client(*q))
    }

    /// [`push`](Self::push) with the key already numbered.
    pub(crate) fn push_ev(&mut self, e: &EventRef<'_>, key: u32) -> Result<(), Inconsistent> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        if e.f == FnRef::Crash {
            // A release in flight at the crash never ended, so it did not
            // end in `fail`: the hold ended at its invoke.
            if let Some(op) = self.pending.remove(&p)
                && op.f == Op::Release
            {
                self.close_at_release(p, &op);
            }
            let mine: Vec<(u64, u32)> =
                self.open.keys().filter(|(q, _)| *q == p).copied().collect();
            for k in mine {
                self.close(k, e.time_ns, e.index, HoldEnd::Crash);
            }
            return Ok(());
        }
        if e.f == FnRef::Lost {
            // The library told the client; it stopped acting on this key.
            // Any operation in flight goes on.
            self.close((p, key), e.time_ns, e.index, HoldEnd::Lost);
            return Ok(());
        }
        let op_of = |f: FnRef<'_>| match f {
            FnRef::Acquire => Op::Acquire,
            FnRef::Release => Op::Release,
            FnRef::Renew => Op::Renew,
            _ => Op::Other,
        };
        if e.kind == OpType::Invoke {
            if let Some(prev) = self.pending.get(&p) {
                return Err(Inconsistent(format!(
                    "process {p} invoked {} at event {} while its operation from event {} had not completed",
                    e.f.as_str(),
                    e.index,
                    prev.index
                )));
            }
            if e.f == FnRef::Acquire && self.failed_release.contains(&(p, key)) {
                self.close((p, key), e.time_ns, e.index, HoldEnd::GaveUp);
            }
            self.pending.insert(
                p,
                PendingOp {
                    f: op_of(e.f),
                    key,
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
        let same = match op.f {
            Op::Other => op_of(e.f) == Op::Other,
            f => op_of(e.f) == f,
        };
        if !same {
            return Err(Inconsistent(format!(
                "event {}: process {p} completed {} but had invoked another operation at event {}",
                e.index,
                e.f.as_str(),
                op.index
            )));
        }
        self.completed(p, &op, e);
        Ok(())
    }

    /// Client `p`'s operation `op` completed with `e`.
    fn completed(&mut self, p: u64, op: &PendingOp, e: &EventRef<'_>) {
        match (op.f, e.kind) {
            (Op::Acquire, OpType::Ok) => {
                // A second acquire by the holder (reentrancy) keeps the
                // first hold.
                if self.open.contains_key(&(p, op.key)) {
                    return;
                }
                let lease_ms = e.lease_ms.or(op.lease_ms);
                self.open.insert(
                    (p, op.key),
                    Rec::new(
                        e.process,
                        op.key,
                        e.time_ns,
                        e.index,
                        e.fence.or(op.fence),
                        lease_ms,
                        lease_ms.map(|ms| (op.time_ns, ms)),
                    ),
                );
            }
            (Op::Renew, OpType::Ok) => {
                if let Some(rec) = self.open.get_mut(&(p, op.key)) {
                    let ms = e
                        .lease_ms
                        .or(op.lease_ms)
                        .or(rec.grants().next_back().map(|g| g.1));
                    if let Some(ms) = ms {
                        rec.grant((op.time_ns, ms));
                    }
                }
            }
            (Op::Other, OpType::Ok) if e.f == FnRef::Write => {
                if let (Some(rec), Some(accepted)) = (self.open.get_mut(&(p, op.key)), e.accepted) {
                    if accepted {
                        rec.accepted += 1;
                    } else {
                        rec.rejected += 1;
                    }
                    rec.write_fence = rec.put(WRITE_FENCE, e.fence.or(op.fence));
                }
            }
            (Op::Release, OpType::Ok | OpType::Info) => self.close_at_release(p, op),
            (Op::Release, OpType::Fail) if self.open.contains_key(&(p, op.key)) => {
                self.failed_release.insert((p, op.key));
            }
            _ => {}
        }
    }

    fn close_at_release(&mut self, p: u64, op: &PendingOp) {
        self.close((p, op.key), op.time_ns, op.index, HoldEnd::Release);
    }

    /// Ends the open hold of (process, key), if any, at `time_ns` (never
    /// before it began) and event `index`.
    fn close(&mut self, hold: (u64, u32), time_ns: u64, index: u64, end: HoldEnd) {
        self.failed_release.remove(&hold);
        if let Some(mut rec) = self.open.remove(&hold) {
            rec.end_ns = time_ns.max(rec.start_ns);
            rec.end_index = index;
            rec.has |= ENDED | END_INDEX;
            rec.end = end;
            self.closed.push(rec);
        }
    }

    /// The holds ended since the last call, in the order they ended: a
    /// reader that needs each hold once (the timeline) takes them as it
    /// goes, so memory holds only the open ones.
    pub(crate) fn drain_closed(&mut self) -> std::vec::Drain<'_, Rec> {
        self.closed.drain(..)
    }

    /// Ends the history: the compact holds, in the order they began.
    pub(crate) fn finish_recs(mut self) -> (Vec<Rec>, Keys) {
        // A release still in flight when the history ends may have happened.
        let pending: Vec<(u64, PendingOp)> = self.pending.drain().collect();
        for (p, op) in pending {
            if op.f == Op::Release {
                self.close_at_release(p, &op);
            }
        }
        let mut recs = self.closed;
        // Holds that lasted to the end of the history.
        recs.extend(self.open.into_values());
        // Unstable: no scratch copy, and (start, index) is unique.
        recs.sort_unstable_by_key(|h| (h.start_ns, h.start_index));
        (recs, self.keys)
    }

    /// Ends the history: every hold, in the order they began.
    pub fn finish(self) -> Vec<Hold> {
        let (recs, keys) = self.finish_recs();
        recs.iter().map(|r| r.to_hold(&keys)).collect()
    }
}

/// The holds in a history, in the order they began, or why the history is
/// inconsistent.
pub fn holds(events: &[Event]) -> Result<Vec<Hold>, Inconsistent> {
    let mut tracker = HoldTracker::new();
    for e in in_index_order(events) {
        tracker.push(e)?;
    }
    Ok(tracker.finish())
}

/// File order is the contract; sorting by index only guards against events
/// handed over out of order.
pub(crate) fn in_index_order(events: &[Event]) -> Vec<&Event> {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by_key(|e| e.index);
    order
}

/// The direct mutual-exclusion checker.
#[derive(Debug, Default, Clone, Copy)]
pub struct MutexChecker;

impl Checker for MutexChecker {
    fn name(&self) -> &'static str {
        "mutual-exclusion"
    }

    /// The mutual-exclusion part of the one analysis
    /// ([`super::analyze_events`]), so that its incidents name the faults
    /// of the history as the file's analysis does.
    fn check(&self, events: &[Event]) -> CheckResult {
        super::analyze_events(events, super::AnalysisOptions::default()).mutex
    }
}

impl MutexChecker {
    /// The verdict for a history whose structure is broken.
    pub fn inconsistent(&self, Inconsistent(why): Inconsistent) -> CheckResult {
        CheckResult::unknown(self.name(), format!("inconsistent history: {why}"))
    }

    /// The verdict over holds, however they were gathered. A `Hold` does
    /// not carry its acquire's invoke time, so the lease is counted from
    /// the `ok` here: the classes are less certain than those of
    /// [`check`](Checker::check) and `analyze_file`, which know the invoke.
    pub fn check_holds(&self, holds: &[Hold]) -> CheckResult {
        let mut keys = Keys::default();
        let mut recs: Vec<Rec> = holds
            .iter()
            .map(|h| {
                let mut rec = Rec::new(
                    h.process,
                    keys.id(&h.key),
                    h.start_ns,
                    h.start_index,
                    h.fence,
                    h.lease_ms,
                    h.lease_ms.map(|ms| (h.start_ns, ms)),
                );
                rec.end_ns = rec.put(ENDED, h.end_ns);
                rec.end_index = rec.put(END_INDEX, h.end_index);
                rec.end = h.end;
                rec
            })
            .collect();
        recs.sort_by_key(|h| (h.start_ns, h.start_index));
        self.check_recs(&recs, &keys)
    }

    /// The verdict over compact holds sorted by start.
    pub(crate) fn check_recs(&self, recs: &[Rec], keys: &Keys) -> CheckResult {
        let mut by_key: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (i, h) in recs.iter().enumerate() {
            if let Some(list) = by_key.get_mut(h.key as usize) {
                list.push(i);
            }
        }
        let mut violations = 0u64;
        let mut witnesses = Vec::new();
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        // One incident per hold that others overlapped, by its place.
        let mut incidents: Vec<Incident> = Vec::new();
        let mut incident_of: FxHashMap<usize, usize> = FxHashMap::default();
        let mut order: Vec<u32> = (0..keys.len() as u32).collect();
        order.sort_by(|a, b| keys.name(*a).cmp(keys.name(*b)));
        for key in order {
            let holds = &by_key[key as usize];
            // Holds arrive sorted by start. `active` keeps those not yet
            // ended, smallest end first, so each is popped once.
            let mut active: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
            for &i in holds {
                let h = &recs[i];
                while let Some(Reverse((end, _))) = active.peek() {
                    if *end <= h.start_ns {
                        active.pop();
                    } else {
                        break;
                    }
                }
                for Reverse((_, j)) in active.iter() {
                    let a = &recs[*j];
                    // Half-open intervals [start, end): touching is a hand-off.
                    if a.process() == h.process() || a.start_ns >= h.end_or_max() {
                        continue;
                    }
                    violations += 1;
                    let class = a.class_at(h.start_ns);
                    *classes.entry(class.as_str().to_string()).or_default() += 1;
                    let n = match incident_of.get(j) {
                        Some(&n) => Some(n),
                        None if incidents.len() < MAX_INCIDENTS => {
                            incident_of.insert(*j, incidents.len());
                            incidents.push(Incident {
                                key: keys.name(key).to_string(),
                                holder: a.to_hold(keys),
                                class,
                                lease_end_ns: a.lease_end_ns(),
                                overlaps: 0,
                                first_overlap_ns: h.start_ns,
                                first_fence: None,
                                last_fence: None,
                                writes: a.writes(),
                                faults: Vec::new(),
                            });
                            Some(incidents.len() - 1)
                        }
                        None => None,
                    };
                    if let Some(inc) = n.and_then(|n| incidents.get_mut(n)) {
                        inc.overlaps += 1;
                        inc.first_overlap_ns = inc.first_overlap_ns.min(h.start_ns);
                        if let Some(f) = h.fence() {
                            inc.first_fence = Some(inc.first_fence.map_or(f, |x| x.min(f)));
                            inc.last_fence = Some(inc.last_fence.map_or(f, |x| x.max(f)));
                        }
                    }
                    if witnesses.len() < MAX_WITNESSES {
                        let end = a.end_or_max().min(h.end_or_max());
                        witnesses.push(Witness {
                            key: keys.name(key).to_string(),
                            first: a.to_hold(keys),
                            second: h.to_hold(keys),
                            overlap_start_ns: h.start_ns,
                            overlap_end_ns: (end != u64::MAX).then_some(end),
                            class,
                        });
                    }
                }
                active.push(Reverse((h.end_or_max(), i)));
            }
        }
        witnesses.sort_by_key(|w| (w.overlap_start_ns, w.first.start_index));
        incidents.sort_by_key(|i| (i.holder.start_ns, i.holder.start_index));
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
            classes,
            incidents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::F;

    fn ev(index: u64, t: u64, p: u64, kind: OpType, f: F) -> Event {
        let mut e = Event::new(t, Process::Client(p), kind, f);
        e.index = index;
        e
    }

    /// Every hold stays in memory until the check: keep it small.
    #[test]
    fn a_hold_record_stays_compact() {
        assert!(
            std::mem::size_of::<Rec>() <= 104,
            "{}",
            std::mem::size_of::<Rec>()
        );
    }

    /// The class of an overlap is read from the grant before it: the
    /// acquire's, then each renewal's.
    #[test]
    fn renewals_extend_the_lease_a_violation_is_judged_by() {
        let ms = 1_000_000;
        let leased = |mut e: Event| {
            e.lease_ms = Some(10);
            e
        };
        let history = |second_at: u64| {
            vec![
                leased(ev(0, 0, 1, OpType::Invoke, F::Acquire)),
                ev(1, ms, 1, OpType::Ok, F::Acquire),
                leased(ev(2, 8 * ms, 1, OpType::Invoke, F::Renew)),
                ev(3, 9 * ms, 1, OpType::Ok, F::Renew),
                leased(ev(4, 16 * ms, 1, OpType::Invoke, F::Renew)),
                ev(5, 17 * ms, 1, OpType::Ok, F::Renew),
                ev(6, second_at * ms, 2, OpType::Invoke, F::Acquire),
                ev(7, second_at * ms + 1, 2, OpType::Ok, F::Acquire),
                ev(8, 40 * ms, 1, OpType::Invoke, F::Release),
                ev(9, 40 * ms + 1, 1, OpType::Ok, F::Release),
            ]
        };
        // At 15 ms the first renewal (invoked at 8 ms) still runs; at 30 ms
        // the second (invoked at 16 ms, 10 ms) has run out.
        for (at, class) in [(15, "lock-lost"), (30, "lease-expired")] {
            let r = MutexChecker.check(&history(at));
            assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
            assert_eq!(
                r.classes.keys().collect::<Vec<_>>(),
                vec![class],
                "at {at} ms"
            );
            assert_eq!(r.incidents[0].lease_end_ns, Some(26 * ms), "at {at} ms");
        }
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
