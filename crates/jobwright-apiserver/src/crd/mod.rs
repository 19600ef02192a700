//! CustomResourceDefinitions: storing one serves its resources, to kube-apiserver's rules.
//!
//! When a CRD is written, each served version becomes a [`ResourceInfo`] in the [`Registry`]
//! (plural, kind, scope, short names, categories, the `status`/`scale` subresources of that
//! version, its schema and a [`CrdVersion`]); a new CRD whose names are free is accepted at once
//! (`NamesAccepted` and `Established` conditions, as upstream's naming and establishing
//! controllers set them; a name another CRD of the group holds gives `NamesAccepted=False` and is
//! not served), and when it is deleted its resources stop being served and its objects are
//! removed.
//!
//! Submodules, one per step of upstream's custom resource handler:
//! - [`schema`]: a CRD's schemas must be structural (checked when the CRD is written);
//! - [`default`]: schema `default`s on every decode (create, update, read);
//! - [`validate`]: OpenAPI v3 validation with upstream's messages and field paths;
//! - [`cel`]: `x-kubernetes-validations` rules;
//! - [`scale`]: the `scale` subresource as `autoscaling/v1` `Scale`;
//! - [`finalizer`]: deleting a CRD (`Terminating`, its instances deleted first).
//!
//! Pruning of unknown fields is done with the built-in kinds' unknown-field handling
//! (`validate::strict`, from the schema). Versions use the `None` conversion: objects are stored
//! under the storage version's `apiVersion` and shown under the requested one.

pub mod cel;
pub mod cel_check;
pub mod default;
pub mod finalizer;
pub mod scale;
pub mod schema;
pub mod validate;

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use super::errors::FieldError;
use super::registry::{Registry, ResourceInfo};
use super::validate::{ErrorList, Operation};

/// What one served version of a CRD adds to its [`ResourceInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdVersion {
    /// The storage version's name.
    pub storage_version: String,
    /// Whether the CRD serves more than one version (objects need their `apiVersion` rewritten).
    pub multi_version: bool,
    /// Whether this version's schema has `default`s (reads need defaulting).
    pub defaults: bool,
    /// `subresources.scale` of this version, if any.
    pub scale: Option<Value>,
    /// The storage version's schema: objects are pruned by it when stored.
    pub storage_schema: Option<Arc<Value>>,
    /// How server-side apply merges this version's objects (list and map types of its schema).
    pub merge_shape: Option<Arc<crate::patch::schema::Shape>>,
}

/// Whether objects read through `view` differ from their stored bytes (another version, or
/// defaults to apply on read).
pub fn converts(view: &ResourceInfo) -> bool {
    view.crd.as_ref().is_some_and(|c| c.multi_version || c.defaults)
}

/// A stored custom resource as `view` shows it: its version's `apiVersion`, defaults applied.
pub fn to_view(view: &ResourceInfo, mut stored: Value) -> Value {
    let Some(c) = &view.crd else { return stored };
    if !stored.is_object() {
        return stored;
    }
    if c.multi_version {
        stored["apiVersion"] = json!(view.api_version());
    }
    if c.defaults
        && let Some(s) = &view.schema
    {
        // Bounded: an object whose defaults no longer fit is shown as far as they did.
        let _ = default::apply(s, &mut stored);
    }
    stored
}

/// A custom resource written through `view`, in its storage version.
pub fn to_storage(view: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(c) = &view.crd
        && c.multi_version
        && obj.is_object()
    {
        obj["apiVersion"] = json!(format!("{}/{}", view.group, c.storage_version));
    }
    obj
}

/// Defaulting, validation (ObjectMeta, the OpenAPI schema, list sets and maps, CEL rules) of a
/// custom resource write, in upstream's order; `old` on updates.
pub fn admit(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, ErrorList> {
    let Some(schema) = info.schema.clone() else {
        return super::validate::other::admit_generic(info, op, obj, old);
    };
    if let Err(path) = default::apply(&schema, obj) {
        return Err(vec![FieldError::forbidden(
            path,
            format!("defaulting would add more than {} bytes to the object", default::MAX_DEFAULTED_BYTES),
        )]);
    }
    let mut errs: ErrorList = match super::validate::other::admit_generic(info, op, obj, old) {
        Ok(_) => vec![],
        Err(e) => e,
    };
    // With a status subresource, a main-resource update keeps the stored status, and none when
    // none is stored (the generic rule would leave an empty one).
    if op == Operation::Update
        && info.has_subresource("status")
        && old.is_some_and(|o| o.get("status").is_none())
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    let mut schema_errs = vec![];
    validate::validate(&schema, obj, "", &mut schema_errs);
    // Ratcheting (CRDValidationRatcheting, GA in 1.33): on updates, an error on a value that did
    // not change is not reported.
    if let Some(old) = old {
        let mut old_errs = vec![];
        validate::validate(&schema, old, "", &mut old_errs);
        schema_errs.retain(|e| !old_errs.contains(e));
    }
    errs.extend(schema_errs);
    if errs.is_empty() {
        cel::validate(&schema, obj, old, &mut errs);
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    // Stored in the storage version (the `None` conversion): its apiVersion, and pruned by its
    // schema, as upstream converts and prunes before writing to etcd.
    if let Some(c) = info.crd.as_ref().filter(|c| c.multi_version) {
        obj["apiVersion"] = json!(format!("{}/{}", info.group, c.storage_version));
        if let Some(ss) = &c.storage_schema {
            default::prune(ss, obj);
        }
    }
    Ok(vec![])
}

/// The checks a CustomResourceDefinition write gets on top of the generic ones.
pub fn admit_crd(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, ErrorList> {
    let mut errs: ErrorList = match super::validate::other::admit_generic(info, op, obj, old) {
        Ok(_) => vec![],
        Err(e) => e,
    };
    if op == Operation::UpdateStatus {
        return if errs.is_empty() { Ok(vec![]) } else { Err(errs) };
    }
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid("metadata.name", json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    for (f, v) in [
        ("spec.group", group),
        ("spec.names.plural", plural),
        ("spec.names.kind", spec["names"]["kind"].as_str().unwrap_or_default()),
    ] {
        if v.is_empty() {
            errs.push(FieldError::required(f, ""));
        }
    }
    // Upstream's `ValidateCustomResourceDefinitionSpec`: a CRD's group is a domain, so it never
    // takes a built-in group's name (`""`, `batch`, `apps`...).
    if !group.is_empty() && !group.contains('.') {
        errs.push(FieldError::invalid("spec.group", json!(group), "should be a domain with at least one dot"));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None | Some("") => errs.push(FieldError::required("spec.scope", "")),
        Some(other) => errs.push(FieldError::not_supported("spec.scope", json!(other), &["Cluster", "Namespaced"])),
    }
    if let Some(old) = old
        && old["spec"]["scope"] != obj["spec"]["scope"]
    {
        errs.push(FieldError::invalid("spec.scope", obj["spec"]["scope"].clone(), "field is immutable"));
    }
    errs.extend(schema::validate_crd(obj));
    if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
}

/// Whether `info` is the CustomResourceDefinition resource.
pub fn is_crd(info: &ResourceInfo) -> bool {
    info.group == "apiextensions.k8s.io" && info.resource == "customresourcedefinitions"
}

/// Whether `info` is a custom resource (not one of the built-in groups).
pub fn is_custom(info: &ResourceInfo) -> bool {
    !(info.group.is_empty()
        || matches!(info.group.as_str(), "batch" | "apps" | "policy")
        || info.group.ends_with(".k8s.io"))
}

/// The resources a CRD serves, one per served version.
pub fn resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return vec![];
    }
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let all = spec["versions"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let storage_version = all
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let multi_version = all.len() > 1;
    spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"].as_bool().unwrap_or(true))
                .filter_map(|v| {
                    let version = v["name"].as_str()?;
                    let mut subs = Vec::new();
                    if v["subresources"]["status"].is_object() {
                        subs.push("status".to_string());
                    }
                    if v["subresources"]["scale"].is_object() {
                        subs.push("scale".to_string());
                    }
                    let mut info = ResourceInfo::new(group, version, plural, kind, namespaced, &[], &[], &[]);
                    info.short_names = strs(&names["shortNames"]);
                    info.categories = strs(&names["categories"]);
                    info.subresources = subs;
                    info.printer_columns = v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default();
                    info.schema = v.pointer("/schema/openAPIV3Schema").filter(|s| s.is_object()).cloned().map(Arc::new);
                    if let Some(s) = names["singular"].as_str() {
                        info.singular = s.to_string();
                    }
                    info.crd = Some(Arc::new(CrdVersion {
                        storage_version: storage_version.clone(),
                        multi_version,
                        defaults: info.schema.as_deref().is_some_and(default::has_defaults),
                        scale: v["subresources"]["scale"].as_object().map(|m| Value::Object(m.clone())),
                        storage_schema: all
                            .iter()
                            .find(|v| v["storage"].as_bool() == Some(true))
                            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
                            .filter(|s| s.is_object())
                            .cloned()
                            .map(Arc::new),
                        merge_shape: info.schema.as_deref().map(|s| Arc::new(crate::patch::schema::from_openapi(s))),
                    }));
                    Some(info)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first name of `crd` another served custom resource of its group already uses, as
/// upstream's naming controller checks them: `(reason, message)`.
pub fn name_conflict(reg: &Registry, crd: &Value) -> Option<(&'static str, String)> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let others: Vec<ResourceInfo> =
        reg.all().into_iter().filter(|r| r.group == group && r.resource != plural && r.crd.is_some()).collect();
    let taken =
        |n: &str| others.iter().any(|r| r.resource == n || r.singular == n || r.short_names.iter().any(|s| s == n));
    if let Some(s) = names["singular"].as_str().filter(|s| !s.is_empty() && taken(s)) {
        return Some(("SingularConflict", format!("{s:?} is already in use")));
    }
    for sn in names["shortNames"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if taken(sn) {
            return Some(("ShortNamesConflict", format!("{sn:?} is already in use")));
        }
    }
    let kind = names["kind"].as_str().unwrap_or_default();
    if others.iter().any(|r| r.kind == kind) {
        return Some(("KindConflict", format!("{kind:?} is already in use")));
    }
    let list_kind = names["listKind"].as_str().map(str::to_string).unwrap_or_else(|| format!("{kind}List"));
    if others.iter().any(|r| format!("{}List", r.kind) == list_kind) {
        return Some(("ListKindConflict", format!("{list_kind:?} is already in use")));
    }
    None
}

/// Set a new CRD's status as upstream's naming and establishing controllers do: names accepted
/// and established, or (a name taken by another CRD of the group) `NamesAccepted=False` and not
/// established, in which case it is not served.
pub fn accept(crd: &mut Value, reg: &Registry) {
    let now = super::rest::timestamp(Utc::now());
    let mut names = crd["spec"]["names"].clone();
    if names.is_object() && names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{}List", names["kind"].as_str().unwrap_or_default()));
    }
    if names.is_object() && names.get("singular").is_none() {
        names["singular"] = json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    let conditions = match name_conflict(reg, crd) {
        None => json!([
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
        ]),
        Some((reason, message)) => {
            names = json!({"plural": "", "kind": ""});
            json!([
                {"type": "NamesAccepted", "status": "False", "lastTransitionTime": now, "reason": reason, "message": message},
                {"type": "Established", "status": "False", "lastTransitionTime": now, "reason": "NotAccepted", "message": "not all names are accepted"},
            ])
        }
    };
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": crd["spec"]["versions"].as_array()
            .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
            .map(|v| vec![v["name"].clone()]).unwrap_or_default(),
        "conditions": conditions,
    });
}

/// Whether a stored CRD is established (served).
fn established(crd: &Value) -> bool {
    match crd.pointer("/status/conditions").and_then(Value::as_array) {
        Some(c) => c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"),
        None => true,
    }
}

/// Serve what `crd` defines now, replacing what an older version of it defined.
pub fn register(reg: &Registry, old: Option<&Value>, crd: &Value) {
    if let Some(old) = old {
        unregister(reg, old);
    }
    if !established(crd) {
        return;
    }
    for info in resources(crd) {
        reg.add(info);
    }
}

/// Stop serving what `crd` defines.
pub fn unregister(reg: &Registry, crd: &Value) {
    for info in resources(crd) {
        reg.remove(&info.group, &info.version, &info.resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_become_resources() {
        let crd = json!({"spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v0", "served": false, "storage": false}]}});
        let r = resources(&crd);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].api_version().as_str(), r[0].kind.as_str()), ("example.com/v1", "Widget"));
        assert!(r[0].has_subresource("status") && r[0].namespaced);
        assert_eq!(r[0].short_names, ["wd"]);
        let reg = Registry::builtin();
        register(&reg, None, &crd);
        assert!(reg.get("example.com", "v1", "widgets").is_some());
        unregister(&reg, &crd);
        assert!(reg.get("example.com", "v1", "widgets").is_none());
    }
}
