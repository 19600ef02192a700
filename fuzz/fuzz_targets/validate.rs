//! Fuzz decoding, defaulting and validation of creates (dry run): never a panic or a 5xx, and an
//! acknowledged object is readable back.
#![no_main]

#[path = "common.rs"]
mod common;

use jobwright::apiserver::rest::WriteOptions;
use jobwright::apiserver::validate::FieldValidation;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let Ok(obj) = serde_json::from_slice::<Value>(body) else { return };
    let info = common::pick(sel);
    let field_validation = match sel >> 6 {
        0 => FieldValidation::Ignore,
        1 => FieldValidation::Strict,
        _ => FieldValidation::Warn,
    };
    let opts = WriteOptions { dry_run: true, field_validation, ..WriteOptions::default() };
    match common::api().create(&info, "default", obj.clone(), &opts) {
        Ok(out) => common::readable(&out.object),
        Err(e) => assert!((400..500).contains(&e.code), "{} {}", e.code, e.message),
    }
    // An update of the stored object with the same body.
    match common::api().update(&info, "default", "p", None, obj, &opts) {
        Ok(out) => common::readable(&out.object),
        Err(e) => assert!((400..500).contains(&e.code), "{} {}", e.code, e.message),
    }
});
