//! The command line, as clap parses it: the commands, their flags and
//! their help texts (docs/design.md's CLI contract).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::{Format, Gate};

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
