//! The API server spoken to as client-go speaks to it: protobuf bodies built with kube-rs's
//! `k8s-pb` bindings in client-go's envelope (`k8s\0` + `runtime.Unknown`), and
//! `Accept: application/vnd.kubernetes.protobuf, */*`. For every served built-in type: create,
//! read back as JSON and as protobuf, update, patch, list, delete with protobuf DeleteOptions, and
//! the Status errors on the way; watch frames; custom resources staying JSON.

use crate::common;

use common::contains;

use bytes::Bytes;
use http_body_util::BodyExt;
use jobwright::apiserver::proto;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_pb::api as pb;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as pb_ext;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::Client;
use prost::Message;
use serde_json::{Value, json};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What client-go sends when its content type is protobuf.
const CLIENT_GO_ACCEPT: &str = "application/vnd.kubernetes.protobuf, */*";

struct Answer {
    code: u16,
    content_type: String,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        assert!(self.content_type.starts_with("application/json"), "not JSON: {}", self.content_type);
        serde_json::from_slice(&self.body).unwrap()
    }
    /// The envelope as client-go reads it: `Unknown` with the type, and the message.
    fn envelope(&self) -> (String, String, Vec<u8>) {
        assert_eq!(self.content_type, PROTOBUF, "{}", String::from_utf8_lossy(&self.body));
        let rest = self.body.strip_prefix(b"k8s\0").expect("magic");
        let u = Unknown::decode(rest).unwrap();
        let tm = u.type_meta.unwrap();
        assert_eq!(u.content_encoding.as_deref(), Some(""));
        (tm.api_version.unwrap(), tm.kind.unwrap(), u.raw.unwrap())
    }
    /// Decoded by prost into `P` (client-go's view), and by the server's decoder into JSON.
    fn protobuf<P: Message + Default>(&self, kind: &str) -> (P, Value) {
        let (_, k, raw) = self.envelope();
        assert_eq!(k, kind);
        (P::decode(raw.as_slice()).unwrap(), proto::decode(&self.body).unwrap())
    }
}

async fn send(c: &Client, method: &str, path: &str, ct: &str, accept: &str, body: Vec<u8>) -> Answer {
    let mut req = http::Request::builder().method(method).uri(path).header("Accept", accept);
    if !ct.is_empty() {
        req = req.header("Content-Type", ct);
    }
    let res = c.send(req.body(kube::client::Body::from(body)).unwrap()).await.unwrap();
    let code = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer { code, content_type, body }
}

/// client-go's envelope: `k8s\0` and a `runtime.Unknown`, built by prost.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let u = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [b"k8s\0".as_slice(), &u.encode_to_vec()].concat()
}

/// client-go's body for an object: the k8s-pb message `P` (built from the JSON through the
/// server's encoder, then decoded and re-encoded by prost) in an `Unknown` envelope built by prost.
fn client_go_body<P: Message + Default>(obj: &Value) -> Vec<u8> {
    let ours = proto::encode(obj).unwrap();
    let raw = Unknown::decode(&ours[4..]).unwrap().raw.unwrap();
    let p = P::decode(raw.as_slice()).unwrap();
    envelope(obj["apiVersion"].as_str().unwrap(), obj["kind"].as_str().unwrap(), p.encode_to_vec())
}

/// `v` as a Go client sees it: through Go's types (so `omitempty` drops empty strings the
/// server's JSON may carry, e.g. a managedFields entry's `"manager": ""`).
fn go_view(v: &Value) -> Value {
    proto::decode(&proto::encode(v).unwrap()).unwrap()
}

/// One built-in type through every verb, as client-go would drive it.
async fn round_trip<P: Message + Default, L: Message + Default>(c: &Client, collection: &str, obj: Value) {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let item = format!("{collection}/{name}");

    // Create: protobuf in, protobuf out.
    let created = send(c, "POST", collection, PROTOBUF, CLIENT_GO_ACCEPT, client_go_body::<P>(&obj)).await;
    assert_eq!(created.code, 201, "create {kind}: {}", String::from_utf8_lossy(&created.body));
    let (p, created_json) = created.protobuf::<P>(&kind);
    assert!(p.encoded_len() > 0);

    // Read back as JSON: everything sent is stored (a create resets status, as upstream).
    let stored = send(c, "GET", &item, "", "application/json", vec![]).await;
    assert_eq!(stored.code, 200);
    let stored = stored.json();
    // What client-go holds for `obj`: Go's types drop the empty values of `omitempty` fields.
    let mut sent = go_view(&obj);
    sent.as_object_mut().unwrap().remove("status");
    let mut errs = Vec::new();
    contains(&sent, &stored, "", &mut errs);
    assert!(errs.is_empty(), "{kind}: {errs:#?}\nstored: {stored:#}");
    assert_eq!(created_json, go_view(&stored), "{kind}: the create answer in protobuf is the stored object");

    // Read back as protobuf: the same object.
    let got = send(c, "GET", &item, "", CLIENT_GO_ACCEPT, vec![]).await;
    assert_eq!(got.code, 200);
    let (_, got_json) = got.protobuf::<P>(&kind);
    assert_eq!(got_json, go_view(&stored), "{kind}: GET in protobuf");
    assert_eq!(got.body, Bytes::from(proto::encode(&stored).unwrap()));

    // Update with a protobuf body.
    let mut changed = stored.clone();
    changed["metadata"]["labels"]["updated"] = json!("yes");
    let updated = send(c, "PUT", &item, PROTOBUF, CLIENT_GO_ACCEPT, client_go_body::<P>(&changed)).await;
    assert_eq!(updated.code, 200, "update {kind}: {}", String::from_utf8_lossy(&updated.body));
    let (_, updated_json) = updated.protobuf::<P>(&kind);
    assert_eq!(updated_json["metadata"]["labels"]["updated"], "yes");

    // Patch (patches are JSON; the answer is protobuf).
    let patch = serde_json::to_vec(&json!({"metadata": {"annotations": {"patched": "1"}}})).unwrap();
    let patched = send(c, "PATCH", &item, "application/merge-patch+json", CLIENT_GO_ACCEPT, patch).await;
    assert_eq!(patched.code, 200, "patch {kind}: {}", String::from_utf8_lossy(&patched.body));
    let (_, patched_json) = patched.protobuf::<P>(&kind);
    assert_eq!(patched_json["metadata"]["annotations"]["patched"], "1");
    assert_eq!(patched_json["metadata"]["labels"]["updated"], "yes");
    let now = send(c, "GET", &item, "", "application/json", vec![]).await.json();
    assert_eq!(patched_json, go_view(&now));

    // List in protobuf: kind XList, the object among the items.
    let list = send(c, "GET", collection, "", CLIENT_GO_ACCEPT, vec![]).await;
    assert_eq!(list.code, 200);
    let (l, list_json) = list.protobuf::<L>(&format!("{kind}List"));
    assert!(l.encoded_len() > 0);
    assert!(list_json["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()));
    let items = list_json["items"].as_array().unwrap();
    // Items of a protobuf list carry no apiVersion/kind (the message has no TypeMeta).
    let mut item_view = go_view(&now);
    item_view.as_object_mut().unwrap().retain(|k, _| k != "apiVersion" && k != "kind");
    assert!(items.iter().any(|i| i == &item_view), "{kind}: list lacks the object");

    // Delete with protobuf DeleteOptions: a wrong uid precondition is a 409 Status in protobuf.
    let opts = |uid: &str| {
        let o = pb_meta::DeleteOptions {
            preconditions: Some(pb_meta::Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..Default::default()
        };
        envelope(obj["apiVersion"].as_str().unwrap(), "DeleteOptions", o.encode_to_vec())
    };
    let conflict = send(c, "DELETE", &item, PROTOBUF, CLIENT_GO_ACCEPT, opts("not-the-uid")).await;
    assert_eq!(conflict.code, 409, "{kind}: {}", String::from_utf8_lossy(&conflict.body));
    let (st, _) = conflict.protobuf::<pb_meta::Status>("Status");
    assert_eq!((st.code, st.reason.as_deref(), st.status.as_deref()), (Some(409), Some("Conflict"), Some("Failure")));
    let uid = now["metadata"]["uid"].as_str().unwrap();
    let deleted = send(c, "DELETE", &item, PROTOBUF, CLIENT_GO_ACCEPT, opts(uid)).await;
    assert_eq!(deleted.code, 200, "{kind}: {}", String::from_utf8_lossy(&deleted.body));
    // Either the object (with finalizers or deletion pending) or a Success Status, in protobuf.
    let (_, k, _) = deleted.envelope();
    assert!(k == kind || k == "Status", "{kind}: delete answered {k}");

    // Not found: a 404 Status in protobuf, with details. (A Namespace and a CRD go only once
    // their finalizers have run: tests/suite/crd_delete.rs follows a CRD's.)
    if kind != "Namespace" && kind != "CustomResourceDefinition" {
        let missing = send(c, "GET", &item, "", CLIENT_GO_ACCEPT, vec![]).await;
        assert_eq!(missing.code, 404, "{kind}");
        let (st, st_json) = missing.protobuf::<pb_meta::Status>("Status");
        assert_eq!(st.reason.as_deref(), Some("NotFound"));
        assert_eq!(st.details.and_then(|d| d.name).as_deref(), Some(name.as_str()));
        assert_eq!(st_json["code"], 404);
    }
}

/// Metadata with what a client may set.
fn meta(name: &str) -> Value {
    json!({"name": name, "labels": {"app": "pb", "example.com/tier": ""},
           "annotations": {"note": "é✓ \"quoted\"", "empty": ""}})
}

/// [`pod_spec`] as a Deployment's template must be: restartPolicy `Always`.
fn workload_pod_spec() -> Value {
    let mut p = pod_spec();
    p["restartPolicy"] = json!("Always");
    p
}

fn pod_spec() -> Value {
    json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "activeDeadlineSeconds": 600,
        "nodeSelector": {"disk": "ssd"}, "hostname": "h", "enableServiceLinks": false,
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"],
            "workingDir": "/tmp", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "A", "value": ""}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 0},
            "securityContext": {"runAsUser": 0, "runAsNonRoot": false, "privileged": false}}],
        "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "cm", "configMap": {"name": "x", "defaultMode": 420, "optional": true}}]})
}

#[tokio::test]
async fn every_served_builtin_type_through_protobuf() {
    let server = TestApiServer::start().await;
    let c = server.client();
    let ns = "/api/v1/namespaces/default";
    round_trip::<pb::core::v1::Namespace, pb::core::v1::NamespaceList>(
        &c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("pb-ns")}),
    )
    .await;
    round_trip::<pb::core::v1::ConfigMap, pb::core::v1::ConfigMapList>(
        &c,
        &format!("{ns}/configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"), "immutable": false,
            "data": {"a": "b", "empty": "", "multi": "l1\nl2"}, "binaryData": {"bin": "AP/+AQ==", "none": ""}}),
    )
    .await;
    round_trip::<pb::core::v1::Secret, pb::core::v1::SecretList>(
        &c,
        &format!("{ns}/secrets"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("sec"), "type": "Opaque",
            "data": {"k": "AP8=", "e": ""}}),
    )
    .await;
    round_trip::<pb::core::v1::ServiceAccount, pb::core::v1::ServiceAccountList>(
        &c,
        &format!("{ns}/serviceaccounts"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("sa"),
            "automountServiceAccountToken": false, "imagePullSecrets": [{"name": "reg"}]}),
    )
    .await;
    round_trip::<pb::core::v1::Service, pb::core::v1::ServiceList>(
        &c,
        &format!("{ns}/services"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("svc"),
            "spec": {"type": "ClusterIP", "selector": {"app": "x"}, "sessionAffinity": "None",
                "ports": [{"name": "a", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                          {"name": "b", "port": 443, "targetPort": "https", "protocol": "TCP"}]}}),
    )
    .await;
    round_trip::<pb::core::v1::Pod, pb::core::v1::PodList>(
        &c,
        &format!("{ns}/pods"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("pod"), "spec": pod_spec()}),
    )
    .await;
    round_trip::<pb::batch::v1::Job, pb::batch::v1::JobList>(
        &c,
        "/apis/batch/v1/namespaces/default/jobs",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("job"),
            "spec": {"parallelism": 0, "completions": 3, "backoffLimit": 0, "suspend": false,
                "completionMode": "Indexed", "backoffLimitPerIndex": 1, "maxFailedIndexes": 0,
                "ttlSecondsAfterFinished": 0, "podReplacementPolicy": "Failed",
                "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
                "template": {"metadata": {"labels": {"t": "1"}}, "spec": pod_spec()}}}),
    )
    .await;
    round_trip::<pb::batch::v1::CronJob, pb::batch::v1::CronJobList>(
        &c,
        "/apis/batch/v1/namespaces/default/cronjobs",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("cj"),
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "startingDeadlineSeconds": 0,
                "concurrencyPolicy": "Forbid", "suspend": true, "successfulJobsHistoryLimit": 0,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"metadata": {"labels": {"t": "1"}}, "spec": {"template": {"spec": pod_spec()}}}}}),
    )
    .await;
    round_trip::<pb::apps::v1::Deployment, pb::apps::v1::DeploymentList>(
        &c,
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("dep"),
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "d"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": workload_pod_spec()}}}),
    )
    .await;
    round_trip::<pb::policy::v1::PodDisruptionBudget, pb::policy::v1::PodDisruptionBudgetList>(
        &c,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("pdb"),
            "spec": {"minAvailable": "50%", "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]},
                "unhealthyPodEvictionPolicy": "AlwaysAllow"}}),
    )
    .await;
    round_trip::<pb::coordination::v1::Lease, pb::coordination::v1::LeaseList>(
        &c,
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta("lease"),
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                "acquireTime": "2024-05-06T07:08:09.123456Z", "renewTime": "2024-05-06T07:08:10.000001Z"}}),
    )
    .await;
    round_trip::<pb::events::v1::Event, pb::events::v1::EventList>(
        &c,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("ev"),
            "eventTime": "2024-05-06T07:08:09.654321Z", "reportingController": "example.com/c",
            "reportingInstance": "i", "action": "Create", "reason": "Created", "type": "Normal", "note": "n",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u1", "apiVersion": "v1"},
            "series": {"count": 2, "lastObservedTime": "2024-05-06T07:09:00.000000Z"}}),
    )
    .await;
    round_trip::<pb::core::v1::Event, pb::core::v1::EventList>(
        &c,
        &format!("{ns}/events"),
        json!({"apiVersion": "v1", "kind": "Event", "metadata": meta("cev"),
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u1", "apiVersion": "v1"},
            "reason": "Started", "message": "m", "type": "Warning", "count": 3,
            "firstTimestamp": "2024-05-06T07:08:09Z", "lastTimestamp": "2024-05-06T07:08:19Z",
            "source": {"component": "kubelet", "host": "n1"}}),
    )
    .await;
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    round_trip::<pb::rbac::v1::Role, pb::rbac::v1::RoleList>(
        &c,
        &format!("{rbac}/namespaces/default/roles"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("role"),
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}]}),
    )
    .await;
    round_trip::<pb::rbac::v1::RoleBinding, pb::rbac::v1::RoleBindingList>(
        &c,
        &format!("{rbac}/namespaces/default/rolebindings"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("rb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                         {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]}),
    )
    .await;
    // The server aggregates ClusterRoles (kube-controller-manager's aggregation controller): the
    // role its aggregationRule selects holds the same rules, so the stored rules stay as sent.
    let source = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "cr-source", "labels": {"agg": "true"}},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]});
    let created = send(
        &c,
        "POST",
        &format!("{rbac}/clusterroles"),
        "application/json",
        "application/json",
        serde_json::to_vec(&source).unwrap(),
    )
    .await;
    assert_eq!(created.code, 201);
    round_trip::<pb::rbac::v1::ClusterRole, pb::rbac::v1::ClusterRoleList>(
        &c,
        &format!("{rbac}/clusterroles"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta("cr"),
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}}),
    )
    .await;
    round_trip::<pb::rbac::v1::ClusterRoleBinding, pb::rbac::v1::ClusterRoleBindingList>(
        &c,
        &format!("{rbac}/clusterrolebindings"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("crb"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}]}),
    )
    .await;
    round_trip::<pb::core::v1::Node, pb::core::v1::NodeList>(
        &c,
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": meta("node-pb"),
            "spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"],
                "taints": [{"key": "k", "value": "", "effect": "NoSchedule"}]}}),
    )
    .await;
    round_trip::<pb_ext::CustomResourceDefinition, pb_ext::CustomResourceDefinitionList>(
        &c,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.pb.example.com"},
            "spec": {"group": "pb.example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                          "shortNames": ["wg"], "categories": ["all"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "description": "w",
                        "properties": {"spec": {"type": "object", "required": ["size"],
                            "properties": {"size": {"type": "integer", "minimum": 0, "maximum": 10.5, "default": 1},
                                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                                "extra": {"type": "object", "additionalProperties": {"type": "string"}},
                                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "port": {"x-kubernetes-int-or-string": true}}}}}},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}}),
    )
    .await;
}

#[tokio::test]
async fn binding_and_eviction_bodies_in_protobuf() {
    let server = TestApiServer::start().await;
    let c = server.client();
    let pods = "/api/v1/namespaces/default/pods";
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let a = send(&c, "POST", pods, PROTOBUF, CLIENT_GO_ACCEPT, client_go_body::<pb::core::v1::Pod>(&pod)).await;
    assert_eq!(a.code, 201);
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "node-1", "apiVersion": "v1"}});
    let a = send(
        &c,
        "POST",
        &format!("{pods}/p/binding"),
        PROTOBUF,
        CLIENT_GO_ACCEPT,
        client_go_body::<pb::core::v1::Binding>(&binding),
    )
    .await;
    assert_eq!(a.code, 201, "{}", String::from_utf8_lossy(&a.body));
    let p = send(&c, "GET", &format!("{pods}/p"), "", "application/json", vec![]).await.json();
    assert_eq!(p["spec"]["nodeName"], "node-1");
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0}});
    let a = send(
        &c,
        "POST",
        &format!("{pods}/p/eviction"),
        PROTOBUF,
        CLIENT_GO_ACCEPT,
        client_go_body::<pb::policy::v1::Eviction>(&eviction),
    )
    .await;
    assert_eq!(a.code, 201, "{}", String::from_utf8_lossy(&a.body));
    let (st, _) = a.protobuf::<pb_meta::Status>("Status");
    assert_eq!(st.status.as_deref(), Some("Success"));
}

/// A validation error answers a protobuf client with the Status in protobuf, causes and all.
#[tokio::test]
async fn invalid_objects_get_a_protobuf_status_naming_the_field() {
    let server = TestApiServer::start().await;
    let c = server.client();
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
        "spec": {"parallelism": -1, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}});
    let a = send(
        &c,
        "POST",
        "/apis/batch/v1/namespaces/default/jobs",
        PROTOBUF,
        CLIENT_GO_ACCEPT,
        client_go_body::<pb::batch::v1::Job>(&job),
    )
    .await;
    assert_eq!(a.code, 422);
    let (st, st_json) = a.protobuf::<pb_meta::Status>("Status");
    assert_eq!(st.reason.as_deref(), Some("Invalid"));
    let d = st.details.unwrap();
    assert_eq!((d.kind.as_deref(), d.group.as_deref(), d.name.as_deref()), (Some("Job"), Some("batch"), Some("bad")));
    assert!(d.causes.iter().any(|c| c.field.as_deref() == Some("spec.parallelism")), "{st_json}");
    // The same request in JSON gets the same Status.
    let j = send(
        &c,
        "POST",
        "/apis/batch/v1/namespaces/default/jobs",
        "application/json",
        "application/json",
        serde_json::to_vec(&job).unwrap(),
    )
    .await;
    assert_eq!(j.json(), st_json);
}

/// Read length-prefixed frames from a protobuf watch until `n` non-bookmark events arrived.
async fn watch_events(body: &mut kube::client::Body, n: usize) -> Vec<Value> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        let frame = body.frame().await.expect("watch ended").unwrap();
        buf.extend_from_slice(frame.data_ref().map(|d| d.as_ref()).unwrap_or_default());
        while buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).skip(4).collect();
            // client-go's view of the frame.
            let ev = pb_meta::WatchEvent::decode(frame.as_slice()).unwrap();
            let raw = ev.object.unwrap().raw.unwrap();
            let obj = proto::decode(&raw).unwrap();
            if ev.r#type.as_deref() != Some("BOOKMARK") {
                out.push(json!({"type": ev.r#type, "object": obj}));
            }
        }
    }
    out
}

#[tokio::test]
async fn watch_streams_protobuf_frames() {
    let server = TestApiServer::start().await;
    let c = server.client();
    let cms = "/api/v1/namespaces/default/configmaps";
    let req = http::Request::builder()
        .uri(format!("{cms}?watch=true&allowWatchBookmarks=true"))
        .header("Accept", CLIENT_GO_ACCEPT)
        .body(kube::client::Body::empty())
        .unwrap();
    let res = c.send(req).await.unwrap();
    assert_eq!(res.headers()["content-type"], "application/vnd.kubernetes.protobuf;stream=watch");
    let mut body = res.into_body();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "data": {"a": "1"}});
    let created =
        send(&c, "POST", cms, PROTOBUF, CLIENT_GO_ACCEPT, client_go_body::<pb::core::v1::ConfigMap>(&cm)).await;
    assert_eq!(created.code, 201);
    let patch = serde_json::to_vec(&json!({"data": {"a": "2"}})).unwrap();
    let patched =
        send(&c, "PATCH", &format!("{cms}/w"), "application/merge-patch+json", "application/json", patch).await.json();
    let deleted = send(&c, "DELETE", &format!("{cms}/w"), "", "application/json", vec![]).await;
    assert_eq!(deleted.code, 200);
    let evs = watch_events(&mut body, 3).await;
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[0]["object"], proto::decode(&created.body).unwrap());
    assert_eq!(evs[1]["type"], "MODIFIED");
    assert_eq!(evs[1]["object"], go_view(&patched));
    assert_eq!(evs[2]["type"], "DELETED");
    assert_eq!(evs[2]["object"]["data"]["a"], "2");
}

/// Custom resources have no protobuf: JSON when JSON is acceptable too, 406 when only protobuf
/// is, 415 for a protobuf body — as upstream.
#[tokio::test]
async fn custom_resources_stay_json() {
    let server = TestApiServer::start().await;
    let c = server.client();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.pb.example.com"},
        "spec": {"group": "pb.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let a = send(
        &c,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        PROTOBUF,
        CLIENT_GO_ACCEPT,
        client_go_body::<pb_ext::CustomResourceDefinition>(&crd),
    )
    .await;
    assert_eq!(a.code, 201, "{}", String::from_utf8_lossy(&a.body));
    let path = "/apis/pb.example.com/v1/namespaces/default/gadgets";
    // A stored CRD is served at once (crd.rs).
    assert_eq!(send(&c, "GET", path, "", "application/json", vec![]).await.code, 200);
    let g = json!({"apiVersion": "pb.example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "x": 1});
    let created = send(&c, "POST", path, "application/json", CLIENT_GO_ACCEPT, serde_json::to_vec(&g).unwrap()).await;
    assert_eq!(created.code, 201);
    assert_eq!(created.json()["x"], 1);
    let list = send(&c, "GET", path, "", CLIENT_GO_ACCEPT, vec![]).await;
    assert_eq!(list.json()["items"][0]["metadata"]["name"], "g");
    let only = send(&c, "GET", path, "", PROTOBUF, vec![]).await;
    assert_eq!(only.code, 406);
    assert_eq!(only.json()["reason"], "NotAcceptable");
    // A protobuf body for a custom resource is refused (there is no schema to read it with).
    let body = envelope("pb.example.com/v1", "Gadget", vec![]);
    let refused = send(&c, "POST", path, PROTOBUF, "application/json", body).await;
    assert_eq!(refused.code, 415);
}

/// Negotiation comes after authentication: an anonymous protobuf-only request for a custom
/// resource is a 401, not a 406.
#[tokio::test]
async fn authentication_comes_before_negotiation() {
    let server = TestApiServer::start_rbac().await;
    let admin = server.client();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.pb.example.com"},
        "spec": {"group": "pb.example.com", "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let a = send(&admin, "POST", crds, "application/json", "application/json", serde_json::to_vec(&crd).unwrap()).await;
    assert_eq!(a.code, 201);
    let path = "/apis/pb.example.com/v1/namespaces/default/gadgets";
    assert_eq!(send(&admin, "GET", path, "", PROTOBUF, vec![]).await.code, 406);
    let anonymous = server.client_with_token(None);
    assert_eq!(send(&anonymous, "GET", path, "", PROTOBUF, vec![]).await.code, 401);
}
