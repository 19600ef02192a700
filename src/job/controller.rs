//! The Job controller's imperative shell: kube-runtime wiring around the pure [`super::plan`].
//!
//! - One code path for both Job kinds ([`super::kind`]): batch/v1 `Job` always, `jobwright.dev/v1`
//!   `Job` when [`Options::crd_jobs`] says so. Each kind has one shared informer (one watch, one
//!   cache: [`super::informer`]) that the TTL and CronJob controllers of the process read too, and
//!   its kube-runtime `Controller` (`for_shared_stream`, generic over [`JobKind`]); the reconcile works on the kind's batch
//!   view and only the API calls (status write, live reads, ownerReferences, Event `regarding`)
//!   name the kind.
//! - ONE pod watch serves every kind: its hook feeds the pod cache ([`PodIndex`]: one entry per
//!   pod, by name and by controller Job), the [`Expectations`]
//!   (creations, deletions and finalizer removals observed; keyed by Job uid, unique across kinds)
//!   and sends pods that may hold a stale tracking finalizer (no controller, or a controller Job
//!   of a reconciled kind that is gone) to the orphan worker, which confirms with a live GET of
//!   that kind and removes the finalizer (upstream's orphan-pod path). The pods are then fanned out
//!   to each kind's controller (`watches_shared_stream`), which syncs the Job a pod's controller
//!   ownerReference names if it is of its kind, and for a pod without a controller the Jobs whose
//!   selector matches it (upstream's `getPodJobs`: adoption). A Job's Delete event sends all of
//!   its pods to the orphan worker too, so no pod keeps the finalizer under any propagation policy.
//! - Reconcile = claim pods (controller ownerReference to the Job *and* matching selector) →
//!   expectations → [`plan_with`] → [`apply::apply`]. kube-runtime guarantees one reconcile per Job
//!   at a time; `--workers` bounds the concurrent syncs of each kind.
//! - Nothing waits forever on a lost event: objects a re-list (after a 410) no longer has are
//!   handled as deleted ([`super::relist`]: their expectations observed, their Jobs synced, a gone
//!   Job's pods sent to the orphan worker); a Job held back by an unobserved expectation is synced
//!   again when it expires ([`Options::expectations_ttl`]); failed orphan checks and finalizer
//!   removals are retried with backoff.
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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, controller};
use kube::{Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::adopt::{Claim, claim};
use super::apply;
use super::cached_pod::{CachedPod, PodFacts};
use super::config::Config;
use super::expectations::{Expectations, PodEvent};
use super::informer::{JobInformer, Subscription};
use super::kind::{JobKind, KindId, controller_of, job_controller_uid, owner_kind};
use super::labels::JOB_TRACKING_FINALIZER;
use super::plan::{SyncContext, orphan_needs_finalizer_removal, plan_split};
use super::pod_index::{JobPods, PodIndex, orphan_key};
use super::pods;
use super::recorder::EventSink;
use super::relist::Vanished;
use crate::crd::Job as CrdJob;
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
    /// Run the CronJob controller too ([`crate::cronjob`]).
    pub cronjob_controller: bool,
    /// How many CronJobs it syncs at once (`--concurrent-cron-job-syncs`).
    pub cronjob_workers: usize,
    /// Where to record reconcile outcomes, errors and pod operations (the admin server's
    /// `/metrics`), if anywhere.
    pub metrics: Option<Metrics>,
    /// Set to true once the Job and Pod caches have their first full list (readiness).
    pub caches_synced: Option<Arc<watch::Sender<bool>>>,
    /// Whether `jobwright.dev/v1` Jobs are reconciled too (batch/v1 Jobs always are).
    pub crd_jobs: CrdJobs,
    /// With [`CrdJobs::Auto`] and the CRD not served: how often discovery is asked again.
    pub crd_recheck: Duration,
    /// How long an unobserved pod operation holds its Job back (upstream's 5-minute
    /// `ExpectationsTimeout`, [`super::expectations::EXPECTATIONS_TTL`]).
    pub expectations_ttl: Duration,
}

/// Whether the controller reconciles `jobwright.dev/v1` Jobs ([`crate::crd`]) besides batch/v1
/// Jobs: `auto` asks discovery at start (reconciled iff the API server serves `jobwright.dev/v1`
/// `jobs`) and, while they are not served, again every [`Options::crd_recheck`]: a CRD installed
/// later restarts the controllers with both kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CrdJobs {
    /// Reconcile them once the API server serves them.
    #[default]
    Auto,
    /// Always (a watch of an unserved resource retries with backoff and the caches never sync).
    #[value(name = "true")]
    Enabled,
    /// Never.
    #[value(name = "false")]
    Disabled,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("config", &self.config)
            .field("ttl_controller", &self.ttl_controller)
            .field("cronjob_controller", &self.cronjob_controller)
            .field("metrics", &self.metrics.is_some())
            .field("crd_jobs", &self.crd_jobs)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: Config::default(),
            ttl_controller: true,
            cronjob_controller: false,
            cronjob_workers: crate::cronjob::controller::DEFAULT_WORKERS,
            metrics: None,
            caches_synced: None,
            crd_jobs: CrdJobs::Auto,
            crd_recheck: Duration::from_secs(30),
            expectations_ttl: super::expectations::EXPECTATIONS_TTL,
        }
    }
}

/// Shared state of the reconcilers of one Job kind (the pod side is shared by every kind).
pub struct Context<K: JobKind = Job> {
    /// API client.
    pub client: Client,
    /// Controller settings, as they apply to this kind ([`JobKind::config`]).
    pub config: Config,
    /// All Jobs of this kind (what ties the context to its kind).
    pub jobs: Store<K>,
    /// Outstanding pod operations per Job uid.
    pub expectations: Arc<Expectations>,
    /// Event recorder (events.k8s.io/v1, reportingController `job-controller`).
    pub recorder: EventSink,
    /// Metrics, if exported.
    pub metrics: Option<Metrics>,
    /// All pods, by name and by controller Job uid (and orphans by namespace).
    pub index: Arc<PodIndex>,
    failures: Mutex<HashMap<String, u32>>,
    /// Becomes true once the pod store has its first full list. (Not `Store::wait_until_ready`:
    /// kube-runtime's `DelayedInit` keeps only the last waiter's waker, so two concurrent waiters
    /// can hang.)
    pods_ready: watch::Receiver<bool>,
    /// The Jobs waiting for a sync (the queue-depth gauge).
    queue: Arc<Queue>,
}

async fn ready(rx: &watch::Receiver<bool>) -> Result<(), Error> {
    let mut rx = rx.clone();
    rx.wait_for(|r| *r).await.map(|_| ()).map_err(|_| Error::CacheClosed)
}

/// The Job caches of the kinds being reconciled, for the orphan checks.
#[derive(Clone)]
struct Owners {
    batch: Store<Job>,
    crd: Option<Store<CrdJob>>,
}

impl Owners {
    /// Whether the pod may hold a stale tracking finalizer, judged from the Job caches: it has no
    /// controller, or its controller is a Job of a reconciled kind missing from that kind's cache.
    fn maybe_orphan(&self, pod: &CachedPod) -> bool {
        if !pods::has_tracking_finalizer(pod) {
            return false;
        }
        let Some(r) = controller_of(pod) else { return true };
        let ns = pod.namespace().unwrap_or_default();
        match owner_kind(r) {
            Some(KindId::Batch) => cached_gone(&self.batch, &ns, r),
            Some(KindId::Crd) => self.crd.as_ref().is_some_and(|s| cached_gone(s, &ns, r)),
            None => false,
        }
    }
}

fn cached_gone<K: JobKind>(store: &Store<K>, ns: &str, r: &OwnerReference) -> bool {
    let job = store.get(&ObjectRef::new(&r.name).within(ns));
    job.is_none_or(|j| j.meta().uid.as_deref() != Some(r.uid.as_str()))
}

/// The pod's controller Job read live (its batch view), if it still exists with that uid.
async fn live_owner<K: JobKind>(client: &Client, ns: &str, r: &OwnerReference) -> Result<Option<Job>, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let job = api.get_opt(&r.name).await?;
    Ok(job.filter(|j| j.meta().uid.as_deref() == Some(r.uid.as_str())).map(|j| j.batch().into_owned()))
}

type OrphanTx = mpsc::UnboundedSender<(String, String)>;

fn pod_key(pod: &CachedPod) -> (String, String) {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Whether the API server serves `jobwright.dev/v1` `jobs`, from discovery (a 404 on the group
/// version is a no).
pub async fn crd_served(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(crate::crd::API_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "jobs")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Resolves [`CrdJobs`] to whether `jobwright.dev/v1` Jobs are reconciled (`auto`: from
/// discovery now; a failed discovery counts as not served, with a warning).
pub async fn reconcile_crd_jobs(client: &Client, setting: CrdJobs) -> bool {
    match setting {
        CrdJobs::Enabled => true,
        CrdJobs::Disabled => false,
        CrdJobs::Auto => match crd_served(client).await {
            Ok(served) => {
                tracing::info!(served, "jobwright.dev/v1 jobs in discovery");
                served
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery of jobwright.dev/v1 failed; reconciling batch/v1 Jobs only");
                false
            }
        },
    }
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
    let mut crd = reconcile_crd_jobs(&client, opts.crd_jobs).await;
    loop {
        // `stop` ends this run: at shutdown, or (`auto` without the CRD) once discovery serves
        // jobwright.dev/v1 Jobs, to start again with both kinds (a one-time relist).
        let stop = tokio_util::sync::CancellationToken::new();
        let appeared = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _on_shutdown = {
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            AbortOnDrop(tokio::spawn(async move {
                shutdown.await;
                stop.cancel();
            }))
        };
        let _recheck = (opts.crd_jobs == CrdJobs::Auto && !crd).then(|| {
            let (client, stop, appeared, every) = (client.clone(), stop.clone(), appeared.clone(), opts.crd_recheck);
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if matches!(crd_served(&client).await, Ok(true)) {
                        appeared.store(true, std::sync::atomic::Ordering::SeqCst);
                        stop.cancel();
                        return;
                    }
                }
            }))
        });
        run_once(&client, opts.clone(), crd, stop.cancelled_owned()).await;
        if shutdown.peek().is_some() || !appeared.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        tracing::info!("jobwright.dev/v1 Jobs are now served: restarting the controllers to reconcile them too");
        crd = true;
    }
}

/// One run of the controllers (the TTL and CronJob controllers too if enabled) for a fixed set of
/// kinds.
async fn run_once(
    client: &Client,
    opts: Options,
    crd: bool,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let client = client.clone();
    // One watch and one cache per Job kind for the Job, TTL and CronJob controllers.
    let mut batch_jobs = JobInformer::<Job>::new();
    let mut crd_jobs = crd.then(JobInformer::<CrdJob>::new);
    let mut ttl = vec![];
    if opts.ttl_controller {
        let (c, config, s) = (client.clone(), opts.config.clone(), shutdown.clone());
        let sub = batch_jobs.subscribe();
        ttl.push(AbortOnDrop(tokio::spawn(async move { crate::ttl::run_shared::<Job>(c, config, sub, s).await })));
        if let Some(crd_jobs) = crd_jobs.as_mut() {
            let (c, config, s) = (client.clone(), opts.config.clone(), shutdown.clone());
            let sub = crd_jobs.subscribe();
            ttl.push(AbortOnDrop(tokio::spawn(
                async move { crate::ttl::run_shared::<CrdJob>(c, config, sub, s).await },
            )));
        }
    }
    if opts.cronjob_controller {
        let c = client.clone();
        let cron = crate::cronjob::controller::Options {
            metrics: opts.metrics.clone(),
            workers: opts.cronjob_workers,
            ..Default::default()
        };
        let (s, sub) = (shutdown.clone(), batch_jobs.subscribe());
        ttl.push(AbortOnDrop(tokio::spawn(
            async move { crate::cronjob::controller::run_shared(c, cron, sub, s).await },
        )));
    }
    let batch_sub = batch_jobs.subscribe();
    let crd_sub = crd_jobs.as_mut().map(JobInformer::subscribe);
    let _informers = (batch_jobs.spawn(&client), crd_jobs.map(|i| i.spawn(&client)));
    run_kinds(client, opts, batch_sub, crd_sub, shutdown).await;
    for mut t in ttl {
        let _ = (&mut t.0).await;
    }
}

/// Runs the Job controller alone until `shutdown` completes (`jobwright.dev/v1` Jobs too if the
/// API server serves them).
pub async fn run_job_controller(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run(client, Options { config, ttl_controller: false, ..Options::default() }, shutdown).await
}

/// One pod reflector (feeding the pod index, the expectations and the orphan worker), then one
/// kube-runtime controller per Job kind, each triggered by the pods its Jobs control.
async fn run_kinds(
    client: Client,
    opts: Options,
    batch_jobs: Subscription<Job>,
    crd_jobs: Option<Subscription<CrdJob>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let crd = crd_jobs.is_some();
    let owners = Owners { batch: batch_jobs.store.clone(), crd: crd_jobs.as_ref().map(|s| s.store.clone()) };
    let expectations = Arc::new(Expectations::new(opts.expectations_ttl));
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let index = Arc::new(PodIndex::default());
    let (pods_ready_tx, pods_ready) = watch::channel(false);
    let (batch_ready_tx, batch_ready) = watch::channel(false);
    let (crd_ready_tx, crd_ready) = watch::channel(false);

    // Readiness: the pods and the Jobs of every reconciled kind listed.
    let mut all_ready = vec![pods_ready.clone(), batch_ready.clone()];
    if crd {
        all_ready.push(crd_ready);
    }
    let recorder = EventSink::new(client.clone(), REPORTING_CONTROLLER);
    let synced = opts.caches_synced.clone().map(|tx| {
        AbortOnDrop(tokio::spawn(async move {
            for rx in &all_ready {
                if ready(rx).await.is_err() {
                    return;
                }
            }
            tx.send_replace(true);
        }))
    });

    // The pod reflector, driven here and fanned out to the controllers of each kind.
    // Pods are decoded straight into what the controller reads of them (see `cached_pod`).
    let pods_api: Api<CachedPod> = Api::all(client.clone());
    let (batch_pods_tx, batch_pods) = mpsc::unbounded_channel::<Arc<CachedPod>>();
    let (crd_pods_tx, crd_pods) = mpsc::unbounded_channel::<Arc<CachedPod>>();
    let mut pod_txs = vec![batch_pods_tx];
    if crd {
        pod_txs.push(crd_pods_tx);
    }
    let pod_hook = {
        let owners = owners.clone();
        let exp = expectations.clone();
        let index = index.clone();
        let tx: OrphanTx = orphan_tx.clone();
        let triggers = pod_txs.clone();
        let mut vanished = Vanished::default();
        move |ev: &watcher::Event<CachedPod>| {
            // The cache first: once an expectation is observed, the pod is findable.
            let stored = index.apply(ev);
            // Pods a re-list dropped were deleted while the watch was down: observed as deleted,
            // and their Jobs synced (no event of theirs will come).
            let gone = vanished.observe_in(
                ev,
                || index.state(),
                |old| {
                    index.pod(
                        old.metadata.namespace.as_deref().unwrap_or_default(),
                        old.metadata.name.as_deref().unwrap_or_default(),
                    )
                },
            );
            for pod in gone {
                if let Some(uid) = job_controller_uid(&pod) {
                    exp.observe(uid, &pod, PodEvent::Deleted);
                }
                for t in &triggers {
                    let _ = t.send(pod.clone());
                }
            }
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
            if kind == PodEvent::Applied && owners.maybe_orphan(pod) {
                let _ = tx.send(pod_key(pod));
            }
            // The pod's Jobs are synced (the same entry the cache holds: no second copy queued).
            if let Some(pod) = stored {
                for t in &triggers {
                    let _ = t.send(pod.clone());
                }
            }
        }
    };
    let pod_watch = watcher(pods_api, watcher::Config::default()).default_backoff();
    let pod_stream = pod_watch.inspect_ok(pod_hook);
    let pod_task = AbortOnDrop(tokio::spawn(async move {
        let mut stream = std::pin::pin!(pod_stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                tracing::warn!(error = %e, "pod watch error");
            }
        }
    }));

    let shared = Shared {
        client: client.clone(),
        queue: Arc::new(Queue::new(opts.metrics.clone())),
        config: opts.config.clone(),
        expectations: expectations.clone(),
        recorder,
        metrics: opts.metrics.clone(),
        index: index.clone(),
        pods_ready: pods_ready.clone(),
        orphans: orphan_tx.clone(),
    };
    // The orphan worker starts once the pods and the batch/v1 Jobs are listed; it does not wait for
    // the custom resource (with `--crd-jobs true` and no CRD it never syncs): a pod whose
    // jobwright.dev/v1 Job is missing from a cold cache is confirmed by a live GET anyway.
    let orphans =
        AbortOnDrop(tokio::spawn(orphan_worker(shared.clone(), owners, vec![pods_ready, batch_ready], orphan_rx)));
    let batch = run_kind::<Job>(&shared, batch_jobs, batch_ready_tx, batch_pods, shutdown.clone());
    if let Some(crd_jobs) = crd_jobs {
        let crd = run_kind::<CrdJob>(&shared, crd_jobs, crd_ready_tx, crd_pods, shutdown);
        futures::future::join(batch, crd).await;
    } else {
        drop((crd_ready_tx, crd_pods));
        batch.await;
    }
    drop((pod_task, orphans, synced));
}

/// What the controllers of every kind share: the client, the pods and what is known about them.
#[derive(Clone)]
struct Shared {
    client: Client,
    queue: Arc<Queue>,
    config: Config,
    expectations: Arc<Expectations>,
    recorder: EventSink,
    metrics: Option<Metrics>,
    index: Arc<PodIndex>,
    pods_ready: watch::Receiver<bool>,
    orphans: OrphanTx,
}

/// The Jobs waiting for a sync (`jobwright_workqueue_depth`), as upstream's workqueue counts them:
/// a Job triggered by a watch event (its own or one of its pods') is queued until its reconcile
/// starts, and is counted once however many events queue it (kube-runtime's scheduler merges
/// them likewise). A requeue after a delay is not counted (upstream's delaying queue adds it to
/// the queue once its delay is over).
#[derive(Default)]
pub struct Queue {
    waiting: Mutex<std::collections::HashSet<String>>,
    metrics: Option<Metrics>,
}

impl Queue {
    /// A queue whose depth is exported to `metrics`, if any.
    pub fn new(metrics: Option<Metrics>) -> Self {
        Self { waiting: Mutex::default(), metrics }
    }

    fn key<K: JobKind>(ns: Option<&str>, name: &str) -> String {
        format!("{}/{}/{name}", K::api_version(&()), ns.unwrap_or_default())
    }

    fn update(&self, f: impl FnOnce(&mut std::collections::HashSet<String>)) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut waiting);
        if let Some(m) = &self.metrics {
            m.set_workqueue_depth(i64::try_from(waiting.len()).unwrap_or(i64::MAX));
        }
    }

    /// A watch event queued the Job.
    pub fn queued<K: JobKind>(&self, ns: Option<&str>, name: &str) {
        self.update(|w| {
            w.insert(Self::key::<K>(ns, name));
        });
    }

    /// The Job's reconcile started.
    pub fn started<K: JobKind>(&self, ns: Option<&str>, name: &str) {
        self.update(|w| {
            w.remove(&Self::key::<K>(ns, name));
        });
    }

    /// How many Jobs are waiting.
    #[cfg(test)]
    fn depth(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The kube-runtime controller of one Job kind over the shared Job informer, until shutdown.
async fn run_kind<K: JobKind>(
    shared: &Shared,
    subscription: Subscription<K>,
    jobs_ready_tx: watch::Sender<bool>,
    pod_triggers: mpsc::UnboundedReceiver<Arc<CachedPod>>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let Subscription { store: jobs, events } = subscription;
    let config = K::config(&shared.config);
    let workers = u16::try_from(config.workers.max(1)).unwrap_or(u16::MAX);
    let ctx = Arc::new(Context {
        client: shared.client.clone(),
        config,
        jobs: jobs.clone(),
        expectations: shared.expectations.clone(),
        recorder: shared.recorder.clone(),
        metrics: shared.metrics.clone(),
        index: shared.index.clone(),
        failures: Mutex::new(HashMap::new()),
        pods_ready: shared.pods_ready.clone(),
        queue: shared.queue.clone(),
    });
    let job_hook = {
        let queue = shared.queue.clone();
        let index = shared.index.clone();
        let exp = shared.expectations.clone();
        let events = shared.recorder.clone();
        let tx = shared.orphans.clone();
        move |ev: &watcher::Event<Arc<K>>| {
            if let watcher::Event::InitDone = ev {
                jobs_ready_tx.send_replace(true);
            }
            // A Job a re-list dropped was deleted while the watch was down: the informer sends a
            // Delete for it too.
            if let watcher::Event::Delete(job) = ev {
                // A deleted Job is not reconciled (kube-runtime finds it gone): no longer waiting.
                queue.started::<K>(job.meta().namespace.as_deref(), &job.name_any());
                let uid = job.meta().uid.clone().unwrap_or_default();
                exp.forget(&uid);
                events.forget(&uid);
                for p in index.pods(&uid) {
                    if pods::has_tracking_finalizer(&p) {
                        let _ = tx.send(pod_key(&p));
                    }
                }
            }
        }
    };
    let trigger_jobs = jobs.clone();
    // managedFields are never read, so they are not cached (nor sent back by status writes).
    let job_stream = Subscription::applied(events.inspect(job_hook)).inspect({
        let queue = shared.queue.clone();
        move |j: &Arc<K>| queue.queued::<K>(j.meta().namespace.as_deref(), &j.name_any())
    });
    let trigger_queue = shared.queue.clone();
    let gone_queue = shared.queue.clone();
    Controller::for_shared_stream(job_stream, jobs)
        .watches_shared_stream(UnboundedReceiverStream::new(pod_triggers), move |pod: Arc<CachedPod>| {
            let jobs = K::triggered_by(&pod, &trigger_jobs);
            for j in &jobs {
                trigger_queue.queued::<K>(j.namespace.as_deref(), &j.name);
            }
            jobs
        })
        .with_config(controller::Config::default().concurrency(workers))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(move |res| {
            let kind = K::api_version(&());
            match res {
                Ok(_) => {}
                // Queued by an event but gone from the cache when its turn came: no longer waiting.
                Err(controller::Error::ObjectNotFound(r)) => gone_queue.started::<K>(r.namespace.as_deref(), &r.name),
                Err(controller::Error::ReconcilerFailed(e, obj)) => match &e {
                    Error::StatusRejected { .. } => {
                        tracing::error!(%kind, job = %obj, error = %e, "status write rejected")
                    }
                    Error::Conflict(_) | Error::JobGone(_) => {
                        tracing::debug!(%kind, job = %obj, error = %e, "re-planning")
                    }
                    _ => tracing::warn!(%kind, job = %obj, error = %e, kind = e.metric_label(), "sync failed"),
                },
                Err(e) => tracing::warn!(%kind, error = %e, "controller error"),
            }
            std::future::ready(())
        })
        .await;
}

/// Removes the tracking finalizer of pods whose controller Job (of a reconciled kind) is gone
/// (confirmed with a live GET of that kind) or that have no controller.
async fn orphan_worker(
    shared: Shared,
    owners: Owners,
    wait_for: Vec<watch::Receiver<bool>>,
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
) {
    for r in &wait_for {
        if ready(r).await.is_err() {
            return;
        }
    }
    // Failed checks and removals are retried with a per-pod backoff: no other event may come for
    // the pod, and its finalizer would otherwise stay forever (the pod stuck terminating).
    let mut failures: HashMap<(String, String), u32> = HashMap::new();
    while let Some((ns, name)) = rx.recv().await {
        let key = (ns.clone(), name.clone());
        let retry = |failures: &mut HashMap<(String, String), u32>| {
            let n = failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            let delay = API_BACKOFF.saturating_mul(1u32 << (*n - 1).min(10)).min(MAX_API_BACKOFF);
            let (tx, key) = (shared.orphans.clone(), key.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(key);
            });
        };
        let Some(pod) = shared.index.pod(&ns, &name) else {
            failures.remove(&key);
            continue;
        };
        if !owners.maybe_orphan(&pod) {
            failures.remove(&key);
            continue;
        }
        let (owner, config) = match controller_of(&pod) {
            Some(r) => {
                let found = match owner_kind(r) {
                    Some(KindId::Batch) => {
                        live_owner::<Job>(&shared.client, &ns, r).await.map(|j| (j, Job::config(&shared.config)))
                    }
                    Some(KindId::Crd) => {
                        live_owner::<CrdJob>(&shared.client, &ns, r).await.map(|j| (j, CrdJob::config(&shared.config)))
                    }
                    None => continue,
                };
                match found {
                    Ok(found) => found,
                    Err(e) => {
                        tracing::warn!(pod = %name, error = %e, "orphan check failed; retrying");
                        retry(&mut failures);
                        continue;
                    }
                }
            }
            None => (None, shared.config.clone()),
        };
        if orphan_needs_finalizer_removal(&pod, owner.as_ref(), &config) {
            match remove_finalizer(&shared.client, &ns, &name).await {
                Ok(()) => tracing::debug!(pod = %name, namespace = %ns, "removed finalizer of orphan pod"),
                Err(e) => {
                    tracing::warn!(pod = %name, error = %e, "removing the finalizer of an orphan pod failed; retrying");
                    retry(&mut failures);
                    continue;
                }
            }
        }
        failures.remove(&key);
    }
}

/// Removes the tracking finalizer with the strategic merge patch upstream sends
/// (`$deleteFromPrimitiveList/finalizers`); a 404 counts as done. The response (read by nobody)
/// is skipped unbuilt ([`serde::de::IgnoredAny`]).
pub async fn remove_finalizer(client: &Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    use kube::Resource;
    let patch = serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}});
    let mut req = kube::core::Request::new(Pod::url_path(&(), Some(ns)))
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("patch");
    match client.request::<serde::de::IgnoredAny>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Releases the pods the Job controls whose labels no longer match its selector (upstream's
/// `ClaimPods` release): a JSON patch guarded by uid and resourceVersion removes the controller
/// ownerReference. The pod then has no controller, so the orphan path removes its finalizer.
async fn release_mismatched<K: JobKind>(job: &Job, ctx: &Context<K>) -> Result<(), Error> {
    let Some(uid) = job.metadata.uid.as_deref() else { return Ok(()) };
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for pod in ctx.index.to_release(job, uid) {
        let Some(pos) = pod.owner_references().iter().position(|r| r.uid == uid) else { continue };
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
async fn adopt_orphans<K: JobKind>(job: &Job, ctx: &Context<K>) -> Result<Vec<Arc<CachedPod>>, Error> {
    let ns = job.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let orphans: Vec<Arc<CachedPod>> =
        ctx.index.pods(&orphan_key(&ns)).into_iter().filter(|p| claim(job, p) == Claim::Adopt).collect();
    if orphans.is_empty() {
        return Ok(vec![]);
    }
    let jobs: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let fresh = jobs.get_opt(&job.name_any()).await?;
    if fresh.is_none_or(|f| f.meta().uid != job.metadata.uid || f.meta().deletion_timestamp.is_some()) {
        return Ok(vec![]);
    }
    let owner = serde_json::to_value(K::controller_ref(job))?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut adopted = vec![];
    for pod in orphans {
        let mut ops = vec![
            serde_json::json!({"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid}),
            serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": pod.metadata.resource_version}),
        ];
        if pod.owner_references().is_empty() {
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
                adopted.push(Arc::new(CachedPod::from(p)));
            }
            // Changed or gone since the cache saw it: the next event re-triggers the claim.
            Err(e) => tracing::debug!(pod = %pod.name_any(), error = %e, "adopting a pod failed"),
        }
    }
    Ok(adopted)
}

async fn reconcile<K: JobKind>(job: Arc<K>, ctx: Arc<Context<K>>) -> Result<Action, Error> {
    ctx.queue.started::<K>(job.meta().namespace.as_deref(), &job.name_any());
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

async fn sync<K: JobKind>(job: Arc<K>, ctx: &Context<K>) -> Result<Action, Error> {
    // The pure core and the claim work on the batch view; only the API calls know the kind.
    let job = job.batch();
    let job: &Job = &job;
    if !ctx.config.manages(job) {
        return Ok(Action::await_change());
    }
    if K::ID == KindId::Crd
        && let Some(problems) = invalid_spec(job)
    {
        // kube-apiserver validates a batch/v1 Job; nothing validates a custom resource's spec
        // beyond its schema. A spec the API server would refuse is not synced (no pod is created
        // from it); the Job gets a Warning Event naming the fields and rules, and other Jobs go on.
        tracing::warn!(job = %format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any()), %problems, "invalid Job spec: not synced");
        apply::publish::<K>(&ctx.recorder, job, vec![super::events::invalid_spec(&problems)]);
        return Ok(Action::await_change());
    }
    ready(&ctx.pods_ready).await?;
    let uid = job.metadata.uid.clone().ok_or(Error::MissingMetadata("uid"))?;
    if job.metadata.deletion_timestamp.is_none() {
        release_mismatched(job, ctx).await?;
    }
    // Expectations first, then the pod snapshot (see `Expectations::outstanding`).
    let before = ctx.expectations.outstanding(&uid);
    // The live pods and the settled ones' summary (see `super::settled`): one snapshot.
    let with_failed = job.spec.as_ref().is_some_and(|s| s.pod_failure_policy.is_some());
    let JobPods { live: mut pods, settled, settled_uids } = ctx.index.job_pods(job, &uid, before.uids(), with_failed);
    pods.extend(adopt_orphans(job, ctx).await?);
    let (satisfied, pending) = ctx.expectations.satisfied_after_with(&uid, &before, &pods, &settled_uids);
    let sctx = SyncContext {
        expectations_satisfied: satisfied,
        pending_finalizer_removals: pending,
        expectations_expire_in: before.expires_in,
    };
    let plan = plan_split(job, &pods, &settled, Utc::now(), &ctx.config, &sctx);
    let requeue = apply::apply(ctx, job, &pods, plan).await?;
    ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// The batch/v1 validation errors of the Job's spec (`spec.selector` included), joined, if any.
fn invalid_spec(job: &Job) -> Option<String> {
    let value = serde_json::to_value(job).ok()?;
    let opts = crate::apiserver::validate::job::validation_options(&value, None);
    let spec = value.get("spec").unwrap_or(&serde_json::Value::Null);
    let errs = crate::apiserver::validate::job::validate_job_spec(spec, "spec", &opts);
    (!errs.is_empty()).then(|| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
}

fn error_policy<K: JobKind>(job: Arc<K>, err: &Error, ctx: Arc<Context<K>>) -> Action {
    if matches!(err, Error::Conflict(_) | Error::JobGone(_)) {
        return Action::requeue(CONFLICT_REQUEUE);
    }
    let uid = job.meta().uid.clone().unwrap_or_default();
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

    #[test]
    fn queue_counts_each_waiting_job_once_until_its_sync_starts() {
        let metrics = Metrics::new();
        let q = Queue::new(Some(metrics.clone()));
        let gauge =
            |m: &Metrics| m.render().lines().find(|l| l.starts_with("jobwright_workqueue_depth ")).map(str::to_string);
        q.queued::<Job>(Some("ns"), "a");
        q.queued::<Job>(Some("ns"), "a");
        q.queued::<CrdJob>(Some("ns"), "a");
        q.queued::<Job>(Some("ns"), "b");
        assert_eq!(q.depth(), 3, "a (twice) counts once; the custom `a` is another Job");
        assert_eq!(gauge(&metrics).as_deref(), Some("jobwright_workqueue_depth 3"));
        q.started::<Job>(Some("ns"), "a");
        q.started::<Job>(Some("ns"), "zzz");
        assert_eq!(q.depth(), 2);
        q.started::<CrdJob>(Some("ns"), "a");
        q.started::<Job>(Some("ns"), "b");
        assert_eq!(gauge(&metrics).as_deref(), Some("jobwright_workqueue_depth 0"));
    }
}
