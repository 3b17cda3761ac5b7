//! `[[nemesis]]` entries of a scenario: an explicit timeline of faults.
//!
//! ```toml
//! [[nemesis]]
//! at = "2s"              # since the clients started
//! fault = "partition"    # see `FaultKind`
//! targets = ["h1"]       # hosts for network faults, servers for server faults
//! duration = "1s"        # every fault ends, and everything heals at the end
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration::{Dur, TimeDist};
use crate::fault::Direction;

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

impl FaultKind {
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

    /// Whether it acts on clients (targets: hosts, or the holder).
    pub fn on_clients(self) -> bool {
        matches!(self, FaultKind::CrashClient | FaultKind::PauseClient)
    }

    /// Whether it acts on the links between hosts and servers (a client
    /// pause blackholes its host's links too).
    pub fn needs_links(self) -> bool {
        !self.on_servers() && self != FaultKind::CrashClient
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

/// One `[[nemesis]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub at: Spanned<Dur>,
    pub fault: Spanned<String>,
    pub targets: Option<Spanned<Vec<String>>>,
    pub duration: Spanned<Dur>,
    pub delay: Option<Dur>,
    pub jitter: Option<Dur>,
    pub direction: Option<Spanned<String>>,
    pub bytes_per_s: Option<Spanned<i64>>,
    pub offset_ms: Option<Spanned<i64>>,
    pub rate: Option<Spanned<f64>>,
}

/// A mistake in a `[[nemesis]]` entry: where (a byte span) and what.
pub(super) type FaultError = (std::ops::Range<usize>, String, Option<String>);

impl RawFault {
    /// Validates one entry against the scenario's hosts, servers per
    /// backend (the smallest count, 0 when some backend has none) and
    /// duration.
    pub(super) fn validate(
        self,
        hosts: u32,
        servers: usize,
        run: Duration,
        no_server_why: &str,
        no_link_why: Option<&str>,
    ) -> Result<FaultSpec, FaultError> {
        let fault_span = self.fault.span();
        let params = KindParams {
            delay: self.delay,
            jitter: self.jitter,
            direction: self.direction,
            bytes_per_s: self.bytes_per_s,
            offset_ms: self.offset_ms,
            rate: self.rate,
        };
        let kind = params.kind(self.fault.get_ref(), fault_span.clone())?;
        let at = self.at.get_ref().0;
        if at >= run {
            return Err((
                self.at.span(),
                format!("at = {at:?} is not before the end of the run ({run:?})"),
                Some("a fault must start while the clients run".into()),
            ));
        }
        let duration = self.duration.get_ref().0;
        if duration.is_zero() || duration > Duration::from_secs(3600) {
            return Err((
                self.duration.span(),
                format!("duration = {duration:?} is out of range"),
                Some("a fault lasts between 1 ms and 1 h; everything heals at the end of the run anyway".into()),
            ));
        }
        let (targets, span) = match self.targets {
            Some(t) => {
                let span = t.span();
                (t.into_inner(), span)
            }
            None => (vec!["all".to_string()], fault_span.clone()),
        };
        if kind.on_clients() {
            if let Some(t) = targets.iter().find(|t| !host_target(t, hosts)) {
                return Err((
                    span,
                    format!("target {t:?} is not a host or \"holder\""),
                    Some(format!(
                        "client faults target \"holder\" (a client that holds a lock when the fault starts), hosts \"h1\" to \"h{hosts}\", or \"all\""
                    )),
                ));
            }
        } else if kind.on_servers() {
            applies(kind, &fault_span, servers, no_server_why, no_link_why)?;
            for t in &targets {
                let ok = t == "all"
                    || ROLE_TARGETS.contains(&t.as_str())
                    || t.strip_prefix("server-")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|n| (1..=servers).contains(&n));
                if !ok {
                    return Err((
                        span,
                        format!("target {t:?} is not a server"),
                        Some(format!(
                            "server faults target \"server-1\" to \"server-{servers}\", \"all\", or a role: {}",
                            ROLE_TARGETS.join(", ")
                        )),
                    ));
                }
            }
            let one = matches!(
                targets.as_slice(),
                [t] if !["all", "followers", "minority", "majority"].contains(&t.as_str())
            );
            if kind == FaultKind::Bridge && !one {
                return Err((
                    span,
                    "a bridge is one member: the one that still reaches both halves".into(),
                    Some("target one member: \"leader\", \"follower\" or \"server-N\"".into()),
                ));
            }
        } else {
            applies(kind, &fault_span, servers, no_server_why, no_link_why)?;
            if let Some(t) = targets.iter().find(|t| !host_target(t, hosts)) {
                return Err((
                    span,
                    format!("target {t:?} is not a host"),
                    Some(format!(
                        "network faults target hosts \"h1\" to \"h{hosts}\", \"holder\" (the host of a client that holds a lock when the fault starts), or \"all\""
                    )),
                ));
            }
        }
        Ok(FaultSpec {
            at,
            kind,
            targets,
            duration,
        })
    }
}

/// Refuses a fault kind the scenario's backends give nothing to act on:
/// server faults without servers lockbench started, network faults
/// without links (client faults need neither: an in-process client can
/// crash or pause).
fn applies(
    kind: FaultKind,
    span: &std::ops::Range<usize>,
    servers: usize,
    no_server_why: &str,
    no_link_why: Option<&str>,
) -> Result<(), FaultError> {
    if kind.on_servers() && servers == 0 {
        return Err((
            span.clone(),
            format!("{} acts on servers lockbench started", kind.name()),
            Some(no_server_why.to_string()),
        ));
    }
    if kind.needs_links()
        && !kind.on_clients()
        && let Some(why) = no_link_why
    {
        return Err((
            span.clone(),
            format!(
                "{} acts on the links between clients and servers",
                kind.name()
            ),
            Some(why.to_string()),
        ));
    }
    Ok(())
}

/// Whether `t` names a host of `hosts` (`h1`..), the holder's, or all.
fn host_target(t: &str, hosts: u32) -> bool {
    t == "all"
        || t == "holder"
        || t.strip_prefix('h')
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=hosts).contains(&n))
}

/// The parameters a fault kind may take, as written (shared by the
/// timeline and the random schedule).
#[derive(Debug, Default)]
pub(super) struct KindParams {
    pub delay: Option<Dur>,
    pub jitter: Option<Dur>,
    pub direction: Option<Spanned<String>>,
    pub bytes_per_s: Option<Spanned<i64>>,
    pub offset_ms: Option<Spanned<i64>>,
    pub rate: Option<Spanned<f64>>,
}

impl KindParams {
    /// The fault kind called `name`, with its parameters checked.
    pub(super) fn kind(
        &self,
        name: &str,
        fault_span: std::ops::Range<usize>,
    ) -> Result<FaultKind, FaultError> {
        let kind = match name {
            "partition" => FaultKind::Partition,
            "partition-reset" => FaultKind::PartitionReset,
            "partition-one-way" => {
                let Some(d) = &self.direction else {
                    return Err((
                        fault_span,
                        "partition-one-way needs a direction".into(),
                        Some(
                            "add direction = \"upstream\" (client to server) or \"downstream\""
                                .into(),
                        ),
                    ));
                };
                match d.get_ref().as_str() {
                    "upstream" => FaultKind::PartitionOneWay(Direction::Upstream),
                    "downstream" => FaultKind::PartitionOneWay(Direction::Downstream),
                    other => {
                        return Err((
                            d.span(),
                            format!("direction = {other:?} is not a direction"),
                            Some("use \"upstream\" (client to server) or \"downstream\"".into()),
                        ));
                    }
                }
            }
            "latency" => {
                let Some(delay) = self.delay else {
                    return Err((
                        fault_span,
                        "latency needs a delay".into(),
                        Some("add delay = \"50ms\" (and jitter = \"10ms\" if wanted)".into()),
                    ));
                };
                FaultKind::Latency {
                    delay: delay.0,
                    jitter: self.jitter.map(|j| j.0).unwrap_or_default(),
                }
            }
            "bandwidth" => match &self.bytes_per_s {
                Some(b) if *b.get_ref() > 0 => FaultKind::Bandwidth(*b.get_ref() as u64),
                Some(b) => return Err((b.span(), "bytes_per_s must be positive".into(), None)),
                None => {
                    return Err((
                        fault_span,
                        "bandwidth needs bytes_per_s".into(),
                        Some("add bytes_per_s = 10000".into()),
                    ));
                }
            },
            "kill-server" => FaultKind::KillServer,
            "pause-server" => FaultKind::PauseServer,
            "crash-client" => FaultKind::CrashClient,
            "pause-client" => FaultKind::PauseClient,
            "isolate-server" => FaultKind::IsolateServer,
            "bridge" => FaultKind::Bridge,
            "clock-skew" => match &self.offset_ms {
                Some(o) if *o.get_ref() != 0 && o.get_ref().abs() <= 86_400_000 => {
                    FaultKind::ClockSkew(*o.get_ref() * 1_000_000)
                }
                Some(o) => {
                    return Err((
                        o.span(),
                        "offset_ms must be non-zero and within a day".into(),
                        None,
                    ));
                }
                None => {
                    return Err((
                        fault_span,
                        "clock-skew needs offset_ms".into(),
                        Some("add offset_ms = 5000 (ahead) or -5000 (behind)".into()),
                    ));
                }
            },
            "clock-drift" => match &self.rate {
                Some(r)
                    if r.get_ref().is_finite() && *r.get_ref() > 0.0 && *r.get_ref() <= 1000.0 =>
                {
                    FaultKind::ClockDrift(*r.get_ref())
                }
                Some(r) => {
                    return Err((
                        r.span(),
                        "rate must be above 0 and at most 1000".into(),
                        Some("rate = 10.0 makes the server's clock run ten times as fast".into()),
                    ));
                }
                None => {
                    return Err((
                        fault_span,
                        "clock-drift needs a rate".into(),
                        Some("add rate = 10.0 (ten times as fast)".into()),
                    ));
                }
            },
            other => {
                return Err((
                    fault_span,
                    format!("unknown fault {other:?}"),
                    Some(format!("faults: {}", FAULTS.join(", "))),
                ));
            }
        };
        Ok(kind)
    }
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

/// `[random_nemesis]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRandom {
    pub start: Option<Dur>,
    pub interval: Option<Spanned<Dur>>,
    pub duration: Option<TimeDist>,
    pub faults: Spanned<Vec<String>>,
    pub targets: Option<Spanned<Vec<String>>>,
    pub delay: Option<Dur>,
    pub jitter: Option<Dur>,
    pub direction: Option<Spanned<String>>,
    pub bytes_per_s: Option<Spanned<i64>>,
    pub offset_ms: Option<Spanned<i64>>,
    pub rate: Option<Spanned<f64>>,
}

impl RawRandom {
    /// Validates the schedule against the scenario, as the timeline's
    /// entries are.
    pub(super) fn validate(
        self,
        servers: usize,
        run: Duration,
        no_server_why: &str,
        no_link_why: Option<&str>,
    ) -> Result<RandomSchedule, FaultError> {
        let span = self.faults.span();
        let params = KindParams {
            delay: self.delay,
            jitter: self.jitter,
            direction: self.direction,
            bytes_per_s: self.bytes_per_s,
            offset_ms: self.offset_ms,
            rate: self.rate,
        };
        let mut faults = Vec::new();
        for name in self.faults.get_ref() {
            let kind = params.kind(name, span.clone())?;
            applies(kind, &span, servers, no_server_why, no_link_why)?;
            faults.push(kind);
        }
        if faults.is_empty() {
            return Err((
                span,
                "faults is empty".into(),
                Some(format!("name one or more of: {}", FAULTS.join(", "))),
            ));
        }
        let targets = match self.targets {
            None => vec![
                RandomTarget::OneHost,
                RandomTarget::Minority,
                RandomTarget::Holder,
            ],
            Some(t) => {
                let span = t.span();
                let mut out = Vec::new();
                for name in t.into_inner() {
                    out.push(match name.as_str() {
                        "one-host" => RandomTarget::OneHost,
                        "minority" => RandomTarget::Minority,
                        "holder" => RandomTarget::Holder,
                        other => {
                            return Err((
                                span,
                                format!("{other:?} is not a random target"),
                                Some("use \"one-host\", \"minority\" or \"holder\"".into()),
                            ));
                        }
                    });
                }
                if out.is_empty() {
                    return Err((span, "targets is empty".into(), None));
                }
                out
            }
        };
        let interval = match self.interval {
            None => Duration::from_secs(3),
            Some(i) if !i.get_ref().0.is_zero() && i.get_ref().0 < run => i.get_ref().0,
            Some(i) => {
                return Err((
                    i.span(),
                    format!("interval = {:?} is out of range", i.get_ref().0),
                    Some(
                        "the quiet time between faults is above 0 and shorter than the run".into(),
                    ),
                ));
            }
        };
        Ok(RandomSchedule {
            start: self.start.map(|d| d.0).unwrap_or(Duration::from_secs(1)),
            interval,
            duration: self.duration.unwrap_or(TimeDist::Fixed {
                value: Duration::from_secs(1),
            }),
            faults,
            targets,
        })
    }
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
