//! Any bytes: scanning never panics, findings are in bounds, sorted and disjoint.
#![no_main]

#[path = "../checks/scan.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
