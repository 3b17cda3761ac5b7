//! Linearizability's speed figure (issue 6): a 100,000-operation history on
//! 10 keys with 5 % `info` outcomes, checked against the owner-aware mutex
//! model. Target: at most 10 s.
//!
//! The history is generated once, outside the timing, by
//! `synthetic_history` (20 clients of a correct simulated lock, with failed
//! and retried releases, reentrant acquires, writes and a few crashes), so
//! the check explores a valid history to the end.
//!
//! Under `cargo test` (the smoke run, benches/common) the history has
//! 2,000 operations and each check runs once.

use std::time::{Duration, Instant};

mod common;

use criterion::{SamplingMode, Throughput};
use lockbench::Verdict;
use lockbench::check::{Budget, check_linearizable};
use lockbench::history::synthetic::{SyntheticOptions, synthetic_history};
use lockbench::history::{F, OpType};

const OPERATIONS: u64 = 100_000;

fn main() {
    // criterion draws its plots with plotters, which (with ab_glyph) only
    // knows fonts registered by the program.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
    let operations = if common::smoke() { 2_000 } else { OPERATIONS };
    common::banner(
        "linearizability",
        &format!("{operations} operations on 10 keys checked against the mutex model"),
        Duration::from_secs(20),
        "",
    );
    let history = synthetic_history(
        2026,
        &SyntheticOptions {
            clients: 20,
            keys: 10,
            operations,
            // A waiting acquire may time out at every step it waits, so
            // this per-step rate gives about 5 % `info` outcomes in all.
            info: 0.024,
            fail: 0.02,
            crash: 0.001,
            ..SyntheticOptions::default()
        },
    );
    let lock_ops = history
        .iter()
        .filter(|e| e.kind != OpType::Invoke && matches!(e.f, F::Acquire | F::Release))
        .count();
    let info = history
        .iter()
        .filter(|e| e.kind == OpType::Info && matches!(e.f, F::Acquire | F::Release))
        .count();
    let budget = Budget {
        time: Duration::from_secs(120),
        ..Budget::default()
    };
    let t = Instant::now();
    let r = check_linearizable(&history, budget);
    println!(
        "history: {} events, {lock_ops} lock operations ({:.1} % info), {} keys; one check: {:?} in {:.2} s",
        history.len(),
        100.0 * info as f64 / lock_ops.max(1) as f64,
        r.keys,
        r.verdict,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(r.verdict, Verdict::Valid, "{r:?}");

    // For information, untimed by criterion: the same shape from a lock that
    // rarely grants a held key. Proving a history invalid means exhausting
    // the search on the failing key, so it can cost far more than a valid one.
    let broken = synthetic_history(
        2026,
        &SyntheticOptions {
            clients: 20,
            keys: 10,
            operations,
            info: 0.024,
            fail: 0.02,
            crash: 0.001,
            double_grant: 0.001,
            ..SyntheticOptions::default()
        },
    );
    let t = Instant::now();
    let r = check_linearizable(&broken, budget);
    println!(
        "with double grants: {:?} (key {:?}, longest prefix {:?}, unplaceable {:?}) in {:.2} s",
        r.verdict,
        r.key,
        r.longest_prefix,
        r.unplaceable,
        t.elapsed().as_secs_f64()
    );

    let mut c = common::criterion();
    let mut g = c.benchmark_group("linearizability");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(lock_ops as u64));
    g.bench_function(
        format!("{}k_ops_10_keys_5pct_info", operations / 1000),
        |b| b.iter(|| check_linearizable(std::hint::black_box(&history), budget)),
    );
    g.finish();
    c.final_summary();
}
