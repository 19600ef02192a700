//! Which pods a Job owns: upstream's `PodControllerRefManager.ClaimPods`, as a pure decision the
//! shell applies (adopt: add the controller ownerReference and the tracking finalizer in one patch;
//! release: remove the ownerReference).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::cached_pod::PodFacts;

/// What to do with one pod of the Job's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the Job and matching its selector: one of its pods.
    Owned,
    /// An orphan matching the selector: adopt it (then it is one of the Job's pods).
    Adopt,
    /// Controlled by the Job but no longer matching: release it (remove the ownerReference).
    Release,
    /// Not the Job's business.
    Ignore,
}

/// Whether `labels` satisfy a metav1 `LabelSelector` (`matchLabels` and `matchExpressions` with
/// `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty selector matches everything, an unknown
/// operator nothing, as `LabelSelectorAsSelector` does.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector_matches_by(sel, |k| labels.get(k).map(String::as_str))
}

/// [`selector_matches`] with the labels read through `label` (key to value).
pub fn selector_matches_by<'a>(sel: &LabelSelector, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    for (k, v) in sel.match_labels.iter().flatten() {
        if label(k) != Some(v.as_str()) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let got = label(&e.key);
        let ok = match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => got.is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Upstream's claim decision for `pod` and `job`. A Job without a selector claims nothing.
pub fn claim<P: PodFacts + ?Sized>(job: &Job, pod: &P) -> Claim {
    let meta = pod.pod_meta();
    if meta.namespace != job.metadata.namespace {
        return Claim::Ignore;
    }
    let Some(sel) = job.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return Claim::Ignore };
    let matches = selector_matches_by(sel, |k| pod.label(k));
    let controller = pod.owner_references().iter().find(|r| r.controller == Some(true));
    let job_deleting = job.metadata.deletion_timestamp.is_some();
    match controller {
        Some(r) if Some(r.uid.as_str()) == job.metadata.uid.as_deref() => {
            if matches {
                Claim::Owned
            } else if job_deleting || meta.deletion_timestamp.is_some() {
                // Neither a Job being deleted nor a pod being deleted is released.
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Ignore,
        None if matches && !job_deleting && meta.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::{JobBuilder, PodBuilder};
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn with_selector(job: Job) -> Job {
        let mut job = job;
        let uid = job.metadata.uid.clone().unwrap_or_default();
        if let Some(s) = job.spec.as_mut() {
            s.selector = Some(LabelSelector {
                match_labels: Some([(crate::job::labels::CONTROLLER_UID.to_string(), uid)].into()),
                match_expressions: None,
            });
        }
        job
    }

    fn labelled(p: PodBuilder, job: &Job) -> Pod {
        let mut pod = p.build();
        pod.metadata.labels =
            job.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone());
        pod
    }

    #[test]
    fn claims_like_upstream() {
        let job = with_selector(JobBuilder::new("j").build());
        let other = with_selector(JobBuilder::new("other").build());
        let owned = labelled(PodBuilder::for_job(&job), &job);
        let orphan = labelled(PodBuilder::for_job(&job).orphan(), &job);
        let unlabelled = PodBuilder::for_job(&job).build();
        let foreign = labelled(PodBuilder::for_job(&other), &job);
        assert_eq!(claim(&job, &owned), Claim::Owned);
        assert_eq!(claim(&job, &orphan), Claim::Adopt);
        assert_eq!(claim(&job, &unlabelled), Claim::Release);
        assert_eq!(claim(&job, &foreign), Claim::Ignore);
        let deleting = with_selector(JobBuilder::new("j").deleting().build());
        assert_eq!(claim(&deleting, &orphan), Claim::Ignore, "a Job being deleted adopts nothing");
        assert_eq!(claim(&deleting, &unlabelled), Claim::Ignore, "nor releases");
        let dying_orphan = labelled(PodBuilder::for_job(&job).orphan().deleting(), &job);
        assert_eq!(claim(&job, &dying_orphan), Claim::Ignore);
        assert_eq!(claim(&JobBuilder::new("j").build(), &owned), Claim::Ignore, "no selector");
    }

    #[test]
    fn selector_operators() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
        };
        assert!(selector_matches(&LabelSelector::default(), &labels));
        assert!(selector_matches(&expr("In", &["1", "2"]), &labels));
        assert!(!selector_matches(&expr("NotIn", &["1"]), &labels));
        assert!(selector_matches(&expr("Exists", &[]), &labels));
        assert!(!selector_matches(&expr("DoesNotExist", &[]), &labels));
        assert!(!selector_matches(&expr("Sometimes", &[]), &labels));
        let ml =
            LabelSelector { match_labels: Some([("a".to_string(), "2".to_string())].into()), match_expressions: None };
        assert!(!selector_matches(&ml, &labels));
    }
}
