//! `sluice hook AGENT EVENT`: Sluice as a coding agent's hook, and `sluice hook install |
//! uninstall | doctor` to put it there.
//!
//! The agent runs the hook on each tool call (and prompt) with a JSON payload on stdin. The hook
//! turns the call into what it does ([`agents::Step`]: a shell command, a file read or write, a
//! fetch, an MCP call, text leaving the machine), decides each through the same engine the
//! proxies use (shell analysis, path rules as the shell analysis sees them, the HTTP and MCP
//! policy), scans text being sent or written for secrets, masks secrets in tool output, and
//! answers in the agent's own format. Anything it cannot read or does not know is refused or put
//! to the policy's `uncertain` action; a failure exits 2, which every supported agent treats as
//! "blocked".

mod agents;
mod install;

use std::cell::OnceCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use sluice_core::Detector;
use sluice_core::policy::grant::GrantKey;
use sluice_core::policy::{Action, Decision, Engine, HttpRequest, Identity, Request, Target};
use sluice_core::record::{FileSink, RecordOptions, Recorder, SessionStart};

use agents::{Call, Kind, Masked, Outcome, Reply, Step, Verdict};

/// The coding agents Sluice can guard.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Agent {
    /// Claude Code (`.claude/settings.json`).
    ClaudeCode,
    /// Cursor (`.cursor/hooks.json`).
    Cursor,
    /// Gemini CLI (`.gemini/settings.json`).
    Gemini,
    /// Codex CLI (`.codex/hooks.json`).
    Codex,
}

impl Agent {
    pub(crate) const ALL: [Agent; 4] = [Agent::ClaudeCode, Agent::Cursor, Agent::Gemini, Agent::Codex];

    /// The name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Cursor => "cursor",
            Agent::Gemini => "gemini",
            Agent::Codex => "codex",
        }
    }
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct HookArgs {
    #[command(subcommand)]
    manage: Option<Manage>,
    /// The agent whose hook this is.
    #[arg(value_enum, required = true)]
    agent: Option<Agent>,
    /// The hook event, as the agent names it (`PreToolUse`, `beforeShellExecution`, `BeforeTool`, …).
    #[arg(required = true)]
    event: Option<String>,
    #[command(flatten)]
    opts: HookOptions,
}

/// How the hook decides; `install` writes these into the agent's hook command.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct HookOptions {
    /// Policy file (YAML or JSON). Default: the embedded agent-safe policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The acting user, as policy rules see it. Default: $USER.
    #[arg(long)]
    user: Option<String>,
    /// The target name policy rules see for local tools. Default: the agent's name.
    #[arg(long)]
    target: Option<String>,
    /// A rule file (TOML) to add to the built-in secret rules; may be repeated.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Record every decision to a new signed recording in DIR (needs --record-key).
    #[arg(long, value_name = "DIR", requires = "record_key")]
    record: Option<PathBuf>,
    /// Ed25519 key (from `sluice keygen --type ed25519`) that signs recordings.
    #[arg(long, value_name = "FILE", requires = "record")]
    record_key: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Manage {
    /// Add Sluice to an agent's hook settings (idempotent: other hooks are kept, Sluice's own
    /// entries are replaced).
    Install(install::InstallArgs),
    /// Remove Sluice from an agent's hook settings, keeping everything else.
    Uninstall(install::ScopeArgs),
    /// Show where Sluice is installed and run one test event through each installed hook.
    Doctor(install::DoctorArgs),
}

/// Longest payload read; a bigger one is refused rather than half-read.
const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

pub(crate) fn run(args: HookArgs) -> Result<u8, String> {
    match args.manage {
        Some(Manage::Install(a)) => return install::install(&a),
        Some(Manage::Uninstall(a)) => return install::uninstall(&a),
        Some(Manage::Doctor(a)) => return install::doctor(&a),
        None => {}
    }
    let (Some(agent), Some(event)) = (args.agent, args.event) else {
        return Err("usage: sluice hook AGENT EVENT (or install | uninstall | doctor)".into());
    };
    let mut payload = Vec::new();
    let reply = match std::io::stdin().lock().take(MAX_PAYLOAD + 1).read_to_end(&mut payload) {
        Err(e) => Reply::error(&format!("cannot read the hook payload: {e}")),
        Ok(_) if payload.len() as u64 > MAX_PAYLOAD => Reply::error(&format!(
            "the hook payload is over {} MiB: refused without inspection",
            MAX_PAYLOAD >> 20
        )),
        Ok(_) => handle(agent, &event, &payload, &args.opts),
    };
    let mut out = std::io::stdout().lock();
    if !reply.stdout.is_empty() {
        let _ = writeln!(out, "{}", reply.stdout);
    }
    let _ = out.flush();
    if !reply.stderr.is_empty() {
        let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
    }
    Ok(reply.code)
}

/// Decides on one payload and answers as `agent` expects; every failure is a blocking error.
pub(crate) fn handle(agent: Agent, event: &str, payload: &[u8], opts: &HookOptions) -> Reply {
    match try_handle(agent, event, payload, opts) {
        Ok(r) => r,
        Err(e) => Reply::error(&e),
    }
}

fn try_handle(agent: Agent, event: &str, payload: &[u8], opts: &HookOptions) -> Result<Reply, String> {
    let kind = agents::kind_of(agent, event)?;
    let p: Value = serde_json::from_slice(payload).map_err(|e| format!("the hook payload is not JSON: {e}"))?;
    let call = agents::read(agent, event, kind, &p)?;
    let checker = Checker::new(agent, opts)?;
    let session = p
        .get("session_id")
        .or_else(|| p.get("conversation_id"))
        .and_then(Value::as_str)
        .unwrap_or("");
    checker.begin(event, session)?;
    let reply = match &call {
        Call::Tool { tool, steps } => {
            checker.note(&format!("{event}: tool `{tool}`"));
            let v = checker.tool(steps)?;
            agents::pre_tool_reply(agent, event, kind, &v)
        }
        Call::Prompt(text) => {
            let what = if kind == Kind::Model {
                "the request to the model"
            } else {
                "the prompt"
            };
            let refusal = checker.secrets(what, text)?;
            if let Some(v) = &refusal {
                checker.note(&format!("{event}: refused: {}", v.reason));
            }
            agents::prompt_reply(agent, refusal.as_ref())
        }
        Call::Output { tool, output } => {
            let masked = checker.mask(output)?;
            if let Some(m) = &masked {
                checker.note(&format!("{event}: tool `{tool}`: masked {}", m.summary));
            }
            agents::post_tool_reply(agent, masked.as_ref())
        }
    };
    checker.end()?;
    Ok(reply)
}

/// Quotes a word for a POSIX shell, so the analysis reads it back as one literal word.
pub(crate) fn shell_quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-:=@%+,".contains(&b));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Decides the steps of one event, with the engine, the detector (built only when text must be
/// scanned) and the recorder.
struct Checker {
    policy: Option<PathBuf>,
    engine: OnceCell<Arc<Engine>>,
    identity: Identity,
    target: Target,
    rules: crate::RuleSource,
    detector: OnceCell<Arc<Detector>>,
    recorder: OnceCell<Recorder>,
    record: Option<(PathBuf, ed25519_dalek::SigningKey)>,
    agent: Agent,
}

impl Checker {
    fn new(agent: Agent, opts: &HookOptions) -> Result<Checker, String> {
        let user = opts
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "agent".into());
        let record = match (&opts.record, &opts.record_key) {
            (Some(dir), Some(key)) => Some((dir.clone(), record_key(key)?)),
            _ => None,
        };
        Ok(Checker {
            policy: opts.policy.clone(),
            engine: OnceCell::new(),
            identity: Identity::new(user),
            target: Target::new(opts.target.clone().unwrap_or_else(|| agent.name().to_string())),
            rules: crate::RuleSource {
                rules: opts.rules.clone(),
                no_builtin_rules: false,
                // A hook scans a few kilobytes once: the pure-Rust pass costs nothing to set
                // up, where a Hyperscan database takes milliseconds to compile.
                backend: Some(sluice_core::Backend::Rust),
            },
            detector: OnceCell::new(),
            recorder: OnceCell::new(),
            record,
            agent,
        })
    }

    /// The policy, loaded when first needed (a prompt check needs none).
    fn engine(&self) -> Result<&Arc<Engine>, String> {
        if let Some(e) = self.engine.get() {
            return Ok(e);
        }
        let e = crate::policy::load_engine(self.policy.as_deref())?;
        Ok(self.engine.get_or_init(|| e))
    }

    fn detector(&self) -> Result<&Arc<Detector>, String> {
        if let Some(d) = self.detector.get() {
            return Ok(d);
        }
        let d = Arc::new(crate::build_detector(&self.rules)?);
        Ok(self.detector.get_or_init(|| d))
    }

    /// Starts the recording of this event, when recording.
    fn begin(&self, event: &str, session: &str) -> Result<(), String> {
        let Some((dir, key)) = &self.record else {
            return Ok(());
        };
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| e.to_string())?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{}-{id}.jsonl", self.agent.name()));
        let sink = FileSink::create(&path).map_err(|e| format!("cannot record to {}: {e}", path.display()))?;
        let start = SessionStart::new("hook")
            .session_id(id)
            .user(self.identity.user.clone())
            .target(self.target.name.clone());
        let engine = self.engine()?;
        let start = start.policy(engine.name(), engine.digest());
        let rec = Recorder::start(Box::new(sink), key, start, RecordOptions::default())
            .map_err(|e| format!("cannot record to {}: {e}", path.display()))?
            .with_detector(Arc::clone(self.detector()?));
        rec.notice(
            "hook",
            &format!("{} {event} (agent session {session})", self.agent.name()),
        );
        let _ = self.recorder.set(rec);
        Ok(())
    }

    fn with_recorder(&self, f: impl FnOnce(&Recorder)) {
        if let Some(rec) = self.recorder.get() {
            f(rec);
        }
    }

    fn note(&self, message: &str) {
        self.with_recorder(|r| r.notice("hook", message));
    }

    /// Closes the recording; a recording that failed fails the hook (closed).
    fn end(self) -> Result<(), String> {
        match self.recorder.into_inner() {
            Some(rec) => rec.close().map_err(|e| format!("the recording failed: {e}")),
            None => Ok(()),
        }
    }

    /// The worst verdict of a tool call's steps.
    fn tool(&self, steps: &[Step]) -> Result<Verdict, String> {
        let mut worst = Verdict {
            outcome: Outcome::Allow,
            rule: None,
            reason: "nothing to object to".into(),
        };
        for s in steps {
            let v = self.step(s)?;
            if v.outcome > worst.outcome {
                worst = v;
            }
            if worst.outcome == Outcome::Deny {
                break;
            }
        }
        Ok(worst)
    }

    fn step(&self, s: &Step) -> Result<Verdict, String> {
        let q = |p: &str| shell_quote(p);
        Ok(match s {
            Step::Shell(c) => self.decide(&Request::Shell(c), c, None)?,
            Step::Read(p) => self.shell(&format!("cat -- {}", q(p)))?,
            Step::List(p) => self.shell(&format!("ls -- {}", q(p)))?,
            Step::Search { pattern, path } => self.shell(&format!("grep -r -e {} -- {}", q(pattern), q(path)))?,
            Step::Delete(p) => self.shell(&format!("rm -- {}", q(p)))?,
            Step::Write { path, content } => match self.secrets(&format!("the text to write to {path}"), content)? {
                Some(v) => v,
                None => self.shell(&format!("cat > {}", q(path)))?,
            },
            Step::Fetch(url) => match self.secrets("the URL to fetch", url)? {
                Some(v) => v,
                None => {
                    let req = Request::Http(HttpRequest {
                        method: "GET",
                        url,
                        headers: &[],
                        body: None,
                    });
                    self.decide(&req, &format!("GET {url}"), None)?
                }
            },
            Step::Mcp {
                server,
                tool,
                arguments,
            } => {
                let mut text = String::new();
                agents::collect_strings(arguments, &mut text);
                match self.secrets(&format!("the arguments of MCP tool `{tool}`"), &text)? {
                    Some(v) => v,
                    None => {
                        let msg = json!({
                            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                            "params": { "name": tool, "arguments": arguments },
                        })
                        .to_string();
                        let target = (!server.is_empty()).then(|| Target::new(server.clone()));
                        self.decide(&Request::Mcp(msg.as_bytes()), &msg, target.as_ref())?
                    }
                }
            }
            Step::Text { what, text } => self.secrets(what, text)?.unwrap_or(Verdict {
                outcome: Outcome::Allow,
                rule: None,
                reason: format!("{what} holds no secret"),
            }),
            Step::Unknown(tool) => {
                let reason = format!("Sluice does not know what the tool `{tool}` does, so it was not checked");
                self.note(&format!("uncertain: {reason}"));
                Verdict {
                    outcome: outcome(self.engine()?.uncertain_action()),
                    rule: Some("unknown-tool".into()),
                    reason,
                }
            }
        })
    }

    fn shell(&self, command: &str) -> Result<Verdict, String> {
        self.decide(&Request::Shell(command), command, None)
    }

    fn decide(&self, req: &Request<'_>, command: &str, target: Option<&Target>) -> Result<Verdict, String> {
        let target = target.unwrap_or(&self.target);
        let d: Decision = self.engine()?.decide(&self.identity, target, req);
        self.with_recorder(|r| r.decision(req, &self.identity.user, &target.name, command, &d));
        Ok(Verdict {
            outcome: outcome(d.action()),
            rule: d.rule().map(str::to_string),
            reason: d.reason().to_string(),
        })
    }

    /// A refusal when `text` holds a secret: the rules and lines, never the value.
    fn secrets(&self, what: &str, text: &str) -> Result<Option<Verdict>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        let found = self.detector()?.scan(text.as_bytes());
        let Some(first) = found.first() else {
            return Ok(None);
        };
        let mut places: Vec<String> = found
            .iter()
            .take(5)
            .map(|f| format!("{} at line {}", f.rule, f.line))
            .collect();
        if found.len() > 5 {
            places.push(format!("{} more", found.len() - 5));
        }
        let reason = format!(
            "{what} holds {} ({}); remove it or use a placeholder",
            plural(found.len(), "secret"),
            places.join(", ")
        );
        self.with_recorder(|r| r.notice("hook", &format!("refused: {reason}")));
        Ok(Some(Verdict {
            outcome: Outcome::Deny,
            rule: Some(first.rule.to_string()),
            reason,
        }))
    }

    /// The output with every secret masked, or `None` when it held none.
    fn mask(&self, output: &Value) -> Result<Option<Masked>, String> {
        let det = self.detector()?;
        let mut rules: Vec<String> = Vec::new();
        let mut count = 0usize;
        let masked = mask_value(det, output, &mut count, &mut rules);
        if count == 0 {
            return Ok(None);
        }
        self.with_recorder(|r| r.masked("hook", count));
        let mut text = String::new();
        agents::collect_strings(&masked, &mut text);
        rules.sort();
        rules.dedup();
        Ok(Some(Masked {
            output: masked,
            text,
            summary: format!("{} ({})", plural(count, "secret"), rules.join(", ")),
        }))
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn outcome(a: Action) -> Outcome {
    match a {
        Action::Allow => Outcome::Allow,
        Action::RequireApproval => Outcome::Ask,
        // Deny, and anything a later policy version adds: refused.
        _ => Outcome::Deny,
    }
}

/// Every string in `v` with its secrets masked (object keys too), counting what was found.
fn mask_value(det: &Detector, v: &Value, count: &mut usize, rules: &mut Vec<String>) -> Value {
    match v {
        Value::String(s) => Value::String(mask_text(det, s, count, rules)),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_value(det, x, count, rules)).collect()),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                let k = mask_text(det, k, count, rules);
                let x = mask_value(det, x, count, rules);
                out.insert(k, x);
            }
            Value::Object(out)
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
    }
}

fn mask_text(det: &Detector, s: &str, count: &mut usize, rules: &mut Vec<String>) -> String {
    let found = det.scan(s.as_bytes());
    if found.is_empty() {
        return s.to_string();
    }
    *count += found.len();
    rules.extend(found.iter().map(|f| f.rule.to_string()));
    String::from_utf8_lossy(&det.redact(s.as_bytes())).into_owned()
}

fn record_key(path: &Path) -> Result<ed25519_dalek::SigningKey, String> {
    match crate::policy::read_key(path)? {
        GrantKey::Ed25519(k) => Ok(k),
        _ => Err(format!(
            "{}: recordings are signed with an Ed25519 secret key (`sluice keygen --type ed25519`)",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(agent: Agent, event: &str, payload: Value) -> Reply {
        handle(agent, event, payload.to_string().as_bytes(), &HookOptions::default())
    }

    #[test]
    fn quoting_round_trips_through_the_shell_analysis() {
        for w in ["plain", "with space", "it's", "$(x)", "", "-n", "a\nb"] {
            let q = shell_quote(w);
            let a = sluice_protocols::shell::analyze(&format!("echo {q}"), &Default::default()).expect("parses");
            assert_eq!(a.commands[0].argv[1], w, "{q}");
        }
    }

    #[test]
    fn a_claude_code_read_of_credentials_is_denied_and_source_is_not() {
        let deny = run(
            Agent::ClaudeCode,
            "PreToolUse",
            json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/home/dev/.aws/credentials"}}),
        );
        assert!(deny.stdout.contains("\"permissionDecision\":\"deny\""), "{deny:?}");
        let ok = run(
            Agent::ClaudeCode,
            "PreToolUse",
            json!({"hook_event_name": "PreToolUse", "tool_name": "Read", "tool_input": {"file_path": "/home/dev/proj/src/main.rs"}}),
        );
        assert_eq!(ok, Reply::default());
    }

    #[test]
    fn garbage_and_mismatched_events_block() {
        let r = handle(Agent::ClaudeCode, "PreToolUse", b"{not json", &HookOptions::default());
        assert_eq!(r.code, 2);
        let r = run(
            Agent::ClaudeCode,
            "PreToolUse",
            json!({"hook_event_name": "PostToolUse"}),
        );
        assert_eq!(r.code, 2);
        let r = run(Agent::ClaudeCode, "Stop", json!({}));
        assert_eq!(r.code, 2);
    }
}
