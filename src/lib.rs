//! lockbench: measures distributed locks on real servers.
//!
//! A scenario names backends, clients and timings; lockbench starts the
//! servers, lets the clients contend, records every operation in a history,
//! checks mutual exclusion from that history, and writes a report.
//!
//! # Layout
//!
//! - [`scenario`]: the TOML scenario, its validation (errors carry file and
//!   line), and the runner that takes one scenario and one backend to a run
//!   directory.
//! - [`cluster`]: real servers started from PATH on free loopback ports with
//!   temporary directories, stopped on drop, Ctrl-C, panic and SIGKILL; or
//!   external endpoints given by the user.
//! - [`backend`]: the [`LockBackend`]/[`LockClient`] traits and one file per
//!   lock recipe (`inproc`, `redis`, `redis-get-set`).
//! - [`workload`]: what a client does (acquire, hold and write to the
//!   protected resource, release, think) and the protected resource itself.
//! - [`fault`]: the per-link fault proxy (blackhole, reset, latency,
//!   bandwidth), healed without restarting anything.
//! - [`history`]: events, the recorder (bounded channel to a writer thread)
//!   and the JSONL reader.
//! - [`check`]: the [`Checker`] trait and the mutual-exclusion checker.
//! - [`metrics`]: HDR histograms of latencies, counts and throughput.
//! - [`summary`]: `summary.json`, the contract outside tools read.
//! - [`report`]: the self-contained `index.html` with SVG charts.
//! - [`properties`]: the property matrix (expiry, hand-off, reentrancy,
//!   fencing, server restart, latency, throughput) per backend.
//! - [`error`]: the library's error type.
//!
//! The binary `lockbench` (in `src/bin/`) is a thin front end over these.

#![warn(missing_docs)]

pub mod backend;
pub mod check;
pub mod cluster;
pub mod error;
pub mod fault;
pub mod history;
pub mod metrics;
pub mod properties;
pub mod report;
pub mod scenario;
pub mod summary;
pub mod workload;

pub use backend::{LockBackend, LockClient, Outcome};
pub use check::{Checker, Verdict};
pub use error::{Error, Result};
