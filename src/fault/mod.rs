//! Faults: the proxy that stands on every client-to-server link, and the
//! nemesis that runs a scenario's timeline of network and server faults.

pub mod clock;
pub mod nemesis;
mod proxy;

pub use proxy::{Direction, LinkState, Proxy, Toxics};
