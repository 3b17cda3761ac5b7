//! What every bench of lockbench shares: whether this is a measurement or
//! a smoke run, the banner that says how long it will take, and the rows
//! that failed.
//!
//! A bench binary runs in one of two modes. `cargo bench` passes `--bench`
//! and measures. `cargo test` (every bench has `test = true` in
//! Cargo.toml) passes no `--bench`: then each bench runs once, as small as
//! it can while still going through every path a measurement takes, so a
//! bench that would panic or hang fails the tests instead of rotting
//! (criterion's own test mode, which `Criterion::configure_from_args`
//! picks the same way).
//!
//! A backend, a library or a server that fails does not panic a bench:
//! its row is printed as an error with the reason, the other rows go on,
//! and the bench exits 1 at the end ([`Failures::finish`]).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Whether this run only checks that the bench works (no `--bench`, or
/// `--test` beside it, as criterion decides).
pub fn smoke() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let test = args.iter().any(|a| a == "--test");
    !bench || test
}

/// Criterion as every bench here sets it up: no plots unless
/// `LOCKBENCH_BENCH_PLOTS=1` (drawing criterion's HTML charts takes
/// seconds a benchmark on this 2-core machine: most of the backends
/// bench's time, measured), 10,000 bootstrap resamples instead of
/// 100,000, then the command line's flags.
pub fn criterion() -> criterion::Criterion {
    let c = criterion::Criterion::default().nresamples(10_000);
    let c = if std::env::var_os("LOCKBENCH_BENCH_PLOTS").is_some_and(|v| v == "1") {
        c
    } else {
        c.without_plots()
    };
    c.configure_from_args()
}

/// Prints what this bench measures, how long it takes and how to run less.
pub fn banner(name: &str, what: &str, expected: Duration, narrower: &str) {
    if smoke() {
        println!("{name}: smoke run (each measurement once, at its smallest)");
        return;
    }
    println!(
        "{name}: {what}; about {} on a 2-core machine. {narrower}",
        human(expected)
    );
}

/// `1 min 30 s`, `45 s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// The rows that failed, each with its reason: the first failure of a row
/// is kept.
#[derive(Default)]
pub struct Failures {
    rows: Mutex<BTreeMap<String, String>>,
}

impl Failures {
    /// An empty list (usable in a `static`).
    pub const fn new() -> Self {
        Failures {
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Row `row` failed because of `why`; printed at once and kept for the
    /// end.
    pub fn record(&self, row: &str, why: impl Into<String>) {
        let why = why.into();
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if !rows.contains_key(row) {
            eprintln!("error: {row}: {why}");
            rows.insert(row.to_string(), why);
        }
    }

    /// Whether `row` has failed.
    pub fn has(&self, row: &str) -> bool {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(row)
    }

    /// Why `row` failed, if it did.
    pub fn why(&self, row: &str) -> Option<String> {
        self.rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(row)
            .cloned()
    }

    /// Prints the failed rows, if any, and exits 1 when there were some.
    pub fn finish(&self, bench: &str) {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.is_empty() {
            return;
        }
        println!("\n{bench}: {} row(s) failed:", rows.len());
        for (row, why) in rows.iter() {
            println!("  ERROR {row}: {why}");
        }
        drop(rows);
        std::process::exit(1);
    }
}
