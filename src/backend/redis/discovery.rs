//! How a Redis client finds its server in Sentinel mode.
//!
//! **Sentinel mode.** When the endpoints include sentinels (names starting
//! with `sentinel-`, after the data servers `redis-1..`), both recipes run
//! against whichever data server the sentinels name as the primary of
//! `MASTER_NAME`: a client asks the sentinels in order, maps the answer
//! (the address the server announces to its peers) back to that data
//! endpoint's `addr`, connects, and checks that `ROLE` says `master`. It
//! keeps that connection while it works, and after any error (a dropped
//! connection, a timeout, `READONLY` from a primary that was demoted to a
//! replica) it discovers the primary again before its next try. The redis
//! crate's own sentinel client is not used: it would connect to the
//! announced address, which in lockbench's topology is a fault proxy
//! between servers, not the address this client must use (which may be a
//! per-host proxy of its own).

use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use crate::cluster::Endpoint;
use crate::cluster::redis::{connect_and_query, query_once};
use crate::cluster::sentinel::MASTER_NAME;

/// How a Sentinel-mode client finds the primary: the sentinels to ask, in
/// order, and each data server's announced address → the address to use.
#[derive(Debug)]
pub(super) struct Discovery {
    /// The sentinels' addresses, in endpoint order.
    pub(super) sentinels: Vec<String>,
    /// (announced address, address to connect to) of each data server.
    data: Vec<(String, String)>,
}

/// Pause between rounds of asking every sentinel.
const DISCOVERY_PAUSE: Duration = Duration::from_millis(100);

/// Most rounds of one discovery (each is also bounded in time).
const DISCOVERY_ROUNDS: usize = 20;

impl Discovery {
    /// Sentinel mode when any endpoint is a sentinel; `None` otherwise.
    pub(super) fn from_endpoints(endpoints: &[Endpoint]) -> Option<Discovery> {
        let is_sentinel = |e: &&Endpoint| e.name.starts_with("sentinel-");
        let sentinels: Vec<String> = endpoints
            .iter()
            .filter(is_sentinel)
            .map(|e| e.addr.clone())
            .collect();
        if sentinels.is_empty() {
            return None;
        }
        let data = endpoints
            .iter()
            .filter(|e| !is_sentinel(e))
            .map(|e| {
                // An endpoint that announces nothing (a deployment without
                // proxies) is known to the sentinels by its own address.
                let announced = e.announced.clone().unwrap_or_else(|| e.addr.clone());
                (announced, e.addr.clone())
            })
            .collect();
        Some(Discovery { sentinels, data })
    }

    /// The address to use for the data server the sentinels call
    /// `announced`.
    fn map(&self, announced: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(a, _)| a == announced)
            .map(|(_, addr)| addr.as_str())
    }

    /// Asks the sentinels in order for the primary and connects to it,
    /// until one names a server whose `ROLE` is `master`; all within
    /// `op_timeout` (which also bounds each request on the connection
    /// returned). On failure: why, for each sentinel asked last.
    pub(super) async fn primary(
        &self,
        op_timeout: Duration,
    ) -> std::result::Result<(String, MultiplexedConnection), String> {
        let deadline = Instant::now() + op_timeout;
        // A sentinel that does not answer (paused, cut off) may take half
        // the time, so the next one is asked; a refused one fails at once.
        let ask_bound = (op_timeout / 2).max(Duration::from_millis(100));
        let mut why = Vec::new();
        for _ in 0..DISCOVERY_ROUNDS {
            why.clear();
            for sentinel in &self.sentinels {
                if Instant::now() >= deadline {
                    break;
                }
                match self
                    .try_sentinel(sentinel, ask_bound, deadline, op_timeout)
                    .await
                {
                    Ok(found) => return Ok(found),
                    Err(e) => why.push(format!("sentinel {sentinel}: {e}")),
                }
            }
            if Instant::now() + DISCOVERY_PAUSE >= deadline {
                break;
            }
            tokio::time::sleep(DISCOVERY_PAUSE).await;
        }
        Err(format!(
            "no primary found through the sentinels within {op_timeout:?}: {}",
            why.join("; ")
        ))
    }

    /// One sentinel's answer, connected and checked: the question bounded
    /// by `ask_bound`, everything by `deadline`; the connection returned
    /// times requests out after `op_timeout`.
    async fn try_sentinel(
        &self,
        sentinel: &str,
        ask_bound: Duration,
        deadline: Instant,
        op_timeout: Duration,
    ) -> std::result::Result<(String, MultiplexedConnection), String> {
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(MASTER_NAME);
        let step = ask_bound.min(left());
        let named: Option<(String, u16)> = query_once(sentinel, &ask, step, step).await?;
        let (ip, port) = named.ok_or_else(|| format!("names no master {MASTER_NAME}"))?;
        let announced = format!("{ip}:{port}");
        let addr = self
            .map(&announced)
            .ok_or_else(|| format!("names {announced}, which is no data endpoint"))?;
        let (conn, role) =
            connect_and_query::<Vec<Value>>(addr, &redis::cmd("ROLE"), left(), op_timeout).await?;
        let role = role
            .first()
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .unwrap_or_default();
        if role == "master" {
            Ok((addr.to_string(), conn))
        } else {
            Err(format!(
                "names {announced} ({addr}), whose ROLE is {role:?}"
            ))
        }
    }
}

/// A Sentinel-mode client's connection to the primary it found.
pub(super) struct SentinelLink {
    pub(super) discovery: Arc<Discovery>,
    /// Bounds one discovery and each request.
    pub(super) op_timeout: Duration,
    /// The primary's connection; `None` after an error, until the next
    /// operation discovers the primary again. Never held across an await.
    pub(super) current: std::sync::Mutex<Option<MultiplexedConnection>>,
}

impl SentinelLink {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection kept, or a new one to the primary the sentinels
    /// name now (bounded by the op timeout). Nothing has been sent to a
    /// primary when this fails.
    pub(super) async fn connection(&self) -> std::result::Result<MultiplexedConnection, String> {
        if let Some(conn) = self.slot().clone() {
            return Ok(conn);
        }
        let (_, conn) = self.discovery.primary(self.op_timeout).await?;
        *self.slot() = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection after an error: the primary may have changed.
    pub(super) fn forget(&self) {
        *self.slot() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, addr: &str, announced: Option<&str>) -> Endpoint {
        Endpoint {
            name: name.into(),
            addr: addr.into(),
            announced: announced.map(Into::into),
        }
    }

    #[test]
    fn sentinel_mode_only_with_sentinel_endpoints() {
        let standalone = [endpoint("redis-1", "127.0.0.1:1", None)];
        assert!(Discovery::from_endpoints(&standalone).is_none());
        let eps = [
            endpoint("redis-1", "127.0.0.1:1", Some("127.0.0.1:11")),
            endpoint("redis-2", "127.0.0.1:2", Some("127.0.0.1:12")),
            endpoint("redis-3", "127.0.0.1:3", None),
            endpoint("sentinel-1", "127.0.0.1:21", None),
            endpoint("sentinel-2", "127.0.0.1:22", None),
        ];
        let d = Discovery::from_endpoints(&eps).unwrap();
        assert_eq!(d.sentinels, ["127.0.0.1:21", "127.0.0.1:22"]);
        // Announced addresses map back to the addresses to use; a server
        // that announces nothing is known by its own address.
        assert_eq!(d.map("127.0.0.1:12"), Some("127.0.0.1:2"));
        assert_eq!(d.map("127.0.0.1:3"), Some("127.0.0.1:3"));
        assert_eq!(d.map("127.0.0.1:2"), None);
        assert_eq!(d.map("127.0.0.1:21"), None);
    }

    #[tokio::test]
    async fn discovery_without_sentinels_answering_is_bounded() {
        // Ports nothing listens on: refused at once, asked again until the
        // op timeout, then an error naming each sentinel.
        let ports: Vec<u16> = (0..2)
            .map(|_| crate::cluster::free_port().expect("a free port"))
            .collect();
        let eps = [
            endpoint("redis-1", "127.0.0.1:1", Some("127.0.0.1:11")),
            endpoint("sentinel-1", &format!("127.0.0.1:{}", ports[0]), None),
            endpoint("sentinel-2", &format!("127.0.0.1:{}", ports[1]), None),
        ];
        let d = Discovery::from_endpoints(&eps).unwrap();
        let started = std::time::Instant::now();
        let err = d.primary(Duration::from_millis(300)).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(
            err.contains(&format!("sentinel 127.0.0.1:{}", ports[1])),
            "{err}"
        );
    }
}
