//! Histories recorded by several agents, each with its own clock, put on
//! one timeline.
//!
//! An agent (`lockbench run --agent I/N`) runs the clients whose process
//! ids are `I − 1` modulo `N`, stamps its events from its own monotonic
//! clock, and writes beside its history the facts of its clock
//! ([`AgentClock`], `agent.json`): the wall-clock instant its run clock
//! started, its wall clock's offset to a reference and the bound on that
//! offset, measured before the start and after the end. [`merge`] maps each
//! agent's times onto the reference's timeline through those facts; the
//! times are right only within each agent's [`AgentClock::bound_ns`], which
//! the mutual-exclusion check of merged histories widens by
//! (`check::uncertain`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Event, Process};
use crate::error::{Error, Result};

/// The file beside an agent's history that holds its [`AgentClock`].
pub const AGENT_FILE: &str = "agent.json";

/// One measurement of a wall clock against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSample {
    /// The reference's time minus the agent's wall clock, in ns.
    pub offset_ns: i64,
    /// How far the true offset can be from `offset_ns`, in ns (half the
    /// round trip of the best exchange, or the declared bound).
    pub bound_ns: u64,
}

/// The clock facts of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentClock {
    /// The agent's number, 1 to `count`.
    pub index: u32,
    /// How many agents share the run.
    pub count: u32,
    /// Where its offsets were measured against: `host:port` of a
    /// lockbench reference, or `none` (offset 0, bound declared).
    pub reference: String,
    /// The agent's wall clock when its run clock started (ns since the
    /// Unix epoch): event time 0 of its history.
    pub start_wall_ns: i64,
    /// The offset measured before the start.
    pub start: ClockSample,
    /// The offset measured after the end (`None`: the run ended before it
    /// could be measured).
    pub end: Option<ClockSample>,
    /// The bound the user declared (`--clock-bound`), in ns: the agent's
    /// bound is never below it.
    pub declared_bound_ns: u64,
    /// A deliberate error added to the agent's wall clock
    /// (`--clock-offset`, to test the check), in ns.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clock_offset_ns: i64,
    /// How late the agent started after the agreed instant, in ns.
    #[serde(default)]
    pub started_late_ns: u64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl AgentClock {
    /// The reference time of the agent's event time 0, in ns since the
    /// epoch.
    pub fn origin_ns(&self) -> i64 {
        self.start_wall_ns.saturating_add(self.start.offset_ns)
    }

    /// How far the agent's merged times can be from the reference's, in
    /// ns: the start measurement's bound, or, if the end measurement
    /// disagrees with where the start's mapping puts the end (the clock
    /// drifted or was stepped), that disagreement plus the end's bound;
    /// never below the declared bound.
    pub fn bound_ns(&self) -> u64 {
        let drift = self.end.map_or(0, |end| {
            (end.offset_ns.saturating_sub(self.start.offset_ns)).unsigned_abs() + end.bound_ns
        });
        self.start.bound_ns.max(drift).max(self.declared_bound_ns)
    }

    /// Which agent recorded process `p` (1-based), by the ids' rule.
    pub fn agent_of(p: Process, count: u32) -> u32 {
        match p {
            Process::Client(id) => (id % u64::from(count.max(1))) as u32 + 1,
            Process::Nemesis => 1,
        }
    }

    /// Reads `agent.json` of a run directory.
    pub fn read(run_dir: &Path) -> Result<AgentClock> {
        let path = run_dir.join(AGENT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::RunDir {
            path: path.clone(),
            message: format!("not a lockbench agent.json: {e}"),
        })
    }

    /// Writes `agent.json` into a run directory.
    pub fn write(&self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join(AGENT_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
    }
}

/// Puts the agents' histories on one timeline: each agent's event times
/// shifted by where its time 0 falls on the reference's clock (the
/// earliest agent's at 0), merged in time order (an agent's own order kept
/// on ties), and numbered again. Nemesis events are taken from agent 1
/// only, which runs the faults.
pub fn merge(agents: &[(AgentClock, Vec<Event>)]) -> Result<Vec<Event>> {
    let Some(origin) = agents.iter().map(|(c, _)| c.origin_ns()).min() else {
        return Ok(Vec::new());
    };
    let mut all = Vec::with_capacity(agents.iter().map(|(_, e)| e.len()).sum());
    for (clock, events) in agents {
        let shift = u64::try_from(clock.origin_ns() - origin).unwrap_or(0);
        for e in events {
            if e.process == Process::Nemesis && clock.index != 1 {
                continue;
            }
            if let Process::Client(id) = e.process
                && AgentClock::agent_of(e.process, clock.count) != clock.index
            {
                return Err(Error::io(
                    "merge",
                    std::io::Error::other(format!(
                        "agent {}/{} recorded process {id}, which is not one of its ids \
                         (id modulo {} must be {})",
                        clock.index,
                        clock.count,
                        clock.count,
                        clock.index - 1
                    )),
                ));
            }
            let mut e = e.clone();
            e.time_ns = e.time_ns.saturating_add(shift);
            all.push((e.time_ns, clock.index, e.index, e));
        }
    }
    all.sort_by_key(|(t, agent, index, _)| (*t, *agent, *index));
    Ok(all
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, _, mut e))| {
            e.index = i as u64;
            e
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{F, OpType};

    fn clock(index: u32, start_wall_ns: i64, offset_ns: i64) -> AgentClock {
        AgentClock {
            index,
            count: 2,
            reference: "none".into(),
            start_wall_ns,
            start: ClockSample {
                offset_ns,
                bound_ns: 10,
            },
            end: Some(ClockSample {
                offset_ns: offset_ns + 30,
                bound_ns: 5,
            }),
            declared_bound_ns: 0,
            clock_offset_ns: 0,
            started_late_ns: 0,
        }
    }

    #[test]
    fn times_are_shifted_onto_the_reference_and_merged_in_order() {
        // Agent 1 starts at wall 1000 with offset +100 (reference 1100);
        // agent 2 at wall 1050 with offset 0 (reference 1050): agent 2 is
        // the origin, agent 1's times move by 50.
        let a = vec![Event::new(
            0,
            Process::Client(0),
            OpType::Invoke,
            F::Acquire,
        )];
        let b = vec![
            Event::new(10, Process::Client(1), OpType::Invoke, F::Acquire),
            Event::new(60, Process::Client(1), OpType::Ok, F::Acquire),
        ];
        let merged = merge(&[(clock(1, 1000, 100), a), (clock(2, 1050, 0), b)]).unwrap();
        let got: Vec<(u64, u64, Process)> = merged
            .iter()
            .map(|e| (e.index, e.time_ns, e.process))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 10, Process::Client(1)),
                (1, 50, Process::Client(0)),
                (2, 60, Process::Client(1)),
            ]
        );
        // The end measurement moved by 30 with a bound of 5: 35 > 10.
        assert_eq!(clock(1, 0, 0).bound_ns(), 35);
    }

    #[test]
    fn a_process_outside_the_agent_s_ids_is_refused() {
        let a = vec![Event::new(
            0,
            Process::Client(1),
            OpType::Invoke,
            F::Acquire,
        )];
        let e = merge(&[(clock(1, 0, 0), a)]).unwrap_err();
        assert!(e.to_string().contains("not one of its ids"), "{e}");
    }
}
