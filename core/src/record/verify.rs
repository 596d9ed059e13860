//! Verifying recordings: the first bad record and why.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;
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
    /// Parts read (1 unless the recording was rotated).
    pub parts: u64,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// The first thing wrong with a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which of the inputs given to [`verify_parts`] holds it (0 for [`verify`]).
    pub input: usize,
    /// Its line in that input (1-based).
    pub line: u64,
    /// The byte offset of that line in that input.
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
                "ok: session {}, {} records{}, {} checkpoints, closed, key {}{}",
                self.session.as_deref().unwrap_or("?"),
                self.records,
                if self.parts > 1 {
                    format!(" in {} parts", self.parts)
                } else {
                    String::new()
                },
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
    verify_parts(&[data], key)
}

/// Verifies a recording written in parts (rotated files, in order: part 0 first) as one chain:
/// each input but the last must end where its part ends, and the next must begin the part
/// named there. A missing, repeated or reordered part is named like a bad record.
pub fn verify_parts(parts: &[&[u8]], key: Option<&VerifyingKey>) -> Report {
    let mut r = Report {
        key_given: key.is_some(),
        ..Report::default()
    };
    let mut c = Chain {
        prev: [0u8; 32],
        public: None,
        ended: false,
        part: 0,
        next_part: None,
        given: key,
    };
    let mut seq = 0u64;
    let (mut input, mut line_no, mut offset) = (0usize, 0u64, 0u64);
    let problem = 'all: {
        for (i, data) in parts.iter().enumerate() {
            (input, line_no, offset) = (i, 0, 0);
            if i > 0 && c.next_part.is_none() {
                break 'all Some(Problem {
                    input,
                    line: 1,
                    offset: 0,
                    reason: format!(
                        "another input follows, but input {} does not end its part (not a later part of the same recording, or given out of order)",
                        i - 1
                    ),
                    torn: false,
                });
            }
            let mut rest = *data;
            while !rest.is_empty() {
                line_no += 1;
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    break 'all Some(Problem {
                        input,
                        line: line_no,
                        offset,
                        reason: "the last record is torn (no end of line): the recording was cut while writing".into(),
                        torn: true,
                    });
                };
                if let Err(reason) = c.check(&rest[..nl], seq, &mut r) {
                    break 'all Some(Problem {
                        input,
                        line: line_no,
                        offset,
                        reason,
                        torn: false,
                    });
                }
                seq += 1;
                offset += nl as u64 + 1;
                rest = &rest[nl + 1..];
            }
        }
        None
    };
    r.parts = c.part + 1;
    r.problem = problem.or_else(|| {
        (!r.closed).then(|| Problem {
            input,
            line: line_no + 1,
            offset,
            reason: if r.records == 0 {
                "empty recording".into()
            } else if let Some(n) = c.next_part {
                format!("the recording goes on in part {n}, which was not given")
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

/// What verification carries from one record to the next.
struct Chain<'k> {
    /// The hash of the last record.
    prev: [u8; 32],
    /// The signer the start record names.
    public: Option<VerifyingKey>,
    /// An `end` record was read.
    ended: bool,
    /// The part being read.
    part: u64,
    /// The last record ended its part: the next must begin this one.
    next_part: Option<u64>,
    /// The key the caller gave.
    given: Option<&'k VerifyingKey>,
}

impl Chain<'_> {
    /// One record's checks; on success the report and the chain advance.
    fn check(&mut self, line: &[u8], seq: u64, r: &mut Report) -> Result<(), String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("not a JSON record: {e}"))?;
        // One encoding per record: what a signature or hash covers cannot be re-spelled.
        if serde_json::to_vec(&v).ok().as_deref() != Some(line) {
            return Err("not in the canonical encoding (compact JSON, keys in order)".into());
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        if v.get("v").and_then(Value::as_u64) != Some(FORMAT_VERSION) {
            return Err(format!("not a version-{FORMAT_VERSION} record"));
        }
        let kind = s("type").ok_or("no type")?;
        if let Some(n) = self.next_part {
            if kind != "continue" || v.get("part").and_then(Value::as_u64) != Some(n) {
                return Err(format!(
                    "part {n} should begin here (a part is missing, repeated or out of order)"
                ));
            }
        } else if kind == "continue" {
            return Err("a part begins where none ended".into());
        }
        let got = v.get("seq").and_then(Value::as_u64);
        if got != Some(seq) {
            return Err(match got {
                Some(g) => {
                    format!("out of order: seq {g} where {seq} was expected (records removed, repeated or moved)")
                }
                None => "no seq".into(),
            });
        }
        if r.closed {
            return Err("a record after the closing checkpoint".into());
        }
        if seq == 0 {
            if kind != "start" {
                return Err("the first record is not a session start (is part 0 missing?)".into());
            }
            let session = s("session").ok_or("the start record has no session id")?;
            let (kid, pk) = signer(&v)?;
            if let Some(g) = self.given
                && *g != pk
            {
                return Err(format!(
                    "signed by another key (id {kid}; the given key is {})",
                    key_id(g)
                ));
            }
            self.prev = genesis(session, &kid);
            self.public = Some(pk);
            r.session = Some(session.to_string());
            r.key_id = Some(kid);
        } else if kind == "start" {
            return Err("a second session start".into());
        }
        if kind == "continue" {
            let (kid, pk) = signer(&v)?;
            if s("session") != r.session.as_deref() || Some(&pk) != self.public.as_ref() {
                return Err(format!(
                    "a part of another recording (session {}, key {kid})",
                    s("session").unwrap_or("?")
                ));
            }
        }
        let expected = hex(&self.prev);
        if s("prev") != Some(expected.as_str()) {
            return Err(if seq == 0 {
                "the first record is not bound to its session and key (prev)".into()
            } else {
                format!(
                    "the chain is broken: prev is not the hash of record {} (it was altered, or records were removed, inserted or spliced here)",
                    seq - 1
                )
            });
        }
        if self.ended && kind != "checkpoint" {
            return Err("a record after the session end".into());
        }
        self.next_part = None;
        match kind {
            "checkpoint" => self.checkpoint(&v, seq, r)?,
            "end" => self.ended = true,
            "continue" => self.part += 1,
            _ => {}
        }
        self.prev = Sha256::digest(line).into();
        r.records += 1;
        Ok(())
    }

    fn checkpoint(&mut self, v: &Value, seq: u64, r: &mut Report) -> Result<(), String> {
        let sig = v
            .get("sig")
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or("a checkpoint without a valid signature field")?;
        let session = r.session.as_deref().unwrap_or_default();
        let pk = self.public.as_ref().ok_or("no key")?;
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
            if !self.ended {
                return Err("a closing checkpoint before the session end".into());
            }
            r.closed = true;
        } else if self.ended {
            return Err("a checkpoint after the session end that does not close it".into());
        } else if let Some(n) = v.get("next_part").and_then(Value::as_u64) {
            if n != self.part + 1 {
                return Err(format!("part {} ends naming part {n} next", self.part));
            }
            self.next_part = Some(n);
        }
        Ok(())
    }
}

/// The signer a `start` or `continue` record names: its key id and public key, checked against
/// each other.
fn signer(v: &Value) -> Result<(String, VerifyingKey), String> {
    let kid = v.get("signer").and_then(Value::as_str).ok_or("no signer (key id)")?;
    let pk = v
        .get("signer_ed25519")
        .and_then(Value::as_str)
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or("no valid public key")?;
    if key_id(&pk) != kid {
        return Err("the key id does not match the public key".into());
    }
    Ok((kid.to_string(), pk))
}
