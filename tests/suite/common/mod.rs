//! Shared helpers for the API server conformance tests.
#![allow(dead_code)]

pub mod local;

use std::ffi::OsStr;
use std::fmt::Debug;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;
use serde_json::json;

/// How long any awaited condition may take before the test fails: only a bound that turns a hang
/// into a failure, never waited out by a passing test, so generous for a loaded CI machine.
pub const WAIT: Duration = Duration::from_secs(60);

/// A minimal valid Job.
pub fn job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
    }))
    .unwrap()
}

/// A minimal valid Pod, optionally owned by `owner` (kind, name, uid, blockOwnerDeletion).
pub fn pod(name: &str, owner: Option<(&str, &str, &str, bool)>) -> Pod {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    });
    if let Some((kind, oname, uid, block)) = owner {
        let av = if kind == "Job" { "batch/v1" } else { "v1" };
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": av, "kind": kind, "name": oname, "uid": uid,
            "controller": true, "blockOwnerDeletion": block}]);
    }
    serde_json::from_value(v).unwrap()
}

/// A ConfigMap with one data key.
pub fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}),
    )
    .unwrap()
}

/// Create and return the stored object.
pub async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + Debug,
{
    api.create(&PostParams::default(), obj).await.expect("create")
}

/// Wait (bounded by [`WAIT`]) until `cond` holds for object `name`.
pub async fn wait_for<K>(api: &Api<K>, name: &str, cond: impl Condition<K>)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
        .expect("watch");
}

/// The API error code and message of a failed call.
pub fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Starts the `jobwright` binary with `args` (stdout piped, stderr discarded) and returns it with
/// the first line it prints (`... listening on URL; ...`).
pub fn spawn_jobwright<I, S>(args: I) -> (Child, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobwright"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn jobwright");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("first line");
    (child, line)
}

/// Sends SIGTERM to `child` and asserts it exits 0.
pub async fn terminate_cleanly(mut child: Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait")).await.expect("join");
    assert!(status.success(), "exit status {status:?}");
}

/// Whether every field of `want` is in `got` with the same value (arrays element by element),
/// each difference one line in `errs`. A `null` or `{}` in `want` (Go's zero time, an empty
/// struct) matches an absent field: what a client sent, checked against what was stored.
pub fn contains(want: &serde_json::Value, got: &serde_json::Value, path: &str, errs: &mut Vec<String>) {
    use serde_json::Value;
    match (want, got) {
        (Value::Null, _) => {}
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => contains(wv, gv, &format!("{path}.{k}"), errs),
                    None if wv.is_null() || wv.as_object().is_some_and(|o| o.is_empty()) => {}
                    None => errs.push(format!("{path}.{k}: missing (want {wv})")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                contains(wv, gv, &format!("{path}[{i}]"), errs);
            }
        }
        (w, g) if w == g => {}
        (w, g) => errs.push(format!("{path}: want {w}, got {g}")),
    }
}
