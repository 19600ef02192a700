//! Required fields, from the OpenAPI schemas of the k8s-openapi types.
//!
//! Go decodes a missing required field as its zero value and the kind's validation then answers
//! 422 `Required value` naming the field. k8s-openapi quietly defaults most missing required
//! fields (and serde refuses a few). For the kinds of [`crate::kinds`], which have no hand-written
//! validation, [`super::strict`] answers with [`missing`]: every required field absent from the
//! object (upstream's `+required` markers are the schemas' `required` lists), one 422 cause each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

/// The upstream-style paths (`spec.template.spec.containers[0].name`) of the required fields
/// missing (absent or `null`) from `obj`, a `T` in JSON.
pub fn missing<T: JsonSchema>(obj: &Value) -> Vec<String> {
    let root = schema_of::<T>();
    let root = root.as_ref();
    let mut out = Vec::new();
    // Iterative: objects of any depth are walked without recursion.
    let mut stack: Vec<(&Value, &Value, String)> = vec![(root, obj, String::new())];
    while let Some((schema, value, path)) = stack.pop() {
        let schema = resolve(root, schema);
        match value {
            Value::Object(m) => {
                if let Some(req) = schema.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        // k8s-openapi requires every resource's metadata; Go does not.
                        let top = path.is_empty() && matches!(r, "metadata" | "apiVersion" | "kind");
                        if !top && m.get(r).is_none_or(Value::is_null) {
                            out.push(join(&path, r));
                        }
                    }
                }
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (k, v) in m.iter().rev() {
                        // Status is the controllers' (reset on create, kept on update).
                        if path.is_empty() && k == "status" {
                            continue;
                        }
                        if let Some(ps) = props.get(k) {
                            stack.push((ps, v, join(&path, k)));
                        }
                    }
                } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                    for (k, v) in m.iter().rev() {
                        stack.push((ap, v, format!("{path}[{k}]")));
                    }
                }
            }
            Value::Array(a) => {
                if let Some(items) = schema.get("items") {
                    for (i, v) in a.iter().enumerate().rev() {
                        stack.push((items, v, format!("{path}[{i}]")));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `T`'s root schema, generated once per type.
fn schema_of<T: JsonSchema>() -> Arc<Value> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Value>>>> = OnceLock::new();
    let name = T::schema_name().into_owned();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(name)
        .or_insert_with(|| Arc::new(SchemaGenerator::default().into_root_schema_for::<T>().to_value()))
        .clone()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// Follows `$ref` (`#/$defs/Name`) and single-element `allOf` wrappers.
fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(s) => schema = s,
                None => return schema,
            }
        } else if let Some([one]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            schema = one;
        } else {
            return schema;
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_required_fields_are_named_upstream_style() {
        use k8s_openapi::api::apps::v1::Deployment;
        let d = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"image": "x"}, {"name": "b", "ports": [{}]}]}}}});
        assert_eq!(
            missing::<Deployment>(&d),
            [
                "spec.selector",
                "spec.template.spec.containers[0].name",
                "spec.template.spec.containers[1].ports[0].containerPort"
            ]
        );
        assert!(missing::<Deployment>(&json!({"metadata": {"name": "d"}})).is_empty());
        use k8s_openapi::api::networking::v1::Ingress;
        let i = json!({"spec": {"rules": [{"http": {"paths": [{"backend": {}}]}}]}});
        assert_eq!(missing::<Ingress>(&i), ["spec.rules[0].http.paths[0].pathType"]);
    }
}
