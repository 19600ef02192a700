//! The Job controller.
//!
//! # Functional core, imperative shell
//!
//! Every decision upstream's `syncJob` / `manageJob` / `trackJobStatusAndRemoveFinalizers` makes is
//! taken by the pure function [`plan::plan`] (`(job, its pods, now, config) -> Plan`): no I/O, no
//! async, no clock. The shell (kube-runtime wiring, expectations, the API calls) only observes and
//! executes a [`Plan`]; the execution order and the exactly-once counting argument are in the
//! [`mod@plan`] module docs.
//!
//! | module | role |
//! |---|---|
//! | [`mod@plan`] | the sync decision and the [`Plan`] it returns |
//! | [`status`] | conditions, finished checks, uncounted → counters |
//! | [`policy`] | podFailurePolicy and successPolicy matching |
//! | [`indexes`] | `"1,3-5,7"` interval sets |
//! | [`backoff`] | pod re-creation delays |
//! | [`pods`] | pod predicates, finish times, removal order |
//! | [`cached_pod`] | the pod cache entry: only what the controller reads, decoded straight from JSON |
//! | [`template`] | the pod built from the Job's template |
//! | [`events`] | the Job's events, as upstream words them |
//! | [`labels`] | well-known strings |
//! | [`config`] | controller settings |
//! | [`adopt`] | which pods a Job claims (adopt / release) |
//! | [`controller`] | the shell: kube-runtime wiring, reconcile, orphan finalizers |
//! | [`apply`] | executes a [`Plan`] against the API server |
//! | [`expectations`] | pod operations issued but not yet observed |
//! | [`pod_index`] | pods by controller Job, from the watch events |
//! | [`settled`] | what finished, uncounted-no-more pods contribute to a sync, summarised |
//! | [`kind`] | the two Job kinds (batch/v1, jobwright.dev/v1) behind one code path |
//!
//! # What the shell must guarantee
//!
//! The plan is safe to compute on a stale informer snapshot as long as the shell:
//! - passes only pods whose controller ownerReference is the Job (after adopting matching orphans
//!   with the tracking finalizer added, as upstream's `ClaimPods`, see [`adopt::claim`]); others
//!   are ignored anyway;
//! - sets [`SyncContext::expectations_satisfied`] to false while creations/deletions it issued
//!   are not yet observed (then no pod is created or deleted for scaling and no terminal
//!   condition is declared), and passes finalizer removals issued but not observed in
//!   [`SyncContext::pending_finalizer_removals`] (otherwise a lagging cache double-counts);
//! - writes status with the `resourceVersion` of the Job it planned from (409 → re-plan), and
//!   never removes a finalizer unless the first status write succeeded;
//! - runs at most one sync per Job at a time;
//! - removes the finalizer of pods whose Job is gone or finished ([`orphan_needs_finalizer_removal`]);
//! - when it adopts an orphan, adds the tracking finalizer in the same patch (upstream's claim does),
//!   so the adopted pod is counted like the others;
//! - on a failed creation or scaling deletion, calls [`Plan::account_pod_ops`] before writing the
//!   status; on a failed deletion of a finishing Job (reason `JobFinishing`), stops and re-plans.
//!
//! One race is inherent, here as upstream: a pod that finished after the snapshot was taken but is
//! still shown running when the Job reaches a terminal state is accounted as the controller saw it
//! (terminated by a failing Job: failed; by a succeeding Job: not counted). The property tests in
//! `sim_tests` model a lagging cache and check every other count is exact.
//!
//! # Differences from upstream, on purpose
//!
//! - The pod re-creation backoff is derived from the pods (failures finished after the last
//!   success), not from an in-memory record, so it survives controller restarts.
//! - While pod re-creation is delayed by the backoff, `status.active` keeps counting the pods that
//!   are running (upstream reports 0 in that sync).
//! - Active pods of an index that failed (backoffLimitPerIndex) are deleted (`FailedIndex`).
//! - A succeeded pod adds its index to `completedIndexes` (and a failed pod to `failedIndexes`) only
//!   if it is not pending finalizer removal and (succeeded) not recorded as an uncounted failure.
//!   Upstream's `calculateSucceededIndexes` looks only at the finalizer, so a lagging cache that
//!   shows a pod already counted as failed (it looked running when the Job hit a failure) as
//!   succeeded would complete its index there too.
//! - Which Jobs are managed: `spec.managedBy == jobwright.dev/job-controller`, or with
//!   `manage_all` also Jobs without `managedBy` or with the built-in controller's value.

pub mod adopt;
pub mod apply;
pub mod backoff;
pub mod cached_pod;
pub mod config;
pub mod controller;
pub mod events;
pub mod expectations;
pub mod indexes;
pub mod informer;
pub mod intern;
pub mod kind;
pub mod labels;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod pod_index;
pub mod pods;
pub mod policy;
pub mod recorder;
pub mod relist;
pub mod settled;
#[cfg(test)]
mod sim_tests;
pub mod status;
pub mod template;
pub mod testing;

pub use config::Config;
pub use kind::{JobKind, KindId};
pub use plan::{
    DeletionReason, FinalWrite, FinalizerReason, FinalizerRemoval, Outcome, Plan, PodCreation, PodDeletion,
    SyncContext, orphan_needs_finalizer_removal, plan, plan_split, plan_with, slow_start_batches,
};
