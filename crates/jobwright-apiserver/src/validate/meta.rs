//! ObjectMeta, names, labels, annotations and label selectors, as upstream's
//! `apimachinery/pkg/api/validation` and `apimachinery/pkg/apis/meta/v1/validation`.
//!
//! Message strings follow Kubernetes 1.33 (the version k8s-openapi's `v1_33` feature describes):
//! `must be no more than 63 characters`, `a qualified name must consist of ...`.

use serde_json::{Value, json};

use super::ErrorList;
use super::json::{arr_of, at, child, index, obj_of, str_of, string_map};
use crate::errors::{FieldError, FieldErrorType};

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Upstream's total annotation size limit (`TotalAnnotationSizeLimitB`), 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Upstream's "field is immutable" message.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
/// Upstream's `IsNegativeErrorMsg`.
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// The regexes above as byte matchers (every write checks names and labels: a regex search
/// cost more than the rest of a label's check). Tests pin each to its regex.
mod matches {
    fn lower_alnum(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit()
    }

    /// `first`, then `mid`s, then `last` (a single byte must pass `first` and `last`).
    fn ends_and_middle(v: &str, first: fn(u8) -> bool, mid: fn(u8) -> bool, last: fn(u8) -> bool) -> bool {
        match v.as_bytes() {
            [] => false,
            [b] => first(*b) && last(*b),
            [a, middle @ .., z] => first(*a) && last(*z) && middle.iter().all(|b| mid(*b)),
        }
    }

    /// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
    pub fn dns1123_label(v: &str) -> bool {
        ends_and_middle(v, lower_alnum, |b| lower_alnum(b) || b == b'-', lower_alnum)
    }

    /// `^L(\.L)*$` for the DNS-1123 label `L`.
    pub fn dns1123_subdomain(v: &str) -> bool {
        v.split('.').all(dns1123_label)
    }

    /// `^[a-z]([-a-z0-9]*[a-z0-9])?$`
    pub fn dns1035_label(v: &str) -> bool {
        ends_and_middle(v, |b| b.is_ascii_lowercase(), |b| lower_alnum(b) || b == b'-', lower_alnum)
    }

    /// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
    pub fn qualified_name(v: &str) -> bool {
        let alnum = |b: u8| b.is_ascii_alphanumeric();
        ends_and_middle(v, alnum, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'), alnum)
    }

    /// `^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
    pub fn label_value(v: &str) -> bool {
        v.is_empty() || qualified_name(v)
    }
}

/// Upstream's `RegexError`: the message, the examples and the regex.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

/// Upstream's `MaxLenError`.
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream's `InclusiveRangeError`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// `IsDNS1123Label`.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = vec![];
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches::dns1123_label(v) {
        if matches::dns1123_subdomain(v) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = vec![];
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches::dns1123_subdomain(v) {
        let fmt = format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*");
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR, &fmt, &["example.com"]));
    }
    errs
}

/// `IsDNS1035Label`.
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = vec![];
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches::dns1035_label(v) {
        errs.push(regex_error(DNS1035_LABEL_ERR, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    errs
}

/// `IsQualifiedName` (label keys, annotation keys, finalizers, condition types).
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = vec![];
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches::qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `IsValidLabelValue`.
pub fn is_valid_label_value(v: &str) -> Vec<String> {
    let mut errs = vec![];
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches::label_value(v) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// A name validator: `(name, prefix) -> messages`, as upstream's `ValidateNameFunc`.
pub type NameFn = fn(&str, bool) -> Vec<String>;

fn mask_trailing_dash(name: &str, prefix: bool) -> String {
    if prefix && name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 1])
    } else {
        name.to_string()
    }
}

/// `NameIsDNSSubdomain` (most kinds, Jobs and CronJobs via `ValidateReplicationControllerName`).
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    is_dns1123_subdomain(&mask_trailing_dash(name, prefix))
}

/// `NameIsDNSLabel` (namespaces).
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    is_dns1123_label(&mask_trailing_dash(name, prefix))
}

/// `ValidateNonnegativeField`.
pub fn nonnegative(v: i64, path: &str) -> ErrorList {
    if v < 0 { vec![FieldError::invalid(path, json!(v), IS_NEGATIVE)] } else { vec![] }
}

/// `ValidateImmutableField`: `Invalid value: <new>: field is immutable` when the values differ.
/// A JSON `null` and a missing field are the same (Go's nil).
pub fn immutable(new: Option<&Value>, old: Option<&Value>, path: &str) -> ErrorList {
    let n = new.filter(|v| !v.is_null());
    let o = old.filter(|v| !v.is_null());
    if n != o { vec![FieldError::invalid(path, n.cloned().unwrap_or(Value::Null), FIELD_IMMUTABLE)] } else { vec![] }
}

/// `ValidateLabels` on a `map[string]string` field.
pub fn validate_labels(labels: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = vec![];
    if let Some(v) = labels
        && !v.is_null()
        && !v.is_object()
    {
        return vec![FieldError::invalid(path, v.clone(), "must be a map of strings")];
    }
    for (k, v) in string_map(labels) {
        errs.extend(is_qualified_name(&k).into_iter().map(|m| FieldError::invalid(path, json!(k), m)));
        errs.extend(is_valid_label_value(&v).into_iter().map(|m| FieldError::invalid(path, json!(v), m)));
    }
    errs
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitive), total size ≤ 256 KiB.
pub fn validate_annotations(annotations: Option<&Value>, path: &str) -> ErrorList {
    let mut errs = vec![];
    let mut size = 0usize;
    for (k, v) in string_map(annotations) {
        errs.extend(is_qualified_name(&k.to_lowercase()).into_iter().map(|m| FieldError::invalid(path, json!(k), m)));
        size += k.len() + v.len();
    }
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Upstream's `field.TooLong` (`Too long: must have at most N bytes`).
pub fn too_long(path: &str, max: usize) -> FieldError {
    FieldError::new(FieldErrorType::TooLong, path, None, format!("must have at most {max} bytes"))
}

/// Upstream's `field.TooLongMaxLength` (`Too long: may not be longer than N`).
pub fn too_long_max_length(path: &str, max: usize) -> FieldError {
    FieldError::new(FieldErrorType::TooLong, path, None, format!("may not be longer than {max}"))
}

/// Upstream's `field.TooMany` (`Too many: 21: must have at most 20 items`).
pub fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    FieldError::new(FieldErrorType::TooMany, path, Some(json!(actual)), format!("must have at most {max} items"))
}

/// `ValidateFinalizers` (generic part): qualified names, and not both orphan and foreground.
pub fn validate_finalizers(finalizers: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    let (mut orphan, mut foreground) = (false, false);
    for f in finalizers {
        let s = f.as_str().unwrap_or_default();
        errs.extend(is_qualified_name(s).into_iter().map(|m| FieldError::invalid(path, json!(s), m)));
        orphan |= s == "orphan";
        foreground |= s == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(FieldError::invalid(
            path,
            Value::Array(finalizers.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `ValidateOwnerReferences`.
pub fn validate_owner_references(refs: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    let mut first_controller = String::new();
    for r in refs {
        let api_version = str_of(r, "apiVersion").unwrap_or_default();
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() || api_version.split('/').count() > 2 {
            errs.push(FieldError::invalid(child(path, "apiVersion"), json!(api_version), "version must not be empty"));
        }
        for (k, msg) in [("kind", "must not be empty"), ("name", "must not be empty"), ("uid", "must not be empty")] {
            let v = str_of(r, k).unwrap_or_default();
            if v.is_empty() {
                errs.push(FieldError::invalid(child(path, k), json!(v), msg));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let cur = format!("{}/{}", str_of(r, "kind").unwrap_or_default(), str_of(r, "name").unwrap_or_default());
            if first_controller.is_empty() {
                first_controller = cur;
            } else {
                errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.to_vec()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {cur}"
                    ),
                ));
            }
        }
    }
    errs
}

/// `ValidateObjectMeta` for `obj.metadata`: name (or generateName), namespace presence, generation,
/// labels, annotations, ownerReferences, finalizers.
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_fn: NameFn) -> ErrorList {
    let p = "metadata";
    let null = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&null);
    let mut errs = vec![];
    let generate_name = str_of(meta, "generateName").unwrap_or_default();
    if !generate_name.is_empty() {
        for m in name_fn(generate_name, true) {
            errs.push(FieldError::invalid(child(p, "generateName"), json!(generate_name), m));
        }
    }
    let name = str_of(meta, "name").unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(child(p, "name"), "name or generateName is required"));
    } else {
        for m in name_fn(name, false) {
            errs.push(FieldError::invalid(child(p, "name"), json!(name), m));
        }
    }
    let ns = str_of(meta, "namespace").unwrap_or_default();
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required(child(p, "namespace"), ""));
        } else {
            for m in name_is_dns_label(ns, false) {
                errs.push(FieldError::invalid(child(p, "namespace"), json!(ns), m));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(child(p, "namespace"), "not allowed on this type"));
    }
    if let Some(g) = meta.get("generation").and_then(Value::as_i64) {
        errs.extend(nonnegative(g, &child(p, "generation")));
    }
    errs.extend(validate_common_meta(meta, p));
    errs.extend(validate_finalizers(arr_of(meta, "finalizers"), &child(p, "finalizers")));
    errs
}

fn validate_common_meta(meta: &Value, p: &str) -> ErrorList {
    let mut errs = validate_labels(meta.get("labels"), &child(p, "labels"));
    errs.extend(validate_annotations(meta.get("annotations"), &child(p, "annotations")));
    errs.extend(validate_owner_references(arr_of(meta, "ownerReferences"), &child(p, "ownerReferences")));
    errs
}

/// `ValidateObjectMetaUpdate`: name, namespace, uid, creationTimestamp, deletionTimestamp and
/// deletionGracePeriodSeconds are immutable; no new finalizers once deletion started; labels,
/// annotations and ownerReferences stay valid.
pub fn validate_object_meta_update(obj: &Value, old: &Value) -> ErrorList {
    let p = "metadata";
    let null = Value::Null;
    let meta = obj.get("metadata").unwrap_or(&null);
    let old_meta = old.get("metadata").unwrap_or(&null);
    let mut errs = vec![];
    if old_meta.get("deletionTimestamp").is_some_and(|v| !v.is_null()) {
        let old_f: Vec<&str> = arr_of(old_meta, "finalizers").iter().filter_map(Value::as_str).collect();
        let mut extra: Vec<&str> =
            arr_of(meta, "finalizers").iter().filter_map(Value::as_str).filter(|f| !old_f.contains(f)).collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list = extra.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(", ");
            errs.push(FieldError::forbidden(
                child(p, "finalizers"),
                format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            ));
        }
    }
    let new_gen = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
    let old_gen = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if new_gen < old_gen {
        errs.push(FieldError::invalid(child(p, "generation"), json!(new_gen), "must not be decremented"));
    }
    for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        errs.extend(immutable(meta.get(k), old_meta.get(k), &child(p, k)));
    }
    errs.extend(validate_common_meta(meta, p));
    errs
}

/// `ValidateLabelSelector` (`metav1.LabelSelector`).
pub fn validate_label_selector(sel: &Value, path: &str, allow_invalid_values: bool) -> ErrorList {
    let mut errs = validate_labels(sel.get("matchLabels"), &child(path, "matchLabels"));
    for (i, req) in arr_of(sel, "matchExpressions").iter().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        let values = arr_of(req, "values");
        match str_of(req, "operator").unwrap_or_default() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&p, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&p, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => {
                errs.push(FieldError::invalid(child(&p, "operator"), json!(other), "not a valid selector operator"))
            }
        }
        let key = str_of(req, "key").unwrap_or_default();
        errs.extend(is_qualified_name(key).into_iter().map(|m| FieldError::invalid(child(&p, "key"), json!(key), m)));
        if !allow_invalid_values {
            for (j, v) in values.iter().enumerate() {
                let s = v.as_str().unwrap_or_default();
                errs.extend(
                    is_valid_label_value(s)
                        .into_iter()
                        .map(|m| FieldError::invalid(index(&child(&p, "values"), j), json!(s), m)),
                );
            }
        }
    }
    errs
}

/// Whether a `metav1.LabelSelector` (JSON) matches `labels`, as `LabelSelectorAsSelector` +
/// `Matches`: a missing/null selector matches nothing, an empty one everything. `None` when the
/// selector cannot be converted (upstream then skips the match checks).
pub fn selector_matches(sel: Option<&Value>, labels: &[(String, String)]) -> Option<bool> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return Some(false);
    };
    let get = |k: &str| labels.iter().find(|(lk, _)| lk == k).map(|(_, v)| v.as_str());
    for (k, v) in string_map(sel.get("matchLabels")) {
        if get(&k) != Some(v.as_str()) {
            return Some(false);
        }
    }
    for req in arr_of(sel, "matchExpressions") {
        let key = str_of(req, "key")?;
        let values: Vec<&str> = arr_of(req, "values").iter().filter_map(Value::as_str).collect();
        let op = str_of(req, "operator")?;
        if matches!(op, "In" | "NotIn") && values.is_empty() || !is_qualified_name(key).is_empty() {
            return None;
        }
        let ok = match op {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => return None,
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// The labels of `obj.metadata` (or of a template's metadata) as pairs.
pub fn labels_of(obj: &Value) -> Vec<(String, String)> {
    string_map(at(obj, &["metadata", "labels"]))
}

/// Whether `obj.metadata.labels` is a present, non-empty object.
pub fn has_labels(obj: &Value) -> bool {
    at(obj, &["metadata"]).and_then(|m| obj_of(m, "labels")).is_some_and(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    /// The regexes the matchers stand for (the formats upstream's messages quote), in the
    /// order of [`matchers`].
    static REGEXES: std::sync::LazyLock<Vec<Regex>> = std::sync::LazyLock::new(|| {
        let subdomain = format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*");
        [DNS1123_LABEL_FMT, &subdomain, DNS1035_LABEL_FMT, QUALIFIED_NAME_FMT, LABEL_VALUE_FMT]
            .iter()
            .map(|fmt| Regex::new(&format!("^{fmt}$")).unwrap())
            .collect()
    });

    fn matchers() -> [fn(&str) -> bool; 5] {
        [
            matches::dns1123_label,
            matches::dns1123_subdomain,
            matches::dns1035_label,
            matches::qualified_name,
            matches::label_value,
        ]
    }

    /// Each byte matcher against the regex it stands for.
    fn same_as_the_regexes(v: &str) -> Result<(), TestCaseError> {
        for (n, (m, r)) in matchers().iter().zip(REGEXES.iter()).enumerate() {
            prop_assert_eq!(m(v), r.is_match(v), "matcher {} on {:?}", n, v);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]
        #[test]
        fn matchers_agree_with_the_regexes(v in "[-a-zA-Z0-9_./ \n\u{e9}\u{212a}]{0,8}") {
            same_as_the_regexes(&v)?;
        }

        #[test]
        fn matchers_agree_on_any_string(v in any::<String>()) {
            same_as_the_regexes(&v)?;
        }
    }

    #[test]
    fn matchers_agree_on_edge_cases() {
        for v in ["", "a", "-", "a-", "-a", "a.b", "a..b", ".a", "a.", "A", "1", "a_b", "a\n", "\u{212a}", "é"] {
            same_as_the_regexes(v).unwrap();
        }
    }
}
