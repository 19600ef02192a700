//! Job status helpers: conditions (upstream's `newCondition`, `ensureJobConditionStatus`), finished
//! checks, and the move of `uncountedTerminatedPods` into the counters.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};

use super::labels::condition;
use super::pods::to_time;

/// A condition with both timestamps at `now`; empty reason/message are left out.
pub fn new_condition(type_: &str, status: &str, reason: &str, message: &str, now: DateTime<Utc>) -> JobCondition {
    JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_probe_time: Some(to_time(now)),
        last_transition_time: Some(to_time(now)),
    }
}

/// The condition of that type, if any.
pub fn find<'a>(conditions: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The condition of that type if its status is `True`.
pub fn find_true<'a>(status: Option<&'a JobStatus>, type_: &str) -> Option<&'a JobCondition> {
    find(status?.conditions.as_deref()?, type_).filter(|c| c.status == "True")
}

/// Upstream's `IsJobFinished`: `Complete` or `Failed` is `True`.
pub fn is_finished(job: &Job) -> bool {
    let st = job.status.as_ref();
    find_true(st, condition::COMPLETE).is_some() || find_true(st, condition::FAILED).is_some()
}

/// Sets the condition of that type to the given status/reason/message, replacing it (with fresh
/// timestamps) if any of them changed; a missing condition is only added when `status` is not
/// `False`. Returns whether the list changed.
pub fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status
            || c.reason.as_deref().unwrap_or("") != reason
            || c.message.as_deref().unwrap_or("") != message
        {
            *c = new_condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        conditions.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// Moves the UIDs of `uncountedTerminatedPods` whose pod no longer holds the tracking finalizer
/// (not in `with_finalizer`) into `succeeded` / `failed`. Returns whether anything moved.
pub fn clean_uncounted(status: &mut JobStatus, with_finalizer: &BTreeSet<String>) -> bool {
    let u = status.uncounted_terminated_pods.get_or_insert_with(UncountedTerminatedPods::default);
    let mut changed = false;
    let mut moved = |list: &mut Option<Vec<String>>| -> i32 {
        let Some(l) = list.as_mut() else { return 0 };
        let before = l.len();
        l.retain(|uid| with_finalizer.contains(uid));
        let n = before - l.len();
        if l.is_empty() {
            *list = None;
        }
        if n > 0 {
            changed = true;
        }
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let s = moved(&mut u.succeeded);
    let f = moved(&mut u.failed);
    if s > 0 {
        status.succeeded = nonzero(status.succeeded.unwrap_or(0).saturating_add(s));
    }
    if f > 0 {
        status.failed = nonzero(status.failed.unwrap_or(0).saturating_add(f));
    }
    changed
}

/// Number of UIDs in `uncountedTerminatedPods`.
pub fn uncounted_len(status: &JobStatus) -> usize {
    status
        .uncounted_terminated_pods
        .as_ref()
        .map_or(0, |u| u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len))
}

/// `Some(v)` unless zero, as `omitempty` counters round-trip through the API.
pub fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::t0;

    #[test]
    fn ensure_condition_follows_upstream() {
        let mut c = vec![];
        assert!(
            !ensure_condition(&mut c, "Suspended", "False", "JobResumed", "Job resumed", t0()),
            "no False from nothing"
        );
        assert!(c.is_empty());
        assert!(ensure_condition(&mut c, "Suspended", "True", "JobSuspended", "Job suspended", t0()));
        assert!(!ensure_condition(&mut c, "Suspended", "True", "JobSuspended", "Job suspended", t0()), "unchanged");
        assert!(ensure_condition(&mut c, "Suspended", "False", "JobResumed", "Job resumed", t0()));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].status.as_str(), c[0].reason.as_deref()), ("False", Some("JobResumed")));
    }

    #[test]
    fn clean_uncounted_moves_only_pods_without_finalizer() {
        let mut st = JobStatus {
            succeeded: Some(2),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let with: BTreeSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut st, &with));
        assert_eq!((st.succeeded, st.failed), (Some(3), Some(1)));
        let u = st.uncounted_terminated_pods.as_ref().unwrap();
        assert_eq!((u.succeeded.clone(), u.failed.clone()), (Some(vec!["b".to_string()]), None));
        assert!(!clean_uncounted(&mut st, &with), "idempotent");
    }
}
