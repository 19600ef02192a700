//! A part of CEL's type check done when a CRD is written: a rule selecting a field the schema
//! lacks (`self.nope`, `oldSelf.spec.nope`, `has(self.nope)`) is refused with cel-go's
//! `undefined field` error, as kube-apiserver compiles rules against the schema's declared types.
//!
//! Only selections rooted at `self`/`oldSelf` through objects with declared `properties` are
//! checked; anything whose type is open (`x-kubernetes-preserve-unknown-fields`, an
//! `additionalProperties` map's keys, embedded resources' metadata, lists, escaped property
//! names) is let through, so no rule upstream accepts is refused here.

use cel::common::ast::Expr;
use cel::parser::Parser;
use serde_json::Value;

/// Walk no deeper than this into an expression (the parser refuses far less nesting already).
const MAX_DEPTH: usize = 256;

/// cel-go's `undefined field` error for the first selection of `src` naming a field `schema`
/// (the schema `self` is bound to) lacks, with its location and the source line marked.
pub fn undefined_field(src: &str, schema: &Value) -> Option<String> {
    let (expr, info) = std::panic::catch_unwind(|| Parser::new().parse_with_source_info(src)).ok()?.ok()?;
    let mut found: Option<(u64, String)> = None;
    walk(&expr, schema, 0, &mut found);
    let (id, field) = found?;
    let (start, _) = info.offset_for(id)?;
    // The offset counts bytes; cel-go prints a 1-based line and a column in characters.
    let before = src.get(..start as usize)?;
    let line_no = before.matches('\n').count() + 1;
    let col0 = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0);
    let line = src.split('\n').nth(line_no - 1).unwrap_or_default().replace('\t', " ");
    let mut out = format!("ERROR: <input>:{line_no}:{}: undefined field '{field}'", col0 + 1);
    if line.len() <= MAX_SNIPPET {
        // cel-go marks the column with dots, full-width ones under multi-byte characters.
        let wide = |c: char| c.len_utf8() > 1;
        let dots: String = line.chars().take(col0).map(|c| if wide(c) { '．' } else { '.' }).collect();
        let caret = if line.chars().nth(col0).is_some_and(wide) { '＾' } else { '^' };
        out.push_str(&format!("\n | {line}\n | {dots}{caret}"));
    }
    Some(out)
}

/// cel-go leaves out the source line when it is longer than this (bytes).
const MAX_SNIPPET: usize = 16384;

fn walk(e: &cel::IdedExpr, schema: &Value, depth: usize, found: &mut Option<(u64, String)>) {
    if found.is_some() || depth > MAX_DEPTH {
        return;
    }
    match &e.expr {
        Expr::Select(_) => {
            // The chain `root.f1.f2...`, innermost selection first.
            let mut chain: Vec<(u64, &str)> = Vec::new();
            let mut cur = e;
            while let Expr::Select(s) = &cur.expr {
                chain.push((cur.id, s.field.as_str()));
                cur = &s.operand;
            }
            chain.reverse();
            match &cur.expr {
                Expr::Ident(root) if root == "self" || root == "oldSelf" => check_chain(&chain, schema, found),
                _ => walk(cur, schema, depth + 1, found),
            }
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, schema, depth + 1, found);
            }
            for a in &c.args {
                walk(a, schema, depth + 1, found);
            }
        }
        Expr::Comprehension(c) => {
            for x in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                walk(x, schema, depth + 1, found);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| walk(x, schema, depth + 1, found)),
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(me) => {
                        walk(&me.key, schema, depth + 1, found);
                        walk(&me.value, schema, depth + 1, found);
                    }
                    cel::common::ast::EntryExpr::StructField(sf) => walk(&sf.value, schema, depth + 1, found),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(sf) = &entry.expr {
                    walk(&sf.value, schema, depth + 1, found);
                }
            }
        }
        _ => {}
    }
}

/// Follow `chain` through `schema`; record the first field a closed object lacks.
fn check_chain(chain: &[(u64, &str)], schema: &Value, found: &mut Option<(u64, String)>) {
    let mut node = schema;
    for (id, field) in chain {
        if field.contains("__")
            || node.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
        {
            return;
        }
        let embedded = node.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
        if embedded && matches!(*field, "apiVersion" | "kind" | "metadata") {
            return;
        }
        if *field == "metadata" {
            return;
        }
        if node.get("type").and_then(Value::as_str) != Some("object") {
            return;
        }
        match node.get("properties").and_then(Value::as_object) {
            Some(props) => match props.get(*field) {
                Some(next) => node = next,
                None => {
                    *found = Some((*id, field.to_string()));
                    return;
                }
            },
            None => match node.get("additionalProperties") {
                Some(ap) if ap.is_object() => node = ap,
                _ => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "inner": {"type": "object", "properties": {"a": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}},
            "foo-bar": {"type": "string"}}})
    }

    #[test]
    fn undefined_fields_are_reported_like_cel_go() {
        assert_eq!(
            undefined_field("self.nope > 0", &schema()).as_deref(),
            Some("ERROR: <input>:1:5: undefined field 'nope'\n | self.nope > 0\n | ....^")
        );
        assert_eq!(
            undefined_field("self.replicas > 0 &&\n  oldSelf.inner.b == 'x'", &schema()).as_deref(),
            Some("ERROR: <input>:2:16: undefined field 'b'\n |   oldSelf.inner.b == 'x'\n | ...............^")
        );
        assert!(undefined_field("has(self.gone)", &schema()).is_some());
        assert_eq!(
            undefined_field("'é' == self.nope", &schema()).as_deref(),
            Some("ERROR: <input>:1:12: undefined field 'nope'\n | 'é' == self.nope\n | .．.........^")
        );
        assert!(undefined_field("self.items.all(i, size(self.inner.zz) > 0)", &schema()).is_some());
    }

    #[test]
    fn open_types_and_known_fields_pass() {
        for ok in [
            "self.replicas > 0",
            "self.inner.a == 'x'",
            "self.labels.anything == 'y'",
            "self.free.whatever.deeper == 1",
            "self.items.all(i, i.n != '')",
            "self.foo__dash__bar == ''",
            "self.metadata.name == 'x'",
            "has(self.inner) && self.inner.a.size() > 0",
            "[1, 2].exists(x, x == self.replicas)",
        ] {
            assert_eq!(undefined_field(ok, &schema()), None, "{ok}");
        }
        assert_eq!(undefined_field("self.a.b.c", &json!({"type": "string"})), None, "other type errors are not ours");
    }
}
