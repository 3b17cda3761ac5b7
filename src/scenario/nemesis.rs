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

use super::duration::Dur;
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
}

impl FaultKind {
    /// Whether it acts on servers (else on hosts' links).
    pub fn on_servers(self) -> bool {
        matches!(self, FaultKind::KillServer | FaultKind::PauseServer)
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
        let kind = match self.fault.get_ref().as_str() {
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
            other => {
                return Err((
                    fault_span,
                    format!("unknown fault {other:?}"),
                    Some(format!("faults: {}", FAULTS.join(", "))),
                ));
            }
        };
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
        if kind.on_servers() {
            if servers == 0 {
                return Err((
                    fault_span,
                    format!("{} acts on servers lockbench started", kind.name()),
                    Some(no_server_why.to_string()),
                ));
            }
            for t in &targets {
                let ok = t == "all"
                    || t.strip_prefix("server-")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|n| (1..=servers).contains(&n));
                if !ok {
                    return Err((
                        span,
                        format!("target {t:?} is not a server"),
                        Some(format!(
                            "server faults target \"server-1\" to \"server-{servers}\", or \"all\""
                        )),
                    ));
                }
            }
        } else {
            if let Some(why) = no_link_why {
                return Err((
                    fault_span,
                    format!(
                        "{} acts on the links between clients and servers",
                        kind.name()
                    ),
                    Some(why.to_string()),
                ));
            }
            for t in &targets {
                let ok = t == "all"
                    || t.strip_prefix('h')
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(|n| (1..=hosts).contains(&n));
                if !ok {
                    return Err((
                        span,
                        format!("target {t:?} is not a host"),
                        Some(format!(
                            "network faults target hosts \"h1\" to \"h{hosts}\", or \"all\""
                        )),
                    ));
                }
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
