//! `memcached`: TCP only, bound to 127.0.0.1, ready when it answers the
//! text-protocol `version` request.
//!
//! memcached keeps everything in memory: a restart (or a kill) loses every
//! key, and with it every lock. Its data directory is unused.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Installed, Launch, require_binary};
use crate::error::Result;

/// How long a start may take.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) fn locate() -> std::result::Result<Installed, String> {
    Ok(Installed {
        binary: require_binary("memcached")?,
        extra: Vec::new(),
    })
}

pub(super) fn prepare(installed: &Installed, port: u16, _data_dir: &Path) -> Result<Launch> {
    let mut launch = Launch::new(&installed.binary)
        .args(["-l", "127.0.0.1"])
        .args(["-p", &port.to_string()])
        // No UDP: it would need a second free port, and lockbench's
        // clients speak TCP only.
        .args(["-U", "0"]);
    // memcached refuses to start as root unless told which user to be;
    // staying root is what the other servers here do too.
    // SAFETY: geteuid(2) has no preconditions and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        launch = launch.args(["-u", "root"]);
    }
    Ok(launch)
}

/// Sends `version` to the server at `addr`; its version once it answers.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"version\r\n").await?;
        let mut line = String::new();
        BufReader::new(&mut stream).read_line(&mut line).await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 2 s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    match line.trim_end().strip_prefix("VERSION ") {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(format!("{addr}: unexpected answer to version: {line:?}")),
    }
}
