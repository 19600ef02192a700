//! Building a pod from the Job's template, as upstream's `manageJob` and `GetPodFromTemplate` do.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::kind::JobKind;
use super::labels::*;

/// Longest `generateName` prefix the API server accepts before adding its 5 random characters.
const MAX_GENERATED_NAME_LENGTH: usize = 58;

/// The controller ownerReference of a batch/v1 Job's pods ([`pod_for`] sets it; for another kind
/// the shell puts that kind's, [`JobKind::controller_ref`], in its place before creating the pod).
pub fn controller_ref(job: &Job) -> OwnerReference {
    <Job as JobKind>::controller_ref(job)
}

/// `generateName` of a pod: `<job>-`, or `<job>-<index>-` for Indexed Jobs (the job name shortened
/// so the prefix stays within 58 characters).
pub fn generate_name(job_name: &str, index: Option<i32>) -> String {
    match index {
        None => format!("{job_name}-"),
        Some(ix) => {
            let suffix = format!("-{ix}-");
            let mut prefix = format!("{job_name}{suffix}");
            if prefix.len() > MAX_GENERATED_NAME_LENGTH {
                let mut keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
                while !job_name.is_char_boundary(keep) {
                    keep -= 1;
                }
                prefix = format!("{}{suffix}", &job_name[..keep]);
            }
            prefix
        }
    }
}

fn add_index_env(c: &mut Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
        return;
    }
    env.push(EnvVar {
        name: COMPLETION_INDEX_ENV.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.labels['{JOB_COMPLETION_INDEX}']"),
            }),
            ..Default::default()
        }),
    });
}

/// The pod to create for the Job: template labels and annotations (plus the Job's identifying
/// labels unless `manualSelector`), the tracking finalizer, the controller reference; for Indexed
/// Jobs the completion-index annotation and label, `hostname: <job>-<index>`, the
/// `JOB_COMPLETION_INDEX` env var in every (init) container, and with backoffLimitPerIndex the
/// index failure counts carried over from `replaced` (the index's last failed pod).
pub fn pod_for(job: &Job, index: Option<i32>, failure_counts: Option<(i32, i32)>) -> Pod {
    // Only the template is copied (not the selector, policies and the rest of the spec).
    let spec = job.spec.as_ref();
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let job_uid = job.metadata.uid.clone().unwrap_or_default();

    let mut labels: BTreeMap<String, String> = tmeta.labels.unwrap_or_default();
    if spec.and_then(|s| s.manual_selector) != Some(true) {
        for (k, v) in [
            (CONTROLLER_UID, &job_uid),
            (JOB_NAME, &job_name),
            (LEGACY_CONTROLLER_UID, &job_uid),
            (LEGACY_JOB_NAME, &job_name),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    let mut annotations: BTreeMap<String, String> = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
        finalizers.push(JOB_TRACKING_FINALIZER.to_string());
    }
    let mut pod_spec = template.spec.unwrap_or_default();
    if let Some(ix) = index {
        annotations.insert(JOB_COMPLETION_INDEX.into(), ix.to_string());
        labels.insert(JOB_COMPLETION_INDEX.into(), ix.to_string());
        pod_spec.hostname = Some(format!("{job_name}-{ix}"));
        for c in pod_spec.init_containers.iter_mut().flatten() {
            add_index_env(c);
        }
        for c in pod_spec.containers.iter_mut() {
            add_index_env(c);
        }
        if let Some((counted, ignored)) = failure_counts {
            annotations.insert(JOB_INDEX_FAILURE_COUNT.into(), counted.to_string());
            if ignored > 0 {
                annotations.insert(JOB_INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
            }
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(&job_name, index)),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::JobBuilder;

    #[test]
    fn non_indexed_pod_from_template() {
        let job = JobBuilder::new("pi").build();
        let pod = pod_for(&job, None, None);
        let m = &pod.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("pi-"));
        assert_eq!(m.namespace.as_deref(), Some("default"));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[CONTROLLER_UID], "uid-pi");
        assert_eq!(labels[JOB_NAME], "pi");
        assert_eq!(labels[LEGACY_CONTROLLER_UID], "uid-pi");
        assert_eq!(labels[LEGACY_JOB_NAME], "pi");
        assert!(!labels.contains_key(JOB_COMPLETION_INDEX));
        assert_eq!(m.finalizers.as_deref(), Some(&[JOB_TRACKING_FINALIZER.to_string()][..]));
        let or = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!((or.api_version.as_str(), or.kind.as_str(), or.name.as_str()), ("batch/v1", "Job", "pi"));
        assert_eq!((or.controller, or.block_owner_deletion), (Some(true), Some(true)));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname, None);
        assert!(spec.containers[0].env.is_none());
    }

    #[test]
    fn indexed_pod_carries_its_index_everywhere() {
        let job = JobBuilder::new("w").indexed().subdomain("svc").init_container("setup").build();
        let pod = pod_for(&job, Some(3), Some((2, 1)));
        let m = &pod.metadata;
        assert_eq!(m.generate_name.as_deref(), Some("w-3-"));
        assert_eq!(m.annotations.as_ref().unwrap()[JOB_COMPLETION_INDEX], "3");
        assert_eq!(m.labels.as_ref().unwrap()[JOB_COMPLETION_INDEX], "3");
        assert_eq!(m.annotations.as_ref().unwrap()[JOB_INDEX_FAILURE_COUNT], "2");
        assert_eq!(m.annotations.as_ref().unwrap()[JOB_INDEX_IGNORED_FAILURE_COUNT], "1");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("w-3"));
        assert_eq!(spec.subdomain.as_deref(), Some("svc"));
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            let env = c.env.as_ref().unwrap();
            let e = env.iter().find(|e| e.name == COMPLETION_INDEX_ENV).expect("env var");
            let path = &e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap().field_path;
            assert_eq!(path, "metadata.labels['batch.kubernetes.io/job-completion-index']");
        }
    }

    #[test]
    fn manual_selector_keeps_template_labels_only_and_long_names_are_cut() {
        let job = JobBuilder::new("m").manual_selector().build();
        let pod = pod_for(&job, None, None);
        assert!(!pod.metadata.labels.as_ref().unwrap().contains_key(CONTROLLER_UID));
        let long = "a".repeat(63);
        let g = generate_name(&long, Some(12));
        assert_eq!(g.len(), 58);
        assert!(g.ends_with("-12-"));
    }
}
