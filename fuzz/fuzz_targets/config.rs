//! `cargo fuzz run config`: the property is `fairflow::fuzz::config` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::config(data));
