//! Decisions on arbitrary input never panic, and a command that embeds a known credential path
//! read after arbitrary shell text is never allowed.
#![no_main]

#[path = "../checks/policy.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
