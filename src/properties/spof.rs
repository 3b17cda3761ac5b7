//! The single-point-of-failure columns (seed 003, issue 5): one member of
//! the backend's servers is lost (`kill -9`, restarted when the fault
//! ends) or cut from its peers (`isolate-server`, healed when it ends)
//! while the scenario's clients contend for one key.
//!
//! Each is an ordinary run ([`run_backend`]) of a copy of the scenario
//! with one fault in its middle, on the backend's replicated topology when
//! lockbench has one ([`replicated_shape`]) and on its single server
//! otherwise. The cell reads three things from that run: its verdict
//! (exclusion kept or not), the acquires whose `ok` falls inside the
//! fault's window in `history.jsonl` (available or not while the member is
//! gone), and the time from the fault's end to the next acquire
//! (`summary.recovery`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::{Cell, fmt_ms, relative};
use crate::backend;
use crate::check::Verdict;
use crate::cluster::topology::{Shape, replicated_shape};
use crate::error::{Error, Result};
use crate::history::{F, OpType, Process, stream_jsonl};
use crate::scenario::{
    FaultKind, FaultSpec, KeyChoice, RunOptions, RunOutcome, Scenario, Topology, run_backend,
};
use crate::summary::Summary;

/// How long each member-fault run lasts: the fault, with time on both
/// sides to see the lock before it and coming back after it.
pub const MEMBER_FAULT_RUN: Duration = Duration::from_secs(16);

/// When the fault starts, since the clients started (about a third of the
/// run).
pub const MEMBER_FAULT_AT: Duration = Duration::from_secs(4);

/// How long the member stays lost or cut: long enough for a ZooKeeper
/// ensemble to elect a new leader (3–8 s measured here) and for Sentinel to
/// fail over (down-after 1 s, then its own election).
pub const MEMBER_FAULT_FOR: Duration = Duration::from_secs(8);

/// A Sentinel run with its primary cut lasts this long: Sentinel demotes
/// the old primary (and closes its clients' connections, sending them to
/// the new one) only 8-10 s after the cut heals, and that is when a lock
/// the old primary granted during the cut meets a lock the new one grants.
pub const SENTINEL_CUT_RUN: Duration = Duration::from_secs(28);

/// Clients of a member-fault run, at most, and how long each holds: a
/// holder must be mid-hold when a failover lands for a lost lock to show
/// (with the properties' 0 ms holds, nobody ever is).
const MEMBER_FAULT_CLIENTS: u32 = 8;
const MEMBER_FAULT_HOLD: Duration = Duration::from_millis(300);

// The column headings in `PROPERTIES` say "8 s".
const _: () = assert!(MEMBER_FAULT_FOR.as_secs() == 8);

/// The two member faults, one column each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberFault {
    /// One member killed (-9), restarted when the fault ends.
    Lost,
    /// One member cut from its peers; clients still reach it.
    Cut,
}

impl MemberFault {
    fn kind(self) -> FaultKind {
        match self {
            MemberFault::Lost => FaultKind::KillServer,
            MemberFault::Cut => FaultKind::IsolateServer,
        }
    }

    /// The run's name suffix.
    fn slug(self) -> &'static str {
        match self {
            MemberFault::Lost => "member-lost",
            MemberFault::Cut => "member-cut",
        }
    }

    fn during(self) -> &'static str {
        match self {
            MemberFault::Lost => "while down",
            MemberFault::Cut => "while cut",
        }
    }

    fn end(self) -> &'static str {
        match self {
            MemberFault::Lost => "the restart began",
            MemberFault::Cut => "the heal",
        }
    }
}

/// Where a backend's member faults run, for the row: the replicated
/// topology's description, "single server", or `None` (no server).
pub(super) fn topology(backend: &str) -> Option<String> {
    let info = backend::info(backend)?;
    info.server?;
    Some(match replicated_shape(backend) {
        Some(shape) => shape.describe(),
        None if info.servers > 1 => format!("{} servers", info.servers),
        None => "single server".to_string(),
    })
}

/// The member a fault targets in `shape`, or why the fault does not apply.
fn target(fault: MemberFault, shape: Option<Shape>) -> std::result::Result<&'static str, String> {
    match (fault, shape) {
        // Independent masters: nobody leads, and nothing links them.
        (MemberFault::Cut, Some(Shape::Masters(n))) => {
            Err(format!("no peers ({n} independent masters)"))
        }
        (MemberFault::Cut, None) => Err("no peers (single server)".to_string()),
        (MemberFault::Lost, Some(Shape::Masters(_))) => Ok("minority"),
        (_, Some(_)) => Ok("leader"),
        (MemberFault::Lost, None) => Ok("server-1"),
    }
}

/// Measures one member-fault column for `name`: a run of `scenario`'s
/// clients on one key with the fault in its middle. Failures of the run
/// become the cell's text (the rest of the row still stands), except a
/// missing server that the user required.
pub(super) async fn measure(
    scenario: &Scenario,
    name: &str,
    seed: u64,
    opts: &RunOptions,
    dir: &Path,
    fault: MemberFault,
) -> Result<Cell> {
    let has_server = backend::info(name).is_some_and(|i| i.server.is_some());
    if !has_server {
        return Ok(Cell::new(
            "no server",
            None,
            serde_json::json!({"applies": false, "why": "no server"}),
        ));
    }
    let shape = replicated_shape(name);
    let target = match target(fault, shape) {
        Ok(t) => t,
        Err(why) => {
            return Ok(Cell::new(
                why.clone(),
                None,
                serde_json::json!({"applies": false, "why": why}),
            ));
        }
    };
    let mut s = scenario.clone();
    s.name = format!("{}-{}", scenario.name, fault.slug());
    s.backends = vec![name.to_string()];
    s.keys = vec!["lock".into()];
    s.key_choice = KeyChoice::Random;
    s.expect = Verdict::Valid;
    s.expect_backend.clear();
    s.duration = match (shape, fault) {
        (Some(Shape::Sentinel { .. }), MemberFault::Cut) => SENTINEL_CUT_RUN,
        _ => MEMBER_FAULT_RUN,
    };
    s.clients = s.clients.min(MEMBER_FAULT_CLIENTS);
    s.hosts = s.hosts.min(s.clients);
    s.hold = crate::scenario::TimeDist::Fixed {
        value: MEMBER_FAULT_HOLD,
    };
    s.ops = None;
    s.history = true;
    // The probes start their own servers too: a fault needs servers
    // lockbench can kill and cut.
    s.endpoints.remove(name);
    s.random_nemesis = None;
    s.topology = if shape.is_some() {
        Topology::Replicated
    } else {
        Topology::Single
    };
    s.nemesis = vec![FaultSpec {
        at: MEMBER_FAULT_AT,
        kind: fault.kind(),
        targets: vec![target.to_string()],
        duration: MEMBER_FAULT_FOR,
    }];
    let (run_dir, summary) = match run_backend(&s, name, seed, opts).await {
        Ok(RunOutcome::Completed { run_dir, summary }) => (run_dir, summary),
        Ok(RunOutcome::Skipped { reason }) => {
            return Ok(Cell::new(
                "not run",
                None,
                serde_json::json!({"skipped": reason}),
            ));
        }
        Err(e @ Error::MissingServer { .. }) => return Err(e),
        Err(e) => {
            return Ok(Cell::new(
                format!("run failed: {e}"),
                None,
                serde_json::json!({"error": e.to_string(), "target": target}),
            ));
        }
    };
    let window = acquires_in_window(&run_dir.join("history.jsonl"), &summary, fault);
    let cell = judge(&summary, window, fault, shape, target);
    Ok(cell.linked(Some(relative(dir, &run_dir.join("index.html")))))
}

/// What the history says about the fault's window: from the moment the
/// member was killed or cut (the start event is recorded once that is
/// done) to the moment its restart or heal began. The end event comes
/// later, once the restarted member serves again, and clients may have
/// acquired in between: those acquires are not "while down".
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// The fault's start and end, ns since the run started.
    start_ns: u64,
    end_ns: u64,
    /// Acquires whose `ok` fell inside it.
    acquired: u64,
    /// The longest stretch inside it with no acquire `ok`, ns.
    longest_gap_ns: u64,
    /// From its end to the first acquire `ok` after it, ns (`None`: none
    /// followed).
    recovered_ns: Option<u64>,
}

/// Counts the acquires inside the window of the run's `fault`, from the
/// history on disk; `Err` says why there is no window.
fn acquires_in_window(
    history: &Path,
    summary: &Summary,
    fault: MemberFault,
) -> std::result::Result<Window, String> {
    let record = summary
        .faults
        .iter()
        .find(|f| f.fault == fault.kind().name())
        .ok_or_else(|| "the fault was not injected".to_string())?;
    // Each client's operations do not overlap (history v1): its last
    // acquire invoke is the one an `ok` completes.
    let mut invoked: HashMap<Process, u64> = HashMap::new();
    let mut oks = Vec::new();
    let mut last_ns = 0;
    stream_jsonl(history, |e| {
        last_ns = last_ns.max(e.time_ns);
        if e.f != F::Acquire {
            return;
        }
        match e.kind {
            OpType::Invoke => {
                invoked.insert(e.process, e.time_ns);
            }
            OpType::Ok => oks.push(Acquired {
                invoke_ns: invoked.get(&e.process).copied().unwrap_or(e.time_ns),
                ok_ns: e.time_ns,
            }),
            OpType::Fail | OpType::Info => {}
        }
    })
    .map_err(|e| e.to_string())?;
    let start_ns = record.start_ns;
    // The planned end, unless the run stopped first; a fault still on at
    // the end of the history lasted that long.
    let planned = start_ns.saturating_add(MEMBER_FAULT_FOR.as_nanos() as u64);
    let end_ns = record.end_ns.unwrap_or(last_ns).min(planned).max(start_ns);
    Ok(window_of(&oks, start_ns, end_ns))
}

/// One successful acquire: when it was asked for and when it was granted,
/// ns since the run started.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Acquired {
    invoke_ns: u64,
    ok_ns: u64,
}

/// The acquires among `oks` asked for and granted inside
/// `[start_ns, end_ns]`: one asked for before the fault and granted just
/// after it may have been served before the member went (its `ok` is
/// stamped when the client records it), so it does not count.
fn window_of(oks: &[Acquired], start_ns: u64, end_ns: u64) -> Window {
    let window = start_ns..=end_ns;
    let mut inside: Vec<u64> = oks
        .iter()
        .filter(|a| window.contains(&a.invoke_ns) && window.contains(&a.ok_ns))
        .map(|a| a.ok_ns)
        .collect();
    inside.sort_unstable();
    let mut longest = 0;
    let mut prev = start_ns;
    for &t in inside.iter().chain(std::iter::once(&end_ns)) {
        longest = longest.max(t - prev);
        prev = t;
    }
    let recovered_ns = oks
        .iter()
        .map(|a| a.ok_ns)
        .filter(|&t| t >= end_ns)
        .min()
        .map(|t| t - end_ns);
    Window {
        start_ns,
        end_ns,
        acquired: inside.len() as u64,
        longest_gap_ns: longest,
        recovered_ns,
    }
}

/// The cell for one member-fault run.
fn judge(
    summary: &Summary,
    window: std::result::Result<Window, String>,
    fault: MemberFault,
    shape: Option<Shape>,
    target: &str,
) -> Cell {
    let record = summary
        .faults
        .iter()
        .find(|f| f.fault == fault.kind().name());
    let hit = record.map(|r| r.targets.join(", ")).unwrap_or_default();
    let member = match shape {
        Some(Shape::Masters(n)) => {
            let k = record.map_or(0, |r| r.targets.len());
            format!("{hit}: {k} of {n} masters, a minority")
        }
        None => format!("{hit}, the only server"),
        Some(_) => hit.clone(),
    };
    let exclusion = match summary.verdict {
        Verdict::Valid => "exclusion kept".to_string(),
        // By cause: `lock-lost` is the servers losing a held lock;
        // `lease-expired` is a holder whose lease ran out first (one whose
        // release could not reach a dead server, say).
        Verdict::Invalid => format!(
            "exclusion broken ({} violation{}: {})",
            summary.violations,
            if summary.violations == 1 { "" } else { "s" },
            summary
                .violation_classes
                .iter()
                .map(|(class, n)| format!("{n} {class}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Verdict::Unknown => "exclusion unknown".to_string(),
    };
    // The runner's measure, from the end event (after the restarted
    // member serves again): kept in the data; the cell counts from the
    // moment the restart or heal began.
    let end_name = fault.kind().event_names().1;
    let next_acquire_ms = summary
        .recovery
        .faults
        .iter()
        .find(|r| r.fault == end_name)
        .and_then(|r| r.next_acquire_ms);
    let mut data = serde_json::json!({
        "applies": true,
        "fault": fault.kind().name(),
        "target": target,
        "targets": record.map(|r| r.targets.clone()).unwrap_or_default(),
        "topology": summary.topology,
        "fault_at_ms": MEMBER_FAULT_AT.as_millis() as u64,
        "fault_for_ms": MEMBER_FAULT_FOR.as_millis() as u64,
        "run_ms": MEMBER_FAULT_RUN.as_millis() as u64,
        "verdict": summary.verdict,
        "violations": summary.violations,
        "violation_classes": summary.violation_classes,
        "next_acquire_ms": next_acquire_ms,
        "unavailable_ms": summary.recovery.unavailable_ms,
        "fault_error": record.and_then(|r| r.error.clone()),
    });
    let window = match window {
        Ok(w) => w,
        Err(why) => {
            data["error"] = serde_json::json!(why);
            return Cell::new(format!("{exclusion}; {why}"), None, data);
        }
    };
    data["fault_start_ms"] = serde_json::json!(window.start_ns as f64 / 1e6);
    data["fault_end_ms"] = serde_json::json!(window.end_ns as f64 / 1e6);
    data["acquired_during_fault"] = serde_json::json!(window.acquired);
    data["longest_gap_ms"] = serde_json::json!(window.longest_gap_ns as f64 / 1e6);
    data["recovered_ms"] = serde_json::json!(window.recovered_ns.map(|ns| ns as f64 / 1e6));
    let recovery = match window.recovered_ns {
        Some(ns) => format!(
            "next acquire {} after {}",
            fmt_ms(Duration::from_nanos(ns)),
            fault.end()
        ),
        None => format!("no acquire after {}", fault.end()),
    };
    let available = window.acquired > 0;
    let availability = if available {
        format!(
            "available ({} acquired {}, longest gap {})",
            window.acquired,
            fault.during(),
            fmt_ms(Duration::from_nanos(window.longest_gap_ns))
        )
    } else {
        format!("unavailable {}", fault.during())
    };
    let mut text = format!("{member}: {exclusion}; {availability}; {recovery}");
    // A fault that could not act (or not be undone) measured something
    // else than the column says: shown, but not judged.
    let good = match record.and_then(|r| r.error.as_ref()) {
        Some(e) => {
            text = format!("fault error: {e}; {text}");
            None
        }
        None => match (summary.verdict, available) {
            (Verdict::Invalid, _) | (_, false) => Some(false),
            (Verdict::Valid, true) => Some(true),
            (Verdict::Unknown, true) => None,
        },
    };
    Cell::new(text, good, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_acquires_and_the_longest_gap() {
        let at = |t: &[u64]| -> Vec<Acquired> {
            t.iter()
                .map(|&t| Acquired {
                    invoke_ns: t - 1,
                    ok_ns: t,
                })
                .collect()
        };
        let w = window_of(&at(&[5, 20, 12, 40, 100]), 10, 50);
        assert_eq!(w.acquired, 3);
        // 10 → 12 → 20 → 40 → 50: the longest stretch is 20 → 40.
        assert_eq!(w.longest_gap_ns, 20);
        assert_eq!(w.recovered_ns, Some(50));
        let empty = window_of(&at(&[1, 2, 60]), 10, 50);
        assert_eq!(empty.acquired, 0);
        assert_eq!(empty.longest_gap_ns, 40);
        assert_eq!(empty.recovered_ns, Some(10));
        assert_eq!(window_of(&at(&[1]), 10, 50).recovered_ns, None);
        // Asked for before the fault, granted inside it: not counted.
        let early = [Acquired {
            invoke_ns: 9,
            ok_ns: 11,
        }];
        assert_eq!(window_of(&early, 10, 50).acquired, 0);
    }

    #[test]
    fn each_topology_has_its_target() {
        let ensemble = Some(Shape::Ensemble(3));
        assert_eq!(target(MemberFault::Lost, ensemble), Ok("leader"));
        assert_eq!(target(MemberFault::Cut, ensemble), Ok("leader"));
        let masters = Some(Shape::Masters(5));
        assert_eq!(target(MemberFault::Lost, masters), Ok("minority"));
        assert!(target(MemberFault::Cut, masters).is_err());
        assert_eq!(target(MemberFault::Lost, None), Ok("server-1"));
        assert_eq!(
            target(MemberFault::Cut, None),
            Err("no peers (single server)".to_string())
        );
    }
}
