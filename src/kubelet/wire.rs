//! Pods as the node simulator reads them from the API: every field but `metadata.managedFields`.
//!
//! The simulator never reads `managedFields`, yet a k8s-openapi `Pod` decodes them into a
//! `serde_json::Value` tree per entry (a `BTreeMap` per level), which the pod watch, every
//! status-write response and every whole-pod clone then paid for: about 3% of `jobwright local`'s
//! CPU in a scale run. [`KubeletPod`] decodes the same JSON skipping that one key (serde skips an
//! unknown key without building it), so the rest of the simulator still works on a plain `Pod`;
//! a status `PUT` built from one sends no `managedFields`, as the worker's did before.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

/// A `Pod` decoded without `metadata.managedFields` (always `None` here).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubeletPod(pub Pod);

impl<'de> Deserialize<'de> for KubeletPod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WirePod::deserialize(d)?;
        let m = w.metadata;
        let metadata = ObjectMeta {
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            managed_fields: None,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            self_link: m.self_link,
            uid: m.uid,
        };
        Ok(KubeletPod(Pod { metadata, spec: w.spec, status: w.status }))
    }
}

impl kube::Resource for KubeletPod {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// The JSON shape (`apiVersion`, `kind` and unknown keys are skipped, as `managedFields`).
#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

/// `ObjectMeta` but `managedFields`.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireMeta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every field of a pod as the API server serves it survives but `managedFields`: decoding
    /// the JSON as a `KubeletPod` gives the `Pod` k8s-openapi decodes, with `managedFields` unset.
    #[test]
    fn decodes_every_field_but_managed_fields() {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                "generateName": "p-", "selfLink": "/api/v1/namespaces/ns/pods/p",
                "creationTimestamp": "2026-12-07T00:00:00Z", "deletionTimestamp": "2026-12-07T00:01:00Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"a": "b"}, "annotations": {"jobwright.dev/simulate-duration": "0"},
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u-0", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]
            },
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["true"]}], "nodeName": "n-0",
                     "restartPolicy": "Never"},
            "status": {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": false,
                                              "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]}
        });
        let mut want: Pod = serde_json::from_value(doc.clone()).unwrap();
        assert!(want.metadata.managed_fields.is_some(), "the fixture has managedFields");
        want.metadata.managed_fields = None;
        let got: KubeletPod = serde_json::from_value(doc).unwrap();
        assert_eq!(got.0, want);
    }

    /// Nulls and a missing metadata decode as k8s-openapi decodes them.
    #[test]
    fn nulls_and_missing_sections() {
        let got: KubeletPod =
            serde_json::from_value(json!({"metadata": {"labels": null, "managedFields": null}, "spec": null})).unwrap();
        assert_eq!(got.0, Pod::default());
        let got: KubeletPod = serde_json::from_value(json!({})).unwrap();
        assert_eq!(got.0, Pod::default());
    }
}
