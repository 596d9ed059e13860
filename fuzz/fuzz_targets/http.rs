//! Any bytes as HTTP/1.1: heads, framing and the chunked decoder fed in small steps; never a
//! panic, and the decoder never claims more bytes than it was given.
#![no_main]

#[path = "../checks/http.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
