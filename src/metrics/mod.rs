//! Latency histograms, operation counts and throughput, kept while the run
//! goes (so they exist even when the history is off).
//!
//! Clients write into a few shards, each behind its own mutex: one
//! histogram set per client would cost hundreds of KB each, far too much
//! for 10,000 clients, and one shared set would make every client contend.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::history::{F, OpType};
use crate::summary::{CurvePoint, Percentiles};

/// Latencies are kept in µs, from 1 µs to one hour, 3 significant digits.
const MAX_US: u64 = 3_600_000_000;
const SHARDS: usize = 8;

/// The functions counted, in `Counts` order.
const FS: [F; 5] = [F::Acquire, F::Release, F::Renew, F::Write, F::Crash];
const TYPES: [OpType; 4] = [OpType::Invoke, OpType::Ok, OpType::Fail, OpType::Info];

#[derive(Debug)]
struct Shard {
    acquire: Histogram<u64>,
    release: Histogram<u64>,
    hold: Histogram<u64>,
    counts: [[u64; 4]; 5],
    /// Successful acquisitions in each second of the run.
    per_second: Vec<u64>,
}

impl Shard {
    fn new() -> Self {
        // Constant bounds that hdrhistogram accepts: this cannot fail.
        let h = || Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        Shard {
            acquire: h(),
            release: h(),
            hold: h(),
            counts: [[0; 4]; 5],
            per_second: Vec::new(),
        }
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

/// Operation counts by f and type, kept by one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts([[u64; 4]; 5]);

impl Counts {
    /// Counts one event.
    pub fn count(&mut self, f: &F, kind: OpType) {
        if let (Some(fi), Some(ti)) = (
            FS.iter().position(|x| x == f),
            TYPES.iter().position(|x| *x == kind),
        ) {
            self.0[fi][ti] += 1;
        }
    }
}

/// A run's metrics, shared by its clients.
#[derive(Debug)]
pub struct Metrics {
    shards: Vec<Mutex<Shard>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Metrics {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        }
    }

    fn shard(&self, client: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(client as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a client's own counts (kept locally so that counting an event
    /// takes no lock).
    pub fn add_counts(&self, client: u64, counts: &Counts) {
        let mut s = self.shard(client);
        for (fi, row) in counts.0.iter().enumerate() {
            for (ti, n) in row.iter().enumerate() {
                s.counts[fi][ti] += n;
            }
        }
    }

    /// A successful acquire: its latency (from when the client meant to
    /// start) and the second of the run it completed in.
    pub fn acquired(&self, client: u64, latency: Duration, at: Duration) {
        let mut s = self.shard(client);
        let _ = s.acquire.record(us(latency));
        let sec = at.as_secs() as usize;
        if s.per_second.len() <= sec {
            s.per_second.resize(sec + 1, 0);
        }
        s.per_second[sec] += 1;
    }

    /// A release that completed `ok`, and how long the lock was held.
    pub fn released(&self, client: u64, latency: Duration, held: Duration) {
        let mut s = self.shard(client);
        let _ = s.release.record(us(latency));
        let _ = s.hold.record(us(held));
    }

    /// Successful acquisitions so far (for the progress bar).
    pub fn acquisitions(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).acquire.len())
            .sum()
    }

    /// Merges the shards into what summary.json reports.
    pub fn snapshot(&self) -> Snapshot {
        let mut all = Shard::new();
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.acquire.add(&s.acquire);
            let _ = all.release.add(&s.release);
            let _ = all.hold.add(&s.hold);
            for (fi, row) in s.counts.iter().enumerate() {
                for (ti, n) in row.iter().enumerate() {
                    all.counts[fi][ti] += n;
                }
            }
            if all.per_second.len() < s.per_second.len() {
                all.per_second.resize(s.per_second.len(), 0);
            }
            for (i, n) in s.per_second.iter().enumerate() {
                all.per_second[i] += n;
            }
        }
        let mut ops = BTreeMap::new();
        for (fi, f) in FS.iter().enumerate() {
            let row: BTreeMap<String, u64> = TYPES
                .iter()
                .enumerate()
                .filter(|(ti, _)| all.counts[fi][*ti] > 0)
                .map(|(ti, t)| (t.as_str().to_string(), all.counts[fi][ti]))
                .collect();
            if !row.is_empty() {
                ops.insert(f.as_str().to_string(), row);
            }
        }
        Snapshot {
            acquire: percentiles(&all.acquire),
            acquire_curve: curve(&all.acquire),
            release: percentiles(&all.release),
            hold: percentiles(&all.hold),
            ops,
            per_second: all.per_second,
            acquisitions: all.acquire.len(),
        }
    }
}

/// Merged metrics at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Acquire latency.
    pub acquire: Percentiles,
    /// Acquire latency distribution.
    pub acquire_curve: Vec<CurvePoint>,
    /// Release latency.
    pub release: Percentiles,
    /// Hold time.
    pub hold: Percentiles,
    /// Counts by f and type.
    pub ops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Successful acquisitions per second.
    pub per_second: Vec<u64>,
    /// Successful acquisitions in all.
    pub acquisitions: u64,
}

/// Percentiles of a histogram in µs.
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        count: h.len(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.5),
        p90: h.value_at_quantile(0.9),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// The latency distribution at percentiles that matter on a log "nines"
/// axis: dense up to 99.99 and the maximum.
pub fn curve(h: &Histogram<u64>) -> Vec<CurvePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<f64> = (0..=18).map(|i| i as f64 * 5.0).collect();
    points.extend([
        92.5, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
    ]);
    points.dedup();
    points
        .into_iter()
        .map(|p| CurvePoint {
            percentile: p,
            us: h.value_at_quantile(p / 100.0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_shards() {
        let m = Metrics::new();
        for c in 0..16u64 {
            m.acquired(
                c,
                Duration::from_micros(100 * (c + 1)),
                Duration::from_millis(1500),
            );
            let mut counts = Counts::default();
            counts.count(&F::Acquire, OpType::Ok);
            m.add_counts(c, &counts);
        }
        let s = m.snapshot();
        assert_eq!(s.acquire.count, 16);
        assert_eq!(s.per_second, vec![0, 16]);
        assert_eq!(s.ops["acquire"]["ok"], 16);
        assert!(
            s.acquire.p50 >= 800 && s.acquire.p50 <= 900,
            "{:?}",
            s.acquire
        );
        assert_eq!(s.acquire_curve.last().map(|p| p.percentile), Some(100.0));
    }
}
