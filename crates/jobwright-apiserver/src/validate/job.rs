//! batch/v1 Jobs: `SetDefaults_Job`, the job strategy (`PrepareForCreate` with the generated
//! selector, `PrepareForUpdate`, the status strategy) and `pkg/apis/batch/validation` (create,
//! update and the 1.31+ status-update rules), with upstream's messages and field paths.

use serde_json::{Value, json};

use super::json::{arr_of, at, bool_of, child, default_field, has, index, int_of, key, str_at, str_of};
use super::meta::{self, FIELD_IMMUTABLE, immutable, nonnegative, too_long_max_length, too_many};
use super::pod::{self, semantic_eq};
use super::{ErrorList, Operation};
use crate::errors::FieldError;

/// `batch.kubernetes.io/controller-uid`.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// `batch.kubernetes.io/job-name`.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The legacy `controller-uid` label.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// The legacy `job-name` label.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

const MAX_PARALLELISM_FOR_INDEXED_JOB: i64 = 100_000;
const MAX_FAILED_INDEXES_FOR_INDEXED_JOB: i64 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
const PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS: i64 = 10_000;
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_POD_FAILURE_POLICY_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERNS: usize = 20;
const MAX_MANAGED_BY_LENGTH: usize = 63;
const MAX_SUCCEEDED_INDEXES_LENGTH: usize = 64 * 1024;
const MAX_SUCCESS_POLICY_RULES: usize = 20;
const PARALLELISM_SOFT_LIMIT_FOR_UNLIMITED_COMPLETIONS: i64 = 10_000;

/// Upstream's `JobValidationOptions` (the pod options we don't model are always on).
#[derive(Debug, Clone, Copy, Default)]
pub struct JobValidationOptions {
    /// Node affinity, node selector, tolerations, scheduling gates and template labels/annotations
    /// may change (suspended Jobs that never started).
    pub allow_mutable_scheduling_directives: bool,
    /// `ElasticIndexedJob` (GA): completions may change with parallelism for Indexed Jobs.
    pub allow_elastic_indexed_jobs: bool,
    /// Require the `batch.kubernetes.io/` labels on generated templates.
    pub require_prefixed_labels: bool,
    /// Keep accepting selector values that were already invalid in the stored object.
    pub allow_invalid_label_value_in_selector: bool,
}

/// Strategy entry point for `jobs`.
pub fn admit(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    match (op, old) {
        (Operation::Create, _) | (_, None) => {
            default_job(obj);
            prepare_for_create(obj);
            let opts = validation_options(obj, None);
            let errs = validate_job(obj, &opts);
            if !errs.is_empty() {
                return Err(errs);
            }
            let warnings = warnings_on_create(obj);
            default_job(obj);
            Ok(warnings)
        }
        (Operation::Update, Some(old)) => {
            default_job(obj);
            prepare_for_update(obj, old);
            let opts = validation_options(obj, Some(old));
            let mut errs = validate_job(obj, &opts);
            errs.extend(validate_job_update(obj, old, &opts));
            if !errs.is_empty() {
                return Err(errs);
            }
            default_job(obj);
            let generation = |o: &Value| at(o, &["metadata", "generation"]).and_then(Value::as_i64);
            if generation(obj) != generation(old) { Ok(warnings_for_job_spec(obj)) } else { Ok(vec![]) }
        }
        (Operation::UpdateStatus, Some(old)) => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("spec".into(), old.get("spec").cloned().unwrap_or(json!({})));
            }
            let opts = status_validation_options(obj, old);
            let mut errs = meta::validate_object_meta_update(obj, old);
            errs.extend(validate_job_status_update(obj, old, &opts));
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
    }
}

// ---------------------------------------------------------------- defaulting

/// `SetDefaults_Job` plus the pod-template defaulters. Idempotent.
pub fn default_job(job: &mut Value) {
    let template_labels = at(job, &["spec", "template", "metadata", "labels"]).filter(|l| l.is_object()).cloned();
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if !has(spec, "completions") && !has(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    default_field(spec, "parallelism", json!(1));
    if !has(spec, "backoffLimit") {
        spec["backoffLimit"] = if has(spec, "backoffLimitPerIndex") { json!(i32::MAX) } else { json!(6) };
    }
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    default_pod_failure_policy(spec);
    if !has(spec, "podReplacementPolicy") {
        spec["podReplacementPolicy"] =
            if has(spec, "podFailurePolicy") { json!("Failed") } else { json!("TerminatingOrFailed") };
    }
    default_field(spec, "manualSelector", json!(false));
    if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        pod::default_pod_spec(ps);
        pod::sync_deprecated_service_account(Some(ps));
    }
    if let Some(labels) = template_labels
        && !meta::has_labels(job)
        && let Some(md) = job.as_object_mut().map(|m| m.entry("metadata").or_insert_with(|| json!({})))
        && let Some(md) = md.as_object_mut()
    {
        md.insert("labels".into(), labels);
    }
}

/// `SetDefaults_PodFailurePolicyOnPodConditionsPattern`: `status` defaults to `True`.
pub fn default_pod_failure_policy(spec: &mut Value) {
    if let Some(rules) = spec.get_mut("podFailurePolicy").and_then(|p| p.get_mut("rules")).and_then(Value::as_array_mut)
    {
        for r in rules {
            if let Some(pats) = r.get_mut("onPodConditions").and_then(Value::as_array_mut) {
                for p in pats.iter_mut().filter(|p| p.is_object()) {
                    if super::json::empty_str(p, "status") {
                        p["status"] = json!("True");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- prepare

/// `jobStrategy.PrepareForCreate`: a uid if the store gave none, the generated selector and
/// template labels (unless `manualSelector`), empty status, generation 1.
pub fn prepare_for_create(job: &mut Value) {
    let Some(m) = job.as_object_mut() else { return };
    let md = m.entry("metadata").or_insert_with(|| json!({}));
    if !md.is_object() {
        *md = json!({});
    }
    if str_of(md, "uid").is_none_or(str::is_empty) {
        md["uid"] = json!(uuid::Uuid::new_v4().to_string());
    }
    md["generation"] = json!(1);
    m.insert("status".into(), json!({}));
    if bool_of(&job["spec"], "manualSelector") != Some(true) {
        generate_selector(job);
    }
}

/// `generateSelector`: the four template labels (kept if the user set them, validation then
/// rejects a mismatch) and `matchLabels: {batch.kubernetes.io/controller-uid: <uid>}`.
pub fn generate_selector(job: &mut Value) {
    let name = str_at(job, &["metadata", "name"]).unwrap_or_default().to_string();
    let uid = str_at(job, &["metadata", "uid"]).unwrap_or_default().to_string();
    let Some(spec) = job.get_mut("spec").filter(|s| s.is_object()) else { return };
    let tpl = super::json::ensure_obj(spec, "template");
    let md = super::json::ensure_obj(tpl, "metadata");
    let labels = super::json::ensure_obj(md, "labels");
    let labels = labels.as_object_mut().expect("ensured object");
    for (k, v) in [
        (LEGACY_JOB_NAME_LABEL, &name),
        (JOB_NAME_LABEL, &name),
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (CONTROLLER_UID_LABEL, &uid),
    ] {
        labels.entry(k).or_insert_with(|| json!(v));
    }
    let sel = super::json::ensure_obj(spec, "selector");
    let ml = super::json::ensure_obj(sel, "matchLabels");
    ml.as_object_mut().expect("ensured object").entry(CONTROLLER_UID_LABEL).or_insert_with(|| json!(uid));
}

/// `jobStrategy.PrepareForUpdate`: status stays as stored; any spec change bumps generation.
pub fn prepare_for_update(job: &mut Value, old: &Value) {
    let old_gen = at(old, &["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(0);
    let changed = !semantic_eq(job.get("spec").unwrap_or(&Value::Null), old.get("spec").unwrap_or(&Value::Null));
    let Some(m) = job.as_object_mut() else { return };
    m.insert("status".into(), old.get("status").cloned().unwrap_or(json!({})));
    let md = m.entry("metadata").or_insert_with(|| json!({}));
    if md.is_object() {
        md["generation"] = json!(if changed { old_gen + 1 } else { old_gen });
    }
}

/// `validationOptionsForJob`.
pub fn validation_options(job: &Value, old: Option<&Value>) -> JobValidationOptions {
    let _ = job;
    let mut opts =
        JobValidationOptions { allow_elastic_indexed_jobs: true, require_prefixed_labels: true, ..Default::default() };
    if let Some(old) = old {
        let sel = at(old, &["spec", "selector"]).unwrap_or(&Value::Null);
        opts.allow_invalid_label_value_in_selector = !meta::validate_label_selector(sel, "s", false).is_empty();
        let suspended = at(old, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true);
        let not_started = !at(old, &["status"]).is_some_and(|s| has(s, "startTime"));
        opts.allow_mutable_scheduling_directives = suspended && not_started;
        let labels = at(old, &["spec", "template", "metadata", "labels"]);
        let had = |k: &str| labels.and_then(|l| l.get(k)).is_some();
        opts.require_prefixed_labels = had(JOB_NAME_LABEL) && had(CONTROLLER_UID_LABEL);
    }
    opts
}

/// `WarningsOnCreate`: a name that is not a DNS label, and the Indexed-Job size warning.
pub fn warnings_on_create(job: &Value) -> Vec<String> {
    let mut w = vec![];
    let name = str_at(job, &["metadata", "name"]).unwrap_or_default();
    let msgs = meta::is_dns1123_label(name);
    if !msgs.is_empty() {
        w.push(format!(
            "metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [{}]",
            msgs.join(" ")
        ));
    }
    w.extend(warnings_for_job_spec(job));
    w
}

fn warnings_for_job_spec(job: &Value) -> Vec<String> {
    let spec = job.get("spec").unwrap_or(&Value::Null);
    if str_of(spec, "completionMode") == Some("Indexed")
        && int_of(spec, "completions").unwrap_or(0) > COMPLETIONS_SOFT_LIMIT
        && int_of(spec, "parallelism").unwrap_or(0) > PARALLELISM_SOFT_LIMIT_FOR_UNLIMITED_COMPLETIONS
    {
        return vec!["spec: In Indexed Jobs with a number of completions higher than 10^5 and a parallelism higher than 10^4, Kubernetes might not be able to track completedIndexes when a big number of indexes fail".into()];
    }
    vec![]
}

// ---------------------------------------------------------------- create validation

fn has_label(tpl_labels: &[(String, String)], k: &str, expected: &str, path: &str) -> ErrorList {
    let p = key(&child(path, "labels"), k);
    match tpl_labels.iter().find(|(lk, _)| lk == k) {
        None => vec![FieldError::required(p, expected)],
        Some((_, v)) if v != expected => {
            let map: serde_json::Map<String, Value> = tpl_labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            vec![FieldError::invalid(p, Value::Object(map), format!("must be '{expected}'"))]
        }
        Some(_) => vec![],
    }
}

fn validate_generated_selector(job: &Value, validate_batch_labels: bool) -> ErrorList {
    let spec = job.get("spec").unwrap_or(&Value::Null);
    if bool_of(spec, "manualSelector") == Some(true) || !has(spec, "selector") {
        return vec![];
    }
    let mut errs = vec![];
    let uid = str_at(job, &["metadata", "uid"]).unwrap_or_default();
    let name = str_at(job, &["metadata", "name"]).unwrap_or_default();
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let labels = meta::labels_of(spec.get("template").unwrap_or(&Value::Null));
    let tp = "spec.template.metadata";
    errs.extend(has_label(&labels, LEGACY_CONTROLLER_UID_LABEL, uid, tp));
    errs.extend(has_label(&labels, LEGACY_JOB_NAME_LABEL, name, tp));
    let mut expected = vec![];
    if validate_batch_labels {
        errs.extend(has_label(&labels, CONTROLLER_UID_LABEL, uid, tp));
        errs.extend(has_label(&labels, JOB_NAME_LABEL, name, tp));
        expected.push((CONTROLLER_UID_LABEL.to_string(), uid.to_string()));
        expected.push((JOB_NAME_LABEL.to_string(), name.to_string()));
    }
    expected.push((LEGACY_CONTROLLER_UID_LABEL.to_string(), uid.to_string()));
    expected.push((LEGACY_JOB_NAME_LABEL.to_string(), name.to_string()));
    if meta::selector_matches(spec.get("selector"), &expected) == Some(false) {
        errs.push(FieldError::invalid("spec.selector", spec["selector"].clone(), "`selector` not auto-generated"));
    }
    errs
}

/// `ValidateJob`.
pub fn validate_job(job: &Value, opts: &JobValidationOptions) -> ErrorList {
    let mut errs = meta::validate_object_meta(job, true, meta::name_is_dns_subdomain);
    errs.extend(validate_generated_selector(job, opts.require_prefixed_labels));
    let spec = job.get("spec").unwrap_or(&Value::Null);
    errs.extend(validate_job_spec(spec, "spec", opts));
    if str_of(spec, "completionMode") == Some("Indexed")
        && let Some(c) = int_of(spec, "completions").filter(|c| *c > 0)
    {
        let name = str_at(job, &["metadata", "name"]).unwrap_or_default();
        let hostname = format!("{name}-{}", c - 1);
        if !meta::is_dns1123_label(&hostname).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                json!(name),
                format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    errs
}

/// `ValidateJobSpec`: the spec rules plus the selector (required, valid, matching the template).
pub fn validate_job_spec(spec: &Value, path: &str, opts: &JobValidationOptions) -> ErrorList {
    let mut errs = validate_job_spec_common(spec, path);
    let sel_path = child(path, "selector");
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required(&sel_path, "")),
        Some(sel) => {
            errs.extend(meta::validate_label_selector(sel, &sel_path, opts.allow_invalid_label_value_in_selector))
        }
    }
    let tpl = spec.get("template").unwrap_or(&Value::Null);
    if meta::selector_matches(spec.get("selector"), &meta::labels_of(tpl)) == Some(false) {
        errs.push(FieldError::invalid(
            child(path, "template.metadata.labels"),
            at(tpl, &["metadata", "labels"]).cloned().unwrap_or(Value::Null),
            "`selector` does not match template `labels`",
        ));
    }
    errs
}

/// `validateJobSpec`: everything but the selector (shared with CronJob's jobTemplate).
pub fn validate_job_spec_common(spec: &Value, path: &str) -> ErrorList {
    let mut errs = vec![];
    let p = |c: &str| child(path, c);
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        if let Some(v) = int_of(spec, f) {
            errs.extend(nonnegative(v, &p(f)));
        }
    }
    let completions = int_of(spec, "completions");
    let parallelism = int_of(spec, "parallelism");
    let max_failed = int_of(spec, "maxFailedIndexes");
    let per_index = int_of(spec, "backoffLimitPerIndex");
    if let Some(m) = max_failed {
        errs.extend(nonnegative(m, &p("maxFailedIndexes")));
        if !has(spec, "backoffLimitPerIndex") {
            errs.push(FieldError::required(p("backoffLimitPerIndex"), "when maxFailedIndexes is specified"));
        }
    }
    if let Some(mb) = str_of(spec, "managedBy") {
        errs.extend(is_domain_prefixed_path(&p("managedBy"), mb));
        if mb.len() > MAX_MANAGED_BY_LENGTH {
            errs.push(too_long_max_length(&p("managedBy"), MAX_MANAGED_BY_LENGTH));
        }
    }
    let mode = spec.get("completionMode").filter(|m| !m.is_null());
    let indexed = mode.and_then(Value::as_str) == Some("Indexed");
    if let Some(m) = mode {
        if !matches!(m.as_str(), Some("NonIndexed" | "Indexed")) {
            errs.push(FieldError::not_supported(p("completionMode"), m.clone(), &["NonIndexed", "Indexed"]));
        }
        if indexed {
            if completions.is_none() {
                errs.push(FieldError::required(p("completions"), "when completion mode is Indexed"));
            }
            if let Some(par) = parallelism.filter(|v| *v > MAX_PARALLELISM_FOR_INDEXED_JOB) {
                errs.push(FieldError::invalid(
                    p("parallelism"),
                    json!(par),
                    format!("must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"),
                ));
            }
            if let (Some(c), Some(m)) = (completions, max_failed)
                && m > c
            {
                errs.push(FieldError::invalid(
                    p("maxFailedIndexes"),
                    json!(m),
                    "must be less than or equal to completions",
                ));
            }
            if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_FOR_INDEXED_JOB) {
                errs.push(FieldError::invalid(
                    p("maxFailedIndexes"),
                    json!(m),
                    format!("must be less than or equal to {MAX_FAILED_INDEXES_FOR_INDEXED_JOB}"),
                ));
            }
            if completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) && per_index.is_some() {
                if max_failed.is_none() {
                    errs.push(FieldError::required(
                        p("maxFailedIndexes"),
                        format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
                    ));
                }
                if let Some(par) = parallelism.filter(|v| *v > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS) {
                    errs.push(FieldError::invalid(p("parallelism"), json!(par), format!("must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index")));
                }
                if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS) {
                    errs.push(FieldError::invalid(p("maxFailedIndexes"), json!(m), format!("must be less than or equal to {MAX_FAILED_INDEXES_LIMIT_FOR_HIGH_COMPLETIONS} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index")));
                }
            }
        }
    }
    if mode.is_none() || mode.and_then(Value::as_str) == Some("NonIndexed") {
        if let Some(v) = per_index {
            errs.push(FieldError::invalid(p("backoffLimitPerIndex"), json!(v), "requires indexed completion mode"));
        }
        if let Some(v) = max_failed {
            errs.push(FieldError::invalid(p("maxFailedIndexes"), json!(v), "requires indexed completion mode"));
        }
    }
    let pfp = spec.get("podFailurePolicy").filter(|v| !v.is_null());
    if let Some(pfp) = pfp {
        errs.extend(validate_pod_failure_policy(spec, pfp, &p("podFailurePolicy")));
    }
    if let Some(sp) = spec.get("successPolicy").filter(|v| !v.is_null()) {
        if !indexed {
            errs.push(FieldError::invalid(p("successPolicy"), sp.clone(), "requires indexed completion mode"));
        } else {
            errs.extend(validate_success_policy(completions.unwrap_or(0), sp, &p("successPolicy")));
        }
    }
    if let Some(rp) = spec.get("podReplacementPolicy").filter(|v| !v.is_null()) {
        if pfp.is_some() {
            if rp.as_str() != Some("Failed") {
                errs.push(FieldError::not_supported(p("podReplacementPolicy"), rp.clone(), &["Failed"]));
            }
        } else if !matches!(rp.as_str(), Some("Failed" | "TerminatingOrFailed")) {
            errs.push(FieldError::not_supported(
                p("podReplacementPolicy"),
                rp.clone(),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let tpl = spec.get("template").unwrap_or(&Value::Null);
    errs.extend(pod::validate_pod_template_spec(tpl, &p("template")));
    let rp_path = p("template.spec.restartPolicy");
    match at(tpl, &["spec", "restartPolicy"]).unwrap_or(&Value::Null) {
        Value::Null => errs.push(FieldError::required(&rp_path, "valid values: \"OnFailure\", \"Never\"")),
        Value::String(s) if s.is_empty() || s == "Always" => {
            errs.push(FieldError::required(&rp_path, "valid values: \"OnFailure\", \"Never\""))
        }
        Value::String(s) if s == "OnFailure" && pfp.is_some() => errs.push(FieldError::invalid(
            &rp_path,
            json!(s),
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        Value::String(s) if s == "OnFailure" || s == "Never" => {}
        other => errs.push(FieldError::not_supported(&rp_path, other.clone(), &["OnFailure", "Never"])),
    }
    errs
}

/// `IsDomainPrefixedPath` (used for `spec.managedBy`).
pub fn is_domain_prefixed_path(path: &str, v: &str) -> ErrorList {
    if v.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((host, rest)) = v.split_once('/').filter(|(h, r)| !h.is_empty() && !r.is_empty()) else {
        return vec![FieldError::invalid(path, json!(v), "must be a domain-prefixed path (such as \"acme.io/foo\")")];
    };
    let mut errs: ErrorList =
        meta::is_dns1123_subdomain(host).into_iter().map(|m| FieldError::invalid(path, json!(host), m)).collect();
    let ok = rest.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
    if !ok {
        errs.push(FieldError::invalid(
            path,
            json!(rest),
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
    errs
}

fn validate_pod_failure_policy(spec: &Value, pfp: &Value, path: &str) -> ErrorList {
    let mut errs = vec![];
    let rules_path = child(path, "rules");
    let rules = arr_of(pfp, "rules");
    if rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(too_many(&rules_path, rules.len(), MAX_POD_FAILURE_POLICY_RULES));
    }
    let ps = at(spec, &["template", "spec"]).unwrap_or(&Value::Null);
    let names: Vec<&str> = arr_of(ps, "containers")
        .iter()
        .chain(arr_of(ps, "initContainers"))
        .map(|c| str_of(c, "name").unwrap_or_default())
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let rp = index(&rules_path, i);
        let ap = child(&rp, "action");
        match str_of(rule, "action").unwrap_or_default() {
            "" => {
                errs.push(FieldError::required(&ap, "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]"))
            }
            "FailIndex" => {
                if !has(spec, "backoffLimitPerIndex") {
                    errs.push(FieldError::invalid(
                        &ap,
                        json!("FailIndex"),
                        "requires the backoffLimitPerIndex to be set",
                    ));
                }
            }
            "Count" | "FailJob" | "Ignore" => {}
            other => {
                errs.push(FieldError::not_supported(&ap, json!(other), &["Count", "FailIndex", "FailJob", "Ignore"]))
            }
        }
        let on_exit = rule.get("onExitCodes").filter(|v| !v.is_null());
        let on_conds = arr_of(rule, "onPodConditions");
        if let Some(oe) = on_exit {
            errs.extend(validate_on_exit_codes(oe, &child(&rp, "onExitCodes"), &names));
        }
        if !on_conds.is_empty() {
            let cp = child(&rp, "onPodConditions");
            if on_conds.len() > MAX_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERNS {
                errs.push(too_many(&cp, on_conds.len(), MAX_POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERNS));
            }
            for (j, pat) in on_conds.iter().enumerate() {
                let pp = index(&cp, j);
                let t = str_of(pat, "type").unwrap_or_default();
                errs.extend(
                    meta::is_qualified_name(t)
                        .into_iter()
                        .map(|m| FieldError::invalid(child(&pp, "type"), json!(t), m)),
                );
                let sp = child(&pp, "status");
                match str_of(pat, "status").unwrap_or_default() {
                    "" => errs.push(FieldError::required(&sp, "valid values: [\"False\" \"True\" \"Unknown\"]")),
                    "True" | "False" | "Unknown" => {}
                    other => errs.push(FieldError::not_supported(&sp, json!(other), &["False", "True", "Unknown"])),
                }
            }
        }
        let omit = FieldError::new(crate::errors::FieldErrorType::Invalid, &rp, None, "");
        if on_exit.is_some() && !on_conds.is_empty() {
            errs.push(FieldError {
                detail: "specifying both OnExitCodes and OnPodConditions is not supported".into(),
                ..omit
            });
        } else if on_exit.is_none() && on_conds.is_empty() {
            errs.push(FieldError {
                detail: "specifying one of OnExitCodes and OnPodConditions is required".into(),
                ..omit
            });
        }
    }
    errs
}

fn validate_on_exit_codes(oe: &Value, path: &str, names: &[&str]) -> ErrorList {
    let mut errs = vec![];
    let op = str_of(oe, "operator").unwrap_or_default();
    let op_path = child(path, "operator");
    match op {
        "" => errs.push(FieldError::required(&op_path, "valid values: [\"In\" \"NotIn\"]")),
        "In" | "NotIn" => {}
        other => errs.push(FieldError::not_supported(&op_path, json!(other), &["In", "NotIn"])),
    }
    if let Some(cn) = str_of(oe, "containerName")
        && !names.contains(&cn)
    {
        errs.push(FieldError::invalid(
            child(path, "containerName"),
            json!(cn),
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let vp = child(path, "values");
    let values = arr_of(oe, "values");
    if values.is_empty() {
        errs.push(FieldError::invalid(&vp, json!([]), "at least one value is required"));
    } else if values.len() > MAX_POD_FAILURE_POLICY_ON_EXIT_CODES_VALUES {
        errs.push(too_many(&vp, values.len(), MAX_POD_FAILURE_POLICY_ON_EXIT_CODES_VALUES));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut ordered = true;
    let ints: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap_or(0)).collect();
    for (j, v) in ints.iter().enumerate() {
        let p = index(&vp, j);
        if op == "In" && *v == 0 {
            errs.push(FieldError::invalid(&p, json!(v), "must not be 0 for the In operator"));
        }
        if !seen.insert(*v) {
            errs.push(FieldError::duplicate(&p, json!(v)));
        }
        if j > 0 && ints[j - 1] > *v {
            ordered = false;
        }
    }
    if !ordered {
        errs.push(FieldError::invalid(&vp, json!(ints), "must be ordered"));
    }
    errs
}

fn validate_success_policy(completions: i64, sp: &Value, path: &str) -> ErrorList {
    let mut errs = vec![];
    let rules_path = child(path, "rules");
    let rules = arr_of(sp, "rules");
    if rules.is_empty() {
        errs.push(FieldError::required(
            &rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_SUCCESS_POLICY_RULES {
        errs.push(too_many(&rules_path, rules.len(), MAX_SUCCESS_POLICY_RULES));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rp = index(&rules_path, i);
        let indexes = str_of(rule, "succeededIndexes");
        let count = int_of(rule, "succeededCount");
        if indexes.is_none() && count.is_none() {
            errs.push(FieldError::required(
                &rp,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(ix) = indexes {
            let ip = child(&rp, "succeededIndexes");
            if ix.len() > MAX_SUCCEEDED_INDEXES_LENGTH {
                errs.push(meta::too_long(&ip, MAX_SUCCEEDED_INDEXES_LENGTH));
            }
            match validate_indexes_format(ix, completions) {
                Ok(t) => total = t,
                Err(e) => {
                    errs.push(FieldError::invalid(&ip, json!(ix), format!("error parsing succeededIndexes: {e}")))
                }
            }
        }
        if let Some(c) = count {
            let cp = child(&rp, "succeededCount");
            errs.extend(nonnegative(c, &cp));
            if c > completions {
                errs.push(FieldError::invalid(
                    &cp,
                    json!(c),
                    format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
            if indexes.is_some() && c > total {
                errs.push(FieldError::invalid(&cp, json!(c), format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)")));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------- index interval lists

fn go_atoi(s: &str) -> Result<i64, String> {
    let err = || format!("cannot convert string to integer for index: {s:?}");
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    s.parse::<i64>().map_err(|_| err())
}

/// `parseIndexInterval`: `"3"` or `"3-5"`, every index below `completions`.
pub fn parse_index_interval(s: &str, completions: i64) -> Result<(i64, i64), String> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() > 2 {
        return Err(format!(
            "the fragment {s:?} violates the requirement that an index interval can have at most two parts separated by '-'"
        ));
    }
    let x = go_atoi(parts[0])?;
    if x >= completions {
        return Err(format!("too large index: {:?}", parts[0]));
    }
    if let Some(ys) = parts.get(1) {
        let y = go_atoi(ys)?;
        if y >= completions {
            return Err(format!("too large index: {ys:?}"));
        }
        if x >= y {
            return Err(format!("non-increasing order, previous: {x}, current: {y}"));
        }
        return Ok((x, y));
    }
    Ok((x, x))
}

/// `validateIndexesFormat`: a comma-separated, strictly increasing list of intervals; returns how
/// many indexes it names.
pub fn validate_indexes_format(s: &str, completions: i64) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for part in s.split(',') {
        let (x, y) = parse_index_interval(part, completions)?;
        if let Some(l) = last
            && l >= x
        {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// `validateFailedIndexesNotOverlapCompleted`.
pub fn failed_indexes_overlap(completed: &str, failed: &str, completions: i64) -> Option<String> {
    if completed.is_empty() || failed.is_empty() {
        return None;
    }
    let parse = |s: &str| -> Vec<(i64, i64)> {
        s.split(',').filter_map(|p| parse_index_interval(p, completions).ok()).collect()
    };
    let (c, f) = (parse(completed), parse(failed));
    let (mut i, mut j) = (0, 0);
    while i < c.len() && j < f.len() {
        let ((cx, cy), (fx, fy)) = (c[i], f[j]);
        if cx <= fy && fx <= cy {
            return Some(format!("failedIndexes and completedIndexes overlap at index: {}", cx.max(fx)));
        }
        if cx <= fx { i += 1 } else { j += 1 }
    }
    None
}

// ---------------------------------------------------------------- update validation

/// `ValidateJobUpdate`: metadata update rules and `ValidateJobSpecUpdate`.
pub fn validate_job_update(job: &Value, old: &Value, opts: &JobValidationOptions) -> ErrorList {
    let mut errs = meta::validate_object_meta_update(job, old);
    let spec = job.get("spec").unwrap_or(&Value::Null);
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    errs.extend(validate_job_spec(spec, "spec", opts));
    errs.extend(validate_completions_update(spec, old_spec, opts));
    errs.extend(immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector"));
    errs.extend(validate_pod_template_update(spec, old_spec, opts));
    for f in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"] {
        errs.extend(immutable(spec.get(f), old_spec.get(f), &child("spec", f)));
    }
    errs
}

fn validate_completions_update(spec: &Value, old: &Value, opts: &JobValidationOptions) -> ErrorList {
    let indexed = str_of(spec, "completionMode") == Some("Indexed");
    if !opts.allow_elastic_indexed_jobs || !indexed {
        return immutable(spec.get("completions"), old.get("completions"), "spec.completions");
    }
    let (c, oc) = (int_of(spec, "completions"), int_of(old, "completions"));
    if c == oc || c.is_none() {
        return vec![];
    }
    if c != int_of(spec, "parallelism") {
        return vec![FieldError::invalid(
            "spec.completions",
            json!(c),
            "can only be modified in tandem with spec.parallelism",
        )];
    }
    vec![]
}

fn validate_pod_template_update(spec: &Value, old: &Value, opts: &JobValidationOptions) -> ErrorList {
    let tpl = spec.get("template").cloned().unwrap_or(Value::Null);
    let mut old_tpl = old.get("template").cloned().unwrap_or(Value::Null);
    if opts.allow_mutable_scheduling_directives && old_tpl.is_object() {
        let new_affinity = at(&tpl, &["spec", "affinity"]).filter(|v| !v.is_null()).cloned();
        let ospec = super::json::ensure_obj(&mut old_tpl, "spec");
        let om = ospec.as_object_mut().expect("ensured object");
        let old_affinity = om.get("affinity").filter(|v| !v.is_null()).cloned();
        match (new_affinity, old_affinity) {
            (None, Some(mut oa)) => {
                if let Some(o) = oa.as_object_mut() {
                    o.remove("nodeAffinity");
                }
                if oa.as_object().is_some_and(|o| o.values().all(Value::is_null)) {
                    om.remove("affinity");
                } else {
                    om.insert("affinity".into(), oa);
                }
            }
            (Some(na), None) => {
                let node = na.get("nodeAffinity").cloned();
                om.insert("affinity".into(), json!({ "nodeAffinity": node }));
            }
            (Some(na), Some(mut oa)) => {
                if let Some(o) = oa.as_object_mut() {
                    match na.get("nodeAffinity") {
                        Some(n) => o.insert("nodeAffinity".into(), n.clone()),
                        None => o.remove("nodeAffinity"),
                    };
                }
                om.insert("affinity".into(), oa);
            }
            (None, None) => {}
        }
        for f in ["nodeSelector", "tolerations", "schedulingGates"] {
            match at(&tpl, &["spec", f]) {
                Some(v) => om.insert(f.into(), v.clone()),
                None => om.remove(f),
            };
        }
        let omd = super::json::ensure_obj(&mut old_tpl, "metadata");
        let omd = omd.as_object_mut().expect("ensured object");
        for f in ["annotations", "labels"] {
            match at(&tpl, &["metadata", f]) {
                Some(v) => omd.insert(f.into(), v.clone()),
                None => omd.remove(f),
            };
        }
    }
    if semantic_eq(&tpl, &old_tpl) { vec![] } else { vec![FieldError::invalid("spec.template", tpl, FIELD_IMMUTABLE)] }
}

// ---------------------------------------------------------------- status update validation

/// Upstream's `JobStatusValidationOptions`.
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct JobStatusValidationOptions {
    pub reject_decreasing_succeeded_counter: bool,
    pub reject_decreasing_failed_counter: bool,
    pub reject_disabling_terminal_condition: bool,
    pub reject_invalid_completed_indexes: bool,
    pub reject_invalid_failed_indexes: bool,
    pub reject_failed_indexes_overlapping_completed: bool,
    pub reject_completed_indexes_for_non_indexed_job: bool,
    pub reject_failed_indexes_for_no_backoff_limit_per_index: bool,
    pub reject_failed_job_without_failure_target: bool,
    pub reject_complete_job_without_success_criteria_met: bool,
    pub reject_finished_job_with_active_pods: bool,
    pub reject_finished_job_without_start_time: bool,
    pub reject_finished_job_with_uncounted_terminated_pods: bool,
    pub reject_start_time_update_for_unsuspended_job: bool,
    pub reject_completion_time_before_start_time: bool,
    pub reject_mutating_completion_time: bool,
    pub reject_complete_job_without_completion_time: bool,
    pub reject_not_complete_job_with_completion_time: bool,
    pub reject_complete_job_with_failed_condition: bool,
    pub reject_complete_job_with_failure_target_condition: bool,
    pub allow_for_success_criteria_met_in_extended_scope: bool,
    pub reject_more_ready_than_active_pods: bool,
    pub reject_finished_job_with_terminating_pods: bool,
}

/// Whether `status.conditions` has `type` with status `True`.
pub fn is_condition_true(job: &Value, ty: &str) -> bool {
    at(job, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| str_of(c, "type") == Some(ty) && str_of(c, "status") == Some("True")))
}

/// `IsJobFinished`: Complete=True or Failed=True.
pub fn is_finished(job: &Value) -> bool {
    is_condition_true(job, "Complete") || is_condition_true(job, "Failed")
}

fn status_field<'a>(job: &'a Value, f: &str) -> Option<&'a Value> {
    at(job, &["status", f]).filter(|v| !v.is_null())
}

/// `getStatusValidationOptions` with `JobManagedBy` enabled (the default since 1.32): every rule is
/// only enforced when the fields it looks at change, so controllers can fix a bad status.
pub fn status_validation_options(job: &Value, old: &Value) -> JobStatusValidationOptions {
    let spec = job.get("spec").unwrap_or(&Value::Null);
    let indexed = str_of(spec, "completionMode") == Some("Indexed");
    let changed = |f: &str| status_field(job, f) != status_field(old, f);
    let cond_changed = |t: &str| is_condition_true(job, t) != is_condition_true(old, t);
    let finished_changed = is_finished(job) != is_finished(old);
    let complete_changed = cond_changed("Complete");
    let failed_changed = cond_changed("Failed");
    let ft_changed = cond_changed("FailureTarget");
    let ci_changed = status_field(job, "completedIndexes").and_then(Value::as_str).unwrap_or_default()
        != status_field(old, "completedIndexes").and_then(Value::as_str).unwrap_or_default();
    let fi_changed = changed("failedIndexes");
    let active_changed = int_at(job, "active") != int_at(old, "active");
    let start_changed = changed("startTime");
    let completion_changed = changed("completionTime");
    let utp_changed = !semantic_eq(
        status_field(job, "uncountedTerminatedPods").unwrap_or(&Value::Null),
        status_field(old, "uncountedTerminatedPods").unwrap_or(&Value::Null),
    );
    let ready_changed = changed("ready");
    let terminating_changed = changed("terminating");
    let suspended_zero = bool_of(spec, "suspend") == Some(true) && int_of(spec, "completions") == Some(0);
    JobStatusValidationOptions {
        reject_decreasing_succeeded_counter: !indexed || int_of(spec, "completions") != int_of(spec, "parallelism"),
        reject_decreasing_failed_counter: true,
        reject_disabling_terminal_condition: true,
        reject_invalid_completed_indexes: ci_changed,
        reject_invalid_failed_indexes: fi_changed,
        reject_completed_indexes_for_non_indexed_job: ci_changed,
        reject_failed_indexes_for_no_backoff_limit_per_index: fi_changed,
        reject_failed_indexes_overlapping_completed: fi_changed || ci_changed,
        reject_failed_job_without_failure_target: failed_changed || fi_changed,
        reject_complete_job_without_success_criteria_met: complete_changed,
        reject_finished_job_with_active_pods: finished_changed || active_changed,
        reject_finished_job_without_start_time: (finished_changed || start_changed) && !suspended_zero,
        reject_finished_job_with_uncounted_terminated_pods: finished_changed || utp_changed,
        reject_start_time_update_for_unsuspended_job: start_changed,
        reject_completion_time_before_start_time: start_changed || completion_changed,
        reject_mutating_completion_time: true,
        reject_not_complete_job_with_completion_time: complete_changed || completion_changed,
        reject_complete_job_without_completion_time: complete_changed || completion_changed,
        reject_complete_job_with_failed_condition: complete_changed || failed_changed,
        reject_complete_job_with_failure_target_condition: complete_changed || ft_changed,
        allow_for_success_criteria_met_in_extended_scope: true,
        reject_more_ready_than_active_pods: ready_changed || active_changed,
        reject_finished_job_with_terminating_pods: finished_changed || terminating_changed,
    }
}

fn int_at(job: &Value, f: &str) -> i64 {
    status_field(job, f).and_then(Value::as_i64).unwrap_or(0)
}

fn time_at(job: &Value, f: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    status_field(job, f).and_then(Value::as_str).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
}

fn omit(path: &str, detail: impl Into<String>) -> FieldError {
    FieldError::new(crate::errors::FieldErrorType::Invalid, path, None, detail)
}

/// `validateJobStatus` with the given options.
pub fn validate_job_status(job: &Value, o: &JobStatusValidationOptions) -> ErrorList {
    let mut errs = vec![];
    let sp = |c: &str| child("status", c);
    for f in ["active", "succeeded", "failed", "ready", "terminating"] {
        if let Some(v) = status_field(job, f).and_then(Value::as_i64) {
            errs.extend(nonnegative(v, &sp(f)));
        }
    }
    let utp = status_field(job, "uncountedTerminatedPods");
    if let Some(u) = utp {
        let mut seen = std::collections::BTreeSet::new();
        for list in ["succeeded", "failed"] {
            for (i, k) in arr_of(u, list).iter().enumerate() {
                let p = index(&child(&sp("uncountedTerminatedPods"), list), i);
                let k = k.as_str().unwrap_or_default();
                if k.is_empty() {
                    errs.push(FieldError::invalid(&p, json!(k), "must not be empty"));
                } else if !seen.insert(k) {
                    errs.push(FieldError::duplicate(&p, json!(k)));
                }
            }
        }
    }
    let complete = is_condition_true(job, "Complete");
    let failed = is_condition_true(job, "Failed");
    let failure_target = is_condition_true(job, "FailureTarget");
    let scm = is_condition_true(job, "SuccessCriteriaMet");
    let finished = complete || failed;
    let conds = sp("conditions");
    if o.reject_complete_job_with_failed_condition && complete && failed {
        errs.push(omit(&conds, "cannot set Complete=True and Failed=true conditions"));
    }
    if o.reject_complete_job_with_failure_target_condition && complete && failure_target {
        errs.push(omit(&conds, "cannot set Complete=True and FailureTarget=true conditions"));
    }
    let completion_time = status_field(job, "completionTime");
    if o.reject_not_complete_job_with_completion_time && completion_time.is_some() && !complete {
        errs.push(FieldError::invalid(
            sp("completionTime"),
            completion_time.cloned().unwrap_or_default(),
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if o.reject_complete_job_without_completion_time && completion_time.is_none() && complete {
        errs.push(FieldError::required(sp("completionTime"), "completionTime is required for Complete jobs"));
    }
    if o.reject_completion_time_before_start_time
        && let (Some(s), Some(c)) = (time_at(job, "startTime"), time_at(job, "completionTime"))
        && c < s
    {
        errs.push(FieldError::invalid(
            sp("completionTime"),
            completion_time.cloned().unwrap_or_default(),
            "completionTime cannot be set before startTime",
        ));
    }
    if o.reject_failed_job_without_failure_target && failed && !failure_target {
        errs.push(omit(&conds, "cannot set Failed=True condition without the FailureTarget=true condition"));
    }
    if o.reject_complete_job_without_success_criteria_met && complete && !scm {
        errs.push(omit(&conds, "cannot set Complete=True condition without the SuccessCriteriaMet=true condition"));
    }
    let active = int_at(job, "active");
    if o.reject_finished_job_with_active_pods && active > 0 && finished {
        errs.push(FieldError::invalid(sp("active"), json!(active), "active>0 is invalid for finished job"));
    }
    if o.reject_finished_job_without_start_time && status_field(job, "startTime").is_none() && finished {
        errs.push(FieldError::required(sp("startTime"), "startTime is required for finished job"));
    }
    if o.reject_finished_job_with_uncounted_terminated_pods
        && finished
        && let Some(u) = utp
        && arr_of(u, "failed").len() + arr_of(u, "succeeded").len() > 0
    {
        errs.push(FieldError::invalid(
            sp("uncountedTerminatedPods"),
            u.clone(),
            "uncountedTerminatedPods needs to be empty for finished job",
        ));
    }
    let spec = job.get("spec").unwrap_or(&Value::Null);
    let completions = int_of(spec, "completions");
    let completed_indexes = status_field(job, "completedIndexes").and_then(Value::as_str).unwrap_or_default();
    let failed_indexes = status_field(job, "failedIndexes").and_then(Value::as_str);
    if o.reject_invalid_completed_indexes
        && let Some(c) = completions
        && let Err(e) = validate_indexes_format(completed_indexes, c)
    {
        errs.push(FieldError::invalid(
            sp("completedIndexes"),
            json!(completed_indexes),
            format!("error parsing completedIndexes: {e}"),
        ));
    }
    if o.reject_invalid_failed_indexes
        && has(spec, "backoffLimitPerIndex")
        && let (Some(c), Some(fi)) = (completions, failed_indexes)
        && let Err(e) = validate_indexes_format(fi, c)
    {
        errs.push(FieldError::invalid(sp("failedIndexes"), json!(fi), format!("error parsing failedIndexes: {e}")));
    }
    let indexed = str_of(spec, "completionMode") == Some("Indexed");
    if o.reject_completed_indexes_for_non_indexed_job && !completed_indexes.is_empty() && !indexed {
        errs.push(FieldError::invalid(
            sp("completedIndexes"),
            json!(completed_indexes),
            "cannot set non-empty completedIndexes when non-indexed completion mode",
        ));
    }
    if o.reject_failed_indexes_for_no_backoff_limit_per_index
        && !has(spec, "backoffLimitPerIndex")
        && let Some(fi) = failed_indexes
    {
        errs.push(FieldError::invalid(
            sp("failedIndexes"),
            json!(fi),
            "cannot set non-null failedIndexes when backoffLimitPerIndex is null",
        ));
    }
    if o.reject_failed_indexes_overlapping_completed
        && let (Some(c), Some(fi)) = (completions, failed_indexes)
        && let Some(e) = failed_indexes_overlap(completed_indexes, fi, c)
    {
        errs.push(FieldError::invalid(sp("failedIndexes"), json!(fi), e));
    }
    let terminating = int_at(job, "terminating");
    if o.reject_finished_job_with_terminating_pods && terminating > 0 && finished {
        errs.push(FieldError::invalid(
            sp("terminating"),
            json!(terminating),
            "terminating>0 is invalid for finished job",
        ));
    }
    if o.reject_more_ready_than_active_pods
        && let Some(r) = status_field(job, "ready").and_then(Value::as_i64)
        && r > active
    {
        errs.push(FieldError::invalid(sp("ready"), json!(r), "cannot set more ready pods than active"));
    }
    if !o.allow_for_success_criteria_met_in_extended_scope && !indexed && scm {
        errs.push(omit(&conds, "cannot set SuccessCriteriaMet to NonIndexed Job"));
    }
    if scm && failed {
        errs.push(omit(&conds, "cannot set SuccessCriteriaMet=True and Failed=true conditions"));
    }
    if scm && failure_target {
        errs.push(omit(&conds, "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions"));
    }
    let has_sp = has(spec, "successPolicy");
    if !o.allow_for_success_criteria_met_in_extended_scope && !has_sp && scm {
        errs.push(omit(&conds, "cannot set SuccessCriteriaMet=True for Job without SuccessPolicy"));
    }
    if has_sp && !scm && complete {
        errs.push(omit(&conds, "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True"));
    }
    errs
}

/// `ValidateJobStatusUpdate`.
pub fn validate_job_status_update(job: &Value, old: &Value, o: &JobStatusValidationOptions) -> ErrorList {
    let mut errs = validate_job_status(job, o);
    let conds = "status.conditions";
    if o.reject_disabling_terminal_condition {
        for t in ["Failed", "Complete", "FailureTarget"] {
            if is_condition_true(old, t) && !is_condition_true(job, t) {
                errs.push(omit(conds, format!("cannot disable the terminal {t}=True condition")));
            }
        }
    }
    let (f, of) = (int_at(job, "failed"), int_at(old, "failed"));
    if o.reject_decreasing_failed_counter && f < of {
        errs.push(FieldError::invalid("status.failed", json!(f), "cannot decrease the failed counter"));
    }
    let (s, os) = (int_at(job, "succeeded"), int_at(old, "succeeded"));
    if o.reject_decreasing_succeeded_counter && s < os {
        errs.push(FieldError::invalid("status.succeeded", json!(s), "cannot decrease the succeeded counter"));
    }
    if o.reject_mutating_completion_time
        && let (Some(n), Some(p)) = (status_field(job, "completionTime"), status_field(old, "completionTime"))
        && time_at(job, "completionTime") != time_at(old, "completionTime")
    {
        let _ = p;
        errs.push(FieldError::invalid("status.completionTime", n.clone(), "completionTime cannot be mutated"));
    }
    if o.reject_start_time_update_for_unsuspended_job
        && status_field(old, "startTime").is_some()
        && time_at(old, "startTime") != time_at(job, "startTime")
        && at(job, &["spec", "suspend"]).and_then(Value::as_bool) != Some(true)
    {
        errs.push(FieldError::required("status.startTime", "startTime cannot be removed for unsuspended job"));
    }
    let scm = is_condition_true(job, "SuccessCriteriaMet");
    let old_scm = is_condition_true(old, "SuccessCriteriaMet");
    if old_scm && !scm {
        errs.push(omit(conds, "cannot disable the SuccessCriteriaMet=True condition"));
    }
    if is_condition_true(old, "Complete") && !old_scm && scm {
        errs.push(omit(conds, "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions"));
    }
    errs
}
