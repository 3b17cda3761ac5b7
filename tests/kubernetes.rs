//! The Kubernetes example of docs/deployments.md, checked without a
//! cluster: its manifests decode strictly into the Kubernetes API's own
//! types (tools/k8s-check, built by scripts/install-backends.sh), a
//! misspelt field is refused, and its scenario's hooks cover every fault
//! (`lockbench run --dry-run` prints each kubectl command with its time).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(bin: &Path, files: &[PathBuf]) -> (Option<i32>, String) {
    let o = Command::new(bin).args(files).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn the_example_manifests_are_valid_kubernetes_objects_and_a_misspelt_field_is_not() {
    let Some(bin) = common::built_tool("tools/k8s-check/bin/k8s-check") else {
        return;
    };
    let dir = root().join("examples/kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let (code, out) = check(&bin, &manifests);
    assert_eq!(code, Some(0), "{out}");
    for kind in ["Service ok", "StatefulSet ok", "NetworkPolicy ok"] {
        assert!(out.contains(kind), "{out}");
    }
    // The check can fail: a field the API does not have is refused.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("etcd.yaml")).unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, text.replace("serviceName:", "servicename:")).unwrap();
    let (code, out) = check(&bin, &[bad]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("unknown field \"spec.servicename\""), "{out}");
}

#[test]
fn the_example_scenario_has_a_hook_for_every_fault_it_schedules() {
    let scenario = root().join("examples/kubernetes/etcd-faults.toml");
    let o = common::lockbench()
        .args(["run", "--dry-run"])
        .arg(&scenario)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "10.000s kill etcd-0: kubectl delete pod etcd-0 --grace-period=0 --force --wait=false",
        "25.000s start etcd-0: kubectl wait --for=condition=Ready pod/etcd-0 --timeout=110s",
        "35.000s pause etcd-1: kubectl debug etcd-1 --image=busybox:1.36 --target=etcd -- kill -STOP 1",
        "45.000s resume etcd-1:",
        "55.000s isolate etcd-2: sh -c 'sed s/MEMBER/etcd-2/g examples/kubernetes/isolate.yaml | kubectl apply -f -'",
        "75.000s heal etcd-2: kubectl delete networkpolicy lockbench-isolate-etcd-2",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn the_agents_job_is_rendered_and_decodes_as_kubernetes_objects() {
    let Some(bin) = common::built_tool("tools/k8s-check/bin/k8s-check") else {
        return;
    };
    let scenario = root().join("examples/kubernetes/etcd-faults.toml");
    let o = common::lockbench()
        .args(["kubernetes", "job"])
        .arg(&scenario)
        .args(["--agents", "4", "--start-at", "2026-12-05T10:00:00Z"])
        .args([
            "--image",
            "registry.example/lockbench:0.1",
            "--claim",
            "runs",
        ])
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        "completionMode: Indexed",
        "completions: 4",
        "parallelism: 4",
        "--agent \\\"$((JOB_COMPLETION_INDEX + 1))/4\\\"",
        "--start-at 1796464800.000",
        "claimName: \"runs\"",
        "image: \"registry.example/lockbench:0.1\"",
    ] {
        assert!(yaml.contains(want), "{want}\n{yaml}");
    }
    // The scenario travels in the ConfigMap, whole.
    let toml = std::fs::read_to_string(&scenario).unwrap();
    for line in toml.lines().filter(|l| !l.trim().is_empty()) {
        assert!(yaml.contains(&format!("    {line}")), "{line}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("job.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (code, out) = check(&bin, std::slice::from_ref(&file));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ConfigMap ok") && out.contains("Job ok"),
        "{out}"
    );
    // A field the Job API does not have is refused: the check can fail.
    std::fs::write(&file, yaml.replace("completionMode:", "completionmode:")).unwrap();
    let (code, out) = check(&bin, &[file]);
    assert_eq!(code, Some(1), "{out}");

    // Pods cannot share servers each of them would start.
    let o = common::lockbench()
        .args(["kubernetes", "job"])
        .arg(root().join("scenarios/quick.toml"))
        .args(["--agents", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[endpoints] or [deployment."));
}
