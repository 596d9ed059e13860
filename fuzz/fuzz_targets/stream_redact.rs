//! Any bytes, any cuts: streaming redaction equals one-shot redaction.
#![no_main]

#[path = "../checks/stream_redact.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
