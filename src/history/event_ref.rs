//! The borrowed view of an event that the checkers stream over, and the
//! fast reader that makes one from a history line without allocating for
//! the usual event (serde takes every line it is not sure of).

use std::path::Path;

use super::reader::{frame_lines, line_error};
use super::{Event, F, OpType, Process, StreamStats};
use crate::error::Result;

/// The function of an event, borrowed: what the checkers need of `F`
/// without allocating for each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FnRef<'a> {
    /// `acquire`.
    Acquire,
    /// `release`.
    Release,
    /// `renew`.
    Renew,
    /// `write` (the protected resource).
    Write,
    /// `crash`.
    Crash,
    /// `lost`.
    Lost,
    /// A fault's name (nemesis events).
    Fault(&'a str),
}

impl<'a> FnRef<'a> {
    /// The borrowed form of `f`.
    pub fn of(f: &'a F) -> Self {
        match f {
            F::Acquire => FnRef::Acquire,
            F::Release => FnRef::Release,
            F::Renew => FnRef::Renew,
            F::Write => FnRef::Write,
            F::Crash => FnRef::Crash,
            F::Lost => FnRef::Lost,
            F::Fault(name) => FnRef::Fault(name),
        }
    }

    /// The owned form: [`Self::of`] backwards.
    pub fn owned(self) -> F {
        match self {
            FnRef::Acquire => F::Acquire,
            FnRef::Release => F::Release,
            FnRef::Renew => F::Renew,
            FnRef::Write => F::Write,
            FnRef::Crash => F::Crash,
            FnRef::Lost => F::Lost,
            FnRef::Fault(name) => F::Fault(name.to_string()),
        }
    }

    /// The function called `name` in a history line.
    pub fn from_name(name: &'a str) -> Self {
        match name {
            "acquire" => FnRef::Acquire,
            "release" => FnRef::Release,
            "renew" => FnRef::Renew,
            "write" => FnRef::Write,
            "crash" => FnRef::Crash,
            "lost" => FnRef::Lost,
            other => FnRef::Fault(other),
        }
    }

    /// Its name in a history line.
    pub fn as_str(self) -> &'a str {
        match self {
            FnRef::Acquire => "acquire",
            FnRef::Release => "release",
            FnRef::Renew => "renew",
            FnRef::Write => "write",
            FnRef::Crash => "crash",
            FnRef::Lost => "lost",
            FnRef::Fault(name) => name,
        }
    }
}

/// One event as the checkers see it: borrowed, with the few parts of
/// `value` they read already picked out.
#[derive(Debug, Clone)]
pub struct EventRef<'a> {
    /// `index`.
    pub index: u64,
    /// `time_ns`.
    pub time_ns: u64,
    /// `process`.
    pub process: Process,
    /// `type`.
    pub kind: OpType,
    /// `f`.
    pub f: FnRef<'a>,
    /// `""` for the one lock of a run without keys.
    pub key: &'a str,
    /// `fence`.
    pub fence: Option<u64>,
    /// `lease_ms`.
    pub lease_ms: Option<u64>,
    /// `value.accepted` (writes).
    pub accepted: Option<bool>,
    /// `value.was_held` (releases).
    pub was_held: Option<bool>,
    /// `value.targets` as compact JSON, for nemesis events only.
    pub targets: String,
    /// For a nemesis event: the fault it starts or stops (`value.fault`
    /// and `value.edge`), if it says.
    pub mark: Option<FaultMark>,
}

/// Whether a nemesis event starts a fault or stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The fault begins (`"edge": "start"`).
    Start,
    /// The fault ends (`"edge": "stop"`).
    Stop,
}

/// What a nemesis event says of its fault: which fault (its name in
/// scenarios, `partition`), and whether this event starts or stops it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultMark {
    /// The fault's name.
    pub fault: String,
    /// Start or stop.
    pub edge: Edge,
}

impl FaultMark {
    /// Reads `value.fault` and `value.edge` of a nemesis event.
    fn of(v: &serde_json::Value) -> Option<FaultMark> {
        let edge = match v.get("edge")?.as_str()? {
            "start" => Edge::Start,
            "stop" => Edge::Stop,
            _ => return None,
        };
        let fault = v.get("fault")?.as_str()?.to_string();
        Some(FaultMark { fault, edge })
    }
}

impl<'a> EventRef<'a> {
    /// The borrowed view of an owned event.
    pub fn of(e: &'a Event) -> Self {
        let field = |name: &str| {
            e.value
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(serde_json::Value::as_bool)
        };
        let nemesis = e.process == Process::Nemesis;
        let targets = match e.value.as_ref().and_then(|v| v.get("targets")) {
            Some(t) if nemesis => t.to_string(),
            _ => String::new(),
        };
        let mark = e.value.as_ref().filter(|_| nemesis).and_then(FaultMark::of);
        EventRef {
            index: e.index,
            time_ns: e.time_ns,
            process: e.process,
            kind: e.kind,
            f: FnRef::of(&e.f),
            key: e.key_or_default(),
            fence: e.fence,
            lease_ms: e.lease_ms,
            accepted: field("accepted"),
            was_held: field("was_held"),
            targets,
            mark,
        }
    }
}

/// Hands each event of a `history.jsonl` file to `each` as a borrowed
/// [`EventRef`], in file order: each line is read by a small hand-written
/// parser that borrows from it, and by serde into an [`Event`] when it
/// holds anything the fast parser does not take (escapes, unknown fields,
/// odd values): serde then accepts it or gives the error
/// [`super::stream_jsonl`] would. The same framing as every reader
/// (`read_lines`): a cut last line is the end of a killed run.
pub fn stream_refs(path: &Path, mut each: impl FnMut(&EventRef<'_>)) -> Result<StreamStats> {
    let reader = super::reader::open_history(path)?;
    // Two stages on two threads: a helper decompresses and frames lines
    // into batches; this thread parses them and hands them to `each`. The
    // queue is short, so memory stays bounded; a consumer that stops
    // (on a bad line) drops its end and the helper stops too.
    let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(4);
    std::thread::scope(|scope| {
        let framing = std::thread::Builder::new()
            .name("lockbench-read".into())
            .spawn_scoped(scope, move || {
                let mut batch = Batch::default();
                let cut = frame_lines(path, reader, |number, text, complete| {
                    let start = batch.text.len();
                    batch.text.push_str(text);
                    batch
                        .lines
                        .push((start, batch.text.len(), number, complete));
                    if batch.lines.len() >= BATCH
                        && batches.send(std::mem::take(&mut batch)).is_err()
                    {
                        return Ok(false);
                    }
                    Ok(true)
                });
                if !batch.lines.is_empty() {
                    let _ = batches.send(batch);
                }
                cut
            });
        let framing = match framing {
            Ok(handle) => handle,
            Err(e) => return Err(crate::error::Error::io(path, e)),
        };
        let mut stats = StreamStats::default();
        let mut failed = None;
        'batches: for batch in received {
            for &(start, end, number, complete) in &batch.lines {
                let text = batch.text.get(start..end).unwrap_or("");
                if let Some(ev) = fast::parse(text) {
                    each(&ev);
                } else {
                    match serde_json::from_str::<Event>(text) {
                        Ok(event) => each(&EventRef::of(&event)),
                        Err(_) if !complete => {
                            stats.truncated = true;
                            break 'batches;
                        }
                        Err(e) => {
                            failed = Some(line_error(path, number, &e));
                            break 'batches;
                        }
                    }
                }
                stats.events += 1;
            }
        }
        let cut = framing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(e) = failed {
            return Err(e);
        }
        stats.truncated |= cut?;
        Ok(stats)
    })
}

/// Lines per batch between the framing thread and the parsing one.
const BATCH: usize = 4096;

/// A run of framed lines, owned, to cross threads: their text one after
/// the other, and each line's range, number and whether it was complete.
#[derive(Default)]
struct Batch {
    text: String,
    lines: Vec<(usize, usize, usize, bool)>,
}

/// The fast, borrowing reader of one history v1 line. It returns `None`
/// for anything it is not sure of, and the caller falls back to serde.
mod fast {
    use super::{EventRef, FaultMark, FnRef};
    use crate::history::{OpType, Process};

    struct P<'a> {
        text: &'a str,
        s: &'a [u8],
        i: usize,
    }

    impl<'a> P<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.s.get(self.i) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// `null`, consumed.
        fn null(&mut self) -> bool {
            self.ws();
            if self.s[self.i..].starts_with(b"null") {
                self.i += 4;
                true
            } else {
                false
            }
        }

        /// A string without escapes, borrowed.
        fn plain_str(&mut self) -> Option<&'a str> {
            self.eat(b'"')?;
            let start = self.i;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            let out = self.text.get(start..self.i)?;
            self.i += 1;
            Some(out)
        }

        /// Any string, skipped.
        fn skip_str(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => {
                        // Only JSON's escapes, as serde would insist.
                        match *self.s.get(self.i + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                            b'u' => {
                                let hex = self.s.get(self.i + 2..self.i + 6)?;
                                if !hex.iter().all(u8::is_ascii_hexdigit) {
                                    return None;
                                }
                                self.i += 6;
                            }
                            _ => return None,
                        }
                    }
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
        }

        fn u64(&mut self) -> Option<u64> {
            self.ws();
            let start = self.i;
            let mut v: u64 = 0;
            while let Some(c @ b'0'..=b'9') = self.s.get(self.i).copied() {
                v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
                self.i += 1;
            }
            let digits = self.i - start;
            if digits == 0 || (digits > 1 && self.s[start] == b'0') {
                return None;
            }
            match self.s.get(self.i) {
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(v),
            }
        }

        /// An object or array, skipped; its text (checked by serde later).
        fn compound(&mut self) -> Option<&'a str> {
            self.ws();
            let start = self.i;
            let mut depth = 0usize;
            loop {
                match *self.s.get(self.i)? {
                    b'"' => {
                        self.skip_str()?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            self.i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                self.i += 1;
            }
            self.text.get(start..self.i)
        }
    }

    /// What `read_value` takes from `value`.
    type Value = (Option<bool>, Option<bool>, String, Option<FaultMark>);

    /// Reads `value` the way `EventRef::of` does: the two flags, and the
    /// targets and fault mark of a nemesis event.
    fn read_value(text: &str, nemesis: bool) -> Option<Value> {
        match text {
            r#"{"accepted":true}"# => return Some((Some(true), None, String::new(), None)),
            r#"{"accepted":false}"# => return Some((Some(false), None, String::new(), None)),
            r#"{"was_held":false}"# => return Some((None, Some(false), String::new(), None)),
            r#"{"was_held":true}"# => return Some((None, Some(true), String::new(), None)),
            _ => {}
        }
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let flag = |name: &str| v.get(name).and_then(serde_json::Value::as_bool);
        if !nemesis {
            return Some((flag("accepted"), flag("was_held"), String::new(), None));
        }
        let targets = v.get("targets").map(|t| t.to_string()).unwrap_or_default();
        Some((
            flag("accepted"),
            flag("was_held"),
            targets,
            FaultMark::of(&v),
        ))
    }

    /// One line, or `None` when serde must decide.
    pub(super) fn parse(text: &str) -> Option<EventRef<'_>> {
        let mut p = P {
            text,
            s: text.as_bytes(),
            i: 0,
        };
        p.eat(b'{')?;
        let mut seen = 0u16;
        let (mut index, mut time_ns, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut key, mut fence, mut lease_ms, mut value) = (None, None, None, None);
        loop {
            let name = p.plain_str()?;
            p.eat(b':')?;
            let bit = match name {
                "index" => {
                    index = Some(p.u64()?);
                    1
                }
                "time_ns" => {
                    time_ns = Some(p.u64()?);
                    2
                }
                "process" => {
                    process = Some(if p.peek()? == b'"' {
                        (p.plain_str()? == "nemesis").then_some(Process::Nemesis)?
                    } else {
                        Process::Client(p.u64()?)
                    });
                    4
                }
                "type" => {
                    kind = Some(match p.plain_str()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return None,
                    });
                    8
                }
                "f" => {
                    f = Some(FnRef::from_name(p.plain_str()?));
                    16
                }
                "key" => {
                    if !p.null() {
                        key = Some(p.plain_str()?);
                    }
                    32
                }
                "fence" => {
                    if !p.null() {
                        fence = Some(p.u64()?);
                    }
                    64
                }
                "lease_ms" => {
                    if !p.null() {
                        lease_ms = Some(p.u64()?);
                    }
                    128
                }
                "value" => {
                    if !p.null() {
                        value = Some(p.compound()?);
                    }
                    256
                }
                "error" => {
                    if !p.null() {
                        p.skip_str()?;
                    }
                    512
                }
                _ => return None,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        p.ws();
        if p.i != p.s.len() {
            return None;
        }
        let process = process?;
        let (accepted, was_held, targets, mark) = match value {
            Some(v) => read_value(v, process == Process::Nemesis)?,
            None => (None, None, String::new(), None),
        };
        Some(EventRef {
            index: index?,
            time_ns: time_ns?,
            process,
            kind: kind?,
            f: f?,
            key: key.unwrap_or(""),
            fence,
            lease_ms,
            accepted,
            was_held,
            targets,
            mark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reader takes a line exactly as serde + `EventRef::of` would, or
    /// leaves it to serde.
    #[test]
    fn the_fast_reader_agrees_with_serde() {
        let same = [
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","key":"lock","lease_ms":30}"#,
            r#"{"index":1,"time_ns":2,"process":1,"type":"ok","f":"acquire","key":"lock","fence":7,"lease_ms":30}"#,
            r#"{"index":2,"time_ns":3,"process":1,"type":"ok","f":"write","key":"k","fence":7,"value":{"accepted":false}}"#,
            r#"{"index":3,"time_ns":4,"process":1,"type":"ok","f":"release","key":"k","value":{"was_held":false}}"#,
            r#"{"index":4,"time_ns":5,"process":"nemesis","type":"info","f":"start-partition","value":{"targets":["h1", "h2"],"x":{"y":[1,2]}}}"#,
            r#" { "index" : 5 , "time_ns":6,"process":2,"type":"fail","f":"acquire","key":"ключ","error":"held \"by\" \u00e9 other"} "#,
            r#"{"index":6,"time_ns":7,"process":2,"type":"info","f":"crash","key":null,"fence":null,"value":null,"error":null}"#,
            r#"{"index":7,"time_ns":8,"process":2,"type":"ok","f":"write","value":{"accepted":true,"note":"]}"}}"#,
        ];
        for line in same {
            let event: Event = serde_json::from_str(line.trim()).unwrap();
            let slow = format!("{:?}", EventRef::of(&event));
            let fast = fast::parse(line.trim()).map(|e| format!("{e:?}"));
            assert_eq!(fast.as_deref(), Some(slow.as_str()), "{line}");
        }
        let rejected = [
            r#"{"index":0,"time_ns":1,"process":"x","type":"invoke","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"maybe","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","extra":1}"#,
            r#"{"index":0,"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":0.5,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":-1,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":01,"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"time_ns":1,"process":1,"type":"invoke","f":"acquire"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire","error":"bad \q"}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"ok","f":"write","value":{"accepted":tru}}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire",}"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acquire"} x"#,
            r#"{"index":0,"time_ns":1,"process":1,"type":"invoke","f":"acq"#,
        ];
        for line in rejected {
            assert!(fast::parse(line).is_none(), "fast reader took {line}");
            assert!(
                serde_json::from_str::<Event>(line).is_err(),
                "serde took {line}"
            );
        }
    }
}
