//! The rest of kube-apiserver 1.33's built-in kinds: every resource a real server lists in
//! `kubectl api-resources` (with its default feature gates) that the core of the registry does
//! not already serve.
//!
//! Each row is what upstream's discovery says about the resource (scope, short names,
//! categories, subresources, verbs), checked against kube-apiserver 1.33's discovery documents.
//! As in envtest, no controller stands behind these kinds: they are stored, defaulted, validated,
//! listed, watched, printed and encoded (JSON and protobuf) like any other object.
//!
//! [`with_type`] maps a built-in `(group, kind)` to its k8s-openapi type, so the decoder's
//! unknown-field check and the OpenAPI documents cover these kinds without a table of their own.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::registry::ResourceInfo;

/// One served resource, as upstream's discovery describes it.
struct Row {
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
const fn row(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Row {
    Row { group, version, resource, kind, namespaced, short_names, categories, subresources }
}

const ALL: &[&str] = &["all"];
const API_MACHINERY: &[&str] = &["api-machinery"];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];
const NONE: &[&str] = &[];

/// The resources added to [`super::registry::Registry::builtin`], in upstream's group order.
/// A group's versions are listed in preference order (autoscaling/v2 before v1).
const ROWS: &[Row] = &[
    // core/v1
    row("", "v1", "bindings", "Binding", true, NONE, NONE, NONE),
    row("", "v1", "componentstatuses", "ComponentStatus", false, &["cs"], NONE, NONE),
    row("", "v1", "endpoints", "Endpoints", true, &["ep"], NONE, NONE),
    row("", "v1", "limitranges", "LimitRange", true, &["limits"], NONE, NONE),
    row("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], NONE, STATUS),
    row("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"], NONE, STATUS),
    row("", "v1", "podtemplates", "PodTemplate", true, NONE, NONE, NONE),
    row("", "v1", "replicationcontrollers", "ReplicationController", true, &["rc"], ALL, &["scale", "status"]),
    row("", "v1", "resourcequotas", "ResourceQuota", true, &["quota"], NONE, STATUS),
    // admissionregistration.k8s.io/v1
    row(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        NONE,
        API_MACHINERY,
        NONE,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        false,
        NONE,
        API_MACHINERY,
        STATUS,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        false,
        NONE,
        API_MACHINERY,
        NONE,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        NONE,
        API_MACHINERY,
        NONE,
    ),
    // apiregistration.k8s.io/v1 (kube-aggregator)
    row("apiregistration.k8s.io", "v1", "apiservices", "APIService", false, NONE, &["api-extensions"], STATUS),
    // apps/v1
    row("apps", "v1", "controllerrevisions", "ControllerRevision", true, NONE, NONE, NONE),
    row("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], ALL, STATUS),
    row("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], ALL, STATUS_SCALE),
    row("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], ALL, STATUS_SCALE),
    // authentication.k8s.io/v1 and authorization.k8s.io/v1 (answered by `review`, never stored)
    row("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false, NONE, NONE, NONE),
    row("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false, NONE, NONE, NONE),
    row("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false, NONE, NONE, NONE),
    row("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", false, NONE, NONE, NONE),
    row("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", false, NONE, NONE, NONE),
    // autoscaling: v2 is preferred; both versions share one store.
    row("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], ALL, STATUS),
    row("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, &["hpa"], ALL, STATUS),
    // certificates.k8s.io/v1
    row(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
        &["csr"],
        NONE,
        &["approval", "status"],
    ),
    // discovery.k8s.io/v1
    row("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, NONE, NONE, NONE),
    // flowcontrol.apiserver.k8s.io/v1
    row("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", false, NONE, NONE, STATUS),
    row(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
        false,
        NONE,
        NONE,
        STATUS,
    ),
    // networking.k8s.io/v1
    row("networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, NONE, NONE, NONE),
    row("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], NONE, STATUS),
    row("networking.k8s.io", "v1", "ipaddresses", "IPAddress", false, &["ip"], NONE, NONE),
    row("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], NONE, NONE),
    row("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR", false, NONE, NONE, STATUS),
    // node.k8s.io/v1
    row("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", false, NONE, NONE, NONE),
    // scheduling.k8s.io/v1
    row("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", false, &["pc"], NONE, NONE),
    // storage.k8s.io/v1
    row("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false, NONE, NONE, NONE),
    row("storage.k8s.io", "v1", "csinodes", "CSINode", false, NONE, NONE, NONE),
    row("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", true, NONE, NONE, NONE),
    row("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"], NONE, NONE),
    row("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", false, NONE, NONE, STATUS),
];

/// The resources of [`ROWS`], as registry entries.
pub fn resources() -> Vec<ResourceInfo> {
    ROWS.iter()
        .map(|r| {
            let mut info = ResourceInfo::new(
                r.group,
                r.version,
                r.resource,
                r.kind,
                r.namespaced,
                r.short_names,
                r.categories,
                r.subresources,
            );
            if r.resource == "endpoints" {
                info.singular = "endpoints".into();
            }
            // Upstream keeps one store for both versions and converts between them; here each
            // version has its own (no conversion between autoscaling/v1 and v2).
            if r.group == "autoscaling" && r.version == "v1" {
                info.storage_key = "autoscaling/v1/horizontalpodautoscalers".into();
            }
            info
        })
        .collect()
}

/// The verbs of resources that do not support the usual eight, as upstream's discovery lists
/// them; `None` for the usual ones.
pub fn verbs(group: &str, resource: &str) -> Option<&'static [&'static str]> {
    Some(match (group, resource) {
        ("", "bindings") => &["create"],
        ("", "componentstatuses") => &["get", "list"],
        // The namespace store has no deletecollection (namespaces are deleted one by one).
        ("", "namespaces") => &["create", "delete", "get", "list", "patch", "update", "watch"],
        ("authentication.k8s.io", _) | ("authorization.k8s.io", _) => &["create"],
        _ => return None,
    })
}

/// The HTTP verb of a request as upstream's authorizer names it, for [`allows`]: `list` and
/// `watch` for collection reads, `get` for one object, and so on.
pub fn request_verb(method: &http::Method, named: bool, watch: bool) -> &'static str {
    match (method.as_str(), named, watch) {
        (_, _, true) => "watch",
        ("GET" | "HEAD", true, _) => "get",
        ("GET" | "HEAD", false, _) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => "",
    }
}

/// Whether the main resource `info` supports `verb` (subresources are checked by the HTTP layer).
pub fn allows(info: &ResourceInfo, verb: &str) -> bool {
    info.verbs().contains(&verb)
}

/// A generic operation on a k8s-openapi type, for [`with_type`].
pub trait TypeVisitor {
    type Out;
    fn visit<T>(self) -> Self::Out
    where
        T: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema;
}

/// Calls `v` with the k8s-openapi type of the built-in `(group, version, kind)` of [`ROWS`];
/// `None` when there is none (a kind served elsewhere, or APIService, which k8s-openapi lacks).
pub fn with_type<V: TypeVisitor>(group: &str, version: &str, kind: &str, v: V) -> Option<V::Out> {
    use k8s_openapi::api::{
        admissionregistration, apps, autoscaling, certificates, core, discovery, flowcontrol, networking, node,
        scheduling, storage,
    };
    Some(match (group, version, kind) {
        ("", _, "ComponentStatus") => v.visit::<core::v1::ComponentStatus>(),
        ("", _, "Endpoints") => v.visit::<core::v1::Endpoints>(),
        ("", _, "LimitRange") => v.visit::<core::v1::LimitRange>(),
        ("", _, "PersistentVolumeClaim") => v.visit::<core::v1::PersistentVolumeClaim>(),
        ("", _, "PersistentVolume") => v.visit::<core::v1::PersistentVolume>(),
        ("", _, "PodTemplate") => v.visit::<core::v1::PodTemplate>(),
        ("", _, "ReplicationController") => v.visit::<core::v1::ReplicationController>(),
        ("", _, "ResourceQuota") => v.visit::<core::v1::ResourceQuota>(),
        ("admissionregistration.k8s.io", _, "MutatingWebhookConfiguration") => {
            v.visit::<admissionregistration::v1::MutatingWebhookConfiguration>()
        }
        ("admissionregistration.k8s.io", _, "ValidatingWebhookConfiguration") => {
            v.visit::<admissionregistration::v1::ValidatingWebhookConfiguration>()
        }
        ("admissionregistration.k8s.io", _, "ValidatingAdmissionPolicy") => {
            v.visit::<admissionregistration::v1::ValidatingAdmissionPolicy>()
        }
        ("admissionregistration.k8s.io", _, "ValidatingAdmissionPolicyBinding") => {
            v.visit::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>()
        }
        ("apps", _, "ControllerRevision") => v.visit::<apps::v1::ControllerRevision>(),
        ("apps", _, "DaemonSet") => v.visit::<apps::v1::DaemonSet>(),
        ("apps", _, "ReplicaSet") => v.visit::<apps::v1::ReplicaSet>(),
        ("apps", _, "StatefulSet") => v.visit::<apps::v1::StatefulSet>(),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => v.visit::<autoscaling::v1::HorizontalPodAutoscaler>(),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => v.visit::<autoscaling::v2::HorizontalPodAutoscaler>(),
        ("certificates.k8s.io", _, "CertificateSigningRequest") => {
            v.visit::<certificates::v1::CertificateSigningRequest>()
        }
        ("discovery.k8s.io", _, "EndpointSlice") => v.visit::<discovery::v1::EndpointSlice>(),
        ("flowcontrol.apiserver.k8s.io", _, "FlowSchema") => v.visit::<flowcontrol::v1::FlowSchema>(),
        ("flowcontrol.apiserver.k8s.io", _, "PriorityLevelConfiguration") => {
            v.visit::<flowcontrol::v1::PriorityLevelConfiguration>()
        }
        ("networking.k8s.io", _, "IngressClass") => v.visit::<networking::v1::IngressClass>(),
        ("networking.k8s.io", _, "Ingress") => v.visit::<networking::v1::Ingress>(),
        ("networking.k8s.io", _, "IPAddress") => v.visit::<networking::v1::IPAddress>(),
        ("networking.k8s.io", _, "NetworkPolicy") => v.visit::<networking::v1::NetworkPolicy>(),
        ("networking.k8s.io", _, "ServiceCIDR") => v.visit::<networking::v1::ServiceCIDR>(),
        ("node.k8s.io", _, "RuntimeClass") => v.visit::<node::v1::RuntimeClass>(),
        ("scheduling.k8s.io", _, "PriorityClass") => v.visit::<scheduling::v1::PriorityClass>(),
        ("storage.k8s.io", _, "CSIDriver") => v.visit::<storage::v1::CSIDriver>(),
        ("storage.k8s.io", _, "CSINode") => v.visit::<storage::v1::CSINode>(),
        ("storage.k8s.io", _, "CSIStorageCapacity") => v.visit::<storage::v1::CSIStorageCapacity>(),
        ("storage.k8s.io", _, "StorageClass") => v.visit::<storage::v1::StorageClass>(),
        ("storage.k8s.io", _, "VolumeAttachment") => v.visit::<storage::v1::VolumeAttachment>(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    /// `kubectl api-resources` of a kube-apiserver 1.33 with default feature gates (name, short
    /// names, apiVersion, namespaced, kind), less the metrics.k8s.io rows of metrics-server and
    /// the namespaced review resource answered without a store (localsubjectaccessreviews).
    const UPSTREAM: &str = "\
bindings  v1 true Binding
componentstatuses cs v1 false ComponentStatus
configmaps cm v1 true ConfigMap
endpoints ep v1 true Endpoints
events ev v1 true Event
limitranges limits v1 true LimitRange
namespaces ns v1 false Namespace
nodes no v1 false Node
persistentvolumeclaims pvc v1 true PersistentVolumeClaim
persistentvolumes pv v1 false PersistentVolume
pods po v1 true Pod
podtemplates  v1 true PodTemplate
replicationcontrollers rc v1 true ReplicationController
resourcequotas quota v1 true ResourceQuota
secrets  v1 true Secret
serviceaccounts sa v1 true ServiceAccount
services svc v1 true Service
mutatingwebhookconfigurations  admissionregistration.k8s.io/v1 false MutatingWebhookConfiguration
validatingadmissionpolicies  admissionregistration.k8s.io/v1 false ValidatingAdmissionPolicy
validatingadmissionpolicybindings  admissionregistration.k8s.io/v1 false ValidatingAdmissionPolicyBinding
validatingwebhookconfigurations  admissionregistration.k8s.io/v1 false ValidatingWebhookConfiguration
customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition
apiservices  apiregistration.k8s.io/v1 false APIService
controllerrevisions  apps/v1 true ControllerRevision
daemonsets ds apps/v1 true DaemonSet
deployments deploy apps/v1 true Deployment
replicasets rs apps/v1 true ReplicaSet
statefulsets sts apps/v1 true StatefulSet
selfsubjectreviews  authentication.k8s.io/v1 false SelfSubjectReview
tokenreviews  authentication.k8s.io/v1 false TokenReview
selfsubjectaccessreviews  authorization.k8s.io/v1 false SelfSubjectAccessReview
selfsubjectrulesreviews  authorization.k8s.io/v1 false SelfSubjectRulesReview
subjectaccessreviews  authorization.k8s.io/v1 false SubjectAccessReview
horizontalpodautoscalers hpa autoscaling/v2 true HorizontalPodAutoscaler
cronjobs cj batch/v1 true CronJob
jobs  batch/v1 true Job
certificatesigningrequests csr certificates.k8s.io/v1 false CertificateSigningRequest
leases  coordination.k8s.io/v1 true Lease
endpointslices  discovery.k8s.io/v1 true EndpointSlice
events ev events.k8s.io/v1 true Event
flowschemas  flowcontrol.apiserver.k8s.io/v1 false FlowSchema
prioritylevelconfigurations  flowcontrol.apiserver.k8s.io/v1 false PriorityLevelConfiguration
ingressclasses  networking.k8s.io/v1 false IngressClass
ingresses ing networking.k8s.io/v1 true Ingress
ipaddresses ip networking.k8s.io/v1 false IPAddress
networkpolicies netpol networking.k8s.io/v1 true NetworkPolicy
servicecidrs  networking.k8s.io/v1 false ServiceCIDR
runtimeclasses  node.k8s.io/v1 false RuntimeClass
poddisruptionbudgets pdb policy/v1 true PodDisruptionBudget
clusterrolebindings  rbac.authorization.k8s.io/v1 false ClusterRoleBinding
clusterroles  rbac.authorization.k8s.io/v1 false ClusterRole
rolebindings  rbac.authorization.k8s.io/v1 true RoleBinding
roles  rbac.authorization.k8s.io/v1 true Role
priorityclasses pc scheduling.k8s.io/v1 false PriorityClass
csidrivers  storage.k8s.io/v1 false CSIDriver
csinodes  storage.k8s.io/v1 false CSINode
csistoragecapacities  storage.k8s.io/v1 true CSIStorageCapacity
storageclasses sc storage.k8s.io/v1 false StorageClass
volumeattachments  storage.k8s.io/v1 false VolumeAttachment";

    #[test]
    fn every_upstream_resource_is_served_with_its_discovery_facts() {
        let reg = Registry::builtin();
        for line in UPSTREAM.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (resource, short, gv, namespaced, kind) = (f[0], f[1], f[2], f[3] == "true", f[4]);
            let (group, version) = gv.split_once('/').unwrap_or(("", gv));
            let info = reg.get(group, version, resource).unwrap_or_else(|| panic!("{resource}.{group} not served"));
            assert_eq!(info.kind, kind, "{line}");
            assert_eq!(info.namespaced, namespaced, "{line}");
            let shorts = info.short_names.join(",");
            assert_eq!(shorts, short, "{line}");
        }
        // The preferred autoscaling version is v2, as upstream's.
        let gvs = reg.group_versions();
        let v2 = gvs.iter().position(|gv| gv == &("autoscaling".into(), "v2".into())).unwrap();
        let v1 = gvs.iter().position(|gv| gv == &("autoscaling".into(), "v1".into())).unwrap();
        assert!(v2 < v1);
        assert_eq!(reg.get("", "v1", "endpoints").unwrap().singular, "endpoints");
    }

    #[test]
    fn categories_subresources_and_verbs_follow_upstream() {
        let reg = Registry::builtin();
        let all: Vec<String> = reg
            .all()
            .into_iter()
            .filter(|r| r.categories.iter().any(|c| c == "all"))
            .map(|r| r.group_resource())
            .collect();
        for r in [
            "pods",
            "services",
            "replicationcontrollers",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps",
            "horizontalpodautoscalers.autoscaling",
            "cronjobs.batch",
            "jobs.batch",
        ] {
            assert!(all.contains(&r.to_string()), "{r} is not in category all: {all:?}");
        }
        let sts = reg.get("apps", "v1", "statefulsets").unwrap();
        assert!(sts.has_subresource("scale") && sts.has_subresource("status"));
        assert!(
            reg.get("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap().has_subresource("approval")
        );
        assert!(!reg.get("apps", "v1", "controllerrevisions").unwrap().has_subresource("status"));
        assert_eq!(reg.get("", "v1", "componentstatuses").unwrap().verbs(), ["get", "list"]);
        assert_eq!(reg.get("", "v1", "bindings").unwrap().verbs(), ["create"]);
        assert!(!allows(&reg.get("", "v1", "namespaces").unwrap(), "deletecollection"));
        assert!(allows(&reg.get("apps", "v1", "daemonsets").unwrap(), "deletecollection"));
        let webhooks = reg.get("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations").unwrap();
        assert_eq!(webhooks.categories, ["api-machinery"]);
    }

    #[test]
    fn events_k8s_io_field_selectors_name_its_own_fields() {
        use crate::selector::FieldSelector;
        let reg = Registry::builtin();
        let new = reg.get("events.k8s.io", "v1", "events").unwrap();
        let core = reg.get("", "v1", "events").unwrap();
        // Stored events have the core shape.
        let ev = serde_json::json!({"metadata": {"name": "e", "namespace": "d"}, "reason": "R",
            "involvedObject": {"kind": "Job", "name": "j"}, "reportingComponent": "c"});
        let sel = FieldSelector::parse_str(&new, "regarding.kind=Job,regarding.name=j,reportingController=c").unwrap();
        assert!(sel.matches_object(&new, &ev));
        assert!(!FieldSelector::parse_str(&new, "regarding.kind=Pod").unwrap().matches_object(&new, &ev));
        assert!(FieldSelector::parse_str(&new, "involvedObject.kind=Job").unwrap().matches_object(&new, &ev));
        assert!(FieldSelector::parse_str(&core, "involvedObject.kind=Job").unwrap().matches_object(&core, &ev));
        assert_eq!(
            FieldSelector::parse_str(&core, "regarding.kind=Job").unwrap_err(),
            "field label not supported: regarding.kind"
        );
    }

    struct Name;
    impl TypeVisitor for Name {
        type Out = String;
        fn visit<T: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema>(self) -> String {
            T::schema_name().into_owned()
        }
    }

    #[test]
    fn every_stored_kind_but_apiservice_has_a_type() {
        for r in ROWS {
            let typed = with_type(r.group, r.version, r.kind, Name);
            let untyped =
                matches!(r.group, "authentication.k8s.io" | "authorization.k8s.io" | "apiregistration.k8s.io")
                    || r.kind == "Binding";
            assert_eq!(typed.is_none(), untyped, "{}/{}", r.group, r.kind);
            if let Some(name) = typed {
                assert!(name.ends_with(&format!(".{}", r.kind)), "{name}");
            }
        }
        assert_eq!(
            with_type("autoscaling", "v1", "HorizontalPodAutoscaler", Name).unwrap(),
            "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"
        );
    }
}
