//! Defaulting and validation per kind, as upstream's registry strategies
//! (`PrepareForCreate`/`PrepareForUpdate`, defaulters, `Validate*`).
//!
//! STUB: owned by the validation work item; the signatures are the contract with `http.rs`.

use serde_json::Value;

use super::errors::StatusError;
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
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Default, prepare and validate `obj` for `op`. `old` is the stored object on updates.
///
/// The generic parts (uid, resourceVersion, creationTimestamp, status reset on create, old status
/// kept on main-resource writes, generation) are done by the store before this is called; this does
/// what is particular to a kind. Returns the warnings to send in `Warning` headers, or a 422.
pub fn admit(
    _info: &ResourceInfo,
    _op: Operation,
    _obj: &mut Value,
    _old: Option<&Value>,
    _fv: FieldValidation,
) -> Result<Vec<String>, StatusError> {
    Ok(vec![])
}
