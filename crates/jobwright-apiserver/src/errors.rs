//! API errors in kube-apiserver's shape.
//!
//! Every failure the API server returns is a `meta/v1` `Status` object with the same `reason`,
//! `code` and message wording as upstream (`k8s.io/apimachinery/pkg/api/errors`), and every
//! validation failure carries `details.causes[]` built from [`FieldError`]s, which mirror
//! upstream's `field.Error` (`k8s.io/apimachinery/pkg/util/validation/field`).

use serde_json::{Value, json};

use super::registry::ResourceInfo;

/// The kind of a field validation error, as upstream's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    /// `Required value`
    Required,
    /// `Invalid value`
    Invalid,
    /// `Unsupported value`
    NotSupported,
    /// `Forbidden`
    Forbidden,
    /// `Duplicate value`
    Duplicate,
    /// `Too long`
    TooLong,
    /// `Too many`
    TooMany,
    /// `Not found`
    NotFound,
    /// `Internal error`
    Internal,
    /// `Invalid value` with a type mismatch (upstream `FieldValueTypeInvalid`).
    TypeInvalid,
}

impl FieldErrorType {
    /// The `details.causes[].reason` string (upstream `metav1.CauseType`).
    pub fn cause_type(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::NotFound => "FieldValueNotFound",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human text upstream prints for this type.
    pub fn text(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::NotFound => "Not found",
            Self::Internal => "Internal error",
        }
    }
}

/// One validation failure on one field, as upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What went wrong.
    pub kind: FieldErrorType,
    /// The JSON path of the field, upstream style: `spec.template.spec.containers[0].name`.
    pub field: String,
    /// The offending value, printed in the message for the value-carrying types.
    pub value: Option<Value>,
    /// The rule that was broken, in upstream's words.
    pub detail: String,
}

impl FieldError {
    pub fn new(
        kind: FieldErrorType,
        field: impl Into<String>,
        value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self { kind, field: field.into(), value, detail: detail.into() }
    }
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Required, field, None, detail)
    }
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Invalid, field, Some(value), detail)
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Forbidden, field, None, detail)
    }
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        Self::new(FieldErrorType::NotSupported, field, Some(value), format!("supported values: {list}"))
    }
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(FieldErrorType::Duplicate, field, Some(value), "")
    }

    /// Upstream's `ErrorBody()`: the message without the field path.
    pub fn body(&self) -> String {
        let mut s = self.kind.text().to_string();
        let carries_value = !matches!(
            self.kind,
            FieldErrorType::Required | FieldErrorType::Forbidden | FieldErrorType::TooLong | FieldErrorType::Internal
        );
        if carries_value && let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(&format_value(v));
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Values print the way Go's `%#v`-ish formatting in `field.Error` does: strings quoted, numbers
/// and booleans bare, `"null"` (quoted: upstream substitutes the string "null") for nil. The two
/// compound shapes whose Go type is unambiguous print as Go does: an object of strings is a
/// `map[string]string{"a":"b", "c":"d"}` (labels, selectors' matchLabels) and an array of strings a
/// `[]string{"a", "b"}`; anything else as compact JSON.
fn format_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"null\"".to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let mut kv: Vec<(&String, &str)> = m.iter().map(|(k, v)| (k, v.as_str().unwrap_or_default())).collect();
            kv.sort();
            let body = kv.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect::<Vec<_>>().join(", ");
            format!("map[string]string{{{body}}}")
        }
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => {
            let body = a.iter().map(|v| format!("{:?}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(", ");
            format!("[]string{{{body}}}")
        }
        other => other.to_string(),
    }
}

/// `metav1.StatusDetails` as upstream serializes it: `name` and `group` are `omitempty`, so they
/// are absent (not `""`) for core kinds and nameless errors.
fn status_details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = json!({ "kind": kind });
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// Writes object `v` with the keys of `order` first, in that order, then any others (sorted);
/// `value` writes each value.
fn write_ordered(out: &mut String, v: &Value, order: &[&str], value: &dyn Fn(&str, &Value, &mut String)) {
    let Some(m) = v.as_object() else {
        out.push_str(&v.to_string());
        return;
    };
    let keys = order
        .iter()
        .copied()
        .filter(|k| m.contains_key(*k))
        .chain(m.keys().map(String::as_str).filter(|k| !order.contains(k)));
    let mut first = true;
    out.push('{');
    for k in keys {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&Value::from(k).to_string());
        out.push(':');
        value(k, &m[k], out);
    }
    out.push('}');
}

/// An error the API server answers with: an HTTP code and a `Status` body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct StatusError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details`, when upstream sends them.
    pub details: Option<Value>,
    /// `metadata.continue` (an expired continue token's replacement).
    pub list_continue: Option<String>,
}

impl StatusError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None, list_continue: None }
    }

    /// With `metadata.continue` set.
    pub fn with_list_continue(mut self, token: String) -> Self {
        self.list_continue = Some(token);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object for the response body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(c) = &self.list_continue {
            s["metadata"]["continue"] = json!(c);
        }
        s
    }

    /// The response body exactly as kube-apiserver writes it: the keys of `Status`,
    /// `StatusDetails` and `StatusCause` in Go's field order (`kind`, `apiVersion`, `metadata`,
    /// `status`, `message`, `reason`, `details`, `code`), then a newline (Go's `json.Encoder`).
    pub fn to_wire(&self) -> Vec<u8> {
        let s = self.to_status();
        let mut out = String::new();
        let order = ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"];
        write_ordered(&mut out, &s, &order, &|k, v, out| {
            if k == "details" {
                let order = ["name", "group", "kind", "uid", "causes", "retryAfterSeconds"];
                write_ordered(out, v, &order, &|k, v, out| {
                    if k == "causes" && v.is_array() {
                        out.push('[');
                        for (i, c) in v.as_array().into_iter().flatten().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            write_ordered(out, c, &["reason", "message", "field"], &|_, v, out| {
                                out.push_str(&v.to_string())
                            });
                        }
                        out.push(']');
                    } else {
                        out.push_str(&v.to_string());
                    }
                });
            } else {
                out.push_str(&v.to_string());
            }
        });
        out.push('\n');
        out.into_bytes()
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", info.group_resource()))
            .with_details(status_details(name, &info.group, &info.resource))
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", info.group_resource()))
            .with_details(status_details(name, &info.group, &info.resource))
    }

    /// The optimistic-concurrency conflict, word for word as kube-apiserver.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict_msg(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_msg(info: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", info.group_resource()),
        )
        .with_details(status_details(name, &info.group, &info.resource))
    }

    /// 422 Invalid with `details.causes`, as `errors.NewInvalid`.
    pub fn invalid(info: &ResourceInfo, name: &str, errs: &[FieldError]) -> Self {
        let qualified = info.group_kind();
        // Like `ErrorList.ToAggregate()`, the message lists each distinct error once (the causes
        // keep every entry).
        let mut msgs: Vec<String> = vec![];
        for e in errs {
            let m = e.to_string();
            if !msgs.contains(&m) {
                msgs.push(m);
            }
        }
        let list = match msgs.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let message = if list.is_empty() {
            format!("{qualified} \"{name}\" is invalid")
        } else {
            format!("{qualified} \"{name}\" is invalid: {list}")
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.kind.cause_type(), "message": e.body(), "field": e.field}))
            .collect();
        Self::new(422, "Invalid", message).with_details({
            let mut d = status_details(name, &info.group, &info.kind);
            d["causes"] = Value::Array(causes);
            d
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 for a watch or list from a resourceVersion older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type:?}"
            ),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(413, "RequestEntityTooLarge", format!("Request entity too large: limit is {limit}"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 404 for a path that names no served resource, as kube-apiserver's handler answers it
    /// (`NewGenericServerResponse(404, ...)`): the plain message and empty details. The
    /// `UnexpectedServerResponse` cause and the path in parentheses are added by client-go, never
    /// sent by the server.
    pub fn no_route(_path: &str) -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn status_bodies_are_written_as_kube_apiserver_writes_them() {
        let reg = Registry::builtin();
        let pods = reg.get("", "v1", "pods").unwrap();
        let body = String::from_utf8(StatusError::not_found(&pods, "p").to_wire()).unwrap();
        assert_eq!(
            body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"p\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"p\",\"kind\":\"pods\"},\"code\":404}\n"
        );
        let jobs = reg.get("batch", "v1", "jobs").unwrap();
        let e = StatusError::invalid(&jobs, "j", &[FieldError::required("spec.template", "")]);
        let body = String::from_utf8(e.to_wire()).unwrap();
        assert!(
            body.contains("\"details\":{\"name\":\"j\",\"group\":\"batch\",\"kind\":\"Job\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\",\"field\":\"spec.template\"}]},\"code\":422}\n"),
            "{body}"
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed, e.to_status());
        let nf = String::from_utf8(StatusError::no_route("/apis/x/v1/y").to_wire()).unwrap();
        assert_eq!(
            nf,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"the server could not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},\"code\":404}\n"
        );
        let c = StatusError::conflict(&jobs, "j").with_list_continue("t".into());
        assert!(String::from_utf8(c.to_wire()).unwrap().starts_with("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{\"continue\":\"t\"},\"status\":\"Failure\",\"message\":\"Operation cannot be fulfilled on jobs.batch \\\"j\\\": the object has been modified; please apply your changes to the latest version and try again\",\"reason\":\"Conflict\",\"details\":{\"name\":\"j\",\"group\":\"batch\",\"kind\":\"jobs\"},\"code\":409}"));
    }

    #[test]
    fn invalid_message_matches_upstream_shape() {
        let reg = Registry::builtin();
        let jobs = reg.get("batch", "v1", "jobs").unwrap();
        let e = StatusError::invalid(
            &jobs,
            "x",
            &[FieldError::not_supported("spec.template.spec.restartPolicy", json!("Always"), &["OnFailure", "Never"])],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Job.batch \"x\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec.template.spec.restartPolicy");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueNotSupported");
        assert_eq!(s["details"]["kind"], "Job");
        assert_eq!(s["details"]["group"], "batch");
    }

    #[test]
    fn several_causes_are_bracketed_and_core_kinds_unqualified() {
        let reg = Registry::builtin();
        let pods = reg.get("", "v1", "pods").unwrap();
        let e = StatusError::invalid(
            &pods,
            "p",
            &[FieldError::required("spec.containers", ""), FieldError::invalid("metadata.name", json!("A"), "bad")],
        );
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"A\": bad]"
        );
        assert_eq!(StatusError::not_found(&pods, "p").message, "pods \"p\" not found");
        assert_eq!(StatusError::not_found(&pods, "p").details, Some(json!({"name": "p", "kind": "pods"})));
        let labels = FieldError::invalid("l", json!({"b": "2", "a": "1"}), "x");
        assert_eq!(labels.to_string(), "l: Invalid value: map[string]string{\"a\":\"1\", \"b\":\"2\"}: x");
        let list = FieldError::invalid("f", json!(["orphan", "x"]), "y");
        assert_eq!(list.to_string(), "f: Invalid value: []string{\"orphan\", \"x\"}: y");
        assert_eq!(FieldError::invalid("n", Value::Null, "z").to_string(), "n: Invalid value: \"null\": z");
        let jobs = reg.get("batch", "v1", "jobs").unwrap();
        assert_eq!(StatusError::not_found(&jobs, "j").message, "jobs.batch \"j\" not found");
    }
}
