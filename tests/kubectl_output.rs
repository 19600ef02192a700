//! The real `kubectl` (v1.32) against `TestApiServer`: what a user sees must be what a real
//! cluster shows. Each test has its own server, kubeconfig and `KUBECACHEDIR`.
//!
//! They need `kubectl` on PATH; set `JOBWRIGHT_SKIP_KUBECTL=1` to skip them where it is missing.

use std::time::Duration;

use jobwright::apiserver::registry::Registry;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

mod support;
use support::Kubectl;

/// How long any awaited output may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);

async fn setup() -> Option<(TestApiServer, Kubectl)> {
    let api = TestApiServer::start().await;
    let k = Kubectl::new(&api.url())?;
    Some((api, k))
}

fn rows(out: &str) -> Vec<Vec<String>> {
    Kubectl::rows(out)
}

const JOB_YAML: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: applied
  labels:
    app: demo
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: [\"echo\", \"hi\"]
";

#[tokio::test]
async fn version_api_resources_and_explain() {
    let Some((_api, k)) = setup().await else { return };
    let v: Value = serde_json::from_str(&k.ok(&["version", "-o", "json"]).await).unwrap();
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "33");

    // Every served resource is listed, with the names kubectl derives from discovery.
    let out = k.ok(&["api-resources", "--no-headers", "-o", "name"]).await;
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<String> = Registry::builtin().all().iter().map(|r| r.group_resource()).collect();
    want.sort();
    assert_eq!(got, want);

    let out = k.ok(&["api-resources", "-o", "wide", "--api-group=batch"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS", "CATEGORIES"]);
    assert!(r.iter().any(|row| row[..5] == ["cronjobs", "cj", "batch/v1", "true", "CronJob"]), "{out}");

    let out = k.ok(&["explain", "job.spec.backoffLimit"]).await;
    assert!(out.contains("KIND:       Job") && out.contains("FIELD: backoffLimit <integer>"), "{out}");
}

#[tokio::test]
async fn create_job_then_get_in_every_output_format() {
    let Some((_api, k)) = setup().await else { return };
    let out = k.ok(&["create", "job", "x", "--image=busybox", "--", "echo", "hi"]).await;
    assert_eq!(out.trim(), "job.batch/x created");

    let out = k.ok(&["get", "jobs"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(r[1][..3], ["x", "Running", "0/1"]);

    let out = k.ok(&["get", "jobs", "-o", "wide"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(r[1][4..6], ["x", "busybox"], "{out}");
    assert!(r[1][6].starts_with("batch.kubernetes.io/controller-uid="), "{out}");

    let out = k.ok(&["get", "job", "x", "-o", "yaml"]).await;
    assert!(out.contains("apiVersion: batch/v1") && out.contains("kind: Job"), "{out}");
    assert!(out.contains("- echo") && out.contains("- hi"), "{out}");

    let out = k.ok(&["get", "job", "x", "-o", "jsonpath={.spec.template.spec.containers[0].command}"]).await;
    assert_eq!(out, r#"["echo","hi"]"#);
    let out = k.ok(&["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"]).await;
    assert_eq!(out, "x");
    let (ok, _, err) = k.run(&["get", "job", "nope"]).await;
    assert!(!ok);
    assert!(err.contains(r#"Error from server (NotFound): jobs.batch "nope" not found"#), "{err}");
}

#[tokio::test]
async fn get_pods_default_and_wide_columns() {
    let Some((api, k)) = setup().await else { return };
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let status = json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}});
    pods.patch_status("p1", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let out = k.ok(&["get", "pods"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(r[1][..4], ["p1", "0/1", "Pending", "0"]);
    let out = k.ok(&["get", "pods", "-o", "wide"]).await;
    let r = rows(&out);
    assert_eq!(
        r[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    );
    assert_eq!(r[1][5..], ["<none>", "<none>", "<none>", "<none>"]);
}

#[tokio::test]
async fn apply_client_side_with_validation_and_server_side() {
    let Some((_api, k)) = setup().await else { return };
    let file = k.dir.path().join("job.yaml");
    std::fs::write(&file, JOB_YAML).unwrap();
    let f = file.to_str().unwrap();
    let out = k.ok(&["apply", "-f", f]).await;
    assert_eq!(out.trim(), "job.batch/applied created");
    let out = k.ok(&["get", "job", "applied", "-o", "jsonpath={.metadata.annotations}"]).await;
    assert!(out.contains("kubectl.kubernetes.io/last-applied-configuration"), "{out}");

    let ssa = JOB_YAML.replace("name: applied", "name: ssa");
    let (ok, out, err) = k.run_stdin(&["apply", "--server-side", "-f", "-"], &ssa).await;
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), "job.batch/ssa serverside-applied");
    let out = k.ok(&["get", "jobs", "-o", "name"]).await;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["job.batch/applied", "job.batch/ssa"]);
}

#[tokio::test]
async fn get_watch_prints_header_rows_and_new_objects() {
    let Some((_api, k)) = setup().await else { return };
    k.ok(&["create", "job", "first", "--image=busybox"]).await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(k.dir.path().join("kubeconfig"))
        .args(["get", "jobs", "-w"])
        .env("KUBECACHEDIR", k.dir.path().join("cache"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        async || tokio::time::timeout(WAIT, lines.next_line()).await.expect("line in time").unwrap().unwrap();
    let header = next().await;
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert!(next().await.starts_with("first "));
    k.ok(&["create", "job", "second", "--image=busybox"]).await;
    let line = next().await;
    assert_eq!(line.split_whitespace().take(3).collect::<Vec<_>>(), ["second", "Running", "0/1"], "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn describe_job_shows_events_recorded_through_events_k8s_io() {
    let Some((api, k)) = setup().await else { return };
    k.ok(&["create", "job", "d", "--image=busybox"]).await;
    let uid = k.ok(&["get", "job", "d", "-o", "jsonpath={.metadata.uid}"]).await;
    let gvk = GroupVersionKind::gvk("events.k8s.io", "v1", "Event");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "events");
    let events: Api<DynamicObject> = Api::namespaced_with(api.client(), "default", &ar);
    let ev: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "d.1", "namespace": "default"},
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reportingController": "jobwright.dev/job-controller", "reportingInstance": "jobwright-1",
        "action": "Create", "reason": "SuccessfulCreate", "type": "Normal",
        "note": "Created pod: d-abcde",
        "regarding": {"apiVersion": "batch/v1", "kind": "Job", "name": "d", "namespace": "default", "uid": uid},
    }))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();

    let out = k.ok(&["describe", "job", "d"]).await;
    let events_at = out.find("Events:").unwrap_or_else(|| panic!("no Events section:\n{out}"));
    let section = &out[events_at..];
    assert!(section.contains("SuccessfulCreate") && section.contains("Created pod: d-abcde"), "{section}");
    assert!(section.contains("jobwright.dev/job-controller"), "{section}");

    // The same event in both views.
    let out = k.ok(&["get", "events", "--field-selector", "involvedObject.kind=Job,reason=SuccessfulCreate"]).await;
    let r = rows(&out);
    assert_eq!(r[0], ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    assert_eq!(r[1][1..4], ["Normal", "SuccessfulCreate", "job/d"], "{out}");
    let out = k.ok(&["get", "events.events.k8s.io", "-o", "jsonpath={.items[0].note}"]).await;
    assert_eq!(out, "Created pod: d-abcde");
}

#[tokio::test]
async fn label_and_annotate_with_selectors_and_selector_errors() {
    let Some((api, k)) = setup().await else { return };
    let pods: Api<Pod> = Api::namespaced(api.client(), "default");
    for (name, app) in [("p1", "x"), ("p2", "y"), ("p3", "z")] {
        let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let out = k.ok(&["label", "pods", "-l", "app=x", "tier=web"]).await;
    assert_eq!(out.trim(), "pod/p1 labeled");
    let out = k.ok(&["annotate", "pods", "-l", "app in (x,y)", "note=hi"]).await;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["pod/p1 annotated", "pod/p2 annotated"]);
    let names = |out: String| out.lines().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(names(k.ok(&["get", "pods", "-l", "tier=web", "-o", "name"]).await), ["pod/p1"]);
    assert_eq!(names(k.ok(&["get", "pods", "-l", "!tier,app!=z", "-o", "name"]).await), ["pod/p2"]);
    assert_eq!(names(k.ok(&["get", "pods", "-l", "app notin (x)", "-o", "name"]).await), ["pod/p2", "pod/p3"]);
    assert_eq!(
        names(k.ok(&["get", "pods", "--field-selector", "metadata.name!=p1", "-o", "name"]).await),
        ["pod/p2", "pod/p3"]
    );
    let out = k.ok(&["get", "pod", "p2", "-o", "jsonpath={.metadata.annotations.note}"]).await;
    assert_eq!(out, "hi");

    let (ok, _, err) = k.run(&["get", "pods", "-l", "a b"]).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label selector \"a b\", field selector \"\": unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        "{err}"
    );
    let (ok, _, err) = k.run(&["get", "pods", "--field-selector", "spec.foo=bar"]).await;
    assert!(!ok);
    assert!(
        err.contains("Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label selector \"\", field selector \"spec.foo=bar\": field label not supported: spec.foo"),
        "{err}"
    );
}
