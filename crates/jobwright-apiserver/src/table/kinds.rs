//! Table columns and cells of the kinds of [`crate::kinds`], as kube-apiserver's printers
//! (`pkg/printers/internalversion/printers.go`, 1.33) make them for `kubectl get`.
//!
//! Column names, types and priorities are upstream's; descriptions come from the k8s-openapi
//! schemas where upstream takes them from the API docs, else a short text.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{LabelSelector, age, age_col, arr, col, containers, int, name, name_col, s};

/// A printer: its columns (after `Name`) and its cells (after the name).
pub(super) struct KindPrinter {
    pub columns: fn() -> Vec<Value>,
    pub cells: fn(&Value, DateTime<Utc>) -> Vec<Value>,
}

fn c(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    col(name, ty, "", priority, description.to_string())
}

fn selector_cols() -> [Value; 3] {
    [
        c("Containers", "string", 1, "Names of each container in the template."),
        c("Images", "string", 1, "Images referenced by each container in the template."),
        c("Selector", "string", 1, "Label selector of the pods."),
    ]
}

/// The printer of `(group, kind)`, `None` for kinds printed elsewhere or by the default printer.
pub(super) fn printer(group: &str, kind: &str) -> Option<KindPrinter> {
    let p =
        |columns: fn() -> Vec<Value>, cells: fn(&Value, DateTime<Utc>) -> Vec<Value>| KindPrinter { columns, cells };
    Some(match (group, kind) {
        ("apps", "DaemonSet") => p(
            || {
                let mut v = vec![
                    c("Desired", "integer", 0, "The desired number of daemon pods."),
                    c("Current", "integer", 0, "The current number of daemon pods."),
                    c("Ready", "integer", 0, "The number of daemon pods ready."),
                    c("Up-to-date", "integer", 0, "The number of daemon pods that are up to date."),
                    c("Available", "integer", 0, "The number of daemon pods available."),
                    c("Node Selector", "string", 0, "Node selector of the daemon set."),
                    age_col(),
                ];
                v.extend(selector_cols());
                v
            },
            |o, now| {
                let mut v = vec![
                    json!(int(o, "/status/desiredNumberScheduled")),
                    json!(int(o, "/status/currentNumberScheduled")),
                    json!(int(o, "/status/numberReady")),
                    json!(int(o, "/status/updatedNumberScheduled")),
                    json!(int(o, "/status/numberAvailable")),
                    json!(format_map(o.pointer("/spec/template/spec/nodeSelector"))),
                    json!(age(o, now)),
                ];
                v.extend(template_cells(o, true));
                v
            },
        ),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => p(
            || {
                let mut v = vec![
                    c("Desired", "integer", 0, "Number of desired pods."),
                    c("Current", "integer", 0, "Number of actual replicas."),
                    c("Ready", "integer", 0, "The number of ready replicas."),
                    age_col(),
                ];
                v.extend(selector_cols());
                v
            },
            |o, now| {
                let mut v = vec![
                    json!(o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)),
                    json!(int(o, "/status/replicas")),
                    json!(int(o, "/status/readyReplicas")),
                    json!(age(o, now)),
                ];
                v.extend(template_cells(o, true));
                v
            },
        ),
        ("apps", "StatefulSet") => p(
            || {
                vec![
                    c("Ready", "string", 0, "Number of the pod with ready state"),
                    age_col(),
                    c("Containers", "string", 1, "Names of each container in the template."),
                    c("Images", "string", 1, "Images referenced by each container in the template."),
                ]
            },
            |o, now| {
                let want = o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
                let mut v = vec![json!(format!("{}/{want}", int(o, "/status/readyReplicas"))), json!(age(o, now))];
                v.extend(template_cells(o, false));
                v
            },
        ),
        ("apps", "ControllerRevision") => p(
            || {
                vec![
                    c("Controller", "string", 0, "Controller of the object."),
                    c("Revision", "string", 0, "Revision of the ControllerRevision."),
                    age_col(),
                ]
            },
            |o, now| {
                let owner = arr(o, "/metadata/ownerReferences")
                    .iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
                let controller = match owner {
                    Some(r) => {
                        let group = s(r, "/apiVersion").rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                        let kind = s(r, "/kind").to_lowercase();
                        let kind = if group.is_empty() { kind } else { format!("{kind}.{group}") };
                        format!("{kind}/{}", s(r, "/name"))
                    }
                    None => "<none>".into(),
                };
                vec![json!(controller), json!(int(o, "/revision")), json!(age(o, now))]
            },
        ),
        ("", "PersistentVolumeClaim") => p(
            || {
                vec![
                    c("Status", "string", 0, "Phase of the claim."),
                    c("Volume", "string", 0, "The binding reference to the PersistentVolume backing this claim."),
                    c("Capacity", "string", 0, "The actual resources of the underlying volume."),
                    c("Access Modes", "string", 0, "The actual access modes the volume backing the PVC has."),
                    c("StorageClass", "string", 0, "The name of the StorageClass required by the claim."),
                    c("VolumeAttributesClass", "string", 0, "The name of the VolumeAttributesClass."),
                    age_col(),
                    c("VolumeMode", "string", 1, "What type of volume is required by the claim."),
                ]
            },
            |o, now| {
                let volume = s(o, "/spec/volumeName");
                let (capacity, modes) = if volume.is_empty() {
                    (String::new(), String::new())
                } else {
                    (s(o, "/status/capacity/storage").to_string(), access_modes(arr(o, "/status/accessModes")))
                };
                vec![
                    json!(s(o, "/status/phase")),
                    json!(volume),
                    json!(capacity),
                    json!(modes),
                    json!(storage_class(o)),
                    json!(or_unset(s(o, "/spec/volumeAttributesClassName"))),
                    json!(age(o, now)),
                    json!(or_unset(s(o, "/spec/volumeMode"))),
                ]
            },
        ),
        ("", "PersistentVolume") => p(
            || {
                vec![
                    c("Capacity", "string", 0, "The capacity of the volume."),
                    c("Access Modes", "string", 0, "The access modes of the volume."),
                    c("Reclaim Policy", "string", 0, "What happens to a released volume."),
                    c("Status", "string", 0, "Phase of the volume."),
                    c("Claim", "string", 0, "The claim bound to the volume."),
                    c("StorageClass", "string", 0, "The name of the StorageClass of the volume."),
                    c("VolumeAttributesClass", "string", 0, "The name of the VolumeAttributesClass."),
                    c("Reason", "string", 0, "Reason of the volume's phase."),
                    age_col(),
                    c("VolumeMode", "string", 1, "Whether the volume is a filesystem or a block device."),
                ]
            },
            |o, now| {
                let claim = match o.pointer("/spec/claimRef") {
                    Some(r) if r.is_object() => format!("{}/{}", s(r, "/namespace"), s(r, "/name")),
                    _ => String::new(),
                };
                vec![
                    json!(s(o, "/spec/capacity/storage")),
                    json!(access_modes(arr(o, "/spec/accessModes"))),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    json!(or_unset(s(o, "/spec/volumeAttributesClassName"))),
                    json!(s(o, "/status/reason")),
                    json!(age(o, now)),
                    json!(or_unset(s(o, "/spec/volumeMode"))),
                ]
            },
        ),
        ("", "PodTemplate") => p(
            || {
                vec![
                    c("Containers", "string", 0, "Names of each container in the template."),
                    c("Images", "string", 0, "Images referenced by each container in the template."),
                    c("Pod Labels", "string", 0, "The labels for the pod template."),
                ]
            },
            |o, _| {
                let (names, images) = containers(o.pointer("/template/spec").unwrap_or(&Value::Null));
                vec![json!(names), json!(images), json!(format_map(o.pointer("/template/metadata/labels")))]
            },
        ),
        ("", "ResourceQuota") => p(
            || {
                vec![
                    age_col(),
                    c(
                        "Request",
                        "string",
                        0,
                        "Request represents a minimum amount of cpu/memory that a container may consume.",
                    ),
                    c(
                        "Limit",
                        "string",
                        0,
                        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                    ),
                ]
            },
            |o, now| {
                let hard = o.pointer("/status/hard").and_then(Value::as_object);
                let used = o.pointer("/status/used");
                let (mut req, mut lim) = (vec![], vec![]);
                for (k, v) in hard.into_iter().flatten() {
                    let u = used.and_then(|u| u.get(k)).and_then(Value::as_str).unwrap_or("0");
                    let cell = format!("{k}: {u}/{}", v.as_str().unwrap_or_default());
                    if k.starts_with("limits.") { lim.push(cell) } else { req.push(cell) }
                }
                vec![json!(age(o, now)), json!(req.join(", ")), json!(lim.join(", "))]
            },
        ),
        ("autoscaling", "HorizontalPodAutoscaler") => p(
            || {
                vec![
                    c("Reference", "string", 0, "Reference to the target object."),
                    c("Targets", "string", 0, "The current and target metrics."),
                    c("MinPods", "string", 0, "Lower limit for the number of pods."),
                    c("MaxPods", "integer", 0, "Upper limit for the number of pods."),
                    c("Replicas", "integer", 0, "Current number of replicas of pods."),
                    age_col(),
                ]
            },
            |o, now| {
                let reference = format!("{}/{}", s(o, "/spec/scaleTargetRef/kind"), s(o, "/spec/scaleTargetRef/name"));
                let min =
                    o.pointer("/spec/minReplicas").and_then(Value::as_i64).map_or("<unset>".into(), |m| m.to_string());
                vec![
                    json!(reference),
                    json!(hpa_targets(o)),
                    json!(min),
                    json!(int(o, "/spec/maxReplicas")),
                    json!(int(o, "/status/currentReplicas")),
                    json!(age(o, now)),
                ]
            },
        ),
        ("certificates.k8s.io", "CertificateSigningRequest") => p(
            || {
                vec![
                    age_col(),
                    c("SignerName", "string", 0, "The name of the signer."),
                    c("Requestor", "string", 0, "Name of the user who requested the certificate."),
                    c("RequestedDuration", "string", 0, "The requested duration of the certificate."),
                    c("Condition", "string", 0, "The state of the CSR."),
                ]
            },
            |o, now| {
                let mut conds: Vec<&str> = arr(o, "/status/conditions").iter().map(|c| s(c, "/type")).collect();
                if o.pointer("/status/certificate").and_then(Value::as_str).is_some_and(|c| !c.is_empty()) {
                    conds.push("Issued");
                }
                let condition = if conds.is_empty() { "Pending".to_string() } else { conds.join(",") };
                let duration = o
                    .pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map_or("<none>".to_string(), |secs| super::human_duration(chrono::Duration::seconds(secs)));
                vec![
                    json!(age(o, now)),
                    json!(s(o, "/spec/signerName")),
                    json!(s(o, "/spec/username")),
                    json!(duration),
                    json!(condition),
                ]
            },
        ),
        ("networking.k8s.io", "Ingress") => p(
            || {
                vec![
                    c("Class", "string", 0, "The name of the IngressClass."),
                    c("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
                    c("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
                    c("Ports", "string", 0, "Ports of TLS configurations that open"),
                    age_col(),
                ]
            },
            |o, now| {
                let class = o.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>");
                let hosts: Vec<&str> =
                    arr(o, "/spec/rules").iter().map(|r| s(r, "/host")).filter(|h| !h.is_empty()).collect();
                let hosts = if hosts.is_empty() { "*".to_string() } else { hosts.join(",") };
                let addrs: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
                    .iter()
                    .map(|i| if s(i, "/ip").is_empty() { s(i, "/hostname") } else { s(i, "/ip") })
                    .filter(|a| !a.is_empty())
                    .collect();
                let ports = if arr(o, "/spec/tls").is_empty() { "80" } else { "80, 443" };
                vec![json!(class), json!(hosts), json!(addrs.join(",")), json!(ports), json!(age(o, now))]
            },
        ),
        ("networking.k8s.io", "IngressClass") => p(
            || {
                vec![
                    c("Controller", "string", 0, "Controller that is responsible for handling this class"),
                    c("Parameters", "string", 0, "A reference to a resource with additional parameters"),
                    age_col(),
                ]
            },
            |o, now| {
                let params = match o.pointer("/spec/parameters") {
                    Some(p) if p.is_object() => {
                        let group = s(p, "/apiGroup");
                        let kind = if group.is_empty() {
                            s(p, "/kind").to_string()
                        } else {
                            format!("{}.{group}", s(p, "/kind"))
                        };
                        format!("{kind}/{}", s(p, "/name"))
                    }
                    _ => "<none>".into(),
                };
                vec![json!(s(o, "/spec/controller")), json!(params), json!(age(o, now))]
            },
        ),
        ("networking.k8s.io", "NetworkPolicy") => p(
            || {
                vec![
                    c("Pod-Selector", "string", 0, "Selects the pods to which this NetworkPolicy object applies."),
                    age_col(),
                ]
            },
            |o, now| {
                let sel = LabelSelector::format_label_selector(o.pointer("/spec/podSelector").unwrap_or(&Value::Null));
                vec![json!(sel), json!(age(o, now))]
            },
        ),
        ("scheduling.k8s.io", "PriorityClass") => p(
            || {
                vec![
                    c("Value", "integer", 0, "The value of this priority class."),
                    c(
                        "Global-Default",
                        "boolean",
                        0,
                        "globalDefault specifies whether this PriorityClass should be considered as the default priority.",
                    ),
                    age_col(),
                    c("PreemptionPolicy", "string", 0, "The policy for preempting pods with lower priority."),
                ]
            },
            |o, now| {
                vec![
                    json!(int(o, "/value")),
                    json!(o.get("globalDefault").and_then(Value::as_bool).unwrap_or(false)),
                    json!(age(o, now)),
                    json!(s(o, "/preemptionPolicy")),
                ]
            },
        ),
        ("storage.k8s.io", "StorageClass") => p(
            || {
                vec![
                    c("Provisioner", "string", 0, "Indicates the type of the provisioner."),
                    c("ReclaimPolicy", "string", 0, "Indicates the type of the reclaim policy."),
                    c(
                        "VolumeBindingMode",
                        "string",
                        0,
                        "Indicates how PersistentVolumeClaims should be provisioned and bound.",
                    ),
                    c("AllowVolumeExpansion", "string", 0, "Indicates whether the storage class allow volume expand."),
                    age_col(),
                ]
            },
            |o, now| {
                vec![
                    json!(s(o, "/provisioner")),
                    json!(s(o, "/reclaimPolicy")),
                    json!(s(o, "/volumeBindingMode")),
                    json!(o.get("allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false)),
                    json!(age(o, now)),
                ]
            },
        ),
        ("storage.k8s.io", "CSINode") => p(
            || {
                vec![
                    c("Drivers", "integer", 0, "Drivers indicates the number of CSI drivers registered on the node"),
                    age_col(),
                ]
            },
            |o, now| vec![json!(arr(o, "/spec/drivers").len()), json!(age(o, now))],
        ),
        ("storage.k8s.io", "VolumeAttachment") => p(
            || {
                vec![
                    c(
                        "Attacher",
                        "string",
                        0,
                        "Attacher indicates the name of the volume driver that MUST handle this request.",
                    ),
                    c("PV", "string", 0, "Name of the persistent volume to attach."),
                    c("Node", "string", 0, "The node that the volume should be attached to."),
                    c("Attached", "boolean", 0, "Indicates the volume is successfully attached."),
                    age_col(),
                ]
            },
            |o, now| {
                vec![
                    json!(s(o, "/spec/attacher")),
                    json!(s(o, "/spec/source/persistentVolumeName")),
                    json!(s(o, "/spec/nodeName")),
                    json!(o.pointer("/status/attached").and_then(Value::as_bool).unwrap_or(false)),
                    json!(age(o, now)),
                ]
            },
        ),
        ("node.k8s.io", "RuntimeClass") => p(
            || vec![c("Handler", "string", 0, "The name of the underlying runtime and configuration."), age_col()],
            |o, now| vec![json!(s(o, "/handler")), json!(age(o, now))],
        ),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => p(
            || {
                vec![
                    c("Webhooks", "integer", 0, "Webhooks indicates the number of webhooks in the configuration"),
                    age_col(),
                ]
            },
            |o, now| vec![json!(arr(o, "/webhooks").len()), json!(age(o, now))],
        ),
        ("apiregistration.k8s.io", "APIService") => p(
            || {
                vec![
                    c("Service", "string", 0, "The reference to the service that hosts this API endpoint."),
                    c("Available", "string", 0, "Whether this service is available."),
                    age_col(),
                ]
            },
            |o, now| {
                let service = match o.pointer("/spec/service") {
                    Some(sv) if sv.is_object() => format!("{}/{}", s(sv, "/namespace"), s(sv, "/name")),
                    _ => "Local".into(),
                };
                let available = arr(o, "/status/conditions")
                    .iter()
                    .find(|c| s(c, "/type") == "Available")
                    .map(|c| {
                        let reason = s(c, "/reason");
                        if s(c, "/status") == "True" || reason.is_empty() {
                            s(c, "/status").to_string()
                        } else {
                            format!("{} ({reason})", s(c, "/status"))
                        }
                    })
                    .unwrap_or_else(|| "Unknown".into());
                vec![json!(service), json!(available), json!(age(o, now))]
            },
        ),
        _ => return None,
    })
}

/// Containers, images and (for `selector`) the selector of a workload's pod template.
fn template_cells(o: &Value, selector: bool) -> Vec<Value> {
    let (names, images) = containers(o.pointer("/spec/template/spec").unwrap_or(&Value::Null));
    let mut v = vec![json!(names), json!(images)];
    if selector {
        let sel = o.pointer("/spec/selector").unwrap_or(&Value::Null);
        // A ReplicationController's selector is a plain map.
        let text = if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
            LabelSelector::format_label_selector(sel)
        } else {
            format_map(Some(sel))
        };
        v.push(json!(text));
    }
    v
}

/// `labels.FormatLabels`: `k=v,...` sorted, `<none>` when empty.
fn format_map(m: Option<&Value>) -> String {
    let mut kv: Vec<String> = m
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    kv.sort();
    if kv.is_empty() { "<none>".into() } else { kv.join(",") }
}

/// `GetAccessModesAsString`: `RWO,ROX,RWX,RWOP` in that order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(m, _)| has(m))
        .map(|(_, a)| *a)
        .collect::<Vec<_>>()
        .join(",")
}

/// A claim's class: `spec.storageClassName`, else the beta annotation.
fn storage_class(o: &Value) -> String {
    match o.pointer("/spec/storageClassName").and_then(Value::as_str) {
        Some(c) => c.to_string(),
        None => s(o, "/metadata/annotations/volume.beta.kubernetes.io~1storage-class").to_string(),
    }
}

fn or_unset(v: &str) -> &str {
    if v.is_empty() { "<unset>" } else { v }
}

/// The `Targets` cell of an HPA: `cpu: <unknown>/80%` per metric (resource utilization and
/// average values; other metric types as `<unknown>/<target>`).
fn hpa_targets(o: &Value) -> String {
    let mut parts = vec![];
    // autoscaling/v1 has one CPU target.
    if let Some(t) = o.pointer("/spec/targetCPUUtilizationPercentage").and_then(Value::as_i64) {
        let cur = o
            .pointer("/status/currentCPUUtilizationPercentage")
            .and_then(Value::as_i64)
            .map_or("<unknown>".to_string(), |c| format!("{c}%"));
        parts.push(format!("cpu: {cur}/{t}%"));
    }
    for (i, m) in arr(o, "/spec/metrics").iter().enumerate() {
        let cur_metric = o.pointer(&format!("/status/currentMetrics/{i}"));
        match s(m, "/type") {
            "Resource" | "ContainerResource" => {
                let name = s(m, "/resource/name");
                let name = if name.is_empty() { s(m, "/containerResource/name") } else { name };
                let target = m.get("resource").or_else(|| m.get("containerResource")).and_then(|r| r.get("target"));
                let util = target.and_then(|t| t.get("averageUtilization")).and_then(Value::as_i64);
                let cur_util = cur_metric
                    .and_then(|c| c.pointer("/resource/current/averageUtilization"))
                    .and_then(Value::as_i64)
                    .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                match util {
                    Some(u) => parts.push(format!("{name}: {cur_util}/{u}%")),
                    None => {
                        let avg =
                            target.and_then(|t| t.get("averageValue")).and_then(Value::as_str).unwrap_or("<unknown>");
                        parts.push(format!("{name}: <unknown>/{avg}"));
                    }
                }
            }
            _ => parts.push("<unknown>/<unknown>".into()),
        }
    }
    if parts.is_empty() { "<none>".into() } else { parts.join(", ") }
}

/// The full row for `o`: the name then the kind's cells.
pub(super) fn row(p: &KindPrinter, o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut v = vec![name(o)];
    v.extend((p.cells)(o, now));
    v
}

/// The full column list: `Name` then the kind's columns.
pub(super) fn columns(p: &KindPrinter) -> Vec<Value> {
    let mut v = vec![name_col()];
    v.extend((p.columns)());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn table(g: &str, v: &str, r: &str, o: Value) -> Value {
        let info = Registry::builtin().get(g, v, r).unwrap();
        super::super::to_table(&info, &[o], super::super::IncludeObject::None, Utc::now())
    }

    fn names(t: &Value) -> Vec<String> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect()
    }

    #[test]
    fn kubectl_get_columns_of_the_new_kinds() {
        let md = json!({"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"});
        let ds = table(
            "apps",
            "v1",
            "daemonsets",
            json!({"metadata": md, "spec": {"template": {"spec": {"nodeSelector": {"b": "2", "a": "1"},
            "containers": [{"name": "c", "image": "i"}]}}, "selector": {"matchLabels": {"app": "x"}}},
            "status": {"desiredNumberScheduled": 3, "numberReady": 2}}),
        );
        assert_eq!(
            names(&ds),
            ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]
        );
        let cells = &ds["rows"][0]["cells"];
        assert_eq!((cells[1].clone(), cells[3].clone(), cells[6].clone()), (json!(3), json!(2), json!("a=1,b=2")));
        assert_eq!(cells[10], "app=x");
        let sts = table(
            "apps",
            "v1",
            "statefulsets",
            json!({"metadata": md, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}}),
        );
        assert_eq!(names(&sts), ["NAME", "READY", "AGE"]);
        assert_eq!(sts["rows"][0]["cells"][1], "1/3");
        let rc = table(
            "",
            "v1",
            "replicationcontrollers",
            json!({"metadata": md, "spec": {"replicas": 2, "selector": {"app": "x"}}}),
        );
        assert_eq!(names(&rc), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
        assert_eq!(rc["rows"][0]["cells"][7], "app=x");
        let pvc = table(
            "",
            "v1",
            "persistentvolumeclaims",
            json!({"metadata": md, "spec": {"volumeName": "pv1", "storageClassName": "std"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
        );
        assert_eq!(
            names(&pvc),
            ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
        );
        assert_eq!(
            pvc["rows"][0]["cells"].as_array().unwrap()[1..7],
            [json!("Bound"), json!("pv1"), json!("1Gi"), json!("RWO,RWX"), json!("std"), json!("<unset>")]
        );
        let ing = table(
            "networking.k8s.io",
            "v1",
            "ingresses",
            json!({"metadata": md, "spec": {"rules": [{"host": "a"}, {"host": "b"}], "tls": [{}]}}),
        );
        assert_eq!(names(&ing), ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]);
        assert_eq!(
            ing["rows"][0]["cells"].as_array().unwrap()[1..5],
            [json!("<none>"), json!("a,b"), json!(""), json!("80, 443")]
        );
        let hpa = table(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            json!({"metadata": md, "spec": {"minReplicas": 1, "maxReplicas": 5,
            "scaleTargetRef": {"kind": "Deployment", "name": "d"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
        );
        assert_eq!(names(&hpa), ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]);
        assert_eq!(
            hpa["rows"][0]["cells"].as_array().unwrap()[1..5],
            [json!("Deployment/d"), json!("cpu: <unknown>/80%"), json!("1"), json!(5)]
        );
        let sc = table(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            json!({"metadata": md, "provisioner": "p", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
        );
        assert_eq!(
            names(&sc),
            ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
        );
        let pc = table(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            json!({"metadata": md, "value": 7, "preemptionPolicy": "Never"}),
        );
        assert_eq!(names(&pc), ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]);
        let csr = table(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            json!({"metadata": md, "spec": {"signerName": "s", "username": "u"},
            "status": {"conditions": [{"type": "Approved"}], "certificate": "Y2VydA=="}}),
        );
        assert_eq!(
            csr["rows"][0]["cells"].as_array().unwrap()[2..],
            [json!("s"), json!("u"), json!("<none>"), json!("Approved,Issued")]
        );
        // Kinds without a printer keep the default `Name`, `Created At`.
        let lr = table("", "v1", "limitranges", json!({"metadata": md}));
        assert_eq!(names(&lr), ["NAME", "CREATED AT"]);
    }
}
