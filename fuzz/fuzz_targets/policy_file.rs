//! Compiling arbitrary policy text never panics; it compiles or says why.
#![no_main]

#[path = "../checks/policy_file.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
