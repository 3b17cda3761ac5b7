//! The fault vocabulary: what a fault is (its kind, targets, start and
//! length), the faults a scenario can name, and a seeded random schedule
//! of them. The scenario layer reads them from TOML; the nemesis applies
//! them.

use std::time::Duration;

use crate::duration::TimeDist;
use crate::net::Direction;

/// One fault of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// When it starts, from the clients' start.
    pub at: Duration,
    /// What it does.
    pub kind: FaultKind,
    /// Hosts (`h1`..) for network faults, servers (`server-1`..) for server
    /// faults; `all` for every one.
    pub targets: Vec<String>,
    /// How long it lasts.
    pub duration: Duration,
}

/// How Toxiproxy carries out a fault ([`FaultKind::toxiproxy`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ToxiPlan {
    /// Every proxy disabled, then enabled again.
    Disable,
    /// These toxics on every proxy, then removed.
    Toxics(Vec<crate::net::toxiproxy::Toxic>),
    /// Toxiproxy has nothing for it.
    Nothing,
}

/// A fault's hook actions on a deployment: the one that starts it, the one
/// that ends it, and the values the hooks get besides the member's.
pub type HookActions = (&'static str, &'static str, Vec<(&'static str, String)>);

/// The faults a timeline can hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// The hosts' links to every server stop carrying bytes both ways;
    /// connections stay open (clients time out).
    Partition,
    /// The hosts' connections are cut with RST and new ones refused.
    PartitionReset,
    /// Bytes stop in one direction only.
    PartitionOneWay(Direction),
    /// Added delay on the hosts' links, both ways.
    Latency {
        /// Delay per chunk, each way.
        delay: Duration,
        /// Up to this much more or less.
        jitter: Duration,
    },
    /// The hosts' links carry at most this many bytes per second each way.
    Bandwidth(u64),
    /// The servers are killed with SIGKILL and restarted, on the same port
    /// and data directory, when the fault ends.
    KillServer,
    /// The servers are frozen with SIGSTOP and resumed with SIGCONT.
    PauseServer,
    /// The clients are killed: their task stops where it is, connections
    /// drop, nothing is released, the history gets a `crash` event. When
    /// the fault ends a new client (a new process id) takes each one's place.
    CrashClient,
    /// The GC pause: the clients freeze and their hosts' links are
    /// blackholed (heartbeats stop too); when it ends they carry on as if
    /// they still held their lock, and write to the protected resource.
    PauseClient,
    /// The servers' wall clocks jump by this many nanoseconds (negative:
    /// back), through lockbench's clock library.
    ClockSkew(i64),
    /// The servers' wall clocks run this many times as fast as real time.
    ClockDrift(f64),
    /// The servers are cut from the other members of their replicated
    /// topology (replication, quorum, election and monitoring traffic
    /// stops); clients still reach them.
    IsolateServer,
    /// Its one target stays linked to every other member, while those
    /// others are split into two halves that reach each other only
    /// through it (Jepsen's bridge nemesis). ZooKeeper ensembles only:
    /// their links are cut per pair of members.
    Bridge,
}

/// A fault kind's parameters, as a scenario gives them (the scenario layer
/// reads them from TOML and keeps where each was written, for errors).
#[derive(Debug, Default, Clone)]
pub struct FaultParams {
    /// `latency`: the added delay.
    pub delay: Option<Duration>,
    /// `latency`: up to this much more or less.
    pub jitter: Option<Duration>,
    /// `partition-one-way`: `upstream` or `downstream`.
    pub direction: Option<String>,
    /// `bandwidth`: bytes per second each way.
    pub bytes_per_s: Option<i64>,
    /// `clock-skew`: the jump, ms (negative: back).
    pub offset_ms: Option<i64>,
    /// `clock-drift`: how many times as fast the clock runs.
    pub rate: Option<f64>,
}

/// Why a fault's name and parameters make no fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// The parameter it is about (its name in scenarios); `None`: the
    /// fault itself (an unknown name, a parameter missing).
    pub param: Option<&'static str>,
    /// What is wrong.
    pub message: String,
    /// How to put it right.
    pub hint: Option<String>,
}

impl ParamError {
    fn missing(message: &str, hint: &str) -> Self {
        ParamError {
            param: None,
            message: message.to_string(),
            hint: Some(hint.to_string()),
        }
    }

    fn bad(param: &'static str, message: String, hint: Option<&str>) -> Self {
        ParamError {
            param: Some(param),
            message,
            hint: hint.map(str::to_string),
        }
    }
}

impl FaultKind {
    /// The fault called `name` with `params`: the one place a fault's name
    /// becomes a kind, and its parameters are checked.
    pub fn parse(name: &str, p: &FaultParams) -> Result<FaultKind, ParamError> {
        Ok(match name {
            "partition" => FaultKind::Partition,
            "partition-reset" => FaultKind::PartitionReset,
            "partition-one-way" => match p.direction.as_deref() {
                Some("upstream") => FaultKind::PartitionOneWay(Direction::Upstream),
                Some("downstream") => FaultKind::PartitionOneWay(Direction::Downstream),
                Some(other) => {
                    return Err(ParamError::bad(
                        "direction",
                        format!("direction = {other:?} is not a direction"),
                        Some("use \"upstream\" (client to server) or \"downstream\""),
                    ));
                }
                None => {
                    return Err(ParamError::missing(
                        "partition-one-way needs a direction",
                        "add direction = \"upstream\" (client to server) or \"downstream\"",
                    ));
                }
            },
            "latency" => {
                let Some(delay) = p.delay else {
                    return Err(ParamError::missing(
                        "latency needs a delay",
                        "add delay = \"50ms\" (and jitter = \"10ms\" if wanted)",
                    ));
                };
                FaultKind::Latency {
                    delay,
                    jitter: p.jitter.unwrap_or_default(),
                }
            }
            "bandwidth" => match p.bytes_per_s {
                Some(b) if b > 0 => FaultKind::Bandwidth(b as u64),
                Some(_) => {
                    return Err(ParamError::bad(
                        "bytes_per_s",
                        "bytes_per_s must be positive".into(),
                        None,
                    ));
                }
                None => {
                    return Err(ParamError::missing(
                        "bandwidth needs bytes_per_s",
                        "add bytes_per_s = 10000",
                    ));
                }
            },
            "kill-server" => FaultKind::KillServer,
            "pause-server" => FaultKind::PauseServer,
            "crash-client" => FaultKind::CrashClient,
            "pause-client" => FaultKind::PauseClient,
            "isolate-server" => FaultKind::IsolateServer,
            "bridge" => FaultKind::Bridge,
            "clock-skew" => match p.offset_ms {
                Some(o) if o != 0 && o.abs() <= 86_400_000 => FaultKind::ClockSkew(o * 1_000_000),
                Some(_) => {
                    return Err(ParamError::bad(
                        "offset_ms",
                        "offset_ms must be non-zero and within a day".into(),
                        None,
                    ));
                }
                None => {
                    return Err(ParamError::missing(
                        "clock-skew needs offset_ms",
                        "add offset_ms = 5000 (ahead) or -5000 (behind)",
                    ));
                }
            },
            "clock-drift" => match p.rate {
                Some(r) if r.is_finite() && r > 0.0 && r <= 1000.0 => FaultKind::ClockDrift(r),
                Some(_) => {
                    return Err(ParamError::bad(
                        "rate",
                        "rate must be above 0 and at most 1000".into(),
                        Some("rate = 10.0 makes the server's clock run ten times as fast"),
                    ));
                }
                None => {
                    return Err(ParamError::missing(
                        "clock-drift needs a rate",
                        "add rate = 10.0 (ten times as fast)",
                    ));
                }
            },
            other => {
                return Err(ParamError {
                    param: None,
                    message: format!("unknown fault {other:?}"),
                    hint: Some(format!("faults: {}", FAULTS.join(", "))),
                });
            }
        })
    }

    /// Whether it acts on servers (else on hosts' links or clients).
    pub fn on_servers(self) -> bool {
        matches!(
            self,
            FaultKind::KillServer
                | FaultKind::PauseServer
                | FaultKind::ClockSkew(_)
                | FaultKind::ClockDrift(_)
                | FaultKind::IsolateServer
                | FaultKind::Bridge
        )
    }

    /// On a deployment lockbench did not start: the hook actions that
    /// start and end it (`cluster::hooks`), and the values the hooks get
    /// besides the member's (`offset_ms`, `rate` for the clock; the
    /// nemesis adds `peers` for a cut). `None`: no hook can carry it out.
    pub fn hook_actions(self) -> Option<HookActions> {
        let clock = |offset_ns: i64, rate: f64| {
            vec![
                ("offset_ms", (offset_ns / 1_000_000).to_string()),
                ("rate", rate.to_string()),
            ]
        };
        match self {
            FaultKind::KillServer => Some(("kill", "start", Vec::new())),
            FaultKind::PauseServer => Some(("pause", "resume", Vec::new())),
            // A bridge isolates each other member from the other half.
            FaultKind::IsolateServer | FaultKind::Bridge => Some(("isolate", "heal", Vec::new())),
            FaultKind::ClockSkew(ns) => Some(("clock", "clock-reset", clock(ns, 1.0))),
            FaultKind::ClockDrift(rate) => Some(("clock", "clock-reset", clock(0, rate))),
            _ => None,
        }
    }

    /// Whether it acts on clients (targets: hosts, or the holder).
    pub fn on_clients(self) -> bool {
        matches!(self, FaultKind::CrashClient | FaultKind::PauseClient)
    }

    /// Whether it acts on the links between hosts and servers (a client
    /// pause blackholes its host's links too).
    pub fn needs_links(self) -> bool {
        !self.on_servers() && self != FaultKind::CrashClient
    }

    /// How the user's Toxiproxy carries it out on a deployment's proxies
    /// (`tag` names its toxics): every proxy disabled (connections closed,
    /// new ones refused), toxics added to every proxy, or nothing (a fault
    /// Toxiproxy has no toxic for).
    pub fn toxiproxy(self, tag: &str) -> ToxiPlan {
        use crate::net::toxiproxy::{Stream, Toxic};
        let toxic = |kind: &'static str, stream: Stream, attributes: serde_json::Value| Toxic {
            name: format!(
                "{tag}-{kind}-{}",
                if stream == Stream::Upstream {
                    "up"
                } else {
                    "down"
                }
            ),
            kind,
            stream,
            attributes,
        };
        let both = |kind: &'static str, attributes: serde_json::Value| {
            vec![
                toxic(kind, Stream::Upstream, attributes.clone()),
                toxic(kind, Stream::Downstream, attributes),
            ]
        };
        // A timeout toxic of 0 holds the data and never closes: a blackhole.
        let blackhole = serde_json::json!({ "timeout": 0 });
        match self {
            FaultKind::Partition => ToxiPlan::Toxics(both("timeout", blackhole)),
            FaultKind::PartitionReset => ToxiPlan::Disable,
            FaultKind::PartitionOneWay(d) => {
                let stream = match d {
                    Direction::Upstream => Stream::Upstream,
                    Direction::Downstream => Stream::Downstream,
                };
                ToxiPlan::Toxics(vec![toxic("timeout", stream, blackhole)])
            }
            FaultKind::Latency { delay, jitter } => ToxiPlan::Toxics(both(
                "latency",
                serde_json::json!({
                    "latency": delay.as_millis() as u64,
                    "jitter": jitter.as_millis() as u64,
                }),
            )),
            FaultKind::Bandwidth(bytes_per_s) => ToxiPlan::Toxics(both(
                "bandwidth",
                serde_json::json!({ "rate": (bytes_per_s / 1000).max(1) }),
            )),
            _ => ToxiPlan::Nothing,
        }
    }

    /// Whether it changes servers' clocks.
    pub fn on_clocks(self) -> bool {
        matches!(self, FaultKind::ClockSkew(_) | FaultKind::ClockDrift(_))
    }

    /// The history's names of its start and end events.
    pub fn event_names(self) -> (&'static str, &'static str) {
        match self {
            FaultKind::Partition => ("start-partition", "stop-partition"),
            FaultKind::PartitionReset => ("start-partition-reset", "stop-partition-reset"),
            FaultKind::PartitionOneWay(_) => ("start-partition-one-way", "stop-partition-one-way"),
            FaultKind::Latency { .. } => ("start-latency", "stop-latency"),
            FaultKind::Bandwidth(_) => ("start-bandwidth", "stop-bandwidth"),
            FaultKind::KillServer => ("kill-server", "restart-server"),
            FaultKind::PauseServer => ("pause-server", "resume-server"),
            FaultKind::CrashClient => ("crash-client", "restart-client"),
            FaultKind::PauseClient => ("pause-client", "resume-client"),
            FaultKind::ClockSkew(_) => ("start-clock-skew", "stop-clock-skew"),
            FaultKind::ClockDrift(_) => ("start-clock-drift", "stop-clock-drift"),
            FaultKind::IsolateServer => ("start-isolate-server", "stop-isolate-server"),
            FaultKind::Bridge => ("start-bridge", "stop-bridge"),
        }
    }

    /// Its name in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::PartitionReset => "partition-reset",
            FaultKind::PartitionOneWay(_) => "partition-one-way",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Bandwidth(_) => "bandwidth",
            FaultKind::KillServer => "kill-server",
            FaultKind::PauseServer => "pause-server",
            FaultKind::CrashClient => "crash-client",
            FaultKind::PauseClient => "pause-client",
            FaultKind::ClockSkew(_) => "clock-skew",
            FaultKind::ClockDrift(_) => "clock-drift",
            FaultKind::IsolateServer => "isolate-server",
            FaultKind::Bridge => "bridge",
        }
    }
}

impl FaultKind {
    /// One fault of every kind (parameters arbitrary), in [`FAULTS`]' order.
    pub fn one_of_each() -> Vec<FaultKind> {
        vec![
            FaultKind::Partition,
            FaultKind::PartitionReset,
            FaultKind::PartitionOneWay(Direction::Upstream),
            FaultKind::Latency {
                delay: Duration::from_millis(1),
                jitter: Duration::ZERO,
            },
            FaultKind::Bandwidth(1),
            FaultKind::KillServer,
            FaultKind::PauseServer,
            FaultKind::CrashClient,
            FaultKind::PauseClient,
            FaultKind::ClockSkew(0),
            FaultKind::ClockDrift(1.0),
            FaultKind::IsolateServer,
            FaultKind::Bridge,
        ]
    }

    /// The names of the faults a deployment's hooks can carry out.
    pub fn hooked_names() -> Vec<&'static str> {
        FaultKind::one_of_each()
            .into_iter()
            .filter(|k| k.hook_actions().is_some())
            .map(FaultKind::name)
            .collect()
    }
}

/// The names `fault =` accepts.
pub const FAULTS: &[&str] = &[
    "partition",
    "partition-reset",
    "partition-one-way",
    "latency",
    "bandwidth",
    "kill-server",
    "pause-server",
    "crash-client",
    "pause-client",
    "clock-skew",
    "clock-drift",
    "isolate-server",
    "bridge",
];

/// Server targets chosen by role when the fault starts (the servers are
/// asked who leads): `leader` (`primary` is the same), one `follower`,
/// all `followers`, a `minority` (⌊(n − 1)/2⌋ members) or a `majority`
/// (⌊n/2⌋ + 1), the last two drawn with the run's seed.
pub const ROLE_TARGETS: &[&str] = &[
    "leader",
    "primary",
    "follower",
    "followers",
    "minority",
    "majority",
];

/// Server targets of a Redis Cluster chosen by key when the fault starts:
/// `primary-of:KEY` (the primary serving KEY's hash slot) and
/// `replica-of:KEY` (one of its replicas, drawn with the run's seed).
pub const SHARD_TARGETS: &[&str] = &["primary-of:", "replica-of:"];

/// `Some((true, key))` for `primary-of:KEY`, `Some((false, key))` for
/// `replica-of:KEY` (a non-empty key), else `None`.
pub fn shard_target(t: &str) -> Option<(bool, &str)> {
    let (primary, key) = match (t.strip_prefix("primary-of:"), t.strip_prefix("replica-of:")) {
        (Some(key), _) => (true, key),
        (_, Some(key)) => (false, key),
        _ => return None,
    };
    (!key.is_empty()).then_some((primary, key))
}

impl FaultSpec {
    /// The 0-based indices of the hosts or servers it targets, of `n`.
    pub fn target_indices(&self, n: usize) -> Vec<usize> {
        if self.targets.iter().any(|t| t == "all") {
            return (0..n).collect();
        }
        let prefix = if self.kind.on_servers() {
            "server-"
        } else {
            "h"
        };
        let mut v: Vec<usize> = self
            .targets
            .iter()
            .filter_map(|t| t.strip_prefix(prefix)?.parse::<usize>().ok())
            .filter(|i| (1..=n).contains(i))
            .map(|i| i - 1)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Where a fault of a random schedule lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomTarget {
    /// One host, drawn at random.
    OneHost,
    /// A minority of the hosts: ⌊(hosts − 1) / 2⌋ of them, at least one.
    Minority,
    /// The host (or, for client faults, the client) of a lock holder.
    Holder,
}

/// `[random_nemesis]`: a fault schedule drawn from the run's seed, so that
/// the same seed gives the same faults at the same times.
///
/// ```toml
/// [random_nemesis]
/// start = "2s"          # no fault before this
/// interval = "3s"       # quiet time after each fault
/// duration = { min = "1s", max = "3s" }   # how long each fault lasts
/// faults = ["partition", "latency", "crash-client"]
/// targets = ["one-host", "minority", "holder"]
/// delay = "100ms"       # parameters of the kinds that need them
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSchedule {
    /// No fault starts before this.
    pub start: Duration,
    /// Quiet time between one fault's end and the next one's start.
    pub interval: Duration,
    /// How long each fault lasts.
    pub duration: TimeDist,
    /// The kinds drawn from, uniformly.
    pub faults: Vec<FaultKind>,
    /// Where network and client faults land, drawn uniformly; server faults
    /// hit one server drawn at random.
    pub targets: Vec<RandomTarget>,
}

impl RandomSchedule {
    /// The faults this schedule injects in a run of `run` with `hosts`
    /// hosts and `servers` servers, drawn from `seed`: the same arguments
    /// always give the same list. Faults do not overlap.
    pub fn expand(&self, seed: u64, hosts: usize, servers: usize, run: Duration) -> Vec<FaultSpec> {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
        let hosts = hosts.max(1);
        let mut out = Vec::new();
        let mut at = self.start;
        // Bounded: every step moves `at` on by at least `interval` (> 0).
        while at < run {
            let kind = self.faults[rng.random_range(0..self.faults.len())];
            let duration = self.duration.sample(&mut rng).max(Duration::from_millis(1));
            let targets = if kind.on_servers() {
                vec![format!("server-{}", rng.random_range(1..=servers.max(1)))]
            } else {
                match self.targets[rng.random_range(0..self.targets.len())] {
                    RandomTarget::Holder => vec!["holder".to_string()],
                    RandomTarget::OneHost => vec![format!("h{}", rng.random_range(1..=hosts))],
                    RandomTarget::Minority => {
                        let m = ((hosts - 1) / 2).max(1);
                        let mut all: Vec<usize> = (1..=hosts).collect();
                        all.shuffle(&mut rng);
                        let mut pick: Vec<usize> = all.into_iter().take(m).collect();
                        pick.sort_unstable();
                        pick.into_iter().map(|h| format!("h{h}")).collect()
                    }
                }
            };
            out.push(FaultSpec {
                at,
                kind,
                targets,
                duration,
            });
            at += duration + self.interval;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_parses_to_the_kind_of_that_name_and_no_other_does() {
        let all = FaultParams {
            delay: Some(Duration::from_millis(5)),
            jitter: None,
            direction: Some("upstream".into()),
            bytes_per_s: Some(1000),
            offset_ms: Some(1000),
            rate: Some(2.0),
        };
        for name in FAULTS {
            let kind = FaultKind::parse(name, &all).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(kind.name(), *name);
            let (start, stop) = kind.event_names();
            assert!(start != stop && start.contains(name.split('-').next().unwrap_or(name)));
        }
        let each: Vec<&str> = FaultKind::one_of_each()
            .into_iter()
            .map(FaultKind::name)
            .collect();
        assert_eq!(each, FAULTS);
        assert_eq!(
            FaultKind::hooked_names(),
            [
                "kill-server",
                "pause-server",
                "clock-skew",
                "clock-drift",
                "isolate-server",
                "bridge"
            ]
        );
        let e = FaultKind::parse("partitoin", &all).unwrap_err();
        assert_eq!(e.param, None);
        assert!(e.hint.is_some_and(|h| FAULTS.iter().all(|f| h.contains(f))));
        // A parameter out of range names itself; a missing one, the fault.
        let bad = FaultParams {
            rate: Some(0.0),
            ..Default::default()
        };
        assert_eq!(
            FaultKind::parse("clock-drift", &bad).unwrap_err().param,
            Some("rate")
        );
        let e = FaultKind::parse("latency", &FaultParams::default()).unwrap_err();
        assert_eq!(
            (e.param, e.message.as_str()),
            (None, "latency needs a delay")
        );
    }

    fn schedule() -> RandomSchedule {
        RandomSchedule {
            start: Duration::from_secs(1),
            interval: Duration::from_secs(2),
            duration: TimeDist::Uniform {
                min: Duration::from_millis(500),
                max: Duration::from_secs(2),
            },
            faults: vec![
                FaultKind::Partition,
                FaultKind::CrashClient,
                FaultKind::KillServer,
            ],
            targets: vec![
                RandomTarget::OneHost,
                RandomTarget::Minority,
                RandomTarget::Holder,
            ],
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let s = schedule();
        let a = s.expand(7, 5, 3, Duration::from_secs(60));
        let b = s.expand(7, 5, 3, Duration::from_secs(60));
        let c = s.expand(8, 5, 3, Duration::from_secs(60));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() >= 10, "{} faults in 60 s", a.len());
    }

    #[test]
    fn faults_do_not_overlap_and_targets_fit() {
        let a = schedule().expand(11, 5, 3, Duration::from_secs(120));
        for w in a.windows(2) {
            assert!(w[0].at + w[0].duration < w[1].at);
        }
        for f in &a {
            assert!(f.at < Duration::from_secs(120));
            if f.kind.on_servers() {
                assert_eq!(f.target_indices(3).len(), 1);
            } else if f.targets != ["holder"] {
                let n = f.target_indices(5).len();
                assert!((1..=2).contains(&n), "{f:?}");
            }
        }
    }
}
