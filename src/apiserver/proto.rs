//! Just enough of Kubernetes' protobuf encoding to accept what `kubectl create job|cronjob|
//! configmap|namespace|role|clusterrole|rolebinding|clusterrolebinding` and `kubectl auth
//! can-i|whoami` send.
//!
//! kubectl's typed clients POST `application/vnd.kubernetes.protobuf` bodies and kube-apiserver
//! accepts them; it never falls back to JSON. The wire format is the `k8s\0` magic followed by a
//! `runtime.Unknown` (`typeMeta` = 1, `raw` = 2) whose `raw` is the object's protobuf. This module
//! decodes that into the object's JSON using a small schema of field numbers (from upstream's
//! `generated.proto`) for the fields those commands can set; other fields are skipped. Go's
//! generated marshallers emit every non-pointer field, so empty strings, zeros, `false` and empty
//! messages are dropped unless the field is a pointer (`keep`), matching Go's `omitempty` JSON.
//! Responses are always JSON, which every client accepts.

use serde_json::{Map, Value, json};

use super::errors::StatusError;

/// A field's type.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    /// `map<string, string>`
    MapStr,
    /// `map<string, bytes>` (base64 in JSON)
    MapBytes,
    /// `metav1.Time` (`seconds` = 1, `nanos` = 2) → RFC 3339
    Time,
    /// `map<string, resource.Quantity>` (`Quantity` is a message with the string as field 1)
    MapQuantity,
    Msg(&'static [F]),
    /// Skipped whatever it holds (a status, which create resets anyway).
    Ignore,
}

/// One field of a message.
struct F {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
    /// A pointer in Go: present means set, even when zero.
    keep: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> F {
    F { num, name, ty, repeated: false, keep: false }
}
const fn p(num: u64, name: &'static str, ty: Ty) -> F {
    F { num, name, ty, repeated: false, keep: true }
}
const fn r(num: u64, name: &'static str, ty: Ty) -> F {
    F { num, name, ty, repeated: true, keep: false }
}

const OWNER_REF: &[F] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    p(6, "controller", Ty::Bool),
    p(7, "blockOwnerDeletion", Ty::Bool),
];
const OBJECT_META: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    r(13, "ownerReferences", Ty::Msg(OWNER_REF)),
    r(14, "finalizers", Ty::Str),
];
const REQUIREMENT: &[F] = &[f(1, "key", Ty::Str), f(2, "operator", Ty::Str), r(3, "values", Ty::Str)];
const LABEL_SELECTOR: &[F] = &[f(1, "matchLabels", Ty::MapStr), r(2, "matchExpressions", Ty::Msg(REQUIREMENT))];
const ENV: &[F] = &[f(1, "name", Ty::Str), f(2, "value", Ty::Str)];
const PORT: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "hostPort", Ty::Int),
    f(3, "containerPort", Ty::Int),
    f(4, "protocol", Ty::Str),
    f(5, "hostIP", Ty::Str),
];
const RESOURCES: &[F] = &[f(1, "limits", Ty::MapQuantity), f(2, "requests", Ty::MapQuantity)];
const CONTAINER: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "image", Ty::Str),
    r(3, "command", Ty::Str),
    r(4, "args", Ty::Str),
    f(5, "workingDir", Ty::Str),
    r(6, "ports", Ty::Msg(PORT)),
    r(7, "env", Ty::Msg(ENV)),
    f(8, "resources", Ty::Msg(RESOURCES)),
    f(14, "imagePullPolicy", Ty::Str),
];
const POD_SPEC: &[F] = &[
    r(2, "containers", Ty::Msg(CONTAINER)),
    f(3, "restartPolicy", Ty::Str),
    p(4, "terminationGracePeriodSeconds", Ty::Int),
    p(5, "activeDeadlineSeconds", Ty::Int),
    f(7, "nodeSelector", Ty::MapStr),
    f(8, "serviceAccountName", Ty::Str),
    f(10, "nodeName", Ty::Str),
    r(20, "initContainers", Ty::Msg(CONTAINER)),
];
const POD_TEMPLATE: &[F] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(POD_SPEC))];
const JOB_SPEC: &[F] = &[
    p(1, "parallelism", Ty::Int),
    p(2, "completions", Ty::Int),
    p(3, "activeDeadlineSeconds", Ty::Int),
    p(4, "selector", Ty::Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Ty::Bool),
    f(6, "template", Ty::Msg(POD_TEMPLATE)),
    p(7, "backoffLimit", Ty::Int),
    p(8, "ttlSecondsAfterFinished", Ty::Int),
    p(9, "completionMode", Ty::Str),
    p(10, "suspend", Ty::Bool),
    p(12, "backoffLimitPerIndex", Ty::Int),
    p(13, "maxFailedIndexes", Ty::Int),
    p(14, "podReplacementPolicy", Ty::Str),
    p(15, "managedBy", Ty::Str),
];
const JOB: &[F] =
    &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(JOB_SPEC)), f(3, "status", Ty::Ignore)];
const JOB_TEMPLATE: &[F] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(JOB_SPEC))];
const CRONJOB_SPEC: &[F] = &[
    f(1, "schedule", Ty::Str),
    p(2, "startingDeadlineSeconds", Ty::Int),
    f(3, "concurrencyPolicy", Ty::Str),
    p(4, "suspend", Ty::Bool),
    f(5, "jobTemplate", Ty::Msg(JOB_TEMPLATE)),
    p(6, "successfulJobsHistoryLimit", Ty::Int),
    p(7, "failedJobsHistoryLimit", Ty::Int),
    p(8, "timeZone", Ty::Str),
];
const CRONJOB: &[F] =
    &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(CRONJOB_SPEC)), f(3, "status", Ty::Ignore)];
const CONFIGMAP: &[F] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    p(4, "immutable", Ty::Bool),
];
const NAMESPACE: &[F] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Ignore), f(3, "status", Ty::Ignore)];
const TYPE_META: &[F] = &[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)];
// The access reviews `kubectl auth can-i` and `kubectl auth whoami` send (authorization/v1,
// authentication/v1); the selector attributes (8, 9) are skipped.
const RESOURCE_ATTRIBUTES: &[F] = &[
    f(1, "namespace", Ty::Str),
    f(2, "verb", Ty::Str),
    f(3, "group", Ty::Str),
    f(4, "version", Ty::Str),
    f(5, "resource", Ty::Str),
    f(6, "subresource", Ty::Str),
    f(7, "name", Ty::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[F] = &[f(1, "path", Ty::Str), f(2, "verb", Ty::Str)];
const ACCESS_REVIEW_SPEC: &[F] = &[
    p(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    p(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
    f(3, "user", Ty::Str),
    r(4, "groups", Ty::Str),
    f(6, "uid", Ty::Str),
];
const ACCESS_REVIEW: &[F] =
    &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "spec", Ty::Msg(ACCESS_REVIEW_SPEC)), f(3, "status", Ty::Ignore)];
const RULES_REVIEW: &[F] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[f(1, "namespace", Ty::Str)])),
    f(3, "status", Ty::Ignore),
];
const SELF_SUBJECT_REVIEW: &[F] = &[f(1, "metadata", Ty::Msg(OBJECT_META)), f(2, "status", Ty::Ignore)];
// rbac.authorization.k8s.io/v1, as `kubectl create role|clusterrole|rolebinding|clusterrolebinding`
// send them.
const POLICY_RULE: &[F] = &[
    r(1, "verbs", Ty::Str),
    r(2, "apiGroups", Ty::Str),
    r(3, "resources", Ty::Str),
    r(4, "resourceNames", Ty::Str),
    r(5, "nonResourceURLs", Ty::Str),
];
const ROLE: &[F] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    r(2, "rules", Ty::Msg(POLICY_RULE)),
    p(3, "aggregationRule", Ty::Msg(&[r(1, "clusterRoleSelectors", Ty::Msg(LABEL_SELECTOR))])),
];
const SUBJECT: &[F] =
    &[f(1, "kind", Ty::Str), f(2, "apiGroup", Ty::Str), f(3, "name", Ty::Str), f(4, "namespace", Ty::Str)];
const ROLE_REF: &[F] = &[f(1, "apiGroup", Ty::Str), f(2, "kind", Ty::Str), f(3, "name", Ty::Str)];
const ROLE_BINDING: &[F] =
    &[f(1, "metadata", Ty::Msg(OBJECT_META)), r(2, "subjects", Ty::Msg(SUBJECT)), f(3, "roleRef", Ty::Msg(ROLE_REF))];

fn bad(why: &str) -> StatusError {
    StatusError::bad_request(format!("the object provided is unrecognized or malformed: protobuf: {why}"))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, StatusError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&byte, rest) = self.b.split_first().ok_or_else(|| bad("truncated varint"))?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StatusError> {
        let n = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
        if n > self.b.len() {
            return Err(bad("truncated field"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    /// `(field number, wire type)`, or None at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>, StatusError> {
        if self.b.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }
    fn skip(&mut self, wire: u64) -> Result<(), StatusError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(bad("unsupported wire type")),
        }
    }
    fn advance(&mut self, n: usize) -> Result<(), StatusError> {
        if n > self.b.len() {
            return Err(bad("truncated field"));
        }
        self.b = &self.b[n..];
        Ok(())
    }
}

fn string(b: &[u8]) -> Result<String, StatusError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8"))
}

#[derive(Clone, Copy, PartialEq)]
enum MapValue {
    Str,
    Bytes,
    Quantity,
}

fn map_entry(b: &[u8], kind: MapValue) -> Result<(String, Value), StatusError> {
    let mut r = Reader { b };
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while let Some((num, wire)) = r.key()? {
        match (num, wire) {
            (1, 2) => k = string(r.bytes()?)?,
            (2, 2) => {
                let raw = r.bytes()?;
                v = match kind {
                    MapValue::Bytes => json!(base64(raw)),
                    MapValue::Str => json!(string(raw)?),
                    MapValue::Quantity => {
                        let mut q = Reader { b: raw };
                        let mut out = String::new();
                        while let Some((n, w)) = q.key()? {
                            match (n, w) {
                                (1, 2) => out = string(q.bytes()?)?,
                                (_, w) => q.skip(w)?,
                            }
                        }
                        json!(out)
                    }
                };
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((k, v))
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn time(b: &[u8]) -> Result<Option<Value>, StatusError> {
    let mut r = Reader { b };
    let mut secs: i64 = 0;
    while let Some((num, wire)) = r.key()? {
        match (num, wire) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    if secs == 0 {
        return Ok(None);
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| bad("time out of range"))?;
    Ok(Some(json!(super::rest::timestamp(t))))
}

/// Whether `b` is empty or a message whose fields are all empty (zeros, empty strings, empty
/// messages), as Go's marshaller writes an unset non-pointer struct.
fn all_empty(b: &[u8], depth: usize) -> bool {
    if b.is_empty() {
        return true;
    }
    if depth > 32 {
        return false;
    }
    let mut r = Reader { b };
    loop {
        match r.key() {
            Ok(None) => return true,
            Ok(Some((num, wire))) if num > 0 => {
                let ok = match wire {
                    0 => r.varint().is_ok_and(|v| v == 0),
                    2 => r.bytes().is_ok_and(|x| all_empty(x, depth + 1)),
                    _ => false,
                };
                if !ok {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn message(b: &[u8], schema: &[F], depth: usize) -> Result<Map<String, Value>, StatusError> {
    if depth > 32 {
        return Err(bad("nesting too deep"));
    }
    let mut out = Map::new();
    let mut r = Reader { b };
    while let Some((num, wire)) = r.key()? {
        let Some(fd) = schema.iter().find(|x| x.num == num) else {
            // Go emits every non-pointer field; empty ones carry nothing. Anything else would be
            // silently lost, so refuse it.
            let empty = match wire {
                0 => r.varint()? == 0,
                2 => all_empty(r.bytes()?, 0),
                w => {
                    r.skip(w)?;
                    false
                }
            };
            if !empty {
                return Err(StatusError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "protobuf field {num} is not supported by this server in this object; send application/json instead"
                    ),
                ));
            }
            continue;
        };
        let value: Option<Value> = match (fd.ty, wire) {
            (Ty::Str, 2) => Some(json!(string(r.bytes()?)?)),
            (Ty::Int, 0) => Some(json!(r.varint()? as i64)),
            (Ty::Bool, 0) => Some(json!(r.varint()? != 0)),
            (Ty::Time, 2) => time(r.bytes()?)?,
            (Ty::MapStr | Ty::MapBytes | Ty::MapQuantity, 2) => {
                let kind = match fd.ty {
                    Ty::MapBytes => MapValue::Bytes,
                    Ty::MapQuantity => MapValue::Quantity,
                    _ => MapValue::Str,
                };
                let (k, v) = map_entry(r.bytes()?, kind)?;
                let m = out.entry(fd.name).or_insert_with(|| json!({}));
                m[k] = v;
                continue;
            }
            (Ty::Msg(s), 2) => Some(Value::Object(message(r.bytes()?, s, depth + 1)?)),
            (Ty::Ignore, w) => {
                r.skip(w)?;
                continue;
            }
            (_, w) => {
                r.skip(w)?;
                continue;
            }
        };
        let Some(v) = value else { continue };
        if fd.repeated {
            let list = out.entry(fd.name).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(v);
            }
            continue;
        }
        let zero = match &v {
            Value::String(s) => s.is_empty(),
            Value::Number(n) => n.as_i64() == Some(0),
            Value::Bool(b) => !b,
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if zero && !fd.keep {
            out.remove(fd.name);
            continue;
        }
        out.insert(fd.name.to_string(), v);
    }
    Ok(out)
}

/// Decode a `application/vnd.kubernetes.protobuf` body into the object's JSON. Kinds outside the
/// supported set are a 415, as for any unknown media type.
pub fn decode(body: &[u8]) -> Result<Value, StatusError> {
    let rest = body.strip_prefix(b"k8s\0").ok_or_else(|| bad("missing the k8s magic prefix"))?;
    let mut r = Reader { b: rest };
    let (mut tm, mut raw) = (Map::new(), &[][..]);
    while let Some((num, wire)) = r.key()? {
        match (num, wire) {
            (1, 2) => tm = message(r.bytes()?, TYPE_META, 0)?,
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let api_version = tm.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = tm.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRONJOB,
        ("v1", "ConfigMap") => CONFIGMAP,
        ("v1", "Namespace") => NAMESPACE,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview" | "SubjectAccessReview") => ACCESS_REVIEW,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => RULES_REVIEW,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => SELF_SUBJECT_REVIEW,
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => ROLE_BINDING,
        _ => {
            return Err(StatusError::new(
                415,
                "UnsupportedMediaType",
                format!("protobuf is not supported for {kind} in {api_version}; send application/json"),
            ));
        }
    };
    let mut obj = message(raw, schema, 0)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Captured from `kubectl create job j1 --image=busybox -- echo hi` (kubectl v1.32).
    const KUBECTL_JOB: &str = "6b3873000a0f0a0862617463682f763112034a6f621284010a120a026a3112001a0022002a00320038004200126432620a100a0012001a0022002a00320038004200124e122b0a026a31120762757379626f781a046563686f1a0268692a0042006a007200800100880100900100a201001a054e65766572320042004a0052005800600068008201008a01009a0100c201001a082000280030003a001a002200";
    /// Captured from `kubectl create cronjob c1 --image=busybox --schedule='*/1 * * * *' -- echo hi`.
    const KUBECTL_CRONJOB: &str = "6b3873000a130a0862617463682f7631120743726f6e4a6f6212a8010a120a02633112001a0022002a00320038004200128f010a0b2a2f31202a202a202a202a1a002a7e0a120a02633112001a0022002a00320038004200126832660a100a0012001a0022002a003200380042001252122b0a026331120762757379626f781a046563686f1a0268692a0042006a007200800100880100900100a201001a094f6e4661696c757265320042004a0052005800600068008201008a01009a0100c201001a001a002200";
    /// Captured from `kubectl create configmap cm1 --from-literal=a=b`.
    const KUBECTL_CONFIGMAP: &str = "6b3873000a0f0a0276311209436f6e6669674d6170121d0a130a03636d3112001a0022002a0032003800420012060a01611201621a002200";

    #[test]
    fn kubectl_create_job_body_decodes() {
        let v = decode(&hex(KUBECTL_JOB)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j1"},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "j1", "image": "busybox", "command": ["echo", "hi"]}]}}}})
        );
    }

    #[test]
    fn kubectl_create_cronjob_and_configmap_bodies_decode() {
        let v = decode(&hex(KUBECTL_CRONJOB)).unwrap();
        assert_eq!(v["spec"]["schedule"], "*/1 * * * *");
        assert_eq!(v["spec"]["jobTemplate"]["metadata"]["name"], "c1");
        assert_eq!(v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
        let v = decode(&hex(KUBECTL_CONFIGMAP)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "b"}})
        );
    }

    #[test]
    fn unsupported_non_empty_fields_are_refused_not_dropped() {
        // A ConfigMap whose field 9 (unknown here) carries a value.
        let mut body = b"k8s\0".to_vec();
        let raw = [0x0a, 0x03, 0x0a, 0x01, b'x', 0x48, 0x01];
        let tm = [0x0a, 0x02, b'v', b'1', 0x12, 0x09];
        body.extend([0x0a, (tm.len() + 9) as u8]);
        body.extend(tm);
        body.extend(b"ConfigMap");
        body.extend([0x12, raw.len() as u8]);
        body.extend(raw);
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }

    #[test]
    fn base64_matches_go() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn garbage_is_a_400_and_unknown_kinds_a_415() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\0\x0a\xff").unwrap_err().code, 400);
        let pod = [b"k8s\0".as_slice(), &[0x0a, 0x09, 0x0a, 0x02, b'v', b'1', 0x12, 0x03, b'P', b'o', b'd']].concat();
        assert_eq!(decode(&pod).unwrap_err().code, 415);
    }
}
