//! What lockbench's driver protocol costs: for each shipped lock library,
//! one client's acquire + release through lockbench (a `LockClient` of the
//! driver backend: JSON lines to the driver process and back) against the
//! same library looping on its own in its own language, through the same
//! driver code without the protocol (`bench_loop.py`, `bench_loop.js`, the
//! Go and Java drivers' `bench` command), on the same server, started here
//! by lockbench's cluster layer. Side by side in one run, `ROUNDS` rounds
//! of measurements taken back to back; prints each median and the ratio
//! (the goal: at most 1.15; the median of the rounds' ratios, with their
//! range) twice: as lockbench records it (the driver times its library's
//! calls, PROTOCOL.md, and latencies and the history's completions use
//! that) and end to end (with the pipe both ways, whose floor is a round
//! trip between two processes per request).
//!
//! With `PACED=1`, a third measurement per round: the library's own loop
//! waiting before each call for a round trip to this process over a pipe,
//! as a driver waits for its next request, answered after `PACE_US`
//! microseconds (default 0: at once), and the ratio of what lockbench
//! records to that.
//!
//! Placement: `LIB_CPUS`, `SERVER_CPUS` and `BENCH_CPUS` (CPU lists:
//! `0`, `0,1`, `0-1`) pin the library's process (its own loop, or its
//! driver), its servers and this process, so that a run measures one
//! placement instead of the kernel's choice of the moment: on this
//! 2-core machine redis-py's own loop takes about 153 µs a cycle when
//! it shares a core with its redis-server and about 250 µs otherwise.
//! `PACE_SPIN=1` spins through `PACE_US` instead of sleeping.
//!
//! The first line printed is the machine's CPU idle policy: how long an
//! idle vCPU polls before it halts moves every figure here more than the
//! driver does (this VM: 0 ns, redis-py's own loop 256 µs a cycle; the
//! kernel's default 200 µs: 120 µs; README, "Lock libraries").
//!
//! ```sh
//! cargo bench --bench driver_overhead            # every library
//! cargo bench --bench driver_overhead -- kazoo   # those whose name contains "kazoo"
//! ```
//! Each measurement first runs `WARMUP` cycles untimed (default 1000), the
//! same way through lockbench and in the own loop (its `WARMUP`
//! environment variable): a JVM's or V8's compiler is still at work over
//! the first cycles, and the JVM drivers, waiting between requests, give
//! it time that the own loop does not (500 cycles, no warm-up: Redisson
//! 0.77 of its own loop; 3000 cycles: 1.20).
//!
//! Env: `CYCLES` (default 1000 per measurement), `WARMUP`, `ROUNDS` (default 3),
//! `PACED` (1: measure the paced loop too), `PACE_US`, `PACE_SPIN`, `THREADS`
//! (the runtime's worker threads, as `lockbench --threads`; default one per
//! core), `LIB_CPUS`, `SERVER_CPUS`, `BENCH_CPUS`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Failures;
use lockbench::backend::driver::HostPlace;
use lockbench::backend::{AcquireOptions, ClientConfig, Outcome, Served};
use lockbench::cluster::Cluster;

/// What every measurement of a run shares.
struct Setup {
    /// Timed cycles per measurement.
    cycles: u64,
    /// Untimed cycles before them.
    warmup: u64,
    pace: Pace,
    placement: Placement,
}

/// How this process answers a paced loop's round trip.
#[derive(Clone, Copy)]
struct Pace {
    after: Duration,
    /// Spin through `after` (this core stays busy) instead of sleeping.
    spin: bool,
}

impl Pace {
    fn wait(self) {
        if self.spin {
            let end = Instant::now() + self.after;
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(self.after);
        }
    }
}

/// How this machine's idle CPUs wait, from sysfs: the cpuidle driver and
/// governor and, under the `haltpoll` driver of a KVM guest, how long an
/// idle vCPU polls before it halts (`guest_halt_poll_ns`; 0: it halts at
/// once, and every wake-up of an idle vCPU goes through the host).
fn idle_policy() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string())
    };
    let dir = "/sys/devices/system/cpu/cpuidle";
    let mut policy = format!(
        "driver {}, governor {}",
        read(&format!("{dir}/current_driver")),
        read(&format!("{dir}/current_governor_ro"))
    );
    let poll = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";
    if std::path::Path::new(poll).exists() {
        policy.push_str(&format!(", guest_halt_poll_ns {}", read(poll)));
    }
    policy
}

/// Where the bench's processes run, from `LIB_CPUS`, `SERVER_CPUS` and
/// `BENCH_CPUS`: each a CPU list, or none (the kernel's choice).
struct Placement {
    library: Option<Vec<usize>>,
    servers: Option<Vec<usize>>,
    bench: Option<Vec<usize>>,
    /// The CPUs this process was given (`BENCH_CPUS` unset: where it returns).
    given: Vec<usize>,
}

impl Placement {
    fn from_env() -> Result<Placement, String> {
        let list = |var: &str| match std::env::var(var) {
            Err(_) => Ok(None),
            Ok(v) => cpu_list(&v)
                .map(Some)
                .ok_or_else(|| format!("{var}={v}: expected CPUs as 0 or 0,1 or 0-1")),
        };
        let given = affinity();
        let placement = Placement {
            library: list("LIB_CPUS")?,
            servers: list("SERVER_CPUS")?,
            bench: list("BENCH_CPUS")?,
            given,
        };
        for (var, cpus) in [
            ("LIB_CPUS", &placement.library),
            ("SERVER_CPUS", &placement.servers),
            ("BENCH_CPUS", &placement.bench),
        ] {
            if let Some(c) = cpus.iter().flatten().find(|c| !placement.given.contains(c)) {
                return Err(format!(
                    "{var}: CPU {c} is not one this process may run on ({:?})",
                    placement.given
                ));
            }
        }
        Ok(placement)
    }

    /// Moves this process to the library's CPUs, so that the processes it
    /// starts until [`Self::leave_library`] inherit them.
    fn enter_library(&self) {
        if let Some(cpus) = &self.library {
            pin(std::process::id(), cpus);
        }
    }

    /// Moves this process back to the bench's CPUs.
    fn leave_library(&self) {
        if self.library.is_some() {
            self.settle();
        }
    }

    /// This process on the bench's CPUs (all of them when unset).
    fn settle(&self) {
        pin(
            std::process::id(),
            self.bench.as_ref().unwrap_or(&self.given),
        );
    }
}

/// `0`, `0,1`, `0-3`, `0,2-3`.
fn cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return None;
        }
        cpus.extend(a..=b);
    }
    Some(cpus)
}

/// The CPUs this thread may run on.
fn affinity() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes at most the set's size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins every thread of process `pid` (one this bench started, or itself)
/// to `cpus`; a thread that has gone meanwhile is skipped.
fn pin(pid: u32, cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is the empty set, CPU_SET writes within it
    // (cpu_list keeps every CPU below CPU_SETSIZE), and sched_setaffinity
    // only reads it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for tid in tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
    {
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
}

/// The number in environment variable `var`, if set to one.
fn env_num<T: std::str::FromStr>(var: &str) -> Option<T> {
    std::env::var(var).ok()?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// How a library loops on its own, in its own language, read from how
/// the registry runs its driver: a Python or Node.js driver file's loop is
/// that language's `bench_loop` with the file; the Go binary and the JVM
/// jar take `bench LIBRARY`. The program, its first arguments (the
/// servers, options and cycles follow), and the folder it runs in.
fn own_loop(name: &str) -> Option<(std::path::PathBuf, Vec<String>, std::path::PathBuf)> {
    let info = lockbench::backend::info(name)?;
    let d = info.driver.as_ref()?;
    let (entry, program) = d.command.split_last()?;
    let first = std::path::PathBuf::from(program.first()?);
    let file = std::path::Path::new(entry).file_name()?.to_str()?;
    let args = if let Some(module) = file.strip_suffix(".py") {
        vec!["bench_loop.py".to_string(), module.to_string()]
    } else if file.ends_with(".js") {
        vec!["bench_loop.js".to_string(), file.to_string()]
    } else {
        let mut args = program[1..].to_vec();
        args.extend(["bench".to_string(), entry.clone()]);
        args
    };
    Some((first, args, d.dir.clone()))
}

/// The library alone: median µs of one acquire + release (the two calls'
/// time). `paced`: the loop waits before each call for a round trip to
/// this process over its stdin and stdout, as a driver waits for its next
/// request, which this process answers after `pace` (sleeping, so that
/// the machine may idle meanwhile, as it does while a request goes round
/// through lockbench, or spinning).
fn library_loop(
    name: &str,
    servers: &str,
    options: &str,
    mut paced: bool,
    setup: &Setup,
) -> Result<f64, String> {
    let Setup {
        cycles,
        warmup,
        pace,
        ref placement,
    } = *setup;
    let (program, args, dir) = own_loop(name).ok_or("no own loop for this library")?;
    placement.enter_library();
    let child = Command::new(&program)
        .current_dir(dir)
        .args(args)
        .args([servers, options, &cycles.to_string()])
        .args(paced.then_some("paced"))
        .env("WARMUP", warmup.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    placement.leave_library();
    let mut child =
        child.map_err(|e| format!("own loop: cannot start {}: {e}", program.display()))?;
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) = pipes else {
        return Err("own loop: no pipes".into());
    };
    // stderr is drained beside stdout, so that a library that logs much
    // cannot block.
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // Each "." asks for one byte back (one in the result line too, which
    // the loop, done by then, does not read); the result is the last line.
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let dots = buf[..n].iter().filter(|&&b| b == b'.').count();
        if paced && dots > 0 {
            pace.wait();
        }
        if paced && stdin.write_all(&b".".repeat(dots)).is_err() {
            paced = false;
        }
        all.extend_from_slice(&buf[..n]);
    }
    drop(stdin);
    let text = String::from_utf8_lossy(&all);
    let result = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_start_matches('.');
    let status = child.wait().map_err(|e| format!("own loop: {e}"))?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("own loop exited with {status}: {}", errors.trim()));
    }
    serde_json::from_str::<serde_json::Value>(result)
        .ok()
        .and_then(|v| v.get("median_us").and_then(serde_json::Value::as_f64))
        .ok_or_else(|| format!("own loop: no result in {result:?}"))
}

/// Through lockbench: median µs of one acquire + release of one client,
/// end to end (the pipe both ways included) and as lockbench records it
/// (the library's own time, as the driver timed its calls).
async fn through_lockbench(
    info: &lockbench::backend::BackendInfo,
    cluster: &Cluster,
    log_dir: &std::path::Path,
    setup: &Setup,
) -> Result<(f64, f64), String> {
    let Setup {
        cycles,
        warmup,
        ref placement,
        ..
    } = *setup;
    let place = HostPlace {
        host: 1,
        log_dir: log_dir.to_path_buf(),
    };
    // The driver starts here.
    placement.enter_library();
    let backend = info.build_for(cluster.endpoints(), place).await;
    placement.leave_library();
    let backend = backend.map_err(|e| format!("driver: {e}"))?;
    let mut client = backend
        .client(ClientConfig {
            id: 0,
            seed: 1,
            op_timeout: Duration::from_secs(2),
        })
        .await
        .map_err(|e| format!("client: {e}"))?;
    let opts = AcquireOptions {
        lease: Duration::from_secs(10),
        timeout: Duration::from_secs(1),
    };
    let mut times = Vec::with_capacity(cycles as usize);
    let mut recorded = Vec::with_capacity(cycles as usize);
    let took = |s: Option<Served>| s.map(|s| (s.returned - s.called).as_secs_f64() * 1e6);
    for cycle in 0..warmup + cycles {
        let t0 = Instant::now();
        let g = match client.acquire("bench", &opts).await {
            Outcome::Ok(g) => g,
            Outcome::Fail(e) | Outcome::Info(e) => {
                return Err(format!("cycle {cycle}: acquire: {e}"));
            }
        };
        let acquire = took(client.served());
        if let Outcome::Fail(e) | Outcome::Info(e) = client.release(&g).await {
            return Err(format!("cycle {cycle}: release: {e}"));
        }
        let release = took(client.served());
        if cycle < warmup {
            continue;
        }
        times.push(t0.elapsed().as_secs_f64() * 1e6);
        // A driver that does not time its library records the call.
        recorded.push(acquire.zip(release).map_or(f64::NAN, |(a, r)| a + r));
    }
    Ok((median(times), median(recorded)))
}

/// The libraries whose rows failed, with why.
static FAILED: Failures = Failures::new();

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // The smoke run (`cargo test`, benches/common): 20 cycles, one round.
    let smoke = common::smoke();
    let cycles: u64 = env_num("CYCLES").unwrap_or(if smoke { 20 } else { 1000 });
    let warmup: u64 = env_num("WARMUP").unwrap_or(if smoke { 0 } else { 1000 });
    let rounds: usize = env_num("ROUNDS").unwrap_or(if smoke { 1 } else { 3 });
    let with_paced = std::env::var_os("PACED").is_some_and(|v| v == "1");
    let pace = Pace {
        after: Duration::from_micros(env_num("PACE_US").unwrap_or(0)),
        spin: std::env::var_os("PACE_SPIN").is_some_and(|v| v == "1"),
    };
    let placement = match Placement::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if placement.bench.is_some() {
        placement.settle();
    }
    let setup = Setup {
        cycles,
        warmup,
        pace,
        placement,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = env_num("THREADS") {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return;
        }
    };
    // Every shipped library, each own loop once: a backend that runs the
    // same driver on as many servers as one before it (python-redis-lock's
    // auto-renewal, Redisson's fenced lock: the same library with other
    // options) is left out; node-redlock on 5 masters is not.
    let registry = lockbench::backend::Registry::builtin();
    let mut seen = Vec::new();
    let mut libraries: Vec<&str> = Vec::new();
    for b in registry.iter() {
        let Some(d) = &b.driver else { continue };
        if !seen.contains(&(&d.command, b.servers)) {
            seen.push((&d.command, b.servers));
            libraries.push(b.name.as_str());
        }
    }
    common::banner(
        "driver_overhead",
        &format!(
            "{} libraries through lockbench and in their own loops, {rounds} rounds",
            libraries.len()
        ),
        // Measured: about a minute a library with the defaults.
        Duration::from_secs(20 * rounds as u64 * libraries.len() as u64),
        "`cargo bench --bench driver_overhead -- kazoo` runs the libraries whose name contains `kazoo`; ROUNDS=1 CYCLES=300 is quicker.",
    );
    // The machine's idle policy moves these figures more than anything
    // lockbench does (docs/results): say which one they had.
    println!("(CPU idle: {})", idle_policy());
    println!(
        "({cycles} cycles after {warmup} untimed, median of {rounds} rounds; µs per acquire + release)\n\
         library              own loop    paced  recorded   ratio             to paced          end to end   ratio"
    );
    for name in libraries {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let Some(info) = lockbench::backend::info(name) else {
            continue;
        };
        if let Some((path, hint)) = info.missing() {
            if std::env::var_os("LOCKBENCH_REQUIRE_BACKENDS").is_some_and(|v| v == "1") {
                FAILED.record(name, format!("{path} is missing; {hint}"));
            } else {
                eprintln!("{name}: skipped: {path} is missing; {hint}");
            }
            continue;
        }
        let Some(kind) = info.server else { continue };
        let logs = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                FAILED.record(name, format!("no temp dir: {e}"));
                continue;
            }
        };
        let cluster = match rt.block_on(Cluster::start(kind, info.servers.max(1), logs.path())) {
            Ok(c) => c,
            Err(e) => {
                FAILED.record(name, format!("servers did not start: {e}"));
                continue;
            }
        };
        if let Some(cpus) = &setup.placement.servers {
            for pid in cluster.pids() {
                pin(pid, cpus);
            }
        }
        let servers = serde_json::to_string(
            &cluster
                .endpoints()
                .iter()
                .map(|e| serde_json::json!({"name": e.name, "addr": e.addr}))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let options = info
            .driver
            .as_ref()
            .map(|d| d.options.to_string())
            .unwrap_or_else(|| "{}".into());
        // Rounds of measurements taken back to back (the library's own
        // loop, with PACED=1 the same loop paced, and through lockbench),
        // in an order that turns each round, because the machine's speed
        // drifts by up to 1.3× within minutes (redis-py's own loop alone:
        // 258, then 347 µs a cycle, in two runs about a minute apart).
        // Each ratio is the median of the rounds' ratios, with their range.
        let mut m: [Vec<f64>; 4] = Default::default(); // own, paced, recorded, end to end
        let mut ratios: [Vec<f64>; 3] = Default::default(); // recorded/own, recorded/paced, e2e/own
        for round in 0..rounds {
            let (mut own, mut paced, mut via) = (None, Some(f64::NAN), None);
            let steps = if with_paced { 3 } else { 2 };
            for step in 0..steps {
                let done = match (round + step) % steps {
                    0 => {
                        library_loop(name, &servers, &options, false, &setup).map(|v| own = Some(v))
                    }
                    1 if with_paced => library_loop(name, &servers, &options, true, &setup)
                        .map(|v| paced = Some(v)),
                    _ => rt
                        .block_on(through_lockbench(info, &cluster, logs.path(), &setup))
                        .map(|v| via = Some(v)),
                };
                if let Err(e) = done {
                    FAILED.record(name, e);
                }
            }
            if let (Some(o), Some(p), Some((v, r))) = (own, paced, via) {
                for (i, x) in [o, p, r, v].into_iter().enumerate() {
                    m[i].push(x);
                }
                ratios[0].push(r / o);
                ratios[1].push(r / p);
                ratios[2].push(v / o);
            }
        }
        let ratio = |v: &[f64]| {
            if v.iter().all(|x| x.is_nan()) {
                return "-".to_string();
            }
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.2} ({lo:.2}–{hi:.2})", median(v.to_vec()))
        };
        if let Some(why) = FAILED.why(name) {
            println!("{name:<20} ERROR: {why}");
            continue;
        }
        let [own, paced, recorded, via] = m.map(median);
        let paced = if paced.is_nan() {
            "-".to_string()
        } else {
            format!("{paced:.1}")
        };
        println!(
            "{name:<20} {own:>8.1} {paced:>8} {recorded:>9.1}   {:<17} {:<17} {via:>10.1}   {}",
            ratio(&ratios[0]),
            ratio(&ratios[1]),
            ratio(&ratios[2]),
        );
    }
    FAILED.finish("driver_overhead");
}
