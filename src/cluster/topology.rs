//! Replicated topologies (issue 5): a ZooKeeper ensemble and an etcd
//! cluster on loopback, with the traffic between servers through fault
//! proxies.
//!
//! SCAFFOLD: to be written.
