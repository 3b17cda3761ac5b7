//! The recorder's spool: events as compact binary records, written while
//! the run goes and turned into history v1 lines by a converter thread
//! that runs only on CPU the run leaves idle (and at full speed once the
//! run ends). At saturation the clients then pay for a copy per event, not
//! for formatting and compression.
//!
//! A spool is a series of segment files beside the history file,
//! `<history file>.spool.<index of its first event, 20 digits>`, each
//! written within the recorder's flush interval and deleted once
//! its lines are in the history file. A run killed with SIGKILL leaves the
//! history's closed frames plus the segments not yet converted; readers
//! chain the two ([`leftovers`], [`read_segment`]), so the readable prefix
//! reaches the last flush whatever the converter's lag.
//!
//! # Segment layout (little-endian)
//!
//! - header: `LBSPOOL1`, the first event's index (u64), the number of keys
//!   (u32), then each key as a u32 length and its UTF-8 bytes;
//! - records, one per event in index order:
//!   - `1`: an [`Op`] in 40 bytes: time (u64), process (u64), type (u8),
//!     function (u8), key (u32), flags (u8: 1 fence, 2 lease, 4 accepted
//!     given, 8 accepted), fence (u64), lease (u64);
//!   - `2`: any other event as its finished line: a u32 length, then the
//!     line's bytes (newline included).
//!
//! A record cut short (the writer killed mid-write) ends the segment.

use std::path::{Path, PathBuf};

use super::recorder::OpLines;
use super::{KeyId, Op, OpF, OpType};

const MAGIC: &[u8; 8] = b"LBSPOOL1";
const OP: u8 = 1;
const LINE: u8 = 2;
/// The size of an `Op` record, tag included.
const OP_LEN: usize = 40;

/// The name of the segment of `history` whose first event is `first`.
pub(super) fn segment_path(history: &Path, first: u64) -> PathBuf {
    let mut name = history.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".spool.{first:020}"));
    history.with_file_name(name)
}

/// The segments of `history` still on disk, in index order (a run killed
/// before its converter finished leaves some).
pub fn leftovers(history: &Path) -> Vec<PathBuf> {
    let Some(name) = history.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let prefix = format!("{name}.spool.");
    let dir = match history.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name();
            let first = file.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((first, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// A segment's header: magic, first index, the key table.
pub(super) fn header(first: u64, keys: &[String]) -> Vec<u8> {
    let mut h = Vec::with_capacity(16 + keys.iter().map(|k| k.len() + 4).sum::<usize>());
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&first.to_le_bytes());
    h.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for k in keys {
        h.extend_from_slice(&(k.len() as u32).to_le_bytes());
        h.extend_from_slice(k.as_bytes());
    }
    h
}

/// Appends `op`, stamped `time_ns`, as a record.
pub(super) fn push_op(out: &mut Vec<u8>, time_ns: u64, op: &Op) {
    let mut r = [0u8; OP_LEN];
    r[0] = OP;
    r[1..9].copy_from_slice(&time_ns.to_le_bytes());
    r[9..17].copy_from_slice(&op.process.to_le_bytes());
    r[17] = match op.kind {
        OpType::Invoke => 0,
        OpType::Ok => 1,
        OpType::Fail => 2,
        OpType::Info => 3,
    };
    r[18] = match op.f {
        OpF::Acquire => 0,
        OpF::Release => 1,
        OpF::Renew => 2,
        OpF::Write => 3,
    };
    r[19..23].copy_from_slice(&op.key.0.to_le_bytes());
    let mut flags = 0u8;
    if let Some(fence) = op.fence {
        flags |= 1;
        r[24..32].copy_from_slice(&fence.to_le_bytes());
    }
    if let Some(lease) = op.lease_ms {
        flags |= 2;
        r[32..40].copy_from_slice(&lease.to_le_bytes());
    }
    if let Some(accepted) = op.accepted {
        flags |= 4 | if accepted { 8 } else { 0 };
    }
    r[23] = flags;
    out.extend_from_slice(&r);
}

/// Appends a finished line as a record.
pub(super) fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    out.push(LINE);
    out.extend_from_slice(&(line.len() as u32).to_le_bytes());
    out.extend_from_slice(line);
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Hands each event of a segment to `each` as (index, history v1 line);
/// `line` is scratch space. A segment cut short gives its whole records;
/// one that is not a segment at all is an error.
pub fn read_segment(
    bytes: &[u8],
    line: &mut Vec<u8>,
    mut each: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    if !bytes.starts_with(MAGIC) {
        return Err(bad("not a lockbench spool segment (no LBSPOOL1 header)"));
    }
    let (Some(first), Some(count)) = (u64_at(bytes, 8), u32_at(bytes, 16)) else {
        // The header itself was cut: nothing was recorded in it yet.
        return Ok(());
    };
    let mut at = 20;
    let mut keys = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let Some(len) = u32_at(bytes, at) else {
            return Ok(());
        };
        let Some(key) = bytes.get(at + 4..at + 4 + len as usize) else {
            return Ok(());
        };
        keys.push(String::from_utf8_lossy(key).into_owned());
        at += 4 + len as usize;
    }
    let lines = OpLines::new(&keys);
    let mut index = first;
    while at < bytes.len() {
        match bytes[at] {
            OP => {
                let Some(r) = bytes.get(at..at + OP_LEN) else {
                    return Ok(());
                };
                let op = decode_op(r).ok_or_else(|| bad("a spool record is corrupt"))?;
                line.clear();
                lines.write(line, index, op.1, &op.0);
                each(index, line)?;
                at += OP_LEN;
            }
            LINE => {
                let Some(len) = u32_at(bytes, at + 1) else {
                    return Ok(());
                };
                let Some(text) = bytes.get(at + 5..at + 5 + len as usize) else {
                    return Ok(());
                };
                each(index, text)?;
                at += 5 + len as usize;
            }
            _ => return Err(bad("a spool record has an unknown tag")),
        }
        index += 1;
    }
    Ok(())
}

fn decode_op(r: &[u8]) -> Option<(Op, u64)> {
    let time_ns = u64_at(r, 1)?;
    let kind = match r[17] {
        0 => OpType::Invoke,
        1 => OpType::Ok,
        2 => OpType::Fail,
        3 => OpType::Info,
        _ => return None,
    };
    let f = match r[18] {
        0 => OpF::Acquire,
        1 => OpF::Release,
        2 => OpF::Renew,
        3 => OpF::Write,
        _ => return None,
    };
    let flags = r[23];
    let op = Op {
        process: u64_at(r, 9)?,
        kind,
        f,
        key: KeyId(u32_at(r, 19)?),
        fence: (flags & 1 != 0).then(|| u64_at(r, 24)).flatten(),
        lease_ms: (flags & 2 != 0).then(|| u64_at(r, 32)).flatten(),
        accepted: (flags & 4 != 0).then_some(flags & 8 != 0),
    };
    Some((op, time_ns))
}
