//! Any bytes as an SSH connection-protocol payload: a message or an error, never a panic.
#![no_main]

#[path = "../checks/ssh.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
