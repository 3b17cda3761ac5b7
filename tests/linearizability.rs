//! Linearizability against the owner-aware mutex model: literal histories,
//! and a property test that it agrees with the direct mutual-exclusion
//! checker on thousands of generated histories.

use std::time::Duration;

use lockbench::check::{Budget, MutexChecker, check_linearizable};
use lockbench::history::synthetic::{SyntheticOptions, synthetic_history};
use lockbench::history::{Event, F, OpType, Process};
use lockbench::{Checker, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Builds a history from (time, process, type, f) rows, indices in order.
fn history(rows: &[(u64, u64, OpType, F)]) -> Vec<Event> {
    rows.iter()
        .enumerate()
        .map(|(i, (t, p, kind, f))| {
            let mut e = Event::new(*t, Process::Client(*p), *kind, f.clone());
            e.index = i as u64;
            e
        })
        .collect()
}

fn lin(events: &[Event]) -> lockbench::check::LinearResult {
    check_linearizable(events, Budget::default())
}

fn direct(events: &[Event]) -> Verdict {
    MutexChecker.check(events).verdict
}

use F::{Acquire, Crash, Release};
use OpType::{Fail, Info, Invoke, Ok};

#[test]
fn a_hand_off_at_the_same_instant_is_valid() {
    // 2's acquire returns at the very time 1 invokes its release.
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Acquire),
        (5, 1, Invoke, Release),
        (5, 2, Ok, Acquire),
        (7, 1, Ok, Release),
        (8, 2, Invoke, Release),
        (9, 2, Ok, Release),
    ]);
    let r = lin(&h);
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");
    assert_eq!(direct(&h), Verdict::Valid);
}

#[test]
fn an_overlap_is_invalid_with_the_unplaceable_acquire() {
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Acquire),
        (4, 2, Ok, Acquire),
        (5, 1, Invoke, Release),
        (7, 1, Ok, Release),
    ]);
    let r = lin(&h);
    assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
    assert_eq!(r.key.as_deref(), Some(""));
    // Only 1's acquire fits before 2's acquire must return.
    assert_eq!(r.longest_prefix, Some(1));
    assert!(r.unplaceable.contains(&2), "{r:?}");
    assert_eq!(direct(&h), Verdict::Invalid);
}

#[test]
fn reentrant_acquires_by_the_holder_are_valid() {
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 1, Invoke, Acquire),
        (3, 1, Ok, Acquire),
        (4, 2, Invoke, Acquire),
        (5, 1, Invoke, Release),
        (6, 1, Ok, Release),
        (7, 2, Ok, Acquire),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Valid);
    assert_eq!(direct(&h), Verdict::Valid);
}

#[test]
fn an_info_acquire_never_proves_an_overlap() {
    // 1's acquire may have happened; 2's certainly did. Not a violation.
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (2, 2, Invoke, Acquire),
        (3, 2, Ok, Acquire),
        (4, 1, Info, Acquire),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Valid);
    assert_eq!(direct(&h), Verdict::Valid);
}

#[test]
fn an_info_acquire_can_explain_a_later_release() {
    // 1 timed out acquiring, then released successfully: the acquire took
    // effect.
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (2, 1, Info, Acquire),
        (3, 1, Invoke, Release),
        (4, 1, Ok, Release),
        (5, 2, Invoke, Acquire),
        (6, 2, Ok, Acquire),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Valid);
}

#[test]
fn an_info_acquire_cannot_explain_a_release_that_preceded_it() {
    let h = history(&[
        (0, 1, Invoke, Release),
        (1, 1, Ok, Release),
        (2, 1, Invoke, Acquire),
        (3, 1, Info, Acquire),
    ]);
    let r = lin(&h);
    assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
    assert_eq!(r.unplaceable, vec![0]);
}

#[test]
fn an_info_acquire_that_could_be_the_holder_does_not_excuse_a_double_grant() {
    // 1's acquire timed out, but 2 and 3 both certainly held at once.
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 2, Invoke, Acquire),
        (2, 2, Ok, Acquire),
        (3, 3, Invoke, Acquire),
        (4, 3, Ok, Acquire),
        (5, 1, Info, Acquire),
        (6, 2, Invoke, Release),
        (7, 2, Ok, Release),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Invalid);
    assert_eq!(direct(&h), Verdict::Invalid);
}

#[test]
fn a_crashed_holder_frees_the_lock_at_its_crash() {
    let mut rows = vec![
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Acquire),
        (5, 1, Info, Crash),
        (6, 2, Ok, Acquire),
    ];
    let h = history(&rows);
    assert_eq!(lin(&h).verdict, Verdict::Valid);
    assert_eq!(direct(&h), Verdict::Valid);
    // 2 acquiring before the crash overlaps the crashed holder.
    rows[3].0 = 7;
    rows.swap(3, 4);
    let h = history(&rows);
    assert_eq!(lin(&h).verdict, Verdict::Invalid);
    assert_eq!(direct(&h), Verdict::Invalid);
}

#[test]
fn a_release_in_flight_at_a_crash_may_have_freed_the_lock() {
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Acquire),
        (3, 1, Invoke, Release),
        (4, 2, Ok, Acquire),
        (9, 1, Info, Crash),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Valid);
    assert_eq!(direct(&h), Verdict::Valid);
}

#[test]
fn a_release_by_a_non_holder_is_invalid_unless_it_says_so() {
    let rows = [
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Release),
        (3, 2, Ok, Release),
    ];
    let r = lin(&history(&rows));
    assert_eq!(r.verdict, Verdict::Invalid, "{r:?}");
    assert_eq!(r.unplaceable, vec![2]);
    // `was_held: false`: the lock was not 2's, and 2 says so.
    let mut h = history(&rows);
    h[3].value = Some(serde_json::json!({ "was_held": false }));
    assert_eq!(lin(&h).verdict, Verdict::Valid);
}

#[test]
fn failed_releases_did_not_happen() {
    // 1's first release failed, so 1 still held when 2 acquired.
    let h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 1, Invoke, Release),
        (3, 1, Fail, Release),
        (4, 2, Invoke, Acquire),
        (5, 2, Ok, Acquire),
        (6, 1, Invoke, Release),
        (7, 1, Ok, Release),
    ]);
    assert_eq!(lin(&h).verdict, Verdict::Invalid);
    assert_eq!(direct(&h), Verdict::Invalid);
}

#[test]
fn keys_are_checked_apart() {
    let mut h = history(&[
        (0, 1, Invoke, Acquire),
        (1, 1, Ok, Acquire),
        (2, 2, Invoke, Acquire),
        (3, 2, Ok, Acquire),
    ]);
    h[0].key = Some("a".into());
    h[1].key = Some("a".into());
    h[2].key = Some("b".into());
    h[3].key = Some("b".into());
    let r = lin(&h);
    assert_eq!((r.verdict, r.keys), (Verdict::Valid, 2));
    h[2].key = Some("a".into());
    h[3].key = Some("a".into());
    let r = lin(&h);
    assert_eq!((r.verdict, r.key.as_deref()), (Verdict::Invalid, Some("a")));
}

#[test]
fn an_inconsistent_history_is_unknown() {
    let h = history(&[(0, 1, Ok, Acquire)]);
    assert_eq!(lin(&h).verdict, Verdict::Unknown);
    assert_eq!(direct(&h), Verdict::Unknown);
}

#[test]
fn a_spent_budget_gives_unknown() {
    let h = synthetic_history(
        7,
        &SyntheticOptions {
            operations: 2_000,
            ..SyntheticOptions::default()
        },
    );
    let r = check_linearizable(
        &h,
        Budget {
            time: Duration::from_secs(60),
            states: 10,
        },
    );
    assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    assert!(r.reason.unwrap().contains("budget"));
}

/// Injects a violation-prone change after the fact: drops one completed,
/// non-failed release (invoke and completion), or moves one acquire `ok`
/// earlier (not before its invoke). Events are re-sorted by time and
/// re-indexed.
fn mutate(mut h: Vec<Event>, rng: &mut StdRng) -> Vec<Event> {
    match rng.random_range(0..3) {
        0 => {
            let completions: Vec<usize> = (0..h.len())
                .filter(|&i| h[i].f == Release && matches!(h[i].kind, Ok | Info))
                .collect();
            if completions.is_empty() {
                return h;
            }
            let c = completions[rng.random_range(0..completions.len())];
            let p = h[c].process;
            let Some(inv) = (0..c)
                .rev()
                .find(|&i| h[i].process == p && h[i].kind == Invoke)
            else {
                return h;
            };
            h.remove(c);
            h.remove(inv);
        }
        1 => {
            let oks: Vec<usize> = (0..h.len())
                .filter(|&i| h[i].f == Acquire && h[i].kind == Ok)
                .collect();
            if oks.is_empty() {
                return h;
            }
            let c = oks[rng.random_range(0..oks.len())];
            let p = h[c].process;
            let Some(inv) = (0..c)
                .rev()
                .find(|&i| h[i].process == p && h[i].kind == Invoke)
            else {
                return h;
            };
            let (lo, hi) = (h[inv].time_ns, h[c].time_ns);
            h[c].time_ns = rng.random_range(lo..=hi);
        }
        _ => return h,
    }
    h.sort_by_key(|e| (e.time_ns, e.index));
    for (i, e) in h.iter_mut().enumerate() {
        e.index = i as u64;
    }
    h
}

#[test]
fn linearizability_agrees_with_the_direct_checker() {
    // LIN_HISTORIES=N runs more (a longer hunt); LIN_SEED=S replays one.
    let histories: u64 = std::env::var("LIN_HISTORIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let base = std::env::var("LIN_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let seeds: Vec<u64> = match base {
        Some(s) => vec![s],
        None => (0..histories).collect(),
    };
    // LIN_MAX_OPS=N makes histories longer (for a hunt; keep the default
    // small so the debug test stays quick).
    let max_ops: u64 = std::env::var("LIN_MAX_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let (mut valid, mut invalid) = (0u64, 0u64);
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let pick = |rng: &mut StdRng, p: f64, v: f64| if rng.random_bool(p) { v } else { 0.0 };
        let o = SyntheticOptions {
            clients: rng.random_range(2..=if max_ops > 30 { 8 } else { 5 }),
            keys: rng.random_range(1..=3),
            operations: rng.random_range(6..=max_ops.max(6)),
            info: pick(&mut rng, 0.6, 0.12),
            fail: pick(&mut rng, 0.5, 0.1),
            crash: pick(&mut rng, 0.3, 0.04),
            double_grant: pick(&mut rng, 0.3, 0.1),
            lease_expiry: pick(&mut rng, 0.3, 0.05),
            same_time: pick(&mut rng, 0.3, 0.15),
        };
        let mut h = synthetic_history(seed, &o);
        if rng.random_bool(0.3) {
            h = mutate(h, &mut rng);
        }
        let d = direct(&h);
        let l = check_linearizable(&h, Budget::default());
        if d != l.verdict {
            for e in &h {
                eprintln!("{}", serde_json::to_string(e).unwrap());
            }
            panic!(
                "seed {seed} (replay: LIN_SEED={seed}): direct {d}, linearizability {} ({l:?}); options {o:?}",
                l.verdict
            );
        }
        match d {
            Verdict::Valid => valid += 1,
            Verdict::Invalid => invalid += 1,
            Verdict::Unknown | Verdict::NotChecked => {}
        }
    }
    eprintln!("agreed: {valid} valid, {invalid} invalid");
    if base.is_none() {
        // The generator must exercise both sides, or agreement means little.
        assert!(valid > histories / 5, "{valid} valid");
        assert!(invalid > histories / 10, "{invalid} invalid");
    }
}
