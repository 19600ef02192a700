//! batch/v1 CronJobs: `SetDefaults_CronJob`, the cronjob strategy and `validateCronJobSpec`
//! (schedule syntax as `robfig/cron/v3`'s `ParseStandard` reports it, through the controller's parser, `timeZone`, the job template
//! validated as a Job spec under `spec.jobTemplate.spec`).

use serde_json::{Value, json};

use super::json::{at, bool_of, child, default_field, has, int_of, str_at, str_of};
use super::meta::{self, nonnegative};
use super::pod::{self, semantic_eq};
use super::{ErrorList, Operation, job};
use crate::errors::FieldError;

/// Strategy entry point for `cronjobs`.
pub fn admit(op: Operation, obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ErrorList> {
    default_cronjob(obj);
    match (op, old) {
        (Operation::Create, _) | (_, None) => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), json!({}));
                if let Some(md) = m.get_mut("metadata").filter(|v| v.is_object()) {
                    md["generation"] = json!(1);
                }
            }
            let mut errs = meta::validate_object_meta(obj, true, meta::name_is_dns_subdomain);
            let spec = obj.get("spec").unwrap_or(&Value::Null);
            errs.extend(validate_cronjob_spec(spec, None));
            let name = str_at(obj, &["metadata", "name"]).unwrap_or_default();
            if name.len() > 52 {
                errs.push(FieldError::invalid("metadata.name", json!(name), "must be no more than 52 characters"));
            }
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
        (Operation::Update, Some(old)) => {
            let old_gen = at(old, &["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(0);
            let changed =
                !semantic_eq(obj.get("spec").unwrap_or(&Value::Null), old.get("spec").unwrap_or(&Value::Null));
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), old.get("status").cloned().unwrap_or(json!({})));
                if let Some(md) = m.get_mut("metadata").filter(|v| v.is_object()) {
                    md["generation"] = json!(if changed { old_gen + 1 } else { old_gen });
                }
            }
            let mut errs = meta::validate_object_meta_update(obj, old);
            errs.extend(validate_cronjob_spec(obj.get("spec").unwrap_or(&Value::Null), old.get("spec")));
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
        (Operation::UpdateStatus, Some(old)) => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("spec".into(), old.get("spec").cloned().unwrap_or(json!({})));
            }
            let errs = meta::validate_object_meta_update(obj, old);
            if errs.is_empty() { Ok(vec![]) } else { Err(errs) }
        }
    }
}

/// `SetDefaults_CronJob` plus the defaulters of the embedded job and pod templates.
pub fn default_cronjob(cj: &mut Value) {
    let Some(spec) = cj.get_mut("spec").filter(|s| s.is_object()) else { return };
    default_field(spec, "concurrencyPolicy", json!("Allow"));
    default_field(spec, "suspend", json!(false));
    default_field(spec, "successfulJobsHistoryLimit", json!(3));
    default_field(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(js) = spec.get_mut("jobTemplate").and_then(|t| t.get_mut("spec")).filter(|s| s.is_object()) {
        job::default_pod_failure_policy(js);
        if let Some(ps) = js.get_mut("template").and_then(|t| t.get_mut("spec")) {
            pod::default_pod_spec(ps);
            pod::sync_deprecated_service_account(Some(ps));
        }
    }
}

/// `validateCronJobSpec` (`old` is the stored spec on updates).
pub fn validate_cronjob_spec(spec: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = vec![];
    let schedule = str_of(spec, "schedule").unwrap_or_default();
    let tz = spec.get("timeZone").filter(|v| !v.is_null());
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(e) = parse_standard(schedule) {
            errs.push(FieldError::invalid("spec.schedule", json!(schedule), e));
        }
        let allow_tz = old.and_then(|o| str_of(o, "schedule")).is_some_and(|s| s.contains("TZ"));
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(FieldError::invalid(
                "spec.schedule",
                json!(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                json!(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(v) = int_of(spec, "startingDeadlineSeconds") {
        errs.extend(nonnegative(v, "spec.startingDeadlineSeconds"));
    }
    if old.is_none_or(|o| o.get("timeZone").filter(|v| !v.is_null()) != tz) {
        errs.extend(validate_time_zone(tz.and_then(Value::as_str), "spec.timeZone"));
    }
    match spec.get("concurrencyPolicy") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        Some(Value::String(s)) if s.is_empty() => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        Some(Value::String(s)) if matches!(s.as_str(), "Allow" | "Forbid" | "Replace") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other.clone(),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt = spec.get("jobTemplate").unwrap_or(&Value::Null);
    let js = jt.get("spec").unwrap_or(&Value::Null);
    errs.extend(job::validate_job_spec_common(js, "spec.jobTemplate.spec"));
    if has(js, "selector") {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            js["selector"].clone(),
            "`selector` will be auto-generated",
        ));
    }
    if bool_of(js, "manualSelector") == Some(true) {
        errs.push(FieldError::not_supported("spec.jobTemplate.spec.manualSelector", json!(true), &["nil", "false"]));
    }
    for f in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        if let Some(v) = int_of(spec, f) {
            errs.extend(nonnegative(v, &child("spec", f)));
        }
    }
    errs
}

fn validate_time_zone(tz: Option<&str>, path: &str) -> ErrorList {
    let Some(tz) = tz else { return vec![] };
    if tz.is_empty() {
        return vec![FieldError::invalid(path, json!(tz), "timeZone must be nil or non-empty string")];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(path, json!(tz), format!("unknown time zone {tz}"))];
    }
    let mut errs = vec![];
    if tz.eq_ignore_ascii_case("local") {
        errs.push(FieldError::invalid(
            path,
            json!(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
    // Go's `time.LoadLocation` (kube-apiserver embeds the IANA database, as chrono-tz does here);
    // "Local" loads there, and is refused above.
    if tz != "Local" && crate::schedule::Zone::load(tz).is_none() {
        errs.push(FieldError::invalid(path, json!(tz), format!("unknown time zone {tz}")));
    }
    errs
}

/// `cron.ParseStandard`'s verdict on a schedule: the CronJob controller's own parser
/// ([`crate::schedule`]), so the API server refuses exactly what the controller cannot run.
/// Errors use robfig/cron's wording.
pub fn parse_standard(spec: &str) -> Result<(), String> {
    use crate::schedule::{self, Zone};
    schedule::parse_standard(spec, Zone::Named(chrono_tz::UTC)).map(|_| ())
}
