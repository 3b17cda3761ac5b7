use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who did an operation: a client (by integer id) or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A simulated lock client.
    Client(u64),
    /// The fault injector.
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(id) => s.serialize_u64(*id),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(u64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Id(id) => Ok(Process::Client(id)),
            Raw::Name(n) if n == "nemesis" => Ok(Process::Nemesis),
            Raw::Name(n) => Err(serde::de::Error::custom(format!(
                "process must be an integer or \"nemesis\", not {n:?}"
            ))),
        }
    }
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Client(id) => write!(f, "{id}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

/// The type of an event: an invocation or one of the three completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation started (the request is about to leave).
    Invoke,
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened.
    Info,
}

impl OpType {
    /// The name used in the history.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

/// The function of an event (`f`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum F {
    /// Take the lock.
    Acquire,
    /// Give the lock back.
    Release,
    /// Extend the lease.
    Renew,
    /// A write to the protected resource.
    Write,
    /// The client died here.
    Crash,
    /// The client's lock library said the lock on `key` is gone (a
    /// ZooKeeper session lost, a renewal that failed), and the client
    /// stopped acting on it. Like `crash`, one `info` event, no invoke.
    Lost,
    /// A fault event of the nemesis, by name (`start-partition`, ...).
    Fault(String),
}

impl F {
    /// The name used in the history.
    pub fn as_str(&self) -> &str {
        match self {
            F::Acquire => "acquire",
            F::Release => "release",
            F::Renew => "renew",
            F::Write => "write",
            F::Crash => "crash",
            F::Lost => "lost",
            F::Fault(name) => name,
        }
    }

    /// The function called `name` in a history line.
    pub fn from_name(name: &str) -> F {
        match name {
            "acquire" => F::Acquire,
            "release" => F::Release,
            "renew" => F::Renew,
            "write" => F::Write,
            "crash" => F::Crash,
            "lost" => F::Lost,
            other => F::Fault(other.to_string()),
        }
    }
}

impl Serialize for F {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(F::from_name(&name))
    }
}

/// One line of `history.jsonl` (docs/design.md, history v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// 0, 1, 2, ... in file order.
    pub index: u64,
    /// Nanoseconds since the run started, from one monotonic clock.
    pub time_ns: u64,
    /// Who did it.
    pub process: Process,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What was done.
    pub f: F,
    /// The lock key; absent when a run has one lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The fencing token, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<u64>,
    /// The lease the holder was granted, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Anything else (fault targets, `{"accepted": true}` on a write, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The reason on `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// An event with only the required fields set; `index` is assigned by
    /// the recorder.
    pub fn new(time_ns: u64, process: Process, kind: OpType, f: F) -> Self {
        Event {
            index: 0,
            time_ns,
            process,
            kind,
            f,
            key: None,
            fence: None,
            lease_ms: None,
            value: None,
            error: None,
        }
    }

    /// The key, or `""` for the single lock of a run without keys.
    pub fn key_or_default(&self) -> &str {
        self.key.as_deref().unwrap_or("")
    }
}
