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
//! Rules run on a stack grown for them, their expression trees at most [`MAX_EXPRESSION_DEPTH`]
//! deep, and the budget is charged the larger of the value's size and an upper bound of the
//! rule's work on it (nested comprehensions multiply), so a rule that would run for hours or
//! build huge lists is stopped before it starts.
//!
//! Known differences: the only static type check at CRD creation is [`super::cel_check`]'s (a
//! selection of a field the schema lacks), no estimated-cost rejection of CRDs, and
//! Kubernetes' CEL libraries (lists, regex, url, quantity, IP/CIDR, format) are not available;
//! `optionalOldSelf` rules are skipped on create as ordinary transition rules; a rule that calls
//! a function this library lacks is skipped (not failed) when evaluated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr};
use cel::{Context, IdedExpr, Program};
use serde_json::{Value, json};

use crate::errors::{FieldError, FieldErrorType};

/// Upstream's per-request runtime budget (`RuntimeCELCostBudget`), here in visited value nodes.
pub const RUNTIME_BUDGET: u64 = 10_000_000;

const REASONS: &[&str] = &["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

/// The deepest expression tree a rule may have (cel-go's parser default recursion limit). Deeper
/// trees are refused when the CRD is written: the parser, the interpreter and the tree's drop
/// all recurse once per level.
pub const MAX_EXPRESSION_DEPTH: usize = 250;

/// The stack compiling and evaluating rules runs on (grown on demand, committed as touched): the
/// interpreter needs tens of KiB per level in unoptimized builds, far past a 2 MiB worker stack.
const RULE_STACK: usize = 64 << 20;
/// Compiling a 64 KiB source of chained operators recurses once per operator before the depth
/// can be checked.
const PARSE_STACK: usize = 512 << 20;

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
    // A deep tree is built, measured and (when refused) dropped on a stack that holds it.
    let p = stacker::grow(PARSE_STACK, || {
        let p = std::panic::catch_unwind(|| Program::compile(src))
            .map_err(|_| "expression could not be parsed".to_string())?
            .map_err(|e| e.to_string())?;
        if expression_depth(p.expression()) > MAX_EXPRESSION_DEPTH {
            return Err(format!("expression recursion limit exceeded: {MAX_EXPRESSION_DEPTH}"));
        }
        Ok(p)
    })?;
    let p = Arc::new(p);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 4096 {
        c.clear();
    }
    c.insert(src.to_string(), p.clone());
    Ok(p)
}

/// The direct subexpressions of `e`.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(c) => c.target.as_deref().into_iter().chain(&c.args).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m.entries.iter().flat_map(entry).collect(),
        Expr::Struct(st) => st.entries.iter().flat_map(entry).collect(),
        Expr::Select(sel) => vec![&*sel.operand],
        _ => vec![],
    }
}

fn entry(e: &IdedEntryExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
    }
}

/// The depth of an expression tree, without recursion.
fn expression_depth(root: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        stack.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    max
}

/// What bounds the work of a rule on one value: its nodes, its longest list or map, its longest
/// string.
#[derive(Clone, Copy, Default)]
struct Stats {
    nodes: u64,
    longest: u64,
    longest_string: u64,
}

fn stats(v: &Value, into: &mut Stats) {
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        into.nodes += 1;
        match x {
            Value::Array(a) => {
                into.longest = into.longest.max(a.len() as u64);
                stack.extend(a);
            }
            Value::Object(m) => {
                into.longest = into.longest.max(m.len() as u64);
                stack.extend(m.values());
            }
            Value::String(s) => into.longest_string = into.longest_string.max(s.len() as u64),
            _ => {}
        }
    }
}

/// An upper bound of the work evaluating `e` does, in the budget's units: one per expression
/// node, a comprehension's body once per element of its range (a range's length bounded by the
/// longest collection in the data, or the literal's length), and a concatenation a tenth of the
/// longest string (cel-go's string traversal factor). Nested comprehensions multiply, so a rule
/// that would run for hours is refused before it runs.
fn estimate(e: &IdedExpr, st: &Stats) -> u64 {
    match &e.expr {
        Expr::Comprehension(c) => {
            let body = estimate(&c.loop_cond, st).saturating_add(estimate(&c.loop_step, st));
            estimate(&c.iter_range, st)
                .saturating_add(estimate(&c.accu_init, st))
                .saturating_add(range_len(&c.iter_range, st).saturating_mul(body))
                .saturating_add(estimate(&c.result, st))
        }
        Expr::Call(c) => {
            let own = if c.func_name == "_+_" { 1 + st.longest_string / 10 } else { 1 };
            children(e).into_iter().fold(own, |acc, x| acc.saturating_add(estimate(x, st)))
        }
        _ => children(e).into_iter().fold(1u64, |acc, x| acc.saturating_add(estimate(x, st))),
    }
}

/// An upper bound of the number of elements `e` yields when iterated.
fn range_len(e: &IdedExpr, st: &Stats) -> u64 {
    match &e.expr {
        Expr::List(l) => l.elements.len() as u64,
        Expr::Map(m) => m.entries.len() as u64,
        Expr::Call(c) if c.func_name == "_+_" && c.args.len() == 2 => {
            range_len(&c.args[0], st).saturating_add(range_len(&c.args[1], st))
        }
        // map and filter yield at most one element per element of their range.
        Expr::Comprehension(c) => range_len(&c.iter_range, st),
        _ => st.longest.max(1),
    }
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

/// Evaluate every rule under `schema` on `new` (with `old` for transition rules).
pub fn validate(schema: &Value, new: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let mut budget = RUNTIME_BUDGET;
    stacker::grow(RULE_STACK, || walk(schema, new, old, "", errs, &mut budget, 0));
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
    let mut st = Stats::default();
    stats(v, &mut st);
    if let Some(o) = old {
        stats(o, &mut st);
    }
    let cost = st.nodes.max(estimate(prog.expression(), &st));
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
                .filter(|p| estimate(p.expression(), &st) <= *budget)
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

    #[test]
    fn deep_expressions_are_refused_and_shallow_ones_evaluate_on_a_small_stack() {
        // 20,000 chained additions overflowed the stack while parsing (the server aborted).
        let deep = format!("1{} > 0", "+1".repeat(20_000));
        let s = json!({"type": "object", "x-kubernetes-validations": [{"rule": deep}]});
        let mut e = vec![];
        check_rules(&s, "x", &mut e, 0);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].to_string().contains("expression recursion limit exceeded: 250"), "{}", e[0]);
        // 200 levels are allowed, and evaluate on a 2 MiB thread (they overflowed it before).
        let chain = format!("self.n{} > 0", " + 1".repeat(200));
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": chain}], "properties": {"n": {"type": "integer"}}}}});
        let got = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || run(&s, json!({"spec": {"n": -500}}), None))
            .unwrap()
            .join()
            .expect("evaluation overflowed the stack");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("spec: Invalid value: \"object\": failed rule: self.n + 1"), "{got:?}");
    }

    #[test]
    fn nested_comprehensions_over_large_lists_run_out_of_budget_before_running() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))"}],
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}}}}});
        let small = json!({"spec": {"l": [1, 2, 3]}});
        assert!(run(&s, small, None).is_empty());
        // 300^3 iterations: hours unoptimized. Refused at once.
        let big = json!({"spec": {"l": (0..300).collect::<Vec<_>>()}});
        assert_eq!(
            run(&s, big, None),
            [
                "spec: Invalid value: \"object\": validation failed due to running out of cost budget, no further validation rules will be run"
            ]
        );
        // Building lists of huge strings: charged per concatenated string.
        let s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.l.map(x, self.s + self.s).size() > 0"}],
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}, "s": {"type": "string"}}}}});
        let big = json!({"spec": {"l": (0..20_000).collect::<Vec<_>>(), "s": "x".repeat(100_000)}});
        assert_eq!(run(&s, big, None).len(), 1);
    }
}
