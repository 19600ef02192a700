//! Fuzz label and field selector parsing: never a panic, and a parsed label selector prints to a
//! string that parses back to the same selector.
#![no_main]

#[path = "common.rs"]
mod common;

use jobwright::apiserver::selector::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(sel) = LabelSelector::parse_str(s) {
        let printed = sel.to_string();
        let again = LabelSelector::parse_str(&printed).unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e}"));
        assert_eq!(again.to_string(), printed);
    }
    let _ = FieldSelector::parse_str(&common::pick(data.len() as u8), s);
});
