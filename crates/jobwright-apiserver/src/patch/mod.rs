//! Patches: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch and server-side
//! apply, plus `metadata.managedFields` bookkeeping for every write.
//!
//! Everything here is a pure function over `serde_json::Value`: the HTTP layer reads the object,
//! calls [`apply_patch`] (or, for creates and updates, [`record_write`]) and stores the result.
//!
//! - [`strategic`]: upstream's `strategicpatch` merge, driven by [`schema`], the table of merge
//!   keys and list types of the built-in kinds.
//! - [`fields`]: field sets, FieldsV1 and `managedFields` entries.
//! - [`apply`]: server-side apply (merge, conflicts, ownership, pruning) and the `Update`
//!   bookkeeping of other writes.
//!
//! Errors follow `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`: a body that is not
//! a patch is a 400; a JSON patch that does not apply (failed `test`, missing path, unknown op)
//! is the generic 422 `the server rejected our request due to an error in our request`, which
//! kube-runtime's finalizer helper relies on; strategic merge patch on a custom resource is a 415.
//!
//! JSON and merge patches follow `gopkg.in/evanphx/json-patch.v4` (the library kube-apiserver
//! uses) rather than the letter of the RFCs where they differ; those quirks and the strategic
//! merge results were checked against `kubectl patch --local`, which runs the same Go code.
//!
//! The HTTP layer is expected to: validate options with [`validate_patch_options`]; call
//! [`apply_patch`]; for every write but an apply, call [`record_write`] with the stored object
//! and the object about to be stored (after defaulting); for an apply that creates, fill in
//! name, namespace, uid and the other system fields itself.

pub mod apply;
pub mod fields;
pub mod schema;
pub mod strategic;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::errors::{FieldError, FieldErrorType, StatusError};
use super::registry::ResourceInfo;
use super::validate::limits;

/// The four patch flavours kube-apiserver accepts, by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type for a request `Content-Type` (parameters such as `charset` ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Who is writing and how.
#[derive(Debug, Clone, Default)]
pub struct WriteContext<'a> {
    /// `?fieldManager=`; for non-apply writes upstream falls back to the user agent's program name.
    pub field_manager: Option<&'a str>,
    /// The request's `User-Agent`, used to derive a manager name when none is given.
    pub user_agent: Option<&'a str>,
    /// `?force=true` on an apply patch.
    pub force: bool,
    /// `status` when writing the status subresource.
    pub subresource: Option<&'a str>,
}

/// Why a merge failed, classified the way upstream's handler maps errors to HTTP codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A malformed patch (400 BadRequest with this message).
    BadRequest(String),
    /// A patch that cannot be applied (the generic 422 Invalid).
    Unprocessable(String),
    /// Any other error: upstream returns it unwrapped, which the API server turns into a 500
    /// with an empty reason and this message.
    Other(String),
}

impl From<MergeError> for StatusError {
    fn from(e: MergeError) -> Self {
        match e {
            MergeError::BadRequest(m) => StatusError::bad_request(m),
            MergeError::Unprocessable(_) => unprocessable(),
            MergeError::Other(m) => StatusError::new(500, "", m),
        }
    }
}

/// Upstream `NewGenericServerResponse(422, ...)`: the server's own message is not kept.
fn unprocessable() -> StatusError {
    StatusError::new(422, "Invalid", "the server rejected our request due to an error in our request")
        .with_details(json!({}))
}

/// The generic 422 with the reason in a cause (upstream drops it: jobwright keeps it so the
/// client learns which limit it hit).
fn unprocessable_because(why: String) -> StatusError {
    StatusError::new(422, "Invalid", "the server rejected our request due to an error in our request")
        .with_details(json!({"causes": [{"message": why}]}))
}

/// Maximum operations in one JSON patch (upstream `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

/// Longest accepted `fieldManager` (upstream `FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

fn patch_options_invalid(errs: &[FieldError]) -> StatusError {
    let info = ResourceInfo::new("meta.k8s.io", "v1", "patchoptions", "PatchOptions", false, &[], &[], &[]);
    let mut e = StatusError::invalid(&info, "", errs);
    if let Some(d) = e.details.as_mut().and_then(Value::as_object_mut) {
        d.remove("name");
    }
    e
}

/// The 422 for an apply patch without `?fieldManager=`.
pub fn field_manager_required() -> StatusError {
    patch_options_invalid(&[FieldError::required("fieldManager", "is required for apply patch")])
}

/// Upstream `ValidatePatchOptions`: `force` only on apply, `fieldManager` required on apply, at
/// most 128 bytes and printable. `force_given` is whether the request carried `?force=` at all.
pub fn validate_patch_options(
    patch_type: PatchType,
    field_manager: Option<&str>,
    force_given: bool,
) -> Result<(), StatusError> {
    let mut errs = Vec::new();
    let fm = field_manager.unwrap_or_default();
    if patch_type != PatchType::Apply {
        if force_given {
            errs.push(FieldError::forbidden("force", "may not be specified for non-apply patch"));
        }
    } else if fm.is_empty() {
        errs.push(FieldError::required("fieldManager", "is required for apply patch"));
    }
    errs.extend(validate_field_manager(fm));
    if errs.is_empty() { Ok(()) } else { Err(patch_options_invalid(&errs)) }
}

/// Upstream `ValidateFieldManager` (also applies to create and update options).
pub fn validate_field_manager(fm: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if fm.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::new(
            FieldErrorType::TooLong,
            "fieldManager",
            Some(json!(fm)),
            format!("may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes"),
        ));
    }
    for (i, c) in fm.char_indices() {
        if c.is_control() {
            errs.push(FieldError::invalid(
                "fieldManager",
                json!(fm),
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// Apply a patch to `current` (None when an apply patch creates the object).
///
/// Errors are 4xx `StatusError`s: a malformed patch is 400, a failed JSON-patch `test` 422, an
/// apply conflict 409 naming the conflicting fields and managers. Apply patches also update
/// `metadata.managedFields`; for the other types call [`record_write`] on the result.
pub fn apply_patch(
    info: &ResourceInfo,
    current: Option<&Value>,
    patch_type: PatchType,
    body: &[u8],
    ctx: &WriteContext<'_>,
) -> Result<Value, StatusError> {
    apply_patch_at(info, current, patch_type, body, ctx, Utc::now())
}

/// [`apply_patch`] with the clock given (managedFields timestamps).
pub fn apply_patch_at(
    info: &ResourceInfo,
    current: Option<&Value>,
    patch_type: PatchType,
    body: &[u8],
    ctx: &WriteContext<'_>,
    now: DateTime<Utc>,
) -> Result<Value, StatusError> {
    if patch_type == PatchType::Apply {
        return apply::server_side_apply(info, current, body, ctx, now);
    }
    let Some(current) = current else {
        // Only apply creates: the other patch types answer NotFound (upstream `createNewObject`).
        return Err(StatusError::new(404, "NotFound", format!("{} not found", info.group_resource())));
    };
    match patch_type {
        PatchType::Json => json_patch(current, body),
        PatchType::Merge => merge_patch(current, body),
        PatchType::StrategicMerge => {
            if !schema::is_builtin(info) {
                return Err(StatusError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            let patch: Value = serde_json::from_slice(body).map_err(|e| body_error(&e, body))?;
            Ok(strategic::strategic_merge(current, patch, schema::root_for(info))?)
        }
        PatchType::Apply => unreachable!("handled above"),
    }
}

/// Record a non-apply write (create, update, patch other than apply) in `new.metadata.managedFields`,
/// as upstream's field manager does for `operation: Update`.
pub fn record_write(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, ctx: &WriteContext<'_>) {
    record_write_at(info, old, new, ctx, Utc::now());
}

/// [`record_write`] with the clock given.
pub fn record_write_at(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    ctx: &WriteContext<'_>,
    now: DateTime<Utc>,
) {
    apply::record_update(info, old, new, ctx, now);
}

/// The 422 upstream answers when a patch produced something that is not an object.
fn not_an_object(result: &Value) -> StatusError {
    let err = FieldError::invalid(
        "patch",
        json!(result.to_string()),
        format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            strategic::json_kind(result)
        ),
    );
    let message = format!(" \"\" is invalid: {err}");
    StatusError::new(422, "Invalid", message).with_details(json!({
        "causes": [{"reason": err.kind.cause_type(), "message": err.body(), "field": "patch"}]
    }))
}

fn json_patch(current: &Value, body: &[u8]) -> Result<Value, StatusError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| body_error(&e, body))?;
    let ops = match &v {
        Value::Array(ops) => ops,
        Value::Null => return Ok(current.clone()),
        other => {
            return Err(StatusError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                strategic::json_kind(other)
            )));
        }
    };
    if let Some(bad) = ops.iter().find(|op| !op.is_object() && !op.is_null()) {
        return Err(StatusError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            strategic::json_kind(bad)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(StatusError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.len()
            ),
        ));
    }
    // Upstream decodes leniently and fails when applying: an unknown op, a missing path or value
    // all end as the generic 422, like a failed `test`. `copy` is bounded as upstream bounds it
    // (the bytes all copies add, `JSONPatchMaxCopyBytes`), and the document's nesting after
    // every operation (a copy into its own subtree doubles it): either failure is that same 422,
    // with a cause naming the limit.
    let mut doc = current.clone();
    let mut copied = 0usize;
    for raw in ops {
        let Some(op) = v4_semantics(&doc, raw) else { continue };
        let op: json_patch::PatchOperation = serde_json::from_value(op).map_err(|_| unprocessable())?;
        if let json_patch::PatchOperation::Copy(c) = &op
            && let Some(v) = doc.pointer(c.from.as_str())
        {
            copied = copied.saturating_add(limits::json_size(v));
            if copied > limits::MAX_JSON_PATCH_COPY_BYTES {
                return Err(unprocessable_because(format!(
                    "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {}",
                    limits::MAX_JSON_PATCH_COPY_BYTES
                )));
            }
        }
        // The document was within the bound before this operation, so only what it places can
        // cross it: its value's depth below the target path (a cost bounded by the body and the
        // copy limit, not by the document times the operations).
        let placed = match &op {
            json_patch::PatchOperation::Add(o) => Some((o.path.to_string(), limits::depth(&o.value))),
            json_patch::PatchOperation::Replace(o) => Some((o.path.to_string(), limits::depth(&o.value))),
            json_patch::PatchOperation::Copy(o) => {
                Some((o.path.to_string(), doc.pointer(o.from.as_str()).map_or(0, limits::depth)))
            }
            json_patch::PatchOperation::Move(o) => {
                Some((o.path.to_string(), doc.pointer(o.from.as_str()).map_or(0, limits::depth)))
            }
            _ => None,
        };
        if let Some((path, d)) = placed {
            let steps = path.split('/').count().saturating_sub(1);
            if steps + d > limits::MAX_OBJECT_DEPTH {
                let field = path.trim_start_matches('/').replace('/', ".");
                return Err(unprocessable_because(limits::too_deep(field, limits::MAX_OBJECT_DEPTH).to_string()));
            }
        }
        // One operation at a time, so no undo log is needed: a failure discards `doc`.
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(&op)).map_err(|_| unprocessable())?;
    }
    if !doc.is_object() {
        return Err(not_an_object(&doc));
    }
    Ok(doc)
}

/// Rewrite one operation so that RFC 6902 as the `json-patch` crate implements it behaves like
/// `gopkg.in/evanphx/json-patch.v4`, which kube-apiserver uses (checked against
/// `kubectl patch --local --type json`): a missing `value` is `null`; `test` against `null` of a
/// key an existing object lacks passes (kube-runtime's finalizer helper relies on it);
/// `replace` of such a key adds it; `copy` from such a key copies `null`. `None`: nothing to do.
fn v4_semantics(doc: &Value, raw: &Value) -> Option<Value> {
    let mut op = raw.clone();
    let Some(m) = op.as_object_mut() else { return Some(op) };
    let kind = m.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
    let path = m.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
    if matches!(kind.as_str(), "add" | "replace" | "test") && !m.contains_key("value") {
        m.insert("value".into(), Value::Null);
    }
    match kind.as_str() {
        "test" if m["value"].is_null() && missing_key_of_object(doc, &path) => return None,
        "replace" if missing_key_of_object(doc, &path) => {
            m.insert("op".into(), json!("add"));
        }
        "copy" => {
            let from = m.get("from").and_then(Value::as_str).unwrap_or_default().to_string();
            if missing_key_of_object(doc, &from) {
                m.insert("op".into(), json!("add"));
                m.insert("value".into(), Value::Null);
            }
        }
        _ => {}
    }
    Some(op)
}

/// Whether `pointer` names a key that an existing object lacks.
fn missing_key_of_object(doc: &Value, pointer: &str) -> bool {
    let Some((parent, _)) = pointer.rsplit_once('/') else { return false };
    doc.pointer(pointer).is_none() && doc.pointer(parent).is_some_and(Value::is_object)
}

fn merge_patch(current: &Value, body: &[u8]) -> Result<Value, StatusError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| {
        if limits::is_recursion_limit(&e) {
            limits::body_too_deep()
        } else {
            StatusError::bad_request("Invalid JSON Patch")
        }
    })?;
    match &patch {
        Value::Object(p) => {
            let mut doc = current.clone();
            match doc.as_object_mut() {
                Some(d) => merge_docs(d, p),
                None => doc = prune_nulls(patch.clone()),
            }
            Ok(doc)
        }
        Value::Array(_) => Err(not_an_object(&patch)),
        _ => Err(StatusError::bad_request("Invalid JSON Patch")),
    }
}

/// RFC 7386 as `evanphx/json-patch` v4 `MergePatch` implements it: `null` deletes, objects merge,
/// anything else replaces with `null`s pruned from nested objects (also inside arrays), except
/// that a non-object replacing an object keeps its `null`s.
fn merge_docs(doc: &mut serde_json::Map<String, Value>, patch: &serde_json::Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            doc.remove(k);
            continue;
        }
        match doc.get_mut(k) {
            Some(Value::Object(cur)) => match v {
                Value::Object(p) => merge_docs(cur, p),
                other => {
                    doc.insert(k.clone(), other.clone());
                }
            },
            _ => {
                doc.insert(k.clone(), prune_nulls(v.clone()));
            }
        }
    }
}

fn prune_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, prune_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(prune_nulls).collect()),
        other => other,
    }
}

/// The 400 for a patch body that does not parse: too deep, or Go's wording of the syntax error.
fn body_error(e: &serde_json::Error, body: &[u8]) -> StatusError {
    if limits::is_recursion_limit(e) {
        limits::body_too_deep()
    } else {
        StatusError::bad_request(go_json_error(e, body))
    }
}

/// Go's `encoding/json` wording for a body that does not parse, as upstream echoes it.
pub fn go_json_error(e: &serde_json::Error, body: &[u8]) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of JSON input".into(),
        Category::Syntax => {
            let offending = body
                .split(|b| *b == b'\n')
                .nth(e.line().saturating_sub(1))
                .and_then(|line| line.get(e.column().saturating_sub(1)..))
                .and_then(|rest| String::from_utf8_lossy(rest).chars().next());
            let Some(c) = offending else { return e.to_string() };
            let quoted = match c {
                '\'' => "'\\''".to_string(),
                '"' => "'\"'".to_string(),
                c if c.is_control() => format!("{:?}", c),
                c => format!("'{c}'"),
            };
            if e.to_string().starts_with("trailing characters") {
                format!("invalid character {quoted} after top-level value")
            } else {
                format!("invalid character {quoted} looking for beginning of value")
            }
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// Property-test objects for the patch machinery: small JSON trees of few leaf values, whose
/// object keys are `keys` (names that mean something to the schema) or short nonsense names.
#[cfg(test)]
pub(crate) fn any_json_with_keys(keys: &'static [&'static str]) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..3).prop_map(Value::from),
        "[ab]{0,2}".prop_map(Value::from)
    ];
    leaf.prop_recursive(4, 40, 4, move |inner| {
        let key = prop_oneof![
            keys.len() as u32 => proptest::sample::select(keys).prop_map(str::to_string),
            1 => "[a-c]{1,2}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
