//! `cargo fuzz run traffic`: the property is `fairflow::fuzz::traffic` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::traffic(data));
