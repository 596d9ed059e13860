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
//! assert_eq!(d.action, Action::Deny);
//! assert_eq!(d.rule.as_deref(), Some("ssh-private-keys"));
//! assert_eq!(engine.decide(&me, &laptop, &Request::Shell("cargo test --workspace")).action, Action::Allow);
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
mod doc;
mod eval;
mod facts;
pub use facts::normalize_host;
mod glob;
pub mod grant;
pub mod oidc;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use serde::Serialize;

pub use doc::Action;
pub use grant::{ApprovalRequest, Approver};
pub use sluice_protocols::sql::{Dialect, Lexing};

use doc::{ApprovalDoc, PolicyDoc, RuleDoc};
use glob::{Glob, GlobSet};

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

/// The outcome of [`Engine::decide`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow, deny or require approval.
    #[serde(rename = "decision")]
    pub action: Action,
    /// The rule that decided (`None` for the policy default and for unparseable input).
    pub rule: Option<String>,
    /// Why, in words: the rule's message and what matched.
    pub reason: String,
    /// For `require_approval`: what a human is asked to approve.
    pub approval: Option<ApprovalRequest>,
    /// Whether responses are masked.
    pub mask: bool,
    /// Whether the decision rests on something the analysis could not resolve.
    pub uncertain: bool,
    /// SQL: the request sets a parameter that changes how later SQL is lexed
    /// ([`sluice_protocols::sql::LEXING_PARAMETERS`]); a session reads nothing more until the
    /// server has answered it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub changes_lexing: bool,
}

/// Why a policy document was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file or origin name.
    pub origin: String,
    /// 1-based line and column, when the parser knows them.
    pub line: Option<(usize, usize)>,
    /// The path of the offending field (`rules[3].when.shell.paths[1]`), when known.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((l, c)) = self.line {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(p) = &self.path {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// Resolved approval settings of a rule.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalSpec {
    pub ttl_secs: u64,
    pub count: u32,
    pub allow_self: bool,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// A compiled rule. Conditions over the glob sets are ranges of pattern ids; an empty range is
/// no condition.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub action: Action,
    pub message: String,
    pub approval: ApprovalSpec,
    pub mask: Option<bool>,
    pub users: Vec<Glob>,
    pub not_users: Vec<Glob>,
    pub groups: Vec<Glob>,
    pub not_groups: Vec<Glob>,
    pub roles: Vec<usize>,
    pub not_roles: Vec<usize>,
    pub attributes: Vec<(String, Glob)>,
    pub targets: Vec<Glob>,
    pub not_targets: Vec<Glob>,
    pub labels: Vec<(String, Glob)>,
    /// Bit mask of [`Protocol::bit`]; 0 is every protocol.
    pub protocols: u8,
    pub shell: Option<ShellCond>,
    pub sql: Option<SqlCond>,
    pub http: Option<HttpCond>,
    pub mcp: Option<McpCond>,
    pub ssh: Option<SshCond>,
}

#[derive(Debug, Default)]
pub(crate) struct ShellCond {
    pub programs: Range<usize>,
    pub not_programs: Range<usize>,
    /// Word sequences: the id of the first word in the `programs` set, and the other words.
    pub commands: Vec<(usize, Vec<Glob>)>,
    /// The ids of all the sequences' first words (they are added together).
    pub command_programs: Range<usize>,
    pub args: Range<usize>,
    /// For a rule keyed by its arguments (no programs, commands or paths): the same patterns in
    /// the small `key_args` set, which every command is matched against to find candidates.
    pub key_args: Range<usize>,
    pub flags: Range<usize>,
    pub paths: Range<usize>,
    pub not_paths: Vec<Glob>,
    pub writes: Range<usize>,
    pub variables: Range<usize>,
    pub max_operands: Option<usize>,
    pub max_args: Option<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct SqlCond {
    pub kinds: Vec<sluice_protocols::sql::Kind>,
    pub relations: Range<usize>,
    pub writes: Range<usize>,
    pub functions: Range<usize>,
    pub missing_where: Option<bool>,
    pub copy: Vec<&'static str>,
    /// Languages of code created or run (`c`, `internal`, `plpython3u`), lowercase.
    pub languages: Vec<String>,
    /// Columns (`schema.table.column` globs, in the `columns` set) no computation may use, and
    /// those excepted.
    pub secret_columns: Range<usize>,
    pub except_columns: Range<usize>,
    /// The literals every secret column glob requires: a column containing none is not secret.
    pub secret_prefilter: Option<aho_corasick::AhoCorasick>,
}

#[derive(Debug, Default)]
pub(crate) struct HttpCond {
    pub methods: Vec<String>,
    pub hosts: Range<usize>,
    pub paths: Range<usize>,
    pub headers: Vec<(String, Vec<Glob>)>,
    pub json: Vec<(String, Vec<Glob>)>,
}

#[derive(Debug, Default)]
pub(crate) struct McpCond {
    pub tools: Range<usize>,
    pub arguments: Vec<(String, Vec<Glob>)>,
}

#[derive(Debug, Default)]
pub(crate) struct SshCond {
    pub env: Vec<Glob>,
    pub subsystems: Vec<Glob>,
    /// `host:port` of `direct-tcpip` forwards.
    pub forwards: Vec<Glob>,
    /// Channel type names (`x11`, `auth-agent@openssh.com`); `session` channels are not decided.
    pub channels: Vec<Glob>,
    /// Interactive `shell` requests.
    pub shell: bool,
}

#[derive(Debug)]
pub(crate) struct Role {
    pub name: String,
    pub users: Vec<Glob>,
    pub groups: Vec<Glob>,
    pub attributes: Vec<(String, Glob)>,
}

/// The glob sets every rule's conditions index into.
#[derive(Debug)]
pub(crate) struct Sets {
    pub programs: GlobSet,
    pub args: GlobSet,
    pub key_args: GlobSet,
    pub flags: GlobSet,
    pub paths: GlobSet,
    pub writes: GlobSet,
    pub variables: GlobSet,
    pub relations: GlobSet,
    pub functions: GlobSet,
    pub columns: GlobSet,
    pub hosts: GlobSet,
    pub http_paths: GlobSet,
    pub tools: GlobSet,
}

/// MCP tools mapped onto shell or path analysis.
#[derive(Debug)]
pub(crate) struct ToolMap {
    pub tool: Glob,
    pub arguments: Vec<String>,
}

/// A compiled policy. Immutable, `Send + Sync`; share it behind an `Arc` or an [`EngineHandle`].
#[derive(Debug)]
pub struct Engine {
    pub(crate) name: String,
    pub(crate) default: Action,
    pub(crate) uncertain: Action,
    pub(crate) masking: bool,
    pub(crate) default_approval: ApprovalSpec,
    pub(crate) roles: Vec<Role>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) sets: Sets,
    pub(crate) shell_tools: Vec<ToolMap>,
    pub(crate) file_tools: Vec<ToolMap>,
    /// Which protocols any rule has a condition block for (bit mask), to skip analysis.
    pub(crate) wants: u8,
    /// For each protocol, the rules that can apply to it, in order.
    pub(crate) by_protocol: [Vec<usize>; 5],
    /// Shell and SQL rules by the pattern ids or statement kinds one of which must match.
    pub(crate) index: Index,
}

/// Which shell rule needs which glob of which set to match, and which SQL rule which kind;
/// rules with no such key are always evaluated.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub shell_key: Vec<Option<(ShellKey, Range<usize>)>>,
    pub by_program: Vec<Vec<usize>>,
    pub by_path: Vec<Vec<usize>>,
    pub by_arg: Vec<Vec<usize>>,
    pub by_variable: Vec<Vec<usize>>,
    pub sql_keyed: Vec<bool>,
    pub by_kind: Vec<(sluice_protocols::sql::Kind, Vec<usize>)>,
}

/// The set a shell rule is indexed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShellKey {
    Program,
    Path,
    Arg,
    Variable,
}

impl Engine {
    /// The embedded `agent-safe` policy, compiled once per process.
    pub fn agent_safe() -> Arc<Engine> {
        static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
        ENGINE
            .get_or_init(|| {
                #[allow(clippy::expect_used)]
                Arc::new(Engine::from_yaml("agent-safe", AGENT_SAFE).expect("the embedded policy compiles"))
            })
            .clone()
    }

    /// Compiles a YAML policy. `origin` names it in errors.
    pub fn from_yaml(origin: &str, text: &str) -> Result<Engine, PolicyError> {
        let doc: PolicyDoc = serde_yaml_ng::from_str(text).map_err(|e| PolicyError {
            origin: origin.to_string(),
            line: e.location().map(|l| (l.line(), l.column())),
            path: None,
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
        })?;
        compile(origin, doc)
    }

    /// Compiles a JSON policy. `origin` names it in errors.
    pub fn from_json(origin: &str, text: &str) -> Result<Engine, PolicyError> {
        let doc: PolicyDoc = serde_json::from_str(text).map_err(|e| PolicyError {
            origin: origin.to_string(),
            line: Some((e.line(), e.column())),
            path: None,
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
        })?;
        compile(origin, doc)
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
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            line: None,
            path: None,
            message: format!("cannot read: {e}"),
        })?;
        Engine::from_text(&origin, &text)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
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

struct Compiler<'o> {
    origin: &'o str,
    globs: BTreeMap<&'static str, Vec<Glob>>,
}

impl Compiler<'_> {
    fn err(&self, path: String, message: impl Into<String>) -> PolicyError {
        PolicyError {
            origin: self.origin.to_string(),
            line: None,
            path: Some(path),
            message: message.into(),
        }
    }

    fn glob_mode(&self, path: &str, i: usize, pattern: &str, text: bool) -> Result<Glob, PolicyError> {
        let g = if text { Glob::text(pattern) } else { Glob::new(pattern) };
        g.map_err(|(off, msg)| self.err(format!("{path}[{i}]"), format!("`{pattern}`: {msg} at offset {off}")))
    }

    /// A text glob (`*` matches `/` too).
    fn glob(&self, path: &str, i: usize, pattern: &str) -> Result<Glob, PolicyError> {
        self.glob_mode(path, i, pattern, true)
    }

    fn globs(&self, path: &str, patterns: &[String]) -> Result<Vec<Glob>, PolicyError> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| self.glob(path, i, p))
            .collect()
    }

    /// Path globs (`*` stops at `/`).
    fn path_globs(&self, path: &str, patterns: &[String]) -> Result<Vec<Glob>, PolicyError> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| self.glob_mode(path, i, p, false))
            .collect()
    }

    /// Adds patterns to a shared set; returns their id range.
    fn add(&mut self, set: &'static str, path: &str, patterns: &[String]) -> Result<Range<usize>, PolicyError> {
        let globs = if matches!(set, "paths" | "writes" | "http_paths") {
            self.path_globs(path, patterns)?
        } else {
            self.globs(path, patterns)?
        };
        let v = self.globs.entry(set).or_default();
        let start = v.len();
        v.extend(globs);
        Ok(start..v.len())
    }

    fn map(&self, path: &str, m: &BTreeMap<String, String>) -> Result<Vec<(String, Glob)>, PolicyError> {
        m.iter()
            .map(|(k, v)| Ok((k.clone(), self.glob(&format!("{path}.{k}"), 0, v)?)))
            .collect()
    }

    fn multimap(
        &self,
        path: &str,
        m: &BTreeMap<String, Vec<String>>,
        key: impl Fn(&str) -> String,
    ) -> Result<Vec<(String, Vec<Glob>)>, PolicyError> {
        m.iter()
            .map(|(k, v)| Ok((key(k), self.globs(&format!("{path}.{k}"), v)?)))
            .collect()
    }

    fn set(&mut self, name: &'static str) -> Result<GlobSet, PolicyError> {
        let globs = self.globs.remove(name).unwrap_or_default();
        GlobSet::new(globs).map_err(|e| self.err(name.to_string(), e))
    }
}

fn parse_ttl(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let unit = match &s[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&t| t > 0)
}

fn approval_spec(
    c: &Compiler<'_>,
    path: &str,
    doc: &ApprovalDoc,
    base: &ApprovalSpec,
) -> Result<ApprovalSpec, PolicyError> {
    let mut spec = base.clone();
    if let Some(ttl) = &doc.ttl {
        spec.ttl_secs = parse_ttl(ttl).ok_or_else(|| {
            c.err(
                format!("{path}.ttl"),
                format!("`{ttl}` is not a duration such as 90s, 15m, 2h or 1d"),
            )
        })?;
    }
    if let Some(n) = doc.count {
        if n == 0 {
            return Err(c.err(format!("{path}.count"), "must be at least 1"));
        }
        spec.count = n;
    }
    if let Some(s) = doc.allow_self {
        spec.allow_self = s;
    }
    if let Some(a) = &doc.approvers {
        spec.users = a.users.clone();
        spec.groups = a.groups.clone();
    }
    Ok(spec)
}

const SQL_KINDS: &[(&str, sluice_protocols::sql::Kind)] = {
    use sluice_protocols::sql::Kind::*;
    &[
        ("select", Select),
        ("insert", Insert),
        ("update", Update),
        ("delete", Delete),
        ("merge", Merge),
        ("copy", Copy),
        ("create", Create),
        ("alter", Alter),
        ("drop", Drop),
        ("truncate", Truncate),
        ("grant", Grant),
        ("revoke", Revoke),
        ("role", Role),
        ("set", Set),
        ("show", Show),
        ("transaction", Transaction),
        ("call", Call),
        ("do", Do),
        ("execute", Execute),
        ("explain", Explain),
        ("use", Use),
        ("listen", Listen),
        ("other", Other),
    ]
};

fn compile(origin: &str, doc: PolicyDoc) -> Result<Engine, PolicyError> {
    let mut c = Compiler {
        origin,
        globs: BTreeMap::new(),
    };
    if doc.version != 1 {
        return Err(c.err(
            "version".into(),
            format!("unsupported policy version {} (this engine reads 1)", doc.version),
        ));
    }
    let base = ApprovalSpec {
        ttl_secs: 15 * 60,
        count: 1,
        allow_self: false,
        users: Vec::new(),
        groups: Vec::new(),
    };
    let default_approval = approval_spec(&c, "approval", &doc.approval, &base)?;
    let mut roles = Vec::new();
    for (name, r) in &doc.roles {
        let path = format!("roles.{name}");
        if r.users.is_empty() && r.groups.is_empty() && r.attributes.is_empty() {
            return Err(c.err(path, "a role needs users, groups or attributes"));
        }
        roles.push(Role {
            name: name.clone(),
            users: c.globs(&format!("{path}.users"), &r.users)?,
            groups: c.globs(&format!("{path}.groups"), &r.groups)?,
            attributes: c.map(&format!("{path}.attributes"), &r.attributes)?,
        });
    }
    let role_ids = |c: &Compiler<'_>, path: &str, names: &[String]| -> Result<Vec<usize>, PolicyError> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                roles
                    .iter()
                    .position(|r| &r.name == n)
                    .ok_or_else(|| c.err(format!("{path}[{i}]"), format!("no role named `{n}` in `roles`")))
            })
            .collect()
    };

    let mut rule_docs: Vec<(String, RuleDoc)> = doc
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("rules[{i}]"), r))
        .collect();
    let mut tools = doc.tools;
    match doc.extends.as_deref() {
        None => {}
        Some("agent-safe") => {
            #[allow(clippy::expect_used)]
            let base: PolicyDoc = serde_yaml_ng::from_str(AGENT_SAFE).expect("the embedded policy parses");
            rule_docs.extend(
                base.rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (format!("agent-safe.rules[{i}]"), r)),
            );
            tools.shell.extend(base.tools.shell);
            tools.files.extend(base.tools.files);
        }
        Some(other) => {
            return Err(c.err(
                "extends".into(),
                format!("unknown base policy `{other}` (only `agent-safe`)"),
            ));
        }
    }

    let mut rules = Vec::with_capacity(rule_docs.len());
    let mut ids = std::collections::HashSet::new();
    let mut wants = 0u8;
    for (path, r) in rule_docs {
        if r.id.is_empty() {
            return Err(c.err(format!("{path}.id"), "a rule needs an id"));
        }
        if !ids.insert(r.id.clone()) {
            return Err(c.err(format!("{path}.id"), format!("duplicate rule id `{}`", r.id)));
        }
        let w = &r.when;
        let wp = format!("{path}.when");
        let mut protocols = 0u8;
        for (i, p) in w.protocols.iter().enumerate() {
            let p: Protocol = p
                .parse()
                .map_err(|e: String| c.err(format!("{wp}.protocols[{i}]"), e))?;
            protocols |= p.bit();
        }
        let shell = match &w.shell {
            None => None,
            Some(s) => {
                let sp = format!("{wp}.shell");
                let mut commands = Vec::new();
                let first_id = c.globs.get("programs").map_or(0, Vec::len);
                for (i, cmd) in s.commands.iter().enumerate() {
                    let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
                    if words.is_empty() {
                        return Err(c.err(format!("{sp}.commands[{i}]"), "empty command"));
                    }
                    let prog = c.add("programs", &format!("{sp}.commands[{i}]"), &words[..1])?.start;
                    commands.push((prog, c.globs(&format!("{sp}.commands[{i}]"), &words[1..])?));
                }
                wants |= Protocol::Shell.bit() | Protocol::Ssh.bit() | Protocol::Mcp.bit();
                let command_programs = first_id..c.globs.get("programs").map_or(0, Vec::len);
                let keyed_by_args = s.programs.is_empty() && s.commands.is_empty() && s.paths.is_empty();
                let key_args = if keyed_by_args {
                    c.add("key_args", &format!("{sp}.args"), &s.args)?
                } else {
                    0..0
                };
                Some(ShellCond {
                    key_args,
                    command_programs,
                    programs: c.add("programs", &format!("{sp}.programs"), &s.programs)?,
                    not_programs: c.add("programs", &format!("{sp}.not_programs"), &s.not_programs)?,
                    commands,
                    args: c.add("args", &format!("{sp}.args"), &s.args)?,
                    flags: c.add("flags", &format!("{sp}.flags"), &s.flags)?,
                    paths: c.add("paths", &format!("{sp}.paths"), &s.paths)?,
                    not_paths: c.path_globs(&format!("{sp}.not_paths"), &s.not_paths)?,
                    writes: c.add("writes", &format!("{sp}.writes"), &s.writes)?,
                    variables: c.add("variables", &format!("{sp}.variables"), &s.variables)?,
                    max_operands: s.max_operands,
                    max_args: s.max_args,
                })
            }
        };
        let sql = match &w.sql {
            None => None,
            Some(s) => {
                let sp = format!("{wp}.sql");
                let mut kinds = Vec::new();
                for (i, k) in s.kinds.iter().enumerate() {
                    let kind = SQL_KINDS
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .ok_or_else(|| {
                            let names: Vec<&str> = SQL_KINDS.iter().map(|(n, _)| *n).collect();
                            c.err(
                                format!("{sp}.kinds[{i}]"),
                                format!("unknown statement kind `{k}` (one of {})", names.join(", ")),
                            )
                        })?;
                    kinds.push(kind.1);
                }
                let mut copy = Vec::new();
                for (i, k) in s.copy.iter().enumerate() {
                    copy.push(match k.as_str() {
                        "program" => "program",
                        "file" => "file",
                        "client" => "client",
                        _ => {
                            return Err(c.err(
                                format!("{sp}.copy[{i}]"),
                                format!("`{k}`: expected program, file or client"),
                            ));
                        }
                    });
                }
                let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
                wants |= Protocol::Sql.bit();
                let secret = c.add("columns", &format!("{sp}.secret_columns"), &lower(&s.secret_columns))?;
                Some(SqlCond {
                    kinds,
                    relations: c.add("relations", &format!("{sp}.relations"), &lower(&s.relations))?,
                    writes: c.add("relations", &format!("{sp}.writes"), &lower(&s.writes))?,
                    functions: c.add("functions", &format!("{sp}.functions"), &lower(&s.functions))?,
                    missing_where: s.missing_where,
                    copy,
                    languages: lower(&s.languages),
                    secret_columns: secret.clone(),
                    except_columns: c.add("columns", &format!("{sp}.except_columns"), &lower(&s.except_columns))?,
                    secret_prefilter: glob::required_literals(
                        c.globs.get("columns").map_or(&[][..], |g| &g[secret]).iter(),
                    ),
                })
            }
        };
        let http = match &w.http {
            None => None,
            Some(h) => {
                let hp = format!("{wp}.http");
                let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
                wants |= Protocol::Http.bit();
                Some(HttpCond {
                    methods: h.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    hosts: c.add("hosts", &format!("{hp}.hosts"), &lower(&h.hosts))?,
                    paths: c.add("http_paths", &format!("{hp}.paths"), &h.paths)?,
                    headers: c.multimap(&format!("{hp}.headers"), &h.headers, |k| k.to_ascii_lowercase())?,
                    json: c.multimap(&format!("{hp}.json"), &h.json, pointer)?,
                })
            }
        };
        let mcp = match &w.mcp {
            None => None,
            Some(m) => {
                let mp = format!("{wp}.mcp");
                let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
                let lower_values = |m: &BTreeMap<String, Vec<String>>| {
                    m.iter().map(|(k, v)| (k.clone(), lower(v))).collect::<BTreeMap<_, _>>()
                };
                wants |= Protocol::Mcp.bit();
                Some(McpCond {
                    tools: c.add("tools", &format!("{mp}.tools"), &lower(&m.tools))?,
                    arguments: c.multimap(&format!("{mp}.arguments"), &lower_values(&m.arguments), pointer)?,
                })
            }
        };
        let ssh = match &w.ssh {
            None => None,
            Some(s) => {
                let sp = format!("{wp}.ssh");
                wants |= Protocol::Ssh.bit();
                Some(SshCond {
                    env: c.globs(&format!("{sp}.env"), &s.env)?,
                    subsystems: c.globs(&format!("{sp}.subsystems"), &s.subsystems)?,
                    forwards: c.globs(&format!("{sp}.forwards"), &s.forwards)?,
                    channels: c.globs(&format!("{sp}.channels"), &s.channels)?,
                    shell: s.shell,
                })
            }
        };
        let approval = match &r.approval {
            Some(a) => {
                if r.action != Action::RequireApproval {
                    return Err(c.err(
                        format!("{path}.approval"),
                        "only require_approval rules take approval settings",
                    ));
                }
                approval_spec(&c, &format!("{path}.approval"), a, &default_approval)?
            }
            None => default_approval.clone(),
        };
        rules.push(Rule {
            message: r
                .message
                .clone()
                .or_else(|| r.description.clone())
                .unwrap_or_else(|| format!("rule {}", r.id)),
            id: r.id,
            action: r.action,
            approval,
            mask: r.mask,
            users: c.globs(&format!("{wp}.users"), &w.users)?,
            not_users: c.globs(&format!("{wp}.not_users"), &w.not_users)?,
            groups: c.globs(&format!("{wp}.groups"), &w.groups)?,
            not_groups: c.globs(&format!("{wp}.not_groups"), &w.not_groups)?,
            roles: role_ids(&c, &format!("{wp}.roles"), &w.roles)?,
            not_roles: role_ids(&c, &format!("{wp}.not_roles"), &w.not_roles)?,
            attributes: c.map(&format!("{wp}.attributes"), &w.attributes)?,
            targets: c.globs(&format!("{wp}.targets"), &w.targets)?,
            not_targets: c.globs(&format!("{wp}.not_targets"), &w.not_targets)?,
            labels: c.map(&format!("{wp}.labels"), &w.labels)?,
            protocols,
            shell,
            sql,
            http,
            mcp,
            ssh,
        });
    }
    let tool_maps = |c: &Compiler<'_>, name: &str, v: &[doc::ToolMapDoc]| -> Result<Vec<ToolMap>, PolicyError> {
        v.iter()
            .enumerate()
            .map(|(i, t)| {
                if t.arguments.is_empty() {
                    return Err(c.err(format!("tools.{name}[{i}].arguments"), "name at least one argument"));
                }
                Ok(ToolMap {
                    tool: c.glob(&format!("tools.{name}"), i, &t.tool.to_lowercase())?,
                    arguments: t.arguments.iter().map(|a| pointer(a)).collect(),
                })
            })
            .collect()
    };
    let shell_tools = tool_maps(&c, "shell", &tools.shell)?;
    let file_tools = tool_maps(&c, "files", &tools.files)?;
    let sets = Sets {
        programs: c.set("programs")?,
        args: c.set("args")?,
        key_args: c.set("key_args")?,
        flags: c.set("flags")?,
        paths: c.set("paths")?,
        writes: c.set("writes")?,
        variables: c.set("variables")?,
        relations: c.set("relations")?,
        functions: c.set("functions")?,
        columns: c.set("columns")?,
        hosts: c.set("hosts")?,
        http_paths: c.set("http_paths")?,
        tools: c.set("tools")?,
    };
    let mut by_protocol: [Vec<usize>; 5] = Default::default();
    for (i, r) in rules.iter().enumerate() {
        let no_blocks = r.shell.is_none() && r.sql.is_none() && r.http.is_none() && r.mcp.is_none() && r.ssh.is_none();
        for p in Protocol::ALL {
            let blocks = match p {
                Protocol::Shell => r.shell.is_some(),
                Protocol::Sql => r.sql.is_some(),
                Protocol::Http => r.http.is_some(),
                Protocol::Mcp => r.mcp.is_some() || r.shell.is_some(),
                Protocol::Ssh => r.ssh.is_some() || r.shell.is_some(),
            };
            if (no_blocks || blocks) && (r.protocols == 0 || r.protocols & p.bit() != 0) {
                by_protocol[p as usize].push(i);
            }
        }
    }
    let mut index = Index {
        by_program: vec![Vec::new(); sets.programs.len()],
        by_path: vec![Vec::new(); sets.paths.len()],
        by_arg: vec![Vec::new(); sets.key_args.len()],
        by_variable: vec![Vec::new(); sets.variables.len()],
        ..Index::default()
    };
    for (i, r) in rules.iter().enumerate() {
        let key = r.shell.as_ref().and_then(|c| {
            [
                (ShellKey::Program, c.programs.clone()),
                (ShellKey::Program, c.command_programs.clone()),
                (ShellKey::Path, c.paths.clone()),
                (ShellKey::Arg, c.key_args.clone()),
                (ShellKey::Variable, c.variables.clone()),
            ]
            .into_iter()
            .find(|(_, r)| !r.is_empty())
        });
        if let Some((k, range)) = &key {
            let lists = match k {
                ShellKey::Program => &mut index.by_program,
                ShellKey::Path => &mut index.by_path,
                ShellKey::Arg => &mut index.by_arg,
                ShellKey::Variable => &mut index.by_variable,
            };
            for id in range.clone() {
                lists[id].push(i);
            }
        }
        index.shell_key.push(key);
        let kinds = r.sql.as_ref().map(|c| c.kinds.as_slice()).unwrap_or_default();
        index.sql_keyed.push(!kinds.is_empty());
        for k in kinds {
            match index.by_kind.iter_mut().find(|(kind, _)| kind == k) {
                Some((_, v)) => v.push(i),
                None => index.by_kind.push((*k, vec![i])),
            }
        }
    }
    Ok(Engine {
        index,
        by_protocol,
        name: doc.name.unwrap_or_else(|| origin.to_string()),
        default: doc.default.unwrap_or(Action::Deny),
        uncertain: doc.uncertain.unwrap_or(Action::RequireApproval),
        masking: doc.masking.enabled,
        default_approval,
        roles,
        rules,
        sets,
        shell_tools,
        file_tools,
        wants,
    })
}

/// A JSON pointer from a field name (`path` → `/path`) or a pointer as written.
fn pointer(k: &str) -> String {
    if k.starts_with('/') {
        k.to_string()
    } else {
        format!("/{k}")
    }
}
