//! The node simulator against a minimal in-memory API (`fake_api`), independent of jobwright's
//! own API server: scheduling, the pod lifecycle, restarts, deletion, deadlines, node failure,
//! logs through the kubelet endpoint, and the simulate executor's capacity accounting.

use crate::fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use jobwright::kubelet::{Backoff, ExecutorKind, Kubelet, KubeletConfig};
use serde_json::{Value, json};

fn config(executor: ExecutorKind) -> KubeletConfig {
    KubeletConfig {
        executor,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(200) },
        heartbeat_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

fn pod(name: &str, restart_policy: &str, containers: Value) -> Value {
    json!({"metadata": {"name": name}, "spec": {"restartPolicy": restart_policy, "containers": containers}})
}

fn phase(p: Option<&Value>) -> Option<&str> {
    p.and_then(|p| p["status"]["phase"].as_str())
}

fn terminal(p: Option<&Value>) -> bool {
    matches!(phase(p), Some("Succeeded" | "Failed"))
}

fn condition<'a>(p: &'a Value, t: &str) -> Option<&'a Value> {
    p["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == t)
}

async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (code, body.to_string());
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    (code, out)
}

#[tokio::test]
async fn a_bare_pod_is_scheduled_runs_and_succeeds() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let node = api.get("nodes", "", "jobwright-node-0").expect("node registered");
    assert_eq!(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"], kubelet.log_port());
    assert!(api.get("leases", "kube-node-lease", "jobwright-node-0").is_some(), "lease created");

    api.create(
        "pods",
        "default",
        pod(
            "hello",
            "Never",
            json!([
        {"name": "hello", "image": "busybox", "command": ["echo", "Hello, World!"]}]),
        ),
    );
    let p = api.wait_for("pods", "default", "hello", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"));
    assert_eq!(p["spec"]["nodeName"], "jobwright-node-0");
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 0);
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed");
    assert!(cs["containerID"].as_str().unwrap().starts_with("jobwright://"));
    assert_eq!(cs["image"], "docker.io/library/busybox:latest");
    assert_eq!(p["status"]["podIP"], "127.0.0.1");
    assert!(p["status"]["startTime"].is_string());
    assert_eq!(condition(&p, "Ready").unwrap()["reason"], "PodCompleted");
    // It was seen Running on the way.
    assert!(
        api.versions("pods", "default", "hello")
            .iter()
            .any(|v| phase(Some(v)) == Some("Running") || phase(Some(v)) == Some("Pending"))
    );

    let (code, body) = http_get(kubelet.log_port(), "/containerLogs/default/hello/hello").await;
    assert_eq!((code, body.as_str()), (200, "Hello, World!\n"));

    // The scheduler's and the kubelet's events, as `kubectl describe pod` shows them.
    let wanted = [
        ("Scheduled", "Successfully assigned default/hello to jobwright-node-0"),
        ("Pulled", "Container image \"busybox\" already present on machine"),
        ("Created", "Created container: hello"),
        ("Started", "Started container hello"),
    ];
    api.wait_until("pod events", |api| {
        let events = api.list("events");
        wanted.iter().all(|(reason, note)| {
            events.iter().any(|e| e["reason"] == *reason && e["note"] == *note && e["regarding"]["name"] == "hello")
        })
    })
    .await;
    kubelet.shutdown().await;
}

#[tokio::test]
async fn on_failure_restarts_in_place_and_keeps_the_previous_log() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let script = "if [ -f marker ]; then echo second; exit 0; else touch marker; echo first; exit 3; fi";
    api.create(
        "pods",
        "default",
        pod(
            "flaky",
            "OnFailure",
            json!([
        {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]),
        ),
    );
    let p = api.wait_for("pods", "default", "flaky", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"));
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    let (_, current) = http_get(kubelet.log_port(), "/containerLogs/default/flaky/c").await;
    let (_, previous) = http_get(kubelet.log_port(), "/containerLogs/default/flaky/c?previous=true").await;
    assert_eq!((current.as_str(), previous.as_str()), ("second\n", "first\n"));
    kubelet.shutdown().await;
}

#[tokio::test]
async fn never_policy_failure_and_env_expansion() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create("configmaps", "default", json!({"metadata": {"name": "cfg"}, "data": {"who": "world"}}));
    let mut p = pod(
        "envy",
        "Never",
        json!([{"name": "c", "image": "busybox",
        "env": [{"name": "WHO", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "who"}}},
                {"name": "IDX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}],
        "command": ["sh", "-c"], "args": ["echo hello $(WHO) $(IDX) $HOSTNAME; exit 2"]}]),
    );
    p["metadata"]["annotations"] = json!({"batch.kubernetes.io/job-completion-index": "4"});
    api.create("pods", "default", p);
    let p = api.wait_for("pods", "default", "envy", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Failed"));
    assert_eq!(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 2);
    let (_, log) = http_get(kubelet.log_port(), "/containerLogs/default/envy/c").await;
    assert_eq!(log, "hello world 4 envy\n");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn fallback_to_logs_on_error_fills_the_termination_message() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create(
        "pods",
        "default",
        pod(
            "msg",
            "Never",
            json!([{"name": "c", "image": "perl",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "command": ["sh", "-c", "echo 'Math::BigInt: something broke' >&2; exit 255"]}]),
        ),
    );
    let p = api.wait_for("pods", "default", "msg", terminal).await.unwrap();
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["exitCode"], 255);
    assert_eq!(t["message"], "Math::BigInt: something broke\n");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn unknown_entrypoint_and_missing_binary_fail_clearly() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create("pods", "default", pod("nginx", "Never", json!([{"name": "web", "image": "nginx:1.27"}])));
    api.create(
        "pods",
        "default",
        pod("typo", "Never", json!([{"name": "c", "image": "busybox", "command": ["ech0", "hi"]}])),
    );
    let p = api.wait_for("pods", "default", "nginx", terminal).await.unwrap();
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((t["reason"].as_str(), phase(Some(&p))), (Some("CreateContainerError"), Some("Failed")));
    assert!(t["message"].as_str().unwrap().contains("set the container's `command`"));
    let p = api.wait_for("pods", "default", "typo", terminal).await.unwrap();
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((t["reason"].as_str(), t["exitCode"].as_i64()), (Some("StartError"), Some(128)));
    assert!(t["message"].as_str().unwrap().contains("exec: \"ech0\": executable file not found in $PATH"));
    kubelet.shutdown().await;
}

#[tokio::test]
async fn init_containers_run_first_in_order() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let mut p = pod("init", "Never", json!([{"name": "main", "image": "busybox", "command": ["cat", "order"]}]));
    p["spec"]["initContainers"] = json!([
        {"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one >> order"]},
        {"name": "two", "image": "busybox", "command": ["sh", "-c", "echo two >> order"]}]);
    api.create("pods", "default", p);
    let p = api.wait_for("pods", "default", "init", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"));
    assert_eq!(p["status"]["initContainerStatuses"][1]["state"]["terminated"]["reason"], "Completed");
    let (_, log) = http_get(kubelet.log_port(), "/containerLogs/default/init/main").await;
    assert_eq!(log, "one\ntwo\n");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn a_sidecar_runs_alongside_and_is_stopped_when_the_main_container_ends() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let mut p = pod(
        "sidecar",
        "Never",
        json!([{"name": "main", "image": "busybox",
        "command": ["sh", "-c", "while [ ! -f ready ]; do sleep 0.05; done; echo main saw sidecar"]}]),
    );
    p["spec"]["initContainers"] = json!([{"name": "proxy", "image": "busybox", "restartPolicy": "Always",
        "command": ["sh", "-c", "touch ready; exec sleep 600"]}]);
    api.create("pods", "default", p);
    let p = api
        .wait_for("pods", "default", "sidecar", |p| {
            terminal(p) && p.is_some_and(|p| p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object())
        })
        .await
        .unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"), "a sidecar killed at the end does not fail the pod");
    assert_eq!(p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 143);
    let (_, log) = http_get(kubelet.log_port(), "/containerLogs/default/sidecar/main").await;
    assert_eq!(log, "main saw sidecar\n");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn graceful_deletion_kills_the_process_and_confirms() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create(
        "pods",
        "default",
        pod("sleeper", "Never", json!([{"name": "c", "image": "busybox", "command": ["sleep", "600"]}])),
    );
    api.wait_for("pods", "default", "sleeper", |p| phase(p) == Some("Running")).await;
    api.delete_gracefully("default", "sleeper", 30);
    api.wait_for("pods", "default", "sleeper", |p| p.is_none()).await;
    let last =
        api.versions("pods", "default", "sleeper").into_iter().rev().find(|v| terminal(Some(v))).expect("final status");
    assert_eq!(phase(Some(&last)), Some("Failed"));
    assert_eq!(last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 143);
    kubelet.shutdown().await;
}

#[tokio::test]
async fn active_deadline_kills_and_fails_the_pod() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let mut p = pod("late", "Never", json!([{"name": "c", "image": "busybox", "command": ["sleep", "600"]}]));
    // Long enough for the container to start first on a loaded machine (it counts from the pod's
    // start, before the process is spawned).
    p["spec"]["activeDeadlineSeconds"] = json!(3);
    api.create("pods", "default", p);
    // As upstream, the phase turns Failed at once; the container's end follows.
    let p = api
        .wait_for("pods", "default", "late", |p| {
            terminal(p) && p.is_some_and(|p| p["status"]["containerStatuses"][0]["state"]["terminated"].is_object())
        })
        .await
        .unwrap();
    assert_eq!(phase(Some(&p)), Some("Failed"));
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(p["status"]["message"], "Pod was active on the node longer than the specified deadline");
    // A container seen running gets SIGTERM (143, well within its 30 s grace). One the deadline
    // overtook while it was being created (env sources, log file: slow on a loaded machine) is
    // never started and reported killed (137); the 3 s deadline makes that rare.
    let exit = &p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
    let ran = api
        .versions("pods", "default", "late")
        .iter()
        .any(|v| v["status"]["containerStatuses"][0]["state"]["running"].is_object());
    if ran {
        assert_eq!(*exit, 143, "{p}");
    } else {
        eprintln!("the deadline passed before the container was seen running: exit {exit}");
        assert!(*exit == 143 || *exit == 137, "{p}");
    }
    api.wait_until("DeadlineExceeded and Killing events", |api| {
        let events = api.list("events");
        ["DeadlineExceeded", "Killing"]
            .iter()
            .all(|r| events.iter().any(|e| e["reason"] == *r && e["regarding"]["name"] == "late"))
    })
    .await;
    kubelet.shutdown().await;
}

#[tokio::test]
async fn a_failed_node_loses_its_pods() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create(
        "pods",
        "default",
        pod("victim", "Never", json!([{"name": "c", "image": "busybox", "command": ["sleep", "600"]}])),
    );
    api.wait_for("pods", "default", "victim", |p| phase(p) == Some("Running")).await;
    kubelet.fail_node("jobwright-node-0").await.unwrap();
    assert!(kubelet.fail_node("nope").await.is_err());
    api.wait_for("pods", "default", "victim", |p| p.is_none()).await;
    let last = api.versions("pods", "default", "victim").into_iter().rev().find(|v| terminal(Some(v))).unwrap();
    assert_eq!(phase(Some(&last)), Some("Failed"));
    let dt = condition(&last, "DisruptionTarget").expect("DisruptionTarget");
    assert_eq!((dt["reason"].as_str(), dt["status"].as_str()), (Some("DeletionByTaintManager"), Some("True")));
    let node = api
        .wait_for("nodes", "", "jobwright-node-0", |n| {
            n.and_then(|n| n["status"]["conditions"].as_array())
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "Unknown"))
        })
        .await
        .unwrap();
    assert!(
        node["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == "NoExecute")
    );
    // A new pod is not scheduled on the failed node.
    api.create(
        "pods",
        "default",
        pod("after", "Never", json!([{"name": "c", "image": "busybox", "command": ["true"]}])),
    );
    let after = api
        .wait_for("pods", "default", "after", |p| p.and_then(|p| condition(p, "PodScheduled")).is_some())
        .await
        .unwrap();
    let sched = condition(&after, "PodScheduled").unwrap();
    assert_eq!((sched["status"].as_str(), sched["reason"].as_str()), (Some("False"), Some("Unschedulable")));
    assert!(sched["message"].as_str().unwrap().starts_with("0/1 nodes are available: 1 node(s) had untolerated taint"));
    assert!(api.get("pods", "default", "after").unwrap()["spec"]["nodeName"].is_null());
    // Once the node recovers, the waiting pod runs there.
    kubelet.recover_node("jobwright-node-0").await.unwrap();
    let after = api.wait_for("pods", "default", "after", terminal).await.unwrap();
    assert_eq!(phase(Some(&after)), Some("Succeeded"));
    kubelet.shutdown().await;
}

#[tokio::test]
async fn annotating_a_node_fails_it() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create(
        "pods",
        "default",
        pod("victim", "Never", json!([{"name": "c", "image": "busybox", "command": ["sleep", "600"]}])),
    );
    api.wait_for("pods", "default", "victim", |p| phase(p) == Some("Running")).await;
    let mut node = api.get("nodes", "", "jobwright-node-0").unwrap();
    node["metadata"]["annotations"] = json!({"jobwright.dev/fail-node": "true"});
    api.replace("nodes", "", "jobwright-node-0", node);
    api.wait_for("pods", "default", "victim", |p| p.is_none()).await;
    // Removing the annotation brings the node back: Ready again, untainted, scheduling resumes.
    let mut node = api
        .wait_for("nodes", "", "jobwright-node-0", |n| n.is_some_and(|n| n["spec"]["taints"].is_array()))
        .await
        .unwrap();
    node["metadata"]["annotations"] = json!({});
    api.replace("nodes", "", "jobwright-node-0", node);
    api.create(
        "pods",
        "default",
        pod("after", "Never", json!([{"name": "c", "image": "busybox", "command": ["true"]}])),
    );
    let p = api.wait_for("pods", "default", "after", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"));
    let node = api
        .wait_for("nodes", "", "jobwright-node-0", |n| {
            n.and_then(|n| n["status"]["conditions"].as_array())
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
        .await
        .unwrap();
    assert!(
        !node["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable"))
    );
    kubelet.shutdown().await;
}

#[tokio::test]
async fn deleting_the_node_orphans_its_pods() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    api.create(
        "pods",
        "default",
        pod("orphan", "Never", json!([{"name": "c", "image": "busybox", "command": ["sleep", "600"]}])),
    );
    api.wait_for("pods", "default", "orphan", |p| phase(p) == Some("Running")).await;
    api.delete_now("nodes", "", "jobwright-node-0");
    api.wait_for("pods", "default", "orphan", |p| p.is_none()).await;
    let last = api.versions("pods", "default", "orphan").into_iter().rev().find(|v| terminal(Some(v))).unwrap();
    let dt = condition(&last, "DisruptionTarget").unwrap();
    assert_eq!(
        (dt["reason"].as_str(), dt["message"].as_str()),
        (Some("DeletionByPodGC"), Some("PodGC: node no longer exists"))
    );
    kubelet.shutdown().await;
}

#[tokio::test]
async fn simulate_respects_capacity_and_annotations() {
    let (api, client) = FakeApi::start().await;
    let cfg = KubeletConfig { nodes: 2, pods_per_node: 2, events: false, ..config(ExecutorKind::Simulate) };
    let kubelet = Kubelet::start(client, cfg).await.unwrap();
    for i in 0..12 {
        let mut p = pod(&format!("sim-{i}"), "Never", json!([{"name": "c", "image": "whatever"}]));
        p["metadata"]["annotations"] = json!({
            "jobwright.dev/simulate-duration": "100ms",
            "jobwright.dev/simulate-exit-code": if i % 3 == 0 { "1" } else { "0" },
        });
        api.create("pods", "default", p);
    }
    for i in 0..12 {
        let p = api.wait_for("pods", "default", &format!("sim-{i}"), terminal).await.unwrap();
        assert_eq!(phase(Some(&p)), Some(if i % 3 == 0 { "Failed" } else { "Succeeded" }), "sim-{i}");
    }
    // Replay the history: never more than 2 unfinished pods bound to one node.
    let mut state: std::collections::HashMap<String, (String, bool)> = Default::default();
    for (resource, _, obj) in api.history() {
        if resource != "pods" {
            continue;
        }
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let node = obj["spec"]["nodeName"].as_str().unwrap_or_default().to_string();
        state.insert(name, (node, terminal(Some(&obj))));
        for n in ["jobwright-node-0", "jobwright-node-1"] {
            let load = state.values().filter(|(node, done)| node == n && !done).count();
            assert!(load <= 2, "{n} had {load} pods");
        }
    }
    let used: std::collections::HashSet<_> = state.values().map(|(n, _)| n.clone()).collect();
    assert_eq!(used.len(), 2, "both nodes were used");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn shutdown_kills_running_processes() {
    let (api, client) = FakeApi::start().await;
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let marker = format!("jw-shutdown-{}", uuid::Uuid::new_v4().simple());
    api.create(
        "pods",
        "default",
        pod(
            "long",
            "Never",
            json!([{"name": "c", "image": "busybox",
        "command": ["sh", "-c", format!("sleep 600; echo {marker}")]}]),
        ),
    );
    api.wait_for("pods", "default", "long", |p| phase(p) == Some("Running")).await;
    let pgrep = || std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap().stdout;
    assert!(!pgrep().is_empty(), "the pod's shell runs");
    kubelet.shutdown().await;
    let out = pgrep();
    assert!(out.is_empty(), "a process survived shutdown");
}

#[tokio::test]
async fn pods_running_under_an_earlier_kubelet_are_recovered() {
    let (api, client) = FakeApi::start().await;
    let running = json!({"phase": "Running", "startTime": "2024-01-01T00:00:00Z", "containerStatuses": [
        {"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
         "containerID": "jobwright://old", "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]});
    let mut never = pod("never", "Never", json!([{"name": "c", "image": "busybox", "command": ["true"]}]));
    never["spec"]["nodeName"] = json!("jobwright-node-0");
    never["status"] = running.clone();
    let mut retry = pod("retry", "OnFailure", json!([{"name": "c", "image": "busybox", "command": ["true"]}]));
    retry["spec"]["nodeName"] = json!("jobwright-node-0");
    retry["status"] = running;
    api.create("pods", "default", never);
    api.create("pods", "default", retry);
    let kubelet = Kubelet::start(client, config(ExecutorKind::Process)).await.unwrap();
    let p = api.wait_for("pods", "default", "never", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Failed"), "its process died with the old kubelet");
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!((t["exitCode"].as_i64(), t["reason"].as_str()), (Some(137), Some("ContainerStatusUnknown")));
    let p = api.wait_for("pods", "default", "retry", terminal).await.unwrap();
    assert_eq!(phase(Some(&p)), Some("Succeeded"));
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 1);
    assert_eq!(p["status"]["startTime"], "2024-01-01T00:00:00Z", "startTime is kept");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn with_a_data_dir_logs_survive_a_kubelet_restart() {
    let (api, client) = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = KubeletConfig { data_dir: Some(dir.path().to_path_buf()), ..config(ExecutorKind::Process) };
    let kubelet = Kubelet::start(client.clone(), cfg.clone()).await.unwrap();
    api.create(
        "pods",
        "default",
        pod("before", "Never", json!([{"name": "c", "image": "busybox", "command": ["echo", "still here"]}])),
    );
    api.wait_for("pods", "default", "before", terminal).await;
    kubelet.shutdown().await;
    let kubelet = Kubelet::start(client, cfg).await.unwrap();
    let (code, body) = http_get(kubelet.log_port(), "/containerLogs/default/before/c").await;
    assert_eq!((code, body.as_str()), (200, "still here\n"));
    kubelet.shutdown().await;
}

/// A pod's status write that keeps failing (500 from the API server) is retried until it
/// goes through. The simulator used to give up after 10 attempts per write, end the pod's worker
/// as if the writes had worked and never write again: the pod stayed `Running` (or `Pending`) in
/// the API for good. Here every write is refused for more attempts than the writes of a simulated
/// pod had in all (two writes, 20 attempts), then served again: the pod must still end `Succeeded`.
#[tokio::test]
async fn status_write_is_retried_until_it_goes_through() {
    let (api, client) = FakeApi::start().await;
    let cfg = KubeletConfig { events: false, ..config(ExecutorKind::Simulate) };
    let kubelet = Kubelet::start(client, cfg).await.unwrap();
    api.refuse_status_writes(true);
    let mut p = pod("stubborn", "Never", json!([{"name": "c", "image": "whatever"}]));
    p["metadata"]["annotations"] = json!({"jobwright.dev/simulate-duration": "0"});
    api.create("pods", "default", p);
    api.wait_status_refusals(31).await;
    api.refuse_status_writes(false);
    let done = api.wait_for("pods", "default", "stubborn", terminal).await.unwrap();
    assert_eq!(phase(Some(&done)), Some("Succeeded"));
    kubelet.shutdown().await;
}
