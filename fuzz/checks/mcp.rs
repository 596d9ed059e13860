//! Any bytes as MCP traffic: stdio lines, SSE events, messages, typed views, rewriting.
use sluice_protocols::mcp;

pub fn check(data: &[u8]) {
    if let Ok((lines, used)) = mcp::split_lines(data, 1 << 16) {
        assert!(used <= data.len());
        for line in lines {
            if let Ok(m) = mcp::parse_message(line) {
                let _ = m.kind();
                let _ = m.tool_call();
                let _ = m.resource_read();
                let _ = m.tools();
                let _ = mcp::error_response(m.id, -32001, "blocked");
            }
            let _ = mcp::rewrite_tool_result(line, |s| Some(s.to_uppercase()));
        }
    }
    let (_, used) = mcp::split_sse(data);
    assert!(used <= data.len());
    let _ = mcp::parse_batch(data);
}
