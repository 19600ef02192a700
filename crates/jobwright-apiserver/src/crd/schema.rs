//! Checks on a CustomResourceDefinition when it is written: every served version has a
//! structural schema (apiextensions-apiserver `pkg/apiserver/schema/validation.go` and
//! `pkg/apis/apiextensions/validation`), exactly one storage version, compilable patterns and CEL
//! rules. Field paths and messages are upstream's
//! (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be
//! empty for specified object fields`); like upstream, the structural errors are sorted by their
//! text.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use crate::errors::FieldError;

/// Compile an OpenAPI (ECMA-262) `pattern` for Rust's regex engine, cached. `None` when it does
/// not compile (the CRD was refused for it, so this only happens for CRDs stored before).
pub fn compile_pattern(p: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = c.get(p) {
        return r.clone();
    }
    let r = regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok();
    if c.len() > 4096 {
        c.clear();
    }
    c.insert(p.to_string(), r.clone());
    r
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

fn flag(s: &Value, k: &str) -> bool {
    s.get(k).and_then(Value::as_bool) == Some(true)
}

/// Validate the versions and schemas of a CRD (its `spec`), as the CRD strategy does.
pub fn validate_crd(crd: &Value) -> Vec<FieldError> {
    let mut errs = vec![];
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions", "must have exactly one version marked as storage version"));
        return errs;
    }
    let storage = versions.iter().filter(|v| flag(v, "storage")).count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = vec![];
    for (i, v) in versions.iter().enumerate() {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(format!("spec.versions[{i}].name"), json!(name)));
        }
        seen.push(name);
        let base = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema").filter(|s| s.is_object()) {
            None => errs.push(FieldError::required(base, "schemas are required")),
            Some(s) => {
                let mut e = vec![];
                structural(s, Level::Root, &base, &mut e, 0);
                e.sort_by_key(|x| x.to_string());
                errs.extend(e);
                super::cel::check_rules(s, &base, &mut errs, 0);
            }
        }
    }
    errs
}

/// The OpenAPI keywords a CRD schema may not use, at any node (upstream's
/// `specStandardValidatorV3`): references and definitions would make a schema recursive.
fn standard(s: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (k, what) in [
        ("id", "id"),
        ("additionalItems", "additionalItems"),
        ("patternProperties", "patternProperties"),
        ("definitions", "definitions"),
        ("dependencies", "dependencies"),
        ("$ref", "$ref"),
    ] {
        let set = match s.get(k) {
            None | Some(Value::Null) => false,
            Some(Value::String(x)) => !x.is_empty(),
            Some(Value::Object(m)) if matches!(k, "patternProperties" | "definitions") => !m.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(format!("{path}.{k}"), format!("{what} is not supported")));
        }
    }
    if s.get("type").and_then(Value::as_str) == Some("null") {
        errs.push(FieldError::forbidden(format!("{path}.type"), "type cannot be set to null"));
    }
    if s.get("items").is_some_and(|i| i.as_array().is_some_and(|a| !a.is_empty())) {
        errs.push(FieldError::forbidden(format!("{path}.items"), "items must be a schema object and not an array"));
    }
}

fn structural(s: &Value, lvl: Level, path: &str, errs: &mut Vec<FieldError>, depth: usize) {
    if depth > 64 || !s.is_object() {
        return;
    }
    standard(s, path, errs);
    let ty = s.get("type").and_then(Value::as_str).unwrap_or_default();
    if ty == "array" && s.get("items").is_none_or(|i| !i.is_object()) {
        errs.push(FieldError::required(format!("{path}.items"), "must be specified"));
    }
    if let Some(items) = s.get("items") {
        structural(items, Level::Item, &format!("{path}.items"), errs, depth + 1);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            structural(p, Level::Field, &format!("{path}.properties[{k}]"), errs, depth + 1);
        }
    }
    if let Some(ap) = s.get("additionalProperties") {
        if lvl == Level::Root {
            errs.push(FieldError::forbidden(format!("{path}.additionalProperties"), "must not be used at the root"));
        }
        if ap.is_object() {
            structural(ap, Level::Field, &format!("{path}.additionalProperties"), errs, depth + 1);
        }
        if s.get("properties").is_some() {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if ap == &Value::Bool(false) {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties cannot be set to false",
            ));
        }
    }
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-embedded-resource"),
            json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            json!(false),
            "must be true or undefined",
        ));
    }
    for (k, junctor) in [("anyOf", true), ("allOf", true), ("oneOf", true)] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                let skip_types = int_or_string && junctor;
                nested(sub, &format!("{path}.{k}[{i}]"), errs, skip_types, depth + 1);
            }
        }
    }
    if let Some(not) = s.get("not") {
        nested(not, &format!("{path}.not"), errs, false, depth + 1);
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::RegexBuilder::new(p).size_limit(1 << 20).build()
    {
        let why = e.to_string().lines().last().unwrap_or_default().trim().to_string();
        errs.push(FieldError::invalid(
            format!("{path}.pattern"),
            json!(p),
            format!("must be a valid regular expression, but isn't: {why}"),
        ));
    }
    if flag(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let check_metadata = lvl == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                json!(ty),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let why = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(format!("{path}.type"), why));
    }
    if embedded && s.get("additionalProperties").is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if lvl == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(format!("{path}.type"), json!(ty), "must be object at the root"));
    }
    if check_metadata {
        for k in ["kind", "apiVersion"] {
            if let Some(p) = s.pointer(&format!("/properties/{k}")) {
                let t = p.get("type").and_then(Value::as_str).unwrap_or_default();
                if t != "string" {
                    errs.push(FieldError::invalid(format!("{path}.properties[{k}].type"), json!(t), "must be string"));
                }
            }
        }
    }
    if let Some(md) = s.pointer("/properties/metadata") {
        let mpath = format!("{path}.properties[metadata]");
        let t = md.get("type").and_then(Value::as_str).unwrap_or_default();
        if check_metadata && t != "object" {
            errs.push(FieldError::invalid(format!("{mpath}.type"), json!(t), "must be object"));
        }
        if lvl == Level::Root {
            let allowed = md.as_object().is_some_and(|m| {
                m.iter().all(|(k, v)| match k.as_str() {
                    "type" | "description" => true,
                    "properties" => v.as_object().is_some_and(|p| p.keys().all(|n| n == "name" || n == "generateName")),
                    _ => false,
                })
            });
            if !allowed {
                errs.push(FieldError::forbidden(
                    mpath,
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    if embedded && !preserve && s.get("properties").and_then(Value::as_object).is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// A schema under allOf/anyOf/oneOf/not: value validations only.
fn nested(s: &Value, path: &str, errs: &mut Vec<FieldError>, int_or_string: bool, depth: usize) {
    if depth > 64 || !s.is_object() {
        return;
    }
    standard(s, path, errs);
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            if k == "metadata" {
                errs.push(FieldError::forbidden(
                    format!("{path}.properties[metadata]"),
                    "must not be specified in a nested context",
                ));
            }
            nested(p, &format!("{path}.properties[{k}]"), errs, false, depth + 1);
        }
    }
    if let Some(items) = s.get("items") {
        nested(items, &format!("{path}.items"), errs, false, depth + 1);
    }
    for k in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                nested(sub, &format!("{path}.{k}[{i}]"), errs, int_or_string, depth + 1);
            }
        }
    }
    let forbidden: &[(&str, &str)] = &[
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("externalDocs", "must be undefined to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    if s.get("type").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
        && !(int_or_string && matches!(s["type"].as_str(), Some("integer" | "string")))
    {
        errs.push(FieldError::forbidden(format!("{path}.type"), "must be empty to be structural"));
    }
    for (k, why) in forbidden {
        let present = match s.get(*k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(x)) => !x.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if present {
            errs.push(FieldError::forbidden(format!("{path}.{k}"), *why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(schema: Value) -> Value {
        json!({"spec": {"versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]}})
    }

    fn msgs(c: Value) -> Vec<String> {
        validate_crd(&c).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn structural_schemas_are_required() {
        assert!(msgs(crd(json!({"type": "object", "properties": {"spec": {"type": "object"}}}))).is_empty());
        assert_eq!(
            msgs(crd(json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}))),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
            ]
        );
        assert_eq!(
            msgs(crd(json!({"type": "object", "properties": {"l": {"type": "array"}}}))),
            ["spec.versions[0].schema.openAPIV3Schema.properties[l].items: Required value: must be specified"]
        );
        assert_eq!(
            msgs(crd(
                json!({"type": "object", "properties": {"l": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}})
            )),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            ]
        );
        assert_eq!(
            msgs(crd(json!({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}]}}}))),
            Vec::<String>::new()
        );
        assert_eq!(
            msgs(crd(json!({"type": "object", "properties": {"p": {"type": "string", "pattern": "(["}}}))).len(),
            1
        );
        let no_schema = json!({"spec": {"versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert_eq!(msgs(no_schema), ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]);
        let two_storage = json!({"spec": {"versions": [
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        assert!(msgs(two_storage)[0].ends_with("must have exactly one version marked as storage version"));
    }

    #[test]
    fn references_definitions_and_other_unsupported_keywords_are_refused() {
        let got = msgs(crd(json!({"type": "object", "definitions": {"x": {"type": "object"}}, "properties": {
            "spec": {"type": "object", "$ref": "#/definitions/x"},
            "l": {"type": "array", "items": [{"type": "string"}]},
            "n": {"type": "null"},
            "m": {"type": "object", "patternProperties": {"^a": {"type": "string"}}, "id": "x",
                "anyOf": [{"$ref": "#/definitions/x"}]},
        }})));
        let p = "spec.versions[0].schema.openAPIV3Schema";
        for want in [
            format!("{p}.definitions: Forbidden: definitions is not supported"),
            format!("{p}.properties[spec].$ref: Forbidden: $ref is not supported"),
            format!("{p}.properties[l].items: Forbidden: items must be a schema object and not an array"),
            format!("{p}.properties[n].type: Forbidden: type cannot be set to null"),
            format!("{p}.properties[m].patternProperties: Forbidden: patternProperties is not supported"),
            format!("{p}.properties[m].id: Forbidden: id is not supported"),
            format!("{p}.properties[m].anyOf[0].$ref: Forbidden: $ref is not supported"),
        ] {
            assert!(got.contains(&want), "{want} not in {got:#?}");
        }
    }
}
