//! Scenarios: what to run, read from TOML into the types of the layers
//! before it, and validated before anything starts.

pub mod atlas;
mod deployment;
mod nemesis;
mod spec;

pub use spec::{Mode, Scenario, ScenarioError};
