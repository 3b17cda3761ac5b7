//! The library's one error type.
//!
//! Every variant that concerns a file or an endpoint carries it, so the
//! message alone tells the user where to look.

use std::path::PathBuf;

/// Everything that can go wrong in lockbench outside a lock operation.
///
/// Lock operations themselves never return this: they return a typed
/// outcome (`ok`, `fail` or `info`), because a definite failure and an
/// unknown result must stay apart.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file could not be read or is invalid.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),

    /// A history file could not be parsed.
    #[error("{path}:{line}: {message}")]
    HistoryParse {
        /// The history file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A server binary needed by a backend is not installed.
    #[error("{backend}: `{binary}` is not installed; {hint}")]
    MissingServer {
        /// The backend that needs it.
        backend: String,
        /// The binary that was looked for.
        binary: String,
        /// How to install it.
        hint: String,
    },

    /// A server was started but did not become ready.
    #[error("{server}: {message} (log: {log})")]
    ServerStart {
        /// Which server (name and address).
        server: String,
        /// What went wrong.
        message: String,
        /// The server's log file.
        log: PathBuf,
    },

    /// A server exited at start because another process took the port it
    /// was handed between the probe and its bind: a start on fresh ports
    /// avoids it (the cluster layer does it).
    #[error(
        "{server}: another process took a port it was handed before it could bind it (log: {log})"
    )]
    PortTaken {
        /// Which server (name and address).
        server: String,
        /// Its client port (the one lost, or one of the same attempt).
        port: u16,
        /// The server's log file.
        log: PathBuf,
    },

    /// A backend could not connect to or set up its server.
    #[error("{backend} at {endpoint}: {message}")]
    Backend {
        /// The backend.
        backend: String,
        /// The server address.
        endpoint: String,
        /// What went wrong.
        message: String,
    },

    /// The report could not be drawn.
    #[error("report {path}: {message}")]
    Report {
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A run directory does not hold what `lockbench report` needs.
    #[error("{path}: {message}")]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: with_open_files_limit(source),
        }
    }

    /// True when the error is the user's input (exit code 2), not the run.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::Scenario(_) | Error::HistoryParse { .. } | Error::RunDir { .. }
        )
    }
}

/// A mistake in a scenario file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}{}", path.display(), location(*line, *column), hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct ScenarioError {
    /// The scenario file.
    pub path: PathBuf,
    /// 1-based line, when the mistake has one.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// This process's limit on open files (soft and hard), if it can be read.
pub fn open_files_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// "Too many open files" with the limit that was reached (no descriptor is
/// needed to ask it, which matters when none is left), so that a report
/// from elsewhere says whether the limit was low or the descriptors many.
fn with_open_files_limit(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() != Some(libc::EMFILE) {
        return e;
    }
    let Some(limit) = open_files_limit() else {
        return e;
    };
    std::io::Error::new(
        e.kind(),
        format!(
            "{e}; this process may hold {} at once (`ulimit -n`)",
            limit.rlim_cur
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_open_files_says_the_limit_and_other_errors_are_kept() {
        let e = Error::io("h", std::io::Error::from_raw_os_error(libc::EMFILE));
        let text = e.to_string();
        assert!(text.contains("Too many open files"), "{text}");
        assert!(
            text.contains("may hold") && text.contains("ulimit -n"),
            "{text}"
        );
        let other = Error::io("h", std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(!other.to_string().contains("ulimit"), "{other}");
    }
}
