//! Faults: the nemesis that runs a scenario's timeline of network,
//! client and server faults against the cluster and the clients.

pub mod nemesis;
mod spec;

pub use spec::{FAULTS, FaultKind, FaultSpec, ROLE_TARGETS, RandomSchedule, RandomTarget};
