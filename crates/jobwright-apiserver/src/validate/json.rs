//! Total accessors over `serde_json::Value` and upstream-style field paths.
//!
//! Every getter returns `None`/empty on a missing key or a value of the wrong JSON type, so rules
//! written with them cannot panic on garbage.

use serde_json::{Map, Value};

/// `v[k]` as a string.
pub fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// `v[k]` as an integer (JSON numbers with a fraction are not integers).
pub fn int_of(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

/// `v[k]` as a boolean.
pub fn bool_of(v: &Value, k: &str) -> Option<bool> {
    v.get(k).and_then(Value::as_bool)
}

/// `v[k]` as an array, empty when missing or not an array.
pub fn arr_of<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// `v[k]` as an object.
pub fn obj_of<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

/// Whether `v[k]` is present and not null.
pub fn has(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

/// The value at a path of object keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.get(*k)?;
    }
    Some(cur)
}

/// The string at a path of object keys.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// A `map[string]string` field (labels, annotations, matchLabels, nodeSelector) as pairs; non-string
/// values are rendered as JSON so they still get validated (and rejected) rather than skipped.
pub fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    match v.and_then(Value::as_object) {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect(),
        None => vec![],
    }
}

/// Make sure `v[k]` is an object (replacing a non-object) and return it mutably.
pub fn ensure_obj<'a>(v: &'a mut Value, k: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let m = v.as_object_mut().expect("just made an object");
    let e = m.entry(k.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e
}

/// Set `v[k] = val` when `v[k]` is missing or null. `v` must be an object, else nothing happens.
pub fn default_field(v: &mut Value, k: &str, val: Value) {
    if let Some(m) = v.as_object_mut() {
        let e = m.entry(k.to_string()).or_insert(Value::Null);
        if e.is_null() {
            *e = val;
        }
    }
}

/// Whether `v[k]` is missing, null, or an empty string.
pub fn empty_str(v: &Value, k: &str) -> bool {
    match v.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Upstream's `fldPath.Child(c)`.
pub fn child(p: &str, c: &str) -> String {
    if p.is_empty() { c.to_string() } else { format!("{p}.{c}") }
}

/// Upstream's `fldPath.Index(i)`.
pub fn index(p: &str, i: usize) -> String {
    format!("{p}[{i}]")
}

/// Upstream's `fldPath.Key(k)`.
pub fn key(p: &str, k: &str) -> String {
    format!("{p}[{k}]")
}
