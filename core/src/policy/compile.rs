//! Compiling a policy document into an [`Engine`]: every field checked (errors name the
//! field's path), every glob gathered into one shared set per kind of name (programs, paths,
//! relations, hosts, …) so a decision matches each name once, and the rules indexed by the
//! protocol, program, path, argument, variable or statement kind they need.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use super::doc::{
    ApprovalDoc, HttpDoc, McpDoc, PolicyDoc, RoleDoc, RuleDoc, ShellDoc, SqlDoc, SshDoc, ToolMapDoc, ToolsDoc,
};
use super::glob::{self, Glob, GlobSet};
use super::{AGENT_SAFE, Action, Engine, PolicyError, PolicyErrorKind, Protocol};

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

#[cfg(test)]
impl Sets {
    fn all(&self) -> [&GlobSet; 13] {
        [
            &self.programs,
            &self.args,
            &self.key_args,
            &self.flags,
            &self.paths,
            &self.writes,
            &self.variables,
            &self.relations,
            &self.functions,
            &self.columns,
            &self.hosts,
            &self.http_paths,
            &self.tools,
        ]
    }
}

#[cfg(test)]
mod lazy_tests {
    /// The build script's JSON of the embedded policy is the YAML's document.
    #[test]
    fn the_embedded_json_is_the_yaml() {
        let json: super::PolicyDoc =
            serde_json::from_str(include_str!(concat!(env!("OUT_DIR"), "/agent-safe.json"))).expect("json");
        let yaml: super::PolicyDoc = serde_yaml_ng::from_str(super::super::AGENT_SAFE).expect("yaml");
        assert_eq!(format!("{json:?}"), format!("{yaml:?}"));
        let e = super::super::Engine::agent_safe();
        let y = super::super::Engine::from_yaml("agent-safe", super::super::AGENT_SAFE).expect("compiles");
        assert_eq!(e.digest(), y.digest());
        assert_eq!(e.rule_count(), y.rule_count());
    }

    /// The embedded policy's glob sets compile on first use; this proves first use cannot fail.
    #[test]
    fn every_set_of_the_embedded_policy_compiles() {
        let e = super::super::Engine::agent_safe();
        for set in e.sets.all() {
            set.force().expect("compiles");
        }
    }
}

/// MCP tools mapped onto shell or path analysis.
#[derive(Debug)]
pub(crate) struct ToolMap {
    pub tool: Glob,
    pub arguments: Vec<String>,
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

/// A policy being compiled: its origin (for errors), the patterns of each shared glob set
/// gathered so far, and which protocols the rules have condition blocks for.
struct Compiler<'o> {
    origin: &'o str,
    globs: BTreeMap<&'static str, Vec<Glob>>,
    wants: u8,
    lazy: bool,
}

impl Compiler<'_> {
    fn err(&self, path: String, message: impl Into<String>) -> PolicyError {
        PolicyError::new(PolicyErrorKind::Invalid, self.origin, message).field(path)
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
        GlobSet::new(globs, self.lazy).map_err(|e| self.err(name.to_string(), e))
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

/// Compiles a parsed policy document into an [`Engine`]. `lazy`: glob sets compile on first
/// use (the embedded policy only, whose sets the tests compile).
pub(crate) fn compile(origin: &str, doc: PolicyDoc, lazy: bool) -> Result<Engine, PolicyError> {
    let mut c = Compiler {
        origin,
        globs: BTreeMap::new(),
        wants: 0,
        lazy,
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
    let roles = c.roles(&doc.roles)?;
    let (rule_docs, tools) = c.with_base(doc.extends.as_deref(), doc.rules, doc.tools)?;
    let mut rules = Vec::with_capacity(rule_docs.len());
    let mut ids = HashSet::new();
    for (path, r) in rule_docs {
        if r.id.is_empty() {
            return Err(c.err(format!("{path}.id"), "a rule needs an id"));
        }
        if !ids.insert(r.id.clone()) {
            return Err(c.err(format!("{path}.id"), format!("duplicate rule id `{}`", r.id)));
        }
        rules.push(c.rule(&path, r, &roles, &default_approval)?);
    }
    let mut credentials = Vec::with_capacity(doc.credentials.len());
    for (name, cred) in &doc.credentials {
        let path = format!("credentials.{name}");
        crate::broker::Placeholder::new(name).map_err(|e| c.err(path.clone(), e.to_string()))?;
        if cred.targets.is_empty() {
            return Err(c.err(format!("{path}.targets"), "list the targets this credential may go to"));
        }
        credentials.push((name.clone(), c.globs(&format!("{path}.targets"), &cred.targets)?));
    }
    let shell_tools = c.tool_maps("shell", &tools.shell)?;
    let file_tools = c.tool_maps("files", &tools.files)?;
    let sets = c.sets()?;
    let by_protocol = by_protocol(&rules);
    let index = index(&rules, &sets);
    Ok(Engine {
        index,
        by_protocol,
        digest: String::new(),
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
        credentials,
        wants: c.wants,
    })
}

impl Compiler<'_> {
    fn roles(&self, docs: &BTreeMap<String, RoleDoc>) -> Result<Vec<Role>, PolicyError> {
        docs.iter()
            .map(|(name, r)| {
                let path = format!("roles.{name}");
                if r.users.is_empty() && r.groups.is_empty() && r.attributes.is_empty() {
                    return Err(self.err(path, "a role needs users, groups or attributes"));
                }
                Ok(Role {
                    name: name.clone(),
                    users: self.globs(&format!("{path}.users"), &r.users)?,
                    groups: self.globs(&format!("{path}.groups"), &r.groups)?,
                    attributes: self.map(&format!("{path}.attributes"), &r.attributes)?,
                })
            })
            .collect()
    }

    /// The rules (each with its path for errors) and tool maps, the base policy's after the
    /// document's own when it `extends` one.
    fn with_base(
        &self,
        extends: Option<&str>,
        rules: Vec<RuleDoc>,
        mut tools: ToolsDoc,
    ) -> Result<(Vec<(String, RuleDoc)>, ToolsDoc), PolicyError> {
        let mut rule_docs: Vec<(String, RuleDoc)> = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (format!("rules[{i}]"), r))
            .collect();
        match extends {
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
                return Err(self.err(
                    "extends".into(),
                    format!("unknown base policy `{other}` (only `agent-safe`)"),
                ));
            }
        }
        Ok((rule_docs, tools))
    }

    /// The indexes of the named roles.
    fn role_ids(&self, roles: &[Role], path: &str, names: &[String]) -> Result<Vec<usize>, PolicyError> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                roles
                    .iter()
                    .position(|r| &r.name == n)
                    .ok_or_else(|| self.err(format!("{path}[{i}]"), format!("no role named `{n}` in `roles`")))
            })
            .collect()
    }

    fn rule(
        &mut self,
        path: &str,
        r: RuleDoc,
        roles: &[Role],
        default_approval: &ApprovalSpec,
    ) -> Result<Rule, PolicyError> {
        let w = &r.when;
        let wp = format!("{path}.when");
        let mut protocols = 0u8;
        for (i, p) in w.protocols.iter().enumerate() {
            let p: Protocol = p
                .parse()
                .map_err(|e: String| self.err(format!("{wp}.protocols[{i}]"), e))?;
            protocols |= p.bit();
        }
        let shell = w
            .shell
            .as_ref()
            .map(|s| self.shell_cond(&format!("{wp}.shell"), s))
            .transpose()?;
        let sql = w
            .sql
            .as_ref()
            .map(|s| self.sql_cond(&format!("{wp}.sql"), s))
            .transpose()?;
        let http = w
            .http
            .as_ref()
            .map(|h| self.http_cond(&format!("{wp}.http"), h))
            .transpose()?;
        let mcp = w
            .mcp
            .as_ref()
            .map(|m| self.mcp_cond(&format!("{wp}.mcp"), m))
            .transpose()?;
        let ssh = w
            .ssh
            .as_ref()
            .map(|s| self.ssh_cond(&format!("{wp}.ssh"), s))
            .transpose()?;
        let approval = match &r.approval {
            Some(a) => {
                if r.action != Action::RequireApproval {
                    return Err(self.err(
                        format!("{path}.approval"),
                        "only require_approval rules take approval settings",
                    ));
                }
                approval_spec(self, &format!("{path}.approval"), a, default_approval)?
            }
            None => default_approval.clone(),
        };
        Ok(Rule {
            message: r
                .message
                .clone()
                .or_else(|| r.description.clone())
                .unwrap_or_else(|| format!("rule {}", r.id)),
            action: r.action,
            approval,
            mask: r.mask,
            users: self.globs(&format!("{wp}.users"), &w.users)?,
            not_users: self.globs(&format!("{wp}.not_users"), &w.not_users)?,
            groups: self.globs(&format!("{wp}.groups"), &w.groups)?,
            not_groups: self.globs(&format!("{wp}.not_groups"), &w.not_groups)?,
            roles: self.role_ids(roles, &format!("{wp}.roles"), &w.roles)?,
            not_roles: self.role_ids(roles, &format!("{wp}.not_roles"), &w.not_roles)?,
            attributes: self.map(&format!("{wp}.attributes"), &w.attributes)?,
            targets: self.globs(&format!("{wp}.targets"), &w.targets)?,
            not_targets: self.globs(&format!("{wp}.not_targets"), &w.not_targets)?,
            labels: self.map(&format!("{wp}.labels"), &w.labels)?,
            protocols,
            shell,
            sql,
            http,
            mcp,
            ssh,
            id: r.id,
        })
    }

    fn shell_cond(&mut self, sp: &str, s: &ShellDoc) -> Result<ShellCond, PolicyError> {
        let mut commands = Vec::new();
        let first_id = self.globs.get("programs").map_or(0, Vec::len);
        for (i, cmd) in s.commands.iter().enumerate() {
            let words: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
            if words.is_empty() {
                return Err(self.err(format!("{sp}.commands[{i}]"), "empty command"));
            }
            let prog = self.add("programs", &format!("{sp}.commands[{i}]"), &words[..1])?.start;
            commands.push((prog, self.globs(&format!("{sp}.commands[{i}]"), &words[1..])?));
        }
        self.wants |= Protocol::Shell.bit() | Protocol::Ssh.bit() | Protocol::Mcp.bit();
        let command_programs = first_id..self.globs.get("programs").map_or(0, Vec::len);
        let keyed_by_args = s.programs.is_empty() && s.commands.is_empty() && s.paths.is_empty();
        let key_args = if keyed_by_args {
            self.add("key_args", &format!("{sp}.args"), &s.args)?
        } else {
            0..0
        };
        Ok(ShellCond {
            key_args,
            command_programs,
            programs: self.add("programs", &format!("{sp}.programs"), &s.programs)?,
            not_programs: self.add("programs", &format!("{sp}.not_programs"), &s.not_programs)?,
            commands,
            args: self.add("args", &format!("{sp}.args"), &s.args)?,
            flags: self.add("flags", &format!("{sp}.flags"), &s.flags)?,
            paths: self.add("paths", &format!("{sp}.paths"), &s.paths)?,
            not_paths: self.path_globs(&format!("{sp}.not_paths"), &s.not_paths)?,
            writes: self.add("writes", &format!("{sp}.writes"), &s.writes)?,
            variables: self.add("variables", &format!("{sp}.variables"), &s.variables)?,
            max_operands: s.max_operands,
            max_args: s.max_args,
        })
    }

    fn sql_cond(&mut self, sp: &str, s: &SqlDoc) -> Result<SqlCond, PolicyError> {
        let mut kinds = Vec::new();
        for (i, k) in s.kinds.iter().enumerate() {
            let kind = SQL_KINDS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .ok_or_else(|| {
                    let names: Vec<&str> = SQL_KINDS.iter().map(|(n, _)| *n).collect();
                    self.err(
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
                    return Err(self.err(
                        format!("{sp}.copy[{i}]"),
                        format!("`{k}`: expected program, file or client"),
                    ));
                }
            });
        }
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        self.wants |= Protocol::Sql.bit();
        let secret = self.add("columns", &format!("{sp}.secret_columns"), &lower(&s.secret_columns))?;
        Ok(SqlCond {
            kinds,
            relations: self.add("relations", &format!("{sp}.relations"), &lower(&s.relations))?,
            writes: self.add("relations", &format!("{sp}.writes"), &lower(&s.writes))?,
            functions: self.add("functions", &format!("{sp}.functions"), &lower(&s.functions))?,
            missing_where: s.missing_where,
            copy,
            languages: lower(&s.languages),
            secret_columns: secret.clone(),
            except_columns: self.add("columns", &format!("{sp}.except_columns"), &lower(&s.except_columns))?,
            secret_prefilter: glob::required_literals(self.globs.get("columns").map_or(&[][..], |g| &g[secret]).iter()),
        })
    }

    fn http_cond(&mut self, hp: &str, h: &HttpDoc) -> Result<HttpCond, PolicyError> {
        let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        self.wants |= Protocol::Http.bit();
        Ok(HttpCond {
            methods: h.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            hosts: self.add("hosts", &format!("{hp}.hosts"), &lower(&h.hosts))?,
            paths: self.add("http_paths", &format!("{hp}.paths"), &h.paths)?,
            headers: self.multimap(&format!("{hp}.headers"), &h.headers, |k| k.to_ascii_lowercase())?,
            json: self.multimap(&format!("{hp}.json"), &h.json, pointer)?,
        })
    }

    fn mcp_cond(&mut self, mp: &str, m: &McpDoc) -> Result<McpCond, PolicyError> {
        let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
        let arguments: BTreeMap<String, Vec<String>> = m.arguments.iter().map(|(k, v)| (k.clone(), lower(v))).collect();
        self.wants |= Protocol::Mcp.bit();
        Ok(McpCond {
            tools: self.add("tools", &format!("{mp}.tools"), &lower(&m.tools))?,
            arguments: self.multimap(&format!("{mp}.arguments"), &arguments, pointer)?,
        })
    }

    fn ssh_cond(&mut self, sp: &str, s: &SshDoc) -> Result<SshCond, PolicyError> {
        self.wants |= Protocol::Ssh.bit();
        Ok(SshCond {
            env: self.globs(&format!("{sp}.env"), &s.env)?,
            subsystems: self.globs(&format!("{sp}.subsystems"), &s.subsystems)?,
            forwards: self.globs(&format!("{sp}.forwards"), &s.forwards)?,
            channels: self.globs(&format!("{sp}.channels"), &s.channels)?,
            shell: s.shell,
        })
    }

    /// The `tools.shell` / `tools.files` maps: which MCP tool's argument holds a command or a path.
    fn tool_maps(&self, name: &str, v: &[ToolMapDoc]) -> Result<Vec<ToolMap>, PolicyError> {
        v.iter()
            .enumerate()
            .map(|(i, t)| {
                if t.arguments.is_empty() {
                    return Err(self.err(format!("tools.{name}[{i}].arguments"), "name at least one argument"));
                }
                Ok(ToolMap {
                    tool: self.glob(&format!("tools.{name}"), i, &t.tool.to_lowercase())?,
                    arguments: t.arguments.iter().map(|a| pointer(a)).collect(),
                })
            })
            .collect()
    }

    /// The shared glob sets, compiled once all rules are in.
    fn sets(&mut self) -> Result<Sets, PolicyError> {
        Ok(Sets {
            programs: self.set("programs")?,
            args: self.set("args")?,
            key_args: self.set("key_args")?,
            flags: self.set("flags")?,
            paths: self.set("paths")?,
            writes: self.set("writes")?,
            variables: self.set("variables")?,
            relations: self.set("relations")?,
            functions: self.set("functions")?,
            columns: self.set("columns")?,
            hosts: self.set("hosts")?,
            http_paths: self.set("http_paths")?,
            tools: self.set("tools")?,
        })
    }
}

/// For each protocol, the rules that can apply to it, in order: those with a condition block
/// for it (shell blocks also serve MCP and SSH, which carry commands) and those with none.
fn by_protocol(rules: &[Rule]) -> [Vec<usize>; 5] {
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
    by_protocol
}

/// Shell rules by the first non-empty key set (programs, paths, key arguments, variables) one
/// of whose globs must match; SQL rules by the statement kinds they name.
fn index(rules: &[Rule], sets: &Sets) -> Index {
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
    index
}

/// A JSON pointer from a field name (`path` → `/path`) or a pointer as written.
fn pointer(k: &str) -> String {
    if k.starts_with('/') {
        k.to_string()
    } else {
        format!("/{k}")
    }
}
