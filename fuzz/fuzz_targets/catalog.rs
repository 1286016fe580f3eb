//! `cargo fuzz run catalog`: the property is `fairflow::fuzz::catalog` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::catalog(data));
