//! `postgres`: Debian's PostgreSQL, a throwaway cluster made by `initdb` in
//! the data directory, bound to 127.0.0.1, ready when a real query answers
//! over TCP.
//!
//! PostgreSQL refuses to run as root. When lockbench runs as root (CI
//! containers), `initdb` and `postgres` run as the `postgres` system user
//! that Debian's package creates, and the data directory is handed to it.
//! Otherwise they run as the current user.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::{Installed, Launch, require_binary};
use crate::error::{Error, Result};

/// How long a start may take (`initdb` runs before, in `prepare`).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The database user `initdb` creates and the clients log in as.
pub(crate) const USER: &str = "postgres";

pub(super) fn locate() -> std::result::Result<Installed, String> {
    let postgres = require_binary("postgres")?;
    let initdb = initdb_next_to(&postgres)?;
    Ok(Installed {
        binary: postgres,
        extra: vec![initdb],
    })
}

/// The `initdb` of the same installation as `postgres` (two major versions
/// side by side must not be mixed), else any on PATH.
fn initdb_next_to(postgres: &Path) -> std::result::Result<PathBuf, String> {
    if let Some(dir) = postgres.parent() {
        let p = dir.join("initdb");
        if p.is_file() {
            return Ok(p);
        }
    }
    require_binary("initdb")
}

fn error(message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "postgres".into(),
        endpoint: String::new(),
        message: message.into(),
    }
}

/// The uid and gid of the system user `name`, if it exists.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes into `pwd` and `buf`, both ours and sized as
    // passed; `result` points at `pwd` or is null. The reentrant variant
    // because several servers may be prepared on different threads.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            return None;
        }
        Some((pwd.pw_uid, pwd.pw_gid))
    }
}

/// Who runs the server: `None` for ourselves, or the `postgres` user when
/// we are root.
fn run_as() -> Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    system_user(USER).map(Some).ok_or_else(|| {
        error(
            "running as root, and PostgreSQL refuses root: the `postgres` system user \
             (created by Debian's postgresql package) is missing",
        )
    })
}

pub(super) fn prepare(installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
    let initdb = installed
        .extra
        .first()
        .ok_or_else(|| error("initdb not located"))?;
    let pgdata = data_dir.join("pgdata");
    let user = run_as()?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(data_dir, Some(uid), Some(gid))
            .map_err(|e| Error::io(data_dir, e))?;
    }
    let mut cmd = Command::new(initdb);
    cmd.arg("-D")
        .arg(&pgdata)
        .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"])
        // The C locale exists everywhere; the caller's LANG may not be
        // installed, and initdb fails on a missing locale.
        .args(["--locale", "C"])
        .env("LC_ALL", "C")
        // Our own directory: the postgres user may not be able to enter the
        // caller's working directory.
        .current_dir(data_dir);
    if let Some((uid, gid)) = user {
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
    }
    let out = cmd
        .output()
        .map_err(|e| error(format!("cannot run {}: {e}", initdb.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(error(format!(
            "initdb failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let mut launch = Launch::new(&installed.binary)
        .arg("-D")
        .arg(&pgdata)
        .args(["-p", &port.to_string()])
        .args(["-h", "127.0.0.1"])
        // The unix socket goes into our own directory, not the system's
        // /var/run/postgresql (which may not exist or be writable).
        .arg("-k")
        .arg(data_dir)
        // Speed over durability: the cluster is thrown away after the run.
        .args(["-c", "fsync=off"])
        .args(["-c", "shared_buffers=16MB"])
        // One connection per lock client, plus headroom.
        .args(["-c", "max_connections=200"])
        .args(["-c", "log_destination=stderr"])
        .env("LC_ALL", "C");
    launch.run_as = user;
    Ok(launch)
}

/// Connects over TCP as `postgres`, runs `SELECT version()`, and returns
/// `server_version`.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr}: not host:port"))?;
    let conninfo = format!("host={host} port={port} user={USER} dbname=postgres connect_timeout=2");
    let attempt = async {
        let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
        // The connection object does the I/O; it ends when `client` drops.
        let io = tokio::spawn(connection);
        let _ = client.query_one("SELECT version()", &[]).await?;
        let row = client.query_one("SHOW server_version", &[]).await?;
        let version: String = row.try_get(0)?;
        drop(client);
        let _ = io.await;
        Ok::<_, tokio_postgres::Error>(version)
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 3 s"))?
        .map_err(|e| format!("{addr}: {e}"))
}
