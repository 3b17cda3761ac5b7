//! Servers lockbench did not start, acted on through the user's commands.
//!
//! A deployment of the user's own (a Redis with Sentinel in staging, an etcd
//! cluster on Kubernetes) cannot be killed or paused by PID. Its scenario
//! gives, per member, per role or for every member, the command that carries
//! out each action (`kill`, `start`, `pause`, `resume`, `isolate`, `heal`,
//! `clock`, `clock-reset`), with `{member}`, `{addr}`, `{host}`, `{port}`,
//! `{role}` (for `clock`, `{offset_ms}` and `{rate}`; for `isolate` and
//! `heal`, `{peers}` and `{peer_addrs}`: the members it is cut from) filled in. A hook
//! runs with a timeout, its output goes to a log of its own in the run
//! directory, and what it did (the command, its exit status, how long it
//! took) comes back as a [`HookRun`] for the history: a hook that fails or
//! hangs is a fault that did not happen, never a crash of the run.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every action a hook can carry out, in the order the docs list them.
pub const ACTIONS: &[&str] = &[
    "kill",
    "start",
    "pause",
    "resume",
    "isolate",
    "heal",
    "clock",
    "clock-reset",
];

/// The placeholders a hook's arguments may contain.
pub const PLACEHOLDERS: &[&str] = &[
    "member",
    "addr",
    "host",
    "port",
    "role",
    "offset_ms",
    "rate",
    "peers",
    "peer_addrs",
];

/// How long a hook may run when the scenario does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server of a deployment lockbench did not start.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its name in the scenario, the history and the report.
    pub name: String,
    /// Where clients reach it: `host:port`.
    pub addr: String,
    /// Its role as declared: `primary`, `replica`, `sentinel`, `member`,
    /// `master`.
    pub role: String,
    /// The address its peers (and sentinels) know it by, when not `addr`
    /// (a NAT, a Kubernetes Service, a relay between members).
    pub announce: Option<String>,
    /// The user's Toxiproxy proxy in front of it (whose listen address is
    /// `addr`): network faults on its clients' links become toxics there.
    pub proxy: Option<String>,
}

impl Member {
    fn host_port(&self) -> (&str, &str) {
        self.addr.rsplit_once(':').unwrap_or((&self.addr, ""))
    }
}

/// A deployment of the user's: its members, in the scenario's order, and
/// the hooks that act on them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deployment {
    /// Every member, sentinels included.
    pub members: Vec<Member>,
    /// The commands for each action.
    pub hooks: Hooks,
    /// The API of the user's Toxiproxy (`host:port`), when its proxies
    /// stand in front of the members.
    pub toxiproxy: Option<String>,
}

impl Deployment {
    /// The members that hold data (faults target these): every member but
    /// the sentinels.
    pub fn data_members(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.role != "sentinel")
            .collect()
    }

    /// The sentinels.
    pub fn sentinels(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| m.role == "sentinel")
            .collect()
    }

    /// The replicated shape its roles describe for `kind`: a primary with
    /// replicas and sentinels is Sentinel, Redis masters are independent,
    /// several ZooKeeper or etcd members are an ensemble or a cluster;
    /// `None` for one server.
    pub fn shape(&self, kind: super::ServerKind) -> Option<super::topology::Shape> {
        use super::ServerKind as K;
        use super::topology::Shape;
        let data = self.data_members().len();
        let sentinels = self.sentinels().len();
        match kind.family() {
            K::Redis if sentinels > 0 => Some(Shape::Sentinel {
                replicas: data.saturating_sub(1),
                sentinels,
            }),
            K::Redis if data > 1 => Some(Shape::Masters(data)),
            K::ZooKeeper if data > 1 => Some(Shape::Ensemble(data, kind)),
            K::Etcd if data > 1 => Some(Shape::EtcdCluster(data, kind)),
            _ => None,
        }
    }
}

/// One action's command, as the scenario wrote it (placeholders unfilled).
pub type HookCommand = Vec<String>;

/// The commands for each action: for every member, per role, per member
/// (the most specific one wins), and how long each may run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hooks {
    /// Actions for every member.
    pub all: BTreeMap<String, HookCommand>,
    /// Actions for the members of a role.
    pub by_role: BTreeMap<String, BTreeMap<String, HookCommand>>,
    /// Actions for one member, by its name.
    pub by_member: BTreeMap<String, BTreeMap<String, HookCommand>>,
    /// How long a hook may run before it is killed (and the action failed).
    pub timeout: Duration,
}

/// What one hook did, for the history and the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookRun {
    /// The action (`pause`).
    pub action: String,
    /// The member it acted on.
    pub member: String,
    /// The command as run, placeholders filled in.
    pub command: Vec<String>,
    /// Its exit status (`None`: it did not exit by itself).
    pub status: Option<i32>,
    /// How long it ran, in milliseconds.
    pub took_ms: u64,
    /// When it returned, on the run's clock (filled in by the nemesis from
    /// `returned`).
    pub returned_ns: Option<u64>,
    /// When it returned.
    #[serde(skip)]
    pub returned: Option<Instant>,
    /// Its output, relative to the run directory.
    pub log: Option<String>,
    /// Why the action did not happen: a non-zero exit, a timeout, a
    /// command that could not be started.
    pub error: Option<String>,
}

impl Hooks {
    /// The command for `action` on `member`, unfilled; `None` when the
    /// scenario gives none.
    pub fn command(&self, action: &str, member: &Member) -> Option<&HookCommand> {
        self.by_member
            .get(&member.name)
            .and_then(|h| h.get(action))
            .or_else(|| self.by_role.get(&member.role).and_then(|h| h.get(action)))
            .or_else(|| self.all.get(action))
    }

    /// `action`'s command on `member` with every placeholder filled in
    /// (`extra`: the clock's `offset_ms` and `rate`).
    pub fn filled(
        &self,
        action: &str,
        member: &Member,
        extra: &[(&str, String)],
    ) -> Option<Vec<String>> {
        let (host, port) = member.host_port();
        let mut vars: Vec<(&str, String)> = vec![
            ("member", member.name.clone()),
            ("addr", member.addr.clone()),
            ("host", host.to_string()),
            ("port", port.to_string()),
            ("role", member.role.clone()),
        ];
        vars.extend(extra.iter().cloned());
        let cmd = self.command(action, member)?;
        Some(cmd.iter().map(|arg| fill(arg, &vars)).collect())
    }

    /// Runs `action` on `member`: the command, bounded by the timeout, its
    /// output into `log_dir`. `seq` numbers the log file.
    pub async fn run(
        &self,
        action: &str,
        member: &Member,
        extra: &[(&str, String)],
        log_dir: &Path,
        seq: u64,
    ) -> HookRun {
        let mut run = HookRun {
            action: action.to_string(),
            member: member.name.clone(),
            command: Vec::new(),
            status: None,
            took_ms: 0,
            returned_ns: None,
            returned: None,
            log: None,
            error: None,
        };
        let Some(command) = self.filled(action, member, extra) else {
            run.error = Some(format!("no {action} hook for {}", member.name));
            return run;
        };
        run.command = command.clone();
        let file_name = format!("hook-{seq:03}-{action}-{}.log", safe(&member.name));
        let log_path = log_dir.join(&file_name);
        run.log = Some(file_name);
        let started = Instant::now();
        let outcome = run_bounded(
            &command,
            &log_path,
            self.timeout,
            "set hook_timeout to allow more",
        )
        .await;
        run.took_ms = started.elapsed().as_millis() as u64;
        run.returned = Some(Instant::now());
        match outcome {
            Ok(0) => run.status = Some(0),
            Ok(code) => {
                run.status = Some(code);
                run.error = Some(format!(
                    "{action} hook for {} exited {code} (its output: {})",
                    member.name,
                    log_path.display()
                ));
            }
            Err(why) => run.error = Some(format!("{action} hook for {}: {why}", member.name)),
        }
        run
    }
}

/// Fills `{name}` placeholders in `arg`; unknown ones stay as written.
fn fill(arg: &str, vars: &[(&str, String)]) -> String {
    let mut out = arg.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// A member's name as a file name's part.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs `command` with its output to `log_path`, killing its process group
/// after `timeout` (the error then ends with `hint`): its exit code, or why
/// there is none. The command is tracked like a server, so it dies with
/// lockbench however lockbench ends.
pub(crate) async fn run_bounded(
    command: &[String],
    log_path: &Path,
    timeout: Duration,
    hint: &str,
) -> Result<i32, String> {
    let Some((program, args)) = command.split_first() else {
        return Err("the command is empty".into());
    };
    let log = File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
    let mut child =
        super::process::spawn_tracked(cmd).map_err(|e| format!("cannot run {program:?}: {e}"))?;
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => break Err(()),
            Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => {
                super::process::untrack(pid);
                return Err(format!("waiting for {program:?}: {e}"));
            }
        }
    };
    match status {
        Ok(status) => {
            super::process::untrack(pid);
            Ok(status.code().unwrap_or(128 + 9))
        }
        Err(()) => {
            // Its own process group (spawn_tracked): what it started goes too.
            // SAFETY: killpg with a PID this process spawned and still owns
            // (not yet reaped), so the group id cannot have been reused.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
            let _ = child.wait();
            super::process::untrack(pid);
            Err(format!("still running after {timeout:?}: killed ({hint})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            name: "redis-a".into(),
            addr: "10.0.0.7:6380".into(),
            role: "replica".into(),
            announce: None,
            proxy: None,
        }
    }

    #[test]
    fn the_most_specific_hook_wins_and_placeholders_fill_in() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let mut hooks = Hooks {
            timeout: DEFAULT_TIMEOUT,
            ..Hooks::default()
        };
        hooks
            .all
            .insert("pause".into(), cmd("ssh {host} kill -STOP {port}"));
        assert_eq!(
            hooks.filled("pause", &member(), &[]).unwrap(),
            cmd("ssh 10.0.0.7 kill -STOP 6380")
        );
        hooks
            .by_role
            .entry("replica".into())
            .or_default()
            .insert("pause".into(), cmd("role {role} {member}"));
        assert_eq!(
            hooks.filled("pause", &member(), &[]).unwrap(),
            cmd("role replica redis-a")
        );
        hooks
            .by_member
            .entry("redis-a".into())
            .or_default()
            .insert("pause".into(), cmd("own {addr} {offset_ms} {unknown}"));
        assert_eq!(
            hooks
                .filled("pause", &member(), &[("offset_ms", "250".into())])
                .unwrap(),
            cmd("own 10.0.0.7:6380 250 {unknown}")
        );
        assert!(hooks.filled("kill", &member(), &[]).is_none());
    }

    #[tokio::test]
    async fn a_failing_or_hanging_hook_is_an_error_with_its_output_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut hooks = Hooks {
            timeout: Duration::from_millis(300),
            ..Hooks::default()
        };
        let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        hooks
            .all
            .insert("kill".into(), sh("echo said {member}; exit 3"));
        hooks.all.insert("pause".into(), sh("sleep 30"));
        hooks.all.insert("resume".into(), sh("true"));
        let failed = hooks.run("kill", &member(), &[], dir.path(), 1).await;
        assert_eq!(failed.status, Some(3));
        assert!(
            failed.error.as_deref().unwrap().contains("exited 3"),
            "{failed:?}"
        );
        let log = std::fs::read_to_string(dir.path().join(failed.log.unwrap())).unwrap();
        assert_eq!(log, "said redis-a\n");
        let hung = hooks.run("pause", &member(), &[], dir.path(), 2).await;
        assert_eq!(hung.status, None);
        assert!(
            hung.error.as_deref().unwrap().contains("killed"),
            "{hung:?}"
        );
        assert!(hung.took_ms < 10_000, "{hung:?}");
        let fine = hooks.run("resume", &member(), &[], dir.path(), 3).await;
        assert_eq!((fine.status, fine.error), (Some(0), None));
        let missing = hooks.run("heal", &member(), &[], dir.path(), 4).await;
        assert!(missing.error.unwrap().contains("no heal hook"));
    }
}
