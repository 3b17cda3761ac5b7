//! `summary.json` and `matrix.json`: the contracts that outside tools
//! read (docs/design.md).

pub mod atlas;
pub mod matrix;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::{FencingReport, Liveness, OwnershipReport, Recovery, Verdict, Witness};
use crate::error::{Error, Result};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

/// One point of a latency distribution: `percentile` (0..100) and the
/// latency at or below which that share of samples fell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Percentile, 0..=100.
    pub percentile: f64,
    /// Latency in microseconds.
    pub us: u64,
}

/// A server the run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Its name in the cluster (`redis-1`).
    pub name: String,
    /// `host:port` the clients used.
    pub addr: String,
    /// The version the server reported.
    pub version: String,
    /// Whether lockbench started it (false for external endpoints).
    pub started_by_lockbench: bool,
    /// Its log file, relative to the run directory (when started here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// One fault the nemesis injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The fault's name.
    pub fault: String,
    /// When it started, ns since the run's start.
    pub start_ns: u64,
    /// When it ended (None: lasted to the end of the run).
    #[serde(default)]
    pub end_ns: Option<u64>,
    /// What it targeted.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Why it could not act (or could not be undone), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FaultRecord {
    /// How reports label it: the fault and what it hit
    /// (`isolate-server server-3 (leader)`), or how many it hit.
    pub fn label(&self) -> String {
        match self.targets.len() {
            0 => self.fault.clone(),
            1..=3 => format!("{} {}", self.fault, self.targets.join(", ")),
            n => format!("{} ({n} targets)", self.fault),
        }
    }
}

/// The damage of the counter workload: every holder read the counter,
/// waited, and wrote it back plus one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LostUpdates {
    /// Increments whose write the resource accepted.
    pub acknowledged: u64,
    /// The counter's value at the end, summed over keys.
    pub final_value: u64,
    /// `acknowledged - final_value`: increments overwritten by a holder
    /// that read a stale value.
    pub lost: u64,
}

/// Everything a run measured and concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file the run came from.
    pub scenario_file: String,
    /// The backend.
    pub backend: String,
    /// For a lock library's driver backend: the library and its version,
    /// as its driver named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<Library>,
    /// The seed; running again with it repeats the run's random choices.
    pub seed: u64,
    /// What the scenario expects.
    pub expect: Verdict,
    /// What the checkers found.
    pub verdict: Verdict,
    /// Whether `verdict == expect`.
    pub matches_expectation: bool,
    /// Number of mutual-exclusion violations (overlapping pairs of holds).
    pub violations: u64,
    /// The violations grouped by the hold the others overlapped, one
    /// sentence each: a reading aid beside `violations`, not a verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<crate::check::Incident>,
    /// The first violations, with their evidence.
    pub witnesses: Vec<Witness>,
    /// Why the verdict is unknown, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_reason: Option<String>,
    /// Violations by cause: `lease-expired`, `lock-lost`, `unknown-lease`.
    #[serde(default)]
    pub violation_classes: BTreeMap<String, u64>,
    /// Releases that succeeded for a process that did not hold the lock.
    #[serde(default)]
    pub ownership: OwnershipReport,
    /// What fencing tokens did for the protected resource.
    #[serde(default)]
    pub fencing: FencingReport,
    /// Deadlock, starvation, fairness, longest wait.
    #[serde(default)]
    pub liveness: Liveness,
    /// Recovery after each fault, unavailability, `info` during faults.
    #[serde(default)]
    pub recovery: Recovery,
    /// With the counter workload: increments acknowledged against the
    /// counter's final value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_updates: Option<LostUpdates>,
    /// Things the reader should know about this run (faults that could not
    /// apply to this backend, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Operation counts: `ops[f][type]`.
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Acquire latency from when the client meant to start to the `ok`.
    pub acquire_latency_us: Percentiles,
    /// The acquire latency distribution, for the percentile chart.
    pub acquire_latency_curve: Vec<CurvePoint>,
    /// Release latency.
    pub release_latency_us: Percentiles,
    /// How long holders held (acquire ok to release invoke).
    pub hold_time_us: Percentiles,
    /// Successful acquisitions per second over the run.
    pub throughput_per_s: f64,
    /// Successful acquisitions in each second of the run.
    pub throughput_timeline: Vec<u64>,
    /// Wall time of the run in seconds: from the clients' start until they
    /// all stopped and the history was on disk.
    pub duration_s: f64,
    /// Clients, hosts and keys.
    pub clients: u32,
    /// Number of hosts the clients were grouped into.
    pub hosts: u32,
    /// The lock keys.
    pub keys: Vec<String>,
    /// Lease (TTL) in milliseconds.
    pub lease_ms: u64,
    /// The faults injected, in order.
    pub faults: Vec<FaultRecord>,
    /// The servers used, with their versions.
    pub servers: Vec<ServerInfo>,
    /// The replicated topology the servers formed (`None`: single
    /// servers, `topology = "single"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Events in history.jsonl.
    pub history_events: u64,
    /// Whether the run was stopped early (Ctrl-C).
    #[serde(default)]
    pub interrupted: bool,
    /// lockbench's version.
    pub lockbench_version: String,
    /// A run merged from several agents' histories: each agent's clock
    /// and the overlaps its bound leaves open (`None`: one process ran
    /// every client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentsReport>,
}

/// The clocks of a run merged from agents, and what their bounds left
/// open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentsReport {
    /// Each agent's clock facts (`agent.json`), agent 1 first.
    pub clocks: Vec<crate::history::AgentClock>,
    /// Overlaps that hold under every offset within the bounds: the
    /// violations.
    pub definite: u64,
    /// Of the definite ones, those between two agents' clients.
    #[serde(default)]
    pub definite_across: u64,
    /// Overlaps that some offset within the bounds explains away.
    pub possible: u64,
    /// The first possible overlaps.
    pub possible_examples: Vec<crate::check::uncertain::PossibleOverlap>,
}

/// A lock library, as its driver names it in `init_ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    /// Its name (`redis-py`).
    pub name: String,
    /// Its version.
    pub version: String,
}

impl std::fmt::Display for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

impl Summary {
    /// The backend, with its library and version where it is a driver
    /// (`redis-py (redis-py 8.1.0)`).
    pub fn backend_label(&self) -> String {
        match &self.library {
            Some(l) => format!("{} ({l})", self.backend),
            None => self.backend.clone(),
        }
    }

    /// Reads `summary.json`.
    pub fn read(path: &Path) -> Result<Summary> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::RunDir {
            path: path.to_path_buf(),
            message: format!("not a lockbench summary.json: {e}"),
        })
    }

    /// Writes `summary.json`, pretty-printed.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }
}
