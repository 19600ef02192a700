//! Decoding the Kubernetes protobuf request bodies kubectl's typed commands send.
//!
//! client-go's clientsets default to `Content-Type: application/vnd.kubernetes.protobuf`, so
//! `kubectl create job|cronjob|namespace|configmap|secret` POST protobuf, which kube-apiserver
//! accepts. We decode those bodies to the JSON object the server works with: the `k8s\0` magic,
//! the `runtime.Unknown` envelope (`typeMeta`, `raw`), then the object itself with hand-written
//! descriptors of the `generated.proto` messages for those kinds (field numbers as the
//! `protobuf:"..."` tags of `k8s.io/api`). Fields outside the descriptors are skipped; zero values
//! of non-pointer fields are dropped, as JSON's `omitempty` would.
//!
//! Responses stay JSON: kubectl accepts `application/vnd.kubernetes.protobuf,application/json`.

use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

#[derive(Clone, Copy)]
enum F {
    /// A string; `true`: pointer field (keep `""`).
    Str(&'static str, bool),
    /// A varint integer; `true`: pointer field (keep `0`).
    Int(&'static str, bool),
    /// A bool; `true`: pointer field (keep `false`).
    Bool(&'static str, bool),
    /// A nested message (kept even when empty, as Go's JSON does for structs).
    Msg(&'static str, &'static [(u32, F)]),
    RepStr(&'static str),
    RepMsg(&'static str, &'static [(u32, F)]),
    MapStr(&'static str),
    MapBytes(&'static str),
    MapQuantity(&'static str),
    /// `metav1.Time` (`seconds`, `nanos`) as RFC 3339; zero dropped.
    Time(&'static str),
}

const OWNER_REF: &[(u32, F)] = &[
    (5, F::Str("apiVersion", false)),
    (1, F::Str("kind", false)),
    (3, F::Str("name", false)),
    (4, F::Str("uid", false)),
    (6, F::Bool("controller", true)),
    (7, F::Bool("blockOwnerDeletion", true)),
];
const OBJECT_META: &[(u32, F)] = &[
    (1, F::Str("name", false)),
    (2, F::Str("generateName", false)),
    (3, F::Str("namespace", false)),
    (5, F::Str("uid", false)),
    (6, F::Str("resourceVersion", false)),
    (7, F::Int("generation", false)),
    (8, F::Time("creationTimestamp")),
    (9, F::Time("deletionTimestamp")),
    (10, F::Int("deletionGracePeriodSeconds", true)),
    (11, F::MapStr("labels")),
    (12, F::MapStr("annotations")),
    (13, F::RepMsg("ownerReferences", OWNER_REF)),
    (14, F::RepStr("finalizers")),
];
const SELECTOR_REQ: &[(u32, F)] =
    &[(1, F::Str("key", false)), (2, F::Str("operator", false)), (3, F::RepStr("values"))];
const LABEL_SELECTOR: &[(u32, F)] = &[(1, F::MapStr("matchLabels")), (2, F::RepMsg("matchExpressions", SELECTOR_REQ))];
const ENV_VAR: &[(u32, F)] = &[(1, F::Str("name", false)), (2, F::Str("value", false))];
const PORT: &[(u32, F)] = &[
    (1, F::Str("name", false)),
    (2, F::Int("hostPort", false)),
    (3, F::Int("containerPort", false)),
    (4, F::Str("protocol", false)),
    (5, F::Str("hostIP", false)),
];
const RESOURCES: &[(u32, F)] = &[(1, F::MapQuantity("limits")), (2, F::MapQuantity("requests"))];
const VOLUME_MOUNT: &[(u32, F)] = &[
    (1, F::Str("name", false)),
    (2, F::Bool("readOnly", false)),
    (3, F::Str("mountPath", false)),
    (4, F::Str("subPath", false)),
];
const CONTAINER: &[(u32, F)] = &[
    (1, F::Str("name", false)),
    (2, F::Str("image", false)),
    (3, F::RepStr("command")),
    (4, F::RepStr("args")),
    (5, F::Str("workingDir", false)),
    (6, F::RepMsg("ports", PORT)),
    (7, F::RepMsg("env", ENV_VAR)),
    (8, F::Msg("resources", RESOURCES)),
    (9, F::RepMsg("volumeMounts", VOLUME_MOUNT)),
    (13, F::Str("terminationMessagePath", false)),
    (14, F::Str("imagePullPolicy", false)),
    (16, F::Bool("stdin", false)),
    (17, F::Bool("stdinOnce", false)),
    (18, F::Bool("tty", false)),
    (20, F::Str("terminationMessagePolicy", false)),
    (24, F::Str("restartPolicy", true)),
];
const POD_SPEC: &[(u32, F)] = &[
    (2, F::RepMsg("containers", CONTAINER)),
    (3, F::Str("restartPolicy", false)),
    (4, F::Int("terminationGracePeriodSeconds", true)),
    (5, F::Int("activeDeadlineSeconds", true)),
    (6, F::Str("dnsPolicy", false)),
    (7, F::MapStr("nodeSelector")),
    (8, F::Str("serviceAccountName", false)),
    (10, F::Str("nodeName", false)),
    (11, F::Bool("hostNetwork", false)),
    (16, F::Str("hostname", false)),
    (19, F::Str("schedulerName", false)),
    (20, F::RepMsg("initContainers", CONTAINER)),
];
const POD_TEMPLATE: &[(u32, F)] = &[(1, F::Msg("metadata", OBJECT_META)), (2, F::Msg("spec", POD_SPEC))];
const JOB_SPEC: &[(u32, F)] = &[
    (1, F::Int("parallelism", true)),
    (2, F::Int("completions", true)),
    (3, F::Int("activeDeadlineSeconds", true)),
    (4, F::Msg("selector", LABEL_SELECTOR)),
    (5, F::Bool("manualSelector", true)),
    (6, F::Msg("template", POD_TEMPLATE)),
    (7, F::Int("backoffLimit", true)),
    (8, F::Int("ttlSecondsAfterFinished", true)),
    (9, F::Str("completionMode", true)),
    (10, F::Bool("suspend", true)),
    (12, F::Int("backoffLimitPerIndex", true)),
    (13, F::Int("maxFailedIndexes", true)),
    (14, F::Str("podReplacementPolicy", true)),
    (15, F::Str("managedBy", true)),
];
const JOB: &[(u32, F)] = &[(1, F::Msg("metadata", OBJECT_META)), (2, F::Msg("spec", JOB_SPEC))];
const JOB_TEMPLATE: &[(u32, F)] = &[(1, F::Msg("metadata", OBJECT_META)), (2, F::Msg("spec", JOB_SPEC))];
const CRON_JOB_SPEC: &[(u32, F)] = &[
    (1, F::Str("schedule", false)),
    (2, F::Int("startingDeadlineSeconds", true)),
    (3, F::Str("concurrencyPolicy", false)),
    (4, F::Bool("suspend", true)),
    (5, F::Msg("jobTemplate", JOB_TEMPLATE)),
    (6, F::Int("successfulJobsHistoryLimit", true)),
    (7, F::Int("failedJobsHistoryLimit", true)),
    (8, F::Str("timeZone", true)),
];
const CRON_JOB: &[(u32, F)] = &[(1, F::Msg("metadata", OBJECT_META)), (2, F::Msg("spec", CRON_JOB_SPEC))];
const NAMESPACE_SPEC: &[(u32, F)] = &[(1, F::RepStr("finalizers"))];
const NAMESPACE: &[(u32, F)] = &[(1, F::Msg("metadata", OBJECT_META)), (2, F::Msg("spec", NAMESPACE_SPEC))];
const CONFIG_MAP: &[(u32, F)] = &[
    (1, F::Msg("metadata", OBJECT_META)),
    (2, F::MapStr("data")),
    (3, F::MapBytes("binaryData")),
    (4, F::Bool("immutable", true)),
];
const SECRET: &[(u32, F)] = &[
    (1, F::Msg("metadata", OBJECT_META)),
    (2, F::MapBytes("data")),
    (3, F::Str("type", false)),
    (4, F::MapStr("stringData")),
    (5, F::Bool("immutable", true)),
];

fn descriptor(api_version: &str, kind: &str) -> Option<&'static [(u32, F)]> {
    Some(match (api_version, kind) {
        ("batch/v1", "Job") => JOB,
        ("batch/v1", "CronJob") => CRON_JOB,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        _ => return None,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| "bad field number")?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "bad length")?;
                let end = self.pos.checked_add(len).filter(|e| *e <= self.b.len()).ok_or("truncated field")?;
                let s = &self.b[self.pos..end];
                self.pos = end;
                Wire::Bytes(s)
            }
            1 => {
                self.pos += 8;
                Wire::Fixed
            }
            5 => {
                self.pos += 4;
                Wire::Fixed
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        if self.pos > self.b.len() {
            return Err("truncated field".into());
        }
        Ok(Some((field, wire)))
    }
}

/// Standard base64 with padding, as JSON carries `[]byte`.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
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

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in string field".to_string())
}

fn map_entry(b: &[u8]) -> Result<(String, Option<&[u8]>), String> {
    let mut r = Reader { b, pos: 0 };
    let (mut k, mut v) = (String::new(), None);
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(x)) => k = utf8(x)?,
            (2, Wire::Bytes(x)) => v = Some(x),
            _ => {}
        }
    }
    Ok((k, v))
}

fn decode_time(b: &[u8]) -> Result<Option<String>, String> {
    let mut r = Reader { b, pos: 0 };
    let (mut secs, mut nanos) = (0i64, 0u32);
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Varint(v)) => secs = v as i64,
            (2, Wire::Varint(v)) => nanos = v as u32,
            _ => {}
        }
    }
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or("time out of range")?;
    Ok(Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn decode_message(b: &[u8], desc: &[(u32, F)]) -> Result<Value, String> {
    let mut out = Map::new();
    let mut r = Reader { b, pos: 0 };
    while let Some((num, wire)) = r.next()? {
        let Some((_, f)) = desc.iter().find(|(n, _)| *n == num) else { continue };
        match (*f, wire) {
            (F::Str(name, ptr), Wire::Bytes(x)) => {
                let s = utf8(x)?;
                if ptr || !s.is_empty() {
                    out.insert(name.into(), json!(s));
                }
            }
            (F::Int(name, ptr), Wire::Varint(v)) => {
                if ptr || v != 0 {
                    out.insert(name.into(), json!(v as i64));
                }
            }
            (F::Bool(name, ptr), Wire::Varint(v)) => {
                if ptr || v != 0 {
                    out.insert(name.into(), json!(v != 0));
                }
            }
            (F::Msg(name, d), Wire::Bytes(x)) => {
                out.insert(name.into(), decode_message(x, d)?);
            }
            (F::RepStr(name), Wire::Bytes(x)) => {
                let e = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!(utf8(x)?));
                }
            }
            (F::RepMsg(name, d), Wire::Bytes(x)) => {
                let m = decode_message(x, d)?;
                let e = out.entry(name).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(m);
                }
            }
            (F::MapStr(name), Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let v = utf8(v.unwrap_or_default())?;
                out.entry(name).or_insert_with(|| json!({}))[k] = json!(v);
            }
            (F::MapBytes(name), Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                let v = base64(v.unwrap_or_default());
                out.entry(name).or_insert_with(|| json!({}))[k] = json!(v);
            }
            (F::MapQuantity(name), Wire::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                // Quantity { string string = 1; }
                let q = match v {
                    Some(q) => map_entry(q)?.0,
                    None => String::new(),
                };
                out.entry(name).or_insert_with(|| json!({}))[k] = json!(q);
            }
            (F::Time(name), Wire::Bytes(x)) => {
                if let Some(t) = decode_time(x)? {
                    out.insert(name.into(), json!(t));
                }
            }
            _ => return Err(format!("field {num} has an unexpected wire type")),
        }
    }
    Ok(Value::Object(out))
}

/// Decode a `application/vnd.kubernetes.protobuf` request body (with the `k8s\0` envelope) to
/// the JSON object. Errors are the 400 texts the HTTP layer returns; a kind we have no
/// descriptor for is an error naming it (the caller answers 415 as before).
pub fn decode_object(body: &[u8]) -> Result<Value, String> {
    let raw = body.strip_prefix(b"k8s\0").ok_or("the protobuf body does not start with the k8s envelope")?;
    let mut r = Reader { b: raw, pos: 0 };
    let (mut api_version, mut kind, mut inner) = (String::new(), String::new(), &[][..]);
    while let Some((f, w)) = r.next()? {
        match (f, w) {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader { b: tm, pos: 0 };
                while let Some((f, w)) = t.next()? {
                    match (f, w) {
                        (1, Wire::Bytes(x)) => api_version = utf8(x)?,
                        (2, Wire::Bytes(x)) => kind = utf8(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => inner = x,
            _ => {}
        }
    }
    let desc = descriptor(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf decoding for {kind} in version {api_version:?}; send JSON"))?;
    let mut obj = decode_message(inner, desc)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, num: u32, bytes: &[u8]) {
        varint(out, u64::from(num << 3 | 2));
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn int_field(out: &mut Vec<u8>, num: u32, v: u64) {
        varint(out, u64::from(num << 3));
        varint(out, v);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(&mut tm, 1, api_version.as_bytes());
        field(&mut tm, 2, kind.as_bytes());
        let mut u = Vec::new();
        field(&mut u, 1, &tm);
        field(&mut u, 2, raw);
        field(&mut u, 3, b"");
        field(&mut u, 4, b"");
        [b"k8s\0".as_slice(), &u].concat()
    }

    #[test]
    fn decodes_a_job_as_kubectl_create_job_sends_it() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"x");
        field(&mut meta, 2, b"");
        field(&mut meta, 8, b"");
        let mut container = Vec::new();
        field(&mut container, 1, b"x");
        field(&mut container, 2, b"busybox");
        field(&mut container, 3, b"echo");
        field(&mut container, 3, b"hi");
        field(&mut container, 8, b"");
        int_field(&mut container, 16, 0);
        let mut pod_spec = Vec::new();
        field(&mut pod_spec, 2, &container);
        field(&mut pod_spec, 3, b"Never");
        let mut tmpl = Vec::new();
        field(&mut tmpl, 1, b"");
        field(&mut tmpl, 2, &pod_spec);
        let mut spec = Vec::new();
        field(&mut spec, 6, &tmpl);
        int_field(&mut spec, 7, 0);
        let mut job = Vec::new();
        field(&mut job, 1, &meta);
        field(&mut job, 2, &spec);
        field(&mut job, 3, b"");
        let v = decode_object(&envelope("batch/v1", "Job", &job)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
                "spec": {"backoffLimit": 0, "template": {"metadata": {}, "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "x", "image": "busybox", "command": ["echo", "hi"], "resources": {}}]}}}})
        );
    }

    #[test]
    fn maps_bytes_and_errors() {
        let mut entry = Vec::new();
        field(&mut entry, 1, b"k");
        field(&mut entry, 2, b"v");
        let mut cm = Vec::new();
        field(&mut cm, 2, &entry);
        field(&mut cm, 3, &entry);
        let v = decode_object(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(v["data"], json!({"k": "v"}));
        assert_eq!(v["binaryData"], json!({"k": "dg=="}));
        assert_eq!(
            (base64(b"ab"), base64(b"abc"), base64(b"")),
            ("YWI=".to_string(), "YWJj".to_string(), String::new())
        );
        assert!(decode_object(b"{}").unwrap_err().contains("k8s envelope"));
        assert!(decode_object(&envelope("v1", "Pod", b"")).unwrap_err().contains("Pod"));
        let mut bad = envelope("v1", "ConfigMap", b"");
        bad.push(0x12);
        bad.push(0x7f);
        assert!(decode_object(&bad).is_err(), "truncated bodies are errors, not panics");
    }
}
