//! `redis-server`: no persistence, bound to 127.0.0.1, ready when it
//! answers `PING`; and the one-shot request (a fresh connection, one
//! command, bounded) that Sentinel's readiness and discovery use.

pub mod cluster;
pub mod sentinel;

use std::path::Path;
use std::time::Duration;

use super::{Installed, Launch, require_binary};
use crate::error::Result;

/// How long a start may take.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) fn locate() -> std::result::Result<Installed, String> {
    Ok(Installed {
        binary: require_binary("redis-server")?,
        extra: Vec::new(),
    })
}

pub(super) fn prepare(installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
    Ok(Launch::new(&installed.binary)
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        // No RDB, no AOF: a restart loses every key, as the Redis docs
        // warn for locks on a server without persistence.
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "no"])
        .arg("--dir")
        .arg(data_dir))
}

/// Asks the server at `addr` for `PING` and its version.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
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

/// Opens a connection to `addr` (requests on it time out after
/// `op_timeout`) and sends `cmd`, both within `step`.
pub(crate) async fn connect_and_query<T: redis::FromRedisValue>(
    addr: &str,
    cmd: &redis::Cmd,
    step: Duration,
    op_timeout: Duration,
) -> std::result::Result<(redis::aio::MultiplexedConnection, T), String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(step))
        .set_response_timeout(Some(op_timeout));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let reply: T = cmd.query_async(&mut conn).await?;
        Ok::<_, redis::RedisError>((conn, reply))
    };
    tokio::time::timeout(step, attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within {step:?}"))?
        .map_err(|e| format!("{addr}: {e}"))
}

/// One request on a fresh connection, within `step`.
pub(crate) async fn query_once<T: redis::FromRedisValue>(
    addr: &str,
    cmd: &redis::Cmd,
    step: Duration,
    op_timeout: Duration,
) -> std::result::Result<T, String> {
    connect_and_query(addr, cmd, step, op_timeout)
        .await
        .map(|(_, reply)| reply)
}
