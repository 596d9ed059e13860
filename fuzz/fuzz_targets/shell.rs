//! Any text as a shell command line: an analysis or an error, never a panic or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_protocols::shell;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    let _ = shell::analyze(&text, &shell::Limits::default());
});
