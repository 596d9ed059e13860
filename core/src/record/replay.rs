//! Reading recordings back: readable transcripts (database output decoded into rows) and
//! asciicast v2 export.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sluice_protocols::{mysql, postgres};

/// The records of a recording, parsed, in order (a torn last line left out).
fn records(data: &[u8]) -> Vec<Value> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// When the recording started (ms), from its first record.
fn start_time(recs: &[Value]) -> u64 {
    recs.first()
        .and_then(|v| v.get("time"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A readable transcript: one block per record (time since the start, what happened).
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// The lines.
    pub lines: Vec<String>,
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// The bytes of an output record.
fn output_bytes(v: &Value) -> Vec<u8> {
    if let Some(t) = v.get("text").and_then(Value::as_str) {
        return t.as_bytes().to_vec();
    }
    v.get("data")
        .and_then(Value::as_str)
        .and_then(|b| STANDARD.decode(b).ok())
        .unwrap_or_default()
}

/// Text a human can read from bytes no decoder understood: UTF-8 as it is; other bytes as
/// their printable runs, separated by ` | `.
fn printable(bytes: &[u8]) -> String {
    if let Ok(t) = std::str::from_utf8(bytes) {
        return t.to_string();
    }
    let text = String::from_utf8_lossy(bytes);
    text.split(|c: char| c.is_control() || c == '\u{fffd}')
        .filter(|p| p.trim().chars().count() >= 2)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The text of an output record alone (no stream decoding).
fn output_text(v: &Value) -> String {
    printable(&output_bytes(v))
}

/// Reads a session's output stream back: database wire protocols decoded into rows, errors
/// and command tags (messages cut across records are joined); anything else as text.
enum Output {
    Text,
    Postgres(Stream),
    MySql(Stream, MyState),
}

/// Output bytes not yet decoded.
#[derive(Default)]
struct Stream {
    buf: Vec<u8>,
    started: bool,
}

/// Where a MySQL server's replies stand.
enum MyState {
    Handshake,
    Auth,
    Idle,
    Columns { left: u64, names: Vec<String> },
    Rows { columns: usize, rows: u64, first: bool },
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn joined<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> String {
    values
        .map(|v| v.map_or_else(|| "NULL".to_string(), lossy))
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Output {
    fn for_protocol(protocol: &str) -> Output {
        match protocol {
            "postgres" | "postgresql" => Output::Postgres(Stream::default()),
            "mysql" | "mariadb" => Output::MySql(Stream::default(), MyState::Handshake),
            _ => Output::Text,
        }
    }

    /// The readable lines of one output record.
    fn lines(&mut self, v: &Value) -> Vec<String> {
        match self {
            Output::Text => output_text(v).trim_end().lines().map(str::to_string).collect(),
            Output::Postgres(s) => {
                let bytes = output_bytes(v);
                // The one-byte refusals of SSL and GSS encryption come before any message.
                if !s.started && bytes == b"N" {
                    return Vec::new();
                }
                s.started = true;
                s.buf.extend_from_slice(&bytes);
                pg_lines(&mut s.buf)
            }
            Output::MySql(s, state) => {
                s.buf.extend_from_slice(&output_bytes(v));
                my_lines(&mut s.buf, state)
            }
        }
    }
}

/// Decodes the whole PostgreSQL messages at the front of `buf` (and drops them).
fn pg_lines(buf: &mut Vec<u8>) -> Vec<String> {
    use postgres::{Backend, Status};
    let limits = postgres::Limits::default();
    let mut lines = Vec::new();
    let mut used = 0;
    loop {
        let msg = match postgres::parse_backend(&buf[used..], &limits) {
            Ok(Status::Complete((m, n))) => {
                used += n;
                m
            }
            Ok(Status::Partial) => break,
            Err(_) => {
                lines.push(printable(&buf[used..]));
                used = buf.len();
                break;
            }
        };
        let field = |f: &[(u8, &[u8])], code: u8| f.iter().find(|(c, _)| *c == code).map(|(_, v)| lossy(v));
        let line = match msg {
            Backend::RowDescription(cols) => Some(cols.iter().map(|c| lossy(c.name)).collect::<Vec<_>>().join(" | ")),
            Backend::DataRow(row) => Some(joined(row.values())),
            Backend::CommandComplete(tag) => Some(format!("({})", lossy(tag))),
            Backend::ErrorResponse(f) | Backend::NoticeResponse(f) => Some(format!(
                "{}: {}{}",
                field(&f, b'S').unwrap_or_else(|| "ERROR".into()),
                field(&f, b'M').unwrap_or_default(),
                field(&f, b'C').map(|c| format!(" ({c})")).unwrap_or_default()
            )),
            Backend::NotificationResponse { channel, payload, .. } => {
                Some(format!("NOTIFY {}: {}", lossy(channel), lossy(payload)))
            }
            Backend::CopyData(d) => Some(lossy(d).trim_end().to_string()),
            Backend::Authentication { code: 0, .. } => Some("(authenticated)".into()),
            Backend::EmptyQueryResponse => Some("(empty query)".into()),
            _ => None,
        };
        lines.extend(line);
    }
    buf.drain(..used);
    lines
}

/// Decodes the whole MySQL packets at the front of `buf` (and drops them), following the
/// replies' structure: handshake, authentication, then OK, error or a result set per command.
fn my_lines(buf: &mut Vec<u8>, state: &mut MyState) -> Vec<String> {
    use mysql::{Response, Status};
    let mut lines = Vec::new();
    let mut used = 0;
    loop {
        let p = match mysql::parse_packet(&buf[used..], 1 << 24) {
            Ok(Status::Complete((p, n))) => {
                used += n;
                p.payload
            }
            Ok(Status::Partial) => break,
            Err(_) => {
                lines.push(printable(&buf[used..]));
                used = buf.len();
                break;
            }
        };
        let err = |p: &[u8]| match mysql::parse_response(p) {
            Ok(Response::Err { code, message, .. }) => format!("ERROR {code}: {}", lossy(message)),
            _ => printable(p),
        };
        let is_eof = p.first() == Some(&0xFE) && p.len() < 9;
        match state {
            MyState::Handshake => *state = MyState::Auth,
            MyState::Auth => match p.first() {
                Some(0x00) => {
                    lines.push("(authenticated)".into());
                    *state = MyState::Idle;
                }
                Some(0xFF) => {
                    lines.push(err(p));
                    *state = MyState::Idle;
                }
                _ => {}
            },
            MyState::Idle => match mysql::parse_response(p) {
                Ok(Response::Ok { affected_rows, .. }) => lines.push(format!("(OK, {affected_rows} row(s) affected)")),
                Ok(Response::Err { .. }) => lines.push(err(p)),
                Ok(Response::ColumnCount(n)) if n > 0 => {
                    *state = MyState::Columns {
                        left: n,
                        names: Vec::new(),
                    }
                }
                Ok(_) => {}
                Err(_) => lines.push(printable(p)),
            },
            MyState::Columns { left, names } => {
                names.push(mysql::parse_column_definition(p).map_or_else(|_| "?".into(), |c| lossy(c.name)));
                *left -= 1;
                if *left == 0 {
                    lines.push(names.join(" | "));
                    *state = MyState::Rows {
                        columns: names.len(),
                        rows: 0,
                        first: true,
                    };
                }
            }
            MyState::Rows { columns, rows, first } => {
                let was_first = std::mem::replace(first, false);
                if is_eof && was_first {
                    // The EOF after the column definitions (servers without DEPRECATE_EOF).
                } else if p.first() == Some(&0xFE) && p.len() < 0xFF_FFFF {
                    lines.push(format!("({rows} row(s))"));
                    *state = MyState::Idle;
                } else if p.first() == Some(&0xFF) {
                    lines.push(err(p));
                    *state = MyState::Idle;
                } else {
                    *rows += 1;
                    lines.push(match mysql::parse_text_row(p, *columns) {
                        Ok(values) => joined(values.into_iter()),
                        Err(_) => printable(p),
                    });
                }
            }
        }
    }
    buf.drain(..used);
    lines
}

/// Renders a recording as a transcript (records in file order; verify it first).
pub fn transcript(data: &[u8]) -> Transcript {
    let recs = records(data);
    let t0 = start_time(&recs);
    let mut lines = Vec::new();
    let protocol = recs.first().and_then(|v| v.get("protocol")).and_then(Value::as_str);
    let mut output = Output::for_protocol(protocol.unwrap_or(""));
    for v in &recs {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        let t = v.get("time").and_then(Value::as_u64).unwrap_or(t0).saturating_sub(t0);
        let at = format!("[{:>4}.{:03}s]", t / 1000, t % 1000);
        let line = match s("type") {
            "start" => {
                let policy = v
                    .get("policy")
                    .map(|p| format!(", policy {} ({})", s_of(p, "name"), s_of(p, "digest")))
                    .unwrap_or_default();
                format!(
                    "{at} session {} ({}) user {} target {}{policy}, key {}",
                    s("session"),
                    s("protocol"),
                    or_unknown(s("user")),
                    or_unknown(s("target")),
                    s("signer")
                )
            }
            "decision" => {
                let rule = v
                    .get("rule")
                    .and_then(Value::as_str)
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default();
                let unsure = if v.get("uncertain").and_then(Value::as_bool) == Some(true) {
                    " (uncertain)"
                } else {
                    ""
                };
                let approval = v
                    .get("approval")
                    .map(|a| format!(" approval {}", s_of(a, "id")))
                    .unwrap_or_default();
                format!(
                    "{at} {}@{} > {}\n{at}   {}{rule}{unsure}{approval}: {}",
                    s("user"),
                    s("target"),
                    s("command"),
                    s("action").to_uppercase(),
                    s("reason")
                )
            }
            "output" => output
                .lines(v)
                .iter()
                .map(|l| format!("{at} < {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            "masked" => format!(
                "{at} masked {} value(s)",
                v.get("count").and_then(Value::as_u64).unwrap_or(0)
            ),
            "notice" => format!("{at} notice: {}", s("message")),
            "error" => format!("{at} error from the {}: {}", s("side"), s("reason")),
            "end" => format!("{at} session end"),
            "continue" => format!(
                "{at} part {} begins",
                v.get("part").and_then(Value::as_u64).unwrap_or(0)
            ),
            "checkpoint" => {
                let last = if v.get("final").and_then(Value::as_bool) == Some(true) {
                    " (closing)".to_string()
                } else if let Some(n) = v.get("next_part").and_then(Value::as_u64) {
                    format!(" (the part ends; part {n} follows)")
                } else {
                    String::new()
                };
                format!(
                    "{at} checkpoint #{}{last}",
                    v.get("seq").and_then(Value::as_u64).unwrap_or(0)
                )
            }
            other => format!("{at} {other}"),
        };
        if !line.is_empty() {
            lines.push(line);
        }
    }
    Transcript { lines }
}

fn s_of<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "(from the connection)" } else { s }
}

/// Exports a shell or SSH recording as asciicast v2 (`asciinema play FILE`): each command as a
/// prompt line, each output as terminal output, each refusal as a message.
pub fn asciicast(data: &[u8], width: u16, height: u16) -> String {
    let recs = records(data);
    let t0 = start_time(&recs);
    let mut out = json!({
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": t0 / 1000,
        "title": recs.first().and_then(|v| v.get("session")).and_then(Value::as_str).unwrap_or(""),
    })
    .to_string();
    out.push('\n');
    let crlf = |s: &str| s.replace("\r\n", "\n").replace('\n', "\r\n");
    for v in &recs {
        let t = v.get("time").and_then(Value::as_u64).unwrap_or(t0).saturating_sub(t0) as f64 / 1000.0;
        let text = match v.get("type").and_then(Value::as_str) {
            Some("decision") => {
                let cmd = s_of(v, "command");
                match s_of(v, "action") {
                    "allow" => format!("$ {cmd}\r\n"),
                    a => format!("$ {cmd}\r\n[sluice: {a}: {}]\r\n", s_of(v, "reason")),
                }
            }
            Some("output") => crlf(&output_text(v)),
            Some("error") => format!("[sluice: session closed: {}]\r\n", s_of(v, "reason")),
            _ => continue,
        };
        out.push_str(&json!([t, "o", text]).to_string());
        out.push('\n');
    }
    out
}
