//! Schema `default`s, as apiextensions-apiserver's structural defaulting applies them: a missing
//! property with a `default` gets a copy of it (then defaults inside that copy apply too), a
//! `null` property that is not `nullable` gets its default or, without one, is dropped
//! (`PruneNonNullableNullsWithoutDefaults`); defaults apply under `properties`,
//! `additionalProperties` and `items`, never creating a parent that is absent. Upstream runs this
//! on every decode (request bodies and reads from storage), so does the API server: on create,
//! update and read.

use serde_json::Value;

const MAX_DEPTH: usize = 128;

/// The most bytes of defaults one object may receive (the request body limit): a 1 MB default
/// under `additionalProperties` copied into 200,000 null map entries would need 200 GB.
pub const MAX_DEFAULTED_BYTES: usize = 3 * 1024 * 1024;

/// Apply `schema`'s defaults to `v` in place. Past [`MAX_DEFAULTED_BYTES`] of copied defaults
/// no more are applied, and the path where that happened is returned (an upstream-style field
/// path, `spec.m.k`).
pub fn apply(schema: &Value, v: &mut Value) -> Result<(), String> {
    let mut budget = MAX_DEFAULTED_BYTES;
    walk(schema, v, 0, &mut budget).map_err(|mut keys| {
        keys.reverse();
        keys.into_iter().fold(String::new(), |p, k| {
            if k.starts_with('[') || p.is_empty() { format!("{p}{k}") } else { format!("{p}.{k}") }
        })
    })
}

/// Copy a default, charging its size to `budget`; `None` when it does not fit.
fn copy(d: &Value, budget: &mut usize) -> Option<Value> {
    let n = match d {
        Value::Object(_) | Value::Array(_) | Value::String(_) => {
            serde_json::to_vec(d).map(|b| b.len()).unwrap_or(usize::MAX)
        }
        _ => 8,
    };
    *budget = budget.checked_sub(n)?;
    Some(d.clone())
}

/// Drop the fields `schema` does not know (structural pruning): keys outside `properties` of an
/// object without `additionalProperties` or `x-kubernetes-preserve-unknown-fields`; the root's
/// `apiVersion`, `kind` and `metadata` are kept.
pub fn prune(schema: &Value, v: &mut Value) {
    fn go(s: &Value, v: &mut Value, root: bool, depth: usize) {
        if depth > MAX_DEPTH || !s.is_object() {
            return;
        }
        let flag = |k: &str| s.get(k).and_then(Value::as_bool) == Some(true);
        if flag("x-kubernetes-preserve-unknown-fields") || flag("x-kubernetes-int-or-string") {
            return;
        }
        match v {
            Value::Object(m) => {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    m.retain(|k, _| {
                        props.contains_key(k) || (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                    });
                    for (k, child) in m.iter_mut() {
                        if let Some(ps) = props.get(k) {
                            go(ps, child, false, depth + 1);
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    for child in m.values_mut() {
                        go(ap, child, false, depth + 1);
                    }
                } else if s.get("additionalProperties").is_none() {
                    m.retain(|k, _| root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
                }
            }
            Value::Array(a) => {
                if let Some(items) = s.get("items") {
                    for x in a.iter_mut() {
                        go(items, x, false, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
    go(schema, v, true, 0);
}

/// Whether `schema` has a `default` anywhere (so reads need defaulting).
pub fn has_defaults(schema: &Value) -> bool {
    fn go(s: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match s {
            Value::Object(m) => {
                m.contains_key("default")
                    || ["properties", "additionalProperties", "items"].iter().any(|k| match m.get(*k) {
                        Some(Value::Object(p)) if *k == "properties" => p.values().any(|x| go(x, depth + 1)),
                        Some(x) => go(x, depth + 1),
                        None => false,
                    })
            }
            _ => false,
        }
    }
    go(schema, 0)
}

fn walk(s: &Value, v: &mut Value, depth: usize, budget: &mut usize) -> Result<(), Vec<String>> {
    if depth > MAX_DEPTH || !s.is_object() {
        return Ok(());
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let nullable = ps.get("nullable").and_then(Value::as_bool) == Some(true);
                    match m.get(k) {
                        None => {
                            if let Some(d) = ps.get("default") {
                                m.insert(k.clone(), copy(d, budget).ok_or_else(|| vec![k.clone()])?);
                            }
                        }
                        Some(Value::Null) if !nullable => match ps.get("default") {
                            Some(d) => {
                                m.insert(k.clone(), copy(d, budget).ok_or_else(|| vec![k.clone()])?);
                            }
                            None => {
                                m.remove(k);
                            }
                        },
                        _ => {}
                    }
                    if let Some(child) = m.get_mut(k) {
                        walk(ps, child, depth + 1, budget).map_err(|mut p| {
                            p.push(k.clone());
                            p
                        })?;
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let nullable = ap.get("nullable").and_then(Value::as_bool) == Some(true);
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    if m.get(&k).is_some_and(Value::is_null) && !nullable {
                        match ap.get("default") {
                            Some(d) => {
                                m.insert(k.clone(), copy(d, budget).ok_or_else(|| vec![k.clone()])?);
                            }
                            None => {
                                m.remove(&k);
                            }
                        }
                    }
                    if let Some(child) = m.get_mut(&k) {
                        walk(ap, child, depth + 1, budget).map_err(|mut p| {
                            p.push(k.clone());
                            p
                        })?;
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for (i, x) in a.iter_mut().enumerate() {
                    if x.is_null()
                        && items.get("nullable").and_then(Value::as_bool) != Some(true)
                        && let Some(d) = items.get("default")
                    {
                        *x = copy(d, budget).ok_or_else(|| vec![format!("[{i}]")])?;
                    }
                    walk(items, x, depth + 1, budget).map_err(|mut p| {
                        p.push(format!("[{i}]"));
                        p
                    })?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_missing_and_null_fields_but_never_parents() {
        let s = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "Auto"},
                "opt": {"type": "string"},
                "nested": {"type": "object", "default": {}, "properties": {"x": {"type": "integer", "default": 7}}},
                "ports": {"type": "array", "items": {"type": "object", "properties": {"proto": {"type": "string", "default": "TCP"}}}},
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string", "default": "New"}}},
        }});
        let mut v = json!({"spec": {"mode": null, "opt": null, "ports": [{}, {"proto": "UDP"}]}});
        apply(&s, &mut v).unwrap();
        assert_eq!(
            v,
            json!({"spec": {"replicas": 1, "mode": "Auto", "nested": {"x": 7}, "ports": [{"proto": "TCP"}, {"proto": "UDP"}]}})
        );
        assert!(has_defaults(&s));
        let mut p = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"}, "spec": {"mode": "A", "gone": 1}, "extra": true});
        prune(&s, &mut p);
        assert_eq!(p, json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"}, "spec": {"mode": "A"}}));
        assert!(!has_defaults(&json!({"type": "object", "properties": {"a": {"type": "string"}}})));
    }

    #[test]
    fn copied_defaults_are_bounded_in_bytes() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "m": {"type": "object", "additionalProperties": {"type": "string", "default": "x".repeat(1 << 20)}},
            "l": {"type": "array", "items": {"type": "object", "nullable": false, "default": {"a": "y".repeat(1000)}}},
        }}}});
        // 200,000 nulls: 200 GB of copies before. Refused at the third, naming it.
        let m: serde_json::Map<String, Value> = (0..200_000).map(|i| (format!("k{i:06}"), Value::Null)).collect();
        let mut v = json!({"spec": {"m": m}});
        assert_eq!(apply(&s, &mut v), Err("spec.m.k000002".to_string()));
        let mut v = json!({"spec": {"l": vec![Value::Null; 10_000]}});
        assert_eq!(apply(&s, &mut v), Err("spec.l[3120]".to_string()));
        let mut v = json!({"spec": {"m": {"a": null}, "l": [null]}});
        assert!(apply(&s, &mut v).is_ok());
        assert_eq!(v["spec"]["l"][0]["a"].as_str().map(str::len), Some(1000));
    }
}
