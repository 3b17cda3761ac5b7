//! lockbench: measures distributed locks on real servers.
//!
//! A scenario names backends, clients and timings; lockbench starts the
//! servers, lets the clients contend, records every operation in a history,
//! checks mutual exclusion from that history, and writes a report.
//!
//! # Layout
//!
//! One module per layer of the pipeline, in layer order: each uses only
//! the modules above it in this list (`tests/layers.rs` checks it).
//!
//! - [`error`]: the one error type, carrying plain data (file, line, names).
//! - [`duration`]: durations as scenarios write them; hold/think distributions.
//! - [`history`]: events, the recorder, the line reader, JSONL/EDN/Porcupine I/O.
//! - [`check`]: the checkers over a history (exclusion, ownership, fencing, liveness, linearizability).
//! - [`summary`]: `summary.json` and `matrix.json`, the contracts outside tools read.
//! - [`metrics`]: HDR histograms of latencies, counts and throughput.
//! - [`net`]: the per-link fault proxy and the clock skew library.
//! - [`cluster`]: real servers and replicated topologies on loopback, stopped however lockbench stops.
//! - [`backend`]: the [`LockBackend`]/[`LockClient`] traits and one file per lock recipe.
//! - [`workload`]: what a client does, and the protected resource.
//! - [`fault`]: the fault vocabulary and the nemesis that applies a scenario's faults.
//! - [`scenario`]: the TOML scenario read into the types above and validated.
//! - [`report`]: the HTML run page, the comparison and matrix pages, the baseline gate.
//! - [`run`]: orchestration: a scenario on a backend, the property matrix, the suite.
//!
//! The binary `lockbench` (in `src/bin/`) is a thin front end over these.

#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod cluster;
pub mod duration;
pub mod error;
pub mod fault;
pub mod history;
pub mod metrics;
pub mod net;
pub mod report;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod workload;

pub use backend::{LockBackend, LockClient, Outcome};
pub use check::{Checker, Verdict};
pub use error::{Error, Result};
