//! `redis-server`: no persistence, bound to 127.0.0.1, ready when it
//! answers `PING`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use super::{ServerKind, ServerProcess, ensure_installed};
use crate::error::Result;

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts one redis-server; returns it and its version.
pub async fn start(name: &str, log_dir: &Path) -> Result<(ServerProcess, String)> {
    let binary = ensure_installed("redis", ServerKind::Redis)?;
    let mut last_error = None;
    // A free port can be taken between our probe and the server's bind:
    // try a few ports before giving up.
    for _ in 0..3 {
        let mut server = ServerProcess::spawn(name, log_dir, |port, dir| {
            let mut cmd = Command::new(&binary);
            cmd.args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--daemonize", "no"])
                .args(["--protected-mode", "no"])
                .arg("--dir")
                .arg(dir);
            cmd
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.exited() {
                last_error = Some(server.start_error(format!("exited at start ({status})")));
                break;
            }
            if let Ok(v) = version(&server.addr()).await {
                return Ok((server, v));
            }
            if Instant::now() >= deadline {
                return Err(server.start_error(format!("not serving after {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Err(last_error.unwrap_or_else(|| crate::Error::Backend {
        backend: "redis".into(),
        endpoint: String::new(),
        message: "could not start".into(),
    }))
}

/// Asks the server at `addr` for `PING` and its version.
pub async fn version(addr: &str) -> std::result::Result<String, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        Ok::<_, redis::RedisError>(info)
    };
    let info = tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 2 s"))?
        .map_err(|e| e.to_string())?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into()))
}
