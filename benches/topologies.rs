//! How long each replicated topology takes to start (every member ready,
//! one leader, replicas in sync, sentinels agreed) and to stop, from the
//! one call a scenario's `topology = "replicated"` makes. Issue 5's target:
//! under 15 s on the 2-core development machine.
//!
//! `cargo bench --bench topologies`; a topology whose server is not
//! installed is skipped with the hint.
//!
//! A topology that does not start is an error row, not a panic: the
//! others go on and the bench exits 1 at the end. Under `cargo test` (the
//! smoke run, benches/common) each starts and stops once.

mod common;

use std::time::{Duration, Instant};

use common::Failures;
use criterion::SamplingMode;
use lockbench::cluster::topology::Shape;
use lockbench::cluster::{self, Cluster};

/// The topologies that failed, with why.
static FAILED: Failures = Failures::new();

/// Every replicated topology a backend has, once each. Redlock's
/// independent masters are ordinary servers, measured by the backends
/// bench.
fn topologies() -> Vec<(&'static str, Shape)> {
    let mut out: Vec<(&'static str, Shape)> = Vec::new();
    for b in lockbench::backend::Registry::builtin().iter() {
        let Some(shape) = b.replicated else { continue };
        if matches!(shape, Shape::Masters(_)) || out.iter().any(|(_, s)| *s == shape) {
            continue;
        }
        out.push((b.name.as_str(), shape));
    }
    out
}

fn main() {
    // criterion's plots use plotters, which only knows registered fonts.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
    let chosen = topologies();
    common::banner(
        "topologies",
        &format!(
            "{} replicated topologies started and stopped, 10 times each",
            chosen.len()
        ),
        Duration::from_secs(80 * chosen.len() as u64),
        "",
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut c = common::criterion();
    let mut group = c.benchmark_group("topology_start_stop");
    // Seconds per iteration: the fewest samples criterion allows, flat.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_millis(1));
    for (backend, shape) in chosen {
        let id = shape.describe();
        let Some(kind) = lockbench::backend::info(backend).and_then(|i| i.server) else {
            continue;
        };
        if let Err(e) = cluster::ensure_installed(backend, kind) {
            if std::env::var_os("LOCKBENCH_REQUIRE_BACKENDS").is_some_and(|v| v == "1") {
                FAILED.record(&id, e.to_string());
            } else {
                eprintln!("skipped {id}: {e}");
            }
            continue;
        }
        group.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if FAILED.has(&id) {
                        return Duration::from_nanos(iters.max(1));
                    }
                    let logs = match tempfile::tempdir() {
                        Ok(d) => d,
                        Err(e) => {
                            FAILED.record(&id, format!("no temp dir: {e}"));
                            continue;
                        }
                    };
                    let t0 = Instant::now();
                    match rt.block_on(Cluster::start_replicated(shape, logs.path())) {
                        Ok(mut cluster) => cluster.stop(),
                        Err(e) => {
                            FAILED.record(&id, e.to_string());
                            continue;
                        }
                    }
                    total += t0.elapsed();
                }
                total.max(Duration::from_nanos(1))
            })
        });
    }
    group.finish();
    c.final_summary();
    FAILED.finish("topologies");
}
