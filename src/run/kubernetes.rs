//! `lockbench kubernetes job`: a scenario's agents as a Kubernetes Indexed
//! Job. Each pod is one agent (`JOB_COMPLETION_INDEX` + 1 of
//! `completions`), reads the scenario from a ConfigMap, starts at the
//! instant rendered into the manifest, and writes its run directory to a
//! volume the user names; `lockbench merge` over that volume makes the run.
//! The pods share the servers under test, so the scenario must name them
//! (`[endpoints]` or `[deployment.<backend>]`). docs/agents.md tells the
//! rest.

use std::fmt::Write;

use crate::scenario::Scenario;

/// What the Job is made of beyond the scenario.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Agents: the Job's completions and parallelism.
    pub agents: u32,
    /// The backend (default: the scenario's first).
    pub backend: Option<String>,
    /// The container image with `lockbench` on its PATH.
    pub image: String,
    /// The PersistentVolumeClaim the runs go to.
    pub claim: String,
    /// How far each node's clock may be off (chrony's figures).
    pub clock_bound: std::time::Duration,
    /// When the agents start, ns since the epoch (default: five minutes
    /// from now).
    pub start_at_ns: Option<i64>,
    /// The seed every agent uses.
    pub seed: Option<u64>,
}

/// A name Kubernetes accepts (RFC 1123 label): lower case, digits and
/// dashes, at most 40 characters here (suffixes follow).
fn dns_name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "scenario".into()
    } else {
        out
    }
}

/// The Job and its ConfigMap as YAML, or why the scenario cannot run as
/// agents on a cluster.
pub fn kubernetes_job(scenario: &Scenario, o: &JobOptions) -> Result<String, String> {
    let backend = match &o.backend {
        Some(b) if scenario.backends.contains(b) => b.clone(),
        Some(b) => {
            return Err(format!(
                "--backend {b:?} is not one of {}'s backends ({})",
                scenario.path.display(),
                scenario.backends.join(", ")
            ));
        }
        None => scenario
            .backends
            .first()
            .cloned()
            .ok_or_else(|| format!("{} names no backend", scenario.path.display()))?,
    };
    if !scenario.endpoints.contains_key(&backend) && !scenario.deployments.contains_key(&backend) {
        return Err(format!(
            "{}: the agents' pods share the servers under test, so the scenario must name {backend}'s \
             servers in [endpoints] or [deployment.{backend}] (each pod would otherwise start \
             servers of its own)",
            scenario.path.display()
        ));
    }
    let text = std::fs::read_to_string(&scenario.path)
        .map_err(|e| format!("{}: {e}", scenario.path.display()))?;
    let name = dns_name(&scenario.name);
    let start_at = o
        .start_at_ns
        .unwrap_or_else(|| crate::net::timesync::wall_ns(0) + 300_000_000_000);
    let seed = o.seed.or(scenario.seed).unwrap_or_else(rand::random);
    let n = o.agents;
    let mut y = String::new();
    let _ = writeln!(
        y,
        "# lockbench kubernetes job {} --agents {n}: agents of one run, one per pod.\n\
         # After the Job completes: lockbench merge <the claim's files> (docs/agents.md).",
        scenario.path.display()
    );
    let _ = writeln!(
        y,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lockbench-{name}-scenario\n  \
         labels:\n    app.kubernetes.io/name: lockbench\ndata:\n  scenario.toml: |"
    );
    for line in text.lines() {
        let _ = writeln!(y, "    {line}");
    }
    let command = format!(
        "exec lockbench run /etc/lockbench/scenario.toml --backends {backend} --seed {seed} \
         --agent \"$((JOB_COMPLETION_INDEX + 1))/{n}\" --start-at {:.3} \
         --clock-reference none --clock-bound {}us --no-progress \
         --out \"/histories/{name}/agent-$((JOB_COMPLETION_INDEX + 1))\"",
        start_at as f64 / 1e9,
        o.clock_bound.as_micros()
    );
    let _ = write!(
        y,
        "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: lockbench-{name}-agents\n  \
         labels:\n    app.kubernetes.io/name: lockbench\nspec:\n  completionMode: Indexed\n  \
         completions: {n}\n  parallelism: {n}\n  backoffLimit: 0\n  template:\n    metadata:\n      \
         labels:\n        app.kubernetes.io/name: lockbench\n    spec:\n      \
         restartPolicy: Never\n      containers:\n        - name: agent\n          \
         image: {image}\n          command: [\"/bin/sh\", \"-c\"]\n          args:\n            \
         - {command}\n          volumeMounts:\n            - name: scenario\n              \
         mountPath: /etc/lockbench\n              readOnly: true\n            \
         - name: histories\n              mountPath: /histories\n      volumes:\n        \
         - name: scenario\n          configMap:\n            name: lockbench-{name}-scenario\n        \
         - name: histories\n          persistentVolumeClaim:\n            claimName: {claim}\n",
        image = yaml_str(&o.image),
        command = yaml_str(&command),
        claim = yaml_str(&o.claim),
    );
    Ok(y)
}

/// A YAML double-quoted scalar.
fn yaml_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_name("Redis_Quick.1"), "redis-quick-1");
        assert_eq!(dns_name("--"), "scenario");
    }
}
