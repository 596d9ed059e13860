//! Any bytes as MCP traffic: stdio lines, SSE events, messages, typed views, rewriting.
#![no_main]

#[path = "../checks/mcp.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
