//! How long each replicated topology takes to start (every member ready,
//! one leader, replicas in sync, sentinels agreed) and to stop, from the
//! one call a scenario's `topology = "replicated"` makes. Issue 5's target:
//! under 15 s on the 2-core development machine.
//!
//! `cargo bench --bench topologies`; a topology whose server is not
//! installed is skipped with the hint.

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use lockbench::cluster::{self, Cluster};

/// The backends whose replicated topologies are started (Redlock's five
/// masters are ordinary servers and are measured by the backends bench).
const TOPOLOGIES: &[(&str, &str)] = &[
    ("redis", "redis_sentinel_1p_2r_3s"),
    ("zookeeper", "zookeeper_ensemble_3"),
    ("etcd", "etcd_cluster_3"),
];

fn main() {
    // criterion's plots use plotters, which only knows registered fonts.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
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
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("topology_start_stop");
    // Seconds per iteration: the fewest samples criterion allows, flat.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_millis(1));
    for &(backend, id) in TOPOLOGIES {
        let Some(info) = lockbench::backend::info(backend) else {
            continue;
        };
        let (Some(kind), Some(shape)) = (info.server, info.replicated) else {
            continue;
        };
        if let Err(e) = cluster::ensure_installed(backend, kind) {
            eprintln!("skipped {id}: {e}");
            continue;
        }
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let logs = match tempfile::tempdir() {
                        Ok(d) => d,
                        Err(e) => panic!("temp dir: {e}"),
                    };
                    let t0 = Instant::now();
                    let mut cluster = rt
                        .block_on(Cluster::start_replicated(shape, logs.path()))
                        .unwrap_or_else(|e| panic!("{id}: {e}"));
                    cluster.stop();
                    total += t0.elapsed();
                }
                total
            })
        });
    }
    group.finish();
    c.final_summary();
}
