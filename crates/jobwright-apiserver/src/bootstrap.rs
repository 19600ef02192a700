//! RBAC bootstrap policy and ClusterRole aggregation.
//!
//! kube-apiserver stores its bootstrap ClusterRoles and ClusterRoleBindings at startup (labelled
//! `kubernetes.io/bootstrapping: rbac-defaults`, annotated `rbac.authorization.kubernetes.io/autoupdate`),
//! so a test can bind a ServiceAccount to `cluster-admin`, `admin`, `edit` or `view` as on any
//! cluster. [`ensure`] stores the user-facing ones (the roles of system components such as
//! `system:node` or `system:kube-scheduler` are left out) when they are absent.
//!
//! `admin`, `edit` and `view` are aggregated roles: their rules are the union of every ClusterRole
//! their `aggregationRule` selects. kube-controller-manager's clusterrole-aggregation controller
//! fills them in; the server runs the same step ([`aggregate`]) from its garbage-collector task, so
//! the roles are usable here as in a cluster (envtest, which runs no controller manager, leaves
//! them empty).

use serde_json::{Value, json};

use super::rest::{Api, WriteOptions};
use super::selector::{LabelSelector, labels_of};

/// The label every bootstrap object carries.
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The annotation that lets kube-apiserver reconcile a bootstrap object at startup.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert(BOOTSTRAP_LABEL.0.into(), BOOTSTRAP_LABEL.1.into());
    for (k, v) in extra_labels {
        labels.insert((*k).into(), (*v).into());
    }
    json!({"name": name, "labels": labels, "annotations": {AUTOUPDATE_ANNOTATION: "true"}})
}

fn role(name: &str, extra_labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name, extra_labels),
        "rules": rules})
}

fn aggregated(name: &str, extra_labels: &[(&str, &str)], to: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta(name, extra_labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {to: "true"}}]}, "rules": []})
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The bootstrap ClusterRoles jobwright stores, with upstream's rules (1.33).
pub fn cluster_roles() -> Vec<Value> {
    vec![
        role("cluster-admin", &[], vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])]),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(&["authorization.k8s.io"], &["localsubjectaccessreviews"], &["create"]),
                rule(&["rbac.authorization.k8s.io"], &["rolebindings", "roles"], READ_WRITE),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            vec![
                rule(
                    &[""],
                    &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
                    READ,
                ),
                rule(&[""], &["serviceaccounts"], &["impersonate"]),
                rule(&[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], WRITE),
                rule(&[""], &["pods/eviction"], &["create"]),
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                    WRITE,
                ),
                rule(&[""], &["serviceaccounts/token"], &["create"]),
                rule(
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                    WRITE,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
                rule(&["batch"], &["cronjobs", "jobs"], WRITE),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "ingresses",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                    ],
                    WRITE,
                ),
                rule(&["policy"], &["poddisruptionbudgets"], WRITE),
                rule(&["networking.k8s.io"], &["ingresses", "networkpolicies"], WRITE),
                rule(&["coordination.k8s.io"], &["leases"], READ_WRITE),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            vec![
                rule(
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    READ,
                ),
                rule(
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    READ,
                ),
                rule(&[""], &["namespaces"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    READ,
                ),
                rule(&["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"], READ),
                rule(&["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"], READ),
                rule(
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "networkpolicies",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                    ],
                    READ,
                ),
                rule(&["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"], READ),
                rule(&["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"], READ),
            ],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(&["authorization.k8s.io"], &["subjectaccessreviews"], &["create"]),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(&["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"], &["create"]),
                rule(&["authentication.k8s.io"], &["selfsubjectreviews"], &["create"]),
            ],
        ),
        role("system:discovery", &[], vec![url_rule(super::rbac::DISCOVERY_PATHS, &["get"])]),
        role(
            "system:monitoring",
            &[],
            vec![url_rule(
                &["/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"],
                &["get"],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(&["/healthz", "/livez", "/readyz", "/version", "/version/"], &["get"])],
        ),
    ]
}

/// The bootstrap ClusterRoleBindings of [`cluster_roles`] (each binds the role of its name).
pub fn cluster_role_bindings() -> Vec<Value> {
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta(name, &[]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": subjects})
    };
    vec![
        binding("cluster-admin", &["system:masters"]),
        binding("system:basic-user", &["system:authenticated"]),
        binding("system:discovery", &["system:authenticated"]),
        binding("system:monitoring", &["system:monitoring"]),
        binding("system:public-info-viewer", &["system:authenticated", "system:unauthenticated"]),
    ]
}

/// Store the bootstrap roles and bindings that are absent (present ones are left as they are),
/// then aggregate.
pub fn ensure(api: &Api) {
    let roles = api.info(super::rbac::RBAC_GROUP, "clusterroles");
    let bindings = api.info(super::rbac::RBAC_GROUP, "clusterrolebindings");
    for (info, objs) in [(&roles, cluster_roles()), (&bindings, cluster_role_bindings())] {
        for obj in objs {
            let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
            if api.get(info, "", &name).is_err()
                && let Err(e) = api.create(info, "", obj, &WriteOptions::default())
            {
                tracing::warn!(%name, error = %e.message, "storing a bootstrap RBAC object failed");
            }
        }
    }
    aggregate(api);
}

/// One pass of the clusterrole-aggregation controller: every ClusterRole with an
/// `aggregationRule` gets, as its rules, the rules of the ClusterRoles its selectors match (in
/// name order, itself excluded, each distinct rule once). Returns how many roles changed; a
/// change can feed another aggregated role (`edit` into `admin`), so the caller runs it again
/// until nothing changes, as the controller's requeue does.
pub fn aggregate(api: &Api) -> usize {
    let info = api.info(super::rbac::RBAC_GROUP, "clusterroles");
    let mut changed_total = 0;
    // Bounded: each pass fixes at least one role, chains are short.
    for _ in 0..8 {
        let all: Vec<Value> = api
            .store
            .list(&info.storage_key, None, None, 0, &|_| true)
            .items
            .iter()
            .filter_map(|e| serde_json::from_slice(&e.bytes()).ok())
            .collect();
        let mut changed = 0;
        for target in all.iter().filter(|r| r.get("aggregationRule").is_some_and(|a| !a.is_null())) {
            let name = target["metadata"]["name"].as_str().unwrap_or_default();
            let selectors: Vec<LabelSelector> = target["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| LabelSelector::from_label_selector(s).ok()).collect())
                .unwrap_or_default();
            let mut rules: Vec<Value> = Vec::new();
            for source in &all {
                if source["metadata"]["name"].as_str() == Some(name) {
                    continue;
                }
                let labels = labels_of(source);
                if !selectors.iter().any(|s| s.matches(&labels)) {
                    continue;
                }
                for r in source["rules"].as_array().into_iter().flatten() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            let current = target["rules"].as_array().cloned().unwrap_or_default();
            if current != rules {
                let mut updated = target.clone();
                updated["rules"] = Value::Array(rules);
                match api.update(&info, "", name, None, updated, &WriteOptions::default()) {
                    Ok(_) => changed += 1,
                    // A concurrent write: the next event runs aggregation again.
                    Err(e) => tracing::debug!(%name, error = %e.message, "aggregating a ClusterRole failed"),
                }
            }
        }
        changed_total += changed;
        if changed == 0 {
            break;
        }
    }
    changed_total
}
