//! The verbs on stored objects, with kube-apiserver's generic registry semantics.
//!
//! [`Api`] is what upstream's `genericregistry.Store` plus the strategies' generic parts are:
//! create (generateName, uid, creationTimestamp, generation, status reset), update (optimistic
//! concurrency, the status subresource split, generation bumps, no new finalizers while deleting),
//! patch (read-modify-write retried on conflicts unless the patch carries a resourceVersion),
//! delete (preconditions, propagation finalizers, pod graceful deletion, finalizers holding an
//! object) and delete-collection. Objects are `serde_json::Value`s in their storage shape; the HTTP
//! layer converts views (events) and renders tables. Kind-specific defaulting and validation is
//! delegated to [`validate::admit`], patch maths and managedFields to [`patch`].

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::crd;
use super::errors::{FieldError, StatusError};
use super::patch::{self, PatchType, WriteContext};
use super::registry::{Registry, ResourceInfo};
use super::services::{self, Allocators, Reservation, ServiceRanges};
use super::store::{Entry, Expect, Op, Store, WriteError, Written};
use super::validate::{self, FieldValidation, Operation};

/// An admitted and stored update: the object, its serialization when just stored, and the
/// admission warnings.
type Committed = (Value, Option<bytes::Bytes>, Vec<String>);

/// Options of a create, update or patch request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `?dryRun=All`.
    pub dry_run: bool,
    /// `?fieldManager=`.
    pub field_manager: Option<String>,
    /// The request's `User-Agent`.
    pub user_agent: Option<String>,
    /// `?fieldValidation=`.
    pub field_validation: FieldValidation,
    /// `?force=true` (apply patches).
    pub force: bool,
    /// A validating admission check of the object about to be stored, after validation.
    pub admit: Option<AdmitHook>,
}

/// The check a [`WriteOptions`] runs on a create or update once the object is validated:
/// `(resource, subresource, old object (None on create), new object)`; an error rejects the write.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct AdmitHook(
    pub Arc<dyn Fn(&ResourceInfo, Option<&str>, Option<&Value>, &Value) -> Result<(), StatusError> + Send + Sync>,
);

impl std::fmt::Debug for AdmitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmitHook")
    }
}

impl WriteOptions {
    fn admit(
        &self,
        info: &ResourceInfo,
        sub: Option<&str>,
        old: Option<&Value>,
        new: &Value,
    ) -> Result<(), StatusError> {
        match &self.admit {
            Some(hook) => (hook.0)(info, sub, old, new),
            None => Ok(()),
        }
    }

    fn ctx<'a>(&'a self, sub: Option<&'a str>) -> WriteContext<'a> {
        WriteContext {
            field_manager: self.field_manager.as_deref(),
            user_agent: self.user_agent.as_deref(),
            force: self.force,
            subresource: sub,
        }
    }
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// Options of a delete request (`DeleteOptions` body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy` (or the deprecated `orphanDependents`), `None` when not given.
    pub propagation: Option<Propagation>,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Read a `DeleteOptions` JSON object (body of a DELETE).
    pub fn from_json(v: &Value) -> Result<Self, StatusError> {
        let mut o = DeleteOptions::default();
        if let Some(p) = v["propagationPolicy"].as_str() {
            o.propagation = Some(parse_propagation(p)?);
        } else if let Some(b) = v["orphanDependents"].as_bool() {
            o.propagation = Some(if b { Propagation::Orphan } else { Propagation::Background });
        }
        o.grace_period_seconds = v["gracePeriodSeconds"].as_i64();
        o.uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        o.resource_version = v["preconditions"]["resourceVersion"].as_str().map(str::to_string);
        o.dry_run = v["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All"));
        Ok(o)
    }
}

/// Parse a `propagationPolicy` value; anything else is upstream's 422.
pub fn parse_propagation(p: &str) -> Result<Propagation, StatusError> {
    match p {
        "Orphan" => Ok(Propagation::Orphan),
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        other => Err(StatusError::new(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
        )),
    }
}

/// The result of a create, update or patch.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The object as stored (or as it would be, on a dry run).
    pub object: Value,
    /// `Warning` headers.
    pub warnings: Vec<String>,
    /// Whether the object was created (201) rather than updated (200).
    pub created: bool,
    /// `object` serialized, when it was just stored (saves the HTTP layer a serialization).
    pub bytes: Option<bytes::Bytes>,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object: its final state if gone, its current state if deletion is pending.
    pub object: Value,
    /// Whether it is gone from storage.
    pub gone: bool,
}

/// Namespaces the NamespaceLifecycle admission plugin refuses to delete.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Finalizer the garbage collector honours for foreground deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer the garbage collector honours for orphaning dependents.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The generic registry over a [`Store`].
#[derive(Clone)]
pub struct Api {
    /// Where objects live.
    pub store: Arc<Store>,
    /// What is served.
    pub registry: Registry,
    /// Service cluster IPs and node ports.
    pub services: Arc<Allocators>,
}

/// Now, the way object timestamps are written (RFC 3339, seconds, `Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// [`Op::PutKnown`] for an object of a kind that records it ([`validate::strict::tracks_known`])
/// shown to decode without skipping when it was decoded (`known`), [`Op::Put`] otherwise.
/// Between that decode and here only the server's own fields were written (`managedFields`,
/// defaults): debug builds check that the object still decodes without skipping.
fn put(info: &ResourceInfo, obj: Value, known: bool) -> Op {
    if known && validate::strict::tracks_known(info) {
        debug_assert!(
            validate::strict::decodes_known(info, &obj),
            "an object decoded without skipping no longer does after managedFields and admission"
        );
        Op::PutKnown(obj)
    } else {
        Op::Put(obj)
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Whether something still holds a deleted object: finalizers, or a namespace's spec finalizers.
fn held(obj: &Value) -> bool {
    !finalizers(obj).is_empty()
        || (obj["kind"] == "Namespace" && obj["spec"]["finalizers"].as_array().is_some_and(|a| !a.is_empty()))
}

fn set_finalizers(obj: &mut Value, f: &[String]) {
    if f.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        obj["metadata"]["finalizers"] = json!(f);
    }
}

/// Refuse objects whose standard fields have the wrong JSON types, as upstream's decoder does
/// (`cannot unmarshal string into Go struct field ObjectMeta.metadata.labels of type
/// map[string]string`), so later steps can index them safely.
pub fn check_shape(obj: &Value) -> Result<(), StatusError> {
    let bad = |field: &str, want: &str, got: &Value| {
        let kind = match got {
            Value::String(_) => "string",
            Value::Number(_) => "number",
            Value::Bool(_) => "bool",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        Err(StatusError::bad_request(format!(
            "json: cannot unmarshal {kind} into Go struct field {field} of type {want}"
        )))
    };
    if !obj.is_object() {
        return bad("Object", "struct", obj);
    }
    for top in ["metadata", "spec", "status"] {
        if let Some(v) = obj.get(top)
            && !v.is_object()
            && !v.is_null()
        {
            return bad(&format!(".{top}"), "struct", v);
        }
    }
    let md = &obj["metadata"];
    for m in ["labels", "annotations"] {
        if let Some(v) = md.get(m).filter(|v| !v.is_null()) {
            match v.as_object() {
                Some(o) => {
                    if let Some((_, x)) = o.iter().find(|(_, x)| !x.is_string()) {
                        return bad(&format!("ObjectMeta.metadata.{m}"), "string", x);
                    }
                }
                None => return bad(&format!("ObjectMeta.metadata.{m}"), "map[string]string", v),
            }
        }
    }
    if let Some(v) = md.get("finalizers").filter(|v| !v.is_null())
        && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return bad("ObjectMeta.metadata.finalizers", "[]string", v);
    }
    if let Some(v) = md.get("ownerReferences").filter(|v| !v.is_null())
        && !v.as_array().is_some_and(|a| a.iter().all(Value::is_object))
    {
        return bad("ObjectMeta.metadata.ownerReferences", "[]v1.OwnerReference", v);
    }
    for f in ["name", "namespace", "generateName", "resourceVersion", "uid"] {
        if let Some(v) = md.get(f).filter(|v| !v.is_null() && !v.is_string()) {
            return bad(&format!("ObjectMeta.metadata.{f}"), "string", v);
        }
    }
    Ok(())
}

/// Upstream `checkName` on a patched object: its name must be the one in the URL, and its
/// namespace, when it has one, the request's (400 otherwise; a patch cannot rename or move).
fn check_patched_name(patched: &Value, name: &str, ns: &str) -> Result<(), StatusError> {
    let obj_name = patched["metadata"]["name"].as_str().unwrap_or_default();
    if obj_name != name {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({obj_name}) does not match the name on the URL ({name})"
        )));
    }
    let obj_ns = patched["metadata"]["namespace"].as_str().unwrap_or_default();
    if !ns.is_empty() && !obj_ns.is_empty() && obj_ns != ns {
        return Err(StatusError::bad_request(format!(
            "the namespace of the object ({obj_ns}) does not match the namespace on the request ({ns})"
        )));
    }
    Ok(())
}

/// How many names a create with `generateName` tries before answering 409 AlreadyExists
/// (upstream's `RetryGenerateName`, GA in 1.32: 8 attempts).
const GENERATE_NAME_ATTEMPTS: usize = 8;

#[cfg(test)]
thread_local! {
    /// Suffixes [`random_suffix`] returns first, in tests (to force collisions).
    static TEST_SUFFIXES: std::cell::RefCell<std::collections::VecDeque<String>> = Default::default();
}

/// `generateName` suffix: 5 characters from upstream's alphabet (no vowels, no confusables).
fn random_suffix() -> String {
    #[cfg(test)]
    if let Some(s) = TEST_SUFFIXES.with(|q| q.borrow_mut().pop_front()) {
        return s;
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Whether anything other than `metadata`/`status` (and type meta) differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    const IGNORED: [&str; 4] = ["metadata", "status", "apiVersion", "kind"];
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => !map_eq_except(o, n, |k| IGNORED.contains(&k), |_, a, b| a == b),
        _ => old != new,
    }
}

/// Whether two maps hold the same keys, `skip(key)` aside, with `eq` values.
fn map_eq_except(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: impl Fn(&str) -> bool,
    eq: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let kept = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !skip(k)).count();
    kept(a) == kept(b) && a.iter().filter(|(k, _)| !skip(k)).all(|(k, v)| b.get(k).is_some_and(|w| eq(k, v, w)))
}

/// Equal but for resourceVersion and managedFields timestamps: a no-op write. (Compared in
/// place; an object without `metadata` counts as one whose `metadata` is `null`.)
fn same_object(old: &Value, new: &Value) -> bool {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else { return old == new };
    fn metadata(m: &serde_json::Map<String, Value>) -> &Value {
        m.get("metadata").unwrap_or(&Value::Null)
    }
    let entries_eq = |_: &str, a: &Value, b: &Value| match (a.as_array(), b.as_array()) {
        (Some(x), Some(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| match (p.as_object(), q.as_object()) {
                    (Some(p), Some(q)) => map_eq_except(p, q, |k| k == "time", |_, a, b| a == b),
                    _ => p == q,
                })
        }
        _ => a == b,
    };
    let metadata_eq = match (metadata(o).as_object(), metadata(n).as_object()) {
        (Some(a), Some(b)) => map_eq_except(
            a,
            b,
            |k| k == "resourceVersion",
            |k, x, y| if k == "managedFields" { entries_eq(k, x, y) } else { x == y },
        ),
        _ => metadata(o) == metadata(n),
    };
    metadata_eq && map_eq_except(o, n, |k| k == "metadata", |_, a, b| a == b)
}

#[cfg(test)]
mod compare_tests {
    use super::*;

    /// The comparisons as they were written first (normalised clones compared whole).
    fn spec_changed_ref(old: &Value, new: &Value) -> bool {
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                for k in ["metadata", "status", "apiVersion", "kind"] {
                    m.remove(k);
                }
            }
            v
        };
        strip(old) != strip(new)
    }

    fn same_object_ref(old: &Value, new: &Value) -> bool {
        let norm = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("resourceVersion");
                if let Some(mf) = m.get_mut("managedFields").and_then(|x| x.as_array_mut()) {
                    for e in mf {
                        if let Some(o) = e.as_object_mut() {
                            o.remove("time");
                        }
                    }
                }
            }
            v
        };
        norm(old) == norm(new)
    }

    #[test]
    fn in_place_comparisons_match_the_normalised_ones() {
        let base = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1",
            "managedFields": [{"manager": "a", "time": "t1", "fieldsV1": {}}, "odd"]}, "spec": {"x": 1}, "status": {"s": 1}});
        let variants: Vec<Value> = vec![
            base.clone(),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "2",
                "managedFields": [{"manager": "a", "time": "t2", "fieldsV1": {}}, "odd"]}, "spec": {"x": 1}, "status": {"s": 1}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
                "managedFields": [{"manager": "a", "fieldsV1": {}}, "odd"]}, "spec": {"x": 1}, "status": {"s": 2}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1",
                "managedFields": [{"manager": "b", "time": "t1", "fieldsV1": {}}, "odd"]}, "spec": {"x": 1}, "status": {"s": 1}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "resourceVersion": "1",
                "managedFields": [{"manager": "a", "time": "t1", "fieldsV1": {}}]}, "spec": {"x": 1}, "status": {"s": 1}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": "x"}, "spec": {"x": 2}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": "x"}, "spec": {"x": 2}, "extra": 1}),
            json!({"apiVersion": "v1", "kind": "Job", "metadata": null, "spec": {"x": 1}, "status": {"s": 1}}),
            json!({"apiVersion": "v1", "kind": "Job", "spec": {"x": 1}, "status": {"s": 1}}),
            json!({"apiVersion": "v1", "kind": "Job", "metadata": "m", "spec": {"x": 1}}),
            json!({"metadata": {"resourceVersion": "9"}}),
            json!({"metadata": {}}),
            json!({}),
        ];
        for a in &variants {
            for b in &variants {
                assert_eq!(same_object(a, b), same_object_ref(a, b), "{a} {b}");
                assert_eq!(spec_changed(a, b), spec_changed_ref(a, b), "{a} {b}");
            }
        }
    }
}

fn storage_key_of(info: &ResourceInfo, ns: &str, name: &str) -> String {
    if info.namespaced {
        format!("/registry/{}/{ns}/{name}", info.resource)
    } else {
        format!("/registry/{}/{name}", info.resource)
    }
}

impl Api {
    /// An API over a fresh store holding the four built-in namespaces.
    pub fn new(store: Arc<Store>, registry: Registry) -> Self {
        Self::with_service_ranges(store, registry, ServiceRanges::default())
    }

    /// [`Api::new`] with the service cluster IP and node port ranges given.
    pub fn with_service_ranges(store: Arc<Store>, registry: Registry, ranges: ServiceRanges) -> Self {
        let api = Self { store, registry, services: Arc::new(Allocators::new(ranges)) };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let info = api.info("", "namespaces");
            let _ = api.create(&info, "", body, &WriteOptions::default());
        }
        super::bootstrap::ensure(&api);
        api
    }

    /// The registry entry for a core or grouped resource (v1).
    pub fn info(&self, group: &str, resource: &str) -> ResourceInfo {
        self.registry.get(group, "v1", resource).unwrap_or_else(|| panic!("built-in resource {group}/{resource}"))
    }

    /// The canonical resource for a storage key: the first registered one with that key.
    pub fn storage_info(&self, info: &ResourceInfo) -> ResourceInfo {
        let own_key = info.storage_key.strip_prefix(info.group.as_str()).and_then(|k| k.strip_prefix('/'));
        if own_key == Some(info.resource.as_str()) {
            return info.clone();
        }
        self.registry.find(|r| r.storage_key == info.storage_key).unwrap_or_else(|| info.clone())
    }

    /// [`Api::storage_info`] without copying the entry (what a request's handler uses).
    pub fn storage_info_shared(&self, info: &std::sync::Arc<ResourceInfo>) -> std::sync::Arc<ResourceInfo> {
        let own_key = info.storage_key.strip_prefix(info.group.as_str()).and_then(|k| k.strip_prefix('/'));
        if own_key == Some(info.resource.as_str()) {
            return info.clone();
        }
        self.registry.find_shared(|r| r.storage_key == info.storage_key).unwrap_or_else(|| info.clone())
    }

    fn ns_of(info: &ResourceInfo, ns: &str) -> String {
        if info.namespaced { ns.to_string() } else { String::new() }
    }

    /// Read one object.
    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Entry, StatusError> {
        self.store
            .get(&info.storage_key, &Self::ns_of(info, ns), name)
            .ok_or_else(|| StatusError::not_found(info, name))
    }

    /// Read one object as a value.
    pub fn get_value(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value, StatusError> {
        Ok(parse(&self.get(info, ns, name)?.bytes()))
    }

    fn check_namespace(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<(), StatusError> {
        if !info.namespaced {
            return Ok(());
        }
        // The shared entry: no copy of the namespaces' `ResourceInfo` per create.
        let nsinfo =
            self.registry.get_shared("", "v1", "namespaces").unwrap_or_else(|| panic!("built-in resource /namespaces"));
        let Some(e) = self.store.get(&nsinfo.storage_key, "", ns) else {
            return Err(StatusError::not_found(&nsinfo, ns));
        };
        if e.meta.deleting {
            return Err(StatusError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                info.group_resource(),
                name,
            ))
            .with_details(json!({"name": name, "group": info.group, "kind": info.resource, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})));
        }
        Ok(())
    }

    /// Every write of the generic registry goes through here (then [`Store::write`]); storing a
    /// CustomResourceDefinition (re)registers its resources, deleting one removes them and their
    /// objects.
    fn commit(&self, info: &ResourceInfo, ns: &str, name: &str, expect: Expect, op: Op) -> Result<Written, WriteError> {
        let crd = crd::is_crd(info);
        let svc = services::is_services(info);
        let old =
            if crd || svc { self.store.get(&info.storage_key, ns, name).map(|e| parse(&e.bytes())) } else { None };
        let deleting = !matches!(op, Op::Put(_) | Op::PutKnown(_));
        let w = self.store.write(info, ns, name, expect, op)?;
        if svc {
            // A delete frees what the deleted object held, not what was read before the write
            // (a concurrent update in between may have changed its addresses).
            let (old, new) = if deleting {
                (Some(parse(&w.bytes)), None)
            } else {
                (old.clone(), Some(w.object.clone().unwrap_or_else(|| parse(&w.bytes))))
            };
            self.services.committed(&self.store, info, old.as_ref(), new.as_ref());
        }
        if crd {
            if deleting {
                let gone = parse(&w.bytes);
                for r in crd::resources(&gone) {
                    for (ons, oname) in self.store.keys(&r.storage_key, None) {
                        let _ = self.store.write(&r, &ons, &oname, Expect::Exists, Op::Delete);
                    }
                }
                crd::unregister(&self.registry, &gone);
            } else {
                crd::register(&self.registry, old.as_ref(), &parse(&w.bytes));
            }
        }
        Ok(w)
    }

    /// Reserve a Service's cluster IP and node ports (main resource writes only).
    fn reserve_service(
        &self,
        info: &ResourceInfo,
        sub: Option<&str>,
        obj: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<Option<Reservation<'_>>, StatusError> {
        if !services::is_services(info) || sub.is_some() {
            return Ok(None);
        }
        self.services.allocate(&self.store, info, obj, old, dry_run).map(Some)
    }

    /// POST: create `obj` in namespace `ns`.
    pub fn create(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Outcome, StatusError> {
        self.create_inner(info, ns, obj, opts, true)
    }

    /// Create; `record` is false when an apply patch creates (its managedFields are the apply's).
    fn create_inner(
        &self,
        info: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        record: bool,
    ) -> Result<Outcome, StatusError> {
        check_shape(&obj)?;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let ns = Self::ns_of(info, ns);
        if info.namespaced {
            match obj["metadata"]["namespace"].as_str() {
                None | Some("") => obj["metadata"]["namespace"] = json!(ns),
                Some(n) if n != ns => {
                    return Err(StatusError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        crd::finalizer::forbid_create(self, info, obj["metadata"]["name"].as_str().unwrap_or_default())?;
        let mut generate: Option<String> = None;
        let mut name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(g) if !g.is_empty() => {
                    let n = format!("{g}{}", random_suffix());
                    generate = Some(g.to_string());
                    obj["metadata"]["name"] = json!(n);
                    n
                }
                _ => {
                    return Err(StatusError::invalid(
                        info,
                        "",
                        &[FieldError::required("metadata.name", "name or generateName is required")],
                    ));
                }
            },
        };
        self.check_namespace(info, &ns, &name)?;
        let now = Utc::now();
        {
            let md = obj["metadata"].as_object_mut().expect("object");
            // A version 4 uuid from the thread's generator (`Uuid::new_v4` without uuid's
            // `fast-rng` asks the kernel for every one).
            let uid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            md.insert("uid".into(), Value::String(uid.to_string()));
            md.insert("creationTimestamp".into(), json!(timestamp(now)));
            md.remove("resourceVersion");
            md.remove("deletionTimestamp");
            md.remove("deletionGracePeriodSeconds");
            md.remove("selfLink");
            md.remove("generation");
        }
        if info.has_subresource("status") && info.crd.is_some() {
            // A custom resource's status is only written through the status subresource:
            // upstream drops it on create (and keeps none).
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        } else if info.has_subresource("status") {
            obj["status"] = json!({});
            // Namespaces and nodes have a status subresource but, upstream, no generation.
            if !(info.group.is_empty() && matches!(info.resource.as_str(), "namespaces" | "nodes")) {
                obj["metadata"]["generation"] = json!(1);
            }
        }
        if crd::is_custom(info) {
            obj["metadata"]["generation"] = json!(1);
        }
        if crd::is_crd(info) {
            crd::accept(&mut obj, &self.registry);
        }
        if info.group.is_empty() && info.resource == "namespaces" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        validate::convert(info, &mut obj);
        // Unknown fields go before managedFields are computed, as upstream decodes first.
        let (mut warnings, known) = validate::decode_known(info, &mut obj, opts.field_validation, None)?;
        if record {
            patch::record_write(info, None, &mut obj, &opts.ctx(None));
        }
        warnings.extend(validate::admit_decoded(info, Operation::Create, &mut obj, None)?);
        opts.admit(info, None, None, &obj)?;
        let mut resv = self.reserve_service(info, None, &mut obj, None, opts.dry_run)?;
        if opts.dry_run {
            if self.store.get(&info.storage_key, &ns, &name).is_some() {
                return Err(StatusError::already_exists(info, &name));
            }
            return Ok(Outcome { object: obj, warnings, created: true, bytes: None });
        }
        // A generated name that is taken is generated again (the suffix is the same length, so
        // the validation above still holds).
        let mut attempt = 1;
        loop {
            let retry = generate.as_deref().filter(|_| attempt < GENERATE_NAME_ATTEMPTS);
            let body = if retry.is_some() { obj.clone() } else { std::mem::take(&mut obj) };
            match self.commit(info, &ns, &name, Expect::Absent, put(info, body, known)) {
                Ok(w) => {
                    if let Some(r) = resv.take() {
                        r.keep();
                    }
                    return Ok(Outcome {
                        object: w.object.unwrap_or_else(|| parse(&w.bytes)),
                        warnings,
                        created: true,
                        bytes: Some(w.bytes),
                    });
                }
                Err(_) => match retry {
                    Some(g) => {
                        attempt += 1;
                        name = format!("{g}{}", random_suffix());
                        obj["metadata"]["name"] = json!(name);
                    }
                    None => return Err(StatusError::already_exists(info, &name)),
                },
            }
        }
    }

    /// The generic part of an update: carry over what clients can't change, split the status
    /// subresource, bump generation, and refuse new finalizers on an object being deleted.
    fn prepare_update(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: Value,
        sub: Option<&str>,
    ) -> Result<Value, StatusError> {
        let name = old["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut new = new;
        validate::convert(info, &mut new);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        if info.has_subresource("status") {
            match sub {
                Some("status") => {
                    // The stored object but its status, which the write replaces (not copied).
                    let mut merged = match old.as_object() {
                        Some(m) => Value::Object(
                            m.iter().filter(|(k, _)| *k != "status").map(|(k, v)| (k.clone(), v.clone())).collect(),
                        ),
                        None => old.clone(),
                    };
                    match new.get_mut("status") {
                        Some(s) => merged["status"] = s.take(),
                        // A custom resource's status written as absent is removed.
                        None if info.crd.is_some() => {
                            if let Some(m) = merged.as_object_mut() {
                                m.remove("status");
                            }
                        }
                        None => merged["status"] = json!({}),
                    }
                    if let Some(mf) = new["metadata"].get_mut("managedFields") {
                        merged["metadata"]["managedFields"] = mf.take();
                    }
                    new = merged;
                }
                _ => match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                },
            }
        }
        // Upstream `ValidateObjectMetaUpdate`: a uid given must be the stored one (an empty one is
        // filled in from it by `BeforeUpdate`).
        if let Some(uid) = new["metadata"]["uid"].as_str().filter(|u| !u.is_empty())
            && old["metadata"]["uid"].as_str().is_some_and(|o| o != uid)
        {
            return Err(StatusError::invalid(
                info,
                &name,
                &[FieldError::invalid("metadata.uid", json!(uid), "field is immutable")],
            ));
        }
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "name"] {
            match old["metadata"].get(k) {
                Some(v) => new["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        if info.namespaced {
            new["metadata"]["namespace"] = old["metadata"]["namespace"].clone();
        }
        if old["metadata"]["generation"].is_i64() && sub != Some("status") && spec_changed(old, &new) {
            new["metadata"]["generation"] = json!(old["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        if !old["metadata"]["deletionTimestamp"].is_null() {
            let before = finalizers(old);
            let mut added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            added.sort();
            added.dedup();
            if !added.is_empty() {
                let list = added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ");
                return Err(StatusError::invalid(
                    info,
                    &name,
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                        ),
                    )],
                ));
            }
        }
        Ok(new)
    }

    /// Store an admitted update; an object being deleted whose last finalizer is gone (and whose
    /// grace period is over) is deleted instead. Returns the object and, when it was just stored,
    /// its serialization (which the response reuses).
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        rv: u64,
        old: &Value,
        new: Value,
        known: bool,
        dry_run: bool,
    ) -> Result<Result<(Value, Option<bytes::Bytes>), WriteError>, StatusError> {
        let deleting = !new["metadata"]["deletionTimestamp"].is_null();
        let grace_over = new["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0;
        if same_object(old, &new) {
            return Ok(Ok((old.clone(), None)));
        }
        if dry_run {
            return Ok(Ok((new, None)));
        }
        if deleting && grace_over && !held(&new) {
            return Ok(self
                .commit(info, ns, name, Expect::Rv(rv), Op::DeleteAs(new))
                .map(|w| (parse(&w.bytes), Some(w.bytes))));
        }
        Ok(self
            .commit(info, ns, name, Expect::Rv(rv), put(info, new, known))
            .map(|w| (w.object.unwrap_or_else(|| parse(&w.bytes)), Some(w.bytes))))
    }

    /// PUT of the resource (`sub` = None) or a subresource (`status`).
    pub fn update(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Outcome, StatusError> {
        check_shape(&body)?;
        let ns = Self::ns_of(info, ns);
        if let Some(n) = body["metadata"]["name"].as_str()
            && n != name
        {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced
            && let Some(n) = body["metadata"]["namespace"].as_str()
            && !n.is_empty()
            && n != ns
        {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let wanted_rv: Option<u64> = match body["metadata"]["resourceVersion"].as_str() {
            None | Some("") => None,
            Some(s) => Some(s.parse().map_err(|_| {
                StatusError::bad_request(format!("invalid resourceVersion {s:?}: must be an unsigned integer"))
            })?),
        };
        // With a resourceVersion sent a failed commit is a conflict, never retried: the body is
        // moved into the one attempt instead of copied.
        let mut body = Some(body);
        loop {
            let entry = self.get(info, &ns, name)?;
            if let Some(w) = wanted_rv
                && w != entry.rv
            {
                return Err(StatusError::conflict(info, name));
            }
            let old = parse(&entry.bytes());
            // Only a resourceVersion sent moves the body out, and then a failed commit answers a
            // conflict instead of coming back here; should an attempt ever find it gone, that is
            // a conflict too (upstream's answer when the precondition no longer holds), not a
            // panic.
            let attempt = if wanted_rv.is_some() { body.take() } else { body.clone() };
            let Some(attempt) = attempt else {
                return Err(StatusError::conflict(info, name));
            };
            let mut new = self.prepare_update(info, &old, attempt, sub)?;
            let (mut warnings, known) =
                validate::decode_known(info, &mut new, opts.field_validation, entry.meta.known.then_some(&old))?;
            patch::record_write(info, Some(&old), &mut new, &opts.ctx(sub));
            match self.admit_and_commit(info, &ns, name, sub, entry.rv, &old, new, known, opts)? {
                Ok((object, bytes, admitted)) => {
                    warnings.extend(admitted);
                    return Ok(Outcome { object, warnings, created: false, bytes });
                }
                Err(WriteError::NotFound) => return Err(StatusError::not_found(info, name)),
                Err(_) if wanted_rv.is_some() => return Err(StatusError::conflict(info, name)),
                Err(_) => continue,
            }
        }
    }

    /// The shared end of an update and a patch: admission of the decoded object, the Service
    /// address reservation, and the commit (whose [`WriteError`] each caller retries by its rule).
    /// Returns the stored object, its serialization when just stored, and the admission warnings.
    #[allow(clippy::too_many_arguments)]
    fn admit_and_commit(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        rv: u64,
        old: &Value,
        mut new: Value,
        known: bool,
        opts: &WriteOptions,
    ) -> Result<Result<Committed, WriteError>, StatusError> {
        let op = if sub == Some("status") { Operation::UpdateStatus } else { Operation::Update };
        let warnings = validate::admit_decoded(info, op, &mut new, Some(old))?;
        opts.admit(info, sub, Some(old), &new)?;
        let resv = self.reserve_service(info, sub, &mut new, Some(old), opts.dry_run)?;
        Ok(self.commit_update(info, ns, name, rv, old, new, known, opts.dry_run)?.map(|(object, bytes)| {
            if let Some(r) = resv {
                r.keep();
            }
            (object, bytes, warnings)
        }))
    }

    /// PATCH of the resource or the `status` subresource. An apply patch on a missing object
    /// creates it.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        ptype: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Outcome, StatusError> {
        let ns = Self::ns_of(info, ns);
        loop {
            let Some(entry) = self.store.get(&info.storage_key, &ns, name) else {
                if ptype == PatchType::Apply && sub.is_none() {
                    let mut obj = patch::apply_patch(info, None, ptype, body, &opts.ctx(sub))?;
                    check_shape(&obj)?;
                    if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                        return Err(StatusError::bad_request(format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            obj["metadata"]["name"].as_str().unwrap_or_default()
                        )));
                    }
                    obj["metadata"]["name"] = json!(name);
                    match self.create_inner(info, &ns, obj, opts, false) {
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => return other,
                    }
                }
                return Err(StatusError::not_found(info, name));
            };
            let old = parse(&entry.bytes());
            let patched = patch::apply_patch(info, Some(&old), ptype, body, &opts.ctx(sub))?;
            check_shape(&patched)?;
            let carried_rv = patched["metadata"]["resourceVersion"].as_str().map(str::to_string);
            if let Some(rv) = &carried_rv
                && *rv != entry.rv.to_string()
            {
                return Err(StatusError::conflict(info, name));
            }
            check_patched_name(&patched, name, &ns)?;
            let mut new = self.prepare_update(info, &old, patched, sub)?;
            let (mut warnings, known) =
                validate::decode_known(info, &mut new, opts.field_validation, entry.meta.known.then_some(&old))?;
            if ptype != PatchType::Apply {
                patch::record_write(info, Some(&old), &mut new, &opts.ctx(sub));
            }
            match self.admit_and_commit(info, &ns, name, sub, entry.rv, &old, new, known, opts)? {
                Ok((object, bytes, admitted)) => {
                    warnings.extend(admitted);
                    return Ok(Outcome { object, warnings, created: false, bytes });
                }
                Err(WriteError::NotFound) => return Err(StatusError::not_found(info, name)),
                Err(_) => continue,
            }
        }
    }

    /// DELETE one object.
    pub fn delete(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, StatusError> {
        let ns = Self::ns_of(info, ns);
        if info.group.is_empty() && info.resource == "namespaces" && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(StatusError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ))
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        loop {
            let entry = self.get(info, &ns, name)?;
            let old = parse(&entry.bytes());
            if let Some(uid) = &opts.uid
                && *entry.meta.uid != **uid
            {
                return Err(StatusError::conflict_msg(
                    info,
                    name,
                    &format!(
                        "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        storage_key_of(info, &ns, name),
                        entry.meta.uid
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != entry.rv.to_string()
            {
                return Err(StatusError::conflict_msg(
                    info,
                    name,
                    &format!(
                        "StorageError: invalid object, Code: 4, Key: {}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        storage_key_of(info, &ns, name),
                        entry.rv
                    ),
                ));
            }
            let mut new = old.clone();
            let now = Utc::now();
            let already = !old["metadata"]["deletionTimestamp"].is_null();
            // Pods on a node that haven't finished are deleted gracefully: the kubelet confirms.
            let mut grace: i64 = 0;
            if info.group.is_empty() && info.resource == "pods" {
                let scheduled = old["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
                let finished = matches!(old["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
                if scheduled && !finished {
                    grace = opts
                        .grace_period_seconds
                        .unwrap_or_else(|| old["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30))
                        .max(0);
                    if already {
                        let current = old["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
                        grace = grace.min(current);
                    }
                }
            }
            let mut fins = finalizers(&old);
            if !already {
                // Upstream's job strategy defaults batch/v1 Jobs to orphaning (back compatibility);
                // CronJobs in batch/v1 default to deleting dependents, like everything else.
                let policy = opts.propagation.unwrap_or(if info.group == "batch" && info.resource == "jobs" {
                    Propagation::Orphan
                } else {
                    Propagation::Background
                });
                let add = match policy {
                    Propagation::Orphan => Some(ORPHAN_FINALIZER),
                    Propagation::Foreground => Some(FOREGROUND_FINALIZER),
                    Propagation::Background => None,
                };
                if let Some(f) = add {
                    fins.retain(|x| x != ORPHAN_FINALIZER && x != FOREGROUND_FINALIZER);
                    fins.push(f.to_string());
                }
                if crd::is_crd(info) && !fins.iter().any(|f| f == crd::finalizer::CLEANUP_FINALIZER) {
                    fins.push(crd::finalizer::CLEANUP_FINALIZER.to_string());
                }
            }
            let mut probe = old.clone();
            set_finalizers(&mut probe, &fins);
            let immediate = !held(&probe) && grace == 0;
            if immediate {
                if opts.dry_run {
                    return Ok(Deleted { object: old, gone: true });
                }
                match self.commit(info, &ns, name, Expect::Rv(entry.rv), Op::Delete) {
                    Ok(w) => return Ok(Deleted { object: parse(&w.bytes), gone: true }),
                    Err(WriteError::NotFound) => return Err(StatusError::not_found(info, name)),
                    Err(_) => continue,
                }
            }
            set_finalizers(&mut new, &fins);
            let shorter = already && grace < old["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or(0);
            if !already || shorter {
                let ts = now + chrono::Duration::seconds(grace);
                new["metadata"]["deletionTimestamp"] = json!(timestamp(ts));
                new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            if info.group.is_empty() && info.resource == "namespaces" {
                new["status"]["phase"] = json!("Terminating");
            }
            if crd::is_crd(info) && !already {
                crd::finalizer::mark_for_deletion(&mut new);
            }
            if opts.dry_run || new == old {
                return Ok(Deleted { object: new, gone: false });
            }
            if !held(&new) && grace == 0 {
                // A second delete ended a pod's grace period and nothing else holds it.
                match self.commit(info, &ns, name, Expect::Rv(entry.rv), Op::Delete) {
                    Ok(w) => return Ok(Deleted { object: parse(&w.bytes), gone: true }),
                    Err(WriteError::NotFound) => return Err(StatusError::not_found(info, name)),
                    Err(_) => continue,
                }
            }
            match self.commit(info, &ns, name, Expect::Rv(entry.rv), Op::Put(new)) {
                Ok(w) => return Ok(Deleted { object: parse(&w.bytes), gone: false }),
                Err(WriteError::NotFound) => return Err(StatusError::not_found(info, name)),
                Err(_) => continue,
            }
        }
    }

    /// Remove one finalizer from an object (used by the garbage collector and namespace
    /// finalization); deletes the object when it was the last one.
    pub fn remove_finalizer(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        finalizer: &str,
    ) -> Result<(), StatusError> {
        loop {
            let entry = self.get(info, ns, name)?;
            let old = parse(&entry.bytes());
            let mut fins = finalizers(&old);
            if !fins.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            fins.retain(|f| f != finalizer);
            let mut new = old.clone();
            set_finalizers(&mut new, &fins);
            match self.commit_update(info, ns, name, entry.rv, &old, new, false, false)? {
                Ok(_) => return Ok(()),
                Err(WriteError::NotFound) => return Ok(()),
                Err(_) => continue,
            }
        }
    }

    /// Rewrite an object with `f` (retrying on conflicts), bypassing admission: for the server's
    /// own controllers (garbage collector, namespace lifecycle).
    pub fn mutate(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        f: &dyn Fn(&mut Value) -> bool,
    ) -> Result<(), StatusError> {
        loop {
            let entry = self.get(info, ns, name)?;
            let old = parse(&entry.bytes());
            let mut new = old.clone();
            if !f(&mut new) {
                return Ok(());
            }
            match self.commit_update(info, ns, name, entry.rv, &old, new, false, false)? {
                Ok(_) | Err(WriteError::NotFound) => return Ok(()),
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    fn api() -> Api {
        Api::new(Arc::new(Store::new(StoreConfig::default())), Registry::builtin())
    }

    fn job(name: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}},
               "status": {"active": 3}})
    }

    #[test]
    fn create_sets_metadata_and_clears_status() {
        let api = api();
        let jobs = api.info("batch", "jobs");
        let o = api.create(&jobs, "default", job("a"), &WriteOptions::default()).unwrap().object;
        assert_eq!(o["metadata"]["generation"], 1);
        assert_eq!(o["status"], json!({}));
        assert!(o["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(o["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));
        let e = api.create(&jobs, "default", job("a"), &WriteOptions::default()).unwrap_err();
        assert_eq!(e.code, 409);
        let e = api.create(&jobs, "nope", job("b"), &WriteOptions::default()).unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");
    }

    #[test]
    fn uids_are_distinct_version_4_uuids() {
        let api = api();
        let cms = api.info("", "configmaps");
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let o =
                api.create(&cms, "default", json!({"metadata": {"name": format!("c{i}")}}), &WriteOptions::default());
            let uid = o.unwrap().object["metadata"]["uid"].as_str().unwrap().to_string();
            let parsed = uuid::Uuid::parse_str(&uid).unwrap();
            // Lowercase, hyphenated, version 4, RFC 4122 variant: what `Uuid::new_v4` gave.
            assert_eq!(parsed.hyphenated().to_string(), uid);
            assert_eq!(parsed.get_version_num(), 4, "{uid}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{uid}");
            assert!(seen.insert(uid));
        }
    }

    #[test]
    fn generate_name_appends_five_characters() {
        let api = api();
        let cms = api.info("", "configmaps");
        let body = json!({"metadata": {"generateName": "x-"}});
        let o = api.create(&cms, "default", body, &WriteOptions::default()).unwrap().object;
        let n = o["metadata"]["name"].as_str().unwrap();
        assert!(n.starts_with("x-") && n.len() == 7, "{n}");
    }

    #[test]
    fn a_taken_generated_name_is_generated_again_up_to_eight_times() {
        let api = api();
        let cms = api.info("", "configmaps");
        let opts = WriteOptions::default();
        api.create(&cms, "default", json!({"metadata": {"name": "x-bbbbb"}}), &opts).unwrap();
        let push = |s: &[&str]| TEST_SUFFIXES.with(|q| q.borrow_mut().extend(s.iter().map(|s| s.to_string())));
        push(&["bbbbb", "bbbbb", "ccccc"]);
        let body = json!({"metadata": {"generateName": "x-"}});
        let o = api.create(&cms, "default", body.clone(), &opts).unwrap().object;
        assert_eq!(o["metadata"]["name"], "x-ccccc");
        push(&["bbbbb"; 8]);
        push(&["ddddd"]);
        let e = api.create(&cms, "default", body, &opts).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "configmaps \"x-bbbbb\" already exists");
        TEST_SUFFIXES.with(|q| q.borrow_mut().clear());
    }

    #[test]
    fn status_and_spec_writes_are_split() {
        let api = api();
        let jobs = api.info("batch", "jobs");
        let o = api.create(&jobs, "default", job("a"), &WriteOptions::default()).unwrap().object;
        let mut s = o.clone();
        s["status"] = json!({"active": 1});
        s["spec"]["parallelism"] = json!(5);
        let o2 = api.update(&jobs, "default", "a", Some("status"), s, &WriteOptions::default()).unwrap().object;
        assert_eq!(o2["status"]["active"], 1);
        assert_eq!(o2["spec"]["parallelism"], o["spec"]["parallelism"], "a status write keeps the old spec");
        assert_eq!(o2["metadata"]["generation"], 1);
        let mut m = o2.clone();
        m["status"] = json!({});
        m["spec"]["parallelism"] = json!(2);
        let o3 = api.update(&jobs, "default", "a", None, m, &WriteOptions::default()).unwrap().object;
        assert_eq!(o3["status"]["active"], 1);
        assert_eq!(o3["metadata"]["generation"], 2);
        // stale
        let e = api.update(&jobs, "default", "a", None, o2, &WriteOptions::default()).unwrap_err();
        assert_eq!(e.code, 409);
    }

    #[test]
    fn finalizers_hold_deletion_and_refuse_new_ones() {
        let api = api();
        let cms = api.info("", "configmaps");
        let body = json!({"metadata": {"name": "c", "finalizers": ["a/b"]}});
        api.create(&cms, "default", body, &WriteOptions::default()).unwrap();
        let d = api.delete(&cms, "default", "c", &DeleteOptions::default()).unwrap();
        assert!(!d.gone);
        assert!(d.object["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(d.object["metadata"]["deletionGracePeriodSeconds"], 0);
        let mut o = d.object.clone();
        o["metadata"]["finalizers"] = json!(["a/b", "c/d"]);
        let e = api.update(&cms, "default", "c", None, o, &WriteOptions::default()).unwrap_err();
        assert_eq!(
            e.message,
            "ConfigMap \"c\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\"}"
        );
        let mut o = d.object.clone();
        o["metadata"]["finalizers"] = json!([]);
        api.update(&cms, "default", "c", None, o, &WriteOptions::default()).unwrap();
        assert_eq!(api.get(&cms, "default", "c").unwrap_err().code, 404);
    }

    #[test]
    fn mistyped_standard_fields_are_400_not_panics() {
        let api = api();
        let nss = api.info("", "namespaces");
        let cms = api.info("", "configmaps");
        for body in [
            json!({"metadata": {"name": "x", "labels": "oops"}}),
            json!({"metadata": {"name": "x", "labels": {"a": 1}}}),
            json!({"metadata": {"name": "x", "finalizers": "f"}}),
            json!({"metadata": "x"}),
            json!({"metadata": {"name": 5}}),
            json!({"metadata": {"name": "x"}, "status": "s"}),
            json!([1, 2]),
        ] {
            assert_eq!(api.create(&nss, "", body.clone(), &WriteOptions::default()).unwrap_err().code, 400, "{body}");
            assert_eq!(api.create(&cms, "default", body, &WriteOptions::default()).unwrap_err().code, 400);
        }
        api.create(&cms, "default", json!({"metadata": {"name": "ok"}}), &WriteOptions::default()).unwrap();
        let e = api
            .patch(
                &cms,
                "default",
                "ok",
                None,
                PatchType::Merge,
                br#"{"metadata":{"annotations":"x"}}"#,
                &WriteOptions::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn patches_of_an_object_known_to_decode_still_find_what_they_add() {
        let api = api();
        let jobs = api.info("batch", "jobs");
        api.create(&jobs, "default", job("a"), &WriteOptions::default()).unwrap();
        let known = |api: &Api| api.get(&jobs, "default", "a").unwrap().meta.known;
        assert!(known(&api), "a created Job is recorded as decoding without skipping");
        let strict = WriteOptions { field_validation: FieldValidation::Strict, ..WriteOptions::default() };
        let patch = |body: &[u8], sub: Option<&str>, opts: &WriteOptions| {
            api.patch(&jobs, "default", "a", sub, PatchType::Merge, body, opts)
        };
        // What a patch adds is decoded: an unknown field (refused, or dropped with a warning)
        // and a wrong type, with the answers a decode of the whole object gives.
        let e = patch(br#"{"status":{"active":1,"foo":2}}"#, Some("status"), &strict).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"status.foo\""
            )
        );
        let e = patch(br#"{"metadata":{"labels":{"a":1}}}"#, None, &WriteOptions::default()).unwrap_err();
        assert_eq!(e.code, 400, "{}", e.message);
        let out = patch(br#"{"status":{"active":1,"foo":2}}"#, Some("status"), &WriteOptions::default()).unwrap();
        assert_eq!(out.warnings, vec!["unknown field \"status.foo\"".to_string()]);
        assert_eq!(out.object["status"], json!({"active": 1}));
        // A field dropped: not shown to decode without skipping (the next write decodes whole).
        assert!(!known(&api));
        let out = patch(br#"{"metadata":{"finalizers":["x/y"]}}"#, None, &strict).unwrap();
        assert_eq!(out.object["metadata"]["finalizers"], json!(["x/y"]));
        assert!(known(&api), "known again once a write decoded without skipping");
        patch(br#"{"status":{"active":2}}"#, Some("status"), &strict).unwrap();
        assert!(known(&api), "still known after a patch that decoded without skipping");
    }

    #[test]
    fn immortal_namespaces_cannot_be_deleted() {
        let api = api();
        let nss = api.info("", "namespaces");
        let e = api.delete(&nss, "", "default", &DeleteOptions::default()).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (403, "namespaces \"default\" is forbidden: this namespace may not be deleted")
        );
        assert!(!api.delete(&nss, "", "kube-node-lease", &DeleteOptions::default()).unwrap().gone);
    }

    /// A PUT carrying a resourceVersion that loses the race to another write between its read
    /// and its commit is answered 409 Conflict (never retried with the same body, never a
    /// panic), and a PUT without one is retried and succeeds.
    #[test]
    fn a_put_losing_the_race_to_another_write_is_a_conflict() {
        let api = Arc::new(api());
        let cms = api.info("", "configmaps");
        let c = api.create(&cms, "default", json!({"metadata": {"name": "c"}}), &WriteOptions::default()).unwrap();
        let rv = c.object["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        // The admission hook runs between the read and the commit: it writes the object once.
        let raced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hook = {
            let (api, raced) = (Arc::downgrade(&api), raced.clone());
            AdmitHook(Arc::new(move |info: &ResourceInfo, _: Option<&str>, _: Option<&Value>, _: &Value| {
                if !raced.swap(true, std::sync::atomic::Ordering::SeqCst)
                    && let Some(api) = api.upgrade()
                {
                    let cur = api.get(info, "default", "c").unwrap();
                    api.store.write(info, "default", "c", Expect::Rv(cur.rv), Op::Put(parse(&cur.bytes()))).unwrap();
                }
                Ok(())
            }))
        };
        let opts = WriteOptions { admit: Some(hook), ..Default::default() };
        let body = json!({"metadata": {"name": "c", "resourceVersion": rv}, "data": {"k": "v"}});
        let e = api.update(&cms, "default", "c", None, body, &opts).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; please apply your changes to the latest version and try again"
        );
        raced.store(false, std::sync::atomic::Ordering::SeqCst);
        let body = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        let out = api.update(&cms, "default", "c", None, body, &opts).unwrap();
        assert_eq!(out.object["data"]["k"], "v");
    }

    #[test]
    fn preconditions_mismatch_is_a_conflict() {
        let api = api();
        let cms = api.info("", "configmaps");
        api.create(&cms, "default", json!({"metadata": {"name": "c"}}), &WriteOptions::default()).unwrap();
        let opts = DeleteOptions { uid: Some("x".into()), ..Default::default() };
        let e = api.delete(&cms, "default", "c", &opts).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message.contains("Precondition failed: UID in precondition: x, UID in object meta: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn scheduled_pods_are_deleted_gracefully() {
        let api = api();
        let pods = api.info("", "pods");
        let body =
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}});
        api.create(&pods, "default", body, &WriteOptions::default()).unwrap();
        let d = api.delete(&pods, "default", "p", &DeleteOptions::default()).unwrap();
        assert!(!d.gone);
        assert_eq!(d.object["metadata"]["deletionGracePeriodSeconds"], 30);
        let d = api
            .delete(&pods, "default", "p", &DeleteOptions { grace_period_seconds: Some(0), ..Default::default() })
            .unwrap();
        assert!(d.gone);
        let body = json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        api.create(&pods, "default", body, &WriteOptions::default()).unwrap();
        assert!(api.delete(&pods, "default", "q", &DeleteOptions::default()).unwrap().gone);
    }
}
