//! Shared helpers for the Job controller integration tests: a controller task, a scripted kubelet
//! that sets pod phases through the status subresource, and bounded waits on watch conditions.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jobwright::job::Config;
use jobwright::job::controller::{self, Options};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::Condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Controller settings for tests: every Job, fast pod re-creation backoff.
pub fn test_config() -> Config {
    Config {
        manage_all: true,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        min_requeue: Duration::from_millis(20),
        ..Config::default()
    }
}

/// Starts the controllers (Job + TTL) in a task; abort the handle to kill them.
pub fn start_controller(client: Client) -> JoinHandle<()> {
    start_controller_with(client, test_config())
}

/// Same, with settings.
pub fn start_controller_with(client: Client, config: Config) -> JoinHandle<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::spawn(controller::run(client, Options { config, ..Options::default() }, pending()))
}

/// What the scripted kubelet does with a new pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Phase Succeeded, exit code 0.
    Succeed,
    /// Phase Failed with this exit code.
    Fail(i32),
    /// Phase Running and Ready, forever (until deleted: then Failed, exit 137).
    Run,
    /// Leave it Pending.
    Ignore,
}

/// A kubelet stand-in: decides each new pod's fate once, and fails pods that are being deleted
/// (as the kubelet does after killing them).
pub struct Kubelet {
    /// Every pod UID it saw, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Kubelet {
    /// Number of distinct pods seen.
    pub fn pods_seen(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn container_status(pod: &Pod, terminated: Option<i32>) -> Value {
    let name =
        pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()).unwrap_or_else(|| "main".into());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let state = match terminated {
        Some(code) => json!({"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"},
            "startedAt": now, "finishedAt": now}}),
        None => json!({"running": {"startedAt": now}}),
    };
    json!([{"name": name, "image": "busybox", "imageID": "", "ready": terminated.is_none(), "restartCount": 0,
        "started": terminated.is_none(), "state": state}])
}

async fn set_status(api: &Api<Pod>, pod: &Pod, outcome: Outcome) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = match outcome {
        Outcome::Succeed => json!({"phase": "Succeeded", "containerStatuses": container_status(pod, Some(0)),
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]}),
        Outcome::Fail(code) => json!({"phase": "Failed", "containerStatuses": container_status(pod, Some(code)),
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]}),
        Outcome::Run => json!({"phase": "Running", "containerStatuses": container_status(pod, None),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}),
        Outcome::Ignore => return,
    };
    let r = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await;
    if let Err(e) = r {
        let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
        assert!(gone, "kubelet status write failed: {e}");
    }
}

/// Starts a scripted kubelet over the pods of `namespace`: `script(pod, n)` is called once per new
/// pod (`n` = how many pods were seen before it).
pub async fn kubelet(
    client: Client,
    namespace: &str,
    script: impl Fn(&Pod, usize) -> Outcome + Send + 'static,
) -> Kubelet {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut killed: HashSet<String> = HashSet::new();
        let mut ready_tx = Some(ready_tx);
        let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            let pod = match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                _ => continue,
            };
            let uid = pod.uid().unwrap_or_default();
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
            let terminal = phase == "Succeeded" || phase == "Failed";
            if pod.metadata.deletion_timestamp.is_some() {
                if !terminal && killed.insert(uid.clone()) {
                    set_status(&api, &pod, Outcome::Fail(137)).await;
                }
                continue;
            }
            if terminal || outcomes.contains_key(&uid) {
                continue;
            }
            let n = {
                let mut s = seen2.lock().unwrap();
                s.push(uid.clone());
                s.len() - 1
            };
            let outcome = script(&pod, n);
            outcomes.insert(uid, outcome);
            set_status(&api, &pod, outcome).await;
        }
    });
    tokio::time::timeout(WAIT, ready_rx).await.expect("kubelet watch ready").ok();
    Kubelet { seen, task }
}

/// A Job from JSON `spec` (template container `main`, restartPolicy Never unless given).
pub fn job(name: &str, mut spec: Value) -> Job {
    let tpl = spec
        .as_object_mut()
        .unwrap()
        .entry("template")
        .or_insert_with(|| json!({"spec": {"containers": [{"name": "main", "image": "busybox"}]}}));
    if tpl["spec"].get("restartPolicy").is_none() {
        tpl["spec"]["restartPolicy"] = json!("Never");
    }
    serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
}

/// Creates the Job in `default`.
pub async fn create_job(client: &Client, job: &Job) -> Job {
    let api: Api<Job> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), job).await.expect("create job")
}

/// Waits (bounded by [`WAIT`]) until `cond` holds for Job `name`; returns it. (Watches all Jobs
/// and filters by name here, so it doesn't depend on server-side field selectors.)
pub async fn wait_job(client: &Client, name: &str, what: &str, cond: impl Condition<Job>) -> Job {
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)))) if j.name_any() == name => {
                if cond.matches_object(Some(&j)) {
                    return j;
                }
            }
            Ok(Some(Ok(watcher::Event::Delete(j)))) if j.name_any() == name => {
                panic!("job {name} was deleted while waiting for: {what}")
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("watch ended while waiting for {what}"),
            Err(_) => {
                let j = api.get_opt(name).await.ok().flatten();
                panic!("timed out waiting for {what}; job status: {:#?}", j.and_then(|j| j.status))
            }
        }
    }
}

/// Waits (bounded by [`WAIT`]) until the Job `name` with this uid is gone.
pub async fn wait_job_deleted(client: &Client, name: &str, uid: &str) {
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    loop {
        let current = api.get_opt(name).await.unwrap();
        if current.as_ref().and_then(|j| j.uid()).as_deref() != Some(uid) {
            return;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(_)) => {}
            _ => panic!("job {name} not deleted; status: {:#?}", current.and_then(|j| j.status)),
        }
    }
}

/// The core/v1 events about the object `name` (filtered here, not by a field selector).
pub async fn events_for(client: &Client, name: &str) -> Vec<k8s_openapi::api::core::v1::Event> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let all = api.list(&ListParams::default()).await.unwrap().items;
    all.into_iter().filter(|e| e.involved_object.name.as_deref() == Some(name)).collect()
}

/// Waits until the Job has a True condition of this type.
pub async fn wait_condition(client: &Client, name: &str, type_: &'static str) -> Job {
    wait_job(client, name, type_, move |j: Option<&Job>| has_condition(j, type_)).await
}

/// Whether the Job has a True condition of this type.
pub fn has_condition(job: Option<&Job>, type_: &str) -> bool {
    job.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The condition of this type.
pub fn condition<'a>(job: &'a Job, type_: &str) -> &'a k8s_openapi::api::batch::v1::JobCondition {
    job.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == type_)).unwrap()
}

/// Pods of the Job, by its controller-uid label (filtered here, not by a label selector).
pub async fn job_pods(client: &Client, job: &Job) -> Vec<Pod> {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let uid = job.uid().unwrap();
    let all = api.list(&ListParams::default()).await.unwrap().items;
    all.into_iter().filter(|p| p.labels().get(jobwright::job::labels::CONTROLLER_UID) == Some(&uid)).collect()
}

/// Waits until no pod in `default` holds the tracking finalizer.
pub async fn wait_no_tracking_finalizer(client: &Client) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    loop {
        let pods = api.list(&ListParams::default()).await.unwrap().items;
        let holding: Vec<_> =
            pods.iter().filter(|p| jobwright::job::pods::has_tracking_finalizer(p)).map(|p| p.name_any()).collect();
        if holding.is_empty() {
            return;
        }
        // Re-check after the next pod change.
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(_)) => {}
            _ => panic!("pods still hold the tracking finalizer: {holding:?}"),
        }
    }
}

/// Deletes the Job with a propagation policy.
pub async fn delete_job(client: &Client, name: &str, policy: kube::api::PropagationPolicy) {
    let api: Api<Job> = Api::default_namespaced(client.clone());
    let dp = DeleteParams { propagation_policy: Some(policy), ..DeleteParams::default() };
    api.delete(name, &dp).await.expect("delete job");
}

/// Waits until pod `name` in `default` no longer holds the tracking finalizer (or is gone).
pub async fn wait_no_tracking_finalizer_on(client: &Client, name: &str) {
    let api: Api<Pod> = Api::default_namespaced(client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stream = watcher(api.clone(), watcher::Config::default()).default_backoff().boxed();
    loop {
        let pod = api.get_opt(name).await.unwrap();
        if !pod.as_ref().is_some_and(jobwright::job::pods::has_tracking_finalizer) {
            return;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(_)) => {}
            _ => panic!("pod {name} still holds the tracking finalizer: {:?}", pod.map(|p| p.metadata)),
        }
    }
}
