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
use sluice_core::session::{Guard, Output, Side};
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
    assert_eq!(e.side(), Side::Client);
    // The parser's error is the source, not just words.
    assert!(std::error::Error::source(&e).is_some(), "{e}");
    assert!(e.to_string().starts_with("closing: bad input from the client"), "{e}");
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

// ---- PostgreSQL and MySQL without a database: the closed state machines --------------------

fn pg_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A PostgreSQL session past authentication (trust: AuthenticationOk at once).
fn pg_ready() -> PgSession {
    pg_ready_with(guard())
}

/// [`pg_ready`] with `guard`.
fn pg_ready_with(guard: Arc<Guard>) -> PgSession {
    let mut s = PgSession::new(guard, None, None);
    let mut out = Output::default();
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0agent\0database\0app\0\0");
    let mut first = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&startup);
    s.from_client(&first, &mut out).expect("startup");
    let mut srv = pg_msg(b'R', &0u32.to_be_bytes());
    srv.extend_from_slice(&pg_msg(b'Z', b"I"));
    s.from_server(&srv, &mut out).expect("auth ok");
    s
}

#[test]
fn pg_a_message_before_authentication_ends_the_session() {
    let mut s = PgSession::new(guard(), None, None);
    let mut out = Output::default();
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0agent\0\0");
    let mut first = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&startup);
    // A query pipelined behind the startup packet, before the server asked for anything.
    first.extend_from_slice(&pg_msg(b'Q', b"SELECT * FROM pg_shadow\0"));
    let err = s.from_client(&first, &mut out).expect_err("refused");
    assert!(err.to_string().contains("did not ask for"), "{err}");
    assert!(!out.to_server.windows(9).any(|w| w == b"pg_shadow"));
}

#[test]
fn pg_bind_of_an_undecided_statement_is_refused_and_the_batch_dropped() {
    let mut s = pg_ready();
    let mut out = Output::default();
    let mut batch = pg_msg(b'B', b"\0prepared_by_sql\0\0\0\0\0\0\0");
    batch.extend_from_slice(&pg_msg(b'E', b"\0\0\0\0\0"));
    batch.extend_from_slice(&pg_msg(b'S', b""));
    s.from_client(&batch, &mut out).expect("handled");
    assert!(out.to_server.is_empty(), "{:?}", out.to_server);
    let reply = String::from_utf8_lossy(&out.to_client);
    assert!(reply.contains("was not prepared through this session"), "{reply}");
    assert!(out.to_client.ends_with(&pg_msg(b'Z', b"I")));
}

#[test]
fn pg_notifications_parameters_and_column_names_are_masked() {
    let mut s = pg_ready();
    let key = secret();
    let mut out = Output::default();
    let mut srv = Vec::new();
    let mut a = 42u32.to_be_bytes().to_vec();
    a.extend_from_slice(format!("chan\0{key}\0").as_bytes());
    srv.extend_from_slice(&pg_msg(b'A', &a));
    srv.extend_from_slice(&pg_msg(b'S', format!("application_name\0{key}\0").as_bytes()));
    let mut t = 1u16.to_be_bytes().to_vec();
    t.extend_from_slice(format!("{key}\0").as_bytes());
    t.extend_from_slice(&[0; 18]);
    srv.extend_from_slice(&pg_msg(b'T', &t));
    s.from_server(&srv, &mut out).expect("masked");
    let seen = String::from_utf8_lossy(&out.to_client);
    assert!(!seen.contains(&key), "{seen}");
    assert_eq!(seen.matches("[REDACTED:").count(), 3, "{seen}");
}

#[test]
fn pg_unknown_message_types_end_the_session() {
    let mut s = pg_ready();
    let mut out = Output::default();
    // FunctionCall ('F'): calls a server function by OID, past any SQL analysis.
    assert!(
        s.from_client(&pg_msg(b'F', &[0, 0, 0x0a, 0x3c, 0, 0, 0, 0, 0, 0]), &mut out)
            .is_err()
    );
    let mut s = pg_ready();
    // CopyData from the server without a COPY in progress.
    assert!(s.from_server(&pg_msg(b'd', b"x"), &mut out).is_err());
    // A ReadyForQuery nothing asked for.
    let mut s = pg_ready();
    assert!(s.from_server(&pg_msg(b'Z', b"I"), &mut out).is_err());
}

fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

/// A MySQL session past authentication (protocol 4.1, EOF packets not deprecated).
fn my_ready() -> MySqlSession {
    let mut s = MySqlSession::new(guard(), None, None);
    let mut out = Output::default();
    let mut g = vec![10];
    g.extend_from_slice(b"10.11.0\0\x01\0\0\0abcdefgh\0");
    g.extend_from_slice(&0xF7FFu16.to_le_bytes());
    g.push(33);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&0x81BFu16.to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
    s.from_server(&my_packet(0, &g), &mut out).expect("greeting");
    let caps: u32 = 0x0200 | 0x8000 | 0x0008_0000;
    let mut login = caps.to_le_bytes().to_vec();
    login.extend_from_slice(&[0, 0, 0, 1, 33]);
    login.extend_from_slice(&[0; 23]);
    login.extend_from_slice(b"agent\0\0mysql_native_password\0");
    s.from_client(&my_packet(1, &login), &mut out).expect("login");
    s.from_server(&my_packet(2, &[0, 0, 0, 2, 0, 0, 0]), &mut out)
        .expect("ok");
    s
}

#[test]
fn mysql_a_pipelined_command_waits_for_the_reply_before_it() {
    let mut s = my_ready();
    let key = secret();
    let mut out = Output::default();
    let mut both = my_packet(0, b"\x03SELECT api_key FROM vault");
    both.extend_from_slice(&my_packet(0, b"\x0e"));
    s.from_client(&both, &mut out).expect("query");
    // Only the query went on; the ping waits.
    assert_eq!(out.to_server, my_packet(0, b"\x03SELECT api_key FROM vault"));
    // The result set: one column, its definition, EOF, a row with the key, EOF.
    let mut def = Vec::new();
    for n in [&b"def"[..], b"app", b"vault", b"vault", b"api_key", b"api_key"] {
        def.push(n.len() as u8);
        def.extend_from_slice(n);
    }
    def.extend_from_slice(&[0x0c, 33, 0, 0, 1, 0, 0, 0xFD, 0, 0, 0, 0, 0]);
    let mut rs = my_packet(1, &[1]);
    rs.extend_from_slice(&my_packet(2, &def));
    rs.extend_from_slice(&my_packet(3, &[0xFE, 0, 0, 2, 0]));
    let mut row = vec![key.len() as u8];
    row.extend_from_slice(key.as_bytes());
    rs.extend_from_slice(&my_packet(4, &row));
    rs.extend_from_slice(&my_packet(5, &[0xFE, 0, 0, 2, 0]));
    let mut out = Output::default();
    s.from_server(&rs, &mut out).expect("result");
    let seen = String::from_utf8_lossy(&out.to_client);
    assert!(!seen.contains(&key) && seen.contains("[REDACTED:"), "{seen}");
    // The reply is complete: now the ping goes on.
    assert_eq!(out.to_server, my_packet(0, b"\x0e"));
}

#[test]
fn mysql_change_user_is_refused_and_sequence_ids_are_checked() {
    let mut s = my_ready();
    let mut out = Output::default();
    s.from_client(&my_packet(0, b"\x11root\0\0"), &mut out)
        .expect("refused");
    assert!(out.to_server.is_empty());
    assert!(String::from_utf8_lossy(&out.to_client).contains("not allowed through this gateway"));
    // A command that does not start at sequence id 0.
    let mut s = my_ready();
    assert!(s.from_client(&my_packet(3, b"\x03SELECT 1"), &mut out).is_err());
    // A server packet out of sequence.
    let mut s = my_ready();
    let mut out = Output::default();
    s.from_client(&my_packet(0, b"\x0e"), &mut out).expect("ping");
    assert!(s.from_server(&my_packet(5, &[0, 0, 0, 2, 0, 0, 0]), &mut out).is_err());
    // Execution of a statement this session never saw prepared.
    let mut s = my_ready();
    let mut out = Output::default();
    s.from_client(&my_packet(0, &[0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0]), &mut out)
        .expect("refused");
    assert!(out.to_server.is_empty());
    assert!(String::from_utf8_lossy(&out.to_client).contains("not prepared through this session"));
}

#[test]
fn ssh_port_forwards_and_server_channels_are_refused() {
    let mut s = SshSession::new(guard(), Identity::new("agent"), Target::new("bastion"));
    let mut out = SshOutput::default();
    let mut open = vec![90];
    string(&mut open, b"direct-tcpip");
    open.extend_from_slice(&3u32.to_be_bytes());
    open.extend_from_slice(&65536u32.to_be_bytes());
    open.extend_from_slice(&32768u32.to_be_bytes());
    string(&mut open, b"db.internal");
    open.extend_from_slice(&5432u32.to_be_bytes());
    string(&mut open, b"127.0.0.1");
    open.extend_from_slice(&40000u32.to_be_bytes());
    s.client_message(&open, &mut out).expect("decided");
    assert!(out.to_server.is_empty(), "the forward reached the server");
    assert_eq!(out.to_client.len(), 1);
    assert_eq!(out.to_client[0][0], 92, "an open failure");
    assert!(String::from_utf8_lossy(&out.to_client[0]).contains("forward db.internal:5432"));
    // Data for a channel that was never opened.
    let mut d = Vec::new();
    ssh::encode_data(3, b"\x00\x00\x00\x08", &mut d);
    assert!(s.client_message(&d, &mut out).is_err());
    // A channel the server opens towards the client (a remote forward): refused to the server.
    let mut s = SshSession::new(guard(), Identity::new("agent"), Target::new("bastion"));
    let mut out = SshOutput::default();
    let mut open = vec![90];
    string(&mut open, b"forwarded-tcpip");
    open.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 128, 0]);
    s.server_message(&open, &mut out).expect("refused");
    assert!(out.to_client.is_empty());
    assert_eq!(out.to_server[0][0], 92);
}

#[test]
fn http_a_name_is_decided_again_on_its_address() {
    let mut s = HttpSession::new(guard(), Identity::new("agent"), None);
    let mut out = Output::default();
    s.from_client(
        b"GET http://metadata.example.test/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut out,
    )
    .expect("allowed by name");
    assert!(s.upstream().is_some());
    let mut refusal = Output::default();
    let metadata: std::net::IpAddr = "169.254.169.254".parse().expect("ip");
    assert!(!s.decide_address(metadata, 80, &mut refusal));
    let text = String::from_utf8_lossy(&refusal.to_client);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("cloud-metadata"),
        "{text}"
    );
    // An ordinary address passes.
    let mut s = HttpSession::new(guard(), Identity::new("agent"), None);
    s.from_client(b"GET http://api.example.test/v1 HTTP/1.1\r\nHost: x\r\n\r\n", &mut out)
        .expect("allowed");
    assert!(s.decide_address("93.184.216.34".parse().expect("ip"), 80, &mut refusal));
}

#[test]
fn http_a_connect_tunnel_must_open_with_tls_however_the_bytes_are_cut() {
    let connect = b"CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n";
    let mut out = Output::default();
    // Plain HTTP after one byte that looks like TLS: refused on the bytes that follow.
    let mut s = HttpSession::new(guard(), Identity::new("agent"), None);
    s.from_client(connect, &mut out).expect("allowed");
    assert!(s.tunnel());
    s.tunnel_client(&[0x16]).expect("so far a TLS record");
    assert!(!s.tunnel_checked());
    assert!(s.tunnel_client(b"GET / HTTP/1.1\r\n").is_err());
    // A ClientHello record header cut in three pieces: checked once six bytes are in.
    let mut s = HttpSession::new(guard(), Identity::new("agent"), None);
    s.from_client(connect, &mut out).expect("allowed");
    for piece in [&[0x16u8, 0x03][..], &[0x01, 0x02], &[0x00, 0x01, 0x00, 0x01]] {
        assert!(!s.tunnel_checked());
        s.tunnel_client(piece).expect("a ClientHello");
    }
    assert!(s.tunnel_checked());
}

#[test]
fn pg_sync_during_copy_in_owes_no_ready_for_query() {
    let mut s = pg_ready();
    let mut out = Output::default();
    s.from_client(&pg_msg(b'Q', b"COPY t FROM STDIN\0"), &mut out)
        .expect("allowed");
    s.from_server(&pg_msg(b'G', &[0, 0, 1, 0, 0]), &mut out)
        .expect("copy in");
    let mut data = pg_msg(b'd', b"1\n");
    data.extend_from_slice(&pg_msg(b'S', b""));
    data.extend_from_slice(&pg_msg(b'c', b""));
    s.from_client(&data, &mut out).expect("copy data");
    let mut done = pg_msg(b'C', b"COPY 1\0");
    done.extend_from_slice(&pg_msg(b'Z', b"I"));
    s.from_server(&done, &mut out).expect("done");
    // Nothing is owed now: a refusal is answered at once, not queued behind a lost Sync.
    let mut out = Output::default();
    s.from_client(&pg_msg(b'Q', b"SELECT * FROM pg_shadow\0"), &mut out)
        .expect("refused");
    assert!(out.to_server.is_empty());
    assert!(out.to_client.ends_with(&pg_msg(b'Z', b"I")), "{:?}", out.to_client);
}

/// A statement's allow is reused when the same text comes again, but never across a policy
/// swap: the swapped policy decides it afresh.
#[test]
fn pg_a_repeated_statement_is_decided_again_after_a_policy_swap() {
    let g = guard();
    let mut s = pg_ready_with(Arc::clone(&g));
    let mut out = Output::default();
    let query = pg_msg(b'Q', b"SELECT name FROM accounts\0");
    let done = || {
        let mut srv = pg_msg(b'C', b"SELECT 0\0");
        srv.extend_from_slice(&pg_msg(b'Z', b"I"));
        srv
    };
    for _ in 0..3 {
        out.clear();
        s.from_client(&query, &mut out).expect("query");
        assert_eq!(out.to_server, query, "allowed and forwarded");
        s.from_server(&done(), &mut out).expect("reply");
    }
    let strict = Engine::from_yaml(
        "strict",
        "version: 1\nname: strict\ndefault: allow\nrules:\n  - id: no-accounts\n    action: deny\n    message: not accounts\n    when: { sql: { relations: [accounts] } }\n",
    )
    .expect("policy");
    g.policy.swap(Arc::new(strict));
    out.clear();
    s.from_client(&query, &mut out).expect("query");
    assert!(out.to_server.is_empty(), "the swapped policy refuses it");
    assert!(String::from_utf8_lossy(&out.to_client).contains("not accounts"));
}
