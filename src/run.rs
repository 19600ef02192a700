//! `--run FILE`: apply manifests, wait for their Jobs to finish, report the outcome and the logs.
//!
//! This is what a newcomer's first command does under `jobwright local`: it plays the part of
//! `kubectl apply -f FILE && kubectl wait ... && kubectl logs ...` inside the process, through the
//! same API any client uses, so the one command shows the whole story.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;

/// Why a run could not be carried out (a Job that fails is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not a Kubernetes manifest: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: document {index} has no apiVersion/kind/metadata.name")]
    Incomplete { path: String, index: usize },
    #[error("{path}: no objects to apply")]
    Empty { path: String },
    #[error("{kind} {name}: {source}")]
    Api { kind: String, name: String, source: kube::Error },
    #[error("Jobs did not finish within {0:?}")]
    Timeout(Duration),
}

/// How one Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub namespace: String,
    pub name: String,
    /// `Complete` or `Failed`.
    pub condition: String,
    pub reason: String,
    pub message: String,
    pub succeeded: i32,
    pub failed: i32,
}

impl JobOutcome {
    pub fn complete(&self) -> bool {
        self.condition == "Complete"
    }
}

/// Parse every YAML document of `text` into JSON values, skipping empty documents.
pub fn parse_manifests(path: &str, text: &str) -> Result<Vec<Value>, RunError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|e| RunError::Parse { path: path.to_string(), message: e.to_string() })?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Check that the file at `path` can be read and holds at least one complete manifest, before
/// anything starts.
pub fn check_file(path: &str) -> Result<(), RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::Read { path: path.to_string(), source })?;
    let docs = parse_manifests(path, &text)?;
    if docs.is_empty() {
        return Err(RunError::Empty { path: path.to_string() });
    }
    for (index, doc) in docs.iter().enumerate() {
        if !(doc["apiVersion"].is_string() && doc["kind"].is_string() && doc["metadata"]["name"].is_string()) {
            return Err(RunError::Incomplete { path: path.to_string(), index });
        }
    }
    Ok(())
}

/// Apply (server-side, field manager `jobwright`) every object in the file at `path`, then wait
/// for each applied Job to reach Complete or Failed, printing the outcome and its pods' logs to
/// stdout. Returns the outcomes in file order.
pub async fn apply_and_wait(client: &Client, path: &str, timeout: Duration) -> Result<Vec<JobOutcome>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::Read { path: path.to_string(), source })?;
    let mut jobs = Vec::new();
    for (index, doc) in parse_manifests(path, &text)?.into_iter().enumerate() {
        let (Some(api_version), Some(kind), Some(name)) =
            (doc["apiVersion"].as_str(), doc["kind"].as_str(), doc["metadata"]["name"].as_str())
        else {
            return Err(RunError::Incomplete { path: path.to_string(), index });
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api_err = |source| RunError::Api { kind: kind.to_string(), name: name.to_string(), source };
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.map_err(api_err)?;
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(client.clone(), &namespace, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        api.patch(name, &PatchParams::apply("jobwright").force(), &Patch::Apply(&doc)).await.map_err(api_err)?;
        crate::local::say!("{}/{} applied", ar.plural, name);
        if api_version == "batch/v1" && kind == "Job" {
            jobs.push((namespace, name.to_string()));
        }
    }
    let mut outcomes = Vec::new();
    for (namespace, name) in jobs {
        let outcome = tokio::time::timeout(timeout, wait_for_job(client, &namespace, &name))
            .await
            .map_err(|_| RunError::Timeout(timeout))??;
        print_outcome(client, &outcome).await;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The terminal condition of a Job, if it has one.
pub fn finished(job: &Job) -> Option<JobOutcome> {
    let status = job.status.as_ref()?;
    let cond = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    Some(JobOutcome {
        namespace: job.namespace().unwrap_or_default(),
        name: job.name_any(),
        condition: cond.type_.clone(),
        reason: cond.reason.clone().unwrap_or_default(),
        message: cond.message.clone().unwrap_or_default(),
        succeeded: status.succeeded.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
    })
}

async fn wait_for_job(client: &Client, namespace: &str, name: &str) -> Result<JobOutcome, RunError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, cfg).boxed();
    loop {
        let event = stream.try_next().await.map_err(|e| RunError::Api {
            kind: "Job".into(),
            name: name.to_string(),
            source: kube::Error::Service(Box::new(e)),
        })?;
        match event {
            Some(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) => {
                if let Some(outcome) = finished(&job) {
                    return Ok(outcome);
                }
            }
            Some(_) => {}
            None => return Err(RunError::Timeout(Duration::ZERO)),
        }
    }
}

async fn print_outcome(client: &Client, o: &JobOutcome) {
    crate::local::say!(
        "job/{}: {} ({}) succeeded={} failed={}{}",
        o.name,
        o.condition,
        o.reason,
        o.succeeded,
        o.failed,
        if o.message.is_empty() { String::new() } else { format!(": {}", o.message) }
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &o.namespace);
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={}", o.name));
    let Ok(list) = pods.list(&lp).await else { return };
    for pod in list.items {
        let pod_name = pod.name_any();
        match pods.logs(&pod_name, &LogParams::default()).await {
            Ok(text) => {
                for line in text.lines() {
                    crate::local::say!("  {pod_name}: {line}");
                }
            }
            Err(e) => crate::local::say!("  {pod_name}: (no logs: {e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_split_into_documents_and_skip_empty_ones() {
        let docs = parse_manifests("x", "a: 1\n---\n---\nkind: Job\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Job");
        assert!(matches!(parse_manifests("x", "a: [1"), Err(RunError::Parse { .. })));
    }

    #[test]
    fn every_example_parses_with_a_name() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let docs = parse_manifests(&path.display().to_string(), &text).unwrap();
            assert!(!docs.is_empty(), "{}", path.display());
            for d in docs {
                assert!(d["metadata"]["name"].is_string(), "{}", path.display());
            }
        }
    }

    #[test]
    fn only_true_terminal_conditions_finish_a_job() {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j", "namespace": "default"},
            "status": {"succeeded": 1, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "False"}]}
        }))
        .unwrap();
        assert!(finished(&job).is_none());
        job.status.as_mut().unwrap().conditions.as_mut().unwrap()[1].status = "True".into();
        let o = finished(&job).unwrap();
        assert!(o.complete());
        assert_eq!(o.succeeded, 1);
    }
}
