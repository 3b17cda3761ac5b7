//! Scenarios: what to run, read from TOML and validated before anything
//! starts; and the runner that executes one.

mod duration;
mod nemesis;
mod runner;
mod spec;

pub use duration::{TimeDist, parse_duration};
pub use nemesis::{FAULTS, FaultKind, FaultSpec, ROLE_TARGETS, RandomSchedule, RandomTarget};
pub use runner::{RunOptions, RunOutcome, check_file, mix, run_backend};
pub use spec::{KeyChoice, Mode, Scenario, ScenarioError, Topology, Workload};
