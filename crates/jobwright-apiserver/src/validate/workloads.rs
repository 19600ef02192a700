//! Defaulting and the main validation rules of the workload and storage kinds served without a
//! controller (see [`crate::kinds`]): Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ReplicationController, PersistentVolumeClaim, PersistentVolume, HorizontalPodAutoscaler,
//! NetworkPolicy, PriorityClass, StorageClass, CSIDriver.
//!
//! Defaults follow `pkg/apis/apps/v1/defaults.go`, `pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/autoscaling/v{1,2}/defaults.go`, `pkg/apis/networking/v1/defaults.go`,
//! `pkg/apis/scheduling/v1/defaults.go` and `pkg/apis/storage/v1/defaults.go` at 1.33 with
//! default feature gates; pod templates get the Pod defaults ([`super::pod::default_pod_spec`]).
//! Validation covers what a client meets first: replicas, the selector and its match with the
//! template labels, and the pod template (`apps/validation`, `core/validation`).

use serde_json::{Value, json};

use super::ErrorList;
use super::json::{child, default_field, ensure_obj, has};
use super::pod;
use crate::errors::FieldError;
use crate::selector::{LabelSelector, labels_of};

/// The status fields Go writes even at zero (no `omitempty`), so a new object reads back with
/// them as from kube-apiserver (clients with strict models require them).
fn status_zeros(group: &str, version: &str, kind: &str) -> &'static [&'static str] {
    match (group, version, kind) {
        ("apps", _, "DaemonSet") => {
            &["currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"]
        }
        ("apps", _, "ReplicaSet") | ("", _, "ReplicationController") => &["replicas"],
        ("apps", _, "StatefulSet") => &["replicas", "availableReplicas"],
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => &["currentReplicas", "desiredReplicas"],
        ("autoscaling", _, "HorizontalPodAutoscaler") => &["desiredReplicas"],
        _ => &[],
    }
}

/// Sets the defaults of `obj`, of `(group, kind)`; other kinds are left alone.
pub fn default(group: &str, version: &str, kind: &str, obj: &mut Value) {
    let zeros = status_zeros(group, version, kind);
    if !zeros.is_empty() && obj.is_object() {
        let status = ensure_obj(obj, "status");
        for k in zeros {
            default_field(status, k, json!(0));
        }
    }
    match (group, kind) {
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => {
            default_spec_field(obj, "replicas", json!(1));
            default_template(obj);
        }
        ("apps", "StatefulSet") => default_statefulset(obj),
        ("apps", "DaemonSet") => default_daemonset(obj),
        ("", "ReplicationController") => default_replication_controller(obj),
        ("", "PodTemplate") => {
            if let Some(ps) = obj.pointer_mut("/template/spec") {
                pod::default_pod_spec(ps);
            }
        }
        ("", "PersistentVolumeClaim") => default_pvc(obj),
        ("", "PersistentVolume") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                default_field(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default_field(spec, "volumeMode", json!("Filesystem"));
            }
            default_field(ensure_obj(obj, "status"), "phase", json!("Pending"));
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            default_spec_field(obj, "minReplicas", json!(1));
            if version == "v2"
                && let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object())
                && spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty)
            {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(obj),
        ("scheduling.k8s.io", "PriorityClass") => default_field(obj, "preemptionPolicy", json!("PreemptLowerPriority")),
        ("storage.k8s.io", "StorageClass") => {
            default_field(obj, "reclaimPolicy", json!("Delete"));
            default_field(obj, "volumeBindingMode", json!("Immediate"));
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                default_field(spec, "attachRequired", json!(true));
                default_field(spec, "podInfoOnMount", json!(false));
                default_field(spec, "storageCapacity", json!(false));
                default_field(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
                default_field(spec, "requiresRepublish", json!(false));
                default_field(spec, "volumeLifecycleModes", json!(["Persistent"]));
                default_field(spec, "seLinuxMount", json!(false));
            }
        }
        _ => {}
    }
}

fn default_spec_field(obj: &mut Value, k: &str, v: Value) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        default_field(spec, k, v);
    }
}

fn default_template(obj: &mut Value) {
    if let Some(ps) = obj.pointer_mut("/spec/template/spec").filter(|s| s.is_object()) {
        pod::default_pod_spec(ps);
        pod::sync_deprecated_service_account(Some(ps));
    }
}

/// `SetDefaults_Deployment`.
fn default_deployment(obj: &mut Value) {
    default_template(obj);
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_field(spec, "replicas", json!(1));
    let strategy = ensure_obj(spec, "strategy");
    if strategy.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy["type"] == "RollingUpdate" {
        let ru = ensure_obj(strategy, "rollingUpdate");
        default_field(ru, "maxUnavailable", json!("25%"));
        default_field(ru, "maxSurge", json!("25%"));
    }
    default_field(spec, "revisionHistoryLimit", json!(10));
    default_field(spec, "progressDeadlineSeconds", json!(600));
}

/// `SetDefaults_StatefulSet` (StatefulSetAutoDeletePVC on, MaxUnavailableStatefulSet off), and
/// `SetDefaults_PersistentVolumeClaim` on each claim template.
fn default_statefulset(obj: &mut Value) {
    default_template(obj);
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    if spec.get("podManagementPolicy").and_then(Value::as_str).is_none_or(str::is_empty) {
        spec["podManagementPolicy"] = json!("OrderedReady");
    }
    let us = ensure_obj(spec, "updateStrategy");
    if us.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        us["type"] = json!("RollingUpdate");
        ensure_obj(us, "rollingUpdate");
    }
    if us["type"] == "RollingUpdate"
        && let Some(ru) = us.get_mut("rollingUpdate").filter(|r| r.is_object())
    {
        default_field(ru, "partition", json!(0));
    }
    let policy = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy");
    for k in ["whenDeleted", "whenScaled"] {
        if policy.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
            policy[k] = json!("Retain");
        }
    }
    default_field(spec, "replicas", json!(1));
    default_field(spec, "revisionHistoryLimit", json!(10));
    if let Some(templates) = spec.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut) {
        for t in templates.iter_mut().filter(|t| t.is_object()) {
            default_pvc(t);
        }
    }
}

/// `SetDefaults_DaemonSet`.
fn default_daemonset(obj: &mut Value) {
    default_template(obj);
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    let us = ensure_obj(spec, "updateStrategy");
    if us.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        us["type"] = json!("RollingUpdate");
    }
    if us["type"] == "RollingUpdate" {
        let ru = ensure_obj(us, "rollingUpdate");
        default_field(ru, "maxUnavailable", json!(1));
        default_field(ru, "maxSurge", json!(0));
    }
    default_field(spec, "revisionHistoryLimit", json!(10));
}

/// `SetDefaults_ReplicationController`: the selector and the object's labels come from the
/// template's labels when unset; one replica.
fn default_replication_controller(obj: &mut Value) {
    if let Some(ps) = obj.pointer_mut("/spec/template/spec").filter(|s| s.is_object()) {
        pod::default_pod_spec(ps);
    }
    let labels = obj.pointer("/spec/template/metadata/labels").filter(|l| l.is_object()).cloned();
    if let Some(labels) = labels {
        if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object())
            && spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty())
        {
            spec["selector"] = labels.clone();
        }
        let md = ensure_obj(obj, "metadata");
        if md.get("labels").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
            md["labels"] = labels;
        }
    }
    default_spec_field(obj, "replicas", json!(1));
}

/// `SetDefaults_PersistentVolumeClaim`: `Filesystem` volumes, phase `Pending`.
fn default_pvc(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
        default_field(spec, "volumeMode", json!("Filesystem"));
    }
    default_field(ensure_obj(obj, "status"), "phase", json!("Pending"));
}

/// `SetDefaults_NetworkPolicy`: ports default to TCP; policyTypes to `Ingress` (and `Egress`
/// when egress rules are given).
fn default_network_policy(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else { return };
    for dir in ["ingress", "egress"] {
        for rule in spec.get_mut(dir).and_then(Value::as_array_mut).into_iter().flatten() {
            for p in rule.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                default_field(p, "protocol", json!("TCP"));
            }
        }
    }
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
        spec["policyTypes"] = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
    }
}

/// The rules of `apps/validation` every workload shares, for `(group, kind)`; empty for others.
pub fn validate(group: &str, kind: &str, obj: &Value) -> ErrorList {
    let null = Value::Null;
    let spec = obj.get("spec").unwrap_or(&null);
    let mut errs = ErrorList::new();
    let workload = matches!((group, kind), ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"));
    let rc = (group, kind) == ("", "ReplicationController");
    if !workload && !rc {
        return errs;
    }
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64) {
        errs.extend(super::meta::nonnegative(r, "spec.replicas"));
    }
    let tpl_labels =
        obj.pointer("/spec/template/metadata/labels").map(|l| labels_of(&json!({"metadata": {"labels": l}})));
    if workload {
        let sel = spec.get("selector").unwrap_or(&null);
        if has(spec, "selector") {
            match LabelSelector::from_label_selector(sel) {
                Ok(s) if s.is_empty() => {
                    errs.push(FieldError::invalid(
                        "spec.selector",
                        sel.clone(),
                        format!("empty selector is invalid for {}", kind_word(kind)),
                    ));
                }
                Ok(s) => {
                    let labels = tpl_labels.clone().unwrap_or_default();
                    if !s.matches(&labels) {
                        errs.push(FieldError::invalid(
                            "spec.template.metadata.labels",
                            obj.pointer("/spec/template/metadata/labels").cloned().unwrap_or(json!({})),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
                Err(e) => errs.push(FieldError::invalid("spec.selector", sel.clone(), e)),
            }
        }
    } else if let (Some(sel), Some(labels)) = (spec.get("selector").and_then(Value::as_object), &tpl_labels) {
        let matches = sel.iter().all(|(k, v)| v.as_str().is_some_and(|v| labels.get(k).map(String::as_str) == Some(v)));
        if !sel.is_empty() && !matches {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                obj.pointer("/spec/template/metadata/labels").cloned().unwrap_or(json!({})),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(tpl) = spec.get("template").filter(|t| t.is_object()) {
        errs.extend(pod::validate_pod_template_spec(tpl, "spec.template"));
        let policy = tpl.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("Always");
        if policy != "Always" {
            errs.push(FieldError::not_supported(
                child("spec.template", "spec.restartPolicy"),
                json!(policy),
                &["Always"],
            ));
        }
    }
    errs
}

fn kind_word(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "deployment",
        "ReplicaSet" => "replicaset",
        "StatefulSet" => "statefulset",
        _ => "daemonset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_as_upstream() {
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        default("apps", "v1", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"], "/dev/termination-log");
        // A Recreate strategy gets no rollingUpdate.
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        default("apps", "v1", "Deployment", &mut r);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn statefulset_daemonset_rc_and_pvc_defaults() {
        let mut s = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}});
        default("apps", "v1", "StatefulSet", &mut s);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(s["spec"]["volumeClaimTemplates"][0]["status"], json!({"phase": "Pending"}));
        let mut ds = json!({"spec": {}});
        default("apps", "v1", "DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            ds["status"],
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0})
        );
        let mut rc = json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}});
        default("", "v1", "ReplicationController", &mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        let mut np = json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}});
        default("networking.k8s.io", "v1", "NetworkPolicy", &mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let mut hpa = json!({"spec": {"maxReplicas": 2}});
        default("autoscaling", "v2", "HorizontalPodAutoscaler", &mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
    }

    #[test]
    fn workload_validation_messages() {
        let d = json!({"spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        let msgs: Vec<String> = validate("apps", "Deployment", &d).iter().map(ToString::to_string).collect();
        assert!(
            msgs.contains(&"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()),
            "{msgs:?}"
        );
        assert!(msgs.contains(&"spec.template.metadata.labels: Invalid value: map[string]string{\"a\":\"c\"}: `selector` does not match template `labels`".to_string()), "{msgs:?}");
        assert!(
            msgs.contains(
                &"spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
                    .to_string()
            ),
            "{msgs:?}"
        );
        let mut empty =
            json!({"spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        default("apps", "v1", "DaemonSet", &mut empty);
        let msgs: Vec<String> = validate("apps", "DaemonSet", &empty).iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            ["spec.selector: Invalid value: map[string]string{}: empty selector is invalid for daemonset"]
        );
    }
}
