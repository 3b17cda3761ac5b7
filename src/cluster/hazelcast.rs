//! Hazelcast members with the CP subsystem: three JVMs (`HazelcastMemberStarter`
//! from the Hazelcast jar the JVM drivers' build copies to
//! `drivers/java/target/hazelcast/`), on loopback, each with its own
//! directory and configuration, joined by an explicit TCP member list
//! (no multicast), ready when each member's health endpoint shows the whole
//! cluster. CP member count 3: the CP subsystem (Raft groups, FencedLock)
//! forms once the three have joined.
//!
//! Hazelcast multiplexes its protocols on the member port: the client
//! protocol, member-to-member traffic and the health check's HTTP
//! (`GET /hazelcast/health`). CP sessions here live 5 s after their last
//! heartbeat (one a second), against 300 s and 5 s by default, so a paused
//! client loses its locks within a short run. Jet is off, phone-home is off.
//!
//! The members start as a group (each needs the others' ports before it
//! starts): `start_members`; a killed member is started again from the same
//! configuration, and rejoins as a member without CP role (Hazelcast does not
//! promote it on its own), leaving the CP group 2 of 3.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    Installed, Launch, PortReservation, ServerProcess, require_binary, reserve_port,
    start_on_fresh_ports,
};
use crate::error::{Error, Result};

/// How long a group start may take (three cold JVMs on two cores, and the
/// join's settling time).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The members lockbench starts: the CP subsystem's minimum.
pub const MEMBERS: usize = 3;

/// The cluster name the members and the driver use.
pub const CLUSTER_NAME: &str = "lockbench";

/// CP session time-to-live, seconds (Hazelcast's default: 300).
pub const SESSION_TTL_S: u64 = 5;

/// `LOCKBENCH_HAZELCAST_JAR`, else the jar the JVM drivers' build copies
/// into this checkout.
fn jar() -> PathBuf {
    std::env::var_os("LOCKBENCH_HAZELCAST_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/drivers/java/target/hazelcast/hazelcast.jar"
            ))
        })
}

pub(super) fn locate() -> std::result::Result<Installed, String> {
    let java = require_binary("java")?;
    let jar = jar();
    if !jar.is_file() {
        return Err(format!(
            "{} (the JVM drivers' build copies it there: scripts/install-backends.sh, or set LOCKBENCH_HAZELCAST_JAR)",
            jar.display()
        ));
    }
    Ok(Installed {
        binary: java,
        extra: vec![jar],
    })
}

/// A member alone cannot form the CP subsystem.
pub(super) fn prepare(_installed: &Installed, _port: u16, data_dir: &Path) -> Result<Launch> {
    Err(Error::Backend {
        backend: "hazelcast".into(),
        endpoint: data_dir.display().to_string(),
        message: format!(
            "Hazelcast members start as a group of {MEMBERS} (the CP subsystem's minimum)"
        ),
    })
}

/// The configuration of the member on `port` of the group on `ports`.
fn config(port: u16, ports: &[u16]) -> String {
    let members: String = ports
        .iter()
        .map(|p| format!("        <member>127.0.0.1:{p}</member>\n"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<hazelcast xmlns="http://www.hazelcast.com/schema/config">
  <cluster-name>{CLUSTER_NAME}</cluster-name>
  <properties>
    <property name="hazelcast.phone.home.enabled">false</property>
    <property name="hazelcast.logging.type">jdk</property>
    <property name="hazelcast.wait.seconds.before.join">1</property>
    <property name="hazelcast.max.wait.seconds.before.join">2</property>
    <!-- Without it a member binds its one server socket (members,
         clients and the REST endpoint all come in there) to 0.0.0.0,
         whatever <interfaces> says: <interfaces> only picks the address
         it announces (Hazelcast reference manual, "System Properties",
         hazelcast.socket.bind.any, default true). -->
    <property name="hazelcast.socket.bind.any">false</property>
  </properties>
  <network>
    <rest-api enabled="true">
      <endpoint-group name="HEALTH_CHECK" enabled="true"/>
    </rest-api>
    <!-- Binds beside lockbench's reservation of the port (SO_REUSEADDR). -->
    <reuse-address>true</reuse-address>
    <port auto-increment="false">{port}</port>
    <interfaces enabled="true"><interface>127.0.0.1</interface></interfaces>
    <join>
      <auto-detection enabled="false"/>
      <multicast enabled="false"/>
      <tcp-ip enabled="true">
{members}      </tcp-ip>
    </join>
  </network>
  <jet enabled="false"/>
  <cp-subsystem>
    <cp-member-count>{MEMBERS}</cp-member-count>
    <session-time-to-live-seconds>{SESSION_TTL_S}</session-time-to-live-seconds>
    <session-heartbeat-interval-seconds>1</session-heartbeat-interval-seconds>
  </cp-subsystem>
</hazelcast>
"#
    )
}

/// The version the JVM drivers' build wrote beside the jar (`VERSION`).
fn version(jar: &Path) -> String {
    std::fs::read_to_string(jar.with_file_name("VERSION"))
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts `n` members (at least [`MEMBERS`]) as one cluster, each logging
/// into `log_dir`; returns them, ready, with the version.
pub(super) async fn start_members(
    n: usize,
    log_dir: &Path,
) -> Result<Vec<(ServerProcess, String)>> {
    if n < MEMBERS {
        return Err(Error::Backend {
            backend: "hazelcast".into(),
            endpoint: String::new(),
            message: format!("the CP subsystem needs {MEMBERS} members, not {n}"),
        });
    }
    let installed = locate().map_err(|why| Error::MissingServer {
        backend: "hazelcast".into(),
        binary: why,
        hint: super::ServerKind::Hazelcast.install_hint(),
    })?;
    start_on_fresh_ports("hazelcast cluster", || start_once(&installed, n, log_dir)).await
}

async fn start_once(
    installed: &Installed,
    n: usize,
    log_dir: &Path,
) -> Result<Vec<(ServerProcess, String)>> {
    // Each member holds its port for life (see `PortReservation`): a killed
    // member binds it again when the nemesis restarts it.
    let reserved = (0..n)
        .map(|_| reserve_port())
        .collect::<Result<Vec<PortReservation>>>()?;
    let ports: Vec<u16> = reserved.iter().map(PortReservation::port).collect();
    let version = version(&installed.extra[0]);
    let mut members = Vec::with_capacity(n);
    for (i, held) in reserved.into_iter().enumerate() {
        let port = held.port();
        let name = format!("hazelcast-{}", i + 1);
        let dir = tempfile::Builder::new()
            .prefix(&format!("lockbench-{name}-"))
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let cfg = dir.path().join("hazelcast.xml");
        std::fs::write(&cfg, config(port, &ports)).map_err(|e| Error::io(&cfg, e))?;
        let launch = Launch::new(&installed.binary)
            .args(["-Xms64m", "-Xmx256m", "-XX:+UseSerialGC"])
            .arg("-Djava.net.preferIPv4Stack=true")
            .arg(format!("-Dhazelcast.config={}", cfg.display()))
            // What Hazelcast asks for on Java 9 and later (it warns otherwise).
            .args([
                "--add-modules",
                "java.se",
                "--add-exports",
                "java.base/jdk.internal.ref=ALL-UNNAMED",
                "--add-opens",
                "java.base/java.lang=ALL-UNNAMED",
                "--add-opens",
                "java.base/sun.nio.ch=ALL-UNNAMED",
            ])
            .arg("-cp")
            .arg(&installed.extra[0])
            .arg("com.hazelcast.core.server.HazelcastMemberStarter");
        members.push(ServerProcess::spawn(&name, log_dir, port, dir, launch)?.holding(held));
    }
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    for member in &mut members {
        loop {
            if let Some(status) = member.exited() {
                return Err(member.exited_error(status));
            }
            let why = match health(&member.addr()).await {
                Ok(size) if size >= n => break,
                Ok(size) => format!("{size} of {n} members joined"),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(
                    member.start_error(format!("not serving after {START_TIMEOUT:?} ({why})"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(members.into_iter().map(|m| (m, version.clone())).collect())
}

/// The cluster size the member at `addr` sees, once it is active.
async fn health(addr: &str) -> std::result::Result<usize, String> {
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(
            format!("GET /hazelcast/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        // Hazelcast may keep the connection open: read the head, then as
        // many bytes as its Content-Length says (bounded).
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                });
                if length.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
            if reply.len() > 64 * 1024 {
                break;
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply).into_owned())
    };
    let reply = tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer to the health check within 2 s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("{addr}: health: {e}: {body:?}"))?;
    if v.get("nodeState").and_then(|s| s.as_str()) != Some("ACTIVE") {
        return Err(format!("{addr}: node not active: {body}"));
    }
    v.get("clusterSize")
        .and_then(serde_json::Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| format!("{addr}: health without clusterSize: {body}"))
}

/// Serving when the member is active; its version.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    health(addr).await?;
    Ok(version(&locate()?.extra[0]))
}
