//! Export to Porcupine's operation form, so a history can
//! be cross-checked with Porcupine (github.com/anishathalye/porcupine).
//!
//! # The form
//!
//! Porcupine checks a `[]porcupine.Operation`, a Go struct with the fields
//! `ClientId int`, `Input any`, `Call int64`, `Output any`, `Return int64`.
//! [`write_porcupine`] writes one JSON array of such objects, with the field
//! names Go's `encoding/json` uses for that struct, one operation a line,
//! ordered by `Call` (then by the invoke's index):
//!
//! ```json
//! [
//! {"ClientId":1,"Input":{"op":"acquire","key":"k1","seq":0},"Call":1200,"Output":{"ok":true},"Return":1850},
//! {"ClientId":2,"Input":{"op":"acquire","key":"k1","seq":0},"Call":1300,"Output":{"ok":false,"unknown":true},"Return":9001},
//! {"ClientId":1,"Input":{"op":"release","key":"k1","seq":1},"Call":2400,"Output":{"ok":true,"was_held":false},"Return":2600}
//! ]
//! ```
//!
//! - `ClientId`: the client process id. `Call`/`Return`: `time_ns` of the
//!   invoke and of the completion (nanoseconds since the run started).
//! - `Input`: `op` is `acquire`, `release` or `crash`; `key` is the lock key
//!   (`""` for the single lock of a run without keys); `seq` numbers the
//!   client's operations on that key, crashes included (see below).
//! - `Output`: `ok` is `true` for an `ok` completion and `false` for `fail`;
//!   a release that said the lock was no longer the caller's carries
//!   `"was_held": false`. An operation that ended `info`, or never completed
//!   (in flight at a crash or at the end of the history), has
//!   `{"ok": false, "unknown": true}` and `Return` = the largest time in the
//!   history + 1: after every other operation, as Porcupine's documentation
//!   advises for operations whose outcome is unknown.
//! - A client crash (one `info` event `f = "crash"`) becomes one operation
//!   `{"op": "crash", "key": k}` with `Output {"ok": true}` and
//!   `Call = Return =` the crash time, for each key that client had used
//!   before it crashed, so a per-key partition sees it. A `lost` event (the
//!   client's library said its lock on `key` is gone) becomes the same
//!   operation for its one key.
//! - Writes, renews and nemesis events are left out: they do not change who
//!   holds a lock.
//!
//! # A matching model for Porcupine, in prose
//!
//! Partition the operations by `Input.key` (Porcupine's `Partition`
//! function), and check each part with a model whose state is the *set* of
//! possible holders (Porcupine handles nondeterminism by stepping sets of
//! states), initially {nobody}. For every state in the set, compute its
//! successors; the step fits when at least one successor exists:
//!
//! - acquire with `ok: true` by p: fits a state that is nobody or p, giving p;
//! - release with `ok: true` by p: fits state p, giving nobody; with
//!   `was_held: false` it fits any state, giving nobody if the state was p,
//!   else the same state;
//! - crash by p: fits any state; p becomes nobody, others stay;
//! - `ok: false` without `unknown`: the operation did not happen; the state
//!   stays;
//! - `unknown: true`: either the operation happened (the rules above, as if
//!   `ok: true`) or it did not (the state stays), so both successors.
//!
//! Porcupine orders a call before a return at the same instant, so an
//! `acquire` returning at the very time the previous holder invoked its
//! release is a clean hand-off, as in lockbench's own checkers. One
//! difference to expect: lockbench closes an unknown operation's window at
//! the same client's next operation on that key (see `check::linear`),
//! while here it stays open to the end.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Event, EventRef, F, FnRef, OpType, Process};
use crate::error::{Error, Result};

/// One `porcupine.Operation`, field names as Go's `encoding/json` writes
/// them.
#[derive(Debug, Serialize)]
#[allow(non_snake_case)]
struct Operation {
    ClientId: u64,
    Input: Value,
    Call: u64,
    Output: Value,
    Return: u64,
}

/// An invoke waiting for its completion.
struct Pending {
    f: F,
    key: String,
    index: u64,
    time_ns: u64,
    /// The client's number for this operation on its key.
    seq: u64,
}

fn inconsistent(e: &EventRef<'_>, message: String) -> Error {
    Error::HistoryParse {
        path: "<history>".into(),
        line: e.index as usize + 1,
        message,
    }
}

/// Turns events, pushed in file order, into operations. Each acquire or
/// release takes a place in `queue` at its invoke, so operations come out
/// in invoke order, each as soon as it and every earlier one is complete:
/// for a history in time order (every history lockbench records) that is
/// Porcupine's `Call` order, and memory holds only the operations still in
/// flight behind the oldest unfinished one.
struct Builder {
    /// The largest time in the history + 1: the `Return` of operations
    /// whose outcome is unknown.
    far: u64,
    /// Each process's invoke waiting for its completion, with its place in
    /// `queue` (acquire and release only).
    pending: HashMap<u64, (Pending, Option<u64>)>,
    /// The keys each process has acquired or released.
    used: HashMap<u64, Vec<String>>,
    /// The next `seq` per process and key.
    seqs: HashMap<(u64, String), u64>,
    /// Operations in invoke order; `None` until complete.
    queue: VecDeque<Option<(u64, Operation)>>,
    /// The place number of `queue[0]`.
    head: u64,
}

fn unknown() -> Value {
    json!({"ok": false, "unknown": true})
}

impl Builder {
    fn new(far: u64) -> Self {
        Builder {
            far,
            pending: HashMap::new(),
            used: HashMap::new(),
            seqs: HashMap::new(),
            queue: VecDeque::new(),
            head: 0,
        }
    }

    fn next_seq(&mut self, p: u64, key: &str) -> u64 {
        let n = self.seqs.entry((p, key.to_string())).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// A new place at the end of the queue.
    fn reserve(&mut self) -> u64 {
        self.queue.push_back(None);
        self.head + self.queue.len() as u64 - 1
    }

    fn complete(&mut self, place: Option<u64>, p: u64, op: &Pending, output: Value, ret: u64) {
        let Some(place) = place else {
            return;
        };
        let slot = &mut self.queue[(place - self.head) as usize];
        *slot = Some((
            op.index,
            Operation {
                ClientId: p,
                Input: json!({"op": op.f.as_str(), "key": op.key, "seq": op.seq}),
                Call: op.time_ns,
                Output: output,
                Return: ret,
            },
        ));
    }

    /// A complete operation at the end of the queue (crash, lost).
    fn push_done(&mut self, index: u64, op: Operation) {
        self.queue.push_back(Some((index, op)));
    }

    /// The operations at the head of the queue that are complete.
    fn ready(&mut self, mut each: impl FnMut(u64, Operation) -> Result<()>) -> Result<()> {
        while let Some(Some(_)) = self.queue.front() {
            if let Some(Some((index, op))) = self.queue.pop_front() {
                self.head += 1;
                each(index, op)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, e: &EventRef<'_>) -> Result<()> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        if e.f == FnRef::Lost {
            let key = e.key;
            let seq = self.next_seq(p, key);
            self.push_done(
                e.index,
                Operation {
                    ClientId: p,
                    Input: json!({"op": "crash", "key": key, "seq": seq}),
                    Call: e.time_ns,
                    Output: json!({"ok": true}),
                    Return: e.time_ns,
                },
            );
            return Ok(());
        }
        if e.f == FnRef::Crash {
            if let Some((op, place)) = self.pending.remove(&p) {
                self.complete(place, p, &op, unknown(), self.far);
            }
            let keys = self.used.get(&p).cloned().unwrap_or_default();
            for key in keys {
                let seq = self.next_seq(p, &key);
                self.push_done(
                    e.index,
                    Operation {
                        ClientId: p,
                        Input: json!({"op": "crash", "key": key, "seq": seq}),
                        Call: e.time_ns,
                        Output: json!({"ok": true}),
                        Return: e.time_ns,
                    },
                );
            }
            return Ok(());
        }
        if e.kind == OpType::Invoke {
            if let Some((prev, _)) = self.pending.get(&p) {
                return Err(inconsistent(
                    e,
                    format!(
                        "process {p} invoked {} while its {} from event {} had not completed",
                        e.f.as_str(),
                        prev.f.as_str(),
                        prev.index
                    ),
                ));
            }
            let key = e.key.to_string();
            let mut seq = 0;
            let mut place = None;
            if matches!(e.f, FnRef::Acquire | FnRef::Release) {
                let keys = self.used.entry(p).or_default();
                if !keys.contains(&key) {
                    keys.push(key.clone());
                }
                seq = self.next_seq(p, &key);
                place = Some(self.reserve());
            }
            self.pending.insert(
                p,
                (
                    Pending {
                        f: e.f.owned(),
                        key,
                        index: e.index,
                        time_ns: e.time_ns,
                        seq,
                    },
                    place,
                ),
            );
            return Ok(());
        }
        let Some((op, place)) = self.pending.remove(&p) else {
            return Err(inconsistent(
                e,
                format!("process {p} completed {} without an invoke", e.f.as_str()),
            ));
        };
        if FnRef::of(&op.f) != e.f {
            return Err(inconsistent(
                e,
                format!(
                    "process {p} completed {} but had invoked {} at event {}",
                    e.f.as_str(),
                    op.f.as_str(),
                    op.index
                ),
            ));
        }
        let output = match e.kind {
            OpType::Ok => {
                if e.f == FnRef::Release && e.was_held == Some(false) {
                    json!({"ok": true, "was_held": false})
                } else {
                    json!({"ok": true})
                }
            }
            OpType::Fail => json!({"ok": false}),
            _ => unknown(),
        };
        let ret = if e.kind == OpType::Info {
            self.far
        } else {
            e.time_ns.max(op.time_ns)
        };
        self.complete(place, p, &op, output, ret);
        Ok(())
    }

    /// Ends the history: what is still in flight completes as unknown.
    fn finish(&mut self) {
        let pending: Vec<(u64, (Pending, Option<u64>))> = self.pending.drain().collect();
        for (p, (op, place)) in pending {
            self.complete(place, p, &op, unknown(), self.far);
        }
    }
}

/// Builds the operations, each with the index that orders ties.
fn operations(events: &[Event]) -> Result<Vec<(u64, Operation)>> {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by_key(|e| e.index);
    let far = events.iter().map(|e| e.time_ns).max().unwrap_or(0) + 1;
    let mut builder = Builder::new(far);
    for e in order {
        builder.push(&EventRef::of(e))?;
    }
    builder.finish();
    let mut out = Vec::new();
    builder.ready(|index, op| {
        out.push((index, op));
        Ok(())
    })?;
    out.sort_by_key(|(index, op)| (op.Call, *index));
    Ok(out)
}

/// Writes the array's operations one a line.
struct ArrayWriter<'a> {
    out: &'a mut dyn Write,
    first: bool,
}

impl ArrayWriter<'_> {
    fn start(out: &mut dyn Write) -> Result<ArrayWriter<'_>> {
        out.write_all(b"[").map_err(io)?;
        Ok(ArrayWriter { out, first: true })
    }

    fn op(&mut self, op: &Operation) -> Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })
            .map_err(io)?;
        self.first = false;
        serde_json::to_writer(&mut *self.out, op).map_err(|e| io(e.into()))
    }

    fn end(self) -> Result<()> {
        self.out.write_all(b"\n]\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::io("porcupine export", e)
}

/// Writes `events` (file order) as Porcupine operations to `out`: one JSON
/// array, one operation a line (the module doc gives the form). Fails on a
/// history whose structure is broken (a completion without an invoke, two
/// invokes in a row) and on a write error.
pub fn write_porcupine(events: &[Event], out: &mut dyn Write) -> Result<()> {
    let ops = operations(events)?;
    let mut array = ArrayWriter::start(out)?;
    for (_, op) in &ops {
        array.op(op)?;
    }
    array.end()
}

/// Writes the history file at `path` (plain or zstd) as Porcupine
/// operations, the same bytes as [`write_porcupine`] of its events, in
/// memory that does not grow with the history's length: a first pass
/// finds the largest time (the `Return` of unknown operations) and whether
/// the file is in time order; a second streams the operations out. A file
/// out of time order (hand-made, or merged) is sorted in memory instead.
pub fn write_porcupine_file(path: &Path, out: &mut dyn Write) -> Result<()> {
    let mut last: Option<(u64, u64)> = None;
    let mut ordered = true;
    let mut max_time = 0u64;
    super::stream_refs(path, |e| {
        max_time = max_time.max(e.time_ns);
        if let Some((index, time)) = last {
            ordered &= e.index > index && e.time_ns >= time;
        }
        last = Some((e.index, e.time_ns));
    })?;
    if !ordered {
        let events = super::read_jsonl(path)?.events;
        return write_porcupine(&events, out);
    }
    let mut builder = Builder::new(max_time + 1);
    let mut array = ArrayWriter::start(out)?;
    let mut failed = None;
    super::stream_refs(path, |e| {
        if failed.is_some() {
            return;
        }
        let step = builder
            .push(e)
            .and_then(|()| builder.ready(|_, op| array.op(&op)));
        if let Err(why) = step {
            failed = Some(why);
        }
    })?;
    if let Some(why) = failed {
        return Err(why);
    }
    builder.finish();
    builder.ready(|_, op| array.op(&op))?;
    array.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(index: u64, t: u64, p: Process, kind: OpType, f: F, key: &str) -> Event {
        let mut e = Event::new(t, p, kind, f);
        e.index = index;
        e.key = Some(key.to_string());
        e
    }

    fn export(events: &[Event]) -> Vec<Value> {
        let mut buf = Vec::new();
        write_porcupine(events, &mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        v.as_array().unwrap().clone()
    }

    use OpType::{Fail, Info, Invoke, Ok};
    use Process::{Client, Nemesis};

    /// The streamed export of a file is the in-memory export of its
    /// events, byte for byte: on histories with crashes, unknown outcomes,
    /// ties in time, in zstd and in plain form, and out of time order.
    #[test]
    fn streaming_a_file_gives_the_same_bytes() {
        use crate::history::synthetic::{SyntheticOptions, synthetic_history};
        let dir = tempfile::tempdir().unwrap();
        for seed in 0..12u64 {
            let o = SyntheticOptions {
                clients: 1 + seed % 5,
                keys: 1 + seed % 3,
                operations: 400,
                info: 0.1,
                fail: 0.1,
                crash: 0.02,
                same_time: 0.2,
                ..SyntheticOptions::default()
            };
            let mut events = synthetic_history(seed, &o);
            if seed == 11 {
                // Out of time order: the streamed path must notice.
                let n = events.len();
                events[n / 2].time_ns = 0;
            }
            let text = crate::history::synthetic::to_jsonl(&events);
            let plain = dir.path().join(format!("{seed}.jsonl"));
            std::fs::write(&plain, &text).unwrap();
            let zst = dir.path().join(format!("{seed}.jsonl.zst"));
            std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
            let mut expected = Vec::new();
            write_porcupine(&events, &mut expected).unwrap();
            for path in [&plain, &zst] {
                let mut streamed = Vec::new();
                write_porcupine_file(path, &mut streamed).unwrap();
                assert_eq!(
                    String::from_utf8(streamed).unwrap(),
                    String::from_utf8(expected.clone()).unwrap(),
                    "seed {seed}, {}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn operations_carry_go_field_names_times_and_outcomes() {
        let mut h = vec![
            ev(0, 10, Client(1), Invoke, F::Acquire, "a"),
            ev(1, 15, Client(2), Invoke, F::Acquire, "a"),
            ev(2, 20, Client(1), Ok, F::Acquire, "a"),
            ev(3, 25, Client(2), Fail, F::Acquire, "a"),
            ev(4, 30, Client(1), Invoke, F::Write, "a"),
            ev(5, 35, Client(1), Ok, F::Write, "a"),
            ev(
                6,
                40,
                Nemesis,
                Info,
                F::Fault("start-partition".into()),
                "a",
            ),
            ev(7, 50, Client(1), Invoke, F::Release, "a"),
            ev(8, 60, Client(1), Ok, F::Release, "a"),
            ev(9, 70, Client(2), Invoke, F::Acquire, "b"),
            ev(10, 80, Client(2), Info, F::Acquire, "b"),
        ];
        h[8].value = Some(json!({"was_held": false}));
        let ops = export(&h);
        assert_eq!(ops.len(), 4, "{ops:?}");
        let first = ops[0].as_object().unwrap();
        let mut fields: Vec<&str> = first.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["Call", "ClientId", "Input", "Output", "Return"]);
        assert_eq!(
            ops[0],
            json!({"ClientId": 1, "Input": {"op": "acquire", "key": "a", "seq": 0}, "Call": 10,
                   "Output": {"ok": true}, "Return": 20})
        );
        assert_eq!(ops[1]["Output"], json!({"ok": false}));
        assert_eq!(
            (&ops[1]["Call"], &ops[1]["Return"]),
            (&json!(15), &json!(25))
        );
        assert_eq!(
            ops[2]["Input"],
            json!({"op": "release", "key": "a", "seq": 1})
        );
        assert_eq!(ops[2]["Output"], json!({"ok": true, "was_held": false}));
        // Unknown: after every other operation.
        assert_eq!(ops[3]["Output"], json!({"ok": false, "unknown": true}));
        assert_eq!(ops[3]["Return"], json!(81));
        assert_eq!(ops[3]["Input"]["key"], "b");
    }

    #[test]
    fn a_crash_ends_the_pending_operation_and_frees_each_key_used() {
        let h = vec![
            ev(0, 1, Client(3), Invoke, F::Acquire, "a"),
            ev(1, 2, Client(3), Ok, F::Acquire, "a"),
            ev(2, 3, Client(3), Invoke, F::Acquire, "b"),
            ev(3, 9, Client(3), Info, F::Crash, ""),
            ev(4, 12, Client(4), Invoke, F::Acquire, "a"),
        ];
        let ops = export(&h);
        let crashes: Vec<&Value> = ops.iter().filter(|o| o["Input"]["op"] == "crash").collect();
        assert_eq!(crashes.len(), 2);
        for c in &crashes {
            assert_eq!((&c["Call"], &c["Return"]), (&json!(9), &json!(9)));
            assert_eq!(c["ClientId"], json!(3));
        }
        let inputs: Vec<&Value> = crashes.iter().map(|c| &c["Input"]).collect();
        assert_eq!(
            inputs,
            [
                &json!({"op": "crash", "key": "a", "seq": 1}),
                &json!({"op": "crash", "key": "b", "seq": 1})
            ]
        );
        // The acquire of b in flight at the crash, and 4's never completed.
        let unknown: Vec<&Value> = ops
            .iter()
            .filter(|o| o["Output"]["unknown"] == json!(true))
            .collect();
        assert_eq!(unknown.len(), 2);
        assert!(unknown.iter().all(|o| o["Return"] == json!(13)));
        let calls: Vec<u64> = ops.iter().map(|o| o["Call"].as_u64().unwrap()).collect();
        assert!(calls.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
    }

    #[test]
    fn an_empty_history_is_an_empty_array() {
        assert!(export(&[]).is_empty());
    }

    #[test]
    fn a_completion_without_invoke_is_an_error() {
        let h = vec![ev(0, 1, Client(1), Ok, F::Acquire, "a")];
        let mut buf = Vec::new();
        let err = write_porcupine(&h, &mut buf).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }
}
