//! docs/design.md promises that every server lockbench starts listens on
//! 127.0.0.1 only, and the drivers of the lock libraries listen nowhere:
//! for the length of a run, nobody who can reach the machine may join or
//! talk to the servers whose locks are being measured (issue 35: the
//! Hazelcast members listened on 0.0.0.0).
//!
//! One test, alone in this binary so that every process below this one is
//! its own: it starts every server kind (as many of each as a backend
//! uses), every replicated topology and a client of every shipped lock
//! library (which starts its driver), all taken from the backend registry
//! so that a new kind, topology or library is covered without editing
//! this file, then reads the sockets of this process and of every process
//! below it from /proc and fails, naming the process and the address, on
//! a listening TCP or bound UDP socket that is not on a loopback address,
//! and on any listener of a driver.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use lockbench::backend::driver::HostPlace;
use lockbench::backend::{ClientConfig, LockClient, Registry};
use lockbench::cluster::{Cluster, ServerKind, descendants};

/// A socket that takes connections or datagrams from anyone who can reach
/// its address.
#[derive(Debug)]
struct Listener {
    proto: &'static str,
    addr: IpAddr,
    port: u16,
    inode: u64,
}

/// An address from /proc/net/{tcp,udp}[6]: each 32-bit word of the
/// address as the kernel prints it (`%08X` of the word in memory, so on
/// this little-endian machine its bytes come out reversed), then `:PORT`
/// in hex.
fn parse_addr(text: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let addr = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(w.to_le_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].into_iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((addr, port))
}

/// The listening TCP sockets and bound, unconnected UDP sockets in the
/// network namespace of `pid`, by inode.
fn listeners(pid: u32) -> HashMap<u64, Listener> {
    let mut out = HashMap::new();
    for (file, proto, state) in [
        ("tcp", "tcp", "0A"),
        ("tcp6", "tcp6", "0A"),
        ("udp", "udp", "07"),
        ("udp6", "udp6", "07"),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != state {
                continue;
            }
            let (Some((addr, port)), Ok(inode)) = (parse_addr(cols[1]), cols[9].parse::<u64>())
            else {
                continue;
            };
            out.insert(
                inode,
                Listener {
                    proto,
                    addr,
                    port,
                    inode,
                },
            );
        }
    }
    out
}

/// The socket inodes `pid` has open.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            t.parse().ok()
        })
        .collect()
}

fn is_loopback(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// `pid`'s command line, for the message.
fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.trim().chars().take(160).collect()
}

/// What is wrong with the sockets of `pids`: a non-loopback listener of
/// any of them, and any listener at all of a process in `listen_nowhere`.
fn offences(pids: &[u32], listen_nowhere: &BTreeSet<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for &pid in pids {
        let table = listeners(pid);
        for inode in socket_inodes(pid) {
            let Some(l) = table.get(&inode) else { continue };
            let why = if !is_loopback(l.addr) {
                "not on a loopback address"
            } else if listen_nowhere.contains(&pid) {
                "a driver should listen nowhere"
            } else {
                continue;
            };
            found.push(format!(
                "pid {pid} ({}) listens on {} {}:{} (inode {}): {why}",
                cmdline(pid),
                l.proto,
                l.addr,
                l.port,
                l.inode
            ));
        }
    }
    found
}

/// The two tests of this binary take turns: the first opens a listener on
/// every interface in this process, which the second would see.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn the_parser_reads_the_kernels_address_forms() {
    let _alone = ALONE.blocking_lock();
    assert_eq!(
        parse_addr("0100007F:1F90"),
        Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 8080))
    );
    assert_eq!(
        parse_addr("00000000:0016"),
        Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 22))
    );
    assert_eq!(
        parse_addr("00000000000000000000000001000000:0050"),
        Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 80))
    );
    assert_eq!(
        parse_addr("0000000000000000FFFF00000100007F:0050"),
        Some((IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()), 80))
    );
    assert!(is_loopback(IpAddr::V6(
        Ipv4Addr::LOCALHOST.to_ipv6_mapped()
    )));
    assert!(!is_loopback(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
    // The check sees a listener on every interface: this process's own.
    let wide = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let me = std::process::id();
    let seen = offences(&[me], &BTreeSet::new());
    let port = wide.local_addr().unwrap().port();
    assert!(
        seen.iter().any(|o| o.contains(&format!("0.0.0.0:{port}"))),
        "{seen:?}"
    );
    drop(wide);
    let narrow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(offences(&[me], &BTreeSet::new()).is_empty());
    assert_eq!(offences(&[me], &BTreeSet::from([me])).len(), 1);
    drop(narrow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_and_driver_lockbench_starts_listens_on_loopback_only() {
    let _alone = ALONE.lock().await;
    let registry = Registry::builtin();
    // Every kind, with as many servers as any backend uses of it.
    let mut counts: BTreeMap<&str, (ServerKind, BTreeSet<usize>)> = BTreeMap::new();
    for b in registry.iter() {
        if let Some(kind) = b.server {
            counts
                .entry(kind.name())
                .or_insert((kind, BTreeSet::new()))
                .1
                .insert(b.servers.max(1));
        }
    }
    for kind in ServerKind::ALL {
        assert!(
            counts.contains_key(kind.name()),
            "no backend uses {kind:?}: this test would not start it"
        );
        if !common::kind_available(kind) {
            return;
        }
    }
    for b in registry.iter() {
        if let Some((path, hint)) = b.missing() {
            assert!(
                !common::backends_required(),
                "{}: {path} is missing; {hint}",
                b.name
            );
            eprintln!("skipped: {}: {path} is missing", b.name);
            return;
        }
    }
    let logs = tempfile::tempdir().unwrap();
    let mut clusters: BTreeMap<(String, usize), Cluster> = BTreeMap::new();
    for (name, (kind, sizes)) in &counts {
        for &n in sizes {
            let cluster = Cluster::start(*kind, n, logs.path())
                .await
                .unwrap_or_else(|e| panic!("{name} ×{n}: {e}"));
            clusters.insert((name.to_string(), n), cluster);
        }
    }
    let mut shapes = Vec::new();
    for b in registry.iter() {
        for shape in [b.replicated, b.clustered].into_iter().flatten() {
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
    }
    let mut replicated = Vec::new();
    for shape in shapes {
        let cluster = Cluster::start_replicated(shape, logs.path())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", shape.describe()));
        replicated.push(cluster);
    }
    // Everything below this process now is a server (sentinels and
    // members included) or a server's child; what appears when the clients
    // are made is a driver.
    let me = std::process::id();
    let servers: BTreeSet<u32> = descendants(me).into_iter().collect();
    assert!(
        clusters
            .values()
            .chain(&replicated)
            .flat_map(|c| c.pids())
            .all(|p| servers.contains(&p)),
        "a server is not below this process"
    );
    // A client of every library: its driver process starts with it.
    let mut clients: Vec<Box<dyn LockClient>> = Vec::new();
    let mut backends = Vec::new();
    for b in registry.iter().filter(|b| b.driver.is_some()) {
        let kind = b.server.expect("a library needs a server");
        let cluster = &clusters[&(kind.name().to_string(), b.servers.max(1))];
        let place = HostPlace {
            host: 1,
            log_dir: logs.path().to_path_buf(),
        };
        let backend = b
            .build_for(cluster.endpoints(), place)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let config = ClientConfig {
            id: 0,
            seed: 1,
            op_timeout: Duration::from_secs(2),
        };
        clients.push(
            backend
                .client(config)
                .await
                .unwrap_or_else(|e| panic!("{}: client: {e}", b.name)),
        );
        backends.push(backend);
    }
    let all = descendants(me);
    let drivers: BTreeSet<u32> = all
        .iter()
        .copied()
        .filter(|p| !servers.contains(p))
        .collect();
    assert!(
        drivers.len() >= backends.len(),
        "{} driver processes for {} libraries",
        drivers.len(),
        backends.len()
    );
    let mut pids = vec![me];
    pids.extend(&all);
    let found = offences(&pids, &drivers);
    eprintln!(
        "checked {} processes: {} servers (and their children), {} drivers, and this one",
        pids.len(),
        servers.len(),
        drivers.len()
    );
    drop(clients);
    drop(backends);
    for mut c in clusters.into_values().chain(replicated) {
        c.stop();
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
