//! The security oracle every protocol session is held to, driven by a script of bytes (from
//! proptest or from a fuzzer): the script picks what the client sends, how the bytes are cut,
//! and where a model server plants secrets in its answers. After the conversation:
//!
//! 1. no planted secret (nor a fragment of one split across fields) appears in what the session
//!    sent the client;
//! 2. every command-bearing message that reached the server was decided `allow` (and every
//!    statement, portal or prepared id it names was created by such a message);
//! 3. no command that was refused reaches the server.
//!
//! A `SessionError` is allowed at any point (the host closes the connection): the oracle holds
//! for everything produced before it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sluice_core::Detector;
use sluice_core::policy::grant::{self, GrantKey, GrantVerifier, MemoryStore};
use sluice_core::policy::{Action, Dialect, Engine, EngineHandle, Identity, Request, Target};
use sluice_core::session::http::HttpSession;
use sluice_core::session::mcp::McpSession;
use sluice_core::session::mysql::MySqlSession;
use sluice_core::session::postgres::PgSession;
use sluice_core::session::ssh::{SshOutput, SshSession};
use sluice_core::session::{Event, Guard, Hook, Output, SessionError};
use sluice_protocols::{mysql, postgres as pg, ssh};

/// Reads choices off the script; zeros once it is used up.
pub struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Script<'a> {
        Script { data, at: 0 }
    }
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    pub fn pick(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    pub fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// Decisions the sessions reported: (command, allowed).
#[derive(Default)]
pub struct Recorder {
    pub decisions: Mutex<Vec<(String, bool)>>,
}

impl Hook for Recorder {
    fn event(&self, e: &Event<'_>) {
        if let Event::Decision { command, decision, .. } = e {
            let ok = decision.action() == Action::Allow;
            self.decisions.lock().expect("lock").push((command.to_string(), ok));
        }
    }
}

impl Recorder {
    fn allowed(&self, cmd: &str) -> bool {
        self.decisions
            .lock()
            .expect("lock")
            .iter()
            .any(|(c, ok)| *ok && c == cmd)
    }
    fn refused(&self) -> Vec<String> {
        let d = self.decisions.lock().expect("lock");
        let allowed: HashSet<&String> = d.iter().filter(|(_, ok)| *ok).map(|(c, _)| c).collect();
        d.iter()
            .filter(|(c, ok)| !*ok && !allowed.contains(c))
            .map(|(c, _)| c.clone())
            .collect()
    }
}

pub fn detector() -> Arc<Detector> {
    static D: std::sync::OnceLock<Arc<Detector>> = std::sync::OnceLock::new();
    D.get_or_init(|| Arc::new(Detector::builder().build().expect("detector")))
        .clone()
}

/// The key approvers sign grants with in these conversations.
fn grant_key() -> &'static GrantKey {
    static K: std::sync::OnceLock<GrantKey> = std::sync::OnceLock::new();
    K.get_or_init(GrantKey::generate_hmac)
}

fn guard(rec: &Arc<Recorder>) -> Arc<Guard> {
    let mut g = Guard::new(Arc::new(EngineHandle::new(Engine::agent_safe())), detector());
    g.hook = Some(rec.clone() as Arc<dyn Hook>);
    g.grants = Some(GrantVerifier::new(
        grant_key().clone(),
        Arc::new(MemoryStore::default()),
    ));
    Arc::new(g)
}

/// A grant for `sql` run by `agent` on `target`, as an approver would sign it.
fn grant_for(sql: &str, dialect: Dialect, target: &str) -> String {
    let d = Engine::agent_safe().decide(
        &Identity::new("agent"),
        &Target::new(target),
        &Request::Sql {
            text: sql,
            dialect,
            lexing: Default::default(),
        },
    );
    let req = d.approval().expect("an approval request");
    grant::issue(grant_key(), req, &[grant::Approver::new("alice")], grant::now()).expect("a grant")
}

/// The statement only a grant allows, and how often a granted execution may reach the server.
const GRANTED_SQL: &str = "DROP TABLE accounts";

/// What the model server plants, and what must never reach the client.
pub struct Secrets {
    /// The whole secret (a synthetic Stripe-style key).
    pub whole: String,
    /// Fragments of it planted in adjacent fields.
    pub fragments: Vec<String>,
}

impl Secrets {
    fn new(s: &mut Script<'_>) -> Secrets {
        // A high-entropy body, permuted by the script: always a key the detector knows.
        let mut body: Vec<u8> = b"4eC39HqLyjWDarjtT1zdp7dc".to_vec();
        for i in (1..body.len()).rev() {
            let j = s.pick(i + 1);
            body.swap(i, j);
        }
        Secrets {
            whole: format!("sk_live_{}", String::from_utf8_lossy(&body)),
            fragments: Vec::new(),
        }
    }

    /// The secret split in two at a point the script picks (both parts long enough to be
    /// recognisable on their own if they leaked).
    fn split(&mut self, s: &mut Script<'_>) -> (String, String) {
        let at = 14 + s.pick(self.whole.len() - 20);
        let (a, b) = self.whole.split_at(at);
        self.fragments.push(a.to_string());
        self.fragments.push(b.to_string());
        (a.to_string(), b.to_string())
    }

    /// A value with the secret in it, in one of the forms the script picks.
    fn value(&self, s: &mut Script<'_>) -> String {
        let w = &self.whole;
        match s.pick(6) {
            0 => w.clone(),
            1 => format!("key={w}"),
            2 => format!("{{\"api_key\": \"{w}\"}}"),
            3 => format!("prefix text\n{w}\ntrailer"),
            4 => format!("STRIPE_KEY={w} and more"),
            _ => format!("\t{w}\t"),
        }
    }

    fn leaks(&self, out: &[u8]) -> Option<String> {
        let found = |needle: &str| out.windows(needle.len()).any(|w| w == needle.as_bytes());
        if found(&self.whole) {
            return Some(format!("the planted secret {} reached the client", self.whole));
        }
        // The random body of a fragment (what follows `sk_live_`, or the tail).
        for f in &self.fragments {
            let f = f.strip_prefix("sk_live_").unwrap_or(f);
            if f.len() >= 6 && found(f) {
                return Some(format!("a fragment `{f}` of the split secret reached the client"));
            }
        }
        None
    }
}

/// Feeds `data` in pieces the script cuts.
fn feed(
    s: &mut Script<'_>,
    data: &[u8],
    mut f: impl FnMut(&[u8]) -> Result<(), SessionError>,
) -> Result<(), SessionError> {
    let mut at = 0;
    while at < data.len() {
        let n = match s.pick(4) {
            0 => data.len() - at,
            1 => 1 + s.pick(7),
            _ => 1 + usize::from(s.byte()) * 4,
        }
        .min(data.len() - at);
        f(&data[at..at + n])?;
        at += n;
    }
    Ok(())
}

/// The outcome of one conversation: an oracle violation, if any.
pub type Verdict = Result<(), String>;

/// Runs one conversation on the session the script's first byte picks.
pub fn run(data: &[u8]) -> Verdict {
    let mut s = Script::new(data);
    match s.pick(5) {
        0 => postgres(&mut s),
        1 => mysql_session(&mut s),
        2 => mcp(&mut s),
        3 => http(&mut s),
        _ => ssh_session(&mut s),
    }
}

/// Runs the conversation of one protocol.
pub fn run_protocol(protocol: usize, data: &[u8]) -> Verdict {
    let mut s = Script::new(data);
    match protocol {
        0 => postgres(&mut s),
        1 => mysql_session(&mut s),
        2 => mcp(&mut s),
        3 => http(&mut s),
        _ => ssh_session(&mut s),
    }
}

// ---- PostgreSQL -------------------------------------------------------------------------------

const PG_ALLOWED: &[&str] = &[
    "SELECT api_key, name FROM accounts",
    "SELECT 1",
    "COPY accounts TO STDOUT",
];
const PG_REFUSED: &[&str] = &[
    "SELECT * FROM pg_shadow",
    "DROP TABLE accounts",
    "COPY (SELECT 1) TO PROGRAM 'id'",
];

fn pg_msg(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

fn cstr(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(s);
    b.push(0);
}

fn pg_statement(s: &mut Script<'_>) -> &'static str {
    if s.pick(3) == 0 {
        PG_REFUSED[s.pick(PG_REFUSED.len())]
    } else {
        PG_ALLOWED[s.pick(PG_ALLOWED.len())]
    }
}

/// The model PostgreSQL server: answers every message the session forwarded, planting secrets.
struct PgServer {
    statements: std::collections::HashMap<Vec<u8>, String>,
    portals: std::collections::HashMap<Vec<u8>, String>,
    /// Executions of the granted statement, and grants issued.
    granted_runs: usize,
    grants: usize,
    started: bool,
    copy_in: bool,
}

impl PgServer {
    fn answer(
        &mut self,
        s: &mut Script<'_>,
        sec: &mut Secrets,
        to_server: &[u8],
        rec: &Recorder,
    ) -> Result<Vec<u8>, String> {
        let mut reply = Vec::new();
        let mut at = 0;
        let lim = pg::Limits::default();
        if !self.started {
            // The startup packet: ask for a cleartext password.
            self.started = true;
            pg_msg(b'R', &3u32.to_be_bytes(), &mut reply);
            return Ok(reply);
        }
        while at < to_server.len() {
            let (m, used) = match pg::parse_frontend(&to_server[at..], &lim) {
                Ok(pg::Status::Complete(x)) => x,
                _ => return Err("the session sent the server a malformed message".into()),
            };
            at += used;
            match m {
                pg::Frontend::Password(_) => {
                    pg_msg(b'R', &0u32.to_be_bytes(), &mut reply);
                    let v = sec.value(s);
                    pg::encode_parameter_status(b"application_name", v.as_bytes(), &mut reply);
                    pg_msg(b'K', &[0, 0, 0, 1, 0, 0, 0, 2], &mut reply);
                    pg::encode_ready_for_query(b'I', &mut reply);
                }
                pg::Frontend::Query(q) => {
                    let q = std::str::from_utf8(q).map_err(|_| "non-UTF-8 query")?;
                    if !rec.allowed(q) {
                        return Err(format!("an undecided query reached the server: {q}"));
                    }
                    if q == GRANTED_SQL {
                        self.granted_runs += 1;
                        if self.granted_runs > self.grants {
                            return Err("a grant bought more than one execution".into());
                        }
                    }
                    if q.starts_with("COPY") {
                        self.copy(s, sec, &mut reply);
                    } else {
                        self.rows(s, sec, true, &mut reply);
                    }
                    pg::encode_ready_for_query(b'I', &mut reply);
                }
                pg::Frontend::Parse { name, query, .. } => {
                    let q = std::str::from_utf8(query).map_err(|_| "non-UTF-8 statement")?;
                    if !rec.allowed(q) {
                        return Err(format!("an undecided statement reached the server: {q}"));
                    }
                    self.statements.insert(name.to_vec(), q.to_string());
                    pg_msg(b'1', &[], &mut reply);
                }
                pg::Frontend::Bind { portal, statement, .. } => {
                    let Some(text) = self.statements.get(statement).cloned() else {
                        return Err("a Bind of a statement no allowed Parse created reached the server".into());
                    };
                    self.portals.insert(portal.to_vec(), text);
                    pg_msg(b'2', &[], &mut reply);
                }
                pg::Frontend::Describe { .. } => self.description(s, sec, &mut reply),
                pg::Frontend::Execute { portal, .. } => {
                    let Some(text) = self.portals.remove(portal) else {
                        return Err("an Execute of a portal no allowed Bind created reached the server".into());
                    };
                    if text == GRANTED_SQL {
                        self.granted_runs += 1;
                        if self.granted_runs > self.grants {
                            return Err("a grant bought more than one execution".into());
                        }
                    }
                    self.rows(s, sec, false, &mut reply);
                }
                pg::Frontend::Sync => pg::encode_ready_for_query(b'I', &mut reply),
                pg::Frontend::CopyData(_) | pg::Frontend::CopyDone | pg::Frontend::CopyFail(_) => {
                    if !self.copy_in {
                        return Err("COPY data reached the server outside COPY FROM STDIN".into());
                    }
                }
                pg::Frontend::Close { .. } => pg_msg(b'3', &[], &mut reply),
                pg::Frontend::Flush | pg::Frontend::Terminate => {}
                _ => return Err("an unexpected message reached the server".into()),
            }
        }
        // Asynchronous messages between answers.
        if s.pick(4) == 0 {
            let mut b = 7u32.to_be_bytes().to_vec();
            cstr(&mut b, b"chan");
            cstr(&mut b, sec.value(s).as_bytes());
            pg_msg(b'A', &b, &mut reply);
        }
        if s.pick(4) == 0 {
            let v = sec.value(s);
            pg::encode_error(&[(b'S', b"NOTICE"), (b'M', v.as_bytes())], true, &mut reply);
        }
        Ok(reply)
    }

    fn description(&self, s: &mut Script<'_>, sec: &Secrets, reply: &mut Vec<u8>) {
        let names: Vec<Vec<u8>> = vec![
            b"password".to_vec(),
            if s.pick(3) == 0 {
                sec.whole.clone().into_bytes()
            } else {
                b"name".to_vec()
            },
        ];
        let cols: Vec<pg::Column<'_>> = names
            .iter()
            .map(|n| pg::Column {
                name: n,
                table_oid: 0,
                attr: 0,
                type_oid: 25,
                type_size: -1,
                type_mod: -1,
                format: 0,
            })
            .collect();
        pg::encode_row_description(&cols, reply);
    }

    fn rows(&self, s: &mut Script<'_>, sec: &mut Secrets, describe: bool, reply: &mut Vec<u8>) {
        if describe {
            self.description(s, sec, reply);
        }
        for _ in 0..1 + s.pick(3) {
            match s.pick(4) {
                0 => {
                    // Cut in two (or three), after a field that ends in a letter or digit.
                    let (a, b) = sec.split(s);
                    if s.pick(2) == 0 {
                        let (b1, b2) = b.split_at(b.len() / 2);
                        sec.fragments.push(b1.to_string());
                        sec.fragments.push(b2.to_string());
                        pg::encode_data_row(
                            &[
                                Some(b"id7"),
                                Some(a.as_bytes()),
                                Some(b1.as_bytes()),
                                Some(b2.as_bytes()),
                            ],
                            reply,
                        );
                    } else {
                        pg::encode_data_row(&[Some(b"7"), Some(a.as_bytes()), Some(b.as_bytes())], reply);
                    }
                }
                1 => {
                    // A credential-named column holding a key no rule knows.
                    let v = sec.value(s);
                    pg::encode_data_row(&[Some(v.as_bytes()), None], reply);
                }
                _ => {
                    let v = sec.value(s);
                    pg::encode_data_row(&[Some(b"plain"), Some(v.as_bytes())], reply);
                }
            }
        }
        if s.pick(3) == 0 {
            let v = sec.value(s);
            pg::encode_error(
                &[(b'S', b"ERROR"), (b'C', b"XX000"), (b'M', v.as_bytes())],
                false,
                reply,
            );
        } else {
            pg::encode_command_complete(b"SELECT 1", reply);
        }
    }

    fn copy(&self, s: &mut Script<'_>, sec: &Secrets, reply: &mut Vec<u8>) {
        let binary = s.pick(2) == 0;
        pg_msg(b'H', &[u8::from(binary), 0, 1, 0, u8::from(binary)], reply);
        let v = sec.value(s);
        let data = if binary {
            let mut d = b"PGCOPY\n\xff\r\n\0".to_vec();
            d.extend_from_slice(&[0; 8]);
            d.extend_from_slice(&1i16.to_be_bytes());
            d.extend_from_slice(&(v.len() as i32).to_be_bytes());
            d.extend_from_slice(v.as_bytes());
            d.extend_from_slice(&(-1i16).to_be_bytes());
            d
        } else {
            format!("{}\n", v.replace('\n', "\\n").replace('\t', "\\t")).into_bytes()
        };
        // Cut into CopyData messages where the script says.
        let mut at = 0;
        while at < data.len() {
            let n = (1 + s.pick(16)).min(data.len() - at);
            pg::encode_copy_data(&data[at..at + n], reply);
            at += n;
        }
        pg_msg(b'c', &[], reply);
        pg::encode_command_complete(b"COPY 1", reply);
    }
}

fn postgres(s: &mut Script<'_>) -> Verdict {
    let rec = Arc::new(Recorder::default());
    let mut sec = Secrets::new(s);
    let mut session = PgSession::new(guard(&rec), None, None);
    let mut server = PgServer {
        statements: std::collections::HashMap::new(),
        portals: std::collections::HashMap::new(),
        granted_runs: 0,
        grants: 0,
        started: false,
        copy_in: false,
    };
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    let mut startup = Vec::new();
    for kv in [&b"user"[..], b"agent", b"database", b"app"] {
        cstr(&mut startup, kv);
    }
    startup.push(0);
    let mut first = ((startup.len() + 8) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&196_608u32.to_be_bytes());
    first.extend_from_slice(&startup);
    let mut client: Vec<Vec<u8>> = vec![first];
    let mut password = Vec::new();
    cstr(&mut password, b"pw");
    let mut pw = Vec::new();
    pg_msg(b'p', &password, &mut pw);
    client.push(pw);
    let r = (|| -> Result<Verdict, SessionError> {
        for round in 0..12 {
            let msg = if round < client.len() {
                client[round].clone()
            } else {
                if s.done() {
                    break;
                }
                pg_client_step(s, &mut server.grants)
            };
            let mut out = Output::default();
            feed(s, &msg, |c| session.from_client(c, &mut out))?;
            to_client.extend_from_slice(&out.to_client);
            to_server.extend_from_slice(&out.to_server);
            if out.to_server.is_empty() {
                continue;
            }
            let reply = match server.answer(s, &mut sec, &out.to_server, &rec) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let mut out2 = Output::default();
            let r = feed(s, &reply, |c| session.from_server(c, &mut out2));
            to_client.extend_from_slice(&out2.to_client);
            to_server.extend_from_slice(&out2.to_server);
            r?;
        }
        Ok(Ok(()))
    })();
    if let Ok(Err(v)) = r {
        return Err(v);
    }
    check(&sec, &rec, &to_client, &to_server)
}

fn pg_client_step(s: &mut Script<'_>, grants: &mut usize) -> Vec<u8> {
    let mut m = Vec::new();
    match s.pick(7) {
        6 => {
            // An approved statement, prepared with its grant, then bound and executed twice
            // (or a granted simple query sent twice).
            let token = grant_for(GRANTED_SQL, Dialect::Postgres, "app");
            *grants += 1;
            let text = format!("/*sluice-grant:{token}*/ {GRANTED_SQL}");
            if s.pick(2) == 0 {
                for _ in 0..2 {
                    let mut b = Vec::new();
                    cstr(&mut b, text.as_bytes());
                    pg_msg(b'Q', &b, &mut m);
                }
            } else {
                let mut b = Vec::new();
                cstr(&mut b, b"g");
                cstr(&mut b, text.as_bytes());
                b.extend_from_slice(&0u16.to_be_bytes());
                pg_msg(b'P', &b, &mut m);
                pg_bind_execute(s, b"g", &mut m);
                pg_msg(b'S', &[], &mut m);
                pg_bind_execute(s, b"g", &mut m);
                pg_msg(b'S', &[], &mut m);
            }
        }
        0 | 1 => {
            let mut b = Vec::new();
            cstr(&mut b, pg_statement(s).as_bytes());
            pg_msg(b'Q', &b, &mut m);
        }
        2 => {
            // Pipelined simple queries in one write.
            for _ in 0..2 {
                let mut b = Vec::new();
                cstr(&mut b, pg_statement(s).as_bytes());
                pg_msg(b'Q', &b, &mut m);
            }
        }
        3 | 4 => {
            // An extended batch, the statement named or unnamed.
            let name: &[u8] = if s.pick(2) == 0 { b"" } else { b"s1" };
            let mut b = Vec::new();
            cstr(&mut b, name);
            cstr(&mut b, pg_statement(s).as_bytes());
            b.extend_from_slice(&0u16.to_be_bytes());
            pg_msg(b'P', &b, &mut m);
            pg_bind_execute(s, name, &mut m);
            if s.pick(2) == 0 {
                // Execute it again (a grant buys one execution; an allowed one may repeat).
                pg_bind_execute(s, name, &mut m);
            }
            pg_msg(b'S', &[], &mut m);
        }
        _ => {
            // Bind to a statement never parsed here (made by SQL PREPARE, say).
            pg_bind_execute(s, b"other", &mut m);
            pg_msg(b'S', &[], &mut m);
        }
    }
    m
}

fn pg_bind_execute(s: &mut Script<'_>, statement: &[u8], m: &mut Vec<u8>) {
    let mut b = Vec::new();
    cstr(&mut b, b"");
    cstr(&mut b, statement);
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    pg_msg(b'B', &b, m);
    if s.pick(2) == 0 {
        pg_msg(b'D', b"P\0", m);
    }
    pg_msg(b'E', b"\0\0\0\0\0", m);
}

// ---- MySQL ------------------------------------------------------------------------------------

const MY_ALLOWED: &[&str] = &["SELECT api_key, name FROM accounts", "SELECT 1"];
const MY_REFUSED: &[&str] = &["SELECT * FROM mysql.user", "DROP TABLE accounts"];

fn mysql_session(s: &mut Script<'_>) -> Verdict {
    let rec = Arc::new(Recorder::default());
    let mut sec = Secrets::new(s);
    let mut session = MySqlSession::new(guard(&rec), None, None);
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    let deprecate = s.pick(2) == 0;
    let r = (|| -> Result<Verdict, SessionError> {
        // Greeting, login, OK.
        let mut g = vec![10];
        g.extend_from_slice(b"8.0.0\0");
        g.extend_from_slice(&[1, 0, 0, 0]);
        g.extend_from_slice(b"abcdefgh\0");
        g.extend_from_slice(&0xF7FFu16.to_le_bytes());
        g.push(33);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&0x81BFu16.to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(b"ijklmnopqrst\0");
        g.extend_from_slice(b"mysql_native_password\0");
        let mut out = Output::default();
        let mut greeting = Vec::new();
        mysql::encode_packet(0, &[&g], &mut greeting);
        feed(s, &greeting, |c| session.from_server(c, &mut out))?;
        let caps: u32 = 0x0000_0200 | 0x0000_8000 | 0x0008_0000 | if deprecate { 0x0100_0000 } else { 0 };
        let mut login = caps.to_le_bytes().to_vec();
        login.extend_from_slice(&(1u32 << 24).to_le_bytes());
        login.push(33);
        login.extend_from_slice(&[0; 23]);
        login.extend_from_slice(b"agent\0");
        login.push(0);
        login.extend_from_slice(b"mysql_native_password\0");
        let mut lp = Vec::new();
        mysql::encode_packet(1, &[&login], &mut lp);
        // Commands pipelined behind the login must wait for authentication.
        if s.pick(3) == 0 {
            mysql::encode_packet(0, &[&[0x03], MY_REFUSED[0].as_bytes()], &mut lp);
        }
        let r = feed(s, &lp, |c| session.from_client(c, &mut out));
        to_client.extend_from_slice(&out.to_client);
        to_server.extend_from_slice(&out.to_server);
        r?;
        let mut ok = Vec::new();
        mysql::encode_packet(2, &[&[0, 0, 0, 2, 0, 0, 0]], &mut ok);
        let mut out = Output::default();
        feed(s, &ok, |c| session.from_server(c, &mut out))?;
        to_client.extend_from_slice(&out.to_client);
        to_server.extend_from_slice(&out.to_server);
        let mut prepared: Vec<(u32, String)> = Vec::new();
        let mut next_id = 1u32;
        let mut grants = 0usize;
        let mut granted_runs = 0usize;
        for _ in 0..8 {
            if s.done() {
                break;
            }
            let mut m = Vec::new();
            let n = 1 + s.pick(2);
            for _ in 0..n {
                let q = if s.pick(3) == 0 {
                    MY_REFUSED[s.pick(MY_REFUSED.len())]
                } else {
                    MY_ALLOWED[s.pick(MY_ALLOWED.len())]
                };
                match s.pick(6) {
                    5 => {
                        // A statement prepared with its grant, then executed twice.
                        let token = grant_for(GRANTED_SQL, Dialect::MySql, "agent");
                        grants += 1;
                        let text = format!("/*sluice-grant:{token}*/ {GRANTED_SQL}");
                        mysql::encode_packet(0, &[&[0x16], text.as_bytes()], &mut m);
                        for _ in 0..2 {
                            let mut p = vec![0x17];
                            p.extend_from_slice(&next_id.to_le_bytes());
                            p.extend_from_slice(&[0, 1, 0, 0, 0]);
                            mysql::encode_packet(0, &[&p], &mut m);
                        }
                    }
                    0 => mysql::encode_packet(0, &[&[0x16], q.as_bytes()], &mut m),
                    1 => {
                        let id = if s.pick(2) == 0 {
                            77
                        } else {
                            next_id.saturating_sub(1).max(1)
                        };
                        let mut p = vec![0x17];
                        p.extend_from_slice(&id.to_le_bytes());
                        p.extend_from_slice(&[0, 1, 0, 0, 0]);
                        mysql::encode_packet(0, &[&p], &mut m);
                    }
                    2 => mysql::encode_packet(0, &[&[0x0e]], &mut m),
                    _ => mysql::encode_packet(0, &[&[0x03], q.as_bytes()], &mut m),
                }
            }
            let mut out = Output::default();
            feed(s, &m, |c| session.from_client(c, &mut out))?;
            to_client.extend_from_slice(&out.to_client);
            to_server.extend_from_slice(&out.to_server);
            // The server answers each command it got, one at a time (the session holds the
            // next until the answer is complete).
            let mut pending = out.to_server;
            let mut guard_loops = 0;
            while !pending.is_empty() && guard_loops < 8 {
                guard_loops += 1;
                let (p, used) = match mysql::parse_packet(&pending, 1 << 24) {
                    Ok(mysql::Status::Complete((p, used))) => (p.payload.to_vec(), used),
                    _ => return Ok(Err("the session sent the server a malformed packet".into())),
                };
                pending.drain(..used);
                if p.first() == Some(&0x17) {
                    let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
                    if prepared.iter().any(|(i, t)| *i == id && t == GRANTED_SQL) {
                        granted_runs += 1;
                        if granted_runs > grants {
                            return Ok(Err("a grant bought more than one execution".into()));
                        }
                    }
                }
                let reply = match my_answer(s, &mut sec, &p, &rec, &mut prepared, &mut next_id, deprecate) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let mut out = Output::default();
                let r = feed(s, &reply, |c| session.from_server(c, &mut out));
                to_client.extend_from_slice(&out.to_client);
                to_server.extend_from_slice(&out.to_server);
                pending.extend_from_slice(&out.to_server);
                r?;
            }
        }
        Ok(Ok(()))
    })();
    if let Ok(Err(v)) = r {
        return Err(v);
    }
    check(&sec, &rec, &to_client, &to_server)
}

fn my_answer(
    s: &mut Script<'_>,
    sec: &mut Secrets,
    p: &[u8],
    rec: &Recorder,
    prepared: &mut Vec<(u32, String)>,
    next_id: &mut u32,
    deprecate: bool,
) -> Result<Vec<u8>, String> {
    let mut r = Vec::new();
    let eof = |seq: u8, r: &mut Vec<u8>| {
        if deprecate {
            mysql::encode_packet(seq, &[&[0xFE, 0, 0, 2, 0, 0, 0]], r);
        } else {
            mysql::encode_packet(seq, &[&[0xFE, 0, 0, 2, 0]], r);
        }
    };
    let coldef = |seq: u8, name: &[u8], r: &mut Vec<u8>| {
        let mut c = Vec::new();
        for n in [&b"def"[..], b"app", b"t", b"t", name, name] {
            c.push(n.len() as u8);
            c.extend_from_slice(n);
        }
        c.extend_from_slice(&[0x0c, 33, 0, 0, 1, 0, 0, 0xFD, 0, 0, 0, 0, 0]);
        mysql::encode_packet(seq, &[&c], r);
    };
    match p.first() {
        Some(0x03) | Some(0x17) => {
            let binary = p[0] == 0x17;
            if binary {
                let id = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
                if !prepared.iter().any(|(i, _)| *i == id) {
                    return Err(format!(
                        "an execute of statement {id} no allowed prepare created reached the server"
                    ));
                }
            } else {
                let q = String::from_utf8_lossy(&p[1..]);
                if !rec.allowed(&q) {
                    return Err(format!("an undecided query reached the server: {q}"));
                }
            }
            mysql::encode_packet(1, &[&[2]], &mut r);
            let name = if s.pick(3) == 0 {
                sec.whole.clone()
            } else {
                "name".into()
            };
            coldef(2, b"password", &mut r);
            coldef(3, name.as_bytes(), &mut r);
            let mut seq = 4;
            if !deprecate {
                eof(seq, &mut r);
                seq += 1;
            }
            for _ in 0..1 + s.pick(2) {
                let (a, b) = if s.pick(2) == 0 {
                    sec.split(s)
                } else {
                    ("plain".to_string(), sec.value(s))
                };
                if binary {
                    let vals = [
                        mysql::BinaryValue::Text(a.as_bytes()),
                        mysql::BinaryValue::Text(b.as_bytes()),
                    ];
                    mysql::encode_binary_row(seq, &vals, &mut r);
                } else {
                    mysql::encode_text_row(seq, &[Some(a.as_bytes()), Some(b.as_bytes())], &mut r);
                }
                seq += 1;
            }
            if s.pick(4) == 0 {
                let v = sec.value(s);
                mysql::encode_err(seq, 1064, b"42000", v.as_bytes(), &mut r);
            } else {
                eof(seq, &mut r);
            }
        }
        Some(0x16) => {
            let q = String::from_utf8_lossy(&p[1..]);
            if !rec.allowed(&q) {
                return Err(format!("an undecided statement reached the server: {q}"));
            }
            let id = *next_id;
            *next_id += 1;
            prepared.push((id, q.to_string()));
            let mut ok = vec![0];
            ok.extend_from_slice(&id.to_le_bytes());
            ok.extend_from_slice(&2u16.to_le_bytes());
            ok.extend_from_slice(&0u16.to_le_bytes());
            ok.extend_from_slice(&[0, 0, 0]);
            mysql::encode_packet(1, &[&ok], &mut r);
            coldef(2, b"password", &mut r);
            coldef(3, sec.whole.as_bytes(), &mut r);
            if !deprecate {
                eof(4, &mut r);
            }
        }
        Some(0x0e) => mysql::encode_packet(1, &[&[0, 0, 0, 2, 0, 0, 0]], &mut r),
        _ => return Err("an unexpected command reached the server".into()),
    }
    Ok(r)
}

// ---- MCP --------------------------------------------------------------------------------------

fn mcp(s: &mut Script<'_>) -> Verdict {
    let rec = Arc::new(Recorder::default());
    let mut sec = Secrets::new(s);
    let mut session = McpSession::new(guard(&rec), Identity::new("agent"), Target::new("files"));
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    let calls = [
        r#"{"jsonrpc":"2.0","id":ID,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md"}}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_rsa"}}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"resources/read","params":{"uri":"file:///root/.aws/credentials"}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"resources/read","params":{"uri":"file:///srv/app/notes.txt"}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"prompts/get","params":{"name":"summary"}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"x-vendor/exec","params":{"cmd":"env"}}"#,
        r#"{"jsonrpc":"2.0","id":ID,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ];
    let r = (|| -> Result<Verdict, SessionError> {
        for id in 1..8 {
            if s.done() {
                break;
            }
            let call = calls[s.pick(calls.len())].replace("ID", &id.to_string());
            let mut out = Output::default();
            feed(s, format!("{call}\n").as_bytes(), |c| session.from_client(c, &mut out))?;
            to_client.extend_from_slice(&out.to_client);
            to_server.extend_from_slice(&out.to_server);
            for line in out.to_server.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: serde_json::Value =
                    serde_json::from_slice(line).map_err(|e| SessionError::client(e.to_string()))?;
                let method = v["method"].as_str().unwrap_or("");
                let plumbing = sluice_protocols::mcp::CLIENT_PLUMBING.contains(&method);
                if !plumbing && !rec.allowed(&String::from_utf8_lossy(line)) {
                    return Ok(Err(format!(
                        "an undecided MCP message reached the server: {}",
                        String::from_utf8_lossy(line)
                    )));
                }
                let Some(rid) = v.get("id").cloned() else { continue };
                let reply = mcp_reply(s, &mut sec, rid);
                let mut out = Output::default();
                let r = feed(s, reply.as_bytes(), |c| session.from_server(c, &mut out));
                to_client.extend_from_slice(&out.to_client);
                to_server.extend_from_slice(&out.to_server);
                r?;
            }
        }
        Ok(Ok(()))
    })();
    if let Ok(Err(v)) = r {
        return Err(v);
    }
    check(&sec, &rec, &to_client, &to_server)
}

fn mcp_reply(s: &mut Script<'_>, sec: &mut Secrets, id: serde_json::Value) -> String {
    let v = sec.value(s);
    let mut lines = Vec::new();
    // Server-side chatter first, sometimes.
    match s.pick(4) {
        0 => lines.push(serde_json::json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data": v}})),
        1 => lines.push(serde_json::json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[{"role":"user","content":{"type":"text","text": v}}]}})),
        _ => {}
    }
    let reply = match s.pick(5) {
        0 => serde_json::json!({"jsonrpc":"2.0","id":id,"error":{"code":-32000,"message":v,"data":{"detail": v}}}),
        1 => {
            let (a, b) = sec.split(s);
            serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":"part7"},{"type":"text","text":a},{"type":"text","text":b}]}})
        }
        2 => {
            let mut o = serde_json::Map::new();
            o.insert(v.clone(), serde_json::Value::from(1));
            serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"structuredContent": o}})
        }
        _ => {
            serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":v}],"contents":[{"uri":"file:///x","text":v}]}})
        }
    };
    lines.push(reply);
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    out
}

// ---- HTTP -------------------------------------------------------------------------------------

fn http(s: &mut Script<'_>) -> Verdict {
    let rec = Arc::new(Recorder::default());
    let sec = Secrets::new(s);
    let mut session = HttpSession::new(guard(&rec), Identity::new("agent"), None);
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    let requests = [
        "GET http://api.example.test/v1/items HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
        "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://0xa9fea9fe/latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://api.example.test/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        "GET /v1/items HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
    ];
    let r = (|| -> Result<Verdict, SessionError> {
        let req = requests[s.pick(requests.len())];
        let mut out = Output::default();
        feed(s, req.as_bytes(), |c| session.from_client(c, &mut out))?;
        to_client.extend_from_slice(&out.to_client);
        to_server.extend_from_slice(&out.to_server);
        if session.upstream().is_none() {
            return Ok(Ok(()));
        }
        // The request line and Host the server got must be those of an allowed decision.
        let text = String::from_utf8_lossy(&out.to_server).into_owned();
        let line = text.lines().next().unwrap_or("");
        let host = text
            .lines()
            .find_map(|l| l.strip_prefix("Host: "))
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("");
        let path = line.split(' ').nth(1).unwrap_or("");
        let decided = rec
            .decisions
            .lock()
            .expect("lock")
            .iter()
            .any(|(c, ok)| *ok && c.contains(&format!("://{host}:")) && c.ends_with(path));
        if !decided {
            return Ok(Err(format!(
                "an undecided request reached the server: {line} (Host {host})"
            )));
        }
        let v = sec.value(s).replace(['\n', '\t'], " ");
        let mut resp = Vec::new();
        if s.pick(3) == 0 {
            resp.extend_from_slice(format!("HTTP/1.1 100 {v}\r\nX-Note: {v}\r\n\r\n").as_bytes());
        }
        resp.extend_from_slice(
            format!(
                "HTTP/1.1 302 {v}\r\nLocation: https://example.test/?k={}\r\nX-Key: {v}\r\n",
                sec.whole
            )
            .as_bytes(),
        );
        let body = format!("{{\"key\": \"{}\"}}", sec.whole);
        match s.pick(3) {
            0 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut gz, body.as_bytes()).expect("gzip");
                let z = gz.finish().expect("gzip");
                resp.extend_from_slice(
                    format!("Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", z.len()).as_bytes(),
                );
                resp.extend_from_slice(&z);
            }
            1 => {
                resp.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let (a, b) = body.split_at(body.len() / 2);
                for part in [a, b] {
                    resp.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
                }
                resp.extend_from_slice(b"0\r\n\r\n");
            }
            _ => resp.extend_from_slice(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes()),
        }
        let mut out = Output::default();
        let r = feed(s, &resp, |c| session.from_server(c, &mut out));
        to_client.extend_from_slice(&out.to_client);
        r?;
        let mut out = Output::default();
        let r = session.from_server(&[], &mut out);
        to_client.extend_from_slice(&out.to_client);
        r?;
        Ok(Ok(()))
    })();
    if let Ok(Err(v)) = r {
        return Err(v);
    }
    check(&sec, &rec, &to_client, &to_server)
}

// ---- SSH --------------------------------------------------------------------------------------

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn ssh_session(s: &mut Script<'_>) -> Verdict {
    let rec = Arc::new(Recorder::default());
    let sec = Secrets::new(s);
    let mut session = SshSession::new(guard(&rec), Identity::new("agent"), Target::new("host"));
    let (mut to_client, mut to_server): (Vec<u8>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let r = (|| -> Result<Verdict, SessionError> {
        let mut out = SshOutput::default();
        // A session channel, or a port forward.
        let forward = s.pick(3) == 0;
        let mut open = vec![90];
        if forward {
            ssh_string(&mut open, b"direct-tcpip");
        } else {
            ssh_string(&mut open, b"session");
        }
        open.extend_from_slice(&5u32.to_be_bytes());
        open.extend_from_slice(&(1u32 << 20).to_be_bytes());
        open.extend_from_slice(&32768u32.to_be_bytes());
        if forward {
            ssh_string(&mut open, b"db.internal");
            open.extend_from_slice(&5432u32.to_be_bytes());
            ssh_string(&mut open, b"127.0.0.1");
            open.extend_from_slice(&4000u32.to_be_bytes());
        }
        session.client_message(&open, &mut out)?;
        let opened = out.to_server.iter().any(|m| m.first() == Some(&90));
        if forward && opened {
            return Ok(Err("a port forward nothing allowed reached the server".into()));
        }
        to_server.append(&mut out.to_server);
        if !opened {
            return Ok(Ok(()));
        }
        let mut conf = vec![91];
        conf.extend_from_slice(&5u32.to_be_bytes());
        conf.extend_from_slice(&700u32.to_be_bytes());
        conf.extend_from_slice(&(1u32 << 20).to_be_bytes());
        conf.extend_from_slice(&32768u32.to_be_bytes());
        session.server_message(&conf, &mut out)?;
        let cmds = ["cargo test", "cat ~/.ssh/id_rsa", "env"];
        let cmd = cmds[s.pick(cmds.len())];
        let mut req = vec![98];
        req.extend_from_slice(&700u32.to_be_bytes());
        ssh_string(&mut req, b"exec");
        req.push(1);
        ssh_string(&mut req, cmd.as_bytes());
        session.client_message(&req, &mut out)?;
        to_server.append(&mut out.to_server);
        // The server's output, the secret cut across data messages.
        let v = sec.value(s);
        let mut at = 0;
        while at < v.len() {
            let n = (1 + s.pick(9)).min(v.len() - at);
            let mut d = Vec::new();
            ssh::encode_data(5, &v.as_bytes()[at..at + n], &mut d);
            session.server_message(&d, &mut out)?;
            at += n;
        }
        session.server_message(&[96, 0, 0, 0, 5], &mut out)?;
        for m in &out.to_client {
            if let Ok(ssh::Message::Data { data, .. } | ssh::Message::ExtendedData { data, .. }) = ssh::parse_message(m)
            {
                to_client.extend_from_slice(data);
            }
        }
        Ok(Ok(()))
    })();
    if let Ok(Err(v)) = r {
        return Err(v);
    }
    // Exec requests that reached the server were decided.
    for m in &to_server {
        if let Ok(ssh::Message::ChannelRequest {
            request: ssh::ChannelRequest::Exec(c),
            ..
        }) = ssh::parse_message(m)
            && !rec.allowed(&String::from_utf8_lossy(c))
        {
            return Err(format!(
                "an undecided exec reached the server: {}",
                String::from_utf8_lossy(c)
            ));
        }
    }
    let flat: Vec<u8> = to_server.concat();
    check(&sec, &rec, &to_client, &flat)
}

/// Oracles 1 and 3 on a whole conversation.
fn check(sec: &Secrets, rec: &Recorder, to_client: &[u8], to_server: &[u8]) -> Verdict {
    if let Some(leak) = sec.leaks(to_client) {
        if std::env::var_os("ORACLE_DEBUG").is_some() {
            eprintln!("to_client: {}", String::from_utf8_lossy(to_client).escape_debug());
        }
        return Err(leak);
    }
    for cmd in rec.refused() {
        if cmd.len() >= 8 && to_server.windows(cmd.len()).any(|w| w == cmd.as_bytes()) {
            return Err(format!("a refused command reached the server: {cmd}"));
        }
    }
    Ok(())
}
