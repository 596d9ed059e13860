//! `sluice record verify|replay|export|audit`: reading session recordings.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sluice_core::policy::grant::GrantKey;
use sluice_core::policy::{Dialect, Engine, HttpRequest, Identity, Request, SshRequest, Target};
use sluice_core::record;

#[derive(Subcommand, Debug)]
pub(crate) enum RecordCommand {
    /// Verify recordings: the hash chain, the order, the signatures, that each is closed.
    /// Names the first bad record. The parts of a rotated recording (`NAME.jsonl`,
    /// `NAME.1.jsonl`, …) are verified together as one chain. Exit 0 when every recording
    /// verifies, 1 when one does not.
    Verify {
        /// Recording files (JSON Lines).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The signer's public key (`FILE.pub` from `sluice keygen`); without it, signatures are
        /// checked against the key each recording names.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
    },
    /// Print a recording as a readable transcript.
    Replay {
        /// A recording file (or its parts, in order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Convert a recording (shell and SSH sessions: asciicast v2, for `asciinema play`).
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "asciicast")]
        format: ExportFormat,
        /// A recording file (or its parts, in order).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Decide every recorded command again under another policy and list what would now be
    /// decided differently. Exit 0 when nothing differs, 1 when something does.
    Audit {
        /// Recording files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The policy to decide under (YAML or JSON), or `agent-safe`.
        #[arg(long, value_name = "NEW")]
        policy: String,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(crate) enum ExportFormat {
    /// asciicast v2 (asciinema).
    Asciicast,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The parts given, concatenated (a rotated recording's parts form one chain).
fn read_all(files: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    for f in files {
        data.extend_from_slice(&read(f)?);
    }
    Ok(data)
}

/// A file of a recording and its contents.
type Part = (PathBuf, Vec<u8>);

/// The files given, read and grouped into recordings: the parts of one session (by the session
/// id and part number their first record names) together, in part order; a second file with
/// the same part (a copy) starts another group, and a file whose first record names neither
/// stands alone (and fails verification).
fn recordings(files: &[PathBuf]) -> Result<Vec<Vec<Part>>, String> {
    // (session id, [(part number, part)]).
    type Group = (Option<String>, Vec<(u64, Part)>);
    let mut groups: Vec<Group> = Vec::new();
    for f in files {
        let data = read(f)?;
        let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
        let v: Value = serde_json::from_slice(first).unwrap_or(Value::Null);
        let part = match v.get("type").and_then(Value::as_str) {
            Some("start") => Some(0),
            Some("continue") => v.get("part").and_then(Value::as_u64),
            _ => None,
        };
        let session = v
            .get("session")
            .and_then(Value::as_str)
            .filter(|_| part.is_some())
            .map(str::to_string);
        let part = part.unwrap_or(0);
        let entry = (part, (f.clone(), data));
        let home = groups
            .iter_mut()
            .find(|(s, g)| session.is_some() && *s == session && g.iter().all(|(p, _)| *p != part));
        match home {
            Some((_, g)) => g.push(entry),
            None => groups.push((session, vec![entry])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_by_key(|(part, _)| *part);
            g.into_iter().map(|(_, p)| p).collect()
        })
        .collect())
}

pub(crate) fn run(cmd: RecordCommand) -> Result<u8, String> {
    let mut out = std::io::stdout().lock();
    match cmd {
        RecordCommand::Verify { files, key } => {
            let key = match key {
                None => None,
                Some(p) => {
                    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    match GrantKey::parse(&text).map_err(|e| format!("{}: {e}", p.display()))? {
                        GrantKey::Ed25519Public(k) => Some(k),
                        GrantKey::Ed25519(k) => Some(k.verifying_key()),
                        GrantKey::Hmac(_) => {
                            return Err(format!(
                                "{}: recordings are signed with Ed25519 keys, not HMAC",
                                p.display()
                            ));
                        }
                    }
                }
            };
            let mut all_ok = true;
            for group in recordings(&files)? {
                let data: Vec<&[u8]> = group.iter().map(|(_, d)| d.as_slice()).collect();
                let report = record::verify_parts(&data, key.as_ref());
                all_ok &= report.is_ok();
                let names: Vec<String> = group.iter().map(|(p, _)| p.display().to_string()).collect();
                let at = match &report.problem {
                    Some(p) if group.len() > 1 => format!(" (in {})", names[p.input]),
                    _ => String::new(),
                };
                let _ = writeln!(out, "{}: {report}{at}", names.join(", "));
            }
            Ok(if all_ok { 0 } else { 1 })
        }
        RecordCommand::Replay { files } => {
            let data = read_all(&files)?;
            let _ = write!(out, "{}", record::transcript(&data));
            let report = record::verify(&data, None);
            if !report.is_ok() {
                eprintln!("warning: {}: {report}", files[0].display());
            }
            Ok(0)
        }
        RecordCommand::Export { format, files } => {
            let data = read_all(&files)?;
            match format {
                ExportFormat::Asciicast => {
                    let _ = out.write_all(record::asciicast(&data, 120, 32).as_bytes());
                }
            }
            Ok(0)
        }
        RecordCommand::Audit { files, policy, json } => {
            let engine = if policy == "agent-safe" {
                Engine::from_yaml("agent-safe", sluice_core::policy::AGENT_SAFE)
            } else {
                Engine::from_file(Path::new(&policy))
            }
            .map_err(|e| e.to_string())?;
            let mut changed = Vec::new();
            let mut decided = 0usize;
            let mut skipped = 0usize;
            for f in &files {
                let data = read(f)?;
                for (n, line) in data.split(|&b| b == b'\n').enumerate() {
                    let Ok(v) = serde_json::from_slice::<Value>(line) else {
                        continue;
                    };
                    if v.get("type").and_then(Value::as_str) != Some("decision") {
                        continue;
                    }
                    let Some(now) = redecide(&engine, &v) else {
                        skipped += 1;
                        continue;
                    };
                    decided += 1;
                    let was = v.get("action").and_then(Value::as_str).unwrap_or("");
                    if now.0 != was {
                        changed.push(json!({
                            "file": f.display().to_string(), "line": n + 1,
                            "command": v.get("command"), "user": v.get("user"), "target": v.get("target"),
                            "was": was, "was_rule": v.get("rule"),
                            "now": now.0, "now_rule": now.1, "now_reason": now.2,
                        }));
                    }
                }
            }
            if json {
                let doc = json!({"policy": engine.name(), "digest": engine.digest(), "decided": decided,
                    "not_redecidable": skipped, "changed": changed});
                let _ = writeln!(out, "{doc:#}");
            } else {
                for c in &changed {
                    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                    let _ = writeln!(
                        out,
                        "{}:{}: {} -> {} ({}): {}",
                        s("file"),
                        c["line"],
                        s("was"),
                        s("now"),
                        s("now_rule"),
                        s("command")
                    );
                }
                let _ = writeln!(
                    out,
                    "{decided} commands decided again under `{}`: {} would be decided differently{}",
                    engine.name(),
                    changed.len(),
                    if skipped > 0 {
                        format!(" ({skipped} could not be decided again)")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(if changed.is_empty() { 0 } else { 1 })
        }
    }
}

/// The decision `engine` makes on a recorded request: (action, rule, reason).
fn redecide(engine: &Engine, v: &Value) -> Option<(String, Option<String>, String)> {
    let r = v.get("request")?;
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    let id = Identity::new(v.get("user").and_then(Value::as_str).unwrap_or(""));
    let target = Target::new(v.get("target").and_then(Value::as_str).unwrap_or(""));
    let headers: Vec<(&str, &[u8])> = Vec::new();
    let request = if let Some(c) = s("shell") {
        Request::Shell(c)
    } else if let Some(text) = s("sql") {
        let dialect = match s("dialect") {
            Some("mysql") => Dialect::MySql,
            Some("postgres") => Dialect::Postgres,
            _ => return None,
        };
        Request::Sql {
            text,
            dialect,
            lexing: Default::default(),
        }
    } else if let (Some(method), Some(url)) = (s("method"), s("url")) {
        Request::Http(HttpRequest {
            method,
            url,
            headers: &headers,
            body: None,
        })
    } else if let Some(m) = s("mcp") {
        Request::Mcp(m.as_bytes())
    } else if let Some(c) = s("ssh_exec") {
        Request::Ssh(SshRequest::Exec(c))
    } else if let Some(name) = s("ssh_subsystem") {
        Request::Ssh(SshRequest::Subsystem(name))
    } else if r.get("ssh_shell").is_some() {
        Request::Ssh(SshRequest::Shell)
    } else {
        return None;
    };
    let d = engine.decide(&id, &target, &request);
    let action = serde_json::to_value(d.action()).ok()?.as_str()?.to_string();
    Some((action, d.rule().map(str::to_string), d.reason().to_string()))
}
