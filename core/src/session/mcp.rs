//! An MCP session (JSON-RPC 2.0, any transport; [`McpSession::from_client`] and
//! [`McpSession::from_server`] take newline-delimited stdio bytes, the `_message` variants one
//! message each, as from HTTP or SSE).
//!
//! - Client methods: protocol plumbing (`initialize`, `ping`, the `*/list` methods,
//!   cancellation, progress) passes; everything else is decided by policy: `tools/call` by tool
//!   name and arguments (shell and file tools through the policy's tool mapping),
//!   `resources/read` (a `file://` URI through the path rules), `prompts/get`,
//!   `completion/complete`, `resources/subscribe`, and any method the engine does not know
//!   (`uncertain`). A client response must answer a request the server sent. A refusal is a JSON-RPC error (`-32001`, the reason, and the decision
//!   with any approval request in `data`) sent back to the client; the server never sees the call.
//! - A grant rides in `params._meta["sluice/grant"]` on the retry and is removed before the call
//!   is decided and forwarded.
//! - Everything from the server is masked: results, error responses, notifications
//!   (`notifications/message`, progress) and server requests (`sampling/createMessage`,
//!   `elicitation/create`): every string and object key, and the texts of an array's items also
//!   joined (a secret split across two content items). A response must answer a request the
//!   client sent; a message that is not JSON-RPC 2.0 ends the session. A host closing the
//!   session answers the requests still pending with [`McpSession::abort_pending`].
//! - `tools/list` results hide the tools the identity may not call at all, and a tool whose
//!   description or input schema changes mid-session is flagged: an event, and calls to it need
//!   approval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use sluice_protocols::mcp;

use super::{Event, Guard, Output, SessionError, Side, refusal_verb};
use crate::policy::{Action, Decision, Identity, Protocol, Request, Target};

/// The longest message accepted (16 MiB).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One MCP connection.
pub struct McpSession {
    guard: Arc<Guard>,
    identity: Identity,
    target: Target,
    /// Client requests in flight, by their id's JSON text, and their method.
    pending: HashMap<String, String>,
    /// Server-to-client requests in flight (sampling, elicitation, roots), by id.
    pending_server: HashSet<String>,
    /// Each tool's definition hash, from the first tools/list.
    tools: HashMap<String, blake3::Hash>,
    /// Tools whose definition changed.
    changed: Vec<String>,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
    /// Where progress notifications go while a call is held for approval.
    progress: Option<ProgressSink>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("identity", &self.identity)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Where a held call's progress notifications go ([`McpSession::on_progress`]).
type ProgressSink = Box<dyn FnMut(&[u8]) + Send + Sync>;

/// The JSON-RPC error code for a refused call.
pub const REFUSED: i64 = -32001;

impl McpSession {
    /// A session for `identity` acting on the MCP server `target`.
    pub fn new(guard: Arc<Guard>, identity: Identity, target: Target) -> McpSession {
        McpSession {
            guard,
            identity,
            target,
            pending: HashMap::new(),
            pending_server: HashSet::new(),
            tools: HashMap::new(),
            changed: Vec::new(),
            cbuf: Vec::new(),
            sbuf: Vec::new(),
            progress: None,
        }
    }

    /// While a call that asked for progress (`params._meta.progressToken`) is held for
    /// approval ([`Guard::hold`]), `sink` gets a `notifications/progress` line for the client
    /// every few seconds; write it to the client at once (the session's own output waits
    /// until the call is decided).
    pub fn on_progress(&mut self, sink: impl FnMut(&[u8]) + Send + Sync + 'static) {
        self.progress = Some(Box::new(sink));
    }

    /// Newline-delimited bytes from the client (stdio transport).
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.stdio(true, data, out)
    }

    /// Newline-delimited bytes from the server (stdio transport).
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.stdio(false, data, out)
    }

    /// Splits the complete lines off what one side sent and handles each as a message.
    fn stdio(&mut self, from_client: bool, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mut buf = std::mem::take(if from_client { &mut self.cbuf } else { &mut self.sbuf });
        buf.extend_from_slice(data);
        let side = if from_client { Side::Client } else { Side::Server };
        let (lines, used) = mcp::split_lines(&buf, MAX_MESSAGE).map_err(|e| SessionError::rejected(side, e))?;
        for line in lines {
            if from_client {
                self.client_message(line, out)?;
            } else {
                self.server_message(line, out)?;
            }
        }
        buf.drain(..used);
        *(if from_client { &mut self.cbuf } else { &mut self.sbuf }) = buf;
        Ok(())
    }

    /// One message from the client; what to forward or answer is appended, each message
    /// followed by a newline.
    ///
    /// Requests and notifications are handled by method: protocol plumbing
    /// ([`mcp::CLIENT_PLUMBING`]) passes; every other method (tool calls, resource reads,
    /// prompts, completions, and methods this engine does not know, which are `uncertain`) is
    /// decided by policy. A response must answer a request the server sent.
    pub fn client_message(&mut self, msg: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_client_message(msg, out);
        self.guard.handled(Protocol::Mcp, out, mark, r)
    }

    fn handle_client_message(&mut self, msg: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let m = mcp::parse_message(msg).map_err(|e| SessionError::rejected(Side::Client, e))?;
        let id = m.id.map(|i| i.get().to_string());
        let method = m.method.as_deref().unwrap_or("").to_string();
        match m.kind() {
            mcp::Kind::Invalid => return Err(SessionError::client("not a JSON-RPC 2.0 message")),
            mcp::Kind::Response | mcp::Kind::ErrorResponse => {
                let known = id.as_ref().is_some_and(|i| self.pending_server.remove(i));
                if !known {
                    return Err(SessionError::client("a response to no request of the server"));
                }
                push_line(&mut out.to_server, msg);
                return Ok(());
            }
            mcp::Kind::Request | mcp::Kind::Notification => {}
            // A kind of message this session was not written for: never forwarded.
            _ => {
                return Err(SessionError::client(
                    "a JSON-RPC message of a kind this session does not know",
                ));
            }
        }
        if mcp::CLIENT_PLUMBING.contains(&method.as_str()) {
            if let Some(id) = id
                && m.kind() == mcp::Kind::Request
            {
                self.pending.insert(id, method);
            }
            push_line(&mut out.to_server, msg);
            return Ok(());
        }
        // Decided: take the grant out first.
        let mut v: Value = serde_json::from_slice(msg).map_err(|e| SessionError::rejected(Side::Client, e))?;
        let grant = v
            .pointer_mut("/params/_meta")
            .and_then(Value::as_object_mut)
            .and_then(|meta| meta.remove("sluice/grant"))
            .and_then(|g| g.as_str().map(str::to_string));
        let text = if grant.is_some() {
            v.to_string()
        } else {
            String::from_utf8_lossy(msg).into_owned()
        };
        let tool = v
            .pointer("/params/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let token = v.pointer("/params/_meta/progressToken").cloned();
        let progress = &mut self.progress;
        let mut d = self.guard.decide_waiting(
            &self.identity,
            &self.target,
            &Request::Mcp(text.as_bytes()),
            &text,
            grant.as_deref(),
            &mut |waited| {
                if let (Some(token), Some(sink)) = (&token, progress.as_mut()) {
                    let line = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                        "progressToken": token, "progress": waited.as_secs(),
                        "message": format!("waiting for approval ({}s)", waited.as_secs()),
                    }});
                    let mut bytes = line.to_string().into_bytes();
                    bytes.push(b'\n');
                    sink(&bytes);
                }
            },
        );
        if method == "tools/call" && d.action() == Action::Allow && self.changed.contains(&tool) {
            d = self.changed_tool(&tool, &text, d);
            if let (Some(g), Some(v)) = (&grant, &self.guard.grants) {
                d.redeem(g, v);
            }
        }
        // Decided on the placeholders; the server gets the credentials they name, in the
        // message's string values (re-encoded, so a value cannot break out of its string), each
        // only where the policy lets it go to this server, or the request is refused.
        // Only an allowed request is swapped: a refused one is not sent anywhere.
        let swapped = if d.action() == Action::Allow {
            self.swap_credentials(&mut v, &text)
        } else {
            Ok(None)
        };
        let text = match swapped {
            Ok(Some(swapped)) => swapped,
            Ok(None) => text,
            Err(refused) => {
                d = self.guard.refuse(
                    &self.identity,
                    &self.target,
                    &Request::Mcp(text.as_bytes()),
                    &text,
                    refused.to_string(),
                );
                text
            }
        };
        if d.action() == Action::Allow {
            if let Some(id) = &id
                && m.kind() == mcp::Kind::Request
            {
                self.pending.insert(id.clone(), method);
            }
            push_line(&mut out.to_server, text.as_bytes());
        } else if m.kind() == mcp::Kind::Request {
            let reply = refusal(m.id, &d);
            push_line(&mut out.to_client, reply.as_bytes());
        }
        // A refused notification has no one to answer: it is dropped (the event says why).
        Ok(())
    }

    /// `v` (the message `text`) with the placeholders in its string values swapped for
    /// credentials: `None` when there is no vault or no placeholder.
    fn swap_credentials(&self, v: &mut Value, text: &str) -> Result<Option<String>, crate::broker::Refused> {
        if self.guard.vault.is_none() || !text.contains(crate::broker::PREFIX) {
            return Ok(None);
        }
        fn walk(
            v: &mut Value,
            swap: &mut dyn FnMut(&str) -> Result<Option<String>, crate::broker::Refused>,
        ) -> Result<(), crate::broker::Refused> {
            match v {
                Value::String(s) => {
                    if let Some(new) = swap(s)? {
                        *s = new;
                    }
                }
                Value::Array(a) => {
                    for x in a {
                        walk(x, swap)?;
                    }
                }
                Value::Object(o) => {
                    for x in o.values_mut() {
                        walk(x, swap)?;
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
            Ok(())
        }
        let target = self.target.name.clone();
        let mut swap = |s: &str| -> Result<Option<String>, crate::broker::Refused> {
            match self.guard.substitute(Protocol::Mcp, &target, s)? {
                std::borrow::Cow::Borrowed(_) => Ok(None),
                std::borrow::Cow::Owned(o) => Ok(Some(o)),
            }
        };
        // Only in the parameters: the method and id stay what was decided.
        if let Some(params) = v.get_mut("params") {
            walk(params, &mut swap)?;
        }
        Ok(Some(v.to_string()))
    }

    /// JSON-RPC errors for every client request still waiting for the server, for a host that
    /// is closing the connection (the server failed or sent what the session refused): each
    /// pending request gets an answer before the client sees end-of-file.
    pub fn abort_pending(&mut self, reason: &str, out: &mut Output) {
        let mut ids: Vec<String> = self.pending.drain().map(|(id, _)| id).collect();
        ids.sort();
        for id in ids {
            let id: Value = serde_json::from_str(&id).unwrap_or(Value::Null);
            let reply = serde_json::json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32603, "message": format!("sluice: the server connection was closed: {reason}")}});
            push_line(&mut out.to_client, reply.to_string().as_bytes());
        }
    }

    /// A call to a tool whose definition changed needs approval (a "rug pull").
    fn changed_tool(&self, tool: &str, text: &str, d: Decision) -> Decision {
        let engine = self.guard.policy.load();
        let d2 = engine.require_approval(
            d,
            "tool-definition-changed",
            &format!("the definition of tool `{tool}` changed during this session"),
            &self.identity,
            &self.target,
            &Request::Mcp(text.as_bytes()),
        );
        self.guard.emit(&Event::Decision {
            protocol: Protocol::Mcp,
            identity: &self.identity,
            target: &self.target,
            command: text,
            decision: &d2,
        });
        d2
    }

    /// One message from the server. Everything the server says is masked: results, errors,
    /// notifications and its own requests (sampling, elicitation), every string and object key,
    /// and the text items of an array also joined, so a secret split across two content items
    /// is found. A response must answer a request the client sent.
    pub fn server_message(&mut self, msg: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_server_message(msg, out);
        self.guard.handled(Protocol::Mcp, out, mark, r)
    }

    fn handle_server_message(&mut self, msg: &[u8], out: &mut Output) -> Result<(), SessionError> {
        // One pass: the result is parsed (it is what gets masked), the rest stays raw.
        let mut m = mcp::parse_with_result(msg).map_err(|e| SessionError::rejected(Side::Server, e))?;
        let kind = m.kind();
        let det = self.guard.current_detector();
        let mut masked = 0;
        let mut mask = |s: &str| match det.redact(s.as_bytes()) {
            std::borrow::Cow::Owned(b) => {
                masked += 1;
                Some(String::from_utf8_lossy(&b).into_owned())
            }
            std::borrow::Cow::Borrowed(_) => None,
        };
        if !matches!(
            kind,
            mcp::Kind::Invalid
                | mcp::Kind::Response
                | mcp::Kind::ErrorResponse
                | mcp::Kind::Notification
                | mcp::Kind::Request
        ) {
            // A kind of message this session was not written for: never forwarded.
            return Err(SessionError::server(
                "a JSON-RPC message of a kind this session does not know",
            ));
        }
        let line = match kind {
            mcp::Kind::Invalid => return Err(SessionError::server("not a JSON-RPC 2.0 message")),

            mcp::Kind::Response => {
                let method =
                    m.id.and_then(|id| self.pending.remove(id.get()))
                        .ok_or_else(|| SessionError::server("a response to no request of the client"))?;
                let Some(result) = m.result.as_mut() else {
                    return Err(SessionError::server("a response without a result"));
                };
                let mut changed = false;
                if method == "tools/list" {
                    changed |= self.filter_tools(result);
                }
                let keys = mask_value(&det, result, &mut mask);
                (changed || keys).then(|| m.to_response())
            }
            // Error responses, notifications and requests (other kinds were refused above).
            _ => {
                if kind == mcp::Kind::ErrorResponse {
                    m.id.and_then(|id| self.pending.remove(id.get()))
                        .ok_or_else(|| SessionError::server("an error response to no request of the client"))?;
                }
                if let (mcp::Kind::Request, Some(id)) = (kind, m.id) {
                    self.pending_server.insert(id.get().to_string());
                }
                let mut v: Value = serde_json::from_slice(msg).map_err(|e| SessionError::rejected(Side::Server, e))?;
                let keys = mask_value(&det, &mut v, &mut mask);
                keys.then(|| v.to_string())
            }
        };
        if masked > 0 {
            self.guard.emit(&Event::Masked {
                protocol: Protocol::Mcp,
                count: masked,
            });
        }
        match line {
            Some(l) => push_line(&mut out.to_client, l.as_bytes()),
            None => push_line(&mut out.to_client, msg),
        }
        Ok(())
    }

    /// Hides tools the identity may not call; flags tools whose definition changed. `result` is
    /// the result of a `tools/list` response.
    fn filter_tools(&mut self, result: &mut Value) -> bool {
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return false;
        };
        let engine = self.guard.policy.load();
        let before = tools.len();
        let mut notices = Vec::new();
        tools.retain(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let def = serde_json::json!([t.get("description"), t.get("inputSchema")]).to_string();
            let hash = blake3::hash(def.as_bytes());
            match self.tools.get(&name) {
                Some(h) if *h != hash => {
                    if !self.changed.contains(&name) {
                        self.changed.push(name.clone());
                        notices.push(format!("tool `{name}` changed its description or schema mid-session"));
                    }
                }
                Some(_) => {}
                None => {
                    self.tools.insert(name.clone(), hash);
                }
            }
            let probe = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "tools/call",
                "params": {"name": name, "arguments": {}}})
            .to_string();
            let d = engine.decide(&self.identity, &self.target, &Request::Mcp(probe.as_bytes()));
            // Hidden only when every call is refused outright, whatever the arguments.
            d.action() != Action::Deny || d.uncertain()
        });
        for n in notices {
            self.guard.emit(&Event::Notice {
                protocol: Protocol::Mcp,
                message: &n,
            });
        }
        tools.len() != before
    }
}

fn push_line(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(msg);
    out.push(b'\n');
}

/// Masks every string and object key of `v` with `f` (which returns the masked text when it
/// changed), and the strings of each array (direct strings and the `text` of object items)
/// also joined, so a secret split across adjacent items is found. Returns whether anything
/// changed.
fn mask_value(det: &crate::Detector, v: &mut Value, f: &mut impl FnMut(&str) -> Option<String>) -> bool {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
                return true;
            }
            false
        }
        Value::Array(a) => {
            let mut changed = mask_joined(det, a);
            for x in a.iter_mut() {
                changed |= mask_value(det, x, f);
            }
            changed
        }
        Value::Object(o) => {
            let mut changed = false;
            let masked_keys: Vec<(String, String)> = o.keys().filter_map(|k| f(k).map(|n| (k.clone(), n))).collect();
            for (old, new) in masked_keys {
                if let Some(x) = o.remove(&old) {
                    o.insert(new, x);
                    changed = true;
                }
            }
            for x in o.values_mut() {
                changed |= mask_value(det, x, f);
            }
            changed
        }
        _ => false,
    }
}

/// The texts of an array's items (strings, or objects' `text`) masked as one record.
fn mask_joined(det: &crate::Detector, a: &mut [Value]) -> bool {
    fn text(v: &Value) -> Option<&str> {
        match v {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("text").and_then(Value::as_str),
            _ => None,
        }
    }
    if a.iter().filter(|v| text(v).is_some()).count() < 2 {
        return false;
    }
    let fields: Vec<Option<&[u8]>> = a.iter().map(|v| text(v).map(str::as_bytes)).collect();
    let (masked, _) = det.redact_fields(&fields, &[]);
    let new: Vec<Option<String>> = masked
        .into_iter()
        .map(|m| match m {
            Some(std::borrow::Cow::Owned(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect();
    let mut changed = false;
    for (v, n) in a.iter_mut().zip(new) {
        let Some(n) = n else { continue };
        changed = true;
        match v {
            Value::String(s) => *s = n,
            Value::Object(o) => {
                o.insert("text".into(), Value::String(n));
            }
            _ => {}
        }
    }
    changed
}

/// The JSON-RPC error for a refused call, with the decision in `data`.
fn refusal(id: Option<&serde_json::value::RawValue>, d: &Decision) -> String {
    let id: Value = id
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    let verb = refusal_verb(d);
    let mut message = format!("sluice: {verb}: {}", d.reason());
    if let Some(a) = &d.approval() {
        message.push_str(&format!(
            " (request {}; once approved, retry with the grant in params._meta[\"sluice/grant\"])",
            a.id
        ));
    }
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": REFUSED, "message": message, "data": d}})
        .to_string()
}
