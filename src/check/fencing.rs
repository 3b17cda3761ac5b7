//! Fencing: did the protected resource stay safe?
//!
//! Per key, in the order the resource answered: every accepted write must
//! carry a token at least as large as every token accepted before it, and
//! the tokens successive holders get from the lock service must grow.

use serde::{Deserialize, Serialize};

use super::Verdict;
use super::compose::{Cx, Done, Step, StreamCheck};
use super::mutex::Keys;
use crate::history::{OpType, Process};

/// How many witnesses the report carries; the count covers them all.
const MAX_WITNESSES: usize = 20;

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
    /// Accepted writes whose token was smaller than an earlier accepted
    /// one, or equal to one another client wrote with (two holders with one
    /// token: the resource cannot tell them apart).
    pub stale_accepted: u64,
    /// Writes without a token.
    pub unfenced: u64,
    /// The first stale accepted writes.
    pub witnesses: Vec<FenceWitness>,
    /// Acquires whose token was not larger than the token an earlier,
    /// different holder of the key got (or smaller than the holder's own
    /// earlier one): the lock service's fence went backwards.
    #[serde(default)]
    pub fence_regressions: u64,
    /// Why the verdict is `unknown` (the checker crashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The fencing check, fed one completion at a time.
#[derive(Debug, Default)]
pub(crate) struct FencingState {
    /// Per key id: the largest token accepted so far, and who wrote it.
    max_accepted: Vec<Option<(u64, Process)>>,
    /// Per key id: the largest token granted so far, and to whom.
    max_granted: Vec<Option<(u64, Process)>>,
    fenced_writes: u64,
    report: FencingReport,
    witness_keys: Vec<u32>,
}

fn slot<T: Default + Clone>(v: &mut Vec<T>, key: u32) -> &mut T {
    let i = key as usize;
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl FencingState {
    /// An acquire of `key` by `process` ended `ok` with `fence`.
    pub(crate) fn granted(&mut self, key: u32, process: Process, fence: Option<u64>) {
        let Some(t) = fence else { return };
        let max = slot(&mut self.max_granted, key);
        if let Some((m, holder)) = *max
            && (t < m || (t == m && holder != process))
        {
            self.report.fence_regressions += 1;
        }
        if max.is_none_or(|(m, _)| t > m) {
            *max = Some((t, process));
        }
    }

    /// A write to the resource completed `ok`: `accepted` is what the
    /// resource said.
    pub(crate) fn write(
        &mut self,
        key: u32,
        process: Process,
        fence: Option<u64>,
        accepted: Option<bool>,
        index: u64,
        time_ns: u64,
    ) {
        let r = &mut self.report;
        r.writes += 1;
        match fence {
            Some(_) => self.fenced_writes += 1,
            None => r.unfenced += 1,
        }
        match accepted {
            Some(true) => {
                r.accepted += 1;
                let max = slot(&mut self.max_accepted, key);
                if let Some(t) = fence {
                    if let Some((m, writer)) = *max
                        && (t < m || (t == m && writer != process))
                    {
                        r.stale_accepted += 1;
                        if r.witnesses.len() < MAX_WITNESSES {
                            r.witnesses.push(FenceWitness {
                                key: String::new(),
                                process,
                                index,
                                time_ns,
                                fence: t,
                                max_before: m,
                            });
                            self.witness_keys.push(key);
                        }
                    }
                    // The latest writer of the largest token: a holder that
                    // writes again with its own token is not stale.
                    if max.is_none_or(|(m, _)| t >= m) {
                        *max = Some((t, process));
                    }
                }
            }
            Some(false) => r.rejected += 1,
            None => {}
        }
    }

    /// The report, given whether mutual exclusion was violated.
    pub(crate) fn finish(self, keys: &Keys, exclusion_violated: bool) -> FencingReport {
        let mut r = self.report;
        for (w, key) in r.witnesses.iter_mut().zip(self.witness_keys) {
            w.key = keys.name(key).to_string();
        }
        r.outcome = if r.stale_accepted > 0 {
            FencingOutcome::StaleWritesAccepted
        } else if self.fenced_writes == 0 {
            FencingOutcome::NoFence
        } else if exclusion_violated {
            FencingOutcome::ExclusionViolatedResourceSafe
        } else {
            FencingOutcome::Safe
        };
        r.verdict = Some(if r.stale_accepted > 0 {
            Verdict::Invalid
        } else {
            Verdict::Valid
        });
        r
    }
}

impl StreamCheck for FencingState {
    type Report = FencingReport;
    const NAME: &'static str = "fencing";

    fn step(&mut self, step: &Step<'_>, _: &Cx<'_>) {
        match *step {
            Step::AcquireDone {
                p,
                key,
                kind: OpType::Ok,
                fence,
                ..
            } => self.granted(key, Process::Client(p), fence),
            Step::WriteDone {
                p,
                key,
                fence,
                accepted,
                index,
                time_ns,
            } => self.write(key, Process::Client(p), fence, accepted, index, time_ns),
            _ => {}
        }
    }

    fn finish(self, done: &Done<'_>) -> FencingReport {
        FencingState::finish(self, done.keys, done.mutex == Verdict::Invalid)
    }

    fn crashed(reason: String) -> FencingReport {
        FencingReport {
            verdict: Some(Verdict::Unknown),
            reason: Some(reason),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for FenceWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str("the lock's resource")?;
        } else {
            write!(f, "key {:?}", self.key)?;
        }
        write!(
            f,
            ": the resource accepted process {}'s write with fence {} at {:.6} s (event {}) after accepting fence {}",
            self.process,
            self.fence,
            self.time_ns as f64 / 1e9,
            self.index,
            self.max_before
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_holders_with_one_token_make_a_stale_write() {
        let mut s = FencingState::default();
        let (a, b) = (Process::Client(0), Process::Client(1));
        s.granted(0, a, Some(2));
        s.write(0, a, Some(2), Some(true), 1, 10);
        // A failover lost the counter's increment: b is granted 2 again.
        s.granted(0, b, Some(2));
        s.write(0, b, Some(2), Some(true), 3, 30);
        // b writing again with its own token is not another stale write.
        s.write(0, b, Some(2), Some(true), 4, 40);
        assert_eq!(s.report.fence_regressions, 1);
        assert_eq!(s.report.stale_accepted, 1);
        let w = &s.report.witnesses[0];
        assert_eq!((w.process, w.fence, w.max_before), (b, 2, 2));
        // a's write after b's with the same token: stale again.
        s.write(0, a, Some(2), Some(true), 5, 50);
        assert_eq!(s.report.stale_accepted, 2);
    }
}
