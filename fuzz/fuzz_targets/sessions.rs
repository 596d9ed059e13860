//! Every protocol session fed arbitrary bytes from both sides, in arbitrary cuts: an error or
//! output, never a panic.
#![no_main]

#[path = "../checks/sessions.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
