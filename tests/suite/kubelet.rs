//! The node simulator against jobwright's own API server (`testkit::TestApiServer`), through
//! `kube::Client` only: scheduling and the pod lifecycle, logs through the API server's `pods/log`
//! proxy, OnFailure restarts, graceful deletion, node failure.

use std::time::Duration;

use futures::StreamExt;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::kubelet::{Backoff, ExecutorKind, Kubelet, KubeletConfig};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

fn config(executor: ExecutorKind) -> KubeletConfig {
    KubeletConfig {
        executor,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_millis(200) },
        heartbeat_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

fn pod(name: &str, restart_policy: &str, command: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": "c", "image": "busybox", "command": command}]}
    }))
    .unwrap()
}

fn phase(p: Option<&Pod>) -> Option<String> {
    p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.clone())
}

fn is_terminal(p: Option<&Pod>) -> bool {
    matches!(phase(p).as_deref(), Some("Succeeded" | "Failed"))
}

async fn wait(api: &Api<Pod>, name: &str, cond: impl Fn(Option<&Pod>) -> bool) -> Option<Pod> {
    tokio::time::timeout(Duration::from_secs(30), await_condition(api.clone(), name, move |p: Option<&Pod>| cond(p)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for pod {name}"))
        .unwrap()
}

#[tokio::test]
async fn a_bare_pod_runs_to_success_and_its_logs_come_through_the_api_server() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get("jobwright-node-0").await.unwrap();
    let port = node.status.unwrap().daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port;
    assert_eq!(port, kubelet.log_port() as i32);

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("hello", "Never", &["echo", "Hello, World!"])).await.unwrap();
    let p = wait(&pods, "hello", is_terminal).await.unwrap();
    assert_eq!(phase(Some(&p)).as_deref(), Some("Succeeded"));
    assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("jobwright-node-0"));
    let st = p.status.unwrap();
    let cs = &st.container_statuses.unwrap()[0];
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((term.exit_code, term.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.1"));
    let ready = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodCompleted")));

    let logs = pods.logs("hello", &LogParams::default()).await.unwrap();
    assert_eq!(logs, "Hello, World!\n");

    // `kubectl describe` reads core/v1 events by involvedObject; they are published in the
    // background, so watch until all four arrived.
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let wanted = ["Scheduled", "Pulled", "Created", "Started"];
    let cfg = watcher::Config::default().fields("involvedObject.name=hello");
    let mut stream = std::pin::pin!(watcher(events, cfg).applied_objects());
    let mut seen: Vec<String> = Vec::new();
    while !wanted.iter().all(|w| seen.iter().any(|s| s == w)) {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
        let ev = next.unwrap_or_else(|_| panic!("events so far: {seen:?}")).unwrap().unwrap();
        seen.extend(ev.reason);
    }
    kubelet.shutdown().await;
}

#[tokio::test]
async fn on_failure_restarts_in_place() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let script = "if [ -f marker ]; then echo second; exit 0; else touch marker; echo first; exit 3; fi";
    pods.create(&PostParams::default(), &pod("flaky", "OnFailure", &["sh", "-c", script])).await.unwrap();
    let p = wait(&pods, "flaky", is_terminal).await.unwrap();
    assert_eq!(phase(Some(&p)).as_deref(), Some("Succeeded"));
    let cs = &p.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(cs.restart_count, 1);
    assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 3);
    let previous = pods.logs("flaky", &LogParams { previous: true, ..Default::default() }).await.unwrap();
    let current = pods.logs("flaky", &LogParams::default()).await.unwrap();
    assert_eq!((previous.as_str(), current.as_str()), ("first\n", "second\n"));
    kubelet.shutdown().await;
}

#[tokio::test]
async fn deletion_kills_the_process_and_the_kubelet_confirms() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    pods.create(&PostParams::default(), &pod("sleeper", "Never", &["sleep", "600"])).await.unwrap();
    wait(&pods, "sleeper", |p| phase(p).as_deref() == Some("Running")).await;
    // Record every version of the pod until it is gone. The watch has listed before the delete
    // is sent: a watch whose first list came after the pod was gone would never see its Delete.
    let cfg = watcher::Config::default().fields("metadata.name=sleeper");
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let versions = tokio::spawn({
        let pods = pods.clone();
        async move {
            let mut listed_tx = Some(listed_tx);
            let mut seen = Vec::new();
            let mut stream = std::pin::pin!(watcher(pods, cfg));
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => seen.push(p),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(watcher::Event::Delete(_)) => break,
                    _ => {}
                }
            }
            seen
        }
    });
    tokio::time::timeout(Duration::from_secs(30), listed).await.expect("the watch listed").unwrap();
    pods.delete("sleeper", &DeleteParams::default()).await.unwrap();
    wait(&pods, "sleeper", |p| p.is_none()).await;
    let versions = tokio::time::timeout(Duration::from_secs(30), versions).await.unwrap().unwrap();
    let last = versions.iter().rev().find(|p| is_terminal(Some(p))).expect("a final status before deletion");
    assert_eq!(phase(Some(last)).as_deref(), Some("Failed"), "killed by SIGTERM: not all containers succeeded");
    let cs = &last.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert_eq!(cs.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 143);
    kubelet.shutdown().await;
}

#[tokio::test]
async fn a_failed_node_loses_its_pods() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("victim", "Never", &["sleep", "600"])).await.unwrap();
    wait(&pods, "victim", |p| phase(p).as_deref() == Some("Running")).await;
    kubelet.fail_node("jobwright-node-0").await.unwrap();
    wait(&pods, "victim", |p| p.is_none()).await;
    let nodes: Api<Node> = Api::all(client);
    let not_ready = tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(nodes, "jobwright-node-0", |n: Option<&Node>| {
            n.and_then(|n| n.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").cloned())
                .is_some_and(|c| c.status == "Unknown")
        }),
    )
    .await;
    assert!(not_ready.is_ok(), "node turned NotReady");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn simulated_pods_follow_their_annotations() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Simulate)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let mut p = pod("sim", "Never", &["ignored"]);
    p.metadata.annotations = Some(
        [
            ("jobwright.dev/simulate-exit-code".to_string(), "3".to_string()),
            ("jobwright.dev/simulate-condition".to_string(), "DisruptionTarget".to_string()),
        ]
        .into(),
    );
    pods.create(&PostParams::default(), &p).await.unwrap();
    let p = wait(&pods, "sim", is_terminal).await.unwrap();
    assert_eq!(phase(Some(&p)).as_deref(), Some("Failed"));
    let st = p.status.unwrap();
    assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"));
    let cs = &st.container_statuses.unwrap()[0];
    assert_eq!(cs.state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 3);
    kubelet.shutdown().await;
}

/// A zero-length simulated run is written once, in its final state: no `Running` version
/// before it (half the kubelet's status writes of a scale run). Many pods at once, since the
/// old worker wrote `Running` only when it saw the start before the exit.
#[tokio::test]
async fn a_zero_length_simulated_pod_gets_one_status_write() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Simulate)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let rv = pods.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut stream = pods.watch(&kube::api::WatchParams::default().timeout(120), &rv).await.unwrap().boxed();
    let n = 60;
    for i in 0..n {
        let restart_policy = if i % 2 == 0 { "Never" } else { "OnFailure" };
        pods.create(&PostParams::default(), &pod(&format!("once-{i}"), restart_policy, &["ignored"])).await.unwrap();
    }
    let mut statuses: std::collections::BTreeMap<String, Vec<Option<String>>> = Default::default();
    let mut finished = 0;
    while finished < n {
        let ev = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("pods finished within 60 s")
            .expect("watch open")
            .unwrap();
        if let kube::api::WatchEvent::Modified(p) = ev {
            let st = p.status.unwrap_or_default();
            // Versions written by the kubelet carry container statuses (binding does not).
            if st.container_statuses.is_some() {
                if matches!(st.phase.as_deref(), Some("Succeeded" | "Failed")) {
                    finished += 1;
                }
                statuses.entry(p.metadata.name.unwrap()).or_default().push(st.phase);
            }
        }
    }
    let more: Vec<_> = statuses.iter().filter(|(_, s)| s.len() != 1).collect();
    assert!(more.is_empty(), "pods with more than one status write: {more:?}");
    assert!(statuses.values().all(|s| s[0].as_deref() == Some("Succeeded")));
    kubelet.shutdown().await;
}

#[tokio::test]
async fn follow_streams_a_running_container_through_the_api_server() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!("echo waiting; while [ ! -f {} ]; do sleep 0.05; done; echo done", go.display());
    pods.create(&PostParams::default(), &pod("tail", "Never", &["sh", "-c", &script])).await.unwrap();
    wait(&pods, "tail", |p| phase(p).as_deref() == Some("Running")).await;
    let stream = pods.log_stream("tail", &LogParams { follow: true, ..Default::default() }).await.unwrap();
    let mut lines = futures::AsyncBufReadExt::lines(stream);
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first, "waiting");
    std::fs::write(&go, "").unwrap();
    let rest: Vec<String> = tokio::time::timeout(Duration::from_secs(30), lines.collect::<Vec<_>>())
        .await
        .expect("the stream ends with the container")
        .into_iter()
        .map(|l| l.unwrap())
        .collect();
    assert_eq!(rest, ["done"]);
    kubelet.shutdown().await;
}

#[tokio::test]
async fn deleting_a_node_orphans_its_pods() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let kubelet = Kubelet::start(client.clone(), config(ExecutorKind::Process)).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(&PostParams::default(), &pod("orphan", "Never", &["sleep", "600"])).await.unwrap();
    wait(&pods, "orphan", |p| phase(p).as_deref() == Some("Running")).await;
    let nodes: Api<Node> = Api::all(client);
    nodes.delete("jobwright-node-0", &DeleteParams::default()).await.unwrap();
    wait(&pods, "orphan", |p| p.is_none()).await;
    kubelet.shutdown().await;
}

#[tokio::test]
async fn pods_beyond_capacity_wait_unschedulable_then_run() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let cfg = KubeletConfig { pods_per_node: 1, ..config(ExecutorKind::Process) };
    let kubelet = Kubelet::start(client.clone(), cfg).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!("while [ ! -f {} ]; do sleep 0.05; done", go.display());
    pods.create(&PostParams::default(), &pod("first", "Never", &["sh", "-c", &script])).await.unwrap();
    wait(&pods, "first", |p| phase(p).as_deref() == Some("Running")).await;
    pods.create(&PostParams::default(), &pod("second", "Never", &["true"])).await.unwrap();
    let p = wait(&pods, "second", |p| {
        p.and_then(|p| p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled").cloned())
            .is_some_and(|c| c.status == "False")
    })
    .await
    .unwrap();
    let cond = p.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert!(cond.message.unwrap().starts_with("0/1 nodes are available: 1 Too many pods."));
    std::fs::write(&go, "").unwrap();
    let p = wait(&pods, "second", is_terminal).await.unwrap();
    assert_eq!(phase(Some(&p)).as_deref(), Some("Succeeded"));
    kubelet.shutdown().await;
}
