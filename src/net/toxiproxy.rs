//! A client of Toxiproxy's HTTP API, for deployments where the user runs
//! Toxiproxy in front of their servers: lockbench then adds and removes
//! toxics on the user's proxies instead of standing its own proxy on the
//! links. Only what faults need: the version, whether a proxy exists, a
//! proxy enabled or disabled, a toxic added or removed.
//!
//! The API is plain HTTP/1.1 with JSON bodies; each request is one
//! connection (`Connection: close`), bounded by a timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Which way a toxic acts: client to server, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// One toxic: its name (unique on its proxy), its type (`timeout`,
/// `latency`, `bandwidth`, `reset_peer`...), its stream and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique on its proxy.
    pub name: String,
    /// Toxiproxy's toxic type.
    pub kind: &'static str,
    /// The direction it acts in.
    pub stream: Stream,
    /// Its attributes, as the API takes them.
    pub attributes: serde_json::Value,
}

/// A Toxiproxy server's API, at `host:port`.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxiproxy {
    api: String,
}

impl Toxiproxy {
    /// The API at `api` (`host:port`, or `http://host:port`).
    pub fn new(api: &str) -> Toxiproxy {
        let api = api.trim_start_matches("http://").trim_end_matches('/');
        Toxiproxy {
            api: api.to_string(),
        }
    }

    /// Where the API is.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The server's version (`GET /version`).
    pub async fn version(&self) -> Result<String, String> {
        let body = self.call("GET", "/version", None).await?;
        Ok(match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => v["version"].as_str().unwrap_or(body.trim()).to_string(),
            Err(_) => body.trim().to_string(),
        })
    }

    /// Creates proxy `name`, listening on `listen` and forwarding to
    /// `upstream` (what a user does once, before lockbench runs).
    pub async fn create(&self, name: &str, listen: &str, upstream: &str) -> Result<(), String> {
        let body = serde_json::json!({
            "name": name, "listen": listen, "upstream": upstream, "enabled": true,
        });
        self.call("POST", "/proxies", Some(&body)).await.map(|_| ())
    }

    /// Whether proxy `name` is enabled.
    pub async fn enabled(&self, name: &str) -> Result<bool, String> {
        let body = self.call("GET", &format!("/proxies/{name}"), None).await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("proxy {name}: {e}: {body}"))?;
        Ok(v["enabled"].as_bool().unwrap_or(false))
    }

    /// The proxy `name`'s listen and upstream addresses; an error if the
    /// server has no such proxy.
    pub async fn proxy(&self, name: &str) -> Result<(String, String), String> {
        let body = self.call("GET", &format!("/proxies/{name}"), None).await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("proxy {name}: {e}: {body}"))?;
        Ok((
            v["listen"].as_str().unwrap_or_default().to_string(),
            v["upstream"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// The names of the toxics on proxy `name` now.
    pub async fn toxics(&self, name: &str) -> Result<Vec<String>, String> {
        let body = self
            .call("GET", &format!("/proxies/{name}/toxics"), None)
            .await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("toxics of {name}: {e}: {body}"))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Enables or disables proxy `name`: disabled, it closes every
    /// connection and refuses new ones.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), String> {
        let body = serde_json::json!({ "enabled": enabled });
        self.call("POST", &format!("/proxies/{name}"), Some(&body))
            .await
            .map(|_| ())
    }

    /// Adds `toxic` to proxy `name`.
    pub async fn add(&self, name: &str, toxic: &Toxic) -> Result<(), String> {
        let body = serde_json::json!({
            "name": toxic.name,
            "type": toxic.kind,
            "stream": toxic.stream.name(),
            "toxicity": 1.0,
            "attributes": toxic.attributes,
        });
        self.call("POST", &format!("/proxies/{name}/toxics"), Some(&body))
            .await
            .map(|_| ())
    }

    /// Removes the toxic `toxic` from proxy `name`.
    pub async fn remove(&self, name: &str, toxic: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/proxies/{name}/toxics/{toxic}"), None)
            .await
            .map(|_| ())
    }

    /// One request; the response body on a 2xx, else an error with the
    /// status and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, String> {
        let what = format!("toxiproxy {method} http://{}{path}", self.api);
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| format!("{what}: no answer within {CALL_TIMEOUT:?}"))?
            .map_err(|e| format!("{what}: {e}"))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, String> {
        let mut conn = TcpStream::connect(&self.api)
            .await
            .map_err(|e| e.to_string())?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            self.api,
            payload.len()
        );
        conn.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: {:?}", head.lines().next()))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            unchunk(rest)
        } else {
            rest.to_string()
        };
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(format!("HTTP {status}: {}", body.trim()))
        }
    }
}

/// A chunked body's data.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_put_back_together() {
        assert_eq!(
            unchunk("4\r\n[{\"a\r\n3\r\n\":1\r\n2\r\n}]\r\n0\r\n\r\n"),
            "[{\"a\":1}]"
        );
        assert_eq!(
            Toxiproxy::new("http://127.0.0.1:8474/").api(),
            "127.0.0.1:8474"
        );
    }
}
