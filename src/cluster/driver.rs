//! Driver processes: a lock library's driver (drivers/PROTOCOL.md), one
//! process per host of a run, started and stopped the way servers are (own
//! process group, killed with lockbench however it ends), its standard
//! error appended to a log file in the run directory. The protocol spoken
//! on its standard input and output is the backend layer's.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::Launch;
use super::process::{STOP_WAIT, all_threads_stopped, kill_group, spawn_tracked, untrack};
use crate::error::{Error, Result};

/// The pipes of a started driver: what lockbench writes, what it reads.
pub type DriverPipes = (tokio::process::ChildStdin, tokio::process::ChildStdout);

/// One host's driver process, started again after it is killed or exits.
#[derive(Debug)]
pub struct DriverProcess {
    /// `redis-py h1`, for messages.
    name: String,
    /// How to start it.
    launch: Launch,
    /// Its standard error, appended to across starts.
    log_path: PathBuf,
    /// The running child, if started.
    child: Mutex<Option<Child>>,
    /// Set when a fault killed it (its successor is due when the fault
    /// ends), as opposed to an exit of its own.
    killed_on_purpose: std::sync::atomic::AtomicBool,
}

impl DriverProcess {
    /// A driver `name` to be started with `launch`, logging to `log_path`.
    pub fn new(name: &str, launch: Launch, log_path: &Path) -> Self {
        DriverProcess {
            name: name.to_string(),
            launch,
            log_path: log_path.to_path_buf(),
            child: Mutex::new(None),
            killed_on_purpose: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The driver's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Starts the process, killing a previous one; its pipes.
    pub fn start(&self) -> Result<DriverPipes> {
        self.kill();
        if let Some(dir) = self.log_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| Error::io(&self.log_path, e))?;
        let mut cmd = self.launch.command();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        let mut child = spawn_tracked(cmd).map_err(|e| Error::ServerStart {
            server: self.name.clone(),
            message: format!("cannot start {}: {e}", self.launch.program.display()),
            log: self.log_path.clone(),
        })?;
        let pipes = match (child.stdin.take(), child.stdout.take()) {
            (Some(i), Some(o)) => tokio::process::ChildStdin::from_std(i)
                .and_then(|i| Ok((i, tokio::process::ChildStdout::from_std(o)?))),
            _ => Err(std::io::Error::other("no pipes")),
        };
        *self.slot() = Some(child);
        pipes.map_err(|e| Error::ServerStart {
            server: self.name.clone(),
            message: format!("cannot talk to the driver: {e}"),
            log: self.log_path.clone(),
        })
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.slot().as_ref().map(Child::id)
    }

    /// How it ended, if it has.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.slot()
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills it (SIGKILL to its process group) and waits for it, bounded.
    pub fn kill(&self) {
        let Some(mut child) = self.slot().take() else {
            return;
        };
        let pid = child.id();
        kill_group(pid, libc::SIGKILL);
        for _ in 0..200 {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        untrack(pid);
    }

    /// Kills it for a fault (a client crash): [`Self::take_killed_on_purpose`]
    /// then says so, once.
    pub fn kill_on_purpose(&self) {
        if self.pid().is_some() {
            self.killed_on_purpose
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.kill();
    }

    /// Whether a fault killed it since the last call.
    pub fn take_killed_on_purpose(&self) -> bool {
        self.killed_on_purpose
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Freezes it (SIGSTOP, returning once its threads are stopped) or
    /// resumes it (SIGCONT).
    pub fn signal(&self, signal: i32) {
        let Some(pid) = self.pid() else {
            return;
        };
        kill_group(pid, signal);
        if signal == libc::SIGSTOP {
            let deadline = std::time::Instant::now() + STOP_WAIT;
            while !all_threads_stopped(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
