//! Any bytes as PostgreSQL traffic, both directions: an error, a partial or a message whose
//! length is within the buffer; never a panic.
#![no_main]

#[path = "../checks/postgres.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
