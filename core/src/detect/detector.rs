//! The compiled detector: a keyword prefilter, per-rule confirmation and post-filters.
//!
//! # How a scan works
//!
//! 1. One Aho-Corasick pass (ASCII case-insensitive, overlapping, DFA) finds every keyword of
//!    every rule. Most bytes of ordinary text are touched only by this pass.
//! 2. Each keyword hit opens a *window* for the rules that own the keyword: from `window_before`
//!    bytes before the hit to the longest match after it, clipped to the hit's line unless the
//!    rule is multi-line. A rule's windows are merged and its regex (regex-automata's meta engine:
//!    lazy DFA, linear time, no backtracking) runs only inside them.
//! 3. Each raw match's secret (the `secret` group, or the whole match) goes through the rule's
//!    entropy threshold and validator, the placeholder filter, and for generic rules the noise
//!    filter (digests, UUIDs, identifiers, …).
//! 4. Overlapping candidates are resolved: known values first, then rules with a validator, then
//!    specific rules, then generic ones; within a class the longer secret wins.
//!
//! Because a window is bounded and every pattern has a bounded match length, whether a byte is
//! part of a finding depends only on a bounded neighbourhood. `detect` exploits this to tell a
//! streaming caller how far its output is final (the *commit point*), which is what makes
//! streaming redaction equal one-shot redaction however the input is cut.

use std::sync::Arc;

#[cfg(test)]
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex_automata::Input;

use super::filters;
use super::known::{self, KnownValues};
use super::prefilter::{Prefilter, Verifier};
use super::rules::{self, Block, Limits, Rule, RuleInfo};
use crate::error::Error;

/// The rules compiled into the binary.
pub const BUILTIN_RULES: &str = include_str!("../../rules/builtin.toml");

/// The default fingerprint key. Fingerprints are stable across runs and machines with it; a host
/// that handles low-entropy secrets should set its own key with
/// [`DetectorBuilder::fingerprint_key`], so that fingerprints cannot be brute-forced.
const DEFAULT_KEY: [u8; 32] = *b"sluice-fingerprint-key-v1-public";

/// The id of findings made from a column name rather than a rule: a value under a
/// credential-named column of tabular text, or of a database row.
pub const CREDENTIAL_COLUMN: &str = "credential-column";

/// A stable, keyed fingerprint of a secret (BLAKE3 keyed hash, first 16 bytes). It identifies a
/// secret without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// The fingerprint as 32 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One secret found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The id of the rule that found it (or the label of a known value).
    pub rule: Arc<str>,
    /// Byte offset of the first byte of the secret.
    pub start: usize,
    /// Byte offset one past the last byte of the secret.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, counted in characters (UTF-8 code points).
    pub column: usize,
    /// Keyed fingerprint of the secret's bytes.
    pub fingerprint: Fingerprint,
}

/// A finding before line numbers: what `detect` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Index into `Detector::ids`.
    pub(crate) id: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// Length of the whole match: between equal secrets, the rule that needed more context wins.
    pub(crate) context: usize,
}

/// Where the block that starts before `from` ends: the end (or, with `end_excluded`, the start) of
/// the first match of its end pattern within its `max` bytes, or without one, the end of the run
/// of base64 and whitespace bytes (at least 64).
/// `None` when that is not known yet (`limit` cuts the region short and the input goes on).
/// A rule (its index) and the byte range it is searched in (for an anchored rule, from the
/// position its match is tried at).
type Window = (u32, usize, usize);

/// What step 2 of [`Detector::detect`] gathers: raw match extents (for the commit point),
/// candidates, and the spans a provider rule vetoed (a bad checksum) that no generic rule may
/// report either.
#[derive(Default)]
struct Found {
    raw: Vec<(usize, usize)>,
    cands: Vec<Span>,
    vetoed: Vec<(usize, usize)>,
}

fn block_end(hay: &[u8], from: usize, block: &Block, limit: usize, at_eof: bool) -> Option<usize> {
    let region_end = (from + block.max).min(limit);
    if let Some(m) = block.end.find(Input::new(hay).range(from..region_end)) {
        return Some(if block.end_excluded { m.start() } else { m.end() });
    }
    if region_end < from + block.max && !at_eof && limit == hay.len() {
        return None;
    }
    let body = hay[from..region_end]
        .iter()
        .position(|&b| {
            !(b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'+' | b'/' | b'=' | b'\\' | b' ' | b'\t' | b'\r' | b'\n' | b'"' | b',' | b':' | b'-'
                ))
        })
        .unwrap_or(region_end - from);
    let mut end = from + body;
    while end > from && matches!(hay[end - 1], b' ' | b'\t' | b'\r' | b'\n' | b'"' | b',' | b'\\') {
        end -= 1;
    }
    (end - from >= 64).then_some(end)
}

/// A rule triggered by a keyword, with the exact bytes to check for case-sensitive keywords.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeywordRule {
    rule: u32,
    exact: Option<Box<[u8]>>,
}

/// How far before a match its context stopwords are looked for.
pub(crate) const CONTEXT_LOOKBACK: usize = 48;

/// What the post-filters make of a raw match.
enum Verdict {
    Accept,
    Reject,
    /// Rejected, and no generic rule may report the same bytes (a failed checksum).
    Veto,
}

/// Priority class of a candidate; lower wins overlaps.
fn class(rule: Option<&Rule>) -> u8 {
    match rule {
        None => 0, // known value
        Some(r) if r.validator.is_some() && !r.generic => 1,
        Some(r) if !r.generic => 2,
        Some(_) => 3,
    }
}

/// Builds a [`Detector`]: built-in rules, rule files, known values and the fingerprint key.
#[derive(Debug, Clone)]
pub struct DetectorBuilder {
    builtin: bool,
    files: Vec<(String, String)>,
    known: Vec<(String, Vec<u8>)>,
    brokered: Vec<(String, Vec<u8>)>,
    key: [u8; 32],
    limits: Limits,
    backend: super::Backend,
}

impl Default for DetectorBuilder {
    fn default() -> DetectorBuilder {
        DetectorBuilder {
            builtin: true,
            files: Vec::new(),
            known: Vec::new(),
            brokered: Vec::new(),
            key: DEFAULT_KEY,
            limits: Limits::default(),
            backend: super::Backend::Rust,
        }
    }
}

impl DetectorBuilder {
    /// A builder with the built-in rules and no known values.
    pub fn new() -> DetectorBuilder {
        DetectorBuilder::default()
    }

    /// Whether to include the built-in rules (default: yes).
    pub fn builtin_rules(mut self, yes: bool) -> DetectorBuilder {
        self.builtin = yes;
        self
    }

    /// Adds the rules of a rule file (TOML, see [`super::rules`]). `origin` names it in errors.
    pub fn rules_toml(mut self, origin: impl Into<String>, text: impl Into<String>) -> DetectorBuilder {
        self.files.push((origin.into(), text.into()));
        self
    }

    /// Registers an exact secret value (a credential the host holds). It is found raw and in its
    /// base64, URL-encoded and hex forms, and reported under `label`.
    pub fn known_value(mut self, label: impl Into<String>, value: impl AsRef<[u8]>) -> DetectorBuilder {
        self.known.push((label.into(), value.as_ref().to_vec()));
        self
    }

    /// Registers a value the host holds on the agent's behalf under `name` (see
    /// [`crate::broker`]): found in every form [`known_value`](Self::known_value) finds, and
    /// JSON-escaped, reversed, in any ASCII case, and any piece of 8 or more bytes of it or of
    /// its reverse; reported and replaced as its placeholder, `sluice:secret/NAME`.
    pub fn brokered_value(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> DetectorBuilder {
        self.brokered.push((name.into(), value.as_ref().to_vec()));
        self
    }

    /// Sets the key of the keyed hash behind fingerprints and placeholders.
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> DetectorBuilder {
        self.key = key;
        self
    }

    /// Sets the compilation limits (rule count, pattern size, match length, …).
    pub fn limits(mut self, limits: Limits) -> DetectorBuilder {
        self.limits = limits;
        self
    }

    /// Sets the engine of the keyword pass (default [`Backend::Rust`](super::Backend::Rust));
    /// findings are the same with either. [`build`](Self::build) fails with
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) for one this build does not have.
    pub fn backend(mut self, backend: super::Backend) -> DetectorBuilder {
        self.backend = backend;
        self
    }

    /// Compiles everything into an immutable detector.
    pub fn build(self) -> Result<Detector, Error> {
        if !super::Backend::available().contains(&self.backend) {
            return Err(Error::new(
                crate::ErrorKind::Backend,
                format!(
                    "the {} backend is not in this build (build with the cargo feature `{}`)",
                    self.backend, self.backend
                ),
            ));
        }
        let mut rules = Vec::new();
        if self.builtin {
            rules.extend(rules::compile_builtin(&self.limits)?);
        }
        for (origin, text) in &self.files {
            rules.extend(rules::compile_file(text, origin, &self.limits, false)?);
        }
        if rules.len() > self.limits.max_rules {
            return Err(Error::new(
                crate::ErrorKind::Limit,
                format!("{} rules exceed the limit of {}", rules.len(), self.limits.max_rules),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if !seen.insert(r.meta.id.clone()) {
                return Err(Error::new(crate::ErrorKind::Rule, "duplicate rule id").with_rule(&r.meta.id));
            }
        }
        // Keywords: lowercase, deduplicated, each mapped to the rules that own it (with the exact
        // bytes to check when the rule's keywords are case-sensitive).
        let mut kw_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut own: Vec<Vec<KeywordRule>> = Vec::new();
        for (ri, r) in rules.iter().enumerate() {
            for k in &r.keywords {
                let lower = k.to_ascii_lowercase();
                let idx = *kw_index.entry(lower.clone()).or_insert_with(|| {
                    keywords.push(lower);
                    own.push(Vec::new());
                    keywords.len() - 1
                });
                let exact = r
                    .case_sensitive_keywords
                    .then(|| k.as_bytes().to_vec().into_boxed_slice());
                if !own[idx].iter().any(|kr| kr.rule == ri as u32 && kr.exact == exact) {
                    own[idx].push(KeywordRule { rule: ri as u32, exact });
                }
            }
        }
        // The prefilter reports the longest keyword at a position; every shorter keyword that
        // starts there is a prefix of it, so each keyword also carries its prefixes' rules.
        let kw_rules: Vec<Vec<KeywordRule>> = keywords
            .iter()
            .map(|k| {
                let mut all: Vec<KeywordRule> = Vec::new();
                for (j, other) in keywords.iter().enumerate() {
                    if k.starts_with(other.as_str()) {
                        for kr in &own[j] {
                            // A rule reached through two keywords that start at the same place
                            // (`pass`, `password`) needs to be tried once.
                            if !all
                                .iter()
                                .any(|a| a.rule == kr.rule && (a.exact.is_none() || a.exact == kr.exact))
                            {
                                all.push(kr.clone());
                            }
                        }
                    }
                }
                all
            })
            .collect();
        #[cfg(test)]
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(aho_corasick::StartKind::Anchored)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|e| Error::new(crate::ErrorKind::Limit, format!("keywords do not compile: {e}")))?;
        let prefilter = Prefilter::new(&keywords);
        let verifier = Verifier::new(&keywords);
        #[cfg(feature = "hyperscan")]
        let hs = match self.backend {
            super::Backend::Hyperscan if keywords.iter().any(|k| k.len() >= 2) => {
                Some(super::hs::HsKeywords::new(&keywords)?)
            }
            _ => None,
        };
        let max_kw = keywords.iter().map(String::len).max().unwrap_or(1);

        let mut ids: Vec<Arc<str>> = rules.iter().map(|r| r.meta.id.clone()).collect();
        let mut label_id = |label: &str| match ids[rules.len()..].iter().position(|l| **l == *label) {
            Some(p) => rules.len() + p,
            None => {
                ids.push(Arc::from(label));
                ids.len() - 1
            }
        };
        let labels: Vec<(usize, Vec<u8>)> = self
            .known
            .into_iter()
            .map(|(label, value)| (label_id(&label), value))
            .collect();
        let mut brokered = Vec::new();
        for (name, value) in self.brokered {
            let placeholder = crate::broker::Placeholder::new(&name)
                .map_err(|e| Error::new(crate::ErrorKind::KnownValue, format!("brokered value `{name}`: {e}")))?;
            brokered.push((label_id(placeholder.as_str()), value));
        }
        let known = known::build(&labels, &brokered)?;
        ids.push(Arc::from(CREDENTIAL_COLUMN));
        let table_id = ids.len() - 1;

        let context = rules
            .iter()
            .map(|r| r.window_before.max(r.window_after))
            .max()
            .unwrap_or(0)
            + max_kw
            + CONTEXT_LOOKBACK
            + 1;
        let max_reach = rules
            .iter()
            .filter(|r| !r.multiline)
            .map(|r| r.window_before.max(r.window_after))
            .max()
            .unwrap_or(0);
        Ok(Detector {
            rules,
            ids,
            #[cfg(test)]
            ac,
            prefilter,
            verifier,
            #[cfg(feature = "hyperscan")]
            hs,
            backend: self.backend,
            kw_rules,
            max_kw,
            known,
            key: self.key,
            context,
            max_reach,
            tables: super::tables::Tables::new(),
            table_id,
        })
    }
}

/// The compiled, immutable detector. `Send + Sync`: build once, share across threads.
///
/// ```
/// # fn main() -> Result<(), sluice_core::Error> {
/// let detector = sluice_core::Detector::builtin()?;
/// let findings = detector.scan(b"let token = \"glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\";"); // synthetic: sluice:allow
/// assert_eq!(&*findings[0].rule, "gitlab-pat");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Detector {
    pub(crate) rules: Vec<Rule>,
    /// Rule ids followed by known-value labels.
    pub(crate) ids: Vec<Arc<str>>,
    /// The reference the prefilter and verifier are tested against (anchored, leftmost-longest).
    #[cfg(test)]
    ac: AhoCorasick,
    prefilter: Prefilter,
    verifier: Verifier,
    /// The Hyperscan keyword pass, when that backend was chosen (and there are keywords).
    #[cfg(feature = "hyperscan")]
    hs: Option<super::hs::HsKeywords>,
    backend: super::Backend,
    kw_rules: Vec<Vec<KeywordRule>>,
    pub(crate) max_kw: usize,
    known: Option<KnownValues>,
    key: [u8; 32],
    /// Bytes before the commit point a streaming caller keeps as context.
    pub(crate) context: usize,
    /// The farthest any single-line window reaches from its hit, either way.
    max_reach: usize,
    /// Tabular text (`psql`/`mysql` output, CSV, TSV): values under credential-named headers.
    tables: super::tables::Tables,
    /// The id findings in credential columns are reported under (`credential-column`).
    pub(crate) table_id: usize,
}

/// A keyword hit: where it starts and ends, and which keyword it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) keyword: u32,
}

impl Detector {
    /// The built-in rules, compiled. Takes tens of milliseconds; build once and share.
    pub fn builtin() -> Result<Detector, Error> {
        DetectorBuilder::new().build()
    }

    /// A builder, to add rule files or known values.
    pub fn builder() -> DetectorBuilder {
        DetectorBuilder::new()
    }

    /// The engine of this detector's keyword pass.
    pub fn backend(&self) -> super::Backend {
        self.backend
    }

    /// The rules this detector runs.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.meta)
    }

    /// Finds every secret in `haystack`.
    pub fn scan(&self, haystack: &[u8]) -> Vec<Finding> {
        let spans = self.spans(haystack);
        self.findings(haystack, spans)
    }

    /// [`scan`](Self::scan) on up to `threads` threads: the keyword pass over pieces of the
    /// input (a keyword hit depends only on the bytes it covers), then the rules' matching over
    /// shares of the windows it opened, each share's results kept in order. The findings are
    /// `scan`'s, in the same order; worth it for inputs of megabytes.
    pub fn scan_parallel(&self, haystack: &[u8], threads: usize) -> Vec<Finding> {
        let threads = threads.clamp(1, haystack.len().max(1));
        if threads == 1 {
            return self.scan(haystack);
        }
        // 1. Keyword hits, piece by piece.
        let mut hits = Vec::new();
        self.collect_hits_parallel(haystack, 0, threads, &mut hits);
        // 2. Windows, then their matches in shares.
        let (mut merged, anchored) = self.windows(haystack, &hits, 0);
        let share = |v: &[Window], j: usize| {
            let n = v.len().div_ceil(threads);
            (j * n).min(v.len())..((j + 1) * n).min(v.len())
        };
        let (merged_found, anchored_found): (Vec<Found>, Vec<Found>) = std::thread::scope(|sc| {
            let parts: Vec<_> = (0..threads)
                .map(|j| {
                    let (m, a) = (&merged[share(&merged, j)], &anchored[share(&anchored, j)]);
                    sc.spawn(move || {
                        let (mut fm, mut fa) = (Found::default(), Found::default());
                        self.confirm(haystack, m, &[], 0, true, &mut fm);
                        self.confirm(haystack, &[], a, 0, true, &mut fa);
                        (fm, fa)
                    })
                })
                .collect();
            parts.into_iter().map(joined).unzip()
        });
        // The order one thread would have found them in: every window's, then every try's.
        let mut all = Found::default();
        for f in merged_found.into_iter().chain(anchored_found) {
            all.raw.extend(f.raw);
            all.cands.extend(f.cands);
            all.vetoed.extend(f.vetoed);
        }
        merged.extend_from_slice(&anchored);
        let spans = self.finish_detect(haystack, &merged, all, 0, true).0;
        let spans = self.with_tables(haystack, spans);
        self.findings(haystack, spans)
    }
}

/// A scoped thread's result; its panic goes on in the caller.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Line counting over an input, forward only: an absolute offset, its line (from 1) and the
/// start of that line.
#[derive(Debug)]
pub(crate) struct LineCount {
    at: usize,
    pub(crate) line: usize,
    pub(crate) start: usize,
}

impl Default for LineCount {
    fn default() -> LineCount {
        LineCount {
            at: 0,
            line: 1,
            start: 0,
        }
    }
}

impl LineCount {
    /// Moves forward to `to` (absolute, not before where it is), over `buf` (which starts at
    /// absolute offset `base`, at or before the start of the line it is on). The gap's newlines
    /// are counted in one pass (memchr counts without stopping at each), then the last one
    /// found: not a call per line.
    pub(crate) fn advance(&mut self, buf: &[u8], base: usize, to: usize) {
        if to <= self.at {
            return;
        }
        let gap = &buf[self.at - base..to - base];
        let newlines = memchr::memchr_iter(b'\n', gap).count();
        if newlines > 0 {
            self.line += newlines;
            self.start = self.at + memchr::memrchr(b'\n', gap).map_or(0, |p| p + 1);
        }
        self.at = to;
    }
}

/// Streams hand pieces this large or larger to [`Detector::collect_hits_parallel`].
pub(crate) const PARALLEL_HITS: usize = 4 << 20;

impl Detector {
    /// [`collect_hits`](Detector::collect_hits) on up to `threads` threads, each over a piece of
    /// `hay[from..]` (a hit depends only on the bytes it covers): the same hits in the same
    /// order.
    pub(crate) fn collect_hits_parallel(&self, hay: &[u8], from: usize, threads: usize, out: &mut Vec<Hit>) {
        // Hits that start before `from` but end after it, as `collect_hits` reports them.
        let mut before = Vec::new();
        self.collect_hits(&hay[..(from + self.max_kw).min(hay.len())], from, &mut before);
        before.retain(|h| h.start < from);
        out.extend(before);
        let len = hay.len() - from;
        let piece = len.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|sc| {
            let parts: Vec<_> = (0..threads.max(1))
                .map(|j| {
                    let (a, b) = (from + (j * piece).min(len), from + ((j + 1) * piece).min(len));
                    sc.spawn(move || self.hits_between(hay, a, b))
                })
                .collect();
            out.extend(parts.into_iter().flat_map(joined));
        });
    }

    /// The keyword hits that start in `hay[a..b]` (each depends only on the bytes it covers, so
    /// the pieces of an input give the whole input's hits).
    fn hits_between(&self, hay: &[u8], a: usize, b: usize) -> Vec<Hit> {
        let mut out = Vec::new();
        if a < b {
            // Every keyword starting before `b` ends within `max_kw - 1` bytes after it.
            let t = (b + self.max_kw - 1).min(hay.len());
            self.collect_hits(&hay[..t], a, &mut out);
            out.retain(|h| a <= h.start && h.start < b);
        }
        out
    }

    /// Findings, with lines and columns, for `spans` of `haystack` (in order).
    fn findings(&self, haystack: &[u8], spans: Vec<Span>) -> Vec<Finding> {
        let mut lines = LineCount::default();
        spans.iter().map(|s| self.finding(s, haystack, 0, &mut lines)).collect()
    }

    /// The finding of span `s` (absolute offsets) of `buf`, which starts at absolute offset
    /// `base`, at or before where `lines` counts from; `lines` moves on to its start.
    pub(crate) fn finding(&self, s: &Span, buf: &[u8], base: usize, lines: &mut LineCount) -> Finding {
        lines.advance(buf, base, s.start);
        let column = buf[lines.start - base..s.start - base]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
            + 1;
        Finding {
            rule: self.ids[s.id].clone(),
            start: s.start,
            end: s.end,
            line: lines.line,
            column,
            fingerprint: self.fingerprint(&buf[s.start - base..s.end - base]),
        }
    }

    /// The final findings of a whole input, before line numbers: what `scan` and `redact` share.
    pub(crate) fn spans(&self, haystack: &[u8]) -> Vec<Span> {
        let mut hits = Vec::new();
        self.collect_hits(haystack, 0, &mut hits);
        let spans = self.detect(haystack, &hits, 0, true).0;
        self.with_tables(haystack, spans)
    }

    /// `spans` with the credential cells of any table in `haystack` that no span overlaps.
    fn with_tables(&self, haystack: &[u8], mut spans: Vec<Span>) -> Vec<Span> {
        if memchr::memchr(b'\n', haystack).is_some() {
            let cells = self.tables.credential_cells(haystack);
            if !cells.is_empty() {
                for (start, end) in cells {
                    if !spans.iter().any(|s| s.start < end && start < s.end) {
                        spans.push(Span {
                            id: self.table_id,
                            start,
                            end,
                            context: end - start,
                        });
                    }
                }
                spans.sort_by_key(|s| s.start);
            }
        }
        spans
    }

    /// The known values, when any were registered.
    pub(crate) fn known_values(&self) -> Option<&KnownValues> {
        self.known.as_ref()
    }

    /// The keyed fingerprint of `secret`.
    pub fn fingerprint(&self, secret: &[u8]) -> Fingerprint {
        let h = blake3::keyed_hash(&self.key, secret);
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.as_bytes()[..16]);
        Fingerprint(out)
    }

    /// Appends to `out` the keyword hits of `hay` that end after `from`.
    pub(crate) fn collect_hits(&self, hay: &[u8], from: usize, out: &mut Vec<Hit>) {
        let begin = from.saturating_sub(self.max_kw - 1);
        #[cfg(feature = "hyperscan")]
        if let Some(hs) = &self.hs {
            hs.hits(hay, begin, from, out);
            return;
        }
        self.prefilter.candidates(hay, begin, |p, w| {
            if let Some((keyword, len)) = self.verifier.longest(hay, p, w)
                && p + len > from
            {
                out.push(Hit {
                    start: p,
                    end: p + len,
                    keyword,
                });
            }
        });
    }

    /// Finds the secrets of `hay` that start at or after `min_start`, given its keyword `hits`.
    ///
    /// When `eof` is false, `hay` may continue: the second value is the commit point, the offset
    /// before which the findings are final (the same as if the whole input had been given), and
    /// only findings before it are returned. When `eof` is true it is `hay.len()`.
    pub(crate) fn detect(&self, hay: &[u8], hits: &[Hit], min_start: usize, eof: bool) -> (Vec<Span>, usize) {
        let (mut merged, anchored) = self.windows(hay, hits, min_start);
        // 2. Raw matches and candidates.
        let mut found = Found::default();
        self.confirm(hay, &merged, &anchored, min_start, eof, &mut found);
        merged.extend_from_slice(&anchored);
        self.finish_detect(hay, &merged, found, min_start, eof)
    }

    /// Step 2 of [`Detector::detect`]: each window's matches (`merged`) and each anchored try
    /// (`anchored`), in that order, into `found`.
    fn confirm(
        &self,
        hay: &[u8],
        merged: &[Window],
        anchored: &[Window],
        min_start: usize,
        eof: bool,
        found: &mut Found,
    ) {
        for &(ri, a, b) in merged {
            let r = &self.rules[ri as usize];
            let from = a.max(min_start);
            if from >= b {
                continue;
            }
            for caps in r.regex.get().captures_iter(Input::new(hay).range(from..b)) {
                self.consider(hay, ri, &caps, b, eof, found);
            }
        }
        let mut caps_of: Vec<Option<regex_automata::util::captures::Captures>> = Vec::new();
        for &(ri, at, b) in anchored {
            let r = &self.rules[ri as usize];
            if caps_of.len() <= ri as usize {
                caps_of.resize(ri as usize + 1, None);
            }
            let caps = caps_of[ri as usize].get_or_insert_with(|| r.regex.get().create_captures());
            r.regex.get().search_captures(
                &Input::new(hay).range(at..b).anchored(regex_automata::Anchored::Yes),
                caps,
            );
            if caps.is_match() {
                self.consider(hay, ri, caps, b, eof, found);
            }
        }
    }

    /// Steps 2 (held values) to 4 of [`Detector::detect`], given the windows (`merged`, the
    /// anchored tries after the others) and what their matches left.
    fn finish_detect(
        &self,
        hay: &[u8],
        merged: &[Window],
        found: Found,
        min_start: usize,
        eof: bool,
    ) -> (Vec<Span>, usize) {
        let Found {
            mut raw,
            mut cands,
            vetoed,
        } = found;
        let end = hay.len();
        if let Some(k) = &self.known {
            let mut found = Vec::new();
            k.find(&hay[..end], min_start, &mut found);
            for (start, e, id) in found {
                if !eof {
                    raw.push((start, e));
                }
                cands.push(Span {
                    id,
                    start,
                    end: e,
                    context: 0,
                });
            }
        }

        // 3. The commit point.
        let commit = if eof {
            end
        } else {
            self.commit_point(hay, merged, &raw, min_start)
        };

        (self.resolve(cands, &vetoed, commit), commit)
    }

    /// Step 4 of [`Detector::detect`]: candidates before the commit point, generic ones not on a
    /// vetoed span, overlaps resolved (best class first, then the longer secret, then the
    /// earlier rule), in order.
    fn resolve(&self, mut cands: Vec<Span>, vetoed: &[(usize, usize)], commit: usize) -> Vec<Span> {
        cands.retain(|c| {
            c.start < commit
                && !(c.id < self.rules.len()
                    && self.rules[c.id].generic
                    && vetoed.iter().any(|&(s, e)| s < c.end && c.start < e))
        });
        let n_rules = self.rules.len();
        let key = |c: &Span| {
            let rule = (c.id < n_rules).then(|| &self.rules[c.id]);
            (
                class(rule),
                -rule.map_or(0, |r| i16::from(r.priority)),
                usize::MAX - (c.end - c.start),
                usize::MAX - c.context,
                c.start,
                c.id,
            )
        };
        cands.sort_unstable_by_key(key);
        let mut accepted: Vec<Span> = Vec::with_capacity(cands.len());
        let mut taken: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        for c in cands {
            let before = taken.range(..c.end).next_back();
            if before.is_some_and(|(&s, &e)| s < c.end && c.start < e) {
                continue;
            }
            taken.insert(c.start, c.end);
            accepted.push(c);
        }
        accepted.sort_unstable_by_key(|c| (c.start, c.end));
        accepted
    }

    /// Step 1 of [`Detector::detect`]: for each keyword hit, the window each of its rules is
    /// searched in (clipped to the hit's line for single-line rules; windows of one rule merged),
    /// and for anchored rules the position a match is tried at.
    fn windows(&self, hay: &[u8], hits: &[Hit], min_start: usize) -> (Vec<Window>, Vec<Window>) {
        let end = hay.len();
        // 1. Windows per rule; anchored rules instead try a match at each hit.
        let mut windows: Vec<(u32, usize, usize)> = Vec::new();
        let mut anchored: Vec<(u32, usize, usize)> = Vec::new();
        // The hit's line, as far as any window reaches; a line found whole serves every later
        // hit on it (hits come in order).
        let (mut line_start, mut line_end) = (usize::MAX, 0usize);
        for h in hits {
            let (line_a, line_b) = if line_start <= h.start && h.end <= line_end {
                (
                    line_start.max(h.start.saturating_sub(self.max_reach)),
                    line_end.min(h.start + self.max_reach),
                )
            } else {
                let lo = h.start.saturating_sub(self.max_reach);
                let hi = (h.start + self.max_reach).min(end);
                let a = memchr::memrchr(b'\n', &hay[lo..h.start]).map(|nl| lo + nl + 1);
                let b = memchr::memchr(b'\n', &hay[h.end.min(hi)..hi]).map(|nl| h.end.min(hi) + nl);
                if let (Some(a), Some(b)) = (a.or((lo == 0).then_some(0)), b.or((hi == end).then_some(end))) {
                    (line_start, line_end) = (a, b);
                }
                (a.unwrap_or(lo), b.unwrap_or(hi))
            };
            for kr in &self.kw_rules[h.keyword as usize] {
                if kr.exact.as_deref().is_some_and(|e| !hay[h.start..].starts_with(e)) {
                    continue;
                }
                let ri = kr.rule;
                let r = &self.rules[ri as usize];
                let mut a = h.start.saturating_sub(r.window_before);
                let mut b = (h.start + r.window_after).min(end);
                if !r.multiline {
                    a = a.max(line_a);
                    b = b.min(line_b);
                }
                if r.anchored {
                    if h.start >= min_start && b > h.start {
                        anchored.push((ri, h.start, b));
                    }
                } else if b > min_start && b > a {
                    windows.push((ri, a, b));
                }
            }
        }
        windows.sort_unstable();
        let mut merged: Vec<(u32, usize, usize)> = Vec::with_capacity(windows.len());
        for w in windows {
            match merged.last_mut() {
                Some(last) if last.0 == w.0 && w.1 <= last.2 => last.2 = last.2.max(w.2),
                _ => merged.push(w),
            }
        }
        (merged, anchored)
    }

    /// Step 2 of [`Detector::detect`] for one match of rule `ri` (searched up to `b`): its raw
    /// extent (for the commit point) and, if the filters accept it, a candidate.
    fn consider(
        &self,
        hay: &[u8],
        ri: u32,
        caps: &regex_automata::util::captures::Captures,
        b: usize,
        eof: bool,
        found: &mut Found,
    ) {
        let end = hay.len();
        let Found { raw, cands, vetoed } = found;
        let r = &self.rules[ri as usize];
        let Some(m) = caps.get_match() else { return };
        let mut span = match r.secret_group {
            Some(g) => match caps.get_group(g) {
                Some(s) => s,
                None => return,
            },
            None => m.span(),
        };
        if let Some(block) = &r.block {
            match block_end(hay, m.end(), block, b, eof && b == end) {
                Some(e) => span.end = e,
                None => {
                    // Not decidable yet: keep the commit point before it.
                    if !eof {
                        raw.push((m.start(), usize::MAX));
                    }
                    return;
                }
            }
            if !eof {
                raw.push((m.start(), span.end));
            }
        } else if !eof {
            raw.push((m.start(), m.end()));
        }
        let s = &hay[span.start..span.end];
        if s.len() >= 2 && matches!(s[0], b'"' | b'\'' | b'`') && s[s.len() - 1] == s[0] {
            span.start += 1;
            span.end -= 1;
        }
        let stopped = !r.context_stopwords.is_empty() && {
            // The match before the secret, and the rest of the name it starts in (up to
            // 48 bytes): `cache_key`, `publicToken`.
            let floor = m.start().saturating_sub(CONTEXT_LOOKBACK);
            let from = hay[floor..m.start()]
                .iter()
                .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
                .map_or(floor, |p| floor + p + 1);
            let ctx = hay[from..span.start].to_ascii_lowercase();
            r.context_stopwords
                .iter()
                .any(|w| super::filters::find_short(&ctx, w).is_some())
        };
        let ok = if stopped {
            false
        } else if r.block.is_some() {
            // A key block needs a body: a run of at least 24 base64 characters (PEM lines
            // have 64), not `...` or code that builds a key.
            let mut run = 0usize;
            hay[m.end()..span.end].iter().any(|&b| {
                run = if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=') {
                    run + 1
                } else {
                    0
                };
                run >= 24
            })
        } else if r.generic && (hay.get(span.end) == Some(&b'(') || in_placeholder(hay, span.start, span.end)) {
            // A call (`key = crypto.generate_ed25519()`), not a value; or the hash of our own
            // placeholder (`[REDACTED:db-password:4a976e]`): masked output read again.
            false
        } else {
            match self.accept(r, &hay[span.start..span.end]) {
                Verdict::Accept => true,
                Verdict::Reject => false,
                Verdict::Veto => {
                    vetoed.push((span.start, span.end));
                    false
                }
            }
        };
        if span.start < span.end && ok {
            cands.push(Span {
                id: ri as usize,
                start: span.start,
                end: span.end,
                context: span.end.max(m.end()) - m.start(),
            });
        }
    }

    fn commit_point(
        &self,
        hay: &[u8],
        merged: &[(u32, usize, usize)],
        raw: &[(usize, usize)],
        min_start: usize,
    ) -> usize {
        let end = hay.len();
        let line_start = memchr::memrchr(b'\n', &hay[min_start..]).map_or(min_start, |p| min_start + p + 1);
        let mut commit = end;
        // A keyword not seen yet straddles the end, so it starts within `max_kw - 1` bytes of it;
        // keywords hold no newline, so it also starts after the last one. Its window opens at most
        // `window_before` before it, and for single-line rules never before its line.
        let unseen = end.saturating_sub(self.max_kw - 1).max(line_start);
        for r in &self.rules {
            let c = unseen.saturating_sub(r.window_before);
            commit = commit.min(if r.multiline { c } else { c.max(line_start) });
        }
        // A window cut short by the end may hold a match that is not complete yet.
        for &(ri, a, b) in merged {
            if b == end {
                let r = &self.rules[ri as usize];
                commit = commit.min(a.max(end.saturating_sub(r.max_len + 1)));
            }
        }
        if let Some(k) = &self.known {
            let c = end.saturating_sub(k.max_len - 1);
            commit = commit.min(if k.has_newline { c } else { c.max(line_start) });
        }
        let mut commit = commit.max(min_start);
        // Never cut through a raw match.
        loop {
            let before = commit;
            for &(s, e) in raw {
                if s < commit && commit < e {
                    commit = s;
                }
            }
            if commit == before {
                break;
            }
        }
        commit
    }

    fn accept(&self, r: &Rule, secret: &[u8]) -> Verdict {
        if let Some(min) = r.entropy
            && filters::entropy(secret) < min
        {
            return Verdict::Reject;
        }
        if let Some(v) = r.validator
            && !v.check(secret)
        {
            return if r.generic { Verdict::Reject } else { Verdict::Veto };
        }
        if filters::is_placeholder(secret)
            || (r.generic && !(r.words && filters::is_literal_word(secret)) && filters::is_generic_noise(secret))
        {
            return Verdict::Reject;
        }
        Verdict::Accept
    }

    /// Self-test of the rules' own examples: every example must be found by its rule, no
    /// counter-example may be. Returns a description of each failure.
    pub fn check_rule_examples(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for (ri, r) in self.rules.iter().enumerate() {
            for ex in &r.examples {
                // Alone, and as a line among others: windows and boundaries differ at line ends.
                for text in [ex.clone(), format!("# config\n{ex}\n# end\n")] {
                    let found = self.scan(text.as_bytes());
                    if !found.iter().any(|f| f.rule == self.ids[ri]) {
                        let got: Vec<&str> = found.iter().map(|f| &*f.rule).collect();
                        failures.push(format!(
                            "rule `{}`: example not found (found {got:?}): {text:?}",
                            r.meta.id
                        ));
                        break;
                    }
                }
            }
            for ex in &r.counter_examples {
                if self.scan(ex.as_bytes()).iter().any(|f| f.rule == self.ids[ri]) {
                    failures.push(format!("rule `{}`: counter-example found: {ex:?}", r.meta.id));
                }
            }
        }
        failures
    }

    /// How many examples and counter-examples the rules carry.
    pub fn example_counts(&self) -> (usize, usize) {
        self.rules
            .iter()
            .fold((0, 0), |(e, c), r| (e + r.examples.len(), c + r.counter_examples.len()))
    }
}

/// Whether `hay[start..end]` is the hash of one of the redactor's placeholders
/// (`[REDACTED:<id>:<6 hex>]`), which a generic rule reads as an assignment when the id
/// names a password: masked output scanned again must not mask its own placeholders.
fn in_placeholder(hay: &[u8], start: usize, end: usize) -> bool {
    const OPEN: &[u8] = b"[REDACTED:";
    // `…:<6 hex>]` ends the span.
    if end < start + 6 || end < 7 || hay.get(end) != Some(&b']') || hay[end - 7] != b':' {
        return false;
    }
    if !hay[end - 6..end].iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let floor = (end - 7).saturating_sub(OPEN.len() + 64);
    let Some(open) = memchr::memmem::rfind(&hay[floor..end - 7], OPEN).map(|o| floor + o) else {
        return false;
    };
    let id = &hay[open + OPEN.len()..end - 7];
    start >= open
        && !id.is_empty()
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive reference: try the keyword automaton at every position.
    fn naive_hits(det: &Detector, hay: &[u8]) -> Vec<(usize, usize)> {
        (0..hay.len())
            .filter_map(|p| {
                let input = aho_corasick::Input::new(hay)
                    .span(p..hay.len())
                    .anchored(aho_corasick::Anchored::Yes);
                det.ac.try_find(input).ok().flatten().map(|m| (m.start(), m.end()))
            })
            .collect()
    }

    #[test]
    fn the_prefilter_never_misses_a_keyword() {
        for &backend in crate::Backend::available() {
            let det = Detector::builder().backend(backend).build().expect("compiles");
            assert_eq!(det.backend(), backend);
            keyword_pass_matches_reference(&det);
        }
    }

    #[test]
    fn a_backend_not_built_in_is_a_clear_error() {
        if !cfg!(feature = "hyperscan") {
            let e = Detector::builder()
                .backend(crate::Backend::Hyperscan)
                .build()
                .expect_err("not in this build");
            assert_eq!(e.kind(), crate::ErrorKind::Backend);
            assert!(e.to_string().contains("feature `hyperscan`"), "{e}");
        }
    }

    /// Every keyword hit of `det`'s keyword pass, against the naive reference.
    fn keyword_pass_matches_reference(det: &Detector) {
        let mut inputs: Vec<Vec<u8>> = det
            .rules
            .iter()
            .flat_map(|r| r.examples.iter().map(|e| e.as_bytes().to_vec()))
            .collect();
        // Every keyword in every case and at every alignment near the end of the input.
        let kws: Vec<&String> = det.rules.iter().flat_map(|r| r.keywords.iter()).collect();
        for k in &kws {
            for pad in 0..9 {
                let mut v = vec![b'x'; pad];
                v.extend_from_slice(k.as_bytes());
                inputs.push(v.clone());
                inputs.push(v.to_ascii_uppercase());
                v.extend_from_slice(b"_tail");
                inputs.push(v);
            }
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200 {
            let mut v = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let k = kws[(seed % kws.len() as u64) as usize].as_bytes();
                v.extend_from_slice(&k[..(seed as usize >> 8) % (k.len() + 1)]);
                v.push(b"_- x=\n\"A"[(seed >> 20) as usize % 8]);
            }
            inputs.push(v);
        }
        for hay in &inputs {
            let mut hits = Vec::new();
            det.collect_hits(hay, 0, &mut hits);
            let got: Vec<(usize, usize)> = hits.iter().map(|h| (h.start, h.end)).collect();
            assert_eq!(got, naive_hits(det, hay), "{:?}", String::from_utf8_lossy(hay));
        }
    }

    /// The built-in rules compile on first use; this proves first use cannot fail (and that
    /// the `secret` group found in the parsed pattern is the compiled regex's).
    #[test]
    fn every_builtin_rule_compiles() {
        let det = Detector::builtin().expect("compiles");
        for r in &det.rules {
            let re = r.regex.get();
            assert_eq!(
                re.group_info().to_index(regex_automata::PatternID::ZERO, "secret"),
                r.secret_group,
                "{}",
                r.meta.id
            );
        }
    }
}
