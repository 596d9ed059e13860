//! A MySQL / MariaDB session.
//!
//! - **Handshake**: the server's TLS and query-attributes capabilities are cleared in the
//!   greeting the client sees (so clients in `ssl-mode=PREFERRED` stay in plain text and
//!   `COM_QUERY` keeps its classic layout); the client's user and database become the identity
//!   and target unless the host set them. Authentication passes through, packet by packet in
//!   sequence: the client answers only what the server asked. With a vault (credential
//!   brokering), a `mysql_native_password` answer computed from a placeholder's text
//!   (`sluice:secret/NAME` as the password) is swapped for the answer computed from the
//!   credential NAME holds, where the policy's `credentials` section lets it go to this
//!   target (elsewhere: an ERR 1045 naming the placeholder, recorded, and nothing to the
//!   server); any other answer is the client's own password, sent as it is.
//! - **One command at a time**: a command sent while another is answered (pipelined, or behind
//!   the handshake) waits until that answer is complete; every reply packet must carry the next
//!   sequence id.
//! - **Decisions**: `COM_QUERY`, `COM_STMT_PREPARE` and `COM_INIT_DB` (as `USE`) are decided
//!   before they are forwarded; executions, fetches and resets of a prepared statement are
//!   forwarded only for statements prepared (and allowed) in this session, and a statement
//!   prepared with a grant executes once. `COM_CHANGE_USER`, replication and the other commands
//!   are refused. A refusal is an ERR
//!   packet (1142, SQLSTATE 42000, the reason; for approvals the request as JSON) with the right
//!   sequence id; the connection stays usable. (The approval request itself reaches the host through
//!   the event hook: MySQL clients cut error messages at 512 bytes.)
//! - **Grants**: `SET @sluice_grant = 'TOKEN'` (answered by the session, applies to the next
//!   statement) or a leading `/*sluice-grant:TOKEN*/` comment (for clients that keep comments).
//! - **Masking**: result rows of `COM_QUERY` (text), `COM_STMT_EXECUTE` and `COM_STMT_FETCH`
//!   (binary; string values by their column types), each value and adjacent values joined,
//!   re-encoded with their new length prefixes and the same sequence ids, across multiple result
//!   sets; column definitions (all six names); ERR messages; `COM_STATISTICS`.
//! - Anything malformed or oversized (a command over 16 MiB) is a [`SessionError`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use sluice_protocols::mysql::{self, Status, caps};

use super::{
    Event, Guard, Output, SessionError, Side, SqlState, forward_masked, frames, refusal_message, split_grant_comment,
};
use crate::broker::login::mysql_native_password;
use crate::policy::{Action, Decision, Dialect, Identity, Protocol, Target};
use crate::{Detector, credential_column};

const CLIENT_COMPRESS: u32 = 0x0000_0020;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;
const CLIENT_ZSTD: u32 = 0x0400_0000;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
const MAX_PACKET: usize = 16 * 1024 * 1024;
/// Commands held while another is answered (a client that pipelines).
const MAX_HELD: usize = MAX_PACKET + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// Waiting for the client's handshake response.
    Login,
    /// Authentication exchange until the server's OK: the client may answer the packet the
    /// server sent last (sequence id `seq`), nothing else.
    Auth { asked: bool, seq: u8 },
    /// Commands.
    Commands,
    /// The client quit, or authentication failed: nothing more is expected.
    Ended,
}

/// The reply to the command in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// No command in flight.
    Idle,
    /// One OK, ERR or EOF packet (`COM_PING`, `COM_INIT_DB`, `COM_STMT_RESET`, …).
    Simple,
    /// One string (`COM_STATISTICS`).
    Text,
    /// Result sets (`COM_QUERY`, `COM_STMT_EXECUTE`): the first packet of a result.
    Start,
    /// Column definitions still to come.
    Columns { left: u64, total: usize },
    /// The EOF after the column definitions.
    ColumnsEof { total: usize },
    /// Rows.
    Rows { columns: usize },
    /// `COM_STMT_FETCH`: binary rows of an open cursor until EOF.
    Fetch,
    /// `COM_STMT_PREPARE`: the OK, then parameter and column definitions (each block followed
    /// by an EOF unless the client deprecated it).
    Prepare,
    PrepareDefs {
        params: u64,
        columns: u64,
        eof_after_params: bool,
    },
    /// `COM_FIELD_LIST`: column definitions until EOF.
    FieldList,
    /// `LOAD DATA LOCAL INFILE`: the client sends the file, then an empty packet.
    Infile,
}

/// A statement prepared in this session and allowed.
#[derive(Debug, Clone)]
struct Prepared {
    mask: bool,
    /// Allowed only by a grant: it may be executed once.
    granted: bool,
    /// Column types of its last result (for `COM_STMT_FETCH`).
    types: Vec<u8>,
    /// Which of those columns are named like credentials.
    credential: Vec<bool>,
}

/// One MySQL connection.
pub struct MySqlSession {
    guard: Arc<Guard>,
    sql: SqlState,
    phase: Phase,
    deprecate_eof: bool,
    reply: Reply,
    /// The sequence id the next packet of the reply must carry.
    next_seq: u8,
    /// Whether the current result is binary, its column types, which columns are named like
    /// credentials, and the statement it belongs to.
    binary: bool,
    types: Vec<u8>,
    credential: Vec<bool>,
    statement: Option<u32>,
    /// A prepare in flight: its decision's masking and whether a grant allowed it.
    preparing: Option<(bool, bool)>,
    statements: HashMap<u32, Prepared>,
    mask: bool,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
    /// Client bytes received while a command was being answered, handled after it.
    held: Vec<u8>,
    /// The `mysql_native_password` scramble in effect during the handshake (from the greeting
    /// or an auth switch), for logging in with a held credential.
    scramble: Option<[u8; 20]>,
    /// The host reaches the server over TLS ([`MySqlSession::with_upstream_tls`]): the server's
    /// authentication packets are numbered one higher than the client's.
    upstream_tls: bool,
    /// The client's handshake response (renumbered), to send once TLS with the server is up.
    start_tls: Option<Vec<u8>>,
}

impl std::fmt::Debug for MySqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlSession")
            .field("identity", &self.sql.identity)
            .field("target", &self.sql.target)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl MySqlSession {
    /// A session; `identity` and `target` override the handshake's user and database.
    pub fn new(guard: Arc<Guard>, identity: Option<Identity>, target: Option<Target>) -> MySqlSession {
        let mask = guard.policy.load().masking();
        MySqlSession {
            guard,
            sql: SqlState {
                identity,
                target,
                ..SqlState::default()
            },
            phase: Phase::Greeting,
            deprecate_eof: false,
            reply: Reply::Idle,
            next_seq: 0,
            binary: false,
            types: Vec::new(),
            credential: Vec::new(),
            statement: None,
            preparing: None,
            statements: HashMap::new(),
            mask,
            cbuf: Vec::new(),
            sbuf: Vec::new(),
            held: Vec::new(),
            scramble: None,
            upstream_tls: false,
            start_tls: None,
        }
    }

    /// The host talks TLS to the server (the client stays in plain text): the session requires
    /// a greeting that offers TLS, answers the client's handshake response by sending the
    /// server an SSLRequest (in `to_server`) and holding the response for
    /// [`MySqlSession::start_tls`], and renumbers the authentication packets between the two
    /// sides (the server's count one more: the SSLRequest).
    pub fn with_upstream_tls(mut self) -> MySqlSession {
        self.upstream_tls = true;
        self
    }

    /// After the client's handshake response with [`MySqlSession::with_upstream_tls`]: the
    /// bytes to send the server once the host has completed the TLS handshake (the SSLRequest
    /// just sent in plain text). `None` at every other time.
    pub fn start_tls(&mut self) -> Option<Vec<u8>> {
        self.start_tls.take()
    }

    /// A packet's bytes with another sequence id.
    fn renumbered(raw: &[u8], seq: u8) -> Vec<u8> {
        let mut v = raw.to_vec();
        if let Some(b) = v.get_mut(3) {
            *b = seq;
        }
        v
    }

    /// Bytes from the client. A command sent while another is still being answered is held
    /// and handled when that answer is complete (the output then comes from
    /// [`from_server`](MySqlSession::from_server)).
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_client(data, out);
        self.guard.handled(Protocol::Sql, out, mark, r)
    }

    fn handle_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        if !self.held.is_empty() || self.busy() {
            if self.held.len() + data.len() > MAX_HELD {
                return Err(SessionError::client("too much sent while a command was being answered"));
            }
            self.held.extend_from_slice(data);
            return Ok(());
        }
        self.client_bytes(data, out)
    }

    /// Whether client bytes must wait: a command is being answered and the client is not the
    /// one expected to speak.
    fn busy(&self) -> bool {
        self.phase == Phase::Commands && !matches!(self.reply, Reply::Idle | Reply::Infile)
    }

    fn client_bytes(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.cbuf);
        let mut rest_held = Vec::new();
        let r = frames(&mut buf, data, |rest| {
            if self.busy() {
                // The command before this one is now in flight: hold the rest.
                rest_held.extend_from_slice(rest);
                return Ok(Some(rest.len()));
            }
            match mysql::parse_packet(rest, MAX_PACKET - 1) {
                Ok(Status::Partial) => Ok(None),
                Ok(Status::Complete((p, used))) => {
                    self.client_packet(p, &rest[..used], out)?;
                    Ok(Some(used))
                }
                Err(e) => Err(SessionError::rejected(Side::Client, e)),
            }
        });
        self.cbuf = buf;
        if !rest_held.is_empty() {
            rest_held.append(&mut self.held);
            self.held = rest_held;
        }
        r
    }

    /// Bytes from the server.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_server(data, out);
        self.guard.handled(Protocol::Sql, out, mark, r)
    }

    fn handle_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.sbuf);
        let mut masked = 0;
        let r = frames(&mut buf, data, |rest| match mysql::parse_packet(rest, MAX_PACKET) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete((p, used))) => {
                masked += self.server_packet(p, &rest[..used], out)?;
                Ok(Some(used))
            }
            Err(e) => Err(SessionError::rejected(Side::Server, e)),
        });
        self.sbuf = buf;
        if masked > 0 {
            self.guard.emit(&Event::Masked {
                protocol: Protocol::Sql,
                count: masked,
            });
        }
        r?;
        // The answer is complete: handle what the client sent meanwhile.
        if !self.busy() && !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            self.client_bytes(&held, out)?;
        }
        Ok(())
    }

    fn client_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        match self.phase {
            Phase::Greeting => return Err(SessionError::client("data before the server's greeting")),
            Phase::Ended => return Err(SessionError::client("data after the session ended")),
            Phase::Login => {
                let r =
                    mysql::parse_handshake_response(p.payload).map_err(|e| SessionError::rejected(Side::Client, e))?;
                if r.capabilities & CLIENT_SSL != 0 && r.user.is_empty() {
                    return Err(SessionError::client(
                        "TLS requested; this session does not terminate TLS",
                    ));
                }
                if r.capabilities & (CLIENT_COMPRESS | CLIENT_ZSTD) != 0 {
                    return Err(SessionError::client("compression requested; it was not offered"));
                }
                self.deprecate_eof = r.capabilities & caps::DEPRECATE_EOF != 0;
                let user = String::from_utf8_lossy(r.user).into_owned();
                if self.sql.identity.is_none() {
                    self.sql.identity = Some(Identity::new(user.clone()));
                }
                if self.sql.target.is_none() {
                    let db = r.database.map(|d| String::from_utf8_lossy(d).into_owned());
                    self.sql.target = Some(Target::new(db.filter(|d| !d.is_empty()).unwrap_or(user)));
                }
                self.phase = Phase::Auth {
                    asked: false,
                    seq: p.seq,
                };
                // The answer sits in the packet at its own offset; a swapped one is as long.
                let at =
                    raw.len() - p.payload.len() + (r.auth_response.as_ptr() as usize - p.payload.as_ptr() as usize);
                let answer = r.auth_response.to_vec();
                if !self.upstream_tls {
                    self.log_in(p.seq, raw, at, &answer, out);
                    return Ok(());
                }
                // TLS with the server first: an SSLRequest (the response's first 32 bytes,
                // with CLIENT_SSL), then, over TLS, the response numbered one higher.
                let mut plain = Output::default();
                self.log_in(p.seq, raw, at, &answer, &mut plain);
                out.to_client.extend_from_slice(&plain.to_client);
                if !plain.to_server.is_empty() {
                    let header = raw.len() - p.payload.len();
                    let mut response = Self::renumbered(&plain.to_server, p.seq.wrapping_add(1));
                    let caps = &mut response[header..header + 4];
                    let with_ssl = u32::from_le_bytes([caps[0], caps[1], caps[2], caps[3]]) | CLIENT_SSL;
                    caps.copy_from_slice(&with_ssl.to_le_bytes());
                    out.to_server.extend_from_slice(&[32, 0, 0, p.seq]);
                    out.to_server.extend_from_slice(&response[header..header + 32]);
                    self.start_tls = Some(response);
                }
            }
            Phase::Auth { asked, seq } => {
                if !asked || p.seq != seq.wrapping_add(1) {
                    return Err(SessionError::client(
                        "a packet the server did not ask for during authentication",
                    ));
                }
                self.phase = Phase::Auth {
                    asked: false,
                    seq: p.seq,
                };
                if self.upstream_tls {
                    let raw = Self::renumbered(raw, p.seq.wrapping_add(1));
                    self.log_in(p.seq, &raw, raw.len() - p.payload.len(), p.payload, out);
                } else {
                    self.log_in(p.seq, raw, raw.len() - p.payload.len(), p.payload, out);
                }
            }
            Phase::Commands if self.reply == Reply::Infile => {
                // The file a LOCAL INFILE statement (decided) asked for; an empty packet ends it.
                if p.seq != self.next_seq {
                    return Err(SessionError::client("LOCAL INFILE data out of sequence"));
                }
                self.next_seq = p.seq.wrapping_add(1);
                if p.payload.is_empty() {
                    self.reply = Reply::Simple;
                }
                out.to_server.extend_from_slice(raw);
            }
            Phase::Commands => {
                if p.seq != 0 {
                    return Err(SessionError::client(format!(
                        "a command with sequence id {} (commands start at 0)",
                        p.seq
                    )));
                }
                if p.continues() {
                    return Err(SessionError::client("commands over 16 MiB are not accepted"));
                }
                self.command(p.payload, raw, out)?;
            }
        }
        Ok(())
    }

    /// One command: decided, answered or forwarded with the reply it expects.
    fn command(&mut self, payload: &[u8], raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let policy_mask = self.guard.policy.load().masking();
        match mysql::parse_command(payload).map_err(|e| SessionError::rejected(Side::Client, e))? {
            mysql::Command::Query(q) => {
                let text = std::str::from_utf8(q).map_err(|_| SessionError::client("query is not UTF-8"))?;
                if let Some(g) = set_grant(text) {
                    self.sql.pending_grant = Some(g.to_string());
                    // OK: affected 0, insert id 0, autocommit, no warnings.
                    mysql::encode_packet(1, &[&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]], &mut out.to_client);
                    return Ok(());
                }
                if let Some((mask, _)) = self.forward_decided(0x03, text, raw, out) {
                    self.expect(Reply::Start, mask);
                }
            }
            mysql::Command::StmtPrepare(q) => {
                let text = std::str::from_utf8(q).map_err(|_| SessionError::client("statement is not UTF-8"))?;
                if let Some((mask, granted)) = self.forward_decided(0x16, text, raw, out) {
                    self.expect(Reply::Prepare, mask);
                    self.preparing = Some((mask, granted));
                }
            }
            mysql::Command::StmtExecute { statement_id, .. } => {
                let Some(st) = self.statements.get(&statement_id) else {
                    undecided(statement_id, &mut out.to_client);
                    return Ok(());
                };
                let (mask, granted) = (st.mask, st.granted);
                if granted {
                    // A grant buys one execution.
                    self.statements.remove(&statement_id);
                }
                self.expect(Reply::Start, mask);
                self.binary = true;
                self.statement = Some(statement_id).filter(|_| !granted);
                out.to_server.extend_from_slice(raw);
            }
            mysql::Command::StmtClose(id) => {
                // No reply.
                self.statements.remove(&id);
                out.to_server.extend_from_slice(raw);
            }
            mysql::Command::Quit => {
                self.phase = Phase::Ended;
                out.to_server.extend_from_slice(raw);
            }
            mysql::Command::Ping => {
                self.expect(Reply::Simple, policy_mask);
                out.to_server.extend_from_slice(raw);
            }
            mysql::Command::InitDb(db) => {
                // Decided as the statement it is.
                let db = std::str::from_utf8(db).map_err(|_| SessionError::client("database name is not UTF-8"))?;
                let sql = format!("USE `{}`", db.replace('`', "``"));
                let d = self.decide(&sql, None);
                if d.action() != Action::Allow {
                    refuse(&d, &mut out.to_client);
                    return Ok(());
                }
                self.expect(Reply::Simple, d.mask());
                out.to_server.extend_from_slice(raw);
            }
            mysql::Command::Other(code, rest) => {
                self.other_command(code, rest, raw, out, policy_mask)?;
            }
            _ => return Err(SessionError::client("a command this session does not know")),
        }
        Ok(())
    }

    fn other_command(
        &mut self,
        code: u8,
        rest: &[u8],
        raw: &[u8],
        out: &mut Output,
        policy_mask: bool,
    ) -> Result<(), SessionError> {
        let id = rest.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match code {
            // COM_STATISTICS: a status line.
            0x09 => self.expect(Reply::Text, policy_mask),
            // COM_FIELD_LIST: column definitions of a table.
            0x04 => self.expect(Reply::FieldList, policy_mask),
            // COM_SET_OPTION (multi-statements on or off), COM_RESET_CONNECTION.
            0x1b | 0x1f => self.expect(Reply::Simple, policy_mask),
            // COM_STMT_SEND_LONG_DATA (no reply), COM_STMT_RESET, COM_STMT_FETCH: of a
            // statement prepared here.
            0x18 | 0x1a | 0x1c => {
                let Some(st) = id.and_then(|i| self.statements.get(&i)) else {
                    undecided(id.unwrap_or(0), &mut out.to_client);
                    return Ok(());
                };
                let (mask, types, credential) = (st.mask, st.types.clone(), st.credential.clone());
                match code {
                    0x18 => {}
                    0x1a => self.expect(Reply::Simple, mask),
                    _ => {
                        if types.is_empty() {
                            undecided(id.unwrap_or(0), &mut out.to_client);
                            return Ok(());
                        }
                        self.expect(Reply::Fetch, mask);
                        self.binary = true;
                        self.types = types;
                        self.credential = credential;
                    }
                }
            }
            _ => {
                // COM_CHANGE_USER (a new identity), replication, debugging and the
                // obsolete commands: refused.
                let msg = format!("sluice: denied: command 0x{code:02x} is not allowed through this gateway");
                mysql::encode_err(1, 1047, b"08S01", msg.as_bytes(), &mut out.to_client);
                return Ok(());
            }
        }
        out.to_server.extend_from_slice(raw);
        Ok(())
    }

    /// Decides the statement of a `COM_QUERY` or `COM_STMT_PREPARE` (`code`), with the grant of
    /// its leading comment. Allowed: forwarded (without the comment), and its masking and whether
    /// a grant allowed it are returned. Refused: the ERR goes to the client and `None` back.
    fn forward_decided(&mut self, code: u8, text: &str, raw: &[u8], out: &mut Output) -> Option<(bool, bool)> {
        let (grant, sql) = split_grant_comment(text);
        let d = self.decide(sql, grant);
        if d.action() != Action::Allow {
            refuse(&d, &mut out.to_client);
            return None;
        }
        if grant.is_some() {
            mysql::encode_packet(0, &[&[code], sql.as_bytes()], &mut out.to_server);
        } else {
            out.to_server.extend_from_slice(raw);
        }
        Some((d.mask(), grant.is_some() || d.granted()))
    }

    /// A command goes to the server: its reply is expected from sequence id 1.
    fn expect(&mut self, reply: Reply, mask: bool) {
        self.reply = reply;
        self.next_seq = 1;
        self.mask = mask;
        self.binary = false;
        self.statement = None;
        self.types.clear();
        self.credential.clear();
    }

    fn decide(&mut self, sql: &str, grant: Option<&str>) -> Decision {
        // MySQL reports no sql_mode changes: a statement that sets it is refused, so the
        // session's lexing never changes under the analyser.
        let d = self.sql.decide(&self.guard, sql, grant, Dialect::MySql, 0);
        self.sql.settle_at = None;
        if d.changes_lexing() && d.action() == crate::policy::Action::Allow {
            let identity = self.sql.identity.get_or_insert_with(|| Identity::new(""));
            let target = self.sql.target.get_or_insert_with(|| Target::new(""));
            let request = crate::policy::Request::Sql {
                text: sql,
                dialect: Dialect::MySql,
                lexing: self.sql.lexing,
            };
            return self.guard.refuse(
                identity,
                target,
                &request,
                sql,
                "changing sql_mode (or the character set) changes how SQL is read, which this session does not follow; set it in the server's configuration".into(),
            );
        }
        d
    }

    /// Handles one server packet; returns how many values it masked.
    fn server_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        if p.continues() {
            return Err(SessionError::server("packets over 16 MiB are not accepted"));
        }
        match self.phase {
            Phase::Commands => self.reply_packet(p, raw, out),
            _ => self.connection_packet(p, raw, out),
        }
    }

    /// Forwards the client's authentication packet `raw`, whose password answer (`answer`,
    /// at byte `at` of `raw`) is swapped when it is the `mysql_native_password` answer for a
    /// placeholder naming a held credential that may go to this target; refused (an ERR to
    /// the client, recorded, nothing to the server) when that credential may not go here.
    fn log_in(&mut self, seq: u8, raw: &[u8], at: usize, answer: &[u8], out: &mut Output) {
        match self.brokered_answer(answer) {
            Ok(None) => out.to_server.extend_from_slice(raw),
            Ok(Some(swapped)) => {
                let start = out.to_server.len();
                out.to_server.extend_from_slice(raw);
                out.to_server[start + at..start + at + swapped.len()].copy_from_slice(&swapped);
            }
            Err(refused) => {
                let d = self.guard.refuse_login(
                    self.sql.identity.as_ref(),
                    self.sql.target.as_ref(),
                    Dialect::MySql,
                    &refused,
                );
                let message = refusal_message(&d);
                mysql::encode_err(
                    seq.wrapping_add(1),
                    1045,
                    b"28000",
                    message.as_bytes(),
                    &mut out.to_client,
                );
                self.phase = Phase::Ended;
            }
        }
    }

    /// With a vault and a native-password scramble: the answer for the credential a
    /// placeholder names, when `answer` is the answer for that placeholder's own text (the
    /// placeholders of the held names are tried; one naming nothing held cannot be told from
    /// a password and goes as it is, for the server to refuse).
    fn brokered_answer(&self, answer: &[u8]) -> Result<Option<Vec<u8>>, crate::broker::Refused> {
        let (Some(vault), Some(scramble)) = (&self.guard.vault, &self.scramble) else {
            return Ok(None);
        };
        if answer.len() != 20 {
            return Ok(None);
        }
        let target = self.sql.target.as_ref().map_or("", |t| t.name.as_str());
        for name in vault.names() {
            let placeholder = format!("{}{name}", crate::broker::PREFIX);
            if mysql_native_password(placeholder.as_bytes(), scramble) == answer {
                let held = self.guard.substitute(Protocol::Sql, target, &placeholder)?;
                return Ok(Some(mysql_native_password(held.as_bytes(), scramble)));
            }
        }
        Ok(None)
    }

    /// A packet before the command phase: the greeting, the authentication exchange, or an
    /// ERR that ends the connection.
    fn connection_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        let payload = p.payload;
        match self.phase {
            Phase::Greeting => {
                let mut greeting = raw.to_vec();
                if payload.first() == Some(&0xFF) {
                    // An ERR instead of a greeting (too many connections, host blocked).
                    self.phase = Phase::Ended;
                    return Ok(self.masked_err(p.seq, payload, raw, true, out));
                }
                clear_capabilities(
                    &mut greeting[4..],
                    CLIENT_SSL | CLIENT_QUERY_ATTRIBUTES | CLIENT_COMPRESS | CLIENT_ZSTD,
                )
                .map_err(|e| SessionError::rejected(Side::Server, e))?;
                let h = mysql::parse_handshake(payload).map_err(|e| SessionError::rejected(Side::Server, e))?;
                if self.upstream_tls && h.capabilities & CLIENT_SSL == 0 {
                    return Err(SessionError::server("the server does not offer TLS"));
                }
                self.scramble = match h.auth_plugin {
                    None | Some(NATIVE_PASSWORD) => native_scramble(h.auth_data.0, h.auth_data.1),
                    Some(_) => None,
                };
                out.to_client.extend_from_slice(&greeting);
                self.phase = Phase::Login;
                return Ok(0);
            }
            Phase::Login | Phase::Ended => {
                if payload.first() == Some(&0xFF) {
                    self.phase = Phase::Ended;
                    return Ok(self.masked_err(p.seq, payload, raw, true, out));
                }
                return Err(SessionError::server("a packet the client did not ask for"));
            }
            Phase::Auth { seq, .. } => {
                // With TLS to the server, its count is one ahead (the SSLRequest): the client
                // sees its own numbering.
                let renumbered;
                let (pseq, raw) = if self.upstream_tls {
                    let s = p.seq.wrapping_sub(1);
                    renumbered = Self::renumbered(raw, s);
                    (s, &renumbered[..])
                } else {
                    (p.seq, raw)
                };
                if pseq != seq.wrapping_add(1) {
                    return Err(SessionError::server("authentication packet out of sequence"));
                }
                match payload.first() {
                    Some(0x00) => {
                        self.phase = Phase::Commands;
                        out.to_client.extend_from_slice(raw);
                    }
                    Some(0xFF) => {
                        self.phase = Phase::Ended;
                        return Ok(self.masked_err(pseq, payload, raw, true, out));
                    }
                    // Auth switch request, more data (caching_sha2 fast/full auth).
                    Some(0xFE | 0x01) => {
                        if payload[0] == 0xFE {
                            // A new plugin and scramble: only a native-password one is brokered.
                            let rest = &payload[1..];
                            let nul = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                            let data = rest.get(nul + 1..).unwrap_or_default();
                            self.scramble = match &rest[..nul] {
                                NATIVE_PASSWORD => native_scramble(
                                    data.get(..8).unwrap_or_default(),
                                    data.get(8..).unwrap_or_default(),
                                ),
                                _ => None,
                            };
                        }
                        self.phase = Phase::Auth { asked: true, seq: pseq };
                        out.to_client.extend_from_slice(raw);
                    }
                    _ => return Err(SessionError::server("an unexpected packet during authentication")),
                }
                return Ok(0);
            }
            // The command phase is `reply_packet`'s.
            Phase::Commands => {}
        }
        Err(SessionError::server("a packet out of phase"))
    }

    /// A packet of the reply to the command in flight; returns how many values it masked.
    fn reply_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        let payload = p.payload;
        let det = self.guard.current_detector();
        if self.reply == Reply::Idle || self.reply == Reply::Infile {
            return Err(SessionError::server("a packet no command asked for"));
        }
        if p.seq != self.next_seq {
            return Err(SessionError::server(format!(
                "packet with sequence id {} where {} was expected",
                p.seq, self.next_seq
            )));
        }
        self.next_seq = p.seq.wrapping_add(1);
        let first = payload.first().copied();
        let deprecate = self.deprecate_eof;
        let is_eof = |p: &[u8]| p.first() == Some(&0xFE) && if deprecate { p.len() < 0xFF_FFFF } else { p.len() < 9 };
        let bad = |e: mysql::Error| SessionError::rejected(Side::Server, e);
        // An ERR ends the reply wherever a reply may end early; it is masked.
        if first == Some(0xFF)
            && matches!(
                self.reply,
                Reply::Simple | Reply::Start | Reply::Rows { .. } | Reply::Fetch | Reply::Prepare | Reply::FieldList
            )
        {
            self.reply = Reply::Idle;
            self.preparing = None;
            return Ok(self.masked_err(p.seq, payload, raw, self.mask, out));
        }
        let mut masked = 0;
        match self.reply {
            Reply::Idle | Reply::Infile => {}
            Reply::Simple => {
                match first {
                    Some(0x00 | 0xFE) => out.to_client.extend_from_slice(raw),
                    _ => return Err(SessionError::server("expected OK or ERR")),
                }
                self.reply = Reply::Idle;
            }
            Reply::Text => {
                masked += self.masked_text(&det, p.seq, payload, raw, out);
                self.reply = Reply::Idle;
            }
            Reply::Start => masked += self.result_start(&det, p.seq, payload, raw, out)?,
            Reply::Columns { left, total } => {
                let def = mysql::parse_column_definition(payload).map_err(bad)?;
                self.types.push(def.column_type);
                self.credential
                    .push(credential_column(def.name) || credential_column(def.org_name));
                masked += self.masked_column(&det, p.seq, &def, raw, out);
                self.reply = match (left - 1, self.deprecate_eof) {
                    (0, true) => self.rows_start(total),
                    (0, false) => Reply::ColumnsEof { total },
                    (l, _) => Reply::Columns { left: l, total },
                };
            }
            Reply::ColumnsEof { total } => {
                if !is_eof(payload) {
                    return Err(SessionError::server("expected EOF after the column definitions"));
                }
                out.to_client.extend_from_slice(raw);
                // A cursor was opened (COM_STMT_EXECUTE with a cursor): rows come by FETCH.
                let status = payload.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]]));
                if self.binary && status.is_some_and(|s| s & 0x0040 != 0) {
                    self.save_types();
                    self.reply = Reply::Idle;
                } else {
                    self.reply = self.rows_start(total);
                }
            }
            Reply::Rows { columns } => {
                if is_eof(payload) {
                    self.reply = end_of_rows(payload, self.deprecate_eof);
                    out.to_client.extend_from_slice(raw);
                } else {
                    masked += self.row(&det, p.seq, payload, columns, raw, out)?;
                }
            }
            // Rows of an open cursor, or column definitions of a table, until EOF.
            Reply::Fetch | Reply::FieldList if is_eof(payload) => {
                self.reply = Reply::Idle;
                out.to_client.extend_from_slice(raw);
            }
            Reply::Fetch => {
                let n = self.types.len();
                masked += self.row(&det, p.seq, payload, n, raw, out)?;
            }
            Reply::FieldList => {
                let def = mysql::parse_column_definition(payload).map_err(bad)?;
                masked += self.masked_column(&det, p.seq, &def, raw, out);
            }
            Reply::Prepare => self.prepare_ok(payload, raw, out)?,
            Reply::PrepareDefs {
                params,
                columns,
                eof_after_params,
            } => masked += self.prepare_def(&det, p.seq, payload, raw, (params, columns, eof_after_params), out)?,
        }
        Ok(masked)
    }

    /// The first packet of a result: an OK (another result may follow), a LOCAL INFILE request,
    /// or the column count.
    fn result_start(
        &mut self,
        det: &Detector,
        seq: u8,
        payload: &[u8],
        raw: &[u8],
        out: &mut Output,
    ) -> Result<usize, SessionError> {
        let mut masked = 0;
        match payload.first().copied() {
            Some(0x00) => {
                // Another result may follow (its packets continue the sequence).
                self.reply = after_ok(payload, Reply::Start);
                out.to_client.extend_from_slice(raw);
            }
            // LOCAL INFILE: the client's file data follows.
            Some(0xFB) if !self.binary => {
                self.reply = Reply::Infile;
                masked += self.masked_text(det, seq, payload, raw, out);
            }
            _ => {
                let n = match mysql::parse_response(payload).map_err(|e| SessionError::rejected(Side::Server, e))? {
                    mysql::Response::ColumnCount(n) => n,
                    _ => 0,
                };
                if n == 0 || n > 4096 {
                    return Err(SessionError::server(format!("bad column count {n}")));
                }
                self.types.clear();
                self.credential.clear();
                self.reply = Reply::Columns {
                    left: n,
                    total: n as usize,
                };
                out.to_client.extend_from_slice(raw);
            }
        }
        Ok(masked)
    }

    /// COM_STMT_PREPARE's first answer: the OK registers the statement; its definitions follow.
    fn prepare_ok(&mut self, payload: &[u8], raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        match payload.first() {
            Some(0x00) if payload.len() >= 9 => {
                let id = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                let columns = u64::from(u16::from_le_bytes([payload[5], payload[6]]));
                let params = u64::from(u16::from_le_bytes([payload[7], payload[8]]));
                if let Some((mask, granted)) = self.preparing.take() {
                    self.statements.insert(
                        id,
                        Prepared {
                            mask,
                            granted,
                            types: Vec::new(),
                            credential: Vec::new(),
                        },
                    );
                }
                out.to_client.extend_from_slice(raw);
                self.reply = self.prepare_defs(params, columns, params > 0);
            }
            _ => return Err(SessionError::server("expected the prepare OK or ERR")),
        }
        Ok(())
    }

    /// A parameter or column definition of a prepared statement, or an EOF after them; `left`
    /// is (parameters, columns, whether an EOF follows the parameters).
    fn prepare_def(
        &mut self,
        det: &Detector,
        seq: u8,
        payload: &[u8],
        raw: &[u8],
        left: (u64, u64, bool),
        out: &mut Output,
    ) -> Result<usize, SessionError> {
        let (params, columns, eof_after_params) = left;
        let deprecate = self.deprecate_eof;
        let is_eof = |p: &[u8]| p.first() == Some(&0xFE) && if deprecate { p.len() < 0xFF_FFFF } else { p.len() < 9 };
        let bad = |e: mysql::Error| SessionError::rejected(Side::Server, e);
        let mut masked = 0;
        if params == 0 && eof_after_params {
            if !is_eof(payload) {
                return Err(SessionError::server("expected EOF after the parameter definitions"));
            }
            out.to_client.extend_from_slice(raw);
            self.reply = self.prepare_defs(0, columns, false);
        } else if params == 0 && columns == 0 {
            // The EOF after the column definitions.
            if !is_eof(payload) {
                return Err(SessionError::server("expected EOF after the column definitions"));
            }
            out.to_client.extend_from_slice(raw);
            self.reply = Reply::Idle;
        } else {
            let def = mysql::parse_column_definition(payload).map_err(bad)?;
            masked += self.masked_column(det, seq, &def, raw, out);
            self.reply = if params > 0 {
                self.prepare_defs(params - 1, columns, eof_after_params)
            } else {
                let left = columns - 1;
                if left == 0 && self.deprecate_eof {
                    Reply::Idle
                } else {
                    Reply::PrepareDefs {
                        params: 0,
                        columns: left,
                        eof_after_params: false,
                    }
                }
            };
        }
        Ok(masked)
    }

    /// Where the prepare response goes after the OK: parameter definitions, then column
    /// definitions, each block followed by an EOF unless deprecated.
    fn prepare_defs(&self, params: u64, columns: u64, eof_after_params: bool) -> Reply {
        let eof_after_params = eof_after_params && !self.deprecate_eof;
        if params == 0 && !eof_after_params && columns == 0 {
            return Reply::Idle;
        }
        Reply::PrepareDefs {
            params,
            columns,
            eof_after_params,
        }
    }

    /// Rows start: remember the column types for the statement (for later fetches).
    fn rows_start(&mut self, columns: usize) -> Reply {
        if self.binary {
            self.save_types();
        }
        Reply::Rows { columns }
    }

    fn save_types(&mut self) {
        if let Some(st) = self.statement.and_then(|id| self.statements.get_mut(&id)) {
            st.types = self.types.clone();
            st.credential = self.credential.clone();
        }
    }

    /// One result row, masked when the command's decision says so.
    fn row(
        &self,
        det: &Detector,
        seq: u8,
        payload: &[u8],
        columns: usize,
        raw: &[u8],
        out: &mut Output,
    ) -> Result<usize, SessionError> {
        if !self.mask {
            out.to_client.extend_from_slice(raw);
            return Ok(0);
        }
        let bad = |e: mysql::Error| SessionError::rejected(Side::Server, e);
        let cred = if self.credential.len() == columns {
            &self.credential[..]
        } else {
            &[]
        };
        if self.binary {
            let values = mysql::parse_binary_row(payload, &self.types).map_err(bad)?;
            let texts: Vec<Option<&[u8]>> = values
                .iter()
                .map(|v| match v {
                    mysql::BinaryValue::Text(t) => Some(*t),
                    _ => None,
                })
                .collect();
            Ok(forward_masked(
                det,
                &texts,
                cred,
                raw,
                &mut out.to_client,
                |redacted, to| {
                    let vals: Vec<mysql::BinaryValue<'_>> = values
                        .iter()
                        .zip(redacted)
                        .map(|(v, r)| match (v, r) {
                            (mysql::BinaryValue::Text(_), Some(r)) => mysql::BinaryValue::Text(r),
                            (other, _) => other.clone(),
                        })
                        .collect();
                    mysql::encode_binary_row(seq, &vals, to)
                },
            ))
        } else {
            let values = mysql::parse_text_row(payload, columns).map_err(bad)?;
            Ok(forward_masked(
                det,
                &values,
                cred,
                raw,
                &mut out.to_client,
                |redacted, to| {
                    let vals: Vec<Option<&[u8]>> = redacted.iter().map(|v| v.as_deref()).collect();
                    mysql::encode_text_row(seq, &vals, to)
                },
            ))
        }
    }

    /// A column definition with its names masked.
    fn masked_column(
        &self,
        det: &Detector,
        seq: u8,
        def: &mysql::ColumnDefinition<'_>,
        raw: &[u8],
        out: &mut Output,
    ) -> usize {
        if !self.mask {
            out.to_client.extend_from_slice(raw);
            return 0;
        }
        let names = def.names();
        let fields: Vec<Option<&[u8]>> = names.iter().map(|n| Some(*n)).collect();
        forward_masked(det, &fields, &[], raw, &mut out.to_client, |m, to| {
            let n = |i: usize| m[i].as_deref().unwrap_or_default();
            mysql::encode_column_definition(seq, [n(0), n(1), n(2), n(3), n(4), n(5)], def, to)
        })
    }

    /// A packet whose payload is text (a status line, a LOCAL INFILE file name), masked.
    fn masked_text(&self, det: &Detector, seq: u8, payload: &[u8], raw: &[u8], out: &mut Output) -> usize {
        match det.redact(payload) {
            Cow::Owned(m) if self.mask => {
                mysql::encode_packet(seq, &[&m], &mut out.to_client);
                1
            }
            _ => {
                out.to_client.extend_from_slice(raw);
                0
            }
        }
    }

    fn masked_err(&self, seq: u8, payload: &[u8], raw: &[u8], mask: bool, out: &mut Output) -> usize {
        if mask
            && let Ok(mysql::Response::Err {
                code,
                sql_state,
                message,
            }) = mysql::parse_response(payload)
        {
            let m = self.guard.current_detector().redact(message);
            if matches!(m, Cow::Owned(_)) {
                let mut state = *b"HY000";
                if let Some(s) = sql_state.filter(|s| s.len() == 5) {
                    state.copy_from_slice(s);
                }
                mysql::encode_err(seq, code, &state, &m, &mut out.to_client);
                return 1;
            }
        }
        out.to_client.extend_from_slice(raw);
        0
    }
}

/// The ERR for a statement id this session did not see prepared and allowed.
fn undecided(id: u32, out: &mut Vec<u8>) {
    let msg = format!("sluice: denied: statement {id} was not prepared through this session (never decided)");
    mysql::encode_err(1, 1142, b"42000", msg.as_bytes(), out);
}

/// After an OK or EOF ending a result: another result follows when the server says so.
fn after_ok(payload: &[u8], more: Reply) -> Reply {
    if ok_status(payload).is_some_and(|s| s & SERVER_MORE_RESULTS_EXISTS != 0) {
        more
    } else {
        Reply::Idle
    }
}

fn end_of_rows(payload: &[u8], deprecate_eof: bool) -> Reply {
    let status = if deprecate_eof {
        ok_status(payload)
    } else {
        // EOF: 0xFE, warnings (2), status (2).
        payload.get(3..5).map(|s| u16::from_le_bytes([s[0], s[1]]))
    };
    if status.is_some_and(|s| s & SERVER_MORE_RESULTS_EXISTS != 0) {
        Reply::Start
    } else {
        Reply::Idle
    }
}

/// The status flags of an OK packet (header, affected rows, last insert id, status).
fn ok_status(p: &[u8]) -> Option<u16> {
    let mut i = 1;
    for _ in 0..2 {
        i += match *p.get(i)? {
            0..=0xFA => 1,
            0xFC => 3,
            0xFD => 4,
            0xFE => 9,
            _ => return None,
        };
    }
    p.get(i..i + 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}

/// Clears capability bits in a protocol-10 greeting payload.
fn clear_capabilities(payload: &mut [u8], bits: u32) -> Result<(), mysql::Error> {
    mysql::parse_handshake(payload)?;
    let nul = payload[1..].iter().position(|&b| b == 0).unwrap_or(0) + 1;
    let lower = nul + 1 + 4 + 8 + 1;
    if let Some(b) = payload.get_mut(lower..lower + 2) {
        let v = u16::from_le_bytes([b[0], b[1]]) & !(bits as u16);
        b.copy_from_slice(&v.to_le_bytes());
    }
    let upper = lower + 2 + 1 + 2;
    if let Some(b) = payload.get_mut(upper..upper + 2) {
        let v = u16::from_le_bytes([b[0], b[1]]) & !((bits >> 16) as u16);
        b.copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}

const NATIVE_PASSWORD: &[u8] = b"mysql_native_password";

/// The 20-byte `mysql_native_password` scramble from its two parts as the server sent them
/// (the second ends with a NUL); `None` when they are too short.
fn native_scramble(first: &[u8], second: &[u8]) -> Option<[u8; 20]> {
    let mut s = [0u8; 20];
    s[..8].copy_from_slice(first.get(..8)?);
    s[8..].copy_from_slice(second.get(..12)?);
    Some(s)
}

/// `SET @sluice_grant = 'TOKEN'` (or `:=`, either quote): the token.
fn set_grant(text: &str) -> Option<&str> {
    super::set_grant(text, "@sluice_grant", &[":=", "=", ":"], &['\'', '"'])
}

/// The ERR packet for a refused statement (sequence id 1, after the client's command).
fn refuse(d: &Decision, out: &mut Vec<u8>) {
    let mut message = refusal_message(d);
    if d.approval().is_some() {
        // MySQL clients cut messages at 512 bytes: the request itself goes to the host's hook.
        message.push_str("; once approved: SET @sluice_grant = 'TOKEN', then retry");
    }
    mysql::encode_err(1, 1142, b"42000", message.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_statement() {
        assert_eq!(set_grant("SET @sluice_grant = 'a.b'"), Some("a.b"));
        assert_eq!(set_grant("set @SLUICE_GRANT:='x';"), Some("x"));
        assert_eq!(set_grant("SET @other = 'x'"), None);
    }

    #[test]
    fn ok_status_flags() {
        // OK: header, affected 1, insert id 0, status 0x000A (more results, autocommit), warnings.
        assert_eq!(ok_status(&[0x00, 0x01, 0x00, 0x0A, 0x00, 0x00, 0x00]), Some(0x000A));
        assert_eq!(ok_status(&[0x00, 0xFC, 0x10, 0x27, 0x00, 0x02, 0x00]), Some(0x0002));
    }
}
