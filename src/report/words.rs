//! The report's sentences for what the checkers return as data: the
//! checkers say which hold others overlapped and when; these words say it
//! to a reader (the run page, the CI summary, the terminal).

use crate::check::Incident;

/// An incident as one sentence: who held what, from when to when, past or
/// within its lease, during which faults, how many grants overlapped it,
/// and what became of its writes.
pub struct IncidentText<'a>(pub &'a Incident);

fn secs2(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e9)
}

impl std::fmt::Display for IncidentText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inc = self.0;
        let h = &inc.holder;
        write!(f, "process {} held ", h.process)?;
        if inc.key.is_empty() {
            f.write_str("the lock")?;
        } else {
            write!(f, "{:?}", inc.key)?;
        }
        write!(f, " from {} s", secs2(h.start_ns))?;
        match h.end_ns {
            Some(end) => write!(f, " to {} s", secs2(end))?,
            None => f.write_str(" to the end of the history")?,
        }
        if let (Some(ms), Some(end)) = (h.lease_ms, inc.lease_end_ns) {
            let past = h.end_ns.is_none_or(|e| e > end);
            write!(
                f,
                ", {} its {} lease (ran out at {} s)",
                if past { "past" } else { "within" },
                fmt_lease(ms),
                secs2(end)
            )?;
        }
        for (i, fault) in inc.faults.iter().enumerate() {
            f.write_str(if i == 0 { ", during " } else { " and " })?;
            write!(f, "{}", fault.fault)?;
            if !fault.targets.is_empty() {
                write!(f, " of {}", fault.targets.join(", "))?;
            }
            match fault.start_ns {
                Some(s) => write!(f, " ({}–{} s)", secs2(s), secs2(fault.end_ns))?,
                None => write!(f, " (to {} s)", secs2(fault.end_ns))?,
            }
        }
        write!(
            f,
            ": {} grant{} to others overlapped it",
            inc.overlaps,
            if inc.overlaps == 1 { "" } else { "s" }
        )?;
        match (inc.first_fence, inc.last_fence) {
            (Some(a), Some(b)) if a == b => write!(f, " (fence {a})")?,
            (Some(a), Some(b)) => write!(f, " (fences {a}–{b})")?,
            _ => {}
        }
        let w = &inc.writes;
        let fence = w
            .fence
            .map(|t| format!(" with fence {t}"))
            .unwrap_or_default();
        match (w.accepted, w.rejected) {
            (0, 0) => {}
            (1, 0) => write!(f, "; its write{fence} was accepted")?,
            (0, 1) => write!(f, "; its write{fence} was rejected")?,
            (a, r) => write!(f, "; of its writes, {a} accepted and {r} rejected")?,
        }
        write!(f, " [{}]", inc.class.as_str())
    }
}

fn fmt_lease(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
