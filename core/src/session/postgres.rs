//! A PostgreSQL session (protocol v3).
//!
//! - **Startup**: TLS and GSS encryption requests are refused (`N`; a proxy that terminates TLS
//!   feeds the decrypted stream); the startup packet's `user` and `database` become the identity
//!   and target unless the host set them.
//! - **Authentication**: until the server's first `ReadyForQuery` the client may only answer
//!   what the server asked (a password or SASL message). With a vault (credential brokering),
//!   the session logs in for the client: the server's cleartext, MD5 or SCRAM-SHA-256 request
//!   is answered by the session, and the client is asked for a cleartext password instead. A
//!   password that is (or holds) a placeholder is swapped for the credential it names, where
//!   the policy's `credentials` section lets it go to this target (anything else ends the
//!   session with an error, recorded); any other password is the client's own, used as it is.
//!   The server's SCRAM signature is checked: a server that does not know the password is not
//!   the one the credential is for.
//! - **Decisions**: every simple `Query` and every extended-protocol `Parse` is decided before it
//!   is forwarded; `Bind`, `Describe` and `Execute` are forwarded only for statements and portals
//!   this session saw created by an allowed message (not by SQL `PREPARE` or `DECLARE`). A
//!   refused statement never reaches the server: the client gets an `ErrorResponse` (SQLSTATE
//!   `42501`, the reason; for approvals the request as JSON in DETAIL) and `ReadyForQuery`, in
//!   order with the server's own replies, and the connection stays usable. In an extended batch,
//!   the messages after a refused one are dropped up to `Sync`. COPY data is accepted only
//!   between the server's `CopyInResponse` and the client's `CopyDone`/`CopyFail`; any other
//!   message type (`FunctionCall`, a password after authentication) closes the session.
//! - **Grants** on retry: a leading comment `/*sluice-grant:TOKEN*/ DROP TABLE t` (stripped
//!   before deciding and forwarding), or `SET sluice.grant = 'TOKEN'` (answered by the session,
//!   applies to the next statement). A grant buys one execution: a statement prepared with one
//!   can be bound once.
//! - **Masking**, of every server message that carries text: `DataRow` values (each, and joined
//!   with their neighbours: [`Detector::redact_fields`]; columns named like credentials by
//!   [`crate::credential_column`]), `RowDescription` column names, every field of `ErrorResponse`
//!   and `NoticeResponse`, `NotificationResponse`, `ParameterStatus`, command tags, and
//!   `COPY … TO STDOUT` data: text through a streaming redactor (a secret split across
//!   `CopyData` messages is still masked) and again per line with COPY's escapes decoded, binary
//!   decoded into tuples and masked field by field. Each batch's replies are masked by the
//!   decisions of its own statements; asynchronous messages whenever the policy masks.
//! - Anything malformed or oversized from either side is a [`SessionError`].

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sluice_protocols::postgres::{self as pg, Backend, Frontend, Limits, Startup, Status};

use super::{
    Event, Guard, Output, SessionError, Side, SqlState, forward_masked, frames, refusal_message, split_grant_comment,
};
use crate::broker::login::{SCRAM_SHA_256, ScramClient, md5_password};
use crate::policy::{Action, Decision, Dialect, Identity, Protocol, Target};
use crate::{Detector, StreamRedactor, credential_column};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the startup packet (or an SSL/GSS request before it).
    Startup,
    /// Authentication: the client may answer what the server asks, nothing else, until the
    /// server's first ReadyForQuery.
    Auth {
        /// The server asked for a password or SASL message and has not had it yet.
        asked: bool,
        /// The server said AuthenticationOk.
        ok: bool,
    },
    /// Typed messages.
    Running,
    /// A cancel request was forwarded, or the client said Terminate: nothing else is expected.
    Ended,
}

/// Logging in for the client (with a vault): where the exchange with the server stands.
enum Login {
    /// The server's password request (its code and data), answered once the client's
    /// cleartext password arrives.
    Asked { code: u32, data: Vec<u8> },
    /// SCRAM under way: the client-first message went to the server.
    ScramFirst(Box<ScramClient>),
    /// SCRAM under way: the client-final message went to the server.
    ScramFinal(Box<ScramClient>),
    /// Answered: the server's verdict is next.
    Answered,
}

/// What to send the client once the server has delivered a given number of `ReadyForQuery`.
#[derive(Debug)]
enum Inject {
    /// Bytes.
    Bytes(Vec<u8>),
    /// A `ReadyForQuery` with the transaction status current at that moment.
    Ready,
}

/// A statement prepared (`Parse`) in this session and allowed.
#[derive(Debug, Clone, Copy)]
struct Prepared {
    /// Whether its results are masked.
    mask: bool,
    /// Allowed only by a grant: it may be bound once.
    granted: bool,
}

/// A `COPY … TO STDOUT` in progress.
enum CopyOut {
    /// Not masked (the decision said so): passed as is.
    Plain,
    /// Text or CSV format: one stream through the redactor, then each line read with COPY's
    /// backslash escapes decoded.
    Text(Box<CopyText>),
    /// Binary format: decoded into tuples, each field masked like a DataRow value.
    Binary(BinaryCopy),
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
    /// In an extended batch: the error of a refused message, and whether anything of the batch
    /// went to the server.
    batch_failed: Option<Vec<u8>>,
    batch_forwarded: bool,
    /// Whether the replies up to ReadyForQuery number `n` are masked (`None`: the policy's
    /// setting), for each batch sent and not yet answered.
    batches: VecDeque<(u64, Option<bool>)>,
    /// The same for the extended batch still open (no Sync yet).
    open_mask: Option<bool>,
    /// Statements and portals created in this session through allowed messages.
    statements: HashMap<Vec<u8>, Prepared>,
    portals: HashMap<Vec<u8>, bool>,
    /// For the rows being sent: which columns are named like credentials.
    credential_columns: Vec<bool>,
    copy_out: Option<CopyOut>,
    /// The server accepted a `COPY … FROM STDIN`: the client's data may follow.
    copy_in: bool,
    scratch: Vec<u8>,
    /// The startup packet's user (MD5 passwords are salted with it).
    user: Vec<u8>,
    /// Logging in for the client (with a vault).
    login: Option<Login>,
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
        PgSession {
            guard,
            sql: SqlState {
                identity,
                target,
                ..SqlState::default()
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
            batches: VecDeque::new(),
            open_mask: None,
            statements: HashMap::new(),
            portals: HashMap::new(),
            credential_columns: Vec::new(),
            copy_out: None,
            copy_in: false,
            scratch: Vec::new(),
            user: Vec::new(),
            login: None,
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
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_client(data, out);
        self.guard.handled(Protocol::Sql, out, mark, r)
    }

    fn handle_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(&mut self.cbuf);
        let r = frames(&mut buf, data, |rest| match self.phase {
            Phase::Startup => match pg::parse_startup(rest, &self.limits) {
                Ok(Status::Partial) => Ok(None),
                Ok(Status::Complete((m, used))) => {
                    self.startup(m, &rest[..used], out);
                    Ok(Some(used))
                }
                Err(e) => Err(SessionError::rejected(Side::Client, e)),
            },
            Phase::Ended => Err(SessionError::client("data after a cancel request or Terminate")),
            Phase::Auth { .. } | Phase::Running => match pg::parse_frontend(rest, &self.limits) {
                Ok(Status::Partial) => Ok(None),
                Ok(Status::Complete((m, used))) => {
                    self.frontend(m, &rest[..used], out)?;
                    Ok(Some(used))
                }
                Err(e) => Err(SessionError::rejected(Side::Client, e)),
            },
        });
        self.cbuf = buf;
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
        let mut masked = 0usize;
        let r = frames(&mut buf, data, |rest| match pg::parse_backend(rest, &self.limits) {
            Ok(Status::Partial) => Ok(None),
            Ok(Status::Complete((m, used))) => {
                masked += self.backend(m, &rest[..used], out)?;
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
        r
    }

    fn startup(&mut self, m: Startup<'_>, raw: &[u8], out: &mut Output) {
        match m {
            Startup::SslRequest | Startup::GssEncRequest => out.to_client.push(b'N'),
            Startup::CancelRequest { .. } => {
                out.to_server.extend_from_slice(raw);
                self.phase = Phase::Ended;
            }
            Startup::Startup { .. } => {
                let text = |k: &str| m.param(k).map(|v| String::from_utf8_lossy(v).into_owned());
                let user = text("user").unwrap_or_default();
                self.user = user.clone().into_bytes();
                if self.sql.identity.is_none() {
                    self.sql.identity = Some(Identity::new(user.clone()));
                }
                if self.sql.target.is_none() {
                    self.sql.target = Some(Target::new(text("database").unwrap_or(user)));
                }
                // A role taken at startup (`role=…`, `options=-c role=…`, session_authorization)
                // is a role change like `SET ROLE`, decided before the connection is made.
                if let Startup::Startup { params, .. } = &m {
                    let role = params.iter().find_map(|(k, v)| {
                        let k = String::from_utf8_lossy(k).to_ascii_lowercase();
                        let v = String::from_utf8_lossy(v);
                        let lv = v.to_ascii_lowercase();
                        let named = matches!(k.as_str(), "role" | "session_authorization");
                        let in_options =
                            k == "options" && (lv.contains("role") || lv.contains("session_authorization"));
                        (named || in_options).then(|| format!("{k}={v}"))
                    });
                    if let Some(role) = role {
                        let sql = "SET ROLE startup_parameter";
                        let d = self.decide(sql, None);
                        if d.action() != Action::Allow {
                            let mut d = d;
                            d.explain(&format!("the startup parameter `{role}` changes the role"));
                            out.to_client.extend_from_slice(&error_response(&d));
                            self.phase = Phase::Ended;
                            return;
                        }
                    }
                }
                out.to_server.extend_from_slice(raw);
                // The server ends authentication with a ReadyForQuery.
                self.rfq_expected += 1;
                self.phase = Phase::Auth {
                    asked: false,
                    ok: false,
                };
            }
        }
    }

    fn frontend(&mut self, m: Frontend<'_>, raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        if let Phase::Auth { asked, ok } = self.phase {
            // Only the answer to what the server asked: a password or SASL message.
            return match m {
                Frontend::Password(body) if asked && self.login.is_some() => {
                    self.phase = Phase::Auth { asked: false, ok };
                    self.log_in(body, out)
                }
                Frontend::Password(_) if asked => {
                    self.phase = Phase::Auth { asked: false, ok };
                    out.to_server.extend_from_slice(raw);
                    Ok(())
                }
                Frontend::Terminate => {
                    out.to_server.extend_from_slice(raw);
                    self.phase = Phase::Ended;
                    Ok(())
                }
                _ => Err(SessionError::client(
                    "a message the server did not ask for during authentication",
                )),
            };
        }
        if self.copy_in {
            // Between the server's CopyInResponse and the client's CopyDone or CopyFail: COPY
            // data of a statement that was decided, and nothing else.
            return match m {
                // The server ignores Flush and Sync during COPY FROM STDIN: no ReadyForQuery
                // is owed for them.
                Frontend::CopyData(_) | Frontend::Flush | Frontend::Sync => {
                    out.to_server.extend_from_slice(raw);
                    Ok(())
                }
                Frontend::CopyDone | Frontend::CopyFail(_) => {
                    self.copy_in = false;
                    out.to_server.extend_from_slice(raw);
                    Ok(())
                }
                _ => Err(SessionError::client(
                    "a message other than COPY data during COPY FROM STDIN",
                )),
            };
        }
        // After a refusal in an extended batch, the rest of it up to Sync is dropped.
        if self.batch_failed.is_some()
            && matches!(
                m,
                Frontend::Parse { .. }
                    | Frontend::Bind { .. }
                    | Frontend::Describe { .. }
                    | Frontend::Execute { .. }
                    | Frontend::Close { .. }
                    | Frontend::Flush
            )
        {
            return Ok(());
        }
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
                if d.action() == Action::Allow {
                    if grant.is_some() {
                        encode_query(sql, &mut out.to_server);
                    } else {
                        out.to_server.extend_from_slice(raw);
                    }
                    // A simple query drops the unnamed statement and portal.
                    self.statements.remove(&b""[..]);
                    self.portals.remove(&b""[..]);
                    self.rfq_expected += 1;
                    self.batches.push_back((self.rfq_expected, Some(d.mask())));
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
                let text = std::str::from_utf8(query).map_err(|_| SessionError::client("statement is not UTF-8"))?;
                let (grant, sql) = split_grant_comment(text);
                let d = self.decide(sql, grant);
                if d.action() == Action::Allow {
                    if grant.is_some() {
                        encode_parse(name, sql, &param_types, &mut out.to_server);
                    } else {
                        out.to_server.extend_from_slice(raw);
                    }
                    self.statements.insert(
                        name.to_vec(),
                        Prepared {
                            mask: d.mask(),
                            granted: grant.is_some() || d.granted(),
                        },
                    );
                    self.batch_mask(d.mask());
                    self.batch_forwarded = true;
                } else {
                    self.statements.remove(name);
                    self.batch_failed = Some(error_response(&d));
                }
            }
            Frontend::Bind { portal, statement, .. } => {
                let p = self.statements.get(statement).copied();
                if let Some(p) = p {
                    if p.granted {
                        // A grant buys one execution: the statement cannot be bound again.
                        self.statements.remove(statement);
                    }
                    self.portals.insert(portal.to_vec(), p.mask);
                }
                self.forward_known(p.map(|p| p.mask), "statement", statement, raw, out);
            }
            Frontend::Execute { portal, .. } => {
                let known = self.portals.get(portal).copied();
                self.forward_known(known, "portal", portal, raw, out);
            }
            Frontend::Describe { kind, name } => {
                let (known, what) = match kind {
                    b'S' => (self.statements.get(name).map(|p| p.mask), "statement"),
                    b'P' => (self.portals.get(name).copied(), "portal"),
                    _ => return Err(SessionError::client("Describe of neither a statement nor a portal")),
                };
                self.forward_known(known, what, name, raw, out);
            }
            Frontend::Close { kind, name } => {
                match kind {
                    b'S' => self.statements.remove(name).map(|_| ()),
                    b'P' => self.portals.remove(name).map(|_| ()),
                    _ => return Err(SessionError::client("Close of neither a statement nor a portal")),
                };
                out.to_server.extend_from_slice(raw);
                self.batch_forwarded = true;
            }
            Frontend::Flush => out.to_server.extend_from_slice(raw),
            Frontend::Sync => {
                let mask = self.open_mask.take();
                match self.batch_failed.take() {
                    Some(err) if self.batch_forwarded => {
                        // The server answers the forwarded part; the error goes just before its
                        // ReadyForQuery.
                        out.to_server.extend_from_slice(raw);
                        self.rfq_expected += 1;
                        self.batches.push_back((self.rfq_expected, mask));
                        self.injections.push_back((self.rfq_expected, true, Inject::Bytes(err)));
                    }
                    Some(err) => {
                        self.inject_after(Inject::Bytes(err), out);
                        self.inject_after(Inject::Ready, out);
                    }
                    None => {
                        out.to_server.extend_from_slice(raw);
                        self.rfq_expected += 1;
                        self.batches.push_back((self.rfq_expected, mask));
                    }
                }
                self.batch_forwarded = false;
            }
            Frontend::Terminate => {
                out.to_server.extend_from_slice(raw);
                self.phase = Phase::Ended;
            }
            Frontend::CopyData(_) | Frontend::CopyDone | Frontend::CopyFail(_) => {
                return Err(SessionError::client("COPY data without a COPY FROM STDIN in progress"));
            }
            Frontend::Password(_) => {
                return Err(SessionError::client("a password message after authentication"));
            }
            _ => return Err(SessionError::client("a message type this session does not know")),
        }
        Ok(())
    }

    /// Forwards a message of the open batch that uses a statement or portal (`known`: its
    /// masking; `None` when this session did not see it created by an allowed message, and then
    /// the batch fails).
    fn forward_known(&mut self, known: Option<bool>, what: &str, name: &[u8], raw: &[u8], out: &mut Output) {
        match known {
            Some(mask) => {
                self.batch_mask(mask);
                out.to_server.extend_from_slice(raw);
                self.batch_forwarded = true;
            }
            None => self.batch_failed = Some(undecided_error(what, name)),
        }
    }

    /// Adds a statement's masking to the open extended batch: masked if any of its statements is.
    fn batch_mask(&mut self, mask: bool) {
        self.open_mask = Some(self.open_mask.unwrap_or(false) || mask);
    }

    fn decide(&mut self, sql: &str, grant: Option<&str>) -> Decision {
        // The ReadyForQuery that answers it: the next one asked for (by this Query, or by the
        // Sync that ends this extended batch).
        let answered_by = self.rfq_expected + 1;
        self.sql.decide(&self.guard, sql, grant, Dialect::Postgres, answered_by)
    }

    /// Whether what the server sends now is masked: by the decision of the statement it
    /// answers, or the policy's setting between statements.
    fn mask_now(&self) -> bool {
        let n = self.rfq_seen + 1;
        let m = match self.batches.iter().find(|(k, _)| *k == n) {
            Some((_, m)) => *m,
            None if n == self.rfq_expected + 1 => self.open_mask,
            None => None,
        };
        m.unwrap_or_else(|| self.guard.policy.load().masking())
    }

    /// Whether asynchronous messages (notifications, parameter changes, notices between
    /// statements) are masked: when the policy masks, or the statement running now does.
    fn mask_async(&self) -> bool {
        self.guard.policy.load().masking() || self.mask_now()
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

    /// Whether the session answers the server's authentication message `code` itself: with a
    /// vault, a password request it can answer (cleartext, MD5, SASL) and what follows it.
    fn brokering(&self, code: u32) -> bool {
        self.guard.vault.is_some() && (matches!(code, 3 | 5 | 10) || self.login.is_some())
    }

    /// One step of logging in for the client: the server asked for a password (the client is
    /// asked for a cleartext one instead), continued SCRAM, or said AuthenticationOk.
    fn login_step(&mut self, code: u32, data: &[u8], raw: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let fail =
            |e: crate::broker::login::LoginError| SessionError::server(format!("logging in for the client: {e}"));
        match (self.login.take(), code) {
            (None, 3 | 5 | 10) => {
                self.login = Some(Login::Asked {
                    code,
                    data: data.to_vec(),
                });
                self.phase = Phase::Auth { asked: true, ok: false };
                // AuthenticationCleartextPassword: the placeholder (or the client's own
                // password) comes to the session, which answers the server.
                pg::encode_message(b'R', &3u32.to_be_bytes(), &mut out.to_client);
                Ok(())
            }
            (Some(Login::ScramFirst(mut c)), 11) => {
                let last = c.client_final(data).map_err(fail)?;
                pg::encode_message(b'p', last.as_bytes(), &mut out.to_server);
                self.login = Some(Login::ScramFinal(c));
                Ok(())
            }
            (Some(Login::ScramFinal(c)), 12) => {
                c.verify_server_final(data).map_err(fail)?;
                self.login = Some(Login::Answered);
                Ok(())
            }
            (Some(Login::Answered), 0) => {
                self.phase = Phase::Auth { asked: false, ok: true };
                out.to_client.extend_from_slice(raw);
                Ok(())
            }
            (_, code) => Err(SessionError::server(format!(
                "authentication message {code} out of order while logging in for the client"
            ))),
        }
    }

    /// The client's cleartext password, in answer to the request [`login_step`] sent: its
    /// placeholders swapped for the credentials they name (where the policy lets them go to
    /// this target), then the server's own request answered with it.
    fn log_in(&mut self, body: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let Some(Login::Asked { code, data }) = self.login.take() else {
            return Err(SessionError::client("a password the session did not ask for"));
        };
        let given = body.strip_suffix(b"\0").unwrap_or(body);
        let target = self.sql.target.as_ref().map_or("", |t| t.name.as_str());
        let text = String::from_utf8_lossy(given);
        let password: Vec<u8> = match self.guard.substitute(Protocol::Sql, target, &text) {
            // Nothing to swap: the client's own password, as it sent it.
            Ok(Cow::Borrowed(_)) => given.to_vec(),
            Ok(Cow::Owned(p)) => p.into_bytes(),
            Err(refused) => {
                let d = self.guard.refuse_login(
                    self.sql.identity.as_ref(),
                    self.sql.target.as_ref(),
                    Dialect::Postgres,
                    &refused,
                );
                let message = refusal_message(&d);
                pg::encode_error(
                    &[
                        (b'S', b"FATAL"),
                        (b'V', b"FATAL"),
                        (b'C', b"28P01"),
                        (b'M', message.as_bytes()),
                    ],
                    false,
                    &mut out.to_client,
                );
                self.phase = Phase::Ended;
                return Ok(());
            }
        };
        let mut answer = Vec::new();
        match code {
            3 => answer.extend_from_slice(&password),
            5 => {
                let salt = data
                    .get(..4)
                    .ok_or_else(|| SessionError::server("an MD5 request without its salt"))?;
                answer.extend_from_slice(md5_password(&self.user, &password, salt).as_bytes());
            }
            10 => {
                // SASL: the mechanisms offered, each NUL-terminated.
                let offered = data.split(|&b| b == 0).any(|m| m == SCRAM_SHA_256.as_bytes());
                if !offered {
                    return Err(SessionError::server(
                        "the server offers no SASL mechanism the session can log in with (SCRAM-SHA-256 without channel binding)",
                    ));
                }
                let c = ScramClient::new(&password).map_err(|e| SessionError::server(e.to_string()))?;
                let first = c.client_first();
                answer.extend_from_slice(SCRAM_SHA_256.as_bytes());
                answer.push(0);
                answer.extend_from_slice(&(first.len() as u32).to_be_bytes());
                answer.extend_from_slice(first.as_bytes());
                pg::encode_message(b'p', &answer, &mut out.to_server);
                self.login = Some(Login::ScramFirst(Box::new(c)));
                return Ok(());
            }
            // Only the requests `login_step` asks the client about reach here.
            other => {
                return Err(SessionError::server(format!(
                    "authentication request {other} is not one the session answers"
                )));
            }
        }
        answer.push(0);
        pg::encode_message(b'p', &answer, &mut out.to_server);
        self.login = Some(Login::Answered);
        Ok(())
    }

    /// Handles one server message; returns how many values it masked. Every message type is
    /// decided here, by phase: passed (types that carry no text), masked, or refused.
    fn backend(&mut self, m: Backend<'_>, raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        let det = self.guard.current_detector();
        // Settings that change how SQL is read, whenever the server reports them (at startup:
        // from the startup packet's `options` too; later: SET, set_config, function SET clauses).
        if let Backend::ParameterStatus { name, value } = &m {
            self.sql.parameter(name, value);
        }
        match self.phase {
            Phase::Startup => return Err(SessionError::server("data before the client's startup packet")),
            Phase::Auth { ok, .. } => {
                return match m {
                    Backend::Authentication { code, data } if !ok && self.brokering(code) => {
                        self.login_step(code, data, raw, out)?;
                        Ok(0)
                    }
                    Backend::Authentication { code, .. } if !ok => {
                        let asked = match code {
                            0 => {
                                self.phase = Phase::Auth { asked: false, ok: true };
                                false
                            }
                            // Cleartext, MD5, GSS, GSS continue, SSPI, SASL, SASL continue.
                            3 | 5 | 7 | 8 | 9 | 10 | 11 => true,
                            // SASL final.
                            12 => false,
                            other => {
                                return Err(SessionError::server(format!(
                                    "authentication request {other} is not supported"
                                )));
                            }
                        };
                        if code != 0 {
                            self.phase = Phase::Auth { asked, ok: false };
                        }
                        out.to_client.extend_from_slice(raw);
                        Ok(0)
                    }
                    Backend::NegotiateProtocolVersion(_) if !ok => {
                        out.to_client.extend_from_slice(raw);
                        Ok(0)
                    }
                    Backend::BackendKeyData { .. } if ok => {
                        out.to_client.extend_from_slice(raw);
                        Ok(0)
                    }
                    Backend::ParameterStatus { name, value } => Ok(parameter_status(&det, name, value, raw, out)),
                    Backend::ErrorResponse(f) | Backend::NoticeResponse(f) => {
                        Ok(masked_fields(&det, &f, raw[0] == b'N', true, raw, out))
                    }
                    Backend::ReadyForQuery { status } if ok => {
                        self.tx = status;
                        self.rfq_seen += 1;
                        self.phase = Phase::Running;
                        out.to_client.extend_from_slice(raw);
                        Ok(0)
                    }
                    _ => Err(SessionError::server("an unexpected message during authentication")),
                };
            }
            Phase::Running | Phase::Ended => {}
        }
        if self.copy_out.is_some() {
            match m {
                Backend::CopyData(data) => return self.copy_data(&det, data, raw, out),
                Backend::CopyDone => {
                    self.end_copy_out(out)?;
                    out.to_client.extend_from_slice(raw);
                    return Ok(0);
                }
                Backend::ErrorResponse(_) | Backend::NoticeResponse(_) | Backend::ParameterStatus { .. } => {
                    if matches!(m, Backend::ErrorResponse(_)) {
                        self.end_copy_out(out)?;
                    }
                }
                Backend::NotificationResponse { .. } => {}
                _ => return Err(SessionError::server("an unexpected message during COPY TO STDOUT")),
            }
        }
        let mask = self.mask_now();
        Ok(match m {
            Backend::ReadyForQuery { status } => {
                self.tx = status;
                let n = self.rfq_seen + 1;
                if n > self.rfq_expected {
                    return Err(SessionError::server("a ReadyForQuery nothing asked for"));
                }
                while self.injections.front().is_some_and(|(k, before, _)| *before && *k == n) {
                    if let Some((_, _, inj)) = self.injections.pop_front() {
                        self.emit(inj, out);
                    }
                }
                out.to_client.extend_from_slice(raw);
                self.rfq_seen = n;
                self.sql.answered(n);
                while self
                    .injections
                    .front()
                    .is_some_and(|(k, before, _)| !*before && *k <= n)
                {
                    if let Some((_, _, inj)) = self.injections.pop_front() {
                        self.emit(inj, out);
                    }
                }
                while self.batches.front().is_some_and(|(k, _)| *k <= n) {
                    self.batches.pop_front();
                }
                self.credential_columns.clear();
                self.copy_in = false;
                0
            }
            Backend::RowDescription(cols) => {
                self.credential_columns = cols.iter().map(|c| credential_column(c.name)).collect();
                if !mask {
                    out.to_client.extend_from_slice(raw);
                    return Ok(0);
                }
                let names: Vec<Cow<'_, [u8]>> = cols.iter().map(|c| det.redact(c.name)).collect();
                let changed = names.iter().filter(|n| matches!(n, Cow::Owned(_))).count();
                if changed == 0 {
                    out.to_client.extend_from_slice(raw);
                } else {
                    let masked: Vec<pg::Column<'_>> = cols
                        .iter()
                        .zip(&names)
                        .map(|(c, n)| pg::Column { name: n, ..c.clone() })
                        .collect();
                    pg::encode_row_description(&masked, &mut out.to_client);
                }
                changed
            }
            Backend::DataRow(row) if mask => {
                let values = row.to_vec();
                let cred = if self.credential_columns.len() == values.len() {
                    &self.credential_columns[..]
                } else {
                    &[]
                };
                forward_masked(&det, &values, cred, raw, &mut out.to_client, |masked, to| {
                    pg::encode_data_row_iter(masked.iter().map(|v| v.as_deref()), to)
                })
            }
            Backend::DataRow(_) => {
                out.to_client.extend_from_slice(raw);
                0
            }
            Backend::ErrorResponse(f) | Backend::NoticeResponse(f) => {
                let async_mask = self.mask_async();
                masked_fields(&det, &f, raw[0] == b'N', mask || async_mask, raw, out)
            }
            Backend::NotificationResponse { pid, channel, payload } => {
                if !self.mask_async() {
                    out.to_client.extend_from_slice(raw);
                    return Ok(0);
                }
                let fields = [Some(channel), Some(payload)];
                forward_masked(&det, &fields, &[], raw, &mut out.to_client, |f, to| {
                    let b = |i: usize| f[i].as_deref().unwrap_or_default();
                    pg::encode_notification(pid, b(0), b(1), to)
                })
            }
            Backend::ParameterStatus { name, value } => {
                if self.mask_async() {
                    parameter_status(&det, name, value, raw, out)
                } else {
                    out.to_client.extend_from_slice(raw);
                    0
                }
            }
            Backend::CommandComplete(tag) => {
                self.credential_columns.clear();
                if mask && let Cow::Owned(t) = det.redact(tag) {
                    pg::encode_command_complete(&t, &mut out.to_client);
                    return Ok(1);
                }
                out.to_client.extend_from_slice(raw);
                0
            }
            Backend::CopyOutResponse(body) => {
                self.copy_out = Some(match (mask, body.first()) {
                    (false, _) => CopyOut::Plain,
                    (true, Some(0)) => CopyOut::Text(Box::new(CopyText::new(&det))),
                    (true, Some(1)) => CopyOut::Binary(BinaryCopy::default()),
                    _ => return Err(SessionError::server("COPY TO STDOUT in an unknown format")),
                });
                out.to_client.extend_from_slice(raw);
                0
            }
            Backend::CopyInResponse(_) => {
                self.copy_in = true;
                out.to_client.extend_from_slice(raw);
                0
            }
            // No text in these: passed as they are.
            Backend::ParseComplete
            | Backend::BindComplete
            | Backend::CloseComplete
            | Backend::NoData
            | Backend::ParameterDescription(_)
            | Backend::EmptyQueryResponse
            | Backend::PortalSuspended => {
                out.to_client.extend_from_slice(raw);
                0
            }
            Backend::CopyData(_) | Backend::CopyDone => {
                return Err(SessionError::server("COPY data without a COPY TO STDOUT in progress"));
            }
            Backend::Authentication { .. } => {
                return Err(SessionError::server("an authentication message after authentication"));
            }
            _ => return Err(SessionError::server("a message type this session does not expect now")),
        })
    }

    fn copy_data(&mut self, det: &Detector, data: &[u8], raw: &[u8], out: &mut Output) -> Result<usize, SessionError> {
        self.scratch.clear();
        let changed = match self.copy_out.as_mut() {
            Some(CopyOut::Plain) | None => {
                out.to_client.extend_from_slice(raw);
                return Ok(0);
            }
            Some(CopyOut::Text(t)) => t.feed(det, data, &mut self.scratch)?,
            Some(CopyOut::Binary(b)) => b.feed(det, data, &mut self.scratch)?,
        };
        if !self.scratch.is_empty() {
            pg::encode_copy_data(&self.scratch, &mut out.to_client);
        }
        Ok(changed)
    }

    fn end_copy_out(&mut self, out: &mut Output) -> Result<(), SessionError> {
        self.scratch.clear();
        match self.copy_out.take() {
            Some(CopyOut::Text(mut t)) => {
                t.finish(&self.guard.current_detector(), &mut self.scratch);
            }
            Some(CopyOut::Binary(b)) if !b.buf.is_empty() => {
                return Err(SessionError::server("binary COPY data ended inside a tuple"));
            }
            _ => {}
        }
        if !self.scratch.is_empty() {
            pg::encode_copy_data(&self.scratch, &mut out.to_client);
        }
        Ok(())
    }
}

/// The longest text COPY line held while it is incomplete.
const MAX_COPY_LINE: usize = 16 * 1024 * 1024;

/// Text (or CSV) COPY data. The stream redactor sees it as sent (a secret cut across CopyData
/// messages, a key block across lines); then each complete line is read again with COPY's
/// escapes decoded, so `\t` or `\n` before a value does not glue a letter to it.
struct CopyText {
    stream: StreamRedactor<'static>,
    line: Vec<u8>,
    view: Vec<u8>,
    staged: Vec<u8>,
}

impl CopyText {
    fn new(det: &Arc<Detector>) -> CopyText {
        CopyText {
            stream: det.shared_stream_redactor(),
            line: Vec::new(),
            view: Vec::new(),
            staged: Vec::new(),
        }
    }

    /// Appends the masked, complete lines of what is known so far to `out`; returns 1 when
    /// anything was masked.
    fn feed(&mut self, det: &Detector, data: &[u8], out: &mut Vec<u8>) -> Result<usize, SessionError> {
        self.staged.clear();
        self.stream.feed(data, &mut self.staged);
        let mut changed = usize::from(memchr::memmem::find(&self.staged, b"[REDACTED:").is_some());
        let staged = std::mem::take(&mut self.staged);
        changed += self.lines(det, &staged, out);
        self.staged = staged;
        if self.line.len() > MAX_COPY_LINE {
            return Err(SessionError::server("a COPY line over 16 MiB"));
        }
        Ok(changed.min(1))
    }

    fn finish(&mut self, det: &Detector, out: &mut Vec<u8>) {
        let mut rest = Vec::new();
        self.stream.finish(&mut rest);
        self.lines(det, &rest, out);
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.one_line(det, &line, out);
        }
    }

    fn lines(&mut self, det: &Detector, data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut changed = 0;
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(nl + 1);
            if self.line.is_empty() {
                changed += self.one_line(det, head, out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                changed += self.one_line(det, &line, out);
            }
            rest = tail;
        }
        self.line.extend_from_slice(rest);
        changed
    }

    fn one_line(&mut self, det: &Detector, line: &[u8], out: &mut Vec<u8>) -> usize {
        if memchr::memchr(b'\\', line).is_none() {
            out.extend_from_slice(line);
            return 0;
        }
        // Same length: `\t` reads as " \t" (a space, then the character), `\\` as is.
        self.view.clear();
        self.view.extend_from_slice(line);
        let mut i = 0;
        while i + 1 < self.view.len() {
            if self.view[i] == b'\\' {
                let c = match self.view[i + 1] {
                    b't' => Some(b'\t'),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b'b' | b'f' | b'v' => Some(b' '),
                    _ => None,
                };
                if let Some(c) = c {
                    self.view[i] = b' ';
                    self.view[i + 1] = c;
                }
                i += 2;
            } else {
                i += 1;
            }
        }
        let view = std::mem::take(&mut self.view);
        let masked = det.redact_view(line, &view);
        let changed = usize::from(matches!(masked, Cow::Owned(_)));
        out.extend_from_slice(&masked);
        self.view = view;
        changed
    }
}

/// The largest binary COPY tuple held while it is incomplete.
const MAX_COPY_TUPLE: usize = 64 * 1024 * 1024;

/// Binary COPY data (`PGCOPY\n\xff\r\n\0`, flags, header extension, then tuples of
/// length-prefixed fields, then -1), decoded however the server cuts it into CopyData messages,
/// so that each field is masked on its own: the length bytes never join a secret's neighbours.
#[derive(Debug, Default)]
struct BinaryCopy {
    buf: Vec<u8>,
    header: bool,
    trailer: bool,
}

impl BinaryCopy {
    /// Appends the masked form of every complete part of `data` to `out`; returns how many
    /// fields changed.
    fn feed(&mut self, det: &Detector, data: &[u8], out: &mut Vec<u8>) -> Result<usize, SessionError> {
        const SIG: &[u8] = b"PGCOPY\n\xff\r\n\0";
        let bad = |why: &str| SessionError::server(format!("binary COPY data: {why}"));
        if self.trailer {
            return Err(bad("data after the trailer"));
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let mut changed = 0;
        if !self.header {
            if self.buf.len() < SIG.len() + 8 {
                return Ok(0);
            }
            if &self.buf[..SIG.len()] != SIG {
                return Err(bad("no signature"));
            }
            let ext = u32::from_be_bytes(read4(&self.buf, SIG.len() + 4)) as usize;
            if ext > MAX_COPY_TUPLE {
                return Err(bad("header extension too long"));
            }
            let end = SIG.len() + 8 + ext;
            if self.buf.len() < end {
                return Ok(0);
            }
            out.extend_from_slice(&self.buf[..end]);
            self.header = true;
            at = end;
        }
        loop {
            let rest = &self.buf[at..];
            if rest.len() < 2 {
                break;
            }
            let n = i16::from_be_bytes([rest[0], rest[1]]);
            if n == -1 {
                out.extend_from_slice(&rest[..2]);
                at += 2;
                self.trailer = true;
                if at != self.buf.len() {
                    return Err(bad("data after the trailer"));
                }
                break;
            }
            if n < 0 {
                return Err(bad("negative field count"));
            }
            let mut p = 2;
            let mut fields = Vec::with_capacity(n as usize);
            let mut complete = true;
            for _ in 0..n {
                if rest.len() < p + 4 {
                    complete = false;
                    break;
                }
                let len = i32::from_be_bytes(read4(rest, p));
                p += 4;
                if len < -1 {
                    return Err(bad("negative field length"));
                }
                if len == -1 {
                    fields.push(None);
                    continue;
                }
                let len = len as usize;
                if rest.len() < p + len {
                    complete = false;
                    break;
                }
                fields.push(Some(&rest[p..p + len]));
                p += len;
            }
            if !complete {
                if rest.len() > MAX_COPY_TUPLE {
                    return Err(bad("tuple too long"));
                }
                break;
            }
            let (masked, c) = det.redact_fields(&fields, &[]);
            changed += c;
            out.extend_from_slice(&rest[..2]);
            for f in &masked {
                match f {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
            at += p;
        }
        self.buf.drain(..at);
        Ok(changed)
    }
}

fn read4(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// A ParameterStatus with its name and value masked.
fn parameter_status(det: &Detector, name: &[u8], value: &[u8], raw: &[u8], out: &mut Output) -> usize {
    forward_masked(
        det,
        &[Some(name), Some(value)],
        &[],
        raw,
        &mut out.to_client,
        |f, to| {
            let b = |i: usize| f[i].as_deref().unwrap_or_default();
            pg::encode_parameter_status(b(0), b(1), to)
        },
    )
}

/// An ErrorResponse or NoticeResponse with every field masked (when `mask`).
fn masked_fields(
    det: &Detector,
    fields: &[(u8, &[u8])],
    notice: bool,
    mask: bool,
    raw: &[u8],
    out: &mut Output,
) -> usize {
    if !mask {
        out.to_client.extend_from_slice(raw);
        return 0;
    }
    let values: Vec<Option<&[u8]>> = fields.iter().map(|(_, v)| Some(*v)).collect();
    forward_masked(det, &values, &[], raw, &mut out.to_client, |masked, to| {
        let f: Vec<(u8, &[u8])> = fields
            .iter()
            .zip(masked)
            .map(|((c, _), v)| (*c, v.as_deref().unwrap_or_default()))
            .collect();
        pg::encode_error(&f, notice, to)
    })
}

/// The error for a Bind, Execute or Describe naming a statement or portal this session did not
/// see created through an allowed message (one made by SQL `PREPARE` or `DECLARE`, or refused).
fn undecided_error(what: &str, name: &[u8]) -> Vec<u8> {
    let message = format!(
        "sluice: denied: {what} `{}` was not prepared through this session (its statement was never decided)",
        String::from_utf8_lossy(name)
    );
    let mut out = Vec::new();
    pg::encode_error(
        &[
            (b'S', b"ERROR"),
            (b'V', b"ERROR"),
            (b'C', b"42501"),
            (b'M', message.as_bytes()),
        ],
        false,
        &mut out,
    );
    out
}

/// `SET sluice.grant = 'TOKEN'` (or `TO`): the token.
fn set_grant(text: &str) -> Option<&str> {
    super::set_grant(text, "sluice.grant", &["=", "to"], &['\''])
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
    let detail = d.approval().and_then(|a| serde_json::to_string(a).ok());
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
