//! Every correct backend side by side, one criterion group per measure:
//!
//! - `uncontended_acquire_release`: one client, acquire + release of its
//!   own key; the time of one cycle;
//! - `cycles_64_clients_64_keys`: 64 clients, each on its own key, as fast
//!   as they can (lock cycles per second);
//! - `cycles_64_clients_1_key`: 64 clients on one key (cycles per second);
//! - `hand_off_16_waiters`: 17 clients cycling on one key with no hold, so
//!   16 wait while one holds; the time from the holder's release invoke to
//!   the next holder's acquire ok (a releaser queues again only once another
//!   client has the lock, so every hand-off goes to a waiter).
//!
//! Each backend's servers are started once, with lockbench's cluster layer,
//! before the first group, and stopped at the end; a backend whose server is
//! not installed is skipped with one line saying how to get it. The
//! deliberately broken recipes (`*-get-set`) are left out: their numbers
//! would be for a lock that does not lock.
//!
//! Timing is `iter_custom` around `LockClient` calls only, so client set-up
//! and task spawning are not counted. The run is bounded (short warm-up and
//! measurement, 10 samples); `cargo bench --bench backends -- redis` runs
//! only the ids that contain `redis` (and starts only those servers).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use lockbench::backend::{self, AcquireOptions, ClientConfig, LockBackend, LockClient, Outcome};
use lockbench::cluster::{self, Cluster};
use tokio::runtime::Runtime;

/// The measures, in the order they run (also the group names).
const UNCONTENDED: &str = "uncontended_acquire_release";
const OWN_KEYS: &str = "cycles_64_clients_64_keys";
const ONE_KEY: &str = "cycles_64_clients_1_key";
const HAND_OFF: &str = "hand_off_16_waiters";
const GROUPS: [&str; 4] = [UNCONTENDED, OWN_KEYS, ONE_KEY, HAND_OFF];

const CLIENTS: usize = 64;
const WAITERS: usize = 16;
/// Long enough that no lease runs out inside a measurement.
const LEASE: Duration = Duration::from_secs(10);
/// No single batch of work may run longer than this.
const BATCH_LIMIT: Duration = Duration::from_secs(60);

/// Per-operation figures seen per (group, backend), for the closing table:
/// microseconds per cycle or hand-off, or cycles/s per batch.
static SEEN: Mutex<BTreeMap<(String, String), Vec<f64>>> = Mutex::new(BTreeMap::new());

fn seen(group: &str, backend: &str, values: impl IntoIterator<Item = f64>) {
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((group.to_string(), backend.to_string()))
        .or_default()
        .extend(values);
}

/// One backend with its servers and its clients.
struct Bench {
    name: &'static str,
    /// Kept alive for the whole run; dropping it stops the servers.
    _cluster: Cluster,
    _logs: tempfile::TempDir,
    _backend: Arc<dyn LockBackend>,
    /// `CLIENTS` clients, made once; each is lent to a task per batch.
    clients: Vec<Option<Box<dyn LockClient>>>,
}

fn opts(timeout: Duration) -> AcquireOptions {
    AcquireOptions {
        lease: LEASE,
        timeout,
    }
}

/// Starts the servers of `name` and makes its clients; `None` (with one
/// printed line) when its server is missing or does not start.
async fn start(name: &'static str) -> Option<Bench> {
    let info = backend::info(name)?;
    let logs = tempfile::tempdir().ok()?;
    let cluster = match info.server {
        None => Cluster::none(),
        Some(kind) => {
            if let Err(e) = cluster::ensure_installed(name, kind) {
                println!("skipped {name}: {e}");
                return None;
            }
            match Cluster::start(kind, info.servers, logs.path()).await {
                Ok(c) => c,
                Err(e) => {
                    println!("skipped {name}: servers did not start: {e}");
                    return None;
                }
            }
        }
    };
    let backend = match backend::build(name, cluster.endpoints()).await {
        Ok(b) => b,
        Err(e) => {
            println!("skipped {name}: {e}");
            return None;
        }
    };
    let mut clients = Vec::with_capacity(CLIENTS);
    for id in 0..CLIENTS as u64 {
        let config = ClientConfig {
            id,
            seed: id + 1,
            op_timeout: Duration::from_secs(5),
        };
        match backend.client(config).await {
            Ok(c) => clients.push(Some(c)),
            Err(e) => {
                println!("skipped {name}: client {id}: {e}");
                return None;
            }
        }
    }
    Some(Bench {
        name,
        _cluster: cluster,
        _logs: logs,
        _backend: backend,
        clients,
    })
}

/// One acquire + release of `key`; its duration, or why it failed.
async fn cycle(
    client: &mut dyn LockClient,
    key: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let guard = match client.acquire(key, &opts(timeout)).await {
        Outcome::Ok(g) => g,
        Outcome::Fail(e) | Outcome::Info(e) => return Err(format!("acquire {key}: {e}")),
    };
    match client.release(&guard).await {
        Outcome::Ok(_) => Ok(started.elapsed()),
        Outcome::Fail(e) | Outcome::Info(e) => Err(format!("release {key}: {e}")),
    }
}

fn uncontended(rt: &Runtime, b: &mut Bench, iters: u64) -> Duration {
    let name = b.name;
    let mut client = b.clients[0].take().expect("client 0 is home");
    // On a runtime worker, as the runner's clients are: `block_on` on the
    // main thread would add a cross-thread wake-up to every reply.
    let (client, total, each) = rt
        .block_on(rt.spawn(async move {
            let mut total = Duration::ZERO;
            let mut each = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                match cycle(client.as_mut(), "bench-uncontended", Duration::ZERO).await {
                    Ok(d) => {
                        total += d;
                        each.push(d.as_secs_f64() * 1e6);
                    }
                    Err(e) => panic!("{name}: {e}"),
                }
            }
            (client, total, each)
        }))
        .expect("bench task");
    b.clients[0] = Some(client);
    seen(UNCONTENDED, name, each);
    total
}

/// `CLIENTS` clients run `CLIENTS * iters` cycles between them, each on its
/// own key or all on one; the wall time from start to the last release.
fn cycles(rt: &Runtime, b: &mut Bench, iters: u64, one_key: bool) -> Duration {
    let target = CLIENTS as u64 * iters;
    let done = Arc::new(AtomicU64::new(0));
    let name = b.name;
    let group = if one_key { ONE_KEY } else { OWN_KEYS };
    let (elapsed, failures) = rt.block_on(async {
        let started = Instant::now();
        let deadline = started + BATCH_LIMIT;
        let mut tasks = Vec::with_capacity(CLIENTS);
        for (i, slot) in b.clients.iter_mut().enumerate() {
            let mut client = slot.take().expect("client is home");
            let done = done.clone();
            let key = if one_key {
                "bench-one".to_string()
            } else {
                format!("bench-own-{i}")
            };
            tasks.push(tokio::spawn(async move {
                let mut failures = 0u64;
                while Instant::now() < deadline && done.fetch_add(1, Ordering::Relaxed) < target {
                    if cycle(client.as_mut(), &key, Duration::from_secs(30))
                        .await
                        .is_err()
                    {
                        // Not a cycle: give its slot back.
                        done.fetch_sub(1, Ordering::Relaxed);
                        failures += 1;
                    }
                }
                (client, failures)
            }));
        }
        let mut failures = 0;
        for (slot, task) in b.clients.iter_mut().zip(tasks) {
            let (client, f) = task.await.expect("bench task");
            *slot = Some(client);
            failures += f;
        }
        (started.elapsed(), failures)
    });
    let cycles = done.load(Ordering::Relaxed);
    assert!(
        cycles >= target,
        "{name} {group}: only {cycles} of {target} cycles within {BATCH_LIMIT:?} ({failures} failed)"
    );
    if failures > 0 {
        eprintln!("{name} {group}: {failures} failed cycles (not counted)");
    }
    seen(group, name, [target as f64 / elapsed.as_secs_f64()]);
    elapsed
}

/// `WAITERS + 1` clients cycle on one key with no hold: one holds, the rest
/// wait. The sum of `iters` hand-offs (holder's release invoke → next
/// holder's acquire ok).
fn hand_off(rt: &Runtime, b: &mut Bench, iters: u64) -> Duration {
    let name = b.name;
    struct Shared {
        /// When the current holder invoked its release.
        released_at: Mutex<Option<Instant>>,
        gaps: Mutex<Vec<Duration>>,
        /// Acquisitions so far: a releaser waits until it moves.
        acquisitions: AtomicU64,
        stop: AtomicBool,
    }
    let shared = Arc::new(Shared {
        released_at: Mutex::new(None),
        gaps: Mutex::new(Vec::with_capacity(iters as usize)),
        acquisitions: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let gaps = rt.block_on(async {
        let deadline = Instant::now() + BATCH_LIMIT;
        let mut tasks = Vec::new();
        for slot in b.clients.iter_mut().take(WAITERS + 1) {
            let mut client = slot.take().expect("client is home");
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let guard = match client.acquire("bench-hand-off", &opts(BATCH_LIMIT)).await {
                        Outcome::Ok(g) => g,
                        _ => continue,
                    };
                    let mine = {
                        let now = Instant::now();
                        let mut released =
                            shared.released_at.lock().unwrap_or_else(|p| p.into_inner());
                        // The very first holder took a free lock: no hand-off.
                        if let Some(at) = released.take() {
                            let mut gaps = shared.gaps.lock().unwrap_or_else(|p| p.into_inner());
                            gaps.push(now - at);
                            if gaps.len() as u64 >= iters {
                                shared.stop.store(true, Ordering::Relaxed);
                            }
                        }
                        *released = Some(Instant::now());
                        shared.acquisitions.fetch_add(1, Ordering::Relaxed) + 1
                    };
                    // A failed release would leave the lock held until its
                    // lease runs out: try again, a bounded number of times.
                    for _ in 0..3 {
                        if let Outcome::Ok(_) = client.release(&guard).await {
                            break;
                        }
                    }
                    // Wait until another waiter has taken the lock before
                    // queueing again: otherwise the releaser, first to try,
                    // takes it back and no hand-off happens.
                    while shared.acquisitions.load(Ordering::Relaxed) == mine
                        && !shared.stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                }
                client
            }));
        }
        for (slot, task) in b.clients.iter_mut().zip(tasks) {
            *slot = Some(task.await.expect("bench task"));
        }
        std::mem::take(&mut *shared.gaps.lock().unwrap_or_else(|p| p.into_inner()))
    });
    assert!(
        gaps.len() as u64 >= iters,
        "{name}: only {} of {iters} hand-offs within {BATCH_LIMIT:?}",
        gaps.len()
    );
    seen(HAND_OFF, name, gaps.iter().map(|d| d.as_secs_f64() * 1e6));
    gaps.iter().take(iters as usize).sum()
}

/// Non-flag arguments: criterion's filter.
fn filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a.starts_with('-') {
            // Flags of criterion that take a value: skip the value.
            if matches!(
                a.as_str(),
                "--save-baseline"
                    | "--baseline"
                    | "--load-baseline"
                    | "--measurement-time"
                    | "--warm-up-time"
                    | "--sample-size"
                    | "--profile-time"
                    | "--output-format"
                    | "--color"
                    | "-c"
                    | "--plotting-backend"
                    | "--noise-threshold"
                    | "--confidence-level"
                    | "--significance-level"
                    | "--nresamples"
            ) {
                args.next();
            }
            continue;
        }
        out.push(a);
    }
    out
}

fn main() {
    // criterion draws its plots with plotters, which (with ab_glyph) only
    // knows fonts registered by the program.
    if let Err(e) = lockbench::report::register_font() {
        eprintln!("font: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();

    // Start only what the filter can select; a filter that is not a plain
    // substring of any id (a regex) starts everything and lets criterion
    // choose.
    let filters = filters();
    let wanted = |name: &str| {
        GROUPS.iter().any(|g| {
            filters
                .iter()
                .any(|f| format!("{g}/{name}").contains(f.as_str()))
        })
    };
    let candidates: Vec<&'static str> = backend::Registry::builtin()
        .iter()
        .filter(|b| !b.broken)
        .map(|b| b.name.as_str())
        .collect();
    let any_match = candidates.iter().any(|n| wanted(n));
    let mut benches = Vec::new();
    for name in candidates {
        if filters.is_empty() || !any_match || wanted(name) {
            let started = Instant::now();
            if let Some(b) = rt.block_on(start(name)) {
                eprintln!("{name}: ready in {:.1} s", started.elapsed().as_secs_f64());
                benches.push(b);
            }
        }
    }

    for group in GROUPS {
        let mut g = c.benchmark_group(group);
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        if group == OWN_KEYS || group == ONE_KEY {
            g.throughput(Throughput::Elements(CLIENTS as u64));
        }
        for b in &mut benches {
            let id = BenchmarkId::from_parameter(b.name);
            g.bench_function(id, |bencher| {
                bencher.iter_custom(|iters| match group {
                    UNCONTENDED => uncontended(&rt, b, iters),
                    OWN_KEYS => cycles(&rt, b, iters, false),
                    ONE_KEY => cycles(&rt, b, iters, true),
                    _ => hand_off(&rt, b, iters),
                })
            });
        }
        g.finish();
    }
    c.final_summary();

    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.is_empty() {
        return;
    }
    println!("\nmedians over everything measured (warm-up included):");
    for ((group, name), values) in seen.iter() {
        let mut v = values.clone();
        v.sort_by(f64::total_cmp);
        let mid = v[v.len() / 2];
        let unit = if group.starts_with("cycles") {
            "cycles/s"
        } else {
            "µs"
        };
        println!(
            "  {group:<30} {name:<20} {mid:>12.1} {unit}   ({} values)",
            v.len()
        );
    }
}
