//! Fuzz a CRD schema and an object through the custom resource pipeline: the CRD-time checks
//! (structural schema, patterns, CEL rules), then defaulting, pruning, OpenAPI validation and
//! CEL rules on the object (and an old object, for transition rules and ratcheting). Never a
//! panic or a hang; a defaulted object stays readable.
//!
//! Input: JSON `[schema, object, old]` (`old` optional); a schema the CRD checks refuse still
//! goes through validation (a CRD stored before a rule existed).
#![no_main]

#[path = "common.rs"]
mod common;

use jobwright::apiserver::crd::{cel, default, schema, validate};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else { return };
    let mut parts = parts.into_iter();
    let (Some(s), Some(mut obj)) = (parts.next(), parts.next()) else { return };
    let old = parts.next();
    let crd = json!({"spec": {"versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": s}}]}});
    for e in schema::validate_crd(&crd) {
        assert!(!e.to_string().is_empty());
    }
    if default::apply(&s, &mut obj).is_err() {
        return;
    }
    default::prune(&s, &mut obj);
    common::readable(&obj);
    let mut errs = vec![];
    validate::validate(&s, &obj, "", &mut errs);
    assert!(errs.len() <= validate::MAX_ERRORS + 64, "{} errors", errs.len());
    cel::validate(&s, &obj, old.as_ref(), &mut errs);
    for e in &errs {
        assert!(!e.field.is_empty() || !e.detail.is_empty(), "an error naming nothing: {e:?}");
    }
});
