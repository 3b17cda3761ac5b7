//! `matrix.json` (the contract of the property matrix): one row per
//! backend, one measured cell per property, each linked to the file that
//! measured it. Written by the matrix run, read by its page and by the
//! comparison page.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

// The column headings in `PROPERTIES` say "8 s".
const _: () = assert!(MEMBER_FAULT_FOR.as_secs() == 8);

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
    ("member_lost", "one member killed (-9) for 8 s"),
    ("member_cut", "one member cut from its peers for 8 s"),
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
    /// One row per backend.
    pub rows: Vec<Row>,
}
