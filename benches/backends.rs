//! Every correct backend side by side, one criterion group per measure:
//!
//! - `uncontended_acquire_release`: one client, acquire + release of its
//!   own key; the time of one cycle;
//! - `cycles_64_clients_64_keys`: 64 clients, each on its own key, as fast
//!   as they can (lock cycles per second);
//! - `cycles_64_clients_1_key`: 64 clients on one key (cycles per second:
//!   each batch starts its clients together, so a batch of a few cycles
//!   would measure the pollers' first backoff, not their pace; 64 a batch);
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
//!
//! A backend that fails (its servers do not start, a client cannot be
//! made, an operation fails where none should) does not stop the bench:
//! its rows are printed as errors with the reason, the other backends go
//! on, and the bench exits 1 at the end. Before its first group each
//! backend makes a few uncontended cycles, so a backend that cannot lock
//! at all is an error row before criterion times anything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::Failures;
use criterion::{BenchmarkId, SamplingMode, Throughput};
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

/// The backends that failed, with why: the rest of their rows are errors.
static FAILED: Failures = Failures::new();

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

/// Starts the servers of `name`, makes its clients and runs a few
/// uncontended cycles. `None` when its server is not installed (one line
/// says how to get it; with `LOCKBENCH_REQUIRE_BACKENDS=1` that is an
/// error too) or when anything fails (recorded in [`FAILED`]).
async fn start(name: &'static str) -> Option<Bench> {
    let info = backend::info(name)?;
    let logs = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            FAILED.record(name, format!("no temp dir: {e}"));
            return None;
        }
    };
    let missing = match info.server {
        Some(kind) => cluster::ensure_installed(name, kind).err(),
        None => None,
    };
    let missing = missing.map(|e| e.to_string()).or_else(|| {
        info.missing()
            .map(|(path, hint)| format!("{path} is missing; {hint}"))
    });
    if let Some(why) = missing {
        if std::env::var_os("LOCKBENCH_REQUIRE_BACKENDS").is_some_and(|v| v == "1") {
            FAILED.record(name, format!("{why} (LOCKBENCH_REQUIRE_BACKENDS=1)"));
        } else {
            println!("skipped {name}: {why}");
        }
        return None;
    }
    let cluster = match info.server {
        None => Cluster::none(),
        Some(kind) => match Cluster::start(kind, info.servers, logs.path()).await {
            Ok(c) => c,
            Err(e) => {
                FAILED.record(name, format!("servers did not start: {e}"));
                return None;
            }
        },
    };
    let backend = match backend::build(name, cluster.endpoints()).await {
        Ok(b) => b,
        Err(e) => {
            FAILED.record(name, e.to_string());
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
                FAILED.record(name, format!("client {id}: {e}"));
                return None;
            }
        }
    }
    if let Some(first) = clients[0].as_mut() {
        for _ in 0..PROBE_CYCLES {
            if let Err(e) = cycle(first.as_mut(), "bench-probe", Duration::ZERO).await {
                FAILED.record(name, format!("before timing: {e}"));
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

/// `name` failed in `group`: its figures of that group are dropped (the
/// table shows the error there and in every later group).
fn fail(name: &str, group: &str, why: impl std::fmt::Display) {
    FAILED.record(name, format!("{group}: {why}"));
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&(group.to_string(), name.to_string()));
}

/// Uncontended cycles each backend must make before it is timed.
const PROBE_CYCLES: usize = 20;

/// Client `i` of `b`, lent out; `None` (and `b` failed) when an earlier
/// batch lost it.
fn lend(b: &mut Bench, i: usize) -> Option<Box<dyn LockClient>> {
    let client = b.clients.get_mut(i).and_then(Option::take);
    if client.is_none() {
        FAILED.record(b.name, format!("client {i} was lost by an earlier batch"));
    }
    client
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

/// What a measurement returns to criterion once its backend has failed:
/// the batch is not run (the row is an error, its figure meaningless).
fn not_run(iters: u64) -> Duration {
    Duration::from_nanos(iters.max(1))
}

fn uncontended(rt: &Runtime, b: &mut Bench, iters: u64) -> Duration {
    let name = b.name;
    if FAILED.has(name) {
        return not_run(iters);
    }
    let Some(mut client) = lend(b, 0) else {
        return not_run(iters);
    };
    // On a runtime worker, as the runner's clients are: `block_on` on the
    // main thread would add a cross-thread wake-up to every reply.
    let task = rt.block_on(rt.spawn(async move {
        let mut total = Duration::ZERO;
        let mut each = Vec::with_capacity(iters as usize);
        let mut failure = None;
        for _ in 0..iters {
            match cycle(client.as_mut(), "bench-uncontended", Duration::ZERO).await {
                Ok(d) => {
                    total += d;
                    each.push(d.as_secs_f64() * 1e6);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        (client, total, each, failure)
    }));
    match task {
        Ok((client, total, each, failure)) => {
            b.clients[0] = Some(client);
            if let Some(e) = failure {
                fail(name, UNCONTENDED, e);
                return not_run(iters);
            }
            seen(UNCONTENDED, name, each);
            total
        }
        Err(e) => {
            fail(name, UNCONTENDED, format!("the client's task failed: {e}"));
            not_run(iters)
        }
    }
}

/// `CLIENTS` clients run `CLIENTS * iters` cycles between them, each on its
/// own key or all on one; the wall time from start to the last release.
fn cycles(rt: &Runtime, b: &mut Bench, iters: u64, one_key: bool) -> Duration {
    let group = if one_key { ONE_KEY } else { OWN_KEYS };
    let target = CLIENTS as u64 * iters;
    let done = Arc::new(AtomicU64::new(0));
    let name = b.name;
    if FAILED.has(name) {
        return not_run(iters);
    }
    let mut lent = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        match lend(b, i) {
            Some(c) => lent.push((i, c)),
            None => {
                for (i, c) in lent {
                    b.clients[i] = Some(c);
                }
                return not_run(iters);
            }
        }
    }
    let (elapsed, failures) = rt.block_on(async {
        let started = Instant::now();
        let deadline = started + BATCH_LIMIT;
        let mut tasks = Vec::with_capacity(CLIENTS);
        for (i, mut client) in lent {
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
                (i, client, failures)
            }));
        }
        let mut failures = 0;
        for task in tasks {
            match task.await {
                Ok((i, client, f)) => {
                    b.clients[i] = Some(client);
                    failures += f;
                }
                Err(e) => fail(name, group, format!("a client's task failed: {e}")),
            }
        }
        (started.elapsed(), failures)
    });
    let cycles = done.load(Ordering::Relaxed);
    if cycles < target {
        fail(
            name,
            group,
            format!("only {cycles} of {target} cycles within {BATCH_LIMIT:?} ({failures} failed)"),
        );
        return not_run(iters);
    }
    if FAILED.has(name) {
        return not_run(iters);
    }
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
    if FAILED.has(name) {
        return not_run(iters);
    }
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
    let mut lent = Vec::with_capacity(WAITERS + 1);
    for i in 0..=WAITERS {
        match lend(b, i) {
            Some(c) => lent.push((i, c)),
            None => {
                for (i, c) in lent {
                    b.clients[i] = Some(c);
                }
                return not_run(iters);
            }
        }
    }
    let gaps = rt.block_on(async {
        let deadline = Instant::now() + BATCH_LIMIT;
        let mut tasks = Vec::new();
        for (i, mut client) in lent {
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
                (i, client)
            }));
        }
        for task in tasks {
            match task.await {
                Ok((i, client)) => b.clients[i] = Some(client),
                Err(e) => fail(name, HAND_OFF, format!("a client's task failed: {e}")),
            }
        }
        std::mem::take(&mut *shared.gaps.lock().unwrap_or_else(|p| p.into_inner()))
    });
    if (gaps.len() as u64) < iters {
        fail(
            name,
            HAND_OFF,
            format!(
                "only {} of {iters} hand-offs within {BATCH_LIMIT:?}",
                gaps.len()
            ),
        );
        return not_run(iters);
    }
    if FAILED.has(name) {
        return not_run(iters);
    }
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
    let mut c = common::criterion();

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
    let chosen: Vec<&'static str> = candidates
        .into_iter()
        .filter(|name| filters.is_empty() || !any_match || wanted(name))
        .collect();
    common::banner(
        "backends",
        &format!(
            "{} backends × {} measures (uncontended cycle, 64 clients on 64 keys and on one key, hand-off)",
            chosen.len(),
            GROUPS.len()
        ),
        // Measured: about 12 s a backend (start, probe, two groups of
        // 0.2 + 1 s and two of 0.5 + 3 s).
        Duration::from_secs(12 * chosen.len() as u64),
        "`cargo bench --bench backends -- NAME` runs the backends whose name contains NAME.",
    );
    let mut benches = Vec::new();
    for (i, name) in chosen.iter().enumerate() {
        let started = Instant::now();
        if let Some(b) = rt.block_on(start(name)) {
            eprintln!(
                "[{}/{}] {name}: ready in {:.1} s",
                i + 1,
                chosen.len(),
                started.elapsed().as_secs_f64()
            );
            benches.push(b);
        }
    }

    for group in GROUPS {
        let mut g = c.benchmark_group(group);
        g.sampling_mode(SamplingMode::Flat).sample_size(10);
        if group == OWN_KEYS || group == ONE_KEY {
            // Each batch starts its 64 clients together, and pollers back
            // off at the start: batches long enough that the figure is
            // their pace, not that ramp (Redis on one key: 432 cycles/s
            // measured over 1 s, 1,663 over 3 s;
            // docs/results/2026-12-05-cargo-bench.md).
            g.warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(3))
                .throughput(Throughput::Elements(CLIENTS as u64));
        } else {
            g.warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_secs(1));
        }
        for b in &mut benches {
            if FAILED.has(b.name) {
                continue;
            }
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

    table(&chosen);
    drop(benches);
    FAILED.finish("backends");
}

/// The closing table: each group's rows, a backend that failed as an
/// error row from the group where it failed on.
fn table(chosen: &[&'static str]) {
    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    println!("\nmedians over everything measured (warm-up included):");
    for group in GROUPS {
        for name in chosen {
            let values = seen.get(&(group.to_string(), name.to_string()));
            if let Some(why) = FAILED.why(name)
                && values.is_none()
            {
                println!("  {group:<30} {name:<20} ERROR: {why}");
                continue;
            }
            let Some(values) = values else { continue };
            let mut v = values.clone();
            v.sort_by(f64::total_cmp);
            let Some(&mid) = v.get(v.len() / 2) else {
                continue;
            };
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
}
