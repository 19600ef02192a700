//! batch/v1 CronJobs: `SetDefaults_CronJob`, the cronjob strategy and `validateCronJobSpec`
//! (schedule syntax as `robfig/cron/v3`'s `ParseStandard` reports it, `timeZone`, the job template
//! validated as a Job spec under `spec.jobTemplate.spec`).

use std::path::Path;

use crate::duration::parse_go_duration;
use serde_json::{Value, json};

use super::json::{at, bool_of, child, default_field, has, int_of, str_at, str_of};
use super::meta::{self, nonnegative};
use super::pod::{self, semantic_eq};
use super::{ErrorList, Operation, job};
use crate::apiserver::errors::FieldError;

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
    let zoneinfo = Path::new("/usr/share/zoneinfo");
    if tz != "UTC" && zoneinfo.is_dir() && !zoneinfo.join(tz).is_file() && !tz.eq_ignore_ascii_case("local") {
        errs.push(FieldError::invalid(path, json!(tz), format!("unknown time zone {tz}")));
    }
    errs
}

/// One parsed field bound: `(min, max, names)`.
type Bounds = (u32, u32, &'static [&'static str]);
const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DOWS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELDS: [Bounds; 5] = [(0, 59, &[]), (0, 23, &[]), (1, 31, &[]), (1, 12, MONTHS), (0, 6, DOWS)];

/// `cron.ParseStandard`: five fields (minute hour dom month dow) or a descriptor (`@hourly`,
/// `@every 5m`, ...), optionally prefixed by `TZ=`/`CRON_TZ=`. Errors use robfig/cron's wording.
pub fn parse_standard(spec: &str) -> Result<(), String> {
    let mut spec = spec;
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some((tz, rest)) = spec.split_once(' ') else {
            return Err(format!("invalid location descriptior: {spec}"));
        };
        let name = tz.split_once('=').map(|(_, n)| n).unwrap_or_default();
        if !validate_time_zone(Some(name), "").is_empty() {
            return Err(format!("provided bad location {name}: unknown time zone {name}"));
        }
        spec = rest.trim();
    }
    if let Some(d) = spec.strip_prefix('@') {
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ if d.starts_with("every ") => parse_go_duration(&d["every ".len()..]).map(|_| ()).ok_or_else(|| {
                format!("failed to parse duration {spec}: time: invalid duration {:?}", &d["every ".len()..])
            }),
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    for (f, b) in fields.iter().zip(FIELDS) {
        for part in f.split(',') {
            parse_range(part, b)?;
        }
    }
    Ok(())
}

fn parse_int(expr: &str, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(expr)) {
        let base = if names.len() == 12 { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    match expr.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Err(_) => {
            let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
            let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            Err(format!("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: {why}"))
        }
    }
}

fn parse_range(expr: &str, (min, max, names): Bounds) -> Result<(), String> {
    let parts: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = parts[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max)
    } else {
        let s = parse_int(low_high[0], names)?;
        let e = match low_high.len() {
            1 => s,
            2 => parse_int(low_high[1], names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (s, e)
    };
    let step = match parts.len() {
        1 => 1,
        2 => {
            let step = parse_int(parts[1], &[])?;
            // "N/step" means "N-max/step".
            if single {
                end = max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}
