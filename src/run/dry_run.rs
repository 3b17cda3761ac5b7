//! `lockbench run --dry-run`: every fault the schedule would inject, with
//! its time, and for a deployment lockbench did not start every command its
//! hooks would run, placeholders filled in. Nothing starts and nothing runs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cluster::hooks::{Deployment, Member};
use crate::fault::FaultSpec;
use crate::fault::nemesis::{hook_plan, peer_vars};
use crate::scenario::Scenario;

/// The schedule of `scenario` with `seed`, for every backend, as text.
pub fn dry_run(scenario: &Scenario, seed: u64) -> String {
    let mut out = String::new();
    let registry = scenario.registry();
    for backend in &scenario.backends {
        let deployment = scenario.deployments.get(backend);
        let members = match deployment {
            Some(d) => d.data_members().len(),
            None => registry.get(backend).map_or(1, |info| {
                info.shape(scenario.topology)
                    .map_or(info.servers.max(1), |shape| shape.members())
            }),
        };
        let faults = scenario.faults_for(seed, members);
        let _ = writeln!(
            out,
            "{} / {backend}: seed {seed}, {} fault(s) in {}",
            scenario.name,
            faults.len(),
            secs(scenario.duration)
        );
        for f in &faults {
            let _ = writeln!(
                out,
                "  {} to {}  {} on {}",
                secs(f.at),
                secs(f.at + f.duration),
                f.kind.name(),
                f.targets.join(", ")
            );
            match deployment {
                Some(d) if f.kind.on_servers() => hook_lines(&mut out, f, d),
                _ if f.kind.on_servers() => {
                    let _ = writeln!(out, "    lockbench acts on the servers it started");
                }
                _ => {
                    let _ = writeln!(out, "    lockbench's proxies and clients carry it out");
                }
            }
        }
    }
    out
}

/// The hooks `f` would run on `d`, start and end.
fn hook_lines(out: &mut String, f: &FaultSpec, d: &Deployment) {
    let Some((begin, end, extra)) = f.kind.hook_actions() else {
        return;
    };
    let (set, drawn) = targeted(f, d);
    if drawn {
        let _ = writeln!(
            out,
            "    the members are drawn when it starts; the commands for each:"
        );
    }
    let data = d.data_members();
    let plan = hook_plan(f.kind, &set, d);
    for (at, action) in [(f.at, begin), (f.at + f.duration, end)] {
        for (i, peers) in &plan {
            let Some(m) = data.get(*i) else {
                continue;
            };
            let mut vars = extra.clone();
            vars.extend(peer_vars(peers));
            let cmd = d
                .hooks
                .filled(action, m, &vars)
                .map(|c| shell_words(&c))
                .unwrap_or_else(|| format!("(no {action} hook)"));
            let _ = writeln!(out, "    {} {action} {}: {cmd}", secs(at), m.name);
        }
    }
}

/// The data members `f` targets, by index or by declared role; with
/// whether they are drawn at run time instead (a minority, a majority, one
/// follower: then every member is listed).
fn targeted(f: &FaultSpec, d: &Deployment) -> (Vec<usize>, bool) {
    let data = d.data_members();
    let mut set = f.target_indices(data.len());
    let mut drawn = false;
    let leads = |m: &Member| matches!(m.role.as_str(), "primary" | "leader");
    for t in &f.targets {
        match t.as_str() {
            "leader" | "primary" => set.extend((0..data.len()).filter(|&i| leads(data[i]))),
            "followers" => set.extend((0..data.len()).filter(|&i| !leads(data[i]))),
            "follower" | "minority" | "majority" => drawn = true,
            _ => {}
        }
    }
    if drawn && f.kind != crate::fault::FaultKind::Bridge {
        return ((0..data.len()).collect(), true);
    }
    set.sort_unstable();
    set.dedup();
    (set, drawn)
}

/// `d` in seconds, as `12.300s`.
fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A command as a shell would take it: arguments with spaces or quotes
/// quoted.
fn shell_words(cmd: &[String]) -> String {
    cmd.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@{}%+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_s_schedule_lists_each_hook_with_its_time() {
        let s = Scenario::parse(
            std::path::Path::new("d.toml"),
            r#"
backends = ["redis"]
duration = "10s"
[deployment.redis]
members = [
  { name = "r-a", addr = "10.0.0.5:6379", role = "primary" },
  { name = "r-b", addr = "10.0.0.6:6379", role = "replica" },
  { name = "s-a", addr = "10.0.0.5:26379", role = "sentinel" },
]
[deployment.redis.hooks]
pause = ["ssh", "{host}", "kill -STOP $(pidof redis-server)"]
resume = ["ssh", "{host}", "kill -CONT $(pidof redis-server)"]
[[nemesis]]
at = "2s"
fault = "pause-server"
targets = ["primary"]
duration = "3s"
"#,
        )
        .unwrap();
        let text = dry_run(&s, 1);
        assert!(
            text.contains("2.000s to 5.000s  pause-server on primary"),
            "{text}"
        );
        assert!(
            text.contains("2.000s pause r-a: ssh 10.0.0.5 'kill -STOP $(pidof redis-server)'"),
            "{text}"
        );
        assert!(text.contains("5.000s resume r-a: ssh 10.0.0.5"), "{text}");
        assert!(!text.contains("r-b"), "only the primary: {text}");
    }
}
