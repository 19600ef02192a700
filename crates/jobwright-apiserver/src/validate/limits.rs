//! Bounds on what a write may store: nesting depth and the size of what a JSON patch copies.
//!
//! kube-apiserver decodes JSON with Go's `encoding/json` scanner, which refuses nesting deeper
//! than 10,000 levels (`invalid character '{' exceeded max depth`). jobwright cannot go that far:
//! `serde_json` (here, and in every kube-rs client) stops at 127 levels, and an object is read
//! back embedded one to three levels deeper (a list's `items`, a watch event's `object`, a
//! table row's `object`). So a request body deeper than 127 levels is refused while it is
//! parsed, and an object to be stored (its `metadata.managedFields` included) deeper than
//! [`MAX_OBJECT_DEPTH`] is refused with a 422 naming the field where the limit is crossed:
//! nothing is acknowledged that the server (after a restart) or a client cannot read back.
//!
//! Every function here is iterative: a value of any depth is measured without recursion.

use serde_json::Value;

use crate::errors::{FieldError, FieldErrorType, StatusError};
use crate::registry::ResourceInfo;

/// Deepest nesting (objects and arrays, the object itself counting as 1) of a stored object.
/// Leaves room for the three levels a table row adds under `serde_json`'s 127.
pub const MAX_OBJECT_DEPTH: usize = 120;

/// Deepest nesting `serde_json` parses (its recursion limit is 128: 127 levels succeed).
pub const MAX_BODY_DEPTH: usize = 127;

/// Upstream `JSONPatchMaxCopyBytes`: how many bytes the `copy` operations of one JSON patch may
/// add in total (`gopkg.in/evanphx/json-patch.v4` `AccumulatedCopySizeLimit`).
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The nesting depth of `v`: 0 for a scalar, 1 for `{}` or `[]`, one more per level below.
pub fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    max
}

/// The upstream-style path (`spec.a.b[3].c`) of the first container nested deeper than `limit`,
/// or `None` when `v` is within it. The root is `<root>` when it alone is too deep (limit 0).
pub fn too_deep_at(v: &Value, limit: usize) -> Option<String> {
    // Every write passes: the depth alone first, paths only for an object too deep.
    if depth(v) <= limit {
        return None;
    }
    // Depth-first, pre-order: `path` holds the segments of the node being visited.
    let mut path: Vec<String> = Vec::new();
    let mut stack: Vec<(&Value, usize, Option<String>)> = vec![(v, 0, None)];
    while let Some((v, d, seg)) = stack.pop() {
        path.truncate(d.saturating_sub(1));
        if let Some(s) = seg {
            path.push(s);
        }
        let kids: Vec<(&Value, String)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (c, format!(".{k}"))).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, c)| (c, format!("[{i}]"))).collect(),
            _ => continue,
        };
        if d + 1 > limit {
            let p: String = path.concat();
            return Some(if p.is_empty() { "<root>".into() } else { p.trim_start_matches('.').to_string() });
        }
        stack.extend(kids.into_iter().rev().map(|(c, s)| (c, d + 1, Some(s))));
    }
    None
}

/// How much deeper `metadata.managedFields` nests than the fields it records (FieldsV1 of a
/// top-level field sits under `metadata`, the list, the entry and `fieldsV1`).
pub const MANAGED_FIELDS_OVERHEAD: usize = 4;

/// The 422 for an object too deep to store, or `Ok`. The object's own fields may nest
/// [`MAX_OBJECT_DEPTH`] - [`MANAGED_FIELDS_OVERHEAD`] levels (the error names the first field
/// past that), so that with its managedFields it stays within [`MAX_OBJECT_DEPTH`]; the whole
/// is checked too.
pub fn check_object_depth(info: &ResourceInfo, obj: &mut Value) -> Result<(), StatusError> {
    // Every write passes: one walk of the whole when it is within the tighter limit, which then
    // bounds its own fields too.
    if depth(obj) <= MAX_OBJECT_DEPTH - MANAGED_FIELDS_OVERHEAD {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let managed = obj.get_mut("metadata").and_then(Value::as_object_mut).and_then(|m| m.remove("managedFields"));
    let own = too_deep_at(obj, MAX_OBJECT_DEPTH - MANAGED_FIELDS_OVERHEAD);
    if let Some(mf) = managed
        && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.insert("managedFields".into(), mf);
    }
    let at = own
        .map(|f| (f, MAX_OBJECT_DEPTH - MANAGED_FIELDS_OVERHEAD))
        .or_else(|| too_deep_at(obj, MAX_OBJECT_DEPTH).map(|f| (f, MAX_OBJECT_DEPTH)));
    match at {
        None => Ok(()),
        Some((field, limit)) => Err(StatusError::invalid(info, &name, &[too_deep(field, limit)])),
    }
}

/// The field error naming where a value crosses a nesting `limit`.
pub fn too_deep(field: String, limit: usize) -> FieldError {
    FieldError::new(
        FieldErrorType::Forbidden,
        field,
        None,
        format!(
            "nested too deeply: at most {limit} levels of nesting are stored ({MAX_OBJECT_DEPTH} with metadata.managedFields; JSON decoders such as serde_json stop at 128)"
        ),
    )
}

/// Whether a `serde_json` error is its recursion limit.
pub fn is_recursion_limit(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// The 400 for a request body nested deeper than `serde_json` parses, worded as Go's scanner
/// words its own (much deeper) limit.
pub fn body_too_deep() -> StatusError {
    StatusError::bad_request(format!(
        "the request body is nested too deeply: exceeded max depth (a request body may have at most {MAX_BODY_DEPTH} levels of nesting)"
    ))
}

/// How many bytes `v` serializes to, without building the string.
pub fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(depth(&nested(1000)), 1000);
    }

    #[test]
    fn too_deep_names_the_path_where_the_limit_is_crossed() {
        let v = json!({"spec": {"x": [{"y": {"z": 1}}]}, "kind": "K"});
        assert_eq!(too_deep_at(&v, 5), None);
        assert_eq!(too_deep_at(&v, 4).as_deref(), Some("spec.x[0].y"));
        assert_eq!(too_deep_at(&v, 2).as_deref(), Some("spec.x"));
        assert_eq!(too_deep_at(&v, 0).as_deref(), Some("<root>"));
        assert!(too_deep_at(&nested(1000), MAX_OBJECT_DEPTH).is_some());
    }

    /// The depth pre-check answers as the path walk: an object exactly at a limit passes, one
    /// level more (even an empty container) is named.
    #[test]
    fn too_deep_at_is_exact_at_the_limit() {
        for levels in 0..12 {
            for limit in 0..12 {
                let v = nested(levels);
                assert_eq!(too_deep_at(&v, limit).is_some(), levels > limit, "levels {levels} limit {limit}");
                let mut e = json!({});
                for _ in 0..levels {
                    e = json!({"x": [e]});
                }
                assert_eq!(too_deep_at(&e, limit).is_some(), 2 * levels + 1 > limit, "empty at {levels}, {limit}");
            }
        }
    }

    #[test]
    fn serde_json_reads_exactly_max_body_depth() {
        let ok = "[".repeat(MAX_BODY_DEPTH) + &"]".repeat(MAX_BODY_DEPTH);
        assert!(serde_json::from_str::<Value>(&ok).is_ok());
        let deep = "[".repeat(MAX_BODY_DEPTH + 1) + &"]".repeat(MAX_BODY_DEPTH + 1);
        let e = serde_json::from_str::<Value>(&deep).unwrap_err();
        assert!(is_recursion_limit(&e), "{e}");
        // A stored object at the limit is still readable inside a table row (3 levels more).
        let row = json!({"rows": [{"object": nested(MAX_OBJECT_DEPTH)}]});
        assert!(serde_json::from_slice::<Value>(&serde_json::to_vec(&row).unwrap()).is_ok());
    }

    #[test]
    fn json_size_is_the_serialized_length() {
        let v = json!({"a": [1, "two", null], "b": {"c": true}});
        assert_eq!(json_size(&v), serde_json::to_vec(&v).unwrap().len());
    }
}
