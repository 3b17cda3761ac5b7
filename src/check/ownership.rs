//! Ownership: a release that succeeds for a process that does not hold the
//! lock is a violation (issue 6, item 2).
//!
//! SCAFFOLD: types fixed; the checker is to be written.

use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::Process;

/// A release that succeeded (`ok`, `was_held` not false) for a process that
/// did not hold the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipViolation {
    /// The key.
    pub key: String,
    /// Who released.
    pub process: Process,
    /// Index of the release's `ok`.
    pub index: u64,
    /// Its time.
    pub time_ns: u64,
    /// Who held the key then, if anybody.
    pub holder: Option<Process>,
}

/// The ownership check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipReport {
    /// Valid, invalid, unknown.
    pub verdict: Verdict,
    /// How many such releases.
    pub violations: u64,
    /// The first few.
    pub witnesses: Vec<OwnershipViolation>,
}

impl Default for OwnershipReport {
    fn default() -> Self {
        OwnershipReport {
            verdict: Verdict::Unknown,
            violations: 0,
            witnesses: Vec::new(),
        }
    }
}
