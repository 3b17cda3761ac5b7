//! The command line, as clap parses it: the commands, their flags and
//! their help texts (docs/design.md's CLI contract).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::{Format, Gate};
use lockbench::run::agents::{AgentRole, ClockReference, LocalAgents};

/// lockbench's arguments.
#[derive(Debug, Parser)]
#[command(
    name = "lockbench",
    version,
    about = "Measures distributed locks on real servers: contention, a checked history, an HTML report.",
    long_about = "lockbench runs simulated clients that contend for locks on real servers \
                  (started by lockbench on free 127.0.0.1 ports, or given as endpoints), records \
                  every operation in its history (history.jsonl.zst), checks mutual exclusion from that history, \
                  and writes summary.json and an HTML report per run."
)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
    /// Worker threads of the runtime that drives the clients (default: one
    /// per core). The servers share the machine: on a small one, fewer
    /// driver threads leave them more CPU, and one thread saves a thread
    /// hop per request.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

/// One command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios: one run directory per scenario and backend.
    ///
    /// Exit code 0 when every verdict is what its scenario expects, 1 when one
    /// is not (or, under --fail-on-regression, when a run regressed against
    /// its --baseline), 2 on a bad scenario or flag.
    Run {
        /// Scenario files (TOML), e.g. scenarios/quick.toml. All are
        /// validated before anything starts.
        #[arg(required = true, value_name = "SCENARIO.toml")]
        scenarios: Vec<PathBuf>,
        /// Where run directories go: DIR/SCENARIO/BACKEND/TIMESTAMP/.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
        /// Seed for every random choice (overrides the scenario's). Without
        /// one, a seed is drawn and printed so the run can be repeated.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Only run these backends of the scenarios (comma-separated), in
        /// every mode (the property matrix's rows too).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        backends: Option<Vec<String>>,
        /// Run each scenario for this long instead of its own duration
        /// (e.g. 20s): a short rehearsal of a long scenario. A random
        /// fault schedule is drawn within it; a fault the file schedules
        /// at or after it is an error (exit 2).
        #[arg(long, value_name = "D", value_parser = lockbench::duration::parse_duration)]
        duration: Option<std::time::Duration>,
        /// An atlas (mode = "atlas"): run each cell N times, with the seeds
        /// SEED, SEED+1, ...; a cell shows in how many runs exclusion
        /// broke (k/N) and the spread of its timings.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// No progress bar (it is also off when stderr is not a terminal).
        #[arg(long)]
        no_progress: bool,
        /// Write a JUnit XML file of the runs: one test case per scenario
        /// and backend, failed when the verdict is not what the scenario
        /// expects, skipped when its server is missing.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Append a Markdown table of the runs to FILE (by default to the
        /// file GITHUB_STEP_SUMMARY names, when it is set).
        #[arg(long, value_name = "FILE")]
        summary_md: Option<PathBuf>,
        /// Print one JSON line per finished run on stdout (the human output
        /// goes to stderr).
        #[arg(long)]
        json: bool,
        /// How each run's history is stored: `zstd` writes
        /// history.jsonl.zst (about 7× smaller; `zstdcat` prints it, and
        /// every lockbench command reads it), `jsonl` writes plain
        /// history.jsonl.
        #[arg(long, value_enum, value_name = "FORMAT", default_value_t = HistoryArg::Zstd)]
        history_format: HistoryArg,
        /// Print every fault the schedules would inject, with its time, and
        /// every command a deployment's hooks would run; start nothing.
        #[arg(long)]
        dry_run: bool,
        /// The regression gate.
        #[command(flatten)]
        gate: Gate,
        /// Several agents, one run.
        #[command(flatten)]
        agents: AgentArgs,
    },
    /// Check a recorded history and print the verdict with its witness.
    ///
    /// Exit code 0 valid, 1 invalid, 2 bad input, 3 unknown.
    Check {
        /// A run's history (history.jsonl.zst, or history.jsonl), or any
        /// history v1 file, plain or zstd-compressed.
        #[arg(value_name = "HISTORY")]
        history: PathBuf,
        /// The history's format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Also check linearizability against an owner-aware mutex model
        /// (a search per key; may end `unknown` on its time budget).
        #[arg(long)]
        linearizable: bool,
    },
    /// Write a history in another tool's form.
    ///
    /// Exit code 0 written, 2 bad input.
    Export {
        /// The output form: `porcupine` (Porcupine's operations, one JSON
        /// array).
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The history (history v1 JSONL, plain or zstd-compressed, or
        /// Jepsen EDN with --input edn).
        #[arg(value_name = "HISTORY")]
        history: PathBuf,
        /// The input history's format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        input: Format,
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Merge the run directories of agents (`lockbench run --agent I/N`)
    /// into one run: one history on one timeline, checked with each
    /// agent's clock bound.
    ///
    /// Exit code 0 valid, 1 invalid, 2 bad input, 3 unknown.
    Merge {
        /// The agents' run directories (each holding agent.json), or
        /// directories to search for them.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Where the merged run directory goes: DIR/SCENARIO/BACKEND/TIMESTAMP/.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
    },
    /// Render a scenario as Kubernetes objects.
    Kubernetes {
        /// What to render.
        #[command(subcommand)]
        what: KubernetesCommand,
    },
    /// Rebuild index.html of recorded runs; given several, also write a
    /// page that compares them.
    Report {
        /// Run directories (each holding summary.json).
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// Where the comparison page goes when several runs are given.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
        /// The regression gate.
        #[command(flatten)]
        gate: Gate,
    },
}

/// `lockbench run`'s flags for runs spread over several agents
/// (docs/agents.md).
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Run with N agent processes on this machine: lockbench starts the
    /// servers and a time reference, then N agents (`--agent I/N`) against
    /// them, and merges their histories into one run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=64), conflicts_with = "agent")]
    pub agents: Option<u32>,
    /// Be agent I of N: run the clients whose process ids are I-1 modulo N,
    /// write agent.json (the clock's facts) beside the history. Agent 1
    /// runs the faults. Merge the agents' run directories with
    /// `lockbench merge`.
    #[arg(long, value_name = "I/N", value_parser = AgentRole::parse_slice)]
    pub agent: Option<(u32, u32)>,
    /// When an agent starts its clients: Unix time in seconds (with a
    /// fraction) or RFC 3339, on the reference's clock. Default: at once.
    #[arg(long, value_name = "TIME", value_parser = parse_instant, requires = "agent")]
    pub start_at: Option<i64>,
    /// The time reference an agent measures its clock against: host:port
    /// of a lockbench reference; `chrony` (offset taken as 0, the bound
    /// from `chronyc tracking`: |System time| + Root dispersion + Root
    /// delay / 2); or `none` (offset taken as 0 within --clock-bound).
    /// Default: `none` for --agent, the one lockbench starts for --agents.
    #[arg(long, value_name = "ADDR|chrony|none")]
    pub clock_reference: Option<String>,
    /// The least bound on an agent's clock offset (e.g. 2ms): its events'
    /// times are taken as known within it.
    #[arg(long, value_name = "D", value_parser = lockbench::duration::parse_duration)]
    pub clock_bound: Option<std::time::Duration>,
    /// A test of the check: add D (e.g. 40ms, or -40ms) to this agent's
    /// wall clock, as if its machine's clock were off.
    #[arg(long, value_name = "D", value_parser = parse_signed, allow_hyphen_values = true)]
    pub clock_offset: Option<i64>,
    /// With --agents: add D to agent I's wall clock (I=D, repeatable).
    #[arg(long, value_name = "I=D", value_parser = parse_agent_offset, allow_hyphen_values = true)]
    pub agent_clock_offset: Vec<(u32, i64)>,
    /// Use the servers at ADDR (comma-separated) for BACKEND instead of
    /// starting them, as `[endpoints]` in the scenario does (repeatable).
    #[arg(long, value_name = "BACKEND=ADDR", value_parser = parse_endpoint)]
    pub endpoint: Vec<(String, Vec<String>)>,
}

/// `I/N`'s role, with the clock flags, for the library.
impl AgentArgs {
    /// The role of this process when it is one agent (`--agent`).
    pub fn role(&self) -> Result<Option<AgentRole>, String> {
        let Some((index, count)) = self.agent else {
            return Ok(None);
        };
        let reference = self.reference()?;
        let declared_bound = self.clock_bound.unwrap_or_default();
        if matches!(reference, ClockReference::None) && self.clock_bound.is_none() {
            return Err(
                "--agent with --clock-reference none needs --clock-bound: how far this machine's \
                 clock may be from the others' (or --clock-reference chrony, which reads it \
                 from chronyc tracking)"
                    .into(),
            );
        }
        Ok(Some(AgentRole {
            index,
            count,
            start_at_ns: self.start_at,
            reference,
            declared_bound,
            clock_offset_ns: self.clock_offset.unwrap_or(0),
        }))
    }

    fn reference(&self) -> Result<ClockReference, String> {
        let text = match self.clock_reference.as_deref() {
            None | Some("none") => return Ok(ClockReference::None),
            Some("chrony") => return Ok(ClockReference::Chrony),
            Some(text) => text,
        };
        let addr: std::net::SocketAddr = text
            .parse()
            .map_err(|_| format!("--clock-reference {text:?} is not host:port, chrony or none"))?;
        Ok(ClockReference::Lockbench(addr))
    }

    /// The local agents of `--agents N`.
    pub fn local(&self) -> Result<Option<LocalAgents>, String> {
        let Some(count) = self.agents else {
            return Ok(None);
        };
        match self.clock_reference.as_deref() {
            Some("none") if self.clock_bound.is_none() => {
                return Err(
                    "--clock-reference none needs --clock-bound: how far the agents' \
                            clocks may be from each other's"
                        .into(),
                );
            }
            Some(r) if r != "none" => {
                // A reference of the user's is for agents on their machines.
                return Err(format!(
                    "--agents starts its own time reference; --clock-reference {r:?} is for \
                     --agent"
                ));
            }
            _ => {}
        }
        if let Some((i, _)) = self
            .agent_clock_offset
            .iter()
            .find(|(i, _)| *i == 0 || *i > count)
        {
            return Err(format!(
                "--agent-clock-offset {i}=...: agents are numbered 1 to {count}"
            ));
        }
        Ok(Some(LocalAgents {
            count,
            no_reference: self.clock_reference.as_deref() == Some("none"),
            declared_bound: self.clock_bound.unwrap_or_default(),
            clock_offsets: self.agent_clock_offset.clone(),
            passed_flags: Vec::new(),
        }))
    }
}

/// A signed duration: `40ms`, `-40ms`; in ns.
fn parse_signed(text: &str) -> Result<i64, String> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let d = lockbench::duration::parse_duration(rest)?;
    Ok(sign * i64::try_from(d.as_nanos()).map_err(|_| format!("{text:?} is too long"))?)
}

/// `I=D`.
fn parse_agent_offset(text: &str) -> Result<(u32, i64), String> {
    let (i, d) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not I=D (say 2=40ms)"))?;
    let i = i
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{i:?} in {text:?} is not an agent number"))?;
    Ok((i, parse_signed(d.trim())?))
}

/// `BACKEND=ADDR[,ADDR...]`.
fn parse_endpoint(text: &str) -> Result<(String, Vec<String>), String> {
    let (b, addrs) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not BACKEND=ADDR (say redis=127.0.0.1:6379)"))?;
    let addrs: Vec<String> = addrs.split(',').map(|a| a.trim().to_string()).collect();
    if b.trim().is_empty() || addrs.iter().any(|a| !a.contains(':')) {
        return Err(format!(
            "{text:?}: give a backend and host:port addresses, comma-separated"
        ));
    }
    Ok((b.trim().to_string(), addrs))
}

/// Unix seconds (`1765000000.25`) or RFC 3339, in ns since the epoch.
fn parse_instant(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok((secs * 1e9) as i64);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as i64)
        .map_err(|_| format!("{text:?} is neither Unix seconds nor an RFC 3339 time"))
}

/// What `lockbench kubernetes` renders.
#[derive(Debug, Subcommand)]
pub enum KubernetesCommand {
    /// An Indexed Job whose pods are the agents of one run (stdout: YAML).
    Job {
        /// The scenario.
        #[arg(value_name = "SCENARIO.toml")]
        scenario: PathBuf,
        /// How many agents (the Job's completions).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        agents: u32,
        /// The backend the agents run (default: the scenario's first).
        #[arg(long, value_name = "NAME")]
        backend: Option<String>,
        /// The container image with lockbench in it.
        #[arg(long, value_name = "IMAGE", default_value = "lockbench:latest")]
        image: String,
        /// The PersistentVolumeClaim the agents write their runs to.
        #[arg(long, value_name = "NAME", default_value = "lockbench-histories")]
        claim: String,
        /// How far each node's clock may be from the others' (from
        /// chrony's figures on the nodes).
        #[arg(long, value_name = "D", default_value = "10ms", value_parser = lockbench::duration::parse_duration)]
        clock_bound: std::time::Duration,
        /// When the agents start: Unix seconds or RFC 3339 (default: five
        /// minutes after rendering).
        #[arg(long, value_name = "TIME", value_parser = parse_instant)]
        start_at: Option<i64>,
        /// The seed (default: the scenario's, else drawn).
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
    },
}

/// How `lockbench run` stores histories.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HistoryArg {
    /// history.jsonl.zst: zstd frames, each closed within a second.
    Zstd,
    /// history.jsonl: plain text.
    Jsonl,
}

impl From<HistoryArg> for lockbench::history::HistoryFormat {
    fn from(a: HistoryArg) -> Self {
        match a {
            HistoryArg::Zstd => lockbench::history::HistoryFormat::Zstd,
            HistoryArg::Jsonl => lockbench::history::HistoryFormat::Jsonl,
        }
    }
}

/// The forms `lockbench export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Porcupine's operation form (client id, input, call, output, return).
    Porcupine,
}
