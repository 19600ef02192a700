//! The real `kubectl` against discovery, OpenAPI and Table documents alone.
//!
//! A minimal axum router serves nothing but the pure functions of `apiserver::discovery`,
//! `apiserver::openapi` and `apiserver::table` (plus fixed objects for `get`), so these tests pin
//! down what kubectl needs from them independently of the store: `version`, `api-resources`,
//! `explain` from OpenAPI v3, and the columns of `get` (default and `-o wide`).
//!
//! They need the real `kubectl` on PATH (every machine and CI has it); there is no skip.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use jobwright::apiserver::discovery;
use jobwright::apiserver::openapi::{self, CustomSchemas};
use jobwright::apiserver::registry::Registry;
use jobwright::apiserver::table::{self, IncludeObject};
use serde_json::{Value, json};

use jobwright::apiserver::testkit::{Kubectl, KubectlOutput};

#[derive(Clone)]
struct App {
    reg: Registry,
    pods: Vec<Value>,
    jobs: Vec<Value>,
}

fn json_resp(v: Value, content_type: &str) -> Response {
    ([(header::CONTENT_TYPE, content_type.to_string())], v.to_string()).into_response()
}

fn discovery_resp(headers: &HeaderMap, aggregated: Value, legacy: Value) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if discovery::wants_aggregated(accept) {
        json_resp(aggregated, discovery::AGGREGATED_CONTENT_TYPE)
    } else {
        json_resp(legacy, "application/json")
    }
}

fn list_or_table(headers: &HeaderMap, info_kind: (&str, &str), objects: &[Value], reg: &Registry) -> Response {
    let info = reg.get(info_kind.0, "v1", info_kind.1).expect("served");
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("as=Table") {
        let mut t = table::to_table(&info, objects, IncludeObject::Object, Utc::now());
        t["metadata"]["resourceVersion"] = json!("1");
        json_resp(t, "application/json;as=Table;v=v1;g=meta.k8s.io")
    } else {
        let items: Vec<Value> = objects.to_vec();
        json_resp(
            json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": {"resourceVersion": "1"}, "items": items}),
            "application/json",
        )
    }
}

async fn serve(app: App) -> String {
    let router = Router::new()
        .route("/version", get(|| async { json_resp(discovery::version(), "application/json") }))
        .route(
            "/api",
            get(|State(a): State<App>, h: HeaderMap| async move {
                discovery_resp(&h, discovery::aggregated_core(&a.reg), discovery::core_versions())
            }),
        )
        .route(
            "/apis",
            get(|State(a): State<App>, h: HeaderMap| async move {
                discovery_resp(&h, discovery::aggregated_apis(&a.reg), discovery::api_group_list(&a.reg))
            }),
        )
        .route(
            "/api/v1",
            get(|State(a): State<App>| async move {
                json_resp(discovery::api_resource_list(&a.reg, "", "v1").unwrap(), "application/json")
            }),
        )
        .route(
            "/apis/{g}/{v}",
            get(|State(a): State<App>, Path((g, v)): Path<(String, String)>| async move {
                match discovery::api_resource_list(&a.reg, &g, &v) {
                    Some(l) => json_resp(l, "application/json"),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/openapi/v3",
            get(|State(a): State<App>| async move {
                json_resp(openapi::v3_index(&a.reg, &CustomSchemas::new()), "application/json")
            }),
        )
        .route(
            "/openapi/v3/{*path}",
            get(|State(a): State<App>, Path(p): Path<String>| async move {
                match openapi::v3_document_for_path(&a.reg, &p, &CustomSchemas::new()) {
                    Some((d, _)) => json_resp(d, "application/json"),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/openapi/v2",
            get(|| async {
                ([(header::CONTENT_TYPE, openapi::V2_PROTOBUF_CONTENT_TYPE)], openapi::v2_document_protobuf())
                    .into_response()
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(|State(a): State<App>, h: HeaderMap| async move { list_or_table(&h, ("", "pods"), &a.pods, &a.reg) }),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            get(|State(a): State<App>, h: HeaderMap| async move {
                list_or_table(&h, ("batch", "jobs"), &a.jobs, &a.reg)
            }),
        )
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

fn fixture_app() -> App {
    let now = Utc::now();
    // Ages are whole minutes (20m, 10m) so a slow run cannot change them.
    let ts = |secs: i64| (now - chrono::Duration::seconds(secs)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let pods = vec![json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ts(1200)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}],
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    })];
    let jobs = vec![json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "creationTimestamp": ts(600)},
        "spec": {"completions": 2, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 2, "startTime": ts(600), "completionTime": ts(480),
            "conditions": [{"type": "Complete", "status": "True"}]}
    })];
    App { reg: Registry::builtin(), pods, jobs }
}

#[tokio::test]
async fn version_and_api_resources() {
    let server = serve(fixture_app()).await;
    let k = Kubectl::new(&server);
    let out = k.ok(&["version", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33");
    let KubectlOutput { success: _, stdout: _, stderr: err } = k.run(&["version"]).await;
    assert!(!err.contains("WARNING"), "no version skew warning expected: {err}");

    let out = k.ok(&["api-resources", "--no-headers", "-o", "name"]).await;
    let names: Vec<&str> = out.lines().collect();
    for want in [
        "pods",
        "jobs.batch",
        "cronjobs.batch",
        "events.events.k8s.io",
        "leases.coordination.k8s.io",
        "customresourcedefinitions.apiextensions.k8s.io",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let out = k.ok(&["api-resources", "--api-group=batch"]).await;
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    assert!(lines.contains(&vec!["cronjobs", "cj", "batch/v1", "true", "CronJob"]), "{out}");
    assert!(lines.contains(&vec!["jobs", "batch/v1", "true", "Job"]), "{out}");
    let out = k.ok(&["api-resources", "--namespaced=false", "--no-headers"]).await;
    assert!(out.lines().any(|l| l.starts_with("nodes ")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("pods ")), "{out}");
}

#[tokio::test]
async fn explain_reads_openapi_v3() {
    let server = serve(fixture_app()).await;
    let k = Kubectl::new(&server);
    let out = k.ok(&["explain", "job.spec.backoffLimit"]).await;
    assert!(out.contains("GROUP:      batch"), "{out}");
    assert!(out.contains("KIND:       Job"), "{out}");
    assert!(out.contains("FIELD: backoffLimit <integer>"), "{out}");
    assert!(out.contains("Specifies the number of retries before marking this job failed."), "{out}");
    let out = k.ok(&["explain", "pods.spec.containers.env"]).await;
    assert!(out.contains("FIELD: env <[]EnvVar>"), "{out}");
    let KubectlOutput { success: ok, stdout: _, stderr: err } = k.run(&["explain", "job.spec.nope"]).await;
    assert!(!ok && err.contains("field \"nope\" does not exist"), "{err}");
}

#[tokio::test]
async fn get_prints_upstream_columns() {
    let server = serve(fixture_app()).await;
    let k = Kubectl::new(&server);
    let out = k.ok(&["get", "pods"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(rows[1], ["web-1", "1/1", "Running", "0", "20m"]);
    let out = k.ok(&["get", "pods", "-o", "wide"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    );
    assert_eq!(rows[1], ["web-1", "1/1", "Running", "0", "20m", "10.0.0.7", "node-a", "<none>", "<none>"]);
    let out = k.ok(&["get", "jobs"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(rows[1], ["pi", "Complete", "2/2", "2m", "10m"]);
    let out = k.ok(&["get", "jobs", "-o", "wide"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]);
    assert_eq!(rows[1][5..], ["pi", "perl", "batch.kubernetes.io/controller-uid=u1"]);
}
