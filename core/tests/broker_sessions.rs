//! Credential brokering through the sessions: placeholders in allowed requests are swapped for
//! the credentials they name where the policy lets each go, refused otherwise; echoes come back
//! as placeholders; substitutions are recorded by name.

use std::sync::{Arc, Mutex};

use sluice_core::Detector;
use sluice_core::broker::login::{md5_password, mysql_native_password};
use sluice_core::broker::{MemoryVault, Vault};
use sluice_core::policy::{Engine, EngineHandle, Identity, Target};
use sluice_core::session::http::HttpSession;
use sluice_core::session::mcp::McpSession;
use sluice_core::session::mysql::MySqlSession;
use sluice_core::session::postgres::PgSession;
use sluice_core::session::ssh::{SshOutput, SshSession};
use sluice_core::session::{Event, Guard, Hook, Output};
use sluice_protocols::ssh;

// Synthetic credentials, made up for these tests.
const TOKEN: &str = "tok-synthetic-0123456789abcdefXYZ";
const OTHER: &str = "other-synthetic-9876543210zyxwvQRS";

const POLICY: &str = r#"
version: 1
name: brokered
extends: agent-safe
default: allow
credentials:
  api-token: { targets: ["api.example.test", "files", "appdb", "build-host"] }
  spaced: { targets: ["build-host"] }
  other-token: { targets: ["elsewhere.example.test"] }
"#;

#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Hook for Notes {
    fn event(&self, e: &Event<'_>) {
        self.0.lock().expect("lock").push(e.to_json().to_string());
    }
}

fn guard(notes: &Arc<Notes>) -> Arc<Guard> {
    let vault = MemoryVault::new();
    vault.set("api-token", TOKEN);
    vault.set("other-token", OTHER);
    vault.set("multi-line", "line-one-synthetic\r\nX-Injected: yes");
    // Exactly as long as its placeholder (`sluice:secret/same-len`), with a line break.
    vault.set("same-len", "a-synthetic\r\nX-Evil: 1");
    // A value a shell would split or expand.
    vault.set("spaced", "synthetic value; $(id)");
    let detector = vault.detector(Detector::builder()).expect("builds");
    let policy = Engine::from_yaml("brokered", POLICY).expect("compiles");
    let mut g = Guard::new(Arc::new(EngineHandle::new(Arc::new(policy))), Arc::new(detector));
    g.vault = Some(Arc::new(vault));
    g.hook = Some(Arc::clone(notes) as Arc<dyn Hook>);
    Arc::new(g)
}

fn http(g: &Arc<Guard>, request: &str) -> Output {
    let mut s = HttpSession::new(Arc::clone(g), Identity::new("agent-7"), None);
    let mut out = Output::default();
    s.from_client(request.as_bytes(), &mut out).expect("handled");
    out
}

#[test]
fn http_headers_urls_and_bodies_get_the_credential_where_the_policy_lets_it_go() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let body = r#"{"auth":"sluice:secret/api-token"}"#;
    let out = http(
        &g,
        &format!(
            "POST http://api.example.test/v1/items?key=sluice:secret/api-token HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer sluice:secret/api-token\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let sent = String::from_utf8_lossy(&out.to_server).into_owned();
    assert!(
        sent.starts_with(&format!("POST /v1/items?key={TOKEN} HTTP/1.1\r\n")),
        "{sent}"
    );
    assert!(sent.contains(&format!("Authorization: Bearer {TOKEN}\r\n")), "{sent}");
    assert!(sent.ends_with(&format!(r#"{{"auth":"{TOKEN}"}}"#)), "{sent}");
    assert!(sent.contains(&format!(
        "Content-Length: {}\r\n",
        body.len() - "sluice:secret/api-token".len() + TOKEN.len()
    )));
    // Recorded by name, never by value.
    let log = notes.0.lock().expect("lock").join("\n");
    assert!(
        log.contains("credentials substituted for api.example.test: api-token"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "{log}");
}

/// A name decided again on the address it resolved to: the refusal and the records show the
/// request as decided (the placeholder), never the credential swapped in.
#[test]
fn a_decision_on_the_resolved_address_never_shows_the_credential() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let mut s = HttpSession::new(Arc::clone(&g), Identity::new("agent-7"), None);
    let mut out = Output::default();
    s.from_client(
        b"GET http://api.example.test/v1?key=sluice:secret/api-token HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
        &mut out,
    )
    .expect("handled");
    assert!(String::from_utf8_lossy(&out.to_server).contains(TOKEN));
    // The name resolves to the cloud metadata address: refused.
    let mut out = Output::default();
    let metadata = std::net::IpAddr::from([169, 254, 169, 254]);
    assert!(!s.decide_address(metadata, 80, &mut out));
    let reply = String::from_utf8_lossy(&out.to_client);
    assert!(reply.starts_with("HTTP/1.1 403 "), "{reply}");
    assert!(!reply.contains(TOKEN), "{reply}");
    let log = notes.0.lock().expect("lock").join("\n");
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn a_placeholder_sent_where_it_may_not_go_refuses_the_request() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    for (request, why) in [
        // The right host for neither: another host.
        (
            "GET http://evil.example.test/ HTTP/1.1\r\nHost: evil.example.test\r\nAuthorization: Bearer sluice:secret/api-token\r\n\r\n",
            "may not be sent here",
        ),
        // One allowed, one not: nothing substituted, all refused.
        (
            "GET http://api.example.test/?a=sluice:secret/api-token&b=sluice:secret/other-token HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
            "other-token",
        ),
        // Not in the policy (held or not: the refusal does not tell which).
        (
            "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nX-Key: sluice:secret/missing\r\n\r\n",
            "sluice:secret/missing: this credential may not be sent here",
        ),
    ] {
        let out = http(&g, request);
        assert!(out.to_server.is_empty(), "{request}");
        let reply = String::from_utf8_lossy(&out.to_client);
        assert!(reply.starts_with("HTTP/1.1 403 "), "{reply}");
        assert!(reply.contains(why), "{reply}");
        assert!(!reply.contains(TOKEN) && !reply.contains(OTHER), "{reply}");
    }
}

#[test]
fn a_value_that_would_break_the_request_head_is_refused() {
    let policy = "version: 1\ndefault: allow\ncredentials:\n  multi-line: { targets: [\"api.example.test\"] }\n  same-len: { targets: [\"api.example.test\"] }\n";
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    g.policy
        .swap(Arc::new(Engine::from_yaml("p", policy).expect("compiles")));
    let out = http(
        &g,
        "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nX-Key: sluice:secret/multi-line\r\n\r\n",
    );
    assert!(out.to_server.is_empty(), "{}", String::from_utf8_lossy(&out.to_server));
    assert!(String::from_utf8_lossy(&out.to_client).contains("cannot go in an HTTP request head"));
    assert_eq!("sluice:secret/same-len".len(), "a-synthetic\r\nX-Evil: 1".len());
    let out = http(
        &g,
        "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nX-Key: sluice:secret/same-len\r\n\r\n",
    );
    assert!(out.to_server.is_empty(), "{}", String::from_utf8_lossy(&out.to_server));
    assert!(String::from_utf8_lossy(&out.to_client).contains("cannot go in an HTTP request head"));
}

#[test]
fn mcp_tool_arguments_get_the_credential_inside_their_strings() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let call = |target: &str, args: &str| {
        let mut s = McpSession::new(Arc::clone(&g), Identity::new("agent-7"), Target::new(target));
        let mut out = Output::default();
        let msg = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"fetch","arguments":{args}}}}}"#
        );
        s.client_message(msg.as_bytes(), &mut out).expect("handled");
        out
    };
    let out = call("files", r#"{"header":"Bearer sluice:secret/api-token","n":3}"#);
    let sent: serde_json::Value = serde_json::from_slice(&out.to_server).expect("forwarded JSON");
    assert_eq!(sent["params"]["arguments"]["header"], format!("Bearer {TOKEN}"));
    assert_eq!(sent["params"]["arguments"]["n"], 3);
    assert_eq!(sent["method"], "tools/call");
    // Another server: refused with a JSON-RPC error naming the placeholder.
    let out = call("shell", r#"{"header":"sluice:secret/api-token"}"#);
    assert!(out.to_server.is_empty());
    let reply = String::from_utf8_lossy(&out.to_client);
    assert!(
        reply.contains("sluice:secret/api-token: this credential may not be sent here"),
        "{reply}"
    );
    // The echo of the credential comes back as its placeholder.
    let mut s = McpSession::new(Arc::clone(&g), Identity::new("agent-7"), Target::new("files"));
    let mut out = Output::default();
    s.client_message(
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{}}}"#,
        &mut out,
    )
    .expect("handled");
    let echo = format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"content":[{{"type":"text","text":"got {TOKEN}"}}]}}}}"#);
    let mut out = Output::default();
    s.server_message(echo.as_bytes(), &mut out).expect("handled");
    let back = String::from_utf8_lossy(&out.to_client);
    assert!(
        back.contains("got sluice:secret/api-token") && !back.contains(TOKEN),
        "{back}"
    );
}

#[test]
fn the_policy_names_where_each_credential_may_go() {
    let e = Engine::from_yaml("p", POLICY).expect("compiles");
    assert!(e.credential_allowed("api-token", "api.example.test"));
    assert!(!e.credential_allowed("api-token", "elsewhere.example.test"));
    assert!(!e.credential_allowed("unlisted", "api.example.test"));
    for (bad, why) in [
        ("version: 1\ncredentials:\n  Bad: { targets: [x] }\n", "credentials.Bad"),
        (
            "version: 1\ncredentials:\n  ok: { targets: [] }\n",
            "credentials.ok.targets",
        ),
        ("version: 1\ncredentials:\n  ok: { hosts: [x] }\n", "unknown field"),
    ] {
        let err = Engine::from_yaml("p", bad).expect_err("rejected").to_string();
        assert!(err.contains(why), "{err}");
    }
}

/// A PostgreSQL message: type, length, body.
fn pg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn pg_auth(code: u32, data: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(data);
    pg(b'R', &b)
}

fn startup(user: &str, db: &str) -> Vec<u8> {
    let mut body = 196608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", db)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = (body.len() as u32 + 4).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// A PostgreSQL session through the startup packet and the server's password request
/// (`code`, `data`): the client must be asked for a cleartext password instead.
fn pg_login(g: &Arc<Guard>, db: &str, code: u32, data: &[u8]) -> PgSession {
    let mut s = PgSession::new(Arc::clone(g), None, None);
    let mut out = Output::default();
    s.from_client(&startup("agent", db), &mut out).expect("startup");
    assert_eq!(out.to_server, startup("agent", db));
    let mut out = Output::default();
    s.from_server(&pg_auth(code, data), &mut out).expect("the request");
    assert_eq!(
        out.to_client,
        pg_auth(3, b""),
        "the client is asked for a cleartext password"
    );
    assert!(out.to_server.is_empty());
    s
}

fn password(p: &str) -> Vec<u8> {
    pg(b'p', format!("{p}\0").as_bytes())
}

#[test]
fn postgres_login_answers_the_server_with_the_held_credential() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    // MD5: the answer is salted with the held value, never the placeholder.
    let mut s = pg_login(&g, "appdb", 5, &[9, 8, 7, 6]);
    let mut out = Output::default();
    s.from_client(&password("sluice:secret/api-token"), &mut out)
        .expect("answered");
    assert_eq!(
        out.to_server,
        password(&md5_password(b"agent", TOKEN.as_bytes(), &[9, 8, 7, 6]))
    );
    assert!(out.to_client.is_empty());
    let mut out = Output::default();
    s.from_server(&pg_auth(0, b""), &mut out).expect("ok");
    assert_eq!(out.to_client, pg_auth(0, b""), "AuthenticationOk reaches the client");
    // Cleartext: the held value itself.
    let mut s = pg_login(&g, "appdb", 3, b"");
    let mut out = Output::default();
    s.from_client(&password("sluice:secret/api-token"), &mut out)
        .expect("answered");
    assert_eq!(out.to_server, password(TOKEN));
    // SCRAM: the client-first message, for SCRAM-SHA-256 (not the -PLUS variant).
    let mut s = pg_login(&g, "appdb", 10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
    let mut out = Output::default();
    s.from_client(&password("sluice:secret/api-token"), &mut out)
        .expect("answered");
    let sent = String::from_utf8_lossy(&out.to_server).into_owned();
    assert!(sent.contains("SCRAM-SHA-256\0") && sent.contains("n,,n=,r="), "{sent}");
    assert!(!sent.contains(TOKEN) && !sent.contains("sluice:secret"), "{sent}");
    // A server whose nonce does not extend the client's is not answered.
    let mut out = Output::default();
    assert!(
        s.from_server(&pg_auth(11, b"r=forged,s=c2FsdA==,i=4096"), &mut out)
            .is_err()
    );
    let notes = notes.0.lock().expect("lock").join("\n");
    assert!(
        notes.contains("credentials substituted for appdb: api-token"),
        "{notes}"
    );
    assert!(!notes.contains(TOKEN));
}

#[test]
fn postgres_login_refuses_a_placeholder_the_target_may_not_have() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    for (db, pw) in [
        ("otherdb", "sluice:secret/api-token"),
        ("appdb", "sluice:secret/other-token"),
        ("appdb", "sluice:secret/nothing-held"),
    ] {
        let mut s = pg_login(&g, db, 10, b"SCRAM-SHA-256\0\0");
        let mut out = Output::default();
        s.from_client(&password(pw), &mut out).expect("answered with an error");
        assert!(out.to_server.is_empty(), "nothing reaches the server");
        let told = String::from_utf8_lossy(&out.to_client).into_owned();
        assert!(
            told.starts_with('E') && told.contains("28P01") && told.contains(pw),
            "{told}"
        );
        // The session is over: nothing more goes through.
        let mut out = Output::default();
        assert!(s.from_client(&password(pw), &mut out).is_err());
        assert!(out.to_server.is_empty());
    }
    // The agent's own password (no placeholder) is used as it is.
    let mut s = pg_login(&g, "appdb", 3, b"");
    let mut out = Output::default();
    s.from_client(&password("my-own-password"), &mut out).expect("answered");
    assert_eq!(out.to_server, password("my-own-password"));
    // A SCRAM message before the password, or a password twice, is out of order.
    let mut s = pg_login(&g, "appdb", 10, b"SCRAM-SHA-256\0\0");
    let mut out = Output::default();
    assert!(s.from_server(&pg_auth(11, b"r=x,s=c2FsdA==,i=1"), &mut out).is_err());
    // Only channel binding offered: the session cannot log in and says so.
    let mut s = pg_login(&g, "appdb", 10, b"SCRAM-SHA-256-PLUS\0\0");
    let mut out = Output::default();
    let e = s
        .from_client(&password("sluice:secret/api-token"), &mut out)
        .expect_err("cannot");
    assert!(e.to_string().contains("SCRAM-SHA-256"), "{e}");
}

/// A MySQL packet: 3-byte length, sequence id, payload.
/// An auth switch request to `mysql_native_password` with a new scramble.
fn auth_switch(scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = vec![0xFE];
    p.extend_from_slice(b"mysql_native_password\0");
    p.extend_from_slice(scramble);
    p.push(0);
    p
}

fn my(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    m.push(seq);
    m.extend_from_slice(payload);
    m
}

/// A protocol-10 greeting offering mysql_native_password with `scramble`.
fn greeting(scramble: &[u8; 20]) -> Vec<u8> {
    greeting_with(scramble, 0)
}

/// The same, with more capability bits (`0x800`: TLS).
fn greeting_with(scramble: &[u8; 20], more: u32) -> Vec<u8> {
    let caps: u32 = 0x0000_8000 | 0x0000_0200 | 0x0000_0008 | 0x0008_0000 | more;
    let mut g = vec![10];
    g.extend_from_slice(b"10.11.0-MariaDB\0");
    g.extend_from_slice(&7u32.to_le_bytes());
    g.extend_from_slice(&scramble[..8]);
    g.push(0);
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.push(33);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(&scramble[8..]);
    g.push(0);
    g.extend_from_slice(b"mysql_native_password\0");
    my(0, &g)
}

fn handshake_response(user: &str, answer: &[u8], db: &str) -> Vec<u8> {
    let caps: u32 = 0x0000_8000 | 0x0000_0200 | 0x0000_0008 | 0x0008_0000;
    let mut r = caps.to_le_bytes().to_vec();
    r.extend_from_slice(&(1u32 << 24).to_le_bytes());
    r.push(33);
    r.extend_from_slice(&[0; 23]);
    r.extend_from_slice(user.as_bytes());
    r.push(0);
    r.push(answer.len() as u8);
    r.extend_from_slice(answer);
    r.extend_from_slice(db.as_bytes());
    r.push(0);
    r.extend_from_slice(b"mysql_native_password\0");
    my(1, &r)
}

#[test]
fn mysql_login_answers_with_the_held_credential_where_it_may_go() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let scramble: [u8; 20] = *b"0123456789abcdefghij";
    let start = |db: &str, answer: &[u8]| {
        let mut s = MySqlSession::new(Arc::clone(&g), None, None);
        let mut out = Output::default();
        s.from_server(&greeting(&scramble), &mut out).expect("greeting");
        let mut out = Output::default();
        s.from_client(&handshake_response("agent", answer, db), &mut out)
            .expect("handled");
        (s, out)
    };
    let placeholder_answer = mysql_native_password(b"sluice:secret/api-token", &scramble);
    // Allowed: the server gets the answer for the held value, in the same packet otherwise.
    let (_, out) = start("appdb", &placeholder_answer);
    let held_answer = mysql_native_password(TOKEN.as_bytes(), &scramble);
    assert_eq!(out.to_server, handshake_response("agent", &held_answer, "appdb"));
    // Not allowed for this database: ERR 1045 naming the placeholder, nothing to the server.
    let (_, out) = start("otherdb", &placeholder_answer);
    assert!(out.to_server.is_empty());
    let told = String::from_utf8_lossy(&out.to_client).into_owned();
    assert!(
        out.to_client[3] == 2 && out.to_client[4] == 0xFF,
        "ERR with the next sequence id"
    );
    assert!(
        told.contains("sluice:secret/api-token") && told.contains("may not be sent here"),
        "{told}"
    );
    // The agent's own password: its answer goes as it is.
    let own = mysql_native_password(b"my-own-password", &scramble);
    let (mut s, out) = start("appdb", &own);
    assert_eq!(out.to_server, handshake_response("agent", &own, "appdb"));
    // An auth switch to native password with a new scramble: the answer to it is swapped too.
    let fresh: [u8; 20] = *b"ABCDEFGHIJKLMNOPQRST";
    let switch = auth_switch(&fresh);
    let mut out = Output::default();
    s.from_server(&my(2, &switch), &mut out).expect("switch");
    assert_eq!(out.to_client, my(2, &switch));
    let mut out = Output::default();
    s.from_client(
        &my(3, &mysql_native_password(b"sluice:secret/api-token", &fresh)),
        &mut out,
    )
    .expect("answered");
    assert_eq!(out.to_server, my(3, &mysql_native_password(TOKEN.as_bytes(), &fresh)));
    let notes = notes.0.lock().expect("lock").join("\n");
    assert!(
        notes.contains("credentials substituted for appdb: api-token"),
        "{notes}"
    );
    assert!(!notes.contains(TOKEN));
}

#[test]
fn a_reverse_proxy_session_sends_every_request_to_its_origin() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let session =
        || HttpSession::new(Arc::clone(&g), Identity::new("agent-7"), None).with_origin(true, "api.example.test", 443);
    // Whatever the Host header says, the request is the origin's: decided, brokered and sent
    // for it (the default port left out of Host).
    let mut s = session();
    let mut out = Output::default();
    s.from_client(
        b"GET /v1/items HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer sluice:secret/api-token\r\n\r\n",
        &mut out,
    )
    .expect("handled");
    assert_eq!(s.upstream(), Some(("api.example.test".into(), 443)));
    let sent = String::from_utf8_lossy(&out.to_server).into_owned();
    assert!(
        sent.starts_with("GET /v1/items HTTP/1.1\r\nHost: api.example.test\r\n"),
        "{sent}"
    );
    assert!(sent.contains(&format!("Bearer {TOKEN}")), "{sent}");
    let notes = notes.0.lock().expect("lock").join("\n");
    assert!(
        notes.contains("https://api.example.test:443/v1/items"),
        "decided on the origin's URL: {notes}"
    );
    // CONNECT and absolute-form requests are not requests for a path of the origin.
    for request in [
        &b"CONNECT other.example.test:443 HTTP/1.1\r\nHost: other.example.test:443\r\n\r\n"[..],
        b"GET http://other.example.test/ HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
    ] {
        let mut out = Output::default();
        assert!(session().from_client(request, &mut out).is_err());
        assert!(out.to_server.is_empty());
    }
}

fn ssh_session(g: &Arc<Guard>, target: &str) -> SshSession {
    let mut s = SshSession::new(Arc::clone(g), Identity::new("agent"), Target::new(target));
    let mut out = SshOutput::default();
    // The client opens channel 5; the server calls it 700.
    let mut open = vec![90];
    for part in [&7u32.to_be_bytes()[..], b"session"] {
        open.extend_from_slice(part);
    }
    open.extend_from_slice(&5u32.to_be_bytes());
    open.extend_from_slice(&65536u32.to_be_bytes());
    open.extend_from_slice(&32768u32.to_be_bytes());
    s.client_message(&open, &mut out).expect("open");
    let mut confirm = vec![91];
    for n in [5u32, 700, 1_000_000, 32768] {
        confirm.extend_from_slice(&n.to_be_bytes());
    }
    s.server_message(&confirm, &mut out).expect("confirm");
    s
}

#[test]
fn ssh_exec_commands_and_env_values_get_the_credential() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let mut s = ssh_session(&g, "build-host");
    let exec = |cmd: &str| {
        let mut m = Vec::new();
        ssh::encode_channel_request_exec(700, true, cmd.as_bytes(), &mut m);
        m
    };
    let env = |name: &str, value: &str| {
        let mut m = Vec::new();
        ssh::encode_channel_request_env(700, true, name.as_bytes(), value.as_bytes(), &mut m);
        m
    };
    let mut out = SshOutput::default();
    s.client_message(&exec("deploy --token sluice:secret/api-token"), &mut out)
        .expect("exec");
    assert_eq!(out.to_server, vec![exec(&format!("deploy --token {TOKEN}"))]);
    let mut out = SshOutput::default();
    s.client_message(&env("API_TOKEN", "sluice:secret/api-token"), &mut out)
        .expect("env");
    assert_eq!(out.to_server, vec![env("API_TOKEN", TOKEN)]);
    // An env value may hold anything (no shell reads it); a command may not.
    let mut out = SshOutput::default();
    s.client_message(&env("NOTE", "sluice:secret/spaced"), &mut out)
        .expect("env");
    assert_eq!(out.to_server, vec![env("NOTE", "synthetic value; $(id)")]);
    for refused in [
        "echo sluice:secret/spaced",
        "deploy sluice:secret/other-token",
        "x sluice:secret/unknown",
    ] {
        let mut out = SshOutput::default();
        s.client_message(&exec(refused), &mut out).expect("answered");
        assert!(out.to_server.is_empty(), "{refused}: nothing forwarded");
        let told: Vec<u8> = out.to_client.concat();
        let told = String::from_utf8_lossy(&told);
        assert!(told.contains("sluice: denied: sluice:secret/"), "{refused}: {told}");
    }
    // Another host: the policy does not let api-token go there.
    let mut s = ssh_session(&g, "other-host");
    let mut out = SshOutput::default();
    s.client_message(&exec("deploy --token sluice:secret/api-token"), &mut out)
        .expect("answered");
    assert!(out.to_server.is_empty());
    let notes = notes.0.lock().expect("lock").join("\n");
    assert!(
        notes.contains("credentials substituted for build-host: api-token"),
        "{notes}"
    );
    assert!(!notes.contains(TOKEN));
}

#[test]
fn mysql_tls_to_the_server_starts_after_the_greeting_and_renumbers_the_login() {
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let scramble: [u8; 20] = *b"0123456789abcdefghij";
    let mut s = MySqlSession::new(Arc::clone(&g), None, None).with_upstream_tls();
    let mut out = Output::default();
    s.from_server(&greeting_with(&scramble, 0x800), &mut out)
        .expect("greeting");
    let seen = out.to_client.clone();
    // Lower capability bytes: header 4, version 1, "10.11.0-MariaDB\0" 16, id 4, scramble 8, filler 1.
    assert_eq!(
        u16::from_le_bytes([seen[34], seen[35]]) & 0x8000,
        0x8000,
        "the greeting as expected"
    );
    assert_eq!(
        u16::from_le_bytes([seen[34], seen[35]]) & 0x800,
        0,
        "the client is not offered TLS"
    );
    // The client's response: an SSLRequest goes out now, the response (numbered 2, with
    // CLIENT_SSL) once TLS is up, with the held credential's answer.
    let answer = mysql_native_password(b"sluice:secret/api-token", &scramble);
    let response = handshake_response("agent", &answer, "appdb");
    let mut out = Output::default();
    s.from_client(&response, &mut out).expect("response");
    assert_eq!(&out.to_server[..4], &[32, 0, 0, 1], "an SSLRequest, sequence 1");
    let caps = u32::from_le_bytes([out.to_server[4], out.to_server[5], out.to_server[6], out.to_server[7]]);
    assert_ne!(caps & 0x800, 0);
    assert_eq!(out.to_server.len(), 36);
    assert!(out.to_client.is_empty());
    let later = s.start_tls().expect("TLS now");
    assert!(s.start_tls().is_none(), "once");
    assert_eq!(later[3], 2, "numbered after the SSLRequest");
    let mut expected = handshake_response("agent", &mysql_native_password(TOKEN.as_bytes(), &scramble), "appdb");
    expected[3] = 2;
    expected[5] |= 0x08; // CLIENT_SSL (0x800)
    assert_eq!(later, expected);
    // An auth switch from the server (its number 3) reaches the client as 2; the client's
    // answer (3) reaches the server as 4; the server's OK (5) the client as 4.
    let fresh: [u8; 20] = *b"ABCDEFGHIJKLMNOPQRST";
    let switch = auth_switch(&fresh);
    let mut out = Output::default();
    s.from_server(&my(3, &switch), &mut out).expect("switch");
    assert_eq!(out.to_client, my(2, &switch));
    let mut out = Output::default();
    s.from_client(
        &my(3, &mysql_native_password(b"sluice:secret/api-token", &fresh)),
        &mut out,
    )
    .expect("answer");
    assert_eq!(out.to_server, my(4, &mysql_native_password(TOKEN.as_bytes(), &fresh)));
    let mut out = Output::default();
    s.from_server(&my(5, &[0, 0, 0, 2, 0, 0, 0]), &mut out).expect("ok");
    assert_eq!(out.to_client, my(4, &[0, 0, 0, 2, 0, 0, 0]));
    // A server that does not offer TLS is not logged in to.
    let mut s = MySqlSession::new(Arc::clone(&g), None, None).with_upstream_tls();
    let mut out = Output::default();
    assert!(s.from_server(&greeting(&scramble), &mut out).is_err());
}

#[test]
fn binary_and_compressed_request_bodies_get_the_credential() {
    use std::io::Write as _;
    let notes = Arc::new(Notes::default());
    let g = guard(&notes);
    let send = |head: &str, body: &[u8]| {
        let mut req = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        req.extend_from_slice(body);
        let mut s = HttpSession::new(Arc::clone(&g), Identity::new("agent-7"), None);
        let mut out = Output::default();
        s.from_client(&req, &mut out).expect("handled");
        out
    };
    let split = |sent: &[u8]| {
        let at = memchr::memmem::find(sent, b"\r\n\r\n").expect("a head") + 4;
        (String::from_utf8_lossy(&sent[..at]).into_owned(), sent[at..].to_vec())
    };
    // Not UTF-8: the bytes around the placeholder stay as they are.
    let mut body = vec![0xff, 0x00, 0xfe];
    body.extend_from_slice(b"sluice:secret/api-token");
    body.extend_from_slice(&[0x80, 0x81]);
    let out = send(
        "POST /upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Type: application/octet-stream\r\n",
        &body,
    );
    let (head, sent) = split(&out.to_server);
    let mut expected = vec![0xff, 0x00, 0xfe];
    expected.extend_from_slice(TOKEN.as_bytes());
    expected.extend_from_slice(&[0x80, 0x81]);
    assert_eq!(sent, expected);
    assert!(head.contains(&format!("Content-Length: {}", expected.len())), "{head}");
    // gzip: decoded, swapped, sent uncompressed without Content-Encoding.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"token":"sluice:secret/api-token"}"#).expect("gzip");
    let out = send(
        "POST /v1/items HTTP/1.1\r\nHost: api.example.test\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n",
        &gz.finish().expect("gzip"),
    );
    let (head, sent) = split(&out.to_server);
    assert_eq!(sent, format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes());
    assert!(!head.to_ascii_lowercase().contains("content-encoding"), "{head}");
    // Compressed, to a host the policy does not name: refused, nothing sent.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"sluice:secret/api-token").expect("gzip");
    let out = send(
        "POST /v1/items HTTP/1.1\r\nHost: elsewhere.example.test\r\nContent-Encoding: gzip\r\n",
        &gz.finish().expect("gzip"),
    );
    assert!(out.to_server.is_empty());
    assert!(String::from_utf8_lossy(&out.to_client).starts_with("HTTP/1.1 403"));
    // A compressed body without placeholders goes as it came.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"plain").expect("gzip");
    let plain = gz.finish().expect("gzip");
    let out = send(
        "POST /v1/items HTTP/1.1\r\nHost: api.example.test\r\nContent-Encoding: gzip\r\n",
        &plain,
    );
    let (head, sent) = split(&out.to_server);
    assert_eq!(sent, plain);
    assert!(head.contains("Content-Encoding: gzip"), "{head}");
}
