#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| props::ballot::check(data));
