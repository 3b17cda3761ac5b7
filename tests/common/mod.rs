//! Shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Whether `LOCKBENCH_REQUIRE_BACKENDS=1` (CI): a missing server fails the
/// test instead of skipping it.
pub fn backends_required() -> bool {
    std::env::var("LOCKBENCH_REQUIRE_BACKENDS").is_ok_and(|v| v == "1" || v == "true")
}

/// True if `binary` is installed. If not: panics under
/// `LOCKBENCH_REQUIRE_BACKENDS=1` (CI), else prints why the test is skipped.
pub fn server_available(binary: &str) -> bool {
    if lockbench::cluster::find_binary(binary).is_some() {
        return true;
    }
    if backends_required() {
        panic!(
            "{binary} is not installed and LOCKBENCH_REQUIRE_BACKENDS=1: run scripts/install-backends.sh"
        );
    }
    eprintln!("skipped: {binary} is not installed (scripts/install-backends.sh installs it)");
    false
}

/// True if everything a server kind needs is installed (ZooKeeper: java
/// and its jars); else as [`server_available`].
pub fn kind_available(kind: lockbench::cluster::ServerKind) -> bool {
    match kind.locate() {
        Ok(_) => true,
        Err(missing) => {
            if backends_required() {
                panic!("{missing} is not installed and LOCKBENCH_REQUIRE_BACKENDS=1");
            }
            eprintln!("skipped: {missing} is not installed");
            false
        }
    }
}

/// The lockbench binary built for these tests.
pub fn lockbench() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockbench"))
}

/// Runs `lockbench run` (with `flags` first) on a scenario (a path relative
/// to this repository, or absolute), writing under `out`; asserts it exits
/// 0 and returns stdout.
pub fn run_shipped_ok(scenario: &str, out: &Path, flags: &[&str]) -> String {
    let o = lockbench()
        .arg("run")
        .args(flags)
        .arg("--out")
        .arg(out)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario))
        .output()
        .expect("run lockbench");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// Writes a scenario file into `dir` and returns its path.
pub fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write scenario");
    path
}

/// The single run directory under `out/<scenario>/<backend>/`.
pub fn run_dir(out: &Path, scenario: &str, backend: &str) -> PathBuf {
    let base = out.join(scenario).join(backend);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap_or_else(|e| panic!("{}: {e}", base.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no run directory under {}", base.display()))
}

/// Whether a process with this PID exists and runs `needle` (guards against
/// PID reuse).
pub fn process_alive(pid: u32, needle: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // A zombie has already died; it only waits to be reaped.
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
}

pub mod conformance;
pub mod owned;

/// A program the install script builds into the checkout (`rel`, from the
/// repository's root), or `None` (skipped; a failure under
/// `LOCKBENCH_REQUIRE_BACKENDS=1`) when it was not built.
pub fn built_tool(rel: &str) -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        !backends_required(),
        "{} is missing: run scripts/install-backends.sh",
        bin.display()
    );
    eprintln!(
        "skipped: {} is missing (scripts/install-backends.sh builds it)",
        bin.display()
    );
    None
}

/// Every `.rs` file below `dir`, in no particular order.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
