//! `[deployment.<backend>]`: servers lockbench did not start, with their
//! roles and the commands (hooks) that carry out server faults on them.
//!
//! ```toml
//! [deployment.redis]
//! members = [
//!   { name = "redis-a", addr = "10.0.0.5:6379", role = "primary" },
//!   { name = "redis-b", addr = "10.0.0.6:6379", role = "replica" },
//!   { name = "sentinel-a", addr = "10.0.0.5:26379", role = "sentinel" },
//! ]
//! hook_timeout = "20s"
//! [deployment.redis.hooks]
//! pause = ["ssh", "{host}", "sudo", "systemctl", "kill", "-s", "STOP", "redis"]
//! resume = ["ssh", "{host}", "sudo", "systemctl", "kill", "-s", "CONT", "redis"]
//! [deployment.redis.role_hooks.replica]
//! pause = ["..."]
//! ```
//!
//! A member may carry its own `hooks = { ... }`; the most specific hook
//! wins (member, then role, then every member).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::cluster::ServerKind;
use crate::cluster::hooks::{self, Deployment, HookCommand, Hooks, Member};
use crate::duration::Dur;
use crate::fault::{FaultKind, FaultSpec};

/// The roles a member can have.
pub const ROLES: &[&str] = &[
    "primary", "replica", "sentinel", "member", "master", "leader", "follower",
];

type RawHooks = BTreeMap<Spanned<String>, Spanned<Vec<String>>>;

/// One `[deployment.<backend>]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDeployment {
    members: Spanned<Vec<Spanned<RawMember>>>,
    hooks: Option<RawHooks>,
    role_hooks: Option<BTreeMap<Spanned<String>, RawHooks>>,
    hook_timeout: Option<Spanned<Dur>>,
    toxiproxy: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: Spanned<String>,
    addr: Spanned<String>,
    role: Option<Spanned<String>>,
    announce: Option<Spanned<String>>,
    proxy: Option<Spanned<String>>,
    hooks: Option<RawHooks>,
}

/// A problem with the table: where, what, and a hint.
pub(super) type Problem = (Option<Range<usize>>, String, Option<String>);

fn hooks_of(raw: Option<RawHooks>) -> Result<BTreeMap<String, Vec<String>>, Problem> {
    let mut out = BTreeMap::new();
    for (action, cmd) in raw.unwrap_or_default() {
        let span = action.span();
        let action = action.into_inner();
        if !hooks::ACTIONS.contains(&action.as_str()) {
            return Err((
                Some(span),
                format!("{action:?} is not a hook"),
                Some(format!("hooks are: {}", hooks::ACTIONS.join(", "))),
            ));
        }
        let cmd_span = cmd.span();
        let cmd = cmd.into_inner();
        if cmd.first().is_none_or(|p| p.is_empty()) {
            return Err((
                Some(cmd_span),
                format!("the {action} hook has no program"),
                Some(
                    "a hook is a command and its arguments, e.g. [\"kill\", \"-STOP\", \"1234\"]"
                        .into(),
                ),
            ));
        }
        out.insert(action, cmd);
    }
    Ok(out)
}

/// Reads one member's entry; its own hooks, if it has any, go to `by_member`.
fn member(
    backend: &str,
    kind: ServerKind,
    raw: RawMember,
    seen: &[Member],
    by_member: &mut BTreeMap<String, BTreeMap<String, HookCommand>>,
    valid_addr: &impl Fn(&str) -> bool,
) -> Result<Member, Problem> {
    let (name_span, name) = (raw.name.span(), raw.name.into_inner());
    if seen.iter().any(|x| x.name == name) {
        return Err((
            Some(name_span),
            format!("member {name:?} is listed twice"),
            None,
        ));
    }
    let (addr_span, addr) = (raw.addr.span(), raw.addr.into_inner());
    if !valid_addr(&addr) {
        return Err((
            Some(addr_span),
            format!("addr {addr:?} of {name} is not host:port"),
            Some("e.g. \"10.0.0.5:6379\"".into()),
        ));
    }
    let role = match raw.role {
        None => "member".to_string(),
        Some(r) if ROLES.contains(&r.get_ref().as_str()) => r.into_inner(),
        Some(r) => {
            return Err((
                Some(r.span()),
                format!("role {:?} of {name} is not a role", r.get_ref()),
                Some(format!("roles are: {}", ROLES.join(", "))),
            ));
        }
    };
    if role == "sentinel" && kind != ServerKind::Redis {
        return Err((
            Some(name_span),
            format!(
                "{name} is a sentinel, but {backend} runs on {}",
                kind.name()
            ),
            Some("sentinels belong to Redis deployments".into()),
        ));
    }
    let announce = match raw.announce {
        Some(a) if !valid_addr(a.get_ref()) => {
            return Err((
                Some(a.span()),
                format!("announce {:?} of {name} is not host:port", a.get_ref()),
                Some("the address the member's peers know it by, e.g. \"10.0.0.5:6379\"".into()),
            ));
        }
        a => a.map(Spanned::into_inner),
    };
    let own = hooks_of(raw.hooks)?;
    if !own.is_empty() {
        by_member.insert(name.clone(), own);
    }
    Ok(Member {
        name,
        addr,
        role,
        announce,
        proxy: raw.proxy.map(Spanned::into_inner),
    })
}

/// The deployment's Toxiproxy API, checked with its members' proxies:
/// with one, every data member names its proxy; without, none does.
fn toxiproxy(
    raw: Option<Spanned<String>>,
    members: &[Member],
    members_span: Range<usize>,
    valid_addr: &impl Fn(&str) -> bool,
) -> Result<Option<String>, Problem> {
    let toxiproxy = match raw {
        Some(t)
            if !valid_addr(
                t.get_ref()
                    .trim_start_matches("http://")
                    .trim_end_matches('/'),
            ) =>
        {
            return Err((
                Some(t.span()),
                format!("toxiproxy = {:?} is not host:port", t.get_ref()),
                Some("the address of Toxiproxy's API, e.g. \"127.0.0.1:8474\"".into()),
            ));
        }
        t => t.map(Spanned::into_inner),
    };
    let mut data = members.iter().filter(|m| m.role != "sentinel");
    match (&toxiproxy, data.clone().find(|m| m.proxy.is_none())) {
        (Some(_), Some(m)) => Err((
            Some(members_span),
            format!(
                "member {} has no proxy, but the deployment names a toxiproxy",
                m.name
            ),
            Some("give every data member proxy = \"<the Toxiproxy proxy in front of it>\"".into()),
        )),
        (None, _) if data.any(|m| m.proxy.is_some()) => Err((
            Some(members_span),
            "members name Toxiproxy proxies, but the deployment names no toxiproxy".into(),
            Some("add toxiproxy = \"host:port\" (its API) to the deployment".into()),
        )),
        _ => Ok(toxiproxy),
    }
}

/// Reads `[deployment.<backend>]` for a backend on servers of `kind`.
pub(super) fn read(
    backend: &str,
    kind: ServerKind,
    raw: RawDeployment,
    valid_addr: impl Fn(&str) -> bool,
) -> Result<Deployment, Problem> {
    let members_span = raw.members.span();
    let mut members = Vec::new();
    let mut by_member = BTreeMap::new();
    for m in raw.members.into_inner() {
        let m = member(
            backend,
            kind,
            m.into_inner(),
            &members,
            &mut by_member,
            &valid_addr,
        )?;
        members.push(m);
    }
    if members.iter().all(|m| m.role == "sentinel") {
        return Err((
            Some(members_span.clone()),
            format!("the deployment of {backend} has no data member"),
            Some("list at least one server that holds the lock's data (role primary, member, master...)".into()),
        ));
    }
    let mut by_role = BTreeMap::new();
    for (role, h) in raw.role_hooks.unwrap_or_default() {
        let span = role.span();
        let role = role.into_inner();
        if !ROLES.contains(&role.as_str()) {
            return Err((
                Some(span),
                format!("role_hooks.{role}: {role:?} is not a role"),
                Some(format!("roles are: {}", ROLES.join(", "))),
            ));
        }
        by_role.insert(role, hooks_of(Some(h))?);
    }
    let timeout = match raw.hook_timeout {
        None => hooks::DEFAULT_TIMEOUT,
        Some(t)
            if t.get_ref().0 >= Duration::from_millis(10)
                && t.get_ref().0 <= Duration::from_secs(600) =>
        {
            t.get_ref().0
        }
        Some(t) => {
            return Err((
                Some(t.span()),
                format!("hook_timeout = {:?} is out of range", t.get_ref().0),
                Some("hook_timeout must be between 10ms and 10m".into()),
            ));
        }
    };
    Ok(Deployment {
        toxiproxy: toxiproxy(raw.toxiproxy, &members, members_span, &valid_addr)?,
        members,
        hooks: Hooks {
            all: hooks_of(raw.hooks)?,
            by_role,
            by_member,
            timeout,
        },
    })
}

/// Why `deployment` cannot carry a fault of `kind` on the data members it
/// can target (`spec`'s members by index; every member for a random
/// schedule or a role, which is resolved when the fault starts): the first
/// hook missing, named with the member and the line to add.
pub(super) fn missing_hook(
    backend: &str,
    deployment: &Deployment,
    kind: FaultKind,
    spec: Option<&FaultSpec>,
) -> Option<(String, String)> {
    let Some((begin, end, _)) = kind.hook_actions() else {
        return Some((
            format!(
                "{} cannot act on {backend}'s deployment: no hook carries it out",
                kind.name()
            ),
            format!(
                "on servers lockbench did not start, the server faults are those with hooks: {}",
                FaultKind::hooked_names().join(", ")
            ),
        ));
    };
    let data = deployment.data_members();
    let by_index = spec.filter(|s| {
        s.targets.iter().all(|t| {
            t.strip_prefix("server-")
                .is_some_and(|i| i.parse::<usize>().is_ok())
        })
    });
    // A bridge acts on every member but itself.
    let by_index = by_index.filter(|_| kind != FaultKind::Bridge);
    let targeted: Vec<&Member> = match by_index {
        Some(s) => s
            .target_indices(data.len())
            .into_iter()
            .map(|i| data[i])
            .collect(),
        None => data,
    };
    for m in targeted {
        for action in [begin, end] {
            if deployment.hooks.command(action, m).is_none() {
                return Some((
                    format!(
                        "{} on {backend}'s deployment needs the `{action}` hook for member {} \
                         (lockbench cannot {action} a server it did not start)",
                        kind.name(),
                        m.name
                    ),
                    format!(
                        "add e.g. {action} = [\"ssh\", \"{{host}}\", ...] under \
                         [deployment.{backend}.hooks] (every member), \
                         [deployment.{backend}.role_hooks.{}] or the member's own hooks",
                        m.role
                    ),
                ));
            }
        }
    }
    None
}
