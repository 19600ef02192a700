//! `--data-dir`: the API server's state survives a stop and a `kill -9`, objects byte-identical
//! (resourceVersion, uid, status), deletions stay deleted, resourceVersions keep increasing, and
//! custom resources are served again.

use crate::common;

use std::process::{Child, Command};
use std::time::Duration;

use jobwright::apiserver::http::ServerConfig;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::crd;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": name}})).unwrap()
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap()
}

/// Writes of every kind: creates, status updates, deletes, finalizers added and removed, a CRD and
/// a custom object. Returns the names that must stay deleted.
async fn write_everything(client: kube::Client) {
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    for i in 0..5 {
        cms.create(&pp, &cm(&format!("cm-{i}"))).await.unwrap();
        jobs.create(&pp, &job(&format!("job-{i}"))).await.unwrap();
        pods.create(&pp, &pod(&format!("pod-{i}"))).await.unwrap();
    }
    let status = json!({"status": {"active": 1, "startTime": "2026-01-01T00:00:00Z"}});
    jobs.patch_status("job-1", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let pstatus = json!({"status": {"phase": "Running"}});
    pods.patch_status("pod-2", &PatchParams::default(), &Patch::Merge(&pstatus)).await.unwrap();
    cms.delete("cm-0", &DeleteParams::default()).await.unwrap();
    jobs.delete("job-0", &DeleteParams::background()).await.unwrap();
    pods.delete("pod-0", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    // A finalizer keeps cm-3 around while deleting; cm-4 gets one and loses it again.
    let fin = json!({"metadata": {"finalizers": ["example.com/keep"]}});
    cms.patch("cm-3", &PatchParams::default(), &Patch::Merge(&fin)).await.unwrap();
    cms.delete("cm-3", &DeleteParams::default()).await.unwrap();
    cms.patch("cm-4", &PatchParams::default(), &Patch::Merge(&fin)).await.unwrap();
    let nofin = json!({"metadata": {"finalizers": null}});
    cms.patch("cm-4", &PatchParams::default(), &Patch::Merge(&nofin)).await.unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap()).await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&pp, &crd::crd()).await.unwrap();
}

/// Everything a client sees: each resource's items as JSON, plus the list resourceVersion.
async fn dump(client: kube::Client) -> (Vec<Value>, u64) {
    let lp = ListParams::default();
    let mut out = Vec::new();
    let cms = Api::<ConfigMap>::all(client.clone()).list(&lp).await.unwrap();
    let rv: u64 = cms.metadata.resource_version.clone().unwrap().parse().unwrap();
    out.extend(cms.items.iter().map(|o| serde_json::to_value(o).unwrap()));
    out.extend(
        Api::<Job>::all(client.clone()).list(&lp).await.unwrap().items.iter().map(|o| serde_json::to_value(o).unwrap()),
    );
    out.extend(
        Api::<Pod>::all(client.clone()).list(&lp).await.unwrap().items.iter().map(|o| serde_json::to_value(o).unwrap()),
    );
    out.extend(
        Api::<Namespace>::all(client.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    out.extend(
        Api::<CustomResourceDefinition>::all(client.clone())
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap()),
    );
    (out, rv)
}

fn names(dump: &[Value], kind_prefix: &str) -> Vec<String> {
    dump.iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .filter(|n| n.starts_with(kind_prefix))
        .map(str::to_string)
        .collect()
}

/// The restarted server's state equals the old one, and it keeps working.
async fn check_after_restart(client: kube::Client, before: &(Vec<Value>, u64)) {
    let after = dump(client.clone()).await;
    assert_eq!(after.0, before.0, "objects differ after restart");
    assert_eq!(names(&after.0, "cm-"), ["cm-1", "cm-2", "cm-3", "cm-4"]);
    assert_eq!(names(&after.0, "job-"), ["job-1", "job-2", "job-3", "job-4"]);
    assert_eq!(names(&after.0, "pod-"), ["pod-1", "pod-2", "pod-3", "pod-4"]);
    let ns_names: Vec<_> =
        after.0.iter().filter(|o| o["kind"] == "Namespace").map(|o| o["metadata"]["name"].clone()).collect();
    assert_eq!(ns_names, ["default", "kube-node-lease", "kube-public", "kube-system", "team-a"]);
    let j1 = after.0.iter().find(|o| o["metadata"]["name"] == "job-1").unwrap();
    assert_eq!(j1["status"]["active"], 1);
    let c3 = after.0.iter().find(|o| o["metadata"]["name"] == "cm-3").unwrap();
    assert!(c3["metadata"]["deletionTimestamp"].is_string());
    assert!(after.1 >= before.1);

    // New writes get higher resourceVersions; the deleted name is free again.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let c = cms.create(&PostParams::default(), &cm("cm-0")).await.unwrap();
    let rv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > before.1, "{rv} <= {}", before.1);
    // Removing the finalizer completes cm-3's deletion.
    let nofin = json!({"metadata": {"finalizers": null}});
    cms.patch("cm-3", &PatchParams::default(), &Patch::Merge(&nofin)).await.unwrap();
    assert_eq!(cms.get_opt("cm-3").await.unwrap().map(|c| c.metadata.name), None);
    // The custom resource is served again.
    let cjobs: Api<crd::Job> = Api::default_namespaced(client.clone());
    assert!(cjobs.list(&ListParams::default()).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn state_survives_a_stop_and_start_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
    let before = {
        let s = TestApiServer::start_with(config()).await;
        write_everything(s.client()).await;
        dump(s.client()).await
    };
    let s = TestApiServer::start_with(config()).await;
    check_after_restart(s.client(), &before).await;
    drop(s);
    // And once more, after the post-restart writes.
    let s = TestApiServer::start_with(config()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    assert!(cms.get_opt("cm-0").await.unwrap().is_some());
    assert!(cms.get_opt("cm-3").await.unwrap().is_none());
}

#[tokio::test]
async fn a_watch_from_before_the_restart_is_told_to_relist() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
    let rv = {
        let s = TestApiServer::start_with(config()).await;
        let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
        let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
        cms.create(&PostParams::default(), &cm("b")).await.unwrap();
        a.metadata.resource_version.unwrap()
    };
    let s = TestApiServer::start_with(config()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let err = cms.watch(&kube::api::WatchParams::default(), &rv).await;
    let gone = match err {
        Err(kube::Error::Api(e)) => e.code == 410,
        Ok(stream) => {
            use futures::StreamExt;
            let first = Box::pin(stream).next().await;
            matches!(first, Some(Ok(kube::api::WatchEvent::Error(e))) if e.code == 410)
        }
        Err(e) => panic!("unexpected {e}"),
    };
    assert!(gone, "a watch from an rv before the restart must get a 410");
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn_server(dir: &std::path::Path, kc: &std::path::Path) -> (Proc, kube::Client) {
    let (child, line) = common::spawn_jobwright([
        "apiserver".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--kubeconfig".as_ref(),
        kc.as_os_str(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
    ]);
    assert!(line.starts_with("jobwright apiserver listening on"), "{line:?}");
    let raw = std::fs::read_to_string(kc).unwrap();
    let config: kube::config::Kubeconfig = serde_saphyr::from_str(&raw).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.unwrap();
    cfg.default_namespace = "default".into();
    cfg.read_timeout = Some(Duration::from_secs(30));
    (Proc(child), kube::Client::try_from(cfg).unwrap())
}

#[tokio::test]
async fn state_survives_kill_dash_9() {
    let data = tempfile::tempdir().unwrap();
    let kc = data.path().join("kubeconfig");
    let state = data.path().join("state");
    let (mut p, client) = spawn_server(&state, &kc).await;
    write_everything(client.clone()).await;
    let before = dump(client).await;
    let killed = Command::new("kill").args(["-KILL", &p.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    p.0.wait().unwrap();
    let (_p, client) = spawn_server(&state, &kc).await;
    check_after_restart(client, &before).await;
}

#[tokio::test]
async fn a_torn_log_tail_does_not_prevent_startup() {
    let data = tempfile::tempdir().unwrap();
    let kc = data.path().join("kubeconfig");
    let state = data.path().join("state");
    let (mut p, client) = spawn_server(&state, &kc).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("kept")).await.unwrap();
    let _ = p.0.kill();
    p.0.wait().unwrap();
    // A crash halfway through appending a record.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(state.join("wal")).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 9]).unwrap();
    drop(f);
    let (_p, client) = spawn_server(&state, &kc).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    assert_eq!(cms.get("kept").await.unwrap().data.unwrap()["k"], "kept");
}

/// Runs `jobwright apiserver --data-dir dir` expecting it to refuse to start; its stderr.
fn refused_start(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(["apiserver", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "started on a damaged data directory");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn a_deleted_log_or_a_corrupted_length_refuses_to_start_and_says_what_to_do() {
    let data = tempfile::tempdir().unwrap();
    let kc = data.path().join("kubeconfig");
    let state = data.path().join("state");
    let (mut p, client) = spawn_server(&state, &kc).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"))).await.unwrap();
    }
    let _ = p.0.kill();
    p.0.wait().unwrap();
    let wal = state.join("wal");
    let saved = std::fs::read(&wal).unwrap();

    // A length field in the middle of the log corrupted to a huge value.
    let mut bad = saved.clone();
    let first_len = u32::from_le_bytes(bad[0..4].try_into().unwrap()) as usize;
    let second = 8 + first_len;
    bad[second..second + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    std::fs::write(&wal, &bad).unwrap();
    let err = refused_start(&state);
    assert!(err.contains(&format!("corrupt record at offset {second}")), "{err}");
    assert!(err.contains(&wal.display().to_string()) && err.contains("truncate -s"), "{err}");
    assert_eq!(std::fs::read(&wal).unwrap(), bad, "the log was left as it was");

    // The log deleted: the snapshot says one must follow it.
    std::fs::remove_file(&wal).unwrap();
    let err = refused_start(&state);
    assert!(err.contains("the log is missing") && err.contains("mv "), "{err}");

    // Restored, every object is back.
    std::fs::write(&wal, &saved).unwrap();
    let (_p, client) = spawn_server(&state, &kc).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    assert_eq!(cms.list(&Default::default()).await.unwrap().items.len(), 20);
}
