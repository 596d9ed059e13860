//! A MySQL / MariaDB session.
//!
//! - **Handshake**: the server's TLS and query-attributes capabilities are cleared in the
//!   greeting the client sees (so clients in `ssl-mode=PREFERRED` stay in plain text and
//!   `COM_QUERY` keeps its classic layout); the client's user and database become the identity
//!   and target unless the host set them. Authentication passes through.
//! - **Decisions**: `COM_QUERY` and `COM_STMT_PREPARE` are decided before they are forwarded
//!   (executions of a prepared statement were decided when it was prepared). A refusal is an ERR
//!   packet (1142, SQLSTATE 42000, the reason; for approvals the request as JSON) with the right
//!   sequence id; the connection stays usable. (The approval request itself reaches the host through
//!   the event hook: MySQL clients cut error messages at 512 bytes.)
//! - **Grants**: `SET @sluice_grant = 'TOKEN'` (answered by the session, applies to the next
//!   statement) or a leading `/*sluice-grant:TOKEN*/` comment (for clients that keep comments).
//! - **Masking**: result rows of `COM_QUERY` (text) and `COM_STMT_EXECUTE` (binary; string
//!   values by their column types) re-encoded with their new length prefixes and the same
//!   sequence ids, across multiple result sets, and ERR messages.
//! - Anything malformed or oversized (a command over 16 MiB) is a [`SessionError`].

use std::sync::Arc;

use sluice_protocols::mysql::{self, Status, caps};

use super::{Event, Guard, Output, SessionError, SqlState, frames, refusal_message, split_grant_comment};
use crate::policy::{Action, Decision, Dialect, Identity, Protocol, Target};

const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
const MAX_PACKET: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// Waiting for the client's handshake response.
    Login,
    /// Authentication exchange until the server's OK.
    Auth,
    /// Commands.
    Commands,
}

/// Where a COM_QUERY response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Not in a text result (another command's reply, or none): pass through.
    Other,
    /// The first packet of a result.
    Start,
    /// Column definitions still to come.
    Columns { left: u64, total: usize },
    /// The EOF after the column definitions.
    ColumnsEof { total: usize },
    /// Rows.
    Rows { columns: usize },
}

/// One MySQL connection.
pub struct MySqlSession {
    guard: Arc<Guard>,
    sql: SqlState,
    phase: Phase,
    deprecate_eof: bool,
    reply: Reply,
    /// Whether the current result is binary (`COM_STMT_EXECUTE`), and its column types.
    binary: bool,
    types: Vec<u8>,
    mask: bool,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
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
                pending_grant: None,
            },
            phase: Phase::Greeting,
            deprecate_eof: false,
            reply: Reply::Other,
            binary: false,
            types: Vec::new(),
            mask,
            cbuf: Vec::new(),
            sbuf: Vec::new(),
        }
    }

    /// Bytes from the client.
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.cbuf);
        let r = frames(&mut buf, data, |rest| match mysql::parse_packet(rest, MAX_PACKET - 1) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete((p, used))) => {
                self.client_packet(p, &rest[..used], out)?;
                Ok(Some(used))
            }
            Err(e) => Err(SessionError::client(e.to_string())),
        });
        self.cbuf = buf;
        r
    }

    /// Bytes from the server.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.sbuf);
        let mut masked = 0;
        let r = frames(&mut buf, data, |rest| match mysql::parse_packet(rest, MAX_PACKET) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete((p, used))) => {
                masked += self.server_packet(p, &rest[..used], out)?;
                Ok(Some(used))
            }
            Err(e) => Err(SessionError::server(e.to_string())),
        });
        self.sbuf = buf;
        if masked > 0 {
            self.guard.emit(&Event::Masked {
                protocol: Protocol::Sql,
                count: masked,
            });
        }
        r
    }

    fn client_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        match self.phase {
            Phase::Greeting => return Err(SessionError::client("data before the server's greeting")),
            Phase::Login => {
                let r = mysql::parse_handshake_response(p.payload).map_err(|e| SessionError::client(e.to_string()))?;
                if r.capabilities & CLIENT_SSL != 0 && r.user.is_empty() {
                    return Err(SessionError::client(
                        "TLS requested; this session does not terminate TLS",
                    ));
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
                self.phase = Phase::Auth;
                out.to_server.extend_from_slice(raw);
            }
            Phase::Auth => out.to_server.extend_from_slice(raw),
            Phase::Commands if p.seq != 0 => {
                // The rest of an exchange the server asked for (LOCAL INFILE data, auth switch).
                out.to_server.extend_from_slice(raw);
            }
            Phase::Commands => {
                if p.continues() {
                    return Err(SessionError::client("commands over 16 MiB are not accepted"));
                }
                match mysql::parse_command(p.payload).map_err(|e| SessionError::client(e.to_string()))? {
                    mysql::Command::Query(q) => {
                        let text = std::str::from_utf8(q).map_err(|_| SessionError::client("query is not UTF-8"))?;
                        if let Some(g) = set_grant(text) {
                            self.sql.pending_grant = Some(g.to_string());
                            // OK: affected 0, insert id 0, autocommit, no warnings.
                            mysql::encode_packet(1, &[&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]], &mut out.to_client);
                            return Ok(());
                        }
                        let (grant, sql) = split_grant_comment(text);
                        let d = self.decide(sql, grant);
                        if d.action == Action::Allow {
                            self.reply = Reply::Start;
                            self.binary = false;
                            if grant.is_some() {
                                mysql::encode_packet(0, &[&[0x03], sql.as_bytes()], &mut out.to_server);
                            } else {
                                out.to_server.extend_from_slice(raw);
                            }
                        } else {
                            refuse(&d, &mut out.to_client);
                        }
                    }
                    mysql::Command::StmtPrepare(q) => {
                        let text =
                            std::str::from_utf8(q).map_err(|_| SessionError::client("statement is not UTF-8"))?;
                        let (grant, sql) = split_grant_comment(text);
                        let d = self.decide(sql, grant);
                        self.reply = Reply::Other;
                        if d.action == Action::Allow {
                            if grant.is_some() {
                                mysql::encode_packet(0, &[&[0x16], sql.as_bytes()], &mut out.to_server);
                            } else {
                                out.to_server.extend_from_slice(raw);
                            }
                        } else {
                            refuse(&d, &mut out.to_client);
                        }
                    }
                    mysql::Command::StmtExecute { .. } => {
                        // Decided when it was prepared; its rows come back binary.
                        self.reply = Reply::Start;
                        self.binary = true;
                        self.types.clear();
                        out.to_server.extend_from_slice(raw);
                    }
                    _ => {
                        self.reply = Reply::Other;
                        out.to_server.extend_from_slice(raw);
                    }
                }
            }
        }
        Ok(())
    }

    fn decide(&mut self, sql: &str, grant: Option<&str>) -> Decision {
        let d = self.sql.decide(&self.guard, sql, grant, Dialect::MySql);
        self.mask = if d.action == Action::Allow {
            d.mask
        } else {
            self.guard.policy.load().masking()
        };
        d
    }

    /// Handles one server packet; returns how many values it masked.
    fn server_packet(&mut self, p: mysql::Packet<'_>, raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        let payload = p.payload;
        match self.phase {
            Phase::Greeting => {
                let mut greeting = raw.to_vec();
                clear_capabilities(&mut greeting[4..], CLIENT_SSL | CLIENT_QUERY_ATTRIBUTES)
                    .map_err(|e| SessionError::server(e.to_string()))?;
                out.to_client.extend_from_slice(&greeting);
                self.phase = Phase::Login;
                return Ok(0);
            }
            Phase::Login => {
                // An ERR instead of a greeting exchange (too many connections, host blocked).
                out.to_client.extend_from_slice(raw);
                return Ok(0);
            }
            Phase::Auth => {
                if payload.first() == Some(&0x00) {
                    self.phase = Phase::Commands;
                }
                out.to_client.extend_from_slice(raw);
                return Ok(0);
            }
            Phase::Commands => {}
        }
        let det = &self.guard.detector;
        let first = payload.first().copied();
        let is_eof = |p: &[u8], deprecate: bool| {
            p.first() == Some(&0xFE) && if deprecate { p.len() < 0xFF_FFFF } else { p.len() < 9 }
        };
        let mut masked = 0;
        match self.reply {
            Reply::Other => out.to_client.extend_from_slice(raw),
            Reply::Start => {
                match first {
                    Some(0x00) => self.reply = after_ok(payload, Reply::Start),
                    Some(0xFF) => {
                        self.reply = Reply::Other;
                        masked += self.masked_err(p.seq, payload, raw, out);
                        return Ok(masked);
                    }
                    // LOCAL INFILE: the client's file data follows (seq ≠ 0, passed through).
                    Some(0xFB) => self.reply = Reply::Other,
                    _ => {
                        let n = match mysql::parse_response(payload).map_err(|e| SessionError::server(e.to_string()))? {
                            mysql::Response::ColumnCount(n) => n,
                            _ => 0,
                        };
                        if n == 0 || n > 4096 {
                            return Err(SessionError::server(format!("bad column count {n}")));
                        }
                        self.reply = Reply::Columns {
                            left: n,
                            total: n as usize,
                        };
                    }
                }
                out.to_client.extend_from_slice(raw);
            }
            Reply::Columns { left, total } => {
                if self.binary {
                    let def =
                        mysql::parse_column_definition(payload).map_err(|e| SessionError::server(e.to_string()))?;
                    self.types.push(def.column_type);
                }
                self.reply = match (left - 1, self.deprecate_eof) {
                    (0, true) => Reply::Rows { columns: total },
                    (0, false) => Reply::ColumnsEof { total },
                    (l, _) => Reply::Columns { left: l, total },
                };
                out.to_client.extend_from_slice(raw);
            }
            Reply::ColumnsEof { total } => {
                self.reply = Reply::Rows { columns: total };
                out.to_client.extend_from_slice(raw);
            }
            Reply::Rows { columns } => {
                if is_eof(payload, self.deprecate_eof) {
                    self.reply = end_of_rows(payload, self.deprecate_eof);
                    out.to_client.extend_from_slice(raw);
                } else if first == Some(0xFF) {
                    self.reply = Reply::Other;
                    masked += self.masked_err(p.seq, payload, raw, out);
                } else if self.mask && self.binary {
                    let values = mysql::parse_binary_row(payload, &self.types)
                        .map_err(|e| SessionError::server(e.to_string()))?;
                    let redacted: Vec<std::borrow::Cow<'_, [u8]>> = values
                        .iter()
                        .map(|v| match v {
                            mysql::BinaryValue::Text(t) => det.redact(t),
                            _ => std::borrow::Cow::Borrowed(&[][..]),
                        })
                        .collect();
                    let changed = redacted
                        .iter()
                        .filter(|v| matches!(v, std::borrow::Cow::Owned(_)))
                        .count();
                    if changed == 0 {
                        out.to_client.extend_from_slice(raw);
                    } else {
                        let vals: Vec<mysql::BinaryValue<'_>> = values
                            .iter()
                            .zip(&redacted)
                            .map(|(v, r)| match v {
                                mysql::BinaryValue::Text(_) => mysql::BinaryValue::Text(r),
                                other => other.clone(),
                            })
                            .collect();
                        mysql::encode_binary_row(p.seq, &vals, &mut out.to_client);
                        masked += changed;
                    }
                } else if self.mask {
                    let values =
                        mysql::parse_text_row(payload, columns).map_err(|e| SessionError::server(e.to_string()))?;
                    let redacted: Vec<Option<std::borrow::Cow<'_, [u8]>>> =
                        values.iter().map(|v| v.map(|v| det.redact(v))).collect();
                    let changed = redacted
                        .iter()
                        .filter(|v| matches!(v, Some(std::borrow::Cow::Owned(_))))
                        .count();
                    if changed == 0 {
                        out.to_client.extend_from_slice(raw);
                    } else {
                        let vals: Vec<Option<&[u8]>> = redacted.iter().map(|v| v.as_deref()).collect();
                        mysql::encode_text_row(p.seq, &vals, &mut out.to_client);
                        masked += changed;
                    }
                } else {
                    out.to_client.extend_from_slice(raw);
                }
            }
        }
        Ok(masked)
    }

    fn masked_err(&self, seq: u8, payload: &[u8], raw: &[u8], out: &mut Output) -> usize {
        if let Ok(mysql::Response::Err {
            code,
            sql_state,
            message,
        }) = mysql::parse_response(payload)
        {
            let m = self.guard.detector.redact(message);
            if matches!(m, std::borrow::Cow::Owned(_)) {
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

/// After an OK or EOF ending a result: another result follows when the server says so.
fn after_ok(payload: &[u8], more: Reply) -> Reply {
    if ok_status(payload).is_some_and(|s| s & SERVER_MORE_RESULTS_EXISTS != 0) {
        more
    } else {
        Reply::Other
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
        Reply::Other
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

/// `SET @sluice_grant = 'TOKEN'`: the token.
fn set_grant(text: &str) -> Option<&str> {
    let t = text.trim().trim_end_matches(';').trim();
    let head = t.get(..17)?;
    if !head.eq_ignore_ascii_case("set @sluice_grant") {
        return None;
    }
    let rest = t[17..]
        .trim_start()
        .strip_prefix(['=', ':'])
        .map(|r| r.trim_start_matches('=').trim())?;
    rest.strip_prefix(['\'', '"'])?.strip_suffix(['\'', '"'])
}

/// The ERR packet for a refused statement (sequence id 1, after the client's command).
fn refuse(d: &Decision, out: &mut Vec<u8>) {
    let mut message = refusal_message(d);
    if d.approval.is_some() {
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
