//! Protocol sessions fed by hand-made messages: SSH (no SSH server in the test environment
//! terminates both legs for us), HTTP content codings and request smuggling, and malformed input
//! for every session. The PostgreSQL, MySQL, MCP and HTTP sessions also run end to end against
//! real servers in `e2e/`.

use std::io::Write;
use std::sync::Arc;

use sluice_core::Detector;
use sluice_core::policy::{Engine, EngineHandle, Identity, Target};
use sluice_core::session::http::HttpSession;
use sluice_core::session::mcp::McpSession;
use sluice_core::session::mysql::MySqlSession;
use sluice_core::session::postgres::PgSession;
use sluice_core::session::ssh::{SshOutput, SshSession};
use sluice_core::session::{Guard, Output};
use sluice_protocols::ssh;

/// A synthetic Stripe-style key, assembled so this file holds none in one piece.
fn secret() -> String {
    format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc")
}

fn guard() -> Arc<Guard> {
    let det = Detector::builder().build().expect("detector");
    Arc::new(Guard::new(
        Arc::new(EngineHandle::new(Engine::agent_safe())),
        Arc::new(det),
    ))
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn channel_open(sender: u32, window: u32) -> Vec<u8> {
    let mut p = vec![90];
    string(&mut p, b"session");
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&window.to_be_bytes());
    p.extend_from_slice(&32768u32.to_be_bytes());
    p
}

fn open_confirmation(recipient: u32, sender: u32) -> Vec<u8> {
    let mut p = vec![91];
    p.extend_from_slice(&recipient.to_be_bytes());
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&1_000_000u32.to_be_bytes());
    p.extend_from_slice(&32768u32.to_be_bytes());
    p
}

fn env_request(recipient: u32, name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut p = vec![98];
    p.extend_from_slice(&recipient.to_be_bytes());
    string(&mut p, b"env");
    p.push(1);
    string(&mut p, name);
    string(&mut p, value);
    p
}

fn data_of(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut all = Vec::new();
    for p in payloads {
        if let Ok(ssh::Message::Data { data, .. }) = ssh::parse_message(p) {
            all.extend_from_slice(data);
        }
    }
    all
}

#[test]
fn ssh_exec_env_and_masked_output() {
    let mut s = SshSession::new(guard(), Identity::new("agent"), Target::new("build-host"));
    let mut out = SshOutput::default();
    // The client opens channel 5 with a 64-byte window; the server calls it 700.
    s.client_message(&channel_open(5, 64), &mut out).expect("open");
    s.server_message(&open_confirmation(5, 700), &mut out).expect("confirm");
    assert_eq!(out.to_server.len(), 1);
    assert_eq!(out.to_client.len(), 1);

    // A refused exec is not forwarded; the client gets the reason and a failure.
    let mut out = SshOutput::default();
    let mut exec = Vec::new();
    ssh::encode_channel_request_exec(700, true, b"cat ~/.aws/credentials", &mut exec);
    s.client_message(&exec, &mut out).expect("exec");
    assert!(out.to_server.is_empty());
    assert_eq!(out.to_client.len(), 2);
    match ssh::parse_message(&out.to_client[0]).expect("parse") {
        ssh::Message::ExtendedData { recipient, code, data } => {
            assert_eq!((recipient, code), (5, 1));
            assert!(String::from_utf8_lossy(data).contains("sluice: denied: credential stores"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ssh::parse_message(&out.to_client[1]).expect("parse"),
        ssh::Message::ChannelFailure(5)
    );

    // env: LANG passes, an allowed exec passes.
    let mut out = SshOutput::default();
    s.client_message(&env_request(700, b"LANG", b"C.UTF-8"), &mut out)
        .expect("env");
    let mut exec = Vec::new();
    ssh::encode_channel_request_exec(700, true, b"cat config/app.yaml", &mut exec);
    s.client_message(&exec, &mut out).expect("exec");
    assert_eq!(out.to_server.len(), 2);

    // Output with a secret split across two messages is masked; what exceeds the client's
    // window (64 bytes) waits for a window adjust.
    let text = format!(
        "stripe: {}\nport: 8080\nname: billing-service-with-a-long-name\n",
        secret()
    );
    let (a, b) = text.as_bytes().split_at(20);
    let mut out = SshOutput::default();
    for part in [a, b] {
        let mut msg = Vec::new();
        ssh::encode_data(5, part, &mut msg);
        s.server_message(&msg, &mut out).expect("data");
    }
    let first = data_of(&out.to_client);
    assert!(first.len() <= 64, "window respected: {}", first.len());
    let mut out2 = SshOutput::default();
    let mut adjust = vec![93];
    adjust.extend_from_slice(&700u32.to_be_bytes());
    adjust.extend_from_slice(&4096u32.to_be_bytes());
    s.client_message(&adjust, &mut out2).expect("adjust");
    let mut eof = vec![96];
    eof.extend_from_slice(&5u32.to_be_bytes());
    s.server_message(&eof, &mut out2).expect("eof");
    let mut all = first;
    all.extend(data_of(&out2.to_client));
    let all = String::from_utf8(all).expect("utf8");
    assert!(!all.contains(&secret()), "{all}");
    assert!(
        all.starts_with("stripe: [REDACTED:") && all.ends_with("port: 8080\nname: billing-service-with-a-long-name\n"),
        "{all}"
    );
    assert_eq!(out2.to_server.len(), 1, "the window adjust is forwarded");
    assert_eq!(out2.to_client.last(), Some(&eof), "EOF after the data");

    // Garbage is an error.
    assert!(s.client_message(&[98, 0, 0], &mut SshOutput::default()).is_err());
}

fn http_response(head: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("{head}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).expect("hex"), 16).expect("hex");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

#[test]
fn http_brotli_and_deflate_bodies_are_masked() {
    let body = format!("{{\"key\":\"{}\",\"ok\":true}}", secret());
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(body.as_bytes()).expect("compress");
    }
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zl.write_all(body.as_bytes()).expect("compress");
    let zl = zl.finish().expect("finish");
    for (coding, compressed) in [("br", br), ("deflate", zl)] {
        let mut s = HttpSession::new(guard(), Identity::new("agent"), None);
        let mut out = Output::default();
        s.from_client(
            b"GET http://api.example.test/v1/keys HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
            &mut out,
        )
        .expect("request");
        assert_eq!(s.upstream(), Some(("api.example.test".into(), 80)));
        assert!(out.to_server.starts_with(b"GET /v1/keys HTTP/1.1\r\n"));
        let mut out = Output::default();
        let resp = http_response(&format!("HTTP/1.1 200 OK\r\nContent-Encoding: {coding}"), &compressed);
        for piece in resp.chunks(7) {
            s.from_server(piece, &mut out).expect("response");
        }
        assert!(s.response_done());
        let text = String::from_utf8_lossy(&out.to_client).into_owned();
        let head_end = text.find("\r\n\r\n").expect("head");
        assert!(
            !text[..head_end].to_ascii_lowercase().contains("content-encoding"),
            "{text}"
        );
        let plain = String::from_utf8(dechunk(&out.to_client[head_end + 4..])).expect("utf8");
        assert!(
            plain.starts_with("{\"key\":\"[REDACTED:") && plain.ends_with("\",\"ok\":true}"),
            "{plain}"
        );
    }
}

#[test]
fn malformed_input_ends_every_session() {
    let g = guard();
    // HTTP request smuggling framing: Content-Length and Transfer-Encoding together.
    let mut h = HttpSession::new(g.clone(), Identity::new("a"), None);
    let smuggle = b"POST http://x.example.test/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert!(h.from_client(smuggle, &mut Output::default()).is_err());
    // PostgreSQL: a startup packet with a length below the minimum.
    let mut p = PgSession::new(g.clone(), None, None);
    assert!(p.from_client(b"\x00\x00\x00\x03xx", &mut Output::default()).is_err());
    // MySQL: client data before the server's greeting.
    let mut m = MySqlSession::new(g.clone(), None, None);
    assert!(m.from_client(b"\x01\x00\x00\x00\x03", &mut Output::default()).is_err());
    // MCP: a line that is not JSON-RPC.
    let mut c = McpSession::new(g, Identity::new("a"), Target::new("t"));
    let e = c
        .from_client(b"{\"not\": \"json-rpc\"\n", &mut Output::default())
        .expect_err("refused");
    assert_eq!(e.side, "client");
}

/// MCP over the streamable HTTP transport: the host hands the session each POSTed message and
/// each SSE event's data, one message at a time.
#[test]
fn mcp_over_http_messages_and_sse_events() {
    let mut s = McpSession::new(guard(), Identity::new("agent"), Target::new("remote-mcp"));
    let mut out = Output::default();
    let call = br#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_ed25519"}}}"#;
    s.client_message(call, &mut out).expect("message");
    assert!(out.to_server.is_empty());
    let reply: serde_json::Value = serde_json::from_slice(out.to_client.trim_ascii_end()).expect("json");
    assert_eq!(reply["id"], "c1");
    assert_eq!(reply["error"]["data"]["rule"], "ssh-private-keys");

    let mut out = Output::default();
    let ok = br#"{"jsonrpc":"2.0","id":"c2","method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md"}}}"#;
    s.client_message(ok, &mut out).expect("message");
    assert_eq!(out.to_server.trim_ascii_end(), &ok[..]);
    // The server answers in an event stream; the session masks each event's message.
    let stream = format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":\"c2\",\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"key {}\"}}]}}}}\n\n",
        secret()
    );
    let (events, used) = sluice_protocols::mcp::split_sse(stream.as_bytes());
    assert_eq!(used, stream.len());
    let mut out = Output::default();
    for e in events {
        s.server_message(&e.data, &mut out).expect("event");
    }
    let masked: serde_json::Value = serde_json::from_slice(out.to_client.trim_ascii_end()).expect("json");
    let text = masked["result"]["content"][0]["text"].as_str().expect("text");
    assert!(
        text.starts_with("key [REDACTED:") && !text.contains(&secret()),
        "{text}"
    );
}
