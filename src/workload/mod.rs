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
