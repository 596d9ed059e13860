//! Any bytes as MySQL traffic: framing and every payload decoder; never a panic.
#![no_main]

#[path = "../checks/mysql.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
