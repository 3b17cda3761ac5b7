//! The network and clock primitives faults are made of: the proxy that
//! stands on a link (blackhole, reset, latency, bandwidth, per direction),
//! the clock library preloaded into a server to skew its clock, and a
//! client of Toxiproxy's API for the proxies a user runs, and the time
//! reference agents measure their clocks against.
//!
//! Below the cluster layer: topologies put proxies between their members
//! and start members with the clock library; the nemesis drives both.

pub mod clock;
mod proxy;
pub mod timesync;
pub mod toxiproxy;

pub use proxy::{Direction, LinkState, Proxy, Toxics};
