//! Faults: the proxy that stands on every client-to-server link.
//!
//! Later: the nemesis that drives it on a schedule, client crashes and
//! pauses, and server faults (see the issues).

mod proxy;

pub use proxy::{Direction, LinkState, Proxy, Toxics};
