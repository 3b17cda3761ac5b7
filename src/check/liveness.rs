//! Liveness and recovery, measured from the history (issue 6 item 6,
//! issue 4 item 5).
//!
//! SCAFFOLD: types fixed; the measures are to be written.

use serde::{Deserialize, Serialize};

use crate::history::Process;

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
}
