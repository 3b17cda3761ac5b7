//! Spawning and stopping server processes.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use crate::error::{Error, Result};

/// PIDs (= process group ids) of every server still running.
static LIVE: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashSet<u32>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills every server lockbench started and has not stopped yet, by process
/// group. For the Ctrl-C path, where no destructor will run.
pub fn kill_all() {
    let pids: Vec<u32> = live()
        .as_ref()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    for pid in pids {
        kill_group(pid, libc::SIGKILL);
    }
}

pub(super) fn kill_group(pgid: u32, signal: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for this server (setpgid in the child); it touches no memory.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns on one thread that lives as long as the process.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
/// not the process; tokio's blocking threads come and go, so spawning from
/// them would kill servers mid-run. One long-lived thread avoids that.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("lockbench-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the spawner thread: {e}"));
        Mutex::new(tx)
    })
}

fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (setpgid, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            // Own process group: stopping it also stops anything the server
            // forks (postgres backends), and a terminal's Ctrl-C reaches
            // lockbench, which stops the servers itself.
            libc::setpgid(0, 0);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            // The parent may have died before prctl took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// Spawns `cmd` (in its own process group, killed with lockbench) and
/// tracks it for [`kill_all`]; [`untrack`] when it is stopped.
pub fn spawn_tracked(cmd: Command) -> std::io::Result<Child> {
    let child = spawn(cmd)?;
    live().get_or_insert_with(HashSet::new).insert(child.id());
    Ok(child)
}

/// Forgets a stopped process (see [`spawn_tracked`]).
pub fn untrack(pid: u32) {
    if let Some(set) = live().as_mut() {
        set.remove(&pid);
    }
}

/// Spawns the server's process with its output appended to `log_path`.
fn start_child(name: &str, launch: &Launch, log_path: &Path, append: bool) -> Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log_path)
        .map_err(|e| Error::io(log_path, e))?;
    let log2 = log.try_clone().map_err(|e| Error::io(log_path, e))?;
    let mut cmd = launch.command();
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    spawn_tracked(cmd).map_err(|e| Error::ServerStart {
        server: name.to_string(),
        message: format!("cannot start {}: {e}", launch.program.display()),
        log: log_path.to_path_buf(),
    })
}

/// A free TCP port on 127.0.0.1, bound and released: the server binds it
/// a moment later. Another process can take it in between; a start that
/// loses that race is tried again on fresh ports ([`start_on_fresh_ports`]).
pub fn free_port() -> Result<u16> {
    let probe =
        || -> std::io::Result<std::net::TcpListener> { std::net::TcpListener::bind("127.0.0.1:0") };
    let l = probe().map_err(|e| Error::io("127.0.0.1:0", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("127.0.0.1:0", e))?
        .port();
    port_race::after_probe(l);
    Ok(port)
}

/// A 127.0.0.1 port kept out of the kernel's hands while it lives: a
/// socket bound to it with `SO_REUSEADDR` that never listens. The server
/// it is meant for binds and listens on it beside this socket (Redis,
/// memcached, ZooKeeper, etcd, MariaDB and PostgreSQL all set
/// `SO_REUSEADDR` on their listeners), but no `bind` to port 0 and no
/// outgoing connection, of this process or another, is given it.
///
/// [`free_port`] releases its port at once, and a server binds it a
/// moment later; that leaves room for the kernel to hand the port out in
/// between, and again whenever the server is down:
/// - a topology's own proxies bind port 0 between the probe and the
///   members' start, and a ZooKeeper member binds its quorum port only
///   once it is elected leader, maybe minutes later: a proxy given that
///   port forwards the member's peers to itself, a loop that opens
///   connections until the process runs out of descriptors;
/// - while a killed server is down, a connection to its port (a proxy or
///   a client trying it again) may be given that same port as its own
///   local port, which connects the socket to itself (TCP's simultaneous
///   open), and the restarted server cannot bind.
#[derive(Debug)]
pub struct PortReservation {
    /// Held, never used: dropping it frees the port.
    _socket: tokio::net::TcpSocket,
    port: u16,
}

impl PortReservation {
    /// The port held.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Keeps `r` in `held` and returns its port.
pub fn reserved_port(held: &mut Vec<PortReservation>, r: PortReservation) -> u16 {
    let port = r.port;
    held.push(r);
    port
}

/// Reserves a free 127.0.0.1 port (see [`PortReservation`]). The test hook
/// [`port_race`] can take it, as for [`free_port`].
pub fn reserve_port() -> Result<PortReservation> {
    let reserve = || -> std::io::Result<PortReservation> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let port = socket.local_addr()?.port();
        Ok(PortReservation {
            _socket: socket,
            port,
        })
    };
    let r = reserve().map_err(|e| Error::io("127.0.0.1:0", e))?;
    port_race::after_reserve(r.port);
    Ok(r)
}

/// A test hook that plays the other process in the race between
/// [`free_port`] and a server's bind: the ports it is told to take stay
/// bound by this process, so the server that was handed one fails to bind
/// it, exactly as when another process takes it. Not for use outside tests.
#[doc(hidden)]
pub mod port_race {
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// Which of the next probed ports to take (counted down per probe),
    /// and the listeners holding the ones taken.
    struct Plan {
        take: Vec<usize>,
        held: Vec<TcpListener>,
    }

    static PLAN: Mutex<Plan> = Mutex::new(Plan {
        take: Vec::new(),
        held: Vec::new(),
    });

    fn plan() -> std::sync::MutexGuard<'static, Plan> {
        PLAN.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the `n`-th port probed from now on (0: the next one), for
    /// every `n` in `ports`.
    pub fn take(ports: &[usize]) {
        plan().take.extend_from_slice(ports);
    }

    /// Releases every port taken and forgets what was still to take.
    pub fn release() {
        let mut p = plan();
        p.take.clear();
        p.held.clear();
    }

    /// The ports held now.
    pub fn held() -> Vec<u16> {
        plan()
            .held
            .iter()
            .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
            .collect()
    }

    /// For a reserved port: a listener beside the reservation takes it,
    /// as another server would.
    pub(super) fn after_reserve(port: u16) {
        if plan().take.is_empty() {
            return;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            after_probe(l);
        }
    }

    pub(super) fn after_probe(listener: TcpListener) {
        let mut p = plan();
        if p.take.is_empty() {
            return;
        }
        let now = p.take.contains(&0);
        p.take.retain(|n| *n != 0);
        for n in &mut p.take {
            *n -= 1;
        }
        if now {
            p.held.push(listener);
        }
    }
}

/// How many times a start whose port was taken is tried, each time on
/// fresh ports.
pub const START_ATTEMPTS: usize = 4;

/// Runs `start` (which reserves its own ports with [`reserve_port`]) until it
/// succeeds, fails for another reason than a taken port, or has lost its
/// port [`START_ATTEMPTS`] times; then the error names every attempt.
///
/// The one place where a lost port race is handled: single servers,
/// Redlock's masters, Sentinel, ZooKeeper ensembles and etcd clusters all
/// start through it. `what` names the server or topology in the log.
pub async fn start_on_fresh_ports<T, F, Fut>(what: &str, mut start: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut lost = Vec::new();
    let mut last_log = PathBuf::new();
    for attempt in 1..=START_ATTEMPTS {
        match start().await {
            Err(Error::PortTaken { server, port, log }) => {
                tracing::warn!(
                    "{what}: {server} lost a port to another process (attempt {attempt} of \
                     {START_ATTEMPTS}); starting again on fresh ports"
                );
                lost.push(format!("attempt {attempt}: {server}, client port {port}"));
                last_log = log;
            }
            other => return other,
        }
    }
    Err(Error::ServerStart {
        server: what.to_string(),
        message: format!(
            "every start lost a port to another process between the probe and the bind ({})",
            lost.join("; ")
        ),
        log: last_log,
    })
}

/// Looks for server `binary` on PATH, then where Debian installs servers;
/// or, when `LOCKBENCH_BIN_DIRS` is set (directories separated by `:`),
/// only there, to pick one build of a server over another.
pub fn find_binary(binary: &str) -> Option<PathBuf> {
    if let Some(dirs) = bin_dirs() {
        return first_in(dirs, binary);
    }
    let mut dirs = path_dirs();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev());
    }
    first_in(dirs, binary)
}

/// Looks for a drivers' runtime (`node`, `java`): in `LOCKBENCH_BIN_DIRS`
/// first when it is set, then on PATH. Unlike a server, a runtime missing
/// from those directories is still taken from PATH.
pub fn find_runtime(name: &str) -> Option<PathBuf> {
    let mut dirs = bin_dirs().unwrap_or_default();
    dirs.extend(path_dirs());
    first_in(dirs, name)
}

/// `LOCKBENCH_BIN_DIRS`, split, if it is set.
fn bin_dirs() -> Option<Vec<PathBuf>> {
    std::env::var_os("LOCKBENCH_BIN_DIRS").map(|d| std::env::split_paths(&d).collect())
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect()
}

/// The first `dir/name` that is a file.
fn first_in(dirs: Vec<PathBuf>, name: &str) -> Option<PathBuf> {
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// How to start a server: program, arguments, environment, user. Kept so a
/// killed server can be started again exactly as before (same port, same
/// data directory).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Run as this (uid, gid): for servers that refuse to run as root.
    pub run_as: Option<(u32, u32)>,
    /// Start in this directory (lockbench's own otherwise).
    pub dir: Option<PathBuf>,
    /// Ports it binds (its own, a peer port), held for as long as the
    /// launch is kept, restarts included.
    pub held: Vec<std::sync::Arc<PortReservation>>,
}

impl Launch {
    /// Starts `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Launch {
            program: program.into(),
            ..Launch::default()
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Keeps `reserved`, a port the server binds, for as long as this
    /// launch is kept (see [`PortReservation`]).
    pub fn holding(mut self, reserved: PortReservation) -> Self {
        self.held.push(std::sync::Arc::new(reserved));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }
}

/// A server lockbench started. Dropping it kills it.
#[derive(Debug)]
pub struct ServerProcess {
    /// `redis-1`.
    name: String,
    /// The child; also the id of its process group.
    child: Child,
    /// The port it listens on (127.0.0.1).
    port: u16,
    /// Its data directory; removed when the server is dropped.
    data_dir: tempfile::TempDir,
    /// Its stdout/stderr, in the run directory (appended to on restart).
    log_path: PathBuf,
    /// How it was started, to start it again.
    launch: Launch,
    /// Whether it is stopped.
    stopped: bool,
}

impl ServerProcess {
    /// Starts `launch` as server `name` listening on `port` with `data_dir`,
    /// its output going to `log_dir/<name>.log`. Readiness is the caller's
    /// to wait for.
    pub fn spawn(
        name: &str,
        log_dir: &Path,
        port: u16,
        data_dir: tempfile::TempDir,
        launch: Launch,
    ) -> Result<ServerProcess> {
        std::fs::create_dir_all(log_dir).map_err(|e| Error::io(log_dir, e))?;
        let log_path = log_dir.join(format!("{name}.log"));
        let child = start_child(name, &launch, &log_path, false)?;
        Ok(ServerProcess {
            name: name.to_string(),
            child,
            port,
            data_dir,
            log_path,
            launch,
            stopped: false,
        })
    }

    /// Keeps `reserved` (its own port's reservation) for as long as this
    /// server lives, with the ports its launch holds, so that no other
    /// socket takes it while it is down between a kill and its restart.
    pub fn holding(mut self, reserved: PortReservation) -> ServerProcess {
        self.launch.held.push(std::sync::Arc::new(reserved));
        self
    }

    /// The ports held for this server while it lives, down or up: its own
    /// and those its launch names (see [`PortReservation`]).
    pub fn held_ports(&self) -> Vec<u16> {
        self.launch.held.iter().map(|r| r.port()).collect()
    }

    /// Kills the server (SIGKILL, no chance to save anything) and starts it
    /// again with the same port, data directory and arguments. Readiness is
    /// the caller's to wait for.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.child = start_child(&self.name, &self.launch, &self.log_path, true)?;
        self.stopped = false;
        Ok(())
    }

    /// `redis-1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// If the process has exited, how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// An error about this server, with the tail of its log.
    pub fn start_error(&self, message: impl std::fmt::Display) -> Error {
        Error::ServerStart {
            server: format!("{} on {}", self.name, self.addr()),
            message: format!("{message}; last log lines:\n{}", self.log_tail(5)),
            log: self.log_path.clone(),
        }
    }

    /// The error for a server that exited while it started: [`Error::PortTaken`]
    /// when its log says its port was in use (every server kind lockbench
    /// starts says "address already in use", in some case), else the exit
    /// status with the tail of its log.
    pub fn exited_error(&self, status: std::process::ExitStatus) -> Error {
        self.port_taken()
            .unwrap_or_else(|| self.start_error(format!("exited at start ({status})")))
    }

    /// [`Error::PortTaken`] if the server's log says one of its ports was
    /// in use. Every server kind lockbench starts says "address already in
    /// use" (in some case) then; a ZooKeeper leader that cannot bind its
    /// quorum port says it and stays up, electing again.
    pub fn port_taken(&self) -> Option<Error> {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        log.to_ascii_lowercase()
            .contains("address already in use")
            .then(|| Error::PortTaken {
                server: format!("{} on {}", self.name, self.addr()),
                port: self.port,
                log: self.log_path.clone(),
            })
    }

    /// Sends `signal` to the server's process group. SIGSTOP (freeze) is
    /// delivered asynchronously: this returns once every thread of the
    /// server is stopped (bounded by `STOP_WAIT`), so a request sent
    /// after it meets a frozen server, not one still finishing its turn on
    /// another core.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id();
        kill_group(pid, signal);
        if signal == libc::SIGSTOP {
            let deadline = std::time::Instant::now() + STOP_WAIT;
            while !all_threads_stopped(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id();
        kill_group(pid, libc::SIGKILL);
        // SIGKILL cannot be ignored; the wait is short. Bound it anyway so
        // a stuck zombie reaper never hangs lockbench.
        for _ in 0..200 {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        untrack(pid);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long [`ServerProcess::signal`] waits for a SIGSTOP to take effect.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// Whether every thread of `pid` is stopped (state `T` in
/// /proc/PID/task/TID/stat); false when /proc cannot tell.
pub(super) fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if !matches!(state, Some("T") | Some("t")) {
            return false;
        }
        any = true;
    }
    any
}

/// The PIDs listed in /proc now (empty where /proc cannot be read).
pub fn proc_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .collect()
}

/// The PIDs whose parent chain leads to `root` (not `root` itself), read
/// from /proc; empty where /proc cannot be read.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for pid in proc_pids() {
        // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold
        // spaces and parentheses, so read after the last ')'.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    // Bounded by the number of processes read.
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reserved port is never handed out by a bind to port 0, and a
    /// server that sets `SO_REUSEADDR` (as std's listeners do) can still
    /// listen and be connected to on it.
    #[test]
    fn a_reserved_port_is_kept_from_others_and_left_to_its_server() {
        let r = reserve_port().unwrap();
        let others: Vec<std::net::TcpListener> = (0..500)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        assert!(
            others
                .iter()
                .all(|l| l.local_addr().unwrap().port() != r.port()),
            "port 0 was given the reserved port {}",
            r.port()
        );
        drop(others);
        // A socket without SO_REUSEADDR (as an outgoing connection's
        // local port) cannot have it.
        let plain = tokio::net::TcpSocket::new_v4().unwrap();
        assert!(
            plain
                .bind(std::net::SocketAddr::from(([127, 0, 0, 1], r.port())))
                .is_err()
        );
        let server = std::net::TcpListener::bind(("127.0.0.1", r.port())).unwrap();
        let _client = std::net::TcpStream::connect(("127.0.0.1", r.port())).unwrap();
        assert!(server.accept().is_ok());
    }
}
