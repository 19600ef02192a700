//! The CronJob controller's shell: kube-runtime wiring around the pure [`super::sync`].
//!
//! - A kube-runtime `Controller` over all batch/v1 CronJobs; the Job informer it shares with the
//!   Job and TTL controllers ([`crate::job::informer`]; one of its own when run alone) feeds
//!   [`JobIndex`] (the Jobs by their controller's name, upstream's `getJobsToBeReconciled`) and
//!   wakes the CronJob a Job's controller reference names (kind `CronJob`, uid checked against
//!   the cache, upstream's `resolveControllerRef`). [`Triggers`] drops the watch events whose
//!   sync would change nothing: our own status writes, running Jobs already listed as active.
//! - One sync per CronJob at a time: history cleanup, the Jobs reconciled into `status.active` and
//!   `lastSuccessfulTime` (live GETs where the cache may lag, as upstream), the [`decide`]d
//!   action, then ONE status write (PUT `/status` with the cached resourceVersion; a 409 re-syncs).
//!   Until the watch brings that write back, the next sync starts from what was written
//!   ([`Written`]), not from the older cached copy.
//! - Wake-up: the sync names the next slot and is requeued for it (without upstream's 100 ms
//!   pad: a sync that wakes before the slot asks again for the remainder); nothing polls. A change
//!   of the CronJob (spec, deletion, anyone else's status edit) re-syncs at once, so a new
//!   schedule takes effect immediately.
//! - The clock is injected ([`Options::clock`]): tests move it instead of waiting for minutes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action as KubeAction, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::job::informer::Subscription;
use crate::lean::{Lean, unlean};

use super::deferred::{Deferred, Gate, MAX_DEFER, WRITERS};
use super::schedule::Zone;
use super::sync::{self, Action, decide_memo, history_to_delete, job_ref, observe_jobs, remove_active};
use super::triggers::Triggers;
use crate::job::events::JobEvent;
use crate::job::recorder::EventSink;
use crate::metrics::{Metrics, ReconcileResult};

/// The events' `reportingController` (upstream's event source component).
pub const REPORTING_CONTROLLER: &str = "cronjob-controller";

/// How many event writes may be in flight at once: events wait behind the Job creates and status
/// writes of a busy slot rather than competing with them.
pub const EVENT_WRITES: usize = 4;

/// How many CronJobs are synced at once by default.
pub const DEFAULT_WORKERS: usize = 64;

/// The controller's clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Settings of the CronJob controller.
#[derive(Clone)]
pub struct Options {
    /// What time it is (the wall clock outside tests).
    pub clock: Clock,
    /// The zone of CronJobs without `spec.timeZone` (upstream: the controller's `time.Local`).
    pub local: Zone,
    /// How many CronJobs are synced at once ([`DEFAULT_WORKERS`]; upstream's
    /// `--concurrent-cron-job-syncs` is 5, too few to start 10,000 Jobs within a second of one slot).
    pub workers: usize,
    /// Where the creation skew and reconcile outcomes go, if anywhere.
    pub metrics: Option<Metrics>,
}

impl Default for Options {
    fn default() -> Self {
        Self { clock: Arc::new(Utc::now), local: Zone::Local, workers: DEFAULT_WORKERS, metrics: None }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options").field("local", &self.local).field("workers", &self.workers).finish_non_exhaustive()
    }
}

/// Why a CronJob sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API error: {0}")]
    Kube(#[from] kube::Error),
    /// An active Job could not be deleted for `concurrencyPolicy: Replace`.
    #[error("could not replace job {0}")]
    Replace(String),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(_) => "kube",
            Error::Replace(_) => "replace",
        }
    }
}

type Key = (String, String);

/// The Jobs of each namespace by their controller's name (any kind, as upstream lists them).
#[derive(Default)]
pub struct JobIndex {
    inner: Mutex<IndexState>,
}

/// Job names by their controller's key.
type ByOwner = HashMap<Key, BTreeSet<String>>;
/// A Job's controller key by the Job's key.
type OwnerOf = HashMap<Key, Key>;

#[derive(Default)]
struct IndexState {
    by_owner: ByOwner,
    owner_of: OwnerOf,
    /// While a relist is under way: the index it builds.
    relist: Option<(ByOwner, OwnerOf)>,
}

fn controller_name(job: &Job) -> Option<&str> {
    job.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true)).map(|r| r.name.as_str())
}

fn insert(by_owner: &mut ByOwner, owner_of: &mut OwnerOf, job: &Job) {
    let ns = job.namespace().unwrap_or_default();
    let key = (ns.clone(), job.name_any());
    if let Some(old) = owner_of.remove(&key)
        && let Some(set) = by_owner.get_mut(&old)
    {
        set.remove(&key.1);
        if set.is_empty() {
            by_owner.remove(&old);
        }
    }
    if let Some(owner) = controller_name(job) {
        let owner = (ns, owner.to_string());
        by_owner.entry(owner.clone()).or_default().insert(key.1.clone());
        owner_of.insert(key, owner);
    }
}

impl JobIndex {
    /// Applies one watch event.
    pub fn apply(&self, ev: &watcher::Event<Arc<Job>>) {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        match ev {
            watcher::Event::Apply(j) => insert(&mut st.by_owner, &mut st.owner_of, j),
            watcher::Event::Delete(j) => {
                let key = (j.namespace().unwrap_or_default(), j.name_any());
                if let Some(owner) = st.owner_of.remove(&key)
                    && let Some(set) = st.by_owner.get_mut(&owner)
                {
                    set.remove(&key.1);
                    if set.is_empty() {
                        st.by_owner.remove(&owner);
                    }
                }
            }
            watcher::Event::Init => st.relist = Some(Default::default()),
            watcher::Event::InitApply(j) => {
                let (by, of) = st.relist.get_or_insert_with(Default::default);
                insert(by, of, j);
            }
            watcher::Event::InitDone => {
                if let Some((by, of)) = st.relist.take() {
                    st.by_owner = by;
                    st.owner_of = of;
                }
            }
        }
    }

    /// The names of the Jobs in `ns` whose controller is named `owner`.
    pub fn get(&self, ns: &str, owner: &str) -> Vec<String> {
        let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        st.by_owner.get(&(ns.to_string(), owner.to_string())).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// By CronJob uid: the resourceVersion our last status write replaced, and what it wrote. A sync
/// that starts before the watch delivered that write (a Job event queued it meanwhile) works on
/// what was written instead of the older cached copy, so it neither starts the slot again (an
/// AlreadyExists round trip) nor writes with a stale resourceVersion (a 409). An entry goes once
/// the cache shows any other version (our write's own watch event syncs the CronJob again).
#[derive(Default)]
pub struct Written {
    inner: Mutex<HashMap<String, (String, Arc<CronJob>)>>,
}

impl Written {
    /// The freshest known state of `cj`: the cached copy, or our own newer write of it.
    pub fn latest(&self, cj: Arc<CronJob>) -> Arc<CronJob> {
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let mut written = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(&uid) {
            Some((replaced, ours)) if cj.metadata.resource_version.as_ref() == Some(replaced) => ours.clone(),
            Some(_) => {
                written.remove(&uid);
                cj
            }
            None => cj,
        }
    }

    /// The status of `cj` as our own newer write left it, if the cache has not caught up.
    pub fn peek(&self, cj: &CronJob) -> Option<Arc<CronJob>> {
        let uid = cj.metadata.uid.as_deref()?;
        let written = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (replaced, ours) = written.get(uid)?;
        (cj.metadata.resource_version.as_ref() == Some(replaced)).then(|| ours.clone())
    }

    /// The cache now holds `cj`: forget our write of it if the cache has caught up with it.
    pub fn observed(&self, cj: &CronJob) {
        let Some(uid) = cj.metadata.uid.as_deref() else { return };
        let mut written = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if written.get(uid).is_some_and(|(replaced, _)| cj.metadata.resource_version.as_ref() != Some(replaced)) {
            written.remove(uid);
        }
    }

    /// Records that the status write of `before` returned `after`.
    pub fn wrote(&self, before: &CronJob, after: CronJob) {
        let (Some(uid), Some(rv)) = (before.metadata.uid.clone(), before.metadata.resource_version.clone()) else {
            return;
        };
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).insert(uid, (rv, Arc::new(after)));
    }
}

/// A sync's status write and events, sent once the tick's Job creates are (see [`super::deferred`]).
struct StatusWrite {
    /// The CronJob as the sync read it.
    read: Arc<CronJob>,
    /// The new status, if it changed: written as `read` with this status ([`StatusBody`]).
    status: Option<CronJobStatus>,
    /// The sync's events.
    events: Vec<JobEvent>,
    /// The slot the sync requeued for, if any: once the status is written, that slot's create is
    /// prepared for the CronJob as written ([`PreparedMap::prepare`]).
    next_slot: Option<DateTime<Utc>>,
}

/// What a CronJob's syncs keep for its next sync (by CronJob uid): the schedule's memo
/// ([`sync::Memo`]) and, when its next slot is near ([`PREPARE_AHEAD`]), the create body of the
/// Job of that slot, made before the slot so that the slot's sync only sends it.
#[derive(Default)]
struct Prepared {
    memo: sync::Memo,
    create: Option<PreparedCreate>,
}

/// The body of the Job create of `slot` for the CronJob at `resource_version` (its name,
/// namespace, uid and spec are what the body is made of; any change of them changes that).
struct PreparedCreate {
    resource_version: String,
    slot: DateTime<Utc>,
    body: Vec<u8>,
}

/// How near its slot must be for a CronJob's Job create body to be made and kept ahead of it. For
/// a farther slot the body is made by [`prepare_ahead`] when the slot comes this near (without a
/// sync: no request, no write), so between distant slots a CronJob keeps its memo only and a
/// slot's sync only sends what was made before it.
const PREPARE_AHEAD: Duration = Duration::from_secs(5);

/// [`Prepared`] by CronJob uid, for the CronJobs the reflector's store holds and no others. An
/// entry is created or kept only under the map's lock with the store holding that uid, so none
/// outlives its CronJob: the reflector applies a `Delete` (or a relist's `InitDone`) to the store
/// before the controller sees the event and drops the entries ([`Self::deleted`],
/// [`Self::relisted`]); a sync that puts an entry back later finds the CronJob gone from the store.
struct PreparedMap {
    cronjobs: Store<CronJob>,
    inner: Mutex<HashMap<String, Prepared>>,
    /// The slots too far ahead to prepare when named, one per CronJob (its latest): each is
    /// prepared by [`prepare_ahead`] once within [`PREPARE_AHEAD`] of it.
    later: Mutex<Later>,
    /// Wakes [`prepare_ahead`] when a slot is added to `later`.
    added: tokio::sync::Notify,
}

impl PreparedMap {
    fn new(cronjobs: Store<CronJob>) -> Self {
        Self { cronjobs, inner: Mutex::default(), later: Mutex::default(), added: tokio::sync::Notify::new() }
    }

    fn later(&self) -> std::sync::MutexGuard<'_, Later> {
        self.later.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the first slot kept for later is to be prepared ([`PREPARE_AHEAD`] before it).
    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.later().by_time.first().map(|(slot, _)| prepare_at(*slot))
    }

    /// Takes (up to `max` of) the slots kept for later that are to be prepared by `now`.
    fn due(&self, now: DateTime<Utc>, max: usize) -> Vec<(DateTime<Utc>, Key)> {
        let mut later = self.later();
        let mut due = vec![];
        while due.len() < max && later.by_time.first().is_some_and(|(slot, _)| prepare_at(*slot) <= now) {
            if let Some((slot, key)) = later.by_time.pop_first() {
                later.by_key.remove(&key);
                due.push((slot, key));
            }
        }
        due
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Prepared>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the store holds `cj` (a CronJob of its name with its uid).
    fn holds(&self, cj: &CronJob) -> bool {
        let (Some(name), Some(uid)) = (cj.metadata.name.as_deref(), cj.metadata.uid.as_deref()) else { return false };
        let at = ObjectRef::new(name).within(cj.metadata.namespace.as_deref().unwrap_or_default());
        self.cronjobs.get(&at).is_some_and(|c| c.metadata.uid.as_deref() == Some(uid))
    }

    /// Stores `memo` (and, if `Some`, `create`) for `cj` if the store still holds it; otherwise
    /// drops whatever is kept for its uid.
    fn put(&self, cj: &CronJob, memo: sync::Memo, create: Option<Option<PreparedCreate>>) {
        let Some(uid) = cj.metadata.uid.as_deref() else { return };
        let mut map = self.lock();
        if !self.holds(cj) {
            map.remove(uid);
            return;
        }
        let p = map.entry(uid.to_string()).or_default();
        p.memo = memo;
        if let Some(create) = create {
            p.create = create;
        }
    }

    /// Runs `f` on `cj`'s memo, taken out of the map meanwhile (the map is not locked while `f`
    /// runs; a memo missing or taken is an empty one, which answers the same), then puts it back.
    fn with_memo<R>(&self, cj: &CronJob, f: impl FnOnce(&mut sync::Memo) -> R) -> R {
        let uid = cj.metadata.uid.as_deref().unwrap_or_default();
        let mut memo = self.lock().get_mut(uid).map(|p| std::mem::take(&mut p.memo)).unwrap_or_default();
        let out = f(&mut memo);
        self.put(cj, memo, None);
        out
    }

    /// Whether the create of `cj`'s Job for `slot` is prepared for this version of `cj`.
    fn is_prepared(&self, cj: &CronJob, slot: DateTime<Utc>) -> bool {
        let map = self.lock();
        let Some(c) = cj.metadata.uid.as_deref().and_then(|uid| map.get(uid)?.create.as_ref()) else { return false };
        c.slot == slot && cj.metadata.resource_version.as_ref() == Some(&c.resource_version)
    }

    /// Walks `cj`'s memo past `slot` and, if `slot` is within [`PREPARE_AHEAD`] of `now`, makes
    /// the create body of its Job for `slot`, ahead of that slot's sync (which uses them if the
    /// CronJob is still at this resourceVersion); a farther slot drops any body kept.
    fn prepare(&self, cj: &CronJob, slot: DateTime<Utc>, now: DateTime<Utc>) {
        let near = (slot - now).to_std().map_or(true, |ahead| ahead <= PREPARE_AHEAD);
        if !near && let (Some(ns), Some(name)) = (cj.metadata.namespace.as_ref(), cj.metadata.name.as_ref()) {
            // Made when the slot is near, of the CronJob as it is then; the task is woken only
            // when this slot comes first (it sleeps until the first). Kept only while the store
            // holds the CronJob, checked under the lock `deleted` takes after the store applied a
            // Delete: a sync racing the delete keeps nothing for later.
            let mut later = self.later();
            if self.holds(cj) && later.insert(slot, (ns.clone(), name.clone())) {
                self.added.notify_one();
            }
        }
        self.make(cj, slot, near)
    }

    /// Walks `cj`'s memo past `slot` and makes the create body of its Job for `slot` if `body`
    /// (else drops any body kept).
    fn make(&self, cj: &CronJob, slot: DateTime<Utc>, body: bool) {
        let Some(rv) = cj.metadata.resource_version.as_ref() else { return };
        let create = body.then(|| create_body(cj, slot).ok()).flatten().map(|body| PreparedCreate {
            resource_version: rv.clone(),
            slot,
            body,
        });
        let uid = cj.metadata.uid.as_deref().unwrap_or_default();
        let mut memo = self.lock().get_mut(uid).map(|p| std::mem::take(&mut p.memo)).unwrap_or_default();
        memo.walk_from(slot);
        self.put(cj, memo, Some(create));
    }

    /// The create body prepared for `cj`'s Job of `slot`, if made of this very version of `cj`
    /// (taken: a body is sent once).
    fn take_create(&self, cj: &CronJob, slot: DateTime<Utc>) -> Option<Vec<u8>> {
        let uid = cj.metadata.uid.as_deref()?;
        let c = self.lock().get_mut(uid)?.create.take()?;
        (c.slot == slot && cj.metadata.resource_version.as_ref() == Some(&c.resource_version)).then_some(c.body)
    }

    /// `cj` is gone (the store no longer holds it).
    fn deleted(&self, cj: &CronJob) {
        if let Some(uid) = cj.metadata.uid.as_deref() {
            self.lock().remove(uid);
        }
        self.later().remove(&(cj.namespace().unwrap_or_default(), cj.name_any()));
    }

    /// A relist is done (the store holds what it showed): drops the CronJobs it did not show
    /// (deleted while the watch was down, which no `Delete` event reports).
    fn relisted(&self) {
        let state = self.cronjobs.state();
        let uids: std::collections::HashSet<&str> = state.iter().filter_map(|c| c.metadata.uid.as_deref()).collect();
        self.lock().retain(|uid, _| uids.contains(uid.as_str()));
        let keys: std::collections::HashSet<Key> =
            state.iter().map(|c| (c.namespace().unwrap_or_default(), c.name_any())).collect();
        let mut later = self.later();
        let gone: Vec<Key> = later.by_key.keys().filter(|k| !keys.contains(*k)).cloned().collect();
        for key in gone {
            later.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The slots kept for later ([`PreparedMap::later`]): at most one per CronJob, in time order.
#[derive(Default)]
struct Later {
    by_time: std::collections::BTreeSet<(DateTime<Utc>, Key)>,
    by_key: HashMap<Key, DateTime<Utc>>,
}

impl Later {
    /// Keeps `slot` for `key` in place of any other; whether it is now the first slot kept.
    fn insert(&mut self, slot: DateTime<Utc>, key: Key) -> bool {
        if let Some(old) = self.by_key.insert(key.clone(), slot) {
            self.by_time.remove(&(old, key.clone()));
        }
        let first = self.by_time.first().is_none_or(|(t, _)| slot < *t);
        self.by_time.insert((slot, key));
        first
    }

    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.by_key.remove(key) {
            self.by_time.remove(&(slot, key.clone()));
        }
    }
}

/// When the Job create of `slot` is prepared: [`PREPARE_AHEAD`] before it.
fn prepare_at(slot: DateTime<Utc>) -> DateTime<Utc> {
    slot.checked_sub_signed(chrono::Duration::seconds(PREPARE_AHEAD.as_secs() as i64))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Makes the create bodies of the slots kept for later ([`PreparedMap::later`]) as each comes
/// within [`PREPARE_AHEAD`], of the CronJob as the slot's sync will read it (the cached copy, or
/// our own newer write of it): a `*/1` CronJob's sync names its next slot a minute ahead, so
/// without this its slot's sync would serialize the body itself, in the busiest second. Nothing
/// here creates a Job or makes a request; a body is used only by the slot's sync, only if made of
/// the very version of the CronJob it reads ([`PreparedMap::take_create`]). Never ends.
async fn prepare_ahead(prepared: Arc<PreparedMap>, written: Arc<Written>, clock: Clock) {
    loop {
        let added = prepared.added.notified();
        let wait = prepared.next_due().map(|at| requeue_in(at, clock()));
        match wait {
            Some(d) if d.is_zero() => {
                for (slot, (ns, name)) in prepared.due(clock(), 256) {
                    let Some(cached) = prepared.cronjobs.get(&ObjectRef::new(&name).within(&ns)) else { continue };
                    let cj = written.peek(&cached).unwrap_or(cached);
                    if !prepared.is_prepared(&cj, slot) {
                        prepared.make(&cj, slot, true);
                    }
                }
                // Let the syncs run between batches.
                tokio::task::yield_now().await;
            }
            Some(d) => {
                tokio::select! {
                    () = added => {}
                    () = tokio::time::sleep(d) => {}
                }
            }
            None => added.await,
        }
    }
}

/// What a CronJob watch event, already applied to the reflector's store, does to the
/// controller's state, and whether it syncs the CronJob (upstream's addCronJob/updateCronJob,
/// without the syncs of our own status writes).
fn on_cronjob_event(
    ev: &watcher::Event<CronJob>,
    triggers: &Triggers,
    written: &Written,
    gate: &Gate,
    prepared: &PreparedMap,
) -> bool {
    match ev {
        watcher::Event::Apply(cj) | watcher::Event::InitApply(cj) => {
            written.observed(cj);
            triggers.cronjob_changed(cj)
        }
        watcher::Event::Delete(cj) => {
            triggers.cronjob_deleted(cj);
            prepared.deleted(cj);
            gate.started(&(cj.namespace().unwrap_or_default(), cj.name_any()));
            false
        }
        watcher::Event::Init => {
            triggers.relist_begin();
            false
        }
        watcher::Event::InitDone => {
            triggers.relist_done();
            prepared.relisted();
            false
        }
    }
}

struct Ctx {
    client: Client,
    opts: Options,
    jobs: Store<Job>,
    index: Arc<JobIndex>,
    recorder: EventSink,
    failures: Mutex<HashMap<String, u32>>,
    skew: Option<prometheus_client::metrics::histogram::Histogram>,
    written: Arc<Written>,
    triggers: Arc<Triggers>,
    gate: Arc<Gate>,
    deferred: Deferred<StatusWrite>,
    /// CronJobs to sync again (a deferred status write failed).
    resync: tokio::sync::mpsc::UnboundedSender<ObjectRef<CronJob>>,
    /// What each CronJob's syncs keep for its next sync.
    prepared: Arc<PreparedMap>,
}

/// The reference the CronJob's events carry.
fn event_ref(cj: &CronJob) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("CronJob".into()),
        name: cj.metadata.name.clone(),
        namespace: cj.metadata.namespace.clone(),
        uid: cj.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The text of an API error as Go's `err.Error()` shows it (the Status message).
fn err_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Runs the CronJob controller until `shutdown` completes, with a Job informer of its own. The
/// controller reads only its Jobs' metadata and status, so that informer decodes and keeps each
/// Job without its `spec` (a shared informer, [`run_shared`], keeps what the Job controller needs).
pub async fn run(client: Client, opts: Options, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let (jobs, _informer) = Subscription::<Job>::standalone_without_spec(&client);
    run_shared(client, opts, jobs, shutdown).await
}

/// Runs the CronJob controller over a shared Job informer's subscription
/// ([`crate::job::informer`]) until `shutdown` completes.
pub async fn run_shared(
    client: Client,
    opts: Options,
    jobs: Subscription<Job>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let Subscription { store: jobs, events: job_events } = jobs;
    let (cj_store, cj_writer) = reflector::store::<CronJob>();
    let index = Arc::new(JobIndex::default());
    let triggers = Arc::new(Triggers::default());
    let written = Arc::new(Written::default());
    let gate = Arc::new(Gate::default());
    let prepared = Arc::new(PreparedMap::new(cj_store.clone()));
    // Decoded without managedFields: nothing here reads them.
    let cronjobs: Api<Lean<CronJob>> = Api::all(client.clone());
    let cj_watch = watcher(cronjobs, watcher::Config::default()).default_backoff().map_ok(unlean);
    // upstream's addCronJob/updateCronJob, without the syncs of our own status writes.
    let cj_stream = reflector::reflector(cj_writer, cj_watch).filter_map({
        let (triggers, written, gate, prepared) = (triggers.clone(), written.clone(), gate.clone(), prepared.clone());
        move |ev| {
            let out = match ev {
                Ok(ev) => match (on_cronjob_event(&ev, &triggers, &written, &gate, &prepared), ev) {
                    (true, watcher::Event::Apply(cj) | watcher::Event::InitApply(cj)) => Some(Ok(cj)),
                    _ => None,
                },
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        }
    });
    // upstream's addJob/updateJob/deleteJob, without the syncs that find a running Job already
    // listed as active (see [`Triggers`]); the controller reference is resolved below.
    let job_stream = job_events.filter_map({
        let (index, triggers, written, cj_store) = (index.clone(), triggers.clone(), written.clone(), cj_store.clone());
        move |ev| {
            index.apply(&ev);
            let out = match ev {
                watcher::Event::Apply(job) | watcher::Event::InitApply(job) => {
                    let ns = job.namespace().unwrap_or_default();
                    let wanted = match controller_name(&job) {
                        None => false,
                        Some(owner) => {
                            let cached = cj_store.get(&ObjectRef::new(owner).within(&ns));
                            let known = cached.map(|c| written.peek(&c).unwrap_or(c));
                            let status = known.as_ref().and_then(|c| c.status.as_ref());
                            triggers.job_changed(&(ns, owner.to_string()), &job, status)
                        }
                    };
                    wanted.then_some(job)
                }
                watcher::Event::Delete(job) => Some(job),
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            futures::future::ready(out)
        }
    });
    let skew = opts.metrics.as_ref().map(|m| m.cronjob_creation_skew.clone());
    let workers = u16::try_from(opts.workers.max(1)).unwrap_or(u16::MAX);
    let (resync_tx, resync_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        recorder: EventSink::new(client.clone(), REPORTING_CONTROLLER).with_max_in_flight(EVENT_WRITES),
        client,
        opts,
        jobs,
        index,
        failures: Mutex::default(),
        skew,
        written,
        triggers,
        gate,
        deferred: Deferred::default(),
        resync: resync_tx,
        prepared: prepared.clone(),
    });
    let controller = Controller::for_stream(cj_stream, cj_store.clone())
        .reconcile_on(tokio_stream::wrappers::UnboundedReceiverStream::new(resync_rx))
        .watches_shared_stream(job_stream, move |job: Arc<Job>| {
            // resolveControllerRef: a CronJob controller of that name and uid in the cache.
            let r = job.metadata.owner_references.iter().flatten().find(|r| r.controller == Some(true))?;
            if r.kind != "CronJob" {
                return None;
            }
            let obj = ObjectRef::<CronJob>::new(&r.name).within(&job.namespace().unwrap_or_default());
            let cached = cj_store.get(&obj)?;
            (cached.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(obj)
        })
        .with_config(kube::runtime::controller::Config::default().concurrency(workers))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| async move {
            match r {
                Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(cronjob = %obj, error = %e, "error syncing CronJob, requeuing")
                }
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) | Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "CronJob controller error"),
            }
        });
    tokio::select! {
        () = controller => {}
        () = write_deferred(ctx.clone()) => {}
        () = prepare_ahead(ctx.prepared.clone(), ctx.written.clone(), ctx.opts.clock.clone()) => {}
    }
    // Shut down: what is still deferred is written now.
    for key in ctx.deferred.keys() {
        flush(&ctx, &key).await;
    }
}

/// Performs the deferred writes as the [`Gate`] lets them go, [`WRITERS`] at a time (never
/// ends; dropped with the controller).
async fn write_deferred(ctx: Arc<Ctx>) {
    let Some(mut queue) = ctx.deferred.receiver() else { return };
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(()) = running.next(), if !running.is_empty() => {}
            key = queue.recv(), if running.len() < WRITERS => {
                let Some(key) = key else { return };
                // Flushed by a sync meanwhile (if queued again, the new entry is on the queue too).
                let Some(queued) = ctx.deferred.queued_at(&key) else { continue };
                let ctx = ctx.clone();
                running.push(async move {
                    ctx.gate.wait(queued + MAX_DEFER).await;
                    flush(&ctx, &key).await;
                });
            }
        }
    }
}

/// Performs the deferred write of `key` now, or waits for it if it is being performed.
async fn flush(ctx: &Ctx, key: &(String, String)) {
    if let Some(mut taken) = ctx.deferred.take(key).await
        && let Some(w) = taken.write()
    {
        perform(ctx, key, w).await;
    }
}

/// One sync's deferred events and status write. A failed write syncs the CronJob again.
async fn perform(ctx: &Ctx, key: &(String, String), w: StatusWrite) {
    let uid = w.read.metadata.uid.clone().unwrap_or_default();
    ctx.recorder.publish(event_ref(&w.read), &uid, w.events);
    if let Some(status) = &w.status {
        ctx.triggers.writing(&w.read, status);
        match replace_status(&ctx.client, key, &w.read, status).await {
            Ok(Lean(after)) => {
                if let Some(slot) = w.next_slot {
                    // The CronJob as written (the next sync reads this version), for its next slot.
                    ctx.prepared.prepare(&after, slot, (ctx.opts.clock)());
                }
                ctx.written.wrote(&w.read, after)
            }
            Err(e) if is_status(&e, 404) => {}
            Err(e) => {
                tracing::warn!(cronjob = %format!("{}/{}", key.0, key.1), error = %e, "updating a CronJob's status failed, re-syncing");
                let e = Error::Kube(e);
                if let Some(m) = &ctx.opts.metrics {
                    m.record_error(format!("cronjob_{}", e.metric_label()));
                }
                let delay = retry_delay(&w.read, &e, ctx);
                let (tx, obj) = (ctx.resync.clone(), ObjectRef::from_obj(&*w.read));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(obj);
                });
            }
        }
    }
    ctx.triggers.done_creating(key);
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<KubeAction, Error> {
    let started = std::time::Instant::now();
    let key = (cj.namespace().unwrap_or_default(), cj.name_any());
    ctx.gate.started(&key);
    // The previous sync's status write goes before this sync reads. Both futures are boxed: the
    // sync's state is kilobytes (CronJobs, a Job, requests), and kube-runtime moves this future
    // into a task of its own per sync, copying all of it each time if it were inline.
    Box::pin(flush(&ctx, &key)).await;
    let cj = ctx.written.latest(cj);
    let result = Box::pin(sync_cronjob(&cj, &ctx)).await;
    // The sync named the wall-clock time to wake at; kube-runtime's timer counts the requeue from
    // when this future ends, so it is measured from now, not from when the sync decided.
    let result = result.map(|wake| wake.map(|at| requeue_in(at, (ctx.opts.clock)())));
    if let Ok(Some(after)) = &result {
        ctx.gate.expect(key, tokio::time::Instant::now() + *after);
    }
    let result = result.map(|after| after.map_or_else(KubeAction::await_change, KubeAction::requeue));
    if let Some(m) = &ctx.opts.metrics {
        let outcome = match &result {
            Ok(a) if *a == KubeAction::await_change() => ReconcileResult::Success,
            Ok(_) => ReconcileResult::RequeueAfter,
            Err(e) => {
                m.record_error(format!("cronjob_{}", e.metric_label()));
                ReconcileResult::Error
            }
        };
        m.record_reconcile(outcome, started.elapsed());
    }
    if result.is_ok()
        && let Some(uid) = cj.metadata.uid.as_deref()
    {
        ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }
    result
}

/// How long from `now` until `wake` (nothing if it has passed). A timer that fires a little before
/// the wall clock reads `wake` is harmless: the sync then finds the slot not yet due and asks for
/// the remainder ([`sync::requeue_after`]); it never starts a slot early.
pub fn requeue_in(wake: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (wake - now).to_std().unwrap_or(Duration::ZERO)
}

/// `now + after`, the wall-clock time a requeue of `after` at `now` names.
fn wake_at(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(after).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Upstream's per-item rate limiter: 5 ms doubling per failure, at most 1000 s.
fn error_policy(cj: Arc<CronJob>, err: &Error, ctx: Arc<Ctx>) -> KubeAction {
    KubeAction::requeue(retry_delay(&cj, err, &ctx))
}

/// When to sync `cj` again after `err` (a conflict: soon; otherwise [`error_policy`]'s backoff).
fn retry_delay(cj: &CronJob, err: &Error, ctx: &Ctx) -> Duration {
    if err.metric_label() == "conflict" {
        return Duration::from_millis(50);
    }
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
    let n = failures.entry(uid).or_insert(0);
    *n = n.saturating_add(1);
    Duration::from_millis(5).saturating_mul(1u32 << (*n - 1).min(20)).min(Duration::from_secs(1000))
}

/// One sync (upstream's `sync`): cleanup, reconcile the Jobs, decide, act, one status write
/// (deferred behind the tick's creates). `Some(t)`: sync again when the clock reads `t`.
async fn sync_cronjob(cj: &Arc<CronJob>, ctx: &Ctx) -> Result<Option<DateTime<Utc>>, Error> {
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    // Made when needed: a slot's sync calls neither.
    let jobs_api = || Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Arc<Job>> = ctx
        .index
        .get(&ns, &name)
        .iter()
        .filter_map(|j| ctx.jobs.get(&ObjectRef::new(j).within(&ns)))
        .filter(|j| controller_name(j) == Some(name.as_str()))
        .collect();
    let jobs: Vec<&Job> = owned.iter().map(|j| j.as_ref()).collect();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut events: Vec<JobEvent> = vec![];
    let mut update = false;

    // cleanupFinishedJobs
    for job in history_to_delete(cj, &jobs) {
        match delete_job(&jobs_api(), job).await {
            Ok(()) => {
                remove_active(&mut status, job.metadata.uid.as_deref().unwrap_or_default());
                events.push(JobEvent::normal("SuccessfulDelete", &format!("Deleted job {}", job.name_any())));
                update = true;
            }
            Err(e) => {
                tracing::warn!(job = %job.name_any(), error = %e, "deleting a CronJob's old Job failed");
                events.push(JobEvent::warning("FailedDelete", &format!("Deleted job: {}", err_text(&e))));
            }
        }
    }

    let outcome = sync_jobs_and_start(cj, ctx, &jobs, &mut status, &mut events, &mut update).await;
    let next_slot = outcome.as_ref().ok().copied().flatten();
    let status = update.then_some(status);
    let key = (ns, name);
    if status.is_none() && events.is_empty() {
        ctx.triggers.done_creating(&key);
    } else {
        // A no-op: the sync flushed its CronJob's earlier write before it read.
        flush(ctx, &key).await;
        ctx.deferred.defer(key, StatusWrite { read: cj.clone(), status, events, next_slot });
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn sync_jobs_and_start(
    cj: &CronJob,
    ctx: &Ctx,
    jobs: &[&Job],
    status: &mut k8s_openapi::api::batch::v1::CronJobStatus,
    events: &mut Vec<JobEvent>,
    update: &mut bool,
) -> Result<Option<DateTime<Utc>>, Error> {
    let now = (ctx.opts.clock)();
    let ns = cj.namespace().unwrap_or_default();
    let jobs_api = || Api::<Job>::namespaced(ctx.client.clone(), &ns);
    let name = cj.name_any();
    let observed = observe_jobs(status, jobs);
    *update |= observed.changed;
    events.extend(observed.events);
    for (job, uid) in &observed.unexpected {
        // The cached status may lag our own write: ask the API server before warning.
        let fresh = Api::<CronJob>::namespaced(ctx.client.clone(), &ns).get(&name).await?;
        if fresh.status.as_ref().is_some_and(|s| sync::in_active(s, uid)) {
            continue;
        }
        events.push(JobEvent::warning(
            "UnexpectedJob",
            &format!("Saw a job that the controller did not create or forgot: {job}"),
        ));
    }
    for r in &observed.missing {
        let job = r.name.clone().unwrap_or_default();
        // Missing from the cache only when the API server still has it.
        if jobs_api().get_opt(&job).await?.is_none() {
            events.push(JobEvent::normal("MissingJob", &format!("Active job went missing: {job}")));
            remove_active(status, r.uid.as_deref().unwrap_or_default());
            *update = true;
        }
    }
    // The CronJob as read, with the status as reconciled so far.
    let decision = ctx.prepared.with_memo(cj, |memo| decide_memo(cj, Some(&*status), now, ctx.opts.local, memo));
    events.extend(decision.events);
    let (scheduled, replace, schedule, next) = match decision.action {
        Action::AwaitChange => return Ok(None),
        Action::Requeue(d) => {
            let wake = wake_at(now, d);
            // The slot it sleeps until (the requeue is that slot): if near ([`PREPARE_AHEAD`]),
            // its Job's create body is made now, before the slot, for the CronJob as read; or, if
            // this sync writes the status (a new resourceVersion), for the CronJob as written,
            // once written ([`perform`]).
            if !*update && !ctx.prepared.is_prepared(cj, wake) {
                ctx.prepared.prepare(cj, wake, now);
            }
            return Ok(Some(wake));
        }
        Action::Start { scheduled, replace, schedule, next } => (scheduled, replace, schedule, next),
    };
    if replace {
        for r in status.active.clone().unwrap_or_default() {
            let job_name = r.name.clone().unwrap_or_default();
            let job = match jobs_api().get(&job_name).await {
                Ok(j) => j,
                Err(e) => {
                    events.push(JobEvent::warning("FailedGet", &format!("Get job: {}", err_text(&e))));
                    return Err(e.into());
                }
            };
            match delete_job(&jobs_api(), &job).await {
                Ok(()) => {
                    remove_active(status, job.metadata.uid.as_deref().unwrap_or_default());
                    events.push(JobEvent::normal("SuccessfulDelete", &format!("Deleted job {job_name}")));
                    *update = true;
                }
                Err(e) => {
                    events.push(JobEvent::warning("FailedDelete", &format!("Deleted job: {}", err_text(&e))));
                    return Err(Error::Replace(format!("{}/{job_name}", cj.namespace().unwrap_or_default())));
                }
            }
        }
    }
    let job_name = sync::job_name(cj, scheduled);
    // The body prepared before the slot, if made of this very CronJob for this slot.
    let body = ctx.prepared.take_create(cj, scheduled);
    let body = match body {
        Some(body) => body,
        None => create_body(cj, scheduled).map_err(kube::Error::SerdeError)?,
    };
    ctx.triggers.creating(&(ns.clone(), name.clone()), &job_name);
    let creating = ctx.gate.creating();
    let created = create_job(&ctx.client, &ns, body).await;
    drop(creating);
    let created = match created {
        Ok(job) => {
            let created_at = job.metadata.creation_timestamp.as_ref().map(crate::job::pods::to_chrono);
            if let (Some(h), Some(at)) = (&ctx.skew, created_at) {
                h.observe((at - scheduled).num_milliseconds() as f64 / 1000.0);
            }
            // Upstream logs each create at V(4).
            tracing::debug!(cronjob = %format!("{}/{name}", cj.namespace().unwrap_or_default()), job = %job_name, "created Job");
            events.push(JobEvent::normal("SuccessfulCreate", &format!("Created job {job_name}")));
            job
        }
        Err(e) if is_status(&e, 409) => {
            // Created before (by us, with the status write lost) or by someone else.
            let job = jobs_api().get(&job_name).await?;
            let ours = job
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && Some(&r.uid) == cj.metadata.uid.as_ref());
            if !ours || sync::in_active(status, job.metadata.uid.as_deref().unwrap_or_default()) {
                return Ok(None);
            }
            tracing::info!(job = %job_name, "Job already exists");
            job
        }
        Err(e) if namespace_terminating(&e) => return Err(e.into()),
        Err(e) => {
            events.push(JobEvent::warning("FailedCreate", &format!("Error creating job: {}", err_text(&e))));
            return Err(e.into());
        }
    };
    status.active.get_or_insert_with(Vec::new).push(job_ref(&created));
    status.last_schedule_time = Some(crate::job::pods::to_time(scheduled));
    *update = true;
    Ok(sync::requeue_after_start(cj, status, now, &schedule, next).map(|d| wake_at(now, d)))
}

/// A request body serialized from borrowed parts, as the whole object serializes (no copy of the
/// object is made for it): a Job create ([`Body::job`]) and a CronJob status write
/// ([`Body::cronjob_status`]).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a, Spec, Status> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<&'a Spec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Status>,
}

/// The body of a CronJob status write: the CronJob as the sync read it with the new `status`.
type StatusBody<'a> = Body<'a, k8s_openapi::api::batch::v1::CronJobSpec, CronJobStatus>;

impl<'a> StatusBody<'a> {
    fn cronjob_status(read: &'a CronJob, status: &'a CronJobStatus) -> Self {
        Body {
            api_version: "batch/v1",
            kind: "CronJob",
            metadata: &read.metadata,
            spec: read.spec.as_ref(),
            status: Some(status),
        }
    }
}

/// The body of a Job create: [`sync::job_from_template`]'s Job, serialized from the CronJob's own
/// `spec.jobTemplate.spec` instead of a copy of it.
type JobBody<'a> = Body<'a, k8s_openapi::api::batch::v1::JobSpec, k8s_openapi::api::batch::v1::JobStatus>;

impl<'a> JobBody<'a> {
    fn job(
        metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        spec: Option<&'a k8s_openapi::api::batch::v1::JobSpec>,
    ) -> Self {
        Body { api_version: "batch/v1", kind: "Job", metadata, spec, status: None }
    }
}

/// `PUT .../cronjobs/NAME/status` of `read` with `status` (`Api::replace_status`), the answer
/// decoded without managedFields, as the watch's copies are.
async fn replace_status(
    client: &Client,
    (ns, name): &(String, String),
    read: &CronJob,
    status: &CronJobStatus,
) -> Result<Lean<CronJob>, kube::Error> {
    let body = serde_json::to_vec(&StatusBody::cronjob_status(read, status)).map_err(kube::Error::SerdeError)?;
    let mut req = kube::core::Request::new(<CronJob as kube::Resource>::url_path(&(), Some(ns)))
        .replace_subresource("status", name, &PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("replace_status");
    client.request::<Lean<CronJob>>(req).await
}

/// What the sync reads of the Job it created.
#[derive(serde::Deserialize)]
struct Created {
    metadata: CreatedMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// The body of the create of `cj`'s Job for `slot`: [`sync::job_from_template`]'s Job as JSON.
fn create_body(cj: &CronJob, slot: DateTime<Utc>) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&JobBody::job(&sync::job_metadata(cj, slot), sync::job_spec(cj)))
}

/// `POST` the Job (`body`, a [`JobBody`]), as `Api::create` does, decoding from the answer only what
/// the sync uses (the whole Job, managedFields and all, is a good part of the controller's CPU at
/// a busy tick).
async fn create_job(client: &Client, ns: &str, body: Vec<u8>) -> Result<Job, kube::Error> {
    let req = kube::core::Request::new(<Job as kube::Resource>::url_path(&(), Some(ns)))
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    let Created { metadata: m } = client.request::<Created>(req).await?;
    let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        ..Default::default()
    };
    Ok(Job { metadata, ..Default::default() })
}

/// Whether a create failed because the namespace is being deleted (upstream's
/// `NamespaceTerminatingCause`).
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("because it is being terminated"))
}

/// Deletes a Job with Background propagation, as upstream's `jobControl.DeleteJob`.
async fn delete_job(api: &Api<Job>, job: &Job) -> Result<(), kube::Error> {
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    api.delete(&job.name_any(), &dp).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, owner: Option<&str>) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.namespace = Some("ns".into());
        j.metadata.owner_references = owner.map(|o| {
            vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                kind: "CronJob".into(),
                name: o.into(),
                controller: Some(true),
                ..Default::default()
            }]
        });
        j
    }

    fn cj(rv: &str, last: Option<&str>) -> Arc<CronJob> {
        let mut c = CronJob::default();
        c.metadata.uid = Some("u".into());
        c.metadata.resource_version = Some(rv.into());
        c.status = Some(k8s_openapi::api::batch::v1::CronJobStatus {
            last_schedule_time: last.map(|t| crate::job::pods::to_time(t.parse().unwrap())),
            ..Default::default()
        });
        Arc::new(c)
    }

    #[test]
    fn the_create_body_is_the_job_from_the_template() {
        let cj: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
            "spec": {"schedule": "*/1 * * * *", "timeZone": "Europe/Paris", "jobTemplate": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"n": "v"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "args": ["x"]}]}}}}}
        }))
        .unwrap();
        let at = "2024-03-31T00:59:00Z".parse().unwrap();
        let want = serde_json::to_value(sync::job_from_template(&cj, at)).unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&create_body(&cj, at).unwrap()).unwrap(), want);
        let metadata = sync::job_metadata(&cj, at);
        let body = JobBody::job(&metadata, sync::job_spec(&cj));
        assert_eq!(serde_json::to_value(&body).unwrap(), want);
        assert_eq!(want["spec"]["backoffLimit"], 2, "{want}");
        // Without a template spec, none is sent (as the whole Job serializes it).
        let mut bare = cj.clone();
        bare.spec.as_mut().unwrap().job_template.spec = None;
        let metadata = sync::job_metadata(&bare, at);
        let body = JobBody::job(&metadata, sync::job_spec(&bare));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::to_value(sync::job_from_template(&bare, at)).unwrap()
        );
    }

    #[test]
    fn the_status_body_is_the_cronjob_with_the_new_status() {
        let read: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"a": "b"}, "annotations": {"n": "v"}},
            "spec": {"schedule": "*/1 * * * *", "timeZone": "Europe/Paris", "jobTemplate": {
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}]}}}}},
            "status": {"lastScheduleTime": "2024-03-31T00:58:00Z"}
        }))
        .unwrap();
        let status = CronJobStatus {
            active: Some(vec![ObjectReference {
                name: Some("c-1".into()),
                uid: Some("j".into()),
                ..Default::default()
            }]),
            last_schedule_time: Some(crate::job::pods::to_time("2024-03-31T00:59:00Z".parse().unwrap())),
            ..Default::default()
        };
        for read in [read.clone(), CronJob { spec: None, ..read }] {
            let mut copy = read.clone();
            copy.status = Some(status.clone());
            let body = serde_json::to_vec(&StatusBody::cronjob_status(&read, &status)).unwrap();
            assert_eq!(String::from_utf8(body).unwrap(), serde_json::to_string(&copy).unwrap());
        }
    }

    #[test]
    fn a_sync_before_the_watch_caught_up_sees_our_own_write() {
        let w = Written::default();
        assert_eq!(w.latest(cj("1", None)).metadata.resource_version.as_deref(), Some("1"), "nothing written");
        w.wrote(&cj("1", None), (*cj("2", Some("2024-01-01T10:00:00Z"))).clone());
        // The cache still has version 1: the sync starts from version 2, with the slot recorded.
        let seen = w.latest(cj("1", None));
        assert_eq!(seen.metadata.resource_version.as_deref(), Some("2"));
        assert!(seen.status.as_ref().unwrap().last_schedule_time.is_some());
        // The cache moved on (our write, or anyone's): the cache wins and the entry goes.
        assert_eq!(w.latest(cj("3", None)).metadata.resource_version.as_deref(), Some("3"));
        assert_eq!(w.latest(cj("1", None)).metadata.resource_version.as_deref(), Some("1"));
    }

    #[test]
    fn index_follows_controller_changes_deletes_and_relists() {
        let idx = JobIndex::default();
        idx.apply(&watcher::Event::Apply(Arc::new(job("a-1", Some("a")))));
        idx.apply(&watcher::Event::Apply(Arc::new(job("a-2", Some("a")))));
        idx.apply(&watcher::Event::Apply(Arc::new(job("manual", None))));
        assert_eq!(idx.get("ns", "a"), ["a-1", "a-2"]);
        idx.apply(&watcher::Event::Apply(Arc::new(job("a-2", Some("b")))));
        assert_eq!((idx.get("ns", "a"), idx.get("ns", "b")), (vec!["a-1".to_string()], vec!["a-2".to_string()]));
        idx.apply(&watcher::Event::Delete(Arc::new(job("a-1", Some("a")))));
        assert!(idx.get("ns", "a").is_empty());
        // A relist replaces everything once done; until then the old index serves.
        idx.apply(&watcher::Event::Init);
        idx.apply(&watcher::Event::InitApply(Arc::new(job("c-1", Some("c")))));
        assert_eq!(idx.get("ns", "b"), ["a-2"]);
        idx.apply(&watcher::Event::InitDone);
        assert!(idx.get("ns", "b").is_empty());
        assert_eq!(idx.get("ns", "c"), ["c-1"]);
        assert!(idx.get("other", "c").is_empty());
        // A re-list that finds a new Job under an old name: the shared informer's Delete of the
        // old one comes before the InitDone and must not drop the new one.
        idx.apply(&watcher::Event::Init);
        idx.apply(&watcher::Event::InitApply(Arc::new(job("c-1", Some("d")))));
        idx.apply(&watcher::Event::Delete(Arc::new(job("c-1", Some("c")))));
        idx.apply(&watcher::Event::InitDone);
        assert_eq!(idx.get("ns", "d"), ["c-1"]);
        assert!(idx.get("ns", "c").is_empty());
    }

    /// A CronJob `name` of `uid` at resourceVersion 1, every five minutes in UTC.
    fn named(name: &str, uid: &str) -> CronJob {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "1",
                "creationTimestamp": "2026-12-07T15:57:00Z"},
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "jobTemplate": {
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}]}}}}}
        }))
        .unwrap()
    }

    const UTC: Zone = Zone::Named(chrono_tz::UTC);

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    /// The CronJob watch as the controller sees it: each event applied to the reflector's store,
    /// then to the controller's state.
    struct Watch {
        writer: reflector::store::Writer<CronJob>,
        triggers: Triggers,
        written: Written,
        gate: Gate,
        prepared: PreparedMap,
    }

    impl Watch {
        fn new() -> Self {
            let (store, writer) = reflector::store::<CronJob>();
            let (triggers, written, gate) = Default::default();
            Self { writer, triggers, written, gate, prepared: PreparedMap::new(store) }
        }

        /// A watch whose store holds one CronJob, `a` (uid `ua`), given back with it.
        fn holding_a() -> (Self, CronJob) {
            let mut w = Self::new();
            let a = named("a", "ua");
            w.feed(watcher::Event::Apply(a.clone()));
            (w, a)
        }

        fn feed(&mut self, ev: watcher::Event<CronJob>) -> bool {
            self.writer.apply_watcher_event(&ev);
            on_cronjob_event(&ev, &self.triggers, &self.written, &self.gate, &self.prepared)
        }
    }

    #[test]
    fn a_relist_drops_what_is_kept_for_cronjobs_deleted_while_unwatched() {
        let mut w = Watch::new();
        let (a, b) = (named("a", "ua"), named("b", "ub"));
        let (now, slot) = (at("2026-12-07T15:59:58Z"), at("2026-12-07T16:00:00Z"));
        assert!(w.feed(watcher::Event::Apply(a.clone())));
        assert!(w.feed(watcher::Event::Apply(b.clone())));
        w.prepared.prepare(&a, slot, now);
        w.prepared.prepare(&b, slot, now);
        assert_eq!(w.prepared.len(), 2);
        // The watch was down while b was deleted: the relist shows a only, and no Delete of b.
        w.feed(watcher::Event::Init);
        w.feed(watcher::Event::InitApply(a.clone()));
        assert_eq!(w.prepared.len(), 2, "until the relist is done");
        w.feed(watcher::Event::InitDone);
        assert_eq!(w.prepared.len(), 1);
        assert!(w.prepared.is_prepared(&a, slot) && !w.prepared.is_prepared(&b, slot));
        w.feed(watcher::Event::Delete(a.clone()));
        assert_eq!(w.prepared.len(), 0);
    }

    #[test]
    fn a_sync_racing_the_delete_of_its_cronjob_keeps_nothing_for_it() {
        let mut w = Watch::new();
        let a = named("a", "ua");
        let (now, slot) = (at("2026-12-07T15:59:58Z"), at("2026-12-07T16:00:00Z"));
        w.feed(watcher::Event::Apply(a.clone()));
        // The Delete arrives while a sync decides (its memo taken out); the sync then puts the memo
        // back and prepares the slot it sleeps until (or its status write does).
        let decision = w.prepared.with_memo(&a, |memo| {
            let d = decide_memo(&a, a.status.as_ref(), now, UTC, memo);
            w.writer.apply_watcher_event(&watcher::Event::Delete(a.clone()));
            on_cronjob_event(&watcher::Event::Delete(a.clone()), &w.triggers, &w.written, &w.gate, &w.prepared);
            d
        });
        assert!(matches!(decision.action, Action::Requeue(d) if d == Duration::from_secs(2)));
        assert_eq!(w.prepared.len(), 0, "the memo put back after the Delete");
        w.prepared.prepare(&a, slot, now);
        assert_eq!(w.prepared.len(), 0, "the create prepared after the Delete");
        assert!(w.prepared.take_create(&a, slot).is_none());
        let far = slot + chrono::Duration::minutes(10);
        w.prepared.prepare(&a, far, now);
        assert_eq!(w.prepared.next_due(), None, "no far slot kept for later after the Delete");
        // A new CronJob of the same name is another uid: the old one's syncs keep nothing for it.
        let a2 = named("a", "ua2");
        w.feed(watcher::Event::Apply(a2.clone()));
        w.prepared.prepare(&a, slot, now);
        w.prepared.prepare(&a, far, now);
        assert_eq!((w.prepared.len(), w.prepared.next_due()), (0, None));
        w.prepared.prepare(&a2, slot, now);
        assert!(w.prepared.is_prepared(&a2, slot));
        w.prepared.prepare(&a2, far, now);
        assert_eq!(w.prepared.next_due(), Some(prepare_at(far)), "the new CronJob's far slot is kept");
    }

    #[test]
    fn a_create_body_is_kept_only_for_a_slot_within_the_horizon() {
        let (w, a) = Watch::holding_a();
        let now = at("2026-12-07T15:58:00Z");
        let (far, near) = (now + chrono::Duration::hours(1), now + chrono::Duration::seconds(5));
        // An hour ahead: the memo only.
        w.prepared.prepare(&a, far, now);
        assert_eq!(w.prepared.len(), 1);
        assert!(!w.prepared.is_prepared(&a, far));
        assert!(w.prepared.take_create(&a, far).is_none());
        // Within the horizon: the body, exactly what the slot's sync would make itself.
        w.prepared.prepare(&a, near, now);
        assert!(w.prepared.is_prepared(&a, near));
        assert_eq!(w.prepared.take_create(&a, near), Some(create_body(&a, near).unwrap()));
        assert!(w.prepared.take_create(&a, near).is_none(), "sent once");
        // A body kept is dropped when the next slot prepared is a distant one.
        w.prepared.prepare(&a, near, now);
        w.prepared.prepare(&a, far, now);
        assert!(!w.prepared.is_prepared(&a, near) && w.prepared.take_create(&a, near).is_none());
        // A slot already due is near.
        w.prepared.prepare(&a, now, now + chrono::Duration::milliseconds(3));
        assert!(w.prepared.is_prepared(&a, now));
    }

    #[test]
    fn a_far_slot_is_kept_for_later_and_comes_due_prepare_ahead_before_it() {
        let (mut w, a) = Watch::holding_a();
        let now = at("2026-12-07T15:59:00Z");
        let slot = at("2026-12-07T16:00:00Z");
        w.prepared.prepare(&a, slot, now);
        assert!(!w.prepared.is_prepared(&a, slot), "a minute ahead: not made now");
        w.prepared.prepare(&a, slot, now + chrono::Duration::seconds(1));
        let due_at = at("2026-12-07T15:59:55Z");
        assert_eq!(w.prepared.next_due(), Some(due_at), "kept once, due PREPARE_AHEAD before the slot");
        assert!(w.prepared.due(due_at - chrono::Duration::nanoseconds(1), 256).is_empty());
        let key = ("ns".to_string(), "a".to_string());
        assert_eq!(w.prepared.due(due_at, 256), [(slot, key)]);
        assert_eq!((w.prepared.next_due(), w.prepared.due(slot, 256).len()), (None, 0), "taken once");
        // A near slot is made at once and not kept for later.
        w.prepared.prepare(&a, slot, due_at);
        assert!(w.prepared.is_prepared(&a, slot));
        assert_eq!(w.prepared.next_due(), None);
        // One slot per CronJob: a later naming replaces the earlier one.
        w.prepared.prepare(&a, slot + chrono::Duration::minutes(5), now);
        w.prepared.prepare(&a, slot + chrono::Duration::minutes(1), now);
        assert_eq!(w.prepared.next_due(), Some(due_at + chrono::Duration::minutes(1)));
        assert_eq!(w.prepared.due(slot + chrono::Duration::hours(1), 256).len(), 1);
        // The batch bound.
        let named_i: Vec<CronJob> = (0..5).map(|i| named(&format!("b{i}"), &format!("ub{i}"))).collect();
        for b in &named_i {
            w.feed(watcher::Event::Apply(b.clone()));
            w.prepared.prepare(b, slot + chrono::Duration::minutes(1), now);
        }
        assert_eq!(w.prepared.due(slot + chrono::Duration::hours(1), 3).len(), 3);
        assert_eq!(w.prepared.due(slot + chrono::Duration::hours(1), 3).len(), 2);
        // What is kept for later goes with its CronJob: on its Delete, and on a relist without it.
        for b in &named_i {
            w.prepared.prepare(b, slot + chrono::Duration::minutes(1), now);
        }
        w.feed(watcher::Event::Delete(named_i[0].clone()));
        w.feed(watcher::Event::Init);
        for b in &named_i[..3] {
            w.feed(watcher::Event::InitApply(b.clone()));
        }
        w.feed(watcher::Event::InitDone);
        let left: Vec<String> =
            w.prepared.due(slot + chrono::Duration::hours(1), 256).into_iter().map(|(_, (_, n))| n).collect();
        assert_eq!(left, ["b1", "b2"]);
    }

    #[test]
    fn a_slot_kept_for_later_wakes_the_preparer_only_when_it_comes_first() {
        let mut l = Later::default();
        let key = |n: &str| ("ns".to_string(), n.to_string());
        let t = at("2026-12-07T16:00:00Z");
        assert!(l.insert(t, key("a")), "the first");
        assert!(!l.insert(t + chrono::Duration::minutes(1), key("b")), "after the first");
        assert!(!l.insert(t, key("c")), "at the first's time: already awake for it");
        assert!(l.insert(t - chrono::Duration::seconds(1), key("b")), "moved before the first");
        assert_eq!(l.by_time.len(), 3, "b's earlier slot replaced");
        l.remove(&key("b"));
        assert_eq!((l.by_time.len(), l.by_key.len()), (2, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prepare_ahead_makes_the_body_of_the_cronjob_as_the_slots_sync_will_read_it() {
        let (mut w, a) = Watch::holding_a();
        let slot = at("2026-12-07T16:00:00Z");
        let offset = Arc::new(std::sync::atomic::AtomicI64::new(-60_000));
        let clock: Clock = {
            let o = offset.clone();
            Arc::new(move || slot + chrono::Duration::milliseconds(o.load(std::sync::atomic::Ordering::SeqCst)))
        };
        // Our status write (version 2) is not in the cache yet: the slot's sync will read it.
        let mut ours = a.clone();
        ours.metadata.resource_version = Some("2".into());
        let written = Arc::new(Written::default());
        written.wrote(&a, ours.clone());
        let prepared = Arc::new(std::mem::replace(&mut w.prepared, PreparedMap::new(reflector::store().0)));
        prepared.prepare(&ours, slot, clock());
        assert!(!prepared.is_prepared(&ours, slot));
        let task = tokio::spawn(prepare_ahead(prepared.clone(), written, clock.clone()));
        // The clock reaches PREPARE_AHEAD before the slot (the task sleeps a minute on its own
        // timer: woken by hand, as a later slot kept would wake it).
        offset.store(-5_000, std::sync::atomic::Ordering::SeqCst);
        prepared.added.notify_one();
        tokio::time::timeout(Duration::from_secs(60), async {
            while !prepared.is_prepared(&ours, slot) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("prepared");
        assert!(!prepared.is_prepared(&a, slot), "made of the cached version, not ours");
        assert_eq!(prepared.take_create(&ours, slot), Some(create_body(&ours, slot).unwrap()));
        task.abort();
    }

    /// The preparer sleeps towards the first slot kept for later; a slot that comes before it,
    /// kept meanwhile, wakes it (else it would be made only at the later slot's time).
    #[tokio::test(flavor = "current_thread")]
    async fn an_earlier_slot_kept_while_the_preparer_sleeps_on_a_later_one_is_prepared_in_time() {
        let mut w = Watch::new();
        let (a, b) = (named("a", "ua"), named("b", "ub"));
        w.feed(watcher::Event::Apply(a.clone()));
        w.feed(watcher::Event::Apply(b.clone()));
        let t0 = at("2026-12-07T15:00:00Z");
        let start = std::time::Instant::now();
        let clock: Clock = Arc::new(move || t0 + chrono::Duration::from_std(start.elapsed()).unwrap_or_default());
        let prepared = Arc::new(std::mem::replace(&mut w.prepared, PreparedMap::new(reflector::store().0)));
        let far = t0 + chrono::Duration::hours(1);
        prepared.prepare(&a, far, clock());
        let task = tokio::spawn(prepare_ahead(prepared.clone(), Arc::new(Written::default()), clock.clone()));
        // One thread: the preparer runs until it sleeps towards the far slot.
        tokio::task::yield_now().await;
        // Made 2 s from now (PREPARE_AHEAD before it), not now.
        let now = clock();
        let near = now + chrono::Duration::from_std(PREPARE_AHEAD).unwrap_or_default() + chrono::Duration::seconds(2);
        prepared.prepare(&b, near, now);
        assert!(!prepared.is_prepared(&b, near), "kept for later");
        tokio::time::timeout(Duration::from_secs(60), async {
            while !prepared.is_prepared(&b, near) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the earlier slot is made before the far one's time");
        assert!(!prepared.is_prepared(&a, far), "the far slot is still an hour ahead");
        task.abort();
    }

    #[test]
    fn a_decision_runs_with_the_map_unlocked_and_its_memo_is_put_back() {
        let (w, a) = Watch::holding_a();
        let now = at("2026-12-07T15:59:58Z");
        let p = &w.prepared;
        let d = p.with_memo(&a, |memo| {
            assert!(p.inner.try_lock().is_ok(), "the map is locked while deciding");
            decide_memo(&a, a.status.as_ref(), now, UTC, memo)
        });
        let fresh = decide_memo(&a, a.status.as_ref(), now, UTC, &mut sync::Memo::default());
        assert_eq!(format!("{:?}", d.action), format!("{:?}", fresh.action));
        let kept = format!("{:?}", p.lock()["ua"].memo);
        assert_ne!(kept, format!("{:?}", sync::Memo::default()), "the memo was not put back");
    }

    #[test]
    fn a_requeue_round_trips_the_slot_and_is_nothing_once_it_is_due() {
        let slot = at("2026-12-07T16:00:00Z");
        let ns = chrono::Duration::nanoseconds;
        for now in [slot - ns(1), slot - ns(1_500_000_123), slot - chrono::Duration::days(1) + ns(7)] {
            let after = requeue_in(slot, now);
            assert_eq!(now + chrono::Duration::from_std(after).unwrap(), slot);
            assert_eq!(wake_at(now, after), slot, "from {now}");
        }
        for now in [slot, slot + ns(1), slot + chrono::Duration::hours(1)] {
            assert_eq!(requeue_in(slot, now), Duration::ZERO, "at {now}");
            assert_eq!(wake_at(now, Duration::ZERO), now);
        }
        assert_eq!(wake_at(slot, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        // Through the decisions, as a sync uses them: the sync before the slot names the slot; the
        // requeue is measured when the sync ends; a timer that fires early (the wall clock 1 µs short)
        // names the slot again; at the slot, the slot starts.
        let a = named("a", "ua");
        let before = slot - ns(1_500_000_123);
        let Action::Requeue(d) = sync::decide_with(&a, None, before, UTC).action else { panic!("not a requeue") };
        let wake = wake_at(before, d);
        assert_eq!(wake, slot);
        let ended = before + ns(3_000_000);
        assert_eq!(requeue_in(wake, ended), Duration::from_nanos(1_497_000_123));
        let early = slot - ns(1_000);
        let Action::Requeue(d) = sync::decide_with(&a, None, early, UTC).action else { panic!("started early") };
        assert_eq!((wake_at(early, d), requeue_in(wake_at(early, d), early)), (slot, Duration::from_micros(1)));
        assert!(
            matches!(sync::decide_with(&a, None, slot, UTC).action, Action::Start { scheduled, .. } if scheduled == slot)
        );
        assert_eq!(requeue_in(wake, slot + ns(5)), Duration::ZERO, "a late wake");
    }
}
