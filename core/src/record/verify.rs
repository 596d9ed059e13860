//! Reading recordings back: verification (the first bad record and why), readable transcripts
//! and asciicast v2 export.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{FORMAT_VERSION, checkpoint_message, genesis, hex, key_id};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The session id of the first record.
    pub session: Option<String>,
    /// The signing key's id of the first record.
    pub key_id: Option<String>,
    /// Whether the signatures were checked against a key the caller gave (otherwise against the
    /// key the recording names, which proves integrity but not who signed).
    pub key_given: bool,
    /// Records read intact (before any problem).
    pub records: u64,
    /// Valid checkpoints among them.
    pub checkpoints: u64,
    /// Records covered by a valid checkpoint signature.
    pub signed: u64,
    /// Whether the recording ends with its closing checkpoint.
    pub closed: bool,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// The first thing wrong with a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its line (1-based; the record with `seq` = line − 1).
    pub line: u64,
    /// The byte offset of that line.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// The recording was cut short (a torn last line, or no closing checkpoint) rather than
    /// altered: the records before it verify.
    pub torn: bool,
}

impl Report {
    /// Intact, signed to the end and closed.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none() && self.closed
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "ok: session {}, {} records, {} checkpoints, closed, key {}{}",
                self.session.as_deref().unwrap_or("?"),
                self.records,
                self.checkpoints,
                self.key_id.as_deref().unwrap_or("?"),
                if self.key_given {
                    ""
                } else {
                    " (the recording's own: pass --key to check who signed)"
                }
            ),
            Some(p) => write!(
                f,
                "{} at line {} (byte {}): {}; {} records before it intact, {} signed",
                if p.torn { "cut short" } else { "bad record" },
                p.line,
                p.offset,
                p.reason,
                self.records,
                self.signed
            ),
        }
    }
}

/// Verifies a recording: the chain of hashes, the order, the first record's binding to its
/// session and key, every checkpoint's signature (with `key`, against that key), and that it is
/// closed. Names the first bad record.
pub fn verify(data: &[u8], key: Option<&VerifyingKey>) -> Report {
    let mut r = Report {
        key_given: key.is_some(),
        ..Report::default()
    };
    let mut prev = [0u8; 32];
    let mut public: Option<VerifyingKey> = None;
    let mut ended = false;
    let mut offset = 0u64;
    let mut rest = data;
    let mut line_no = 0u64;
    let problem = loop {
        if rest.is_empty() {
            break None;
        }
        line_no += 1;
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            break Some(Problem {
                line: line_no,
                offset,
                reason: "the last record is torn (no end of line): the recording was cut while writing".into(),
                torn: true,
            });
        };
        let line = &rest[..nl];
        let bad = |reason: String| Problem {
            line: line_no,
            offset,
            reason,
            torn: false,
        };
        match check(line, line_no - 1, &mut prev, &mut public, key, &mut r, &mut ended) {
            Ok(()) => {}
            Err(reason) => break Some(bad(reason)),
        }
        offset += nl as u64 + 1;
        rest = &rest[nl + 1..];
    };
    r.problem = problem.or_else(|| {
        (!r.closed).then(|| Problem {
            line: line_no + 1,
            offset,
            reason: if r.records == 0 {
                "empty recording".into()
            } else {
                format!(
                    "no closing checkpoint: records after #{} are not covered by a signature (cut short, or still being written)",
                    r.signed
                )
            },
            torn: r.records > 0,
        })
    });
    r
}

/// One line's checks; on success the report and chain state advance.
fn check(
    line: &[u8],
    seq: u64,
    prev: &mut [u8; 32],
    public: &mut Option<VerifyingKey>,
    given: Option<&VerifyingKey>,
    r: &mut Report,
    ended: &mut bool,
) -> Result<(), String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not a JSON record: {e}"))?;
    // One encoding per record: what a signature or hash covers cannot be re-spelled.
    if serde_json::to_vec(&v).ok().as_deref() != Some(line) {
        return Err("not in the canonical encoding (compact JSON, keys in order)".into());
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if v.get("v").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
        return Err(format!("not a version-{FORMAT_VERSION} record"));
    }
    let got = v.get("seq").and_then(Value::as_u64);
    if got != Some(seq) {
        return Err(match got {
            Some(g) => format!("out of order: seq {g} where {seq} was expected (records removed, repeated or moved)"),
            None => "no seq".into(),
        });
    }
    if r.closed {
        return Err("a record after the closing checkpoint".into());
    }
    let kind = s("type").ok_or("no type")?;
    if seq == 0 {
        if kind != "start" {
            return Err("the first record is not a session start".into());
        }
        let session = s("session").ok_or("the start record has no session id")?;
        let kid = s("signer").ok_or("the start record has no signer (key id)")?;
        let pk = s("signer_ed25519")
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or("the start record has no valid public key")?;
        if key_id(&pk) != kid {
            return Err("the key id does not match the public key".into());
        }
        if let Some(g) = given
            && *g != pk
        {
            return Err(format!(
                "signed by another key (id {kid}; the given key is {})",
                key_id(g)
            ));
        }
        *prev = genesis(session, kid);
        *public = Some(pk);
        r.session = Some(session.to_string());
        r.key_id = Some(kid.to_string());
    } else if kind == "start" {
        return Err("a second session start".into());
    }
    let expected = hex(prev);
    if s("prev") != Some(expected.as_str()) {
        return Err(if seq == 0 {
            "the first record is not bound to its session and key (prev)".into()
        } else {
            format!(
                "the chain is broken: prev is not the hash of line {seq} (line {seq} was altered, or records were removed, inserted or spliced here)"
            )
        });
    }
    if *ended && kind != "checkpoint" {
        return Err("a record after the session end".into());
    }
    match kind {
        "checkpoint" => {
            let sig = s("sig")
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|b| <[u8; 64]>::try_from(b).ok())
                .map(|b| Signature::from_bytes(&b))
                .ok_or("a checkpoint without a valid signature field")?;
            let session = r.session.as_deref().unwrap_or_default();
            let pk = public.as_ref().ok_or("no key")?;
            let mut unsigned = v.clone();
            if let Some(o) = unsigned.as_object_mut() {
                o.remove("sig");
            }
            let body = serde_json::to_vec(&unsigned).map_err(|e| e.to_string())?;
            pk.verify(&checkpoint_message(session, &body), &sig)
                .map_err(|_| "the checkpoint's signature does not verify".to_string())?;
            r.checkpoints += 1;
            r.signed = seq + 1;
            if v.get("final").and_then(Value::as_bool) == Some(true) {
                if !*ended {
                    return Err("a closing checkpoint before the session end".into());
                }
                r.closed = true;
            } else if *ended {
                return Err("a checkpoint after the session end that does not close it".into());
            }
        }
        "end" => *ended = true,
        _ => {}
    }
    *prev = Sha256::digest(line).into();
    r.records += 1;
    Ok(())
}

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

/// Text a human can read from an output record: UTF-8 text as it is; binary protocol bytes
/// (database rows) as their printable runs, separated by ` | `.
fn output_text(v: &Value) -> String {
    if let Some(t) = v.get("text").and_then(Value::as_str) {
        return t.to_string();
    }
    let bytes = v
        .get("data")
        .and_then(Value::as_str)
        .and_then(|b| STANDARD.decode(b).ok())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    text.split(|c: char| c.is_control() || c == '\u{fffd}')
        .filter(|p| p.trim().chars().count() >= 2)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Renders a recording as a transcript (records in file order; verify it first).
pub fn transcript(data: &[u8]) -> Transcript {
    let recs = records(data);
    let t0 = start_time(&recs);
    let mut lines = Vec::new();
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
            "output" => {
                let text = output_text(v);
                let text = text.trim_end();
                text.lines()
                    .map(|l| format!("{at} < {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            "masked" => format!(
                "{at} masked {} value(s)",
                v.get("count").and_then(Value::as_u64).unwrap_or(0)
            ),
            "notice" => format!("{at} notice: {}", s("message")),
            "error" => format!("{at} error from the {}: {}", s("side"), s("reason")),
            "end" => format!("{at} session end"),
            "checkpoint" => {
                let last = if v.get("final").and_then(Value::as_bool) == Some(true) {
                    " (closing)"
                } else {
                    ""
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
