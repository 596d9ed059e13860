//! The rule-file format and its compilation into matchers.
//!
//! A rule file is TOML with one `[[rule]]` table per rule:
//!
//! ```toml
//! [[rule]]
//! id = "acme-api-key"                      # unique, lowercase, [a-z0-9-]
//! description = "ACME API key"
//! provider = "acme"                        # optional: the provider or family
//! pattern = '''\b(?P<secret>acme_[A-Za-z0-9]{32})\b'''
//! keywords = ["acme_"]                     # literals for the prefilter, matched ASCII-case-insensitively
//! case_sensitive_keywords = false          # optional: true matches keywords with their case as written
//! entropy = 3.0                            # optional: minimum Shannon entropy (bits per byte) of the secret
//! validator = "crc32-base62"               # optional: see `Validator`
//! generic = false                          # optional: true turns on the noise filters for generic rules
//! words = false                            # optional: with `generic`, plain words and names (`whiteduke`,
//!                                          #   `dev_admin`) are kept: for patterns that prove the value
//!                                          #   is a literal (quoted, a command-line argument, an env line)
//! multiline = false                        # optional: true lets matches span lines
//! context_stopwords = ["public", "_name"]  # optional: words that, in the match before the
//!                                          #   secret (case-insensitive), reject it
//! priority = 0                             # optional: between overlapping findings of the same
//!                                          #   class (see below), the higher priority wins
//! window_before = 0                        # optional: how far before a keyword a match may start
//! anchored = true                          # optional: matches begin where a keyword begins (the
//!                                          #   fastest kind of rule: one anchored try per keyword hit)
//! block_end = '''-----END [A-Z]{1,20}-----''' # optional: a block rule; see below
//! block_max = 16384                        # optional: how far the block may extend
//! block_end_excluded = false               # optional: the block ends where `block_end` starts
//! examples = ["key = acme_…"]              # strings the rule must find
//! counter_examples = ["acme_example"]      # strings the rule must not find
//! ```
//!
//! Patterns are byte-oriented regular expressions (the `regex-automata` syntax with Unicode off):
//! `\w`, `\s`, `\d` and `\b` are ASCII, `.` matches any byte but `\n`. A capture group named
//! `secret` marks the part of the match that is the secret; without it the whole match is. Every
//! pattern must have a bounded match length (write `{0,64}`, not `*`): that is what bounds the
//! memory and the latency of streaming redaction.
//!
//! When findings overlap, one is kept: known values first, then rules with a validator, then
//! other specific rules, then `generic` ones; within a class the higher `priority`, then the longer
//! secret, then the match with more context, then the rule defined first.
//!
//! A *block rule* (private keys) has a `block_end` pattern: the pattern finds the first line, the
//! block extends to the first match of `block_end` within `block_max` bytes, and the whole block
//! is the secret. Without an end, a run of at least 64 base64 or whitespace bytes is taken (a
//! truncated key is still a key). With `block_end_excluded`, the block stops just before the
//! match of `block_end` (`block_end = '''[^A-Za-z0-9+/=]'''` ends a base64 blob at its first
//! other byte): a block of any length up to `block_max` without a pattern that long.

use std::sync::{Arc, OnceLock};

use regex_automata::{meta, util::syntax};
use regex_syntax::hir::{Hir, HirKind};
use serde::Deserialize;

use super::validate::Validator;
use crate::error::{Error, ErrorKind, line_col_of};

include!(concat!(env!("OUT_DIR"), "/builtin_meta.rs"));

/// Limits applied when compiling rules, built-in or user-supplied.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum number of rules in one detector.
    pub max_rules: usize,
    /// Maximum length of one pattern, in bytes of source text.
    pub max_pattern_len: usize,
    /// Maximum length of a match of a single-line rule, in bytes.
    pub max_match_len: usize,
    /// Maximum length of a match of a multi-line rule, in bytes.
    pub max_multiline_match_len: usize,
    /// Maximum size of one compiled pattern (the NFA), in bytes.
    pub max_compiled_size: usize,
    /// Maximum number of keywords of one rule.
    pub max_keywords: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rules: 10_000,
            max_pattern_len: 8 * 1024,
            max_match_len: 4 * 1024,
            max_multiline_match_len: 64 * 1024,
            max_compiled_size: 4 * 1024 * 1024,
            max_keywords: 64,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleDef>>,
}

/// One rule as written. `P` is the pattern: with its place in the file when read from TOML,
/// plain text when read from the build script's JSON of the built-in rules.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef<P = toml::Spanned<String>> {
    id: String,
    description: String,
    #[serde(default)]
    provider: Option<String>,
    pattern: P,
    keywords: Vec<String>,
    #[serde(default)]
    case_sensitive_keywords: bool,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    validator: Option<String>,
    #[serde(default)]
    generic: bool,
    #[serde(default)]
    words: bool,
    #[serde(default)]
    multiline: bool,
    #[serde(default)]
    window_before: Option<usize>,
    #[serde(default)]
    anchored: bool,
    #[serde(default)]
    priority: i8,
    #[serde(default)]
    context_stopwords: Vec<String>,
    #[serde(default)]
    block_end: Option<String>,
    #[serde(default)]
    block_max: Option<usize>,
    #[serde(default)]
    block_end_excluded: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
}

/// One compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) meta: RuleInfo,
    pub(crate) regex: RuleRegex,
    /// Index of the `secret` capture group, if the pattern has one.
    pub(crate) secret_group: Option<usize>,
    pub(crate) keywords: Vec<String>,
    /// Keywords must match with their case as written (`SK`, `AKIA`), not ASCII-insensitively.
    pub(crate) case_sensitive_keywords: bool,
    pub(crate) entropy: Option<f64>,
    pub(crate) validator: Option<Validator>,
    pub(crate) generic: bool,
    /// The pattern proves the value is a literal, so a plain word is a secret, not a name.
    pub(crate) words: bool,
    /// Breaks ties between overlapping findings of the same class: higher wins.
    pub(crate) priority: i8,
    /// Lowercase words that, found in the match before the secret, reject it.
    pub(crate) context_stopwords: Vec<Vec<u8>>,
    pub(crate) multiline: bool,
    /// The longest match the pattern can produce.
    pub(crate) max_len: usize,
    /// How far before a keyword hit a match may start.
    pub(crate) window_before: usize,
    /// Matches begin where a keyword begins: the regex runs anchored at each hit.
    pub(crate) anchored: bool,
    /// How far after the start of a keyword hit a match may end.
    pub(crate) window_after: usize,
    /// For block rules (private keys): where the block ends.
    pub(crate) block: Option<Block>,
    pub(crate) examples: Vec<String>,
    pub(crate) counter_examples: Vec<String>,
}

/// A rule's compiled pattern. The built-in rules compile on first use (a process that scans
/// one small input, such as an agent hook, pays only for the rules whose keywords it meets;
/// their longest match and `secret` group come from `BUILTIN_META`, made by the build script,
/// so they are not even parsed at start); every one of them is compiled by the tests, so first
/// use cannot fail. Rule files compile at build, where an error can still be reported.
pub(crate) struct RuleRegex {
    cell: OnceLock<meta::Regex>,
    /// The pattern's text, for a regex not compiled yet.
    pattern: Option<String>,
    size_limit: usize,
}

impl RuleRegex {
    fn compile(hir: &Hir, size_limit: usize) -> Result<meta::Regex, String> {
        meta::Builder::new()
            .syntax(syntax_config())
            .configure(meta::Config::new().nfa_size_limit(Some(size_limit)))
            .build_from_hir(hir)
            .map_err(|e| e.to_string())
    }

    /// The regex, compiled now if it was not yet.
    pub(crate) fn get(&self) -> &meta::Regex {
        self.cell.get_or_init(|| {
            let pattern = self
                .pattern
                .as_deref()
                .unwrap_or_else(|| unreachable!("an unset cell keeps its pattern"));
            // Only built-in rules compile lazily, and the tests compile every one of them.
            syntax_parser()
                .parse(pattern)
                .map_err(|e| e.to_string())
                .and_then(|hir| Self::compile(&hir, self.size_limit))
                .unwrap_or_else(|e| panic!("a built-in rule's pattern does not compile: {e}"))
        })
    }
}

impl std::fmt::Debug for RuleRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRegex")
            .field("compiled", &self.cell.get().is_some())
            .finish()
    }
}

/// The index of the capture group named `name`, as the compiled regex numbers groups (the
/// parser's capture indices).
fn capture_index(hir: &Hir, name: &str) -> Option<usize> {
    match hir.kind() {
        HirKind::Capture(c) if c.name.as_deref() == Some(name) => Some(c.index as usize),
        HirKind::Capture(c) => capture_index(&c.sub, name),
        HirKind::Repetition(r) => capture_index(&r.sub, name),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().find_map(|h| capture_index(h, name)),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => None,
    }
}

/// Where the block of a block rule ends.
#[derive(Debug)]
pub(crate) struct Block {
    /// The pattern of the block's end (its last line, or the first byte after it).
    pub(crate) end: meta::Regex,
    /// How far after the first line the end may be.
    pub(crate) max: usize,
    /// The block stops before the match of `end` instead of after it.
    pub(crate) end_excluded: bool,
}

/// What a rule is, for reports: id, description and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The unique rule id, e.g. `github-pat`.
    pub id: Arc<str>,
    /// A one-line description.
    pub description: Arc<str>,
    /// The provider or family, e.g. `github`.
    pub provider: Option<Arc<str>>,
}

/// Parses and compiles every rule of a rule file. `origin` names the file in errors.
/// `lazy`: patterns compile on first use (the built-in rules only, which the tests compile).
pub(crate) fn compile_file(text: &str, origin: &str, limits: &Limits, lazy: bool) -> Result<Vec<Rule>, Error> {
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        let mut err = Error::new(ErrorKind::RuleFile, e.message().to_string()).with_origin(origin);
        if let Some(span) = e.span() {
            let (l, c) = line_col_of(text, span.start);
            err = err.with_line_col(l, c);
        }
        err.with_source(e)
    })?;
    if file.rule.len() > limits.max_rules {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("{} rules exceed the limit of {}", file.rule.len(), limits.max_rules),
        )
        .with_origin(origin));
    }
    let mut out = Vec::with_capacity(file.rule.len());
    let mut meta = if lazy { BUILTIN_META } else { &[] };
    for spanned in file.rule {
        let table_start = spanned.span().start;
        let def = spanned.into_inner();
        let at = |err: Error, offset: usize| {
            let (l, c) = line_col_of(text, offset);
            err.with_origin(origin).with_line_col(l, c)
        };
        let known = next_meta(&mut meta, &def.id, def.pattern.get_ref().len());
        let rule =
            compile_rule(def, text, limits, lazy, known).map_err(|(e, off)| at(e, off.unwrap_or(table_start)))?;
        out.push(rule);
    }
    Ok(out)
}

/// A rule's pattern as read: its text and where that text begins in the rule file.
trait PatternText {
    fn start(&self, file: &str) -> usize;
    fn into_text(self) -> String;
}

impl PatternText for toml::Spanned<String> {
    fn start(&self, file: &str) -> usize {
        string_content_start(file, self.span().start)
    }
    fn into_text(self) -> String {
        self.into_inner()
    }
}

impl PatternText for String {
    fn start(&self, _: &str) -> usize {
        0
    }
    fn into_text(self) -> String {
        self
    }
}

/// The built-in rules, from the JSON the build script made of `builtin.toml` (parsing it costs
/// a fraction of the TOML; a test holds the two to the same rules), patterns compiled on first
/// use. Falls back to the TOML when the build script could not read it.
pub(crate) fn compile_builtin(limits: &Limits) -> Result<Vec<Rule>, Error> {
    const JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin.json"));
    let defs: Vec<RuleDef<String>> = match serde_json::from_str(JSON) {
        Ok(d) if !JSON.is_empty() => d,
        _ => return compile_file(crate::BUILTIN_RULES, "builtin.toml", limits, true),
    };
    if defs.len() > limits.max_rules {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("{} rules exceed the limit of {}", defs.len(), limits.max_rules),
        )
        .with_origin("builtin.toml"));
    }
    let mut meta = BUILTIN_META;
    let mut out = Vec::with_capacity(defs.len());
    for def in defs {
        let known = next_meta(&mut meta, &def.id, def.pattern.len());
        out.push(compile_rule(def, "", limits, true, known).map_err(|(e, _)| e.with_origin("builtin.toml"))?);
    }
    Ok(out)
}

/// What the build script found for the rule `id` (entries are in file order; a rule it could
/// not read has none and is parsed at run time).
fn next_meta(
    meta: &mut &[(&str, usize, usize, Option<usize>)],
    id: &str,
    len: usize,
) -> Option<(usize, Option<usize>)> {
    match meta.first() {
        Some(&(m, l, max_len, group)) if m == id && l == len => {
            *meta = &meta[1..];
            Some((max_len, group))
        }
        _ => None,
    }
}

/// Byte offset in the file where the content of the TOML string at `span_start` begins.
fn string_content_start(text: &str, span_start: usize) -> usize {
    let rest = text.get(span_start..).unwrap_or("");
    for q in ["'''", "\"\"\""] {
        if let Some(after) = rest.strip_prefix(q) {
            let nl = if after.starts_with("\r\n") {
                2
            } else {
                usize::from(after.starts_with('\n'))
            };
            return span_start + 3 + nl;
        }
    }
    span_start + 1
}

/// A rule's error, with the rule id, and the byte offset in the rule file when known.
type RuleFailure = (Error, Option<usize>);

fn fail(id: &str, kind: ErrorKind, msg: impl Into<String>) -> RuleFailure {
    (Error::new(kind, msg).with_rule(id), None)
}

fn compile_rule<P: PatternText>(
    def: RuleDef<P>,
    text: &str,
    limits: &Limits,
    lazy: bool,
    known: Option<(usize, Option<usize>)>,
) -> Result<Rule, RuleFailure> {
    let id = def.id.clone();
    check_id(&id)?;
    let pattern_start = def.pattern.start(text);
    let pattern = def.pattern.into_text();
    let (regex, max_len) = match known {
        Some((max_len, secret_group)) => {
            check_lengths(&id, pattern.len(), max_len, def.multiline, limits)?;
            let regex = RuleRegex {
                cell: OnceLock::new(),
                pattern: Some(pattern),
                size_limit: limits.max_compiled_size,
            };
            (Pattern { regex, secret_group }, max_len)
        }
        None => compile_pattern(&id, &pattern, pattern_start, def.multiline, limits, lazy)?,
    };
    check_keywords(&id, &def.keywords, limits)?;
    if let Some(e) = def.entropy
        && !(0.0..=8.0).contains(&e)
    {
        return Err(fail(
            &id,
            ErrorKind::Rule,
            format!("entropy {e} is outside 0..=8 bits per byte"),
        ));
    }
    let validator = match def.validator.as_deref() {
        None => None,
        Some(name) => Some(Validator::from_name(name).ok_or_else(|| {
            fail(
                &id,
                ErrorKind::Rule,
                format!("unknown validator {name:?}; known: {}", Validator::NAMES.join(", ")),
            )
        })?),
    };
    if def.words && !def.generic {
        return Err(fail(&id, ErrorKind::Rule, "`words` applies to `generic` rules only"));
    }
    let max_kw = def.keywords.iter().map(String::len).max().unwrap_or(0);
    if def.block_end_excluded && def.block_end.is_none() {
        return Err(fail(&id, ErrorKind::Rule, "block_end_excluded needs block_end"));
    }
    let (block, max_len, multiline) = match (def.block_end, def.block_max) {
        (None, None) => (None, max_len, def.multiline),
        (Some(end), max) => {
            let (block, total) = compile_block(&id, &end, max, def.block_end_excluded, max_len, limits)?;
            (Some(block), total, true)
        }
        (None, Some(_)) => return Err(fail(&id, ErrorKind::Rule, "block_max needs block_end")),
    };
    let window_before = if def.anchored {
        0
    } else {
        def.window_before.unwrap_or(max_len).min(max_len)
    };
    Ok(Rule {
        meta: RuleInfo {
            id: Arc::from(def.id.as_str()),
            description: Arc::from(def.description.as_str()),
            provider: def.provider.as_deref().map(Arc::from),
        },
        secret_group: regex.secret_group,
        regex: regex.regex,
        keywords: def.keywords,
        case_sensitive_keywords: def.case_sensitive_keywords,
        entropy: def.entropy,
        validator,
        generic: def.generic,
        words: def.words,
        priority: def.priority,
        context_stopwords: def
            .context_stopwords
            .iter()
            .map(|w| w.to_ascii_lowercase().into_bytes())
            .collect(),
        multiline,
        max_len,
        window_before,
        anchored: def.anchored,
        window_after: max_len + max_kw,
        block,
        examples: def.examples,
        counter_examples: def.counter_examples,
    })
}

fn check_id(id: &str) -> Result<(), RuleFailure> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(fail(
            id,
            ErrorKind::Rule,
            "rule ids use only a-z, 0-9, '-', '_' and '.'",
        ))
    }
}

fn syntax_parser() -> regex_syntax::Parser {
    regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build()
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

/// A rule's pattern and the index of its `secret` group.
struct Pattern {
    regex: RuleRegex,
    secret_group: Option<usize>,
}

/// Parses and compiles (unless `lazy`) a rule's pattern, bounded (a maximum match length within
/// the limit, no empty match): the regex and its maximum match length. Parse errors point into
/// the rule file (`pattern_start` is where the pattern's text begins).
fn compile_pattern(
    id: &str,
    pattern: &str,
    pattern_start: usize,
    multiline: bool,
    limits: &Limits,
    lazy: bool,
) -> Result<(Pattern, usize), RuleFailure> {
    // The source length first: a long pattern is not parsed at all.
    check_lengths(id, pattern.len(), 0, multiline, limits)?;
    let hir = syntax_parser().parse(pattern).map_err(|e| {
        let (offset, msg) = match &e {
            regex_syntax::Error::Parse(p) => (p.span().start.offset, p.kind().to_string()),
            regex_syntax::Error::Translate(t) => (t.span().start.offset, t.kind().to_string()),
            _ => (0, e.to_string()),
        };
        (
            Error::new(ErrorKind::Pattern, format!("invalid pattern at offset {offset}: {msg}"))
                .with_rule(id)
                .with_source(e),
            Some(pattern_start + offset),
        )
    })?;
    let max_len = hir.properties().maximum_len().ok_or_else(|| {
        fail(
            id,
            ErrorKind::Pattern,
            "pattern can match an unbounded length; bound every repetition (e.g. `{1,256}` instead of `+`)",
        )
    })?;
    check_lengths(id, pattern.len(), max_len, multiline, limits)?;
    if hir.properties().minimum_len() == Some(0) {
        return Err(fail(id, ErrorKind::Pattern, "pattern can match the empty string"));
    }
    let secret_group = capture_index(&hir, "secret");
    let cell = OnceLock::new();
    let pattern = if lazy {
        Some(pattern.to_string())
    } else {
        let regex = RuleRegex::compile(&hir, limits.max_compiled_size)
            .map_err(|e| fail(id, ErrorKind::Pattern, format!("pattern does not compile: {e}")))?;
        debug_assert_eq!(
            regex.group_info().to_index(regex_automata::PatternID::ZERO, "secret"),
            secret_group
        );
        let _ = cell.set(regex);
        None
    };
    let regex = RuleRegex {
        cell,
        pattern,
        size_limit: limits.max_compiled_size,
    };
    Ok((Pattern { regex, secret_group }, max_len))
}

/// A pattern's source length and longest match within the limits.
fn check_lengths(id: &str, len: usize, max_len: usize, multiline: bool, limits: &Limits) -> Result<(), RuleFailure> {
    if len > limits.max_pattern_len {
        return Err(fail(
            id,
            ErrorKind::Limit,
            format!("pattern is {len} bytes, over the limit of {}", limits.max_pattern_len),
        ));
    }
    let cap = if multiline {
        limits.max_multiline_match_len
    } else {
        limits.max_match_len
    };
    if max_len > cap {
        return Err(fail(
            id,
            ErrorKind::Limit,
            format!(
                "pattern can match {max_len} bytes, over the limit of {cap} for {} rules",
                if multiline { "multi-line" } else { "single-line" }
            ),
        ));
    }
    Ok(())
}

/// At least one keyword (the prefilter needs it), within the limits.
fn check_keywords(id: &str, keywords: &[String], limits: &Limits) -> Result<(), RuleFailure> {
    if keywords.is_empty() {
        return Err(fail(
            id,
            ErrorKind::Rule,
            "a rule needs at least one keyword for the prefilter",
        ));
    }
    if keywords.len() > limits.max_keywords {
        return Err(fail(
            id,
            ErrorKind::Limit,
            format!(
                "{} keywords exceed the limit of {}",
                keywords.len(),
                limits.max_keywords
            ),
        ));
    }
    match keywords
        .iter()
        .find(|k| k.len() < 2 || k.len() > 64 || k.contains('\n'))
    {
        Some(k) => Err(fail(
            id,
            ErrorKind::Rule,
            format!("keyword {k:?} must be 2 to 64 bytes on one line"),
        )),
        None => Ok(()),
    }
}

/// A block rule's end: its pattern compiled and the whole block's span (the match, up to
/// `max` bytes, the end) within the multi-line limit.
fn compile_block(
    id: &str,
    end: &str,
    max: Option<usize>,
    end_excluded: bool,
    max_len: usize,
    limits: &Limits,
) -> Result<(Block, usize), RuleFailure> {
    let max = max.unwrap_or(16 * 1024);
    let end_hir = syntax_parser()
        .parse(end)
        .map_err(|e| fail(id, ErrorKind::Pattern, format!("invalid block_end pattern: {e}")))?;
    let end_max = end_hir.properties().maximum_len().ok_or_else(|| {
        fail(
            id,
            ErrorKind::Pattern,
            "block_end pattern can match an unbounded length",
        )
    })?;
    let total = max_len + max + end_max;
    if total > limits.max_multiline_match_len {
        return Err(fail(
            id,
            ErrorKind::Limit,
            format!(
                "block can span {total} bytes, over the limit of {}",
                limits.max_multiline_match_len
            ),
        ));
    }
    let end_re = meta::Builder::new()
        .syntax(syntax_config())
        .build_from_hir(&end_hir)
        .map_err(|e| {
            fail(
                id,
                ErrorKind::Pattern,
                format!("block_end pattern does not compile: {e}"),
            )
        })?;
    let block = Block {
        end: end_re,
        max: max + end_max,
        end_excluded,
    };
    Ok((block, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in rules read from the build script's JSON are the TOML's.
    #[test]
    fn builtin_json_is_the_toml() {
        let limits = Limits::default();
        let from_json = compile_builtin(&limits).expect("json");
        let from_toml = compile_file(crate::BUILTIN_RULES, "builtin.toml", &limits, true).expect("toml");
        assert_eq!(from_json.len(), from_toml.len());
        for (a, b) in from_json.iter().zip(&from_toml) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert_eq!(a.regex.pattern, b.regex.pattern);
        }
    }

    /// The build script's reading of the built-in rules is the parser's: every rule has its
    /// entry, with the same longest match and `secret` group.
    #[test]
    fn builtin_meta_agrees_with_the_parser() {
        let file: RuleFile = toml::from_str(crate::BUILTIN_RULES).expect("parses");
        assert_eq!(
            file.rule.len(),
            BUILTIN_META.len(),
            "a built-in rule has no build-time entry"
        );
        for (spanned, &(id, len, max_len, group)) in file.rule.iter().zip(BUILTIN_META) {
            let def = spanned.get_ref();
            assert_eq!(def.id, id);
            let pattern = def.pattern.get_ref();
            assert_eq!(pattern.len(), len, "{id}");
            let hir = syntax_parser().parse(pattern).expect("parses");
            assert_eq!(hir.properties().maximum_len(), Some(max_len), "{id}");
            assert_eq!(capture_index(&hir, "secret"), group, "{id}");
        }
    }
}
