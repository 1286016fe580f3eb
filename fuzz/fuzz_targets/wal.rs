//! `cargo fuzz run wal`: the property is `fairflow::fuzz::wal` (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fairflow::fuzz::wal(data));
