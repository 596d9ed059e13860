//! Protocol sessions: the enforcement point in the data path. A host (a proxy, an agent
//! framework, an MCP server) keeps one session per connection and feeds it the bytes of each
//! direction; the session returns the bytes to forward and the replies to send back, having
//! decided every command against the policy and masked every response.
//!
//! ```text
//!   client bytes ──▶ session.from_client ──▶ Output { to_server, to_client }
//!   server bytes ──▶ session.from_server ──▶ Output { to_server, to_client }
//! ```
//!
//! A [`Guard`] holds what all sessions share: the policy (swappable), the detector, the grant
//! verifier and the event hook. Errors ([`SessionError`]) mean the connection must be closed:
//! malformed or oversized input is never forwarded past the engine.
//!
//! An MCP session (stdio transport), end to end: a refused tool call, an allowed one, and the
//! server's answer masked on its way back.
//!
//! ```
//! use std::sync::Arc;
//!
//! use sluice_core::Detector;
//! use sluice_core::policy::{Engine, EngineHandle, Identity, Target};
//! use sluice_core::session::mcp::McpSession;
//! use sluice_core::session::{Guard, Output};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let detector = Detector::builder().known_value("db-password", "s3rv1ce-pw-Synthetic-42").build()?;
//! let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
//! let guard = Arc::new(Guard::new(policy, Arc::new(detector)));
//! let mut mcp = McpSession::new(guard, Identity::new("agent-7"), Target::new("files-mcp"));
//!
//! // Reading an SSH key is refused: nothing reaches the server, the client gets an error.
//! let mut out = Output::default();
//! let key = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_ed25519"}}}"#;
//! mcp.from_client(format!("{key}\n").as_bytes(), &mut out)?;
//! assert!(out.to_server.is_empty());
//! assert!(String::from_utf8_lossy(&out.to_client).contains("ssh-private-keys"));
//!
//! // Reading the README is allowed and forwarded as it was sent.
//! let mut out = Output::default();
//! let readme = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md"}}}"#;
//! mcp.from_client(format!("{readme}\n").as_bytes(), &mut out)?;
//! assert_eq!(out.to_server, format!("{readme}\n").as_bytes());
//!
//! // The answer carries the password the host holds: the client sees a placeholder.
//! let mut out = Output::default();
//! let answer = r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"DB_PASSWORD=s3rv1ce-pw-Synthetic-42"}]}}"#; // synthetic: sluice:allow
//! mcp.from_server(format!("{answer}\n").as_bytes(), &mut out)?;
//! let shown = String::from_utf8(out.to_client)?;
//! assert!(shown.contains("DB_PASSWORD=[REDACTED:db-password:") && !shown.contains("s3rv1ce"));
//! # Ok(()) }
//! ```

pub mod http;
pub mod mcp;
pub mod mysql;
pub mod postgres;
pub mod ssh;

use std::fmt;
use std::sync::Arc;

use crate::Detector;
use crate::policy::grant::GrantVerifier;
use crate::policy::{Action, Decision, EngineHandle, Identity, Lexing, Protocol, Request, Target};
use crate::record::{Recorder, Write};

/// Something a session did, for the recorder, logs and metrics.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A command was decided.
    Decision {
        /// Its protocol.
        protocol: Protocol,
        /// Who.
        identity: &'a Identity,
        /// Against what.
        target: &'a Target,
        /// The command as decided (SQL text, tool call, request line).
        command: &'a str,
        /// The decision.
        decision: &'a Decision,
    },
    /// Values in a response were masked.
    Masked {
        /// Its protocol.
        protocol: Protocol,
        /// How many values (or stream chunks) changed.
        count: usize,
    },
    /// Something notable that is not a decision (a tool list changed, a message refused).
    Notice {
        /// Its protocol.
        protocol: Protocol,
        /// What happened.
        message: &'a str,
    },
}

impl Event<'_> {
    /// The event as a JSON object: `event` (`decision`, `masked` or `notice`), `protocol`, and
    /// for decisions `user`, `target`, `command`, `decision`, `rule`, `reason`, `approval`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Event::Decision {
                protocol,
                identity,
                target,
                command,
                decision,
            } => serde_json::json!({
                "event": "decision", "protocol": protocol, "user": identity.user,
                "target": target.name, "command": command, "decision": decision.action(),
                "rule": decision.rule(), "reason": decision.reason(), "approval": decision.approval(),
            }),
            Event::Masked { protocol, count } => {
                serde_json::json!({"event": "masked", "protocol": protocol, "count": count})
            }
            Event::Notice { protocol, message } => {
                serde_json::json!({"event": "notice", "protocol": protocol, "message": message})
            }
        }
    }
}

/// Receives session events. Called on the data path: keep it quick.
pub trait Hook: Send + Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// What every session of a host shares.
pub struct Guard {
    /// The policy; swap it at any time.
    pub policy: Arc<EngineHandle>,
    /// The detector that masks responses (with the host's known values).
    pub detector: Arc<Detector>,
    /// Verifies grants presented on retry; without it, approvals cannot be redeemed.
    pub grants: Option<GrantVerifier>,
    /// Receives events.
    pub hook: Option<Arc<dyn Hook>>,
    /// Records the session (one recorder per session: see [`Guard::with_recorder`]).
    pub recorder: Option<Arc<Recorder>>,
    /// The credentials held for the agent: placeholders in allowed requests are swapped for
    /// them where the policy's `credentials` section lets each go ([`Guard::substitute`]).
    /// The detector should hold the same values as brokered values, so echoes come back as
    /// placeholders.
    pub vault: Option<Arc<dyn crate::broker::Vault>>,
    /// When set, the detector sessions mask with from now on ([`Guard::current_detector`]): a
    /// host whose vault rotates stores a detector holding the new values (and the old ones,
    /// whose echoes still must not get out) and open sessions use it for what they mask next.
    pub rotated: Option<Arc<arc_swap::ArcSwap<Detector>>>,
    /// Holds commands that need approval until a reviewer decides ([`Guard::decide`]); needs
    /// [`Guard::grants`] to redeem the grant. Without it, such commands are refused at once
    /// with their approval request (the client retries with a grant).
    pub hold: Option<Arc<dyn crate::policy::approvals::Hold>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy.load().name())
            .field("grants", &self.grants.is_some())
            .field("hook", &self.hook.is_some())
            .field("recorder", &self.recorder.is_some())
            .field("vault", &self.vault.is_some())
            .field("hold", &self.hold)
            .finish()
    }
}

impl Guard {
    /// A guard with `policy` and `detector`, no grants and no hook.
    pub fn new(policy: Arc<EngineHandle>, detector: Arc<Detector>) -> Guard {
        Guard {
            policy,
            detector,
            grants: None,
            hook: None,
            recorder: None,
            vault: None,
            rotated: None,
            hold: None,
        }
    }

    /// The detector to mask with now: the latest one stored in [`Guard::rotated`], else
    /// [`Guard::detector`].
    pub fn current_detector(&self) -> Arc<Detector> {
        match &self.rotated {
            Some(cell) => cell.load_full(),
            None => Arc::clone(&self.detector),
        }
    }

    /// A guard for one recorded session: this one's policy, detector, grants and hook, and
    /// `recorder`, which then receives every decision, masking count, notice, the output sent to
    /// the client and the error that ends the session. A recorder that fails stops new commands
    /// (they are refused) unless it was built with `fail_closed: false`.
    pub fn with_recorder(&self, recorder: Arc<Recorder>) -> Guard {
        Guard {
            policy: Arc::clone(&self.policy),
            detector: Arc::clone(&self.detector),
            grants: self.grants.clone(),
            hook: self.hook.clone(),
            recorder: Some(recorder),
            vault: self.vault.clone(),
            rotated: self.rotated.clone(),
            hold: self.hold.clone(),
        }
    }

    /// Swaps the placeholders in `text`, part of an allowed request to `target` (the HTTP host,
    /// the MCP server's target name), for the credentials they name, each only where the
    /// policy's `credentials` section lets it go; the names used are recorded, never the values.
    /// A placeholder that may not go there, or names nothing held, refuses the whole request.
    /// Without a vault, text is sent as it is.
    pub fn substitute<'t>(
        &self,
        protocol: Protocol,
        target: &str,
        text: &'t str,
    ) -> Result<std::borrow::Cow<'t, str>, crate::broker::Refused> {
        let Some(vault) = &self.vault else {
            return Ok(std::borrow::Cow::Borrowed(text));
        };
        if !text.contains(crate::broker::PREFIX) {
            return Ok(std::borrow::Cow::Borrowed(text));
        }
        let engine = self.policy.load();
        let out = crate::broker::substitute(text, &**vault, |name| engine.credential_allowed(name, target))?;
        self.substituted(protocol, target, &out.used);
        Ok(out.text)
    }

    /// Refuses a database login whose password names a credential that may not go to
    /// `target` (recorded like any refusal, the command being the login itself).
    pub(crate) fn refuse_login(
        &self,
        identity: Option<&Identity>,
        target: Option<&Target>,
        dialect: crate::policy::Dialect,
        refused: &crate::broker::Refused,
    ) -> Decision {
        let request = Request::Sql {
            text: "-- log in",
            dialect,
            lexing: Default::default(),
        };
        let nobody = Identity::new("");
        let nowhere = Target::new("");
        self.refuse(
            identity.unwrap_or(&nobody),
            target.unwrap_or(&nowhere),
            &request,
            "log in",
            refused.to_string(),
        )
    }

    /// [`Guard::substitute`] for bytes that need not be text (request bodies).
    pub fn substitute_bytes<'t>(
        &self,
        protocol: Protocol,
        target: &str,
        bytes: &'t [u8],
    ) -> Result<std::borrow::Cow<'t, [u8]>, crate::broker::Refused> {
        let Some(vault) = &self.vault else {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        };
        if memchr::memmem::find(bytes, crate::broker::PREFIX.as_bytes()).is_none() {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let engine = self.policy.load();
        let (out, used) =
            crate::broker::substitute_bytes(bytes, &**vault, |name| engine.credential_allowed(name, target))?;
        self.substituted(protocol, target, &used);
        Ok(out)
    }

    /// Records the credentials substituted for `target`, by name.
    fn substituted(&self, protocol: Protocol, target: &str, used: &[String]) {
        if !used.is_empty() {
            let message = format!("credentials substituted for {target}: {}", used.join(", "));
            self.emit(&Event::Notice {
                protocol,
                message: &message,
            });
        }
    }

    /// Decides on `request`, redeeming `grant` when one is presented, and reports the decision.
    /// A command that needs approval, presented without a grant, is held when the guard has a
    /// [`hold`](Guard::hold): the request goes to the approval service (a notice records it),
    /// the call blocks until reviewers decide or the hold times out, and an approval's grant is
    /// redeemed at once (so the command runs, once). A denial or timeout leaves the decision
    /// as it was, with why.
    pub fn decide(
        &self,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        command: &str,
        grant: Option<&str>,
    ) -> Decision {
        self.decide_waiting(identity, target, request, command, grant, &mut |_| {})
    }

    /// [`Guard::decide`], calling `waiting` with the time waited so far every few seconds
    /// while the command is held for approval.
    pub fn decide_waiting(
        &self,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        command: &str,
        grant: Option<&str>,
        waiting: &mut dyn FnMut(std::time::Duration),
    ) -> Decision {
        let engine = self.policy.load();
        let d = match (&self.grants, grant) {
            (Some(v), Some(g)) => engine.decide_with_grant(identity, target, request, Some(g), v),
            _ => {
                let mut d = engine.decide(identity, target, request);
                if grant.is_some() && self.grants.is_none() {
                    d.note("a grant was presented but this host verifies none");
                }
                d
            }
        };
        let d = match (&self.hold, &self.grants) {
            (Some(hold), Some(verifier)) if grant.is_none() && d.action() == Action::RequireApproval => {
                self.held(&**hold, verifier, request.protocol(), d, waiting)
            }
            _ => d,
        };
        self.report(identity, target, request, command, d)
    }

    /// Holds decision `d`'s approval request on `hold` and applies the outcome.
    fn held(
        &self,
        hold: &dyn crate::policy::approvals::Hold,
        verifier: &GrantVerifier,
        protocol: Protocol,
        mut d: Decision,
        waiting: &mut dyn FnMut(std::time::Duration),
    ) -> Decision {
        use crate::policy::approvals::Outcome;
        let Some(request) = d.approval().cloned() else {
            return d;
        };
        // A hold that does not wait says which request in the decision (a repeat reuses the first).
        if !hold.timeout().is_zero() {
            let message = format!(
                "approval {} requested from reviewers; held up to {}s",
                request.id,
                hold.timeout().as_secs()
            );
            self.emit(&Event::Notice {
                protocol,
                message: &message,
            });
        }
        match hold.hold(&request, waiting) {
            Outcome::Approved { grant } => d.redeem(&grant, verifier),
            Outcome::Denied { by, comment } if comment.is_empty() => d.note(&format!("denied by {by}")),
            Outcome::Denied { by, comment } => d.note(&format!("denied by {by}: {comment}")),
            Outcome::TimedOut => d.note(&format!("not approved within {}s", hold.timeout().as_secs())),
            Outcome::Failed(e) => d.note(&format!("approval service: {e}")),
            Outcome::Pending(first) => {
                d.note(&format!(
                    "approval {} is pending with reviewers: repeat this once it is approved",
                    first.id
                ));
                d.set_pending(first);
            }
        }
        d
    }

    /// Refuses `request` for a reason of the session's (not the policy's), and reports it.
    pub fn refuse(
        &self,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        command: &str,
        reason: String,
    ) -> Decision {
        let d = Decision::refused(reason);
        self.report(identity, target, request, command, d)
    }

    /// Reports a decision on `request` to the hook, and returns it.
    fn report(
        &self,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        command: &str,
        mut d: Decision,
    ) -> Decision {
        if let Some(r) = &self.recorder {
            r.decision(request, &identity.user, &target.name, command, &d);
            // A command that cannot be recorded (this one's record failed, or an earlier one
            // did) does not run.
            if r.fail_closed()
                && d.action() != Action::Deny
                && let Some(why) = r.failure()
            {
                d = Decision::refused(format!("{why}; commands are refused until it is fixed"));
            }
        }
        self.emit(&Event::Decision {
            protocol: request.protocol(),
            identity,
            target,
            command,
            decision: &d,
        });
        d
    }

    /// Reports an event to the hook (and masking counts and notices to the recorder).
    pub fn emit(&self, e: &Event<'_>) {
        if let Some(r) = &self.recorder {
            match *e {
                Event::Masked { protocol, count } => r.masked(protocol.as_str(), count),
                Event::Notice { protocol, message } => r.notice(protocol.as_str(), message),
                Event::Decision { .. } => {}
            }
        }
        if let Some(h) = &self.hook {
            h.event(e);
        }
    }

    /// Whether a recorder is attached.
    pub(crate) fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Before a session handles input: its records are written together, at [`handled`].
    pub(crate) fn handling(&self) {
        if let Some(r) = &self.recorder {
            r.begin_batch();
        }
    }

    /// After a session handled input into `out` (which held `mark` before): records what it
    /// sent to the client and the error that ends it (see [`Guard::handled_bytes`]).
    pub(crate) fn handled(
        &self,
        protocol: Protocol,
        out: &Output,
        mark: Mark,
        result: Result<(), SessionError>,
    ) -> Result<(), SessionError> {
        let sent = out.to_client.get(mark.client..).unwrap_or_default();
        self.handled_bytes(protocol, sent, out.to_server.len() > mark.server, result)
    }

    /// After a session handled input: records what it sent to the client (`sent`, already
    /// masked) and the error that ends it. When the input forwards anything to the server
    /// (`forwards`), every record so far is written out before the host forwards it; when
    /// the recorder cannot write them and fails closed, the session ends here (the host
    /// forwards nothing of this input). An input that only answers the client leaves its
    /// records buffered until the next input that forwards, a checkpoint, a tick or the
    /// close: one write per round trip, and nothing reaches the server unrecorded.
    pub(crate) fn handled_bytes(
        &self,
        protocol: Protocol,
        sent: &[u8],
        forwards: bool,
        result: Result<(), SessionError>,
    ) -> Result<(), SessionError> {
        let Some(r) = &self.recorder else {
            return result;
        };
        r.output(protocol.as_str(), sent);
        if let Err(e) = &result {
            r.error(protocol.as_str(), e.side().as_str(), e.reason());
        }
        let write = if forwards { Write::Now } else { Write::Later };
        match (r.end_batch(write), result) {
            (Err(e), Ok(())) if r.fail_closed() => Err(SessionError::client(format!(
                "{e}: the session is closed, unrecorded output is not forwarded"
            ))),
            // Written; or the host chose to go on unrecorded (`fail_closed: false`); or the
            // session ends with its own error anyway.
            (Ok(()) | Err(_), result) => result,
        }
    }
}

/// How much of an [`Output`] was there before a session handled an input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    client: usize,
    server: usize,
}

/// Bytes a session produced for each direction.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Forward to the server.
    pub to_server: Vec<u8>,
    /// Send to the client.
    pub to_client: Vec<u8>,
}

impl Output {
    /// Where each direction ends now: what a session adds from here is its own.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            client: self.to_client.len(),
            server: self.to_server.len(),
        }
    }

    /// Empties both directions (keeping their capacity).
    pub fn clear(&mut self) {
        self.to_server.clear();
        self.to_client.clear();
    }
}

/// Why a session must end; the host closes the connection and logs the reason. When a parser
/// or decoder found the problem, its error is the [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct SessionError {
    side: Side,
    reason: String,
    source: Option<crate::error::Source>,
}

/// Which side of a session sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// The agent (the client of the proxied protocol).
    Client,
    /// The server the agent talks to.
    Server,
}

impl Side {
    /// `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closing: bad input from the {}: {}", self.side, self.reason)
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        crate::error::source_of(&self.source)
    }
}

impl PartialEq for SessionError {
    fn eq(&self, other: &SessionError) -> bool {
        self.side == other.side && self.reason == other.reason
    }
}

impl Eq for SessionError {}

impl SessionError {
    /// Bad input from `side`.
    pub fn new(side: Side, reason: impl Into<String>) -> SessionError {
        SessionError {
            side,
            reason: reason.into(),
            source: None,
        }
    }

    /// Bad input from the client.
    pub fn client(reason: impl Into<String>) -> SessionError {
        SessionError::new(Side::Client, reason)
    }

    /// Bad input from the server.
    pub fn server(reason: impl Into<String>) -> SessionError {
        SessionError::new(Side::Server, reason)
    }

    /// Input from `side` that `e` (a parser's or decoder's error) rejected.
    pub(crate) fn rejected(side: Side, e: impl std::error::Error + Send + Sync + 'static) -> SessionError {
        SessionError {
            side,
            reason: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }

    /// Which side sent the offending bytes.
    pub fn side(&self) -> Side {
        self.side
    }

    /// What was wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Splits whole messages off the front of what `buf` held from before followed by `data`:
/// `step` handles one message at the front of its argument and returns how many bytes it used,
/// or `None` when the message is not complete yet. The incomplete tail is kept in `buf` for the
/// next call. Nothing is copied when `buf` was empty and `data` holds whole messages.
fn frames(
    buf: &mut Vec<u8>,
    data: &[u8],
    mut step: impl FnMut(&[u8]) -> Result<Option<usize>, SessionError>,
) -> Result<(), SessionError> {
    let mut held = std::mem::take(buf);
    let buffered = !held.is_empty();
    if buffered {
        held.extend_from_slice(data);
    }
    let input: &[u8] = if buffered { &held } else { data };
    let mut at = 0;
    let r = loop {
        if at >= input.len() {
            break Ok(());
        }
        match step(&input[at..]) {
            Ok(Some(used)) => at += used,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    if buffered {
        held.drain(..at);
    } else {
        held.extend_from_slice(&data[at..]);
    }
    *buf = held;
    r
}

/// What a refusal is, in the words every session uses.
fn refusal_verb(d: &Decision) -> &'static str {
    if d.action() == Action::RequireApproval {
        "approval required"
    } else {
        "denied"
    }
}

/// A refusal for SQL clients, which show one line: what happened, which request to approve,
/// and why.
fn refusal_message(d: &Decision) -> String {
    match &d.approval() {
        Some(a) => format!("sluice: {} (request {}): {}", refusal_verb(d), a.id, d.reason()),
        None => format!("sluice: {}: {}", refusal_verb(d), d.reason()),
    }
}

/// What the SQL sessions share: the identity and target (from the host or the handshake) and a
/// grant given with a `SET` statement for the next statement.
#[derive(Debug, Default)]
struct SqlState {
    identity: Option<Identity>,
    target: Option<Target>,
    pending_grant: Option<String>,
    /// The lexing settings the server reported (PostgreSQL `ParameterStatus`).
    lexing: Lexing,
    /// A client encoding other than UTF-8 and plain ASCII: text with other bytes is not read.
    foreign_encoding: Option<String>,
    /// A statement that changes lexing settings (or one not understood) was forwarded: until
    /// the server has answered it (PostgreSQL: this many `ReadyForQuery` seen), statements would
    /// be read under settings not yet known, and are refused.
    settle_at: Option<u64>,
    /// Recently allowed statements and their decisions (see [`SqlState::decide`]).
    allowed: Vec<Cached>,
}

/// An allowed statement's decision, valid for exactly this text, read under these lexing
/// settings, for this identity and target, by this policy (the engine itself is held, so a
/// swapped policy never matches).
#[derive(Debug)]
struct Cached {
    engine: Arc<crate::policy::Engine>,
    lexing: Lexing,
    identity: Identity,
    target: Target,
    sql: String,
    decision: Decision,
}

/// How many allowed statements a SQL session remembers.
const CACHED: usize = 16;

impl SqlState {
    /// Decides on one statement, with a grant from its comment or from an earlier `SET`.
    /// `answered_by`: the number of the server reply that will answer it (to hold later
    /// statements until then when it changes lexing settings).
    fn decide(
        &mut self,
        guard: &Guard,
        sql: &str,
        grant: Option<&str>,
        dialect: crate::policy::Dialect,
        answered_by: u64,
    ) -> Decision {
        let pending = self.pending_grant.take();
        let grant = grant.or(pending.as_deref());
        let identity = self.identity.get_or_insert_with(|| Identity::new(""));
        let target = self.target.get_or_insert_with(|| Target::new(""));
        let request = Request::Sql {
            text: sql,
            dialect,
            lexing: self.lexing,
        };
        let refuse = if self.settle_at.is_some() {
            Some("an earlier statement changes how SQL is read (or was not fully understood) and the server has not answered it yet; send this one after that answer".to_string())
        } else {
            self.foreign_encoding.as_ref().filter(|_| !sql.is_ascii()).map(|e| {
                format!("the session's client_encoding is {e}: only UTF8 text (or plain ASCII) is read; set client_encoding to UTF8")
            })
        };
        if let Some(reason) = refuse {
            return guard.refuse(identity, target, &request, sql, reason);
        }
        // A statement sent again (prepared per execution by pgbench, drivers and ORMs) is not
        // analysed again: deciding is a function of the policy, identity, target, text and
        // lexing settings alone, so an allow for exactly these is reused (and reported again).
        let engine = guard.policy.load();
        if grant.is_none()
            && let Some(c) = self.allowed.iter().find(|c| {
                c.sql == sql
                    && c.lexing == self.lexing
                    && Arc::ptr_eq(&c.engine, &engine)
                    && c.identity == *identity
                    && c.target == *target
            })
        {
            return guard.report(identity, target, &request, sql, c.decision.clone());
        }
        let d = guard.decide(identity, target, &request, sql, grant);
        if d.action() == Action::Allow && (d.changes_lexing() || d.uncertain()) {
            self.settle_at = Some(answered_by);
        }
        // Only a plain allow is kept: not one a grant bought (single use), nor one that
        // changes or doubts how SQL is read, nor any refusal (approvals carry new ids).
        if grant.is_none()
            && d.action() == Action::Allow
            && !d.granted()
            && !d.uncertain()
            && !d.changes_lexing()
            && d.approval().is_none()
        {
            if self.allowed.len() == CACHED {
                self.allowed.remove(0);
            }
            self.allowed.push(Cached {
                engine,
                lexing: self.lexing,
                identity: identity.clone(),
                target: target.clone(),
                sql: sql.to_string(),
                decision: d.clone(),
            });
        }
        d
    }

    /// The server reported a parameter (PostgreSQL `ParameterStatus`).
    fn parameter(&mut self, name: &[u8], value: &[u8]) {
        match name {
            b"standard_conforming_strings" => self.lexing.standard_conforming_strings = value != b"off",
            b"client_encoding" => {
                let v = String::from_utf8_lossy(value).to_ascii_uppercase();
                self.foreign_encoding = (!matches!(v.as_str(), "UTF8" | "UTF-8" | "UNICODE")).then_some(v);
            }
            _ => {}
        }
    }

    /// The server has answered this many statements (PostgreSQL: `ReadyForQuery` seen).
    fn answered(&mut self, n: u64) {
        if self.settle_at.is_some_and(|k| n >= k) {
            self.settle_at = None;
        }
    }
}

/// Masks the fields of one record ([`Detector::redact_fields`]) on its way to the client: when
/// nothing changed, `raw` (the message as it came) is forwarded byte for byte; otherwise
/// `encode` writes the message rebuilt from the masked fields. Returns how many fields changed.
pub(crate) fn forward_masked<'a>(
    det: &Detector,
    fields: &[Option<&'a [u8]>],
    credential: &[bool],
    raw: &[u8],
    to_client: &mut Vec<u8>,
    encode: impl FnOnce(&[Option<std::borrow::Cow<'a, [u8]>>], &mut Vec<u8>),
) -> usize {
    let (masked, changed) = det.redact_fields(fields, credential);
    if changed == 0 {
        to_client.extend_from_slice(raw);
    } else {
        encode(&masked, to_client);
    }
    changed
}

/// A grant set by a statement the session answers itself, `SET <variable> <op> 'TOKEN'`: the
/// token. `variable` and the operators compare without case; the token is quoted by one of
/// `quotes`. PostgreSQL's is `SET sluice.grant = 'T'` (or `TO`), MySQL's `SET @sluice_grant := 'T'`.
pub(crate) fn set_grant<'t>(text: &'t str, variable: &str, ops: &[&str], quotes: &[char]) -> Option<&'t str> {
    let t = text.trim().trim_end_matches(';').trim();
    let rest = t.strip_prefix_ignore_case("set ")?.trim_start();
    let rest = rest.strip_prefix_ignore_case(variable)?.trim_start();
    let rest = ops.iter().find_map(|op| rest.strip_prefix_ignore_case(op))?.trim();
    rest.strip_prefix(quotes)?.strip_suffix(quotes)
}

/// ASCII-case-insensitive `strip_prefix`.
trait StripPrefixIgnoreCase {
    fn strip_prefix_ignore_case(&self, prefix: &str) -> Option<&str>;
}

impl StripPrefixIgnoreCase for str {
    fn strip_prefix_ignore_case(&self, prefix: &str) -> Option<&str> {
        let head = self.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix).then(|| &self[prefix.len()..])
    }
}

/// A grant carried in a leading comment, `/*sluice-grant:TOKEN*/ COMMAND`: the token and the
/// command without the comment.
pub fn split_grant_comment(text: &str) -> (Option<&str>, &str) {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix("/*sluice-grant:")
        && let Some(end) = rest.find("*/")
    {
        return (Some(rest[..end].trim()), rest[end + 2..].trim_start());
    }
    (None, text)
}
