//! OpenAPI v3 validation of custom resources against their CRD's structural schema, with
//! kube-apiserver's messages and field paths.
//!
//! Upstream validates a custom resource with kube-openapi's schema validator and turns each
//! result into a `field.Error` (`kubeOpenAPIResultToFieldErrors` in apiextensions-apiserver):
//! `required` becomes `Required value`, `enum` `Unsupported value`, `maxLength` `Too long`,
//! `maxItems`/`maxProperties` `Too many`, a wrong type `Invalid value: "<actual type>"`, and every
//! other rule `Invalid value` with kube-openapi's sentence (`spec.name in body should be at least 3
//! chars long`). The validators run in kube-openapi's order for one node (type, then
//! allOf/anyOf/oneOf/not, string, format, number, array, enum, object) and a wrong type stops the
//! rest for that node. After the schema, upstream checks the `x-kubernetes-list-type` sets and
//! maps (duplicates) and embedded resources (`apiVersion`/`kind` required); so does this module.
//!
//! Iteration over an object's properties is in key order (upstream iterates a Go map, so its
//! order of several errors varies from run to run).

use serde_json::Value;

use crate::errors::{FieldError, FieldErrorType};

/// The deepest schema/value nesting walked (the object depth limit is checked before).
const MAX_DEPTH: usize = 128;

/// Validation stops collecting errors past this many: a 3 MiB list of wrong items would
/// otherwise answer with hundreds of megabytes of causes.
pub const MAX_ERRORS: usize = 1000;

/// The longest list of supported values an `Unsupported value` error spells out; a longer enum
/// is cut with `...` (each error repeats the list, so a huge enum times a long list of wrong
/// values would exhaust memory).
const MAX_ENUM_TEXT: usize = 64 * 1024;

/// Past this much error text, no further `Unsupported value` errors are added (each repeats its
/// enum: 1,000 of them over a long enum made a 150 MB answer).
const MAX_ENUM_ERRORS_TEXT: usize = 512 * 1024;

fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// The JSON type name kube-openapi infers for a value.
pub fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `%v` of a float64 schema bound: integral values print without a fraction.
pub fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 { format!("{}", f as i64) } else { format!("{f}") }
}

fn flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool) == Some(true)
}

/// Validate `v` against `schema`; errors are appended to `errs`. `path` is the field path of `v`
/// (`""` at the root).
pub fn validate(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    // The schema is borrowed for this call only: the hashed enums are keyed by address.
    ENUMS.with(|e| e.borrow_mut().clear());
    node(schema, v, path, errs, 0);
    ENUMS.with(|e| e.borrow_mut().clear());
}

fn invalid(errs: &mut Vec<FieldError>, path: &str, value: Value, detail: String) {
    errs.push(FieldError::invalid(path, value, detail));
}

fn node(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>, depth: usize) {
    if depth > MAX_DEPTH || !s.is_object() || errs.len() >= MAX_ERRORS {
        return;
    }
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let ty = if int_or_string { Some("integer,string") } else { s.get("type").and_then(Value::as_str) };
    // type
    if v.is_null() {
        if let Some(t) = ty
            && !flag(s, "nullable")
        {
            errs.push(FieldError::new(
                FieldErrorType::TypeInvalid,
                path,
                Some(Value::from("null")),
                format!("{path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    let actual = type_of(v);
    if let Some(t) = ty.filter(|t| !t.is_empty()) {
        let ok = t.split(',').any(|want| {
            want == actual
                || (want == "integer" && v.as_f64().is_some_and(|f| f.fract() == 0.0))
                || (want == "number" && actual == "integer")
        });
        if !ok {
            errs.push(FieldError::new(
                FieldErrorType::TypeInvalid,
                path,
                Some(Value::from(actual)),
                format!("{path} in body must be of type {t}: \"{actual}\""),
            ));
            return;
        }
    }
    // allOf / anyOf / oneOf / not
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            node(sub, v, path, errs, depth + 1);
        }
    }
    let passes = |sub: &Value| {
        let mut e = vec![];
        node(sub, v, path, &mut e, depth + 1);
        e.is_empty()
    };
    if let Some(any) = s.get("anyOf").and_then(Value::as_array)
        && !any.is_empty()
    {
        // Each branch is evaluated once (evaluating the first again for its errors doubled the
        // work per nesting level: exponential in the schema's depth).
        let mut first = None;
        let mut passed = false;
        for (i, sub) in any.iter().enumerate() {
            let mut e = vec![];
            node(sub, v, path, &mut e, depth + 1);
            if e.is_empty() {
                passed = true;
                break;
            }
            if i == 0 {
                first = Some(e);
            }
        }
        if !passed {
            // Upstream reports the failures of each branch too; the first one is the useful one.
            errs.extend(first.unwrap_or_default());
            invalid(errs, path, Value::from(""), format!("\"{path}\" must validate at least one schema (anyOf)"));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array)
        && !one.is_empty()
        && one.iter().filter(|x| passes(x)).count() != 1
    {
        invalid(errs, path, Value::from(""), format!("\"{path}\" must validate one and only one schema (oneOf)"));
    }
    if let Some(not) = s.get("not")
        && not.is_object()
        && passes(not)
    {
        invalid(errs, path, Value::from(""), format!("\"{path}\" must not validate the schema (not)"));
    }
    match v {
        Value::String(st) => string(s, st, v, path, errs),
        Value::Number(_) => number(s, v, path, errs),
        Value::Array(a) => array(s, a, v, path, errs, depth),
        _ => {}
    }
    // enum
    if let Some(values) = s.get("enum").and_then(Value::as_array)
        && !values.is_empty()
        && !in_enum(values, v)
        && errs.iter().map(|e| e.detail.len()).sum::<usize>() < MAX_ENUM_ERRORS_TEXT
    {
        let mut list: Vec<String> = vec![];
        let mut len = 0;
        for e in values {
            let text = e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string());
            len += text.len() + 4;
            if len > MAX_ENUM_TEXT {
                list.push("...".to_string());
                break;
            }
            list.push(text);
        }
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v.clone(), &refs));
    }
    if let Value::Object(m) = v {
        object(s, m, path, errs, depth);
    }
    if flag(s, "x-kubernetes-embedded-resource") && v.is_object() {
        for k in ["apiVersion", "kind"] {
            if v.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(FieldError::required(child(path, k), "must not be empty"));
            }
        }
    }
}

fn string(s: &Value, st: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let len = st.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        errs.push(FieldError::new(
            FieldErrorType::TooLong,
            path,
            Some(v.clone()),
            format!("may not be longer than {max}"),
        ));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        invalid(errs, path, v.clone(), format!("{path} in body should be at least {min} chars long"));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && let Some(re) = super::schema::compile_pattern(p)
        && !re.is_match(st)
    {
        invalid(errs, path, v.clone(), format!("{path} in body should match '{p}'"));
    }
    if let Some(f) = s.get("format").and_then(Value::as_str)
        && !format_ok(f, st)
    {
        errs.push(FieldError::new(
            FieldErrorType::TypeInvalid,
            path,
            Some(v.clone()),
            format!("{path} in body must be of type {f}: {:?}", st),
        ));
    }
}

/// The string formats kube-apiserver checks for custom resources (`formats.go`); unknown formats
/// pass, as upstream.
pub fn format_ok(format: &str, s: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::OnceLock;
    static RE: OnceLock<Vec<(&'static str, regex::Regex)>> = OnceLock::new();
    let res = RE.get_or_init(|| {
        [
            ("uuid", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
            ("uuid3", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
            ("uuid4", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
            ("uuid5", r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
            ("email", r"^[^@\s]+@[^@\s]+$"),
            (
                "hostname",
                r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$",
            ),
            ("mac", r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$"),
            ("hexcolor", r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
            ("rgbcolor", r"^rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)$"),
            ("bsonobjectid", r"^[0-9a-fA-F]{24}$"),
            ("duration", r"^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h|d|w))+$"),
            ("uri", r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$"),
        ]
        .into_iter()
        .filter_map(|(k, p)| regex::Regex::new(p).ok().map(|r| (k, r)))
        .collect()
    });
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let max = if ip.parse::<Ipv4Addr>().is_ok() {
                32
            } else if ip.parse::<Ipv6Addr>().is_ok() {
                128
            } else {
                return false;
            };
            bits.parse::<u8>().is_ok_and(|b| b <= max)
        }),
        f => match res.iter().find(|(k, _)| *k == f) {
            Some((_, re)) => (f != "hostname" || s.len() <= 255) && re.is_match(s),
            None => true,
        },
    }
}

fn number(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(x) = v.as_f64() else { return };
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (x / m).fract().abs() > 1e-9
    {
        invalid(errs, path, v.clone(), format!("{path} in body should be a multiple of {}", num(m)));
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        if x > max || (exclusive && x == max) {
            let how = if exclusive { "less than" } else { "less than or equal to" };
            invalid(errs, path, v.clone(), format!("{path} in body should be {how} {}", num(max)));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        if x < min || (exclusive && x == min) {
            let how = if exclusive { "greater than" } else { "greater than or equal to" };
            invalid(errs, path, v.clone(), format!("{path} in body should be {how} {}", num(min)));
        }
    }
}

fn array(s: &Value, a: &[Value], _v: &Value, path: &str, errs: &mut Vec<FieldError>, depth: usize) {
    if let Some(items) = s.get("items").filter(|i| i.is_object()) {
        for (i, item) in a.iter().enumerate() {
            node(items, item, &format!("{path}[{i}]"), errs, depth + 1);
        }
    }
    let n = a.len() as u64;
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        invalid(errs, path, Value::from(n), format!("{path} in body should have at least {min} items"));
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        errs.push(FieldError::new(FieldErrorType::TooMany, path, Some(Value::from(n)), too_many(max)));
    }
    if flag(s, "uniqueItems") && duplicates(a).next().is_some() {
        invalid(errs, path, Value::from(""), format!("{path} in body shouldn't contain duplicates"));
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for i in duplicates(a) {
                if errs.len() >= MAX_ERRORS {
                    break;
                }
                errs.push(FieldError::duplicate(format!("{path}[{i}]"), a[i].clone()));
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of =
                |x: &Value| -> Vec<Value> { keys.iter().map(|k| x.get(*k).cloned().unwrap_or(Value::Null)).collect() };
            let all: Vec<Value> = a.iter().map(|x| Value::Array(key_of(x))).collect();
            for i in duplicates(&all) {
                let Value::Array(k) = &all[i] else { continue };
                if errs.len() >= MAX_ERRORS {
                    break;
                }
                let shown: Vec<String> =
                    keys.iter().zip(k).map(|(name, val)| format!("{name:?}:{}", go_value(val))).collect();
                errs.push(FieldError::new(
                    FieldErrorType::Duplicate,
                    format!("{path}[{i}]"),
                    None,
                    format!("map[string]interface {{}}{{{}}}", shown.join(", ")),
                ));
            }
        }
        _ => {}
    }
}

/// A value's identity for enum membership: numbers by their float value (`1` is `1.0`).
fn enum_key(v: &Value) -> String {
    match v.as_f64() {
        Some(f) => format!("#{f}"),
        None => v.to_string(),
    }
}

thread_local! {
    /// The long enums of the schema being validated, hashed, by their address in it.
    static ENUMS: std::cell::RefCell<std::collections::HashMap<usize, std::collections::HashSet<String>>> =
        Default::default();
}

/// Whether `v` is one of `values`. A long enum is hashed once per validation, so a long list
/// checked against a long enum stays linear.
fn in_enum(values: &[Value], v: &Value) -> bool {
    if values.len() <= 16 {
        return values.iter().any(|e| e == v || (e.as_f64().is_some() && e.as_f64() == v.as_f64()));
    }
    ENUMS.with(|sets| {
        let mut sets = sets.borrow_mut();
        let set = sets.entry(values.as_ptr() as usize).or_insert_with(|| values.iter().map(enum_key).collect());
        set.contains(&enum_key(v))
    })
}

/// Go's `%#v` of a JSON scalar inside an `interface{}` map.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) if n.is_i64() => format!("{n}"),
        Value::Number(n) => format!("{n}"),
        Value::Null => "interface {}(nil)".to_string(),
        other => other.to_string(),
    }
}

/// `field.TooMany`'s detail.
pub fn too_many(max: u64) -> String {
    if max == 1 { "must have at most 1 item".to_string() } else { format!("must have at most {max} items") }
}

/// The indexes of the elements equal to an earlier one, in order: linear, by the elements'
/// canonical JSON (object keys are sorted), as upstream's hash-based checks (a pairwise check
/// of a 3 MiB list took hours).
fn duplicates(a: &[Value]) -> impl Iterator<Item = usize> + '_ {
    let mut seen = std::collections::HashSet::new();
    a.iter().enumerate().filter_map(move |(i, x)| (!seen.insert(x.to_string())).then_some(i))
}

fn object(s: &Value, m: &serde_json::Map<String, Value>, path: &str, errs: &mut Vec<FieldError>, depth: usize) {
    let n = m.len() as u64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && n > max
    {
        errs.push(FieldError::new(FieldErrorType::TooMany, path, Some(Value::from(n)), too_many(max)));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && n < min
    {
        invalid(errs, path, Value::from(n), format!("{path} in body should have at least {min} properties"));
    }
    if let Some(req) = s.get("required").and_then(Value::as_array) {
        for k in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(k) {
                errs.push(FieldError::required(child(path, k), ""));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties");
    for (k, val) in m {
        // The object's own metadata is validated by the generic ObjectMeta rules.
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            if let Some(ps) = props.and_then(|p| p.get(k))
                && k == "metadata"
            {
                metadata(ps, val, errs);
            }
            continue;
        }
        match props.and_then(|p| p.get(k)) {
            Some(ps) => node(ps, val, &child(path, k), errs, depth + 1),
            None => match additional {
                Some(ap) if ap.is_object() => node(ap, val, &child(path, k), errs, depth + 1),
                Some(Value::Bool(false)) => {
                    invalid(errs, path, Value::from(k.as_str()), format!("{path}.{k} in body is a forbidden property"))
                }
                _ => {}
            },
        }
    }
}

/// The only metadata rules a CRD schema may state: `name` and `generateName` as strings with
/// value validations.
fn metadata(s: &Value, v: &Value, errs: &mut Vec<FieldError>) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else { return };
    for k in ["name", "generateName"] {
        if let (Some(ps), Some(val)) = (props.get(k), v.get(k)) {
            node(ps, val, &format!("metadata.{k}"), errs, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(schema: Value, v: Value) -> Vec<String> {
        let mut e = vec![];
        validate(&schema, &v, "", &mut e);
        e.iter().map(ToString::to_string).collect()
    }

    fn spec(props: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}})
    }

    #[test]
    fn string_rules_have_upstream_messages() {
        let s = spec(json!({"name": {"type": "string", "minLength": 3, "maxLength": 5, "pattern": "^[a-z]+$"}}));
        assert_eq!(
            errs(s.clone(), json!({"spec": {"name": "ab"}})),
            ["spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"name": "abcdef"}})),
            ["spec.name: Too long: may not be longer than 5"]
        );
        assert_eq!(
            errs(s, json!({"spec": {"name": "AB1"}})),
            ["spec.name: Invalid value: \"AB1\": spec.name in body should match '^[a-z]+$'"]
        );
    }

    #[test]
    fn types_enums_and_numbers() {
        let s = spec(json!({
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            "mode": {"type": "string", "enum": ["A", "B"]},
            "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1, "multipleOf": 0.5},
            "opt": {"type": "string", "nullable": true},
        }));
        assert_eq!(
            errs(s.clone(), json!({"spec": {"replicas": "3"}})),
            ["spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"replicas": 0}})),
            ["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"replicas": 11}})),
            ["spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"]
        );
        assert!(errs(s.clone(), json!({"spec": {"replicas": 2.0, "opt": null}})).is_empty());
        assert_eq!(
            errs(s.clone(), json!({"spec": {"mode": "C"}})),
            ["spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\""]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"ratio": 1}})),
            ["spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"ratio": 0.3}})),
            ["spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.5"]
        );
        assert_eq!(
            errs(s, json!({"spec": {"mode": null}})),
            ["spec.mode: Invalid value: \"null\": spec.mode in body must be of type string: \"null\""]
        );
    }

    #[test]
    fn arrays_required_and_maps() {
        let s = spec(json!({
            "items": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "object",
                "required": ["name"], "properties": {"name": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2}},
            "port": {"x-kubernetes-int-or-string": true},
        }));
        assert_eq!(
            errs(s.clone(), json!({"spec": {"items": [{}]}})),
            [
                "spec.items[0].name: Required value",
                "spec.items: Invalid value: 1: spec.items in body should have at least 2 items"
            ]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}})),
            ["spec.items: Too many: 4: must have at most 3 items"]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"tags": ["a", "b", "a"]}})),
            ["spec.tags[2]: Duplicate value: \"a\""]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"ports": [{"name": "x"}, {"name": "x"}]}})),
            ["spec.ports[1]: Duplicate value: map[string]interface {}{\"name\":\"x\"}"]
        );
        assert_eq!(
            errs(s.clone(), json!({"spec": {"labels": {"a": "abc"}}})),
            ["spec.labels.a: Too long: may not be longer than 2"]
        );
        assert!(errs(s.clone(), json!({"spec": {"port": 80}})).is_empty());
        assert!(errs(s.clone(), json!({"spec": {"port": "http"}})).is_empty());
        assert_eq!(
            errs(s, json!({"spec": {"port": true}})),
            ["spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""]
        );
    }

    #[test]
    fn formats() {
        let s = spec(
            json!({"when": {"type": "string", "format": "date-time"}, "ip": {"type": "string", "format": "ipv4"}}),
        );
        assert!(errs(s.clone(), json!({"spec": {"when": "2024-01-02T03:04:05Z", "ip": "10.0.0.1"}})).is_empty());
        assert_eq!(
            errs(s, json!({"spec": {"when": "yesterday"}})),
            ["spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\""]
        );
        assert!(format_ok("duration", "1h30m") && !format_ok("duration", "soon"));
        assert!(format_ok("cidr", "10.0.0.0/8") && !format_ok("cidr", "10.0.0.0/33"));
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let s = spec(json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}}));
        assert_eq!(
            errs(s, json!({"spec": {"template": {"kind": "Pod"}}})),
            ["spec.template.apiVersion: Required value: must not be empty"]
        );
    }

    #[test]
    fn nested_any_of_is_linear_in_the_schema() {
        // 40 nested anyOf evaluated each level's first branch twice: 2^40 steps.
        let mut sub = json!({"maximum": 1});
        for _ in 0..40 {
            sub = json!({"anyOf": [sub]});
        }
        let mut n = json!({"type": "integer"});
        n.as_object_mut().unwrap().extend(sub.as_object().unwrap().clone());
        let got = errs(spec(json!({"n": n})), json!({"spec": {"n": 5}}));
        assert_eq!(got.len(), 41, "{got:?}");
        assert_eq!(got[0], "spec.n: Invalid value: 5: spec.n in body should be less than or equal to 1");
        assert_eq!(got[1], "spec.n: Invalid value: \"\": \"spec.n\" must validate at least one schema (anyOf)");
    }

    #[test]
    fn huge_sets_maps_and_enums_are_checked_in_linear_time_and_bounded_errors() {
        let s = spec(json!({
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "integer"}}}},
            "modes": {"type": "array", "items": {"type": "string", "enum": (0..20_000).map(|i| format!("m{i}")).collect::<Vec<_>>()}},
        }));
        // 100,000 distinct items: a pairwise check took many minutes.
        let many: Vec<i64> = (0..100_000).collect();
        let ports: Vec<Value> = many.iter().map(|i| json!({"name": i})).collect();
        assert!(errs(s.clone(), json!({"spec": {"tags": many, "ports": ports}})).is_empty());
        let got = errs(s.clone(), json!({"spec": {"tags": [1, 2, 1, {"a": 1, "b": 2}, {"b": 2, "a": 1}]}}));
        assert_eq!(got[2..], ["spec.tags[2]: Duplicate value: 1", "spec.tags[4]: Duplicate value: {\"a\":1,\"b\":2}"]);
        // 100,000 wrong values against a 20,000-value enum: bounded causes, each list cut.
        let wrong = vec!["nope"; 100_000];
        let got = errs(s, json!({"spec": {"modes": wrong.clone()}}));
        assert!(got.len() < 20, "{}", got.len());
        assert!(got.iter().map(String::len).sum::<usize>() < 1 << 20);
        assert!(
            got[0].starts_with("spec.modes[0]: Unsupported value: \"nope\": supported values: \"m0\", \"m1\""),
            "{:.100}",
            got[0]
        );
        assert!(got[0].ends_with(", \"...\"") && got[0].len() < 80 * 1024, "{}", got[0].len());
        let got =
            errs(spec(json!({"l": {"type": "array", "items": {"type": "integer"}}})), json!({"spec": {"l": wrong}}));
        assert_eq!(got.len(), MAX_ERRORS);
        // A long enum is hashed: 100,000 values against 50,000 entries.
        let s = spec(
            json!({"l": {"type": "array", "items": {"type": "integer", "enum": (0..50_000).collect::<Vec<_>>()}}}),
        );
        let got = errs(s.clone(), json!({"spec": {"l": vec![1.0; 100_000]}}));
        assert!(got.is_empty(), "{:?}", &got[..1]);
        assert_eq!(errs(s, json!({"spec": {"l": [7, 50_000]}})).len(), 1);
    }
}
