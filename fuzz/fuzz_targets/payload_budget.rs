//! Fuzz target: see `alongside_core::fuzz::payload_budget`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: alongside_core::fuzz::contain_guarded_panics(), |data: &[u8]| {
    let _ = alongside_core::fuzz::payload_budget(data);
});
