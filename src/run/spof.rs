//! The single-point-of-failure columns (seed 003): one member of
//! the backend's servers is lost (`kill -9`, restarted when the fault
//! ends) or cut from its peers (`isolate-server`, healed when it ends)
//! while the scenario's clients contend for one key.
//!
//! Each is an ordinary run ([`run_backend`]) of a copy of the scenario
//! with one fault in its middle, on the backend's replicated topology when
//! lockbench has one (the registry's `replicated`) and on its single server
//! otherwise. The cell reads three things from that run's summary: its
//! verdict (exclusion kept or not), and from the checker's recovery entry
//! for the fault (`summary.recovery.faults`) the acquires asked for and
//! granted while the member was gone, with the longest stretch without
//! one (available or not), and the time from the fault's end (its restart
//! or heal beginning) to the next acquire.

use std::path::Path;
use std::time::Duration;

use super::properties::relative;
use super::runner::{RunOptions, RunOutcome, run_backend};
use crate::backend;
use crate::check::Verdict;
use crate::cluster::Topology;
use crate::cluster::topology::Shape;
use crate::error::{Error, Result};
use crate::fault::{FaultKind, FaultSpec};
use crate::probe::fmt_ms;
use crate::scenario::Scenario;
use crate::summary::Summary;
use crate::summary::matrix::{Cell, MemberFaultTimes};

/// How long each member-fault run lasts: the fault, with time on both
/// sides to see the lock before it and coming back after it.
const MEMBER_FAULT_RUN: Duration = Duration::from_secs(16);

/// When the fault starts, since the clients started (about a third of the
/// run).
const MEMBER_FAULT_AT: Duration = Duration::from_secs(4);

/// How long the member stays lost or cut: long enough for a ZooKeeper
/// ensemble to elect a new leader (3–8 s measured here) and for Sentinel to
/// fail over (down-after 1 s, then its own election).
const MEMBER_FAULT_FOR: Duration = Duration::from_secs(8);

/// The member-fault runs' timings, for `matrix.json` and its page.
pub(super) fn member_fault_times() -> MemberFaultTimes {
    MemberFaultTimes {
        run_s: MEMBER_FAULT_RUN.as_secs(),
        at_s: MEMBER_FAULT_AT.as_secs(),
        for_s: MEMBER_FAULT_FOR.as_secs(),
    }
}
use crate::workload::KeyChoice;

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

/// The two member faults, one column each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberFault {
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
pub(super) fn topology(info: &backend::BackendInfo) -> Option<String> {
    info.server?;
    Some(match info.replicated {
        Some(shape) => shape.describe(),
        None if info.servers > 1 => format!("{} servers", info.servers),
        None => "single server".to_string(),
    })
}

/// The member a fault targets in `shape`, or why the fault does not apply.
fn target(
    fault: MemberFault,
    shape: Option<Shape>,
    servers: usize,
) -> std::result::Result<&'static str, String> {
    match (fault, shape) {
        // Several servers that are not a topology lockbench can cut apart
        // (Hazelcast's CP members): a member can be lost, not cut.
        (MemberFault::Cut, None) if servers > 1 => Err(format!(
            "not measured ({servers} servers, but no replicated topology lockbench can cut)"
        )),
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
    let registry = scenario.registry();
    let info = registry.get(name);
    if info.is_none_or(|i| i.server.is_none()) {
        return Ok(Cell::new(
            "no server",
            None,
            serde_json::json!({"applies": false, "why": "no server"}),
        ));
    }
    let shape = info.and_then(|i| i.replicated);
    let servers = info.map_or(1, |i| i.servers);
    let target = match target(fault, shape, servers) {
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
    s.hold = crate::duration::TimeDist::Fixed {
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
    let window = window_of(&summary, fault);
    let cell = judge(&summary, window, fault, shape, servers, target);
    Ok(cell.linked(Some(relative(dir, &run_dir.join("index.html")))))
}

/// The fault's window, from the checker's recovery entry for it: from the
/// moment the member was killed or cut (the start event is recorded once
/// that is done) to the moment its restart or heal began.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    /// The fault's start and end, ns since the run started.
    start_ns: u64,
    end_ns: u64,
    /// Acquires asked for and granted inside it.
    acquired: u64,
    /// The longest stretch inside it with no acquire granted, ms.
    longest_gap_ms: f64,
    /// From its end to the next acquire granted, ms (`None`: none
    /// followed).
    recovered_ms: Option<f64>,
}

/// The window of the run's `fault`; `Err` says why there is none.
fn window_of(summary: &Summary, fault: MemberFault) -> std::result::Result<Window, String> {
    let end_name = fault.kind().event_names().1;
    let entry = summary
        .recovery
        .faults
        .iter()
        .find(|r| r.fault == end_name)
        .ok_or_else(|| "the fault was not injected or did not end".to_string())?;
    match (entry.start_ns, entry.longest_gap_ms) {
        (Some(start_ns), Some(longest_gap_ms)) => Ok(Window {
            start_ns,
            end_ns: entry.end_ns,
            acquired: entry.acquired_during,
            longest_gap_ms,
            recovered_ms: entry.next_acquire_ms,
        }),
        _ => Err("the fault's start is not in the history".to_string()),
    }
}

/// The cell for one member-fault run.
fn judge(
    summary: &Summary,
    window: std::result::Result<Window, String>,
    fault: MemberFault,
    shape: Option<Shape>,
    servers: usize,
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
        None if servers > 1 => format!("{hit}, one of its {servers} servers"),
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
        Verdict::NotChecked => "exclusion not checked".to_string(),
    };
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
    data["longest_gap_ms"] = serde_json::json!(window.longest_gap_ms);
    data["recovered_ms"] = serde_json::json!(window.recovered_ms);
    data["next_acquire_ms"] = serde_json::json!(window.recovered_ms);
    let recovery = match window.recovered_ms {
        Some(ms) => format!(
            "next acquire {} after {}",
            fmt_ms(Duration::from_secs_f64(ms / 1e3)),
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
            fmt_ms(Duration::from_secs_f64(window.longest_gap_ms / 1e3))
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
            (Verdict::Unknown | Verdict::NotChecked, true) => None,
        },
    };
    Cell::new(text, good, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_topology_has_its_target() {
        let ensemble = Some(Shape::Ensemble(3, crate::cluster::ServerKind::ZooKeeper));
        assert_eq!(target(MemberFault::Lost, ensemble, 1), Ok("leader"));
        assert_eq!(target(MemberFault::Cut, ensemble, 1), Ok("leader"));
        let masters = Some(Shape::Masters(5));
        assert_eq!(target(MemberFault::Lost, masters, 1), Ok("minority"));
        assert!(target(MemberFault::Cut, masters, 1).is_err());
        assert_eq!(target(MemberFault::Lost, None, 1), Ok("server-1"));
        assert_eq!(
            target(MemberFault::Cut, None, 1),
            Err("no peers (single server)".to_string())
        );
    }
}
