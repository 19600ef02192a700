//! Schema `default`s, as apiextensions-apiserver's structural defaulting applies them: a missing
//! property with a `default` gets a copy of it (then defaults inside that copy apply too), a
//! `null` property that is not `nullable` gets its default or, without one, is dropped
//! (`PruneNonNullableNullsWithoutDefaults`); defaults apply under `properties`,
//! `additionalProperties` and `items`, never creating a parent that is absent. Upstream runs this
//! on every decode (request bodies and reads from storage), so does the API server: on create,
//! update and read.

use serde_json::Value;

const MAX_DEPTH: usize = 128;

/// Apply `schema`'s defaults to `v` in place.
pub fn apply(schema: &Value, v: &mut Value) {
    walk(schema, v, 0);
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

fn walk(s: &Value, v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH || !s.is_object() {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let nullable = ps.get("nullable").and_then(Value::as_bool) == Some(true);
                    match m.get(k) {
                        None => {
                            if let Some(d) = ps.get("default") {
                                m.insert(k.clone(), d.clone());
                            }
                        }
                        Some(Value::Null) if !nullable => match ps.get("default") {
                            Some(d) => {
                                m.insert(k.clone(), d.clone());
                            }
                            None => {
                                m.remove(k);
                            }
                        },
                        _ => {}
                    }
                    if let Some(child) = m.get_mut(k) {
                        walk(ps, child, depth + 1);
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                let nullable = ap.get("nullable").and_then(Value::as_bool) == Some(true);
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    if m.get(&k).is_some_and(Value::is_null) && !nullable {
                        match ap.get("default") {
                            Some(d) => {
                                m.insert(k.clone(), d.clone());
                            }
                            None => {
                                m.remove(&k);
                            }
                        }
                    }
                    if let Some(child) = m.get_mut(&k) {
                        walk(ap, child, depth + 1);
                    }
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for x in a.iter_mut() {
                    if x.is_null()
                        && items.get("nullable").and_then(Value::as_bool) != Some(true)
                        && let Some(d) = items.get("default")
                    {
                        *x = d.clone();
                    }
                    walk(items, x, depth + 1);
                }
            }
        }
        _ => {}
    }
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
        apply(&s, &mut v);
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
}
