//! Decoding checks: wrong JSON types (a 400, as kube-apiserver's decoder answers) and unknown
//! fields for `?fieldValidation=`.
//!
//! Unknown fields are found by deserializing the object into its k8s-openapi type (which skips
//! fields it does not know) and serializing it back: every key of the request that is missing from
//! the round-tripped object is unknown. Keys are compared, not values, so free-form maps (labels,
//! annotations, ConfigMap data, CRD schemas) round-trip untouched. Known limits: a `null` value is
//! never reported (k8s-openapi drops `null` optional fields, so an unknown `null` key cannot be
//! told from a known one), and duplicate keys cannot be seen here because the body has already been
//! parsed into a map by the time it arrives (upstream reports `duplicate field "x"`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::FieldValidation;
use crate::errors::StatusError;
use crate::registry::ResourceInfo;

/// Why a typed round trip failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejected {
    /// A value of the wrong type (a 400 from the decoder).
    Decode(String),
    /// Required fields are missing: Go decodes them as zero values and validation answers 422
    /// `Required value` for each (paths upstream style).
    Required(Vec<String>),
}

fn roundtrip<T: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema>(
    v: &Value,
) -> Result<Value, Rejected> {
    // Without path tracking first (it costs as much as the decode); a failure is decoded again
    // with it, for the path the message names.
    if let Ok(typed) = T::deserialize(v) {
        return serde_json::to_value(&typed).map_err(|e| Rejected::Decode(e.to_string()));
    }
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        if e.inner().to_string().starts_with("missing field") {
            let missing = super::required::missing::<T>(v);
            if !missing.is_empty() {
                return Rejected::Required(missing);
            }
        }
        let path = e.path().to_string();
        Rejected::Decode(if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        })
    })?;
    serde_json::to_value(&typed).map_err(|e| Rejected::Decode(e.to_string()))
}

/// The typed round trip for a built-in kind, `None` for kinds without a k8s-openapi type.
pub fn typed_roundtrip(group: &str, version: &str, kind: &str, v: &Value) -> Option<Result<Value, Rejected>> {
    use k8s_openapi::api::{apps, batch, coordination, core, events, policy, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    Some(match (group, kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(v),
        ("", "Node") => roundtrip::<core::v1::Node>(v),
        ("", "Pod") => roundtrip::<core::v1::Pod>(v),
        ("", "Event") => roundtrip::<core::v1::Event>(v),
        ("", "Service") => roundtrip::<core::v1::Service>(v),
        ("", "Endpoints") => roundtrip::<core::v1::Endpoints>(v),
        ("discovery.k8s.io", "EndpointSlice") => roundtrip::<k8s_openapi::api::discovery::v1::EndpointSlice>(v),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(v),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(v),
        ("", "Secret") => roundtrip::<core::v1::Secret>(v),
        ("batch", "Job") => roundtrip::<batch::v1::Job>(v),
        ("batch", "CronJob") => roundtrip::<batch::v1::CronJob>(v),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(v),
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(v),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(v),
        ("policy", "PodDisruptionBudget") => roundtrip::<policy::v1::PodDisruptionBudget>(v),
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(v),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => roundtrip::<rbac::v1::ClusterRoleBinding>(v),
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<rbac::v1::Role>(v),
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(v),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => roundtrip::<apiext::CustomResourceDefinition>(v),
        _ => return crate::kinds::with_type(group, version, kind, Roundtrip(v)),
    })
}

/// Whether `v`, an object of a built-in kind with a k8s-openapi type, decodes as that type with
/// no value skipped: then the round trip of [`check`] would find no unknown field and leave `v`
/// as it is (see [`super::known`]). `false` for other kinds, and whenever that is not shown.
fn known_fields_only(group: &str, kind: &str, v: &Value) -> bool {
    use super::known::decodes_without_skipping as known;
    use k8s_openapi::api::{batch, coordination, core, events};
    match (group, kind) {
        ("", "Pod") => known::<core::v1::Pod>(v),
        ("", "Event") => known::<core::v1::Event>(v),
        ("", "Node") => known::<core::v1::Node>(v),
        ("", "Namespace") => known::<core::v1::Namespace>(v),
        ("", "ConfigMap") => known::<core::v1::ConfigMap>(v),
        ("", "Service") => known::<core::v1::Service>(v),
        ("", "Endpoints") => known::<core::v1::Endpoints>(v),
        ("discovery.k8s.io", "EndpointSlice") => known::<k8s_openapi::api::discovery::v1::EndpointSlice>(v),
        ("batch", "Job") => known::<batch::v1::Job>(v),
        ("batch", "CronJob") => known::<batch::v1::CronJob>(v),
        ("coordination.k8s.io", "Lease") => known::<coordination::v1::Lease>(v),
        ("events.k8s.io", "Event") => known::<events::v1::Event>(v),
        _ => false,
    }
}

/// [`roundtrip`] for the kinds of [`crate::kinds`].
struct Roundtrip<'a>(&'a Value);

impl crate::kinds::TypeVisitor for Roundtrip<'_> {
    type Out = Result<Value, Rejected>;
    fn visit<T: DeserializeOwned + Serialize + k8s_openapi::schemars::JsonSchema>(self) -> Self::Out {
        let out = roundtrip::<T>(self.0)?;
        let missing = super::required::missing::<T>(self.0);
        if missing.is_empty() { Ok(out) } else { Err(Rejected::Required(missing)) }
    }
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// An unknown field: its upstream-style path (`spec.template.spec.containers[0].foo`) and the
/// steps to it (keys may contain dots, so the printed path cannot be parsed back).
struct Unknown {
    printed: String,
    segs: Vec<Seg>,
}

/// The paths (`spec.template.spec.containers[0].foo`) of keys in `input` that `output` lacks.
pub fn unknown_fields(input: &Value, output: &Value) -> Vec<String> {
    unknown_in(input, output).into_iter().map(|u| u.printed).collect()
}

/// A step below a container: `(parent, segment)`, the parent an index into the same arena.
type Step<'a> = (usize, SegRef<'a>);

/// A [`Seg`] borrowed from the input.
#[derive(Clone, Copy)]
enum SegRef<'a> {
    Key(&'a str),
    Index(usize),
}

/// The arena index of the root.
const ROOT: usize = usize::MAX;

/// The unknown key `key` under the container at `at`, spelt out from the arena.
fn spell(steps: &[Step<'_>], mut at: usize, key: &str) -> Unknown {
    let mut rev = vec![SegRef::Key(key)];
    while at != ROOT {
        let (parent, seg) = steps[at];
        rev.push(seg);
        at = parent;
    }
    let mut printed = String::new();
    let mut segs = Vec::with_capacity(rev.len());
    for seg in rev.into_iter().rev() {
        match seg {
            SegRef::Key(k) => {
                if !printed.is_empty() {
                    printed.push('.');
                }
                printed.push_str(k);
                segs.push(Seg::Key(k.to_string()));
            }
            SegRef::Index(n) => {
                printed.push_str(&format!("[{n}]"));
                segs.push(Seg::Index(n));
            }
        }
    }
    Unknown { printed, segs }
}

/// Iterative (an input of any depth is walked without recursion). Paths are only spelt out for
/// the unknown keys: the walk keeps one arena entry per container it descends into.
fn unknown_in(input: &Value, output: &Value) -> Vec<Unknown> {
    let mut out = vec![];
    let mut steps: Vec<Step<'_>> = vec![];
    let mut stack: Vec<(&Value, &Value, usize)> = vec![(input, output, ROOT)];
    let descends = |i: &Value, o: &Value| {
        matches!((i, o), (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)))
    };
    while let Some((input, output, at)) = stack.pop() {
        match (input, output) {
            (Value::Object(i), Value::Object(o)) => {
                for (k, v) in i.iter().rev() {
                    if v.is_null() {
                        continue;
                    }
                    match o.get(k) {
                        None => out.push(spell(&steps, at, k)),
                        Some(ov) if descends(v, ov) => {
                            steps.push((at, SegRef::Key(k)));
                            stack.push((v, ov, steps.len() - 1));
                        }
                        Some(_) => {}
                    }
                }
            }
            (Value::Array(i), Value::Array(o)) => {
                for (n, (a, b)) in i.iter().zip(o).enumerate().rev() {
                    if descends(a, b) {
                        steps.push((at, SegRef::Index(n)));
                        stack.push((a, b, steps.len() - 1));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Decode-time checks for `obj` of `info`'s kind: a 400 for values of the wrong type, and for
/// unknown fields a 400 (`Strict`), warnings (`Warn`) or nothing (`Ignore`). Unknown fields are
/// dropped from `obj` (the decoder never keeps them).
pub fn check(info: &ResourceInfo, obj: &mut Value, fv: FieldValidation) -> Result<Vec<String>, StatusError> {
    check_known(info, obj, fv, None).map(|(warnings, _)| warnings)
}

/// Kinds whose stored objects record whether they decode without skipping
/// ([`crate::store::Meta::known`]), so that an update of one decodes only what it changed
/// ([`check_known`]): the kinds written per pod and per Job. Neither is converted between
/// versions, and neither their top level nor their `metadata` or `status` has a required field
/// (a test shows it), so any subset of those fields decodes on its own.
pub fn tracks_known(info: &ResourceInfo) -> bool {
    info.crd.is_none() && matches!((info.group.as_str(), info.kind.as_str()), ("", "Pod") | ("batch", "Job"))
}

/// Whether `obj` (of a kind of [`tracks_known`]) decodes as its k8s-openapi type with no
/// non-null value skipped.
pub fn decodes_known(info: &ResourceInfo, obj: &Value) -> bool {
    known_fields_only(&info.group, &info.kind, obj)
}

/// Top-level fields of the kinds of [`tracks_known`] whose changed subfields are decoded alone
/// (structs without required fields); any other changed field is decoded whole.
const SUBSET_FIELDS: [&str; 2] = ["metadata", "status"];

/// Whether `obj`, which replaces `old`, decodes without skipping, shown by decoding only what
/// differs from `old` (`old` must decode without skipping: [`crate::store::Meta::known`]). A
/// struct's decode takes each of its keys on its own (a skipped key or a type error in one
/// fails the whole), so with `old`'s keys all good, `obj` is good exactly when the keys it
/// changed are. The changed values are moved into a partial object for the decode and put
/// back (`obj` comes out as it went in, key order included); `apiVersion` and `kind` always go
/// with them. `false` for other kinds, and whenever it is not shown.
fn changed_fields_known(info: &ResourceInfo, obj: &mut Value, old: &Value) -> bool {
    if !tracks_known(info) {
        return false;
    }
    let (Some(new), Some(old)) = (obj.as_object_mut(), old.as_object()) else {
        return false;
    };
    let mut partial = serde_json::Map::new();
    for k in ["apiVersion", "kind"] {
        if let Some(v) = new.get(k) {
            partial.insert(k.to_string(), v.clone());
        }
    }
    // The top-level keys moved, each with whether only its changed subfields were.
    let mut moved: Vec<(String, bool)> = vec![];
    for (k, v) in new.iter_mut() {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        let o = old.get(k);
        if o == Some(&*v) {
            continue;
        }
        match (v, o) {
            (Value::Object(nv), Some(Value::Object(ov))) if SUBSET_FIELDS.contains(&k.as_str()) => {
                let mut sub = serde_json::Map::new();
                for (sk, sv) in nv.iter_mut() {
                    if ov.get(sk) != Some(&*sv) {
                        sub.insert(sk.clone(), std::mem::take(sv));
                    }
                }
                partial.insert(k.clone(), Value::Object(sub));
                moved.push((k.clone(), true));
            }
            (v, _) => {
                partial.insert(k.clone(), std::mem::take(v));
                moved.push((k.clone(), false));
            }
        }
    }
    let mut partial = Value::Object(partial);
    let known = known_fields_only(&info.group, &info.kind, &partial);
    for (k, subset) in moved {
        let (Some(slot), Some(taken)) = (new.get_mut(&k), partial.get_mut(&k).map(std::mem::take)) else {
            continue;
        };
        match (slot, taken) {
            (Value::Object(nv), Value::Object(sub)) if subset => {
                for (sk, sv) in sub {
                    if let Some(s) = nv.get_mut(&sk) {
                        *s = sv;
                    }
                }
            }
            (slot, taken) => *slot = taken,
        }
    }
    known
}

/// [`check`], also saying whether `obj` is shown to decode without skipping (then nothing was
/// dropped or warned about). With `old`, a stored object `obj` replaces that decodes without
/// skipping, only the fields `obj` changed are decoded when that shows it
/// ([`changed_fields_known`]); otherwise, or when they do not, the whole object is, as
/// [`check`] does.
pub fn check_known(
    info: &ResourceInfo,
    obj: &mut Value,
    fv: FieldValidation,
    old: Option<&Value>,
) -> Result<(Vec<String>, bool), StatusError> {
    if let Some(old) = old
        && changed_fields_known(info, obj, old)
    {
        debug_assert!(
            known_fields_only(&info.group, &info.kind, obj),
            "the changed fields decoded without skipping, the whole object does not"
        );
        return Ok((vec![], true));
    }
    // Typed kinds: exact paths to remove. Custom resources: printed paths from the CRD schema.
    // The common case, no unknown field, without the round trip's serialization and walk.
    if known_fields_only(&info.group, &info.kind, obj) {
        return Ok((vec![], true));
    }
    let mut exact: Vec<Vec<Seg>> = vec![];
    let unknown: Vec<String> = match typed_roundtrip(&info.group, &info.version, &info.kind, obj) {
        Some(rt) => {
            let out = rt.map_err(|e| match e {
                Rejected::Decode(why) => decode_error(info, obj, &why),
                Rejected::Required(paths) => {
                    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                    let errs: Vec<_> = paths.into_iter().map(|p| crate::errors::FieldError::required(p, "")).collect();
                    StatusError::invalid(info, name, &errs)
                }
            })?;
            let found: Vec<Unknown> = unknown_in(obj, &out)
                .into_iter()
                .filter(|u| u.printed != "apiVersion" && u.printed != "kind")
                .collect();
            exact = found.iter().map(|u| u.segs.clone()).collect();
            found.into_iter().map(|u| u.printed).collect()
        }
        // A custom resource: its CRD's schema says what is known.
        None => match &info.schema {
            Some(schema) => crate::openapi::unknown_fields_in_schema(schema, obj)
                .into_iter()
                .filter(|p| {
                    !matches!(p.as_str(), "apiVersion" | "kind") && p != "metadata" && !p.starts_with("metadata.")
                })
                .collect(),
            None => return Ok((vec![], false)),
        },
    };
    let remove_all = |obj: &mut Value| {
        if exact.is_empty() {
            for p in &unknown {
                remove_path(obj, p);
            }
        } else {
            for segs in &exact {
                remove_segs(obj, segs);
            }
        }
    };
    let cannot_handle = |why: &str| decode_error(info, obj, why);
    if unknown.is_empty() {
        return Ok((vec![], false));
    }
    let msgs: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
    match fv {
        FieldValidation::Strict => Err(cannot_handle(&format!("strict decoding error: {}", msgs.join(", ")))),
        FieldValidation::Warn => {
            remove_all(obj);
            Ok((msgs, false))
        }
        FieldValidation::Ignore => {
            remove_all(obj);
            Ok((vec![], false))
        }
    }
}

/// Upstream's `transformDecodeError`: `<Kind> in version "<v>" cannot be handled as a <Kind>: ...`
/// when the body names its kind, else `the object provided is unrecognized (must be of type
/// <Kind>): ... (<first 30 bytes of the body>)`.
pub fn decode_error(info: &ResourceInfo, obj: &Value, why: &str) -> StatusError {
    let kind = obj.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty());
    match kind {
        Some(kind) => {
            let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            let version = api_version.rsplit('/').next().unwrap_or_default();
            StatusError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {}: {why}",
                info.kind
            ))
        }
        None => {
            let body = obj.to_string();
            let summary = match body.char_indices().nth(30) {
                Some((i, _)) => format!("{} ...", &body[..i]),
                None => body,
            };
            StatusError::bad_request(format!(
                "the object provided is unrecognized (must be of type {}): {why} ({summary})",
                info.kind
            ))
        }
    }
}

/// Remove the key at the end of `segs`.
fn remove_segs(obj: &mut Value, segs: &[Seg]) {
    let Some((Seg::Key(last), init)) = segs.split_last() else { return };
    let mut cur = obj;
    for s in init {
        let next = match s {
            Seg::Key(k) => cur.get_mut(k.as_str()),
            Seg::Index(i) => cur.get_mut(*i),
        };
        let Some(next) = next else { return };
        cur = next;
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.as_str());
    }
}

/// Remove the key at an upstream-style path (`a.b[0].c`). Keys containing dots are ambiguous;
/// those are left alone.
fn remove_path(obj: &mut Value, path: &str) {
    let mut segs: Vec<(String, Option<usize>)> = vec![];
    for part in path.split('.') {
        let (name, idx) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').split("][").filter_map(|i| i.parse().ok()).next()),
            None => (part, None),
        };
        segs.push((name.to_string(), idx));
    }
    let Some(((last, last_idx), init)) = segs.split_last() else { return };
    if last_idx.is_some() {
        return;
    }
    let mut cur = obj;
    for (name, idx) in init {
        let Some(next) = cur.get_mut(name.as_str()) else { return };
        cur = match idx {
            Some(i) => match next.get_mut(*i) {
                Some(n) => n,
                None => return,
            },
            None => next,
        };
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The walk before paths were spelt lazily (every key's path built as it was visited): the
    /// reference the current one must match, paths, steps and order.
    fn eager(input: &Value, output: &Value) -> Vec<(String, Vec<Seg>)> {
        let mut out = vec![];
        let mut stack: Vec<(&Value, &Value, String, Vec<Seg>)> = vec![(input, output, String::new(), vec![])];
        while let Some((input, output, path, segs)) = stack.pop() {
            match (input, output) {
                (Value::Object(i), Value::Object(o)) => {
                    for (k, v) in i.iter().rev() {
                        if v.is_null() {
                            continue;
                        }
                        let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                        let mut s = segs.clone();
                        s.push(Seg::Key(k.clone()));
                        match o.get(k) {
                            None => out.push((p, s)),
                            Some(ov) => stack.push((v, ov, p, s)),
                        }
                    }
                }
                (Value::Array(i), Value::Array(o)) => {
                    for (n, (a, b)) in i.iter().zip(o).enumerate().rev() {
                        let mut s = segs.clone();
                        s.push(Seg::Index(n));
                        stack.push((a, b, format!("{path}[{n}]"), s));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn lazy(input: &Value, output: &Value) -> Vec<(String, Vec<Seg>)> {
        unknown_in(input, output).into_iter().map(|u| (u.printed, u.segs)).collect()
    }

    #[test]
    fn unknown_paths_name_keys_indexes_and_dotted_keys() {
        let input = json!({"spec": {"a.b": {"x": 1}, "foo": 1, "list": [{"k": 1, "bar": 2}, {"k": 2}], "n": null},
            "zzz": [1], "metadata": {"name": "x"}});
        let output = json!({"spec": {"a.b": {}, "list": [{"k": 1}, {"k": 2}]}, "metadata": {"name": "x"}});
        let found = lazy(&input, &output);
        assert_eq!(found, eager(&input, &output));
        let printed: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(printed, ["zzz", "spec.foo", "spec.a.b.x", "spec.list[0].bar"]);
        assert_eq!(found[2].1, vec![Seg::Key("spec".into()), Seg::Key("a.b".into()), Seg::Key("x".into())]);
        assert_eq!(
            found[3].1,
            vec![Seg::Key("spec".into()), Seg::Key("list".into()), Seg::Index(0), Seg::Key("bar".into())]
        );
    }

    /// A decode error still names the path of the wrong value (the first decode runs without
    /// path tracking; the error comes from the second).
    #[test]
    fn decode_errors_name_the_path() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "args": [1]}]}}}});
        let Some(Err(Rejected::Decode(why))) = typed_roundtrip("batch", "v1", "Job", &job) else {
            panic!("a decode error")
        };
        assert!(why.starts_with("spec.template.spec.containers[0].args[0]: invalid type: integer `1`"), "{why}");
        let mut ok = job.clone();
        ok["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["1"]);
        ok["spec"]["bogus"] = json!(true);
        let out = typed_roundtrip("batch", "v1", "Job", &ok).unwrap().unwrap();
        assert_eq!(unknown_fields(&ok, &out), ["spec.bogus"]);
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-c.]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d.]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects of the kinds the fast check covers, with many of their fields set.
    fn corpus() -> Vec<(&'static str, &'static str, Value)> {
        let pod_spec = json!({"containers": [{"name": "c", "image": "i", "args": ["a"], "env": [{"name": "E", "value": "v"}],
                                              "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                              "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
                                              "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                              "volumes": [{"name": "v", "emptyDir": {}}], "restartPolicy": "Never",
                              "nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}]});
        let meta = json!({"name": "x", "namespace": "default", "labels": {"l": "v"}, "annotations": {"a/b": "c"},
                          "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": true}],
                          "finalizers": ["f"], "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                              "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:x": {}}}}]});
        vec![
            (
                "",
                "Pod",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec,
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}],
                           "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                                                  "state": {"terminated": {"exitCode": 0}}}]}}),
            ),
            (
                "batch",
                "Job",
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                "spec": {"completions": 3, "completionMode": "Indexed", "backoffLimitPerIndex": 1,
                         "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
                         "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec}},
                "status": {"active": 1, "uncountedTerminatedPods": {"succeeded": ["u"]},
                           "conditions": [{"type": "Complete", "status": "True"}]}}),
            ),
            (
                "batch",
                "CronJob",
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec}}}},
                "status": {"active": [{"kind": "Job", "name": "j"}]}}),
            ),
            (
                "",
                "Event",
                json!({"apiVersion": "v1", "kind": "Event", "metadata": meta, "reason": "R", "count": 2,
                "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "c"}}),
            ),
            (
                "coordination.k8s.io",
                "Lease",
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": meta, "spec": {"holderIdentity": "h", "leaseDurationSeconds": 15}}),
            ),
        ]
    }

    /// Every container (object or array) of `v`, by the steps to it.
    fn containers(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match v {
            Value::Object(m) => {
                out.push(at.clone());
                for (k, c) in m {
                    at.push(Seg::Key(k.clone()));
                    containers(c, at, out);
                    at.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    at.push(Seg::Index(i));
                    containers(c, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    fn at_mut<'v>(mut v: &'v mut Value, segs: &[Seg]) -> &'v mut Value {
        for s in segs {
            v = match s {
                Seg::Key(k) => &mut v[k.as_str()],
                Seg::Index(i) => &mut v[*i],
            };
        }
        v
    }

    #[test]
    fn the_corpus_has_no_unknown_fields_and_the_fast_check_says_so() {
        for (group, kind, v) in corpus() {
            let out = typed_roundtrip(group, "v1", kind, &v).unwrap().unwrap();
            let unknown: Vec<String> = unknown_fields(&v, &out);
            assert!(unknown.iter().all(|p| p == "apiVersion" || p == "kind"), "{kind}: {unknown:?}");
            assert!(known_fields_only(group, kind, &v), "{kind}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]
        /// The fast check never lets through an object the round trip finds an unknown field in
        /// or refuses: a key set anywhere in a realistic object, known or not, any value.
        #[test]
        fn the_fast_check_agrees_with_the_round_trip(which in 0usize..5, pick in any::<prop::sample::Index>(),
                                                     key in "[a-zA-Z]{1,12}", value in any_json()) {
            let (group, kind, mut v) = corpus().swap_remove(which);
            let mut spots = vec![];
            containers(&v, &mut vec![], &mut spots);
            let spot = pick.get(&spots).clone();
            at_mut(&mut v, &spot)[key.as_str()] = value;
            if known_fields_only(group, kind, &v) {
                let out = typed_roundtrip(group, "v1", kind, &v).unwrap();
                let out = out.expect("the fast check passed an object the round trip refuses");
                let unknown: Vec<String> =
                    unknown_fields(&v, &out).into_iter().filter(|p| p != "apiVersion" && p != "kind").collect();
                prop_assert!(unknown.is_empty(), "{} at {:?}: {:?}", key, spot, unknown);
            }
        }
    }

    fn info_of(group: &str, kind: &str) -> ResourceInfo {
        ResourceInfo::new(group, "v1", "things", kind, true, &[], &[], &[])
    }

    #[test]
    fn the_tracked_kinds_decode_from_any_subset_of_their_top_level_metadata_and_status() {
        let tracked: Vec<_> = corpus().into_iter().filter(|(g, k, _)| tracks_known(&info_of(g, k))).collect();
        assert_eq!(tracked.len(), 2, "Pod and Job");
        for (group, kind, v) in tracked {
            // No required field at the top level, nor in the fields whose subfields are decoded
            // alone (a required one fails the decode of `{}`: `spec` would).
            let bare = json!({"apiVersion": v["apiVersion"], "kind": v["kind"]});
            assert!(known_fields_only(group, kind, &bare), "{kind}");
            for f in SUBSET_FIELDS {
                let mut o = bare.clone();
                o[f] = json!({});
                assert!(known_fields_only(group, kind, &o), "{kind}.{f}");
            }
        }
    }

    /// One edit of a test object: at one of its objects, set a key (new or not), replace an
    /// existing key's value, or remove an existing key.
    type Edit = (prop::sample::Index, prop::sample::Index, u8, String, Value);

    fn edit_strategy() -> impl Strategy<Value = Edit> {
        let key = prop_oneof![
            "[a-z]{1,3}",
            prop::sample::select(
                &[
                    "phase",
                    "conditions",
                    "finalizers",
                    "labels",
                    "status",
                    "type",
                    "name",
                    "nodeName",
                    "image",
                    "message",
                    "reason",
                    "containers",
                    "annotations",
                    "active",
                    "succeeded",
                    "spec",
                    "metadata",
                    "kind",
                    "apiVersion",
                    "resourceVersion",
                    "hostIP",
                    "startTime",
                    "ready",
                ][..]
            )
            .prop_map(str::to_string),
        ];
        let value = prop_oneof![
            Just(json!("a")),
            Just(json!(1)),
            Just(json!(true)),
            Just(json!(["a"])),
            Just(json!({"a": "b"})),
            Just(Value::Null),
            Just(json!([{"type": "Ready", "status": "True"}])),
            any_json(),
        ];
        (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..3, key, value)
    }

    fn apply_edit(v: &mut Value, (spot, which, op, key, value): &Edit) {
        let mut spots: Vec<Vec<Seg>> = vec![];
        containers(v, &mut vec![], &mut spots);
        let at: Vec<Seg> = spot.get(&spots).clone();
        let Value::Object(m) = at_mut(v, &at) else { return };
        let existing: Vec<String> = m.keys().cloned().collect();
        match (op, existing.is_empty()) {
            (0, _) | (_, true) => {
                m.insert(key.clone(), value.clone());
            }
            (1, false) => {
                m[which.get(&existing).as_str()] = value.clone();
            }
            _ => {
                m.remove(which.get(&existing).as_str());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]
        /// Decoding only what an update changed from a stored object that decodes without
        /// skipping says what decoding the whole object says, and leaves the object as it was
        /// (values and key order): a Pod or Job edited into the stored object, then edited again
        /// (known fields or not, well typed or not).
        #[test]
        fn decoding_what_changed_agrees_with_decoding_the_whole(
            which in 0usize..2,
            before in prop::collection::vec(edit_strategy(), 0..3),
            after in prop::collection::vec(edit_strategy(), 1..4),
        ) {
            let (group, kind, base) = corpus().swap_remove(which);
            let info = info_of(group, kind);
            let mut old = base.clone();
            for e in &before {
                apply_edit(&mut old, e);
            }
            if !known_fields_only(group, kind, &old) {
                old = base;
            }
            let mut new = old.clone();
            for e in &after {
                apply_edit(&mut new, e);
            }
            let printed = serde_json::to_string(&new).unwrap();
            let fast = changed_fields_known(&info, &mut new, &old);
            prop_assert_eq!(serde_json::to_string(&new).unwrap(), printed);
            prop_assert_eq!(fast, known_fields_only(group, kind, &new), "{}", serde_json::to_string(&new).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]
        /// The lazy walk finds what the eager one found, in the same order with the same steps.
        #[test]
        fn lazy_paths_match_the_eager_walk(input in any_json(), output in any_json()) {
            prop_assert_eq!(lazy(&input, &output), eager(&input, &output));
            // Outputs that share most of the input's shape (the usual case: a round trip).
            let mut trimmed = input.clone();
            if let Some(m) = trimmed.as_object_mut() && let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
            prop_assert_eq!(lazy(&input, &trimmed), eager(&input, &trimmed));
            prop_assert_eq!(lazy(&input, &input), vec![]);
        }
    }
}
