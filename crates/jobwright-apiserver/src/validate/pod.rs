//! Pods and pod templates: defaulting (`pkg/apis/core/v1/defaults.go` plus the admission plugins
//! that mutate every Pod: ServiceAccount, Priority, DefaultTolerationSeconds), the pod strategy's
//! `PrepareForCreate`/`PrepareForUpdate`, and the parts of `pkg/apis/core/validation` that matter
//! for workloads (containers, ports, env, volumes and mounts, restart/DNS/pull policies,
//! tolerations, the pod update rules).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::json::{arr_of, child, default_field, empty_str, has, index, int_of, obj_of, str_of};
use super::meta::{
    self, immutable, inclusive_range_error, is_dns1123_label, is_qualified_name, is_valid_label_value, validate_labels,
};
use super::{ErrorList, Operation};
use crate::errors::{FieldError, FieldErrorType};

/// The toleration seconds the DefaultTolerationSeconds admission plugin gives the not-ready and
/// unreachable taints.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Strategy entry point for `pods`.
pub fn admit(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    match (op, old) {
        (Operation::Create, _) | (_, None) => {
            default_pod(obj);
            admission_defaults(obj);
            prepare_for_create(obj);
            let errs = validate_pod_create(obj);
            if !errs.is_empty() {
                return Err(errs);
            }
            sync_deprecated_service_account(obj.get_mut("spec"));
            Ok(vec![])
        }
        (Operation::Update, Some(old)) => {
            default_pod(obj);
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), old.get("status").cloned().unwrap_or(json!({})));
            }
            sync_deprecated_service_account(obj.get_mut("spec"));
            let errs = validate_pod_update(obj, old);
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
        (Operation::UpdateStatus, Some(old)) => {
            prepare_for_status_update(obj, old);
            let errs = validate_pod_status_update(obj, old);
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
    }
}

// ---------------------------------------------------------------- defaulting

/// `SetDefaults_Pod` + `SetDefaults_PodSpec` and everything below it, for a whole Pod.
pub fn default_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    // If limits are specified but requests are not, requests default to limits (pods only).
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                requests_from_limits(c);
            }
        }
    }
    default_field(spec, "enableServiceLinks", json!(true));
    default_pod_spec(spec);
}

fn requests_from_limits(c: &mut Value) {
    let Some(limits) = c.get("resources").and_then(|r| r.get("limits")).and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(res) = c.get_mut("resources").filter(|r| r.is_object()) else { return };
    default_field(res, "requests", json!({}));
    if let Some(req) = res.get_mut("requests").and_then(Value::as_object_mut) {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

/// `SetDefaults_PodSpec` and the container, port, volume, probe and env defaulters.
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    for k in ["dnsPolicy", "restartPolicy", "schedulerName"] {
        if spec.get(k).and_then(Value::as_str) == Some("") {
            spec[k] = match k {
                "dnsPolicy" => json!("ClusterFirst"),
                "restartPolicy" => json!("Always"),
                _ => json!("default-scheduler"),
            };
        }
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter(|c| c.is_object()) {
                default_container(c, host_network);
            }
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter(|v| v.is_object()) {
            default_volume(v);
        }
    }
}

fn default_container(c: &mut Value, host_network: bool) {
    if empty_str(c, "imagePullPolicy") {
        let policy = if image_tag(str_of(c, "image").unwrap_or_default()).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c["imagePullPolicy"] = json!(policy);
    }
    if empty_str(c, "terminationMessagePath") {
        c["terminationMessagePath"] = json!("/dev/termination-log");
    }
    if empty_str(c, "terminationMessagePolicy") {
        c["terminationMessagePolicy"] = json!("File");
    }
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if empty_str(p, "protocol") {
                p["protocol"] = json!("TCP");
            }
            if host_network
                && p.get("hostPort").is_none_or(|h| h.as_i64() == Some(0) || h.is_null())
                && let Some(cp) = p.get("containerPort").cloned()
            {
                p["hostPort"] = cp;
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default_field(p, "timeoutSeconds", json!(1));
            default_field(p, "periodSeconds", json!(10));
            default_field(p, "successThreshold", json!(1));
            default_field(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                default_field(h, "path", json!("/"));
                default_field(h, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e.get_mut("valueFrom").and_then(|v| v.get_mut("fieldRef")).filter(|f| f.is_object()) {
                default_field(fr, "apiVersion", json!("v1"));
            }
        }
    }
}

/// The tag of an image reference the way `parsers.ParseImageName` sees it: `latest` when there is
/// neither tag nor digest, `None` for a digest-only reference.
pub fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag.to_string()),
        None if digest.is_some() => None,
        None => Some("latest".to_string()),
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Value) {
    if !VOLUME_SOURCES.iter().any(|s| has(v, s)) {
        v["emptyDir"] = json!({});
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
            default_field(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").filter(|h| h.is_object()) {
        default_field(h, "type", json!(""));
    }
}

/// What the admission plugins every kube-apiserver runs add to a new Pod: the `default` service
/// account, priority 0 with `PreemptLowerPriority`, and the not-ready/unreachable tolerations.
pub fn admission_defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if empty_str(spec, "serviceAccountName") {
        let sa = str_of(spec, "serviceAccount").filter(|s| !s.is_empty()).unwrap_or("default").to_string();
        spec["serviceAccountName"] = json!(sa);
    }
    if empty_str(spec, "priorityClassName") {
        default_field(spec, "priority", json!(0));
    }
    default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    let mut tolerations = arr_of(spec, "tolerations").to_vec();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = tolerations.iter().any(|t| {
            let effect = str_of(t, "effect").unwrap_or_default();
            let k = str_of(t, "key").unwrap_or_default();
            (effect.is_empty() || effect == "NoExecute") && (k == key || k.is_empty())
        });
        if !tolerated {
            tolerations.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
    spec["tolerations"] = Value::Array(tolerations);
}

/// The v1 conversion: `serviceAccount` is a deprecated alias of `serviceAccountName` (which wins
/// when both are set), and the output carries both.
pub fn sync_deprecated_service_account(spec: Option<&mut Value>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else { return };
    if empty_str(spec, "serviceAccountName")
        && let Some(sa) = str_of(spec, "serviceAccount").filter(|s| !s.is_empty()).map(str::to_string)
    {
        spec["serviceAccountName"] = json!(sa);
    }
    if let Some(sa) = str_of(spec, "serviceAccountName").filter(|s| !s.is_empty()).map(str::to_string) {
        spec["serviceAccount"] = json!(sa);
    }
}

// ---------------------------------------------------------------- prepare

/// `podStrategy.PrepareForCreate`: status is `{phase: Pending, qosClass}`; a pod with scheduling
/// gates gets `PodScheduled=False` with reason `SchedulingGated`.
pub fn prepare_for_create(pod: &mut Value) {
    let qos = qos_class(pod.get("spec").unwrap_or(&Value::Null));
    let mut status = json!({"phase": "Pending", "qosClass": qos});
    if pod.get("spec").is_some_and(|s| !arr_of(s, "schedulingGates").is_empty()) {
        status["conditions"] = json!([{
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
            "lastProbeTime": null,
            "lastTransitionTime": null,
        }]);
    }
    if let Some(m) = pod.as_object_mut() {
        m.insert("status".into(), status);
    }
}

/// `podStatusStrategy.PrepareForUpdate`: the spec and ownerReferences stay as stored, an empty
/// qosClass is backfilled.
pub fn prepare_for_status_update(pod: &mut Value, old: &Value) {
    let Some(m) = pod.as_object_mut() else { return };
    m.insert("spec".into(), old.get("spec").cloned().unwrap_or(Value::Null));
    let old_refs = old.get("metadata").and_then(|md| md.get("ownerReferences")).cloned();
    if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        match old_refs {
            Some(r) => md.insert("ownerReferences".into(), r),
            None => md.remove("ownerReferences"),
        };
    }
    let old_qos = old.get("status").and_then(|s| s.get("qosClass")).cloned();
    if let Some(q) = old_qos
        && let Some(st) = m.get_mut("status").filter(|s| s.is_object())
        && empty_str(st, "qosClass")
    {
        st["qosClass"] = q;
    }
}

/// The pod's QoS class from its containers' cpu/memory requests and limits (`qos.GetPodQOS`):
/// BestEffort without any, Guaranteed when every container limits both cpu and memory and the
/// summed requests equal the summed limits, Burstable otherwise. Zero quantities don't count.
pub fn qos_class(spec: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in arr_of(spec, "containers").iter().chain(arr_of(spec, "initContainers")) {
        let res = c.get("resources").unwrap_or(&Value::Null);
        let mut climits = 0;
        for r in ["cpu", "memory"] {
            if let Some(q) = obj_of(res, "requests").and_then(|m| m.get(r)).map(quantity).filter(|q| *q != 0.0) {
                *requests.entry(r).or_default() += q;
            }
            if let Some(l) = obj_of(res, "limits").and_then(|m| m.get(r)).map(quantity).filter(|l| *l != 0.0) {
                *limits.entry(r).or_default() += l;
                climits += 1;
            }
        }
        if climits != 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let all_match =
        requests.iter().all(|(k, q)| limits.get(k).is_some_and(|l| (l - q).abs() <= f64::EPSILON * l.abs().max(1.0)));
    if guaranteed && all_match { "Guaranteed" } else { "Burstable" }
}

/// A resource quantity as a number (good enough to compare requests with limits).
pub fn quantity(v: &Value) -> f64 {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => return n.as_f64().unwrap_or(0.0),
        _ => return 0.0,
    };
    let suffixes: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suf, mul) in suffixes {
        if let Some(num) = s.strip_suffix(suf) {
            return num.parse::<f64>().map(|n| n * mul).unwrap_or(0.0);
        }
    }
    s.parse::<f64>().unwrap_or(0.0)
}

// ---------------------------------------------------------------- validation

/// `ValidatePodCreate`.
pub fn validate_pod_create(pod: &Value) -> ErrorList {
    let mut errs = meta::validate_object_meta(pod, true, meta::name_is_dns_subdomain);
    let null = Value::Null;
    let spec = pod.get("spec").unwrap_or(&null);
    errs.extend(validate_pod_spec(spec, "spec"));
    errs.extend(validate_containers_only_for_pod(arr_of(spec, "containers"), "spec.containers"));
    if !arr_of(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden("spec.ephemeralContainers", "cannot be set on create"));
    }
    if !empty_str(spec, "nodeName") && !arr_of(spec, "schedulingGates").is_empty() {
        errs.push(FieldError::forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"));
    }
    errs
}

/// `validateContainersOnlyForPod`: checks a pod makes and a pod template doesn't (an image with
/// leading or trailing whitespace).
fn validate_containers_only_for_pod(containers: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    for (i, c) in containers.iter().enumerate() {
        let image = str_of(c, "image").unwrap_or_default();
        if image.len() != image.trim().len() {
            errs.push(FieldError::invalid(
                format!("{path}[{i}].image"),
                json!(image),
                "must not have leading or trailing whitespace",
            ));
        }
    }
    errs
}

/// `ValidatePodTemplateSpec` (pod templates inside Jobs, CronJobs and other workloads). Note that
/// upstream reports template labels at `<path>.labels`, not `<path>.metadata.labels`.
pub fn validate_pod_template_spec(tpl: &Value, path: &str) -> ErrorList {
    let null = Value::Null;
    let md = tpl.get("metadata").unwrap_or(&null);
    let mut errs = validate_labels(md.get("labels"), &child(path, "labels"));
    errs.extend(meta::validate_annotations(md.get("annotations"), &child(path, "annotations")));
    let spec = tpl.get("spec").unwrap_or(&null);
    errs.extend(validate_pod_spec(spec, &child(path, "spec")));
    if !arr_of(spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            child(path, "spec.ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

fn dns_label(v: &str, path: &str) -> ErrorList {
    is_dns1123_label(v).into_iter().map(|m| FieldError::invalid(path, json!(v), m)).collect()
}

/// `ValidatePodSpec`: the parts a workload needs.
pub fn validate_pod_spec(spec: &Value, path: &str) -> ErrorList {
    let mut errs = vec![];
    let (volumes, verrs) = validate_volumes(arr_of(spec, "volumes"), &child(path, "volumes"));
    errs.extend(verrs);
    let containers = arr_of(spec, "containers");
    let cpath = child(path, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    } else {
        let mut names = BTreeSet::new();
        for (i, c) in containers.iter().enumerate() {
            let p = index(&cpath, i);
            errs.extend(validate_container_common(c, &volumes, &p));
            let name = str_of(c, "name").unwrap_or_default();
            if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&p, "name"), json!(name)));
            }
            if has(c, "restartPolicy") {
                errs.push(FieldError::forbidden(child(&p, "restartPolicy"), "may not be set for non-init containers"));
            }
        }
    }
    let all_names: BTreeSet<&str> = containers.iter().map(|c| str_of(c, "name").unwrap_or_default()).collect();
    let ipath = child(path, "initContainers");
    let mut init_names = BTreeSet::new();
    for (i, c) in arr_of(spec, "initContainers").iter().enumerate() {
        let p = index(&ipath, i);
        errs.extend(validate_container_common(c, &volumes, &p));
        let name = str_of(c, "name").unwrap_or_default();
        if all_names.contains(name) || !init_names.insert(name) {
            errs.push(FieldError::duplicate(child(&p, "name"), json!(name)));
        }
        // Only sidecars (`restartPolicy: Always`) may set a container restart policy.
        if let Some(rp) = c.get("restartPolicy").filter(|v| !v.is_null())
            && rp.as_str() != Some("Always")
        {
            errs.push(FieldError::not_supported(child(&p, "restartPolicy"), rp.clone(), &["Always"]));
        }
    }
    errs.extend(one_of(spec, "restartPolicy", &child(path, "restartPolicy"), &["Always", "OnFailure", "Never"]));
    errs.extend(one_of(
        spec,
        "dnsPolicy",
        &child(path, "dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    ));
    errs.extend(validate_labels(spec.get("nodeSelector"), &child(path, "nodeSelector")));
    for (k, f) in
        [("serviceAccountName", meta::name_is_dns_subdomain as meta::NameFn), ("nodeName", meta::name_is_dns_subdomain)]
    {
        if let Some(v) = str_of(spec, k).filter(|v| !v.is_empty()) {
            errs.extend(f(v, false).into_iter().map(|m| FieldError::invalid(child(path, k), json!(v), m)));
        }
    }
    if let Some(v) = int_of(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&v)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            json!(v),
            inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for k in ["hostname", "subdomain"] {
        if let Some(v) = str_of(spec, k).filter(|v| !v.is_empty()) {
            errs.extend(dns_label(v, &child(path, k)));
        }
    }
    errs.extend(validate_tolerations(arr_of(spec, "tolerations"), &child(path, "tolerations")));
    if let Some(p) = str_of(spec, "preemptionPolicy")
        && !matches!(p, "PreemptLowerPriority" | "Never")
    {
        errs.push(FieldError::not_supported(
            child(path, "preemptionPolicy"),
            json!(p),
            &["Never", "PreemptLowerPriority"],
        ));
    }
    errs
}

/// The `switch` upstream writes for enum fields: `Required value` when empty, `Unsupported value`
/// when not one of `supported`.
fn one_of(v: &Value, k: &str, path: &str, supported: &[&str]) -> ErrorList {
    match v.get(k) {
        None | Some(Value::Null) => vec![FieldError::required(path, "")],
        Some(Value::String(s)) if s.is_empty() => vec![FieldError::required(path, "")],
        Some(Value::String(s)) if supported.contains(&s.as_str()) => vec![],
        Some(other) => vec![FieldError::not_supported(path, other.clone(), supported)],
    }
}

fn validate_volumes<'a>(vols: &'a [Value], path: &str) -> (BTreeSet<&'a str>, ErrorList) {
    let mut names = BTreeSet::new();
    let mut errs = vec![];
    for (i, v) in vols.iter().enumerate() {
        let p = index(path, i);
        let sources: Vec<&&str> = VOLUME_SOURCES.iter().filter(|s| has(v, s)).collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&p, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(child(&p, s), "may not specify more than 1 volume type"));
                }
            }
        }
        let name = str_of(v, "name").unwrap_or_default();
        let np = child(&p, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&np, ""));
        } else {
            errs.extend(dns_label(name, &np));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(&np, json!(name)));
        }
    }
    (names, errs)
}

fn validate_container_common(c: &Value, volumes: &BTreeSet<&str>, path: &str) -> ErrorList {
    let mut errs = vec![];
    let np = child(path, "name");
    let name = str_of(c, "name").unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        errs.extend(dns_label(name, &np));
    }
    if empty_str(c, "image") {
        errs.push(FieldError::required(child(path, "image"), ""));
    }
    errs.extend(one_of(
        c,
        "terminationMessagePolicy",
        &child(path, "terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    ));
    errs.extend(validate_ports(arr_of(c, "ports"), &child(path, "ports")));
    errs.extend(validate_env(arr_of(c, "env"), &child(path, "env")));
    errs.extend(validate_volume_mounts(arr_of(c, "volumeMounts"), volumes, &child(path, "volumeMounts")));
    errs.extend(one_of(c, "imagePullPolicy", &child(path, "imagePullPolicy"), &["Always", "IfNotPresent", "Never"]));
    errs.extend(validate_resources(c.get("resources"), &child(path, "resources")));
    errs
}

fn validate_resources(res: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = vec![];
    let Some(res) = res else { return errs };
    let lim = obj_of(res, "limits");
    for bag in ["limits", "requests"] {
        for (k, q) in obj_of(res, bag).into_iter().flatten() {
            if quantity(q) < 0.0 {
                let qs = q.as_str().map(str::to_string).unwrap_or_else(|| q.to_string());
                errs.push(FieldError::invalid(format!("{path}.{bag}[{k}]"), json!(qs), meta::IS_NEGATIVE));
            }
        }
    }
    for (k, q) in obj_of(res, "requests").into_iter().flatten() {
        if let Some(l) = lim.and_then(|m| m.get(k))
            && quantity(q) > quantity(l)
        {
            let qs = q.as_str().map(str::to_string).unwrap_or_else(|| q.to_string());
            let ls = l.as_str().map(str::to_string).unwrap_or_else(|| l.to_string());
            errs.push(FieldError::invalid(
                format!("{path}.requests[{k}]"),
                json!(qs),
                format!("must be less than or equal to {k} limit of {ls}"),
            ));
        }
    }
    errs
}

/// `IsValidPortName`.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = vec![];
    if port.len() > 15 {
        errs.push(meta::max_len_error(15));
    }
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn validate_ports(ports: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let ip = index(path, i);
        if let Some(name) = str_of(p, "name").filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                errs.extend(msgs.into_iter().map(|m| FieldError::invalid(child(&ip, "name"), json!(name), m)));
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&ip, "name"), json!(name)));
            }
        }
        match int_of(p, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(child(&ip, "containerPort"), "")),
            n if !(1..=65535).contains(&n) => {
                errs.push(FieldError::invalid(child(&ip, "containerPort"), json!(n), inclusive_range_error(1, 65535)))
            }
            _ => {}
        }
        let hp = int_of(p, "hostPort").unwrap_or(0);
        if hp != 0 && !(1..=65535).contains(&hp) {
            errs.push(FieldError::invalid(child(&ip, "hostPort"), json!(hp), inclusive_range_error(1, 65535)));
        }
        errs.extend(one_of(p, "protocol", &child(&ip, "protocol"), &["SCTP", "TCP", "UDP"]));
    }
    errs
}

fn validate_env(env: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    for (i, e) in env.iter().enumerate() {
        let ip = index(path, i);
        let name = str_of(e, "name").unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(child(&ip, "name"), ""));
        } else if name.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=') {
            // RelaxedEnvironmentVariableValidation is on by default since 1.32.
            errs.push(FieldError::invalid(
                child(&ip, "name"),
                json!(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        if let Some(vf) = e.get("valueFrom").filter(|v| !v.is_null()) {
            let vp = child(&ip, "valueFrom");
            let n = ["fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"]
                .iter()
                .filter(|k| has(vf, k))
                .count();
            if n == 0 {
                errs.push(FieldError::invalid(
                    &vp,
                    json!(""),
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if !empty_str(e, "value") {
                errs.push(FieldError::invalid(&vp, json!(""), "may not be specified when `value` is not empty"));
            } else if n > 1 {
                errs.push(FieldError::invalid(&vp, json!(""), "may not have more than one field specified at a time"));
            }
        }
    }
    errs
}

fn validate_volume_mounts(mounts: &[Value], volumes: &BTreeSet<&str>, path: &str) -> ErrorList {
    let mut errs = vec![];
    let mut points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let ip = index(path, i);
        let name = str_of(m, "name").unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(child(&ip, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::new(FieldErrorType::NotFound, child(&ip, "name"), Some(json!(name)), ""));
        }
        let mp = str_of(m, "mountPath").unwrap_or_default();
        if mp.is_empty() {
            errs.push(FieldError::required(child(&ip, "mountPath"), ""));
        }
        if !points.insert(mp) {
            errs.push(FieldError::invalid(child(&ip, "mountPath"), json!(mp), "must be unique"));
        }
    }
    errs
}

/// `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    for (i, t) in tolerations.iter().enumerate() {
        let ip = index(path, i);
        let key = str_of(t, "key").unwrap_or_default();
        let op = str_of(t, "operator").unwrap_or_default();
        let effect = str_of(t, "effect").unwrap_or_default();
        let value = str_of(t, "value").unwrap_or_default();
        if !key.is_empty() {
            errs.extend(
                is_qualified_name(key).into_iter().map(|m| FieldError::invalid(child(&ip, "key"), json!(key), m)),
            );
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&ip, "operator"),
                json!(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if has(t, "tolerationSeconds") && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&ip, "effect"),
                json!(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(child(&ip, "operator"), json!(value), msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&ip, "operator"),
                        t.clone(),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(child(&ip, "operator"), json!(other), &["Equal", "Exists"])),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(FieldError::not_supported(
                child(&ip, "effect"),
                json!(effect),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}

/// `ValidatePodStatusUpdate`: metadata update rules, qosClass immutable, and no container that
/// terminated for good (per the restart policy) may be reported running again.
pub fn validate_pod_status_update(pod: &Value, old: &Value) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(pod, old);
    let null = Value::Null;
    let status = pod.get("status").unwrap_or(&null);
    let old_status = old.get("status").unwrap_or(&null);
    let spec = old.get("spec").unwrap_or(&null);
    let policy = str_of(spec, "restartPolicy").unwrap_or("Always");
    errs.extend(state_transition(
        arr_of(status, "containerStatuses"),
        arr_of(old_status, "containerStatuses"),
        "status.containerStatuses",
        |_| policy,
    ));
    let init_policy = |name: &str| {
        let sidecar = arr_of(spec, "initContainers")
            .iter()
            .any(|c| str_of(c, "name") == Some(name) && str_of(c, "restartPolicy") == Some("Always"));
        if sidecar { "Always" } else { policy }
    };
    errs.extend(state_transition(
        arr_of(status, "initContainerStatuses"),
        arr_of(old_status, "initContainerStatuses"),
        "status.initContainerStatuses",
        init_policy,
    ));
    errs.extend(immutable(status.get("qosClass"), old_status.get("qosClass"), "status.qosClass"));
    errs
}

/// `ValidateContainerStateTransition`.
fn state_transition<'a>(
    new: &[Value],
    old: &'a [Value],
    path: &str,
    policy_of: impl Fn(&'a str) -> &'a str,
) -> ErrorList {
    let mut errs = vec![];
    for (i, o) in old.iter().enumerate() {
        let name = str_of(o, "name").unwrap_or_default();
        let policy = policy_of(name);
        if policy == "Always" {
            continue;
        }
        let Some(term) = o.get("state").and_then(|s| s.get("terminated")).filter(|t| !t.is_null()) else {
            continue;
        };
        if int_of(term, "exitCode").unwrap_or(0) != 0 && policy == "OnFailure" {
            continue;
        }
        for n in new {
            let still = n.get("state").and_then(|s| s.get("terminated")).is_some_and(|t| !t.is_null());
            if str_of(n, "name") == Some(name) && !still {
                errs.push(FieldError::forbidden(
                    child(&index(path, i), "state"),
                    "may not be transitioned to non-terminated state",
                ));
            }
        }
    }
    errs
}

/// The fields a pod update may change, in upstream's words.
pub const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`: metadata update rules, the new spec is valid, and only the updatable
/// fields differ from the stored spec.
pub fn validate_pod_update(pod: &Value, old: &Value) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(pod, old);
    let null = Value::Null;
    let spec = pod.get("spec").unwrap_or(&null);
    let old_spec = old.get("spec").unwrap_or(&null);
    errs.extend(validate_pod_spec(spec, "spec"));
    match (int_of(spec, "activeDeadlineSeconds"), int_of(old_spec, "activeDeadlineSeconds")) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                json!(n),
                inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                json!(n),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    // An unchanged spec (a metadata or finalizer write) has nothing to munge or compare: the
    // munged copy would be the old spec itself, with no error (pinned by
    // `an_unchanged_pod_spec_munges_to_itself_without_errors`).
    if spec != old_spec {
        errs.extend(spec_update_errors(spec, old_spec));
    }
    errs
}

/// What `validate_pod_update` finds in a spec update beyond the fields it checks itself: the
/// updatable fields of the new spec are munged to the old values, then compared.
pub(super) fn spec_update_errors(spec: &Value, old_spec: &Value) -> ErrorList {
    let mut errs = ErrorList::new();
    // Munge the updatable fields of the new spec to the old values, then compare.
    let mut munged = spec.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            let old_list = arr_of(old_spec, list);
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut)
                && cs.len() == old_list.len()
            {
                for (c, oc) in cs.iter_mut().zip(old_list) {
                    if let (Some(c), Some(img)) = (c.as_object_mut(), oc.get("image")) {
                        c.insert("image".into(), img.clone());
                    }
                }
            }
        }
        match old_spec.get("activeDeadlineSeconds") {
            Some(v) => m.insert("activeDeadlineSeconds".into(), v.clone()),
            None => m.remove("activeDeadlineSeconds"),
        };
        // Only additions to tolerations (and tolerationSeconds changes) are allowed.
        let new_t = arr_of(spec, "tolerations");
        let without_seconds = |t: &Value| {
            let mut t = t.clone();
            if let Some(o) = t.as_object_mut() {
                o.remove("tolerationSeconds");
            }
            t
        };
        for (i, t) in arr_of(old_spec, "tolerations").iter().enumerate() {
            let t = without_seconds(t);
            if !new_t.iter().any(|n| semantic_eq(&without_seconds(n), &t)) {
                errs.push(FieldError::forbidden(
                    index("spec.tolerations", i),
                    "existing toleration can not be modified except its tolerationSeconds",
                ));
            }
        }
        match old_spec.get("tolerations") {
            Some(v) => m.insert("tolerations".into(), v.clone()),
            None => m.remove("tolerations"),
        };
        if int_of(old_spec, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
            && int_of(spec, "terminationGracePeriodSeconds") == Some(1)
        {
            m.insert("terminationGracePeriodSeconds".into(), old_spec["terminationGracePeriodSeconds"].clone());
        }
        // Scheduling gates may only be removed.
        let old_gates = arr_of(old_spec, "schedulingGates");
        for g in arr_of(spec, "schedulingGates") {
            if !old_gates.contains(g) {
                let name = str_of(g, "name").unwrap_or_default();
                errs.push(FieldError::forbidden(
                    "spec.schedulingGates",
                    format!("only deletion is allowed, but found new scheduling gate '{name}'"),
                ));
            }
        }
        match old_spec.get("schedulingGates") {
            Some(v) => m.insert("schedulingGates".into(), v.clone()),
            None => m.remove("schedulingGates"),
        };
    }
    if !semantic_eq(&munged, old_spec) {
        errs.push(FieldError::forbidden(
            "spec",
            format!(
                "pod updates may not change fields other than {POD_UPDATABLE_FIELDS}\n{}",
                spec_diff(old_spec, &munged)
            ),
        ));
    }
    errs
}

/// Equality where a missing field, `null`, `[]` and `{}` are the same (Go's zero values).
pub fn semantic_eq(a: &Value, b: &Value) -> bool {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => semantic_eq(p, q),
                (Some(p), None) | (None, Some(p)) => empty(p),
                (None, None) => true,
            })
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(p, q)),
        _ => a == b || (empty(a) && empty(b)),
    }
}

/// A short, line-per-field description of what differs, in the spirit of upstream's `cmp.Diff`.
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (a, b) = (o.get(k).unwrap_or(&Value::Null), n.get(k).unwrap_or(&Value::Null));
        if !semantic_eq(a, b) {
            out.push_str(&format!("- \t{k}: {a},\n+ \t{k}: {b},\n"));
        }
    }
    out.push_str("  }\n");
    out
}
