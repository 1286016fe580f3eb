//! `cargo fuzz run impressions`: the property is `fairflow::fuzz::impressions` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::impressions(data));
