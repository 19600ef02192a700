//! Settled pods: what a Job's finished pods that no longer hold the tracking finalizer contribute
//! to a sync, without walking them.
//!
//! A pod is *settled* once its phase is `Succeeded` or `Failed` and it no longer holds
//! `batch.kubernetes.io/job-tracking`: it is counted in the Job's status and can never be active,
//! terminating, tracked or a finalizer removal again (a terminal phase is final; a finalizer can
//! only come back by a write, whose watch event makes the pod unsettled again). Of all a sync
//! reads ([`super::plan`]), such a pod only feeds
//! - the pod re-creation backoff ([`super::backoff::BackoffRecord`]): a `Succeeded` pod's finish
//!   time may be the latest success; a `Failed` pod's finish time counts if it is after it;
//! - upstream's `getFailJobMessage` (a `FailJob` rule of the podFailurePolicy matched by any failed
//!   pod of the Job, tracked or not);
//! - the claim (a settled pod whose labels stop matching the selector is released) and the
//!   expectations (a settled pod exists, maybe deleting, has no finalizer).
//!
//! So the pod cache ([`super::pod_index`]) keeps a Job's settled pods aside, in a compact entry,
//! with the finish times aggregated, and a sync gets only its *live* pods (the others) plus this
//! [`Settled`] summary: a sync costs what is in flight, not every pod the Job ever had.
//! [`super::plan::plan_split`] with the summary decides exactly what [`super::plan::plan_with`]
//! decides with every pod (property-tested in `plan_tests`).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cached_pod::{CachedPod, PodFacts, ToCached};
use super::pods;

/// Whether the pod is settled: terminal phase and no tracking finalizer.
pub fn is_settled<P: PodFacts + ?Sized>(pod: &P) -> bool {
    pods::is_terminal(pod) && !pods::has_tracking_finalizer(pod)
}

/// What a Job's settled pods contribute to a sync (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settled {
    /// The latest finish time of a settled `Succeeded` pod.
    pub last_success: Option<DateTime<Utc>>,
    /// The finish times of the settled `Failed` pods that finished after [`Settled::last_success`]
    /// (with how many pods finished at each), ascending.
    pub failures_after: Vec<(DateTime<Utc>, u32)>,
    /// The settled `Failed` pods, by name (then uid), when the Job has a podFailurePolicy (its `FailJob` rules
    /// read them); empty otherwise.
    pub failed: Vec<Arc<CachedPod>>,
}

/// Finish times with multiplicity: a Job's settled successes or failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Times(BTreeMap<DateTime<Utc>, u32>);

impl Times {
    /// Adds one finish time.
    pub fn add(&mut self, t: DateTime<Utc>) {
        *self.0.entry(t).or_insert(0) += 1;
    }

    /// Removes one finish time (added before).
    pub fn remove(&mut self, t: DateTime<Utc>) {
        if let Some(n) = self.0.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&t);
            }
        }
    }

    /// The latest.
    pub fn max(&self) -> Option<DateTime<Utc>> {
        self.0.keys().next_back().copied()
    }

    /// The times strictly after `t` (all with `None`), ascending.
    pub fn after(&self, t: Option<DateTime<Utc>>) -> Vec<(DateTime<Utc>, u32)> {
        match t {
            None => self.0.iter().map(|(k, v)| (*k, *v)).collect(),
            Some(t) => self
                .0
                .range((std::ops::Bound::Excluded(t), std::ops::Bound::Unbounded))
                .map(|(k, v)| (*k, *v))
                .collect(),
        }
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Orders failed pods as [`Settled::failed`] lists them: by name, then uid.
pub fn sort_by_name(list: &mut [Arc<CachedPod>]) {
    list.sort_by(|a, b| (pods::name(&**a), pods::uid(&**a)).cmp(&(pods::name(&**b), pods::uid(&**b))));
}

impl Settled {
    /// Splits `pods` into the live ones (returned, in order) and the summary of the settled ones,
    /// as the pod cache keeps them (`with_failed`: the Job has a podFailurePolicy).
    pub fn split<P: ToCached>(pods: &[P], with_failed: bool) -> (Vec<&P>, Settled) {
        let (mut succ, mut fail) = (Times::default(), Times::default());
        let mut failed: Vec<Arc<CachedPod>> = vec![];
        let mut live = vec![];
        for p in pods {
            let c = p.to_cached();
            if !is_settled(&*c) {
                live.push(p);
                continue;
            }
            if pods::phase(&*c) == "Succeeded" {
                succ.add(pods::finished_time(&*c));
            } else {
                fail.add(pods::finished_time(&*c));
                if with_failed {
                    failed.push(Arc::new(c.into_owned()));
                }
            }
        }
        sort_by_name(&mut failed);
        let last_success = succ.max();
        (live, Settled { last_success, failures_after: fail.after(last_success), failed })
    }
}
