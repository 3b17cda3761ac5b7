//! A TCP proxy for one link (a host's clients to one server), with faults
//! that can be switched on and off while connections stay up.
//!
//! In the spirit of Toxiproxy: it moves bytes and parses nothing, so it
//! carries every backend's protocol. Each connection is two pumps, one per
//! direction (`Upstream`: client to server; `Downstream`: server to
//! client); each pump reads a chunk, then delivers it according to the
//! link's current faults:
//!
//! - **blackhole**: bytes stop, connections stay open (the pump holds the
//!   chunk and stops reading, so the sender's buffers fill, as in a real
//!   partition; clients see timeouts). Healing delivers what was held, as
//!   TCP retransmission would. While both directions are blackholed, new
//!   connections are left unaccepted in the listen queue until healed.
//! - **reset**: every connection is cut with RST and new ones are refused
//!   until healed.
//! - **latency** with jitter: each chunk is delivered after a delay; order
//!   is kept.
//! - **bandwidth**: delivery is paced to a byte rate.
//! - **cut sources**: connections from some loopback source addresses
//!   (`127.0.0.N`, N < 64) are blackholed both ways, the others flow: a
//!   peer that connects from an address of its own is cut from this
//!   server while everyone else still reaches it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Which way bytes travel on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

/// Faults on one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Toxics {
    /// Bytes stop; connections stay open.
    pub blackhole: bool,
    /// Added delay per chunk.
    pub latency: Duration,
    /// Up to this much more or less delay, drawn per chunk.
    pub jitter: Duration,
    /// At most this many bytes per second, if set.
    pub bandwidth: Option<u64>,
}

/// The state of a whole link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkState {
    /// Client-to-server faults.
    pub upstream: Toxics,
    /// Server-to-client faults.
    pub downstream: Toxics,
    /// Connections are cut (RST) and new ones refused.
    pub reset: bool,
    /// Bit N set: connections from `127.0.0.N` are blackholed both ways.
    pub cut_sources: u64,
}

impl LinkState {
    fn toxics(&self, dir: Direction) -> &Toxics {
        match dir {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }

    fn toxics_mut(&mut self, dir: Direction) -> &mut Toxics {
        match dir {
            Direction::Upstream => &mut self.upstream,
            Direction::Downstream => &mut self.downstream,
        }
    }
}

/// A running proxy. Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    listen: SocketAddr,
    /// Where it forwards to.
    upstream: SocketAddr,
    /// The link's faults; every pump watches it.
    state: watch::Sender<LinkState>,
    /// The accept loop (which owns the connection tasks).
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Size of one read; also the unit of latency and pacing.
const CHUNK: usize = 16 * 1024;

impl Proxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`, which
    /// must be a loopback address. `seed` draws the jitter.
    pub async fn start(upstream: SocketAddr, seed: u64) -> Result<Proxy> {
        Proxy::start_patient(upstream, seed, Duration::ZERO).await
    }

    /// Like [`Proxy::start`], but a connection whose upstream refuses is
    /// tried again for up to `patience` before it is refused, as a
    /// connecting kernel retransmits its SYN. For links between servers: a
    /// proxy accepts at once, so without this a server that connects a
    /// moment before its peer listens (a ZooKeeper follower to a leader
    /// just elected) would see its connection accepted and then closed,
    /// which it takes for a failed peer, where a direct connect would have
    /// been refused and retried.
    pub async fn start_patient(
        upstream: SocketAddr,
        seed: u64,
        patience: Duration,
    ) -> Result<Proxy> {
        if !upstream.ip().is_loopback() {
            return Err(Error::Backend {
                backend: "proxy".into(),
                endpoint: upstream.to_string(),
                message: "lockbench proxies only to loopback addresses".into(),
            });
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("127.0.0.1:0", e))?;
        let listen = listener
            .local_addr()
            .map_err(|e| Error::io("127.0.0.1:0", e))?;
        if listen == upstream {
            // Possible only if the upstream's port was free when the proxy
            // bound port 0: every connection would connect to itself.
            return Err(Error::Backend {
                backend: "proxy".into(),
                endpoint: upstream.to_string(),
                message: "the proxy was given its own upstream's port (nothing listened there)"
                    .into(),
            });
        }
        let (state, watcher) = watch::channel(LinkState::default());
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let accept = tokio::spawn(accept_loop(listener, upstream, watcher, rng, patience));
        Ok(Proxy {
            listen,
            upstream,
            state,
            accept,
        })
    }

    /// Where clients should connect.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The current faults.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    fn update(&self, f: impl FnOnce(&mut LinkState)) {
        self.state.send_modify(f);
    }

    /// Stops bytes in one direction, keeping connections open.
    pub fn blackhole(&self, dir: Direction) {
        self.update(|s| s.toxics_mut(dir).blackhole = true);
    }

    /// Stops bytes both ways (a partition that looks like a timeout).
    pub fn partition(&self) {
        self.update(|s| {
            s.upstream.blackhole = true;
            s.downstream.blackhole = true;
        });
    }

    /// Blackholes, both ways, the connections that come from `source`
    /// (`127.0.0.N` with N < 64; any other address is refused as an error).
    pub fn cut_source(&self, source: std::net::IpAddr) -> Result<()> {
        let bit = source_bit(source).ok_or_else(|| Error::Backend {
            backend: "proxy".into(),
            endpoint: source.to_string(),
            message: "only sources 127.0.0.0 to 127.0.0.63 can be cut one by one".into(),
        })?;
        self.update(|s| s.cut_sources |= bit);
        Ok(())
    }

    /// Cuts every connection with RST and refuses new ones.
    pub fn reset(&self) {
        self.update(|s| s.reset = true);
    }

    /// Delays one direction by `latency` ± `jitter`.
    pub fn latency(&self, dir: Direction, latency: Duration, jitter: Duration) {
        self.update(|s| {
            let t = s.toxics_mut(dir);
            t.latency = latency;
            t.jitter = jitter;
        });
    }

    /// Limits one direction to `bytes_per_s`.
    pub fn bandwidth(&self, dir: Direction, bytes_per_s: u64) {
        self.update(|s| s.toxics_mut(dir).bandwidth = Some(bytes_per_s.max(1)));
    }

    /// Sets the whole link state at once (the nemesis composes overlapping
    /// faults into one state, so that ending one keeps the others).
    pub fn set(&self, state: LinkState) {
        self.update(|s| *s = state);
    }

    /// Removes every fault: held bytes flow again, new connections are
    /// accepted. Nothing is restarted.
    pub fn heal(&self) {
        self.update(|s| *s = LinkState::default());
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<LinkState>,
    rng: Arc<Mutex<StdRng>>,
    patience: Duration,
) {
    let mut conns = JoinSet::new();
    let mut gate = state.clone();
    loop {
        // While both directions are blackholed, connections wait in the
        // listen queue, unaccepted: the server does not see them (as no
        // SYN crosses a partition), and the proxy spends no descriptor on
        // them (a server that retries its peers every few hundred ms
        // through a long partition would otherwise pile up held sockets,
        // two per try). Once the queue is full, the kernel drops further
        // SYNs and connects time out, as across a real partition. Healing
        // accepts the queued ones and delivers what they sent.
        let cut = {
            let s = gate.borrow_and_update();
            s.upstream.blackhole && s.downstream.blackhole && !s.reset
        };
        tokio::select! {
            accepted = listener.accept(), if !cut => match accepted {
                Ok((client, _)) => {
                    if state.borrow().reset {
                        refuse(client);
                        continue;
                    }
                    conns.spawn(connection(client, upstream, state.clone(), rng.clone(), patience));
                }
                // Out of descriptors (or another passing error): the
                // queued connection stays queued; try again shortly rather
                // than spin on a listener that stays readable.
                Err(_) => tokio::time::sleep(ACCEPT_RETRY).await,
            },
            // Any change: the loop looks again whether to accept.
            changed = gate.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// The bit of [`LinkState::cut_sources`] for `ip`, if it has one.
fn source_bit(ip: std::net::IpAddr) -> Option<u64> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            (a == 127 && b == 0 && c == 0 && d < 64).then(|| 1u64 << d)
        }
        std::net::IpAddr::V6(_) => None,
    }
}

/// How long the accept loop waits after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Closes a socket with RST (linger 0), as a refused or reset connection.
fn refuse(socket: TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<LinkState>,
    rng: Arc<Mutex<StdRng>>,
    patience: Duration,
) {
    let source = client
        .peer_addr()
        .ok()
        .and_then(|a| source_bit(a.ip()))
        .unwrap_or(0);
    let give_up = tokio::time::Instant::now() + patience;
    // Bounded by `patience`: one try every 20 ms.
    let server = loop {
        match TcpStream::connect(upstream).await {
            Ok(server) => break server,
            Err(_) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                refuse(client);
                return;
            }
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut up = tokio::spawn(pump(
        client_read,
        server_write,
        Direction::Upstream,
        source,
        state.clone(),
        rng.clone(),
    ));
    let mut down = tokio::spawn(pump(
        server_read,
        client_write,
        Direction::Downstream,
        source,
        state.clone(),
        rng,
    ));
    let reset = async {
        loop {
            if state.borrow_and_update().reset {
                return;
            }
            if state.changed().await.is_err() {
                // The proxy is gone: close like a reset.
                return;
            }
        }
    };
    tokio::select! {
        // Aborting the pumps drops both sockets; their zero linger (set in
        // `pump`) makes the close an RST.
        _ = reset => {
            up.abort();
            down.abort();
        }
        _ = &mut up => { down.abort(); }
        _ = &mut down => { up.abort(); }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Direction,
    source: u64,
    mut state: watch::Receiver<LinkState>,
    rng: Arc<Mutex<StdRng>>,
) {
    // Linger 0: when this pump is aborted by a reset, the socket closes
    // with RST, as a cut connection would.
    let _ = to.as_ref().set_zero_linger();
    let _ = from.as_ref().set_zero_linger();
    let mut buf = vec![0u8; CHUNK];
    // Deliveries never go back in time, so jitter cannot reorder bytes.
    let mut last_delivery = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let arrived = Instant::now();
        // Hold the chunk while the link is blackholed in this direction.
        loop {
            let held = {
                let s = state.borrow_and_update();
                s.toxics(dir).blackhole || s.cut_sources & source != 0
            };
            if !held {
                break;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
        let toxics = *state.borrow().toxics(dir);
        let mut due = arrived + toxics.latency;
        if !toxics.jitter.is_zero() {
            let j = toxics.jitter.as_micros() as i64;
            let offset = rng.lock().map(|mut r| r.random_range(-j..=j)).unwrap_or(0);
            due = if offset >= 0 {
                due + Duration::from_micros(offset as u64)
            } else {
                due.checked_sub(Duration::from_micros((-offset) as u64))
                    .unwrap_or(arrived)
            };
        }
        if let Some(rate) = toxics.bandwidth {
            let pace = Duration::from_secs_f64(n as f64 / rate as f64);
            due = due.max(last_delivery + pace);
        }
        due = due.max(last_delivery);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        last_delivery = due;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
