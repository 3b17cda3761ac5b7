//! `matrix.json` (the contract of the property matrix): one row per
//! backend, one measured cell per property, each linked to the file that
//! measured it. Written by the matrix run, read by its page and by the
//! comparison page.

use serde::{Deserialize, Serialize};

/// One measured cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// What the cell shows.
    pub text: String,
    /// Whether this is the safe or expected answer (`None`: neutral).
    #[serde(default)]
    pub good: Option<bool>,
    /// The file that holds the measurement, relative to the matrix page.
    #[serde(default)]
    pub link: Option<String>,
    /// The raw measurement.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Cell {
    /// A cell without a link.
    pub fn new(text: impl Into<String>, good: Option<bool>, data: serde_json::Value) -> Self {
        Cell {
            text: text.into(),
            good,
            link: None,
            data,
        }
    }

    /// The cell, linked to the file that holds its measurement.
    pub fn linked(mut self, link: Option<String>) -> Self {
        self.link = link;
        self
    }
}

/// One backend's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The backend.
    pub backend: String,
    /// Its recipe in one line.
    pub recipe: String,
    /// Why the row is empty: its server is not installed.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Why the row is empty: measuring it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The servers the member-fault columns ran on (a replicated topology,
    /// or the single server); `None`: no server.
    #[serde(default)]
    pub topology: Option<String>,
    /// The cells by property name, in [`PROPERTIES`] order.
    pub cells: Vec<(String, Cell)>,
}

/// The properties, in column order, with their headings.
pub const PROPERTIES: &[(&str, &str)] = &[
    ("exclusion", "exclusion under contention"),
    ("expiry", "holder crashes: lock free after"),
    ("handoff", "hand-off (release → next acquire)"),
    ("waiting", "waiters"),
    ("reentrancy", "holder acquires again"),
    ("fencing", "fencing token"),
    ("restart", "server kill -9 + restart while held"),
    ("latency", "uncontended acquire+release p50 / p99"),
    ("one_key", "cycles/s, clients on one key"),
    ("own_keys", "cycles/s, each client its own key"),
    ("member_lost", "one member killed (-9)"),
    ("member_cut", "one member cut from its peers"),
];

/// The whole matrix, as written to `matrix.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// The scenario.
    pub scenario: String,
    /// The seed of the contended runs.
    pub seed: u64,
    /// Lease asked for in the probes, ms.
    pub lease_ms: u64,
    /// Clients in the contended runs.
    pub clients: u32,
    /// The member-fault runs' timings (absent in files written before
    /// 2026-12-05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_fault: Option<MemberFaultTimes>,
    /// One row per backend.
    pub rows: Vec<Row>,
}

/// When and for how long the member-fault columns' runs hit the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFaultTimes {
    /// The run's length, s.
    pub run_s: u64,
    /// When the fault starts, s since the clients started.
    pub at_s: u64,
    /// How long the member stays killed or cut, s.
    pub for_s: u64,
}

impl Matrix {
    /// The heading of property `key` (`title` from [`PROPERTIES`]), with
    /// the member-fault columns' length where the matrix knows it.
    pub fn heading(&self, key: &str, title: &str) -> String {
        match (key, self.member_fault) {
            ("member_lost" | "member_cut", Some(t)) => format!("{title} for {} s", t.for_s),
            _ => title.to_string(),
        }
    }
}
