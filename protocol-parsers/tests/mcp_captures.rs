//! Real MCP traffic: the official Python SDK's stdio client talking to an SDK server (initialize,
//! tools/list, two tools/call), recorded by `scripts/mcp_capture/` into `testdata/mcp/`.

use sluice_protocols::mcp::{self, Kind};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../testdata/mcp/{name}", env!("CARGO_MANIFEST_DIR"))).expect("capture present")
}

#[test]
fn sdk_stdio_session() {
    let client = read("stdio-session.client.jsonl");
    let (lines, used) = mcp::split_lines(&client, 1 << 20).expect("lines");
    assert_eq!(used, client.len());
    let msgs: Vec<_> = lines.iter().map(|l| mcp::parse_message(l).expect("json-rpc")).collect();
    assert_eq!(msgs[0].method.as_deref(), Some("initialize"));
    assert!(
        msgs[0]
            .initialize()
            .expect("params")
            .expect("initialize")
            .protocol_version
            .is_some()
    );
    assert!(
        msgs.iter()
            .any(|m| m.kind() == Kind::Notification && m.method.as_deref() == Some("notifications/initialized"))
    );
    let calls: Vec<String> = msgs
        .iter()
        .filter_map(|m| m.tool_call().expect("params").map(|c| c.name.into_owned()))
        .collect();
    assert_eq!(calls, ["read_config", "add"]);

    let server = read("stdio-session.server.jsonl");
    let (lines, _) = mcp::split_lines(&server, 1 << 20).expect("lines");
    let msgs: Vec<_> = lines.iter().map(|l| mcp::parse_message(l).expect("json-rpc")).collect();
    assert!(msgs.iter().all(|m| m.kind() == Kind::Response));
    let tools = msgs[1].tools().expect("tools/list result");
    assert_eq!(
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        ["read_config", "add"]
    );
    // Mask the synthetic token inside the real tool result.
    let token = ["glpat-", "Xa3kLm9Qr7Tz2Wv5Yb8N"].concat();
    let out = mcp::rewrite_tool_result(lines[2], |s| s.contains(&token).then(|| s.replace(&token, "[MASKED]")))
        .expect("json")
        .expect("changed");
    assert!(!out.contains(&token) && out.contains("[MASKED]"));
    assert_eq!(
        mcp::rewrite_tool_result(lines[3], |s| s.contains(&token).then(String::new)).expect("json"),
        None
    );

    // The same responses read in one pass with the result as a value: same kinds, and a
    // response rebuilt from it round-trips to the same JSON.
    for (line, m) in lines.iter().zip(&msgs) {
        let p = mcp::parse_with_result(line).expect("json-rpc");
        assert_eq!(p.kind(), m.kind());
        let again: serde_json::Value = serde_json::from_str(&p.to_response()).expect("json");
        let original: serde_json::Value = serde_json::from_slice(line).expect("json");
        assert_eq!(again, original);
    }
    let request = mcp::parse_with_result(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).expect("json");
    assert_eq!(request.kind(), Kind::Request);
    assert!(request.result.is_none());
}
