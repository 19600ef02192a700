//! `jobwright kubelet` as a user runs it: the real binary against an API server given by a
//! kubeconfig, stopped with SIGTERM, leaving no process behind.

use crate::fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

#[tokio::test]
async fn the_kubelet_subcommand_runs_pods_and_stops_cleanly_on_sigterm() {
    let (api, _client, url) = FakeApi::start_with_url().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\nusers:\n- name: u\n  user: {{}}\n\
             contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["kubelet", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--nodes", "2", "--pods-per-node", "3", "--executor", "process"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let marker = format!("jw-cli-{}", uuid::Uuid::new_v4().simple());
    api.create("pods", "default", json!({"metadata": {"name": "long"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", format!("sleep 600; echo {marker}")]}]}}));
    api.create(
        "pods",
        "default",
        json!({"metadata": {"name": "hello"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["echo", "hi"]}]}}),
    );
    let hello =
        api.wait_for("pods", "default", "hello", |p| p.is_some_and(|p| p["status"]["phase"] == "Succeeded")).await;
    assert!(hello.unwrap()["spec"]["nodeName"].as_str().unwrap().starts_with("jobwright-node-"));
    assert!(api.get("nodes", "", "jobwright-node-1").is_some(), "two nodes registered");
    api.wait_for("pods", "default", "long", |p| p.is_some_and(|p| p["status"]["phase"] == "Running")).await;
    let pgrep = || std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap().stdout;
    assert!(!pgrep().is_empty());

    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(pgrep().is_empty(), "a pod process survived the kubelet");
}
