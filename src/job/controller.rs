//! The Job controller's imperative shell: kube-runtime wiring around the pure [`super::plan`].
//!
//! - One reflector over batch/v1 Jobs and one over all Pods feed a kube-runtime `Controller`
//!   (`for_stream` + `owns_stream`): a pod event triggers its controller Job. Reconciles read the
//!   Job and its pods from the stores, never from a LIST.
//! - The pod stream goes through a hook that feeds [`Expectations`] (creations, deletions and
//!   finalizer removals observed) and sends pods that may hold a stale tracking finalizer (no
//!   controller, or a controller Job that is gone) to the orphan worker, which confirms with a live
//!   GET of the Job and removes the finalizer (upstream's orphan-pod path). A Job's Delete event
//!   sends all of its pods there too, so no pod keeps the finalizer under any propagation policy.
//! - Reconcile = claim pods (controller ownerReference to the Job *and* matching selector) →
//!   expectations → [`plan_with`] → [`apply::apply`]. kube-runtime guarantees one reconcile per Job
//!   at a time; `--workers` bounds the total.
//! - Errors requeue: a 409 on the status write after [`CONFLICT_REQUEUE`] (upstream sends conflicts
//!   through its rate limiter too; a stale cache is the usual cause and is fixed by the next watch
//!   event), anything else with a per-Job exponential backoff from [`API_BACKOFF`] to
//!   [`MAX_API_BACKOFF`] as upstream (reset by a successful sync).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, controller};
use kube::{Client, ResourceExt};
use tokio::sync::{mpsc, watch};

use super::adopt::{Claim, claim};
use super::apply;
use super::config::Config;
use super::expectations::{Expectations, PodEvent};
use super::labels::JOB_TRACKING_FINALIZER;
use super::plan::{SyncContext, orphan_needs_finalizer_removal, plan_with};
use super::pod_index::{PodIndex, orphan_key};
use super::pods;
use crate::metrics::{Metrics, ReconcileResult};

/// The `reportingController` of the Job's events, as upstream (`kubectl describe` "From" column).
pub const REPORTING_CONTROLLER: &str = "job-controller";

/// Requeue delay after a 409 on a status write (the cache catches up, the Job is re-planned).
pub const CONFLICT_REQUEUE: Duration = Duration::from_millis(50);

/// First retry delay of a failed sync (upstream's `DefaultJobApiBackOff`), doubled per failure.
pub const API_BACKOFF: Duration = Duration::from_secs(1);

/// Longest retry delay of a failed sync (upstream's `MaxJobApiBackOff`).
pub const MAX_API_BACKOFF: Duration = Duration::from_secs(60);

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Job lacks a namespace, name or uid.
    #[error("Job has no {0}")]
    MissingMetadata(&'static str),
    /// The status write hit a newer resourceVersion: re-plan.
    #[error("conflict writing the status of Job {0}")]
    Conflict(String),
    /// The Job was deleted while it was being synced.
    #[error("Job {0} is gone")]
    JobGone(String),
    /// The API server rejected the status (422): a bug in the plan or the shell.
    #[error("status of Job {job} rejected: {message}")]
    StatusRejected {
        /// `namespace/name`.
        job: String,
        /// The server's message.
        message: String,
    },
    /// A pod could not be deleted while the Job is finishing: re-plan before finishing.
    #[error("deleting pods of finishing Job {0} failed: {1}")]
    FinishingDelete(String, String),
    /// Some pod creations, deletions or finalizer removals failed (events were emitted).
    #[error("pod operations for Job {0} failed: {1}")]
    PodOps(String, String),
    /// Any other API error.
    #[error("API error: {0}")]
    Kube(#[from] kube::Error),
    /// Encoding an object failed.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The pod store's writer is gone (the controller is shutting down).
    #[error("pod cache closed")]
    CacheClosed,
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingMetadata(_) => "missing_metadata",
            Error::Conflict(_) => "conflict",
            Error::JobGone(_) => "job_gone",
            Error::StatusRejected { .. } => "status_rejected",
            Error::FinishingDelete(..) => "finishing_delete",
            Error::PodOps(..) => "pod_ops",
            Error::Kube(_) => "kube",
            Error::Encode(_) => "encode",
            Error::CacheClosed => "cache_closed",
        }
    }
}

/// Settings of the controller process.
#[derive(Clone)]
pub struct Options {
    /// Which Jobs, batch sizes, backoff.
    pub config: Config,
    /// Run the TTL-after-finished controller too.
    pub ttl_controller: bool,
    /// Where to record reconcile outcomes, errors and pod operations (the admin server's
    /// `/metrics`), if anywhere.
    pub metrics: Option<Metrics>,
    /// Set to true once the Job and Pod caches have their first full list (readiness).
    pub caches_synced: Option<Arc<watch::Sender<bool>>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("config", &self.config)
            .field("ttl_controller", &self.ttl_controller)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self { config: Config::default(), ttl_controller: true, metrics: None, caches_synced: None }
    }
}

/// Shared state of the reconcilers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Controller settings.
    pub config: Config,
    /// All pods.
    pub pods: Store<Pod>,
    /// All Jobs.
    pub jobs: Store<Job>,
    /// Outstanding pod operations per Job uid.
    pub expectations: Arc<Expectations>,
    /// Event recorder (events.k8s.io/v1, reportingController `job-controller`).
    pub recorder: Recorder,
    /// Metrics, if exported.
    pub metrics: Option<Metrics>,
    /// Pods by controller Job uid (and orphans by namespace).
    pub index: Arc<PodIndex>,
    failures: Mutex<HashMap<String, u32>>,
    /// Becomes true once the pod store has its first full list. (Not `Store::wait_until_ready`:
    /// kube-runtime's `DelayedInit` keeps only the last waiter's waker, so two concurrent waiters
    /// can hang.)
    pods_ready: watch::Receiver<bool>,
    /// Same for the Job store.
    jobs_ready: watch::Receiver<bool>,
}

async fn ready(rx: &watch::Receiver<bool>) -> Result<(), Error> {
    let mut rx = rx.clone();
    rx.wait_for(|r| *r).await.map(|_| ()).map_err(|_| Error::CacheClosed)
}

fn controller_ref(pod: &Pod) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

fn job_controller_uid(pod: &Pod) -> Option<&str> {
    controller_ref(pod).filter(|r| r.kind == "Job" && r.api_version == "batch/v1").map(|r| r.uid.as_str())
}

/// Whether the pod may hold a stale tracking finalizer, judged from the Job cache.
fn maybe_orphan(pod: &Pod, jobs: &Store<Job>) -> bool {
    if !pods::has_tracking_finalizer(pod) {
        return false;
    }
    match controller_ref(pod) {
        None => true,
        Some(r) if r.kind == "Job" && r.api_version == "batch/v1" => {
            let ns = pod.namespace().unwrap_or_default();
            let job = jobs.get(&ObjectRef::new(&r.name).within(&ns));
            job.is_none_or(|j| j.metadata.uid.as_deref() != Some(r.uid.as_str()))
        }
        Some(_) => false,
    }
}

type OrphanTx = mpsc::UnboundedSender<(String, String)>;

fn pod_key(pod: &Pod) -> (String, String) {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Aborts its task when dropped, so a controller future that is dropped (abandoned after a lost
/// lease) takes its helper tasks with it instead of leaving them writing.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the Job controller (and, if enabled, the TTL controller) until `shutdown` completes.
pub async fn run(client: Client, opts: Options, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let ttl = opts.ttl_controller.then(|| {
        let client = client.clone();
        let config = opts.config.clone();
        let shutdown = shutdown.clone();
        AbortOnDrop(tokio::spawn(async move { crate::ttl::run(client, config, shutdown).await }))
    });
    run_job_controller_with(client, opts, shutdown).await;
    if let Some(mut t) = ttl {
        let _ = (&mut t.0).await;
    }
}

/// Runs the Job controller alone until `shutdown` completes.
pub async fn run_job_controller(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_job_controller_with(client, Options { config, ttl_controller: false, ..Options::default() }, shutdown).await
}

async fn run_job_controller_with(
    client: Client,
    opts: Options,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let config = opts.config.clone();
    let (job_reader, job_writer) = reflector::store::<Job>();
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let expectations = Arc::new(Expectations::default());
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let index = Arc::new(PodIndex::default());
    let (pods_ready_tx, pods_ready) = watch::channel(false);
    let (jobs_ready_tx, jobs_ready) = watch::channel(false);

    let reporter = Reporter { controller: REPORTING_CONTROLLER.into(), instance: None };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        pods: pod_reader.clone(),
        jobs: job_reader.clone(),
        expectations: expectations.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        failures: Mutex::new(HashMap::new()),
        pods_ready,
        jobs_ready,
        metrics: opts.metrics.clone(),
        index: index.clone(),
    });
    let synced = opts.caches_synced.clone().map(|tx| {
        let (p, j) = (ctx.pods_ready.clone(), ctx.jobs_ready.clone());
        AbortOnDrop(tokio::spawn(async move {
            if ready(&p).await.is_ok() && ready(&j).await.is_ok() {
                tx.send_replace(true);
            }
        }))
    });

    let jobs_api: Api<Job> = Api::all(client.clone());
    let pods_api: Api<Pod> = Api::all(client.clone());

    let job_hook = {
        let pods = pod_reader.clone();
        let exp = expectations.clone();
        let tx: OrphanTx = orphan_tx.clone();
        move |ev: &watcher::Event<Job>| {
            if let watcher::Event::InitDone = ev {
                jobs_ready_tx.send_replace(true);
            }
            if let watcher::Event::Delete(job) = ev {
                let uid = job.metadata.uid.clone().unwrap_or_default();
                exp.forget(&uid);
                for p in pods.state() {
                    if job_controller_uid(&p) == Some(uid.as_str()) && pods::has_tracking_finalizer(&p) {
                        let _ = tx.send(pod_key(&p));
                    }
                }
            }
        }
    };
    let job_stream = reflector::reflector(job_writer, watcher(jobs_api, watcher::Config::default()).default_backoff())
        .inspect_ok(job_hook)
        .applied_objects();

    let pod_hook = {
        let jobs = job_reader.clone();
        let exp = expectations.clone();
        let tx: OrphanTx = orphan_tx.clone();
        move |ev: &watcher::Event<Pod>| {
            // The index first: once an expectation is observed, the pod is findable.
            index.apply(ev);
            let (pod, kind) = match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => (p, PodEvent::Applied),
                watcher::Event::Delete(p) => (p, PodEvent::Deleted),
                watcher::Event::InitDone => {
                    pods_ready_tx.send_replace(true);
                    return;
                }
                _ => return,
            };
            if let Some(uid) = job_controller_uid(pod) {
                exp.observe(uid, pod, kind);
            }
            if kind == PodEvent::Applied && maybe_orphan(pod, &jobs) {
                let _ = tx.send(pod_key(pod));
            }
        }
    };
    let pod_stream = reflector::reflector(pod_writer, watcher(pods_api, watcher::Config::default()).default_backoff())
        .inspect_ok(pod_hook)
        .touched_objects();

    let orphans = AbortOnDrop(tokio::spawn(orphan_worker(ctx.clone(), orphan_rx)));
    let workers = u16::try_from(config.workers.max(1)).unwrap_or(u16::MAX);
    Controller::for_stream(job_stream, job_reader)
        .owns_stream(pod_stream)
        .with_config(controller::Config::default().concurrency(workers))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok(_) => {}
                Err(controller::Error::ObjectNotFound(_)) => {}
                Err(controller::Error::ReconcilerFailed(e, obj)) => match &e {
                    Error::StatusRejected { .. } => tracing::error!(job = %obj, error = %e, "status write rejected"),
                    Error::Conflict(_) | Error::JobGone(_) => tracing::debug!(job = %obj, error = %e, "re-planning"),
                    _ => tracing::warn!(job = %obj, error = %e, kind = e.metric_label(), "sync failed"),
                },
                Err(e) => tracing::warn!(error = %e, "controller error"),
            }
        })
        .await;
    drop((orphans, synced));
}

/// Removes the tracking finalizer of pods whose controller Job is gone (confirmed live) or that
/// have no controller.
async fn orphan_worker(ctx: Arc<Context>, mut rx: mpsc::UnboundedReceiver<(String, String)>) {
    if ready(&ctx.jobs_ready).await.is_err() || ready(&ctx.pods_ready).await.is_err() {
        return;
    }
    while let Some((ns, name)) = rx.recv().await {
        let Some(pod) = ctx.pods.get(&ObjectRef::new(&name).within(&ns)) else { continue };
        if !maybe_orphan(&pod, &ctx.jobs) {
            continue;
        }
        let owner = match controller_ref(&pod) {
            Some(r) => {
                let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
                match api.get_opt(&r.name).await {
                    Ok(j) => j.filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str())),
                    Err(e) => {
                        tracing::warn!(pod = %name, error = %e, "orphan check failed");
                        continue;
                    }
                }
            }
            None => None,
        };
        if orphan_needs_finalizer_removal(&pod, owner.as_ref(), &ctx.config) {
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            match remove_finalizer(&api, &name).await {
                Ok(()) => tracing::debug!(pod = %name, namespace = %ns, "removed finalizer of orphan pod"),
                Err(e) => tracing::warn!(pod = %name, error = %e, "removing the finalizer of an orphan pod failed"),
            }
        }
    }
}

/// Removes the tracking finalizer with the strategic merge patch upstream sends
/// (`$deleteFromPrimitiveList/finalizers`); a 404 counts as done.
pub async fn remove_finalizer(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}});
    match api.patch(name, &PatchParams::default(), &Patch::Strategic(patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The pods of the store the Job controls (controller ownerReference and selector), found through
/// the index.
pub fn pods_of(job: &Job, store: &Store<Pod>, index: &PodIndex) -> Vec<Pod> {
    let Some(uid) = job.metadata.uid.as_deref() else { return vec![] };
    index
        .get(uid)
        .into_iter()
        .filter_map(|(ns, name)| store.get(&ObjectRef::new(&name).within(&ns)))
        .filter(|p| job_controller_uid(p) == Some(uid) && claim(job, p) == Claim::Owned)
        .map(|p| (*p).clone())
        .collect()
}

/// Releases the pods the Job controls whose labels no longer match its selector (upstream's
/// `ClaimPods` release): a JSON patch guarded by uid and resourceVersion removes the controller
/// ownerReference. The pod then has no controller, so the orphan path removes its finalizer.
async fn release_mismatched(job: &Job, ctx: &Context) -> Result<(), Error> {
    let Some(uid) = job.metadata.uid.as_deref() else { return Ok(()) };
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates = ctx.index.get(uid);
    for pod in candidates.into_iter().filter_map(|(ns, name)| ctx.pods.get(&ObjectRef::new(&name).within(&ns))) {
        if claim(job, &pod) != Claim::Release {
            continue;
        }
        let Some(pos) = pod.metadata.owner_references.iter().flatten().position(|r| r.uid == uid) else { continue };
        let ops = serde_json::json!([
            {"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid},
            {"op": "test", "path": "/metadata/resourceVersion", "value": pod.metadata.resource_version},
            {"op": "remove", "path": format!("/metadata/ownerReferences/{pos}")},
        ]);
        let patch: json_patch::Patch = serde_json::from_value(ops)?;
        match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(p) => tracing::info!(job = %format!("{ns}/{}", job.name_any()), pod = %p.name_any(), "released pod"),
            Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "releasing a pod failed"),
        }
    }
    Ok(())
}

/// Adopts the pods of the store that match the Job's selector and have no controller (upstream's
/// `ClaimPods`): after re-reading the Job live (it must still exist with the same uid and not be
/// deleting), a JSON patch guarded by the pod's uid and resourceVersion adds the controller
/// ownerReference and the tracking finalizer. Returns the adopted pods.
async fn adopt_orphans(job: &Job, ctx: &Context) -> Result<Vec<Pod>, Error> {
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let orphans: Vec<Arc<Pod>> = ctx
        .index
        .get(&orphan_key(&ns))
        .into_iter()
        .filter_map(|(ns, name)| ctx.pods.get(&ObjectRef::new(&name).within(&ns)))
        .filter(|p| claim(job, p) == Claim::Adopt)
        .collect();
    if orphans.is_empty() {
        return Ok(vec![]);
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let fresh = jobs.get_opt(&job.name_any()).await?;
    if fresh.is_none_or(|f| f.metadata.uid != job.metadata.uid || f.metadata.deletion_timestamp.is_some()) {
        return Ok(vec![]);
    }
    let owner = serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "name": job.name_any(),
        "uid": job.metadata.uid.clone().unwrap_or_default(), "controller": true, "blockOwnerDeletion": true,
    });
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut adopted = vec![];
    for pod in orphans {
        let mut ops = vec![
            serde_json::json!({"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid}),
            serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": pod.metadata.resource_version}),
        ];
        if pod.metadata.owner_references.as_ref().is_none_or(|r| r.is_empty()) {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}));
        } else {
            ops.push(serde_json::json!({"op": "add", "path": "/metadata/ownerReferences/-", "value": owner}));
        }
        if !pods::has_tracking_finalizer(&pod) {
            if pod.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()) {
                ops.push(
                    serde_json::json!({"op": "add", "path": "/metadata/finalizers", "value": [JOB_TRACKING_FINALIZER]}),
                );
            } else {
                ops.push(
                    serde_json::json!({"op": "add", "path": "/metadata/finalizers/-", "value": JOB_TRACKING_FINALIZER}),
                );
            }
        }
        let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))?;
        match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::<()>::Json(patch)).await {
            Ok(p) => {
                tracing::info!(job = %format!("{ns}/{}", job.name_any()), pod = %p.name_any(), "adopted pod");
                adopted.push(p);
            }
            // Changed or gone since the cache saw it: the next event re-triggers the claim.
            Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "adopting a pod failed"),
        }
    }
    Ok(adopted)
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.as_ref().map(|m| m.reconcile_timer());
    let result = sync(job, &ctx).await;
    if let (Some(t), Some(m)) = (timer, ctx.metrics.as_ref()) {
        match &result {
            Ok(a) if *a == Action::await_change() => t.finish(ReconcileResult::Success),
            Ok(_) => t.finish(ReconcileResult::RequeueAfter),
            Err(e) => {
                m.record_error(e.metric_label());
                t.finish(if matches!(e, Error::Conflict(_)) {
                    ReconcileResult::Requeue
                } else {
                    ReconcileResult::Error
                });
            }
        }
    }
    result
}

async fn sync(job: Arc<Job>, ctx: &Context) -> Result<Action, Error> {
    if !ctx.config.manages(&job) {
        return Ok(Action::await_change());
    }
    ready(&ctx.pods_ready).await?;
    let uid = job.metadata.uid.clone().ok_or(Error::MissingMetadata("uid"))?;
    if job.metadata.deletion_timestamp.is_none() {
        release_mismatched(&job, ctx).await?;
    }
    let mut pods = pods_of(&job, &ctx.pods, &ctx.index);
    pods.extend(adopt_orphans(&job, ctx).await?);
    let (satisfied, pending) = ctx.expectations.satisfied(&uid, &pods);
    let sctx = SyncContext { expectations_satisfied: satisfied, pending_finalizer_removals: pending };
    let plan = plan_with(&job, &pods, Utc::now(), &ctx.config, &sctx);
    let requeue = apply::apply(ctx, &job, &pods, plan).await?;
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(job: Arc<Job>, err: &Error, ctx: Arc<Context>) -> Action {
    if matches!(err, Error::Conflict(_) | Error::JobGone(_)) {
        return Action::requeue(CONFLICT_REQUEUE);
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(uid).or_insert(0);
    *n = n.saturating_add(1);
    let delay = API_BACKOFF.saturating_mul(1u32 << (*n - 1).min(10)).min(MAX_API_BACKOFF);
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_labels_are_stable() {
        assert_eq!(Error::Conflict("a/b".into()).metric_label(), "conflict");
        assert_eq!(Error::PodOps("a/b".into(), "x".into()).metric_label(), "pod_ops");
        let e = Error::StatusRejected { job: "a/b".into(), message: "m".into() };
        assert_eq!(e.to_string(), "status of Job a/b rejected: m");
    }
}
