//! Any text as SQL in both dialects: statements or an error, never a panic or a hang.
#![no_main]

#[path = "../checks/sql.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
