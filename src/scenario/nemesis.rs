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

use crate::duration::{Dur, TimeDist};
use crate::fault::{
    FAULTS, FaultKind, FaultParams, FaultSpec, ROLE_TARGETS, RandomSchedule, RandomTarget,
    SHARD_TARGETS, shard_target,
};

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
                    || shard_target(t).is_some()
                    || t.strip_prefix("server-")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|n| (1..=servers).contains(&n));
                if !ok {
                    return Err((
                        span,
                        format!("target {t:?} is not a server"),
                        Some(format!(
                            "server faults target \"server-1\" to \"server-{servers}\", \"all\", a role: {}, or in a Redis Cluster {}KEY",
                            ROLE_TARGETS.join(", "),
                            SHARD_TARGETS.join("KEY, ")
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
    /// The fault kind called `name`, with its parameters checked by the
    /// fault registry ([`FaultKind::parse`]); an error points at the
    /// parameter it is about, else at the fault.
    pub(super) fn kind(
        &self,
        name: &str,
        fault_span: std::ops::Range<usize>,
    ) -> Result<FaultKind, FaultError> {
        let params = FaultParams {
            delay: self.delay.map(|d| d.0),
            jitter: self.jitter.map(|j| j.0),
            direction: self.direction.as_ref().map(|d| d.get_ref().clone()),
            bytes_per_s: self.bytes_per_s.as_ref().map(|b| *b.get_ref()),
            offset_ms: self.offset_ms.as_ref().map(|o| *o.get_ref()),
            rate: self.rate.as_ref().map(|r| *r.get_ref()),
        };
        FaultKind::parse(name, &params).map_err(|e| {
            let span = match e.param {
                Some("direction") => self.direction.as_ref().map(|d| d.span()),
                Some("bytes_per_s") => self.bytes_per_s.as_ref().map(|b| b.span()),
                Some("offset_ms") => self.offset_ms.as_ref().map(|o| o.span()),
                Some("rate") => self.rate.as_ref().map(|r| r.span()),
                _ => None,
            };
            (span.unwrap_or(fault_span), e.message, e.hint)
        })
    }
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
