//! `etcd`: one member, a cluster of itself, on 127.0.0.1 only; ready when
//! it has a leader and answers a linearizable read.
//!
//! The client port is the one the cluster layer chose; the peer port is
//! picked here and baked into the launch, so a restart (same launch, same
//! data directory) comes back as the same member.
//!
//! Heartbeat 50 ms and election timeout 500 ms instead of etcd's 100 ms /
//! 1 s: etcd's smallest lease is ceil(1.5 × election timeout) seconds, so
//! this makes 1 s leases possible (the defaults make it 2 s), and a
//! restarted member elects itself sooner. With one member there is no
//! peer to lose, so the shorter timeout costs no stability.

pub(super) mod cluster;

use std::path::Path;
use std::time::Duration;

use super::{Installed, Launch, require_binary, reserve_port};
use crate::error::Result;

/// How long a start may take.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The member's name (one member per cluster).
const MEMBER: &str = "lockbench";

pub(super) fn locate() -> std::result::Result<Installed, String> {
    Ok(Installed {
        binary: require_binary("etcd")?,
        extra: Vec::new(),
    })
}

/// A build of etcd at `binary` (etcd 3.6 as the install script builds it),
/// if it is there.
pub(super) fn locate_built(binary: &Path) -> Option<Installed> {
    binary.is_file().then(|| Installed {
        binary: binary.to_path_buf(),
        extra: Vec::new(),
    })
}

pub(super) fn prepare(installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
    // Held for the server's life, as its client port is: etcd binds it
    // again after each restart.
    let peer_held = reserve_port()?;
    let peer = peer_held.port();
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    Ok(Launch::new(&installed.binary)
        .args(["--name", MEMBER])
        .arg("--data-dir")
        .arg(data_dir.join("member"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("{MEMBER}={peer_url}")])
        .args(["--initial-cluster-state", "new"])
        .args(["--heartbeat-interval", "50"])
        .args(["--election-timeout", "500"])
        // zap understands --log-level (capnslog, 3.4's default, does not).
        .args(["--logger", "zap"])
        .args(["--log-outputs", "stderr"])
        .args(["--log-level", "warn"])
        .holding(peer_held))
}

/// Asks the server at `addr` for its status (version, leader) and does a
/// linearizable read, which only answers once the member serves.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    let attempt = async {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        let mut client = etcd_client::Client::connect([format!("http://{addr}")], Some(options))
            .await
            .map_err(|e| e.to_string())?;
        let status = client.status().await.map_err(|e| e.to_string())?;
        if status.leader() == 0 {
            return Err(format!("{addr}: no leader yet"));
        }
        client
            .get("lockbench/probe", None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(status.version().to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 3 s"))?
}
