//! Label and field selectors, parsed and matched as kube-apiserver does.
//!
//! # Label selectors
//! [`LabelSelector::parse`] follows `k8s.io/apimachinery/pkg/labels` token for token: the same
//! lexer (whitespace, the special symbols `=`, `!`, `(`, `)`, `,`, `<`, `>`), the same recursive
//! descent parser (`in`/`notin` are keywords only in operator position), the same key and value
//! validation (qualified names, label values) and the same error texts, so a bad `labelSelector`
//! gets the 400 BadRequest kube-apiserver sends, e.g.
//! `unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must consist of ...`.
//! Requirements are kept sorted by key, so [`LabelSelector`]'s `Display` is upstream's canonical
//! `String()` (used by the Job printer's `Selector` column and by `metav1.FormatLabelSelector`).
//!
//! [`LabelSelector::from_label_selector`] converts a `metav1.LabelSelector` object
//! (`matchLabels` + `matchExpressions`) the way `metav1.LabelSelectorAsSelector` does: a missing
//! (null) selector matches nothing, an empty one matches everything.
//!
//! # Field selectors
//! [`FieldSelector::parse`] follows `k8s.io/apimachinery/pkg/fields` (terms `=`, `==`, `!=`,
//! comma-joined, `\`-escapes in values) and then the per-kind field label conversion functions
//! kube-apiserver registers (`pkg/apis/core/v1/conversion.go`, `pkg/apis/batch/v1/conversion.go`,
//! `pkg/apis/events/v1`): an unsupported field is a 400 with
//! `field label not supported: spec.foo` for kinds with a conversion function, and
//! `"spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace"` for the
//! others. [`selectable_fields`] mirrors each registry strategy's `GetAttrs`/`ToSelectableFields`,
//! so a field the conversion accepts but the strategy does not expose (pods' `status.podIPs`)
//! matches only the empty value, as upstream.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::errors::StatusError;
use super::registry::ResourceInfo;

// Label keys and values are validated by the same functions as object metadata
// (k8s.io/apimachinery/pkg/util/validation), so selector and object errors read alike.
use super::validate::meta::{is_qualified_name as qualified_name_errors, is_valid_label_value as label_value_errors};

/// `field.Invalid(path, value, detail).Error()`; Go prints a nil path as `<nil>`.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {value:?}: {detail}")
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A label selector operator (`k8s.io/apimachinery/pkg/selection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1` (integer comparison)
    GreaterThan,
    /// `key<1` (integer comparison)
    LessThan,
}

/// One requirement of a label selector: key, operator and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values, empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Upstream's `NewRequirement`: validates key, operator arity and values. The error is the
    /// aggregate of every problem, formatted as upstream (`[a, b]` when there are several).
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", key, &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(
                "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".to_string(),
            ),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => errs.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                go_string_slice(&values)
            )),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_slice(&values)
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = label_value_errors(v);
            if !v_errs.is_empty() {
                errs.push(invalid(&format!("values[{i}][{key}]"), v, &v_errs.join("; ")));
            }
        }
        match errs.len() {
            0 => Ok(Self { key: key.to_string(), operator, values }),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// Upstream's `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    /// [`matches`](Self::matches) given the value of the requirement's key (`None`: absent).
    fn matches_value(&self, got: Option<&str>) -> bool {
        let contains = |v: &str| self.values.iter().any(|w| w == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => got.is_some_and(contains),
            Operator::NotIn | Operator::NotEquals => got.is_none_or(|v| !contains(v)),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), [want]) = (got, self.values.as_slice()) else { return false };
                match (v.parse::<i64>(), want.parse::<i64>()) {
                    (Ok(have), Ok(want)) => {
                        if self.operator == Operator::GreaterThan {
                            have > want
                        } else {
                            have < want
                        }
                    }
                    _ => false,
                }
            }
        }
    }
}

/// Go's `%v`-ish formatting of a `[]string` in a field error: `[]string{"a", "b"}`.
fn go_string_slice(v: &[String]) -> String {
    format!("[]string{{{}}}", v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "))
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`; values of `in`/`notin` are printed sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        let mut values = self.values.clone();
        values.sort();
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed `labelSelector`: the AND of its requirements, sorted by key. The default value
/// selects everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// `labels.Nothing()`: the selector of a null `metav1.LabelSelector`.
    nothing: bool,
}

impl LabelSelector {
    /// Parse `a=b,c!=d,e in (f,g),!h`; a syntax error is a 400 with upstream's message.
    pub fn parse(s: &str) -> Result<Self, StatusError> {
        Self::parse_str(s).map_err(StatusError::bad_request)
    }

    /// [`parse`](Self::parse) with the bare upstream error text.
    pub fn parse_str(s: &str) -> Result<Self, String> {
        let items = lex(s);
        let mut p = Parser { items, pos: 0 };
        let mut requirements = p.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements, nothing: false })
    }

    /// A selector matching every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector matching no object (upstream `labels.Nothing()`).
    pub fn nothing() -> Self {
        Self { requirements: Vec::new(), nothing: true }
    }

    /// A selector requiring every `key=value` of `set` (upstream `SelectorFromSet`, unvalidated).
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement { key: k.clone(), operator: Operator::Equals, values: vec![v.clone()] })
            .collect();
        Self { requirements, nothing: false }
    }

    /// `metav1.LabelSelectorAsSelector` of a `metav1.LabelSelector` object (`spec.selector` of a
    /// Job, Deployment, PDB...): `null` selects nothing, `{}` selects everything, `matchLabels`
    /// become `=` requirements and `matchExpressions` In/NotIn/Exists/DoesNotExist ones. Errors
    /// carry upstream's text, e.g. `"Foo" is not a valid label selector operator`.
    pub fn from_label_selector(sel: &Value) -> Result<Self, String> {
        if sel.is_null() {
            return Ok(Self::nothing());
        }
        let match_labels = sel.get("matchLabels").and_then(Value::as_object);
        let exprs = sel.get("matchExpressions").and_then(Value::as_array);
        let mut requirements = Vec::new();
        for (k, v) in match_labels.into_iter().flatten() {
            let v = v.as_str().unwrap_or_default().to_string();
            requirements.push(Requirement::new(k, Operator::Equals, vec![v])?);
        }
        for e in exprs.into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let op_str = e.get("operator").and_then(Value::as_str).unwrap_or_default();
            let op = match op_str {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect())
                .unwrap_or_default();
            requirements.push(Requirement::new(key, op, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements, nothing: false })
    }

    /// `metav1.FormatLabelSelector`: the canonical string, `<none>` for an empty (or null)
    /// selector and `<error>` for an invalid one. This is the Job/Deployment `Selector` column.
    pub fn format_label_selector(sel: &Value) -> String {
        match Self::from_label_selector(sel) {
            Err(_) => "<error>".to_string(),
            Ok(s) => {
                let out = s.to_string();
                if out.is_empty() { "<none>".to_string() } else { out }
            }
        }
    }

    /// True when the selector does not restrict anything (`labels.Everything()`).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when every requirement matches `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`matches`](Self::matches) with the labels given by a lookup (no map is built).
    pub fn matches_lookup<'a>(&self, label: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_value(label(&r.key)))
    }

    /// [`matches`](Self::matches) against `metadata.labels` of a JSON object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&labels_of(obj))
    }
}

/// `metadata.labels` of a JSON object as a map (non-string values are ignored).
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default()
}

impl fmt::Display for LabelSelector {
    /// Upstream's `Selector.String()`: requirements joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Upstream's `Lexer`, run to the end (`Parser.scan`).
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            // Longest run of special symbols that still forms a token.
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                let cand = String::from_utf8_lossy(&b[start..=pos]).into_owned();
                if let Some(t) = keyword(&cand) {
                    last = Some((t, pos + 1));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, String::from_utf8_lossy(&b[start..end]).into_owned()));
                }
                None => {
                    let buf = String::from_utf8_lossy(&b[start..pos]).into_owned();
                    out.push((Tok::Error, format!("error expected: keyword found '{buf}'")));
                }
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let lit = String::from_utf8_lossy(&b[start..pos]).into_owned();
            let tok = keyword(&lit).unwrap_or(Tok::Identifier);
            out.push((tok, lit));
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn adjust(ctx: Ctx, tok: Tok) -> Tok {
        if ctx == Ctx::Values && matches!(tok, Tok::In | Tok::NotIn) { Tok::Identifier } else { tok }
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        let (t, l) = &self.items[self.pos.min(self.items.len() - 1)];
        (Self::adjust(ctx, *t), l.clone())
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.lookahead(ctx);
        if self.pos < self.items.len() - 1 {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = op {
            return Requirement::new(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = qualified_name_errors(&lit);
        if !errs.is_empty() {
            return Err(invalid("<nil>", &lit, &errs.join("; ")));
        }
        let (t, _) = self.lookahead(Ctx::Values);
        if (t == Tok::End || t == Tok::Comma) && op != Some(Operator::DoesNotExist) {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `(a,b,c)`; the set is sorted and de-duplicated as upstream's `sets.String`.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut set = std::collections::BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.insert(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set.into_iter().collect()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.insert(String::new());
                        return Ok(set.into_iter().collect());
                    }
                    if t2 == Tok::Comma {
                        set.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field, after the kind's label conversion (`spec.host` becomes `spec.nodeName`).
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// The unescaped value.
    pub value: String,
}

/// A parsed `fieldSelector`, checked against the fields `info`'s kind supports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Which field labels a kind accepts, as the field label conversion function kube-apiserver
/// registers for it. `None`: no function registered, upstream's
/// `DefaultMetaV1FieldSelectorConversion` applies (metadata.name and metadata.namespace only).
pub fn supported_field_labels(info: &ResourceInfo) -> Option<&'static [&'static str]> {
    const POD: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
        "spec.host",
    ];
    const EVENT: &[&str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "metadata.namespace",
        "metadata.name",
    ];
    Some(match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => POD,
        ("", "Node") => &["metadata.name", "spec.unschedulable"],
        ("", "ReplicationController") => &["metadata.name", "metadata.namespace", "status.replicas"],
        ("", "Event") => EVENT,
        // events.k8s.io/v1 selects on the fields of its own shape (`regarding.*`,
        // `reportingController`), mapped to the core ones by [`convert_field_label`]; the core
        // names are accepted too (one storage, as kube-apiserver's).
        ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reportingComponent",
            "source",
            "reason",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reportingController",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        ("", "Namespace") => &["status.phase", "metadata.name"],
        ("", "Secret") => &["type", "metadata.namespace", "metadata.name"],
        ("", "Service") => &["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"],
        ("batch", "Job") => &["metadata.name", "metadata.namespace", "status.successful"],
        ("apps", "ReplicaSet") => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => return None,
    })
}

/// The kind's field label conversion: the canonical label or upstream's error text.
fn convert_field_label(info: &ResourceInfo, label: &str) -> Result<String, String> {
    match supported_field_labels(info) {
        Some(list) => {
            if label == "spec.host" && info.kind == "Pod" && info.group.is_empty() {
                Ok("spec.nodeName".to_string())
            } else if info.group == "events.k8s.io" && list.contains(&label) {
                // Stored events have the core shape: select on its field names.
                Ok(match label.strip_prefix("regarding.") {
                    Some(sub) => format!("involvedObject.{sub}"),
                    None if label == "reportingController" => "reportingComponent".to_string(),
                    None => label.to_string(),
                })
            } else if list.contains(&label) {
                Ok(label.to_string())
            } else {
                Err(format!("field label not supported: {label}"))
            }
        }
        None => match label {
            "metadata.name" | "metadata.namespace" => Ok(label.to_string()),
            _ => {
                Err(format!("{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""))
            }
        },
    }
}

/// Split on unescaped commas (upstream `splitTerms`).
fn split_terms(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
        } else if c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Split a term at its first unescaped operator (upstream `splitTerm`): `(lhs, op, rhs)`.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// Upstream `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(format!("invalid field selector: invalid escape sequence: \\{n}")),
                None => return Err("invalid field selector: invalid escape sequence: \\".to_string()),
            },
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parse and check support; an unsupported field is a 400 as upstream:
    /// `field label not supported: spec.foo`.
    pub fn parse(info: &ResourceInfo, s: &str) -> Result<Self, StatusError> {
        Self::parse_str(info, s).map_err(StatusError::bad_request)
    }

    /// [`parse`](Self::parse) with the bare upstream error text.
    pub fn parse_str(info: &ResourceInfo, s: &str) -> Result<Self, String> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!("invalid selector: '{s}'; can't understand '{part}'"));
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldTerm { field: lhs.to_string(), negated: op == "!=", value });
        }
        for t in &mut terms {
            t.field = convert_field_label(info, &t.field)?;
        }
        Ok(Self { terms })
    }

    /// True when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in upstream's (sorted) order.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// The value an `=`/`==` term requires for `field`, if any (upstream `RequiresExactMatch`);
    /// lets the store narrow a list by name or namespace.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| !t.negated && t.field == field).map(|t| t.value.as_str())
    }

    /// `fields` holds the selectable field values of one object (see [`selectable_fields`]); a
    /// field the object does not expose has the value `""`, as upstream's `fields.Set.Get`.
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.matches_lookup(&|f| fields.get(f).map(String::as_str))
    }

    /// [`matches`](Self::matches) with the fields given by a lookup (no map is built).
    pub fn matches_lookup<'a>(&self, field: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        self.terms.iter().all(|t| {
            let have = field(&t.field).unwrap_or("");
            (have == t.value) != t.negated
        })
    }

    /// [`matches`](Self::matches) against an object, computing its fields with [`selectable_fields`].
    /// Computes only the fields the terms name (no map is built), so it is cheap enough for
    /// every watch event.
    pub fn matches_object(&self, info: &ResourceInfo, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(info, obj, &t.field).unwrap_or_default();
            (have == t.value) != t.negated
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| format!("{}{}{}", t.field, if t.negated { "!=" } else { "=" }, t.value))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The value of one selectable field of `obj` (see [`selectable_fields`]); `None` when the kind
/// does not expose that field.
pub fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    match field {
        "metadata.name" => return Some(str_at(obj, "/metadata/name").to_string()),
        "metadata.namespace" if info.namespaced => return Some(str_at(obj, "/metadata/namespace").to_string()),
        _ => {}
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => Some(match field {
            "spec.nodeName" => str_at(obj, "/spec/nodeName").to_string(),
            "spec.restartPolicy" => str_at(obj, "/spec/restartPolicy").to_string(),
            "spec.schedulerName" => str_at(obj, "/spec/schedulerName").to_string(),
            "spec.serviceAccountName" => str_at(obj, "/spec/serviceAccountName").to_string(),
            "spec.hostNetwork" => {
                let host = obj.pointer("/spec/hostNetwork").and_then(Value::as_bool).unwrap_or(false);
                host.to_string()
            }
            "status.phase" => str_at(obj, "/status/phase").to_string(),
            "status.podIP" => obj
                .pointer("/status/podIPs/0/ip")
                .and_then(Value::as_str)
                .unwrap_or_else(|| str_at(obj, "/status/podIP"))
                .to_string(),
            "status.nominatedNodeName" => str_at(obj, "/status/nominatedNodeName").to_string(),
            _ => return None,
        }),
        ("", "Node") if field == "spec.unschedulable" => {
            Some(obj.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false).to_string())
        }
        ("", "Namespace") if field == "status.phase" => Some(str_at(obj, "/status/phase").to_string()),
        ("", "Secret") if field == "type" => Some(str_at(obj, "/type").to_string()),
        ("", "Service") => match field {
            "spec.clusterIP" => Some(str_at(obj, "/spec/clusterIP").to_string()),
            "spec.type" => Some(str_at(obj, "/spec/type").to_string()),
            _ => None,
        },
        ("", "ReplicationController") | ("apps", "ReplicaSet") if field == "status.replicas" => {
            Some(obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0).to_string())
        }
        ("batch", "Job") if field == "status.successful" => {
            Some(obj.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0).to_string())
        }
        ("" | "events.k8s.io", "Event") => {
            let reference = if obj.get("involvedObject").is_some() { "involvedObject" } else { "regarding" };
            let controller = || {
                let c = str_at(obj, "/reportingController");
                if c.is_empty() { str_at(obj, "/reportingComponent") } else { c }
            };
            Some(match field {
                "reason" => str_at(obj, "/reason").to_string(),
                "type" => str_at(obj, "/type").to_string(),
                "reportingComponent" => controller().to_string(),
                "source" => {
                    let component = obj
                        .pointer("/source/component")
                        .or_else(|| obj.pointer("/deprecatedSource/component"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if component.is_empty() { controller() } else { component }.to_string()
                }
                f => {
                    let sub = f.strip_prefix("involvedObject.")?;
                    if !["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"]
                        .contains(&sub)
                    {
                        return None;
                    }
                    str_at(obj, &format!("/{reference}/{sub}")).to_string()
                }
            })
        }
        _ => None,
    }
}

/// The selectable fields of `obj` with their values, as upstream's `GetAttrs`/`ToSelectableFields`.
///
/// `metadata.name` always, `metadata.namespace` for namespaced kinds, plus per kind:
/// pods (`spec.nodeName`, `spec.restartPolicy`, `spec.schedulerName`, `spec.serviceAccountName`,
/// `spec.hostNetwork` as `"true"`/`"false"`, `status.phase`, `status.podIP` (first of
/// `status.podIPs`), `status.nominatedNodeName`); nodes (`spec.unschedulable`); namespaces
/// (`status.phase`); secrets (`type`); services (`spec.clusterIP`, `spec.type`); jobs
/// (`status.successful`, `"0"` when unset); events of either group, stored in either shape
/// (`involvedObject.*`, `reason`, `reportingComponent`, `source`, `type`).
pub fn selectable_fields(info: &ResourceInfo, obj: &Value) -> BTreeMap<String, String> {
    selectable_field_pairs(info, obj).into_iter().map(|(k, v)| (k.to_string(), v.into_owned())).collect()
}

/// [`selectable_fields`] as borrowed pairs sorted by name, without a map or a copy of each value
/// (what the store's index entry of every write is built from).
pub fn selectable_field_pairs<'a>(info: &ResourceInfo, obj: &'a Value) -> Vec<(&'static str, Cow<'a, str>)> {
    /// The value at `path` (object keys; a step into an array takes its decimal index, as a JSON
    /// pointer does).
    fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
        path.iter().try_fold(v, |v, k| match v {
            Value::Object(m) => m.get(*k),
            Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
    }
    let s = |path: &[&str]| -> &'a str { at(obj, path).and_then(Value::as_str).unwrap_or("") };
    let flag = |path: &[&str]| -> Cow<'a, str> {
        Cow::Borrowed(if at(obj, path).and_then(Value::as_bool).unwrap_or(false) { "true" } else { "false" })
    };
    let mut m: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(12);
    m.push(("metadata.name", Cow::Borrowed(s(&["metadata", "name"]))));
    if info.namespaced {
        m.push(("metadata.namespace", Cow::Borrowed(s(&["metadata", "namespace"]))));
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            m.push(("spec.nodeName", Cow::Borrowed(s(&["spec", "nodeName"]))));
            m.push(("spec.restartPolicy", Cow::Borrowed(s(&["spec", "restartPolicy"]))));
            m.push(("spec.schedulerName", Cow::Borrowed(s(&["spec", "schedulerName"]))));
            m.push(("spec.serviceAccountName", Cow::Borrowed(s(&["spec", "serviceAccountName"]))));
            m.push(("spec.hostNetwork", flag(&["spec", "hostNetwork"])));
            m.push(("status.phase", Cow::Borrowed(s(&["status", "phase"]))));
            let ip = at(obj, &["status", "podIPs", "0", "ip"])
                .and_then(Value::as_str)
                .unwrap_or_else(|| s(&["status", "podIP"]));
            m.push(("status.podIP", Cow::Borrowed(ip)));
            m.push(("status.nominatedNodeName", Cow::Borrowed(s(&["status", "nominatedNodeName"]))));
        }
        ("", "Node") => m.push(("spec.unschedulable", flag(&["spec", "unschedulable"]))),
        ("", "Namespace") => m.push(("status.phase", Cow::Borrowed(s(&["status", "phase"])))),
        ("", "Secret") => m.push(("type", Cow::Borrowed(s(&["type"])))),
        ("", "Service") => {
            m.push(("spec.clusterIP", Cow::Borrowed(s(&["spec", "clusterIP"]))));
            m.push(("spec.type", Cow::Borrowed(s(&["spec", "type"]))));
        }
        ("", "ReplicationController") | ("apps", "ReplicaSet") => {
            let n = at(obj, &["status", "replicas"]).and_then(Value::as_i64).unwrap_or(0);
            m.push(("status.replicas", Cow::Owned(n.to_string())));
        }
        ("batch", "Job") => {
            let n = at(obj, &["status", "succeeded"]).and_then(Value::as_i64).unwrap_or(0);
            m.push(("status.successful", Cow::Owned(n.to_string())));
        }
        ("" | "events.k8s.io", "Event") => {
            // Stored in either shape: core (`involvedObject`, `source`) or events.k8s.io
            // (`regarding`, `deprecatedSource`).
            let reference = if obj.get("involvedObject").is_some() { "involvedObject" } else { "regarding" };
            for (name, f) in [
                ("involvedObject.kind", "kind"),
                ("involvedObject.namespace", "namespace"),
                ("involvedObject.name", "name"),
                ("involvedObject.uid", "uid"),
                ("involvedObject.apiVersion", "apiVersion"),
                ("involvedObject.resourceVersion", "resourceVersion"),
                ("involvedObject.fieldPath", "fieldPath"),
            ] {
                m.push((name, Cow::Borrowed(s(&[reference, f]))));
            }
            m.push(("reason", Cow::Borrowed(s(&["reason"]))));
            let controller = s(&["reportingController"]);
            let controller = if controller.is_empty() { s(&["reportingComponent"]) } else { controller };
            m.push(("reportingComponent", Cow::Borrowed(controller)));
            let component = at(obj, &["source", "component"])
                .or_else(|| at(obj, &["deprecatedSource", "component"]))
                .and_then(Value::as_str)
                .unwrap_or("");
            m.push(("source", Cow::Borrowed(if component.is_empty() { controller } else { component })));
            m.push(("type", Cow::Borrowed(s(&["type"]))));
        }
        _ => {}
    }
    m.sort_unstable_by(|a, b| a.0.cmp(b.0));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).expect_err(s).message
    }

    #[test]
    fn every_operator_matches_as_upstream() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("missing<6", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("  app = web ,  tier in ( front , back )  ", true),
            ("app=", false),
            ("app in ()", false),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(&l), *want, "{s:?}");
        }
        assert!(sel("tier=").matches(&labels(&[("tier", "")])));
        assert!(sel("tier in ()").matches(&labels(&[("tier", "")])));
    }

    #[test]
    fn in_and_notin_are_values_in_value_position() {
        let s = sel("in in (in,notin)");
        assert!(s.matches(&labels(&[("in", "notin")])));
        assert_eq!(s.to_string(), "in in (in,notin)");
    }

    #[test]
    fn canonical_string_sorts_keys_and_values() {
        assert_eq!(sel("z=1,a in (c,b),!m,k").to_string(), "a in (b,c),k,!m,z=1");
        assert_eq!(sel("x in (foo,,baz),y,z notin ()").to_string(), "x in (,baz,foo),y,z notin ()");
    }

    #[test]
    fn syntax_errors_use_upstream_messages() {
        assert_eq!(err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(err(",a"), "found ',', expected: !, identifier, or 'end of string'");
        assert_eq!(err("a in b"), "unable to parse requirement: found 'b' expected: '('");
        assert_eq!(err("a in (b"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(err("a (b)"), "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(err("!=a"), "found '!=', expected: !, identifier, or 'end of string'");
        assert_eq!(err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(err("a=(b)"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(err("a in (=)"), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
        assert_eq!(err("a=!!b"), "unable to parse requirement: found '!', expected: identifier");
        let e = LabelSelector::parse("a b").unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
    }

    #[test]
    fn invalid_keys_and_values_are_rejected_with_field_errors() {
        let e = err("a/b/c=d");
        assert!(
            e.starts_with("unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters"),
            "{e}"
        );
        assert!(e.ends_with("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"), "{e}");
        let e = err("-a=b");
        assert_eq!(
            e,
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let e = err("Example.com/a=b");
        assert!(e.contains("prefix part a lowercase RFC 1123 subdomain"), "{e}");
        let e = err("a=-b");
        assert_eq!(
            e,
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let long = "x".repeat(64);
        assert!(err(&format!("a={long}")).contains("must be no more than 63 characters"));
        assert!(err(&format!("{long}=a")).contains("name part must be no more than 63 characters"));
        assert!(err("n>x").contains("for 'Gt', 'Lt' operators, the value must be an integer"));
        assert!(sel("example.com/app=a.b_c-d").matches(&labels(&[("example.com/app", "a.b_c-d")])));
    }

    #[test]
    fn label_selector_objects_convert_as_label_selector_as_selector() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "gone", "operator": "DoesNotExist"},
                {"key": "env", "operator": "Exists"},
                {"key": "x", "operator": "NotIn", "values": ["y"]},
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,env,!gone,tier in (a,b),x notin (y)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a"), ("env", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(LabelSelector::from_label_selector(&json!({})).unwrap().matches(&BTreeMap::new()));
        let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.matches(&BTreeMap::new()) && !nothing.is_empty());
        assert_eq!(
            LabelSelector::from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}))
                .unwrap_err(),
            "\"Foo\" is not a valid label selector operator"
        );
        let e = LabelSelector::from_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))
            .unwrap_err();
        assert_eq!(e, "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty");
        assert_eq!(
            LabelSelector::format_label_selector(&json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}})),
            "batch.kubernetes.io/controller-uid=u"
        );
        assert_eq!(LabelSelector::format_label_selector(&Value::Null), "<none>");
        assert_eq!(LabelSelector::format_label_selector(&json!({})), "<none>");
    }

    #[test]
    fn field_selectors_parse_match_and_reject_as_upstream() {
        let reg = Registry::builtin();
        let pods = reg.get("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1", "restartPolicy": "Never"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}});
        let f = |s: &str| FieldSelector::parse(&pods, s).unwrap().matches_object(&pods, &pod);
        assert!(f(""));
        assert!(f("spec.nodeName=n1"));
        assert!(f("spec.nodeName==n1,status.phase=Running"));
        assert!(!f("spec.nodeName!=n1"));
        assert!(f("status.phase!=Succeeded"));
        assert!(f("spec.host=n1"), "spec.host is converted to spec.nodeName");
        assert!(f("status.podIP=10.0.0.1"));
        assert!(f("spec.hostNetwork=false"));
        assert!(f("metadata.name=p,metadata.namespace=ns"));
        assert!(!f("status.podIPs=10.0.0.1"), "accepted but not a selectable field: only matches \"\"");
        assert!(f("status.podIPs="));
        // matches_object (no map) agrees with matches over selectable_fields for every field.
        let fields = selectable_fields(&pods, &pod);
        for (k, v) in &fields {
            assert_eq!(field_value(&pods, &pod, k).as_deref(), Some(v.as_str()), "{k}");
        }
        assert_eq!(field_value(&pods, &pod, "status.podIPs"), None);
        let e = FieldSelector::parse(&pods, "spec.foo=bar").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "field label not supported: spec.foo"));
        let e = FieldSelector::parse(&pods, "foo").unwrap_err();
        assert_eq!(e.message, "invalid selector: 'foo'; can't understand 'foo'");
        let e = FieldSelector::parse(&pods, "spec.nodeName=a=b").unwrap_err();
        assert_eq!(e.message, "invalid field selector: unescaped character in value: 61");
        let e = FieldSelector::parse(&pods, "spec.nodeName=a\\x").unwrap_err();
        assert_eq!(e.message, "invalid field selector: invalid escape sequence: \\x");
        let esc = FieldSelector::parse(&pods, "metadata.name=a\\,b").unwrap();
        assert_eq!(esc.requires_exact_match("metadata.name"), Some("a,b"));

        let cm = reg.get("", "v1", "configmaps").unwrap();
        let e = FieldSelector::parse(&cm, "data.x=1").unwrap_err();
        assert_eq!(
            e.message,
            "\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert!(FieldSelector::parse(&cm, "metadata.namespace=default").is_ok());
    }

    #[test]
    fn field_support_per_kind() {
        let reg = Registry::builtin();
        let ok = |g: &str, r: &str, s: &str| FieldSelector::parse(&reg.get(g, "v1", r).unwrap(), s).is_ok();
        assert!(ok("batch", "jobs", "status.successful=1"));
        assert!(!ok("batch", "jobs", "status.failed=1"));
        assert!(ok("", "nodes", "spec.unschedulable=true"));
        assert!(!ok("", "nodes", "metadata.namespace=x"), "upstream's Node conversion omits metadata.namespace");
        assert!(ok("", "namespaces", "status.phase=Active"));
        assert!(ok("", "secrets", "type=Opaque"));
        assert!(ok("", "services", "spec.type=ClusterIP"));
        for g in ["", "events.k8s.io"] {
            assert!(ok(g, "events", "involvedObject.kind=Job,involvedObject.name=x,reason=R,type=Normal,source=s"));
        }
        // events.k8s.io/v1 also selects on its own names (kube-rs's `event_watcher --for`).
        assert!(!ok("", "events", "regarding.kind=Job"), "core/v1 has no regarding");
        assert!(ok("events.k8s.io", "events", "regarding.kind=Job,regarding.name=x,reportingController=c"));
        assert!(!ok("batch", "cronjobs", "spec.suspend=true"));
    }

    #[test]
    fn selectable_fields_cover_events_in_both_shapes_and_jobs() {
        let reg = Registry::builtin();
        let ev = reg.get("", "v1", "events").unwrap();
        let core = json!({"metadata": {"name": "e", "namespace": "ns"}, "involvedObject": {"kind": "Job", "name": "j", "uid": "u"},
            "reason": "Completed", "type": "Normal", "source": {"component": "job-controller"}});
        let f = selectable_fields(&ev, &core);
        assert_eq!(f["involvedObject.kind"], "Job");
        assert_eq!(f["involvedObject.uid"], "u");
        assert_eq!(f["source"], "job-controller");
        assert_eq!(f["involvedObject.namespace"], "");
        let new = json!({"metadata": {"name": "e", "namespace": "ns"}, "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "reason": "Started", "type": "Warning", "reportingController": "kubelet"});
        let new_info = reg.get("events.k8s.io", "v1", "events").unwrap();
        for (k, v) in selectable_fields(&new_info, &new) {
            assert_eq!(field_value(&new_info, &new, &k), Some(v), "{k}");
        }
        let f = selectable_fields(&new_info, &new);
        assert_eq!(f["involvedObject.name"], "p");
        assert_eq!(f["reportingComponent"], "kubelet");
        assert_eq!(f["source"], "kubelet", "source falls back to reportingController");
        let jobs = reg.get("batch", "v1", "jobs").unwrap();
        assert_eq!(selectable_fields(&jobs, &json!({"metadata": {"name": "j"}}))["status.successful"], "0");
        assert_eq!(selectable_fields(&jobs, &json!({"status": {"succeeded": 3}}))["status.successful"], "3");
        let nodes = reg.get("", "v1", "nodes").unwrap();
        let f = selectable_fields(&nodes, &json!({"metadata": {"name": "n"}}));
        assert_eq!(f.len(), 2);
        assert_eq!(f["spec.unschedulable"], "false");
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-1i64..3).prop_map(Value::from),
            "[a-b0]{0,2}".prop_map(Value::from)
        ];
        leaf.prop_recursive(3, 24, 3, |inner| {
            let keys = prop_oneof![
                Just("ip".to_string()),
                Just("0".to_string()),
                Just("component".to_string()),
                Just("name".to_string()),
                "[a-b]{1}"
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, .. Default::default() })]
        /// The index entry's borrowed pairs give every field the value `field_value` (the
        /// selector's own lookup by JSON pointer) gives it, for objects with any values where
        /// the fields are read.
        #[test]
        fn selectable_field_pairs_agree_with_field_value(
            kind in 0usize..8,
            vals in proptest::collection::vec(any_value(), 24),
        ) {
            let reg = Registry::builtin();
            let (group, version, resource) = [
                ("", "v1", "pods"), ("", "v1", "events"), ("events.k8s.io", "v1", "events"), ("batch", "v1", "jobs"),
                ("", "v1", "nodes"), ("", "v1", "namespaces"), ("", "v1", "services"), ("", "v1", "secrets"),
            ][kind];
            let info = reg.get(group, version, resource).unwrap();
            let mut it = vals.into_iter();
            let mut v = || it.next().unwrap();
            let obj = json!({
                "metadata": {"name": v(), "namespace": v()},
                "spec": {"nodeName": v(), "restartPolicy": v(), "hostNetwork": v(), "unschedulable": v(), "clusterIP": v(), "type": v()},
                "status": {"phase": v(), "podIPs": v(), "podIP": v(), "succeeded": v(), "nominatedNodeName": v()},
                "involvedObject": if kind == 1 { v() } else { Value::Null },
                "regarding": v(),
                "reason": v(), "type": v(), "reportingController": v(), "reportingComponent": v(),
                "source": v(), "deprecatedSource": v(),
            });
            let pairs = selectable_field_pairs(&info, &obj);
            proptest::prop_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no name twice");
            for (name, value) in &pairs {
                let looked_up = field_value(&info, &obj, name);
                proptest::prop_assert_eq!(looked_up.as_deref(), Some(value.as_ref()), "{}", name);
            }
            let map = selectable_fields(&info, &obj);
            proptest::prop_assert_eq!(map.len(), pairs.len());
        }
    }
}
