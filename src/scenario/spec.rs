use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::nemesis::{RawFault, RawRandom};
use crate::backend;
use crate::check::Verdict;
use crate::cluster::Topology;
use crate::cluster::hooks::Deployment;
use crate::duration::{Dur, TimeDist};
pub use crate::error::ScenarioError;
use crate::fault::{FaultKind, FaultSpec, RandomSchedule};
use crate::workload::{KeyChoice, Workload};

/// A validated scenario: everything the runner needs, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name used for the run directory (defaults to the file's stem).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// Backends to run, in order.
    pub backends: Vec<String>,
    /// What the scenario does with them.
    pub mode: Mode,
    /// The verdict this scenario expects.
    pub expect: Verdict,
    /// Backends for which it expects something else (`[expect_backend]`),
    /// each explained in the scenario's comments.
    pub expect_backend: BTreeMap<String, Verdict>,
    /// Seed for every random choice; `None`: drawn at run time and printed.
    pub seed: Option<u64>,
    /// How long the clients contend.
    pub duration: Duration,
    /// Stop after this many acquire attempts in total, if set.
    pub ops: Option<u64>,
    /// Number of clients.
    pub clients: u32,
    /// Clients are grouped into this many hosts (`h1..hN`), round robin.
    pub hosts: u32,
    /// The lock keys.
    pub keys: Vec<String>,
    /// How a client picks its key for each cycle.
    pub key_choice: KeyChoice,
    /// Lease (TTL) given to each acquire.
    pub lease: Duration,
    /// How long a blocking acquire keeps trying.
    pub acquire_timeout: Duration,
    /// Timeout of one request to a server.
    pub op_timeout: Duration,
    /// Time a holder keeps the lock.
    pub hold: TimeDist,
    /// Time between a release and the next acquire.
    pub think: TimeDist,
    /// Whether to record history.jsonl (benchmarks turn it off).
    pub history: bool,
    /// External endpoints by backend: lockbench starts no server for these
    /// (a deployment's data members are here too).
    pub endpoints: BTreeMap<String, Vec<String>>,
    /// Deployments lockbench did not start, by backend: their members,
    /// roles and the hooks that carry out server faults on them.
    pub deployments: BTreeMap<String, Deployment>,
    /// The faults to inject, in order of start.
    pub nemesis: Vec<FaultSpec>,
    /// Faults drawn from the seed, added to `nemesis` at run time.
    pub random_nemesis: Option<RandomSchedule>,
    /// What holders do with the protected resource.
    pub workload: Workload,
    /// The servers each backend runs on.
    pub topology: Topology,
    /// The lock-library drivers the file declares (`[[driver]]`).
    pub drivers: Vec<DriverDecl>,
    /// An atlas's expectations: each backend's, per column (empty unless
    /// `mode = "atlas"`).
    pub atlas: super::atlas::Expectations,
}

impl DriverDecl {
    /// The registry's entry for it.
    pub fn info(&self) -> backend::BackendInfo {
        let info = backend::BackendInfo::driver(
            backend::driver::DriverSpec {
                name: self.name.clone(),
                command: self.command.clone(),
                dir: self.dir.clone(),
                options: self.options.clone(),
            },
            self.server,
            self.servers,
            self.recipe.clone(),
        );
        match self.session {
            Some(d) => info.session(d),
            None => info,
        }
    }
}

/// A driver the scenario file declares: a backend like the shipped ones.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverDecl {
    /// The backend name.
    pub name: String,
    /// The server kind it needs.
    pub server: crate::cluster::ServerKind,
    /// How many servers of that kind.
    pub servers: usize,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Where the command runs: the scenario file's folder.
    pub dir: PathBuf,
    /// Sent to the driver in `init`.
    pub options: serde_json::Value,
    /// The recipe in one line, for reports.
    pub recipe: String,
    /// How long the servers keep a silent holder's lock when that is not
    /// the lease (`session = "2s"`: a session's or watchdog's timeout).
    pub session: Option<Duration>,
}

impl Scenario {
    /// The backends this scenario can name: lockbench's, and the drivers
    /// it declares.
    pub fn registry(&self) -> backend::Registry {
        // Declared names were checked against the built-in ones when the
        // file was read, so they cannot clash here.
        backend::Registry::with(self.drivers.iter().map(DriverDecl::info).collect())
            .unwrap_or_else(|_| backend::Registry::builtin().clone())
    }

    /// The verdict expected of `backend`.
    pub fn expect_for(&self, backend: &str) -> Verdict {
        self.expect_backend
            .get(backend)
            .copied()
            .unwrap_or(self.expect)
    }

    /// Runs for `d` instead of [`Scenario::duration`]. Refused when the
    /// file schedules a fault at or after `d`: the run would silently not
    /// be the scenario any more.
    pub fn shorten(&mut self, d: Duration) -> std::result::Result<(), String> {
        if d < Duration::from_millis(10) {
            return Err(format!("{d:?} is too short for a run (at least 10ms)"));
        }
        if let Some(r) = &self.random_nemesis
            && r.start >= d
        {
            return Err(format!(
                "{}: its random faults start at {:?}, not within {d:?}\n  hint: give more than {:?}",
                self.path.display(),
                r.start,
                r.start
            ));
        }
        if let Some(f) = self.nemesis.iter().find(|f| f.at >= d) {
            return Err(format!(
                "{}: its {} starts at {:?}, not within {d:?}\n  hint: give at least {:?}, or run it whole",
                self.path.display(),
                f.kind.name(),
                f.at,
                f.at + f.duration + Duration::from_secs(1),
            ));
        }
        self.duration = d;
        Ok(())
    }

    /// Every fault of a run of this scenario with `seed`, `hosts` hosts and
    /// `servers` servers: the timeline plus the random schedule's draw.
    pub fn faults_for(&self, seed: u64, servers: usize) -> Vec<FaultSpec> {
        let mut all = self.nemesis.clone();
        if let Some(r) = &self.random_nemesis {
            all.extend(r.expand(seed, self.hosts.max(1) as usize, servers, self.duration));
        }
        all.sort_by_key(|f| f.at);
        all
    }
}

/// What a scenario does with its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Clients contend; the history is checked (the default).
    Contend,
    /// Measure the property matrix: expiry, hand-off, reentrancy, fencing,
    /// server restart, latency and throughput, per backend.
    Properties,
    /// Make the atlas: every backend under every fault column, each cell
    /// `--repeat` runs, against the file's expectations.
    Atlas,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<Spanned<String>>,
    #[allow(dead_code)]
    description: Option<String>,
    backends: Option<Spanned<Vec<Spanned<String>>>>,
    mode: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    expect_backend: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    seed: Option<u64>,
    duration: Option<Spanned<Dur>>,
    ops: Option<Spanned<i64>>,
    clients: Option<Spanned<i64>>,
    hosts: Option<Spanned<i64>>,
    keys: Option<Spanned<Keys>>,
    key_choice: Option<Spanned<String>>,
    lease: Option<Spanned<Dur>>,
    acquire_timeout: Option<Spanned<Dur>>,
    op_timeout: Option<Spanned<Dur>>,
    hold: Option<Spanned<TimeDist>>,
    think: Option<Spanned<TimeDist>>,
    history: Option<bool>,
    endpoints: Option<BTreeMap<Spanned<String>, Spanned<Endpoints>>>,
    deployment: Option<BTreeMap<Spanned<String>, super::deployment::RawDeployment>>,
    nemesis: Option<Vec<RawFault>>,
    random_nemesis: Option<RawRandom>,
    workload: Option<Spanned<String>>,
    topology: Option<Spanned<String>>,
    driver: Option<Vec<RawDriver>>,
    atlas: Option<Spanned<super::atlas::RawAtlas>>,
}

/// One `[[driver]]` table as written: a lock library's driver the user
/// brings (drivers/PROTOCOL.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDriver {
    name: Spanned<String>,
    server: Spanned<String>,
    servers: Option<Spanned<i64>>,
    command: Spanned<Vec<String>>,
    options: Option<toml::Table>,
    recipe: Option<String>,
    session: Option<Spanned<Dur>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Keys {
    Count(i64),
    Names(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Endpoints {
    One(String),
    Many(Vec<String>),
}

/// The servers the user runs: plain endpoints and deployments, by backend.
type External<'a> = (
    &'a BTreeMap<String, Vec<String>>,
    &'a BTreeMap<String, Deployment>,
);

/// In `backends`: every shipped lock library, in the registry's order.
pub const LIBRARIES: &str = "@libraries";

/// Limits that keep every run bounded on a small machine.
const MAX_CLIENTS: i64 = 100_000;
const MAX_KEYS: i64 = 100_000;
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
            hint: Some("give the path of a scenario .toml file, e.g. scenarios/quick.toml".into()),
        })?;
        Scenario::parse(path, &text)
    }

    /// Validates scenario text; `path` names it in errors and gives the
    /// default name.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
        let mut r = Reader {
            path,
            text,
            reg: backend::Registry::builtin().clone(),
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let hint = hint_for_parse_error(&message);
            r.err(e.span(), message, hint)
        })?;
        let drivers = r.drivers(raw.driver)?;
        let known_owned: Vec<String> = r.reg.names().into_iter().map(String::from).collect();
        let known: Vec<&str> = known_owned.iter().map(String::as_str).collect();
        let name = r.name(raw.name)?;
        let backends = r.backends(raw.backends, &known)?;
        let mode = r.mode(raw.mode)?;
        let (expect, expect_backend) = r.expectations(raw.expect, raw.expect_backend, &backends)?;
        let clients = r.int_in(raw.clients, "clients", 1, MAX_CLIENTS, 8)?;
        let hosts = r.int_in(raw.hosts, "hosts", 1, clients, 1)?;
        let ops = match raw.ops {
            None => None,
            Some(s) => Some(r.int_in(Some(s), "ops", 1, i64::MAX, 1)? as u64),
        };
        let keys = r.keys(raw.keys)?;
        let key_choice = r.key_choice(raw.key_choice)?;
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let duration = r.dur_in(raw.duration, "duration", ms(10), MAX_DURATION, secs(10))?;
        let lease = r.dur_in(raw.lease, "lease", ms(1), secs(24 * 3600), secs(5))?;
        let acquire_timeout = r.dur_in(
            raw.acquire_timeout,
            "acquire_timeout",
            Duration::ZERO,
            secs(3600),
            secs(2),
        )?;
        let op_timeout = r.dur_in(raw.op_timeout, "op_timeout", ms(1), secs(600), secs(1))?;
        let hold = r.dist_in(raw.hold, "hold", TimeDist::Fixed { value: ms(1) })?;
        let think = r.dist_in(raw.think, "think", TimeDist::ZERO)?;
        let mut endpoints = r.endpoints(raw.endpoints, &known)?;
        let deployments = r.deployments(raw.deployment, &backends, &endpoints)?;
        for (b, d) in &deployments {
            let addrs = d.data_members().iter().map(|m| m.addr.clone()).collect();
            endpoints.insert(b.clone(), addrs);
        }
        let topology = r.topology(raw.topology, &backends, &endpoints, &known)?;
        let (nemesis, random_nemesis) = r.faults(
            raw.nemesis,
            raw.random_nemesis,
            &backends,
            (&endpoints, &deployments),
            topology,
            hosts,
            duration,
        )?;
        let workload = r.workload(raw.workload)?;
        let atlas = super::atlas::read(raw.atlas, &backends, mode == Mode::Atlas)
            .map_err(|(span, message, hint)| r.err(span, message, hint))?;
        Ok(Scenario {
            name,
            path: path.to_path_buf(),
            backends,
            mode,
            expect,
            expect_backend,
            seed: raw.seed,
            duration,
            ops,
            clients: clients as u32,
            hosts: hosts as u32,
            keys,
            key_choice,
            lease,
            acquire_timeout,
            op_timeout,
            hold,
            think,
            history: raw.history.unwrap_or(true),
            endpoints,
            deployments,
            nemesis,
            random_nemesis,
            workload,
            topology,
            drivers,
            atlas,
        })
    }
}

/// A scenario file being read: each step reads one part of it and names
/// the file, line and column of a mistake.
struct Reader<'a> {
    /// The file, for errors.
    path: &'a Path,
    /// Its text, to turn byte spans into lines and columns.
    text: &'a str,
    /// The backends it may name (with its own drivers, once read).
    reg: backend::Registry,
}

impl Reader<'_> {
    /// A mistake at `span` (a byte range of the text).
    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: String,
        hint: Option<String>,
    ) -> ScenarioError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ScenarioError {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
            hint,
        }
    }

    /// What `topology = "replicated"` starts for the backend `name`.
    fn replicated_shape(&self, name: &str) -> Option<crate::cluster::topology::Shape> {
        self.reg.get(name).and_then(|b| b.replicated)
    }

    /// The `[[driver]]` tables, checked, and added to the backends the
    /// file may name.
    fn drivers(&mut self, raw: Option<Vec<RawDriver>>) -> Result<Vec<DriverDecl>, ScenarioError> {
        let mut out: Vec<DriverDecl> = Vec::new();
        // The folder of the scenario file (`""` for a bare file name).
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        for d in raw.unwrap_or_default() {
            let name = d.name.get_ref();
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid {
                return Err(self.err(
                    Some(d.name.span()),
                    format!("driver name {name:?} cannot be a backend name"),
                    Some("use letters, digits, '-', '_' and '.'".into()),
                ));
            }
            if self.reg.get(name).is_some() || out.iter().any(|o| &o.name == name) {
                return Err(self.err(
                    Some(d.name.span()),
                    format!("backend {name:?} already exists"),
                    Some("give your driver a name of its own".into()),
                ));
            }
            let Some(server) = crate::cluster::ServerKind::from_name(d.server.get_ref()) else {
                return Err(self.err(
                    Some(d.server.span()),
                    format!("server = {:?} is not a server kind", d.server.get_ref()),
                    Some(format!(
                        "use one of: {}",
                        crate::cluster::ServerKind::ALL
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ));
            };
            let servers = self.int_in(d.servers, "servers", 1, 9, 1)? as usize;
            if d.command.get_ref().first().is_none_or(|p| p.is_empty()) {
                return Err(self.err(
                    Some(d.command.span()),
                    "the driver's command is empty".into(),
                    Some("e.g. command = [\"python3\", \"my_driver.py\"]".into()),
                ));
            }
            let options = serde_json::to_value(d.options.unwrap_or_default())
                .unwrap_or(serde_json::Value::Null);
            let session = match d.session {
                None => None,
                some => Some(self.dur_in(
                    some,
                    "session",
                    Duration::from_millis(1),
                    Duration::from_secs(3600),
                    Duration::ZERO,
                )?),
            };
            out.push(DriverDecl {
                name: name.clone(),
                server,
                servers,
                command: d.command.into_inner(),
                dir: dir.clone(),
                options,
                recipe: d
                    .recipe
                    .unwrap_or_else(|| "a driver the scenario declares".into()),
                session,
            });
        }
        let declared = out.iter().map(DriverDecl::info).collect();
        self.reg = backend::Registry::with(declared).map_err(|why| self.err(None, why, None))?;
        Ok(out)
    }

    /// How many servers lockbench starts for every backend of the scenario
    /// (the smallest count), and why it is 0 when it is.
    fn startable_servers(
        &self,
        backends: &[String],
        (endpoints, deployments): External<'_>,
        topology: Topology,
    ) -> (usize, String) {
        let mut least = usize::MAX;
        let mut why = String::new();
        for b in backends {
            let n = match self.reg.get(b) {
                Some(_) if deployments.contains_key(b) => deployments[b].data_members().len(),
                Some(_) if endpoints.contains_key(b) => {
                    why = format!(
                        "{b} uses external endpoints, which lockbench cannot kill or pause; \
                         give them as [deployment.{b}] with hooks that do (docs/deployments.md)"
                    );
                    0
                }
                Some(info) if info.server.is_some() => {
                    info.shape(topology).map_or(info.servers, |s| s.members())
                }
                _ => {
                    why = format!("{b} runs in-process and has no server");
                    0
                }
            };
            least = least.min(n);
        }
        (if least == usize::MAX { 0 } else { least }, why)
    }

    fn name(&self, raw: Option<Spanned<String>>) -> Result<String, ScenarioError> {
        let name = match raw {
            Some(n) => {
                let v = n.get_ref();
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                    || v.starts_with('.')
                {
                    return Err(self.err(
                        Some(n.span()),
                        format!("name {v:?} cannot be a directory name"),
                        Some("use letters, digits, '-', '_' and '.'".into()),
                    ));
                }
                v.clone()
            }
            None => self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into()),
        };
        Ok(name)
    }

    fn backends(
        &self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        known: &[&str],
    ) -> Result<Vec<String>, ScenarioError> {
        let Some(backends_raw) = raw else {
            return Err(self.err(
                None,
                "missing field `backends`".into(),
                Some(format!(
                    "add e.g. backends = [\"inproc\"]; known backends: {}",
                    known.join(", ")
                )),
            ));
        };
        let backends_span = backends_raw.span();
        let mut backends = Vec::new();
        for b in backends_raw.into_inner() {
            let span = b.span();
            let b = b.into_inner();
            if b == LIBRARIES {
                // Every shipped library not listed before it, so that a
                // new driver joins the scenarios that name the group.
                for l in backend::library_names() {
                    if !backends.iter().any(|x| x == l) {
                        backends.push(l.to_string());
                    }
                }
                continue;
            }
            if !known.contains(&b.as_str()) {
                let hint = match closest(&b, known) {
                    Some(c) => format!("did you mean {c:?}? known backends: {}", known.join(", ")),
                    None => format!("known backends: {}", known.join(", ")),
                } + &format!(" (and {LIBRARIES:?}: every shipped lock library)");
                return Err(self.err(Some(span), format!("unknown backend {b:?}"), Some(hint)));
            }
            if backends.contains(&b) {
                return Err(self.err(Some(span), format!("backend {b:?} is listed twice"), None));
            }
            backends.push(b);
        }
        if backends.is_empty() {
            return Err(self.err(
                Some(backends_span),
                "`backends` is empty".into(),
                Some(format!("name at least one of: {}", known.join(", "))),
            ));
        }
        Ok(backends)
    }

    fn mode(&self, raw: Option<Spanned<String>>) -> Result<Mode, ScenarioError> {
        let mode = match raw {
            None => Mode::Contend,
            Some(m) => match m.get_ref().as_str() {
                "contend" => Mode::Contend,
                "properties" => Mode::Properties,
                "atlas" => Mode::Atlas,
                other => {
                    return Err(self.err(
                        Some(m.span()),
                        format!("mode = {other:?} is not a mode"),
                        Some(
                            "use mode = \"contend\" (the default), \"properties\" or \"atlas\""
                                .into(),
                        ),
                    ));
                }
            },
        };
        Ok(mode)
    }

    fn expectations(
        &self,
        raw_expect: Option<Spanned<String>>,
        raw_per_backend: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
        backends: &[String],
    ) -> Result<(Verdict, BTreeMap<String, Verdict>), ScenarioError> {
        let expect = match raw_expect {
            None => Verdict::Valid,
            Some(e) => match e.get_ref().as_str() {
                "valid" => Verdict::Valid,
                "invalid" => Verdict::Invalid,
                other => {
                    return Err(self.err(
                        Some(e.span()),
                        format!("expect = {other:?} is not a verdict a scenario can expect"),
                        Some("use expect = \"valid\" or expect = \"invalid\"".into()),
                    ));
                }
            },
        };

        let verdict_of = |e: &Spanned<String>| match e.get_ref().as_str() {
            "valid" => Ok(Verdict::Valid),
            "invalid" => Ok(Verdict::Invalid),
            other => Err(self.err(
                Some(e.span()),
                format!("{other:?} is not a verdict a scenario can expect"),
                Some("use \"valid\" or \"invalid\"".into()),
            )),
        };
        let mut expect_backend = BTreeMap::new();
        for (name, e) in raw_per_backend.unwrap_or_default() {
            if !backends.contains(name.get_ref()) {
                return Err(self.err(
                    Some(name.span()),
                    format!(
                        "expect_backend names {:?}, which this scenario does not run",
                        name.get_ref()
                    ),
                    Some(format!("backends here: {}", backends.join(", "))),
                ));
            }
            expect_backend.insert(name.into_inner(), verdict_of(&e)?);
        }
        Ok((expect, expect_backend))
    }

    /// `v`, or `default`, within `lo..=hi`.
    fn int_in(
        &self,
        v: Option<Spanned<i64>>,
        field: &str,
        lo: i64,
        hi: i64,
        default: i64,
    ) -> Result<i64, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                Some(s.span()),
                format!("{field} = {} is out of range", s.get_ref()),
                Some(format!("{field} must be between {lo} and {hi}")),
            )),
        }
    }

    /// `v`, or `default`, within `lo..=hi`.
    fn dur_in(
        &self,
        v: Option<Spanned<Dur>>,
        field: &str,
        lo: Duration,
        hi: Duration,
        default: Duration,
    ) -> Result<Duration, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if s.get_ref().0 >= lo && s.get_ref().0 <= hi => Ok(s.get_ref().0),
            Some(s) => Err(self.err(
                Some(s.span()),
                format!("{field} = {:?} is out of range", s.get_ref().0),
                Some(format!("{field} must be between {lo:?} and {hi:?}")),
            )),
        }
    }

    /// `v`, or `default`, never longer than an hour.
    fn dist_in(
        &self,
        v: Option<Spanned<TimeDist>>,
        field: &str,
        default: TimeDist,
    ) -> Result<TimeDist, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if s.get_ref().max() <= Duration::from_secs(3600) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                Some(s.span()),
                format!("{field} can last longer than an hour"),
                Some(format!("{field} must stay under 1h")),
            )),
        }
    }

    fn keys(&self, raw: Option<Spanned<Keys>>) -> Result<Vec<String>, ScenarioError> {
        let keys = match raw {
            None => vec!["lock".to_string()],
            Some(k) => {
                let span = k.span();
                match k.into_inner() {
                    Keys::Count(n) if (1..=MAX_KEYS).contains(&n) => {
                        if n == 1 {
                            vec!["lock".to_string()]
                        } else {
                            (0..n).map(|i| format!("lock-{i}")).collect()
                        }
                    }
                    Keys::Count(n) => {
                        return Err(self.err(
                            Some(span),
                            format!("keys = {n} is out of range"),
                            Some(format!(
                                "keys must be between 1 and {MAX_KEYS}, or a list of names"
                            )),
                        ));
                    }
                    Keys::Names(names) => {
                        let unique: BTreeSet<&String> = names.iter().collect();
                        if names.is_empty() || unique.len() != names.len() {
                            return Err(self.err(
                                Some(span),
                                "keys must be a non-empty list of distinct names".into(),
                                Some("e.g. keys = [\"orders\", \"stock\"] or keys = 4".into()),
                            ));
                        }
                        if let Some(bad) = names.iter().find(|n| n.is_empty() || n.len() > 200) {
                            return Err(self.err(
                                Some(span),
                                format!("key {bad:?} must be 1 to 200 characters"),
                                None,
                            ));
                        }
                        names
                    }
                }
            }
        };
        Ok(keys)
    }

    fn key_choice(&self, raw: Option<Spanned<String>>) -> Result<KeyChoice, ScenarioError> {
        let key_choice = match raw {
            None => KeyChoice::Random,
            Some(k) => match k.get_ref().as_str() {
                "random" => KeyChoice::Random,
                "own" => KeyChoice::Own,
                other => {
                    return Err(self.err(
                        Some(k.span()),
                        format!("key_choice = {other:?} is not a way to pick keys"),
                        Some("use \"random\" (a random key each cycle) or \"own\" (client i always uses key i mod keys)".into()),
                    ));
                }
            },
        };
        Ok(key_choice)
    }

    fn deployments(
        &self,
        raw: Option<BTreeMap<Spanned<String>, super::deployment::RawDeployment>>,
        backends: &[String],
        endpoints: &BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, Deployment>, ScenarioError> {
        let mut out = BTreeMap::new();
        for (backend_name, d) in raw.unwrap_or_default() {
            let span = backend_name.span();
            let name = backend_name.into_inner();
            let Some(kind) = self.reg.get(&name).and_then(|b| b.server) else {
                return Err(self.err(
                    Some(span),
                    format!("no server kind for a deployment of {name:?}"),
                    Some("a deployment is given per backend that runs on servers, e.g. [deployment.redis]".into()),
                ));
            };
            if !backends.contains(&name) {
                return Err(self.err(
                    Some(span),
                    format!("[deployment.{name}] is for a backend the scenario does not run"),
                    Some(format!("add {name:?} to backends, or remove the table")),
                ));
            }
            if endpoints.contains_key(&name) {
                return Err(self.err(
                    Some(span),
                    format!("{name} has both [endpoints] and [deployment.{name}]"),
                    Some("keep the deployment: its members are the endpoints".into()),
                ));
            }
            let d = super::deployment::read(&name, kind, d, valid_host_port)
                .map_err(|(span, message, hint)| self.err(span, message, hint))?;
            out.insert(name, d);
        }
        Ok(out)
    }

    fn endpoints(
        &self,
        raw: Option<BTreeMap<Spanned<String>, Spanned<Endpoints>>>,
        known: &[&str],
    ) -> Result<BTreeMap<String, Vec<String>>, ScenarioError> {
        let mut endpoints = BTreeMap::new();
        for (backend_name, addrs) in raw.unwrap_or_default() {
            let span = backend_name.span();
            let name = backend_name.into_inner();
            if self.reg.get(&name).and_then(|b| b.server).is_none() {
                let hint = if known.contains(&name.as_str()) {
                    format!("{name} runs in-process and has no server")
                } else {
                    format!(
                        "endpoints are given per backend, e.g. [endpoints] redis = \"127.0.0.1:6379\"; known backends: {}",
                        known.join(", ")
                    )
                };
                return Err(self.err(
                    Some(span),
                    format!("no server kind for endpoints of {name:?}"),
                    Some(hint),
                ));
            };
            let addr_span = addrs.span();
            let list = match addrs.into_inner() {
                Endpoints::One(a) => vec![a],
                Endpoints::Many(v) => v,
            };
            if list.is_empty() {
                return Err(self.err(
                    Some(addr_span),
                    format!("no endpoint given for {name}"),
                    None,
                ));
            }
            for a in &list {
                if !valid_host_port(a) {
                    return Err(self.err(
                        Some(addr_span),
                        format!("endpoint {a:?} is not host:port"),
                        Some("e.g. \"127.0.0.1:6379\"".into()),
                    ));
                }
            }
            endpoints.insert(name, list);
        }
        Ok(endpoints)
    }

    fn topology(
        &self,
        raw: Option<Spanned<String>>,
        backends: &[String],
        endpoints: &BTreeMap<String, Vec<String>>,
        known: &[&str],
    ) -> Result<Topology, ScenarioError> {
        let topology = match raw {
            None => Topology::Single,
            Some(t) => {
                let topology = match t.get_ref().as_str() {
                    "single" => Topology::Single,
                    "replicated" => Topology::Replicated,
                    "cluster" => Topology::Cluster,
                    other => {
                        return Err(self.err(
                            Some(t.span()),
                            format!("topology = {other:?} is not a topology"),
                            Some("use \"single\" (the default), \"replicated\" (Redis with Sentinel, a ZooKeeper ensemble, an etcd cluster) or \"cluster\" (a Redis Cluster)".into()),
                        ));
                    }
                };
                if topology != Topology::Single {
                    let has = |b: &str| {
                        self.reg
                            .get(b)
                            .and_then(|info| info.shape(topology))
                            .is_some()
                    };
                    let word = t.get_ref().as_str();
                    let lacking: Vec<&String> = backends.iter().filter(|b| !has(b)).collect();
                    if let Some(b) = lacking.first() {
                        let with: Vec<&str> = known.iter().copied().filter(|b| has(b)).collect();
                        return Err(self.err(
                            Some(t.span()),
                            format!("{b} has no {word} topology in lockbench"),
                            Some(format!(
                                "{word} topologies exist for {}; run the others in a scenario of their own",
                                with.join(", ")
                            )),
                        ));
                    }
                    if let Some(b) = backends.iter().find(|b| endpoints.contains_key(*b)) {
                        return Err(self.err(
                            Some(t.span()),
                            format!(
                                "{b} uses external endpoints; lockbench cannot start a topology for it"
                            ),
                            Some("drop its [endpoints] entry or the topology line".into()),
                        ));
                    }
                }
                topology
            }
        };
        Ok(topology)
    }

    /// The timeline and the random schedule, checked against what the
    /// backends give faults to act on.
    #[allow(clippy::too_many_arguments)]
    fn faults(
        &self,
        raw_timeline: Option<Vec<RawFault>>,
        raw_random: Option<RawRandom>,
        backends: &[String],
        external: External<'_>,
        topology: Topology,
        hosts: i64,
        duration: Duration,
    ) -> Result<(Vec<FaultSpec>, Option<RandomSchedule>), ScenarioError> {
        let (servers, no_server_why) = self.startable_servers(backends, external, topology);
        let deployments = external.1;
        let no_link_why = backends
            .iter()
            .find(|b| self.reg.get(b).and_then(|i| i.server).is_none())
            .map(|b| format!("{b} runs in-process: there is no link to fault; run it in a scenario of its own"));
        let mut nemesis = Vec::new();
        for raw_fault in raw_timeline.unwrap_or_default() {
            let fault_span = raw_fault.fault.span();
            let spec = raw_fault
                .validate(
                    hosts as u32,
                    servers,
                    duration,
                    &no_server_why,
                    no_link_why.as_deref(),
                )
                .map_err(|(span, message, hint)| self.err(Some(span), message, hint))?;
            if let Some((message, hint)) =
                self.topology_refuses(spec.kind, backends, deployments, topology, Some(&spec))
            {
                return Err(self.err(Some(fault_span), message, Some(hint)));
            }
            nemesis.push(spec);
        }
        nemesis.sort_by_key(|f| f.at);
        let random_nemesis = match raw_random {
            None => None,
            Some(r) => {
                let faults_span = r.faults.span();
                let schedule = r
                    .validate(servers, duration, &no_server_why, no_link_why.as_deref())
                    .map_err(|(span, message, hint)| self.err(Some(span), message, hint))?;
                for kind in &schedule.faults {
                    if let Some((message, hint)) =
                        self.topology_refuses(*kind, backends, deployments, topology, None)
                    {
                        return Err(self.err(Some(faults_span), message, Some(hint)));
                    }
                }
                Some(schedule)
            }
        };
        Ok((nemesis, random_nemesis))
    }

    /// Why the topology cannot carry a fault of `kind` (message and hint):
    /// a bridge needs a ZooKeeper ensemble, an isolated server needs peers.
    fn topology_refuses(
        &self,
        kind: FaultKind,
        backends: &[String],
        deployments: &BTreeMap<String, Deployment>,
        topology: Topology,
        spec: Option<&FaultSpec>,
    ) -> Option<(String, String)> {
        // A deployment lockbench did not start: its hooks carry the fault
        // out on every member it can target, or the first one missing is
        // named.
        if kind.on_servers() {
            for b in backends {
                if let Some(d) = deployments.get(b)
                    && let Some(missing) = super::deployment::missing_hook(b, d, kind, spec)
                {
                    return Some(missing);
                }
            }
            if backends.iter().all(|b| deployments.contains_key(b)) {
                return None;
            }
        }
        match kind {
            FaultKind::Bridge => {
                let b = backends.iter().find(|b| {
                    topology == Topology::Single
                        || !matches!(
                            self.replicated_shape(b),
                            Some(crate::cluster::topology::Shape::Ensemble(..))
                        )
                })?;
                Some((
                    format!(
                        "bridge cuts single links between members, which lockbench can do \
                         only in a ZooKeeper ensemble (topology = \"replicated\"), not for {b}"
                    ),
                    "etcd's and Sentinel's members are cut as a whole (isolate-server); \
                     run the bridge in a scenario of zookeeper backends with \
                     topology = \"replicated\""
                        .into(),
                ))
            }
            FaultKind::IsolateServer if topology == Topology::Single => Some((
                "isolate-server cuts the links between the members of a replicated topology".into(),
                "add topology = \"replicated\" (single servers have no peers to be cut from)"
                    .into(),
            )),
            _ => None,
        }
    }

    fn workload(&self, raw: Option<Spanned<String>>) -> Result<Workload, ScenarioError> {
        let workload = match raw {
            None => Workload::Fence,
            Some(w) => match w.get_ref().as_str() {
                "fence" => Workload::Fence,
                "counter" => Workload::Counter,
                other => {
                    return Err(self.err(
                        Some(w.span()),
                        format!("workload = {other:?} is not a workload"),
                        Some("use \"fence\" (write the fencing token; the default) or \"counter\" (read-modify-write a counter)".into()),
                    ));
                }
            },
        };
        Ok(workload)
    }
}

fn valid_host_port(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "backends",
    "mode",
    "expect",
    "expect_backend",
    "seed",
    "duration",
    "ops",
    "clients",
    "hosts",
    "keys",
    "key_choice",
    "lease",
    "acquire_timeout",
    "op_timeout",
    "hold",
    "think",
    "history",
    "endpoints",
    "deployment",
    "nemesis",
    "random_nemesis",
    "workload",
    "topology",
    "driver",
    "atlas",
];

fn hint_for_parse_error(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        return Some(match closest(field, FIELDS) {
            Some(c) => format!("did you mean `{c}`? see docs/scenarios.md"),
            None => "docs/scenarios.md lists the fields a scenario has".into(),
        });
    }
    if message.contains("invalid type") {
        return Some("durations are strings with a unit (\"250ms\"), counts are integers".into());
    }
    None
}

/// The known name nearest to `word`, if it is a plausible typo.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(Path::new("s.toml"), text)
    }

    #[test]
    fn a_declared_driver_is_a_backend_that_runs_from_the_files_folder() {
        let s = parse(
            "backends = [\"mine\"]\n[[driver]]\nname = \"mine\"\nserver = \"redis\"\n\
             command = [\"python3\", \"d.py\"]\noptions = { sleep_ms = 100 }\n",
        )
        .unwrap();
        let d = &s.drivers[0];
        // A bare file name's folder is the working directory, made absolute.
        assert!(d.dir.is_absolute(), "{:?}", d.dir);
        assert_eq!(d.options, serde_json::json!({"sleep_ms": 100}));
        let info = s.registry();
        let info = info.get("mine").unwrap();
        assert_eq!(info.server, Some(crate::cluster::ServerKind::Redis));
        assert!(info.driver.is_some());
        let clash = parse(
            "backends = [\"redis\"]\n[[driver]]\nname = \"redis\"\nserver = \"redis\"\n\
             command = [\"x\"]\n",
        )
        .unwrap_err();
        assert!(clash.message.contains("already exists"), "{clash}");
        let kind = parse(
            "backends = [\"m\"]\n[[driver]]\nname = \"m\"\nserver = \"mongo\"\ncommand = [\"x\"]\n",
        )
        .unwrap_err();
        assert!(kind.message.contains("not a server kind"), "{kind}");
    }

    #[test]
    fn the_libraries_group_is_every_shipped_library_once() {
        let s = parse("backends = [\"redis\", \"redsync\", \"@libraries\"]\n").unwrap();
        let libraries = backend::library_names();
        assert!(libraries.len() >= 12, "{libraries:?}");
        assert_eq!(s.backends[0], "redis");
        assert_eq!(s.backends[1], "redsync");
        assert_eq!(s.backends.len(), 1 + libraries.len());
        for l in &libraries {
            assert_eq!(s.backends.iter().filter(|b| b == l).count(), 1, "{l}");
        }
        // A declared driver is the scenario's, not a shipped library.
        let mine = parse(
            "backends = [\"@libraries\"]\n[[driver]]\nname = \"mine\"\nserver = \"redis\"\n\
             command = [\"x\"]\n",
        )
        .unwrap();
        assert!(!mine.backends.iter().any(|b| b == "mine"));
    }

    #[test]
    fn defaults_fill_in() {
        let s = parse("backends = [\"inproc\"]\n").unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.clients, 8);
        assert_eq!(s.keys, vec!["lock"]);
        assert_eq!(s.expect, Verdict::Valid);
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = parse("backends = [\"inproc\"]\nclients = 0\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string()
                .starts_with("s.toml:2:11: clients = 0 is out of range"),
            "{e}"
        );
    }

    #[test]
    fn typos_get_a_suggestion() {
        let e = parse("backends = [\"reddis\"]\n").unwrap_err();
        assert!(e.hint.unwrap().contains("did you mean \"redis\""));
        let e = parse("backends = [\"inproc\"]\nclient = 3\n").unwrap_err();
        assert!(e.hint.unwrap().contains("`clients`"), "{:?}", e.message);
    }
}
