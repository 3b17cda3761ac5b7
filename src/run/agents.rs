//! Many load agents, one history.
//!
//! An agent is a `lockbench run --agent I/N`: it runs the clients whose
//! process ids are `I − 1` modulo `N`, starts at a wall-clock instant all
//! agents are given, and writes beside its history its clock's facts
//! (`agent.json`): its offset to a time reference and the bound on it,
//! measured before the start and after the end. Agent 1 alone runs the
//! scenario's faults. `lockbench merge` then makes one run of the agents'
//! directories (`run::merge`).
//!
//! [`run_local`] is `lockbench run --agents N`: this process starts the
//! servers and a time reference on loopback, then N agent processes of its
//! own binary against those servers, waits for them (killing any that
//! outlive the run's bound), and merges their runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use super::kubernetes::{JobOptions, kubernetes_job};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::runner::{RunOptions, RunOutcome};
use crate::error::{Error, Result};
use crate::history::{AgentClock, ClockSample};
use crate::net::timesync::{self, wall_ns};
use crate::scenario::Scenario;

/// What an agent measures its clock against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockReference {
    /// Nothing: offset 0, bound the declared one (the user vouches).
    None,
    /// A lockbench time reference at this address (NTP-style exchange).
    Lockbench(SocketAddr),
    /// chrony's own figures on this machine (`chronyc -c tracking`).
    Chrony,
}

impl std::fmt::Display for ClockReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockReference::None => f.write_str("none"),
            ClockReference::Lockbench(a) => write!(f, "{a}"),
            ClockReference::Chrony => f.write_str("chrony"),
        }
    }
}

/// This process's part among several agents.
#[derive(Debug, Clone)]
pub struct AgentRole {
    /// Which agent, 1 to `count`.
    pub index: u32,
    /// How many.
    pub count: u32,
    /// When to start the clients: ns since the epoch on the reference's
    /// clock (`None`: at once).
    pub start_at_ns: Option<i64>,
    /// What the clock is measured against.
    pub reference: ClockReference,
    /// The least bound on the clock's offset.
    pub declared_bound: Duration,
    /// A deliberate error added to this agent's wall clock, in ns: a test
    /// of the check.
    pub clock_offset_ns: i64,
}

/// An agent between its clock's first measurement and its start.
#[derive(Debug, Clone, Copy)]
pub struct AgentStart {
    sample: ClockSample,
    late_ns: u64,
    wall_ns: i64,
}

impl AgentStart {
    /// Marks the run clock's start: the wall clock read now.
    pub fn started(self, skew_ns: i64) -> AgentStart {
        AgentStart {
            wall_ns: wall_ns(skew_ns),
            ..self
        }
    }
}

impl AgentRole {
    /// Parses `I/N` (1 ≤ I ≤ N ≤ 1000).
    pub fn parse_slice(text: &str) -> std::result::Result<(u32, u32), String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not I/N (say 2/4: the second of four agents)"))?;
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} in {text:?} is not a whole number"))
        };
        let (i, n) = (num(i)?, num(n)?);
        if !(1..=1000).contains(&n) || !(1..=n).contains(&i) {
            return Err(format!(
                "{text:?}: agents are numbered 1 to N, with N at most 1000"
            ));
        }
        Ok((i, n))
    }

    /// Says in an agent's summary that it ran a share of the clients.
    pub fn mark(&self, summary: &mut crate::summary::Summary, total: u32) {
        summary.clients = self.clients(total);
        summary.notes.push(format!(
            "agent {}/{}: clients {} of {total} (process ids ≡ {} mod {}); merge the agents' \
             run directories with `lockbench merge`",
            self.index,
            self.count,
            summary.clients,
            self.index - 1,
            self.count
        ));
    }

    /// How many of a scenario's `total` clients this agent runs.
    pub fn clients(&self, total: u32) -> u32 {
        total / self.count + u32::from(self.index - 1 < total % self.count)
    }

    async fn sample(&self) -> Result<ClockSample> {
        let declared = self.declared_bound.as_nanos() as u64;
        let s = match self.reference {
            ClockReference::Lockbench(addr) => {
                timesync::measure(addr, self.clock_offset_ns).await?
            }
            ClockReference::Chrony => timesync::chrony().await?,
            ClockReference::None => ClockSample {
                offset_ns: 0,
                bound_ns: 0,
            },
        };
        Ok(ClockSample {
            bound_ns: s.bound_ns.max(declared),
            ..s
        })
    }

    /// Measures the clock, then waits for the agreed instant (or Ctrl-C).
    pub async fn before_start(&self, cancel: &CancellationToken) -> Result<AgentStart> {
        let sample = self.sample().await?;
        let mut late_ns = 0;
        if let Some(at) = self.start_at_ns {
            let now = wall_ns(self.clock_offset_ns) + sample.offset_ns;
            match u64::try_from(at - now) {
                Ok(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_nanos(wait)) => {}
                        _ = cancel.cancelled() => {}
                    }
                }
                Err(_) => late_ns = (now - at).unsigned_abs(),
            }
        }
        Ok(AgentStart {
            sample,
            late_ns,
            wall_ns: 0,
        })
    }

    /// Measures the clock again after the run: the agent's clock facts.
    pub async fn after_end(&self, start: AgentStart) -> AgentClock {
        let end = match self.sample().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("agent {}/{}: {e}", self.index, self.count);
                None
            }
        };
        AgentClock {
            index: self.index,
            count: self.count,
            reference: self.reference.to_string(),
            start_wall_ns: start.wall_ns,
            start: start.sample,
            end,
            declared_bound_ns: self.declared_bound.as_nanos() as u64,
            clock_offset_ns: self.clock_offset_ns,
            started_late_ns: start.late_ns,
        }
    }
}

/// What `--agents N` passes on to its agents beyond the scenario.
#[derive(Debug, Clone, Default)]
pub struct LocalAgents {
    /// How many agent processes.
    pub count: u32,
    /// Measure against no reference: each agent's offset is taken as 0
    /// within `declared_bound`.
    pub no_reference: bool,
    /// The least bound each agent declares.
    pub declared_bound: Duration,
    /// Deliberate clock errors: (agent, ns).
    pub clock_offsets: Vec<(u32, i64)>,
    /// The run's flags to repeat (`--threads`, `--history-format`).
    pub passed_flags: Vec<String>,
}

/// An agent process this one started; killed (by its PID) when dropped
/// before it exits.
struct AgentProcess {
    child: Child,
    log: PathBuf,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        crate::cluster::untrack(self.child.id());
    }
}

/// The command line of agent `index` of `agents`.
fn agent_command(
    scenario: &Scenario,
    backend: &str,
    seed: u64,
    (index, agents): (u32, &LocalAgents),
    (endpoints, reference, start_at_ns): (&str, Option<SocketAddr>, i64),
    out: &Path,
) -> Result<Command> {
    let exe = std::env::current_exe().map_err(|e| Error::io("lockbench's own binary", e))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg(&scenario.path)
        .args(["--backends", backend, "--seed", &seed.to_string()])
        .args(["--agent", &format!("{index}/{}", agents.count)])
        .args(["--start-at", &format!("{:.6}", start_at_ns as f64 / 1e9)])
        .args(["--endpoint", &format!("{backend}={endpoints}")])
        .args([
            "--duration",
            &format!("{}ms", scenario.duration.as_millis()),
        ])
        .args([
            "--clock-bound",
            &format!("{}us", agents.declared_bound.as_micros()),
        ])
        .args(["--no-progress"])
        .arg("--out")
        .arg(out)
        .args(&agents.passed_flags);
    cmd.args([
        "--clock-reference",
        &reference.map_or_else(|| "none".to_string(), |a| a.to_string()),
    ]);
    if let Some((_, ns)) = agents.clock_offsets.iter().find(|(i, _)| *i == index) {
        cmd.args(["--clock-offset", &format!("{}us", ns / 1000)]);
    }
    cmd.stdin(Stdio::null());
    Ok(cmd)
}

/// How long the agents may take beyond their duration before they are
/// killed: start-up, the clients' last cycle, the check.
fn agents_bound(scenario: &Scenario, lead: Duration) -> Duration {
    lead + scenario.duration
        + scenario.acquire_timeout
        + scenario.hold.max()
        + scenario.op_timeout * 4
        + Duration::from_secs(60)
}

/// Starts the agents and waits for them all; an agent that fails, or is
/// still running past the bound, fails the run (its log is named).
async fn run_agents(
    procs: &mut [AgentProcess],
    bound: Duration,
    cancel: &CancellationToken,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => {
                // Each agent is in a process group of its own: pass the
                // stop on (SIGTERM, which an agent takes as Ctrl-C) and
                // give them the time to write what they recorded.
                for p in procs.iter() {
                    // SAFETY: kill(2) on the PID of a child of ours that
                    // has not been waited for, so it cannot be reused.
                    unsafe {
                        libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM);
                    }
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
        let mut running = 0;
        for p in procs.iter_mut() {
            match p.child.try_wait() {
                Ok(None) => running += 1,
                Ok(Some(status)) if status.success() || status.code() == Some(1) => {}
                Ok(Some(status)) => {
                    return Err(Error::io(
                        &p.log,
                        std::io::Error::other(format!("an agent ended with {status}; see its log")),
                    ));
                }
                Err(e) => return Err(Error::io(&p.log, e)),
            }
        }
        if running == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline || cancel.is_cancelled() {
            return Err(Error::io(
                &procs[0].log,
                std::io::Error::other(format!(
                    "{running} agents were still running {bound:?} after the start; they were \
                     stopped (see their logs beside this one)"
                )),
            ));
        }
    }
}

/// `lockbench run --agents N` for one backend of a scenario: servers and a
/// time reference here, N agent processes against them, one merged run.
pub async fn run_local(
    scenario: &Scenario,
    backend_name: &str,
    seed: u64,
    opts: &RunOptions,
    agents: &LocalAgents,
) -> Result<RunOutcome> {
    let registry = scenario.registry();
    let info = registry.require(backend_name)?;
    if info.server.is_none() && info.driver.is_none() {
        return Ok(RunOutcome::Skipped {
            reason: format!(
                "{backend_name} lives inside one process, so several agents cannot share it"
            ),
        });
    }
    let external = scenario.endpoints.get(backend_name);
    if let Some(reason) = super::runner::missing_server(info, external.is_some(), opts)? {
        return Ok(RunOutcome::Skipped { reason });
    }
    let run_dir = super::runner::new_run_dir(&opts.out_dir, &scenario.name, backend_name)?;
    let (mut servers, _notes) =
        super::runner::start_servers(info, external, None, None, &[], &run_dir).await?;
    super::runner::write_servers_file(&run_dir, &servers)?;
    let endpoints: Vec<String> = servers.endpoints().iter().map(|e| e.addr.clone()).collect();
    let reference = if agents.no_reference {
        None
    } else {
        Some(timesync::Reference::start().await?)
    };
    // Time for every agent to start and connect before the common start.
    let lead = Duration::from_millis(1500 + 250 * u64::from(agents.count));
    let start_at_ns = wall_ns(0) + lead.as_nanos() as i64;
    let mut procs = Vec::new();
    for index in 1..=agents.count {
        let out = run_dir.join("agents").join(index.to_string());
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let log = run_dir.join("agents").join(format!("agent-{index}.log"));
        let file = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
        let file2 = file.try_clone().map_err(|e| Error::io(&log, e))?;
        let mut cmd = agent_command(
            scenario,
            backend_name,
            seed,
            (index, agents),
            (
                &endpoints.join(","),
                reference.as_ref().map(|r| r.addr()),
                start_at_ns,
            ),
            &out,
        )?;
        cmd.stdout(file).stderr(file2);
        let child = crate::cluster::spawn_tracked(cmd).map_err(|e| Error::io(&log, e))?;
        procs.push(AgentProcess { child, log });
    }
    let ran = run_agents(&mut procs, agents_bound(scenario, lead), &opts.cancel).await;
    drop(procs);
    drop(reference);
    let server_infos = servers.infos().to_vec();
    servers.stop();
    ran?;
    let mut dirs = Vec::new();
    for index in 1..=agents.count {
        let root = run_dir.join("agents").join(index.to_string());
        let before = dirs.len();
        super::merge::find_agent_dirs(&root, &mut dirs);
        if dirs.len() != before + 1 {
            return Err(Error::io(
                &root,
                std::io::Error::other(format!(
                    "agent {index} wrote no run directory; see agents/agent-{index}.log"
                )),
            ));
        }
    }
    // The agents saw the servers as endpoints; this process started them.
    let summary = super::merge::merge_runs(&dirs, &run_dir, Some(server_infos))?;
    Ok(RunOutcome::Completed {
        run_dir,
        summary: Box::new(summary),
    })
}
