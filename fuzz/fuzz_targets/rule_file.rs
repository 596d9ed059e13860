//! Any text as a rule file: an error or a detector, never a panic; a detector then scans.
#![no_main]

#[path = "../checks/rule_file.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
