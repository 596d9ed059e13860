//! A PostgreSQL session (protocol v3).
//!
//! - **Startup**: TLS and GSS encryption requests are refused (`N`; a proxy that terminates TLS
//!   feeds the decrypted stream); the startup packet's `user` and `database` become the identity
//!   and target unless the host set them.
//! - **Decisions**: every simple `Query` and every extended-protocol `Parse` is decided before it
//!   is forwarded. A refused statement never reaches the server: the client gets an
//!   `ErrorResponse` (SQLSTATE `42501`, the reason; for approvals the request as JSON in DETAIL)
//!   and `ReadyForQuery`, in order with the server's own replies, and the connection stays
//!   usable. In an extended batch, the messages after a refused `Parse` are dropped up to `Sync`.
//! - **Grants** on retry: a leading comment `/*sluice-grant:TOKEN*/ DROP TABLE t` (stripped
//!   before deciding and forwarding), or `SET sluice.grant = 'TOKEN'` (answered by the session,
//!   applies to the next statement).
//! - **Masking**: `DataRow` values (re-framed with their new lengths), `ErrorResponse` and
//!   `NoticeResponse` texts, and `COPY … TO STDOUT` data (through a streaming redactor, so a
//!   secret split across `CopyData` messages is still masked).
//! - Anything malformed or oversized from either side is a [`SessionError`].

use std::collections::VecDeque;
use std::sync::Arc;

use sluice_protocols::postgres::{self as pg, Backend, Frontend, Limits, Startup, Status};

use super::{Event, Guard, Output, SessionError, SqlState, frames, refusal_message, split_grant_comment};
use crate::StreamRedactor;
use crate::policy::{Action, Decision, Dialect, Identity, Protocol, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the startup packet (or an SSL/GSS request before it).
    Startup,
    /// Typed messages.
    Running,
    /// A cancel request was forwarded: nothing else is expected.
    Cancel,
}

/// What to send the client once the server has delivered a given number of `ReadyForQuery`.
#[derive(Debug)]
enum Inject {
    /// Bytes.
    Bytes(Vec<u8>),
    /// A `ReadyForQuery` with the transaction status current at that moment.
    Ready,
}

/// One PostgreSQL connection.
pub struct PgSession {
    guard: Arc<Guard>,
    sql: SqlState,
    phase: Phase,
    limits: Limits,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
    /// Last transaction status the server reported.
    tx: u8,
    /// ReadyForQuery messages the server owes (forwarded Query and Sync), and seen.
    rfq_expected: u64,
    rfq_seen: u64,
    /// Replies to send after (`false`) or before (`true`) ReadyForQuery number `n`.
    injections: VecDeque<(u64, bool, Inject)>,
    /// In an extended batch: whether a statement was refused, and whether anything of the
    /// batch went to the server.
    batch_failed: Option<Vec<u8>>,
    batch_forwarded: bool,
    /// Whether responses are masked now (from the last decision).
    mask: bool,
    copy_out: Option<StreamRedactor<'static>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for PgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSession")
            .field("identity", &self.sql.identity)
            .field("target", &self.sql.target)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl PgSession {
    /// A session; `identity` and `target` override what the startup packet says (user,
    /// database).
    pub fn new(guard: Arc<Guard>, identity: Option<Identity>, target: Option<Target>) -> PgSession {
        let mask = guard.policy.load().masking();
        PgSession {
            guard,
            sql: SqlState {
                identity,
                target,
                pending_grant: None,
            },
            phase: Phase::Startup,
            limits: Limits::default(),
            cbuf: Vec::new(),
            sbuf: Vec::new(),
            tx: b'I',
            rfq_expected: 0,
            rfq_seen: 0,
            injections: VecDeque::new(),
            batch_failed: None,
            batch_forwarded: false,
            mask,
            copy_out: None,
            scratch: Vec::new(),
        }
    }

    /// The identity decisions are made for (known after the startup packet).
    pub fn identity(&self) -> Option<&Identity> {
        self.sql.identity.as_ref()
    }

    /// The target decisions are made against.
    pub fn target(&self) -> Option<&Target> {
        self.sql.target.as_ref()
    }

    /// Bytes from the client.
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.cbuf);
        let r = frames(&mut buf, data, |rest| match self.phase {
            Phase::Startup => match pg::parse_startup(rest, &self.limits) {
                Ok(Status::Partial) => Ok(None),
                Ok(Status::Complete((m, used))) => {
                    self.startup(m, &rest[..used], out);
                    Ok(Some(used))
                }
                Err(e) => Err(SessionError::client(e.to_string())),
            },
            Phase::Cancel => Err(SessionError::client("data after a cancel request")),
            Phase::Running => match pg::parse_frontend(rest, &self.limits) {
                Ok(Status::Partial) => Ok(None),
                Ok(Status::Complete((m, used))) => {
                    self.frontend(m, &rest[..used], out)?;
                    Ok(Some(used))
                }
                Err(e) => Err(SessionError::client(e.to_string())),
            },
        });
        self.cbuf = buf;
        r
    }

    /// Bytes from the server.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.sbuf);
        let mut masked = 0usize;
        let r = frames(&mut buf, data, |rest| match pg::parse_backend(rest, &self.limits) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete((m, used))) => {
                masked += self.backend(m, &rest[..used], out);
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

    fn startup(&mut self, m: Startup<'_>, raw: &[u8], out: &mut Output) {
        match m {
            Startup::SslRequest | Startup::GssEncRequest => out.to_client.push(b'N'),
            Startup::CancelRequest { .. } => {
                out.to_server.extend_from_slice(raw);
                self.phase = Phase::Cancel;
            }
            Startup::Startup { .. } => {
                let text = |k: &str| m.param(k).map(|v| String::from_utf8_lossy(v).into_owned());
                let user = text("user").unwrap_or_default();
                if self.sql.identity.is_none() {
                    self.sql.identity = Some(Identity::new(user.clone()));
                }
                if self.sql.target.is_none() {
                    self.sql.target = Some(Target::new(text("database").unwrap_or(user)));
                }
                out.to_server.extend_from_slice(raw);
                // The server ends authentication with a ReadyForQuery.
                self.rfq_expected += 1;
                self.phase = Phase::Running;
            }
        }
    }

    fn frontend(&mut self, m: Frontend<'_>, raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        match m {
            Frontend::Query(q) => {
                let text = std::str::from_utf8(q).map_err(|_| SessionError::client("query is not UTF-8"))?;
                if let Some(grant) = set_grant(text) {
                    self.sql.pending_grant = Some(grant.to_string());
                    let mut reply = Vec::new();
                    pg::encode_command_complete(b"SET", &mut reply);
                    self.inject_after(Inject::Bytes(reply), out);
                    self.inject_after(Inject::Ready, out);
                    return Ok(());
                }
                let (grant, sql) = split_grant_comment(text);
                let d = self.decide(sql, grant);
                if d.action == Action::Allow {
                    if grant.is_some() {
                        encode_query(sql, &mut out.to_server);
                    } else {
                        out.to_server.extend_from_slice(raw);
                    }
                    self.rfq_expected += 1;
                } else {
                    let err = error_response(&d);
                    self.inject_after(Inject::Bytes(err), out);
                    self.inject_after(Inject::Ready, out);
                }
            }
            Frontend::Parse {
                name,
                query,
                param_types,
            } => {
                if self.batch_failed.is_some() {
                    return Ok(());
                }
                let text = std::str::from_utf8(query).map_err(|_| SessionError::client("statement is not UTF-8"))?;
                let (grant, sql) = split_grant_comment(text);
                let d = self.decide(sql, grant);
                if d.action == Action::Allow {
                    if grant.is_some() {
                        encode_parse(name, sql, &param_types, &mut out.to_server);
                    } else {
                        out.to_server.extend_from_slice(raw);
                    }
                    self.batch_forwarded = true;
                } else {
                    self.batch_failed = Some(error_response(&d));
                }
            }
            Frontend::Sync => match self.batch_failed.take() {
                Some(err) if self.batch_forwarded => {
                    // The server answers the forwarded part; the error goes just before its
                    // ReadyForQuery.
                    out.to_server.extend_from_slice(raw);
                    self.rfq_expected += 1;
                    self.injections.push_back((self.rfq_expected, true, Inject::Bytes(err)));
                    self.batch_forwarded = false;
                }
                Some(err) => {
                    self.inject_after(Inject::Bytes(err), out);
                    self.inject_after(Inject::Ready, out);
                }
                None => {
                    out.to_server.extend_from_slice(raw);
                    self.rfq_expected += 1;
                    self.batch_forwarded = false;
                }
            },
            Frontend::Bind { .. }
            | Frontend::Describe { .. }
            | Frontend::Execute { .. }
            | Frontend::Close { .. }
            | Frontend::Flush => {
                if self.batch_failed.is_none() {
                    out.to_server.extend_from_slice(raw);
                    self.batch_forwarded = true;
                }
            }
            _ => out.to_server.extend_from_slice(raw),
        }
        Ok(())
    }

    fn decide(&mut self, sql: &str, grant: Option<&str>) -> Decision {
        let d = self.sql.decide(&self.guard, sql, grant, Dialect::Postgres);
        if d.action == Action::Allow {
            self.mask = d.mask;
        }
        d
    }

    /// Queues `inject` for after every ReadyForQuery the server owes now (at once if none).
    fn inject_after(&mut self, inject: Inject, out: &mut Output) {
        if self.rfq_seen == self.rfq_expected && self.injections.is_empty() {
            self.emit(inject, out);
        } else {
            self.injections.push_back((self.rfq_expected, false, inject));
        }
    }

    fn emit(&self, inject: Inject, out: &mut Output) {
        match inject {
            Inject::Bytes(b) => out.to_client.extend_from_slice(&b),
            Inject::Ready => pg::encode_ready_for_query(self.tx, &mut out.to_client),
        }
    }

    /// Handles one server message; returns how many values it masked.
    fn backend(&mut self, m: Backend<'_>, raw: &[u8], out: &mut Output) -> usize {
        let det = &self.guard.detector;
        match m {
            Backend::ReadyForQuery { status } => {
                self.tx = status;
                let n = self.rfq_seen + 1;
                while self.injections.front().is_some_and(|(k, before, _)| *before && *k == n) {
                    if let Some((_, _, inj)) = self.injections.pop_front() {
                        self.emit(inj, out);
                    }
                }
                out.to_client.extend_from_slice(raw);
                self.rfq_seen = n;
                while self
                    .injections
                    .front()
                    .is_some_and(|(k, before, _)| !*before && *k <= n)
                {
                    if let Some((_, _, inj)) = self.injections.pop_front() {
                        self.emit(inj, out);
                    }
                }
                // Masking follows each statement's decision; between statements, the policy's.
                self.mask = self.guard.policy.load().masking();
                0
            }
            Backend::DataRow(row) if self.mask => {
                let mut changed = 0;
                let masked: Vec<Option<std::borrow::Cow<'_, [u8]>>> = row
                    .values()
                    .map(|v| {
                        v.map(|v| {
                            let r = det.redact(v);
                            if matches!(r, std::borrow::Cow::Owned(_)) {
                                changed += 1;
                            }
                            r
                        })
                    })
                    .collect();
                if changed == 0 {
                    out.to_client.extend_from_slice(raw);
                } else {
                    pg::encode_data_row_iter(masked.iter().map(|v| v.as_deref()), &mut out.to_client);
                }
                changed
            }
            Backend::ErrorResponse(fields) | Backend::NoticeResponse(fields) if self.mask => {
                let notice = raw[0] == b'N';
                let mut changed = 0;
                let masked: Vec<(u8, std::borrow::Cow<'_, [u8]>)> = fields
                    .iter()
                    .map(|(code, v)| {
                        let r = det.redact(v);
                        if matches!(r, std::borrow::Cow::Owned(_)) {
                            changed += 1;
                        }
                        (*code, r)
                    })
                    .collect();
                if changed == 0 {
                    out.to_client.extend_from_slice(raw);
                } else {
                    let f: Vec<(u8, &[u8])> = masked.iter().map(|(c, v)| (*c, v.as_ref())).collect();
                    pg::encode_error(&f, notice, &mut out.to_client);
                }
                changed
            }
            Backend::CopyOutResponse(_) => {
                if self.mask {
                    self.copy_out = Some(det.shared_stream_redactor());
                }
                out.to_client.extend_from_slice(raw);
                0
            }
            Backend::CopyData(data) if self.copy_out.is_some() => {
                self.scratch.clear();
                if let Some(r) = self.copy_out.as_mut() {
                    r.feed(data, &mut self.scratch);
                }
                let changed = usize::from(self.scratch.as_slice() != data);
                copy_data(&self.scratch, &mut out.to_client);
                changed
            }
            Backend::CopyDone if self.copy_out.is_some() => {
                self.scratch.clear();
                if let Some(mut r) = self.copy_out.take() {
                    r.finish(&mut self.scratch);
                }
                copy_data(&self.scratch, &mut out.to_client);
                out.to_client.extend_from_slice(raw);
                0
            }
            _ => {
                out.to_client.extend_from_slice(raw);
                0
            }
        }
    }
}

/// `SET sluice.grant = 'TOKEN'` (or `TO`): the token.
fn set_grant(text: &str) -> Option<&str> {
    let t = text.trim().trim_end_matches(';').trim();
    let lower = t.get(..16)?.to_ascii_lowercase();
    if lower != "set sluice.grant" {
        return None;
    }
    let rest = t[16..].trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| {
            rest.get(..2)
                .filter(|p| p.eq_ignore_ascii_case("to"))
                .map(|_| &rest[2..])
        })?
        .trim();
    rest.strip_prefix('\'')?.strip_suffix('\'')
}

fn copy_data(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.push(b'd');
    out.extend_from_slice(&((data.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(data);
}

fn encode_query(sql: &str, out: &mut Vec<u8>) {
    out.push(b'Q');
    out.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
}

fn encode_parse(name: &[u8], sql: &str, types: &[u32], out: &mut Vec<u8>) {
    let len = 4 + name.len() + 1 + sql.len() + 1 + 2 + 4 * types.len();
    out.push(b'P');
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out.extend_from_slice(&(types.len() as u16).to_be_bytes());
    for t in types {
        out.extend_from_slice(&t.to_be_bytes());
    }
}

/// The ErrorResponse for a refused statement: SQLSTATE 42501 (insufficient privilege), the
/// reason, and for approvals the request (JSON) in DETAIL and how to retry in HINT.
fn error_response(d: &Decision) -> Vec<u8> {
    let message = refusal_message(d);
    let detail = d.approval.as_ref().and_then(|a| serde_json::to_string(a).ok());
    let mut fields: Vec<(u8, &[u8])> = vec![
        (b'S', b"ERROR"),
        (b'V', b"ERROR"),
        (b'C', b"42501"),
        (b'M', message.as_bytes()),
    ];
    if let Some(detail) = &detail {
        fields.push((b'D', detail.as_bytes()));
        fields.push((
            b'H',
            b"once approved, retry with the grant: /*sluice-grant:TOKEN*/ <statement>, or SET sluice.grant = 'TOKEN' first",
        ));
    }
    let mut out = Vec::new();
    pg::encode_error(&fields, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_forms() {
        assert_eq!(set_grant("SET sluice.grant = 'abc.def'"), Some("abc.def"));
        assert_eq!(set_grant("set SLUICE.GRANT to 'x';"), Some("x"));
        assert_eq!(set_grant("SET search_path = x"), None);
        assert_eq!(
            split_grant_comment("/*sluice-grant:tok*/ DROP TABLE t"),
            (Some("tok"), "DROP TABLE t")
        );
        assert_eq!(split_grant_comment("DROP TABLE t"), (None, "DROP TABLE t"));
    }
}
