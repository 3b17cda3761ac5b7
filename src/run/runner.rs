//! One scenario × one backend → one run directory.
//!
//! Start the servers, make the clients, let them contend until the
//! duration or the operation budget runs out, stop the servers, then check
//! the history as written on disk (the same path `lockbench check` takes)
//! and write summary.json and index.html.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::driver::HostPlace;
use crate::backend::{self, ClientConfig, LockBackend, LockClient};
use crate::check::{self, CheckResult, Verdict};
use crate::cluster::{self, Cluster};
use crate::error::{Error, Result};
use crate::fault::nemesis::{self, Links};
use crate::history::{Clock, HistoryFormat, Recorder, RecorderHandle};
use crate::metrics::Metrics;
use crate::scenario::Scenario;
use crate::summary::{LostUpdates, Summary};
use crate::workload::{ClientPlan, ClientSlot, ClientTask, ProtectedResource, Workload};
use std::sync::atomic::{AtomicU64, Ordering};

/// How a run is carried out, beyond the scenario itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root of the run directories (`reports/` by default).
    pub out_dir: PathBuf,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Cancelled on Ctrl-C: the run stops early but still writes its files.
    pub cancel: CancellationToken,
    /// A backend whose server is not installed fails the run instead of
    /// being skipped (CI sets `LOCKBENCH_REQUIRE_BACKENDS=1`, which the
    /// binary reads).
    pub require_backends: bool,
    /// Human progress lines go to stderr (stdout carries JSON lines).
    pub human_to_stderr: bool,
    /// How histories are stored: `history.jsonl.zst` (the default) or
    /// plain `history.jsonl`.
    pub history_format: HistoryFormat,
    /// This process is one agent of several (`--agent I/N`): it runs its
    /// slice of the clients, from the agreed instant, and records its
    /// clock's facts beside its history.
    pub agent: Option<super::agents::AgentRole>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            out_dir: PathBuf::from("reports"),
            progress: false,
            cancel: CancellationToken::new(),
            require_backends: false,
            human_to_stderr: false,
            history_format: HistoryFormat::default(),
            agent: None,
        }
    }
}

/// What became of one backend of a scenario.
#[derive(Debug)]
pub enum RunOutcome {
    /// It ran; its files are in `run_dir`.
    Completed {
        /// The run directory.
        run_dir: PathBuf,
        /// What it found.
        summary: Box<Summary>,
    },
    /// Its server is not installed (and not required): nothing ran.
    Skipped {
        /// Why, with the install hint.
        reason: String,
    },
}

/// `None` when `info`'s server is installed (or not needed: in-process,
/// or `external` endpoints); else the reason to skip the backend, with the
/// install hint, or that reason as the error when backends are required.
pub(super) fn missing_server(
    info: &backend::BackendInfo,
    external: bool,
    opts: &RunOptions,
) -> Result<Option<String>> {
    if let Some((path, hint)) = info.missing() {
        let e = Error::MissingServer {
            backend: info.name.clone(),
            binary: path,
            hint,
        };
        if opts.require_backends {
            return Err(e);
        }
        return Ok(Some(e.to_string()));
    }
    let Some(kind) = info.server.filter(|_| !external) else {
        return Ok(None);
    };
    match cluster::ensure_installed(&info.name, kind) {
        Ok(_) => Ok(None),
        Err(e) if opts.require_backends => Err(e),
        Err(e) => Ok(Some(e.to_string())),
    }
}

/// Events in flight between clients and the history writer.
const HISTORY_CHANNEL: usize = 64 * 1024;

/// Runs `backend_name` of `scenario` with `seed`: its servers, its
/// clients contending under the scenario's faults, the history checked,
/// `summary.json` and `index.html` written.
pub async fn run_backend(
    scenario: &Scenario,
    backend_name: &str,
    seed: u64,
    opts: &RunOptions,
) -> Result<RunOutcome> {
    let registry = scenario.registry();
    let info = registry.require(backend_name)?;
    run_with(scenario, info, seed, opts).await
}

/// [`run_backend`] for the backend `info` describes (one the registry
/// need not know: a lock of the user's own, see `run::harness`).
pub async fn run_with(
    scenario: &Scenario,
    info: &backend::BackendInfo,
    seed: u64,
    opts: &RunOptions,
) -> Result<RunOutcome> {
    let backend_name = info.name.as_str();
    // Find out whether the server exists before creating anything on disk.
    let external = scenario.endpoints.get(backend_name);
    if let Some(reason) = missing_server(info, external.is_some(), opts)? {
        return Ok(RunOutcome::Skipped { reason });
    }
    let run_dir = new_run_dir(&opts.out_dir, &scenario.name, backend_name)?;
    let started_at = now_rfc3339();
    let shape = info.shape(scenario.topology);
    // The timeline plus the random schedule's draw for this seed.
    let deployment = scenario.deployments.get(backend_name);
    let members = match deployment {
        Some(d) => d.data_members().len(),
        None => shape.map_or(info.servers.max(1), |s| s.members()),
    };
    // Of several agents, the first runs the faults.
    let faults = match &opts.agent {
        Some(a) if a.index > 1 => Vec::new(),
        _ => scenario.faults_for(seed, members),
    };
    let (servers, notes) =
        start_servers(info, external, deployment, shape, &faults, &run_dir).await?;
    write_servers_file(&run_dir, &servers)?;
    let hosts = scenario.hosts.max(1) as usize;
    // With network faults (or client pauses, which blackhole links), each
    // host's clients reach each server through a proxy of their own, so
    // one host can be cut off.
    // Or, where the user runs Toxiproxy in front of a deployment, its
    // proxies carry the network faults.
    let toxi = toxi_links(deployment).await?;
    let network = faults.iter().any(|f| f.kind.needs_links());
    let links = if network && toxi.is_none() && info.server.is_some() {
        Some(Arc::new(
            Links::start(servers.endpoints(), hosts, seed).await?,
        ))
    } else {
        None
    };
    // One backend per host when each host has its own links or its own
    // driver process; else one that every client shares.
    let per_host = links.is_some() || info.driver.is_some();
    let mut host_backends = Vec::new();
    for h in 0..if per_host { hosts } else { 1 } {
        let eps = match &links {
            Some(l) => l.endpoints_for(h, servers.endpoints()),
            None => servers.endpoints().to_vec(),
        };
        let place = HostPlace {
            host: h + 1,
            log_dir: run_dir.clone(),
        };
        host_backends.push(info.build_for(&eps, place).await?);
    }
    let contended = contend(
        scenario,
        backend_name,
        seed,
        opts,
        &run_dir,
        host_backends,
        servers,
        (links, toxi),
        faults,
    )
    .await?;
    give_back_free_memory();
    let analysis = if scenario.history {
        Some(analyze_file(&run_dir.join(opts.history_format.file_name()), scenario).await?)
    } else {
        None
    };
    let history_error = contended.history_error.clone();
    let mut summary = summarize(
        scenario,
        backend_name,
        seed,
        started_at,
        notes,
        contended,
        analysis,
    );
    if let Some(a) = &opts.agent {
        a.mark(&mut summary, scenario.clients);
    }
    let written = summary
        .write(&run_dir.join("summary.json"))
        .and_then(|()| crate::report::write_run_report(&run_dir, &summary).map(|_| ()));
    if let Some(why) = history_error {
        // The run failed; what it recorded is kept and said.
        let kept = match written {
            Ok(()) => format!(
                "summary.json and the report of the recorded prefix are in {}",
                run_dir.display()
            ),
            Err(e) => format!("and the summary of the prefix could not be written either: {e}"),
        };
        return Err(Error::io(
            run_dir.join(opts.history_format.file_name()),
            std::io::Error::other(format!("the run stopped: {why}; {kept}")),
        ));
    }
    written?;
    Ok(RunOutcome::Completed {
        run_dir,
        summary: Box::new(summary),
    })
}

/// The user's Toxiproxy in front of a deployment, where it names one.
async fn toxi_links(
    deployment: Option<&crate::cluster::hooks::Deployment>,
) -> Result<Option<Arc<nemesis::ToxiLinks>>> {
    let Some((d, api)) = deployment.and_then(|d| d.toxiproxy.as_deref().map(|api| (d, api))) else {
        return Ok(None);
    };
    let proxies = d
        .data_members()
        .iter()
        .filter_map(|m| m.proxy.clone())
        .collect();
    Ok(Some(Arc::new(
        nemesis::ToxiLinks::connect(api, proxies).await?,
    )))
}

/// Starts the servers of `info` (none in-process; the user's at
/// `external`; `shape`'s replicated topology, or single servers), with the
/// clock library when `faults` skew clocks and the kind can be skewed;
/// with notes for the report on what did not apply.
pub(super) async fn start_servers(
    info: &backend::BackendInfo,
    external: Option<&Vec<String>>,
    deployment: Option<&crate::cluster::hooks::Deployment>,
    shape: Option<crate::cluster::topology::Shape>,
    faults: &[crate::fault::FaultSpec],
    run_dir: &Path,
) -> Result<(Cluster, Vec<String>)> {
    let mut notes = Vec::new();
    let clock_faults = faults.iter().any(|f| f.kind.on_clocks());
    let Some(kind) = info.server else {
        return Ok((Cluster::none(), notes));
    };
    if let Some(d) = deployment {
        return Ok((Cluster::deployment(kind, d.clone()).await?, notes));
    }
    if let Some(addrs) = external {
        return Ok((Cluster::external(kind, addrs).await?, notes));
    }
    let with_clock = clock_faults
        && match kind.skew_support() {
            Ok(()) => true,
            Err(why) => {
                notes.push(format!(
                    "clock faults did not apply to {}: {why}",
                    info.name
                ));
                false
            }
        };
    let n = info.servers.max(1);
    let cluster = match (shape, with_clock) {
        (Some(shape), true) => Cluster::start_replicated_with_clock(shape, run_dir).await?,
        (Some(shape), false) => Cluster::start_replicated(shape, run_dir).await?,
        (None, true) => Cluster::start_with_clock(kind, n, run_dir).await?,
        (None, false) => Cluster::start(kind, n, run_dir).await?,
    };
    Ok((cluster, notes))
}

/// What a crashed client's successor is made with: the plan, the next
/// unused process id, the run's seed and the operation timeout.
type Successors = (Arc<ClientPlan>, Arc<Ids>, u64, Duration);

/// The process ids of this process's clients: all of them, or one agent's
/// share (`local × count + index − 1`, so that no two agents' ids meet),
/// successors of crashed clients included.
#[derive(Debug)]
struct Ids {
    /// Agents in all.
    stride: u64,
    /// This agent's residue.
    offset: u64,
    /// Clients made here so far.
    made: AtomicU64,
}

impl Ids {
    fn new(agent: Option<&super::agents::AgentRole>) -> Self {
        Ids {
            stride: agent.map_or(1, |a| u64::from(a.count)),
            offset: agent.map_or(0, |a| u64::from(a.index - 1)),
            made: AtomicU64::new(0),
        }
    }

    /// The next process id.
    fn next(&self) -> u64 {
        self.made.fetch_add(1, Ordering::Relaxed) * self.stride + self.offset
    }
}

/// What the contended part of a run left behind.
struct Contended {
    /// The faults as they were carried out.
    faults: Vec<crate::summary::FaultRecord>,
    /// Stopped early by Ctrl-C or a history it could not write.
    interrupted: bool,
    /// Why the history could not be written in full (a full disk).
    history_error: Option<String>,
    /// Events written to history.jsonl.
    history_events: u64,
    /// From the clock's start until the history was on disk.
    ran_for: Duration,
    /// The clients' latencies and counts.
    metrics: Arc<Metrics>,
    /// What holders wrote.
    resource: Arc<ProtectedResource>,
    /// The servers, for summary.json.
    server_infos: Vec<crate::summary::ServerInfo>,
    /// Their replicated topology, described.
    topology: Option<String>,
    /// The lock library, for a driver backend.
    library: Option<crate::summary::Library>,
}

/// Waits for the run's end: its duration, Ctrl-C, every client done, or a
/// history that can no longer be written; moves the progress bar on the
/// way. Whether the run was interrupted.
async fn until_end<T: 'static>(
    duration: Duration,
    opts: &RunOptions,
    tasks: &mut JoinSet<T>,
    history_watch: &RecorderHandle,
    clock: Clock,
    metrics: &Metrics,
    progress: Option<&indicatif::ProgressBar>,
) -> bool {
    let deadline = tokio::time::Instant::now() + duration;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return false,
            _ = opts.cancel.cancelled() => return true,
            next = tasks.join_next() => if next.is_none() { return false },
            _ = tick.tick() => {
                if history_watch.has_failed() {
                    // The disk is full (or the file unwritable): stop, and
                    // keep what was recorded.
                    return true;
                }
                if let Some(p) = progress {
                    p.set_position(clock.started().elapsed().as_millis() as u64);
                    p.set_message(format!("{} acquisitions", metrics.acquisitions()));
                }
            }
        }
    }
}

/// Closes the history: the recorder's queue on disk, then its spool
/// converted. The events written, why the history could not be written (if
/// it could not), and how long the run lasted: until its events were on
/// disk.
async fn close_history(
    recorder: Option<Recorder>,
    history_path: &Path,
    clock: Clock,
) -> Result<(u64, Option<String>, Duration)> {
    let join = |e| Error::io(history_path, std::io::Error::other(e));
    let recorded = match recorder {
        Some(r) => Some(
            tokio::task::spawn_blocking(move || r.finish_recording())
                .await
                .map_err(join)?,
        ),
        None => None,
    };
    // The run lasts until its history is on disk: with recording on, events
    // still queued when the clients stop are part of the run's cost. The
    // spool's conversion into history lines, after that, is post-processing
    // like the check (it runs on the run's idle CPU while the run goes).
    let ran_for = clock.started().elapsed();
    let (history_events, history_error) = match recorded {
        Some(Ok(finishing)) => match tokio::task::spawn_blocking(move || finishing.wait())
            .await
            .map_err(join)?
        {
            Ok(n) => (n, None),
            Err(e) => (0, Some(e.to_string())),
        },
        Some(Err(e)) => (0, Some(e.to_string())),
        None => (0, None),
    };
    Ok((history_events, history_error, ran_for))
}

/// A client of the lock and its backend (which makes its successors).
type Made = (Box<dyn LockClient>, Arc<dyn LockBackend>);

/// The scenario's clients, client `id` on host `id % hosts` and that
/// host's backend, each with the slot through which faults reach it.
async fn make_clients(
    scenario: &Scenario,
    seed: u64,
    (host_backends, hosts): (&[Arc<dyn LockBackend>], usize),
    opts: &RunOptions,
    ids: &Ids,
) -> Result<(Vec<Made>, Arc<Vec<Arc<ClientSlot>>>)> {
    // An agent makes its share of the clients.
    let clients = opts
        .agent
        .as_ref()
        .map_or(scenario.clients, |a| a.clients(scenario.clients));
    let mut locks = Vec::with_capacity(clients as usize);
    let mut slots = Vec::with_capacity(clients as usize);
    for _ in 0..clients {
        let id = ids.next();
        let config = ClientConfig {
            id,
            seed: mix(seed, id),
            op_timeout: scenario.op_timeout,
        };
        let host = id as usize % hosts;
        let backend = host_backends[host % host_backends.len()].clone();
        locks.push((backend.client(config).await?, backend));
        slots.push(Arc::new(ClientSlot::new(host, id)));
    }
    Ok((locks, Arc::new(slots)))
}

/// Ends the run: the clients finish the cycle they are in (stragglers are
/// aborted after a grace), then every fault is undone. The faults as they
/// were carried out.
async fn wind_down<T: 'static>(
    scenario: &Scenario,
    backend_name: &str,
    plan: &ClientPlan,
    tasks: &mut JoinSet<T>,
    nemesis_stop: CancellationToken,
    nemesis: tokio::task::JoinHandle<Vec<crate::summary::FaultRecord>>,
) -> Vec<crate::summary::FaultRecord> {
    plan.stop.cancel();
    // Clients finish the cycle they are in: an acquire (bounded by its
    // timeout), a hold, a release. After that, stragglers are aborted.
    let grace = scenario.acquire_timeout
        + scenario.hold.max()
        + scenario.op_timeout * 4
        + Duration::from_secs(2);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("{backend_name}: clients still busy {grace:?} after the end; aborting them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // Every fault ends now: links heal, paused servers resume, killed ones
    // come back, before the history is closed.
    nemesis_stop.cancel();
    tokio::time::timeout(nemesis::UNDO_GRACE, nemesis)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default()
}

/// What the nemesis can reach: the links, the servers, the clients' slots
/// and the driver processes of the hosts.
fn nemesis_targets(
    (links, toxi): &(Option<Arc<Links>>, Option<Arc<nemesis::ToxiLinks>>),
    servers: &Arc<tokio::sync::Mutex<Cluster>>,
    hosts: usize,
    slots: &Arc<Vec<Arc<ClientSlot>>>,
    seed: u64,
    host_backends: &[Arc<dyn LockBackend>],
    run_dir: &Path,
) -> nemesis::Targets {
    nemesis::Targets {
        links: links.clone(),
        toxi: toxi.clone(),
        servers: servers.clone(),
        hosts,
        slots: slots.clone(),
        seed,
        processes: host_backends
            .iter()
            .filter_map(|b| b.host_process())
            .collect(),
        hook_logs: run_dir.to_path_buf(),
        hook_seq: Arc::new(AtomicU64::new(0)),
    }
}

/// What every client of the scenario does: its keys, lease, timeouts,
/// hold and think times, workload, and the run's operation budget.
fn client_plan(scenario: &Scenario) -> ClientPlan {
    ClientPlan {
        keys: scenario.keys.clone(),
        key_choice: scenario.key_choice,
        lease: scenario.lease,
        acquire_timeout: scenario.acquire_timeout,
        hold: scenario.hold,
        think: scenario.think,
        workload: scenario.workload,
        budget: std::sync::atomic::AtomicU64::new(scenario.ops.unwrap_or(u64::MAX)),
        stop: CancellationToken::new(),
    }
}

/// The lock library of a driver backend, as its driver named it.
fn library_of(host_backends: &[Arc<dyn LockBackend>]) -> Option<crate::summary::Library> {
    host_backends
        .first()
        .and_then(|b| b.library())
        .map(|(name, version)| crate::summary::Library { name, version })
}

/// Starts the run's clock; an agent first measures its own clock and
/// waits for the agreed instant, and notes the wall clock at the start.
async fn start_clock(opts: &RunOptions) -> Result<(Clock, Option<super::agents::AgentStart>)> {
    let Some(a) = &opts.agent else {
        return Ok((Clock::start(), None));
    };
    let before = a.before_start(&opts.cancel).await?;
    let clock = Clock::start();
    Ok((clock, Some(before.started(a.clock_offset_ns))))
}

/// The run itself: clients made (before the clock starts: connecting is
/// not part of the measured run), then contending with the nemesis until
/// the duration, the operation budget or Ctrl-C; every fault undone and
/// the history closed before the servers stop.
#[allow(clippy::too_many_arguments)]
async fn contend(
    scenario: &Scenario,
    backend_name: &str,
    seed: u64,
    opts: &RunOptions,
    run_dir: &Path,
    host_backends: Vec<Arc<dyn crate::backend::LockBackend>>,
    servers: Cluster,
    links: (Option<Arc<Links>>, Option<Arc<nemesis::ToxiLinks>>),
    faults: Vec<crate::fault::FaultSpec>,
) -> Result<Contended> {
    let hosts = scenario.hosts.max(1) as usize;
    let library = library_of(&host_backends);
    let plan = Arc::new(client_plan(scenario));
    // A crashed client's successor gets the next unused process id.
    let next_id = Arc::new(Ids::new(opts.agent.as_ref()));
    let (locks, slots) =
        make_clients(scenario, seed, (&host_backends, hosts), opts, &next_id).await?;

    let history_path = run_dir.join(opts.history_format.file_name());
    let (clock, agent_start) = start_clock(opts).await?;
    let (recorder, handle) = if scenario.history {
        let format = opts.history_format;
        let (r, h) = Recorder::create(&history_path, format, HISTORY_CHANNEL, clock, &plan.keys)?;
        (Some(r), h)
    } else {
        (None, RecorderHandle::disabled())
    };
    let metrics = Arc::new(Metrics::new());
    let resource = Arc::new(ProtectedResource::new());
    // To notice a writer that stopped on an error (dropped before the
    // history is finished: the writer ends when the last handle goes).
    let history_watch = handle.clone();
    let mut tasks = JoinSet::new();
    for (n, (lock, backend)) in locks.into_iter().enumerate() {
        let id = slots[n].id.load(Ordering::Relaxed);
        let task = ClientTask::new(
            id,
            mix(seed, id ^ 0x5eed),
            lock,
            handle.clone(),
            clock,
            metrics.clone(),
            resource.clone(),
            plan.clone(),
        )
        .in_slot(slots[n].clone());
        let successors = (plan.clone(), next_id.clone(), seed, scenario.op_timeout);
        tasks.spawn(supervise(task, backend, successors));
    }
    let servers = Arc::new(tokio::sync::Mutex::new(servers));
    let nemesis_stop = CancellationToken::new();
    // Should this future be dropped mid-run, the nemesis still undoes its
    // faults (a paused server resumed, a cut healed) and then lets go of
    // the servers, whose processes stop with their last owner.
    let _undo_on_drop = nemesis_stop.clone().drop_guard();
    let nemesis = tokio::spawn(nemesis::run(
        faults,
        nemesis_targets(
            &links,
            &servers,
            hosts,
            &slots,
            seed,
            &host_backends,
            run_dir,
        ),
        handle.clone(),
        clock,
        nemesis_stop.clone(),
    ));
    drop(handle);

    let progress = progress_bar(opts.progress, scenario, backend_name);
    let interrupted = until_end(
        scenario.duration,
        opts,
        &mut tasks,
        &history_watch,
        clock,
        &metrics,
        progress.as_ref(),
    )
    .await;
    let faults_done = wind_down(
        scenario,
        backend_name,
        &plan,
        &mut tasks,
        nemesis_stop,
        nemesis,
    )
    .await;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    drop(plan);
    drop(history_watch);
    let (history_events, history_error, ran_for) =
        close_history(recorder, &history_path, clock).await?;
    if let (Some(a), Some(start)) = (&opts.agent, agent_start) {
        a.after_end(start).await.write(run_dir)?;
    }
    drop(links);
    let mut servers = servers.lock().await;
    servers.stop();
    Ok(Contended {
        faults: faults_done,
        interrupted,
        history_error,
        history_events,
        ran_for,
        metrics,
        resource,
        server_infos: servers.infos().to_vec(),
        library,
        topology: servers.shape().map(|s| s.describe()),
    })
}

/// Returns the heap's free pages to the system. The clients' tasks are
/// gone when the run ends, but glibc keeps the memory they freed (in every
/// thread's arena); without this the check after the run would add its
/// memory to theirs, and the run's peak would be the sum of the two.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no
    // pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `summary.json` of a run, from what it measured and what the check of
/// its history found (`None`: recording was off).
fn summarize(
    scenario: &Scenario,
    backend_name: &str,
    seed: u64,
    started_at: String,
    notes: Vec<String>,
    run: Contended,
    analysis: Option<check::Analysis>,
) -> Summary {
    let result = match &analysis {
        Some(a) => a.mutex.clone(),
        None => CheckResult {
            verdict: Verdict::NotChecked,
            ..CheckResult::unknown(
                "mutual-exclusion",
                "the run recorded no history (history = false), so nothing was checked and the \
                 scenario's expectation is not judged",
            )
        },
    };
    let verdict = analysis
        .as_ref()
        .map(|a| a.verdict())
        .unwrap_or(result.verdict);
    // A run that checked nothing matches whatever was expected.
    let matches_expectation =
        verdict == Verdict::NotChecked || verdict == scenario.expect_for(backend_name);
    let snap = run.metrics.snapshot();
    let duration_s = run.ran_for.as_secs_f64().max(1e-9);
    let resource = &run.resource;
    Summary {
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        backend: backend_name.to_string(),
        seed,
        expect: scenario.expect_for(backend_name),
        verdict,
        matches_expectation,
        violations: result.violations,
        incidents: result.incidents,
        witnesses: result.witnesses,
        verdict_reason: result.reason,
        violation_classes: result.classes,
        ownership: analysis
            .as_ref()
            .map(|a| a.ownership.clone())
            .unwrap_or_default(),
        fencing: analysis
            .as_ref()
            .map(|a| a.fencing.clone())
            .unwrap_or_default(),
        liveness: analysis
            .as_ref()
            .map(|a| a.liveness.clone())
            .unwrap_or_default(),
        recovery: analysis.map(|a| a.recovery).unwrap_or_default(),
        lost_updates: (scenario.workload == Workload::Counter).then(|| {
            let (acknowledged, final_value) = (resource.acknowledged(), resource.counter_total());
            LostUpdates {
                acknowledged,
                final_value,
                lost: acknowledged.saturating_sub(final_value),
            }
        }),
        notes: notes
            .into_iter()
            .chain(fault_notes(&run.faults))
            .chain(
                run.history_error
                    .as_ref()
                    .map(|e| format!("interrupted: could not write the history: {e}")),
            )
            .collect(),
        ops: snap.ops,
        acquire_latency_us: snap.acquire,
        acquire_latency_curve: snap.acquire_curve,
        release_latency_us: snap.release,
        hold_time_us: snap.hold,
        throughput_per_s: snap.acquisitions as f64 / duration_s,
        throughput_timeline: snap.per_second,
        duration_s,
        clients: scenario.clients,
        hosts: scenario.hosts,
        keys: scenario.keys.clone(),
        lease_ms: scenario.lease.as_millis() as u64,
        faults: run.faults,
        servers: run.server_infos,
        topology: run.topology,
        started_at,
        history_events: run.history_events,
        interrupted: run.interrupted,
        lockbench_version: env!("CARGO_PKG_VERSION").to_string(),
        agents: None,
        library: run.library,
    }
}

/// Runs one client slot: the client, and after each crash the nemesis
/// injects, a successor with a new process id, once the fault ends.
async fn supervise(
    mut task: ClientTask,
    backend: Arc<dyn crate::backend::LockBackend>,
    (plan, next_id, seed, op_timeout): Successors,
) {
    // Bounded: each turn ends with the run's stop or a crash fault, and
    // the faults are finite.
    loop {
        let Some(dead) = task.run_until_crash().await else {
            return;
        };
        let Some(slot) = dead.slot().cloned() else {
            return;
        };
        // A client whose driver exited is replaced at once (the backend
        // bounds the driver's restarts); one the nemesis crashed, when the
        // fault ends.
        if dead.gone().is_none() {
            tokio::select! {
                _ = slot.restarted() => {}
                _ = plan.stop.cancelled() => return,
            }
        } else if plan.stop.is_cancelled() {
            return;
        }
        let id = next_id.next();
        let config = ClientConfig {
            id,
            seed: mix(seed, id),
            op_timeout,
        };
        match backend.client(config).await {
            Ok(lock) => task = dead.reborn(id, mix(seed, id ^ 0x5eed), lock),
            Err(e) => {
                tracing::warn!("client {id} could not replace a crashed client: {e}");
                return;
            }
        }
    }
}

/// Notes for the reader about faults that could not act.
fn fault_notes(faults: &[crate::summary::FaultRecord]) -> Vec<String> {
    faults
        .iter()
        .filter_map(|f| {
            f.error.as_ref().map(|e| {
                format!(
                    "{} at {:.1} s did not act: {e}",
                    f.fault,
                    f.start_ns as f64 / 1e9
                )
            })
        })
        .collect()
}

/// Analyses a run's history file, off the async threads.
async fn analyze_file(path: &Path, scenario: &Scenario) -> Result<check::Analysis> {
    let path = path.to_path_buf();
    let opts = check::AnalysisOptions {
        // A lock nobody holds while clients wait, with no fault active, for
        // longer than a lease plus the acquire timeout is stuck.
        deadlock_bound: Some(scenario.lease + scenario.acquire_timeout),
    };
    tokio::task::spawn_blocking(move || check::analyze_file(&path, opts).map(|(a, _)| a))
        .await
        .map_err(|e| Error::io("history check", std::io::Error::other(e)))?
}

/// Reads a history file and checks it, off the async threads.
pub async fn check_file(path: &Path) -> Result<CheckResult> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || check::check_file(&path).map(|(r, _)| r))
        .await
        .map_err(|e| Error::io("history check", std::io::Error::other(e)))?
}

/// SplitMix64 of `seed` and `n`: independent-looking seeds per client.
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `out/<scenario>/<backend>/<timestamp>/`, made unique if two runs start
/// within the same millisecond.
pub(super) fn new_run_dir(out: &Path, scenario: &str, backend: &str) -> Result<PathBuf> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let base = out.join(scenario).join(backend);
    std::fs::create_dir_all(&base).map_err(|e| Error::io(&base, e))?;
    for n in 0.. {
        let dir = if n == 0 {
            base.join(&stamp)
        } else {
            base.join(format!("{stamp}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    unreachable!("the loop above returns")
}

/// `servers.json`: which processes serve this run, written as soon as they
/// are up, so that a run killed midway can still be inspected.
pub(super) fn write_servers_file(run_dir: &Path, cluster: &Cluster) -> Result<()> {
    let servers: Vec<serde_json::Value> = cluster
        .infos()
        .iter()
        .map(|info| {
            let pid = cluster
                .processes()
                .into_iter()
                .find(|s| s.name() == info.name)
                .map(|s| s.pid());
            serde_json::json!({
                "name": info.name, "addr": info.addr, "version": info.version,
                "pid": pid, "log": info.log, "started_by_lockbench": info.started_by_lockbench,
            })
        })
        .collect();
    let path = run_dir.join("servers.json");
    let text = serde_json::to_string_pretty(&servers).unwrap_or_else(|_| "[]".into());
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))
}

fn progress_bar(
    enabled: bool,
    scenario: &Scenario,
    backend: &str,
) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = indicatif::ProgressBar::new(scenario.duration.as_millis() as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>24} [{bar:30}] {elapsed:>4}/{duration:4} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("{}/{backend}", scenario.name));
    Some(bar)
}

impl RunOutcome {
    /// The verdict, if it ran.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            RunOutcome::Completed { summary, .. } => Some(summary.verdict),
            RunOutcome::Skipped { .. } => None,
        }
    }
}
