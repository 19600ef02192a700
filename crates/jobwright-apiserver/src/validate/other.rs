//! The other kinds: Namespace (defaults and name rules), Node, Lease, Event, and the generic
//! metadata validation every remaining kind gets.

use serde_json::{Value, json};

use super::json::{at, child, int_of, str_at};
use super::meta::{self, NameFn, nonnegative};
use super::{ErrorList, Operation};
use crate::errors::FieldError;
use crate::registry::ResourceInfo;

fn finish(errs: ErrorList) -> Result<Vec<String>, ErrorList> {
    if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
}

fn meta_rules(obj: &Value, old: Option<&Value>, op: Operation, namespaced: bool, name_fn: NameFn) -> ErrorList {
    match (op, old) {
        (Operation::Create, _) | (_, None) => meta::validate_object_meta(obj, namespaced, name_fn),
        (_, Some(old)) => meta::validate_object_meta_update(obj, old),
    }
}

fn keep_from_old(obj: &mut Value, old: Option<&Value>, op: Operation, has_status: bool) {
    let (Some(old), Some(m)) = (old, obj.as_object_mut()) else { return };
    match op {
        Operation::Update if has_status => {
            m.insert("status".into(), old.get("status").cloned().unwrap_or(json!({})));
        }
        Operation::UpdateStatus => {
            m.insert("spec".into(), old.get("spec").cloned().unwrap_or(json!({})));
        }
        _ => {}
    }
}

/// Namespaces: the `kubernetes.io/metadata.name` label, `spec.finalizers: [kubernetes]` and
/// `status.phase: Active` on create; DNS-label names; finalizers and status kept on updates.
pub fn admit_namespace(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    let name = str_at(obj, &["metadata", "name"]).unwrap_or_default().to_string();
    if let Some(md) = obj.get_mut("metadata").filter(|m| m.is_object()) {
        let labels = super::json::ensure_obj(md, "labels");
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    match (op, old) {
        (Operation::Create, _) | (_, None) => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), json!({"phase": "Active"}));
                let spec = m.entry("spec").or_insert_with(|| json!({}));
                if spec.is_null() {
                    *spec = json!({});
                }
                if spec.is_object() {
                    let mut fins = super::json::arr_of(spec, "finalizers").to_vec();
                    if !fins.iter().any(|f| f == "kubernetes") {
                        fins.push(json!("kubernetes"));
                    }
                    spec["finalizers"] = Value::Array(fins);
                }
            }
        }
        (Operation::Update, Some(old)) => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("spec".into(), old.get("spec").cloned().unwrap_or(json!({})));
            }
            keep_from_old(obj, Some(old), op, true);
        }
        (Operation::UpdateStatus, Some(old)) => keep_from_old(obj, Some(old), op, true),
    }
    let mut errs = meta_rules(obj, old, op, false, meta::name_is_dns_label);
    let fins = obj.get("spec").map(|s| super::json::arr_of(s, "finalizers")).unwrap_or(&[]);
    for (i, f) in fins.iter().enumerate() {
        let f = f.as_str().unwrap_or_default();
        let p = super::json::index("spec.finalizers", i);
        let msgs = meta::is_qualified_name(f);
        errs.extend(msgs.iter().map(|m| FieldError::invalid(&p, json!(f), m.clone())));
        if msgs.is_empty() && f != "kubernetes" && !f.contains('/') {
            errs.push(FieldError::invalid(
                &p,
                json!(f),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    finish(errs)
}

/// Nodes: DNS-subdomain names, cluster-scoped, valid taints. Unlike most kinds, a Node may be
/// created with its status (the kubelet registers that way).
pub fn admit_node(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    keep_from_old(obj, old, op, true);
    let mut errs = meta_rules(obj, old, op, false, meta::name_is_dns_subdomain);
    let taints = obj.get("spec").map(|s| super::json::arr_of(s, "taints")).unwrap_or(&[]);
    errs.extend(validate_taints(taints, "spec.taints"));
    finish(errs)
}

/// `validateNodeTaints`: qualified keys, label values, a known effect, unique (key, effect).
pub fn validate_taints(taints: &[Value], path: &str) -> ErrorList {
    let mut errs = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = super::json::index(path, i);
        let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
        let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
        errs.extend(
            meta::is_qualified_name(key).into_iter().map(|m| FieldError::invalid(child(&p, "key"), json!(key), m)),
        );
        let msgs = meta::is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(child(&p, "value"), json!(value), msgs.join(";")));
        }
        match effect {
            "" => errs.push(FieldError::required(child(&p, "effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(FieldError::not_supported(
                child(&p, "effect"),
                json!(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !seen.insert((key, effect)) {
            errs.push(FieldError::new(
                crate::errors::FieldErrorType::Duplicate,
                &p,
                Some(t.clone()),
                "taints must be unique by key and effect pair",
            ));
        }
    }
    errs
}

/// Leases: `leaseDurationSeconds > 0`, `leaseTransitions >= 0`.
pub fn admit_lease(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    let mut errs = meta_rules(obj, old, op, true, meta::name_is_dns_subdomain);
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(d) = int_of(spec, "leaseDurationSeconds")
        && d <= 0
    {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", json!(d), "must be greater than 0"));
    }
    if let Some(t) = int_of(spec, "leaseTransitions") {
        errs.extend(nonnegative(t, "spec.leaseTransitions"));
    }
    finish(errs)
}

/// Events, as upstream's `ValidateEventCreate`/`ValidateEventUpdate`: the legacy rules for both
/// API groups (namespace agreement; for "new" events with an `eventTime`: reporting controller
/// and instance, action and reason, with their length limits), plus for `events.k8s.io` the strict
/// rules (metadata, `eventTime` required, `type` Normal|Warning, the deprecated fields unset, a
/// series counts from 2) and on update the immutable fields. Error paths use the core/v1 names, as
/// upstream's internal type does.
pub fn admit_event(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, ErrorList> {
    let new_api = !info.group.is_empty();
    let mut errs = legacy_validate_event(obj, new_api);
    if !new_api {
        // Only the generic ObjectMeta check every create gets (`rest.BeforeCreate`).
        errs.extend(meta_rules(obj, old, op, true, path_segment_name));
        return finish(errs);
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match (op, old) {
        (Operation::Create, _) | (_, None) => {
            errs.extend(meta::validate_object_meta(obj, true, meta::name_is_dns_subdomain));
            errs.extend(validate_series(obj));
            if s(obj, "eventTime").is_empty() {
                errs.push(FieldError::required("eventTime", ""));
            }
            let ty = s(obj, "type");
            if ty != "Normal" && ty != "Warning" {
                errs.push(FieldError::invalid("type", json!(""), format!("has invalid value: {ty}")));
            }
            for (k, path) in [
                ("deprecatedFirstTimestamp", "deprecatedFirstTimestamp"),
                ("deprecatedLastTimestamp", "deprecatedLastTimestamp"),
            ] {
                if !s(obj, k).is_empty() {
                    errs.push(FieldError::invalid(path, json!(""), "needs to be unset"));
                }
            }
            if int_of(obj, "deprecatedCount").unwrap_or(0) != 0 {
                errs.push(FieldError::invalid("deprecatedCount", json!(""), "needs to be unset"));
            }
            let src = obj.get("deprecatedSource").unwrap_or(&Value::Null);
            if !s(src, "component").is_empty() || !s(src, "host").is_empty() {
                errs.push(FieldError::invalid("deprecatedSource", json!(""), "needs to be unset"));
            }
        }
        (_, Some(old)) => {
            errs.extend(meta::validate_object_meta_update(obj, old));
            if obj.get("series") != old.get("series") {
                errs.extend(validate_series(obj));
            }
            for (k, path) in [
                ("regarding", "involvedObject"),
                ("reason", "reason"),
                ("note", "message"),
                ("deprecatedSource", "source"),
                ("deprecatedFirstTimestamp", "firstTimestamp"),
                ("deprecatedLastTimestamp", "lastTimestamp"),
                ("deprecatedCount", "count"),
                ("type", "type"),
                ("action", "action"),
                ("related", "related"),
                ("reportingController", "reportingController"),
                ("reportingInstance", "reportingInstance"),
            ] {
                errs.extend(meta::immutable(obj.get(k), old.get(k), path));
            }
            let micros = |v: &Value| {
                v.get("eventTime")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp_micros())
            };
            if micros(obj) != micros(old) {
                errs.extend(meta::immutable(obj.get("eventTime"), old.get("eventTime"), "eventTime"));
            }
        }
    }
    finish(errs)
}

fn validate_series(obj: &Value) -> ErrorList {
    let mut errs = vec![];
    if let Some(series) = obj.get("series").filter(|v| !v.is_null()) {
        if int_of(series, "count").unwrap_or(0) < 2 {
            errs.push(FieldError::invalid("series.count", json!(""), "should be at least 2"));
        }
        if series.get("lastObservedTime").and_then(Value::as_str).is_none_or(str::is_empty) {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// `legacyValidateEvent`.
fn legacy_validate_event(obj: &Value, new_api: bool) -> ErrorList {
    let mut errs = vec![];
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (regarding, message, rc_field) = if new_api {
        ("regarding", "note", "reportingController")
    } else {
        ("involvedObject", "message", "reportingComponent")
    };
    let ns = str_at(obj, &["metadata", "namespace"]).unwrap_or_default();
    let ons = at(obj, &[regarding, "namespace"]).and_then(Value::as_str).unwrap_or_default();
    let mismatch = || FieldError::invalid("involvedObject.namespace", json!(ons), "does not match event.namespace");
    if s(obj, "eventTime").is_empty() {
        if ons.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != ons {
            errs.push(mismatch());
        }
    } else {
        if ons.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        let rc = s(obj, rc_field);
        if rc.is_empty() {
            errs.push(FieldError::required(rc_field, ""));
        }
        errs.extend(meta::is_qualified_name(&rc).into_iter().map(|m| FieldError::invalid(rc_field, json!(rc), m)));
        let limited = |errs: &mut ErrorList, k: &str, path: &str, limit: usize, required: bool| {
            let v = s(obj, k);
            if required && v.is_empty() {
                errs.push(FieldError::required(path, ""));
            }
            if v.len() > limit {
                errs.push(FieldError::invalid(path, json!(""), format!("can have at most {limit} characters")));
            }
        };
        limited(&mut errs, "reportingInstance", "reportingInstance", 128, true);
        limited(&mut errs, "action", "action", 128, true);
        limited(&mut errs, "reason", "reason", 128, true);
        limited(&mut errs, message, "message", 1024, false);
    }
    errs.extend(meta::name_is_dns_label(ns, false).into_iter().map(|m| FieldError::invalid("namespace", json!(ns), m)));
    errs
}

/// Every other kind: metadata rules with the kind's name format (RBAC names are path segments,
/// Services DNS-1035 labels, the rest DNS subdomains); status and spec kept across the two write
/// paths when the resource has a status subresource.
pub fn admit_generic(
    info: &ResourceInfo,
    op: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<Vec<String>, ErrorList> {
    keep_from_old(obj, old, op, info.has_subresource("status"));
    let name_fn: NameFn = match (info.group.as_str(), info.kind.as_str()) {
        ("rbac.authorization.k8s.io", _) => path_segment_name,
        ("", "Service") => service_name,
        _ => meta::name_is_dns_subdomain,
    };
    let kind = (info.group.as_str(), info.kind.as_str());
    match kind {
        ("", "Secret") => default_secret(obj),
        (RBAC, "RoleBinding" | "ClusterRoleBinding") => default_binding(obj),
        (g, k) => super::workloads::default(g, &info.version, k, obj),
    }
    let service_errs = match kind {
        ("", "Service") => super::service::admit(op, obj, old).err().unwrap_or_default(),
        _ => vec![],
    };
    let mut errs = meta_rules(obj, old, op, info.namespaced, name_fn);
    errs.extend(service_errs);
    match kind {
        ("", "ConfigMap") => errs.extend(validate_data_keys(obj, true)),
        ("", "Secret") => errs.extend(validate_secret(obj, old)),
        (RBAC, "Role" | "ClusterRole") => errs.extend(validate_rules(obj, info.kind == "Role")),
        (RBAC, "RoleBinding" | "ClusterRoleBinding") => {
            errs.extend(validate_binding(obj, old, info.kind == "RoleBinding"));
        }
        (g, k) => errs.extend(super::workloads::validate(g, k, obj)),
    }
    finish(errs)
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// Secret defaults and conversion: `stringData` is merged into `data` (base64; a key in both
/// takes the `stringData` value) and dropped, so it is never stored or returned; `type` defaults
/// to `Opaque`.
pub fn default_secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    if let Some(Value::Object(string_data)) = m.remove("stringData")
        && !string_data.is_empty()
    {
        let data = m.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in string_data {
            let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
            data[k.as_str()] = serde_json::to_value(k8s_openapi::ByteString(bytes)).unwrap_or_default();
        }
    }
    if m.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        m.insert("type".into(), json!("Opaque"));
    }
}

/// The length of base64 `s` decoded (it was checked to be base64 when decoded).
fn decoded_len(s: &str) -> usize {
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3 + (s.len() % 4 * 3 / 4)).saturating_sub(pad)
}

/// `ValidateSecret` (and `ValidateSecretUpdate` with `old`): data keys, the 1 MiB limit on the
/// decoded data, the keys each built-in `type` requires, and on update an unchanged `type` and,
/// once `immutable` is set, unchanged `data` and `immutable`.
fn validate_secret(obj: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = validate_data_keys(obj, false);
    let data = obj.get("data").and_then(Value::as_object);
    let total: usize = data.map(|d| d.values().filter_map(Value::as_str).map(decoded_len).sum()).unwrap_or(0);
    if total > MAX_DATA_SIZE {
        errs.push(meta::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let value = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str).unwrap_or_default();
    let required = |p: &str| FieldError::required(p, "");
    let json_key = |errs: &mut ErrorList, k: &str| {
        if !has(k) {
            errs.push(required(&super::json::key("data", k)));
            return;
        }
        let bytes: Option<k8s_openapi::ByteString> = serde_json::from_value(json!(value(k))).ok();
        let parsed = bytes.map(|b| serde_json::from_slice::<serde_json::Map<String, Value>>(&b.0));
        if let Some(Err(e)) = parsed {
            errs.push(FieldError::invalid(
                super::json::key("data", k),
                json!("<secret contents redacted>"),
                e.to_string(),
            ));
        }
    };
    match obj.get("type").and_then(Value::as_str).unwrap_or_default() {
        "kubernetes.io/service-account-token" => {
            let annotation = str_at(obj, &["metadata", "annotations", "kubernetes.io/service-account.name"]);
            if annotation.is_none_or(str::is_empty) {
                errs.push(required("metadata.annotations[kubernetes.io/service-account.name]"));
            }
        }
        "kubernetes.io/dockercfg" => json_key(&mut errs, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" => json_key(&mut errs, ".dockerconfigjson"),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            // Upstream's path really is `data[%s]` with the key appended.
            errs.push(required("data[%s][username]"));
            errs.push(required("data[%s][password]"));
        }
        "kubernetes.io/ssh-auth" if value("ssh-privatekey").is_empty() => {
            errs.push(required("data[%s][ssh-privatekey]"))
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(required(&super::json::key("data", k)));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        errs.extend(meta::immutable(obj.get("type"), old.get("type"), "type"));
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
                errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
            }
            let empty = json!({});
            let d = |o: &Value| o.get("data").filter(|d| !d.is_null()).cloned().unwrap_or_else(|| empty.clone());
            if d(obj) != d(old) {
                errs.push(FieldError::forbidden("data", "field is immutable when `immutable` is set"));
            }
        }
    }
    errs
}

/// RBAC v1 defaults: `roleRef.apiGroup` is `rbac.authorization.k8s.io`; a User or Group subject's
/// `apiGroup` is too (a ServiceAccount's stays `""`).
fn default_binding(obj: &mut Value) {
    if let Some(r) = obj.get_mut("roleRef").and_then(Value::as_object_mut)
        && r.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty)
    {
        r.insert("apiGroup".into(), json!(RBAC));
    }
    let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) else { return };
    for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
        if matches!(kind, "User" | "Group") && s.get("apiGroup").and_then(Value::as_str).is_none_or(str::is_empty) {
            s.insert("apiGroup".into(), json!(RBAC));
        }
    }
}

/// `ValidatePolicyRule` for each rule of a Role (`namespaced`) or ClusterRole.
fn validate_rules(obj: &Value, namespaced: bool) -> ErrorList {
    let mut errs = vec![];
    let rules = obj.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (i, rule) in rules.iter().enumerate() {
        let p = super::json::index("rules", i);
        let len = |k: &str| rule.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        if len("verbs") == 0 {
            errs.push(FieldError::required(child(&p, "verbs"), "verbs must contain at least one value"));
        }
        if len("nonResourceURLs") > 0 {
            let urls = rule["nonResourceURLs"].clone();
            if namespaced {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
                errs.push(FieldError::invalid(
                    child(&p, "nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if len("apiGroups") == 0 {
            errs.push(FieldError::required(
                child(&p, "apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if len("resources") == 0 {
            errs.push(FieldError::required(child(&p, "resources"), "resource rules must supply at least one resource"));
        }
    }
    errs
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding` (and their update forms with `old`): the
/// roleRef's apiGroup, kind (a ClusterRoleBinding can only reference a ClusterRole) and name, each
/// subject, and on update an unchanged roleRef.
fn validate_binding(obj: &Value, old: Option<&Value>, namespaced: bool) -> ErrorList {
    let mut errs = vec![];
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let group = s(role_ref, "apiGroup");
    if group != RBAC {
        errs.push(FieldError::not_supported("roleRef.apiGroup", json!(group), &[RBAC]));
    }
    let kind = s(role_ref, "kind");
    let kinds: &[&str] = if namespaced { &["Role", "ClusterRole"] } else { &["ClusterRole"] };
    if !kinds.contains(&kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", json!(kind), kinds));
    }
    let name = s(role_ref, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        errs.extend(
            path_segment_name(&name, false).into_iter().map(|m| FieldError::invalid("roleRef.name", json!(name), m)),
        );
    }
    let subjects = obj.get("subjects").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (i, subject) in subjects.iter().enumerate() {
        let p = super::json::index("subjects", i);
        let name = s(subject, "name");
        let group = s(subject, "apiGroup");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        match s(subject, "kind").as_str() {
            "ServiceAccount" => {
                if !name.is_empty() {
                    errs.extend(
                        meta::name_is_dns_subdomain(&name, false)
                            .into_iter()
                            .map(|m| FieldError::invalid(child(&p, "name"), json!(name), m)),
                    );
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(child(&p, "apiGroup"), json!(group), &[""]));
                }
                if !namespaced && s(subject, "namespace").is_empty() {
                    errs.push(FieldError::required(child(&p, "namespace"), ""));
                }
            }
            "User" | "Group" if group != RBAC => {
                errs.push(FieldError::not_supported(child(&p, "apiGroup"), json!(group), &[RBAC]));
            }
            "User" | "Group" => {}
            other => errs.push(FieldError::not_supported(
                child(&p, "kind"),
                json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old {
        let old_ref = old.get("roleRef").unwrap_or(&Value::Null);
        let triple = |r: &Value| (s(r, "apiGroup"), s(r, "kind"), s(r, "name"));
        if triple(old_ref) != triple(role_ref) {
            // Upstream prints the internal Go struct (`%#v`) as the value.
            let (g, k, n) = triple(role_ref);
            errs.push(FieldError::new(
                crate::errors::FieldErrorType::Invalid,
                "roleRef",
                None,
                format!("rbac.RoleRef{{APIGroup:{g:?}, Kind:{k:?}, Name:{n:?}}}: cannot change roleRef"),
            ));
        }
    }
    errs
}

/// `IsConfigMapKey` (ConfigMap and Secret data keys).
pub fn is_config_map_key(key: &str) -> Vec<String> {
    let mut errs = vec![];
    if key.len() > 253 {
        errs.push(meta::max_len_error(253));
    }
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
        errs.push(meta::regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match key {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        k if k.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// The 1 MiB limit on a ConfigMap's or Secret's data (`MaxSecretSize`).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

fn validate_data_keys(obj: &Value, config_map: bool) -> ErrorList {
    let mut errs = vec![];
    let (first, second) = if config_map { ("data", "binaryData") } else { ("data", "stringData") };
    let mut total = 0;
    for bag in [first, second] {
        let Some(m) = obj.get(bag).and_then(Value::as_object) else { continue };
        for (k, v) in m {
            let p = super::json::key(bag, k);
            errs.extend(is_config_map_key(k).into_iter().map(|msg| FieldError::invalid(&p, json!(k), msg)));
            if config_map && bag == "data" && obj.get("binaryData").and_then(|b| b.get(k)).is_some() {
                errs.push(FieldError::invalid(&p, json!(k), "duplicate of key present in binaryData"));
            }
            total += v.as_str().map(str::len).unwrap_or(0);
        }
    }
    if config_map && total > MAX_DATA_SIZE {
        errs.push(meta::too_long("", MAX_DATA_SIZE));
    }
    errs
}

/// `ValidatePathSegmentName` (RBAC objects allow `:` and capitals).
pub fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if !prefix && (name == "." || name == "..") {
        return vec![format!("may not be '{name}'")];
    }
    let mut errs = vec![];
    for bad in ["/", "%"] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

fn service_name(name: &str, prefix: bool) -> Vec<String> {
    let n = if prefix && name.len() > 1 && name.ends_with('-') {
        format!("{}a", &name[..name.len() - 1])
    } else {
        name.to_string()
    };
    meta::is_dns1035_label(&n)
}
