//! Policy unit tests as data (the format of `sluice policy test` and of
//! `testdata/policy/*.json`, shared with the bindings): each case names a protocol, a command, who
//! and against what, and the expected decision and, optionally, the rule.
//!
//! ```json
//! {"cases": [
//!   {"name": "ssh key", "protocol": "shell", "command": "cat ~/.ssh/id_rsa",
//!    "expect": "deny", "rule": "ssh-private-keys"},
//!   {"name": "dba drops", "protocol": "sql", "command": "DROP TABLE t",
//!    "user": "dana", "groups": ["dba"], "target": "orders", "labels": {"env": "prod"},
//!    "expect": "allow"}
//! ]}
//! ```
//!
//! Optional fields: `user` (default `agent`), `groups`, `attributes`, `target` (default
//! `default`), `labels`, `dialect` (`postgres`, `mysql`) for SQL, `headers` and `body` for HTTP
//! (the command is `METHOD URL`), `ssh` (`exec`, `env`, `subsystem`, `shell`) for SSH (for
//! `env` the command is `NAME=value`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Action, Decision, Dialect, Engine, HttpRequest, Identity, Protocol, Request, SshRequest, Target};

/// A request with owned parts, built from a protocol name and command text.
#[derive(Debug, Clone)]
pub struct OwnedRequest {
    protocol: Protocol,
    command: String,
    dialect: Dialect,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    ssh: SshKind,
}

/// Which SSH channel request a command stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SshKind {
    /// `exec` of the command (default).
    #[default]
    Exec,
    /// `env`, the command being `NAME=value`.
    Env,
    /// `subsystem`, the command being its name.
    Subsystem,
    /// An interactive `shell`.
    Shell,
    /// A `direct-tcpip` port forward, the command being `host:port`.
    Forward,
    /// A channel of another type (or a global request), the command being its name.
    Channel,
}

impl std::str::FromStr for SshKind {
    type Err = String;
    /// The lowercase name: exec, env, subsystem, shell, forward or channel.
    fn from_str(s: &str) -> Result<SshKind, String> {
        Ok(match s {
            "exec" => SshKind::Exec,
            "env" => SshKind::Env,
            "subsystem" => SshKind::Subsystem,
            "shell" => SshKind::Shell,
            "forward" => SshKind::Forward,
            "channel" => SshKind::Channel,
            other => {
                return Err(format!(
                    "unknown ssh request `{other}` (exec, env, subsystem, shell, forward or channel)"
                ));
            }
        })
    }
}

impl OwnedRequest {
    /// A request of `protocol` with `command` as its text (for HTTP `METHOD URL`, for MCP the
    /// JSON-RPC message, for SSH the exec command).
    pub fn new(protocol: Protocol, command: impl Into<String>) -> OwnedRequest {
        OwnedRequest {
            protocol,
            command: command.into(),
            dialect: Dialect::Postgres,
            headers: Vec::new(),
            body: None,
            ssh: SshKind::Exec,
        }
    }

    /// Sets the SQL dialect.
    pub fn dialect(mut self, d: Dialect) -> OwnedRequest {
        self.dialect = d;
        self
    }

    /// Adds an HTTP header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> OwnedRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the HTTP body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> OwnedRequest {
        self.body = Some(body.into());
        self
    }

    /// Sets the SSH request kind.
    pub fn ssh(mut self, kind: SshKind) -> OwnedRequest {
        self.ssh = kind;
        self
    }

    /// Runs `f` with the borrowed [`Request`]. An HTTP command that is not `METHOD URL` is an
    /// error.
    pub fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> Result<R, String> {
        let c = self.command.as_str();
        Ok(match self.protocol {
            Protocol::Shell => f(&Request::Shell(c)),
            Protocol::Sql => f(&Request::Sql {
                text: c,
                dialect: self.dialect,
                lexing: Default::default(),
            }),
            Protocol::Mcp => f(&Request::Mcp(c.as_bytes())),
            Protocol::Ssh => {
                let r = match self.ssh {
                    SshKind::Exec => SshRequest::Exec(c),
                    SshKind::Env => {
                        let (name, value) = c.split_once('=').unwrap_or((c, ""));
                        SshRequest::Env {
                            name,
                            value: value.as_bytes(),
                        }
                    }
                    SshKind::Subsystem => SshRequest::Subsystem(c),
                    SshKind::Shell => SshRequest::Shell,
                    SshKind::Forward => {
                        let (host, port) = c.rsplit_once(':').unwrap_or((c, "0"));
                        let port = port
                            .parse()
                            .map_err(|_| format!("a forward is `host:port`, got `{c}`"))?;
                        SshRequest::Forward { host, port }
                    }
                    SshKind::Channel => SshRequest::Channel(c),
                };
                f(&Request::Ssh(r))
            }
            Protocol::Http => {
                let mut parts = c.split_whitespace();
                let (Some(method), Some(url), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!("an HTTP command is `METHOD URL`, got `{c}`"));
                };
                let headers: Vec<(&str, &[u8])> =
                    self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
                f(&Request::Http(HttpRequest {
                    method,
                    url,
                    headers: &headers,
                    body: self.body.as_deref(),
                }))
            }
        })
    }
}

/// One policy test case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Name shown in reports.
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The command.
    pub command: String,
    /// Acting user (default `agent`).
    #[serde(default)]
    pub user: Option<String>,
    /// Their groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Their attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Target name (default `default`).
    #[serde(default)]
    pub target: Option<String>,
    /// Target labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// SQL dialect (`postgres` or `mysql`).
    #[serde(default)]
    pub dialect: Option<String>,
    /// HTTP headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// HTTP body.
    #[serde(default)]
    pub body: Option<String>,
    /// SSH request kind.
    #[serde(default)]
    pub ssh: SshKind,
    /// Expected decision.
    pub expect: Action,
    /// Expected rule, when given.
    #[serde(default)]
    pub rule: Option<String>,
    /// Free-form note.
    #[serde(default)]
    pub note: Option<String>,
}

/// A file of cases: `{"cases": [...]}` or a bare array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CaseFile {
    Object { cases: Vec<Case> },
    Array(Vec<Case>),
}

/// Parses a case file (JSON, or YAML with the same structure).
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let file: CaseFile = if text.trim_start().starts_with(['{', '[']) {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    Ok(match file {
        CaseFile::Object { cases } | CaseFile::Array(cases) => cases,
    })
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// What the engine decided (or why the case could not run).
    pub decision: Result<Decision, String>,
}

impl CaseResult {
    /// Whether the decision and, when given, the rule are as expected.
    pub fn passed(&self) -> bool {
        self.decision
            .as_ref()
            .is_ok_and(|d| d.action == self.case.expect && (self.case.rule.is_none() || d.rule == self.case.rule))
    }
}

impl Case {
    /// The identity, target and request of this case.
    pub fn parts(&self) -> Result<(Identity, Target, OwnedRequest), String> {
        let identity = Identity {
            user: self.user.clone().unwrap_or_else(|| "agent".into()),
            groups: self.groups.clone(),
            attributes: self.attributes.clone(),
        };
        let target = Target {
            name: self.target.clone().unwrap_or_else(|| "default".into()),
            labels: self.labels.clone(),
        };
        let mut req = OwnedRequest::new(self.protocol, self.command.clone()).ssh(self.ssh);
        match self.dialect.as_deref() {
            None | Some("postgres") => {}
            Some("mysql") => req = req.dialect(Dialect::MySql),
            Some(other) => return Err(format!("unknown dialect `{other}` (postgres or mysql)")),
        }
        for (n, v) in &self.headers {
            req = req.header(n.clone(), v.as_bytes().to_vec());
        }
        if let Some(b) = &self.body {
            req = req.body(b.as_bytes().to_vec());
        }
        Ok((identity, target, req))
    }

    /// Runs the case against `engine`.
    pub fn run(&self, engine: &Engine) -> CaseResult {
        let decision = self
            .parts()
            .and_then(|(id, tgt, req)| req.with(|r| engine.decide(&id, &tgt, r)));
        CaseResult {
            case: self.clone(),
            decision,
        }
    }
}
