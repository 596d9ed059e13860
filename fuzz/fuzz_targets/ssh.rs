//! Any bytes as an SSH connection-protocol payload: a message or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_protocols::ssh;

fuzz_target!(|data: &[u8]| {
    let _ = ssh::parse_message(data);
});
