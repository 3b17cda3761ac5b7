//! Mutual exclusion when the holds come from agents whose clocks are known
//! only within a bound.
//!
//! One lockbench process stamps every event from one monotonic clock, so
//! two holds either overlap or do not. Holds recorded by different agents
//! (processes on different machines) are put on one timeline through each
//! agent's estimated offset to a reference clock, and that estimate is good
//! only within the agent's bound ε: agent `a`'s true times are its stamped
//! times plus some δₐ with |δₐ| ≤ εₐ, the same δₐ for all its events. Two
//! holds of one key by agents `a` and `b` overlap under (δₐ, δ_b) exactly
//! when `s_b − e_a < δₐ − δ_b < e_b − s_a`; with `d = δₐ − δ_b` ranging over
//! `[−(εₐ + ε_b), εₐ + ε_b]`, the overlap is
//!
//! - **definite** when it holds for every `d` in that range: no clock error
//!   within the bounds explains it away, so exclusion broke;
//! - **possible** when it holds for some `d` only: the run is not invalid
//!   for it, and the report gives the offset difference that separates
//!   the two holds;
//! - absent otherwise.
//!
//! Holds of one agent share its clock (`d` = 0): they overlap or not, as in
//! a single process. `tests` compares the formula with a check of every
//! offset on the integer grid.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::mutex::{self, Hold, Witness};
use super::{CheckResult, Verdict};
use crate::history::{AgentClock, Event, Process};

/// One hold as an agent recorded it, on the merged timeline (the agent's
/// offset estimate applied), in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHold {
    /// The agent whose clock stamped it.
    pub agent: u32,
    /// The holder.
    pub process: u64,
    /// The key held.
    pub key: String,
    /// When the acquire returned.
    pub start_ns: i64,
    /// When the hold ended (`i64::MAX`: it lasted to the end).
    pub end_ns: i64,
}

/// How sure an overlap is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// It holds under every offset within the bounds.
    Definite,
    /// It holds under some offsets only; `separated_by_ns` is an offset
    /// difference `δₐ − δ_b` within the bounds (the one nearest zero) under
    /// which the two holds do not overlap.
    Possible {
        /// The offset difference that explains the overlap away.
        separated_by_ns: i64,
    },
}

/// Whether holds `a` and `b` (of one key, by different processes) overlap,
/// given each agent's bound `eps[agent]` in nanoseconds.
pub fn classify(a: &AgentHold, b: &AgentHold, eps: &[u64]) -> Option<Overlap> {
    // Overlap iff lo < d < hi.
    let lo = b.start_ns.saturating_sub(a.end_ns);
    let hi = b.end_ns.saturating_sub(a.start_ns);
    if a.agent == b.agent {
        return (lo < 0 && 0 < hi).then_some(Overlap::Definite);
    }
    let bound = |agent: u32| eps.get(agent as usize).copied().unwrap_or(0) as i64;
    let e = bound(a.agent).saturating_add(bound(b.agent));
    if lo < -e && e < hi {
        return Some(Overlap::Definite);
    }
    // Some integer d in [-e, e] with lo < d < hi?
    let (from, to) = (lo.saturating_add(1).max(-e), hi.saturating_sub(1).min(e));
    if from > to {
        return None;
    }
    // Not definite, so some d in [-e, e] lies outside (lo, hi): 0 when the
    // merged timeline already shows them apart, else the nearer of lo (if
    // ≥ -e) and hi (if ≤ e).
    let separated_by_ns = if lo >= 0 || hi <= 0 {
        0
    } else {
        [lo, hi]
            .into_iter()
            .filter(|d| (-e..=e).contains(d))
            .min_by_key(|d| d.unsigned_abs())
            .unwrap_or(0)
    };
    Some(Overlap::Possible { separated_by_ns })
}

/// One overlap found: the two holds (indices into the input) and how sure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The hold that begins first on the merged timeline.
    pub first: usize,
    /// The other.
    pub second: usize,
    /// Definite or possible.
    pub overlap: Overlap,
}

/// Every overlapping pair of holds of one key by different processes,
/// each classified. Holds are swept per key in start order; a pair is
/// compared when the second starts before the first ends plus the largest
/// combined bound, so the sweep stays near linear for a run's holds.
pub fn overlaps(holds: &[AgentHold], eps: &[u64]) -> Vec<Found> {
    let widest = 2 * eps.iter().copied().max().unwrap_or(0) as i64;
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, h) in holds.iter().enumerate() {
        by_key.entry(h.key.as_str()).or_default().push(i);
    }
    let mut found = Vec::new();
    for (_, mut idx) in by_key {
        idx.sort_by_key(|&i| (holds[i].start_ns, holds[i].end_ns));
        for (n, &i) in idx.iter().enumerate() {
            let reach = holds[i].end_ns.saturating_add(widest);
            for &j in &idx[n + 1..] {
                if holds[j].start_ns.saturating_sub(widest) >= reach {
                    break;
                }
                if holds[i].process == holds[j].process {
                    continue;
                }
                if let Some(overlap) = classify(&holds[i], &holds[j], eps) {
                    found.push(Found {
                        first: i,
                        second: j,
                        overlap,
                    });
                }
            }
        }
    }
    found
}

/// An overlap the clocks' bounds leave open: on the merged timeline the
/// two holds overlap (or nearly touch), but an offset difference within the
/// agents' bounds separates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossibleOverlap {
    /// The key.
    pub key: String,
    /// The hold that begins first on the merged timeline: its process.
    pub first: Process,
    /// The other hold's process.
    pub second: Process,
    /// How deep they overlap on the merged timeline, in ns (negative: the
    /// gap between them).
    pub overlap_ns: i64,
    /// The agents' combined bound, in ns.
    pub bound_ns: u64,
    /// The difference of the two agents' clock errors (first's minus
    /// second's), within the bound, under which the holds do not overlap.
    pub separated_by_ns: i64,
}

/// Mutual exclusion over a merged history, each agent's times known only
/// within its bound.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedMutex {
    /// The verdict: `invalid` only on definite overlaps, which are the
    /// violations and witnesses.
    pub result: CheckResult,
    /// Overlapping pairs that hold under every offset within the bounds.
    pub definite: u64,
    /// Of those, the pairs of two different agents' holds (where the
    /// bounds came into it).
    pub definite_across: u64,
    /// Pairs that overlap under some offsets only.
    pub possible: u64,
    /// The first possible ones, for the report.
    pub possible_examples: Vec<PossibleOverlap>,
}

/// How many possible overlaps a report lists.
const MAX_EXAMPLES: usize = 20;

/// Checks mutual exclusion of a merged history whose agents' clocks are
/// `clocks`: the holds of the merged timeline, each pair of different
/// agents' holds widened by their bounds. `single` is the check of the
/// same history as if one clock had stamped it (the analysis's mutex
/// result): its `unknown` stands, and its witnesses lend their lease
/// classes to the definite pairs.
pub fn check_merged(events: &[Event], clocks: &[AgentClock], single: &CheckResult) -> MergedMutex {
    let empty = |result| MergedMutex {
        result,
        definite: 0,
        definite_across: 0,
        possible: 0,
        possible_examples: Vec::new(),
    };
    if single.verdict == Verdict::Unknown {
        return empty(single.clone());
    }
    let holds = match mutex::holds(events) {
        Ok(h) => h,
        Err(why) => return empty(mutex::MutexChecker.inconsistent(why)),
    };
    let count = clocks.iter().map(|c| c.count).max().unwrap_or(1);
    let mut eps = vec![0u64; count as usize];
    for c in clocks {
        if let Some(slot) = eps.get_mut(c.index.saturating_sub(1) as usize) {
            *slot = c.bound_ns();
        }
    }
    let as_agent = |h: &Hold| AgentHold {
        agent: AgentClock::agent_of(h.process, count) - 1,
        process: match h.process {
            Process::Client(id) => id,
            Process::Nemesis => u64::MAX,
        },
        key: h.key.clone(),
        start_ns: h.start_ns as i64,
        end_ns: h.end_ns.map_or(i64::MAX, |e| e as i64),
    };
    let agent_holds: Vec<AgentHold> = holds.iter().map(as_agent).collect();
    let mut out = empty(CheckResult {
        verdict: Verdict::Valid,
        violations: 0,
        witnesses: Vec::new(),
        reason: None,
        classes: BTreeMap::new(),
        incidents: Vec::new(),
        checker: single.checker.clone(),
    });
    for f in overlaps(&agent_holds, &eps) {
        let (a, b) = (&holds[f.first], &holds[f.second]);
        match f.overlap {
            Overlap::Definite => {
                out.definite += 1;
                out.definite_across +=
                    u64::from(agent_holds[f.first].agent != agent_holds[f.second].agent);
                let class = single
                    .witnesses
                    .iter()
                    .find(|w| same(&w.first, a) && same(&w.second, b))
                    .map(|w| w.class)
                    .unwrap_or_default();
                *out.result
                    .classes
                    .entry(class.as_str().to_string())
                    .or_default() += 1;
                if out.result.witnesses.len() < MAX_EXAMPLES {
                    out.result.witnesses.push(Witness {
                        key: a.key.clone(),
                        first: a.clone(),
                        second: b.clone(),
                        overlap_start_ns: b.start_ns,
                        overlap_end_ns: match (a.end_ns, b.end_ns) {
                            (Some(x), Some(y)) => Some(x.min(y)),
                            (x, y) => x.or(y),
                        },
                        class,
                    });
                }
            }
            Overlap::Possible { separated_by_ns } => {
                out.possible += 1;
                if out.possible_examples.len() < MAX_EXAMPLES {
                    let (ha, hb) = (&agent_holds[f.first], &agent_holds[f.second]);
                    out.possible_examples.push(PossibleOverlap {
                        key: a.key.clone(),
                        first: a.process,
                        second: b.process,
                        overlap_ns: ha.end_ns.min(hb.end_ns).saturating_sub(hb.start_ns),
                        bound_ns: eps[ha.agent as usize] + eps[hb.agent as usize],
                        separated_by_ns,
                    });
                }
            }
        }
    }
    out.result.violations = out.definite;
    if out.definite > 0 {
        out.result.verdict = Verdict::Invalid;
    }
    out.result.reason = Some(format!(
        "merged from {count} agents' histories: {} definite overlaps (under every clock \
         offset within the bounds), {} possible (explained away by an offset within them)",
        out.definite, out.possible
    ));
    out
}

/// Whether two holds are one: the same holder, key and start event.
fn same(a: &Hold, b: &Hold) -> bool {
    a.process == b.process && a.key == b.key && a.start_index == b.start_index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(agent: u32, process: u64, start_ns: i64, end_ns: i64) -> AgentHold {
        AgentHold {
            agent,
            process,
            key: "k".into(),
            start_ns,
            end_ns,
        }
    }

    /// Every offset of both agents on the integer grid: in how many of the
    /// (δₐ, δ_b) pairs the holds overlap, of how many.
    fn brute(a: &AgentHold, b: &AgentHold, eps: &[u64]) -> (u64, u64) {
        let ea = eps[a.agent as usize] as i64;
        let eb = eps[b.agent as usize] as i64;
        let (mut yes, mut all) = (0, 0);
        for da in -ea..=ea {
            for db in -eb..=eb {
                let (da, db) = if a.agent == b.agent {
                    (da, da)
                } else {
                    (da, db)
                };
                let overlap =
                    (a.start_ns + da).max(b.start_ns + db) < (a.end_ns + da).min(b.end_ns + db);
                yes += u64::from(overlap);
                all += 1;
            }
        }
        (yes, all)
    }

    #[test]
    fn hand_made_histories() {
        let eps = [5, 3, 0];
        // Agent 0 holds 0..10, agent 1 holds 20..30: 10 apart, more than
        // 5 + 3: no overlap under any offset.
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(1, 2, 20, 30), &eps),
            None
        );
        // 4 apart, less than 8: possible, though apart on the merged
        // timeline (a difference of 0 separates them).
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(1, 2, 14, 30), &eps),
            Some(Overlap::Possible { separated_by_ns: 0 })
        );
        // 3 into each other on the merged timeline: a clock difference of
        // 3 ns (within 8) explains it away.
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(1, 2, 7, 30), &eps),
            Some(Overlap::Possible {
                separated_by_ns: -3
            })
        );
        // 10 ns deep into each other, deeper than 8: definite.
        assert_eq!(
            classify(&hold(0, 1, 0, 30), &hold(1, 2, 20, 50), &eps),
            Some(Overlap::Definite)
        );
        // One agent: its own clock, exact.
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(0, 2, 9, 20), &eps),
            Some(Overlap::Definite)
        );
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(0, 2, 10, 20), &eps),
            None
        );
        // A bound of 0 on both agents: exact too.
        assert_eq!(
            classify(&hold(2, 1, 0, 10), &hold(2, 2, 10, 20), &eps),
            None
        );
        // Back to back across agents: possible (a difference of 0 is
        // enough to separate them).
        assert_eq!(
            classify(&hold(0, 1, 0, 10), &hold(1, 2, 10, 20), &eps),
            Some(Overlap::Possible { separated_by_ns: 0 })
        );
    }

    #[test]
    fn the_formula_agrees_with_every_offset_on_the_grid() {
        // A small generator (xorshift), so the cases are the same each run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut cases = 0;
        let mut kinds = [0u32; 3];
        for _ in 0..20_000 {
            let eps = [next(12), next(12), next(3)];
            let mk = |next: &mut dyn FnMut(u64) -> u64, process| {
                let agent = next(3) as u32;
                let start = next(60) as i64;
                hold(agent, process, start, start + 1 + next(25) as i64)
            };
            let a = mk(&mut next, 1);
            let b = mk(&mut next, 2);
            let (yes, all) = brute(&a, &b, &eps);
            let got = classify(&a, &b, &eps);
            match got {
                None => assert_eq!(yes, 0, "{a:?} {b:?} {eps:?}"),
                Some(Overlap::Definite) => assert_eq!(yes, all, "{a:?} {b:?} {eps:?}"),
                Some(Overlap::Possible { separated_by_ns: d }) => {
                    assert!(0 < yes && yes < all, "{a:?} {b:?} {eps:?}: {yes}/{all}");
                    // The separating difference is within the bounds and
                    // really separates them.
                    let e = (eps[a.agent as usize] + eps[b.agent as usize]) as i64;
                    assert!(d.abs() <= e);
                    let overlap = (a.start_ns + d).max(b.start_ns) < (a.end_ns + d).min(b.end_ns);
                    assert!(!overlap, "{a:?} {b:?} {d}");
                }
            }
            kinds[match got {
                None => 0,
                Some(Overlap::Definite) => 1,
                Some(Overlap::Possible { .. }) => 2,
            }] += 1;
            cases += 1;
        }
        assert_eq!(cases, 20_000);
        // Every class came up often enough to mean something.
        assert!(kinds.iter().all(|&k| k > 1_000), "{kinds:?}");
    }

    #[test]
    fn the_sweep_finds_every_pair_the_pairwise_check_finds() {
        let eps = [4, 7];
        let holds: Vec<AgentHold> = (0..40)
            .map(|i| {
                hold(
                    (i % 2) as u32,
                    i as u64,
                    (i * 13 % 97) as i64,
                    (i * 13 % 97 + 9) as i64,
                )
            })
            .collect();
        let mut all = Vec::new();
        for i in 0..holds.len() {
            for j in 0..holds.len() {
                let (a, b) = (&holds[i], &holds[j]);
                let first = (a.start_ns, a.end_ns) < (b.start_ns, b.end_ns);
                if i != j
                    && first
                    && a.process != b.process
                    && let Some(o) = classify(a, b, &eps)
                {
                    all.push((i, j, o));
                }
            }
        }
        let mut swept: Vec<(usize, usize, Overlap)> = overlaps(&holds, &eps)
            .into_iter()
            .map(|f| (f.first, f.second, f.overlap))
            .collect();
        all.sort_by_key(|x| (x.0, x.1));
        swept.sort_by_key(|x| (x.0, x.1));
        assert!(!all.is_empty());
        assert_eq!(swept, all);
    }
}
