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

use super::runner::{RunOptions, RunOutcome, run_backend};
use super::spof;
use crate::backend::driver::HostPlace;
use crate::check::Verdict;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::probe::Probes;
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
        member_fault: Some(spof::member_fault_times()),
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
