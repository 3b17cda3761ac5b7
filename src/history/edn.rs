//! Jepsen's `history.edn` for lock workloads, read into history v1 events.
//!
//! Jepsen writes one operation map per line (or a vector of them):
//! `{:type :invoke, :f :acquire, :value nil, :process 0, :time 1234, :index 0}`.
//! `:process` is an integer or `:nemesis`; `:time` is in nanoseconds;
//! `:value` names the lock (nil, or absent, means the one lock of the test).
//! A process whose operation ended `:info` has crashed (Jepsen gives the
//! next operation of that thread a new process number), so a `crash` event
//! follows every client `:info` completion.

use std::path::Path;

use super::{Event, F, History, OpType, Process};
use crate::error::{Error, Result};

/// An EDN value, as far as Jepsen histories need.
#[derive(Debug, Clone, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Keyword(String),
    Symbol(String),
    Vector(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
}

impl Edn {
    fn get(&self, key: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(b) => b.to_string(),
            Edn::Int(i) => i.to_string(),
            Edn::Float(f) => f.to_string(),
            Edn::Str(s) => format!("{s:?}"),
            Edn::Keyword(k) => format!(":{k}"),
            Edn::Symbol(s) => s.clone(),
            Edn::Vector(_) => "a vector".into(),
            Edn::Map(_) => "a map".into(),
        }
    }
}

/// A parser over the whole text that knows its line for messages.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

type Parsed<T> = std::result::Result<T, (usize, String)>;

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Parsed<T> {
        Err((self.line, msg.into()))
    }

    /// Skips whitespace, commas (whitespace in EDN) and `;` comments.
    fn skip(&mut self) {
        while let Some(&c) = self.text.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' => self.pos += 1,
                b';' => {
                    while let Some(&c) = self.text.get(self.pos) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip();
        self.pos >= self.text.len()
    }

    fn value(&mut self) -> Parsed<Edn> {
        self.skip();
        let Some(&c) = self.text.get(self.pos) else {
            return self.err("unexpected end of file");
        };
        match c {
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                loop {
                    self.skip();
                    match self.text.get(self.pos) {
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Edn::Map(entries));
                        }
                        None => return self.err("a map is not closed with }"),
                        _ => {
                            let k = self.value()?;
                            let v = self.value()?;
                            entries.push((k, v));
                        }
                    }
                }
            }
            b'[' | b'(' => {
                let close = if c == b'[' { b']' } else { b')' };
                self.pos += 1;
                self.items(close).map(Edn::Vector)
            }
            b'#' => {
                // A set `#{...}` is read as a vector; a tagged value
                // (`#inst "..."`) as its value.
                self.pos += 1;
                if self.text.get(self.pos) == Some(&b'{') {
                    self.pos += 1;
                    return self.items(b'}').map(Edn::Vector);
                }
                let _tag = self.token();
                self.value()
            }
            b'"' => self.string(),
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return self.err("a keyword needs a name after ':'");
                }
                Ok(Edn::Keyword(t))
            }
            _ => {
                let t = self.token();
                if t.is_empty() {
                    return self.err(format!("unexpected character {:?}", c as char));
                }
                Ok(match t.as_str() {
                    "nil" => Edn::Nil,
                    "true" => Edn::Bool(true),
                    "false" => Edn::Bool(false),
                    _ => {
                        let num = t.trim_end_matches('N').trim_end_matches('M');
                        if let Ok(i) = num.parse::<i64>() {
                            Edn::Int(i)
                        } else if let Ok(f) = num.parse::<f64>() {
                            Edn::Float(f)
                        } else {
                            Edn::Symbol(t)
                        }
                    }
                })
            }
        }
    }

    /// Values up to `close`.
    fn items(&mut self, close: u8) -> Parsed<Vec<Edn>> {
        let mut items = Vec::new();
        loop {
            self.skip();
            match self.text.get(self.pos) {
                Some(&x) if x == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => {
                    return self.err(format!("a collection is not closed with {}", close as char));
                }
                _ => items.push(self.value()?),
            }
        }
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(&c) = self.text.get(self.pos) {
            if c.is_ascii_whitespace() || b",{}[]()\";".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.pos]).into_owned()
    }

    fn string(&mut self) -> Parsed<Edn> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.text.get(self.pos) else {
                return self.err("a string is not closed");
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(Edn::Str(String::from_utf8_lossy(&out).into_owned())),
                b'\\' => {
                    let Some(&e) = self.text.get(self.pos) else {
                        return self.err("a string ends in a backslash");
                    };
                    self.pos += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
}

/// Reads a Jepsen `history.edn` file (plain or zstd, by content).
pub fn read_edn(path: &Path) -> Result<History> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut super::reader::open_history(path)?, &mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let start = bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        Error::HistoryParse {
            path: path.to_path_buf(),
            line,
            message: format!(
                "not valid UTF-8 (at byte {} of the line); an EDN history is UTF-8 text",
                at - start + 1
            ),
        }
    })?;
    parse_edn(path, &text)
}

/// Parses Jepsen history text; `path` names it in errors.
pub fn parse_edn(path: &Path, text: &str) -> Result<History> {
    let bad = |line: usize, message: String| Error::HistoryParse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut p = Parser::new(text);
    let mut ops = Vec::new();
    while !p.at_end() {
        let line = p.line;
        match p.value().map_err(|(l, m)| bad(l, m))? {
            Edn::Vector(items) => ops.extend(items.into_iter().map(|v| (line, v))),
            v @ Edn::Map(_) => ops.push((line, v)),
            other => {
                return Err(bad(
                    line,
                    format!("expected an operation map, found {}", other.describe()),
                ));
            }
        }
    }
    let mut events = Vec::with_capacity(ops.len());
    for (line, op) in ops {
        let event = to_event(&op).map_err(|m| {
            bad(
                line,
                format!("{m}; a Jepsen lock operation looks like {{:type :invoke, :f :acquire, :process 0, :time 0}}"),
            )
        })?;
        let crashed = event.kind == OpType::Info && matches!(event.process, Process::Client(_));
        let (time, process) = (event.time_ns, event.process);
        events.push(event);
        if crashed {
            // Jepsen's convention: an operation that ended :info crashed
            // its process; it never acts again.
            events.push(Event::new(time, process, OpType::Info, F::Crash));
        }
    }
    // Re-number in file order: `:index` may be absent, and crashes were added.
    for (i, e) in events.iter_mut().enumerate() {
        e.index = i as u64;
    }
    Ok(History {
        events,
        truncated: false,
    })
}

fn to_event(op: &Edn) -> std::result::Result<Event, String> {
    if !matches!(op, Edn::Map(_)) {
        return Err(format!(
            "expected an operation map, found {}",
            op.describe()
        ));
    }
    let kind = match op.get("type") {
        Some(Edn::Keyword(t)) => match t.as_str() {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            other => {
                return Err(format!(
                    ":type :{other} is not :invoke, :ok, :fail or :info"
                ));
            }
        },
        Some(v) => return Err(format!(":type must be a keyword, not {}", v.describe())),
        None => return Err("missing :type".into()),
    };
    let process = match op.get("process") {
        Some(Edn::Int(n)) if *n >= 0 => Process::Client(*n as u64),
        Some(Edn::Keyword(k)) if k == "nemesis" => Process::Nemesis,
        Some(v) => {
            return Err(format!(
                ":process must be an integer or :nemesis, not {}",
                v.describe()
            ));
        }
        None => return Err("missing :process".into()),
    };
    let f = match op.get("f") {
        Some(Edn::Keyword(name)) | Some(Edn::Symbol(name)) | Some(Edn::Str(name)) => {
            match (process, name.as_str()) {
                (_, "acquire") => F::Acquire,
                (_, "release") => F::Release,
                (Process::Nemesis, other) => F::Fault(other.to_string()),
                (Process::Client(_), other) => {
                    return Err(format!(
                        ":f :{other} is not a lock operation (:acquire or :release)"
                    ));
                }
            }
        }
        Some(v) => return Err(format!(":f must be a keyword, not {}", v.describe())),
        None => return Err("missing :f".into()),
    };
    let time_ns = match op.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => *t as u64,
        Some(v) => {
            return Err(format!(
                ":time must be a non-negative integer (ns), not {}",
                v.describe()
            ));
        }
        None => return Err("missing :time".into()),
    };
    let mut e = Event::new(time_ns, process, kind, f);
    if let Some(Edn::Int(i)) = op.get("index") {
        e.index = (*i).max(0) as u64;
    }
    if matches!(process, Process::Client(_)) {
        e.key = match op.get("value") {
            None | Some(Edn::Nil) => None,
            Some(Edn::Str(s)) | Some(Edn::Keyword(s)) | Some(Edn::Symbol(s)) => Some(s.clone()),
            Some(Edn::Int(i)) => Some(i.to_string()),
            Some(v) => {
                return Err(format!(
                    ":value must name the lock (or be nil), not {}",
                    v.describe()
                ));
            }
        };
    } else if let Some(v) = op.get("value") {
        e.value = Some(serde_json::Value::String(v.describe()));
    }
    if let Some(Edn::Str(err)) | Some(Edn::Keyword(err)) = op.get("error") {
        e.error = Some(err.clone());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mistakes_name_their_line() {
        let e = parse_edn(Path::new("h.edn"), "{:type :ok :f :acquire :process 0 :time 1}\n{:type :done :f :acquire :process 0 :time 2}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("h.edn:2: :type :done"), "{e}");
        let e = parse_edn(Path::new("h.edn"), "{:type :ok :f :acquire\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not closed"), "{e}");
        let e = parse_edn(
            Path::new("h.edn"),
            "{:type :ok :f :write :process 0 :time 1}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a lock operation"), "{e}");
    }
}
