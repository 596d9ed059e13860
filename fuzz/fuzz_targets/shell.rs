//! Any text as a shell command line: an analysis or an error, never a panic or a hang; the
//! lenient analysis policy uses always answers; and wherever the fast path takes a line, the bash
//! grammar gives the same analysis.
#![no_main]

#[path = "../checks/shell.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
