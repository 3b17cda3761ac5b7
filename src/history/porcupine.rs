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

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Event, F, OpType, Process};
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

fn inconsistent(e: &Event, message: String) -> Error {
    Error::HistoryParse {
        path: "<history>".into(),
        line: e.index as usize + 1,
        message,
    }
}

/// Builds the operations, each with the index that orders ties.
fn operations(events: &[Event]) -> Result<Vec<(u64, Operation)>> {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by_key(|e| e.index);
    let far = events.iter().map(|e| e.time_ns).max().unwrap_or(0) + 1;
    let unknown = || json!({"ok": false, "unknown": true});
    let lock_op = |p: u64, op: &Pending, output: Value, ret: u64| {
        matches!(op.f, F::Acquire | F::Release).then(|| {
            (
                op.index,
                Operation {
                    ClientId: p,
                    Input: json!({"op": op.f.as_str(), "key": op.key, "seq": op.seq}),
                    Call: op.time_ns,
                    Output: output,
                    Return: ret,
                },
            )
        })
    };
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut used: HashMap<u64, Vec<String>> = HashMap::new();
    let mut seqs: HashMap<(u64, String), u64> = HashMap::new();
    let mut next_seq = |p: u64, key: &str| {
        let n = seqs.entry((p, key.to_string())).or_insert(0);
        *n += 1;
        *n - 1
    };
    let mut out = Vec::new();
    for e in order {
        let Process::Client(p) = e.process else {
            continue;
        };
        if e.f == F::Lost {
            let key = e.key_or_default();
            out.push((
                e.index,
                Operation {
                    ClientId: p,
                    Input: json!({"op": "crash", "key": key, "seq": next_seq(p, key)}),
                    Call: e.time_ns,
                    Output: json!({"ok": true}),
                    Return: e.time_ns,
                },
            ));
            continue;
        }
        if e.f == F::Crash {
            if let Some(op) = pending.remove(&p) {
                out.extend(lock_op(p, &op, unknown(), far));
            }
            for key in used.get(&p).into_iter().flatten() {
                out.push((
                    e.index,
                    Operation {
                        ClientId: p,
                        Input: json!({"op": "crash", "key": key, "seq": next_seq(p, key)}),
                        Call: e.time_ns,
                        Output: json!({"ok": true}),
                        Return: e.time_ns,
                    },
                ));
            }
            continue;
        }
        if e.kind == OpType::Invoke {
            if let Some(prev) = pending.get(&p) {
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
            let key = e.key_or_default().to_string();
            let mut seq = 0;
            if matches!(e.f, F::Acquire | F::Release) {
                let keys = used.entry(p).or_default();
                if !keys.contains(&key) {
                    keys.push(key.clone());
                }
                seq = next_seq(p, &key);
            }
            pending.insert(
                p,
                Pending {
                    f: e.f.clone(),
                    key,
                    index: e.index,
                    time_ns: e.time_ns,
                    seq,
                },
            );
            continue;
        }
        let Some(op) = pending.remove(&p) else {
            return Err(inconsistent(
                e,
                format!("process {p} completed {} without an invoke", e.f.as_str()),
            ));
        };
        if op.f != e.f {
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
                let was_held = e
                    .value
                    .as_ref()
                    .and_then(|v| v.get("was_held"))
                    .and_then(Value::as_bool);
                if e.f == F::Release && was_held == Some(false) {
                    json!({"ok": true, "was_held": false})
                } else {
                    json!({"ok": true})
                }
            }
            OpType::Fail => json!({"ok": false}),
            _ => unknown(),
        };
        let ret = if e.kind == OpType::Info {
            far
        } else {
            e.time_ns.max(op.time_ns)
        };
        out.extend(lock_op(p, &op, output, ret));
    }
    for (p, op) in pending {
        out.extend(lock_op(p, &op, unknown(), far));
    }
    out.sort_by_key(|(index, op)| (op.Call, *index));
    Ok(out)
}

/// Writes `events` (file order) as Porcupine operations to `out`: one JSON
/// array, one operation a line (the module doc gives the form). Fails on a
/// history whose structure is broken (a completion without an invoke, two
/// invokes in a row) and on a write error.
pub fn write_porcupine(events: &[Event], out: &mut dyn Write) -> Result<()> {
    let ops = operations(events)?;
    let io = |e: std::io::Error| Error::io("porcupine export", e);
    out.write_all(b"[").map_err(io)?;
    for (i, (_, op)) in ops.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })
            .map_err(io)?;
        serde_json::to_writer(&mut *out, op).map_err(|e| io(e.into()))?;
    }
    out.write_all(b"\n]\n").map_err(io)?;
    out.flush().map_err(io)
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
