//! Evaluation: the facts of a request are matched once against every glob set; rules are then
//! cheap tests on the resulting pattern sets, three-valued (no, maybe, yes).

use std::ops::Range;

use serde_json::Value;
use sluice_protocols::{mcp, shell, sql};
use smallvec::SmallVec;

use super::compile::{HttpCond, McpCond, Role, Rule, ShellCond, SqlCond, SshCond};
use super::facts::{self, has_expansion, is_dynamic};
use super::glob::{Bits, Expansion, Glob, GlobSet, Nfa, bare_expansion, literal_chunks, shell_word_nfa};
use super::grant::ApprovalRequest;
use super::{Action, Decision, Engine, HttpRequest, Identity, Request, SshRequest, Target};

/// Which rules may match a request, by rule index (inline for policies of up to 64 rules).
type Candidates = SmallVec<[bool; 64]>;

/// A three-valued truth: `No < Maybe < Yes`; `and` is `min`, `or` is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tri {
    No,
    Maybe,
    Yes,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::No => Tri::Yes,
            Tri::Maybe => Tri::Maybe,
            Tri::Yes => Tri::No,
        }
    }

    fn from(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }
}

/// The glob ids of one set that matched (`yes`) or may match (`maybe`).
struct Hits {
    yes: Bits,
    maybe: Bits,
}

impl Hits {
    fn new(set: &GlobSet) -> Hits {
        Hits {
            yes: Bits::new(set.len()),
            maybe: Bits::new(set.len()),
        }
    }

    /// The condition "one of the globs in `r` matched"; an empty range is no condition.
    fn test(&self, r: &Range<usize>) -> Tri {
        if r.is_empty() {
            return Tri::Yes;
        }
        if self.yes.is_empty() && self.maybe.is_empty() {
            return Tri::No;
        }
        if self.yes.any_in(r.clone()) {
            Tri::Yes
        } else if self.maybe.any_in(r.clone()) {
            Tri::Maybe
        } else {
            Tri::No
        }
    }

    /// Matches a word as text. A bare variable (`$X`) is trusted: assignments, where an agent
    /// could plant a value, are checked themselves. Other words with expansions may match what
    /// some expansion of them could, and do match `*LIT*` globs whose `LIT` they spell out.
    fn word(&mut self, set: &GlobSet, text: &str, maybe: bool) {
        if set.len() == 0 {
            return;
        }
        if !has_expansion(text) {
            set.matches_into(text.as_bytes(), &mut self.yes);
            return;
        }
        if bare_expansion(text) == Some(false) {
            return;
        }
        set.containing_into(&literal_chunks(text), &mut self.yes);
        // Variables are trusted as text; what a command substitution prints is not.
        if maybe && (text.contains("$(") || text.contains('`')) {
            set.intersecting_into(&shell_word_nfa(text, Expansion::Component), &mut self.maybe);
        }
    }

    fn literal(&mut self, set: &GlobSet, text: &str) {
        if set.len() > 0 {
            set.matches_into(text.as_bytes(), &mut self.yes);
        }
    }
}

/// One SQL statement with its relations and functions matched.
struct Stmt<'a> {
    st: &'a sql::Statement,
    rel: Hits,
    wr: Hits,
    fun: Hits,
}

/// One path a command touches, in its matchable forms.
#[derive(Clone)]
struct PathFact {
    /// The normal form, glob characters literal.
    text: String,
    /// Resolved forms, matched as they are (for a glob word: its text, literally).
    candidates: Vec<String>,
    /// What the word may expand to, and whether a match through it is only a maybe.
    nfa: Option<(Nfa, bool)>,
}

impl PathFact {
    /// The facts of a path word, or `None` for a word policy trusts (a bare variable, text
    /// with blanks and expansions, which is no path).
    fn new(word: &str) -> Option<PathFact> {
        let text = facts::normalize(word);
        let mut candidates = Vec::new();
        let nfa = if has_expansion(&text) {
            match bare_expansion(&text) {
                Some(false) => return None,
                Some(true) => Some((shell_word_nfa(&text, Expansion::Any), true)),
                None if literal_chunks(&text).iter().any(|c| c.contains([' ', '\t', '\n'])) => return None,
                None => Some((shell_word_nfa(&text, Expansion::Component), true)),
            }
        } else if is_dynamic(&text) {
            candidates.push(text.clone());
            specific_glob(&text).then(|| (shell_word_nfa(&text, Expansion::Component), false))
        } else {
            facts::normalized_candidates(text.clone(), &mut candidates);
            None
        };
        Some(PathFact { text, candidates, nfa })
    }

    fn add_to(&self, set: &GlobSet, hits: &mut Hits, maybe_ok: bool) {
        if set.len() == 0 {
            return;
        }
        for c in &self.candidates {
            set.matches_into(c.as_bytes(), &mut hits.yes);
        }
        match &self.nfa {
            Some((nfa, false)) => set.intersecting_into(nfa, &mut hits.yes),
            Some((nfa, true)) if maybe_ok => set.intersecting_into(nfa, &mut hits.maybe),
            _ => {}
        }
    }

    /// Whether this path matches one of the globs `ids` of `set`, excluding `not`.
    fn test(&self, set: &GlobSet, ids: &Range<usize>, not: &[Glob], maybe_ok: bool) -> Tri {
        if not.iter().any(|g| g.is_match(self.text.as_bytes())) {
            return Tri::No;
        }
        let mut t = Tri::No;
        for id in ids.clone() {
            let g = &set.glob(id).nfa;
            if self.candidates.iter().any(|c| g.is_match(c.as_bytes())) {
                return Tri::Yes;
            }
            match &self.nfa {
                Some((nfa, false)) if g.intersects(nfa) => return Tri::Yes,
                Some((nfa, true)) if maybe_ok && g.intersects(nfa) => t = Tri::Maybe,
                _ => {}
            }
        }
        t
    }
}

/// Whether a glob word says something specific (`~/.ssh/*`, `.e*`, `*.key`) rather than
/// "everything here" (`*`, `?*`): only specific globs are matched by what they may expand to.
fn specific_glob(text: &str) -> bool {
    if text.contains('/') {
        return true;
    }
    let mut in_class = false;
    text.chars().any(|c| match c {
        '[' => {
            in_class = true;
            false
        }
        ']' => {
            in_class = false;
            false
        }
        '*' | '?' => false,
        _ => !in_class,
    })
}

/// Programs whose operands are neither read nor sent anywhere: a word they get that only *may*
/// name a protected path (through a variable) is no reason to ask.
const INERT: &[&str] = &[
    "echo", "printf", "cd", "pushd", "popd", "mkdir", "test", "[", "true", "false", "which", "type", "basename",
    "dirname", "sleep", "exit", "return", "local", "unset", "shift", "read", "wait", "alias", "date", "seq", "touch",
    "export", "set", "declare", "typeset", "readonly", "trap", "ls",
];

/// The facts of one simple command.
struct CmdFacts<'c> {
    argv: &'c [String],
    cmd: &'c shell::Command,
    program: Hits,
    /// Computed on first use: most commands meet no rule that looks at them.
    args: std::cell::OnceCell<Hits>,
    flags: std::cell::OnceCell<Hits>,
    paths: Hits,
    path_facts: Vec<PathFact>,
    variables: Hits,
    inert: bool,
}

/// A shell-like view: commands from a command line, an SSH exec or a mapped MCP tool.
struct ShellView {
    commands: Vec<shell::Command>,
    /// Redirection targets (and a file tool's path): apply to every command.
    reads: Vec<String>,
    writes: Vec<String>,
}

impl ShellView {
    /// The view of an analysis, with variables assigned a plain value on the same line
    /// (`K=~/.s; cat ${K}sh/id_rsa`) substituted.
    fn from_analysis(mut a: shell::Analysis) -> ShellView {
        // `K=v cmd`, `K=v`, and `export K=v` (also `declare`, `local`, `readonly`, `typeset`).
        let exported = a
            .commands
            .iter()
            .filter(|c| {
                matches!(
                    c.program(),
                    Some("export" | "declare" | "local" | "readonly" | "typeset")
                )
            })
            .flat_map(|c| c.argv[1..].iter())
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let assigned: Vec<(String, String)> = a
            .commands
            .iter()
            .flat_map(|c| c.assignments.iter())
            .cloned()
            .chain(exported)
            .filter(|(_, v)| !has_expansion(v))
            .collect();
        if !assigned.is_empty() {
            for c in &mut a.commands {
                for w in c.argv.iter_mut().chain(c.assignments.iter_mut().map(|(_, v)| v)) {
                    if has_expansion(w) {
                        *w = facts::substitute(w, &assigned);
                    }
                }
            }
            for w in a.reads.iter_mut().chain(a.writes.iter_mut()) {
                *w = facts::substitute(w, &assigned);
            }
        }
        ShellView {
            commands: a.commands,
            reads: a.reads,
            writes: a.writes,
        }
    }
}

/// What a request amounts to, per protocol view.
#[derive(Default)]
struct Views<'r> {
    shell: Option<ShellView>,
    sql: Option<(Vec<sql::Statement>, &'r str)>,
    http: Option<HttpView>,
    mcp: Option<McpView>,
    ssh: Option<SshRequest<'r>>,
    /// Set when the input could not be analysed at all: the reason.
    unparsed: Option<String>,
}

impl Views<'_> {
    /// A shell analysis as views: its commands, and what it could not see (which makes the
    /// request not understood, as an input that does not parse is).
    /// A line that does not parse is not understood either, and what parses in it still counts.
    fn shell_analysis(&mut self, script: &str) {
        let a = shell::analyze_lenient(script, &shell::Limits::default());
        if !a.opaque.is_empty() {
            self.unparsed = Some(a.opaque.join("; "));
        }
        self.shell = Some(ShellView::from_analysis(a));
    }
}

struct HttpView {
    method: String,
    host: Option<String>,
    path: String,
    headers: Vec<(String, String)>,
    json: Option<Value>,
    /// Why a body is there but could not be read as JSON.
    json_unread: Option<&'static str>,
}

struct McpView {
    tool: Option<String>,
    arguments: Value,
    /// Arguments were sent but could not be read.
    arguments_unread: bool,
}

/// The outcome of one rule against one request.
struct Outcome {
    tri: Tri,
    evidence: String,
}

pub(crate) fn has_role(role: &Role, id: &Identity) -> bool {
    let who = (role.users.is_empty() && role.groups.is_empty())
        || role.users.iter().any(|g| g.is_match(id.user.as_bytes()))
        || role
            .groups
            .iter()
            .any(|g| id.groups.iter().any(|x| g.is_match(x.as_bytes())));
    who && attrs_match(&role.attributes, &id.attributes)
}

fn attrs_match(want: &[(String, Glob)], have: &std::collections::BTreeMap<String, String>) -> bool {
    want.iter()
        .all(|(k, g)| have.get(k).is_some_and(|v| g.is_match(v.as_bytes())))
}

fn any(globs: &[Glob], s: &str) -> bool {
    globs.iter().any(|g| g.is_match(s.as_bytes()))
}

impl Engine {
    fn identity_matches(&self, r: &Rule, id: &Identity, target: &Target, held: &[bool]) -> bool {
        (r.users.is_empty() || any(&r.users, &id.user))
            && !any(&r.not_users, &id.user)
            && (r.groups.is_empty() || id.groups.iter().any(|g| any(&r.groups, g)))
            && !id.groups.iter().any(|g| any(&r.not_groups, g))
            && (r.roles.is_empty() || r.roles.iter().any(|&i| held[i]))
            && !r.not_roles.iter().any(|&i| held[i])
            && attrs_match(&r.attributes, &id.attributes)
            && (r.targets.is_empty() || any(&r.targets, &target.name))
            && !any(&r.not_targets, &target.name)
            && attrs_match(&r.labels, &target.labels)
    }

    /// Decides on a request. Never fails: what cannot be analysed follows the policy's
    /// `uncertain` setting.
    pub fn decide(&self, identity: &Identity, target: &Target, request: &Request<'_>) -> Decision {
        let views = self.views(request);
        fn changes(stmts: &[sql::Statement]) -> bool {
            stmts.iter().any(|st| st.sets_lexing() || changes(&st.nested))
        }
        let changes_lexing = views.sql.as_ref().is_some_and(|(s, _)| changes(s));
        let mut d = self.decide_views(identity, target, request, views);
        d.changes_lexing = changes_lexing;
        d
    }

    fn decide_views(&self, identity: &Identity, target: &Target, request: &Request<'_>, views: Views<'_>) -> Decision {
        let protocol = request.protocol();
        let held: SmallVec<[bool; 16]> = self.roles.iter().map(|r| has_role(r, identity)).collect();

        let flat: SmallVec<[Stmt<'_>; 2]> = views
            .sql
            .as_ref()
            .map(|(s, _)| flatten(s).into_iter().map(|st| self.stmt_facts(st)).collect())
            .unwrap_or_default();
        let mut shell_facts: Option<Vec<CmdFacts<'_>>> = None;
        if views.shell.is_some() {
            shell_facts = views.shell.as_ref().map(|v| self.shell_facts(v));
        }
        // What an allow rule must cover, one by one: each simple command, each SQL statement
        // (nested ones included), or the request as a whole.
        let units = match (&shell_facts, views.sql.is_some()) {
            (Some(f), _) => f.len(),
            (None, true) => flat.len().max(1),
            _ => 1,
        };
        let mut covered: SmallVec<[Option<usize>; 8]> = smallvec::smallvec![None; units];

        // The strongest deny or approval so far: (action, rule index, evidence, uncertain).
        let mut best: Option<(Action, usize, String, bool)> = None;
        fn consider(
            best: &mut Option<(Action, usize, String, bool)>,
            action: Action,
            i: usize,
            evidence: String,
            uncertain: bool,
        ) {
            if best.as_ref().is_none_or(|b| action > b.0) {
                *best = Some((action, i, evidence, uncertain));
            }
        }
        let candidate = self.candidates(&views, shell_facts.as_deref(), &flat);
        for &i in &self.by_protocol[protocol as usize] {
            if !candidate.as_ref().is_none_or(|c| c[i]) {
                continue;
            }
            let r = &self.rules[i];
            if best.as_ref().is_some_and(|b| b.0 == Action::Deny) && r.action != Action::Deny {
                continue;
            }
            if r.action == Action::Allow {
                if best.is_some() || covered.iter().all(Option::is_some) {
                    continue;
                }
                if self.identity_matches(r, identity, target, &held) {
                    self.cover(r, i, &views, &flat, shell_facts.as_deref(), &mut covered);
                }
                continue;
            }
            // The command's conditions first: they reject most rules, and cheaply.
            let o = self.rule_outcome(r, &views, &flat, &mut shell_facts);
            if o.tri == Tri::No || !self.identity_matches(r, identity, target, &held) {
                continue;
            }
            match (o.tri, r.action) {
                (Tri::Yes, a) => consider(&mut best, a, i, o.evidence, false),
                (Tri::Maybe, Action::Allow) | (Tri::No, _) => {}
                (Tri::Maybe, Action::RequireApproval) => {
                    consider(&mut best, Action::RequireApproval, i, o.evidence, true)
                }
                (Tri::Maybe, Action::Deny) => consider(&mut best, self.uncertain, i, o.evidence, true),
            }
        }
        if best.is_none()
            && views.unparsed.is_none()
            && covered.iter().all(Option::is_some)
            && let Some(Some(i)) = covered.first()
        {
            let r = &self.rules[*i];
            let mut d = self.decision(
                Action::Allow,
                Some(*i),
                r.message.clone(),
                identity,
                target,
                request,
                false,
            );
            d.mask = r.mask.unwrap_or(self.masking);
            return d;
        }
        if let Some(why) = &views.unparsed
            && best.as_ref().is_none_or(|b| self.uncertain > b.0)
        {
            return self.decision(
                self.uncertain,
                None,
                format!(
                    "could not analyse the {protocol} input ({why}); policy `uncertain` is {}",
                    self.uncertain.as_str()
                ),
                identity,
                target,
                request,
                true,
            );
        }
        match best {
            Some((action, i, evidence, uncertain)) => {
                let r = &self.rules[i];
                let mut reason = r.message.clone();
                if !evidence.is_empty() {
                    reason.push_str(&format!(" ({evidence})"));
                }
                if uncertain && action != r.action {
                    reason.push_str(&format!(
                        "; the command may match this {} rule but could not be resolved statically, policy `uncertain` is {}",
                        r.action.as_str(),
                        self.uncertain.as_str()
                    ));
                } else if uncertain {
                    reason.push_str("; the command may match (not resolved statically)");
                }
                self.decision(action, Some(i), reason, identity, target, request, uncertain)
            }
            None if matches!(request, Request::Ssh(op) if op.is_opaque()) => {
                let Request::Ssh(op) = request else { unreachable!() };
                self.decision(
                    self.uncertain,
                    None,
                    format!(
                        "{}: what follows it is not seen by the engine and no rule allows it; policy `uncertain` is {}",
                        super::grant::describe_ssh(op),
                        self.uncertain.as_str()
                    ),
                    identity,
                    target,
                    request,
                    true,
                )
            }
            None => self.decision(
                self.default,
                None,
                self.uncovered_reason(&covered, shell_facts.as_deref(), &flat, &views),
                identity,
                target,
                request,
                false,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn decision(
        &self,
        action: Action,
        rule: Option<usize>,
        reason: String,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        uncertain: bool,
    ) -> Decision {
        let approval = (action == Action::RequireApproval).then(|| {
            let spec = rule.map_or(&self.default_approval, |i| &self.rules[i].approval);
            ApprovalRequest::new(
                rule.map(|i| self.rules[i].id.clone()),
                spec,
                identity,
                target,
                request,
                &reason,
            )
        });
        Decision {
            action,
            rule: rule.map(|i| self.rules[i].id.clone()),
            reason,
            approval,
            mask: self.masking,
            uncertain,
            changes_lexing: false,
            pending: false,
            granted: false,
        }
    }

    /// Tightens `d` to require approval under a rule of the session's own (`rule`, such as
    /// `tool-definition-changed`), asking for exactly `request` with the policy's default
    /// approval settings. A deny stays a deny: this never loosens a decision.
    pub(crate) fn require_approval(
        &self,
        mut d: Decision,
        rule: &str,
        why: &str,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
    ) -> Decision {
        if d.action == Action::Deny {
            return d;
        }
        d.action = Action::RequireApproval;
        d.rule = Some(rule.to_string());
        d.reason = format!("{why}; {}", d.reason);
        d.approval = Some(ApprovalRequest::new(
            d.rule.clone(),
            &self.default_approval,
            identity,
            target,
            request,
            &d.reason,
        ));
        d
    }

    /// Parses and analyses the request into the views rules look at.
    fn views<'r>(&self, request: &Request<'r>) -> Views<'r> {
        let mut v = Views::default();
        if let Request::Mcp(msg) = *request
            && let Ok(m) = mcp::parse_message(msg)
            && let Some(method) = m.method.as_deref()
            && !mcp::is_client_method(method)
        {
            // A method this engine does not know: whatever it does was not analysed.
            v.unparsed = Some(format!("unknown MCP method `{method}`"));
            return v;
        }
        if self.wants & request.protocol().bit() == 0 {
            // No rule looks into this protocol: only identity rules and the default apply.
            return v;
        }
        match *request {
            Request::Shell(cmd) => v.shell_analysis(cmd),
            Request::Ssh(op) => {
                v.ssh = Some(op);
                if let SshRequest::Exec(cmd) = op {
                    v.shell_analysis(cmd);
                }
            }
            Request::Sql { text, dialect, lexing } => match sql::analyze_in(text, dialect, &lexing) {
                Ok(stmts) => v.sql = Some((stmts, text)),
                Err(e) => v.unparsed = Some(e.to_string()),
            },
            Request::Http(h) => v.http = Some(http_view(&h)),
            Request::Mcp(msg) => self.mcp_views(msg, &mut v),
        }
        v
    }

    fn mcp_views(&self, msg: &[u8], v: &mut Views<'_>) {
        let m = match mcp::parse_message(msg) {
            Ok(m) => m,
            Err(e) => {
                v.unparsed = Some(e.to_string());
                return;
            }
        };
        let call = match m.tool_call() {
            Ok(c) => c,
            Err(e) => {
                v.unparsed = Some(e.to_string());
                return;
            }
        };
        if let Some(call) = call {
            let parsed = call.arguments.map(|a| serde_json::from_str::<Value>(a.get()));
            let arguments_unread = matches!(parsed, Some(Err(_)));
            let arguments: Value = parsed.and_then(Result::ok).unwrap_or(Value::Null);
            let tool = call.name.to_string();
            // The mapped argument's words: a string is one word, an array many.
            let arg = |maps: &[super::ToolMap]| -> Option<Option<Vec<String>>> {
                let map = maps.iter().find(|t| t.tool.is_match(tool.to_lowercase().as_bytes()))?;
                Some(map.arguments.iter().find_map(|p| {
                    match arguments.pointer(p) {
                        Some(Value::String(s)) => Some(vec![s.clone()]),
                        Some(Value::Array(a)) => Some(
                            a.iter()
                                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                                .collect(),
                        ),
                        _ => None,
                    }
                }))
            };
            if let Some(words) = arg(&self.shell_tools) {
                let script = words.map(|w| {
                    if w.len() == 1 {
                        w[0].clone()
                    } else {
                        w.iter().map(|x| shell_quote(x)).collect::<Vec<_>>().join(" ")
                    }
                });
                match script {
                    Some(c) => v.shell_analysis(&c),
                    None => v.unparsed = Some(format!("shell tool `{tool}` without a command argument")),
                }
            } else if let Some(paths) = arg(&self.file_tools) {
                match paths {
                    Some(p) => v.shell = Some(file_view(&tool, p)),
                    None => v.unparsed = Some(format!("file tool `{tool}` without a path argument")),
                }
            }
            v.mcp = Some(McpView {
                tool: Some(tool),
                arguments,
                arguments_unread,
            });
        } else if let Ok(Some(read)) = m.resource_read() {
            if let Some(path) = read.uri.strip_prefix("file://") {
                v.shell = Some(file_view("resources/read", vec![path.to_string()]));
            }
            v.mcp = Some(McpView {
                tool: None,
                arguments: Value::Null,
                arguments_unread: false,
            });
        } else {
            v.mcp = Some(McpView {
                tool: None,
                arguments: Value::Null,
                arguments_unread: false,
            });
        }
    }

    /// The rules worth evaluating: a keyed shell rule only when one of its key globs matched (or
    /// may match) some command, a keyed SQL rule only when a statement is of one of its kinds
    /// (every SQL rule when a statement is uncertain). `None`: all of them.
    fn candidates(&self, v: &Views<'_>, facts: Option<&[CmdFacts<'_>]>, flat: &[Stmt<'_>]) -> Option<Candidates> {
        let ix = &self.index;
        if let Some(facts) = facts {
            let mut c: Candidates = ix.shell_key.iter().map(Option::is_none).collect();
            let mut mark = |hits: &Hits, lists: &[Vec<usize>]| {
                for id in hits.yes.iter().chain(hits.maybe.iter()) {
                    for &r in &lists[id] {
                        c[r] = true;
                    }
                }
            };
            for f in facts {
                mark(&f.program, &ix.by_program);
                mark(&f.paths, &ix.by_path);
                if self.sets.key_args.len() > 0 {
                    let mut h = Hits::new(&self.sets.key_args);
                    let assigned = f.cmd.assignments.iter().map(|(_, v)| v);
                    for a in f.argv.iter().skip(1).chain(assigned) {
                        h.word(&self.sets.key_args, a, !f.inert);
                    }
                    mark(&h, &ix.by_arg);
                }
                mark(&f.variables, &ix.by_variable);
            }
            return Some(c);
        }
        if v.sql.is_some() && flat.iter().all(|s| s.st.certain) {
            let mut c: Candidates = ix.sql_keyed.iter().map(|k| !k).collect();
            for s in flat {
                if let Some((_, rules)) = ix.by_kind.iter().find(|(k, _)| *k == s.st.kind) {
                    for &r in rules {
                        c[r] = true;
                    }
                }
            }
            return Some(c);
        }
        None
    }

    /// Marks the units an allow rule matches outright.
    fn cover(
        &self,
        r: &Rule,
        i: usize,
        v: &Views<'_>,
        flat: &[Stmt<'_>],
        facts: Option<&[CmdFacts<'_>]>,
        covered: &mut [Option<usize>],
    ) {
        let n = covered.len();
        let mut mark = |k: usize| {
            if covered[k].is_none() {
                covered[k] = Some(i);
            }
        };
        let no_blocks = r.shell.is_none() && r.sql.is_none() && r.http.is_none() && r.mcp.is_none() && r.ssh.is_none();
        let whole = no_blocks
            || matches!((&r.http, &v.http), (Some(c), Some(h)) if self.eval_http(c, h).tri == Tri::Yes)
            || matches!((&r.mcp, &v.mcp), (Some(c), Some(m)) if self.eval_mcp(c, m).tri == Tri::Yes)
            || matches!((&r.ssh, &v.ssh), (Some(c), Some(op)) if eval_ssh(c, op).tri == Tri::Yes);
        if whole {
            (0..n).for_each(&mut mark);
            return;
        }
        if let (Some(c), Some(view), Some(facts)) = (&r.shell, &v.shell, facts) {
            let writes = self.shell_writes(c, view);
            for (k, f) in facts.iter().enumerate() {
                if self.eval_command(c, f, &writes) == Tri::Yes {
                    mark(k);
                }
            }
        }
        if let (Some(c), Some(_)) = (&r.sql, &v.sql) {
            for (k, st) in flat.iter().enumerate() {
                if self.eval_statement(c, st) == Tri::Yes {
                    mark(k);
                }
            }
        }
    }

    fn uncovered_reason(
        &self,
        covered: &[Option<usize>],
        facts: Option<&[CmdFacts<'_>]>,
        flat: &[Stmt<'_>],
        v: &Views<'_>,
    ) -> String {
        let default = self.default.as_str();
        let Some(k) = covered.iter().position(Option::is_none) else {
            return format!("no rule matched; policy default is {default}");
        };
        if covered.iter().all(Option::is_none) {
            return format!("no rule matched; policy default is {default}");
        }
        let what = match (facts, &v.sql) {
            (Some(f), _) => format!("`{}`", f[k].argv.join(" ")),
            (None, Some((_, text))) => flat
                .get(k)
                .map_or_else(String::new, |st| statement_evidence(st.st, text)),
            _ => String::new(),
        };
        format!("no rule allows {what}; policy default is {default}")
    }

    fn rule_outcome<'s>(
        &'s self,
        r: &Rule,
        v: &'s Views<'_>,
        flat: &[Stmt<'_>],
        shell_facts: &mut Option<Vec<CmdFacts<'s>>>,
    ) -> Outcome {
        let mut out = Outcome {
            tri: Tri::No,
            evidence: String::new(),
        };
        let no_blocks = r.shell.is_none() && r.sql.is_none() && r.http.is_none() && r.mcp.is_none() && r.ssh.is_none();
        if no_blocks {
            out.tri = Tri::Yes;
            return out;
        }
        let mut take = |o: Outcome| {
            if o.tri > out.tri {
                out = o;
            }
        };
        if let (Some(c), Some(view)) = (&r.shell, &v.shell) {
            let facts = shell_facts.get_or_insert_with(|| self.shell_facts(view));
            take(self.eval_shell(c, view, facts));
        }
        if let (Some(c), Some((_, text))) = (&r.sql, &v.sql) {
            take(self.eval_sql(c, flat, text));
        }
        if let (Some(c), Some(h)) = (&r.http, &v.http) {
            take(self.eval_http(c, h));
        }
        if let (Some(c), Some(m)) = (&r.mcp, &v.mcp) {
            take(self.eval_mcp(c, m));
        }
        if let (Some(c), Some(op)) = (&r.ssh, &v.ssh) {
            take(eval_ssh(c, op));
        }
        out
    }

    fn shell_facts<'c>(&self, view: &'c ShellView) -> Vec<CmdFacts<'c>> {
        static EMPTY: shell::Command = shell::Command {
            argv: Vec::new(),
            unresolved: Vec::new(),
            assignments: Vec::new(),
            depth: 0,
            cwd: None,
        };
        let s = &self.sets;
        let line_paths: Vec<PathFact> = view
            .reads
            .iter()
            .chain(&view.writes)
            .filter_map(|p| PathFact::new(p))
            .collect();
        let commands: Vec<&shell::Command> = if view.commands.is_empty() {
            vec![&EMPTY]
        } else {
            view.commands.iter().collect()
        };
        let mut out = Vec::with_capacity(commands.len());
        let mut names = Vec::new();
        for cmd in commands {
            let argv = cmd.argv.as_slice();
            let mut f = CmdFacts {
                argv,
                cmd,
                program: Hits::new(&s.programs),
                args: std::cell::OnceCell::new(),
                flags: std::cell::OnceCell::new(),
                paths: Hits::new(&s.paths),
                path_facts: Vec::new(),
                variables: Hits::new(&s.variables),
                inert: false,
            };
            let mut inert = false;
            if let Some(argv0) = argv.first() {
                if bare_expansion(argv0) == Some(false) {
                    // A program from the environment (`$EDITOR`): trusted, and not one any
                    // program condition names.
                } else if has_expansion(argv0) || is_dynamic(argv0) {
                    if s.programs.len() > 0 {
                        s.programs
                            .intersecting_into(&shell_word_nfa(argv0, Expansion::Any), &mut f.program.maybe);
                    }
                } else {
                    let name = facts::program_name(argv0);
                    inert = INERT.contains(&name);
                    f.program.literal(&s.programs, name);
                }
            }
            names.clear();
            let assigned = cmd.assignments.iter().map(|(_, v)| v);
            for (i, a) in argv.iter().enumerate().skip(1).chain(assigned.map(|v| (usize::MAX, v))) {
                facts::variables(a, &mut names);
                if s.paths.len() > 0 {
                    let p = if i == usize::MAX {
                        Some(a.as_str())
                    } else {
                        facts::path_operand(a)
                    };
                    if let Some(pf) = p.and_then(PathFact::new) {
                        pf.add_to(&s.paths, &mut f.paths, !inert);
                        f.path_facts.push(pf);
                    }
                    // After `cd DIR` on the line, a relative operand is also `DIR/operand`.
                    // A directory only known at run time stands for one unknown component.
                    if let (Some(dir), Some(p)) = (&cmd.cwd, p)
                        && !p.starts_with(['/', '~', '$'])
                        && let Some(pf) = PathFact::new(&if is_dynamic(dir) {
                            format!("$CWD/{p}")
                        } else {
                            format!("{dir}/{p}")
                        })
                    {
                        pf.add_to(&s.paths, &mut f.paths, !inert);
                        f.path_facts.push(pf);
                    }
                }
            }
            if let Some(argv0) = argv.first() {
                facts::variables(argv0, &mut names);
            }
            for pf in &line_paths {
                pf.add_to(&s.paths, &mut f.paths, true);
                f.path_facts.push(pf.clone());
            }
            for n in &names {
                f.variables.literal(&s.variables, n);
            }
            f.inert = inert;
            out.push(f);
        }
        out
    }

    /// The command's arguments (and assigned values) against the `args` set, on first use.
    fn args_hits<'f>(&self, f: &'f CmdFacts<'_>) -> &'f Hits {
        f.args.get_or_init(|| {
            let s = &self.sets;
            let mut h = Hits::new(&s.args);
            let assigned = f.cmd.assignments.iter().map(|(_, v)| v);
            for a in f.argv.iter().skip(1).chain(assigned) {
                h.word(&s.args, a, !f.inert);
            }
            h
        })
    }

    /// The command's options against the `flags` set, on first use.
    fn flags_hits<'f>(&self, f: &'f CmdFacts<'_>) -> &'f Hits {
        f.flags.get_or_init(|| {
            let s = &self.sets;
            let mut h = Hits::new(&s.flags);
            for a in f.argv.iter().skip(1).filter(|a| a.starts_with('-')) {
                h.literal(&s.flags, a);
            }
            h
        })
    }

    fn shell_writes(&self, c: &ShellCond, view: &ShellView) -> Hits {
        let s = &self.sets;
        let mut writes = Hits::new(&s.writes);
        if !c.writes.is_empty() {
            for w in &view.writes {
                if let Some(pf) = PathFact::new(w) {
                    pf.add_to(&s.writes, &mut writes, true);
                }
            }
        }
        writes
    }

    /// The shell condition on one simple command.
    fn eval_command(&self, c: &ShellCond, f: &CmdFacts<'_>, writes: &Hits) -> Tri {
        let s = &self.sets;
        let mut t = f.program.test(&c.programs);
        if t == Tri::No {
            return t;
        }
        if !c.not_programs.is_empty() {
            t = t.min(f.program.test(&c.not_programs).not());
        }
        t = t
            .min(if c.args.is_empty() {
                Tri::Yes
            } else {
                self.args_hits(f).test(&c.args)
            })
            .min(if c.flags.is_empty() {
                Tri::Yes
            } else {
                self.flags_hits(f).test(&c.flags)
            })
            .min(f.variables.test(&c.variables));
        if t == Tri::No {
            return t;
        }
        if !c.paths.is_empty() {
            let mut p = f.paths.test(&c.paths);
            if p > Tri::No && !c.not_paths.is_empty() {
                p = f
                    .path_facts
                    .iter()
                    .map(|pf| pf.test(&s.paths, &c.paths, &c.not_paths, !f.inert))
                    .max()
                    .unwrap_or(Tri::No)
                    .min(p);
            }
            t = t.min(p);
        }
        if !c.writes.is_empty() {
            t = t.min(writes.test(&c.writes));
        }
        if let Some(max) = c.max_operands {
            let operands = f
                .argv
                .iter()
                .skip(1)
                .filter(|a| !a.starts_with('-') && !is_assignment(a))
                .count();
            t = t.min(Tri::from(operands <= max));
        }
        if let Some(max) = c.max_args {
            t = t.min(Tri::from(f.argv.len().saturating_sub(1) <= max));
        }
        if !c.commands.is_empty() && t > Tri::No {
            if f.program.test(&c.command_programs) == Tri::No {
                return Tri::No;
            }
            t = t.min(
                c.commands
                    .iter()
                    .map(|(prog, rest)| sequence(f.program.test(&(*prog..*prog + 1)), rest, f.argv))
                    .max()
                    .unwrap_or(Tri::No),
            );
        }
        t
    }

    /// The shell condition on a command line: the strongest over its commands.
    fn eval_shell(&self, c: &ShellCond, view: &ShellView, facts: &[CmdFacts<'_>]) -> Outcome {
        let writes = self.shell_writes(c, view);
        let mut best = Outcome {
            tri: Tri::No,
            evidence: String::new(),
        };
        for f in facts {
            let t = self.eval_command(c, f, &writes);
            if t > best.tri {
                best = Outcome {
                    tri: t,
                    evidence: format!("`{}`", f.argv.join(" ")),
                };
                if t == Tri::Yes {
                    break;
                }
            }
        }
        best
    }

    /// A statement's relations and functions matched against the sets, once per request.
    fn stmt_facts<'a>(&self, st: &'a sql::Statement) -> Stmt<'a> {
        let s = &self.sets;
        let mut f = Stmt {
            st,
            rel: Hits::new(&s.relations),
            wr: Hits::new(&s.relations),
            fun: Hits::new(&s.functions),
        };
        if s.relations.len() > 0 {
            for r in &st.reads {
                name_forms(r, |n| f.rel.literal(&s.relations, n));
            }
            for r in &st.writes {
                name_forms(r, |n| {
                    f.rel.literal(&s.relations, n);
                    f.wr.literal(&s.relations, n);
                });
            }
        }
        if s.functions.len() > 0 {
            for func in &st.functions {
                name_forms(func, |n| f.fun.literal(&s.functions, n));
            }
        }
        f
    }

    /// The SQL condition on one statement.
    fn eval_statement(&self, c: &SqlCond, f: &Stmt<'_>) -> Tri {
        let st = f.st;
        if !st.certain {
            return Tri::Maybe;
        }
        let mut t = Tri::from(c.kinds.is_empty() || c.kinds.contains(&st.kind));
        if t == Tri::No {
            return t;
        }
        t = t
            .min(f.rel.test(&c.relations))
            .min(f.wr.test(&c.writes))
            .min(f.fun.test(&c.functions));
        if let Some(m) = c.missing_where {
            let missing = matches!(st.kind, sql::Kind::Update | sql::Kind::Delete) && !st.has_where;
            t = t.min(Tri::from(missing == m));
        }
        if !c.copy.is_empty() {
            let kind = match &st.copy_target {
                Some(sql::CopyTarget::Client) => Some("client"),
                Some(sql::CopyTarget::File(_)) => Some("file"),
                Some(sql::CopyTarget::Program(_)) => Some("program"),
                // A target the analyser may learn later: it may be any of them.
                Some(_) => Some("unknown"),
                None => None,
            };
            t = t.min(match kind {
                Some("unknown") => Tri::Maybe,
                k => Tri::from(k.is_some_and(|k| c.copy.contains(&k))),
            });
        }
        if !c.languages.is_empty() {
            t = t.min(Tri::from(st.languages.iter().any(|l| c.languages.contains(l))));
        }
        if !c.secret_columns.is_empty() {
            t = t.min(Tri::from(st.computed.iter().any(|col| self.secret_column(c, col))));
        }
        t
    }

    /// Whether a computed column (`schema.table.column`, `table.column`, `table.*`) is secret:
    /// one of its forms (with and without the schema) matches a secret glob and none an excepted
    /// one. A whole row (`table.*`) is secret when a glob names the table's columns (`*api_keys.*`).
    fn secret_column(&self, c: &SqlCond, col: &str) -> bool {
        let set = &self.sets.columns;
        let lower = if col.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(col.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(col)
        };
        if c.secret_prefilter
            .as_ref()
            .is_some_and(|p| !p.is_match(lower.as_bytes()))
        {
            return false;
        }
        let secret = |form: &str| {
            let mut h = Hits::new(set);
            h.literal(set, form);
            h.test(&c.secret_columns) == Tri::Yes
                && (c.except_columns.is_empty() || h.test(&c.except_columns) != Tri::Yes)
        };
        secret(&lower)
            || (lower.matches('.').count() >= 2 && lower.split_once('.').is_some_and(|(_, rest)| secret(rest)))
    }

    /// The SQL condition on a request: the strongest over its statements, nested ones included.
    fn eval_sql(&self, c: &SqlCond, stmts: &[Stmt<'_>], text: &str) -> Outcome {
        let mut best = Outcome {
            tri: Tri::No,
            evidence: String::new(),
        };
        for st in stmts {
            let t = self.eval_statement(c, st);
            if t > best.tri {
                best = Outcome {
                    tri: t,
                    evidence: statement_evidence(st.st, text),
                };
                if t == Tri::Yes {
                    break;
                }
            }
        }
        best
    }

    fn eval_http(&self, c: &HttpCond, h: &HttpView) -> Outcome {
        let s = &self.sets;
        let mut t = Tri::from(c.methods.is_empty() || c.methods.contains(&h.method));
        if !c.hosts.is_empty() {
            let mut hits = Hits::new(&s.hosts);
            if let Some(host) = &h.host {
                hits.literal(&s.hosts, host);
            }
            t = t.min(hits.test(&c.hosts));
        }
        if !c.paths.is_empty() {
            let mut hits = Hits::new(&s.http_paths);
            hits.literal(&s.http_paths, &h.path);
            t = t.min(hits.test(&c.paths));
        }
        for (name, globs) in &c.headers {
            t = t.min(Tri::from(h.headers.iter().any(|(n, v)| n == name && any(globs, v))));
        }
        for (ptr, globs) in &c.json {
            t = t.min(match (&h.json, h.json_unread) {
                (None, Some(_)) => Tri::Maybe,
                (j, _) => Tri::from(
                    j.as_ref()
                        .and_then(|j| j.pointer(ptr))
                        .is_some_and(|v| value_matches(v, globs, false)),
                ),
            });
        }
        let mut evidence = format!("{} {}{}", h.method, h.host.as_deref().unwrap_or(""), h.path);
        if let (false, Some(why)) = (c.json.is_empty(), h.json_unread) {
            evidence.push_str(&format!("; {why}"));
        }
        Outcome { tri: t, evidence }
    }

    fn eval_mcp(&self, c: &McpCond, m: &McpView) -> Outcome {
        let s = &self.sets;
        let Some(tool) = &m.tool else {
            return Outcome {
                tri: Tri::No,
                evidence: String::new(),
            };
        };
        // Tool names and argument patterns match case-insensitively (compiled lowercase).
        let mut hits = Hits::new(&s.tools);
        hits.literal(&s.tools, &tool.to_lowercase());
        let mut t = hits.test(&c.tools);
        for (ptr, globs) in &c.arguments {
            t = t.min(if m.arguments_unread {
                Tri::Maybe
            } else {
                Tri::from(m.arguments.pointer(ptr).is_some_and(|v| value_matches(v, globs, true)))
            });
        }
        Outcome {
            tri: t,
            evidence: format!("tool `{tool}`"),
        }
    }
}

fn eval_ssh(c: &SshCond, op: &SshRequest<'_>) -> Outcome {
    // A rule's ssh block matches a request of the one kind it names.
    let only = |n: usize| {
        [
            !c.env.is_empty(),
            !c.subsystems.is_empty(),
            !c.forwards.is_empty(),
            !c.channels.is_empty(),
            c.shell,
        ]
        .iter()
        .enumerate()
        .all(|(i, set)| i == n || !set)
    };
    let (t, evidence) = match op {
        SshRequest::Env { name, .. } => (
            Tri::from(!c.env.is_empty() && any(&c.env, name) && only(0)),
            format!("env {name}"),
        ),
        SshRequest::Subsystem(name) => (
            Tri::from(!c.subsystems.is_empty() && any(&c.subsystems, name) && only(1)),
            format!("subsystem {name}"),
        ),
        SshRequest::Forward { host, port } => {
            let target = format!("{}:{port}", host.to_ascii_lowercase());
            (
                Tri::from(!c.forwards.is_empty() && any(&c.forwards, &target) && only(2)),
                format!("forward to {target}"),
            )
        }
        SshRequest::Channel(kind) => (
            Tri::from(!c.channels.is_empty() && any(&c.channels, kind) && only(3)),
            format!("channel {kind}"),
        ),
        SshRequest::Shell => (Tri::from(c.shell && only(4)), "interactive shell".to_string()),
        SshRequest::Exec(_) => (Tri::No, String::new()),
    };
    Outcome { tri: t, evidence }
}

/// Whether `a` is a `NAME=value` assignment.
fn is_assignment(a: &str) -> bool {
    a.split_once('=')
        .is_some_and(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// `gcloud auth print-*`: the program (already tested against its glob), then the other globs
/// in order among the arguments.
fn sequence(prog: Tri, rest: &[Glob], argv: &[String]) -> Tri {
    if prog == Tri::No {
        return Tri::No;
    }
    let mut j = 1;
    for g in rest {
        match argv[j.min(argv.len())..].iter().position(|a| g.is_match(a.as_bytes())) {
            Some(p) => j += p + 1,
            None => {
                let could = argv.iter().skip(1).any(|a| {
                    has_expansion(a)
                        && bare_expansion(a) != Some(false)
                        && g.nfa.intersects(&shell_word_nfa(a, Expansion::Component))
                });
                return if could { Tri::Maybe } else { Tri::No };
            }
        }
    }
    prog
}

fn statement_evidence(st: &sql::Statement, text: &str) -> String {
    let (a, b) = st.span;
    let stmt: String = text.get(a..b).unwrap_or("").trim().chars().take(120).collect();
    format!("`{stmt}`")
}

/// Every statement, nested ones (DO blocks, EXECUTE strings) after their parent.
fn flatten(stmts: &[sql::Statement]) -> SmallVec<[&sql::Statement; 4]> {
    if stmts.iter().all(|s| s.nested.is_empty()) {
        return stmts.iter().collect();
    }
    let mut out = SmallVec::new();
    let mut stack: Vec<&sql::Statement> = stmts.iter().rev().collect();
    while let Some(st) = stack.pop() {
        out.push(st);
        stack.extend(st.nested.iter().rev());
    }
    out
}

/// A relation or function name in the forms globs see: as written, and its last component.
fn name_forms(name: &str, mut f: impl FnMut(&str)) {
    f(name);
    if let Some((_, last)) = name.rsplit_once('.') {
        f(last);
    }
}

/// Whether a JSON value (a string, or any element of an array) matches; `fold`: compare in
/// lowercase (the globs were compiled lowercase).
fn value_matches(v: &Value, globs: &[Glob], fold: bool) -> bool {
    match v {
        Value::String(s) if fold => any(globs, &s.to_lowercase()),
        Value::String(s) => any(globs, s),
        Value::Array(a) => a.iter().any(|x| value_matches(x, globs, fold)),
        other => any(globs, &other.to_string()),
    }
}

fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// A file tool call seen as a command reading its path.
fn file_view(tool: &str, paths: Vec<String>) -> ShellView {
    let mut argv = vec![tool.to_string()];
    argv.extend(paths);
    ShellView {
        commands: vec![shell::Command {
            argv,
            ..shell::Command::default()
        }],
        reads: Vec::new(),
        writes: Vec::new(),
    }
}

fn http_view(h: &HttpRequest<'_>) -> HttpView {
    let (mut host, path) = facts::split_url(h.url);
    let headers: Vec<(String, String)> = h
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    if host.is_none() {
        host = headers.iter().find(|(n, _)| n == "host").map(|(_, v)| {
            let hostport = v.trim();
            let host = if hostport.starts_with('[') {
                hostport.split_once(']').map_or(hostport, |(h, _)| h)
            } else {
                hostport.split(':').next().unwrap_or(hostport)
            };
            facts::normalize_host(host)
        });
    }
    // A body the engine cannot read as JSON (compressed, not JSON, nested past the parser's
    // limit) leaves a JSON condition on it undecided, never passed.
    let encoded = headers
        .iter()
        .any(|(n, v)| n == "content-encoding" && !v.trim().eq_ignore_ascii_case("identity"));
    let (json, json_unread) = match h.body.filter(|b| !b.iter().all(u8::is_ascii_whitespace)) {
        None => (None, None),
        Some(_) if encoded => (None, Some("the body is compressed")),
        Some(b) => match serde_json::from_slice(b) {
            Ok(v) => (Some(v), None),
            Err(_) => (None, Some("the body is not JSON the engine can read")),
        },
    };
    HttpView {
        method: h.method.to_ascii_uppercase(),
        host,
        path,
        headers,
        json,
        json_unread,
    }
}
