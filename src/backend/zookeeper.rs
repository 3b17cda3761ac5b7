//! `zookeeper` and `zookeeper-herd`: the lock recipe of ZooKeeper's
//! "Recipes and Solutions" page (seeds 000, 001, 003).
//!
//! The lock on `key` is the directory `/lockbench/<key>`. To acquire, a
//! client creates an `EPHEMERAL_SEQUENTIAL` child there and lists the
//! children: the lowest sequence number holds the lock. Otherwise it waits
//! for a watch and lists again:
//!
//! - `zookeeper` watches only the next-lower node, so a release wakes one
//!   waiter (no herd effect). This is the recipe as the ZooKeeper page and
//!   Curator's `InterProcessMutex` do it, and as the `zookeeper-client`
//!   crate's `Client::lock` does it.
//! - `zookeeper-herd` watches the lowest node, so every release wakes every
//!   waiter, and all of them list the children again: correct, but the
//!   server does O(waiters) work per hand-off. It exists to show the herd
//!   effect in numbers.
//!
//! Both recipes are this one loop, which differs only in the node watched,
//! so the two can be compared like for like. The loop is written here
//! rather than calling `Client::lock` because lockbench needs what that call
//! hides: a zero timeout that is one try, a timeout that removes our node
//! before saying `busy`, and a known outcome of the release (the crate's
//! lock guards delete in the background on drop).
//!
//! Node names are protected as in Curator and the crate
//! (`_c_<guid>-lock-<sequence>`, the GUID here being the session id and a
//! counter): when a create loses its connection, the client lists the
//! directory and finds its own node by that prefix instead of leaving an
//! orphan that would block the lock until the session ends. The names sort
//! like Curator's, so a Curator client could contend on the same directory.
//!
//! **Session = lease.** Each [`LockClient`] has one ZooKeeper session; its
//! ephemeral nodes live exactly as long as the session. The session timeout
//! is the lease: the scenario's lease is asked for as the session timeout,
//! the server clamps it to 2..20 ticks (1 s..10 s on the server lockbench
//! starts) and the negotiated value is `Guard.lease`. The session is made
//! when the client is made (with the default 5 s lease of scenarios) and
//! made again at an acquire that asks for another lease while it holds
//! nothing. While the client lives, its heartbeats keep the session and so
//! the lock: nothing is ever renewed by hand, and [`LockClient::renew`]
//! only checks that the session lives and our node exists (the lease asked
//! for is ignored; a live session's timeout cannot change).
//!
//! **Fence.** The `czxid` of our node: the zxid of the transaction that
//! created it, which only grows (per key and over the whole server). It is
//! read back with `exists`, pipelined with the first listing, rather than
//! taken from the create reply, whose `Stat` some 3.7/3.8 servers get wrong
//! (ZOOKEEPER-4026, for creates inside a multi; a plain create on 3.8.0
//! returned the right `czxid` when we checked).
//!
//! **A lost session is a lost lock.** When the session expires, the server
//! deletes our nodes, and another waiter may hold the lock at once. What this
//! backend does:
//! - acquire on an expired or closed session makes a new session first;
//!   an acquire whose session expires while it waits ends in `Fail` (its
//!   node went with the session); one whose request timed out or whose
//!   connection dropped mid-wait ends in `Info` and the session is dropped,
//!   so a node it may have left dies with the session, like a lease;
//! - release deletes our node by path: `was_held: false` if it is gone
//!   (the session expired), `Fail` if the delete definitely did not run;
//! - renew fails once the session or the node is gone.
//!   A holder whose session expires during a long pause (a GC pause, a
//!   partition) does not know it until its next request: two clients then
//!   both believe they hold the lock, which is why the fence exists
//!   (seed 003; Kleppmann, "How to do distributed locking", 2016).
//!
//! Dropping a client closes its TCP connection without ZooKeeper's
//! close-session request (the crate's detached mode), as a killed process
//! would: its nodes stay until the server expires the session. So
//! [`LockClient::crash`] is the default drop.
//!
//! Every request is bounded by `op_timeout`. A request that timed out, or
//! whose connection dropped before the answer, is `Info`; an error reply
//! from the server is `Fail`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use zookeeper_client as zk;

use super::{AcquireOptions, ClientConfig, Guard, LockBackend, LockClient, Outcome, Released};
use crate::cluster::Endpoint;
use crate::cluster::ServerKind;
use crate::cluster::topology::Shape;
use crate::error::{Error, Result};

/// Which recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    /// Each waiter watches the next-lower node.
    NextLower,
    /// Every waiter watches the lowest node.
    Herd,
}

impl Recipe {
    fn name(self) -> &'static str {
        match self {
            Recipe::NextLower => "zookeeper",
            Recipe::Herd => "zookeeper-herd",
        }
    }
}

/// The directory holding every lock's directory.
const ROOT: &str = "/lockbench";

/// The session timeout asked for before any acquire says its lease: the
/// scenarios' default lease.
const DEFAULT_SESSION: Duration = Duration::from_secs(5);

/// How long `connect` waits for the first session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a read that lost its connection is tried again while the
/// session may still come back.
const READ_TRIES: usize = 3;

/// The ZooKeeper lock backend.
#[derive(Debug, Clone)]
pub struct ZkBackend {
    /// Which recipe.
    recipe: Recipe,
    /// The connect string (`host:port,...`).
    cluster: String,
}

/// Connects the backend to its servers: checks that a session can be made
/// and creates the root directory.
pub async fn connect(recipe: Recipe, endpoints: &[Endpoint]) -> Result<Arc<dyn LockBackend>> {
    let err = |endpoint: &str, message: String| Error::Backend {
        backend: recipe.name().into(),
        endpoint: endpoint.to_string(),
        message,
    };
    if endpoints.is_empty() {
        return Err(err("", "no zookeeper endpoint".into()));
    }
    let cluster = endpoints
        .iter()
        .map(|e| e.addr.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // Not detached: dropping this client closes its session cleanly.
    let zk = tokio::time::timeout(
        CONNECT_TIMEOUT,
        zk::Client::connector()
            .with_fail_eagerly()
            .connect(&cluster),
    )
    .await
    .map_err(|_| err(&cluster, format!("no session within {CONNECT_TIMEOUT:?}")))?
    .map_err(|e| err(&cluster, format!("cannot make a session: {e}")))?;
    let made = tokio::time::timeout(CONNECT_TIMEOUT, zk.create(ROOT, b"", &dir_options()))
        .await
        .map_err(|_| {
            err(
                &cluster,
                format!("creating {ROOT}: no answer within {CONNECT_TIMEOUT:?}"),
            )
        })?;
    match made {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(err(&cluster, format!("creating {ROOT}: {e}"))),
    }
    Ok(Arc::new(ZkBackend { recipe, cluster }))
}

/// Options of the persistent lock directories.
fn dir_options() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Options of the lock nodes.
fn node_options() -> zk::CreateOptions<'static> {
    zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all())
}

#[async_trait]
impl LockBackend for ZkBackend {
    fn name(&self) -> &str {
        self.recipe.name()
    }

    async fn client(&self, config: ClientConfig) -> Result<Box<dyn LockClient>> {
        let mut client = ZkClient {
            recipe: self.recipe,
            cluster: self.cluster.clone(),
            op_timeout: config.op_timeout,
            session: None,
            held: HashMap::new(),
            counter: 0,
            abandoned: Vec::new(),
            failed: Vec::new(),
        };
        client
            .new_session(DEFAULT_SESSION)
            .await
            .map_err(|message| Error::Backend {
                backend: self.recipe.name().into(),
                endpoint: self.cluster.clone(),
                message,
            })?;
        Ok(Box::new(client))
    }
}

/// One session and the timeout asked for it.
struct Session {
    zk: zk::Client,
    /// The session timeout asked for (the server may have clamped it).
    requested: Duration,
}

/// One client: its session and the nodes it holds.
struct ZkClient {
    recipe: Recipe,
    cluster: String,
    op_timeout: Duration,
    /// The current session, if any.
    session: Option<Session>,
    /// Lock nodes this client holds, with the session that created each.
    held: HashMap<String, zk::SessionId>,
    /// Makes each create's protected prefix unique within the session.
    counter: u64,
    /// Nodes whose release may not have happened (`info`): deleted before
    /// this client's next acquire, as Curator's guaranteed delete keeps
    /// trying. Otherwise a node left by a release that lost
    /// its connection outlives the hold while the session lives on (it
    /// moves to another server), and this client's next acquire queues
    /// behind its own old node: a deadlock for every client of the key.
    abandoned: Vec<String>,
    /// Nodes whose release failed (it did not happen): still held until a
    /// retried release deletes them, or until this client's next acquire of
    /// the same key, which gives the grant up (docs/design.md, the hold
    /// rule): then they join `abandoned`, for the same reason.
    failed: Vec<String>,
}

/// Why one request gave no answer.
#[derive(Debug)]
enum ReqError {
    /// The server or the session said no.
    Zk(zk::Error),
    /// No answer within `op_timeout`.
    TimedOut(Duration),
}

impl std::fmt::Display for ReqError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqError::Zk(e) => write!(f, "{e}"),
            ReqError::TimedOut(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

impl ReqError {
    /// Whether the request definitely did not change anything.
    fn definite(&self) -> bool {
        match self {
            ReqError::Zk(e) => no_effect(e),
            ReqError::TimedOut(_) => false,
        }
    }

    /// Whether the session is over (its ephemeral nodes are gone or will
    /// be, and nothing more can be done with it).
    fn session_over(&self) -> bool {
        matches!(
            self,
            ReqError::Zk(
                zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
            )
        )
    }

    fn is(&self, e: &zk::Error) -> bool {
        matches!(self, ReqError::Zk(x) if x == e)
    }
}

/// Errors after which the request surely did not run (a reply from the
/// server, or a session that is over). A lost connection or a timeout is
/// not among them.
fn no_effect(e: &zk::Error) -> bool {
    use zk::Error::*;
    matches!(
        e,
        NoNode
            | NoAuth
            | BadVersion
            | NoChildrenForEphemerals
            | NodeExists
            | NotEmpty
            | SessionExpired
            | InvalidAcl
            | AuthFailed
            | SessionMoved
            | NotReadOnly
            | NoWatcher
            | QuotaExceeded
            | Throttled
            | MarshallingError
            | Unimplemented
            | ReconfigDisabled
            | UnexpectedErrorCode(_)
            | ClientClosed
            | NoHosts
            | BadArguments(_)
    )
}

/// How an acquire ended without the lock.
enum End {
    /// Still held by another client at the deadline.
    Busy,
    /// Definitely not taken.
    Fail(String),
    /// Maybe taken (in the server's eyes).
    Unknown(String),
}

/// The directory of the lock `key`. Keys are escaped so any string makes
/// one path component (`/`, `%`, control characters, `.` and `..`).
fn lock_dir(key: &str) -> String {
    let mut out = String::with_capacity(ROOT.len() + 1 + key.len());
    out.push_str(ROOT);
    out.push('/');
    if key.is_empty() || key == "." || key == ".." {
        out.push('%');
    }
    for c in key.chars() {
        if c == '/' || c == '%' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The sequence number of a lock node's name (`..-lock-0000000042`).
fn sequence(name: &str) -> Option<i64> {
    let (_, digits) = name.rsplit_once("-lock-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lock nodes of a listing, lowest sequence first.
fn contenders(children: Vec<String>) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = children
        .into_iter()
        .filter_map(|c| sequence(&c).map(|s| (s, c)))
        .collect();
    v.sort_unstable();
    v
}

/// The node to watch, or `None` when `ours` is the lowest and holds the
/// lock. `Err` when our node is not in the listing.
fn to_watch<'a>(
    recipe: Recipe,
    nodes: &'a [(i64, String)],
    ours: &str,
) -> std::result::Result<Option<&'a str>, ()> {
    let i = nodes.iter().position(|(_, n)| n == ours).ok_or(())?;
    if i == 0 {
        return Ok(None);
    }
    Ok(Some(match recipe {
        Recipe::NextLower => nodes[i - 1].1.as_str(),
        Recipe::Herd => nodes[0].1.as_str(),
    }))
}

impl ZkClient {
    /// Deletes the guard's node: the release.
    async fn delete_lock_node(&mut self, guard: &Guard) -> Outcome<Released> {
        let path = guard.token.as_str();
        if !path.starts_with(ROOT) {
            return Outcome::Fail(format!("{path:?} is not a zookeeper lock node"));
        }
        let owner = self.held.get(path).copied();
        let zk = match self.session_for(None).await {
            Ok(zk) => zk,
            // Nothing was sent: the node, if it is still there, stays.
            Err(why) => return Outcome::Fail(why),
        };
        // Any session may delete the node (its ACL lets anyone): a node
        // that still exists is still the lowest, so deleting it releases
        // our lock. Two tries when the first loses its connection.
        let mut lost = false;
        for _ in 0..2 {
            match self.bounded(zk.delete(path, None)).await {
                Ok(()) => {
                    self.held.remove(path);
                    return Outcome::Ok(Released { was_held: true });
                }
                Err(e) if e.is(&zk::Error::NoNode) => {
                    self.held.remove(path);
                    // Gone after our own delete lost its answer: that delete
                    // released it (the session lives, so no expiry did).
                    return Outcome::Ok(Released { was_held: lost });
                }
                Err(e) if e.is(&zk::Error::ConnectionLoss) => lost = true,
                Err(e) if e.session_over() => {
                    self.drop_session();
                    if owner == Some(zk.session_id()) && !lost {
                        // Our own session ended: the server deleted the
                        // node with it.
                        self.held.remove(path);
                        return Outcome::Ok(Released { was_held: false });
                    }
                    return Outcome::Fail(format!("delete: {e}"));
                }
                Err(e) if e.definite() && !lost => return Outcome::Fail(format!("delete: {e}")),
                Err(e) => return Outcome::Info(format!("delete: {e}")),
            }
        }
        Outcome::Info("delete: connection lost twice".into())
    }

    /// Deletes the nodes of releases that did not certainly happen; those
    /// still not deleted stay for the next try.
    async fn delete_abandoned(&mut self, zk: &zk::Client) {
        for path in std::mem::take(&mut self.abandoned) {
            match self.bounded(zk.delete(&path, None)).await {
                Ok(()) => {
                    self.held.remove(&path);
                }
                // Gone already, or gone with its session.
                Err(e) if e.is(&zk::Error::NoNode) || e.session_over() => {
                    self.held.remove(&path);
                }
                Err(_) => self.abandoned.push(path),
            }
        }
    }

    /// Runs one request, bounded by `op_timeout`.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, zk::Error>>,
    ) -> std::result::Result<T, ReqError> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ReqError::Zk(e)),
            Err(_) => Err(ReqError::TimedOut(self.op_timeout)),
        }
    }

    /// Makes a new session asking for `timeout`; the old one, if any, is
    /// dropped (its nodes die when the server expires it).
    async fn new_session(&mut self, timeout: Duration) -> std::result::Result<(), String> {
        self.drop_session();
        let connect = zk::Client::connector()
            .with_session_timeout(timeout)
            // Dropping the client must not close the session politely:
            // see the module docs.
            .with_detached()
            .with_fail_eagerly()
            .connect(&self.cluster);
        // A connect that is slower than a request is allowed a little more.
        let limit = self.op_timeout.max(Duration::from_secs(1));
        let zk = match tokio::time::timeout(limit, connect).await {
            Ok(Ok(zk)) => zk,
            Ok(Err(e)) => return Err(format!("cannot make a session: {e}")),
            Err(_) => return Err(format!("cannot make a session: no answer within {limit:?}")),
        };
        self.session = Some(Session {
            zk,
            requested: timeout,
        });
        Ok(())
    }

    /// Forgets the current session and what it held.
    fn drop_session(&mut self) {
        if let Some(s) = self.session.take() {
            let id = s.zk.session_id();
            self.held.retain(|_, sid| *sid != id);
        }
    }

    /// A live session for an acquire asking for `lease`: the current one,
    /// or a new one if it is over, or if it has another timeout and holds
    /// nothing. Waits up to `op_timeout` for a disconnected session to come
    /// back. `Err` means nothing was sent.
    async fn session_for(
        &mut self,
        lease: Option<Duration>,
    ) -> std::result::Result<zk::Client, String> {
        let replace = match &self.session {
            None => true,
            Some(s) => {
                let id = s.zk.session_id();
                s.zk.state().is_terminated()
                    || lease.is_some_and(|l| l != s.requested)
                        && !self.held.values().any(|sid| *sid == id)
            }
        };
        if replace {
            let timeout = lease
                .or(self.session.as_ref().map(|s| s.requested))
                .unwrap_or(DEFAULT_SESSION);
            self.new_session(timeout).await?;
        }
        let Some(s) = &self.session else {
            return Err("no session".into());
        };
        let zk = s.zk.clone();
        let mut states = zk.state_watcher();
        let mut state = states.state();
        let deadline = Instant::now() + self.op_timeout;
        // Bounded by the deadline; each turn waits for one state change.
        while state == zk::SessionState::Disconnected {
            match tokio::time::timeout_at(deadline, states.changed()).await {
                Ok(s) => state = s,
                Err(_) => {
                    return Err(format!(
                        "session disconnected for {:?}; nothing sent",
                        self.op_timeout
                    ));
                }
            }
        }
        if state.is_terminated() {
            return Err(format!("session {state:?}; nothing sent"));
        }
        Ok(zk)
    }

    /// Lists `dir`, trying again while the connection comes back.
    async fn list(
        &self,
        zk: &zk::Client,
        dir: &str,
    ) -> std::result::Result<(Vec<String>, Instant), ReqError> {
        let mut last = None;
        for _ in 0..READ_TRIES {
            let sent = Instant::now();
            match self.bounded(zk.list_children(dir)).await {
                Ok(children) => return Ok((children, sent)),
                Err(e) if e.is(&zk::Error::ConnectionLoss) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ReqError::Zk(zk::Error::ConnectionLoss)))
    }

    /// Creates our node under `dir` with the protected `prefix`; its path.
    async fn create_node(
        &self,
        zk: &zk::Client,
        dir: &str,
        prefix: &str,
    ) -> std::result::Result<String, End> {
        // Two turns: the second after making a missing directory.
        for turn in 0..2 {
            match self.bounded(zk.create(prefix, b"", &node_options())).await {
                Ok((_, seq)) => return Ok(format!("{prefix}{seq}")),
                Err(e) if e.is(&zk::Error::NoNode) && turn == 0 => {
                    // The lock's directory does not exist yet.
                    match self.bounded(zk.mkdir(dir, &dir_options())).await {
                        Ok(()) => continue,
                        // No lock node was made either way.
                        Err(e) => return Err(End::Fail(format!("creating {dir}: {e}"))),
                    }
                }
                Err(e) if e.is(&zk::Error::ConnectionLoss) => {
                    // The create may have been applied: look for our
                    // protected name.
                    let name = prefix.rsplit('/').next().unwrap_or(prefix);
                    return match self.list(zk, dir).await {
                        Ok((children, _)) => match children.iter().find(|c| c.starts_with(name)) {
                            Some(c) => Ok(format!("{dir}/{c}")),
                            None => Err(End::Fail(
                                "create lost its connection before it was applied".into(),
                            )),
                        },
                        Err(e2) if e2.session_over() => {
                            Err(End::Fail(format!("create: {e}; then {e2}")))
                        }
                        Err(e2) => Err(End::Unknown(format!("create: {e}; then listing: {e2}"))),
                    };
                }
                Err(e) if e.definite() => return Err(End::Fail(format!("create: {e}"))),
                Err(e) => return Err(End::Unknown(format!("create: {e}"))),
            }
        }
        Err(End::Fail(format!("create: {dir} keeps disappearing")))
    }

    /// Waits until our node at `path` is the lowest, or the deadline.
    /// Returns the fence and the send time of the last request the server
    /// answered.
    async fn wait_turn(
        &self,
        zk: &zk::Client,
        dir: &str,
        path: &str,
        deadline: Instant,
    ) -> std::result::Result<(u64, Instant), End> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let err = |what: &str, e: ReqError| {
            if e.session_over() || e.definite() {
                End::Fail(format!("{what}: {e}"))
            } else {
                End::Unknown(format!("{what}: {e}"))
            }
        };
        // The fence, read back (pipelined with the first listing: the crate
        // sends each request when it is called).
        let stat = zk.check_stat(path);
        let listing = self.list(zk, dir);
        let (stat, listing) = tokio::join!(self.bounded(stat), listing);
        let fence = match stat {
            Ok(Some(stat)) => stat.czxid as u64,
            Ok(None) => return Err(End::Fail("our node vanished right after its create".into())),
            Err(e) => return Err(err("reading our node", e)),
        };
        let (mut children, mut sent) = listing.map_err(|e| err("listing", e))?;
        // Each turn waits for a watch or ends; the deadline bounds them, and
        // the count bounds a server that keeps waking us for nothing.
        for _ in 0..1_000_000 {
            let nodes = contenders(children);
            let target = match to_watch(self.recipe, &nodes, name) {
                Ok(None) => return Ok((fence, sent)),
                Ok(Some(t)) => format!("{dir}/{t}"),
                Err(()) => {
                    return Err(End::Fail("our node is gone (session expired?)".into()));
                }
            };
            if Instant::now() >= deadline {
                return Err(End::Busy);
            }
            match self.bounded(zk.get_and_watch_data(&target)).await {
                Ok((_, _, watcher)) => {
                    if tokio::time::timeout_at(deadline, watcher.changed())
                        .await
                        .is_err()
                    {
                        return Err(End::Busy);
                    }
                }
                // Gone between the listing and the watch: list again.
                Err(e) if e.is(&zk::Error::NoNode) => {}
                Err(e) if e.is(&zk::Error::ConnectionLoss) => {}
                Err(e) => return Err(err("watching", e)),
            }
            (children, sent) = self.list(zk, dir).await.map_err(|e| err("listing", e))?;
        }
        Err(End::Busy)
    }
}

#[async_trait]
impl LockClient for ZkClient {
    async fn acquire(&mut self, key: &str, opts: &AcquireOptions) -> Outcome<Guard> {
        let started = Instant::now();
        let deadline = started + opts.timeout;
        let zk = match self.session_for(Some(opts.lease)).await {
            Ok(zk) => zk,
            Err(why) => return Outcome::Fail(why),
        };
        let dir = lock_dir(key);
        let mine = format!("{dir}/");
        let (given_up, kept): (Vec<String>, Vec<String>) = std::mem::take(&mut self.failed)
            .into_iter()
            .partition(|p| p.starts_with(&mine));
        self.failed = kept;
        for path in given_up {
            if !self.abandoned.contains(&path) {
                self.abandoned.push(path);
            }
        }
        self.delete_abandoned(&zk).await;
        let sid = zk.session_id();
        self.counter += 1;
        let prefix = format!("{dir}/_c_{:016x}-{:08x}-lock-", sid.0 as u64, self.counter);
        let result = match self.create_node(&zk, &dir, &prefix).await {
            Ok(path) => match self.wait_turn(&zk, &dir, &path, deadline).await {
                Ok((fence, sent)) => Ok((path, fence, sent)),
                Err(end) => Err((Some(path), end)),
            },
            Err(end) => Err((None, end)),
        };
        match result {
            Ok((path, fence, sent)) => {
                self.held.insert(path.clone(), sid);
                Outcome::Ok(Guard {
                    key: key.to_string(),
                    token: path,
                    fence: Some(fence),
                    lease: Some(zk.session_timeout()),
                    // The server heard from us when it got this request:
                    // the session (and lock) lasts at least a session
                    // timeout from then.
                    acquired_at: sent,
                })
            }
            Err((path, End::Busy)) => {
                // Take our node out of the queue; if that fails, the node
                // dies with the dropped session.
                if let Some(path) = path {
                    match self.bounded(zk.delete(&path, None)).await {
                        Ok(()) => {}
                        Err(e) if e.definite() => {}
                        Err(_) => self.drop_session(),
                    }
                }
                Outcome::Fail(format!(
                    "busy: still held by another client after {:?}",
                    opts.timeout
                ))
            }
            Err((path, End::Fail(why))) => {
                if zk.state().is_terminated() {
                    self.drop_session();
                } else if let Some(path) = path
                    && let Err(e) = self.bounded(zk.delete(&path, None)).await
                    && !e.definite()
                {
                    self.drop_session();
                }
                Outcome::Fail(why)
            }
            Err((_, End::Unknown(why))) => {
                // A node may be left: drop the session so it dies with it,
                // as a lease would run out.
                self.drop_session();
                Outcome::Info(why)
            }
        }
    }

    async fn release(&mut self, guard: &Guard) -> Outcome<Released> {
        let out = self.delete_lock_node(guard).await;
        let path = &guard.token;
        match &out {
            Outcome::Ok(_) => {
                self.abandoned.retain(|p| p != path);
                self.failed.retain(|p| p != path);
            }
            // A failed release did not happen: the client still holds the
            // lock until a retried release deletes the node, or until its
            // next acquire of the key gives the grant up (`failed`).
            Outcome::Fail(_) => {
                if path.starts_with(ROOT) && !self.failed.contains(path) {
                    self.failed.push(path.clone());
                }
            }
            Outcome::Info(_) => {
                if path.starts_with(ROOT) && !self.abandoned.contains(path) {
                    self.abandoned.push(path.clone());
                }
            }
        }
        out
    }

    async fn renew(&mut self, guard: &mut Guard, _lease: Duration) -> Outcome<()> {
        let path = guard.token.as_str();
        let Some(s) = &self.session else {
            return Outcome::Fail("not held: no session".into());
        };
        let zk = s.zk.clone();
        let sid = zk.session_id();
        if self.held.get(path) != Some(&sid) || zk.state().is_terminated() {
            return Outcome::Fail("not held: the session that took it is gone".into());
        }
        let sent = Instant::now();
        match self.bounded(zk.check_stat(path)).await {
            Ok(Some(stat)) if stat.ephemeral_owner == sid.0 => {
                guard.lease = Some(zk.session_timeout());
                guard.acquired_at = sent;
                Outcome::Ok(())
            }
            Ok(_) => {
                self.held.remove(path);
                Outcome::Fail("not held: our node is gone".into())
            }
            Err(e) if e.session_over() => {
                self.drop_session();
                Outcome::Fail(format!("not held: {e}"))
            }
            Err(e) if e.definite() => Outcome::Fail(format!("renew: {e}")),
            Err(e) => Outcome::Info(format!("renew: {e}")),
        }
    }
}

/// The ZooKeeper recipes, as the registry knows them: each runs on an
/// ensemble of three under `topology = "replicated"`.
pub(super) fn backends() -> Vec<super::BackendInfo> {
    vec![
        super::BackendInfo::new(
            Recipe::NextLower.name(),
            Some(ServerKind::ZooKeeper),
            "EPHEMERAL_SEQUENTIAL node; lowest holds; each waiter watches the next-lower node",
            |eps| async move { connect(Recipe::NextLower, &eps).await },
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper))
        .notified("watch on the next-lower node"),
        super::BackendInfo::new(
            Recipe::Herd.name(),
            Some(ServerKind::ZooKeeper),
            "EPHEMERAL_SEQUENTIAL node; every waiter watches the lowest node (the herd effect)",
            |eps| async move { connect(Recipe::Herd, &eps).await },
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper))
        .notified("all watch the lowest node"),
        // The first recipe on ZooKeeper 3.9 (from Maven Central), to set the
        // versions side by side: one server, or an ensemble of three 3.9s.
        super::BackendInfo::new(
            "zookeeper-3.9",
            Some(ServerKind::ZooKeeper39),
            "the zookeeper recipe on ZooKeeper 3.9 (its jars from Maven Central): \
             EPHEMERAL_SEQUENTIAL node; lowest holds; each waiter watches the next-lower node",
            |eps| async move { connect(Recipe::NextLower, &eps).await },
        )
        .replicated(Shape::Ensemble(3, ServerKind::ZooKeeper39))
        .notified("watch on the next-lower node"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_make_one_path_component() {
        assert_eq!(lock_dir("k"), "/lockbench/k");
        assert_eq!(lock_dir("a/b%c"), "/lockbench/a%2Fb%25c");
        assert_eq!(lock_dir(".."), "/lockbench/%..");
        assert_eq!(lock_dir(""), "/lockbench/%");
    }

    #[test]
    fn next_lower_watches_one_node_and_herd_the_lowest() {
        let names = vec![
            "_c_b-2-lock-0000000012".to_string(),
            "junk".to_string(),
            "_c_a-1-lock-0000000010".to_string(),
            "_c_c-3-lock-0000000011".to_string(),
        ];
        let nodes = contenders(names);
        assert_eq!(nodes.len(), 3);
        let ours = "_c_b-2-lock-0000000012";
        assert_eq!(
            to_watch(Recipe::NextLower, &nodes, ours),
            Ok(Some("_c_c-3-lock-0000000011"))
        );
        assert_eq!(
            to_watch(Recipe::Herd, &nodes, ours),
            Ok(Some("_c_a-1-lock-0000000010"))
        );
        assert_eq!(
            to_watch(Recipe::Herd, &nodes, "_c_a-1-lock-0000000010"),
            Ok(None)
        );
        assert_eq!(to_watch(Recipe::NextLower, &nodes, "gone"), Err(()));
    }

    #[test]
    fn sequences_parse_only_lock_names() {
        assert_eq!(sequence("_c_x-lock-0000000007"), Some(7));
        assert_eq!(sequence("_c_x-lock-"), None);
        assert_eq!(sequence("_c_x-lock-12a"), None);
        assert_eq!(sequence("other"), None);
    }
}
