//! What a client does, and the resource the lock protects.
//!
//! Each client runs the cycle acquire → hold (and write its fence to the
//! protected resource) → release → think, until the run's end or its
//! operation budget. Every operation is an invoke and a completion in the
//! history, stamped from the run's one clock.

mod client;
mod resource;

pub use client::{ClientPlan, ClientSlot, ClientTask, run_client};
pub use resource::ProtectedResource;

/// What a holder does with the protected resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Write its fencing token once, at the end of the hold (the default).
    Fence,
    /// Read–modify–write a counter: read it, hold, write it back plus one.
    /// Lost increments show the damage a violation does.
    Counter,
}

/// How clients pick the key of each cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// A key drawn at random each cycle (contention spreads over the keys).
    Random,
    /// Client `i` always uses key `i mod keys` (with as many keys as
    /// clients: no contention at all).
    Own,
}
