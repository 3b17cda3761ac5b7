//! The history: every operation every client did, in the order recorded.
//!
//! The format is docs/design.md's history v1: one JSON object a line, Jepsen's
//! model (`invoke` followed by `ok`, `fail` or `info`). A run can be checked
//! and reported again from its `history.jsonl` alone.

pub mod agent;
mod edn;
mod event;
mod event_ref;
pub mod porcupine;
mod reader;
mod recorder;
pub mod spool;
pub mod synthetic;

pub use agent::{AGENT_FILE, AgentClock, ClockSample};
pub use edn::{parse_edn, read_edn};
pub use event::{Event, F, OpType, Process};
pub use event_ref::{Edge, EventRef, FaultMark, FnRef, stream_refs};
pub use reader::{
    HISTORY_FILES, History, StreamStats, history_in, open_history, parse_jsonl, read_jsonl,
    stream_jsonl,
};
pub use recorder::{
    Clock, Finishing, HistoryFormat, KeyId, Op, OpF, Recorder, RecorderHandle, Recording,
};
