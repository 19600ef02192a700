//! Fuzz the write-ahead log decoder: never a panic, and what it accepts is exactly the records it
//! returns (re-encoding them gives back the intact prefix).
#![no_main]

use jobwright::apiserver::persist::{decode_all, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode_all(data, std::path::Path::new("fuzz.log")) {
        assert!(d.valid_len <= data.len());
        let again: Vec<u8> = d.records.iter().flat_map(encode).collect();
        assert_eq!(&again[..], &data[..d.valid_len]);
    }
});
