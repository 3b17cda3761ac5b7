//! `mariadbd`: Debian's MariaDB, a throwaway instance made by
//! `mariadb-install-db` in the data directory, bound to 127.0.0.1, ready
//! when `SELECT VERSION()` answers over TCP.
//!
//! `mariadb-install-db --auth-root-authentication-method=normal` creates
//! `root@localhost` and `root@127.0.0.1` with an empty password, so clients
//! log in over TCP as `root` with no password. mariadbd refuses to run as
//! root unless told `--user=root`; it is told so when lockbench is root.
//! Buffers are small and commits are written to the OS but not fsynced
//! (`innodb_flush_log_at_trx_commit=2`): a killed *process* loses nothing
//! committed, a crashed machine could, which a benchmark does not simulate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::{Installed, Launch, require_binary};
use crate::error::{Error, Result};

/// How long a start may take (`mariadb-install-db` runs before, in
/// `prepare`: about 1 s here).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The user clients log in as (empty password); the backends in
/// `backend::mysql` log in the same way.
const USER: &str = "root";

pub(super) fn locate() -> std::result::Result<Installed, String> {
    Ok(Installed {
        binary: require_binary("mariadbd")?,
        extra: vec![require_binary("mariadb-install-db")?],
    })
}

fn error(message: impl Into<String>) -> Error {
    Error::Backend {
        backend: "mariadb".into(),
        endpoint: String::new(),
        message: message.into(),
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Options both the install (bootstrap) and the server take, so the files
/// the install writes fit the server that opens them.
/// Temporary tables go under the instance's own directory: with the shared
/// /tmp, concurrent bootstraps were seen to trip over each other's
/// `#sql-temptable-*` files and fail.
fn common_args(data_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["--no-defaults".into()];
    let mut datadir = std::ffi::OsString::from("--datadir=");
    datadir.push(data_dir.join("data"));
    args.push(datadir);
    let mut tmpdir = std::ffi::OsString::from("--tmpdir=");
    tmpdir.push(data_dir.join("tmp"));
    args.push(tmpdir);
    if running_as_root() {
        args.push("--user=root".into());
    }
    args
}

pub(super) fn prepare(installed: &Installed, port: u16, data_dir: &Path) -> Result<Launch> {
    let install = installed
        .extra
        .first()
        .ok_or_else(|| error("mariadb-install-db not located"))?;
    let tmp = data_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let out = Command::new(install)
        .args(common_args(data_dir))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .output()
        .map_err(|e| error(format!("cannot run {}: {e}", install.display())))?;
    if !out.status.success() {
        return Err(error(format!(
            "{} failed ({}): {}{}",
            install.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut socket = std::ffi::OsString::from("--socket=");
    socket.push(data_dir.join("mysqld.sock"));
    let mut pid_file = std::ffi::OsString::from("--pid-file=");
    pid_file.push(data_dir.join("mariadbd.pid"));
    Ok(Launch::new(&installed.binary)
        .args(common_args(data_dir))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(socket)
        .arg(pid_file)
        .args([
            "--skip-name-resolve",
            // Clients are many short-lived simulated processes.
            "--max-connections=2000",
            "--innodb-buffer-pool-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--performance-schema=OFF",
            "--skip-log-bin",
            // No --log-error: errors go to stderr, which the process layer
            // writes into the run directory.
        ]))
}

/// Connection options for `addr` (`host:port`) as [`USER`] (`root` with
/// no password, as lockbench's MariaDB is installed; an external server
/// must allow it), over TCP. The lock backends connect with these too.
pub(crate) fn opts(addr: &str) -> std::result::Result<mysql_async::OptsBuilder, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr}: expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{addr}: bad port {port:?}"))?;
    Ok(mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(USER))
        // Over TCP, as the benchmark means; by default the client would
        // switch to the server's Unix socket when it finds one.
        .prefer_socket(false)
        // Saves a query at connect (the server's default is 28800 too).
        .wait_timeout(Some(28_800)))
}

/// Asks the server at `addr` for its version over TCP.
pub(super) async fn probe(addr: &str) -> std::result::Result<String, String> {
    let opts = opts(addr)?;
    let attempt = async {
        let mut conn = mysql_async::Conn::new(opts).await?;
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        let _ = conn.disconnect().await;
        Ok::<_, mysql_async::Error>(version)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .map_err(|_| format!("{addr}: no answer within 2 s"))?
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{addr}: SELECT VERSION() returned no row"))
}
