#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsconn_fuzz::utf8::check(data));
