//! ZooKeeper standalone: `java ... ZooKeeperServerMain zoo.cfg` from the
//! Debian jars (or an upstream tarball's `lib/`), bound to 127.0.0.1, ready
//! when the four-letter word `srvr` shows a `Mode:` line.
//!
//! ZooKeeper answers `ruok` with `imok` before it serves requests, so
//! readiness is `srvr`, which only reports `Mode:` once the server runs.
//!
//! The configuration keeps the server small and private: `tickTime` is
//! [`TICK`] so sessions may be as short as 2 × tick (the lease of the
//! `zookeeper` backends is the session timeout, which the server clamps to
//! 2..20 ticks); the AdminServer is off (it would bind port 8080); only the
//! four-letter words lockbench uses are allowed; and `maxClientCnxns=0`
//! lifts the default limit of 60 connections per client address, since every
//! simulated client connects from 127.0.0.1. `forceSync=no` writes the
//! transaction log without fsync, as lockbench runs PostgreSQL and MariaDB:
//! lockbench measures lock protocols, not the disk (a production ensemble
//! keeps the default, and each create and delete then waits for an fsync).

pub(super) mod ensemble;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Installed, Launch, require_binary};
use crate::error::{Error, Result};

/// How long a start may take (a cold JVM takes a few seconds).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's tick: session timeouts are negotiated within 2..20 ticks
/// (1 s .. 10 s here).
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// Where the Debian package puts its jars.
const DEBIAN_JARS: &str = "/usr/share/java";

pub(super) fn locate() -> std::result::Result<Installed, String> {
    let java = require_binary("java")?;
    Ok(Installed {
        binary: java,
        extra: classpath()?,
    })
}

/// ZooKeeper's jars in `lib` (3.9 as the install script fetches them into
/// `tools/zookeeper39/target/lib`), run with the `java` the drivers use.
pub(super) fn locate_built(lib: &Path) -> Option<Installed> {
    let java = require_binary("java").ok()?;
    let jars = server_jars(lib)?;
    Some(Installed {
        binary: java,
        extra: jars,
    })
}

/// Every jar in `lib`, sorted, if one of them is ZooKeeper's own.
fn server_jars(lib: &Path) -> Option<Vec<PathBuf>> {
    let mut jars: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jar"))
        .collect();
    let has_server = jars.iter().any(|j| {
        j.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("zookeeper-3"))
    });
    jars.sort();
    has_server.then_some(jars)
}

/// The jars the server needs. Debian's `zookeeper.jar` names its
/// dependencies in its manifest's `Class-Path`, so it is enough with a
/// logging binding; an upstream tarball needs every jar of its `lib/`.
fn classpath() -> std::result::Result<Vec<PathBuf>, String> {
    let debian = Path::new(DEBIAN_JARS).join("zookeeper.jar");
    if debian.is_file() {
        let mut jars = vec![debian];
        // SLF4J's simple binding writes the server's log to stdout, which
        // the process layer keeps in the run directory. Without it SLF4J
        // falls back to no logging (and says so once).
        let simple = Path::new(DEBIAN_JARS).join("slf4j-simple.jar");
        if simple.is_file() {
            jars.push(simple);
        }
        return Ok(jars);
    }
    let mut homes: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("ZOOKEEPER_HOME") {
        homes.push(PathBuf::from(home));
    }
    homes.push(PathBuf::from("/opt/zookeeper"));
    for home in homes {
        if let Some(jars) = server_jars(&home.join("lib")) {
            return Ok(jars);
        }
    }
    Err(format!(
        "zookeeper.jar (looked in {DEBIAN_JARS}, $ZOOKEEPER_HOME/lib and /opt/zookeeper/lib)"
    ))
}

/// The `zoo.cfg` for a standalone server on `port` keeping its data in
/// `data_dir`.
fn config(port: u16, data_dir: &Path) -> String {
    base_config(port, &data_dir.join("data"))
}

/// The settings every ZooKeeper server lockbench starts has, standalone or
/// in an ensemble: the short tick, loopback clients, no connection limit.
pub(super) fn base_config(client_port: u16, data: &Path) -> String {
    format!(
        "tickTime={tick}\n\
         dataDir={data}\n\
         clientPort={client_port}\n\
         clientPortAddress=127.0.0.1\n\
         maxClientCnxns=0\n\
         forceSync=no\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=srvr,ruok,stat\n",
        tick = TICK.as_millis(),
        data = data.display(),
    )
}

pub(super) fn prepare(installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
    let cfg = data_dir.join("zoo.cfg");
    std::fs::write(&cfg, config(port, data_dir)).map_err(|e| Error::io(&cfg, e))?;
    launch(
        installed,
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        &cfg,
    )
}

/// The JVM command line of a ZooKeeper server: `main` is
/// `ZooKeeperServerMain` (standalone) or `QuorumPeerMain` (ensemble).
pub(super) fn launch(installed: &Installed, main: &str, cfg: &Path) -> Result<Launch> {
    let classpath = std::env::join_paths(&installed.extra).map_err(|e| Error::Backend {
        backend: "zookeeper".into(),
        endpoint: cfg.display().to_string(),
        message: format!("bad classpath: {e}"),
    })?;
    Ok(Launch::new(&installed.binary)
        // A small heap and the serial collector: a test server holding a
        // few thousand nodes needs little, and starts faster.
        .args(["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC"])
        .arg("-Djava.net.preferIPv4Stack=true")
        .arg("-Dorg.slf4j.simpleLogger.logFile=System.out")
        .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
        .arg("-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS")
        .arg("-Dzookeeper.jmx.log4j.disable=true")
        .arg("-cp")
        .arg(classpath)
        .arg(main)
        .arg(cfg))
}

/// Sends the four-letter word `word` to `addr` and returns the reply (the
/// server closes the connection after it).
pub(super) async fn four_letter_word(
    addr: &str,
    word: &str,
) -> std::result::Result<String, String> {
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(word.as_bytes()).await?;
        let mut reply = Vec::new();
        // Bounded: a four-letter reply is a few hundred bytes.
        let mut limited = (&mut conn).take(64 * 1024);
        limited.read_to_end(&mut reply).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer to `{word}` within 2 s"))?
        .map_err(|e| format!("{addr}: {e}"))
}

/// The version in `srvr`'s first line, `Zookeeper version: 3.8.0-<git>,
/// built on ...`, without the build suffix (Debian's build leaves its git
/// placeholder unexpanded, `-${mvngit.commit.id}`; Apache's has the hash).
fn parse_version(srvr: &str) -> String {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Zookeeper version:"))
        .and_then(|v| v.split(',').next())
        .map(|v| {
            let v = v.trim();
            v.split_once('-').map_or(v, |(head, _)| head).to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Serving when `srvr` reports a mode (`standalone`, `leader`, ...).
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    let reply = four_letter_word(addr, "srvr").await?;
    if !reply.lines().any(|l| l.starts_with("Mode:")) {
        let first = reply.lines().next().unwrap_or("").trim();
        return Err(format!("{addr}: `srvr` shows no Mode: yet ({first:?})"));
    }
    Ok(parse_version(&reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_drops_the_build_suffix() {
        let srvr = "Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC\n\
                    Latency min/avg/max: 0/0.0/0\nMode: standalone\n";
        assert_eq!(parse_version(srvr), "3.8.0");
        let srvr = "Zookeeper version: 3.9.5-293c895a8d966a3ecb92872be4a1daf87d725da2, built on \
                    2026-02-11 20:18 UTC\nMode: standalone\n";
        assert_eq!(parse_version(srvr), "3.9.5");
        assert_eq!(parse_version("nothing"), "unknown");
    }

    #[test]
    fn config_is_private_and_small() {
        let cfg = config(12345, Path::new("/tmp/x"));
        assert!(cfg.contains("clientPort=12345\n"));
        assert!(cfg.contains("clientPortAddress=127.0.0.1\n"));
        assert!(cfg.contains("admin.enableServer=false\n"));
        assert!(cfg.contains("tickTime=500\n"));
        assert!(cfg.contains("dataDir=/tmp/x/data\n"));
    }
}
