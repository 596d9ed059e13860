//! Globs for policy conditions: compiled into one multi-pattern regex per condition for fast
//! matching of resolved text, and into small NFAs so that a word the shell would still expand
//! (`~/.ssh/id_*`, `$DIR/x`) can be checked for *possibly* naming a protected path (intersection
//! of two glob languages).
//!
//! Syntax: `*` any run without `/`, `?` one byte other than `/`, `**` any run, `**/` zero or more
//! whole directories, `[abc]`/`[a-z]`/`[!x]` classes, `\x` a literal `x`.

use aho_corasick::AhoCorasick;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternSet};

/// A set of bytes one NFA edge accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Set {
    Byte(u8),
    /// Any byte but `/`.
    NoSlash,
    /// Any byte but `/` and `.` (the first byte of a component a shell glob may expand to).
    NoSlashNoDot,
    Any,
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Set {
    fn contains(&self, b: u8) -> bool {
        match self {
            Set::Byte(c) => *c == b,
            Set::NoSlash => b != b'/',
            Set::NoSlashNoDot => b != b'/' && b != b'.',
            Set::Any => true,
            Set::Class { negated, ranges } => {
                b != b'/' && (ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) != *negated)
            }
        }
    }

    fn intersects(&self, other: &Set) -> bool {
        match (self, other) {
            (Set::Byte(c), s) | (s, Set::Byte(c)) => s.contains(*c),
            _ => (0..=255u8).any(|b| self.contains(b) && other.contains(b)),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct State {
    edges: Vec<(Set, usize)>,
    eps: Vec<usize>,
}

/// A glob as a small NFA; the last state accepts.
#[derive(Debug, Clone)]
pub(crate) struct Nfa {
    states: Vec<State>,
}

impl Nfa {
    fn new() -> Nfa {
        Nfa {
            states: vec![State::default()],
        }
    }

    fn cur(&self) -> usize {
        self.states.len() - 1
    }

    fn push(&mut self) -> usize {
        self.states.push(State::default());
        self.cur()
    }

    fn byte(&mut self, set: Set) {
        let from = self.cur();
        let to = self.push();
        self.states[from].edges.push((set, to));
    }

    /// A run of bytes from `set` (possibly empty); `first` restricts the first byte.
    fn star(&mut self, first: Set, rest: Set) {
        let from = self.cur();
        let inner = self.push();
        let to = self.push();
        self.states[from].eps.push(to);
        self.states[from].edges.push((first, inner));
        self.states[inner].edges.push((rest, inner));
        self.states[inner].eps.push(to);
    }

    /// `(.*/)?`
    fn dirs(&mut self) {
        let from = self.cur();
        let inner = self.push();
        let to = self.push();
        self.states[from].eps.push(to);
        self.states[from].eps.push(inner);
        self.states[inner].edges.push((Set::Any, inner));
        self.states[inner].edges.push((Set::Byte(b'/'), to));
    }

    /// Adds what epsilon edges reach. They only lead forward (to higher states), so one pass
    /// in state order is the closure.
    fn closure(&self, set: &mut [bool]) {
        for i in 0..set.len() {
            if set[i] {
                for &e in &self.states[i].eps {
                    set[e] = true;
                }
            }
        }
    }

    /// Whether the glob matches all of `text`.
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        let n = self.states.len();
        let (mut a, mut b) = ([false; 96], [false; 96]);
        let (mut va, mut vb);
        let (mut cur, mut next): (&mut [bool], &mut [bool]) = if n <= 96 {
            (&mut a[..n], &mut b[..n])
        } else {
            va = vec![false; n];
            vb = vec![false; n];
            (&mut va[..], &mut vb[..])
        };
        cur[0] = true;
        self.closure(cur);
        for &byte in text {
            next.fill(false);
            let mut any = false;
            for (state, _) in self.states.iter().zip(cur.iter()).filter(|(_, on)| **on) {
                for (set, to) in &state.edges {
                    if set.contains(byte) {
                        next[*to] = true;
                        any = true;
                    }
                }
            }
            if !any {
                return false;
            }
            self.closure(next);
            std::mem::swap(&mut cur, &mut next);
        }
        cur[n - 1]
    }

    /// Whether some text matches both globs.
    pub(crate) fn intersects(&self, other: &Nfa) -> bool {
        let (n, m) = (self.states.len(), other.states.len());
        let mut seen = vec![false; n * m];
        let mut stack = vec![(0usize, 0usize)];
        seen[0] = true;
        while let Some((i, j)) = stack.pop() {
            if i == n - 1 && j == m - 1 {
                return true;
            }
            let mut visit = |a: usize, b: usize, stack: &mut Vec<(usize, usize)>| {
                if !seen[a * m + b] {
                    seen[a * m + b] = true;
                    stack.push((a, b));
                }
            };
            for &e in &self.states[i].eps {
                visit(e, j, &mut stack);
            }
            for &e in &other.states[j].eps {
                visit(i, e, &mut stack);
            }
            for (s1, t1) in &self.states[i].edges {
                for (s2, t2) in &other.states[j].edges {
                    if s1.intersects(s2) {
                        visit(*t1, *t2, &mut stack);
                    }
                }
            }
        }
        false
    }
}

/// A parsed glob: its regex translation and its NFA.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    regex: String,
    pub(crate) nfa: Nfa,
    /// For a text glob `*LIT*`: `LIT`, which any text containing it matches.
    core: Option<String>,
    /// The text a glob without wildcards matches.
    literal: Option<Vec<u8>>,
    /// The longest run of literal bytes: every text the glob matches contains it (empty when
    /// the glob has no literal byte).
    required: Vec<u8>,
}

impl Glob {
    /// Whether the glob matches all of `text`.
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        match &self.literal {
            Some(l) => l == text,
            None => self.nfa.is_match(text),
        }
    }

    /// Parses a path glob (`*` and `?` stop at `/`). Errors name the offset of the problem.
    pub(crate) fn new(pattern: &str) -> Result<Glob, (usize, &'static str)> {
        Glob::parse(pattern, false)
    }

    /// Parses a text glob, where `*` and `?` match any byte including `/` (arguments, names,
    /// hosts, header and JSON values).
    pub(crate) fn text(pattern: &str) -> Result<Glob, (usize, &'static str)> {
        Glob::parse(pattern, true)
    }

    fn parse(pattern: &str, text: bool) -> Result<Glob, (usize, &'static str)> {
        let p = pattern.as_bytes();
        let mut nfa = Nfa::new();
        let mut re = String::from("(?s-u:");
        let (mut run, mut required) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < p.len() {
            // A wildcard or class ends a literal run.
            if matches!(p[i], b'*' | b'?' | b'[') {
                if run.len() > required.len() {
                    required = std::mem::take(&mut run);
                }
                run.clear();
            }
            match p[i] {
                b'*' if p.get(i + 1) == Some(&b'*') => {
                    if p.get(i + 2) == Some(&b'/') {
                        nfa.dirs();
                        re.push_str("(?:.*/)?");
                        i += 3;
                    } else {
                        nfa.star(Set::Any, Set::Any);
                        re.push_str(".*");
                        i += 2;
                    }
                    continue;
                }
                b'*' if text => {
                    nfa.star(Set::Any, Set::Any);
                    re.push_str(".*");
                }
                b'?' if text => {
                    nfa.byte(Set::Any);
                    re.push('.');
                }
                b'*' => {
                    nfa.star(Set::NoSlash, Set::NoSlash);
                    re.push_str("[^/]*");
                }
                b'?' => {
                    nfa.byte(Set::NoSlash);
                    re.push_str("[^/]");
                }
                b'[' => {
                    let (set, class, end) = parse_class(p, i)?;
                    nfa.byte(set);
                    re.push_str(&class);
                    i = end;
                    continue;
                }
                b'\\' => {
                    let Some(&c) = p.get(i + 1) else {
                        return Err((i, "a trailing backslash escapes nothing"));
                    };
                    nfa.byte(Set::Byte(c));
                    push_literal(&mut re, c);
                    run.push(c);
                    i += 2;
                    continue;
                }
                c => {
                    nfa.byte(Set::Byte(c));
                    push_literal(&mut re, c);
                    run.push(c);
                }
            }
            i += 1;
        }
        re.push_str(")$");
        if run.len() > required.len() {
            required = run;
        }
        let core = pattern
            .strip_prefix('*')
            .and_then(|p| p.strip_suffix('*'))
            .filter(|c| text && !c.is_empty() && !c.contains(['*', '?', '[', '\\']))
            .map(str::to_string);
        let literal = nfa
            .states
            .iter()
            .take(nfa.states.len() - 1)
            .map(|st| match (st.edges.as_slice(), st.eps.is_empty()) {
                ([(Set::Byte(c), _)], true) => Some(*c),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>();
        Ok(Glob {
            regex: re,
            nfa,
            core,
            literal,
            required,
        })
    }
}

fn push_literal(re: &mut String, c: u8) {
    if c.is_ascii_alphanumeric() || c == b'_' || c == b'/' || c == b'-' {
        re.push(c as char);
    } else {
        re.push_str(&format!("\\x{c:02x}"));
    }
}

/// `[…]` at `i`: the set, its regex, and the index after `]`.
fn parse_class(p: &[u8], i: usize) -> Result<(Set, String, usize), (usize, &'static str)> {
    let mut j = i + 1;
    let negated = matches!(p.get(j), Some(b'!' | b'^'));
    if negated {
        j += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = p.get(j) else {
            return Err((i, "unclosed character class"));
        };
        if c == b']' && !first {
            break;
        }
        first = false;
        let c = if c == b'\\' {
            j += 1;
            *p.get(j).ok_or((i, "unclosed character class"))?
        } else {
            c
        };
        if p.get(j + 1) == Some(&b'-') && p.get(j + 2).is_some_and(|&e| e != b']') {
            let hi = p[j + 2];
            if hi < c {
                return Err((j, "character range out of order"));
            }
            ranges.push((c, hi));
            j += 3;
        } else {
            ranges.push((c, c));
            j += 1;
        }
    }
    let mut class = String::from(if negated { "[^/" } else { "[" });
    for &(lo, hi) in &ranges {
        class.push_str(&format!("\\x{lo:02x}-\\x{hi:02x}"));
    }
    // A class never matches `/`.
    class.push_str(if negated { "]" } else { "&&[^/]]" });
    Ok((Set::Class { negated, ranges }, class, j + 1))
}

/// What a variable or substitution inside a word may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expansion {
    /// A variable stands for text within one path component without dots, a command
    /// substitution for text within one component: `~/.ssh/$KEY` may be a key, `$DIR/main.rs`
    /// is not in a dot directory.
    Component,
    /// Any text.
    Any,
}

/// The NFA of a word as the shell would expand it: its globs (a leading `*` or `?` does not
/// match a dot file), and variables or substitutions standing for `expansion`.
pub(crate) fn shell_word_nfa(word: &str, expansion: Expansion) -> Nfa {
    let w = word.as_bytes();
    let mut nfa = Nfa::new();
    let mut i = 0;
    let component_start = |i: usize| i == 0 || w[i - 1] == b'/';
    while i < w.len() {
        match w[i] {
            b'*' => {
                if component_start(i) {
                    nfa.star(Set::NoSlashNoDot, Set::NoSlash);
                } else {
                    nfa.star(Set::NoSlash, Set::NoSlash);
                }
            }
            b'?' => nfa.byte(if component_start(i) {
                Set::NoSlashNoDot
            } else {
                Set::NoSlash
            }),
            b'[' => {
                if let Ok((set, _, end)) = parse_class(w, i) {
                    nfa.byte(set);
                    i = end;
                    continue;
                }
                nfa.byte(Set::Byte(b'['));
            }
            b'$' | b'`' => {
                let substitution = w[i] == b'`' || w.get(i + 1) == Some(&b'(');
                i = skip_expansion(w, i);
                match (expansion, substitution) {
                    (Expansion::Component, false) => nfa.star(Set::NoSlashNoDot, Set::NoSlashNoDot),
                    (Expansion::Component, true) => nfa.star(Set::NoSlash, Set::NoSlash),
                    (Expansion::Any, _) => nfa.star(Set::Any, Set::Any),
                }
                continue;
            }
            c => nfa.byte(Set::Byte(c)),
        }
        i += 1;
    }
    nfa
}

/// Whether `w` is exactly one expansion (`$X`, `${X…}`, `$(…)`, `` `…` ``); the flag says
/// whether it is a command substitution.
pub(crate) fn bare_expansion(w: &str) -> Option<bool> {
    let b = w.as_bytes();
    if b.is_empty() || !(b[0] == b'$' || b[0] == b'`') {
        return None;
    }
    (skip_expansion(b, 0) == b.len()).then(|| b[0] == b'`' || b.get(1) == Some(&b'('))
}

/// The literal parts of a word between its expansions.
pub(crate) fn literal_chunks(w: &str) -> Vec<&str> {
    let b = w.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < b.len() {
        if b[i] == b'$' || b[i] == b'`' {
            out.push(w.get(start..i).unwrap_or_default());
            i = skip_expansion(b, i).max(i + 1);
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(w.get(start.min(w.len())..).unwrap_or_default());
    out.retain(|c| !c.is_empty());
    out
}

/// The index after the expansion (`$NAME`, `${…}`, `$(…)`, `` `…` ``) starting at `i`.
pub(crate) fn skip_expansion(w: &[u8], i: usize) -> usize {
    let close_of = |open: u8, close: u8, from: usize| {
        let mut depth = 0usize;
        for (k, &b) in w.iter().enumerate().skip(from) {
            if b == open {
                depth += 1;
            } else if b == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k + 1;
                }
            }
        }
        w.len()
    };
    if w[i] == b'`' {
        return w[i + 1..]
            .iter()
            .position(|&b| b == b'`')
            .map_or(w.len(), |p| i + p + 2);
    }
    match w.get(i + 1) {
        Some(b'(') => close_of(b'(', b')', i + 1),
        Some(b'{') => close_of(b'{', b'}', i + 1),
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
            let mut j = i + 1;
            while j < w.len() && (w[j].is_ascii_alphanumeric() || w[j] == b'_') {
                j += 1;
            }
            j
        }
        Some(b) if b.is_ascii_digit() || b"@*#?$!-".contains(b) => i + 2,
        // A lone `$` is literal.
        _ => i + 1,
    }
}

/// A set of glob ids: inline up to 512, on the heap beyond.
#[derive(Debug, Clone)]
pub(crate) struct Bits {
    inline: [u64; 8],
    heap: Vec<u64>,
    any: bool,
}

impl Bits {
    pub(crate) fn new(n: usize) -> Bits {
        Bits {
            inline: [0; 8],
            heap: if n > 512 { vec![0; n.div_ceil(64)] } else { Vec::new() },
            any: false,
        }
    }

    fn words(&self) -> &[u64] {
        if self.heap.is_empty() { &self.inline } else { &self.heap }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        let w = if self.heap.is_empty() {
            &mut self.inline[..]
        } else {
            &mut self.heap[..]
        };
        w[i / 64] |= 1 << (i % 64);
        self.any = true;
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words().get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any
    }

    /// Whether any id in `r` is set.
    pub(crate) fn any_in(&self, r: std::ops::Range<usize>) -> bool {
        self.any && r.into_iter().any(|i| self.contains(i))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let words = if self.any { self.words() } else { &[] };
        words.iter().enumerate().flat_map(|(k, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    k * 64 + b
                })
            })
        })
    }
}

/// A matcher of the literals the globs require, when each has one (and there are any): a text
/// it does not match matches none of the globs.
pub(crate) fn required_literals<'g>(globs: impl Iterator<Item = &'g Glob>) -> Option<AhoCorasick> {
    let required: Vec<&[u8]> = globs
        .map(|g| Some(g.required.as_slice()).filter(|r| !r.is_empty()))
        .collect::<Option<_>>()?;
    if required.is_empty() {
        return None;
    }
    // A DFA without its own prefilter: the texts are short names and paths, where a rare-byte
    // scan costs more than it skips. Building fails only past size limits far beyond a
    // policy's; then there is no prefilter.
    AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .prefilter(false)
        .build(required)
        .ok()
}

/// Many globs compiled into one anchored multi-pattern regex, plus their NFAs.
///
/// The regex and its prefilter are built at [`GlobSet::new`], or, when the set belongs to the
/// embedded policy (`lazy`), the regex on first use and the prefilter (only ever a shortcut past
/// the regex) after [`PREFILTER_AFTER`] uses: a short-lived process, such as an agent hook,
/// builds only what its request touches; the tests build every one of them.
#[derive(Debug)]
pub(crate) struct GlobSet {
    /// Globs without wildcards, by their text.
    literals: rustc_hash::FxHashMap<Vec<u8>, Vec<usize>>,
    /// The other globs, as one multi-pattern regex (`None`: there are none).
    compiled: std::sync::OnceLock<Compiled>,
    /// Uses of a lazy set before its prefilter is built.
    uses: std::sync::atomic::AtomicU32,
    regex_ids: Vec<usize>,
    globs: Vec<Glob>,
}

/// A set's regex and, when every glob of the regex has a required literal, those literals: a
/// text containing none of them matches no glob of the regex, which then need not run.
#[derive(Debug, Clone)]
struct Compiled {
    regex: Option<Regex>,
    prefilter: std::sync::OnceLock<Option<AhoCorasick>>,
}

/// Uses of a lazily built set after which its literal prefilter is built.
const PREFILTER_AFTER: u32 = 64;

impl GlobSet {
    pub(crate) fn new(globs: Vec<Glob>, lazy: bool) -> Result<GlobSet, String> {
        let mut literals: rustc_hash::FxHashMap<Vec<u8>, Vec<usize>> = Default::default();
        let mut regex_ids = Vec::new();
        for (id, g) in globs.iter().enumerate() {
            if let Some(l) = &g.literal {
                literals.entry(l.clone()).or_default().push(id);
            } else {
                regex_ids.push(id);
            }
        }
        let set = GlobSet {
            literals,
            compiled: std::sync::OnceLock::new(),
            uses: std::sync::atomic::AtomicU32::new(0),
            regex_ids,
            globs,
        };
        if !lazy {
            let c = set.build()?;
            let _ = c.prefilter.set(set.literals_prefilter());
            let _ = set.compiled.set(c);
        }
        Ok(set)
    }

    fn build(&self) -> Result<Compiled, String> {
        let patterns: Vec<&str> = self.regex_ids.iter().map(|&id| self.globs[id].regex.as_str()).collect();
        let regex = if patterns.is_empty() {
            None
        } else {
            Some(
                Regex::builder()
                    .syntax(syntax::Config::new().utf8(false).unicode(false))
                    .configure(Regex::config().match_kind(MatchKind::All).utf8_empty(false))
                    .build_many(&patterns)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Compiled {
            regex,
            prefilter: std::sync::OnceLock::new(),
        })
    }

    fn literals_prefilter(&self) -> Option<AhoCorasick> {
        required_literals(self.regex_ids.iter().map(|&id| &self.globs[id]))
    }

    /// The prefilter, once there is one (built after enough uses).
    fn prefilter<'c>(&self, c: &'c Compiled) -> Option<&'c AhoCorasick> {
        if let Some(p) = c.prefilter.get() {
            return p.as_ref();
        }
        let n = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n < PREFILTER_AFTER {
            return None;
        }
        c.prefilter.get_or_init(|| self.literals_prefilter()).as_ref()
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            // Only the embedded policy's sets are lazy, and the tests build every one of them.
            self.build()
                .unwrap_or_else(|e| panic!("a glob set of the embedded policy does not compile: {e}"))
        })
    }

    /// Builds the regex now (tests: first use cannot fail).
    #[cfg(test)]
    pub(crate) fn force(&self) -> Result<(), String> {
        self.build().map(|_| ())
    }

    pub(crate) fn len(&self) -> usize {
        self.globs.len()
    }

    /// Adds the ids of the globs matching all of `text` to `out`.
    pub(crate) fn matches_into(&self, text: &[u8], out: &mut Bits) {
        thread_local! {
            // Reused pattern sets, by capacity: matching allocates nothing.
            static SCRATCH: std::cell::RefCell<Vec<PatternSet>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        if !self.literals.is_empty()
            && let Some(ids) = self.literals.get(text)
        {
            ids.iter().for_each(|&id| out.insert(id));
        }
        if self.regex_ids.is_empty() {
            return;
        }
        let c = self.compiled();
        let Some(re) = &c.regex else { return };
        if self.prefilter(c).is_some_and(|p| !p.is_match(text)) {
            return;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let n = self.regex_ids.len();
            let k = match scratch.iter().position(|p| p.capacity() == n) {
                Some(k) => k,
                None => {
                    scratch.push(PatternSet::new(n));
                    scratch.len() - 1
                }
            };
            let ps = &mut scratch[k];
            ps.clear();
            re.which_overlapping_matches(&Input::new(text).anchored(Anchored::Yes), ps);
            for id in ps.iter() {
                out.insert(self.regex_ids[id.as_usize()]);
            }
        });
    }

    /// Adds the ids of the globs some expansion of the shell word `nfa` could match.
    pub(crate) fn intersecting_into(&self, nfa: &Nfa, out: &mut Bits) {
        for (id, g) in self.globs.iter().enumerate() {
            if !out.contains(id) && g.nfa.intersects(nfa) {
                out.insert(id);
            }
        }
    }

    /// Adds the ids of `*LIT*` globs whose `LIT` occurs in one of `chunks` (the literal parts of
    /// a word with expansions: every expansion of it matches).
    pub(crate) fn containing_into(&self, chunks: &[&str], out: &mut Bits) {
        for (id, g) in self.globs.iter().enumerate() {
            if let Some(core) = &g.core
                && chunks.iter().any(|c| c.contains(core.as_str()))
            {
                out.insert(id);
            }
        }
    }

    pub(crate) fn glob(&self, id: usize) -> &Glob {
        &self.globs[id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        let g = Glob::new(p).expect("glob");
        let set = GlobSet::new(vec![g.clone()], false).expect("set");
        let mut ps = Bits::new(1);
        set.matches_into(t.as_bytes(), &mut ps);
        assert_eq!(
            ps.contains(0),
            g.nfa.is_match(t.as_bytes()),
            "regex and NFA disagree on {p} {t}"
        );
        assert_eq!(
            ps.contains(0),
            g.is_match(t.as_bytes()),
            "literal fast path disagrees on {p} {t}"
        );
        ps.contains(0)
    }

    #[test]
    fn matching() {
        assert!(m("**/.ssh/id_*", "~/.ssh/id_rsa"));
        assert!(m("**/.ssh/id_*", ".ssh/id_rsa"));
        assert!(!m("**/.ssh/id_*", "x/.ssh/known_hosts"));
        assert!(m("**/.env", ".env"));
        assert!(m("**/.env", "/srv/app/.env"));
        assert!(!m("**/.env", "/srv/app/.envrc"));
        assert!(m("/proc/*/environ", "/proc/self/environ"));
        assert!(!m("/proc/*/environ", "/proc/1/task/1/environ"));
        assert!(m("/proc/**/environ", "/proc/1/task/1/environ"));
        assert!(m("*.pub", "id_rsa.pub"));
        assert!(!m("*.pub", "a/id_rsa.pub"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a.b+c(d)", "a.b+c(d)"));
        assert!(m("**", "any/thing"));
        let t = Glob::text("*169.254.169.254*").expect("glob");
        assert!(t.nfa.is_match(b"http://169.254.169.254/latest/"));
    }

    #[test]
    fn bad_globs() {
        assert!(matches!(Glob::new("[abc"), Err((0, _))));
        assert!(Glob::new("x\\").is_err());
        assert!(Glob::new("[z-a]").is_err());
    }

    #[test]
    fn intersections() {
        let g = |p: &str| Glob::new(p).expect("glob").nfa;
        let w = |x: &str| shell_word_nfa(x, Expansion::Component);
        assert!(g("**/.ssh/id_*").intersects(&w("~/.ssh/*")));
        assert!(g("**/.ssh/id_*").intersects(&w("~/.ss?/id_rsa")));
        assert!(g("**/.ssh/id_*").intersects(&w("~/.ssh/$K")));
        assert!(!g("**/.password-store/**").intersects(&w("$D/main.rs")));
        assert!(g("**/.ssh/id_*").intersects(&w("$(echo ~/.ss)h/id_rsa")));
        assert!(!g("**/.ssh/id_*").intersects(&w("$D/id_rsa")));
        assert!(g("**/.ssh/id_*").intersects(&shell_word_nfa("$D/id_rsa", Expansion::Any)));
        assert_eq!(bare_expansion("$HOME"), Some(false));
        assert_eq!(bare_expansion("${X:-y}"), Some(false));
        assert_eq!(bare_expansion("$(ls ~)"), Some(true));
        assert_eq!(bare_expansion("$X/y"), None);
        assert!(!g("**/.env").intersects(&w("*")));
        assert!(g("**/.env").intersects(&w(".e*")));
        assert!(!g("**/.env").intersects(&w("src/*.rs")));
        assert!(!g("**/.env").intersects(&w("$DIR/main.rs")));
        assert!(g("\\*").intersects(&w("*")));
        assert!(!g("/").intersects(&w("*")));
    }

    #[test]
    fn required_literals() {
        let r = |p: &str| String::from_utf8(Glob::text(p).expect("glob").required).expect("utf8");
        assert_eq!(r("*.password"), ".password");
        assert_eq!(r("*api_keys.*"), "api_keys.");
        assert_eq!(r("ab*[xy]cde?f"), "cde");
        assert_eq!(r("a\\*bc"), "a*bc");
        assert_eq!(r("*"), "");
        assert_eq!(
            String::from_utf8(Glob::new("**/.ssh/id_*").expect("glob").required).expect("utf8"),
            ".ssh/id_"
        );
    }

    proptest::proptest! {
        /// The literal prefilter never hides a match: a set of several globs (sharing one
        /// regex and one prefilter) reports exactly the globs whose NFA matches.
        #[test]
        fn set_agrees_with_each_glob(
            pats in proptest::collection::vec("[ab.*?/]{1,6}", 1..5),
            text in "[ab./]{0,10}",
            path in proptest::bool::ANY,
        ) {
            let globs: Vec<Glob> = pats
                .iter()
                .map(|p| if path { Glob::new(p) } else { Glob::text(p) }.expect("glob"))
                .collect();
            let set = GlobSet::new(globs.clone(), false).expect("set");
            let mut out = Bits::new(globs.len());
            set.matches_into(text.as_bytes(), &mut out);
            for (id, g) in globs.iter().enumerate() {
                proptest::prop_assert_eq!(out.contains(id), g.nfa.is_match(text.as_bytes()), "{} on {}", pats[id], text);
            }
            // A lazily built set answers the same before and after its prefilter exists.
            let lazy = GlobSet::new(globs.clone(), true).expect("set");
            for _ in 0..PREFILTER_AFTER + 2 {
                let mut l = Bits::new(globs.len());
                lazy.matches_into(text.as_bytes(), &mut l);
                for id in 0..globs.len() {
                    proptest::prop_assert_eq!(l.contains(id), out.contains(id));
                }
            }
        }
    }
}
