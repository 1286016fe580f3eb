//! `cargo fuzz run rank`: the property is `fairflow::fuzz::rank` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::rank(data));
