//! Defaulting and validation per kind, as upstream's registry strategies
//! (`PrepareForCreate`/`PrepareForUpdate`, defaulters, `Validate*`).
//!
//! # Design
//!
//! Objects stay `serde_json::Value` all the way through (the contract with `http.rs` and the store):
//! every rule reads the JSON with small total accessors ([`json`]) so that no input, however wrong,
//! can panic. Before any rule runs, [`strict`] round-trips the object through its k8s-openapi type:
//! that both rejects wrong types (a 400, as kube-apiserver's decoder does) and finds unknown fields
//! for `?fieldValidation=`.
//!
//! The pipeline for one write mirrors kube-apiserver's:
//!
//! 1. decode: type check + unknown fields ([`strict`]);
//! 2. defaulting (`SetDefaults_*`, run on every decode, so on updates too);
//! 3. `PrepareForCreate` / `PrepareForUpdate` (status reset, generated Job selector, pod status);
//! 4. validation (`Validate`/`ValidateUpdate` of the strategy), a 422 listing every [`FieldError`];
//! 5. defaulting again: kube-apiserver answers with the object as decoded back from storage, and
//!    that decode defaults again (this is how a Job gets its `metadata.labels` from the generated
//!    template labels).
//!
//! Submodules by kind: [`meta`] (ObjectMeta, names, labels, selectors), [`pod`] (Pod and pod
//! template defaults and validation), [`job`], [`cronjob`], [`other`] (Namespace, Node, Lease, Event).
//!
//! # Fidelity
//!
//! Messages, field paths and rule order follow Kubernetes 1.33 (`pkg/apis/batch/validation`,
//! `pkg/registry/batch/job/strategy.go` with `JobManagedBy` on, `pkg/apis/core/validation`).
//! Known differences:
//! - compound bad values print as JSON (or `map[string]string{..}` / `[]string{..}`), where
//!   upstream prints Go structs with `%#v`;
//! - type errors name the JSON path and serde's wording, not `json: cannot unmarshal ...`;
//! - duplicate JSON keys are not reported (the body is already a map when it gets here);
//! - the ServiceAccount admission plugin's token volume is not added to Pods;
//! - only the pod-spec rules workloads need are checked (no probes, security contexts,
//!   affinity or topology spread validation).

pub mod cronjob;
pub mod job;
pub mod json;
pub mod known;
pub mod limits;
pub mod meta;
pub mod other;
pub mod pod;
pub mod required;
pub mod service;
pub mod strict;
pub mod workloads;

use serde_json::Value;

use super::errors::{FieldError, StatusError};
use super::registry::ResourceInfo;

/// Which write is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// POST (or an apply patch that creates).
    Create,
    /// PUT or PATCH of the main resource.
    Update,
    /// PUT or PATCH of the `status` subresource.
    UpdateStatus,
}

/// `?fieldValidation=`: what to do with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields and warn about each (`Warning: unknown field "spec.foo"`).
    #[default]
    Warn,
    /// Reject the request with a 400 naming every unknown field.
    Strict,
}

impl FieldValidation {
    /// Parse the `?fieldValidation=` value as kube-apiserver does: `Ignore`, `Warn`, `Strict`, or
    /// empty for the default `Warn`. Anything else is the 422 upstream's options validation
    /// answers, on the options kind of the verb (`CreateOptions`, `UpdateOptions`,
    /// `PatchOptions`): `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported
    /// value: "Foo": supported values: "", "Ignore", "Strict", "Warn"`.
    pub fn parse(value: &str, options_kind: &str) -> Result<Self, StatusError> {
        match value {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => {
                let e =
                    FieldError::not_supported("fieldValidation", Value::from(other), &["", "Ignore", "Strict", "Warn"]);
                Err(StatusError::new(422, "Invalid", format!("{options_kind}.meta.k8s.io \"\" is invalid: {e}"))
                    .with_details(serde_json::json!({"group": "meta.k8s.io", "kind": options_kind,
                        "causes": [{"reason": e.kind.cause_type(), "message": e.body(), "field": e.field}]})))
            }
        }
    }
}

/// A list of field errors, as upstream's `field.ErrorList`.
pub type ErrorList = Vec<FieldError>;

/// Default, prepare and validate `obj` for `op`. `old` is the stored object on updates.
///
/// The generic parts (uid, resourceVersion, creationTimestamp, status reset on create, old status
/// kept on main-resource writes, generation) are done by the store before this is called; this does
/// what is particular to a kind. Returns the warnings to send in `Warning` headers, or a 422.
///
/// Kinds this module does not know pass through with only the unknown-field check skipped and
/// generic metadata validation applied.
pub fn admit(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
    fv: FieldValidation,
) -> Result<Vec<String>, StatusError> {
    let mut warnings = decode(info, obj, fv)?;
    warnings.extend(admit_decoded(info, op, obj, old)?);
    Ok(warnings)
}

/// Step 1 of [`admit`] alone: refuse wrong types (400) and drop unknown fields (a 400 under
/// `Strict`, warnings under `Warn`). The store runs it before `metadata.managedFields` are
/// computed, as upstream's decoder runs before its field manager, so a dropped field is never
/// recorded as owned.
pub fn decode(info: &ResourceInfo, obj: &mut Value, fv: FieldValidation) -> Result<Vec<String>, StatusError> {
    decode_known(info, obj, fv, None).map(|(warnings, _)| warnings)
}

/// [`decode`], also saying whether `obj` was shown to decode without skipping
/// ([`strict::check_known`]). `old`: the stored object `obj` replaces, when that is known to
/// decode without skipping (then only what `obj` changed is decoded, where that shows it).
pub fn decode_known(
    info: &ResourceInfo,
    obj: &mut Value,
    fv: FieldValidation,
    old: Option<&Value>,
) -> Result<(Vec<String>, bool), StatusError> {
    if !obj.is_object() {
        let why = format!("json: cannot unmarshal {} into Go value of type struct", json_type(obj));
        return Err(strict::decode_error(info, obj, &why));
    }
    let (warnings, known) = strict::check_known(info, obj, fv, old)?;
    // A custom resource's schema defaults are applied as it is decoded, as upstream's codec
    // does, so the managedFields of the write own them. Past the defaulting limit this stops
    // early; `crd::admit` defaults again and refuses the object with the path.
    if let (Some(_), Some(schema)) = (&info.crd, &info.schema) {
        let _ = crate::crd::default::apply(schema, obj);
    }
    Ok((warnings, known))
}

/// Steps 2-5 of [`admit`], for an object [`decode`] has already been run on. Also refuses an
/// object nested deeper than [`limits::MAX_OBJECT_DEPTH`] (its managedFields included).
pub fn admit_decoded(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, StatusError> {
    if !obj.is_object() {
        let why = format!("json: cannot unmarshal {} into Go value of type struct", json_type(obj));
        return Err(strict::decode_error(info, obj, &why));
    }
    limits::check_object_depth(info, obj)?;
    let old = old.filter(|o| o.is_object());
    // An update without a stored object cannot be validated against it: treat it as a create.
    let op = if old.is_none() { Operation::Create } else { op };
    let mut warnings = Vec::new();
    match old {
        None => generate_name(obj),
        Some(old) => before_update(obj, old),
    }
    let name = json::str_at(obj, &["metadata", "name"]).unwrap_or_default().to_string();
    let kind = (info.group.as_str(), info.kind.as_str());
    // 2-4. defaults, prepare, validate
    let result: Result<Vec<String>, ErrorList> = match kind {
        ("batch", "Job") => job::admit(op, obj, old),
        ("batch", "CronJob") => cronjob::admit(op, obj, old),
        ("", "Pod") => pod::admit(op, obj, old),
        ("", "Namespace") => other::admit_namespace(op, obj, old),
        ("", "Node") => other::admit_node(op, obj, old),
        ("coordination.k8s.io", "Lease") => other::admit_lease(op, obj, old),
        ("", "Event") | ("events.k8s.io", "Event") => other::admit_event(info, op, obj, old),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crate::crd::admit_crd(info, op, obj, old),
        _ if info.crd.is_some() => crate::crd::admit(info, op, obj, old),
        _ => other::admit_generic(info, op, obj, old),
    };
    match result {
        Ok(w) => {
            warnings.extend(w);
            Ok(warnings)
        }
        Err(errs) => Err(StatusError::invalid(info, &name, &errs)),
    }
}

/// The conversions upstream's decoder makes before anything else sees a write (managedFields
/// included): a Secret's `stringData` is merged into `data`. [`admit`] makes them too.
pub fn convert(info: &ResourceInfo, obj: &mut Value) {
    if info.group.is_empty() && info.kind == "Secret" {
        other::default_secret(obj);
    }
}

/// The parts of upstream's `rest.BeforeUpdate` that run before the strategy: a missing uid comes
/// from the stored object; creationTimestamp and an existing deletionTimestamp /
/// deletionGracePeriodSeconds cannot be changed by a write, so they are copied from it. (The store
/// may already have done this; doing it again is a no-op.) `generation` is left alone: the store
/// has already bumped it for a spec change, and the Job/CronJob strategies recompute it.
pub fn before_update(obj: &mut Value, old: &Value) {
    let Some(old_md) = old.get("metadata").and_then(Value::as_object) else { return };
    let Some(m) = obj.as_object_mut() else { return };
    let md = m.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    if md.is_null() {
        *md = Value::Object(Default::default());
    }
    let Some(md) = md.as_object_mut() else { return };
    if md.get("uid").and_then(Value::as_str).is_none_or(str::is_empty)
        && let Some(uid) = old_md.get("uid")
    {
        md.insert("uid".into(), uid.clone());
    }
    for k in ["creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        if let Some(v) = old_md.get(k).filter(|v| !v.is_null()) {
            md.insert(k.into(), v.clone());
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `names.SimpleNameGenerator`: when `metadata.name` is empty and `metadata.generateName` is set,
/// the name is the prefix (cut to 58 bytes) plus five random characters from upstream's alphabet.
/// kube-apiserver does this before admission; doing it here too is a no-op when the store already
/// did.
pub fn generate_name(obj: &mut Value) {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let name_empty = md.get("name").and_then(Value::as_str).is_none_or(str::is_empty);
    let Some(prefix) = md.get("generateName").and_then(Value::as_str).filter(|p| !p.is_empty()) else { return };
    if !name_empty {
        return;
    }
    let mut base: String = prefix.to_string();
    if base.len() > 58 {
        let mut cut = 58;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let mut rng = rand::rng();
    for _ in 0..5 {
        base.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    md.insert("name".into(), Value::String(base));
}

#[cfg(test)]
mod tests;
