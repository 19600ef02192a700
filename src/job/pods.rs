//! Pure facts about the pods of a Job: which are active, terminating, ready, finished; their
//! completion index; when they finished; and the order in which active pods are picked for removal
//! (upstream's `controller.ActivePods` sort).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use super::cached_pod::{CachedPod, ConditionRef, ContainerRef, PodFacts, ToCached};
use super::labels::{
    JOB_COMPLETION_INDEX, JOB_INDEX_FAILURE_COUNT, JOB_INDEX_IGNORED_FAILURE_COUNT, JOB_TRACKING_FINALIZER,
};

/// Converts an API timestamp to chrono.
pub fn to_chrono(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Converts a chrono timestamp to an API timestamp (whole seconds, as the API serialises them).
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

/// The pod's phase, or `""`.
pub fn phase<P: PodFacts + ?Sized>(pod: &P) -> &str {
    pod.phase()
}

/// The pod's UID, or `""`.
pub fn uid<P: PodFacts + ?Sized>(pod: &P) -> &str {
    pod.pod_meta().uid.as_deref().unwrap_or("")
}

/// The pod's name, or `""`.
pub fn name<P: PodFacts + ?Sized>(pod: &P) -> &str {
    pod.pod_meta().name.as_deref().unwrap_or("")
}

/// Whether the pod is Succeeded or Failed.
pub fn is_terminal<P: PodFacts + ?Sized>(pod: &P) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Upstream's `FilterActivePods`: not terminal and not being deleted.
pub fn is_active<P: PodFacts + ?Sized>(pod: &P) -> bool {
    !is_terminal(pod) && pod.pod_meta().deletion_timestamp.is_none()
}

/// Upstream's `FilterTerminatingPods`: being deleted but not yet terminal.
pub fn is_terminating<P: PodFacts + ?Sized>(pod: &P) -> bool {
    pod.pod_meta().deletion_timestamp.is_some() && !is_terminal(pod)
}

/// Whether the pod holds the `batch.kubernetes.io/job-tracking` finalizer.
pub fn has_tracking_finalizer<P: PodFacts + ?Sized>(pod: &P) -> bool {
    pod.pod_meta().finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == JOB_TRACKING_FINALIZER))
}

fn ready_condition<P: PodFacts + ?Sized>(pod: &P) -> Option<ConditionRef<'_>> {
    pod.conditions().find(|c| c.type_ == "Ready")
}

/// Whether the pod has condition `Ready=True`.
pub fn is_ready<P: PodFacts + ?Sized>(pod: &P) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// The completion index from the `batch.kubernetes.io/job-completion-index` annotation; `None`
/// when missing, unparsable or negative (upstream's `unknownCompletionIndex`).
pub fn completion_index<P: PodFacts + ?Sized>(pod: &P) -> Option<i32> {
    let v = pod.annotation(JOB_COMPLETION_INDEX)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

fn annotation_i32<P: PodFacts + ?Sized>(pod: &P, key: &str) -> i32 {
    pod.annotation(key)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .map(|v| v as i32)
        .unwrap_or(0)
}

/// `batch.kubernetes.io/job-index-failure-count`, 0 when missing or invalid.
pub fn index_failure_count<P: PodFacts + ?Sized>(pod: &P) -> i32 {
    annotation_i32(pod, JOB_INDEX_FAILURE_COUNT)
}

/// `batch.kubernetes.io/job-index-ignored-failure-count`, 0 when missing or invalid.
pub fn index_ignored_failure_count<P: PodFacts + ?Sized>(pod: &P) -> i32 {
    annotation_i32(pod, JOB_INDEX_IGNORED_FAILURE_COUNT)
}

/// Both failure counts of the index, counted and ignored.
pub fn index_absolute_failure_count<P: PodFacts + ?Sized>(pod: &P) -> i32 {
    index_failure_count(pod).saturating_add(index_ignored_failure_count(pod))
}

/// Upstream's `isPodFailed`: phase Failed, or (unless only failed pods are replaced) deleted
/// before succeeding, so that orphaned pods that never reach a phase still count.
pub fn is_pod_failed<P: PodFacts + ?Sized>(pod: &P, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.pod_meta().deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// Upstream's `onlyReplaceFailedPods`: `podReplacementPolicy: Failed`, implied by a podFailurePolicy.
pub fn only_replace_failed_pods(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

/// Sum of restart counts of all (init) containers.
pub fn restart_count<P: PodFacts + ?Sized>(pod: &P) -> i64 {
    pod.container_statuses().chain(pod.init_container_statuses()).map(|s| i64::from(s.restart_count.max(0))).sum()
}

fn max_restarts<P: PodFacts + ?Sized>(pod: &P) -> i32 {
    pod.container_statuses().map(|s| s.restart_count).max().unwrap_or(0)
}

/// When the pod finished, as upstream's `getFinishedTime`: the latest container finish time if every
/// (sidecar and regular) container terminated, else the `Ready=False` transition, else
/// `deletionTimestamp - gracePeriod`, else the creation time.
pub fn finished_time<P: PodFacts + ?Sized>(pod: &P) -> DateTime<Utc> {
    let mut latest: Option<DateTime<Utc>> = None;
    let mut all_done = true;
    for cs in pod.container_statuses().chain(pod.init_container_statuses().filter(|s| pod.is_sidecar(s.name))) {
        match cs.terminated.and_then(|(_, finished)| finished) {
            Some(t) => {
                let t = to_chrono(t);
                latest = Some(latest.map_or(t, |l| l.max(t)));
            }
            None => all_done = false,
        }
    }
    if all_done && let Some(t) = latest {
        return t;
    }
    if let Some(c) = ready_condition(pod)
        && c.status == "False"
        && let Some(t) = c.last_transition_time
    {
        return to_chrono(t);
    }
    let meta = pod.pod_meta();
    if let Some(dt) = &meta.deletion_timestamp {
        let grace = meta.deletion_grace_period_seconds.unwrap_or(0);
        return to_chrono(dt) - chrono::Duration::seconds(grace);
    }
    meta.creation_timestamp.as_ref().map(to_chrono).unwrap_or(DateTime::UNIX_EPOCH)
}

fn ready_time<P: PodFacts + ?Sized>(pod: &P) -> Option<DateTime<Utc>> {
    ready_condition(pod).filter(|c| c.status == "True").and_then(|c| c.last_transition_time).map(to_chrono)
}

/// upstream's `afterOrZero(t1, t2)`: a zero time sorts first, otherwise t1 after t2.
fn after_or_zero(t1: Option<DateTime<Utc>>, t2: Option<DateTime<Utc>>) -> bool {
    match (t1, t2) {
        (None, _) | (_, None) => t1.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// The order in which active pods are removed, first = removed first (upstream's
/// `controller.ActivePods`): unscheduled before scheduled; Pending before Unknown before Running;
/// not ready before ready; ready more recently before ready for longer; more restarts before fewer;
/// newer before older.
pub fn removal_order<P: PodFacts + ?Sized>(a: &P, b: &P) -> Ordering {
    let less = |i: &P, j: &P| -> bool {
        let (ni, nj) = (i.node_name(), j.node_name());
        if ni != nj && (ni.is_empty() || nj.is_empty()) {
            return ni.is_empty();
        }
        let rank = |p: &P| match phase(p) {
            "Pending" => 0,
            "Unknown" => 1,
            "Running" => 2,
            _ => 0,
        };
        if rank(i) != rank(j) {
            return rank(i) < rank(j);
        }
        if is_ready(i) != is_ready(j) {
            return !is_ready(i);
        }
        if is_ready(i) && is_ready(j) && ready_time(i) != ready_time(j) {
            return after_or_zero(ready_time(i), ready_time(j));
        }
        if max_restarts(i) != max_restarts(j) {
            return max_restarts(i) > max_restarts(j);
        }
        let ci = i.pod_meta().creation_timestamp.as_ref().map(to_chrono);
        let cj = j.pod_meta().creation_timestamp.as_ref().map(to_chrono);
        if ci != cj {
            return after_or_zero(ci, cj);
        }
        false
    };
    if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::{JobBuilder, PodBuilder, at};

    #[test]
    fn finished_time_falls_back_as_upstream() {
        let job = JobBuilder::new("j").build();
        let from_containers = PodBuilder::for_job(&job).failed().finished_at(at(7)).build();
        assert_eq!(finished_time(&from_containers), at(7));
        let from_ready = PodBuilder::for_job(&job).phase("Failed").condition_at("Ready", "False", at(5)).build();
        let mut from_ready = from_ready;
        from_ready.status.as_mut().unwrap().container_statuses = None;
        assert_eq!(finished_time(&from_ready), at(5));
        let deleted = PodBuilder::for_job(&job).running().deleting().build();
        assert_eq!(finished_time(&deleted), at(-30), "deletionTimestamp minus the grace period");
        let created = PodBuilder::for_job(&job).created_at(at(3)).running().build();
        assert_eq!(finished_time(&created), at(3));
    }

    #[test]
    fn completion_index_and_failure_counts_ignore_garbage() {
        let job = JobBuilder::new("j").build();
        let ix = |v: &str| completion_index(&PodBuilder::for_job(&job).annotation(JOB_COMPLETION_INDEX, v).build());
        assert_eq!((ix("3"), ix("-1"), ix("x"), ix("99999999999")), (Some(3), None, None, None));
        let fc =
            |v: &str| index_failure_count(&PodBuilder::for_job(&job).annotation(JOB_INDEX_FAILURE_COUNT, v).build());
        assert_eq!((fc("2"), fc("-4"), fc("nope"), fc("3000000000")), (2, 0, 0, 0));
    }
}
