//! Liveness and recovery, measured from the history.
//!
//! Per key, the pass keeps how many clients wait (an `acquire` invoked and
//! not completed) and how many hold (from the `acquire` `ok` to the
//! completion of the release, or the crash: while a release is in flight
//! the key still counts as held, since a `fail` would mean it never ended).
//! A key is *unavailable* while someone waits and nobody holds it; an
//! unavailable stretch with no fault active that lasts longer than the
//! bound is a deadlock.
//!
//! Faults are the nemesis's events that say which fault they start or
//! stop (`value.fault` and `value.edge`, docs/design.md): a stop closes
//! the oldest open fault of the same name, with the same targets where
//! they agree. Nothing is read from an event's name.

use rustc_hash::{FxHashMap, FxHashSet};

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::compose::{Cx, Done, Step, StreamCheck};
use super::mutex::Keys;
use crate::history::{Edge, FaultMark, OpType, Process};

/// A window in which clients waited for a key, nobody held it and no fault
/// was active, for longer than the lease bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadlock {
    /// The key.
    pub key: String,
    /// When the window began.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
}

/// Liveness and fairness of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Liveness {
    /// Deadlock windows.
    pub deadlocks: Vec<Deadlock>,
    /// The longest time any client waited for a lock (acquire invoke to its
    /// completion), ms.
    pub longest_wait_ms: f64,
    /// Who waited that long.
    pub longest_wait_process: Option<Process>,
    /// Successful acquisitions per client: fewest.
    pub min_acquisitions: u64,
    /// Most.
    pub max_acquisitions: u64,
    /// Jain's fairness index of acquisitions per client (1 = perfectly fair).
    pub jain_index: f64,
    /// Clients that tried and never acquired.
    pub starved_clients: u64,
    /// `unknown` when the checker crashed; absent when it measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why it is `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How fast the lock came back after one fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecovery {
    /// The fault's end event name (`stop-partition`, ...).
    pub fault: String,
    /// When it ended.
    pub end_ns: u64,
    /// Time from its end to the next successful acquire, ms (`None`: none
    /// followed).
    pub next_acquire_ms: Option<f64>,
    /// When it started (`None`: its start was not in the history).
    #[serde(default)]
    pub start_ns: Option<u64>,
    /// Acquires (of any key) both invoked and granted while it lasted:
    /// whether the lock stayed available during the fault.
    #[serde(default)]
    pub acquired_during: u64,
    /// The longest stretch of the fault, ms, in which no acquire counted
    /// in `acquired_during` was granted (from its start to the first, ...,
    /// from the last to its end): the whole fault when none was. `None`
    /// when its start was not in the history.
    #[serde(default)]
    pub longest_gap_ms: Option<f64>,
    /// The fault's start event name (`start-partition`, `pause-client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_as: Option<String>,
    /// What it hit, as the history names it (`h1`, `c2`, `server-1 (leader)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// Recovery measures of a run with faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// One entry per fault end.
    pub faults: Vec<FaultRecovery>,
    /// Time in which some client wanted a key and nobody held it, summed
    /// over keys, ms.
    pub unavailable_ms: f64,
    /// That, over (run time × keys).
    pub unavailable_fraction: f64,
    /// Operations that ended `info` while a fault was active.
    pub info_during_faults: u64,
    /// Why nothing was measured (the liveness checker crashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Per key: who waits, who holds, and since when it has been unavailable.
#[derive(Debug, Default, Clone)]
struct KeyLive {
    waiting: u32,
    held: u32,
    unavailable_since: Option<u64>,
    stuck_since: Option<u64>,
}

/// Per client: did it try, how often did it get a lock.
#[derive(Debug, Default, Clone, Copy)]
struct ClientLive {
    acquisitions: u64,
}

/// A fault that started and has not ended yet.
#[derive(Debug)]
struct OpenFault {
    /// The fault's name (`partition`).
    fault: String,
    /// Its start event's name (`start-partition`).
    start: String,
    targets: String,
    start_ns: u64,
    acquired: u64,
    /// The last grant counted for it (its start before the first).
    last_ok_ns: u64,
    longest_gap_ns: u64,
}

impl OpenFault {
    /// An acquire granted at `t` counts for this fault.
    fn granted(&mut self, t: u64) {
        self.acquired += 1;
        self.gap_until(t);
    }

    /// The stretch without grants since the last one, up to `t`.
    fn gap_until(&mut self, t: u64) {
        self.longest_gap_ns = self.longest_gap_ns.max(t.saturating_sub(self.last_ok_ns));
        self.last_ok_ns = self.last_ok_ns.max(t);
    }
}

/// Liveness and recovery, fed one event at a time.
#[derive(Debug)]
pub(crate) struct LivenessState {
    bound_ns: Option<u64>,
    max_lease_ms: u64,
    keys: Vec<KeyLive>,
    held: FxHashSet<(u64, u32)>,
    clients: FxHashMap<u64, ClientLive>,
    /// Open faults: (start name, targets), when it started, acquires
    /// since.
    open_faults: Vec<OpenFault>,
    faults_active: u32,
    longest_wait_ns: u64,
    longest_wait_process: Option<Process>,
    /// Stuck windows long enough to be deadlocks under some bound.
    candidates: Vec<(u32, u64, u64)>,
    unavailable_ns: u128,
    faults: Vec<FaultRecovery>,
    /// Entries of `faults` still waiting for an acquire.
    awaiting: Vec<usize>,
    info_during_faults: u64,
    first_ns: Option<u64>,
    last_ns: u64,
}

impl LivenessState {
    /// `bound`: the deadlock bound; `None` to take the largest lease seen
    /// plus one second.
    pub(crate) fn new(bound: Option<std::time::Duration>) -> Self {
        LivenessState {
            bound_ns: bound.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            max_lease_ms: 0,
            keys: Vec::new(),
            held: FxHashSet::default(),
            clients: FxHashMap::default(),
            open_faults: Vec::new(),
            faults_active: 0,
            longest_wait_ns: 0,
            longest_wait_process: None,
            candidates: Vec::new(),
            unavailable_ns: 0,
            faults: Vec::new(),
            awaiting: Vec::new(),
            info_during_faults: 0,
            first_ns: None,
            last_ns: 0,
        }
    }

    /// Every event's time passes through here first.
    pub(crate) fn tick(&mut self, time_ns: u64, lease_ms: Option<u64>) {
        if self.first_ns.is_none() {
            self.first_ns = Some(time_ns);
        }
        self.last_ns = self.last_ns.max(time_ns);
        if let Some(ms) = lease_ms {
            self.max_lease_ms = self.max_lease_ms.max(ms);
        }
    }

    fn key(&mut self, key: u32) -> &mut KeyLive {
        let i = key as usize;
        if self.keys.len() <= i {
            self.keys.resize(i + 1, KeyLive::default());
        }
        &mut self.keys[i]
    }

    /// The shortest stuck window worth keeping before the bound is known.
    fn keep_ns(&self) -> u64 {
        self.bound_ns.unwrap_or(1_000_000_000)
    }

    /// Brings `key`'s windows up to date after its state changed at `t`.
    fn settle(&mut self, key: u32, t: u64) {
        let keep = self.keep_ns();
        let calm = self.faults_active == 0;
        let k = self.key(key);
        let unavailable = k.waiting > 0 && k.held == 0;
        let mut closed_stuck = None;
        match (unavailable, k.unavailable_since) {
            (true, None) => k.unavailable_since = Some(t),
            (false, Some(s)) => {
                k.unavailable_since = None;
                self.unavailable_ns += t.saturating_sub(s) as u128;
            }
            _ => {}
        }
        let k = self.key(key);
        match (unavailable && calm, k.stuck_since) {
            (true, None) => k.stuck_since = Some(t),
            (false, Some(s)) => {
                k.stuck_since = None;
                if t.saturating_sub(s) > keep {
                    closed_stuck = Some((key, s, t));
                }
            }
            _ => {}
        }
        if let Some(c) = closed_stuck {
            self.candidates.push(c);
        }
    }

    /// Client `p` invoked an acquire of `key`.
    pub(crate) fn acquire_invoked(&mut self, p: u64, key: u32, t: u64) {
        self.clients.entry(p).or_default();
        self.key(key).waiting += 1;
        self.settle(key, t);
    }

    /// Client `p`'s acquire of `key`, invoked at `invoked`, completed.
    pub(crate) fn acquire_done(&mut self, p: u64, key: u32, invoked: u64, t: u64, ok: bool) {
        let k = self.key(key);
        k.waiting = k.waiting.saturating_sub(1);
        let wait = t.saturating_sub(invoked);
        if wait > self.longest_wait_ns || self.longest_wait_process.is_none() {
            self.longest_wait_ns = wait;
            self.longest_wait_process = Some(Process::Client(p));
        }
        if ok {
            self.clients.entry(p).or_default().acquisitions += 1;
            if self.held.insert((p, key)) {
                self.key(key).held += 1;
            }
            // Only acquires asked for after the fault began: one in
            // flight when it began may have been granted just before.
            for f in self
                .open_faults
                .iter_mut()
                .filter(|f| invoked >= f.start_ns)
            {
                f.granted(t);
            }
            for i in self.awaiting.drain(..) {
                if let Some(f) = self.faults.get_mut(i) {
                    f.next_acquire_ms = Some(t.saturating_sub(f.end_ns) as f64 / 1e6);
                }
            }
        }
        self.settle(key, t);
    }

    /// Client `p`'s release of `key` completed `ok` or `info`.
    pub(crate) fn released(&mut self, p: u64, key: u32, t: u64) {
        if self.held.remove(&(p, key)) {
            let k = self.key(key);
            k.held = k.held.saturating_sub(1);
            self.settle(key, t);
        }
    }

    /// Client `p` crashed at `t`, with an acquire of `waiting_for` in
    /// flight, or none.
    pub(crate) fn crashed(&mut self, p: u64, waiting_for: Option<u32>, t: u64) {
        if let Some(key) = waiting_for {
            let k = self.key(key);
            k.waiting = k.waiting.saturating_sub(1);
            self.settle(key, t);
        }
        let mine: Vec<u32> = self
            .held
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, k)| *k)
            .collect();
        for key in mine {
            self.released(p, key, t);
        }
    }

    /// A client operation completed `info`.
    pub(crate) fn info_completion(&mut self) {
        if self.faults_active > 0 {
            self.info_during_faults += 1;
        }
    }

    /// A nemesis event called `name` (`targets` as compact JSON) that
    /// starts or stops the fault `mark` names. An event that names no
    /// fault is not one (docs/design.md: nemesis events say which fault
    /// they start or stop; nothing is read from their names).
    pub(crate) fn nemesis(&mut self, name: &str, mark: Option<&FaultMark>, targets: &str, t: u64) {
        let Some(mark) = mark else {
            return;
        };
        if mark.edge == Edge::Start {
            self.open_faults.push(OpenFault {
                fault: mark.fault.clone(),
                start: name.to_string(),
                targets: targets.to_string(),
                start_ns: t,
                acquired: 0,
                last_ok_ns: t,
                longest_gap_ns: 0,
            });
            self.faults_active += 1;
        } else {
            // The oldest open fault of that kind with the same targets;
            // else (targets written differently at the end) of that kind.
            let slot = self
                .open_faults
                .iter()
                .position(|f| f.fault == mark.fault && f.targets == targets)
                .or_else(|| self.open_faults.iter().position(|f| f.fault == mark.fault));
            let mut opened = slot.map(|i| self.open_faults.remove(i));
            if let Some(f) = opened.as_mut() {
                f.gap_until(t);
            }
            if opened.is_some() {
                self.faults_active = self.faults_active.saturating_sub(1);
            }
            self.awaiting.push(self.faults.len());
            let targets_json = opened.as_ref().map_or(targets, |f| f.targets.as_str());
            let targets: Vec<String> = serde_json::from_str::<serde_json::Value>(targets_json)
                .ok()
                .and_then(|v| {
                    v.as_array().map(|a| {
                        a.iter()
                            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                            .collect()
                    })
                })
                .unwrap_or_default();
            self.faults.push(FaultRecovery {
                fault: name.to_string(),
                end_ns: t,
                next_acquire_ms: None,
                start_ns: opened.as_ref().map(|f| f.start_ns),
                acquired_during: opened.as_ref().map_or(0, |f| f.acquired),
                longest_gap_ms: opened.as_ref().map(|f| f.longest_gap_ns as f64 / 1e6),
                started_as: opened.map(|f| f.start.to_string()),
                targets,
            });
        }
        // A fault starting or ending changes whether every key is calm.
        for key in 0..self.keys.len() as u32 {
            self.settle(key, t);
        }
    }

    /// The measures, over `keys` (every key a client named).
    pub(crate) fn finish(mut self, keys: &Keys) -> (Liveness, Recovery) {
        let end = self.last_ns;
        // Close the windows still open at the end of the history.
        for key in 0..self.keys.len() as u32 {
            let k = self.key(key);
            k.waiting = 0;
            self.settle(key, end);
        }
        let bound = self.bound_ns.unwrap_or_else(|| {
            self.max_lease_ms
                .saturating_mul(1_000_000)
                .saturating_add(1_000_000_000)
        });
        let mut deadlocks: Vec<Deadlock> = self
            .candidates
            .iter()
            .filter(|(_, s, e)| e - s > bound)
            .map(|&(key, start_ns, end_ns)| Deadlock {
                key: keys.name(key).to_string(),
                start_ns,
                end_ns,
            })
            .collect();
        deadlocks.sort_by(|a, b| (a.start_ns, &a.key).cmp(&(b.start_ns, &b.key)));
        let counts: Vec<u64> = self.clients.values().map(|c| c.acquisitions).collect();
        let n = counts.len() as f64;
        let sum: f64 = counts.iter().map(|&x| x as f64).sum();
        let squares: f64 = counts.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let liveness = Liveness {
            deadlocks,
            longest_wait_ms: self.longest_wait_ns as f64 / 1e6,
            longest_wait_process: self.longest_wait_process,
            min_acquisitions: counts.iter().copied().min().unwrap_or(0),
            max_acquisitions: counts.iter().copied().max().unwrap_or(0),
            jain_index: if squares > 0.0 {
                sum * sum / (n * squares)
            } else {
                0.0
            },
            starved_clients: counts.iter().filter(|&&x| x == 0).count() as u64,
            verdict: None,
            reason: None,
        };
        let span = end.saturating_sub(self.first_ns.unwrap_or(end)) as f64;
        let keys_seen = keys.len().max(1) as f64;
        let unavailable_ms = self.unavailable_ns as f64 / 1e6;
        let recovery = Recovery {
            faults: self.faults,
            unavailable_ms,
            unavailable_fraction: if span > 0.0 {
                (self.unavailable_ns as f64 / (span * keys_seen)).min(1.0)
            } else {
                0.0
            },
            info_during_faults: self.info_during_faults,
            reason: None,
        };
        (liveness, recovery)
    }
}

impl StreamCheck for LivenessState {
    type Report = (Liveness, Recovery);
    const NAME: &'static str = "liveness";

    fn step(&mut self, step: &Step<'_>, _: &Cx<'_>) {
        match *step {
            Step::Tick { time_ns, lease_ms } => self.tick(time_ns, lease_ms),
            Step::Nemesis {
                name,
                mark,
                targets,
                time_ns,
            } => self.nemesis(name, mark, targets, time_ns),
            Step::Lost { p, key, time_ns } => self.released(p, key, time_ns),
            Step::Crash {
                p,
                waiting_for,
                time_ns,
            } => self.crashed(p, waiting_for, time_ns),
            Step::AcquireInvoked { p, key, time_ns } => self.acquire_invoked(p, key, time_ns),
            Step::AcquireAbandoned { p, key, time_ns } => self.crashed(p, Some(key), time_ns),
            Step::AcquireDone {
                p,
                key,
                kind,
                invoked_ns,
                time_ns,
                ..
            } => self.acquire_done(p, key, invoked_ns, time_ns, kind == OpType::Ok),
            Step::ReleaseDone {
                p,
                key,
                kind: OpType::Ok | OpType::Info,
                time_ns,
                ..
            } => self.released(p, key, time_ns),
            Step::ReleaseDone { .. } | Step::WriteDone { .. } => {}
            Step::Info => self.info_completion(),
        }
    }

    fn finish(self, done: &Done<'_>) -> (Liveness, Recovery) {
        LivenessState::finish(self, done.keys)
    }

    fn crashed(reason: String) -> (Liveness, Recovery) {
        (
            Liveness {
                verdict: Some(Verdict::Unknown),
                reason: Some(reason.clone()),
                ..Default::default()
            },
            Recovery {
                reason: Some(reason),
                ..Default::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::check::{AnalysisOptions, analyze_events};
    use crate::history::{Event, F, OpType, Process};

    const MS: u64 = 1_000_000;

    /// A client event on key "a" at `ms`.
    fn c(ms: u64, p: u64, kind: OpType, f: F) -> Event {
        let mut e = Event::new(ms * MS, Process::Client(p), kind, f);
        e.key = Some("a".into());
        if e.f == F::Acquire {
            e.lease_ms = Some(100);
        }
        e
    }

    /// A nemesis event `name` that starts or stops (`edge`) `fault`.
    fn nemesis(
        ms: u64,
        name: &str,
        (fault, edge): (&str, &str),
        kind: OpType,
        targets: &str,
    ) -> Event {
        let mut e = Event::new(ms * MS, Process::Nemesis, kind, F::Fault(name.into()));
        e.value = Some(serde_json::json!({ "targets": [targets], "fault": fault, "edge": edge }));
        e
    }

    fn numbered(mut events: Vec<Event>) -> Vec<Event> {
        for (i, e) in events.iter_mut().enumerate() {
            e.index = i as u64;
        }
        events
    }

    #[test]
    fn a_free_lock_nobody_gets_for_longer_than_the_bound_is_a_deadlock() {
        use OpType::*;
        let h = numbered(vec![
            c(0, 1, Invoke, F::Acquire),
            c(10, 1, Ok, F::Acquire),
            c(20, 2, Invoke, F::Acquire),
            c(30, 1, Invoke, F::Release),
            c(31, 1, Ok, F::Release),
            c(2000, 2, Fail, F::Acquire),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        let l = &a.liveness;
        // Bound: the largest lease (100 ms) plus 1 s; the lock stood free
        // with client 2 waiting from 31 ms to 2000 ms.
        assert_eq!(l.deadlocks.len(), 1, "{l:?}");
        assert_eq!(l.deadlocks[0].key, "a");
        assert_eq!(
            (l.deadlocks[0].start_ns, l.deadlocks[0].end_ns),
            (31 * MS, 2000 * MS)
        );
        assert_eq!(l.longest_wait_ms, 1980.0);
        assert_eq!(l.longest_wait_process, Some(Process::Client(2)));
        assert_eq!((l.min_acquisitions, l.max_acquisitions), (0, 1));
        assert_eq!(l.starved_clients, 1);
        // (0 + 1)^2 / (2 * (0 + 1)) = 0.5
        assert!((l.jain_index - 0.5).abs() < 1e-12, "{}", l.jain_index);
        let r = &a.recovery;
        // 0..10 (client 1 waiting) and 31..2000 (client 2 waiting).
        assert_eq!(r.unavailable_ms, 1979.0);
        assert!((r.unavailable_fraction - 1979.0 / 2000.0).abs() < 1e-12);
        assert!(r.faults.is_empty());
        assert_eq!(r.info_during_faults, 0);
        // A bound above the window: no deadlock.
        let opts = AnalysisOptions {
            deadlock_bound: Some(std::time::Duration::from_millis(1969)),
        };
        assert!(analyze_events(&h, opts).liveness.deadlocks.is_empty());
    }

    #[test]
    fn acquires_during_a_fault_are_counted_for_it_alone() {
        use OpType::*;
        let h = numbered(vec![
            nemesis(
                0,
                "kill-server",
                ("kill-server", "start"),
                Info,
                "server-1 (leader)",
            ),
            c(5, 1, Invoke, F::Acquire),
            c(10, 1, Ok, F::Acquire),
            c(20, 1, Invoke, F::Release),
            c(21, 1, Ok, F::Release),
            // Invoked before the isolation began, granted after: not
            // counted for it (it may have been granted before).
            c(25, 3, Invoke, F::Acquire),
            nemesis(
                30,
                "start-isolate-server",
                ("isolate-server", "start"),
                Info,
                "server-2 (follower)",
            ),
            c(35, 3, Ok, F::Acquire),
            c(36, 3, Invoke, F::Release),
            c(37, 3, Ok, F::Release),
            c(40, 2, Invoke, F::Acquire),
            c(50, 2, Ok, F::Acquire),
            nemesis(
                60,
                "restart-server",
                ("kill-server", "stop"),
                Info,
                "server-1 (leader)",
            ),
            c(70, 2, Invoke, F::Release),
            c(71, 2, Ok, F::Release),
            c(80, 1, Invoke, F::Acquire),
            c(90, 1, Ok, F::Acquire),
            nemesis(
                100,
                "stop-isolate-server",
                ("isolate-server", "stop"),
                Info,
                "server-2 (follower)",
            ),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        let f = &a.recovery.faults;
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            (f[0].fault.as_str(), f[0].acquired_during),
            ("restart-server", 3)
        );
        assert_eq!(f[0].start_ns, Some(0));
        // Grants at 10, 35 and 50 in 0..60: the longest stretch is 10..35.
        assert_eq!(f[0].longest_gap_ms, Some(25.0));
        assert_eq!(f[1].fault, "stop-isolate-server");
        assert_eq!((f[1].start_ns, f[1].acquired_during), (Some(30 * MS), 2));
        // Grants at 50 and 90 in 30..100 (35 was asked for before it).
        assert_eq!(f[1].longest_gap_ms, Some(40.0));
    }

    #[test]
    fn faults_excuse_waits_and_recovery_is_timed_from_their_end() {
        use OpType::*;
        let h = numbered(vec![
            nemesis(0, "start-partition", ("partition", "start"), Info, "h1"),
            c(5, 1, Invoke, F::Acquire),
            c(1500, 1, Info, F::Acquire),
            // Same fault, its targets written the same way: it ends here.
            nemesis(1600, "stop-partition", ("partition", "stop"), Info, "h1"),
            c(1700, 1, Invoke, F::Acquire),
            c(1750, 1, Ok, F::Acquire),
            c(1800, 1, Invoke, F::Release),
            c(1801, 1, Ok, F::Release),
            c(1850, 2, Invoke, F::Acquire),
            c(1900, 2, Info, F::Acquire),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        let r = &a.recovery;
        assert_eq!(r.faults.len(), 1, "{r:?}");
        assert_eq!(r.faults[0].fault, "stop-partition");
        assert_eq!(r.faults[0].end_ns, 1600 * MS);
        assert_eq!(r.faults[0].next_acquire_ms, Some(150.0));
        assert_eq!(r.faults[0].start_ns, Some(0));
        assert_eq!(r.faults[0].acquired_during, 0, "the lock was unavailable");
        assert_eq!(r.faults[0].longest_gap_ms, Some(1600.0), "all of it");
        // Only the info inside the partition counts.
        assert_eq!(r.info_during_faults, 1);
        // 5..1500, 1700..1750 and 1850..1900.
        assert_eq!(r.unavailable_ms, 1595.0);
        assert!((r.unavailable_fraction - 1595.0 / 1900.0).abs() < 1e-12);
        // The long wait fell inside the partition: no deadlock.
        assert!(a.liveness.deadlocks.is_empty(), "{:?}", a.liveness);
        // A tight bound finds the two calm 50 ms windows only.
        let opts = AnalysisOptions {
            deadlock_bound: Some(std::time::Duration::from_millis(10)),
        };
        let d = analyze_events(&h, opts).liveness.deadlocks;
        let windows: Vec<(u64, u64)> = d.iter().map(|d| (d.start_ns / MS, d.end_ns / MS)).collect();
        assert_eq!(windows, vec![(1700, 1750), (1850, 1900)]);
        // Two clients tried; client 2 never got the lock.
        assert_eq!(a.liveness.starved_clients, 1);
        assert_eq!(a.liveness.longest_wait_ms, 1495.0);
    }

    #[test]
    fn a_nemesis_invoke_and_its_completion_are_one_fault_and_targets_may_differ() {
        use OpType::*;
        let h = numbered(vec![
            nemesis(0, "pause-server", ("pause-server", "start"), Invoke, "n1"),
            nemesis(1, "pause-server", ("pause-server", "start"), Info, "n1"),
            c(10, 1, Invoke, F::Acquire),
            c(20, 1, Info, F::Acquire),
            // Ends the pause even though its targets are written otherwise.
            nemesis(30, "resume-server", ("pause-server", "stop"), Info, "all"),
            c(40, 2, Invoke, F::Acquire),
            c(50, 2, Info, F::Acquire),
            c(60, 2, Invoke, F::Acquire),
            c(65, 2, Ok, F::Acquire),
        ]);
        let a = analyze_events(&h, AnalysisOptions::default());
        assert_eq!(a.recovery.info_during_faults, 1, "{:?}", a.recovery);
        assert_eq!(a.recovery.faults.len(), 1);
        assert_eq!(a.recovery.faults[0].next_acquire_ms, Some(35.0));
        // Client 1 tried once and never got it; client 2 got it once.
        assert_eq!(a.liveness.starved_clients, 1);
        assert!((a.liveness.jain_index - 0.5).abs() < 1e-12);
    }

    #[test]
    fn equal_shares_are_perfectly_fair() {
        use OpType::*;
        let mut h = Vec::new();
        let mut t = 0;
        for _ in 0..3 {
            for p in 1..=3 {
                h.push(c(t, p, Invoke, F::Acquire));
                h.push(c(t + 1, p, Ok, F::Acquire));
                h.push(c(t + 2, p, Invoke, F::Release));
                h.push(c(t + 3, p, Ok, F::Release));
                t += 4;
            }
        }
        let a = analyze_events(&numbered(h), AnalysisOptions::default());
        assert_eq!(a.liveness.jain_index, 1.0);
        assert_eq!(
            (a.liveness.min_acquisitions, a.liveness.max_acquisitions),
            (3, 3)
        );
        assert_eq!(a.liveness.starved_clients, 0);
        // Each of the nine acquires waited 1 ms on a free lock.
        assert_eq!(a.recovery.unavailable_ms, 9.0);
    }
}
