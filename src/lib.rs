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
//! - [`check`]: the checkers over a history, composed into one guarded pass (exclusion,
//!   ownership, fencing, liveness), and linearizability.
//! - [`summary`]: `summary.json` and `matrix.json`, the contracts outside tools read.
//! - [`metrics`]: HDR histograms of latencies, counts and throughput.
//! - [`net`]: the per-link fault proxy and the clock skew library.
//! - [`cluster`]: real servers and replicated topologies on loopback, stopped however lockbench stops.
//! - [`backend`]: the [`LockBackend`]/[`LockClient`] traits and one file per lock recipe.
//! - [`workload`]: what a client does, and the protected resource.
//! - [`fault`]: the fault vocabulary and the nemesis that applies a scenario's faults.
//! - [`probe`]: one lock property measured directly on a backend (the matrix's probes).
//! - [`scenario`]: the TOML scenario read into the types above and validated.
//! - [`report`]: the HTML run page, the comparison and matrix pages, the baseline gate.
//! - [`run`]: orchestration: a scenario on a backend, the property matrix, the suite.
//!
//! The binary `lockbench` (in `src/bin/`) is a thin front end over these.
//!
//! # Checking a lock from Rust
//!
//! [`run::harness`] runs lockbench's conformance checks and a contended,
//! checked run against any backend described as a
//! [`backend::BackendInfo`], from a crate's own tests. Here on `inproc`,
//! lockbench's in-process lock, which needs no server; a lock of your own
//! names the server it needs and how to build it over the servers'
//! endpoints (`examples/my_lock.rs` does it for a Redis lock):
//!
//! ```
//! use lockbench::run::harness;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> lockbench::Result<()> {
//! let lock = lockbench::backend::info("inproc").expect("a built-in backend").clone();
//! let report = harness::conformance(&lock).await?;
//! assert!(report.passed(), "{report}");
//!
//! let out = tempfile::tempdir().expect("a temporary directory");
//! let mut run = harness::Contended::in_dir(out.path());
//! run.duration = std::time::Duration::from_millis(500);
//! let summary = harness::contended(&lock, &run).await?;
//! assert_eq!(summary.verdict, lockbench::Verdict::Valid, "{:?}", summary.witnesses);
//! # Ok(())
//! # }
//! ```

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
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod workload;

pub use backend::{LockBackend, LockClient, Outcome};
pub use check::{Checker, Verdict};
pub use error::{Error, Result};
