//! Every built-in kind of kube-apiserver 1.33 is served (issue 15): `kubectl api-resources` lists
//! upstream's rows, and each stored kind goes through the real `kubectl` (create, get, delete),
//! kube::Client in JSON and client-go's protobuf.
//!
//! They need the real `kubectl` on PATH (every machine and CI has it); there is no skip.

use jobwright::apiserver::proto;
use jobwright::apiserver::testkit::TestApiServer;
use serde_json::{Value, json};

/// `kubectl api-resources` of kube-apiserver 1.33 (NAME, SHORTNAMES, APIVERSION, NAMESPACED,
/// KIND), less localsubjectaccessreviews (served, not listed here).
const UPSTREAM_ROWS: &[(&str, &str, &str, bool, &str)] = &[
    ("bindings", "", "v1", true, "Binding"),
    ("componentstatuses", "cs", "v1", false, "ComponentStatus"),
    ("configmaps", "cm", "v1", true, "ConfigMap"),
    ("endpoints", "ep", "v1", true, "Endpoints"),
    ("events", "ev", "v1", true, "Event"),
    ("limitranges", "limits", "v1", true, "LimitRange"),
    ("namespaces", "ns", "v1", false, "Namespace"),
    ("nodes", "no", "v1", false, "Node"),
    ("persistentvolumeclaims", "pvc", "v1", true, "PersistentVolumeClaim"),
    ("persistentvolumes", "pv", "v1", false, "PersistentVolume"),
    ("pods", "po", "v1", true, "Pod"),
    ("podtemplates", "", "v1", true, "PodTemplate"),
    ("replicationcontrollers", "rc", "v1", true, "ReplicationController"),
    ("resourcequotas", "quota", "v1", true, "ResourceQuota"),
    ("secrets", "", "v1", true, "Secret"),
    ("serviceaccounts", "sa", "v1", true, "ServiceAccount"),
    ("services", "svc", "v1", true, "Service"),
    ("mutatingwebhookconfigurations", "", "admissionregistration.k8s.io/v1", false, "MutatingWebhookConfiguration"),
    ("validatingadmissionpolicies", "", "admissionregistration.k8s.io/v1", false, "ValidatingAdmissionPolicy"),
    (
        "validatingadmissionpolicybindings",
        "",
        "admissionregistration.k8s.io/v1",
        false,
        "ValidatingAdmissionPolicyBinding",
    ),
    ("validatingwebhookconfigurations", "", "admissionregistration.k8s.io/v1", false, "ValidatingWebhookConfiguration"),
    ("customresourcedefinitions", "crd,crds", "apiextensions.k8s.io/v1", false, "CustomResourceDefinition"),
    ("apiservices", "", "apiregistration.k8s.io/v1", false, "APIService"),
    ("controllerrevisions", "", "apps/v1", true, "ControllerRevision"),
    ("daemonsets", "ds", "apps/v1", true, "DaemonSet"),
    ("deployments", "deploy", "apps/v1", true, "Deployment"),
    ("replicasets", "rs", "apps/v1", true, "ReplicaSet"),
    ("statefulsets", "sts", "apps/v1", true, "StatefulSet"),
    ("selfsubjectreviews", "", "authentication.k8s.io/v1", false, "SelfSubjectReview"),
    ("tokenreviews", "", "authentication.k8s.io/v1", false, "TokenReview"),
    ("selfsubjectaccessreviews", "", "authorization.k8s.io/v1", false, "SelfSubjectAccessReview"),
    ("selfsubjectrulesreviews", "", "authorization.k8s.io/v1", false, "SelfSubjectRulesReview"),
    ("subjectaccessreviews", "", "authorization.k8s.io/v1", false, "SubjectAccessReview"),
    ("horizontalpodautoscalers", "hpa", "autoscaling/v2", true, "HorizontalPodAutoscaler"),
    ("cronjobs", "cj", "batch/v1", true, "CronJob"),
    ("jobs", "", "batch/v1", true, "Job"),
    ("certificatesigningrequests", "csr", "certificates.k8s.io/v1", false, "CertificateSigningRequest"),
    ("leases", "", "coordination.k8s.io/v1", true, "Lease"),
    ("endpointslices", "", "discovery.k8s.io/v1", true, "EndpointSlice"),
    ("events", "ev", "events.k8s.io/v1", true, "Event"),
    ("flowschemas", "", "flowcontrol.apiserver.k8s.io/v1", false, "FlowSchema"),
    ("prioritylevelconfigurations", "", "flowcontrol.apiserver.k8s.io/v1", false, "PriorityLevelConfiguration"),
    ("ingressclasses", "", "networking.k8s.io/v1", false, "IngressClass"),
    ("ingresses", "ing", "networking.k8s.io/v1", true, "Ingress"),
    ("ipaddresses", "ip", "networking.k8s.io/v1", false, "IPAddress"),
    ("networkpolicies", "netpol", "networking.k8s.io/v1", true, "NetworkPolicy"),
    ("servicecidrs", "", "networking.k8s.io/v1", false, "ServiceCIDR"),
    ("runtimeclasses", "", "node.k8s.io/v1", false, "RuntimeClass"),
    ("poddisruptionbudgets", "pdb", "policy/v1", true, "PodDisruptionBudget"),
    ("clusterrolebindings", "", "rbac.authorization.k8s.io/v1", false, "ClusterRoleBinding"),
    ("clusterroles", "", "rbac.authorization.k8s.io/v1", false, "ClusterRole"),
    ("rolebindings", "", "rbac.authorization.k8s.io/v1", true, "RoleBinding"),
    ("roles", "", "rbac.authorization.k8s.io/v1", true, "Role"),
    ("priorityclasses", "pc", "scheduling.k8s.io/v1", false, "PriorityClass"),
    ("csidrivers", "", "storage.k8s.io/v1", false, "CSIDriver"),
    ("csinodes", "", "storage.k8s.io/v1", false, "CSINode"),
    ("csistoragecapacities", "", "storage.k8s.io/v1", true, "CSIStorageCapacity"),
    ("storageclasses", "sc", "storage.k8s.io/v1", false, "StorageClass"),
    ("volumeattachments", "", "storage.k8s.io/v1", false, "VolumeAttachment"),
];

#[tokio::test]
async fn kubectl_api_resources_lists_every_upstream_row() {
    let server = TestApiServer::start().await;
    let out = server.kubectl().ok(&["api-resources", "--no-headers"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    for (name, short, gv, namespaced, kind) in UPSTREAM_ROWS {
        let want: Vec<&str> = [*name]
            .into_iter()
            .chain((!short.is_empty()).then_some(*short))
            .chain([*gv, if *namespaced { "true" } else { "false" }, *kind])
            .collect();
        assert!(rows.contains(&want), "no row {want:?} in:\n{out}");
    }
    // `kubectl get all` covers the workloads upstream puts in category `all`.
    let all = server.kubectl().ok(&["api-resources", "--categories=all", "-o", "name"]).await;
    for r in [
        "daemonsets.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "replicationcontrollers",
        "horizontalpodautoscalers.autoscaling",
    ] {
        assert!(all.lines().any(|l| l == r), "{r} not in category all:\n{all}");
    }
}

fn pod_template() -> Value {
    json!({"metadata": {"labels": {"app": "k"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// A minimal valid object of every stored kind beyond the core ones: (resource for kubectl, object).
fn manifests() -> Vec<(&'static str, Value)> {
    let sel = json!({"matchLabels": {"app": "k"}});
    vec![
        ("endpoints", json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "k-ep"}})),
        (
            "limitranges",
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "k-lr"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}}),
        ),
        (
            "persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "k-pvc"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "persistentvolumes",
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "k-pv"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/k"}}}),
        ),
        (
            "podtemplates",
            json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "k-pt"}, "template": pod_template()}),
        ),
        (
            "replicationcontrollers",
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "k-rc"},
            "spec": {"replicas": 0, "selector": {"app": "k"}, "template": pod_template()}}),
        ),
        (
            "resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "k-rq"},
            "spec": {"hard": {"pods": "10"}}}),
        ),
        (
            "mutatingwebhookconfigurations",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "k-mwc"}}),
        ),
        (
            "validatingwebhookconfigurations",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "k-vwc"}}),
        ),
        (
            "validatingadmissionpolicies",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "k-vap"}, "spec": {"validations": [{"expression": "true"}]}}),
        ),
        (
            "validatingadmissionpolicybindings",
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "k-vapb"}, "spec": {"policyName": "k-vap", "validationActions": ["Deny"]}}),
        ),
        (
            "apiservices",
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.k.example.com"},
            "spec": {"group": "k.example.com", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10}}),
        ),
        (
            "controllerrevisions",
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "k-cr"}, "revision": 1}),
        ),
        (
            "daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "k-ds"},
            "spec": {"selector": sel, "template": pod_template()}}),
        ),
        (
            "replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "k-rs"},
            "spec": {"replicas": 0, "selector": sel, "template": pod_template()}}),
        ),
        (
            "statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "k-sts"},
            "spec": {"replicas": 0, "serviceName": "k", "selector": sel, "template": pod_template()}}),
        ),
        (
            "horizontalpodautoscalers.v2.autoscaling",
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "k-hpa"},
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}}}),
        ),
        (
            "horizontalpodautoscalers.v1.autoscaling",
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "k-hpa1"},
            "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 50, "scaleTargetRef": {"kind": "Deployment", "name": "d"}}}),
        ),
        (
            "certificatesigningrequests",
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "k-csr"},
            "spec": {"request": "LS0tLS1CRUdJTg==", "signerName": "example.com/k", "usages": ["client auth"]}}),
        ),
        (
            "endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "k-eps"},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}),
        ),
        (
            "flowschemas",
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "k-fs"},
            "spec": {"priorityLevelConfiguration": {"name": "k-plc"}}}),
        ),
        (
            "prioritylevelconfigurations",
            json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": "k-plc"}, "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5}}}),
        ),
        (
            "ingressclasses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "k-ic"},
            "spec": {"controller": "example.com/ingress"}}),
        ),
        (
            "ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "k-ing"},
            "spec": {"rules": [{"host": "k.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "svc", "port": {"number": 80}}}}]}}]}}),
        ),
        (
            "ipaddresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": {"name": "10.0.0.77"},
            "spec": {"parentRef": {"resource": "services", "namespace": "default", "name": "svc"}}}),
        ),
        (
            "networkpolicies",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "k-np"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
        ),
        (
            "servicecidrs",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "k-cidr"},
            "spec": {"cidrs": ["10.96.0.0/24"]}}),
        ),
        (
            "runtimeclasses",
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "k-rtc"}, "handler": "runc"}),
        ),
        (
            "priorityclasses",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "k-pc"}, "value": 1000}),
        ),
        (
            "csidrivers",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "k.csi.example.com"}, "spec": {}}),
        ),
        (
            "csinodes",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "k-node"}, "spec": {"drivers": []}}),
        ),
        (
            "csistoragecapacities",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity", "metadata": {"name": "k-csc"},
            "storageClassName": "standard"}),
        ),
        (
            "storageclasses",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "k-sc"},
            "provisioner": "example.com/k"}),
        ),
        (
            "volumeattachments",
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "k-va"},
            "spec": {"attacher": "k.csi.example.com", "nodeName": "n", "source": {"persistentVolumeName": "k-pv"}}}),
        ),
    ]
}

/// The collection URL of `obj`, in `default` when namespaced.
fn collection(server: &TestApiServer, obj: &Value) -> String {
    let av = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let info = server.server().api.registry.by_kind(av, kind).unwrap_or_else(|| panic!("{av} {kind} not served"));
    let ns = if info.namespaced { "/namespaces/default".to_string() } else { String::new() };
    format!("{}{ns}/{}", info.gv_path(), info.resource)
}

#[tokio::test]
async fn every_stored_builtin_kind_through_kubectl_json_and_protobuf() {
    let server = TestApiServer::start().await;
    let kubectl = server.kubectl();
    let client = server.client();
    for (resource, obj) in manifests() {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let what = format!("{resource}/{name}");
        let created = kubectl.run_stdin(&["create", "-f", "-", "-o", "json"], &obj.to_string()).await;
        assert!(created.success, "kubectl create {what}: {}", created.stderr);
        let created: Value = serde_json::from_str(&created.stdout).unwrap();
        assert_eq!(created["kind"], obj["kind"], "{what}");
        assert!(created["metadata"]["uid"].is_string(), "{what}");

        // kube::Client, JSON.
        let url = format!("{}/{name}", collection(&server, &obj));
        let req = http::Request::get(&url).body(Vec::new()).unwrap();
        let mut got: Value = client.request(req).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        // (kubectl's output drops managedFields.)
        got["metadata"].as_object_mut().unwrap().remove("managedFields");
        assert_eq!(got, created, "{what}: GET is the created object");

        // client-go's protobuf: the same object.
        let req =
            http::Request::get(&url).header("Accept", "application/vnd.kubernetes.protobuf").body(Vec::new()).unwrap();
        let raw = client.send(req.map(kube::client::Body::from)).await.unwrap();
        assert_eq!(
            raw.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/vnd.kubernetes.protobuf"),
            "{what}"
        );
        let body = http_body_util::BodyExt::collect(raw.into_body()).await.unwrap().to_bytes();
        let decoded = proto::decode(&body).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(decoded["metadata"]["uid"], created["metadata"]["uid"], "{what}");
        assert_eq!(decoded["kind"], obj["kind"], "{what}");

        // kubectl get and delete by resource name.
        let gotten = kubectl.ok(&["get", resource, &name, "-o", "jsonpath={.metadata.name}"]).await;
        assert_eq!(gotten, name, "{what}");
        kubectl.ok(&["delete", resource, &name]).await;
        let req = http::Request::get(&url).body(Vec::new()).unwrap();
        let gone = client.request::<Value>(req).await;
        assert!(matches!(gone, Err(kube::Error::Api(ref s)) if s.code == 404), "{what}: {gone:?}");
    }
}

#[tokio::test]
async fn missing_required_fields_and_absent_verbs_answer_as_upstream() {
    let server = TestApiServer::start().await;
    let kubectl = server.kubectl();
    // An Ingress path without pathType: upstream's 422 names the field.
    let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "bad"},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"name": "s", "port": {"number": 1}}}}]}}]}});
    let out = kubectl.run_stdin(&["create", "-f", "-"], &ing.to_string()).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("The Ingress \"bad\" is invalid: spec.rules[0].http.paths[0].pathType: Required value"),
        "{}",
        out.stderr
    );
    // componentstatuses can be listed, not created.
    kubectl.ok(&["get", "componentstatuses"]).await;
    let cs = json!({"apiVersion": "v1", "kind": "ComponentStatus", "metadata": {"name": "etcd-0"}});
    let out = kubectl.run_stdin(&["create", "-f", "-"], &cs.to_string()).await;
    assert!(!out.success && out.stderr.contains("MethodNotAllowed"), "{}", out.stderr);
}
