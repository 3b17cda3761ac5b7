//! Orchestration, the top of the pipeline: one scenario on one backend
//! (servers, clients, nemesis, history, check, summary, report), the
//! property matrix with its single-point-of-failure runs, the atlas (every
//! backend under every fault, repeated), and the suite of runs a
//! `lockbench run` command asks for.

pub mod agents;
mod atlas;
mod dry_run;
pub mod harness;
mod kubernetes;
pub mod merge;
mod properties;
mod runner;
mod spof;

pub use atlas::{AtlasRun, run_atlas};
pub use dry_run::dry_run;
pub use properties::{MatrixRun, run_matrix};
pub use runner::{RunOptions, RunOutcome, check_file, mix, run_backend, run_with};
