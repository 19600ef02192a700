//! The envtest-style API server driven by the real `kubectl` binary (fresh `KUBECACHEDIR` per
//! test). `apply` runs with validation on, as users run it: kubectl reads the served OpenAPI and
//! the server decodes strictly.

use crate::common;

use common::*;
use jobwright::apiserver::testkit::{Kubectl, TestApiServer};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::conditions;
use serde_json::json;

/// A server and a kubectl for it (`testkit::Kubectl` through `Deref`).
struct Cluster {
    server: TestApiServer,
    kubectl: Kubectl,
}

impl Cluster {
    async fn start() -> Self {
        let server = TestApiServer::start().await;
        let kubectl = server.kubectl();
        Self { server, kubectl }
    }
}

impl std::ops::Deref for Cluster {
    type Target = Kubectl;
    fn deref(&self) -> &Kubectl {
        &self.kubectl
    }
}

#[tokio::test]
async fn version_and_api_resources() {
    let k = Cluster::start().await;
    let v = k.ok(&["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1");
    let res = k.ok(&["api-resources", "--no-headers", "-o", "name"]).await;
    for r in ["jobs.batch", "cronjobs.batch", "pods", "leases.coordination.k8s.io", "events.events.k8s.io"] {
        assert!(res.lines().any(|l| l == r), "{r} missing from {res}");
    }
}

#[tokio::test]
async fn create_job_then_get_it() {
    let k = Cluster::start().await;
    assert_eq!(
        k.ok(&["create", "job", "hello", "--image=busybox", "--", "echo", "hi"]).await.trim(),
        "job.batch/hello created"
    );
    let names = k.ok(&["get", "jobs", "-o", "name"]).await;
    assert_eq!(names.trim(), "job.batch/hello");
    let jobs: Api<Job> = Api::default_namespaced(k.server.client());
    let j = jobs.get("hello").await.unwrap();
    let c = &j.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.command.as_deref(), Some(&["echo".to_string(), "hi".to_string()][..]));
    assert_eq!(k.ok(&["get", "job", "hello", "-o", "jsonpath={.metadata.generation}"]).await, "1");
    // failure cases
    let err = k.fail(&["create", "job", "hello", "--image=busybox"]).await;
    assert!(err.contains("jobs.batch \"hello\" already exists"), "{err}");
    let err = k.fail(&["get", "job", "nope"]).await;
    assert!(err.contains("Error from server (NotFound): jobs.batch \"nope\" not found"), "{err}");
}

#[tokio::test]
async fn apply_creates_then_configures() {
    let k = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cm.yaml");
    let manifest =
        |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"{v}\"\n");
    std::fs::write(&file, manifest("1")).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(k.ok(&["apply", "-f", f]).await.trim(), "configmap/applied created");
    std::fs::write(&file, manifest("2")).unwrap();
    assert_eq!(k.ok(&["apply", "-f", f]).await.trim(), "configmap/applied configured");
    assert_eq!(k.ok(&["get", "cm", "applied", "-o", "jsonpath={.data.a}"]).await, "2");
    // failure: a manifest for a resource the server doesn't serve
    std::fs::write(&file, "apiVersion: v1\nkind: Widget\nmetadata:\n  name: w\n").unwrap();
    let err = k.fail(&["apply", "-f", f]).await;
    assert!(err.contains("Widget"), "{err}");
}

#[tokio::test]
async fn label_annotate_and_all_three_patch_types() {
    let k = Cluster::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(k.server.client());
    create(&cms, &cm("p")).await;
    k.ok(&["label", "cm", "p", "team=a"]).await;
    k.ok(&["annotate", "cm", "p", "note=hello"]).await;
    k.ok(&["patch", "cm", "p", "--type", "merge", "-p", r#"{"data":{"m":"1"}}"#]).await;
    k.ok(&["patch", "cm", "p", "--type", "json", "-p", r#"[{"op":"add","path":"/data/j","value":"2"}]"#]).await;
    k.ok(&["patch", "cm", "p", "--type", "strategic", "-p", r#"{"data":{"s":"3"}}"#]).await;
    let c = cms.get("p").await.unwrap();
    assert_eq!(c.metadata.labels.unwrap()["team"], "a");
    assert_eq!(c.metadata.annotations.unwrap()["note"], "hello");
    let data = c.data.unwrap();
    assert_eq!((data["m"].as_str(), data["j"].as_str(), data["s"].as_str()), ("1", "2", "3"));
    // failures: an existing label without --overwrite, a JSON patch whose test fails
    let err = k.fail(&["label", "cm", "p", "team=b"]).await;
    assert!(err.contains("already has a value"), "{err}");
    k.fail(&[
        "patch",
        "cm",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/m","value":"x"},{"op":"add","path":"/data/t","value":"t"}]"#,
    ])
    .await;
    assert!(!cms.get("p").await.unwrap().data.unwrap().contains_key("t"), "a failed test applies nothing");
}

async fn owned_pod(k: &Cluster, job: &str) -> (String, String) {
    k.ok(&["create", "job", job, "--image=busybox"]).await;
    let jobs: Api<Job> = Api::default_namespaced(k.server.client());
    let uid = jobs.get(job).await.unwrap().metadata.uid.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(k.server.client());
    let p = create(&pods, &pod(&format!("{job}-pod"), Some(("Job", job, &uid, true)))).await;
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(phase, Some("Pending"), "the server sets a new pod's phase");
    (uid, p.metadata.uid.unwrap())
}

#[tokio::test]
async fn delete_cascade_orphan_keeps_pods() {
    let k = Cluster::start().await;
    let (_, _) = owned_pod(&k, "o").await;
    k.ok(&["delete", "job", "o", "--cascade=orphan"]).await;
    k.fail(&["get", "job", "o"]).await;
    let pods: Api<Pod> = Api::default_namespaced(k.server.client());
    let p = pods.get("o-pod").await.expect("orphaned pod kept");
    assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn delete_cascade_background_collects_pods() {
    let k = Cluster::start().await;
    let (_, pod_uid) = owned_pod(&k, "b").await;
    k.ok(&["delete", "job", "b", "--cascade=background"]).await;
    let pods: Api<Pod> = Api::default_namespaced(k.server.client());
    wait_for(&pods, "b-pod", conditions::is_deleted(&pod_uid)).await;
}

#[tokio::test]
async fn delete_cascade_foreground_removes_pods_before_the_job() {
    let k = Cluster::start().await;
    let (_, _) = owned_pod(&k, "f").await;
    // kubectl waits until the Job is gone; by then its blocking pod must be gone too.
    k.ok(&["delete", "job", "f", "--cascade=foreground"]).await;
    let pods: Api<Pod> = Api::default_namespaced(k.server.client());
    assert_eq!(api_err(pods.get("f-pod").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn wait_for_condition_complete() {
    let k = Cluster::start().await;
    k.ok(&["create", "job", "w", "--image=busybox"]).await;
    // failure first: not complete yet, short timeout
    let err = k.fail(&["wait", "--for=condition=complete", "job/w", "--timeout=1s"]).await;
    assert!(err.contains("timed out"), "{err}");
    let jobs: Api<Job> = Api::default_namespaced(k.server.client());
    let now = "2025-01-01T00:00:00Z";
    jobs.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
                           {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}]}})),
    )
    .await
    .unwrap();
    let out = k.ok(&["wait", "--for=condition=complete", "job/w", "--timeout=10s"]).await;
    assert_eq!(out.trim(), "job.batch/w condition met");
}

#[tokio::test]
async fn apply_of_a_job_with_an_unknown_field_fails_with_the_strict_decoding_error() {
    let k = Cluster::start().await;
    let file = k.dir().join("job.yaml");
    std::fs::write(
        &file,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: typo\nspec:\n  bogus: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n",
    )
    .unwrap();
    let err = k.fail(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(
        err.contains(
            r#"Job in version "v1" cannot be handled as a Job: strict decoding error: unknown field "spec.bogus""#
        ),
        "{err}"
    );
    let jobs: Api<Job> = Api::default_namespaced(k.server.client());
    assert_eq!(api_err(jobs.get("typo").await.unwrap_err()).0, 404, "nothing was created");
}

#[tokio::test]
async fn custom_resources_get_their_crd_columns_and_strict_validation() {
    let k = Cluster::start().await;
    let crds = k.dir().join("crds.yaml");
    std::fs::write(&crds, serde_json::to_string(&jobwright::crd::crd()).unwrap()).unwrap();
    k.ok(&["apply", "-f", crds.to_str().unwrap()]).await;
    let file = k.dir().join("wjob.yaml");
    let manifest = |extra: &str| {
        format!(
            "apiVersion: jobwright.dev/v1\nkind: Job\nmetadata:\n  name: w\nspec:\n  completions: 2\n{extra}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: c\n        image: busybox\n"
        )
    };
    std::fs::write(&file, manifest("  bogus: 1\n")).unwrap();
    let err = k.fail(&["apply", "-f", file.to_str().unwrap()]).await;
    assert!(err.contains(r#"unknown field "spec.bogus""#), "{err}");
    std::fs::write(&file, manifest("")).unwrap();
    assert_eq!(k.ok(&["apply", "-f", file.to_str().unwrap()]).await.trim(), "job.jobwright.dev/w created");
    let out = k.ok(&["get", "wjob"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "COMPLETIONS", "SUCCEEDED", "STARTED", "AGE"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    // Cells of unset fields (status, succeeded, started) print empty, as upstream.
    assert_eq!(row.len(), 3, "{out}");
    assert_eq!(&row[..2], ["w", "2"]);
}
