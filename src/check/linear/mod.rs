//! Linearizability against an owner-aware mutex model: the model (the
//! holder of a key, and what each operation needs and leaves) is
//! `model.rs`; the search over one key's operations is `search.rs`.
//!
//! # Model
//!
//! Per key, the state is the holder: nobody, or one process. The history's
//! lock operations act on it:
//!
//! | operation | needs | leaves |
//! | --- | --- | --- |
//! | `acquire` `ok` by p | nobody, or p (reentrant) | p |
//! | `release` `ok` by p | p | nobody |
//! | `release` `ok` with `{"was_held": false}` by p | anything | nobody if p held, else unchanged |
//! | `crash` of p (instantaneous, at its time) | anything | nobody if p held, else unchanged |
//! | `lost` of p on the key (instantaneous) | anything | nobody if p held, else unchanged |
//! | p's next `acquire` invoke after its `release` `fail`ed (instantaneous, at the invoke) | anything | nobody if p held, else unchanged |
//!
//! `fail` completions did not happen and are dropped. An operation that
//! ended `info`, or was still in flight at a crash or at the end of the
//! history, is *optional*: it took effect at one point after its invoke, or
//! never. Its window closes at the same process's next operation on that
//! key (or never, if there is none): the process has moved on, and owner
//! tokens belong to one acquisition, so a late request cannot touch a later
//! one. (In Jepsen's histories a process whose operation ended `info` never
//! issues another, so there the window is open to the end, as Knossos and
//! Porcupine treat it.) This is also what makes the verdict agree with the
//! direct rule of docs/design.md, which ends a hold at the invoke of a release
//! that did not fail: a window open to the end would let a timed-out
//! release free the same client's *next* hold. Writes, renews and nemesis
//! events do not change the holder and are left out.
//!
//! Real time: operation a must precede b when a returned strictly before b
//! was invoked. Equal times are concurrent, so an `acquire` `ok` at the very
//! time the previous holder invoked its release is a clean hand-off, as the
//! direct checker's half-open holds say. One process's operations also keep
//! their program order when their times are equal.
//!
//! # Search
//!
//! Keys are checked one at a time (P-compositionality: a history is
//! linearizable iff each key's sub-history is). Per key, the search is
//! Wing & Gong's, in the form of Lowe's "just-in-time" linearization as
//! Porcupine implements it: the calls and returns sorted by time in a
//! doubly linked list; walk it; at a call, try the operation on the model
//! and, if it fits, lift it out and restart from the head; at a return of
//! an operation not yet placed, backtrack. Each visited (set of placed
//! operations, holder) pair is memoised so that no state is explored twice.
//! The set is kept as a 128-bit Zobrist hash (XOR of one random value per
//! operation), not as a bitset: O(1) per step, at a collision chance of about
//! n²/2¹²⁹ for n states. An optional operation whose window closes is
//! lifted out as "never happened" (no choice, so backtracking steps over
//! it); one whose window never closes is simply left out at the end.
//!
//! Pruning: an optional `acquire` by p is dropped before the search when no
//! `release` `ok` (one that needs p as holder) of p follows its invoke on
//! that key: "nobody holds" allows every operation that "p holds" allows
//! except such a release, so applying the acquire can never help.

mod model;
mod search;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Verdict;
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Result;
use crate::history::{Event, read_jsonl, stream_refs};
use model::{Splitter, per_key_ops};
use search::{KeyOutcome, Meter, check_key};

/// Limits on the search.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Give up (verdict `unknown`) after this long.
    pub time: Duration,
    /// Or after visiting this many search states.
    pub states: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            time: Duration::from_secs(60),
            states: 10_000_000,
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearResult {
    /// Valid, invalid or unknown (budget).
    pub verdict: Verdict,
    /// Keys checked.
    pub keys: u64,
    /// For an invalid history: the key that failed.
    pub key: Option<String>,
    /// For an invalid history: how many of that key's operations the
    /// longest linearizable prefix holds.
    pub longest_prefix: Option<u64>,
    /// Event indices (invokes) of the operations that cannot be placed.
    pub unplaceable: Vec<u64>,
    /// Why unknown.
    pub reason: Option<String>,
}

impl LinearResult {
    fn unknown(keys: u64, why: String) -> Self {
        LinearResult {
            verdict: Verdict::Unknown,
            keys,
            key: None,
            longest_prefix: None,
            unplaceable: Vec::new(),
            reason: Some(why),
        }
    }
}

/// Checks `events` (file order).
pub fn check_linearizable(events: &[Event], budget: Budget) -> LinearResult {
    match per_key_ops(events) {
        Ok(keys) => check_keys(keys, budget),
        Err(why) => LinearResult::unknown(0, format!("inconsistent history: {why}")),
    }
}

/// Checks the history file at `path` (plain or zstd) in one streaming
/// pass, keeping only each key's compact operations, not the events. A
/// file whose indexes do not rise line by line (hand-made, merged) is read
/// whole and sorted instead.
pub fn check_linearizable_file(path: &Path, budget: Budget) -> Result<LinearResult> {
    let mut split = Splitter::default();
    let mut last: Option<u64> = None;
    let mut ordered = true;
    let mut inconsistent = None;
    stream_refs(path, |e| {
        if !ordered {
            return;
        }
        if last.is_some_and(|l| e.index <= l) {
            ordered = false;
            return;
        }
        last = Some(e.index);
        if inconsistent.is_some() {
            return;
        }
        if let Err(why) = split.push(e) {
            inconsistent = Some(why);
        }
    })?;
    if !ordered {
        return Ok(check_linearizable(&read_jsonl(path)?.events, budget));
    }
    Ok(match inconsistent {
        Some(why) => LinearResult::unknown(0, format!("inconsistent history: {why}")),
        None => check_keys(split.finish(), budget),
    })
}

fn check_keys(keys: BTreeMap<String, Vec<model::Op>>, budget: Budget) -> LinearResult {
    let mut meter = Meter::new(budget);
    let mut unknown: Option<String> = None;
    for (key, ops) in &keys {
        match check_key(ops, &mut meter) {
            KeyOutcome::Valid => {}
            KeyOutcome::Invalid {
                longest,
                unplaceable,
            } => {
                return LinearResult {
                    verdict: Verdict::Invalid,
                    keys: keys.len() as u64,
                    key: Some(key.clone()),
                    longest_prefix: Some(longest),
                    unplaceable,
                    reason: None,
                };
            }
            KeyOutcome::Unknown(why) => {
                // Other keys may still prove the history invalid.
                unknown.get_or_insert(format!("key {key:?}: {why}"));
            }
        }
    }
    match unknown {
        Some(why) => LinearResult::unknown(keys.len() as u64, why),
        None => LinearResult {
            verdict: Verdict::Valid,
            keys: keys.len() as u64,
            key: None,
            longest_prefix: None,
            unplaceable: Vec::new(),
            reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::synthetic::{SyntheticOptions, synthetic_history, to_jsonl};

    /// The streamed check of a file is the check of its events: valid and
    /// invalid histories, with unknown outcomes, crashes and lost leases,
    /// and one whose indexes are out of order (read whole instead).
    #[test]
    fn the_file_check_agrees_with_the_in_memory_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut verdicts = std::collections::HashSet::new();
        for seed in 0..16u64 {
            let mut events = synthetic_history(seed, &SyntheticOptions::varied(seed, 300));
            if seed == 15 {
                events.reverse();
            }
            let path = dir.path().join(format!("{seed}.jsonl"));
            std::fs::write(&path, to_jsonl(&events)).unwrap();
            let budget = Budget::default();
            let expected = check_linearizable(&events, budget);
            let streamed = check_linearizable_file(&path, budget).unwrap();
            assert_eq!(streamed, expected, "seed {seed}");
            verdicts.insert(expected.verdict.as_str());
        }
        assert!(
            verdicts.contains("valid") && verdicts.contains("invalid"),
            "{verdicts:?}"
        );
    }
}
