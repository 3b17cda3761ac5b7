//! Fencing: did the protected resource stay safe? (issue 6, item 3)
//!
//! SCAFFOLD: types fixed; the checker is to be written.

use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::Process;

/// What fencing did for the resource in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FencingOutcome {
    /// No write carried a fencing token: the backend has none.
    #[default]
    NoFence,
    /// Tokens only grew and exclusion held.
    Safe,
    /// Exclusion was violated, but the resource rejected every stale write.
    ExclusionViolatedResourceSafe,
    /// The resource accepted a write with a token smaller than one it had
    /// accepted before.
    StaleWritesAccepted,
}

/// A write accepted with a token smaller than one accepted before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FenceWitness {
    /// The key.
    pub key: String,
    /// Who wrote.
    pub process: Process,
    /// Index of the write's `ok` event.
    pub index: u64,
    /// Its time.
    pub time_ns: u64,
    /// The token it carried.
    pub fence: u64,
    /// The largest token accepted before it on that key.
    pub max_before: u64,
}

/// The fencing check's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FencingReport {
    /// `invalid` when stale writes were accepted; `valid` otherwise
    /// (including when there is no fence: see `outcome`).
    pub verdict: Option<Verdict>,
    /// What fencing did.
    pub outcome: FencingOutcome,
    /// Writes to the resource.
    pub writes: u64,
    /// Writes it accepted.
    pub accepted: u64,
    /// Writes it rejected (stale token).
    pub rejected: u64,
    /// Accepted writes whose token was smaller than an earlier accepted one.
    pub stale_accepted: u64,
    /// Writes without a token.
    pub unfenced: u64,
    /// The first stale accepted writes.
    pub witnesses: Vec<FenceWitness>,
}
