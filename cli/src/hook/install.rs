//! `sluice hook install | uninstall | doctor`: Sluice in an agent's hook settings.
//!
//! Settings files are edited in place, keeping every key, its order and every other hook;
//! Sluice's own entries (a command running `sluice … hook AGENT …`) are replaced, so installing
//! twice leaves the file as installing once. Writes go to a temporary file renamed over the old
//! one, so a crash leaves either the old settings or the new.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::agents::{Kind, events};
use super::{Agent, HookOptions};

#[derive(Args, Debug)]
pub(crate) struct ScopeArgs {
    /// The agent.
    #[arg(value_enum)]
    agent: Agent,
    /// The project's settings (in --dir), the default.
    #[arg(long, conflicts_with = "user")]
    project: bool,
    /// The user's settings (in the home directory): every project.
    #[arg(long)]
    user: bool,
    /// The project directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct InstallArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Hook timeout in seconds (the agent gives up on the hook after it).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    timeout: u64,
    #[command(flatten)]
    opts: HookOptions,
}

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Only this agent (default: all four).
    #[arg(value_enum)]
    agent: Option<Agent>,
    /// The project directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// A JSON value that keeps its objects' key order (settings files are the user's).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key` of an object, added (as `default`) when missing.
    fn entry(&mut self, key: &str, default: Json) -> Result<&mut Json, String> {
        let Json::Object(m) = self else {
            return Err(format!("`{key}`'s parent is not a JSON object"));
        };
        let i = match m.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                m.push((key.to_string(), default));
                m.len() - 1
            }
        };
        Ok(&mut m[i].1)
    }

    fn remove(&mut self, key: &str) {
        if let Json::Object(m) = self {
            m.retain(|(k, _)| k != key);
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(n)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a number JSON cannot hold"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
                Ok(Json::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut m: Vec<(String, Json)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    match m.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => m.push((k, v)),
                    }
                }
                Ok(Json::Object(m))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(x) => s.serialize_str(x),
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Json::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn home() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| "HOME is not set: cannot find the user's settings".to_string())
}

/// The settings file Sluice's hooks go in.
fn settings_path(agent: Agent, user: bool, dir: &Path) -> Result<PathBuf, String> {
    let base = if user {
        match (agent, std::env::var_os("CODEX_HOME")) {
            (Agent::Codex, Some(h)) if !h.is_empty() => return Ok(PathBuf::from(h).join("hooks.json")),
            _ => home()?,
        }
    } else {
        dir.to_path_buf()
    };
    Ok(match agent {
        Agent::ClaudeCode => base.join(".claude/settings.json"),
        Agent::Cursor => base.join(".cursor/hooks.json"),
        Agent::Gemini => base.join(".gemini/settings.json"),
        Agent::Codex => base.join(".codex/hooks.json"),
    })
}

/// Whether a hook command is one of Sluice's, for `agent`.
fn is_ours(command: &str, agent: Agent) -> bool {
    command.contains("sluice") && command.contains(&format!(" hook {} ", agent.name()))
}

/// The command line an agent runs for `event`: this very binary, with the options.
fn command_line(agent: Agent, event: &str, opts: &HookOptions) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the sluice binary: {e}"))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let path = |p: &Path| -> Result<String, String> {
        let abs = std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(super::shell_quote(&abs.to_string_lossy()))
    };
    // The `sluice` binary itself, or, when this runs inside Python (the wheel's console script),
    // that interpreter with the package.
    let program = if exe
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("sluice"))
    {
        super::shell_quote(&exe.to_string_lossy())
    } else {
        format!("{} -m sluice", super::shell_quote(&exe.to_string_lossy()))
    };
    let mut words = vec![program, "hook".to_string(), agent.name().to_string(), event.to_string()];
    if let Some(p) = &opts.policy {
        words.push(format!("--policy {}", path(p)?));
    }
    if let Some(u) = &opts.user {
        words.push(format!("--user {}", super::shell_quote(u)));
    }
    if let Some(t) = &opts.target {
        words.push(format!("--target {}", super::shell_quote(t)));
    }
    for r in &opts.rules {
        words.push(format!("--rules {}", path(r)?));
    }
    if let (Some(d), Some(k)) = (&opts.record, &opts.record_key) {
        words.push(format!("--record {} --record-key {}", path(d)?, path(k)?));
    }
    Ok(words.join(" "))
}

fn read_settings(path: &Path) -> Result<Json, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Json::Object(Vec::new())),
        Ok(text) => {
            let v: Json = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not valid JSON ({e}); fix it or move it away, nothing was changed",
                    path.display()
                )
            })?;
            match v {
                Json::Object(_) => Ok(v),
                _ => Err(format!(
                    "{} does not hold a JSON object; nothing was changed",
                    path.display()
                )),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Json::Object(Vec::new())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_settings(path: &Path, v: &Json) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    text.push('\n');
    let tmp = path.with_extension("json.sluice-tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        // Keep the file's permissions (settings may be private).
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Removes Sluice's entries for `agent` from every event of a hooks object; events left empty
/// by that are removed. Returns how many entries went.
fn remove_ours(hooks: &mut Json, agent: Agent) -> usize {
    let Json::Object(events) = hooks else {
        return 0;
    };
    let mut removed = 0;
    let mut emptied = Vec::new();
    for (event, list) in events.iter_mut() {
        let Json::Array(groups) = list else { continue };
        let had = groups.len();
        groups.retain_mut(|g| {
            // Cursor: the entry itself holds the command.
            if g.get("command")
                .and_then(Json::as_str)
                .is_some_and(|c| is_ours(c, agent))
            {
                removed += 1;
                return false;
            }
            // Claude Code, Gemini, Codex: a group with a `hooks` list.
            if let Some(Json::Array(inner)) = g.get_mut("hooks") {
                let n = inner.len();
                inner.retain(|h| {
                    !h.get("command")
                        .and_then(Json::as_str)
                        .is_some_and(|c| is_ours(c, agent))
                });
                removed += n - inner.len();
                // A group that held only Sluice's hooks goes with them.
                if inner.is_empty() && n > 0 {
                    return false;
                }
            }
            true
        });
        if had > 0 && groups.is_empty() {
            emptied.push(event.clone());
        }
    }
    events.retain(|(event, _)| !emptied.contains(event));
    removed
}

/// The hook entry for one event, in the agent's format.
fn entry(agent: Agent, kind: Kind, command: String, timeout: u64) -> Json {
    let obj = |pairs: Vec<(&str, Json)>| Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    let s = |x: &str| Json::String(x.to_string());
    let tool_event = matches!(kind, Kind::PreTool | Kind::PostTool | Kind::Permission);
    match agent {
        Agent::Cursor => obj(vec![
            ("command", Json::String(command)),
            ("timeout", Json::Number(timeout.into())),
            // Cursor blocks the action when the hook fails or times out.
            ("failClosed", Json::Bool(true)),
        ]),
        Agent::ClaudeCode | Agent::Codex | Agent::Gemini => {
            let mut hook = vec![("type", s("command")), ("command", Json::String(command))];
            if agent == Agent::Gemini {
                hook.insert(0, ("name", s("sluice")));
                // Gemini counts in milliseconds.
                hook.push(("timeout", Json::Number((timeout * 1000).into())));
            } else {
                hook.push(("timeout", Json::Number(timeout.into())));
            }
            let mut group = Vec::new();
            // Codex's matcher is a regular expression (none matches every tool); the others
            // take `*`.
            if tool_event && agent != Agent::Codex {
                group.push(("matcher", s("*")));
            }
            group.push(("hooks", Json::Array(vec![obj(hook)])));
            obj(group)
        }
    }
}

/// Adds Sluice to `settings` (replacing its earlier entries).
fn add_ours(settings: &mut Json, agent: Agent, opts: &HookOptions, timeout: u64) -> Result<(), String> {
    if agent == Agent::Cursor && settings.get("version").is_none() {
        settings.entry("version", Json::Number(1.into()))?;
    }
    let hooks = settings.entry("hooks", Json::Object(Vec::new()))?;
    if !matches!(hooks, Json::Object(_)) {
        return Err("the settings' `hooks` is not a JSON object".into());
    }
    remove_ours(hooks, agent);
    for &(event, kind) in events(agent) {
        let cmd = command_line(agent, event, opts)?;
        let list = hooks.entry(event, Json::Array(Vec::new()))?;
        match list {
            Json::Array(a) => a.push(entry(agent, kind, cmd, timeout)),
            _ => return Err(format!("the settings' `hooks.{event}` is not a list")),
        }
    }
    Ok(())
}

pub(crate) fn install(a: &InstallArgs) -> Result<u8, String> {
    let path = settings_path(a.scope.agent, a.scope.user, &a.scope.dir)?;
    let mut settings = read_settings(&path)?;
    let before = settings.clone();
    add_ours(&mut settings, a.scope.agent, &a.opts, a.timeout)?;
    // Claude Code and Gemini can switch every hook off; a guard that is off guards nothing.
    let mut notes = Vec::new();
    if a.scope.agent == Agent::ClaudeCode && settings.get("disableAllHooks") == Some(&Json::Bool(true)) {
        settings.remove("disableAllHooks");
        notes.push("removed `disableAllHooks: true`");
    }
    if a.scope.agent == Agent::Gemini
        && let Some(hooks) = settings.get_mut("hooks")
    {
        // Gemini keeps its switches in `hooks`: `enabled`, and `disabled` (hook names).
        if hooks.get("enabled") == Some(&Json::Bool(false)) {
            *hooks.entry("enabled", Json::Bool(true))? = Json::Bool(true);
            notes.push("set `hooks.enabled` to true");
        }
        if let Some(Json::Array(names)) = hooks.get_mut("disabled") {
            let n = names.len();
            names.retain(|x| x.as_str() != Some("sluice"));
            if names.len() != n {
                notes.push("removed `sluice` from `hooks.disabled`");
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if settings == before {
        let _ = writeln!(
            out,
            "{}: Sluice is already installed for {}",
            path.display(),
            a.scope.agent.name()
        );
        return Ok(0);
    }
    write_settings(&path, &settings)?;
    let names: Vec<&str> = events(a.scope.agent).iter().map(|(e, _)| *e).collect();
    let _ = writeln!(
        out,
        "{}: Sluice installed for {} ({}){}",
        path.display(),
        a.scope.agent.name(),
        names.join(", "),
        if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join(", "))
        }
    );
    if a.scope.agent == Agent::Codex {
        let _ = writeln!(
            out,
            "note: Codex runs hooks unless `[features] hooks = false` is set in its config.toml; `sluice hook doctor codex` checks"
        );
    }
    Ok(0)
}

pub(crate) fn uninstall(a: &ScopeArgs) -> Result<u8, String> {
    let path = settings_path(a.agent, a.user, &a.dir)?;
    let mut settings = read_settings(&path)?;
    let mut removed = 0;
    if let Some(hooks) = settings.get_mut("hooks") {
        removed = remove_ours(hooks, a.agent);
    }
    let mut out = std::io::stdout().lock();
    if removed == 0 {
        let _ = writeln!(
            out,
            "{}: Sluice was not installed for {}",
            path.display(),
            a.agent.name()
        );
        return Ok(0);
    }
    if let Some(Json::Object(h)) = settings.get("hooks")
        && h.is_empty()
    {
        settings.remove("hooks");
    }
    write_settings(&path, &settings)?;
    let _ = writeln!(
        out,
        "{}: removed {removed} Sluice hook(s) for {}",
        path.display(),
        a.agent.name()
    );
    Ok(0)
}

/// The installed Sluice commands of a settings file, by event.
fn installed(settings: &Json, agent: Agent) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(Json::Object(events)) = settings.get("hooks") else {
        return out;
    };
    for (event, list) in events {
        let Json::Array(groups) = list else { continue };
        for g in groups {
            let mut cmds: Vec<&str> = g.get("command").and_then(Json::as_str).into_iter().collect();
            if let Some(Json::Array(inner)) = g.get("hooks") {
                cmds.extend(inner.iter().filter_map(|h| h.get("command").and_then(Json::as_str)));
            }
            for c in cmds {
                if is_ours(c, agent) {
                    out.push((event.clone(), c.to_string()));
                }
            }
        }
    }
    out
}

/// A payload the agent would send for a tool call reading a credential file.
fn probe(agent: Agent, event: &str) -> Option<Value> {
    let base = serde_json::json!({
        "session_id": "sluice-doctor", "transcript_path": null, "cwd": ".", "hook_event_name": event,
    });
    let mut p = base;
    let m = p.as_object_mut()?;
    match (agent, event) {
        (Agent::ClaudeCode | Agent::Codex, "PreToolUse") => {
            m.insert("tool_name".into(), "Bash".into());
            m.insert(
                "tool_input".into(),
                serde_json::json!({"command": "cat ~/.aws/credentials"}),
            );
            m.insert("tool_use_id".into(), "doctor".into());
        }
        (Agent::Cursor, "beforeShellExecution") => {
            m.insert("command".into(), "cat ~/.aws/credentials".into());
            m.insert("cwd".into(), ".".into());
        }
        (Agent::Gemini, "BeforeTool") => {
            m.insert("tool_name".into(), "run_shell_command".into());
            m.insert(
                "tool_input".into(),
                serde_json::json!({"command": "cat ~/.aws/credentials"}),
            );
        }
        _ => return None,
    }
    Some(p)
}

pub(crate) fn doctor(a: &DoctorArgs) -> Result<u8, String> {
    let agents: Vec<Agent> = a.agent.map_or_else(|| Agent::ALL.to_vec(), |x| vec![x]);
    let mut out = std::io::stdout().lock();
    let mut bad = 0usize;
    let mut found_any = false;
    for agent in agents {
        for user in [false, true] {
            let Ok(path) = settings_path(agent, user, &a.dir) else {
                continue;
            };
            let scope = if user { "user" } else { "project" };
            if !path.exists() {
                let _ = writeln!(out, "{} ({scope}): {}: not present", agent.name(), path.display());
                continue;
            }
            let settings = match read_settings(&path) {
                Ok(s) => s,
                Err(e) => {
                    bad += 1;
                    let _ = writeln!(out, "{} ({scope}): {e}", agent.name());
                    continue;
                }
            };
            let cmds = installed(&settings, agent);
            if cmds.is_empty() {
                let _ = writeln!(
                    out,
                    "{} ({scope}): {}: Sluice not installed",
                    agent.name(),
                    path.display()
                );
                continue;
            }
            found_any = true;
            let have: Vec<&str> = cmds.iter().map(|(e, _)| e.as_str()).collect();
            let missing: Vec<&str> = events(agent)
                .iter()
                .map(|(e, _)| *e)
                .filter(|e| !have.contains(e))
                .collect();
            let _ = writeln!(
                out,
                "{} ({scope}): {}: installed for {}{}",
                agent.name(),
                path.display(),
                have.join(", "),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", missing.join(", "))
                }
            );
            if !missing.is_empty() {
                bad += 1;
            }
            for (event, cmd) in &cmds {
                let Some(payload) = probe(agent, event) else { continue };
                match run_probe(cmd, &payload) {
                    Ok((code, stdout)) if code == 0 && (stdout.contains("deny") || stdout.contains("block")) => {
                        let _ = writeln!(out, "  {event}: reading ~/.aws/credentials is refused: ok");
                    }
                    Ok((code, stdout)) => {
                        bad += 1;
                        let _ = writeln!(
                            out,
                            "  {event}: test event NOT refused (exit {code}, answer {})",
                            stdout.trim()
                        );
                    }
                    Err(e) => {
                        bad += 1;
                        let _ = writeln!(out, "  {event}: the hook command does not run: {e}");
                    }
                }
            }
        }
    }
    if !found_any {
        let _ = writeln!(
            out,
            "Sluice is not installed for any agent here: `sluice hook install AGENT`"
        );
        return Ok(1);
    }
    Ok(u8::from(bad > 0))
}

/// Runs an installed hook command (through the shell, as the agents do) on a payload.
fn run_probe(cmd: &str, payload: &Value) -> Result<(i32, String), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code().is_none() || out.status.code() == Some(127) {
        return Err(stderr.trim().to_string());
    }
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json {
        serde_json::from_str(s).expect("json")
    }

    #[test]
    fn key_order_survives_a_round_trip() {
        let text = r#"{"zeta":1,"alpha":{"b":2,"a":[1,"x",null,true,1.5]},"mid":"m"}"#;
        assert_eq!(serde_json::to_string(&parse(text)).expect("ser"), text);
    }

    #[test]
    fn install_keeps_other_hooks_and_is_idempotent() {
        let mut s = parse(
            r#"{"model":"x","hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"my-check"}]}]}}"#,
        );
        add_ours(&mut s, Agent::ClaudeCode, &HookOptions::default(), 10).expect("add");
        let once = s.clone();
        add_ours(&mut s, Agent::ClaudeCode, &HookOptions::default(), 10).expect("add");
        assert_eq!(s, once);
        let text = serde_json::to_string(&s).expect("ser");
        assert!(
            text.starts_with(r#"{"model":"x","hooks":{"PreToolUse":[{"matcher":"Bash""#),
            "{text}"
        );
        assert_eq!(installed(&s, Agent::ClaudeCode).len(), 3);
        let hooks = match &mut s {
            Json::Object(m) => &mut m[1].1,
            _ => unreachable!(),
        };
        assert_eq!(remove_ours(hooks, Agent::ClaudeCode), 3);
        assert_eq!(
            serde_json::to_string(&s).expect("ser"),
            r#"{"model":"x","hooks":{"PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"my-check"}]}]}}"#
        );
    }
}
