//! Fuzz `x-kubernetes-validations` rules: the first line of the input is a rule (and, after a
//! tab, a messageExpression), the rest a JSON value for `self` (and `oldSelf`, for transition
//! rules). The CRD-time check and the evaluation never panic, overflow the stack or run past the
//! cost budget.
#![no_main]

use jobwright::apiserver::crd::cel;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (head, body) = text.split_once('\n').unwrap_or((text, "{}"));
    let (rule, message) = head.split_once('\t').unwrap_or((head, ""));
    let Ok(value) = serde_json::from_str::<Value>(body) else { return };
    let mut r = json!({"rule": rule});
    if !message.is_empty() {
        r["messageExpression"] = json!(message);
    }
    let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
        "spec": {"x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-validations": [r]}}});
    let mut errs = vec![];
    cel::check_rules(&schema, "x", &mut errs, 0);
    if !errs.is_empty() {
        return;
    }
    let obj = json!({"spec": value});
    cel::validate(&schema, &obj, None, &mut errs);
    cel::validate(&schema, &obj, Some(&obj), &mut errs);
    assert!(errs.len() <= 2, "{errs:?}");
});
