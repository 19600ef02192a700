//! Exhaustive round trips of every kind in the generated schema, checked against two independent
//! generated bindings: kube-rs's `k8s-pb` (prost, from upstream's .proto files) for the wire side
//! and `k8s-openapi` (serde, from upstream's OpenAPI) for the JSON side.
//!
//! For each kind an object is built with every field set to a distinct non-zero value (maps with
//! two entries, lists with two elements, IntOrString both ways, quantities, times, bytes, raw
//! JSON), then:
//! - our encoding, decoded by prost into the k8s-pb type and re-encoded by prost (client-go's
//!   bytes up to field order), decodes back to the same JSON: every field number and wire type
//!   agrees with the .proto files, and nothing prost does not know was written;
//! - the JSON, read into the k8s-openapi type and written back, is unchanged: every JSON name,
//!   nesting and value shape agrees with the OpenAPI types;
//! - an object whose pointer fields are all set to their zero values (`0`, `false`, `""`) keeps
//!   every one of them (optional vs default-valued scalars).

use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::*;

/// Builds objects from the schema.
struct Filler {
    n: i64,
    /// Pointer fields at their zero values, everything else unset.
    zero: bool,
    stack: Vec<u16>,
}

impl Filler {
    fn next(&mut self) -> i64 {
        self.n += 1;
        self.n
    }

    fn object(&mut self, idx: u16) -> Value {
        let mut out = Map::new();
        self.fill(idx, &mut out);
        Value::Object(out)
    }

    fn fill(&mut self, idx: u16, out: &mut Map<String, Value>) {
        // Self-recursive messages (JSONSchemaProps) stop at the second level.
        if self.stack.iter().filter(|i| **i == idx).count() >= 2 {
            return;
        }
        self.stack.push(idx);
        for f in MESSAGES[idx as usize].fields {
            let v = match (f.card, self.zero) {
                (Card::Inline, _) => {
                    if let Ty::Msg(i) = f.ty {
                        self.fill(i, out);
                    }
                    continue;
                }
                (Card::Pointer, true) => match f.ty {
                    Ty::Str => json!(""),
                    Ty::Bool => json!(false),
                    Ty::I32 | Ty::I64 | Ty::F64 => json!(0),
                    Ty::Msg(i) => self.object(i),
                    _ => continue,
                },
                (Card::Value, true) => match f.ty {
                    Ty::Msg(i) => self.object(i),
                    _ => continue,
                },
                (_, true) => continue,
                (Card::Value | Card::Pointer, false) => self.value(f.ty),
                (Card::Repeated | Card::Wrapped, false) => json!([self.value(f.ty), self.value(f.ty)]),
                (Card::Map, false) => json!({"a": self.value(f.ty), "b.example.com/x": self.value(f.ty)}),
                (Card::MapWrapped, false) => json!({"a": [self.value(f.ty), self.value(f.ty)]}),
            };
            out.insert(f.json.to_string(), v);
        }
        self.stack.pop();
    }

    fn value(&mut self, ty: Ty) -> Value {
        let n = self.next();
        match ty {
            Ty::Str => json!(format!("s{n}-é✓")),
            Ty::Bool => json!(true),
            // Negative numbers too: Go writes a negative int32 as a ten-byte varint.
            Ty::I32 => json!(if n % 3 == 0 { -n } else { n }),
            Ty::I64 => json!(if n % 3 == 0 { -n * 10_000_000_000 } else { n * 10_000_000_000 }),
            Ty::U32 | Ty::U64 => json!(n),
            Ty::F64 => json!(n as f64 + 0.25),
            Ty::Bytes => json!(base64::engine::general_purpose::STANDARD.encode([0u8, 0xff, n as u8, b'x'])),
            Ty::Msg(i) => self.object(i),
            Ty::Time => rfc3339(1_700_000_000 + n, None).unwrap(),
            Ty::MicroTime => rfc3339(1_700_000_000 + n, Some((n as u32 * 7919) % 1_000_000)).unwrap(),
            Ty::Quantity => json!(["1500m", "2Gi", "3", "1e3", "0.5"][n as usize % 5]),
            Ty::IntOrString => {
                if n % 2 == 0 {
                    json!(n)
                } else {
                    json!(format!("{n}%"))
                }
            }
            Ty::RawExtension | Ty::Json | Ty::FieldsV1 => json!({"f:a": {}, "n": n, "l": [1, "x", null, true]}),
            Ty::JspOrArray => {
                let s = self.object(json_schema_index());
                if n % 2 == 0 { s } else { json!([s, {"type": "string"}]) }
            }
            Ty::JspOrBool => {
                if n % 2 == 0 {
                    json!(true)
                } else {
                    self.object(json_schema_index())
                }
            }
            Ty::JspOrStringArray => {
                if n % 2 == 0 {
                    json!(["a", "b"])
                } else {
                    self.object(json_schema_index())
                }
            }
        }
    }
}

fn json_schema_index() -> u16 {
    MESSAGES.iter().position(|m| m.name.ends_with("apiextensions/v1.JSONSchemaProps")).unwrap() as u16
}

fn kind_index(av: &str, kind: &str) -> u16 {
    KINDS
        .iter()
        .find(|(a, k, _)| *a == av && *k == kind)
        .or_else(|| KINDS.iter().find(|(a, k, _)| *a == "*" && *k == kind))
        .map(|(_, _, i)| *i)
        .unwrap_or_else(|| panic!("{av} {kind}"))
}

fn filled(av: &str, kind: &str, zero: bool) -> Value {
    let mut f = Filler { n: 0, zero, stack: Vec::new() };
    let mut v = f.object(kind_index(av, kind));
    v["apiVersion"] = json!(av);
    v["kind"] = json!(kind);
    v
}

/// The raw message inside an envelope.
fn raw_of(envelope_bytes: &[u8]) -> Vec<u8> {
    let rest = envelope_bytes.strip_prefix(MAGIC).unwrap();
    for (n, w) in sub_fields(rest).unwrap() {
        if let (2, Wire::Bytes(b)) = (n, w) {
            return b.to_vec();
        }
    }
    panic!("no raw")
}

/// Paths where `a` and `b` differ.
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (p, q) if p == q => {}
        (p, q) => out.push(format!("{path}: {p} vs {q}")),
    }
}

fn assert_same(what: &str, want: &Value, got: &Value) {
    let mut d = Vec::new();
    diff(want, got, "", &mut d);
    assert!(d.is_empty(), "{what}: {} differences, first: {:#?}", d.len(), &d[..d.len().min(20)]);
}

/// Our codec alone: JSON → protobuf → JSON is the identity on a filled object.
fn self_round_trip(av: &str, kind: &str) -> (Value, Vec<u8>) {
    let v = filled(av, kind, false);
    let bytes = encode(&v).unwrap();
    let back = decode(&bytes).unwrap();
    assert_same(&format!("{av} {kind} through our codec"), &v, &back);
    // Go's encoder is deterministic: the decoded JSON encodes to the same bytes.
    assert_eq!(encode(&back).unwrap(), bytes, "{av} {kind}: encoding is not stable");
    (v, bytes)
}

/// Through prost's k8s-pb type: what client-go would send for it.
fn prost_round_trip<P: Message + Default>(av: &str, kind: &str) {
    for zero in [false, true] {
        let v = filled(av, kind, zero);
        let bytes = encode(&v).unwrap();
        let p = P::decode(raw_of(&bytes).as_slice()).unwrap_or_else(|e| panic!("{av} {kind}: prost: {e}"));
        let reencoded = p.encode_to_vec();
        // prost drops fields it does not know: equal lengths mean it kept every byte we wrote.
        assert_eq!(reencoded.len(), raw_of(&bytes).len(), "{av} {kind} (zero={zero}): prost dropped or added fields");
        let back = decode(&envelope(av, kind, &reencoded)).unwrap();
        if zero {
            // Every pointer set to its zero value survives; the rest is Go's zero rendering.
            let mut missing = Vec::new();
            contains(&v, &back, "", &mut missing);
            assert!(missing.is_empty(), "{av} {kind}: zero-valued pointers lost: {missing:#?}");
        } else {
            assert_same(&format!("{av} {kind} through k8s-pb"), &v, &back);
        }
    }
}

/// Every field of `want` is in `got` with the same value.
fn contains(want: &Value, got: &Value, path: &str, errs: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => contains(wv, gv, &format!("{path}.{k}"), errs),
                    None => errs.push(format!("{path}.{k} missing")),
                }
            }
        }
        (w, g) if w == g => {}
        (w, g) => errs.push(format!("{path}: {w} vs {g}")),
    }
}

/// Through the k8s-openapi type: the JSON names and shapes are upstream's.
fn openapi_round_trip<O: DeserializeOwned + Serialize>(av: &str, kind: &str) {
    let v = filled(av, kind, false);
    let o: O = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{av} {kind}: k8s-openapi: {e}"));
    let mut back = serde_json::to_value(&o).unwrap();
    // k8s-openapi writes `apiVersion` and `kind` into embedded resources (a StatefulSet's
    // volumeClaimTemplates), where Go's `omitempty` TypeMeta writes nothing: not a JSON name.
    if let Some(t) = back.pointer_mut("/spec/volumeClaimTemplates").and_then(Value::as_array_mut) {
        for (i, pvc) in t.iter_mut().enumerate() {
            if v.pointer(&format!("/spec/volumeClaimTemplates/{i}/kind")).is_none()
                && let Some(m) = pvc.as_object_mut()
            {
                m.remove("apiVersion");
                m.remove("kind");
            }
        }
    }
    assert_same(&format!("{av} {kind} through k8s-openapi"), &v, &back);
}

macro_rules! served {
    ($($name:ident: $av:literal, $kind:literal, $pb:ty, $oa:ty;)*) => {
        $(
            #[test]
            fn $name() {
                self_round_trip($av, $kind);
                prost_round_trip::<$pb>($av, $kind);
                openapi_round_trip::<$oa>($av, $kind);
                let list = concat!($kind, "List");
                if supports($av, list) {
                    self_round_trip($av, list);
                }
            }
        )*
        /// The kinds checked above.
        const CHECKED: &[(&str, &str)] = &[$(($av, $kind)),*];
    };
}

use k8s_openapi::api as oa;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as oa_ext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as oa_meta;
use k8s_pb::api as pb;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as pb_ext;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;

served! {
    namespace: "v1", "Namespace", pb::core::v1::Namespace, oa::core::v1::Namespace;
    node: "v1", "Node", pb::core::v1::Node, oa::core::v1::Node;
    pod: "v1", "Pod", pb::core::v1::Pod, oa::core::v1::Pod;
    core_event: "v1", "Event", pb::core::v1::Event, oa::core::v1::Event;
    service: "v1", "Service", pb::core::v1::Service, oa::core::v1::Service;
    endpoints: "v1", "Endpoints", pb::core::v1::Endpoints, oa::core::v1::Endpoints;
    endpointslice: "discovery.k8s.io/v1", "EndpointSlice", pb::discovery::v1::EndpointSlice, oa::discovery::v1::EndpointSlice;
    configmap: "v1", "ConfigMap", pb::core::v1::ConfigMap, oa::core::v1::ConfigMap;
    serviceaccount: "v1", "ServiceAccount", pb::core::v1::ServiceAccount, oa::core::v1::ServiceAccount;
    secret: "v1", "Secret", pb::core::v1::Secret, oa::core::v1::Secret;
    binding: "v1", "Binding", pb::core::v1::Binding, oa::core::v1::Binding;
    job: "batch/v1", "Job", pb::batch::v1::Job, oa::batch::v1::Job;
    cronjob: "batch/v1", "CronJob", pb::batch::v1::CronJob, oa::batch::v1::CronJob;
    lease: "coordination.k8s.io/v1", "Lease", pb::coordination::v1::Lease, oa::coordination::v1::Lease;
    events_event: "events.k8s.io/v1", "Event", pb::events::v1::Event, oa::events::v1::Event;
    deployment: "apps/v1", "Deployment", pb::apps::v1::Deployment, oa::apps::v1::Deployment;
    pdb: "policy/v1", "PodDisruptionBudget", pb::policy::v1::PodDisruptionBudget, oa::policy::v1::PodDisruptionBudget;
    eviction: "policy/v1", "Eviction", pb::policy::v1::Eviction, oa::policy::v1::Eviction;
    clusterrole: "rbac.authorization.k8s.io/v1", "ClusterRole", pb::rbac::v1::ClusterRole, oa::rbac::v1::ClusterRole;
    clusterrolebinding: "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", pb::rbac::v1::ClusterRoleBinding, oa::rbac::v1::ClusterRoleBinding;
    role: "rbac.authorization.k8s.io/v1", "Role", pb::rbac::v1::Role, oa::rbac::v1::Role;
    rolebinding: "rbac.authorization.k8s.io/v1", "RoleBinding", pb::rbac::v1::RoleBinding, oa::rbac::v1::RoleBinding;
    crd: "apiextensions.k8s.io/v1", "CustomResourceDefinition", pb_ext::CustomResourceDefinition, oa_ext::CustomResourceDefinition;
    status: "v1", "Status", pb_meta::Status, oa_meta::Status;
    delete_options: "batch/v1", "DeleteOptions", pb_meta::DeleteOptions, oa_meta::DeleteOptions;
    scale: "autoscaling/v1", "Scale", pb::autoscaling::v1::Scale, oa::autoscaling::v1::Scale;
    token_request: "authentication.k8s.io/v1", "TokenRequest", pb::authentication::v1::TokenRequest, oa::authentication::v1::TokenRequest;
    self_subject_review: "authentication.k8s.io/v1", "SelfSubjectReview", pb::authentication::v1::SelfSubjectReview, oa::authentication::v1::SelfSubjectReview;
    token_review: "authentication.k8s.io/v1", "TokenReview", pb::authentication::v1::TokenReview, oa::authentication::v1::TokenReview;
    self_subject_access_review: "authorization.k8s.io/v1", "SelfSubjectAccessReview", pb::authorization::v1::SelfSubjectAccessReview, oa::authorization::v1::SelfSubjectAccessReview;
    subject_access_review: "authorization.k8s.io/v1", "SubjectAccessReview", pb::authorization::v1::SubjectAccessReview, oa::authorization::v1::SubjectAccessReview;
    self_subject_rules_review: "authorization.k8s.io/v1", "SelfSubjectRulesReview", pb::authorization::v1::SelfSubjectRulesReview, oa::authorization::v1::SelfSubjectRulesReview;
    componentstatus: "v1", "ComponentStatus", pb::core::v1::ComponentStatus, oa::core::v1::ComponentStatus;
    limitrange: "v1", "LimitRange", pb::core::v1::LimitRange, oa::core::v1::LimitRange;
    pvc: "v1", "PersistentVolumeClaim", pb::core::v1::PersistentVolumeClaim, oa::core::v1::PersistentVolumeClaim;
    pv: "v1", "PersistentVolume", pb::core::v1::PersistentVolume, oa::core::v1::PersistentVolume;
    podtemplate: "v1", "PodTemplate", pb::core::v1::PodTemplate, oa::core::v1::PodTemplate;
    replicationcontroller: "v1", "ReplicationController", pb::core::v1::ReplicationController, oa::core::v1::ReplicationController;
    resourcequota: "v1", "ResourceQuota", pb::core::v1::ResourceQuota, oa::core::v1::ResourceQuota;
    mutatingwebhookconfiguration: "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", pb::admissionregistration::v1::MutatingWebhookConfiguration, oa::admissionregistration::v1::MutatingWebhookConfiguration;
    validatingwebhookconfiguration: "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", pb::admissionregistration::v1::ValidatingWebhookConfiguration, oa::admissionregistration::v1::ValidatingWebhookConfiguration;
    validatingadmissionpolicy: "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", pb::admissionregistration::v1::ValidatingAdmissionPolicy, oa::admissionregistration::v1::ValidatingAdmissionPolicy;
    validatingadmissionpolicybinding: "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", pb::admissionregistration::v1::ValidatingAdmissionPolicyBinding, oa::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
    controllerrevision: "apps/v1", "ControllerRevision", pb::apps::v1::ControllerRevision, oa::apps::v1::ControllerRevision;
    daemonset: "apps/v1", "DaemonSet", pb::apps::v1::DaemonSet, oa::apps::v1::DaemonSet;
    replicaset: "apps/v1", "ReplicaSet", pb::apps::v1::ReplicaSet, oa::apps::v1::ReplicaSet;
    statefulset: "apps/v1", "StatefulSet", pb::apps::v1::StatefulSet, oa::apps::v1::StatefulSet;
    hpa_v1: "autoscaling/v1", "HorizontalPodAutoscaler", pb::autoscaling::v1::HorizontalPodAutoscaler, oa::autoscaling::v1::HorizontalPodAutoscaler;
    hpa_v2: "autoscaling/v2", "HorizontalPodAutoscaler", pb::autoscaling::v2::HorizontalPodAutoscaler, oa::autoscaling::v2::HorizontalPodAutoscaler;
    csr: "certificates.k8s.io/v1", "CertificateSigningRequest", pb::certificates::v1::CertificateSigningRequest, oa::certificates::v1::CertificateSigningRequest;
    flowschema: "flowcontrol.apiserver.k8s.io/v1", "FlowSchema", pb::flowcontrol::v1::FlowSchema, oa::flowcontrol::v1::FlowSchema;
    prioritylevelconfiguration: "flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration", pb::flowcontrol::v1::PriorityLevelConfiguration, oa::flowcontrol::v1::PriorityLevelConfiguration;
    ingressclass: "networking.k8s.io/v1", "IngressClass", pb::networking::v1::IngressClass, oa::networking::v1::IngressClass;
    ingress: "networking.k8s.io/v1", "Ingress", pb::networking::v1::Ingress, oa::networking::v1::Ingress;
    ipaddress: "networking.k8s.io/v1", "IPAddress", pb::networking::v1::IPAddress, oa::networking::v1::IPAddress;
    networkpolicy: "networking.k8s.io/v1", "NetworkPolicy", pb::networking::v1::NetworkPolicy, oa::networking::v1::NetworkPolicy;
    servicecidr: "networking.k8s.io/v1", "ServiceCIDR", pb::networking::v1::ServiceCIDR, oa::networking::v1::ServiceCIDR;
    runtimeclass: "node.k8s.io/v1", "RuntimeClass", pb::node::v1::RuntimeClass, oa::node::v1::RuntimeClass;
    priorityclass: "scheduling.k8s.io/v1", "PriorityClass", pb::scheduling::v1::PriorityClass, oa::scheduling::v1::PriorityClass;
    csidriver: "storage.k8s.io/v1", "CSIDriver", pb::storage::v1::CSIDriver, oa::storage::v1::CSIDriver;
    csinode: "storage.k8s.io/v1", "CSINode", pb::storage::v1::CSINode, oa::storage::v1::CSINode;
    csistoragecapacity: "storage.k8s.io/v1", "CSIStorageCapacity", pb::storage::v1::CSIStorageCapacity, oa::storage::v1::CSIStorageCapacity;
    storageclass: "storage.k8s.io/v1", "StorageClass", pb::storage::v1::StorageClass, oa::storage::v1::StorageClass;
    volumeattachment: "storage.k8s.io/v1", "VolumeAttachment", pb::storage::v1::VolumeAttachment, oa::storage::v1::VolumeAttachment;
}

/// Every served resource's kind (and its list) has a schema and is checked above.
#[test]
fn every_served_kind_is_covered() {
    for r in super::super::registry::Registry::builtin().all() {
        // metrics.k8s.io (`kubectl top`) is answered in JSON only: its Go types (k8s.io/metrics)
        // are not among the generator's sources.
        if r.group == "metrics.k8s.io" {
            continue;
        }
        // discovery.k8s.io EndpointSlices (read by the cluster DNS of `jobwright local`) are
        // served in JSON only until their protobuf schema is generated (issue 13; the Service
        // work brings the schema and the EndpointSlice controller).
        if r.group == "discovery.k8s.io" {
            continue;
        }
        let av = r.api_version();
        assert!(supports(&av, &r.kind), "{av} {}", r.kind);
        // Create-only resources (bindings, reviews) have no list kind.
        if r.verbs().contains(&"list") {
            assert!(supports(&av, &format!("{}List", r.kind)), "{av} {}List", r.kind);
        }
        // APIService (kube-aggregator) has no k8s-openapi type: its prost check is below.
        if r.kind == "APIService" {
            continue;
        }
        assert!(CHECKED.contains(&(av.as_str(), r.kind.as_str())), "{av} {} has no round-trip test", r.kind);
    }
}

/// Every kind in the table (all of core/v1, batch/v1, apps/v1, ...) round-trips through our codec.
#[test]
fn every_kind_in_the_schema_round_trips() {
    for (av, kind, _) in KINDS {
        let av = if *av == "*" { "v1" } else { av };
        if *kind == "WatchEvent" {
            continue;
        }
        self_round_trip(av, kind);
    }
}

#[test]
fn watch_event_frames_carry_the_object_envelope() {
    let pod = filled("v1", "Pod", false);
    let frame = watch_frame("MODIFIED", &pod).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    // client-go's view: metav1.WatchEvent whose object.raw is the Pod's own envelope.
    let ev = pb_meta::WatchEvent::decode(&frame[4..]).unwrap();
    assert_eq!(ev.r#type.as_deref(), Some("MODIFIED"));
    let raw = ev.object.unwrap().raw.unwrap();
    assert!(raw.starts_with(MAGIC));
    let p = pb::core::v1::Pod::decode(raw_of(&raw).as_slice()).unwrap();
    assert_eq!(p.metadata.unwrap().name, pod["metadata"]["name"].as_str().map(str::to_string));
    let back = decode_watch_event(&frame[4..]).unwrap();
    assert_eq!(back["type"], "MODIFIED");
    assert_same("watch event object", &pod, &back["object"]);
}

#[test]
fn status_errors_encode_as_client_go_reads_them() {
    let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "jobs.batch \"x\" is invalid: spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "reason": "Invalid", "code": 422,
        "details": {"name": "x", "group": "batch", "kind": "jobs",
            "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: -1", "field": "spec.parallelism"}]}});
    let bytes = encode(&st).unwrap();
    let s = pb_meta::Status::decode(raw_of(&bytes).as_slice()).unwrap();
    assert_eq!(s.code, Some(422));
    assert_eq!(s.reason.as_deref(), Some("Invalid"));
    let d = s.details.unwrap();
    assert_eq!(d.causes[0].field.as_deref(), Some("spec.parallelism"));
    assert_eq!(d.causes[0].reason.as_deref(), Some("FieldValueInvalid"));
    assert_eq!(decode(&bytes).unwrap(), st);
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// A valid Pod or CRD with bytes overwritten, cut or inserted: a 400 or an object,
        /// never a panic; whatever decodes encodes again.
        #[test]
        fn mutated_bodies_never_panic(
            crd in any::<bool>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        ) {
            let (av, kind) = if crd { ("apiextensions.k8s.io/v1", "CustomResourceDefinition") } else { ("v1", "Pod") };
            let mut b = encode(&filled(av, kind, false)).unwrap();
            for (at, byte, op) in edits {
                if b.len() <= 4 {
                    break;
                }
                let i = 4 + at.index(b.len() - 4);
                match op {
                    0 => b[i] = byte,
                    1 => b.truncate(i),
                    _ => b.insert(i, byte),
                }
            }
            if let Ok(v) = decode(&b) {
                // Mutations can turn the kind into one without a schema only by failing above.
                prop_assert!(encode(&v).is_ok(), "decoded but cannot encode: {v}");
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&envelope("v1", "Pod", &raw));
            let _ = decode(&envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", &raw));
            let _ = decode_watch_event(&raw);
        }
    }
}

/// APIService: kube-aggregator's type, which k8s-openapi lacks; the wire side is checked by prost.
#[test]
fn apiservice() {
    self_round_trip("apiregistration.k8s.io/v1", "APIService");
    prost_round_trip::<k8s_pb::kube_aggregator::pkg::apis::apiregistration::v1::APIService>(
        "apiregistration.k8s.io/v1",
        "APIService",
    );
    self_round_trip("apiregistration.k8s.io/v1", "APIServiceList");
}
