//! The atlas (`mode = "atlas"`): every backend of the scenario under every
//! fault column of [`Column`], each cell `repeat` ordinary runs
//! ([`run_backend`]) with the seeds `seed`, `seed + 1`, ..., judged
//! against the file's expectations ([`crate::scenario::atlas`]).
//!
//! Each column is a copy of the scenario's workload (its clients, hosts,
//! lease, holds and think times) on one key with one fault at a fixed,
//! documented time. `H` is the backend's hold limit: the lease, or the
//! session or watchdog a silent holder's lock lives for
//! ([`crate::backend::BackendInfo::hold_limit`]).
//!
//! | column | fault | run |
//! | --- | --- | --- |
//! | baseline | none; holds and think times of 0 | 2 s |
//! | pause | `pause-client` of the holder at 1 s for 3H | 1 s + 3H + 0.5 s |
//! | cut | `partition` of the holder's host at 1 s for 3H | 1 s + 3H + 0.5 s |
//! | crash | `crash-client` of the holder at 1 s (a new client after 2H) | 1 s + 2H + 0.5 s |
//! | clock | `clock-skew` +2 × lease of every server (Redlock: a majority) at 1 s for 2H | 1 s + 2H + 0.5 s |
//! | restart | `kill-server` of every server (Redlock: a majority) at 1 s, started again 100 ms later; holds of 0.7H | 1 s + max(3 s, 2H) |
//! | member-killed | `kill-server` of the leader (Redlock: a minority) at 2 s for 8 s, replicated topology | 12 s |
//! | member-cut | `isolate-server` of the leader at 2 s for 8 s, replicated topology | 12 s (Sentinel: 25 s) |
//!
//! A column that cannot act on a backend (no server, no network, a clock
//! lockbench cannot move, no peers to cut) is "not measured", with why.
//! Files: `DIR/<name>/atlas.json` (the contract, [`Atlas`]), `atlas.html`
//! and `atlas.md`, written after every backend, so an interrupted atlas
//! keeps its rows; each run's directory is
//! `DIR/<name>-<column>/<backend>/<timestamp>/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::properties::relative;
use super::runner::{RunOptions, RunOutcome, run_backend};
use crate::backend::BackendInfo;
use crate::check::Verdict;
use crate::cluster::Topology;
use crate::cluster::topology::Shape;
use crate::duration::TimeDist;
use crate::error::{Error, Result};
use crate::fault::{FaultKind, FaultSpec};
use crate::history::{F, OpType, Process};
use crate::scenario::{Mode, Scenario};
use crate::summary::atlas::{Atlas, AtlasRow, CellRun, Column, Expected, aggregate, classify};
use crate::workload::KeyChoice;

/// When the single-backend faults start, from the clients' start.
pub const FAULT_AT: Duration = Duration::from_secs(1);
/// The member faults: when, for how long, and the time after.
pub const MEMBER_AT: Duration = Duration::from_secs(2);
/// How long a member stays killed or cut: long enough for a ZooKeeper
/// ensemble to elect a new leader and for Sentinel to fail over.
pub const MEMBER_FOR: Duration = Duration::from_secs(8);
/// A Sentinel cut is healed, then the old primary is demoted 8-10 s later:
/// that is when its lost grants meet the new primary's (`spof.rs`).
const SENTINEL_CUT_RUN: Duration = Duration::from_secs(25);
/// How long a killed server stays down before it is started again.
const RESTART_AFTER: Duration = Duration::from_millis(100);

/// What an atlas run wrote and found.
#[derive(Debug)]
pub struct AtlasRun {
    /// `atlas.html`.
    pub page: PathBuf,
    /// What `atlas.json` holds.
    pub atlas: Atlas,
}

/// One column of one backend: the run's scenario and the history's name of
/// the fault's start, or why the column cannot be measured.
enum Plan {
    Run(Box<Scenario>, Option<&'static str>),
    NotMeasured(String),
}

fn fault(at: Duration, kind: FaultKind, target: &str, duration: Duration) -> Vec<FaultSpec> {
    vec![FaultSpec {
        at,
        kind,
        targets: vec![target.to_string()],
        duration,
    }]
}

/// The scenario of `column` for `backend`.
fn plan(base: &Scenario, backend: &str, info: &BackendInfo, column: Column) -> Plan {
    let h = info.hold_limit(base.lease);
    let expected = base
        .atlas
        .get(backend)
        .and_then(|row| row.get(&column))
        .map(|e| e.expect);
    let mut s = base.clone();
    s.name = format!("{}-{}", base.name, column.name());
    s.backends = vec![backend.to_string()];
    s.mode = Mode::Contend;
    s.expect = match expected {
        Some(Expected::Unsafe) => Verdict::Invalid,
        _ => Verdict::Valid,
    };
    s.expect_backend.clear();
    s.atlas.clear();
    s.keys = vec!["lock".into()];
    s.key_choice = KeyChoice::Random;
    s.ops = None;
    s.history = true;
    s.random_nemesis = None;
    s.nemesis = Vec::new();
    s.topology = Topology::Single;
    let external = base.endpoints.contains_key(backend);
    let server = info.server.is_some() && !external;
    let no_server = if info.server.is_none() {
        "in-process: no server".to_string()
    } else {
        "external endpoints: lockbench cannot act on servers it did not start".to_string()
    };
    // A majority of independent masters, every server otherwise.
    let servers_target = if matches!(info.replicated, Some(Shape::Masters(_))) {
        "majority"
    } else {
        "all"
    };
    let start = |k: FaultKind| Some(k.event_names().0);
    match column {
        Column::Baseline => {
            // What the lock costs: clients that take it and give it back
            // at once, so throughput and acquire latency are the lock's.
            s.hold = TimeDist::ZERO;
            s.think = TimeDist::ZERO;
            s.duration = Duration::from_secs(2);
            Plan::Run(Box::new(s), None)
        }
        Column::Pause => {
            s.nemesis = fault(FAULT_AT, FaultKind::PauseClient, "holder", 3 * h);
            s.duration = FAULT_AT + 3 * h + Duration::from_millis(500);
            Plan::Run(Box::new(s), start(FaultKind::PauseClient))
        }
        Column::Cut => {
            if info.server.is_none() {
                return Plan::NotMeasured("in-process: no network between client and lock".into());
            }
            s.nemesis = fault(FAULT_AT, FaultKind::Partition, "holder", 3 * h);
            s.duration = FAULT_AT + 3 * h + Duration::from_millis(500);
            Plan::Run(Box::new(s), start(FaultKind::Partition))
        }
        Column::Crash => {
            s.nemesis = fault(FAULT_AT, FaultKind::CrashClient, "holder", 2 * h);
            s.duration = FAULT_AT + 2 * h + Duration::from_millis(500);
            Plan::Run(Box::new(s), start(FaultKind::CrashClient))
        }
        Column::Clock => {
            if !server {
                return Plan::NotMeasured(no_server);
            }
            if let Some(Err(why)) = info.server.map(|k| k.skew_support()) {
                return Plan::NotMeasured(why);
            }
            let offset = 2 * base.lease.as_nanos() as i64;
            s.nemesis = fault(
                FAULT_AT,
                FaultKind::ClockSkew(offset),
                servers_target,
                2 * h,
            );
            s.duration = FAULT_AT + 2 * h + Duration::from_millis(500);
            Plan::Run(Box::new(s), start(FaultKind::ClockSkew(offset)))
        }
        Column::Restart => {
            if !server {
                return Plan::NotMeasured(no_server);
            }
            // A holder still holding when the server comes back: what the
            // restart lost shows as a grant to another client beside it.
            s.hold = TimeDist::Fixed {
                value: h.mul_f64(0.7),
            };
            s.nemesis = fault(
                FAULT_AT,
                FaultKind::KillServer,
                servers_target,
                RESTART_AFTER,
            );
            s.duration = FAULT_AT + (2 * h).max(Duration::from_secs(3));
            Plan::Run(Box::new(s), start(FaultKind::KillServer))
        }
        Column::MemberKilled | Column::MemberCut => {
            if !server {
                return Plan::NotMeasured(no_server);
            }
            member_plan(s, info, column == Column::MemberCut)
        }
    }
}

/// A member-killed or member-cut column's scenario `s`: the leader (or a
/// minority of masters, or the first server) killed or cut off from its
/// peers on the replicated topology, or why that cannot be measured.
fn member_plan(mut s: Scenario, info: &BackendInfo, cut: bool) -> Plan {
    let target = match (cut, info.replicated) {
        (_, None) if info.servers <= 1 => {
            return Plan::NotMeasured("a single server: no other member".into());
        }
        (true, None) => {
            return Plan::NotMeasured(format!(
                "{} servers, but no replicated topology lockbench can cut apart",
                info.servers
            ));
        }
        (true, Some(Shape::Masters(n))) => {
            return Plan::NotMeasured(format!("{n} independent masters: no peers to cut"));
        }
        (false, Some(Shape::Masters(_))) => "minority",
        (false, None) => "server-1",
        (_, Some(_)) => "leader",
    };
    let kind = if cut {
        FaultKind::IsolateServer
    } else {
        FaultKind::KillServer
    };
    s.topology = if info.replicated.is_some() {
        Topology::Replicated
    } else {
        Topology::Single
    };
    s.nemesis = fault(MEMBER_AT, kind, target, MEMBER_FOR);
    s.duration = match (cut, info.replicated) {
        (true, Some(Shape::Sentinel { .. })) => SENTINEL_CUT_RUN,
        _ => MEMBER_AT + MEMBER_FOR + Duration::from_secs(2),
    };
    Plan::Run(Box::new(s), Some(kind.event_names().0))
}

/// How many runs the atlas makes and about how long they take, for the
/// progress line: (runs, seconds).
fn workload(scenario: &Scenario, repeat: u32) -> (u64, f64) {
    let registry = scenario.registry();
    let mut runs = 0;
    let mut secs = 0.0;
    for b in &scenario.backends {
        let Some(info) = registry.get(b) else {
            continue;
        };
        for c in Column::ALL {
            if let Plan::Run(s, _) = plan(scenario, b, info, c) {
                runs += u64::from(repeat);
                // The run, and about 2 s to start servers and write files.
                secs += f64::from(repeat) * (s.duration.as_secs_f64() + 2.0);
            }
        }
    }
    (runs, secs)
}

/// Crash: from the client's `crash` to the next grant to another client,
/// from the run's history.
fn free_after(run_dir: &Path) -> Option<f64> {
    let history = crate::history::read_jsonl(&crate::history::history_in(run_dir)).ok()?;
    let crash = history.events.iter().find(|e| e.f == F::Crash)?;
    let grant = history.events.iter().find(|e| {
        e.time_ns > crash.time_ns
            && e.f == F::Acquire
            && e.kind == OpType::Ok
            && e.process != crash.process
            && matches!(e.process, Process::Client(_))
    })?;
    Some((grant.time_ns - crash.time_ns) as f64 / 1e9)
}

/// One run of an atlas cell.
struct Cell<'a> {
    backend: &'a str,
    column: Column,
    seed: u64,
    /// The atlas's directory, which its links are relative to.
    dir: &'a Path,
}

impl Cell<'_> {
    /// Runs the cell's scenario `s` once and classifies what happened
    /// (`fault`: the event that starts its fault); the row learns the
    /// library and server versions. A missing server stops the atlas.
    async fn run(
        &self,
        s: &Scenario,
        fault: Option<&'static str>,
        opts: &RunOptions,
        row: &mut AtlasRow,
    ) -> Result<CellRun> {
        let (backend, column, seed, dir) = (self.backend, self.column, self.seed, self.dir);
        Ok(match run_backend(s, backend, seed, opts).await {
            Ok(RunOutcome::Completed { run_dir, summary }) => {
                let free = (column == Column::Crash)
                    .then(|| free_after(&run_dir))
                    .flatten();
                let mut run = classify(&summary, fault, free);
                run.link = Some(relative(dir, &run_dir.join("index.html")));
                if let Some(l) = &summary.library {
                    row.library = Some(l.to_string());
                }
                for v in summary.servers.iter().map(|s| s.version.clone()) {
                    if !row.versions.contains(&v) {
                        row.versions.push(v);
                    }
                }
                run
            }
            Ok(RunOutcome::Skipped { reason }) => {
                CellRun::not_measured(seed, format!("skipped: {reason}"))
            }
            Err(e @ Error::MissingServer { .. }) => return Err(e),
            Err(e) => CellRun::failed(seed, e.to_string()),
        })
    }
}

/// The atlas of `scenario` before its first row.
fn empty_atlas(scenario: &Scenario, seed: u64, repeat: u32) -> Atlas {
    Atlas {
        scenario: scenario.name.clone(),
        seed,
        repeat,
        lease_ms: scenario.lease.as_millis() as u64,
        started_at: super::runner::now_rfc3339(),
        duration_s: 0.0,
        lockbench_version: env!("CARGO_PKG_VERSION").to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        columns: Column::ALL.to_vec(),
        rows: Vec::new(),
    }
}

/// Runs the atlas of `scenario` (`mode = "atlas"`): every backend, every
/// column, `repeat` runs each.
pub async fn run_atlas(
    scenario: &Scenario,
    seed: u64,
    repeat: u32,
    opts: &RunOptions,
) -> Result<AtlasRun> {
    let repeat = repeat.max(1);
    let dir = opts.out_dir.join(&scenario.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let registry = scenario.registry();
    let started = Instant::now();
    let (total, estimate) = workload(scenario, repeat);
    let say = |line: String| {
        if opts.human_to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "  atlas: {} backends × {} columns, {repeat} run(s) a cell: {total} runs, about {:.0} min",
        scenario.backends.len(),
        Column::ALL.len(),
        estimate / 60.0
    ));
    let mut atlas = empty_atlas(scenario, seed, repeat);
    let inner = RunOptions {
        progress: false,
        human_to_stderr: true,
        ..opts.clone()
    };
    let mut done: u64 = 0;
    for backend in &scenario.backends {
        let info = registry.require(backend)?;
        let mut row = AtlasRow {
            backend: backend.clone(),
            recipe: info.recipe.clone(),
            server: info.server.map(|k| k.name().to_string()),
            library: None,
            versions: Vec::new(),
            hold_limit_ms: info.hold_limit(scenario.lease).as_millis() as u64,
            cells: Vec::new(),
        };
        for column in Column::ALL {
            let Some(expect) = scenario
                .atlas
                .get(backend)
                .and_then(|r| r.get(&column))
                .cloned()
            else {
                return Err(Error::Backend {
                    backend: backend.clone(),
                    endpoint: String::new(),
                    message: format!("the atlas has no expectation for {column}"),
                });
            };
            let mut runs = Vec::with_capacity(repeat as usize);
            for r in 0..repeat {
                if opts.cancel.is_cancelled() {
                    break;
                }
                let seed = seed.wrapping_add(u64::from(r));
                let run = match plan(scenario, backend, info, column) {
                    Plan::NotMeasured(why) => CellRun::not_measured(seed, why),
                    Plan::Run(s, fault) => {
                        let cell = Cell {
                            backend,
                            column,
                            seed,
                            dir: &dir,
                        };
                        let one = cell.run(&s, fault, &inner, &mut row).await?;
                        done += 1;
                        let elapsed = started.elapsed().as_secs_f64();
                        let left = elapsed / done as f64 * total.saturating_sub(done) as f64;
                        say(format!(
                            "  [{done}/{total}] {backend} {column} ({}/{repeat}): {:?}{} ({:.0} min left)",
                            r + 1,
                            one.found,
                            one.why
                                .as_deref()
                                .map(|w| format!(": {w}"))
                                .unwrap_or_default(),
                            left / 60.0
                        ));
                        one
                    }
                };
                let stop = run.found == crate::summary::atlas::Found::NotMeasured;
                runs.push(run);
                if stop {
                    // The same reason holds for every seed.
                    break;
                }
            }
            row.cells.push(aggregate(column, expect, runs));
        }
        print_row(&row, &say);
        atlas.rows.push(row);
        atlas.duration_s = started.elapsed().as_secs_f64();
        write_atlas(&dir, &atlas)?;
        if opts.cancel.is_cancelled() {
            break;
        }
    }
    atlas.duration_s = started.elapsed().as_secs_f64();
    write_atlas(&dir, &atlas)?;
    Ok(AtlasRun {
        page: dir.join("atlas.html"),
        atlas,
    })
}

fn print_row(row: &AtlasRow, say: &dyn Fn(String)) {
    say(format!("  {}:", row.backend));
    for c in &row.cells {
        let mark = match c.status {
            crate::summary::atlas::Status::Contradicts => "  NOT AS EXPECTED",
            _ => "",
        };
        say(format!(
            "    {:<16} {}{mark} (expected {})",
            c.column.heading(),
            c.words,
            c.expect.expect.name()
        ));
    }
}

fn write_atlas(dir: &Path, atlas: &Atlas) -> Result<()> {
    let json = dir.join("atlas.json");
    let text = serde_json::to_string_pretty(atlas)
        .map_err(|e| Error::io(&json, std::io::Error::other(e)))?;
    std::fs::write(&json, text + "\n").map_err(|e| Error::io(&json, e))?;
    crate::report::write_atlas_pages(dir, atlas)
}

/// The machine, in a line: the OS, the cores, the memory and the CPU's
/// idle policy where the kernel tells it (it moves timings).
fn machine() -> String {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(String::new(), |kb| {
            format!(", {:.0} GiB", kb / 1024.0 / 1024.0)
        });
    let idle = std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
        .map(|d| format!(", cpuidle {}", d.trim()))
        .unwrap_or_default();
    format!("{os}, {cores} cores{mem_gib}{idle}")
}
