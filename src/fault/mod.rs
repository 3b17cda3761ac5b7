//! Faults: the nemesis that runs a scenario's timeline of network,
//! client and server faults against the cluster and the clients.

pub mod nemesis;
mod spec;

pub use spec::{
    FAULTS, FaultKind, FaultParams, FaultSpec, ParamError, ROLE_TARGETS, RandomSchedule,
    RandomTarget, SHARD_TARGETS, ToxiPlan, shard_target,
};
