//! Pure facts about the pods of a Job: which are active, terminating, ready, finished; their
//! completion index; when they finished; and the order in which active pods are picked for removal
//! (upstream's `controller.ActivePods` sort).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

/// Drops what the Job controller never reads from a cached pod, so its store holds ~10k pods in
/// a few tens of MiB: `managedFields`, and the spec but for the node name and the containers'
/// names (and the init containers' restart policies, which tell sidecars). Metadata (labels,
/// annotations, finalizers, owners, resourceVersion) and status stay whole. The controller never
/// writes a pod back from its cache (finalizer removal and adoption are patches), so nothing is lost.
pub fn trim_for_cache(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.take() {
        let name_only =
            |c: Container| Container { name: c.name, restart_policy: c.restart_policy, ..Default::default() };
        pod.spec = Some(PodSpec {
            containers: spec.containers.into_iter().map(name_only).collect(),
            init_containers: spec.init_containers.map(|cs| cs.into_iter().map(name_only).collect()),
            node_name: spec.node_name,
            ..Default::default()
        });
    }
}

/// The pod's phase, or `""`.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// The pod's UID, or `""`.
pub fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// The pod's name, or `""`.
pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// Whether the pod is Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Upstream's `FilterActivePods`: not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Upstream's `FilterTerminatingPods`: being deleted but not yet terminal.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !is_terminal(pod)
}

/// Whether the pod holds the `batch.kubernetes.io/job-tracking` finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == JOB_TRACKING_FINALIZER))
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Whether the pod has condition `Ready=True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// The completion index from the `batch.kubernetes.io/job-completion-index` annotation; `None`
/// when missing, unparsable or negative (upstream's `unknownCompletionIndex`).
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let v = pod.metadata.annotations.as_ref()?.get(JOB_COMPLETION_INDEX)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

fn annotation_i32(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .map(|v| v as i32)
        .unwrap_or(0)
}

/// `batch.kubernetes.io/job-index-failure-count`, 0 when missing or invalid.
pub fn index_failure_count(pod: &Pod) -> i32 {
    annotation_i32(pod, JOB_INDEX_FAILURE_COUNT)
}

/// `batch.kubernetes.io/job-index-ignored-failure-count`, 0 when missing or invalid.
pub fn index_ignored_failure_count(pod: &Pod) -> i32 {
    annotation_i32(pod, JOB_INDEX_IGNORED_FAILURE_COUNT)
}

/// Both failure counts of the index, counted and ignored.
pub fn index_absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod).saturating_add(index_ignored_failure_count(pod))
}

/// Upstream's `isPodFailed`: phase Failed, or (unless only failed pods are replaced) deleted
/// before succeeding, so that orphaned pods that never reach a phase still count.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// Upstream's `onlyReplaceFailedPods`: `podReplacementPolicy: Failed`, implied by a podFailurePolicy.
pub fn only_replace_failed_pods(job: &Job) -> bool {
    let spec = job.spec.as_ref();
    spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || spec.is_some_and(|s| s.pod_failure_policy.is_some())
}

fn statuses(pod: &Pod) -> (&[ContainerStatus], &[ContainerStatus]) {
    let s = pod.status.as_ref();
    (
        s.and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[]),
        s.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or(&[]),
    )
}

/// Sum of restart counts of all (init) containers.
pub fn restart_count(pod: &Pod) -> i64 {
    let (c, i) = statuses(pod);
    c.iter().chain(i).map(|s| i64::from(s.restart_count.max(0))).sum()
}

fn max_restarts(pod: &Pod) -> i32 {
    statuses(pod).0.iter().map(|s| s.restart_count).max().unwrap_or(0)
}

/// When the pod finished, as upstream's `getFinishedTime`: the latest container finish time if every
/// (sidecar and regular) container terminated, else the `Ready=False` transition, else
/// `deletionTimestamp - gracePeriod`, else the creation time.
pub fn finished_time(pod: &Pod) -> DateTime<Utc> {
    let spec_sidecars: Vec<&str> = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map(|ics| {
            ics.iter().filter(|c| c.restart_policy.as_deref() == Some("Always")).map(|c| c.name.as_str()).collect()
        })
        .unwrap_or_default();
    let (containers, inits) = statuses(pod);
    let mut latest: Option<DateTime<Utc>> = None;
    let mut all_done = true;
    for cs in containers.iter().chain(inits.iter().filter(|s| spec_sidecars.contains(&s.name.as_str()))) {
        match cs.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.as_ref()) {
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
        && let Some(t) = &c.last_transition_time
    {
        return to_chrono(t);
    }
    if let Some(dt) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return to_chrono(dt) - chrono::Duration::seconds(grace);
    }
    pod.metadata.creation_timestamp.as_ref().map(to_chrono).unwrap_or(DateTime::UNIX_EPOCH)
}

fn ready_time(pod: &Pod) -> Option<DateTime<Utc>> {
    ready_condition(pod).filter(|c| c.status == "True").and_then(|c| c.last_transition_time.as_ref()).map(to_chrono)
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
pub fn removal_order(a: &Pod, b: &Pod) -> Ordering {
    let less = |i: &Pod, j: &Pod| -> bool {
        let ni = i.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        let nj = j.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        if ni != nj && (ni.is_empty() || nj.is_empty()) {
            return ni.is_empty();
        }
        let rank = |p: &Pod| match phase(p) {
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
        let ci = i.metadata.creation_timestamp.as_ref().map(to_chrono);
        let cj = j.metadata.creation_timestamp.as_ref().map(to_chrono);
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
    use crate::job::testing::{JobBuilder, PodBuilder, at, terminated};

    #[test]
    fn trimmed_cache_pod_keeps_every_fact_the_controller_reads() {
        use k8s_openapi::api::core::v1::{Container, EnvVar};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let job = JobBuilder::new("j").build();
        let mut pod = PodBuilder::for_job(&job).failed().finished_at(at(7)).build();
        pod.metadata.managed_fields =
            Some(vec![ManagedFieldsEntry { manager: Some("m".into()), ..Default::default() }]);
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name = Some("node-1".into());
        spec.containers = vec![Container {
            name: "main".into(),
            command: Some(vec!["sh".into(), "-c".into(), "x".repeat(4096)]),
            env: Some(vec![EnvVar { name: "A".into(), value: Some("b".into()), ..Default::default() }]),
            ..Default::default()
        }];
        spec.init_containers = Some(vec![Container {
            name: "sidecar".into(),
            restart_policy: Some("Always".into()),
            image: Some("busybox".into()),
            ..Default::default()
        }]);
        // The sidecar finished after the main container: the pod's finish time is the sidecar's
        // only while the trimmed spec still says it is a sidecar (restartPolicy Always).
        pod.status.as_mut().unwrap().init_container_statuses = Some(vec![terminated("sidecar", 0, at(9))]);
        let before = serde_json::to_vec(&pod).unwrap().len();
        let mut trimmed = pod.clone();
        trim_for_cache(&mut trimmed);
        assert!(serde_json::to_vec(&trimmed).unwrap().len() + 4096 < before, "the command is gone");
        assert_eq!(trimmed.metadata.managed_fields, None);
        assert_eq!(trimmed.status, pod.status, "status is kept whole");
        assert_eq!(trimmed.metadata.labels, pod.metadata.labels);
        assert_eq!(trimmed.metadata.annotations, pod.metadata.annotations);
        assert_eq!(trimmed.metadata.finalizers, pod.metadata.finalizers);
        assert_eq!(trimmed.metadata.owner_references, pod.metadata.owner_references);
        let spec = trimmed.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["main"]);
        assert_eq!(spec.containers[0].command, None);
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            (init.name.as_str(), init.restart_policy.as_deref(), init.image.as_deref()),
            ("sidecar", Some("Always"), None)
        );
        assert_eq!((finished_time(&pod), finished_time(&trimmed)), (at(9), at(9)));
    }

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
