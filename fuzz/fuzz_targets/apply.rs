//! Fuzz the apply write path (patch, prune, managedFields, validation) on stored objects.
#![no_main]

#[path = "common.rs"]
mod common;

use jobwright::apiserver::patch::PatchType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::patch(data, PatchType::Apply));
