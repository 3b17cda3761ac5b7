//! Driver backends: a lock library, run in its own language by a driver
//! process that speaks drivers/PROTOCOL.md (JSON lines on its standard
//! input and output). One process per host; its clients are the host's.
//!
//! A driver that misbehaves is an outcome, never a hung run: a request
//! without a reply within its timeout plus [`REPLY_GRACE`] ends `info`; a
//! line that is not protocol, or a reply to an id nobody waits for, is
//! written to the driver's log and changes nothing; a driver that exits
//! ends every request in flight `info`, and its clients report themselves
//! gone (the workload records a `crash` for each and replaces them), after
//! which the process is started again, [`MAX_RESTARTS`] times at most; a
//! driver that fails `init` fails the backend with the tail of its log.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{
    AcquireOptions, ClientConfig, Guard, LockBackend, LockClient, LostLock, Outcome, Released,
    Served,
};
use crate::cluster::driver::DriverProcess;
use crate::cluster::{Endpoint, Launch};
use crate::error::{Error, Result};

/// The protocol version lockbench speaks.
pub const PROTOCOL: u64 = 1;

/// How long a driver may take to answer `init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Added to a request's own timeout before lockbench gives up on the reply.
pub const REPLY_GRACE: Duration = Duration::from_secs(2);

/// Starts of a host's driver after it exited on its own, per run.
pub const MAX_RESTARTS: usize = 3;

/// How to run a driver: what the scenario (or the shipped driver's
/// declaration) says.
#[derive(Debug, Clone)]
pub struct DriverSpec {
    /// The backend name.
    pub name: String,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Where the command runs (relative paths in it are from here).
    pub dir: PathBuf,
    /// Sent in `init`.
    pub options: Value,
}

/// Where the driver of one host runs, and for whom.
#[derive(Debug, Clone)]
pub struct HostPlace {
    /// The host, numbered from 1 as in `h1`.
    pub host: usize,
    /// Where its log goes (the run directory).
    pub log_dir: PathBuf,
}

/// A driver backend over one host's process.
#[derive(Debug)]
pub struct DriverBackend {
    host: Arc<DriverHost>,
}

/// The process of one host and its current protocol session.
#[derive(Debug)]
struct DriverHost {
    name: String,
    process: Arc<DriverProcess>,
    /// What `init` says.
    init: Value,
    /// The session with the running process, once `init_ok` came.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// Starts after the process exited on its own.
    restarts: AtomicUsize,
    /// The library and its version, from `init_ok`.
    library: Mutex<Option<(String, String)>>,
}

/// One running process's protocol: requests in flight by id, the clients'
/// `lost` channels, and whether it has ended.
#[derive(Debug)]
struct Session {
    /// The driver's standard input: each request is written by the client
    /// that sends it, whole, under this lock (no hop through a writer task).
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    /// Requests waiting for their reply.
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// The next request id.
    next_id: AtomicU64,
    /// Each client's channel for `lost` messages.
    lost: Mutex<HashMap<u64, mpsc::UnboundedSender<LostLock>>>,
    /// Set when the process's output ended, with why.
    ended: Mutex<Option<String>>,
    /// Set when `ended` is.
    is_ended: AtomicBool,
    /// The driver's log, for lines that are not protocol.
    log: PathBuf,
}

/// A reply to one request.
#[derive(Debug)]
struct Reply {
    kind: String,
    body: Value,
}

/// Appends a line of lockbench's own to a driver's log.
fn note(log: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(f, "lockbench: {line}");
    }
}

impl Session {
    /// Writes one line to the driver, bounded so a driver that stopped
    /// reading cannot hold its clients forever.
    async fn write(&self, mut line: String) -> std::result::Result<(), String> {
        line.push('\n');
        let write = async {
            let mut stdin = self.stdin.lock().await;
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(REPLY_GRACE, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot write to the driver: {e}")),
            Err(_) => Err(format!("the driver took no input for {REPLY_GRACE:?}")),
        }
    }

    fn end(&self, why: String) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if ended.is_none() {
            *ended = Some(why.clone());
        }
        self.is_ended.store(true, Ordering::Release);
        // Every request in flight ends `info` (its sender dropped).
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn ended(&self) -> Option<String> {
        if !self.is_ended.load(Ordering::Acquire) {
            return None;
        }
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Routes one line of the driver's output.
    fn take_line(&self, line: &str) {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                note(&self.log, &format!("not protocol ({e}): {line}"));
                return;
            }
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "ok" | "fail" | "info" => {
                let waiter = msg.get("id").and_then(Value::as_u64).and_then(|id| {
                    self.pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id)
                });
                match waiter {
                    Some(w) => {
                        let _ = w.send(Reply {
                            kind: kind.to_string(),
                            body: msg,
                        });
                    }
                    None => note(&self.log, &format!("reply to no request in flight: {line}")),
                }
            }
            "lost" => {
                let client = msg.get("client").and_then(Value::as_u64);
                let key = msg.get("key").and_then(Value::as_str);
                let (Some(client), Some(key)) = (client, key) else {
                    note(&self.log, &format!("lost without client and key: {line}"));
                    return;
                };
                let reason = msg
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let tx = self
                    .lost
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&client)
                    .cloned();
                if let Some(tx) = tx {
                    let _ = tx.send(LostLock {
                        key: key.to_string(),
                        reason,
                    });
                }
            }
            _ => note(&self.log, &format!("not protocol (type {kind:?}): {line}")),
        }
    }

    /// Sends `msg` with a new id; its reply, or `None` when none came
    /// within `limit` or the process ended.
    async fn request(&self, mut msg: Value, limit: Duration) -> std::result::Result<Reply, String> {
        if let Some(why) = self.ended() {
            return Err(why);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        if let Err(why) = self.write(msg.to_string()).await {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(self.ended().unwrap_or(why));
        }
        let timer = tokio::time::sleep(limit);
        tokio::pin!(timer);
        // A reply that is there when a paused client wakes wins over its
        // timer, which also ran out while it was paused.
        tokio::select! {
            biased;
            reply = rx => reply.map_err(|_| self.ended().unwrap_or_else(|| "the driver is gone".into())),
            _ = &mut timer => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                Err(format!("no reply from the driver within {limit:?}"))
            }
        }
    }
}

impl DriverHost {
    /// The session with the running process; starts (or starts again) the
    /// process and waits for `init_ok` when there is none.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if s.ended().is_none() {
                return Ok(s.clone());
            }
            // Killed by a fault: its successor is due. Exited on its own:
            // a bounded number of times.
            if !self.process.take_killed_on_purpose()
                && self.restarts.fetch_add(1, Ordering::Relaxed) >= MAX_RESTARTS
            {
                return Err(self.error(format!(
                    "the driver exited {MAX_RESTARTS} times; last: {}",
                    s.ended().unwrap_or_default()
                )));
            }
        }
        *slot = None;
        let session = self.start().await?;
        *slot = Some(session.clone());
        Ok(session)
    }

    fn error(&self, message: String) -> Error {
        Error::Backend {
            backend: self.name.clone(),
            endpoint: self.process.name().to_string(),
            message: format!(
                "{message}; last lines of {}:\n{}",
                self.process.log_path().display(),
                self.process.log_tail(10)
            ),
        }
    }

    /// Starts the process and the tasks around its pipes, and says `init`.
    async fn start(&self) -> Result<Arc<Session>> {
        let (stdin, stdout) = self.process.start()?;
        let session = Arc::new(Session {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            lost: Mutex::new(HashMap::new()),
            ended: Mutex::new(None),
            is_ended: AtomicBool::new(false),
            log: self.process.log_path().to_path_buf(),
        });
        // Reader: routes each line; the end of the output is the end of
        // the session. It holds the process weakly: the backend and its
        // clients own it, and when the last of them goes the process is
        // killed, its output ends and so does this task (holding it here
        // kept every driver of a finished run alive until lockbench
        // exited).
        let reader_session = session.clone();
        let process = Arc::downgrade(&self.process);
        let (init_tx, init_rx) = oneshot::channel::<Value>();
        tokio::spawn(async move {
            let mut init_tx = Some(init_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                if let Some(tx) = init_tx.take() {
                    match serde_json::from_str::<Value>(line) {
                        Ok(v) => {
                            let _ = tx.send(v);
                        }
                        Err(e) => {
                            note(&reader_session.log, &format!("not protocol ({e}): {line}"));
                            init_tx = Some(tx);
                        }
                    }
                    continue;
                }
                reader_session.take_line(line);
            }
            // Give the process a moment to be reaped, for its status
            // (none when it went with its owners).
            let mut status = None;
            for _ in 0..20 {
                let Some(process) = process.upgrade() else {
                    break;
                };
                status = process.exited();
                if status.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let why = match status {
                Some(s) => format!("the driver exited ({s})"),
                None => "the driver closed its output".to_string(),
            };
            reader_session.end(why);
        });
        if let Err(why) = session.write(self.init.to_string()).await {
            self.process.kill();
            return Err(self.error(why));
        }
        let first = match tokio::time::timeout(INIT_TIMEOUT, init_rx).await {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => {
                // Give the log a moment to hold the driver's last words.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.process.kill();
                return Err(self.error(format!(
                    "the driver ended before it answered init ({})",
                    session.ended().unwrap_or_default()
                )));
            }
            Err(_) => {
                self.process.kill();
                return Err(self.error(format!("no answer to init within {INIT_TIMEOUT:?}")));
            }
        };
        match first.get("type").and_then(Value::as_str) {
            Some("init_ok") => {
                let field = |k: &str| {
                    first
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_string()
                };
                *self.library.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((field("library"), field("version")));
                Ok(session)
            }
            Some("error") => {
                self.process.kill();
                let why = first
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                Err(self.error(format!("the driver refused init: {why}")))
            }
            _ => {
                self.process.kill();
                Err(self.error(format!("the driver answered init with {first}")))
            }
        }
    }
}

/// Builds the driver backend of `spec` for one host, over `endpoints`:
/// starts the host's process and waits for its `init_ok`.
pub async fn connect(
    spec: &DriverSpec,
    endpoints: &[Endpoint],
    place: &HostPlace,
) -> Result<Arc<dyn LockBackend>> {
    let (program, args) = spec.command.split_first().ok_or_else(|| Error::Backend {
        backend: spec.name.clone(),
        endpoint: String::new(),
        message: "the driver's command is empty".into(),
    })?;
    let mut launch = Launch::new(program).args(args.iter());
    launch.dir = Some(spec.dir.clone());
    let name = format!("{} h{}", spec.name, place.host);
    let log = place
        .log_dir
        .join(format!("driver-{}-h{}.log", spec.name, place.host));
    let servers: Vec<Value> = endpoints
        .iter()
        .map(|e| match &e.announced {
            // A node its peers know by another address (a Redis Cluster
            // node's proxy): clients map that address to `addr`.
            Some(announced) => json!({"name": e.name, "addr": e.addr, "announced": announced}),
            None => json!({"name": e.name, "addr": e.addr}),
        })
        .collect();
    let host = Arc::new(DriverHost {
        name: spec.name.clone(),
        process: Arc::new(DriverProcess::new(&name, launch, &log)),
        init: json!({
            "type": "init",
            "protocol": PROTOCOL,
            "host": place.host,
            "servers": servers,
            "options": spec.options,
        }),
        session: tokio::sync::Mutex::new(None),
        restarts: AtomicUsize::new(0),
        library: Mutex::new(None),
    });
    host.session().await?;
    Ok(Arc::new(DriverBackend { host }))
}

#[async_trait]
impl LockBackend for DriverBackend {
    fn name(&self) -> &str {
        &self.host.name
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let session = self.host.session().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        session
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(config.id, tx);
        Ok(Box::new(DriverClient {
            id: config.id,
            session,
            process: self.host.process.clone(),
            op_timeout: config.op_timeout,
            lost: Some(rx),
            served: None,
        }))
    }

    fn library(&self) -> Option<(String, String)> {
        self.host
            .library
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn host_process(&self) -> Option<Arc<DriverProcess>> {
        Some(self.host.process.clone())
    }
}

/// One client of a driver process.
struct DriverClient {
    /// Its process id in the history.
    id: u64,
    /// The process it runs in.
    session: Arc<Session>,
    /// To kill it when the client crashes.
    process: Arc<DriverProcess>,
    /// Timeout of one request, before the grace.
    op_timeout: Duration,
    /// Its `lost` messages, until the workload takes them.
    lost: Option<mpsc::UnboundedReceiver<LostLock>>,
    /// When the library was busy with the last request, as its reply said.
    served: Option<Served>,
}

/// A reply's `t` (when the driver called its library and when the library
/// returned, CLOCK_MONOTONIC nanoseconds) as instants of this process, if
/// both lie between `sent` and now in that order. A driver whose clock is
/// not the machine's monotonic one (its own epoch, a clock fault on its
/// host) is not believed.
fn served_window(body: &Value, sent: StdInstant) -> Option<Served> {
    let t = body.get("t")?.as_array()?;
    let (called, returned) = (t.first()?.as_i64()?, t.get(1)?.as_i64()?);
    let now = StdInstant::now();
    let now_ns = crate::net::clock::monotonic_ns();
    let at = |ns: i64| {
        let ago = u64::try_from(now_ns.checked_sub(ns)?).ok()?;
        now.checked_sub(Duration::from_nanos(ago))
    };
    let (called, returned) = (at(called)?, at(returned)?);
    (sent <= called && called <= returned).then_some(Served {
        sent,
        called,
        returned,
    })
}

impl DriverClient {
    async fn call(&mut self, msg: Value, limit: Duration) -> Outcome<Value> {
        self.served = None;
        let sent = StdInstant::now();
        match self.session.request(msg, limit + REPLY_GRACE).await {
            Err(why) => Outcome::Info(why),
            Ok(reply) => {
                self.served = served_window(&reply.body, sent);
                let error = || {
                    reply
                        .body
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                        .to_string()
                };
                match reply.kind.as_str() {
                    "ok" => Outcome::Ok(reply.body),
                    "fail" => Outcome::Fail(error()),
                    _ => Outcome::Info(error()),
                }
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl LockClient for DriverClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let started = Instant::now();
        let msg = json!({
            "type": "acquire",
            "client": self.id,
            "key": key,
            "lease_ms": millis(opts.lease),
            "timeout_ms": millis(opts.timeout),
        });
        match self.call(msg, opts.timeout + self.op_timeout).await {
            Outcome::Ok(body) => {
                let token = match body.get("token") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) if !v.is_null() => v.to_string(),
                    _ => format!("c{}-{}", self.id, body["id"]),
                };
                Outcome::Ok(Guard {
                    key: key.to_string(),
                    token,
                    fence: body.get("fence").and_then(Value::as_u64),
                    lease: body
                        .get("lease_ms")
                        .and_then(Value::as_u64)
                        .map(Duration::from_millis),
                    acquired_at: started,
                })
            }
            Outcome::Fail(why) => Outcome::Fail(why),
            Outcome::Info(why) => Outcome::Info(why),
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let msg = json!({
            "type": "release",
            "client": self.id,
            "key": guard.key,
            "token": guard.token,
        });
        match self.call(msg, self.op_timeout).await {
            Outcome::Ok(body) => Outcome::Ok(Released {
                was_held: body.get("was_held").and_then(Value::as_bool) != Some(false),
            }),
            Outcome::Fail(why) => Outcome::Fail(why),
            Outcome::Info(why) => Outcome::Info(why),
        }
    }

    async fn renew(&mut self, guard: &mut Guard, lease: Duration) -> Outcome<()> {
        let started = Instant::now();
        let msg = json!({
            "type": "renew",
            "client": self.id,
            "key": guard.key,
            "token": guard.token,
            "lease_ms": millis(lease),
        });
        match self.call(msg, self.op_timeout).await {
            Outcome::Ok(_) => {
                guard.lease = Some(lease);
                guard.acquired_at = started;
                Outcome::Ok(())
            }
            Outcome::Fail(why) => Outcome::Fail(why),
            Outcome::Info(why) => Outcome::Info(why),
        }
    }

    /// A crashed client is its whole process: SIGKILL.
    fn crash(self: Box<Self>) {
        self.process.kill_on_purpose();
    }

    fn take_lost(&mut self) -> Option<mpsc::UnboundedReceiver<LostLock>> {
        self.lost.take()
    }

    fn gone(&self) -> Option<String> {
        self.session.ended()
    }

    fn served(&self) -> Option<Served> {
        self.served
    }
}

impl Drop for DriverClient {
    fn drop(&mut self) {
        self.session
            .lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}
