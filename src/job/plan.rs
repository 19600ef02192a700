//! The pure decision of one Job sync: `(job, its pods, now, config) -> Plan`.
//!
//! This is upstream's `syncJob` + `manageJob` + `trackJobStatusAndRemoveFinalizers` with every API
//! call replaced by an entry in the [`Plan`]. The shell executes the plan in this order, stopping at
//! the first failed step unless said otherwise:
//!
//! 1. [`Plan::deletions`] (all of them; a failure is reported after the other steps).
//!    When `remove_finalizer_first`, patch the finalizer away, then delete.
//! 2. [`Plan::creations`] in slow-start batches ([`slow_start_batches`]), stopping at the first
//!    batch with an error. Emit `SuccessfulCreate` / `FailedCreate` per pod ([`super::events`]).
//! 3. If [`Plan::status_changed`], write [`Plan::status`] (status subresource, *replace* with the
//!    snapshot's `resourceVersion` so a stale snapshot fails with 409 and is re-planned). If this
//!    write fails, stop: no finalizer may be removed before the UIDs are recorded.
//! 4. Remove the tracking finalizer of every [`Plan::finalizer_removals`] pod (a 404 counts as done),
//!    recording them as expected removals until the cache shows them.
//! 5. Call [`Plan::after_finalizers`] with the UIDs whose removal succeeded, and write the returned
//!    status (again with optimistic concurrency), then emit its events.
//! 6. Emit [`Plan::events`] and requeue after [`Plan::requeue_after`].
//!
//! Exactly-once counting: a finished pod's UID is written to `uncountedTerminatedPods` (or, for an
//! Indexed Job's success, its index to `completedIndexes`) *before* its finalizer is removed, and
//! moved into `succeeded`/`failed` only once the pod no longer holds the finalizer. A crash between
//! any two steps leaves either the pod with its finalizer (it is found again) or its UID in the
//! uncounted list (it is moved at the next sync), never both missing, never counted twice — provided
//! the shell passes the finalizer removals it issued and has not yet seen in
//! [`SyncContext::pending_finalizer_removals`] (a lagging cache would otherwise show a pod that was
//! already counted with its finalizer still on).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;

use super::backoff::{self, BackoffRecord};
use super::cached_pod::{CachedPod, PodFacts, ToCached};
use super::config::Config;
use super::events::JobEvent;
use super::indexes::Indexes;
use super::labels::{condition, reason};
use super::pods::{self, to_chrono, to_time};
use super::policy::{self, FailureAction};
use super::settled::Settled;
use super::status::{self, nonzero};
use super::template;

/// What the shell knows beyond the snapshot.
#[derive(Clone, Debug)]
pub struct SyncContext {
    /// Whether every pod creation and deletion the shell issued for this Job has been observed in
    /// the cache (upstream's `SatisfiedExpectations`). When false, no pod is created or deleted for
    /// scaling, and no terminal condition is declared.
    pub expectations_satisfied: bool,
    /// UIDs of pods whose finalizer removal was issued but not yet observed.
    pub pending_finalizer_removals: BTreeSet<String>,
    /// When the oldest unobserved pod operation's expectation expires (upstream's 5-minute
    /// `ExpectationsTimeout`). While expectations hold the Job back, the plan looks again then: a
    /// watch event that never comes delays the Job, it cannot stall it.
    pub expectations_expire_in: Option<Duration>,
}

impl Default for SyncContext {
    fn default() -> Self {
        Self { expectations_satisfied: true, pending_finalizer_removals: BTreeSet::new(), expectations_expire_in: None }
    }
}

/// Why the plan does (or doesn't) act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Job is reconciled.
    Sync,
    /// `spec.managedBy` names another controller: leave the Job alone.
    NotManaged,
    /// The Job already has `Complete` or `Failed`: only stray finalizers are removed.
    Finished,
    /// The spec cannot be acted on (unknown completion mode, Indexed without completions). A
    /// Warning event says why.
    Invalid(String),
}

/// A pod to create: what makes it differ from the Job's other pods. The pod itself is built from
/// the Job's template when it is created ([`PodCreation::pod`]): a sync that plans hundreds of
/// creations (a wide Job's first batches) does not hold hundreds of whole pods, each with a copy
/// of the template, while at most [`super::apply::CREATE_CONCURRENCY`] of them are in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodCreation {
    /// Its completion index, for Indexed Jobs.
    pub index: Option<i32>,
    /// The failure counts (counted, ignored) its index-failure-count annotations carry (Indexed
    /// Jobs with `backoffLimitPerIndex`: those of the pod it replaces, plus that pod's failure).
    pub failure_counts: Option<(i32, i32)>,
}

impl PodCreation {
    /// The full pod, with `generateName`, from `job` (the Job the plan was made for).
    pub fn pod(&self, job: &Job) -> Pod {
        template::pod_for(job, self.index, self.failure_counts)
    }
}

/// Why a pod is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionReason {
    /// More active pods than wanted (parallelism lowered, completions nearly reached).
    ExcessActive,
    /// The Job is suspended.
    Suspended,
    /// The Job reached a terminal state (FailureTarget / SuccessCriteriaMet).
    JobFinishing,
    /// Another active pod has the same completion index.
    DuplicateIndex,
    /// The completion index is at or above `completions` (elastic scale-down).
    IndexOutOfRange,
    /// The pod of an Indexed Job has no valid completion index.
    MissingIndex,
    /// The pod's index has failed (backoffLimitPerIndex / FailIndex).
    FailedIndex,
}

/// A pod to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodDeletion {
    /// Pod name.
    pub name: String,
    /// Pod UID (use as a delete precondition).
    pub uid: String,
    /// Why.
    pub reason: DeletionReason,
    /// Remove the tracking finalizer before deleting: the pod is dropped without being counted
    /// (scaling and suspension). False when the Job is finishing: the pod is counted by the
    /// finalizer removals of this or a later plan.
    pub remove_finalizer_first: bool,
    /// Whether the pod was Ready (for the shell's bookkeeping).
    pub ready: bool,
}

/// Why a finalizer is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerReason {
    /// The pod succeeded and is recorded in the status.
    Succeeded,
    /// The pod failed (or is terminated by a failing Job) and is recorded in the status.
    Failed,
    /// The pod's failure is ignored by the podFailurePolicy, or it is not counted for another
    /// reason (out-of-range index, Job being deleted, Job finished).
    NotCounted,
}

/// A pod whose tracking finalizer is to be removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalizerRemoval {
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// Why.
    pub reason: FinalizerReason,
}

/// The second status write, once finalizers are removed.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalWrite {
    /// The status to write.
    pub status: JobStatus,
    /// Events to emit once it is written (`Completed`, `BackoffLimitExceeded`, ...).
    pub events: Vec<JobEvent>,
}

/// Everything one sync decided. See the module docs for how to execute it.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Whether the Job is acted on at all.
    pub outcome: Outcome,
    /// Pods to delete, in removal order, at most `config.max_batch` for scaling.
    pub deletions: Vec<PodDeletion>,
    /// Pods to create, lowest index first, at most `config.max_batch`.
    pub creations: Vec<PodCreation>,
    /// The status after phase one (new uncounted UIDs, completed/failed indexes, interim
    /// conditions, counters), assuming deletions and creations succeed.
    pub status: JobStatus,
    /// Whether [`Plan::status`] differs from the Job's and must be written before any finalizer
    /// removal.
    pub status_changed: bool,
    /// Pods whose tracking finalizer to remove after [`Plan::status`] is written.
    pub finalizer_removals: Vec<FinalizerRemoval>,
    /// Events decided by this sync (suspend/resume, invalid spec).
    pub events: Vec<JobEvent>,
    /// Sync again after this long (active deadline, pod re-creation backoff).
    pub requeue_after: Option<Duration>,
    /// UIDs of pods holding the finalizer (and not pending removal) at plan time.
    uids_with_finalizer: BTreeSet<String>,
    /// The terminal condition (Complete/Failed) to add once nothing is uncounted or terminating.
    finish: Option<JobCondition>,
    /// Pods still terminating after this plan's deletions.
    terminating_after: i32,
    /// Whether the uncounted list hit its cap: more pods remain to be counted.
    reached_max_uncounted: bool,
    /// `spec.completions`, for the TooManySucceededPods check.
    completions: Option<i32>,
    /// Plan time.
    now: DateTime<Utc>,
}

impl Plan {
    fn skip(outcome: Outcome, job: &Job, now: DateTime<Utc>) -> Self {
        Plan {
            outcome,
            deletions: vec![],
            creations: vec![],
            status: job.status.clone().unwrap_or_default(),
            status_changed: false,
            finalizer_removals: vec![],
            events: vec![],
            requeue_after: None,
            uids_with_finalizer: BTreeSet::new(),
            finish: None,
            terminating_after: 0,
            reached_max_uncounted: false,
            completions: None,
            now,
        }
    }

    /// Adjusts `active` / `ready` / `terminating` of [`Plan::status`] for pod operations that
    /// failed: `not_created` creations (failed or skipped by slow start) and the deletions whose
    /// UIDs are in `not_deleted`, as upstream's `manageJob` does with its counters. If a deletion
    /// of a finishing Job failed, the shell must not go on with this plan (upstream then holds the
    /// terminal condition back): it returns the error and re-plans.
    pub fn account_pod_ops(&mut self, not_created: usize, not_deleted: &BTreeSet<String>) {
        let mut active = self.status.active.unwrap_or(0).saturating_sub(i32::try_from(not_created).unwrap_or(i32::MAX));
        let mut ready = self.status.ready.unwrap_or(0);
        let mut terminating = self.status.terminating.unwrap_or(0);
        for d in self.deletions.iter().filter(|d| not_deleted.contains(&d.uid)) {
            active += 1;
            terminating -= 1;
            if d.ready {
                ready += 1;
            }
        }
        self.status.active = nonzero(active.max(0));
        self.status.ready = Some(ready.max(0));
        self.status.terminating = Some(terminating.max(0));
        self.terminating_after = terminating.max(0);
        self.status_changed = true;
    }

    /// The terminal condition this plan will set once the Job's pods are all counted and gone.
    pub fn pending_finish(&self) -> Option<&JobCondition> {
        self.finish.as_ref()
    }

    /// Phase two: given the UIDs whose finalizer removal succeeded (404 included), the status to
    /// write next and the events to emit after it, or `None` when nothing changes. UIDs of the
    /// uncounted list whose pods no longer hold the finalizer move into `succeeded`/`failed`; if
    /// then nothing is uncounted and no pod is terminating, the terminal condition (and for
    /// `Complete`, `completionTime`) is set.
    pub fn after_finalizers(&self, removed: &BTreeSet<String>) -> Option<FinalWrite> {
        if self.outcome != Outcome::Sync {
            return None;
        }
        let mut st = self.status.clone();
        let with: BTreeSet<String> = self.uids_with_finalizer.difference(removed).cloned().collect();
        let mut changed = status::clean_uncounted(&mut st, &with);
        let mut events = vec![];
        if let Some(fin) = &self.finish
            && !self.reached_max_uncounted
            && status::uncounted_len(&st) == 0
            && self.terminating_after == 0
        {
            let conds = st.conditions.get_or_insert_with(Vec::new);
            let reason_s = fin.reason.as_deref().unwrap_or("");
            let message = fin.message.as_deref().unwrap_or("");
            status::ensure_condition(conds, &fin.type_, &fin.status, reason_s, message, self.now);
            changed = true;
            if fin.type_ == condition::COMPLETE {
                st.completion_time = Some(to_time(self.now));
                if self.completions.is_some_and(|c| st.succeeded.unwrap_or(0) > c) {
                    events.push(JobEvent::warning(
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    ));
                }
                events.push(JobEvent::normal("Completed", "Job completed"));
            } else {
                events.push(JobEvent::warning(reason_s, message));
            }
        }
        changed.then_some(FinalWrite { status: st, events })
    }
}

/// Slow-start batch sizes for `n` creations: 1, 2, 4, ... summing to `n`. The shell stops at the
/// first batch with an error and skips the rest (they are re-planned at the next sync).
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = vec![];
    let (mut left, mut size) = (n, 1usize);
    while left > 0 {
        let b = size.min(left);
        out.push(b);
        left -= b;
        size = size.saturating_mul(2);
    }
    out
}

/// Whether the finalizer of a pod whose controller is `owner` (or that has no controller, or
/// whose controller Job is gone: `None`) should be removed by the orphan handling: yes unless the
/// owner is an unfinished Job this controller manages. Pods controlled by something other than a
/// Job of either kind ([`super::kind`]), or by a Job another controller manages, are left alone.
pub fn orphan_needs_finalizer_removal<P: PodFacts + ?Sized>(pod: &P, owner: Option<&Job>, config: &Config) -> bool {
    if !pods::has_tracking_finalizer(pod) {
        return false;
    }
    let ctrl = pod.owner_references().iter().find(|r| r.controller == Some(true));
    if let Some(r) = ctrl
        && super::kind::owner_kind(r).is_none()
    {
        return false;
    }
    match (ctrl, owner) {
        (Some(r), Some(job)) if job.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
            config.manages(job) && status::is_finished(job)
        }
        _ => true,
    }
}

/// [`plan_with`] with a default context (expectations satisfied, no pending removals).
pub fn plan<P: ToCached>(job: &Job, pods: &[P], now: DateTime<Utc>, config: &Config) -> Plan {
    plan_with(job, pods, now, config, &SyncContext::default())
}

fn owned_by<'a>(job: &Job, pods: &[&'a CachedPod]) -> Vec<&'a CachedPod> {
    let uid = job.metadata.uid.as_deref();
    pods.iter()
        .copied()
        .filter(|p| match uid {
            None => true,
            Some(uid) => p.owner_references().iter().any(|r| r.controller == Some(true) && r.uid == uid),
        })
        .collect()
}

/// Everything fixed for one sync.
struct Ctx<'a> {
    job: &'a Job,
    spec: &'a JobSpec,
    config: &'a Config,
    now: DateTime<Utc>,
    indexed: bool,
    completions: Option<i32>,
    per_index: Option<i32>,
    pending_rm: &'a BTreeSet<String>,
}

impl Ctx<'_> {
    fn valid_index(&self, p: &CachedPod) -> Option<i32> {
        pods::completion_index(p).filter(|ix| *ix < self.completions.unwrap_or(0))
    }

    /// Pods that hold the finalizer, are not pending removal and (Indexed) have a valid index.
    fn is_tracked(&self, p: &CachedPod) -> bool {
        pods::has_tracking_finalizer(p)
            && !self.pending_rm.contains(pods::uid(p))
            && (!self.indexed || self.valid_index(p).is_some())
    }

    fn counts_failure(&self, p: &CachedPod) -> bool {
        policy::match_pod_failure_policy(self.spec.pod_failure_policy.as_ref(), p).counts
    }

    fn is_index_failed(&self, p: &CachedPod) -> bool {
        let Some(limit) = self.per_index else { return false };
        if !pods::is_pod_failed(p, self.job) {
            return false;
        }
        let m = policy::match_pod_failure_policy(self.spec.pod_failure_policy.as_ref(), p);
        if m.action == Some(FailureAction::FailIndex) {
            return true;
        }
        m.counts && pods::index_failure_count(p) >= limit
    }
}

/// Decides one sync of `job`. `pods` are the pods the Job controls (after adoption); others are
/// ignored.
pub fn plan_with<P: ToCached>(
    job: &Job,
    all_pods: &[P],
    now: DateTime<Utc>,
    config: &Config,
    sctx: &SyncContext,
) -> Plan {
    plan_split(job, all_pods, &Settled::default(), now, config, sctx)
}

/// [`plan_with`] for a Job whose pods are `live` plus the settled ones summarised in `settled`
/// (see [`super::settled`]; `live` may hold settled pods too): the same plan as [`plan_with`]
/// with every pod, at a cost proportional to `live`.
pub fn plan_split<P: ToCached>(
    job: &Job,
    all_pods: &[P],
    settled: &Settled,
    now: DateTime<Utc>,
    config: &Config,
    sctx: &SyncContext,
) -> Plan {
    // Whole `Pod`s (tests) become cached pods, kept aside; cached pods are only borrowed (a
    // `Vec<Cow<CachedPod>>` would be a whole entry's size per pod, megabytes for a wide Job).
    let converted: Vec<CachedPod> = all_pods
        .iter()
        .filter_map(|p| match p.to_cached() {
            Cow::Owned(c) => Some(c),
            Cow::Borrowed(_) => None,
        })
        .collect();
    let mut converted_iter = converted.iter();
    let mut cached: Vec<&CachedPod> = Vec::with_capacity(all_pods.len());
    for p in all_pods {
        match p.to_cached() {
            Cow::Borrowed(c) => cached.push(c),
            Cow::Owned(_) => cached.extend(converted_iter.next()),
        }
    }
    let mut plan = plan_unchecked(job, &cached, settled, now, config, sctx);
    let held_back = !sctx.expectations_satisfied || !sctx.pending_finalizer_removals.is_empty();
    if let Some(left) = sctx.expectations_expire_in.filter(|_| held_back && plan.outcome != Outcome::NotManaged) {
        // Just past the expiry, so the record is gone when the sync runs.
        let at = left + Duration::from_millis(10);
        plan.requeue_after = Some(plan.requeue_after.map_or(at, |r| r.min(at)));
    }
    plan
}

fn plan_unchecked(
    job: &Job,
    all_pods: &[&CachedPod],
    settled: &Settled,
    now: DateTime<Utc>,
    config: &Config,
    sctx: &SyncContext,
) -> Plan {
    if !config.manages(job) {
        return Plan::skip(Outcome::NotManaged, job, now);
    }
    let owned = owned_by(job, all_pods);
    if status::is_finished(job) {
        let mut p = Plan::skip(Outcome::Finished, job, now);
        p.finalizer_removals = owned
            .iter()
            .filter(|p| pods::has_tracking_finalizer(p) && !sctx.pending_finalizer_removals.contains(pods::uid(p)))
            .map(|p| removal(p, FinalizerReason::NotCounted))
            .collect();
        return p;
    }
    let default_spec = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default_spec);
    let indexed = match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => false,
        Some("Indexed") => true,
        Some(_) => {
            let mut p = Plan::skip(Outcome::Invalid("unknown completion mode".into()), job, now);
            p.events.push(JobEvent::warning(
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            ));
            return p;
        }
    };
    if indexed && spec.completions.is_none() {
        let msg = "Skipped Job sync because an Indexed Job requires spec.completions";
        let mut p = Plan::skip(Outcome::Invalid(msg.into()), job, now);
        p.events.push(JobEvent::warning("InvalidJobSpec", msg));
        return p;
    }
    let ctx = Ctx {
        job,
        spec,
        config,
        now,
        indexed,
        completions: spec.completions,
        per_index: if indexed { spec.backoff_limit_per_index } else { None },
        pending_rm: &sctx.pending_finalizer_removals,
    };
    sync(&ctx, sctx, owned, settled)
}

fn removal(p: &CachedPod, reason: FinalizerReason) -> FinalizerRemoval {
    FinalizerRemoval { name: pods::name(p).to_string(), uid: pods::uid(p).to_string(), reason }
}

fn deletion(p: &CachedPod, reason: DeletionReason, remove_finalizer_first: bool) -> PodDeletion {
    PodDeletion {
        name: pods::name(p).to_string(),
        uid: pods::uid(p).to_string(),
        reason,
        remove_finalizer_first,
        ready: pods::is_ready(p),
    }
}

/// Mutable state of one sync, as upstream's `syncJobCtx`.
struct State<'a> {
    active_pods: Vec<&'a CachedPod>,
    terminating_indexes: BTreeSet<i32>,
    active: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    failed: i32,
    prev_succeeded_indexes: Indexes,
    succeeded_indexes: Indexes,
    failed_indexes: Option<Indexes>,
    delayed_per_index: BTreeMap<i32, &'a CachedPod>,
    backoff: BackoffRecord,
    finished: Option<JobCondition>,
    deletions: Vec<PodDeletion>,
    creations: Vec<PodCreation>,
    events: Vec<JobEvent>,
    requeue: Option<Duration>,
}

impl State<'_> {
    fn requeue_in(&mut self, d: Duration, min: Duration) {
        let d = d.max(min);
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

fn failure_target(reason_s: &str, message: &str, now: DateTime<Utc>) -> JobCondition {
    status::new_condition(condition::FAILURE_TARGET, "True", reason_s, message, now)
}

fn sync<'a>(ctx: &Ctx<'a>, sctx: &SyncContext, owned: Vec<&'a CachedPod>, settled: &Settled) -> Plan {
    let job = ctx.job;
    let spec = ctx.spec;
    let now = ctx.now;
    let old_status = job.status.clone().unwrap_or_default();
    let mut st = old_status.clone();
    if st.uncounted_terminated_pods.is_none() {
        st.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    }
    let uncounted = st.uncounted_terminated_pods.clone().unwrap_or_default();
    let unc_succ: BTreeSet<String> = uncounted.succeeded.clone().unwrap_or_default().into_iter().collect();
    let unc_fail: BTreeSet<String> = uncounted.failed.clone().unwrap_or_default().into_iter().collect();

    let active_pods: Vec<&CachedPod> = owned.iter().copied().filter(pods::is_active).collect();
    let mut s = State {
        active: active_pods.len() as i32,
        ready: active_pods.iter().filter(pods::is_ready).count() as i32,
        terminating: owned.iter().filter(pods::is_terminating).count() as i32,
        active_pods,
        terminating_indexes: owned.iter().filter(pods::is_terminating).filter_map(pods::completion_index).collect(),
        succeeded: 0,
        failed: 0,
        prev_succeeded_indexes: Indexes::new(),
        succeeded_indexes: Indexes::new(),
        failed_indexes: None,
        delayed_per_index: BTreeMap::new(),
        backoff: BackoffRecord::from_live_and_settled(job, &owned, settled),
        finished: None,
        deletions: vec![],
        creations: vec![],
        events: vec![],
        requeue: None,
    };

    let new_succeeded = owned
        .iter()
        .filter(|p| ctx.is_tracked(p) && !unc_succ.contains(pods::uid(p)) && pods::phase(p) == "Succeeded")
        .count() as i32;
    let new_failed_counted = owned
        .iter()
        .filter(|p| ctx.is_tracked(p) && !unc_fail.contains(pods::uid(p)) && pods::is_pod_failed(p, job))
        .filter(|p| ctx.counts_failure(p))
        .count() as i32;
    s.succeeded = st.succeeded.unwrap_or(0).saturating_add(new_succeeded).saturating_add(unc_succ.len() as i32);
    s.failed = st.failed.unwrap_or(0).saturating_add(new_failed_counted).saturating_add(unc_fail.len() as i32);

    let suspended = spec.suspend == Some(true);
    if st.start_time.is_none() && !suspended {
        st.start_time = Some(to_time(now));
    }

    // Terminal decisions, in upstream's order.
    let backoff_limit = spec.backoff_limit.unwrap_or(if ctx.per_index.is_some() { i32::MAX } else { 6 });
    if let Some(c) = status::find_true(Some(&st), condition::SUCCESS_CRITERIA_MET) {
        s.finished = Some(c.clone());
    } else if let Some(c) = status::find_true(Some(&st), condition::FAILURE_TARGET) {
        let (r, m) = (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default());
        s.finished = Some(status::new_condition(condition::FAILED, "True", &r, &m, now));
    } else if let Some(msg) = fail_job_message(ctx, &owned, settled) {
        s.finished = Some(failure_target(reason::POD_FAILURE_POLICY, &msg, now));
    }
    if s.finished.is_none() {
        if s.failed > backoff_limit || past_backoff_limit_on_failure(spec, &owned, backoff_limit) {
            s.finished = Some(failure_target(reason::BACKOFF_LIMIT_EXCEEDED, reason::BACKOFF_LIMIT_EXCEEDED_MSG, now));
        } else if let Some(ads) = spec.active_deadline_seconds
            && !suspended
            && let Some(start) = st.start_time.as_ref().map(to_chrono)
        {
            let deadline = start + chrono::Duration::seconds(ads.clamp(0, i64::from(i32::MAX)));
            if now >= deadline {
                s.finished = Some(failure_target(reason::DEADLINE_EXCEEDED, reason::DEADLINE_EXCEEDED_MSG, now));
            } else {
                let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
                s.requeue_in(left, Duration::ZERO);
            }
        }
    }

    if ctx.indexed {
        let completions = ctx.completions.unwrap_or(0);
        s.prev_succeeded_indexes = Indexes::parse(st.completed_indexes.as_deref().unwrap_or(""), completions);
        s.succeeded_indexes = s.prev_succeeded_indexes.clone();
        // A succeeded pod adds its index unless it was already accounted: its finalizer removal is
        // pending (a lagging cache may show it succeeded although a previous sync counted it failed
        // from an older snapshot), or its UID is recorded as failed (same, after a crash before the
        // finalizer was removed). Its index, if it was counted as a success, is in completedIndexes.
        for p in &owned {
            if pods::phase(p) == "Succeeded"
                && ctx.is_tracked(p)
                && !unc_fail.contains(pods::uid(p))
                && let Some(ix) = ctx.valid_index(p)
            {
                s.succeeded_indexes.insert(ix);
            }
        }
        s.succeeded = s.succeeded_indexes.count() as i32;
        if ctx.per_index.is_some() {
            let mut failed = Indexes::parse(st.failed_indexes.as_deref().unwrap_or(""), completions);
            for p in &owned {
                if ctx.is_tracked(p)
                    && let Some(ix) = ctx.valid_index(p)
                    && ctx.is_index_failed(p)
                {
                    failed.insert(ix);
                }
            }
            if s.finished.is_none() {
                let n = failed.count();
                if spec.max_failed_indexes.is_some_and(|m| n > m.max(0) as usize) {
                    s.finished = Some(failure_target(
                        reason::MAX_FAILED_INDEXES_EXCEEDED,
                        reason::MAX_FAILED_INDEXES_EXCEEDED_MSG,
                        now,
                    ));
                } else if n > 0 && n + s.succeeded_indexes.count() >= completions.max(0) as usize {
                    s.finished = Some(failure_target(reason::FAILED_INDEXES, reason::FAILED_INDEXES_MSG, now));
                }
            }
            s.failed_indexes = Some(failed);
            s.delayed_per_index = delayed_per_index(ctx, &s, &owned);
        }
        if s.finished.is_none()
            && let Some(msg) =
                policy::match_success_policy(spec.success_policy.as_ref(), completions, &s.succeeded_indexes)
        {
            s.finished =
                Some(status::new_condition(condition::SUCCESS_CRITERIA_MET, "True", reason::SUCCESS_POLICY, &msg, now));
        }
    }

    let mut suspend_events = vec![];
    if s.finished.is_some() {
        // Terminate every active pod; keep finalizers so failures are counted.
        let mut victims = s.active_pods.clone();
        victims.sort_by(pods::removal_order);
        for p in victims {
            s.deletions.push(deletion(p, DeletionReason::JobFinishing, false));
        }
        if !sctx.expectations_satisfied {
            s.finished = None;
        }
        account_deletions(&mut s);
    } else {
        let mut manage_called = false;
        if sctx.expectations_satisfied && job.metadata.deletion_timestamp.is_none() {
            manage_job(ctx, &mut s);
            manage_called = true;
        }
        let complete = match ctx.completions {
            None => s.succeeded > 0 && s.active == 0,
            Some(c) => s.succeeded >= c && s.active == 0,
        };
        if complete {
            s.finished = Some(status::new_condition(
                condition::SUCCESS_CRITERIA_MET,
                "True",
                reason::COMPLETIONS_REACHED,
                reason::COMPLETIONS_REACHED_MSG,
                now,
            ));
        } else if manage_called {
            let conds = st.conditions.get_or_insert_with(Vec::new);
            if suspended {
                if status::ensure_condition(
                    conds,
                    condition::SUSPENDED,
                    "True",
                    reason::JOB_SUSPENDED,
                    "Job suspended",
                    now,
                ) {
                    suspend_events.push(JobEvent::normal("Suspended", "Job suspended"));
                }
            } else if status::ensure_condition(
                conds,
                condition::SUSPENDED,
                "False",
                reason::JOB_RESUMED,
                "Job resumed",
                now,
            ) {
                suspend_events.push(JobEvent::normal("Resumed", "Job resumed"));
                // The active deadline counts from the resume.
                st.start_time = Some(to_time(now));
            }
            if conds.is_empty() && old_status.conditions.is_none() {
                st.conditions = None;
            }
        }
    }
    s.events.extend(suspend_events);

    st.active = nonzero(s.active);
    st.ready = Some(s.ready);
    st.terminating = Some(s.terminating);

    track_status(ctx, s, st, &old_status, owned, &unc_succ, &unc_fail)
}

/// Upstream's `getFailJobMessage`: the message of a failed pod matching a `FailJob` rule; of the
/// pod with the smallest name (then uid) if several do (upstream takes the first of its
/// informer's list, in no defined order), so that it does not depend on how the pods are listed
/// or split.
fn fail_job_message(ctx: &Ctx, owned: &[&CachedPod], settled: &Settled) -> Option<String> {
    let policy = ctx.spec.pod_failure_policy.as_ref()?;
    owned
        .iter()
        .copied()
        .chain(settled.failed.iter().map(|p| &**p))
        .filter(|p| pods::is_pod_failed(*p, ctx.job))
        .filter_map(|p| {
            let m = policy::match_pod_failure_policy(Some(policy), p).fail_job_message?;
            Some(((pods::name(p), pods::uid(p)), m))
        })
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, m)| m)
}

/// Upstream's `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`, container restarts of
/// running/pending pods count as failures.
fn past_backoff_limit_on_failure(spec: &JobSpec, owned: &[&CachedPod], limit: i32) -> bool {
    let restart = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    if restart != Some("OnFailure") {
        return false;
    }
    let total: i64 =
        owned.iter().filter(|p| matches!(pods::phase(p), "Running" | "Pending")).map(pods::restart_count).sum();
    if limit == 0 { total > 0 } else { total >= i64::from(limit) }
}

/// Upstream's `getPodsWithDelayedDeletionPerIndex`: per index still to be retried, the last failed
/// pod, whose finalizer is kept until its replacement (which inherits its failure count) exists.
fn delayed_per_index<'a>(ctx: &Ctx, s: &State, owned: &[&'a CachedPod]) -> BTreeMap<i32, &'a CachedPod> {
    let active_ix: BTreeSet<i32> = s.active_pods.iter().filter_map(pods::completion_index).collect();
    let failed = s.failed_indexes.clone().unwrap_or_default();
    let mut out: BTreeMap<i32, &CachedPod> = BTreeMap::new();
    for p in owned.iter().copied() {
        if !ctx.is_tracked(p) || !pods::is_pod_failed(p, ctx.job) {
            continue;
        }
        let Some(ix) = ctx.valid_index(p) else { continue };
        if s.succeeded_indexes.contains(ix) || failed.contains(ix) || active_ix.contains(&ix) {
            continue;
        }
        match out.get(&ix) {
            Some(last)
                if !(pods::index_absolute_failure_count(last) <= pods::index_absolute_failure_count(p)
                    && pods::finished_time(p) >= pods::finished_time(last)) => {}
            _ => {
                out.insert(ix, p);
            }
        }
    }
    out
}

fn account_deletions(s: &mut State) {
    let n = s.deletions.len() as i32;
    let ready = s.deletions.iter().filter(|d| d.ready).count() as i32;
    s.active -= n;
    s.terminating += n;
    s.ready -= ready;
}

/// Upstream's `activePodsForRemoval`: for Indexed Jobs, pods without a valid index, beyond
/// `completions`, of a failed index, or duplicating an index (keeping the one ranked last) first;
/// then the active pods in removal order until `at_least` are picked.
fn active_pods_for_removal<'a>(ctx: &Ctx, s: &State<'a>, at_least: usize) -> Vec<(&'a CachedPod, DeletionReason)> {
    let mut rm: Vec<(&CachedPod, DeletionReason)> = vec![];
    let mut left: Vec<&CachedPod> = vec![];
    if ctx.indexed {
        let completions = ctx.completions.unwrap_or(0);
        let failed = s.failed_indexes.clone().unwrap_or_default();
        let mut by_index: BTreeMap<i32, Vec<&CachedPod>> = BTreeMap::new();
        for p in s.active_pods.iter().copied() {
            match pods::completion_index(p) {
                None => rm.push((p, DeletionReason::MissingIndex)),
                Some(ix) if ix >= completions => rm.push((p, DeletionReason::IndexOutOfRange)),
                Some(ix) if failed.contains(ix) => rm.push((p, DeletionReason::FailedIndex)),
                Some(ix) => by_index.entry(ix).or_default().push(p),
            }
        }
        for (_, mut group) in by_index {
            group.sort_by(pods::removal_order);
            let keep = group.pop();
            rm.extend(group.into_iter().map(|p| (p, DeletionReason::DuplicateIndex)));
            left.extend(keep);
        }
        rm.sort_by(|a, b| pods::removal_order(a.0, b.0));
    } else {
        left = s.active_pods.clone();
    }
    if rm.len() < at_least {
        left.sort_by(pods::removal_order);
        let need = at_least - rm.len();
        rm.extend(left.into_iter().take(need).map(|p| (p, DeletionReason::ExcessActive)));
    }
    rm
}

/// Upstream's `manageJob`: delete or create pods so that `parallelism` (bounded by the remaining
/// completions) are active.
fn manage_job(ctx: &Ctx, s: &mut State) {
    let spec = ctx.spec;
    let cfg = ctx.config;
    let active = s.active;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    if spec.suspend == Some(true) {
        let mut victims = s.active_pods.clone();
        victims.sort_by(pods::removal_order);
        for p in victims {
            s.deletions.push(deletion(p, DeletionReason::Suspended, true));
        }
        account_deletions(s);
        return;
    }
    let want_active = match ctx.completions {
        None if s.succeeded > 0 => active,
        None => parallelism,
        Some(c) => c.saturating_sub(s.succeeded).clamp(0, parallelism),
    };
    let rm_at_least = active.saturating_sub(want_active).max(0) as usize;
    let mut to_delete = active_pods_for_removal(ctx, s, rm_at_least);
    to_delete.truncate(cfg.max_batch);
    if !to_delete.is_empty() {
        for (p, why) in to_delete {
            s.deletions.push(deletion(p, why, true));
        }
        account_deletions(s);
        // Deletions take precedence: creations wait for the next sync.
        return;
    }
    let terminating = if pods::only_replace_failed_pods(ctx.job) { s.terminating } else { 0 };
    let mut diff = want_active.saturating_sub(terminating).saturating_sub(active);
    if diff <= 0 {
        return;
    }
    if ctx.per_index.is_none() {
        let left = s.backoff.remaining(ctx.now, cfg.backoff_base, cfg.backoff_cap);
        if !left.is_zero() {
            s.requeue_in(left, cfg.min_requeue);
            return;
        }
    }
    diff = diff.min(cfg.max_batch as i32);
    let mut indexes: Vec<Option<i32>> = vec![None; diff as usize];
    if ctx.indexed {
        let completions = ctx.completions.unwrap_or(0);
        let mut non_pending = s.succeeded_indexes.clone();
        for p in &s.active_pods {
            if let Some(ix) = pods::completion_index(p) {
                non_pending.insert(ix);
            }
        }
        if pods::only_replace_failed_pods(ctx.job) {
            // Terminating pods keep their index until they are gone.
            for ix in &s.terminating_indexes {
                non_pending.insert(*ix);
            }
        }
        if let Some(f) = &s.failed_indexes {
            non_pending.merge(f);
        }
        let mut candidates = non_pending.first_missing(diff as usize, completions);
        if ctx.per_index.is_some() {
            let mut ready_now = vec![];
            let mut min_left: Option<Duration> = None;
            for ix in candidates {
                let left = backoff::remaining_for_index(
                    s.delayed_per_index.get(&ix).copied(),
                    ctx.now,
                    cfg.backoff_base,
                    cfg.backoff_cap,
                );
                if left.is_zero() {
                    ready_now.push(ix);
                } else {
                    min_left = Some(min_left.map_or(left, |m| m.min(left)));
                }
            }
            if ready_now.is_empty() {
                if let Some(left) = min_left {
                    s.requeue_in(left, cfg.min_requeue);
                }
                return;
            }
            candidates = ready_now;
        }
        indexes = candidates.into_iter().map(Some).collect();
    }
    for ix in indexes {
        let counts = match (ix, ctx.per_index) {
            (Some(ix), Some(_)) => Some(new_index_failure_counts(ctx, s.delayed_per_index.get(&ix).copied())),
            _ => None,
        };
        s.creations.push(PodCreation { index: ix, failure_counts: counts });
    }
    s.active += s.creations.len() as i32;
}

/// Upstream's `getNewIndexFailureCounts`: the replaced pod's counts plus its own failure.
fn new_index_failure_counts(ctx: &Ctx, replaced: Option<&CachedPod>) -> (i32, i32) {
    let Some(p) = replaced else { return (0, 0) };
    let (mut counted, mut ignored) = (pods::index_failure_count(p), pods::index_ignored_failure_count(p));
    if ctx.counts_failure(p) {
        counted = counted.saturating_add(1);
    } else {
        ignored = ignored.saturating_add(1);
    }
    (counted, ignored)
}

/// Upstream's `trackJobStatusAndRemoveFinalizers`, phase one.
fn track_status(
    ctx: &Ctx,
    s: State,
    mut st: JobStatus,
    old_status: &JobStatus,
    mut owned: Vec<&CachedPod>,
    unc_succ: &BTreeSet<String>,
    unc_fail: &BTreeSet<String>,
) -> Plan {
    let job = ctx.job;
    let now = ctx.now;
    // Only pods still holding the tracking finalizer (and not already being released) are looked
    // at below. Keeping just those before sorting visits them in the same order (the sort is
    // stable), and sorts the few in flight instead of every pod a large Job ever had.
    owned.retain(|p| pods::has_tracking_finalizer(p) && !ctx.pending_rm.contains(pods::uid(p)));
    if ctx.indexed {
        owned.sort_by_cached_key(|p| pods::completion_index(p).unwrap_or(-1));
    }
    let uids_with_finalizer: BTreeSet<String> = owned.iter().map(|p| pods::uid(p).to_string()).collect();
    status::clean_uncounted(&mut st, &uids_with_finalizer);
    let mut new_unc_succ: Vec<String> =
        st.uncounted_terminated_pods.as_ref().and_then(|u| u.succeeded.clone()).unwrap_or_default();
    let mut new_unc_fail: Vec<String> =
        st.uncounted_terminated_pods.as_ref().and_then(|u| u.failed.clone()).unwrap_or_default();
    let mut new_succeeded_indexes: Vec<i32> = vec![];
    let mut removals = vec![];
    let mut reached_max = false;
    let failing = s.finished.as_ref().is_some_and(|c| c.type_ != condition::SUCCESS_CRITERIA_MET);
    for p in owned.iter().copied() {
        let uid = pods::uid(p);
        let considered_failed = pods::is_pod_failed(p, job);
        if !can_remove_finalizer(ctx, &s, p, considered_failed) {
            continue;
        }
        let mut why = FinalizerReason::NotCounted;
        if pods::phase(p) == "Succeeded" && !unc_fail.contains(uid) {
            if ctx.indexed {
                if let Some(ix) = ctx.valid_index(p) {
                    why = FinalizerReason::Succeeded;
                    if !s.prev_succeeded_indexes.contains(ix) {
                        new_succeeded_indexes.push(ix);
                    }
                }
            } else {
                why = FinalizerReason::Succeeded;
                if !unc_succ.contains(uid) {
                    new_unc_succ.push(uid.to_string());
                }
            }
        } else if considered_failed || failing {
            let valid = !ctx.indexed || ctx.valid_index(p).is_some();
            if unc_fail.contains(uid) {
                why = FinalizerReason::Failed;
            } else if valid && ctx.counts_failure(p) {
                why = FinalizerReason::Failed;
                new_unc_fail.push(uid.to_string());
            }
        }
        removals.push(removal(p, why));
        if new_succeeded_indexes.len() + new_unc_succ.len() + new_unc_fail.len() >= ctx.config.max_uncounted {
            reached_max = true;
            break;
        }
    }
    let u = st.uncounted_terminated_pods.get_or_insert_with(UncountedTerminatedPods::default);
    u.succeeded = (!new_unc_succ.is_empty()).then_some(new_unc_succ);
    u.failed = (!new_unc_fail.is_empty()).then_some(new_unc_fail);
    if ctx.indexed {
        let mut succ = s.succeeded_indexes.clone();
        for ix in &new_succeeded_indexes {
            succ.insert(*ix);
        }
        st.succeeded = nonzero(succ.count() as i32);
        let s_str = succ.to_string();
        st.completed_indexes = (!s_str.is_empty()).then_some(s_str);
        st.failed_indexes = s.failed_indexes.as_ref().map(|f| f.to_string());
    }
    let mut finish = None;
    if let Some(fc) = &s.finished {
        let conds = st.conditions.get_or_insert_with(Vec::new);
        let r = fc.reason.as_deref().unwrap_or("");
        let m = fc.message.as_deref().unwrap_or("");
        if fc.type_ == condition::FAILURE_TARGET {
            conds.push(fc.clone());
            finish = Some(status::new_condition(condition::FAILED, "True", r, m, now));
        } else if fc.type_ == condition::SUCCESS_CRITERIA_MET {
            if status::find_true(Some(old_status), condition::SUCCESS_CRITERIA_MET).is_none() {
                conds.push(fc.clone());
            }
            finish = Some(status::new_condition(condition::COMPLETE, "True", r, m, now));
        } else {
            finish = Some(fc.clone());
        }
    }
    let mut requeue = s.requeue;
    if reached_max {
        requeue = Some(requeue.map_or(ctx.config.min_requeue, |r| r.min(ctx.config.min_requeue)));
    }
    let status_changed = normalized(&st) != normalized(old_status);
    Plan {
        outcome: Outcome::Sync,
        deletions: s.deletions,
        creations: s.creations,
        status: st,
        status_changed,
        finalizer_removals: removals,
        events: s.events,
        requeue_after: requeue,
        uids_with_finalizer,
        finish,
        terminating_after: s.terminating,
        reached_max_uncounted: reached_max,
        completions: ctx.completions,
        now,
    }
}

/// The status with empty values folded to `None`, so that a server that drops zero counters or
/// empty lists never makes the plan write the same status again and again.
fn normalized(st: &JobStatus) -> JobStatus {
    let mut st = st.clone();
    for v in [&mut st.active, &mut st.ready, &mut st.terminating, &mut st.succeeded, &mut st.failed] {
        if *v == Some(0) {
            *v = None;
        }
    }
    for v in [&mut st.completed_indexes, &mut st.failed_indexes] {
        if v.as_deref() == Some("") {
            *v = None;
        }
    }
    if st.conditions.as_ref().is_some_and(Vec::is_empty) {
        st.conditions = None;
    }
    if status::uncounted_len(&st) == 0 {
        st.uncounted_terminated_pods = None;
    }
    st
}

/// Upstream's `canRemoveFinalizer`.
fn can_remove_finalizer(ctx: &Ctx, s: &State, p: &CachedPod, considered_failed: bool) -> bool {
    if ctx.job.metadata.deletion_timestamp.is_some() || s.finished.is_some() || pods::phase(p) == "Succeeded" {
        return true;
    }
    if !considered_failed {
        return false;
    }
    if let Some(ix) = pods::completion_index(p)
        && let Some(d) = s.delayed_per_index.get(&ix)
        && pods::uid(d) == pods::uid(p)
    {
        return false;
    }
    true
}
