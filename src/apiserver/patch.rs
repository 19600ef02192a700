//! Patches: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch and server-side
//! apply, plus `metadata.managedFields` bookkeeping for every write.
//!
//! STUB: owned by the patch work item; the signatures are the contract with `http.rs`.

use serde_json::Value;

use super::errors::StatusError;
use super::registry::ResourceInfo;

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

/// Apply a patch to `current` (None when an apply patch creates the object).
///
/// Errors are 4xx `StatusError`s: a malformed patch is 400, a failed JSON-patch `test` 422, an
/// apply conflict 409 naming the conflicting fields and managers.
pub fn apply_patch(
    _info: &ResourceInfo,
    current: Option<&Value>,
    patch_type: PatchType,
    body: &[u8],
    _ctx: &WriteContext<'_>,
) -> Result<Value, StatusError> {
    let patch: Value = serde_json::from_slice(body).map_err(|e| StatusError::bad_request(e.to_string()))?;
    let mut doc = current.cloned().unwrap_or(Value::Object(Default::default()));
    match patch_type {
        PatchType::Merge | PatchType::StrategicMerge | PatchType::Apply => json_patch::merge(&mut doc, &patch),
        PatchType::Json => {
            let p: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| StatusError::bad_request(e.to_string()))?;
            json_patch::patch(&mut doc, &p).map_err(|e| StatusError::new(422, "Invalid", e.to_string()))?;
        }
    }
    Ok(doc)
}

/// Record a non-apply write (create, update, patch other than apply) in `new.metadata.managedFields`,
/// as upstream's field manager does for `operation: Update`.
pub fn record_write(_info: &ResourceInfo, _old: Option<&Value>, _new: &mut Value, _ctx: &WriteContext<'_>) {}
