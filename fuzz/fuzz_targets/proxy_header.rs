#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wsconn_fuzz::proxy_header::check(data));
