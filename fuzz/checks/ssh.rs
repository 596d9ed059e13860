//! Any bytes as an SSH connection-protocol payload: a message or an error, never a panic.
use sluice_protocols::ssh;

pub fn check(data: &[u8]) {
    let _ = ssh::parse_message(data);
}
