//! What each coding agent sends to a hook and what it expects back.
//!
//! Reading: an agent's payload becomes a [`Call`]: the tool call as [`Step`]s (what it runs,
//! reads, writes, fetches or sends), a prompt or model request to scan, or a tool's output to
//! mask. Writing: a [`Verdict`] becomes the agent's own answer ([`Reply`]: stdout, stderr, exit
//! status), in the shape each agent documents:
//!
//! - Claude Code: JSON on stdout, `hookSpecificOutput.permissionDecision` allow / deny / ask,
//!   `decision: "block"` for prompts, `updatedToolOutput` to replace a tool's output.
//! - Cursor: `{"permission": "allow" | "deny" | "ask", "user_message", "agent_message"}`,
//!   `{"continue": false}` for prompts, `additional_context` after a tool.
//! - Gemini CLI: `{"decision": "allow" | "deny" | "ask", "reason"}`; a denied `AfterTool` replaces
//!   the tool's result with the reason.
//! - Codex CLI: Claude's shape, but `PreToolUse` accepts only `deny` (no ask); `PostToolUse`
//!   `decision: "block"` replaces the result with the reason; `PermissionRequest` answers
//!   `decision.behavior: "deny"`.
//!
//! Sluice never answers "allow" where that would skip the agent's own permission prompt: an
//! allowed call gets no opinion (Claude Code, Codex, Gemini) so the agent's settings still apply.

use serde_json::{Value, json};

use super::Agent;

/// What an event is about, whatever the agent calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A tool call about to run.
    PreTool,
    /// The agent is about to ask the user's permission for a tool call (Codex).
    Permission,
    /// A tool call that ran: its output is about to reach the model.
    PostTool,
    /// A prompt the user submitted, about to go to the model.
    Prompt,
    /// A whole request about to go to the model (Gemini's `BeforeModel`).
    Model,
}

/// The events Sluice handles for `agent`, with their kinds, in the agent's spelling.
pub(crate) fn events(agent: Agent) -> &'static [(&'static str, Kind)] {
    match agent {
        Agent::ClaudeCode => &[
            ("PreToolUse", Kind::PreTool),
            ("PostToolUse", Kind::PostTool),
            ("UserPromptSubmit", Kind::Prompt),
        ],
        Agent::Cursor => &[
            ("beforeShellExecution", Kind::PreTool),
            ("beforeReadFile", Kind::PreTool),
            ("beforeMCPExecution", Kind::PreTool),
            ("preToolUse", Kind::PreTool),
            ("beforeSubmitPrompt", Kind::Prompt),
            ("postToolUse", Kind::PostTool),
        ],
        Agent::Gemini => &[
            ("BeforeTool", Kind::PreTool),
            ("AfterTool", Kind::PostTool),
            ("BeforeAgent", Kind::Prompt),
            ("BeforeModel", Kind::Model),
        ],
        Agent::Codex => &[
            ("PreToolUse", Kind::PreTool),
            ("PermissionRequest", Kind::Permission),
            ("PostToolUse", Kind::PostTool),
            ("UserPromptSubmit", Kind::Prompt),
        ],
    }
}

/// The kind of `event` for `agent`, or an error naming the events it has.
pub(crate) fn kind_of(agent: Agent, event: &str) -> Result<Kind, String> {
    events(agent)
        .iter()
        .find(|(name, _)| *name == event)
        .map(|&(_, k)| k)
        .ok_or_else(|| {
            let known: Vec<&str> = events(agent).iter().map(|(n, _)| *n).collect();
            format!(
                "{} has no event `{event}` that Sluice handles (it handles {})",
                agent.name(),
                known.join(", ")
            )
        })
}

/// One thing a tool call does, as Sluice decides on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// A shell command line.
    Shell(String),
    /// A file read (its content goes to the model).
    Read(String),
    /// A directory listed or searched by name.
    List(String),
    /// File contents searched for a pattern under a path.
    Search {
        /// The pattern.
        pattern: String,
        /// Where.
        path: String,
    },
    /// A file written or edited: the path and the text being written.
    Write {
        /// The file.
        path: String,
        /// The new text (for an edit, the replacement text).
        content: String,
    },
    /// A file deleted.
    Delete(String),
    /// A URL fetched.
    Fetch(String),
    /// An MCP tool call.
    Mcp {
        /// The server (its name, URL or command).
        server: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        arguments: Value,
    },
    /// Text that leaves for somewhere else (a web search query, a tool's free-form input):
    /// scanned for secrets, nothing else to decide.
    Text {
        /// What the text is, for messages.
        what: String,
        /// The text.
        text: String,
    },
    /// A tool Sluice does not know: what it does was not seen.
    Unknown(String),
}

/// A hook event, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    /// A tool call to decide on.
    Tool {
        /// The tool's name as the agent gave it.
        tool: String,
        /// What it does.
        steps: Vec<Step>,
    },
    /// Text about to go to the model (a prompt, a model request): scanned for secrets.
    Prompt(String),
    /// A tool's output about to reach the model: masked.
    Output {
        /// The tool's name.
        tool: String,
        /// The output (JSON as the agent gave it).
        output: Value,
    },
}

fn str_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str))
}

fn string_at(v: &Value, keys: &[&str]) -> Option<String> {
    str_at(v, keys).map(str::to_string)
}

/// A tool input that may arrive as a JSON object or as a string holding one (Cursor's
/// `beforeMCPExecution`).
fn object(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// A command given as a string, or as argv (quoted back into one line).
fn command_of(v: &Value) -> Option<String> {
    match v.get("command") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => {
            let words: Option<Vec<String>> = a.iter().map(|w| w.as_str().map(super::shell_quote)).collect();
            words.map(|w| w.join(" "))
        }
        _ => None,
    }
}

const PATH_KEYS: &[&str] = &[
    "file_path",
    "path",
    "target_file",
    "filePath",
    "notebook_path",
    "absolute_path",
];
const CONTENT_KEYS: &[&str] = &[
    "content",
    "contents",
    "new_string",
    "new_source",
    "code_edit",
    "streamContent",
];

/// Reads the event's payload into a [`Call`].
pub(crate) fn read(agent: Agent, event: &str, kind: Kind, p: &Value) -> Result<Call, String> {
    if !p.is_object() {
        return Err("the hook payload is not a JSON object".into());
    }
    if let Some(name) = p.get("hook_event_name").and_then(Value::as_str)
        && name != event
    {
        return Err(format!(
            "the payload is a `{name}` event, but the hook was installed for `{event}`"
        ));
    }
    match kind {
        Kind::Prompt => {
            let mut text = string_at(p, &["prompt"]).ok_or("the prompt event has no `prompt`")?;
            // Cursor lists attached files; their names go along with the prompt.
            if let Some(Value::Array(att)) = p.get("attachments") {
                for a in att {
                    if let Some(s) = str_at(a, &["file_path", "filePath"]) {
                        text.push('\n');
                        text.push_str(s);
                    }
                }
            }
            Ok(Call::Prompt(text))
        }
        Kind::Model => {
            let req = p
                .get("llm_request")
                .ok_or("the BeforeModel event has no `llm_request`")?;
            let mut text = String::new();
            collect_strings(req, &mut text);
            Ok(Call::Prompt(text))
        }
        Kind::PostTool => {
            let tool = string_at(p, &["tool_name"]).unwrap_or_default();
            let output = p
                .get("tool_response")
                .or_else(|| p.get("tool_output"))
                .or_else(|| p.get("result_json"))
                .or_else(|| p.get("output"))
                .cloned()
                .ok_or("the event has no tool output (`tool_response`)")?;
            Ok(Call::Output { tool, output })
        }
        Kind::PreTool | Kind::Permission => Ok(read_tool(agent, event, p)),
    }
}

/// Every string in a JSON value, one per line (a model request's messages and parts).
pub(crate) fn collect_strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn read_tool(agent: Agent, event: &str, p: &Value) -> Call {
    // Cursor's specific events carry their fields at the top level.
    if agent == Agent::Cursor {
        match event {
            "beforeShellExecution" => {
                let steps = match command_of(p) {
                    Some(c) => vec![Step::Shell(c)],
                    None => vec![Step::Unknown("shell (no command)".into())],
                };
                return Call::Tool {
                    tool: "Shell".into(),
                    steps,
                };
            }
            "beforeReadFile" => {
                let mut steps = match string_at(p, &["file_path"]) {
                    Some(f) => vec![Step::Read(f)],
                    None => vec![Step::Unknown("read (no file_path)".into())],
                };
                // The content Cursor is about to send to the model.
                if let Some(c) = string_at(p, &["content"]) {
                    steps.push(Step::Text {
                        what: "the file's content".into(),
                        text: c,
                    });
                }
                return Call::Tool {
                    tool: "Read".into(),
                    steps,
                };
            }
            "beforeMCPExecution" => {
                let tool = string_at(p, &["tool_name"]).unwrap_or_default();
                let server = string_at(p, &["server_name", "url", "command"]).unwrap_or_default();
                let arguments = object(p.get("tool_input"));
                return Call::Tool {
                    tool: tool.clone(),
                    steps: vec![Step::Mcp {
                        server,
                        tool,
                        arguments,
                    }],
                };
            }
            _ => {}
        }
    }
    let tool = string_at(p, &["tool_name"]).unwrap_or_default();
    let input = object(p.get("tool_input"));
    let steps = tool_steps(agent, &tool, &input, p);
    Call::Tool { tool, steps }
}

/// An MCP tool name of the form `mcp__SERVER__TOOL` (Claude Code, Codex) or Cursor's
/// `MCP:TOOL`.
fn mcp_name(tool: &str) -> Option<(String, String)> {
    if let Some(rest) = tool.strip_prefix("mcp__") {
        let (server, name) = rest.split_once("__").unwrap_or((rest, ""));
        return Some((server.to_string(), name.to_string()));
    }
    tool.strip_prefix("MCP:").map(|t| (String::new(), t.to_string()))
}

/// What a tool call does, by tool name and input, per agent.
fn tool_steps(agent: Agent, tool: &str, input: &Value, payload: &Value) -> Vec<Step> {
    let path = || string_at(input, PATH_KEYS);
    let dir = || string_at(input, &["path", "dir_path", "directory"]).unwrap_or_else(|| ".".into());
    let content = || {
        // MultiEdit: every replacement.
        if let Some(Value::Array(edits)) = input.get("edits") {
            let mut s = String::new();
            for e in edits {
                if let Some(t) = str_at(e, CONTENT_KEYS) {
                    s.push_str(t);
                    s.push('\n');
                }
            }
            return s;
        }
        string_at(input, CONTENT_KEYS).unwrap_or_default()
    };
    let write = || match path() {
        Some(path) => vec![Step::Write {
            path,
            content: content(),
        }],
        None => vec![Step::Unknown(format!("{tool} (no file path)"))],
    };
    let read = || match path() {
        Some(p) => vec![Step::Read(p)],
        None => vec![Step::Unknown(format!("{tool} (no file path)"))],
    };
    let shell = || match command_of(input) {
        Some(c) => vec![Step::Shell(c)],
        None => vec![Step::Unknown(format!("{tool} (no command)"))],
    };
    let text = |what: &str| {
        let mut s = String::new();
        collect_strings(input, &mut s);
        vec![Step::Text {
            what: what.to_string(),
            text: s,
        }]
    };
    // MCP tools first: their names are the servers' own.
    if agent == Agent::Gemini
        && let Some(ctx) = payload.get("mcp_context")
    {
        return vec![Step::Mcp {
            server: string_at(ctx, &["server_name"]).unwrap_or_default(),
            tool: string_at(ctx, &["tool_name"]).unwrap_or_else(|| tool.to_string()),
            arguments: input.clone(),
        }];
    }
    if let Some((server, name)) = mcp_name(tool) {
        return vec![Step::Mcp {
            server,
            tool: name,
            arguments: input.clone(),
        }];
    }
    match (agent, tool) {
        (Agent::ClaudeCode | Agent::Codex, "Bash")
        | (Agent::Cursor, "Shell" | "Terminal")
        | (Agent::Gemini, "run_shell_command") => shell(),
        (Agent::Codex, "apply_patch") => match command_of(input).or_else(|| string_at(input, &["patch", "input"])) {
            Some(patch) => patch_steps(&patch),
            None => vec![Step::Unknown("apply_patch (no patch)".into())],
        },
        (Agent::ClaudeCode, "Read" | "NotebookRead") | (Agent::Cursor, "Read") | (Agent::Gemini, "read_file") => read(),
        (Agent::Gemini, "read_many_files") => {
            let mut paths = Vec::new();
            for key in ["include", "paths"] {
                if let Some(Value::Array(a)) = input.get(key) {
                    paths.extend(a.iter().filter_map(Value::as_str).map(|s| Step::Read(s.to_string())));
                }
            }
            if paths.is_empty() {
                vec![Step::Unknown("read_many_files (no paths)".into())]
            } else {
                paths
            }
        }
        (Agent::ClaudeCode, "Write" | "Edit" | "MultiEdit" | "NotebookEdit")
        | (Agent::Cursor, "Write" | "Edit" | "StrReplace" | "MultiEdit")
        | (Agent::Gemini, "write_file" | "replace") => write(),
        (Agent::Cursor, "Delete") => match path() {
            Some(p) => vec![Step::Delete(p)],
            None => vec![Step::Unknown("Delete (no file path)".into())],
        },
        (Agent::ClaudeCode, "Glob" | "LS")
        | (Agent::Cursor, "Glob" | "LS")
        | (Agent::Gemini, "glob" | "list_directory") => {
            vec![Step::List(dir())]
        }
        (Agent::ClaudeCode, "Grep") | (Agent::Cursor, "Grep") | (Agent::Gemini, "grep_search") => vec![Step::Search {
            pattern: string_at(input, &["pattern", "query"]).unwrap_or_default(),
            path: dir(),
        }],
        (Agent::ClaudeCode | Agent::Cursor, "WebFetch") => match string_at(input, &["url"]) {
            Some(u) => {
                let mut s = vec![Step::Fetch(u)];
                s.extend(text("the fetch prompt"));
                s
            }
            None => vec![Step::Unknown("WebFetch (no url)".into())],
        },
        (Agent::Gemini, "web_fetch") => {
            let prompt = string_at(input, &["prompt"]).unwrap_or_default();
            let mut s: Vec<Step> = urls_in(&prompt).into_iter().map(Step::Fetch).collect();
            s.push(Step::Text {
                what: "the fetch prompt".into(),
                text: prompt,
            });
            s
        }
        (Agent::ClaudeCode | Agent::Cursor, "WebSearch") | (Agent::Gemini, "google_web_search") => {
            text("the search query")
        }
        // Tools that only plan, ask or track work: their text is scanned, nothing else runs.
        (
            Agent::ClaudeCode,
            "Task"
            | "Agent"
            | "TodoWrite"
            | "ExitPlanMode"
            | "EnterPlanMode"
            | "AskUserQuestion"
            | "TaskCreate"
            | "TaskGet"
            | "TaskUpdate"
            | "TaskList"
            | "TaskStop"
            | "BashOutput"
            | "KillShell"
            | "KillBash"
            | "SlashCommand"
            | "Skill"
            | "ListMcpResourcesTool",
        )
        | (
            Agent::Gemini,
            "write_todos" | "ask_user" | "enter_plan_mode" | "exit_plan_mode" | "update_topic" | "save_memory",
        )
        | (Agent::Codex, "update_plan") => text("the tool's input"),
        _ => vec![Step::Unknown(tool.to_string())],
    }
}

/// The files a Codex patch (`*** Begin Patch` … `*** End Patch`) adds, changes, moves or
/// deletes, with the lines it adds.
fn patch_steps(patch: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut current: Option<(String, String)> = None;
    let flush = |cur: &mut Option<(String, String)>, steps: &mut Vec<Step>| {
        if let Some((path, content)) = cur.take() {
            steps.push(Step::Write { path, content });
        }
    };
    for line in patch.lines() {
        if let Some(p) = line
            .strip_prefix("*** Add File: ")
            .or_else(|| line.strip_prefix("*** Update File: "))
            .or_else(|| line.strip_prefix("*** Move to: "))
        {
            flush(&mut current, &mut steps);
            current = Some((p.trim().to_string(), String::new()));
        } else if let Some(p) = line.strip_prefix("*** Delete File: ") {
            flush(&mut current, &mut steps);
            steps.push(Step::Delete(p.trim().to_string()));
        } else if let (Some(added), Some((_, content))) = (line.strip_prefix('+'), current.as_mut()) {
            content.push_str(added);
            content.push('\n');
        }
    }
    flush(&mut current, &mut steps);
    if steps.is_empty() {
        steps.push(Step::Unknown("apply_patch (no file in the patch)".into()));
    }
    steps
}

/// The `http://` and `https://` URLs in free text.
fn urls_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("http") {
        let cand = &rest[i..];
        if cand.starts_with("https://") || cand.starts_with("http://") {
            let end = cand
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']'))
                .unwrap_or(cand.len());
            out.push(cand[..end].trim_end_matches(['.', ',', ';']).to_string());
            rest = &cand[end..];
        } else {
            rest = &cand[4..];
        }
    }
    out
}

/// What Sluice decided about an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Nothing to object to.
    Allow,
    /// A human must approve.
    Ask,
    /// Refused.
    Deny,
}

/// A decision with its explanation.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) outcome: Outcome,
    /// The policy rule or detector finding that decided (`rule-id`), if one did.
    pub(crate) rule: Option<String>,
    /// Why, for the user and the model. Never holds a secret.
    pub(crate) reason: String,
}

/// A tool's output with its secrets masked.
#[derive(Debug, Clone)]
pub(crate) struct Masked {
    /// The output, same shape, every secret replaced by its placeholder.
    pub(crate) output: Value,
    /// The masked output as text (what a reason can carry to the model).
    pub(crate) text: String,
    /// "N secrets (rules …)".
    pub(crate) summary: String,
}

/// The hook's answer to the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: u8,
}

impl Reply {
    fn json(v: &Value) -> Reply {
        Reply {
            stdout: v.to_string(),
            ..Reply::default()
        }
    }

    /// The answer to a hook that failed: every agent here treats exit status 2 as "blocked"
    /// and shows stderr (fail closed).
    pub(crate) fn error(message: &str) -> Reply {
        Reply {
            stdout: String::new(),
            stderr: format!("sluice: {message}\n"),
            code: 2,
        }
    }
}

fn message(v: &Verdict) -> String {
    match &v.rule {
        Some(r) => format!("Sluice: {} [{r}]", v.reason),
        None => format!("Sluice: {}", v.reason),
    }
}

/// The agent's answer to a tool-call decision.
pub(crate) fn pre_tool_reply(agent: Agent, event: &str, kind: Kind, v: &Verdict) -> Reply {
    let msg = message(v);
    match (agent, &v.outcome) {
        (Agent::ClaudeCode, Outcome::Allow) | (Agent::Codex, Outcome::Allow) | (Agent::Gemini, Outcome::Allow) => {
            Reply::default()
        }
        (Agent::ClaudeCode, o) => Reply::json(&json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": if *o == Outcome::Deny { "deny" } else { "ask" },
                "permissionDecisionReason": msg,
            }
        })),
        // Codex is about to ask the user: a call that needs approval is left to that question,
        // a refused one is refused.
        (Agent::Codex, Outcome::Ask) if kind == Kind::Permission => Reply::default(),
        (Agent::Codex, Outcome::Deny) if kind == Kind::Permission => Reply::json(&json!({
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": { "behavior": "deny", "message": msg },
            }
        })),
        // Codex cannot ask from a PreToolUse hook: a call that needs approval is refused with
        // the reason.
        (Agent::Codex, o) => {
            let msg = if *o == Outcome::Ask {
                format!(
                    "{msg} (needs a human's approval, which Codex hooks cannot ask for: run it yourself if it is right)"
                )
            } else {
                msg
            };
            Reply::json(&json!({
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": msg,
                }
            }))
        }
        (Agent::Gemini, o) => Reply::json(&json!({
            "decision": if *o == Outcome::Deny { "deny" } else { "ask" },
            "reason": msg,
        })),
        (Agent::Cursor, o) => {
            // `beforeReadFile` answers allow or deny only (Cursor documents no ask there): a
            // read that needs approval is refused rather than answered in a form Cursor may
            // not honour.
            let permission = match o {
                Outcome::Allow => "allow",
                Outcome::Ask if event == "beforeReadFile" => "deny",
                Outcome::Ask => "ask",
                Outcome::Deny => "deny",
            };
            if event == "beforeReadFile" || *o == Outcome::Allow {
                Reply::json(&json!({ "permission": permission }))
            } else {
                Reply::json(&json!({
                    "permission": permission,
                    "user_message": msg,
                    "agent_message": msg,
                }))
            }
        }
    }
}

/// The agent's answer to a prompt (or model request) check: `None` lets it through.
pub(crate) fn prompt_reply(agent: Agent, refusal: Option<&Verdict>) -> Reply {
    let Some(v) = refusal else {
        return match agent {
            Agent::Cursor => Reply::json(&json!({ "continue": true })),
            Agent::ClaudeCode | Agent::Gemini | Agent::Codex => Reply::default(),
        };
    };
    let msg = message(v);
    match agent {
        Agent::ClaudeCode | Agent::Codex => Reply::json(&json!({ "decision": "block", "reason": msg })),
        Agent::Cursor => Reply::json(&json!({ "continue": false, "user_message": msg })),
        Agent::Gemini => Reply::json(&json!({ "decision": "deny", "reason": msg })),
    }
}

/// Longest masked output carried in a reason (the rest is cut, and says so).
const MAX_REASON_OUTPUT: usize = 64 * 1024;

/// The agent's answer after a tool ran: `None` when its output held no secret.
pub(crate) fn post_tool_reply(agent: Agent, masked: Option<&Masked>) -> Reply {
    let Some(m) = masked else {
        return Reply::default();
    };
    let note = format!(
        "Sluice masked {} in this tool's output; each is replaced by a placeholder (the value is not available to you).",
        m.summary
    );
    let mut text = m.text.clone();
    if text.len() > MAX_REASON_OUTPUT {
        let mut cut = MAX_REASON_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[… output cut by Sluice]");
    }
    match agent {
        Agent::ClaudeCode => Reply::json(&json!({
            "hookSpecificOutput": {
                "hookEventName": "PostToolUse",
                "updatedToolOutput": m.output,
                "additionalContext": note,
            }
        })),
        // These replace the tool's result with the reason: the masked output goes with it.
        Agent::Gemini => Reply::json(&json!({
            "decision": "deny",
            "reason": format!("{note}\nThe output, masked:\n{text}"),
        })),
        Agent::Codex => Reply::json(&json!({
            "decision": "block",
            "reason": format!("{note}\nThe output, masked:\n{text}"),
        })),
        // Cursor cannot change a tool's output: the model is told instead.
        Agent::Cursor => Reply::json(&json!({
            "additional_context": format!("{note} Do not repeat or use secrets from it."),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_name_every_file_and_the_added_lines() {
        let patch = "*** Begin Patch\n*** Add File: a.txt\n+one\n+two\n*** Update File: src/b.rs\n@@\n-old\n+new\n*** Move to: src/c.rs\n*** Delete File: d.txt\n*** End Patch\n";
        assert_eq!(
            patch_steps(patch),
            vec![
                Step::Write {
                    path: "a.txt".into(),
                    content: "one\ntwo\n".into()
                },
                Step::Write {
                    path: "src/b.rs".into(),
                    content: "new\n".into()
                },
                Step::Write {
                    path: "src/c.rs".into(),
                    content: String::new()
                },
                Step::Delete("d.txt".into()),
            ]
        );
        assert!(matches!(patch_steps("not a patch")[0], Step::Unknown(_)));
    }

    #[test]
    fn urls_are_found_in_free_text() {
        assert_eq!(
            urls_in("summarise https://example.com/a?b=1, and (http://x.test/y) please; httpx"),
            vec!["https://example.com/a?b=1", "http://x.test/y"]
        );
    }

    #[test]
    fn mcp_names_split_into_server_and_tool() {
        assert_eq!(
            mcp_name("mcp__github__create_issue"),
            Some(("github".into(), "create_issue".into()))
        );
        assert_eq!(mcp_name("MCP:query"), Some((String::new(), "query".into())));
        assert_eq!(mcp_name("Bash"), None);
    }

    #[test]
    fn cursor_reads_needing_approval_are_refused() {
        let v = Verdict {
            outcome: Outcome::Ask,
            rule: None,
            reason: "unsure".into(),
        };
        let r = pre_tool_reply(Agent::Cursor, "beforeReadFile", Kind::PreTool, &v);
        assert_eq!(r.stdout, r#"{"permission":"deny"}"#);
        let r = pre_tool_reply(Agent::Cursor, "beforeShellExecution", Kind::PreTool, &v);
        assert!(r.stdout.contains(r#""permission":"ask""#));
    }

    #[test]
    fn every_agent_answers_a_refusal_in_its_own_shape() {
        let v = Verdict {
            outcome: Outcome::Deny,
            rule: Some("credential-files".into()),
            reason: "no".into(),
        };
        for agent in Agent::ALL {
            for &(event, kind) in events(agent) {
                let r = match kind {
                    Kind::PreTool | Kind::Permission => pre_tool_reply(agent, event, kind, &v),
                    Kind::Prompt | Kind::Model => prompt_reply(agent, Some(&v)),
                    Kind::PostTool => continue,
                };
                let out: Value = serde_json::from_str(&r.stdout).expect("JSON");
                let s = out.to_string();
                assert!(
                    s.contains("deny") || s.contains("block") || s.contains("\"continue\":false"),
                    "{agent:?} {event}: {s}"
                );
            }
        }
    }
}
