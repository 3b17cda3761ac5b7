//! `scripts/install-backends.sh --check`: passes where everything is
//! installed, and names a missing piece in one line with its fix.
//!
//! The missing pieces are made real, not simulated: a server binary left
//! out of `LOCKBENCH_BIN_DIRS`, and a copy of the real `protoc` in a
//! directory with no `include/` beside it, which is what a machine without
//! `libprotobuf-dev` has (protoc looks for the well-known types next to
//! its own binary).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What the check looks for, by binary name.
const BINARIES: &[&str] = &[
    "redis-server",
    "redis-cli",
    "memcached",
    "java",
    "etcd",
    "mariadbd",
    "mariadb-install-db",
    "postgres",
    "initdb",
    "ss",
    "chromium",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-backends.sh")
}

fn check(bin_dirs: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg("--check").env_remove("PROTOC");
    match bin_dirs {
        Some(d) => cmd.env("LOCKBENCH_BIN_DIRS", d),
        None => cmd.env_remove("LOCKBENCH_BIN_DIRS"),
    };
    cmd.output().expect("run the install script's check")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Everything installed on this machine; `None` (test skipped) when a
/// piece is missing here and backends are not required.
fn all_installed() -> Option<Vec<PathBuf>> {
    let mut found = Vec::new();
    for b in BINARIES.iter().chain(["protoc"].iter()) {
        if !common::server_available(b) {
            return None;
        }
        found.push(lockbench::cluster::find_binary(b)?);
    }
    Some(found)
}

/// A bin directory with every piece linked in except `leave_out`, and
/// protoc copied (so that it finds its includes only if `with_includes`).
fn bin_dir(root: &Path, leave_out: Option<&str>, with_includes: bool) -> PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    for b in BINARIES {
        if Some(*b) == leave_out {
            continue;
        }
        let real = lockbench::cluster::find_binary(b).expect("installed");
        std::os::unix::fs::symlink(real, bin.join(b)).expect("symlink");
    }
    let protoc = lockbench::cluster::find_binary("protoc").expect("installed");
    let protoc = std::fs::canonicalize(protoc).expect("protoc's real path");
    if with_includes {
        std::os::unix::fs::symlink(&protoc, bin.join("protoc")).expect("symlink protoc");
    } else {
        std::fs::copy(&protoc, bin.join("protoc")).expect("copy protoc");
    }
    bin
}

#[test]
fn the_check_passes_where_everything_is_installed() {
    if all_installed().is_none() {
        return;
    }
    let o = check(None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("everything lockbench needs is here"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_hidden_server_binary_is_one_line_with_its_fix() {
    if all_installed().is_none() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let bin = bin_dir(root.path(), Some("redis-server"), true);
    let o = check(Some(&bin));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let missing: Vec<&str> = out.lines().filter(|l| l.contains("MISSING")).collect();
    assert_eq!(missing.len(), 1, "{out}");
    assert!(missing[0].contains("redis-server not found"), "{out}");
    assert!(missing[0].contains("apt-get install redis-server"), "{out}");
}

#[test]
fn protoc_without_its_includes_is_one_line_with_its_fix() {
    if all_installed().is_none() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let bin = bin_dir(root.path(), None, false);
    let o = check(Some(&bin));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let missing: Vec<&str> = out.lines().filter(|l| l.contains("MISSING")).collect();
    assert_eq!(missing.len(), 1, "{out}");
    assert!(
        missing[0].contains("google/protobuf/descriptor.proto"),
        "{out}"
    );
    assert!(
        missing[0].contains("apt-get install libprotobuf-dev"),
        "{out}"
    );
}
