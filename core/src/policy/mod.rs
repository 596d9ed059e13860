//! The policy engine: given **who** acts (an [`Identity`]), against **what** (a [`Target`]) and
//! the parsed **command** (a [`Request`] for shell, SQL, HTTP, MCP or SSH), decide allow, deny or
//! require approval, and say which rule fired and why.
//!
//! A policy is a versioned YAML or JSON document (`schema/policy.schema.json`; the README documents
//! every field), compiled once into an immutable [`Engine`] that is `Send + Sync` and cheap to
//! share. [`EngineHandle`] swaps in a new policy at runtime; decisions in flight keep the engine
//! they started with. Without a policy file, [`Engine::agent_safe`] is the embedded default.
//!
//! ```
//! use sluice_core::policy::{Action, Engine, Identity, Request, Target};
//!
//! let engine = Engine::agent_safe();
//! let me = Identity::new("agent-7");
//! let laptop = Target::new("laptop");
//! let d = engine.decide(&me, &laptop, &Request::Shell("cat ~/.ssh/id_ed25519 | base64"));
//! assert_eq!(d.action(), Action::Deny);
//! assert_eq!(d.rule(), Some("ssh-private-keys"));
//! assert_eq!(engine.decide(&me, &laptop, &Request::Shell("cargo test --workspace")).action(), Action::Allow);
//! ```
//!
//! ## Conflict resolution
//! Every rule whose conditions hold is a candidate. The strongest action wins, **deny** over
//! **require_approval** over **allow**; among equals, the first rule in the file. An allow rule
//! therefore never overrides a deny: exempt identities with `not_roles`/`not_users` on the deny
//! rule instead. When no rule matches, the policy's `default` applies (`deny` unless set).
//!
//! ## Uncertainty
//! Conditions are three-valued. A word the shell would still expand (`$VAR`, `$(…)`) *may* name a
//! protected path; SQL the analyser cannot follow (dynamic `EXECUTE`) *may* do anything; a command
//! that cannot be parsed at all may be anything. When a deny rule only *may* match, or the input
//! cannot be analysed, the policy's `uncertain` action applies (`require_approval` unless set),
//! never a silent allow. A glob written by the agent (`~/.ssh/*`) that can expand to a protected
//! path counts as naming it.

pub mod cases;
mod compile;
mod doc;
mod error;
mod eval;
mod facts;
pub use facts::normalize_host;
pub mod approvals;
mod glob;
pub mod grant;
pub mod oidc;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use serde::Serialize;

use compile::{ApprovalSpec, Index, Role, Rule, Sets, ToolMap, compile};
pub use doc::Action;
pub use error::{PolicyError, PolicyErrorKind};
pub use grant::{ApprovalRequest, Approver};
pub use sluice_protocols::sql::{Dialect, Lexing};

use doc::PolicyDoc;

/// The embedded default policy, `agent-safe`.
pub const AGENT_SAFE: &str = include_str!("agent-safe.yaml");

/// Who acts: a user or agent id, its groups and attributes (from the host, or from an OIDC
/// token through [`oidc::Verifier`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// User or agent id.
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Other attributes (`team`, `email`, …).
    pub attributes: BTreeMap<String, String>,
}

impl Identity {
    /// An identity with no groups or attributes.
    pub fn new(user: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            ..Identity::default()
        }
    }

    /// Adds a group.
    pub fn group(mut self, group: impl Into<String>) -> Identity {
        self.groups.push(group.into());
        self
    }

    /// Sets an attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Identity {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// What is acted on: a named database, host or API, with labels such as `env=prod`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Target name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// A target without labels.
    pub fn new(name: impl Into<String>) -> Target {
        Target {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }

    /// Sets a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Target {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// The protocol a request arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// A shell command line (an agent's terminal tool).
    Shell,
    /// SQL (PostgreSQL or MySQL).
    Sql,
    /// An HTTP request.
    Http,
    /// An MCP JSON-RPC message.
    Mcp,
    /// An SSH channel request.
    Ssh,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Shell,
        Protocol::Sql,
        Protocol::Http,
        Protocol::Mcp,
        Protocol::Ssh,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Shell => "shell",
            Protocol::Sql => "sql",
            Protocol::Http => "http",
            Protocol::Mcp => "mcp",
            Protocol::Ssh => "ssh",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown protocol `{s}` (expected shell, sql, http, mcp or ssh)"))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP request as policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// Method (any case).
    pub method: &'a str,
    /// Absolute URL (`https://host/path?q`) or origin-form path with a `Host` header.
    pub url: &'a str,
    /// Header names and values.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body, when it is known (JSON bodies are looked into).
    pub body: Option<&'a [u8]>,
}

/// An SSH channel request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SshRequest<'a> {
    /// `exec`: the command line.
    Exec(&'a str),
    /// `env`: a variable the client wants set.
    Env {
        /// Variable name.
        name: &'a str,
        /// Its value.
        value: &'a [u8],
    },
    /// `subsystem` (`sftp`, …).
    Subsystem(&'a str),
    /// `shell`: an interactive session.
    Shell,
    /// A `direct-tcpip` channel: the client asks the server to connect to `host:port` (a port
    /// forward, `ssh -L`), and whatever flows through it is opaque.
    Forward {
        /// Where the server is to connect.
        host: &'a str,
        /// Its port.
        port: u32,
    },
    /// A channel of another type (`x11`, `auth-agent@openssh.com`, …), by its type name.
    Channel(&'a str),
}

impl SshRequest<'_> {
    /// Whether what follows the request is a raw stream the engine never sees decided: an
    /// interactive shell's keystrokes, a subsystem's protocol, a forwarded connection. Such a
    /// request is allowed only by a rule that names it; otherwise it is `uncertain`.
    pub fn is_opaque(&self) -> bool {
        !matches!(self, SshRequest::Exec(_) | SshRequest::Env { .. })
    }
}

/// A command to decide on.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Request<'a> {
    /// A shell command line.
    Shell(&'a str),
    /// SQL text, possibly several statements.
    Sql {
        /// The text.
        text: &'a str,
        /// Its dialect.
        dialect: Dialect,
        /// The session settings it is lexed under (`standard_conforming_strings`, MySQL's
        /// `sql_mode`); `Default::default()` for the servers' defaults.
        lexing: Lexing,
    },
    /// An HTTP request.
    Http(HttpRequest<'a>),
    /// An MCP JSON-RPC message (one object).
    Mcp(&'a [u8]),
    /// An SSH channel request.
    Ssh(SshRequest<'a>),
}

impl Request<'_> {
    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        match self {
            Request::Shell(_) => Protocol::Shell,
            Request::Sql { .. } => Protocol::Sql,
            Request::Http(_) => Protocol::Http,
            Request::Mcp(_) => Protocol::Mcp,
            Request::Ssh(_) => Protocol::Ssh,
        }
    }
}

/// The outcome of [`Engine::decide`]. Only the engine makes one: a session or host reads it but
/// cannot build or loosen one (an allow comes from a rule, the policy's default, or a grant the
/// engine verified for exactly this request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(rename = "decision")]
    action: Action,
    rule: Option<String>,
    reason: String,
    approval: Option<ApprovalRequest>,
    mask: bool,
    uncertain: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    changes_lexing: bool,
    /// The approval request went to reviewers and is pending: repeating the command once it is
    /// approved runs it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pending: bool,
    /// Allowed by a grant this decision redeemed (presented or returned by a hold).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    granted: bool,
}

impl Decision {
    /// Allow, deny or require approval.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Whether the approval request was submitted to reviewers and is pending (the host then
    /// tells the client to repeat the command once approved: HTTP `202 Accepted`).
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Marks the approval pending with reviewers, as `request` (the first of its repeats).
    pub(crate) fn set_pending(&mut self, request: ApprovalRequest) {
        self.pending = true;
        self.approval = Some(request);
    }

    /// Whether a grant turned this decision into an allow ([`Decision::redeem`]): the session
    /// lets the command run once (a prepared statement allowed so binds once).
    pub fn granted(&self) -> bool {
        self.granted
    }

    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        self.action == Action::Allow
    }

    /// The rule that decided (`None` for the policy default, unparseable input and refusals of
    /// the session's own).
    pub fn rule(&self) -> Option<&str> {
        self.rule.as_deref()
    }

    /// Why, in words: the rule's message and what matched.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// For `require_approval`: what a human is asked to approve.
    pub fn approval(&self) -> Option<&ApprovalRequest> {
        self.approval.as_ref()
    }

    /// The approval request, taking the decision apart.
    pub fn into_approval(self) -> Option<ApprovalRequest> {
        self.approval
    }

    /// Whether responses are masked.
    pub fn mask(&self) -> bool {
        self.mask
    }

    /// Whether the decision rests on something the analysis could not resolve.
    pub fn uncertain(&self) -> bool {
        self.uncertain
    }

    /// SQL: the request sets a parameter that changes how later SQL is lexed
    /// ([`sluice_protocols::sql::LEXING_PARAMETERS`]); a session reads nothing more until the
    /// server has answered it.
    pub fn changes_lexing(&self) -> bool {
        self.changes_lexing
    }

    /// A refusal for a reason of the session's (input it will not forward), not the policy's.
    pub(crate) fn refused(reason: String) -> Decision {
        Decision {
            action: Action::Deny,
            rule: None,
            reason,
            approval: None,
            mask: true,
            uncertain: true,
            changes_lexing: false,
            pending: false,
            granted: false,
        }
    }

    /// Adds to the reason (`…; note`).
    pub(crate) fn note(&mut self, note: &str) {
        self.reason.push_str("; ");
        self.reason.push_str(note);
    }

    /// Puts what the session knows in front of the reason (`context: …`).
    pub(crate) fn explain(&mut self, context: &str) {
        self.reason = format!("{context}: {}", self.reason);
    }
}

/// A compiled policy. Immutable, `Send + Sync`; share it behind an `Arc` or an [`EngineHandle`].
#[derive(Debug)]
pub struct Engine {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) default: Action,
    pub(crate) uncertain: Action,
    pub(crate) masking: bool,
    pub(crate) default_approval: ApprovalSpec,
    pub(crate) roles: Vec<Role>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) sets: Sets,
    pub(crate) shell_tools: Vec<ToolMap>,
    pub(crate) file_tools: Vec<ToolMap>,
    /// Brokered credentials: name and the targets its placeholder may be substituted for.
    pub(crate) credentials: Vec<(String, Vec<glob::Glob>)>,
    /// Which protocols any rule has a condition block for (bit mask), to skip analysis.
    pub(crate) wants: u8,
    /// For each protocol, the rules that can apply to it, in order.
    pub(crate) by_protocol: [Vec<usize>; 5],
    /// Shell and SQL rules by the pattern ids or statement kinds one of which must match.
    pub(crate) index: Index,
}

impl Engine {
    /// The embedded `agent-safe` policy, compiled once per process.
    pub fn agent_safe() -> Arc<Engine> {
        static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                #[allow(clippy::expect_used)]
                Arc::new(Engine::embedded().expect("the embedded policy compiles"))
            })
            .clone()
    }

    /// Whether the placeholder of credential `name` may be substituted in a request to
    /// `target` (the HTTP host, the MCP server's target name): only when the policy's
    /// `credentials` section names it with a matching target.
    pub fn credential_allowed(&self, name: &str, target: &str) -> bool {
        self.credentials
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, targets)| targets.iter().any(|g| g.is_match(target.as_bytes())))
    }

    /// Compiles a YAML policy. `origin` names it in errors.
    pub fn from_yaml(origin: &str, text: &str) -> Result<Engine, PolicyError> {
        Engine::from_yaml_with(origin, text, false)
    }

    /// The embedded policy, from the JSON the build script made of it (the digest is the
    /// YAML's, the text users read), or from the YAML if that failed.
    fn embedded() -> Result<Engine, PolicyError> {
        const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/agent-safe.json"));
        if JSON.is_empty() {
            return Engine::from_yaml_with("agent-safe", AGENT_SAFE, true);
        }
        let doc: PolicyDoc = serde_json::from_str(JSON)
            .map_err(|e| PolicyError::new(PolicyErrorKind::Syntax, "agent-safe", e.to_string()))?;
        compile("agent-safe", doc, true).map(|e| e.with_digest(AGENT_SAFE))
    }

    /// `lazy`: glob sets compile on first use (the embedded policy, whose sets the tests
    /// compile; a policy file is compiled whole, so that its errors show at load).
    fn from_yaml_with(origin: &str, text: &str, lazy: bool) -> Result<Engine, PolicyError> {
        let doc: PolicyDoc = serde_yaml_ng::from_str(text).map_err(|e| {
            let message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
            let err = PolicyError::new(PolicyErrorKind::Syntax, origin, message);
            match e.location() {
                Some(l) => err.at(l.line(), l.column()),
                None => err,
            }
            .source(e)
        })?;
        compile(origin, doc, lazy).map(|e| e.with_digest(text))
    }

    /// Compiles a JSON policy. `origin` names it in errors.
    pub fn from_json(origin: &str, text: &str) -> Result<Engine, PolicyError> {
        let doc: PolicyDoc = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
            PolicyError::new(PolicyErrorKind::Syntax, origin, message)
                .at(e.line(), e.column())
                .source(e)
        })?;
        compile(origin, doc, false).map(|e| e.with_digest(text))
    }

    /// Compiles a policy, JSON when it starts with `{`, YAML otherwise.
    pub fn from_text(origin: &str, text: &str) -> Result<Engine, PolicyError> {
        if text.trim_start().starts_with('{') {
            Engine::from_json(origin, text)
        } else {
            Engine::from_yaml(origin, text)
        }
    }

    /// Reads and compiles a policy file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Engine, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::new(PolicyErrorKind::Io, &origin, format!("cannot read: {e}")).source(e))?;
        Engine::from_text(&origin, &text)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of the policy's source text (hex): which policy decided, in recordings.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn with_digest(mut self, text: &str) -> Engine {
        use sha2::Digest as _;
        self.digest = crate::record::hex(&sha2::Sha256::digest(text.as_bytes()));
        self
    }

    /// What the policy does with a request its analysers could not see through (`uncertain:`):
    /// a host that meets something it cannot hand the engine at all (an agent's unknown tool)
    /// applies the same.
    pub fn uncertain_action(&self) -> Action {
        self.uncertain
    }

    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether responses are masked by default.
    pub fn masking(&self) -> bool {
        self.masking
    }

    /// The roles `identity` holds.
    pub fn roles_of(&self, identity: &Identity) -> Vec<&str> {
        (0..self.roles.len())
            .filter(|&r| eval::has_role(&self.roles[r], identity))
            .map(|r| self.roles[r].name.as_str())
            .collect()
    }
}

/// A swappable engine: hosts load the current one per decision and replace it when the policy
/// file changes; decisions in flight finish on the engine they loaded.
#[derive(Debug)]
pub struct EngineHandle(ArcSwap<Engine>);

impl EngineHandle {
    /// A handle holding `engine`.
    pub fn new(engine: Arc<Engine>) -> EngineHandle {
        EngineHandle(ArcSwap::new(engine))
    }

    /// The current engine.
    pub fn load(&self) -> Arc<Engine> {
        self.0.load_full()
    }

    /// Replaces the engine; returns the previous one.
    pub fn swap(&self, engine: Arc<Engine>) -> Arc<Engine> {
        self.0.swap(engine)
    }
}
