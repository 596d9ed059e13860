//! MCP over JSON-RPC 2.0: stdio framing (one message per line), SSE event streams, message
//! classification (requests, notifications, responses, errors, batches), typed views of the
//! methods policy cares about, in-place rewriting of tool-result text, and the error reply for a
//! blocked call.
//!
//! Views borrow the message text: `params`, `result` and ids stay raw JSON
//! ([`RawValue`]) until a typed view asks for them.
//!
//! ```
//! use sluice_protocols::mcp::{self, Kind};
//! let line = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_shell","arguments":{"cmd":"cat ~/.aws/credentials"}}}"#;
//! let msg = mcp::parse_message(line)?;
//! assert_eq!(msg.kind(), Kind::Request);
//! let call = msg.tool_call()?.expect("a tools/call");
//! assert_eq!(call.name, "run_shell");
//! let reply = mcp::error_response(msg.id, -32001, "blocked by policy: reads cloud credentials");
//! assert!(reply.contains(r#""id":7"#));
//! # Ok::<(), sluice_protocols::mcp::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
pub use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Why a message could not be parsed.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not JSON, or not a JSON-RPC message (serde_json's error is the source).
    Json,
    /// A request without the `params` its method needs (the method is the detail).
    MissingParams,
    /// A request's `params` are not what its method takes (serde_json's error is the source).
    BadParams,
    /// A result was asked of a message that is not a response with a result.
    NotAResult,
    /// A result is not what its method returns (serde_json's error is the source).
    BadResult,
    /// A stdio line over the limit.
    LineTooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind() {
            ErrorKind::Json => "not a JSON-RPC message",
            ErrorKind::MissingParams => "params missing",
            ErrorKind::BadParams => "bad params",
            ErrorKind::NotAResult => "not a result",
            ErrorKind::BadResult => "bad result",
            ErrorKind::LineTooLong => "line too long",
        };
        write!(f, "invalid JSON-RPC message at offset {}: {what}", self.offset())?;
        match self.detail() {
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

fn json_error(e: serde_json::Error, text: &[u8]) -> Error {
    // serde_json reports line and column; turn them into a byte offset.
    let mut offset = 0;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if i + 1 == e.line() {
            offset += e.column().saturating_sub(1).min(line.len());
            break;
        }
        offset += line.len() + 1;
    }
    Error::new(ErrorKind::Json, offset).with_source(e)
}

/// One JSON-RPC message, borrowing its text. The result stays raw unless asked for as a
/// [`Value`] ([`ParsedResult`], for a response that is to be rewritten in one pass).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub struct Message<'a, R = &'a RawValue> {
    /// Always "2.0".
    #[serde(borrow, default)]
    pub jsonrpc: Option<Cow<'a, str>>,
    /// The id of a request or response (absent for notifications).
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    /// The method of a request or notification.
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    /// The parameters.
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    /// The result of a successful response.
    #[serde(default)]
    pub result: Option<R>,
    /// The error of a failed response.
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

/// Methods a client sends that are protocol plumbing: they carry no command for the server to
/// act on (handshake, keep-alive, listings, cancellation, progress, log level).
pub const CLIENT_PLUMBING: &[&str] = &[
    "initialize",
    "ping",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "logging/setLevel",
    "resources/unsubscribe",
];

/// Methods a client sends that ask the server to act or disclose: each is decided by policy.
pub const CLIENT_ACTIONS: &[&str] = &[
    "tools/call",
    "resources/read",
    "resources/subscribe",
    "prompts/get",
    "completion/complete",
];

/// Whether `method` is one the MCP specification defines for a client to send.
pub fn is_client_method(method: &str) -> bool {
    CLIENT_PLUMBING.contains(&method) || CLIENT_ACTIONS.contains(&method)
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A method call expecting a response.
    Request,
    /// A method call without an id.
    Notification,
    /// A successful response.
    Response,
    /// A failed response.
    ErrorResponse,
    /// Not a valid JSON-RPC 2.0 message.
    Invalid,
}

/// The parameters of `tools/call`.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    /// The tool's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its arguments (a JSON object), raw.
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
}

/// The parameters of `resources/read`.
#[derive(Debug, Deserialize)]
pub struct ResourceRead<'a> {
    /// The resource URI.
    #[serde(borrow)]
    pub uri: Cow<'a, str>,
}

/// The parameters of `prompts/get`.
#[derive(Debug, Deserialize)]
pub struct PromptGet<'a> {
    /// The prompt's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its arguments, raw.
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
}

/// The parameters of `initialize`.
#[derive(Debug, Deserialize)]
pub struct Initialize<'a> {
    /// The protocol version the client asks for.
    #[serde(rename = "protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
    /// The client's name and version, raw.
    #[serde(rename = "clientInfo", borrow, default)]
    pub client_info: Option<&'a RawValue>,
}

/// A tool as `tools/list` describes it.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// The tool's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its description.
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    /// Its input schema, raw.
    #[serde(rename = "inputSchema", borrow, default)]
    pub input_schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolList<'a> {
    #[serde(borrow)]
    tools: Vec<Tool<'a>>,
}

impl<R> Message<'_, R> {
    /// Classifies the message.
    pub fn kind(&self) -> Kind {
        let versioned = self.jsonrpc.as_deref() == Some("2.0");
        match (&self.method, self.id, &self.result, &self.error) {
            _ if !versioned => Kind::Invalid,
            (Some(_), Some(_), None, None) => Kind::Request,
            (Some(_), None, None, None) => Kind::Notification,
            (None, Some(_), Some(_), None) => Kind::Response,
            (None, Some(_), None, Some(_)) => Kind::ErrorResponse,
            _ => Kind::Invalid,
        }
    }
}

impl<'a> Message<'a> {
    fn params_as<T: Deserialize<'a>>(&self, method: &str) -> Result<Option<T>, Error> {
        if self.method.as_deref() != Some(method) {
            return Ok(None);
        }
        let raw = self
            .params
            .ok_or_else(|| Error::new(ErrorKind::MissingParams, 0).with_detail(method))?;
        serde_json::from_str(raw.get()).map(Some).map_err(|e| {
            let detail = format!("{method}: {e}");
            Error::new(ErrorKind::BadParams, 0).with_source(e).with_detail(detail)
        })
    }

    /// The parameters of a `tools/call`, if this is one.
    pub fn tool_call(&self) -> Result<Option<ToolCall<'a>>, Error> {
        self.params_as("tools/call")
    }

    /// The parameters of a `resources/read`, if this is one.
    pub fn resource_read(&self) -> Result<Option<ResourceRead<'a>>, Error> {
        self.params_as("resources/read")
    }

    /// The parameters of a `prompts/get`, if this is one.
    pub fn prompt_get(&self) -> Result<Option<PromptGet<'a>>, Error> {
        self.params_as("prompts/get")
    }

    /// The parameters of an `initialize`, if this is one.
    pub fn initialize(&self) -> Result<Option<Initialize<'a>>, Error> {
        self.params_as("initialize")
    }

    /// The tools of a `tools/list` result (call on the response to a `tools/list` request).
    pub fn tools(&self) -> Result<Vec<Tool<'a>>, Error> {
        let raw = self.result.ok_or_else(|| Error::new(ErrorKind::NotAResult, 0))?;
        let list: ToolList<'a> = serde_json::from_str(raw.get()).map_err(|e| {
            let detail = format!("tools/list: {e}");
            Error::new(ErrorKind::BadResult, 0).with_source(e).with_detail(detail)
        })?;
        Ok(list.tools)
    }
}

/// Parses one message (one line of a stdio stream, or an HTTP body that is not a batch).
pub fn parse_message(text: &[u8]) -> Result<Message<'_>, Error> {
    serde_json::from_slice(text).map_err(|e| json_error(e, text))
}

/// A message whose `result` is parsed into a [`Value`] while everything else stays raw: a
/// response that is to be rewritten (masked, filtered) is read once, not once raw and once more
/// as a value.
pub type ParsedResult<'a> = Message<'a, Value>;

impl ParsedResult<'_> {
    /// The response as JSON text, with its (possibly rewritten) result.
    pub fn to_response(&self) -> String {
        let id = self.id.map_or("null", RawValue::get);
        let result = self.result.as_ref().unwrap_or(&Value::Null);
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
    }
}

/// Parses one message with its `result` as a [`Value`] (see [`ParsedResult`]).
pub fn parse_with_result(text: &[u8]) -> Result<ParsedResult<'_>, Error> {
    serde_json::from_slice(text).map_err(|e| json_error(e, text))
}

/// Parses a batch (a JSON array of messages), or a single message as a batch of one.
pub fn parse_batch(text: &[u8]) -> Result<Vec<Message<'_>>, Error> {
    let first = text.iter().position(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|i| text[i] == b'[') {
        serde_json::from_slice(text).map_err(|e| json_error(e, text))
    } else {
        parse_message(text).map(|m| vec![m])
    }
}

/// Splits newline-delimited messages off the front of a stdio buffer: each complete line
/// (without its `\n` or `\r\n`), and how many bytes they used. Blank lines are skipped; a line
/// longer than `max_line` is an error (where it starts).
pub fn split_lines(buf: &[u8], max_line: usize) -> Result<(Vec<&[u8]>, usize), Error> {
    let mut lines = Vec::new();
    let mut at = 0;
    while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
        let line = &buf[at..at + nl];
        if line.len() > max_line {
            return Err(
                Error::new(ErrorKind::LineTooLong, at).with_detail(format!("{} bytes exceed {max_line}", line.len()))
            );
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push(line);
        }
        at += nl + 1;
    }
    if buf.len() - at > max_line {
        return Err(Error::new(ErrorKind::LineTooLong, at).with_detail(format!("more than {max_line} bytes")));
    }
    Ok((lines, at))
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, if any.
    pub event: Option<&'a [u8]>,
    /// The `id:` field, if any.
    pub id: Option<&'a [u8]>,
    /// The `data:` lines, joined with `\n` (borrowed when there is one line).
    pub data: Cow<'a, [u8]>,
}

/// Splits the complete events off the front of an SSE stream (`text/event-stream`, as MCP's
/// streamable HTTP transport sends), and how many bytes they used.
pub fn split_sse(buf: &[u8]) -> (Vec<SseEvent<'_>>, usize) {
    let mut events = Vec::new();
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let end = [&b"\n\n"[..], b"\r\n\r\n"]
            .iter()
            .filter_map(|sep| rest.windows(sep.len()).position(|w| w == *sep).map(|p| (p, sep.len())))
            .min();
        let Some((p, sep)) = end else { break };
        let block = &rest[..p];
        let mut ev = SseEvent {
            event: None,
            id: None,
            data: Cow::Borrowed(&[]),
        };
        let mut datas: Vec<&[u8]> = Vec::new();
        for line in block.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(0) => continue, // comment
                Some(i) => (&line[..i], line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..])),
                None => (line, &b""[..]),
            };
            match field {
                b"data" => datas.push(value),
                b"event" => ev.event = Some(value),
                b"id" => ev.id = Some(value),
                _ => {}
            }
        }
        if !datas.is_empty() {
            ev.data = if datas.len() == 1 {
                Cow::Borrowed(datas[0])
            } else {
                Cow::Owned(datas.join(&b'\n'))
            };
            events.push(ev);
        }
        at += p + sep;
    }
    (events, at)
}

/// Applies `rewrite` to every text item of a tool result (`result.content[].text`, and
/// `structuredContent` string leaves) and returns the new message, or `None` when nothing
/// changed (forward the original bytes then).
pub fn rewrite_tool_result(
    text: &[u8],
    mut rewrite: impl FnMut(&str) -> Option<String>,
) -> Result<Option<String>, Error> {
    let mut v: Value = serde_json::from_slice(text).map_err(|e| json_error(e, text))?;
    let mut changed = false;
    if let Some(result) = v.get_mut("result") {
        if let Some(items) = result.get_mut("content").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(Value::String(s)) = item.get_mut("text")
                    && let Some(new) = rewrite(s)
                {
                    *s = new;
                    changed = true;
                }
                // Embedded resources carry their text one level down.
                if let Some(Value::String(s)) = item.get_mut("resource").and_then(|r| r.get_mut("text"))
                    && let Some(new) = rewrite(s)
                {
                    *s = new;
                    changed = true;
                }
            }
        }
        if let Some(sc) = result.get_mut("structuredContent") {
            changed |= rewrite_strings(sc, &mut rewrite);
        }
    }
    Ok(changed.then(|| v.to_string()))
}

fn rewrite_strings(v: &mut Value, rewrite: &mut impl FnMut(&str) -> Option<String>) -> bool {
    match v {
        Value::String(s) => match rewrite(s) {
            Some(new) => {
                *s = new;
                true
            }
            None => false,
        },
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| rewrite_strings(x, rewrite) | acc),
        Value::Object(o) => o.values_mut().fold(false, |acc, x| rewrite_strings(x, rewrite) | acc),
        _ => false,
    }
}

/// The JSON-RPC error response for a request that is refused: the request's id (or `null`), a
/// code (JSON-RPC reserves -32768..-32000 for the implementation) and a message.
pub fn error_response(id: Option<&RawValue>, code: i64, message: &str) -> String {
    let id: Value = id
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let k = |s: &str| parse_message(s.as_bytes()).expect("json").kind();
        assert_eq!(k(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), Kind::Request);
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Kind::Notification
        );
        assert_eq!(k(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#), Kind::Response);
        assert_eq!(
            k(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#),
            Kind::ErrorResponse
        );
        assert_eq!(k(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#), Kind::Invalid);
        assert_eq!(k(r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#), Kind::Invalid);
        let e = parse_message(b"{\"jsonrpc\": \"2.0\",\n \"id\": }").expect_err("bad json");
        assert_eq!(e.offset(), 26, "{e}");
    }

    #[test]
    fn typed_views() {
        let m = parse_message(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_ed25519"}}}"#).expect("json");
        let call = m.tool_call().expect("params").expect("a call");
        assert_eq!(call.name, "read_file");
        let args: Value = serde_json::from_str(call.arguments.expect("args").get()).expect("object");
        assert_eq!(args["path"], "~/.ssh/id_ed25519");
        assert!(m.resource_read().expect("ok").is_none());
        let m = parse_message(
            br#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///etc/shadow"}}"#,
        )
        .expect("json");
        assert_eq!(m.resource_read().expect("ok").expect("read").uri, "file:///etc/shadow");
        let m = parse_message(br#"{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"review"}}"#)
            .expect("json");
        assert_eq!(m.prompt_get().expect("ok").expect("get").name, "review");
        let m = parse_message(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","clientInfo":{"name":"c"}}}"#).expect("json");
        assert_eq!(
            m.initialize().expect("ok").expect("init").protocol_version.as_deref(),
            Some("2025-06-18")
        );
        let m = parse_message(br#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"run_shell","description":"Run a command","inputSchema":{"type":"object"}}]}}"#).expect("json");
        let tools = m.tools().expect("tools");
        assert_eq!(
            (tools[0].name.as_ref(), tools[0].description.as_deref()),
            ("run_shell", Some("Run a command"))
        );
        let bad = parse_message(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}"#)
            .expect("json");
        assert!(bad.tool_call().is_err(), "a call without a name");
    }

    #[test]
    fn batches_lines_and_sse() {
        let b =
            parse_batch(br#" [{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#).expect("batch");
        assert_eq!(
            b.iter().map(Message::kind).collect::<Vec<_>>(),
            vec![Kind::Request, Kind::Notification]
        );
        let (lines, used) = split_lines(b"{\"a\":1}\r\n\n{\"b\":2}\n{\"c\"", 1024).expect("lines");
        assert_eq!((lines, used), (vec![&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]], 18));
        assert!(split_lines(&[b'x'; 100], 10).is_err());
        let (events, used) = split_sse(b": ping\n\nevent: message\nid: 9\ndata: {\"x\":\ndata: 1}\n\ndata: partial");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].event, events[0].id),
            (Some(&b"message"[..]), Some(&b"9"[..]))
        );
        assert_eq!(events[0].data.as_ref(), b"{\"x\":\n1}");
        assert_eq!(used, 51);
    }

    #[test]
    fn tool_results_are_rewritten_and_errors_built() {
        let msg = br#"{"jsonrpc":"2.0","id":9,"result":{"content":[{"type":"text","text":"key=SECRET"},{"type":"image","data":"AAAA"},{"type":"resource","resource":{"uri":"x","text":"SECRET again"}}],"structuredContent":{"out":["SECRET"]},"isError":false}}"#;
        let out = rewrite_tool_result(msg, |s| s.contains("SECRET").then(|| s.replace("SECRET", "[MASKED]")))
            .expect("json")
            .expect("changed");
        assert!(!out.contains("SECRET") && out.matches("[MASKED]").count() == 3, "{out}");
        assert!(out.contains(r#""data":"AAAA""#));
        assert_eq!(rewrite_tool_result(msg, |_| None).expect("json"), None);
        let id = parse_message(br#"{"jsonrpc":"2.0","id":"req-1","method":"tools/call","params":{"name":"x"}}"#)
            .expect("json")
            .id;
        let e: Value = serde_json::from_str(&error_response(id, -32001, "blocked")).expect("json");
        assert_eq!(
            e,
            json!({"jsonrpc":"2.0","id":"req-1","error":{"code":-32001,"message":"blocked"}})
        );
        let e: Value = serde_json::from_str(&error_response(None, -32600, "invalid")).expect("json");
        assert_eq!(e["id"], Value::Null);
    }
}
