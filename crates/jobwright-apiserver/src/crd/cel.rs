//! `x-kubernetes-validations`: CEL rules on custom resources, evaluated with the `cel` crate.
//!
//! As upstream (apiextensions-apiserver `pkg/apiserver/schema/cel`): every schema node carrying
//! rules evaluates each rule with `self` bound to the value at that node; a rule that mentions
//! `oldSelf` is a transition rule, evaluated only on updates where the node has a correlated old
//! value (same property, same map key, same list-map keys). A rule that is false answers
//! `Invalid value: "<schema type>": <message>` at the node's path (plus the rule's `fieldPath`),
//! or `Forbidden`/`Required`/`Duplicate` by its `reason`; the message is the evaluated
//! `messageExpression`, else `message`, else `failed rule: <rule>`. A runtime budget, counted in
//! visited value nodes per evaluation, stops runaway rules with upstream's "running out of cost
//! budget" error.
//!
//! Known differences: the only static type check at CRD creation is [`super::cel_check`]'s (a
//! selection of a field the schema lacks), no estimated-cost rejection of CRDs, and
//! Kubernetes' CEL libraries (lists, regex, url, quantity, IP/CIDR, format) are not available;
//! `optionalOldSelf` rules are skipped on create as ordinary transition rules; a rule that calls
//! a function this library lacks is skipped (not failed) when evaluated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::{Context, Program};
use serde_json::{Value, json};

use crate::errors::{FieldError, FieldErrorType};

/// Upstream's per-request runtime budget (`RuntimeCELCostBudget`), here in visited value nodes.
pub const RUNTIME_BUDGET: u64 = 10_000_000;

const REASONS: &[&str] = &["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

fn compile(src: &str) -> Result<Arc<Program>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Program>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(src) {
        return Ok(p.clone());
    }
    // The parser recurses: refuse absurd nesting before it sees it.
    if src.len() > 64 * 1024 || nesting(src) > 64 {
        return Err("expression too deeply nested or too long".into());
    }
    let p = std::panic::catch_unwind(|| Program::compile(src))
        .map_err(|_| "expression could not be parsed".to_string())?
        .map_err(|e| e.to_string())?;
    let p = Arc::new(p);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 4096 {
        c.clear();
    }
    c.insert(src.to_string(), p.clone());
    Ok(p)
}

fn nesting(src: &str) -> usize {
    let (mut d, mut max) = (0usize, 0usize);
    for c in src.chars() {
        match c {
            '(' | '[' | '{' => {
                d += 1;
                max = max.max(d);
            }
            ')' | ']' | '}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Check the rules of a schema at CRD write time: each compiles, reasons are known.
pub fn check_rules(s: &Value, path: &str, errs: &mut Vec<FieldError>, depth: usize) {
    if depth > 64 || !s.is_object() {
        return;
    }
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}]");
            match r.get("rule").and_then(Value::as_str).filter(|x| !x.trim().is_empty()) {
                None => errs.push(FieldError::required(format!("{rp}.rule"), "")),
                Some(src) => {
                    let failed = compile(src).err().or_else(|| super::cel_check::undefined_field(src, s));
                    if let Some(e) = failed {
                        errs.push(FieldError::invalid(
                            format!("{rp}.rule"),
                            r.clone(),
                            format!("compilation failed: {e}"),
                        ));
                    }
                }
            }
            if let Some(m) = r.get("messageExpression").and_then(Value::as_str)
                && let Err(e) = compile(m)
            {
                errs.push(FieldError::invalid(
                    format!("{rp}.messageExpression"),
                    r.clone(),
                    format!("messageExpression compilation failed: {e}"),
                ));
            }
            if let Some(reason) = r.get("reason").and_then(Value::as_str)
                && !REASONS.contains(&reason)
            {
                errs.push(FieldError::not_supported(format!("{rp}.reason"), json!(reason), REASONS));
            }
            if r.get("message").and_then(Value::as_str).is_some_and(|m| m.contains('\n')) {
                errs.push(FieldError::invalid(
                    format!("{rp}.message"),
                    r["message"].clone(),
                    "message must not contain line breaks",
                ));
            }
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            check_rules(p, &format!("{path}.properties[{k}]"), errs, depth + 1);
        }
    }
    if let Some(i) = s.get("items") {
        check_rules(i, &format!("{path}.items"), errs, depth + 1);
    }
    if let Some(a) = s.get("additionalProperties") {
        check_rules(a, &format!("{path}.additionalProperties"), errs, depth + 1);
    }
}

/// JSON to a CEL value (integers as `int`, as Kubernetes' CEL types declare them).
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let h: HashMap<String, cel::Value> = m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::Map(h.into())
        }
    }
}

fn size(v: &Value) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        n += 1;
        match x {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    n
}

/// Evaluate every rule under `schema` on `new` (with `old` for transition rules).
pub fn validate(schema: &Value, new: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let mut budget = RUNTIME_BUDGET;
    walk(schema, new, old, "", errs, &mut budget, 0);
}

fn walk(
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
    budget: &mut u64,
    depth: usize,
) {
    if depth > 128 || !s.is_object() || v.is_null() || *budget == 0 {
        return;
    }
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        for r in rules {
            if !eval_rule(s, r, v, old, path, errs, budget) {
                return;
            }
        }
    }
    let key = |p: &str, k: &str| if p.is_empty() { k.to_string() } else { format!("{p}.{k}") };
    match v {
        Value::Object(m) => {
            let props = s.get("properties").and_then(Value::as_object);
            let ap = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if path.is_empty() && k == "metadata" {
                    continue;
                }
                let cs = match props {
                    Some(p) => p.get(k),
                    None => ap,
                };
                if let Some(cs) = cs {
                    let oc = old.and_then(|o| o.get(k));
                    walk(cs, child, oc, &key(path, k), errs, budget, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            let Some(items) = s.get("items").filter(|i| i.is_object()) else { return };
            let map_keys: Option<Vec<&str>> = (s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map"))
                .then(|| {
                    s.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default()
                });
            let olds = old.and_then(Value::as_array);
            for (i, child) in a.iter().enumerate() {
                let oc = match (&map_keys, olds) {
                    (Some(keys), Some(olds)) => olds.iter().find(|o| keys.iter().all(|k| o.get(*k) == child.get(*k))),
                    _ => None,
                };
                walk(items, child, oc, &format!("{path}[{i}]"), errs, budget, depth + 1);
            }
        }
        _ => {}
    }
}

/// Evaluate one rule; false when the budget ran out (no further rules run).
fn eval_rule(
    s: &Value,
    r: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
    budget: &mut u64,
) -> bool {
    let Some(src) = r.get("rule").and_then(Value::as_str) else { return true };
    let sty = Value::from(s.get("type").and_then(Value::as_str).unwrap_or_default());
    let Ok(prog) = compile(src) else { return true };
    let transition = prog.references().has_variable("oldSelf");
    if transition && old.is_none() {
        return true;
    }
    let cost = size(v) + old.map(size).unwrap_or(0);
    if cost > *budget {
        *budget = 0;
        errs.push(FieldError::invalid(
            path,
            sty,
            "validation failed due to running out of cost budget, no further validation rules will be run",
        ));
        return false;
    }
    *budget -= cost;
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", to_cel(v));
    if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(o));
    }
    let rule_text = src.trim().to_string();
    let message = r.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
    let default_msg = || match message {
        Some(m) => m.to_string(),
        None => format!("failed rule: {rule_text}"),
    };
    let mut fpath = path.to_string();
    if let Some(fp) = r.get("fieldPath").and_then(Value::as_str).filter(|f| !f.is_empty()) {
        fpath.push_str(&fp.replace("['", "[").replace("']", "]"));
        if path.is_empty() {
            fpath = fpath.trim_start_matches('.').to_string();
        }
    }
    let reason = r.get("reason").and_then(Value::as_str);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prog.execute(&ctx)));
    match result {
        Ok(Ok(cel::Value::Bool(true))) => {}
        Ok(Ok(cel::Value::Bool(false))) => {
            let msg = r
                .get("messageExpression")
                .and_then(Value::as_str)
                .and_then(|m| compile(m).ok())
                .and_then(|p| match p.execute(&ctx) {
                    Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                        Some(s.trim().to_string())
                    }
                    _ => None,
                })
                .unwrap_or_else(default_msg);
            errs.push(match reason {
                Some("FieldValueForbidden") => FieldError::forbidden(fpath, msg),
                Some("FieldValueRequired") => FieldError::required(fpath, msg),
                Some("FieldValueDuplicate") => FieldError::new(FieldErrorType::Duplicate, fpath, Some(sty), ""),
                _ => FieldError::invalid(fpath, sty, msg),
            });
        }
        Ok(Ok(_)) => errs.push(FieldError::invalid(path, sty, format!("{rule_text}: rule did not evaluate to a bool"))),
        // A function or macro this CEL library lacks (Kubernetes' libraries, optionals): the rule
        // cannot be judged here, and upstream's type check would have refused a rule that is
        // really wrong when the CRD was written, so it is skipped rather than failing the write.
        Ok(Err(
            cel::ExecutionError::UndeclaredReference(_)
            | cel::ExecutionError::NoSuchOverload(_)
            | cel::ExecutionError::NotSupportedAsMethod { .. },
        )) => tracing::debug!(rule = %rule_text, "CEL rule uses what this CEL library lacks; skipped"),
        Ok(Err(e)) => errs.push(FieldError::invalid(path, sty, format!("{rule_text}: {e}"))),
        Err(_) => errs.push(FieldError::invalid(path, sty, format!("{rule_text}: evaluation failed"))),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(schema: &Value, new: Value, old: Option<Value>) -> Vec<String> {
        let mut e = vec![];
        validate(schema, &new, old.as_ref(), &mut e);
        e.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_messages_reasons_and_transitions() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "message": "min must not exceed max"},
            {"rule": "self.name.startsWith('x')", "messageExpression": "'name ' + self.name + ' must start with x'", "fieldPath": ".name"},
            {"rule": "self.max < 100", "reason": "FieldValueForbidden"},
        ],
        "properties": {
            "min": {"type": "integer"}, "max": {"type": "integer"}, "name": {"type": "string"},
            "immutable": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}]},
        }}}});
        let ok = json!({"spec": {"min": 1, "max": 2, "name": "xa", "immutable": "a"}});
        assert!(run(&s, ok.clone(), None).is_empty());
        assert_eq!(
            run(&s, json!({"spec": {"min": 300, "max": 200, "name": "b"}}), None),
            [
                "spec: Invalid value: \"object\": min must not exceed max",
                "spec.name: Invalid value: \"object\": name b must start with x",
                "spec: Forbidden: failed rule: self.max < 100",
            ]
        );
        let changed = json!({"spec": {"min": 1, "max": 2, "name": "xa", "immutable": "b"}});
        assert!(run(&s, changed.clone(), None).is_empty(), "transition rules need an old value");
        assert_eq!(
            run(&s, changed, Some(ok.clone())),
            ["spec.immutable: Invalid value: \"string\": Value is immutable"]
        );
        assert!(run(&s, ok.clone(), Some(ok)).is_empty());
    }

    #[test]
    fn missing_library_functions_skip_but_runtime_errors_fail() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.items.isSorted()"},
                {"rule": "oldSelf.optMap(o, o == self).orValue(true)", "optionalOldSelf": true},
                {"rule": "self.n / self.d > 0"},
            ],
            "properties": {"items": {"type": "array", "items": {"type": "integer"}}, "n": {"type": "integer"}, "d": {"type": "integer"}}}}});
        let v = json!({"spec": {"items": [2, 1], "n": 1, "d": 0}});
        let got = run(&s, v.clone(), Some(v));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("spec: Invalid value: \"object\": self.n / self.d > 0: "), "{got:?}");
    }

    #[test]
    fn bad_rules_are_refused_at_crd_time() {
        let s = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==="}, {"rule": "true", "reason": "Nope"}]});
        let mut e = vec![];
        check_rules(&s, "x", &mut e, 0);
        assert_eq!(e.len(), 2);
        assert!(e[0].to_string().starts_with("x.x-kubernetes-validations[0].rule: Invalid value: "), "{}", e[0]);
        assert!(e[0].to_string().contains("compilation failed: "));
        assert!(e[1].to_string().starts_with("x.x-kubernetes-validations[1].reason: Unsupported value: \"Nope\""));
    }
}
