//! The property matrix: for every backend, the lock properties the seeds
//! compare by hand, measured on its real server.
//!
//! - **exclusion**: the verdict of a contended run without faults;
//! - **expiry**: the holder dies without releasing (its client
//!   [`crash`](crate::backend::LockClient::crash)es); how long until another
//!   client acquires ("never" within the bound is a deadlock);
//! - **hand-off**: with waiters queued, the time from a release to the next
//!   acquire, and whether waiters are notified or poll;
//! - **reentrancy**: the holder acquires again: succeeds, fails, or blocks;
//! - **fencing**: is there a token, and does it only grow;
//! - **server restart**: the server is killed (-9) and restarted while a
//!   lock is held: does the lock survive;
//! - **latency and throughput**: uncontended acquire+release, and lock
//!   cycles per second with many clients on one key and on their own keys;
//! - **single point of failure**: one member of the backend's servers is
//!   killed, or cut from its peers, while clients contend: is exclusion
//!   kept, is the lock available meanwhile, how soon after the restart or
//!   heal is it acquired again ([`spof`]).
//!
//! Probes run on a cluster started for them; the contended runs and the
//! member-fault runs go through the ordinary runner, so each has its own
//! run directory and report, which the matrix links to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runner::{RunOptions, RunOutcome, run_backend};
use super::spof;
use crate::backend::driver::HostPlace;
use crate::backend::{AcquireOptions, ClientConfig, LockBackend, LockClient, Outcome};
use crate::check::Verdict;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::scenario::Scenario;
use crate::summary::matrix::{Cell, Matrix, Row};
use crate::workload::KeyChoice;

/// Measures the matrix for every backend of `scenario` and writes
/// `matrix.json` and `matrix.html` into `out/<scenario>/`.
pub async fn run_matrix(scenario: &Scenario, seed: u64, opts: &RunOptions) -> Result<MatrixRun> {
    let dir = opts.out_dir.join(&scenario.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut matrix = Matrix {
        scenario: scenario.name.clone(),
        seed,
        lease_ms: scenario.lease.as_millis() as u64,
        clients: scenario.clients,
        rows: Vec::new(),
    };
    let mut exclusion = Vec::new();
    for name in &scenario.backends {
        if opts.cancel.is_cancelled() {
            break;
        }
        let row = match measure_backend(scenario, name, seed, opts, &dir).await {
            Ok((row, verdict)) => {
                if let Some(v) = verdict {
                    exclusion.push((name.clone(), v));
                }
                row
            }
            Err(e @ Error::MissingServer { .. }) => return Err(e),
            Err(e) => Row {
                backend: name.clone(),
                recipe: scenario
                    .registry()
                    .get(name)
                    .map(|i| i.recipe.to_string())
                    .unwrap_or_default(),
                skipped: None,
                error: Some(e.to_string()),
                topology: None,
                cells: Vec::new(),
            },
        };
        print_row(&row, opts.human_to_stderr);
        matrix.rows.push(row);
        // Written after every backend, so an interrupted run keeps its rows.
        write_matrix(&dir, &matrix)?;
    }
    write_matrix(&dir, &matrix)?;
    Ok(MatrixRun {
        page: dir.join("matrix.html"),
        matrix,
        exclusion,
    })
}

/// What a matrix run wrote and found.
#[derive(Debug)]
pub struct MatrixRun {
    /// `matrix.html`.
    pub page: PathBuf,
    /// What `matrix.json` holds.
    pub matrix: Matrix,
    /// The exclusion verdict of each backend whose contended runs ran (the
    /// worse of the two), to judge against the scenario's expectation.
    pub exclusion: Vec<(String, Verdict)>,
}

fn write_matrix(dir: &Path, matrix: &Matrix) -> Result<()> {
    let json = dir.join("matrix.json");
    let text = serde_json::to_string_pretty(matrix)
        .map_err(|e| Error::io(&json, std::io::Error::other(e)))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::io(&json, e))?;
    crate::report::write_matrix_page(dir, matrix).map(|_| ())
}

fn print_row(row: &Row, to_stderr: bool) {
    let say = |line: String| {
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    match (&row.skipped, &row.error) {
        (Some(why), _) => say(format!("  {:<18} skipped: {why}", row.backend)),
        (_, Some(why)) => say(format!("  {:<18} error: {why}", row.backend)),
        _ => {
            let cells: Vec<String> = row
                .cells
                .iter()
                .map(|(k, c)| format!("{k}: {}", c.text))
                .collect();
            say(format!("  {:<18} {}", row.backend, cells.join(" | ")));
        }
    }
}

/// A contended run: its directory and summary (`None`: not run).
type Contended = Option<(PathBuf, crate::summary::Summary)>;

/// The exclusion cell from the two contended runs (linked to the one-key
/// run), and the exclusion verdict of both together.
fn exclusion(one_key: &Contended, own_keys: &Contended, dir: &Path) -> (Cell, Option<Verdict>) {
    let verdicts = [one_key, own_keys]
        .iter()
        .map(|r| r.as_ref().map(|(_, s)| s.verdict))
        .collect::<Vec<_>>();
    let exclusion_verdict = match (verdicts[0], verdicts[1]) {
        (Some(Verdict::Valid), Some(Verdict::Valid)) => Some(Verdict::Valid),
        (Some(a), Some(b)) if a == Verdict::Invalid || b == Verdict::Invalid => {
            Some(Verdict::Invalid)
        }
        (Some(_), Some(_)) => Some(Verdict::Unknown),
        _ => None,
    };
    let exclusion = match (verdicts[0], verdicts[1]) {
        (Some(Verdict::Valid), Some(Verdict::Valid)) => {
            Cell::new("valid", Some(true), serde_json::json!("valid"))
        }
        (Some(a), Some(b)) => {
            let worst = if a == Verdict::Invalid || b == Verdict::Invalid {
                "invalid"
            } else {
                "unknown"
            };
            Cell::new(worst, Some(false), serde_json::json!([a, b]))
        }
        _ => Cell::new("not run", None, serde_json::Value::Null),
    }
    .linked(
        one_key
            .as_ref()
            .map(|(d, _)| relative(dir, &d.join("index.html"))),
    );
    (exclusion, exclusion_verdict)
}

async fn measure_backend(
    scenario: &Scenario,
    name: &str,
    seed: u64,
    opts: &RunOptions,
    dir: &Path,
) -> Result<(Row, Option<Verdict>)> {
    let registry = scenario.registry();
    let info = registry.require(name)?;
    let mut row = Row {
        backend: name.to_string(),
        recipe: info.recipe.to_string(),
        skipped: None,
        error: None,
        topology: spof::topology(info),
        cells: Vec::new(),
    };
    let external = scenario.endpoints.contains_key(name);
    if let Some(reason) = super::runner::missing_server(info, external, opts)? {
        row.skipped = Some(reason);
        return Ok((row, None));
    }

    // The two contended runs, through the ordinary runner.
    let one_key = contended(scenario, name, seed, opts, false).await?;
    let own_keys = contended(scenario, name, seed, opts, true).await?;
    // One member lost, then one cut off, each in a run of its own.
    let member_lost =
        spof::measure(scenario, name, seed, opts, dir, spof::MemberFault::Lost).await?;
    let member_cut = spof::measure(scenario, name, seed, opts, dir, spof::MemberFault::Cut).await?;

    // The probes, on a cluster of their own.
    let probe_dir = dir.join(name).join("probes");
    std::fs::create_dir_all(&probe_dir).map_err(|e| Error::io(&probe_dir, e))?;
    let mut servers = match info.server {
        Some(kind) => Cluster::start(kind, info.servers.max(1), &probe_dir).await?,
        None => Cluster::none(),
    };
    let place = HostPlace {
        host: 0,
        log_dir: probe_dir.clone(),
    };
    let lock = info.build_for(servers.endpoints(), place).await?;
    let probes = Probes {
        backend: lock,
        driver: info
            .driver
            .as_ref()
            .map(|_| (info, servers.endpoints().to_vec(), probe_dir.clone())),
        lease: scenario.lease,
        op_timeout: scenario.op_timeout,
        next_id: std::sync::atomic::AtomicU64::new(0),
        seed,
    };
    let expiry = probes.expiry().await;
    let handoff = probes.handoff().await;
    let reentrancy = probes.reentrancy().await;
    let fencing = probes.fencing().await;
    let latency = probes.latency().await;
    let restart = probes.restart(&mut servers).await;
    servers.stop();
    let probe_file = probe_dir.join("probes.json");
    let all = serde_json::json!({
        "backend": name,
        "expiry": expiry.data, "handoff": handoff.data, "reentrancy": reentrancy.data,
        "fencing": fencing.data, "latency": latency.data, "restart": restart.data,
    });
    let text = serde_json::to_string_pretty(&all).unwrap_or_default();
    std::fs::write(&probe_file, text + "\n").map_err(|e| Error::io(&probe_file, e))?;
    let probe_link = relative(dir, &probe_file);

    let (exclusion, exclusion_verdict) = exclusion(&one_key, &own_keys, dir);
    let rate = |r: &Option<(PathBuf, crate::summary::Summary)>| match r {
        Some((d, s)) => Cell::new(
            format!("{:.0} ({})", s.throughput_per_s, s.verdict),
            None,
            serde_json::json!({"throughput_per_s": s.throughput_per_s, "verdict": s.verdict}),
        )
        .linked(Some(relative(dir, &d.join("index.html")))),
        None => Cell::new("not run", None, serde_json::Value::Null),
    };
    let link = Some(probe_link);
    row.cells = vec![
        ("exclusion".into(), exclusion),
        ("expiry".into(), expiry.linked(link.clone())),
        ("handoff".into(), handoff.linked(link.clone())),
        (
            "waiting".into(),
            Cell::new(
                info.waiters.to_string(),
                None,
                serde_json::json!(info.waiters.to_string()),
            ),
        ),
        ("reentrancy".into(), reentrancy.linked(link.clone())),
        ("fencing".into(), fencing.linked(link.clone())),
        ("restart".into(), restart.linked(link.clone())),
        ("latency".into(), latency.linked(link)),
        ("one_key".into(), rate(&one_key)),
        ("own_keys".into(), rate(&own_keys)),
        ("member_lost".into(), member_lost),
        ("member_cut".into(), member_cut),
    ];
    Ok((row, exclusion_verdict))
}

/// A contended run of `scenario`'s shape: all clients on one key, or each
/// on its own key.
async fn contended(
    scenario: &Scenario,
    name: &str,
    seed: u64,
    opts: &RunOptions,
    own: bool,
) -> Result<Option<(PathBuf, crate::summary::Summary)>> {
    let mut s = scenario.clone();
    s.name = format!(
        "{}-{}",
        scenario.name,
        if own { "own-keys" } else { "one-key" }
    );
    s.backends = vec![name.to_string()];
    if own {
        s.keys = (0..scenario.clients).map(|i| format!("lock-{i}")).collect();
        s.key_choice = KeyChoice::Own;
    } else {
        s.keys = vec!["lock".into()];
        s.key_choice = KeyChoice::Random;
    }
    s.expect = Verdict::Valid;
    match run_backend(&s, name, seed, opts).await? {
        RunOutcome::Completed { run_dir, summary } => Ok(Some((run_dir, *summary))),
        RunOutcome::Skipped { .. } => Ok(None),
    }
}

/// `target` as a link from a page in `base`: relative (run directories
/// sit beside the matrix's directory, not under it), else as it is.
pub(super) fn relative(base: &Path, target: &Path) -> String {
    crate::report::html::relative_path(base, target).unwrap_or_else(|| target.display().to_string())
}

/// The probes' shared setup.
struct Probes<'a> {
    backend: Arc<dyn LockBackend>,
    /// For a driver backend: each probe client gets a process of its own
    /// (a crashed holder is its whole process), built from this and these.
    driver: Option<(
        &'a crate::backend::BackendInfo,
        Vec<crate::cluster::Endpoint>,
        PathBuf,
    )>,
    lease: Duration,
    op_timeout: Duration,
    next_id: std::sync::atomic::AtomicU64,
    seed: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(super) fn fmt_ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        fmt_us(d)
    }
}

/// A probe client of a driver backend with the process it runs in.
struct OwnProcess {
    client: Box<dyn LockClient>,
    /// Keeps the client's process running; dropped with it.
    _backend: Arc<dyn LockBackend>,
}

#[async_trait::async_trait]
impl LockClient for OwnProcess {
    async fn acquire(
        &mut self,
        key: &str,
        opts: &AcquireOptions,
    ) -> Outcome<crate::backend::Guard> {
        self.client.acquire(key, opts).await
    }

    async fn release(
        &mut self,
        guard: &crate::backend::Guard,
    ) -> Outcome<crate::backend::Released> {
        self.client.release(guard).await
    }

    async fn renew(&mut self, guard: &mut crate::backend::Guard, lease: Duration) -> Outcome<()> {
        self.client.renew(guard, lease).await
    }

    fn crash(self: Box<Self>) {
        self.client.crash();
    }
}

impl Probes<'_> {
    async fn client(&self) -> Result<Box<dyn LockClient>> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = ClientConfig {
            id,
            seed: self.seed ^ id,
            op_timeout: self.op_timeout,
        };
        match &self.driver {
            Some((info, eps, log_dir)) => {
                let place = HostPlace {
                    host: id as usize + 1,
                    log_dir: log_dir.clone(),
                };
                let backend = info.build_for(eps, place).await?;
                let client = backend.client(config).await?;
                // The process lives as long as its client.
                Ok(Box::new(OwnProcess {
                    client,
                    _backend: backend,
                }))
            }
            None => self.backend.client(config).await,
        }
    }

    fn opts(&self, timeout: Duration) -> AcquireOptions {
        AcquireOptions {
            lease: self.lease,
            timeout,
        }
    }

    /// A lease far longer than the probe's waits, so that a lease running
    /// out cannot be mistaken for the property being probed.
    fn long_opts(&self, timeout: Duration) -> AcquireOptions {
        AcquireOptions {
            lease: self.lease.max(Duration::from_secs(30)),
            timeout,
        }
    }

    fn failed(what: &str, why: impl std::fmt::Display) -> Cell {
        Cell::new(
            format!("probe failed: {what}"),
            None,
            serde_json::json!({ "error": format!("{what}: {why}") }),
        )
    }

    /// The holder crashes; how long until another client gets the lock.
    async fn expiry(&self) -> Cell {
        let (mut a, mut b) = match (self.client().await, self.client().await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Self::failed("client", e),
        };
        let guard = match a.acquire("expiry", &self.opts(Duration::ZERO)).await {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        a.crash();
        let crashed = Instant::now();
        // Long enough for any lease or session to run out, bounded.
        let bound = (self.lease * 3 + Duration::from_secs(10)).min(Duration::from_secs(60));
        let out = b.acquire("expiry", &self.opts(bound)).await;
        let after = crashed.elapsed();
        let lease_ms = guard.lease.map(|l| l.as_millis() as u64);
        match out {
            Outcome::Ok(g) => {
                let _ = b.release(&g).await;
                Cell::new(
                    fmt_ms(after),
                    Some(true),
                    serde_json::json!({"free_after_ms": ms(after), "lease_ms": lease_ms}),
                )
            }
            Outcome::Fail(why) => Cell::new(
                format!("never within {} (deadlock)", fmt_ms(bound)),
                Some(false),
                serde_json::json!({"free_after_ms": null, "bound_ms": ms(bound), "error": why}),
            ),
            Outcome::Info(why) => {
                Cell::new("unknown (info)", None, serde_json::json!({"error": why}))
            }
        }
    }

    /// Eight waiters queue behind a holder; each releases as soon as it
    /// acquires. The gaps between successive grants are hand-offs.
    async fn handoff(&self) -> Cell {
        const WAITERS: usize = 8;
        let mut holder = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let guard = match holder
            .acquire("handoff", &self.long_opts(Duration::ZERO))
            .await
        {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let mut tasks = Vec::new();
        for _ in 0..WAITERS {
            let mut c = match self.client().await {
                Ok(c) => c,
                Err(e) => return Self::failed("client", e),
            };
            let o = self.long_opts(Duration::from_secs(20));
            tasks.push(tokio::spawn(async move {
                match c.acquire("handoff", &o).await {
                    Outcome::Ok(g) => {
                        let at = Instant::now();
                        let _ = c.release(&g).await;
                        Some(at)
                    }
                    _ => None,
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let released = Instant::now();
        let _ = holder.release(&guard).await;
        let mut grants = Vec::new();
        for t in tasks {
            if let Ok(Some(at)) = t.await {
                grants.push(at);
            }
        }
        grants.sort();
        if grants.len() < WAITERS {
            return Cell::new(
                format!("{} of {WAITERS} waiters got the lock", grants.len()),
                Some(false),
                serde_json::json!({"granted": grants.len()}),
            );
        }
        let mut gaps: Vec<Duration> =
            std::iter::once(grants[0].saturating_duration_since(released))
                .chain(grants.windows(2).map(|w| w[1] - w[0]))
                .collect();
        let raw: Vec<f64> = gaps.iter().map(|d| ms(*d)).collect();
        gaps.sort();
        let median = gaps[gaps.len() / 2];
        Cell::new(
            format!("median {}", fmt_ms(median)),
            None,
            serde_json::json!({"median_ms": ms(median), "gaps_ms": raw, "waiters": WAITERS}),
        )
    }

    /// The holder asks for the lock again.
    async fn reentrancy(&self) -> Cell {
        let mut a = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let first = match a
            .acquire("reentrant", &self.long_opts(Duration::ZERO))
            .await
        {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let timeout = Duration::from_millis(1000);
        let started = Instant::now();
        let again = a.acquire("reentrant", &self.long_opts(timeout)).await;
        let took = started.elapsed();
        let cell = match &again {
            Outcome::Ok(_) => Cell::new(
                "succeeds (reentrant)",
                None,
                serde_json::json!({"outcome": "ok", "ms": ms(took)}),
            ),
            Outcome::Fail(why) if took < timeout / 2 => Cell::new(
                "fails at once",
                None,
                serde_json::json!({"outcome": "fail", "ms": ms(took), "error": why}),
            ),
            Outcome::Fail(why) => Cell::new(
                "blocks (self-deadlock until the timeout)",
                None,
                serde_json::json!({"outcome": "blocks", "ms": ms(took), "error": why}),
            ),
            Outcome::Info(why) => {
                Cell::new("unknown (info)", None, serde_json::json!({"error": why}))
            }
        };
        if let Outcome::Ok(g) = again {
            let _ = a.release(&g).await;
        }
        let _ = a.release(&first).await;
        cell
    }

    /// Twenty grants alternating between two clients: are there tokens, and
    /// do they only grow?
    async fn fencing(&self) -> Cell {
        let mut cs = Vec::new();
        for _ in 0..2 {
            match self.client().await {
                Ok(c) => cs.push(c),
                Err(e) => return Self::failed("client", e),
            }
        }
        let mut fences = Vec::new();
        for i in 0..20 {
            let c = &mut cs[i % 2];
            match c.acquire("fence", &self.opts(Duration::from_secs(5))).await {
                Outcome::Ok(g) => {
                    fences.push(g.fence);
                    let _ = c.release(&g).await;
                }
                other => return Self::failed("acquire", format!("{other:?}")),
            }
        }
        let tokens: Vec<u64> = fences.iter().flatten().copied().collect();
        if tokens.is_empty() {
            return Cell::new("none", Some(false), serde_json::json!({"fences": fences}));
        }
        let grows = tokens.len() == fences.len() && tokens.windows(2).all(|w| w[1] > w[0]);
        Cell::new(
            if grows { "yes, grows" } else { "not monotonic" },
            Some(grows),
            serde_json::json!({"fences": fences}),
        )
    }

    /// Two hundred uncontended acquire+release cycles by one client.
    async fn latency(&self) -> Cell {
        let mut a = match self.client().await {
            Ok(c) => c,
            Err(e) => return Self::failed("client", e),
        };
        let mut cycles = Vec::with_capacity(200);
        for _ in 0..200 {
            let start = Instant::now();
            match a
                .acquire("latency", &self.opts(Duration::from_secs(5)))
                .await
            {
                Outcome::Ok(g) => {
                    if !matches!(a.release(&g).await, Outcome::Ok(_)) {
                        return Self::failed("release", "did not complete ok");
                    }
                }
                other => return Self::failed("acquire", format!("{other:?}")),
            }
            cycles.push(start.elapsed());
        }
        cycles.sort();
        let p50 = cycles[cycles.len() / 2];
        let p99 = cycles[cycles.len() * 99 / 100];
        Cell::new(
            format!("{} / {}", fmt_us(p50), fmt_us(p99)),
            None,
            serde_json::json!({"p50_us": p50.as_micros() as u64, "p99_us": p99.as_micros() as u64, "cycles": cycles.len()}),
        )
    }

    /// The first server is killed (-9) and restarted while a client holds a
    /// lock; then another client tries to take it.
    async fn restart(&self, servers: &mut Cluster) -> Cell {
        if servers.servers().is_empty() {
            return Cell::new("n/a (no server)", None, serde_json::Value::Null);
        }
        let (mut a, mut b) = match (self.client().await, self.client().await) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Self::failed("client", e),
        };
        // A lease long enough not to run out during the restart.
        let long = AcquireOptions {
            lease: Duration::from_secs(30),
            timeout: Duration::ZERO,
        };
        let held = match a.acquire("restart", &long).await {
            Outcome::Ok(g) => g,
            other => return Self::failed("first acquire", format!("{other:?}")),
        };
        let members = servers.servers().len();
        let started = Instant::now();
        if let Err(e) = servers.restart(0).await {
            return Self::failed("restart", e);
        }
        let restart_ms = ms(started.elapsed());
        // Clients reconnect by themselves; keep asking until a definite answer.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last: String;
        let cell = loop {
            match b.acquire("restart", &long).await {
                Outcome::Ok(g) => {
                    let went_back = matches!((held.fence, g.fence), (Some(x), Some(y)) if y <= x);
                    let text = if went_back {
                        "lost; fence went back"
                    } else {
                        "lost: another client acquired it"
                    };
                    let _ = b.release(&g).await;
                    break Cell::new(
                        text,
                        Some(false),
                        serde_json::json!({"kept": false, "fence_before": held.fence, "fence_after": g.fence, "restart_ms": restart_ms, "members": members}),
                    );
                }
                Outcome::Fail(why) if why.starts_with("busy") => {
                    break Cell::new(
                        "kept",
                        Some(true),
                        serde_json::json!({"kept": true, "restart_ms": restart_ms, "members": members}),
                    );
                }
                Outcome::Fail(why) | Outcome::Info(why) => last = why,
            }
            if Instant::now() >= deadline {
                break Cell::new(
                    "no answer after the restart",
                    None,
                    serde_json::json!({"error": last, "restart_ms": restart_ms}),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = a.release(&held).await;
        if members > 1 {
            let mut c = cell;
            c.text = format!("{} (1 of {members} restarted)", c.text);
            c
        } else {
            cell
        }
    }
}

fn fmt_us(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}
