//! The `jobwright.dev/v1` `Job` custom resource: batch/v1 Job's spec and status, under our own group.
//!
//! For clusters that cannot hand batch/v1 Jobs to an external controller (no `spec.managedBy`
//! support, or a policy against it), jobwright reconciles its own resource. Its spec and status
//! are **exactly** `k8s_openapi::api::batch::v1::{JobSpec, JobStatus}`, so any Job manifest runs by
//! changing only `apiVersion: batch/v1` to `apiVersion: jobwright.dev/v1`.
//!
//! - group `jobwright.dev`, version `v1`, kind `Job`, plural `jobs`, singular `job`, short name
//!   `wjob`, categories `all` and `jobwright`, namespaced, with the status subresource.
//! - The spec is the newtype [`JobCrdSpec`] (`#[serde(transparent)]` around `JobSpec`), so the wire
//!   format and the schema are JobSpec's; it derefs to `JobSpec`. [`Job::to_batch`] /
//!   [`Job::from_batch`] convert to and from the batch/v1 type so one controller code path serves
//!   both kinds.
//! - The OpenAPI schema comes from k8s-openapi's `schemars` impls through kube's derive: every
//!   subschema inlined (no `$ref`), `x-kubernetes-int-or-string` on IntOrString and Quantity.
//!   [`crd`] then drops descriptions below the first level of `spec`/`status` (like
//!   controller-gen's `maxDescLen`) so the YAML stays far below the 256 KiB limit of
//!   `kubectl apply`'s last-applied annotation; `kubectl explain wjob.spec.<field>` keeps its docs.
//!
//! # Printer columns vs `kubectl get jobs`
//!
//! `kubectl get jobs` prints `STATUS COMPLETIONS DURATION AGE`, computed in Go. A CRD can only
//! print JSONPath values (the first match), so the closest honest columns are:
//!
//! | column | JSONPath | difference from batch/v1 |
//! |---|---|---|
//! | `Status` | `.status.conditions[-1:].type` | the newest condition's type: `Complete`/`Failed` once finished (they are appended last), empty while running with no condition; a resumed Job still shows `Suspended` (its condition stays, with status `False`) where kubectl shows `Running` |
//! | `Completions` | `.spec.completions` | the target only; kubectl prints `succeeded/completions` |
//! | `Succeeded` | `.status.succeeded` | the other half of kubectl's `COMPLETIONS` |
//! | `Started` | `.status.startTime` (date) | time since start: equals `DURATION` while running, keeps growing after the Job finishes |
//! | `Age` | `.metadata.creationTimestamp` (date) | same |
//! | `Finished` (wide) | `.status.completionTime` (date) | time since completion (set for `Complete` only, like upstream) |
//! | `Active`, `Failed` (wide) | `.status.active`, `.status.failed` | extra |
//!
//! `jobwright crd` prints the YAML; `crds/jobwright.dev_jobs.yaml` is generated from it and a test
//! fails when it is stale.

use std::ops::{Deref, DerefMut};

use k8s_openapi::{
    api::batch::v1::{Job as BatchJob, JobSpec, JobStatus},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "jobwright.dev";
/// API version of the custom resource.
pub const VERSION: &str = "v1";
/// `apiVersion` of the custom resource.
pub const API_VERSION: &str = "jobwright.dev/v1";
/// Path of the generated CRD file, relative to the crate root.
pub const CRD_PATH: &str = "crds/jobwright.dev_jobs.yaml";
/// The command that regenerates [`CRD_PATH`].
pub const REGENERATE_COMMAND: &str = "cargo run -- crd > crds/jobwright.dev_jobs.yaml";

/// The spec of a `jobwright.dev/v1` Job: exactly a batch/v1 `JobSpec` (serde-transparent).
///
/// The derive generates [`Job`] (the whole object: `metadata`, `spec`, `status: Option<JobStatus>`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jobwright.dev",
    version = "v1",
    kind = "Job",
    plural = "jobs",
    singular = "job",
    shortname = "wjob",
    category = "all",
    category = "jobwright",
    namespaced,
    status = "JobStatus",
    doc = "A Job run by jobwright: the spec and status of a batch/v1 Job, under the jobwright.dev group.",
    printcolumn = r#"{"name":"Status","type":"string","description":"The newest condition's type (Complete or Failed once finished)","jsonPath":".status.conditions[-1:].type"}"#,
    printcolumn = r#"{"name":"Completions","type":"integer","description":"Desired number of successfully finished pods","jsonPath":".spec.completions"}"#,
    printcolumn = r#"{"name":"Succeeded","type":"integer","description":"Number of pods which reached phase Succeeded","jsonPath":".status.succeeded"}"#,
    printcolumn = r#"{"name":"Started","type":"date","description":"Time since the Job controller started processing the Job","jsonPath":".status.startTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Finished","type":"date","priority":1,"description":"Time since the Job completed","jsonPath":".status.completionTime"}"#,
    printcolumn = r#"{"name":"Active","type":"integer","priority":1,"description":"Number of pending and running pods","jsonPath":".status.active"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","priority":1,"description":"Number of pods which reached phase Failed","jsonPath":".status.failed"}"#
)]
#[serde(transparent)]
pub struct JobCrdSpec(pub JobSpec);

impl Deref for JobCrdSpec {
    type Target = JobSpec;
    fn deref(&self) -> &JobSpec {
        &self.0
    }
}

impl DerefMut for JobCrdSpec {
    fn deref_mut(&mut self) -> &mut JobSpec {
        &mut self.0
    }
}

impl From<JobSpec> for JobCrdSpec {
    fn from(spec: JobSpec) -> Self {
        Self(spec)
    }
}

impl Job {
    /// The same Job as a batch/v1 `Job` (metadata, spec and status are moved unchanged).
    pub fn to_batch(&self) -> BatchJob {
        BatchJob { metadata: self.metadata.clone(), spec: Some(self.spec.0.clone()), status: self.status.clone() }
    }

    /// The batch/v1 Job the controller reconciles for this object: [`Job::to_batch`] plus what
    /// kube-apiserver does to every batch/v1 Job and no API server does to a custom resource:
    /// `SetDefaults_Job` (completions/parallelism 1, backoffLimit 6, podReplacementPolicy, …) and,
    /// unless `manualSelector: true`, the generated selector `batch.kubernetes.io/controller-uid:
    /// <uid>` with the four Job labels forced onto the template (upstream rejects a Job that sets
    /// them otherwise; here the generated values win, so the Job's pods always match).
    pub fn reconciled_batch(&self) -> BatchJob {
        use crate::job::labels::{CONTROLLER_UID, JOB_NAME, LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME};
        let batch = self.to_batch();
        let mut job = match serde_json::to_value(&batch) {
            Ok(mut v) => {
                crate::apiserver::validate::job::default_job(&mut v);
                serde_json::from_value::<BatchJob>(v).unwrap_or(batch)
            }
            Err(_) => batch,
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        if let Some(spec) = job.spec.as_mut()
            && spec.manual_selector != Some(true)
        {
            let labels =
                spec.template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
            for (k, v) in
                [(CONTROLLER_UID, &uid), (JOB_NAME, &name), (LEGACY_CONTROLLER_UID, &uid), (LEGACY_JOB_NAME, &name)]
            {
                labels.insert(k.to_string(), v.clone());
            }
            spec.selector = Some(generated_selector(&uid));
        }
        job
    }

    /// A `jobwright.dev/v1` Job from a batch/v1 one (a missing spec becomes the default spec).
    pub fn from_batch(job: BatchJob) -> Self {
        Self { metadata: job.metadata, spec: JobCrdSpec(job.spec.unwrap_or_default()), status: job.status }
    }
}

/// The selector kube-apiserver generates for a Job with this uid (`generateSelector`).
pub fn generated_selector(uid: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some([(crate::job::labels::CONTROLLER_UID.to_string(), uid.to_string())].into()),
        match_expressions: None,
    }
}

/// The CustomResourceDefinition, post-processed for size (see the module docs).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = Job::crd();
    for version in &mut crd.spec.versions {
        let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) else {
            continue;
        };
        let mut value = serde_json::to_value(&*schema).expect("a JSONSchemaProps serializes");
        if let Some(top) = value.get_mut("properties").and_then(|p| p.as_object_mut()) {
            for part in top.values_mut() {
                // Keep the docs of spec.X and status.X, drop everything deeper.
                if let Some(fields) = part.get_mut("properties").and_then(|p| p.as_object_mut()) {
                    for field in fields.values_mut() {
                        for child in children_mut(field) {
                            strip_descriptions(child);
                        }
                    }
                }
            }
        }
        *schema = serde_json::from_value(value).expect("a stripped JSONSchemaProps deserializes");
    }
    crd
}

/// The CRD as YAML, exactly what `jobwright crd` prints and `crds/` holds.
pub fn crd_yaml() -> String {
    let body = serde_saphyr::to_string(&crd()).expect("a CRD serializes to YAML");
    format!("# Generated by `jobwright crd`; do not edit. Regenerate with: {REGENERATE_COMMAND}\n---\n{body}")
}

/// The subschemas nested in a schema node (properties, items, additionalProperties, *Of).
fn children_mut(node: &mut serde_json::Value) -> Vec<&mut serde_json::Value> {
    let mut out = Vec::new();
    if let Some(obj) = node.as_object_mut() {
        for (key, value) in obj.iter_mut() {
            match key.as_str() {
                "properties" => out.extend(value.as_object_mut().into_iter().flat_map(|m| m.values_mut())),
                "items" | "additionalProperties" | "not" if value.is_object() => out.push(value),
                "allOf" | "anyOf" | "oneOf" => out.extend(value.as_array_mut().into_iter().flatten()),
                _ => {}
            }
        }
    }
    out
}

fn strip_descriptions(node: &mut serde_json::Value) {
    if let Some(obj) = node.as_object_mut() {
        obj.remove("description");
    }
    for child in children_mut(node) {
        strip_descriptions(child);
    }
}

/// Violations of kube-apiserver's structural-schema rules found in `schema` (an
/// `openAPIV3Schema` as JSON): a node without `type` (unless it is `x-kubernetes-int-or-string`
/// or `x-kubernetes-preserve-unknown-fields`), any `$ref`, `properties` together with
/// `additionalProperties`, and `type`/`description`/`default`/`nullable`/`additionalProperties`
/// inside `allOf`/`anyOf`/`oneOf`/`not`. Empty means structural.
pub fn structural_violations(schema: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    check_node(schema, "", false, &mut out);
    out
}

fn check_node(node: &serde_json::Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    if obj.contains_key("$ref") {
        out.push(format!("{path}: $ref is not allowed"));
    }
    let flag = |k: &str| obj.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if in_junctor {
        for k in ["type", "description", "default", "nullable", "additionalProperties"] {
            if obj.contains_key(k) {
                out.push(format!("{path}: {k} must not be set inside allOf/anyOf/oneOf/not"));
            }
        }
    } else if !obj.contains_key("type")
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.push(format!("{path}: type must be set"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: properties and additionalProperties are mutually exclusive"));
    }
    if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
        for (k, v) in props {
            check_node(v, &format!("{path}.{k}"), in_junctor, out);
        }
    }
    for k in ["items", "additionalProperties"] {
        if let Some(v) = obj.get(k).filter(|v| v.is_object()) {
            check_node(v, &format!("{path}.{k}"), in_junctor, out);
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for (i, v) in obj.get(k).and_then(|v| v.as_array()).into_iter().flatten().enumerate() {
            check_node(v, &format!("{path}.{k}[{i}]"), true, out);
        }
    }
    if let Some(v) = obj.get("not") {
        check_node(v, &format!("{path}.not"), true, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    fn schema_json() -> serde_json::Value {
        let crd = crd();
        let schema = crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap();
        serde_json::to_value(schema).unwrap()
    }

    #[test]
    fn the_reconciled_batch_view_has_the_api_server_defaults_and_selector() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "apiVersion": API_VERSION, "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"x": "y"}}, "template": {
                "metadata": {"labels": {"app": "a", "batch.kubernetes.io/controller-uid": "other"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let b = job.reconciled_batch();
        let spec = b.spec.as_ref().unwrap();
        assert_eq!((spec.completions, spec.parallelism, spec.backoff_limit), (Some(1), Some(1), Some(6)));
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        assert_eq!(spec.pod_replacement_policy.as_deref(), Some("TerminatingOrFailed"));
        let sel = spec.selector.as_ref().unwrap().match_labels.clone().unwrap();
        assert_eq!(sel, [("batch.kubernetes.io/controller-uid".to_string(), "u1".to_string())].into());
        let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels["batch.kubernetes.io/controller-uid"], "u1");
        assert_eq!((labels["job-name"].as_str(), labels["app"].as_str()), ("pi", "a"));
        // manualSelector: the user's selector and labels stay.
        let mut manual = job.clone();
        manual.spec.manual_selector = Some(true);
        let m = manual.reconciled_batch();
        assert_eq!(m.spec.unwrap().selector.unwrap().match_labels.unwrap()["x"], "y");
    }

    #[test]
    fn names_scope_and_subresources_match_the_issue() {
        let crd = crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("jobs.jobwright.dev"));
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, "Namespaced");
        let names = &crd.spec.names;
        assert_eq!(names.kind, "Job");
        assert_eq!(names.plural, "jobs");
        assert_eq!(names.singular.as_deref(), Some("job"));
        assert_eq!(names.short_names.as_deref(), Some(&["wjob".to_string()][..]));
        assert_eq!(names.categories.as_deref(), Some(&["all".to_string(), "jobwright".to_string()][..]));
        let v = &crd.spec.versions[0];
        assert_eq!((v.name.as_str(), v.served, v.storage), (VERSION, true, true));
        assert!(v.subresources.as_ref().unwrap().status.is_some(), "status subresource");
        assert_eq!(Job::api_version(&()), API_VERSION);
    }

    #[test]
    fn printer_columns_are_the_documented_ones() {
        let crd = crd();
        let cols: Vec<(String, String, String, i32)> = crd.spec.versions[0]
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.clone(), c.type_.clone(), c.json_path.clone(), c.priority.unwrap_or(0)))
            .collect();
        let expect = [
            ("Status", "string", ".status.conditions[-1:].type", 0),
            ("Completions", "integer", ".spec.completions", 0),
            ("Succeeded", "integer", ".status.succeeded", 0),
            ("Started", "date", ".status.startTime", 0),
            ("Age", "date", ".metadata.creationTimestamp", 0),
            ("Finished", "date", ".status.completionTime", 1),
            ("Active", "integer", ".status.active", 1),
            ("Failed", "integer", ".status.failed", 1),
        ];
        let expect: Vec<_> =
            expect.iter().map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d)).collect();
        assert_eq!(cols, expect);
    }

    #[test]
    fn schema_is_structural() {
        let schema = schema_json();
        let violations = structural_violations(&schema);
        assert!(violations.is_empty(), "{violations:#?}");
        // The checker itself catches what it claims to.
        let bad = serde_json::json!({"type": "object", "properties": {
            "a": {"description": "no type"},
            "b": {"$ref": "#/x", "type": "string"},
            "c": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
            "d": {"type": "string", "anyOf": [{"type": "integer"}]},
        }});
        let v = structural_violations(&bad);
        assert_eq!(v.len(), 4, "{v:#?}");
    }

    #[test]
    fn schema_is_jobspec_and_jobstatus() {
        let schema = schema_json();
        let spec = &schema["properties"]["spec"];
        for field in [
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "podFailurePolicy",
            "successPolicy",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "selector",
            "manualSelector",
            "template",
            "ttlSecondsAfterFinished",
            "completionMode",
            "suspend",
            "podReplacementPolicy",
            "managedBy",
        ] {
            assert!(spec["properties"].get(field).is_some(), "spec.{field} missing");
        }
        assert_eq!(spec["required"], serde_json::json!(["template"]));
        let status = &schema["properties"]["status"]["properties"];
        for field in [
            "conditions",
            "startTime",
            "completionTime",
            "active",
            "succeeded",
            "failed",
            "terminating",
            "completedIndexes",
            "failedIndexes",
            "uncountedTerminatedPods",
            "ready",
        ] {
            assert!(status.get(field).is_some(), "status.{field} missing");
        }
        // IntOrString and Quantity are int-or-string, as in upstream CRDs.
        let container = &spec["properties"]["template"]["properties"]["spec"]["properties"]["containers"]["items"];
        let port = &container["properties"]["livenessProbe"]["properties"]["httpGet"]["properties"]["port"];
        assert_eq!(port["x-kubernetes-int-or-string"], true);
        let limit = &container["properties"]["resources"]["properties"]["limits"]["additionalProperties"];
        assert_eq!(limit["x-kubernetes-int-or-string"], true);
        // First-level docs kept, deeper ones dropped.
        assert!(spec["properties"]["backoffLimit"]["description"].is_string());
        assert!(container.get("description").is_none());
        assert!(crd_yaml().len() < 256 * 1024, "fits kubectl apply's annotation limit");
    }

    #[test]
    fn wire_format_is_a_batch_job_with_another_api_version() {
        let manifest = serde_json::json!({
            "apiVersion": "jobwright.dev/v1",
            "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {
                "completions": 3,
                "backoffLimit": 4,
                "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "pi", "image": "perl:5.34.0", "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]}
                ]}}
            },
            "status": {"succeeded": 1, "active": 2}
        });
        let job: Job = serde_json::from_value(manifest.clone()).unwrap();
        assert_eq!(job.spec.completions, Some(3));
        assert_eq!(job.status.as_ref().unwrap().succeeded, Some(1));
        assert_eq!(serde_json::to_value(&job).unwrap(), manifest, "round trip is lossless");

        let batch = job.to_batch();
        let mut as_batch = serde_json::to_value(&batch).unwrap();
        as_batch["apiVersion"] = "jobwright.dev/v1".into();
        assert_eq!(as_batch, manifest, "only apiVersion differs");
        assert_eq!(serde_json::to_value(Job::from_batch(batch)).unwrap(), manifest);
    }

    #[test]
    fn generated_yaml_parses_back_to_the_same_crd() {
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(&crd_yaml()).unwrap();
        assert_eq!(parsed, crd());
    }

    /// crds/ must be regenerated whenever the types change.
    #[test]
    fn crds_directory_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(on_disk == crd_yaml(), "{CRD_PATH} is stale or missing; regenerate it with `{REGENERATE_COMMAND}`");
    }
}
