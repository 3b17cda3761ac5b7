use std::io::BufRead;
use std::path::Path;

use super::Event;
use crate::error::{Error, Result};

/// A history read back from disk.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The events, in file order.
    pub events: Vec<Event>,
    /// True when the last line was cut off (the run was killed while
    /// writing); the events before it are intact.
    pub truncated: bool,
}

/// What streaming a history saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Events read.
    pub events: u64,
    /// Whether the last line was cut off.
    pub truncated: bool,
}

/// The first four bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The file names a run directory's history may have, preferred first.
pub const HISTORY_FILES: [&str; 2] = ["history.jsonl.zst", "history.jsonl"];

/// The history of a run directory: `history.jsonl.zst` or
/// `history.jsonl`, whichever is there (the first when both are); when
/// neither is, the plain name, so an error about it names what is missing.
pub fn history_in(run_dir: &Path) -> std::path::PathBuf {
    HISTORY_FILES
        .iter()
        .map(|name| run_dir.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| run_dir.join(HISTORY_FILES[1]))
}

/// Opens a history for reading, plain or zstd-compressed, told apart by
/// content (a zstd frame's magic number), not by name.
///
/// A compressed history cut short by a killed run (its last frame
/// unfinished) reads as the text decoded up to the cut: the line reader
/// then sees a prefix, exactly as for a plain file cut mid-line.
///
/// A run killed before the recorder's converter caught up also leaves spool
/// segments beside the file (`history::spool`): their events follow the
/// file's, so the prefix reaches the recorder's last flush.
pub fn open_history(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let text: Box<dyn BufRead + Send> = if head.starts_with(&ZSTD_MAGIC) {
        let decoder =
            zstd::stream::read::Decoder::with_buffer(reader).map_err(|e| Error::io(path, e))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, CutEnd(decoder)))
    } else {
        Box::new(reader)
    };
    let segments = super::spool::leftovers(path);
    if segments.is_empty() {
        return Ok(text);
    }
    Ok(Box::new(std::io::BufReader::with_capacity(
        1 << 16,
        Chain {
            text: Some(text),
            lines: 0,
            segments: segments.into(),
            out: Vec::new(),
            at: 0,
        },
    )))
}

/// A history file's whole lines, then the lines of the spool segments a
/// killed run left, from the first event the file does not have.
struct Chain {
    /// The file's text, until it ends.
    text: Option<Box<dyn BufRead + Send>>,
    /// Lines given from the file (its events' indexes are 0..lines).
    lines: u64,
    /// Segments still to read, in index order.
    segments: std::collections::VecDeque<std::path::PathBuf>,
    /// Bytes ready to give, from `at` on.
    out: Vec<u8>,
    at: usize,
}

impl Chain {
    /// Refills `out`; false at the end.
    fn refill(&mut self) -> std::io::Result<bool> {
        self.out.clear();
        self.at = 0;
        if let Some(text) = &mut self.text {
            // Whole lines only: a cut last line of the file is replaced by
            // the same event from the segments.
            let mut line = Vec::new();
            while self.out.len() < (1 << 16) {
                line.clear();
                if text.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
                    self.text = None;
                    break;
                }
                self.out.extend_from_slice(&line);
                self.lines += 1;
            }
            if !self.out.is_empty() {
                return Ok(true);
            }
        }
        while let Some(path) = self.segments.pop_front() {
            let Ok(bytes) = std::fs::read(&path) else {
                // Converted and deleted since it was listed: its events
                // are in the file already.
                continue;
            };
            let mut line = Vec::new();
            let (lines, out) = (&mut self.lines, &mut self.out);
            super::spool::read_segment(&bytes, &mut line, |index, text| {
                if index >= *lines {
                    out.extend_from_slice(text);
                    *lines = index + 1;
                }
                Ok(())
            })?;
            if !self.out.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl std::io::Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.out.len() && !self.refill()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A decoder whose unfinished last frame is the end of the stream: what a
/// killed writer left is a prefix, not an error. Corrupt data still is one.
struct CutEnd<R>(R);

impl<R: std::io::Read> std::io::Read for CutEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

/// Reads a history file (plain or zstd) into memory.
pub fn read_jsonl(path: &Path) -> Result<History> {
    let mut history = History::default();
    let stats = stream_jsonl(path, |e| history.events.push(e))?;
    history.truncated = stats.truncated;
    Ok(history)
}

/// Parses history v1 text; `path` is only used in error messages.
pub fn parse_jsonl(path: &Path, text: &str) -> Result<History> {
    let mut history = History::default();
    let stats = stream_lines(path, std::io::Cursor::new(text.as_bytes()), |e| {
        history.events.push(e)
    })?;
    history.truncated = stats.truncated;
    Ok(history)
}

/// Hands each event of a history file (plain or zstd) to `each`, in file
/// order, holding one line in memory at a time.
pub fn stream_jsonl(path: &Path, each: impl FnMut(Event)) -> Result<StreamStats> {
    stream_lines(path, open_history(path)?, each)
}

/// Hands each event of `reader` to `each`, in order.
fn stream_lines(
    path: &Path,
    reader: impl BufRead,
    mut each: impl FnMut(Event),
) -> Result<StreamStats> {
    read_lines(path, reader, |text| {
        each(serde_json::from_str::<Event>(text)?);
        Ok(())
    })
}

/// The one framing of history v1 text that every reader shares: each
/// non-blank line goes to `each`, which parses it; a line that does not
/// parse is an error naming the file and line, except a last line without
/// its newline, which is taken as the cut end of a killed run (the prefix
/// is still a history).
pub(super) fn read_lines(
    path: &Path,
    reader: impl BufRead,
    mut each: impl FnMut(&str) -> std::result::Result<(), serde_json::Error>,
) -> Result<StreamStats> {
    let mut stats = StreamStats::default();
    let cut = frame_lines(path, reader, |number, text, complete| {
        match each(text) {
            Ok(()) => stats.events += 1,
            Err(_) if !complete => {
                stats.truncated = true;
                return Ok(false);
            }
            Err(e) => return Err(line_error(path, number, &e)),
        }
        Ok(true)
    })?;
    stats.truncated |= cut;
    Ok(stats)
}

/// The error for line `number` that did not parse.
pub(super) fn line_error(path: &Path, number: usize, e: &serde_json::Error) -> Error {
    Error::HistoryParse {
        path: path.to_path_buf(),
        line: number,
        message: format!(
            "{e}; each line must be one history v1 event, e.g. \
             {{\"index\":0,\"time_ns\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}}"
        ),
    }
}

/// The framing alone: each non-blank line, trimmed, goes to `each` with
/// its line number and whether it ended with a newline (only the last
/// line of a cut file does not); `each` says whether to go on. A line that
/// is not UTF-8 is an error, or the cut end when it is that last line.
/// Returns whether the text ended cut that way.
pub(super) fn frame_lines(
    path: &Path,
    mut reader: impl BufRead,
    mut each: impl FnMut(usize, &str, bool) -> Result<bool>,
) -> Result<bool> {
    let mut raw = Vec::new();
    let mut number = 0usize;
    loop {
        raw.clear();
        let read = reader
            .read_until(b'\n', &mut raw)
            .map_err(|e| Error::io(path, e))?;
        if read == 0 {
            return Ok(false);
        }
        number += 1;
        let complete = raw.ends_with(b"\n");
        let line = match std::str::from_utf8(&raw) {
            Ok(line) => line,
            // A cut last line may end inside a character.
            Err(_) if !complete => return Ok(true),
            Err(e) => {
                return Err(Error::HistoryParse {
                    path: path.to_path_buf(),
                    line: number,
                    message: format!(
                        "not valid UTF-8 (at byte {} of the line); a history is UTF-8 text, \
                         one JSON event a line",
                        e.valid_up_to() + 1
                    ),
                });
            }
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if !each(number, text, complete)? {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{F, OpType, Process};

    #[test]
    fn round_trips_an_event() {
        let line = r#"{"index":3,"time_ns":10,"process":"nemesis","type":"info","f":"start-partition","value":{"targets":["h1"]}}"#;
        let h = parse_jsonl(Path::new("x"), &format!("{line}\n")).unwrap();
        let e = &h.events[0];
        assert_eq!(e.process, Process::Nemesis);
        assert_eq!(e.kind, OpType::Info);
        assert_eq!(e.f, F::Fault("start-partition".into()));
        assert_eq!(serde_json::to_string(e).unwrap(), line);
    }

    #[test]
    fn a_cut_last_line_is_a_truncated_prefix() {
        let text = "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}\n{\"index\":1,\"ti";
        let h = parse_jsonl(Path::new("x"), text).unwrap();
        assert_eq!(h.events.len(), 1);
        assert!(h.truncated);
    }

    #[test]
    fn a_bad_line_in_the_middle_names_its_line() {
        let text = "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"acquire\"}\n{oops}\n";
        let err = parse_jsonl(Path::new("h.jsonl"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("h.jsonl:2:"), "{err}");
    }

    #[test]
    fn an_unknown_type_is_an_error() {
        let text =
            "{\"index\":0,\"time_ns\":1,\"process\":1,\"type\":\"maybe\",\"f\":\"acquire\"}\n";
        assert!(parse_jsonl(Path::new("h"), text).is_err());
    }
}
