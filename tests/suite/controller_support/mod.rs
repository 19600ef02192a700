//! Shared helpers for the Job controller integration tests: a controller task, a scripted kubelet
//! that sets pod phases through the status subresource, and bounded waits on watch conditions.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jobwright::apiserver::testkit::TestApiServer;
use jobwright::crd::Job as CrdJob;
use jobwright::job::Config;
use jobwright::job::controller::{self, Options};
use jobwright::metrics::Metrics;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::Condition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How long any awaited condition may take before the test fails: only a bound that turns a hang
/// into a failure, never waited out by a passing test, so generous (a 200-pod Job on a loaded
/// 2-core machine, other tests running beside it, took longer than 30 s to reach 50 successes).
pub const WAIT: Duration = Duration::from_secs(120);

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
    start_controller_opts(client, Options { config, ..Options::default() })
}

/// Starts the controllers with test settings, recording into the returned metrics.
pub fn start_controller_with_metrics(client: Client) -> (JoinHandle<()>, Metrics) {
    let metrics = Metrics::new();
    let opts = Options { config: test_config(), metrics: Some(metrics.clone()), ..Options::default() };
    (start_controller_opts(client, opts), metrics)
}

/// Starts the controllers with these options (logs to the test's output under `RUST_LOG`).
pub fn start_controller_opts(client: Client, opts: Options) -> JoinHandle<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::spawn(controller::run(client, opts, pending()))
}

/// Waits (bounded) until no Job is waiting in the controller's queue (`jobwright_workqueue_depth`
/// reads 0). There is nothing to watch for a gauge, so it is read every 20 ms until it holds.
pub async fn wait_queue_empty(metrics: &Metrics) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.workqueue_depth.get() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Jobs still waiting in the queue: {}",
            metrics.workqueue_depth.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    /// Number of distinct pods seen so far. Not a count of the pods created: the kubelet works
    /// through its watch at its own pace (and never counts a pod it first sees being deleted),
    /// so when a Job's condition is observed it may not have got to every pod yet; use
    /// [`PodLog`] for that.
    pub fn pods_seen(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// The pods the API server created, from its own record: a white-box watch on the store's pod
/// bucket, registered before the test acts. The store queues each change to its watchers under
/// its lock as the write commits, so draining the queue after an awaited condition sees every
/// pod created before that condition was written (unlike any client's watch, which is read at
/// its own pace).
pub struct PodLog {
    rx: tokio::sync::mpsc::Receiver<Arc<jobwright::apiserver::store::WatchEvent>>,
    /// Controller uid of every pod created so far, by pod uid.
    created: HashMap<String, String>,
}

impl PodLog {
    /// Starts recording the pods created in `namespace` from now on.
    pub fn start(server: &TestApiServer, namespace: &str) -> Self {
        use jobwright::apiserver::store::WatchFrom;
        let key = server.server().api.info("", "pods").storage_key;
        let start = server.store().watch(&key, Some(namespace), WatchFrom::Now).expect("watch the pod bucket");
        Self { rx: start.rx, created: HashMap::new() }
    }

    /// How many pods were created so far for the Job with this uid (its controller).
    pub fn created_for(&mut self, job: &Job) -> usize {
        use jobwright::apiserver::store::EventType;
        use tokio::sync::mpsc::error::TryRecvError;
        loop {
            match self.rx.try_recv() {
                Ok(e) if e.kind == EventType::Added => {
                    let pod: Pod = serde_json::from_slice(&e.object).expect("stored pod");
                    let controller = pod.owner_references().iter().find(|r| r.controller == Some(true));
                    self.created
                        .insert(pod.uid().unwrap_or_default(), controller.map(|r| r.uid.clone()).unwrap_or_default());
                }
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                // The store drops a watcher whose buffer is full: the record would be incomplete.
                Err(TryRecvError::Disconnected) => panic!("the pod record fell behind the store's watcher buffer"),
            }
        }
        let uid = job.uid().expect("job uid");
        self.created.values().filter(|c| **c == uid).count()
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

/// Writes the pod's status as the kubelet would for `outcome` (a pod already gone is fine).
pub async fn set_status(api: &Api<Pod>, pod: &Pod, outcome: Outcome) {
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

/// Which Job kind a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// batch/v1 Job.
    Batch,
    /// jobwright.dev/v1 Job (the CRD is installed first).
    Crd,
}

impl Kind {
    /// The `apiVersion` of Jobs of this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Batch => "batch/v1",
            Kind::Crd => jobwright::crd::API_VERSION,
        }
    }
}

/// Generates, for each `async fn name(kind: Kind)` scenario, a test `batch::name` and a test
/// `crd::name`: every scenario runs on both Job kinds from one definition.
#[macro_export]
macro_rules! both_kinds {
    ($($name:ident),* $(,)?) => {
        mod batch {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::controller_support::Kind::Batch).await
            })*
        }
        mod crd {
            $(#[tokio::test]
            async fn $name() {
                super::$name($crate::controller_support::Kind::Crd).await
            })*
        }
    };
}

/// The Jobs of one kind in `default`, through the typed API of that kind; every Job handed out
/// is the batch view (same metadata, spec and status), so assertions are written once.
#[derive(Clone)]
pub struct Jobs {
    /// Which kind.
    pub kind: Kind,
    client: Client,
}

impl Jobs {
    /// The Jobs of `kind`; for [`Kind::Crd`] the CRD is installed (before any controller starts,
    /// so `--crd-jobs auto` finds it in discovery).
    pub async fn new(client: &Client, kind: Kind) -> Self {
        if kind == Kind::Crd {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            crds.create(&PostParams::default(), &jobwright::crd::crd()).await.expect("install the CRD");
        }
        Self { kind, client: client.clone() }
    }

    /// The batch/v1 Jobs (nothing to install).
    pub fn batch(client: &Client) -> Self {
        Self { kind: Kind::Batch, client: client.clone() }
    }

    fn batch_api(&self) -> Api<Job> {
        Api::default_namespaced(self.client.clone())
    }

    fn crd_api(&self) -> Api<CrdJob> {
        Api::default_namespaced(self.client.clone())
    }

    /// Creates the Job (given as batch/v1) as this kind.
    pub async fn create(&self, job: &Job) -> Job {
        match self.kind {
            Kind::Batch => self.batch_api().create(&PostParams::default(), job).await.expect("create job"),
            Kind::Crd => {
                let j = CrdJob::from_batch(job.clone());
                self.crd_api().create(&PostParams::default(), &j).await.expect("create job").to_batch()
            }
        }
    }

    /// GET, as the batch view.
    pub async fn get_opt(&self, name: &str) -> Option<Job> {
        match self.kind {
            Kind::Batch => self.batch_api().get_opt(name).await.unwrap(),
            Kind::Crd => self.crd_api().get_opt(name).await.unwrap().map(|j| j.to_batch()),
        }
    }

    /// A JSON merge patch of the Job.
    pub async fn patch(&self, name: &str, patch: Value) -> Result<(), kube::Error> {
        let pp = PatchParams::default();
        match self.kind {
            Kind::Batch => self.batch_api().patch(name, &pp, &Patch::Merge(patch)).await.map(drop),
            Kind::Crd => self.crd_api().patch(name, &pp, &Patch::Merge(patch)).await.map(drop),
        }
    }

    /// Deletes the Job with a propagation policy.
    pub async fn delete(&self, name: &str, policy: kube::api::PropagationPolicy) {
        let dp = DeleteParams { propagation_policy: Some(policy), ..DeleteParams::default() };
        match self.kind {
            Kind::Batch => self.batch_api().delete(name, &dp).await.map(drop),
            Kind::Crd => self.crd_api().delete(name, &dp).await.map(drop),
        }
        .expect("delete job");
    }

    /// The watch events of this kind's Jobs, as batch views.
    fn events(&self) -> futures::stream::BoxStream<'static, Result<watcher::Event<Job>, watcher::Error>> {
        let to_batch = |ev: watcher::Event<CrdJob>| match ev {
            watcher::Event::Apply(j) => watcher::Event::Apply(j.to_batch()),
            watcher::Event::InitApply(j) => watcher::Event::InitApply(j.to_batch()),
            watcher::Event::Delete(j) => watcher::Event::Delete(j.to_batch()),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        };
        match self.kind {
            Kind::Batch => watcher(self.batch_api(), watcher::Config::default()).default_backoff().boxed(),
            Kind::Crd => watcher(self.crd_api(), watcher::Config::default())
                .default_backoff()
                .map(move |r| r.map(to_batch))
                .boxed(),
        }
    }

    /// Waits (bounded by [`WAIT`]) until `cond` holds for Job `name`; returns it. (Watches all
    /// Jobs and filters by name here, so it doesn't depend on server-side field selectors.)
    pub async fn wait(&self, name: &str, what: &str, cond: impl Condition<Job>) -> Job {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut stream = self.events();
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
                    let j = self.get_opt(name).await;
                    panic!("timed out waiting for {what}; job status: {:#?}", j.and_then(|j| j.status))
                }
            }
        }
    }

    /// Waits until the Job has a True condition of this type.
    pub async fn wait_condition(&self, name: &str, type_: &'static str) -> Job {
        self.wait(name, type_, move |j: Option<&Job>| has_condition(j, type_)).await
    }

    /// Waits (bounded by [`WAIT`]) until the Job `name` with this uid is gone.
    pub async fn wait_deleted(&self, name: &str, uid: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut stream = self.events();
        loop {
            let current = self.get_opt(name).await;
            if current.as_ref().and_then(|j| j.uid()).as_deref() != Some(uid) {
                return;
            }
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(_)) => {}
                _ => panic!("job {name} not deleted; status: {:#?}", current.and_then(|j| j.status)),
            }
        }
    }
}

/// Creates a batch/v1 Job in `default`.
pub async fn create_job(client: &Client, job: &Job) -> Job {
    Jobs::batch(client).create(job).await
}

/// Waits (bounded by [`WAIT`]) until `cond` holds for batch/v1 Job `name`; returns it.
pub async fn wait_job(client: &Client, name: &str, what: &str, cond: impl Condition<Job>) -> Job {
    Jobs::batch(client).wait(name, what, cond).await
}

/// Waits until batch/v1 Job `name` has a True condition of this type.
pub async fn wait_condition(client: &Client, name: &str, type_: &'static str) -> Job {
    Jobs::batch(client).wait_condition(name, type_).await
}

/// Watches the core/v1 events about the object `name` (as `kubectl describe` reads them) until
/// `done` accepts them all (bounded by [`WAIT`]); returns them.
pub async fn wait_events(
    client: &Client,
    name: &str,
    done: impl Fn(&[k8s_openapi::api::core::v1::Event]) -> bool,
) -> Vec<k8s_openapi::api::core::v1::Event> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::default_namespaced(client.clone());
    let (store, writer) = kube::runtime::reflector::store();
    let mut stream =
        std::pin::pin!(kube::runtime::reflector(writer, watcher(api, watcher::Config::default()).default_backoff()));
    let about = |store: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Event>| {
        let mut evs: Vec<_> = store
            .state()
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (**e).clone())
            .collect();
        evs.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        evs
    };
    let waited = tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(watcher::Event::Apply(_) | watcher::Event::InitDone)) && done(&about(&store)) {
                return;
            }
        }
    })
    .await;
    let evs = about(&store);
    let seen: Vec<_> = evs.iter().map(|e| (e.reason.clone(), e.message.clone())).collect();
    assert!(waited.is_ok(), "events of {name} never satisfied the test: {seen:#?}");
    evs
}

/// How many times an event happened: its series count (events.k8s.io) or its count (core/v1).
pub fn event_count(e: &k8s_openapi::api::core::v1::Event) -> i32 {
    e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1)
}

/// The message prefix of upstream's combined pod-creation event.
pub const COMBINED_CREATED: &str = "(combined from similar events): Created pod: ";

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
            pods.iter().filter(jobwright::job::pods::has_tracking_finalizer).map(|p| p.name_any()).collect();
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
