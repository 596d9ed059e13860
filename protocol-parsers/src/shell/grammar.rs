//! The grammar front end: parses with `brush-parser` (the bash grammar of the brush shell) and
//! walks the tree in execution order, feeding simple commands to the back end.

use std::collections::HashMap;

use brush_parser::ast;
use brush_parser::word::{self, ParameterExpr, WordPiece, WordPieceWithSource};

use super::build::{Builder, Flow, Redir, Simple, Word};
use super::{Error, ErrorKind};

/// The most words one brace expansion may produce before it is left unresolved.
const MAX_BRACE_WORDS: usize = 64;
/// The longest run of unspaced `(` handed to brush-parser.
const MAX_PARENS: usize = 6;
/// The most `{` in a word handed to brush-parser's brace parser.
const MAX_BRACES: usize = 6;

/// Whether a word may hold a brace expansion: a `{` with a `,` or `..` before a later `}`.
fn may_expand_braces(text: &str) -> bool {
    text.match_indices('{').any(|(i, _)| {
        let rest = &text[i + 1..];
        rest.find('}')
            .is_some_and(|j| rest[..j].contains(',') || rest[..j].contains(".."))
    })
}

fn options() -> brush_parser::ParserOptions {
    brush_parser::ParserOptions {
        enable_extended_globbing: true,
        ..brush_parser::ParserOptions::default()
    }
}

fn offset_of(script: &str, line: usize, column: usize) -> usize {
    script
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column.saturating_sub(1)
}

fn parse_error(script: &str, e: &brush_parser::ParseError) -> Error {
    use brush_parser::ParseError as P;
    match e {
        P::ParsingNear(p) => Error::new(ErrorKind::Syntax, p.index),
        P::ParsingAtEndOfInput => Error::new(ErrorKind::Unterminated, script.len()),
        P::Tokenizing { position, inner } => {
            let at = position
                .as_ref()
                .map_or(script.len(), |p| offset_of(script, p.line, p.column));
            let text = inner.to_string();
            let kind = if text.contains("unterminated") {
                ErrorKind::Unterminated
            } else {
                ErrorKind::Syntax
            };
            Error::new(kind, at.min(script.len()))
        }
    }
}

/// Parses `script` and feeds it to `b`.
pub(super) fn analyze(script: &str, b: &mut Builder<'_>) -> Result<(), Error> {
    // Control characters other than tab and newline are no part of a command an agent means
    // to run, and brush-parser 0.4 loops without bound on some (`<<\r<#`): refused up front.
    if let Some(at) = script
        .bytes()
        .position(|b| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f)
    {
        return Err(Error::new(ErrorKind::Syntax, at));
    }
    // brush-parser's time grows exponentially with unspaced `((` (a run of 14 `(` takes 1.5 ms,
    // each two more ×4): nobody writes more than a few.
    if let Some(at) = script.find(&"(".repeat(MAX_PARENS + 1)) {
        return Err(Error::new(ErrorKind::TooLarge, at));
    }
    if script.as_bytes().windows(2).filter(|w| w == b"((").count() > MAX_PARENS {
        return Err(Error::new(ErrorKind::TooLarge, script.find("((").unwrap_or(0)));
    }
    // A here-document delimiter with an expansion in it (`<<"$((…`) sends brush-parser 0.4 into
    // a search exponential in what follows; real delimiters are plain words (`EOF`, `'END'`).
    let mut rest = script;
    while let Some(i) = rest.find("<<") {
        let after = &rest[i + 2..];
        if let Some(string) = after.strip_prefix('<') {
            // A here-string: its word is data, not a delimiter.
            rest = string;
            continue;
        }
        let after = after.trim_start_matches('-').trim_start();
        let delim: &str = after
            .split([' ', '\t', '\n', ';', '|', '&', '<', '>'])
            .next()
            .unwrap_or("");
        if delim.contains(['$', '`', '(']) {
            return Err(Error::new(ErrorKind::Syntax, script.len() - rest.len() + i));
        }
        rest = &rest[i + 2..];
    }
    // A descriptor number beyond `i32` before a redirection panics in brush-parser 0.4.
    let mut run = 0;
    for (i, &c) in script.as_bytes().iter().enumerate() {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            if run > 9 && matches!(c, b'<' | b'>') {
                return Err(Error::new(ErrorKind::Syntax, i - run));
            }
            run = 0;
        }
    }
    let opts = options();
    // And should another input make it panic, that input is not understood: the host lives on.
    let parse = |text: &str| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            brush_parser::Parser::new(std::io::Cursor::new(text.as_bytes()), &opts).parse_program()
        }))
        .unwrap_or(Err(brush_parser::ParseError::ParsingAtEndOfInput))
    };
    let program = match parse(script) {
        Ok(p) => p,
        Err(e) => {
            // bash runs a here-document that is never closed to the end of the input (with a
            // warning): close the open ones and read it as bash does.
            let closed = close_here_documents(script).ok_or_else(|| parse_error(script, &e))?;
            parse(&closed).map_err(|_| parse_error(script, &e))?
        }
    };
    let mut w = Walker {
        b,
        src: script,
        opts: &opts,
        functions: HashMap::new(),
        walked: Vec::new(),
        calls: 0,
    };
    for list in &program.complete_commands {
        w.list(list, None)?;
    }
    // A function never called on the line is still analysed once (and the functions its body
    // defines, until none is left).
    while let Some(body) = w
        .functions
        .values()
        .copied()
        .find(|b| !w.walked.iter().any(|x| std::ptr::eq(*x, *b)))
    {
        w.walked.push(body);
        w.compound(&body.0, None)?;
    }
    Ok(())
}

struct Walker<'a, 'b, 'l> {
    b: &'b mut Builder<'l>,
    src: &'a str,
    opts: &'a brush_parser::ParserOptions,
    functions: HashMap<String, &'a ast::FunctionBody>,
    /// Function bodies analysed at least once.
    walked: Vec<&'a ast::FunctionBody>,
    calls: usize,
}

impl<'a> Walker<'a, '_, '_> {
    fn list(&mut self, list: &'a ast::CompoundList, stdin: Option<&Flow>) -> Result<Flow, Error> {
        let mut out = Flow::Unknown;
        for item in &list.0 {
            for (_, pipeline) in &item.0 {
                out = self.pipeline(pipeline, stdin)?;
            }
        }
        Ok(out)
    }

    fn pipeline(&mut self, p: &'a ast::Pipeline, stdin: Option<&Flow>) -> Result<Flow, Error> {
        let mut prev: Option<Flow> = stdin.cloned();
        for (i, c) in p.seq.iter().enumerate() {
            let input = if i == 0 { stdin.cloned() } else { prev.take() };
            prev = Some(self.command(c, input.as_ref())?);
        }
        Ok(prev.unwrap_or(Flow::Unknown))
    }

    fn command(&mut self, c: &'a ast::Command, stdin: Option<&Flow>) -> Result<Flow, Error> {
        match c {
            ast::Command::Simple(s) => self.simple(s, stdin),
            ast::Command::Compound(cc, redirs) => {
                let mut input = stdin.cloned();
                if let Some(r) = redirs {
                    let mut simple = Simple::default();
                    for io in &r.0 {
                        self.redirect(io, &mut simple)?;
                    }
                    for r in &simple.redirs {
                        if let Redir::Input(f) = r {
                            input = Some(f.clone());
                        }
                    }
                    // The redirections themselves (files read and written).
                    simple.redirs.retain(|r| !matches!(r, Redir::Input(_)));
                    if !simple.redirs.is_empty() {
                        self.b.simple(simple, None)?;
                    }
                }
                self.compound(cc, input.as_ref())
            }
            ast::Command::Function(f) => {
                self.functions.insert(f.fname.value.clone(), &f.body);
                Ok(Flow::Unknown)
            }
            ast::Command::ExtendedTest(t, _) => {
                self.test(&t.expr)?;
                Ok(Flow::Unknown)
            }
        }
    }

    fn test(&mut self, e: &'a ast::ExtendedTestExpr) -> Result<(), Error> {
        use ast::ExtendedTestExpr as E;
        match e {
            E::And(a, b) | E::Or(a, b) => {
                self.test(a)?;
                self.test(b)
            }
            E::Not(a) | E::Parenthesized(a) => self.test(a),
            E::UnaryTest(_, w) => self.word(&w.value).map(|_| ()),
            E::BinaryTest(_, a, b) => {
                self.word(&a.value)?;
                self.word(&b.value).map(|_| ())
            }
        }
    }

    fn compound(&mut self, c: &'a ast::CompoundCommand, stdin: Option<&Flow>) -> Result<Flow, Error> {
        use ast::CompoundCommand as C;
        match c {
            C::Arithmetic(a) => {
                // brush reads `( ( cmd ) )` as `(( cmd ))`; bash runs two subshells.
                let text = self.src.get(a.loc.start.index..a.loc.end.index).unwrap_or("");
                if !text.starts_with("((") && text.starts_with('(') && text.ends_with(')') && text.len() >= 2 {
                    self.b.nested(&text[1..text.len() - 1], a.loc.start.index + 1)?;
                    return Ok(Flow::Unknown);
                }
                self.arith(&a.expr.value)?;
                Ok(Flow::Unknown)
            }
            C::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater].into_iter().flatten() {
                    self.arith(&e.value)?;
                }
                self.list(&f.body.list, stdin)
            }
            C::BraceGroup(g) => self.list(&g.list, stdin),
            C::Subshell(s) => {
                let saved = self.b.cwd.clone();
                let out = self.list(&s.list, stdin);
                self.b.cwd = saved;
                out
            }
            C::ForClause(f) => {
                for v in f.values.iter().flatten() {
                    self.word(&v.value)?;
                }
                self.b.out.uncertain = true; // the loop variable
                self.list(&f.body.list, stdin)
            }
            C::CaseClause(c) => {
                self.word(&c.value.value)?;
                let mut out = Flow::Unknown;
                for item in &c.cases {
                    for p in &item.patterns {
                        self.word(&p.value)?;
                    }
                    if let Some(l) = &item.cmd {
                        out = self.list(l, stdin)?;
                    }
                }
                Ok(out)
            }
            C::IfClause(i) => {
                self.list(&i.condition, stdin)?;
                let mut out = self.list(&i.then, stdin)?;
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, stdin)?;
                    }
                    out = self.list(&e.body, stdin)?;
                }
                Ok(out)
            }
            C::WhileClause(w) | C::UntilClause(w) => {
                self.list(&w.0, stdin)?;
                self.list(&w.1.list, stdin)
            }
            C::Coprocess(c) => self.command(&c.body, stdin),
        }
    }

    /// `$(( … ))` and `(( … ))`: may hold command substitutions and variables.
    fn arith(&mut self, text: &str) -> Result<(), Error> {
        self.word(text).map(|_| ())
    }

    fn simple(&mut self, s: &'a ast::SimpleCommand, stdin: Option<&Flow>) -> Result<Flow, Error> {
        let mut simple = Simple::default();
        for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, &mut simple)?;
        }
        if let Some(name) = &s.word_or_name {
            for w in self.word(&name.value)? {
                simple.push(w);
            }
        }
        for item in s.suffix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, &mut simple)?;
        }
        // A call of a function defined on this line: its body runs here.
        if let Some(name) = simple.argv.first().cloned()
            && let Some(body) = self.functions.get(name.as_str()).copied()
        {
            self.walked.push(body);
            self.calls += 1;
            if self.calls > 16 * self.b.limits.max_depth {
                return Err(Error::new(ErrorKind::TooLarge, 0));
            }
            self.b.out.commands.push(super::Command {
                argv: simple.argv.clone(),
                depth: self.b.depth,
                cwd: self.b.cwd.clone(),
                ..super::Command::default()
            });
            // Recursion: a function calling itself is analysed once.
            let body_ptr: *const ast::FunctionBody = body;
            self.functions.retain(|_, b| !std::ptr::eq(*b, body_ptr));
            let out = self.compound(&body.0, stdin);
            self.functions.insert(name, body);
            return out;
        }
        self.b.simple(simple, stdin.cloned())
    }

    fn item(&mut self, item: &'a ast::CommandPrefixOrSuffixItem, simple: &mut Simple) -> Result<(), Error> {
        match item {
            ast::CommandPrefixOrSuffixItem::Word(w) => {
                for w in self.word(&w.value)? {
                    simple.push(w);
                }
            }
            ast::CommandPrefixOrSuffixItem::IoRedirect(io) => self.redirect(io, simple)?,
            ast::CommandPrefixOrSuffixItem::AssignmentWord(a, _) => {
                let (mut name, value) = self.assignment(a)?;
                if a.append {
                    name.push('+');
                }
                if simple.argv.is_empty() {
                    simple.assign(name, value);
                } else {
                    // `declare X=…`, `export X=…`: an argument.
                    simple.push(Word {
                        text: format!("{name}={}", value.text),
                        ..value
                    });
                }
            }
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                let out = self.process_substitution(sub)?;
                simple.push(Word {
                    text: "/dev/fd/63".to_string(),
                    unresolved: true,
                    variants: Vec::new(),
                    output: Some(out),
                });
            }
        }
        Ok(())
    }

    fn assignment(&mut self, a: &'a ast::Assignment) -> Result<(String, Word), Error> {
        let name = match &a.name {
            ast::AssignmentName::VariableName(n) => n.clone(),
            ast::AssignmentName::ArrayElementName(n, i) => {
                self.word(i)?;
                n.clone()
            }
        };
        let value = match &a.value {
            ast::AssignmentValue::Scalar(w) => {
                let mut ws = self.word(&w.value)?;
                if ws.len() == 1 { ws.remove(0) } else { join_words(ws) }
            }
            ast::AssignmentValue::Array(items) => {
                let mut all = Vec::new();
                for (k, v) in items {
                    if let Some(k) = k {
                        self.word(&k.value)?;
                    }
                    all.extend(self.word(&v.value)?);
                }
                join_words(all)
            }
        };
        Ok((name, value))
    }

    fn process_substitution(&mut self, sub: &'a ast::SubshellCommand) -> Result<Flow, Error> {
        let saved = self.b.cwd.clone();
        let out = self.list(&sub.list, None);
        self.b.cwd = saved;
        out
    }

    fn redirect(&mut self, io: &'a ast::IoRedirect, simple: &mut Simple) -> Result<(), Error> {
        use ast::{IoFileRedirectKind as K, IoFileRedirectTarget as T, IoRedirect as R};
        match io {
            R::File(_, kind, target) => match target {
                T::Filename(w) => {
                    let w = join_words(self.word(&w.value)?);
                    simple.redirs.push(match kind {
                        K::Read => Redir::Read(w),
                        K::Write | K::Append | K::Clobber => Redir::Write(w),
                        K::ReadAndWrite => Redir::ReadWrite(w),
                        // `>&file` is a file for both outputs; `<&word` a descriptor.
                        K::DuplicateOutput => Redir::Write(w),
                        K::DuplicateInput => Redir::Read(w),
                    });
                }
                T::Fd(_) => simple.redirs.push(Redir::Dup),
                T::Duplicate(w) => {
                    let w = join_words(self.word(&w.value)?);
                    if w.text.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !w.unresolved {
                        simple.redirs.push(Redir::Dup);
                    } else if matches!(kind, K::DuplicateInput) {
                        simple.redirs.push(Redir::Read(w));
                    } else {
                        simple.redirs.push(Redir::Write(w));
                    }
                }
                T::ProcessSubstitution(_, sub) => {
                    let out = self.process_substitution(sub)?;
                    if matches!(kind, K::Read) {
                        simple.redirs.push(Redir::Input(out));
                    }
                }
            },
            R::HereDocument(_, doc) => {
                let text = if doc.requires_expansion {
                    let pieces =
                        word::parse_heredoc(&doc.doc.value, self.opts).map_err(|_| Error::new(ErrorKind::Syntax, 0))?;
                    let w = self.pieces(&doc.doc.value, &pieces, false)?;
                    if w.unresolved {
                        Flow::Unknown
                    } else {
                        Flow::Known(w.text)
                    }
                } else {
                    Flow::Known(doc.doc.value.clone())
                };
                simple.redirs.push(Redir::Input(text));
            }
            R::HereString(_, w) => {
                let w = join_words(self.word(&w.value)?);
                simple.redirs.push(Redir::Input(if w.unresolved {
                    Flow::Unknown
                } else {
                    Flow::Known(w.text + "\n")
                }));
            }
            R::OutputAndError(w, _) => {
                let w = join_words(self.word(&w.value)?);
                simple.redirs.push(Redir::Write(w));
            }
        }
        Ok(())
    }

    /// A word's expansions: brace expansion first, then each resulting word.
    fn word(&mut self, text: &str) -> Result<Vec<Word>, Error> {
        // brush-parser's brace parser takes time exponential in unmatched `{` (16 take a
        // second): only a word that can hold an expansion is given to it, and one with many
        // braces is left unresolved.
        let braces = text.bytes().filter(|&b| b == b'{').count();
        if braces > MAX_BRACES && may_expand_braces(text) {
            let mut w = self.one_word(text)?;
            w.unresolved = true;
            return Ok(vec![w]);
        }
        if braces > 0
            && may_expand_braces(text)
            && let Ok(Some(parts)) = word::parse_brace_expansions(text, self.opts)
        {
            let expanded = expand_braces(&parts);
            if expanded.len() > 1 && expanded.len() <= MAX_BRACE_WORDS {
                let mut out = Vec::with_capacity(expanded.len());
                for e in expanded {
                    out.push(self.one_word(&e)?);
                }
                return Ok(out);
            }
            if expanded.len() > MAX_BRACE_WORDS {
                let mut w = self.one_word(text)?;
                w.unresolved = true;
                return Ok(vec![w]);
            }
        }
        Ok(vec![self.one_word(text)?])
    }

    fn one_word(&mut self, text: &str) -> Result<Word, Error> {
        let pieces = word::parse(text, self.opts).map_err(|_| Error::new(ErrorKind::Syntax, 0))?;
        self.pieces(text, &pieces, false)
    }

    fn pieces(&mut self, src: &str, pieces: &[WordPieceWithSource], quoted: bool) -> Result<Word, Error> {
        let mut w = Word::default();
        // Alternatives: `${X:-default}` may be `default`.
        let mut alts: Vec<String> = vec![String::new()];
        let push = |w: &mut Word, alts: &mut Vec<String>, s: &str| {
            w.text.push_str(s);
            for a in alts.iter_mut() {
                a.push_str(s);
            }
        };
        for p in pieces {
            let source = src.get(p.start_index..p.end_index).unwrap_or("");
            match &p.piece {
                WordPiece::Text(t) => {
                    if !quoted && is_glob(t) {
                        w.unresolved = true;
                    }
                    push(&mut w, &mut alts, t);
                }
                WordPiece::SingleQuotedText(t) => push(&mut w, &mut alts, t),
                WordPiece::AnsiCQuotedText(t) => push(&mut w, &mut alts, &ansi_c(t)),
                WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    let iw = self.pieces(src, inner, true)?;
                    w.unresolved |= iw.unresolved;
                    let base_alts = std::mem::take(&mut alts);
                    for a in &base_alts {
                        alts.push(format!("{a}{}", iw.text));
                        for v in &iw.variants {
                            alts.push(format!("{a}{v}"));
                        }
                    }
                    w.text.push_str(&iw.text);
                }
                WordPiece::TildeExpansion(t) => {
                    let s = match t {
                        word::TildeExpr::Home => "~".to_string(),
                        word::TildeExpr::UserHome(u) => format!("~{u}"),
                        word::TildeExpr::WorkingDir => ".".to_string(),
                        _ => {
                            w.unresolved = true;
                            "$OLDPWD".to_string()
                        }
                    };
                    push(&mut w, &mut alts, &s);
                }
                WordPiece::EscapeSequence(e) => {
                    let c = e.strip_prefix('\\').unwrap_or(e);
                    let c = if quoted && !matches!(c, "$" | "`" | "\"" | "\\" | "\n") {
                        e.as_str()
                    } else {
                        c
                    };
                    let c = if c == "\n" { "" } else { c };
                    push(&mut w, &mut alts, c);
                }
                WordPiece::CommandSubstitution(body) | WordPiece::BackquotedCommandSubstitution(body) => {
                    self.b.nested(body, 0)?;
                    w.unresolved = true;
                    push(&mut w, &mut alts, source);
                }
                WordPiece::ArithmeticExpression(e) => {
                    // `$( (cmd) )` is a command substitution holding a subshell.
                    if source.starts_with("$(")
                        && !source.starts_with("$((")
                        && source.ends_with(')')
                        && source.len() > 3
                    {
                        self.b.nested(&source[2..source.len() - 1], 0)?;
                    }
                    self.arith_text(&e.value)?;
                    w.unresolved = true;
                    push(&mut w, &mut alts, source);
                }
                WordPiece::ParameterExpansion(pe) => {
                    w.unresolved = true;
                    let (name, values) = self.parameter(pe)?;
                    if let Some(n) = name {
                        self.b.out.variables.push(n);
                    }
                    let base_alts = std::mem::take(&mut alts);
                    for a in &base_alts {
                        alts.push(format!("{a}{source}"));
                        for v in &values {
                            alts.push(format!("{a}{v}"));
                        }
                    }
                    alts.truncate(16);
                    w.text.push_str(source);
                }
            }
        }
        w.variants = alts.into_iter().filter(|a| *a != w.text).collect();
        Ok(w)
    }

    /// Arithmetic text: command substitutions inside it run.
    fn arith_text(&mut self, text: &str) -> Result<(), Error> {
        if text.contains('$') || text.contains('`') {
            self.one_word(text)?;
        }
        Ok(())
    }

    /// The variable a `${…}` names, and the values it may take besides the variable's own
    /// (`${X:-v}`, `${X:=v}`, `${X:+v}`); words inside the operator are analysed.
    fn parameter(&mut self, pe: &ParameterExpr) -> Result<(Option<String>, Vec<String>), Error> {
        use ParameterExpr as P;
        let param = |p: &word::Parameter| match p {
            word::Parameter::Named(n)
            | word::Parameter::NamedWithIndex { name: n, .. }
            | word::Parameter::NamedWithAllIndices { name: n, .. } => Some(n.clone()),
            _ => None,
        };
        let mut values = Vec::new();
        let (p, inner): (&word::Parameter, Vec<&str>) = match pe {
            P::Parameter { parameter, .. } | P::ParameterLength { parameter, .. } => (parameter, vec![]),
            P::UseDefaultValues {
                parameter,
                default_value: v,
                ..
            }
            | P::AssignDefaultValues {
                parameter,
                default_value: v,
                ..
            }
            | P::UseAlternativeValue {
                parameter,
                alternative_value: v,
                ..
            } => {
                if let Some(v) = v {
                    let w = self.one_word(v)?;
                    values.push(w.text.clone());
                    values.extend(w.variants);
                }
                (parameter, vec![])
            }
            P::IndicateErrorIfNullOrUnset {
                parameter,
                error_message: v,
                ..
            } => (parameter, v.iter().map(String::as_str).collect()),
            P::RemoveSmallestSuffixPattern { parameter, pattern, .. }
            | P::RemoveLargestSuffixPattern { parameter, pattern, .. }
            | P::RemoveSmallestPrefixPattern { parameter, pattern, .. }
            | P::RemoveLargestPrefixPattern { parameter, pattern, .. } => {
                (parameter, pattern.iter().map(String::as_str).collect())
            }
            P::Substring {
                parameter,
                offset,
                length,
                ..
            } => {
                let mut v = vec![offset.value.as_str()];
                v.extend(length.iter().map(|l| l.value.as_str()));
                (parameter, v)
            }
            P::ReplaceSubstring {
                parameter,
                pattern,
                replacement,
                ..
            } => {
                let mut v = vec![pattern.as_str()];
                v.extend(replacement.iter().map(String::as_str));
                (parameter, v)
            }
            P::Transform { parameter, .. }
            | P::UppercaseFirstChar { parameter, .. }
            | P::UppercasePattern { parameter, .. }
            | P::LowercaseFirstChar { parameter, .. }
            | P::LowercasePattern { parameter, .. } => (parameter, vec![]),
            P::VariableNames { .. } | P::MemberKeys { .. } => return Ok((None, values)),
        };
        for i in inner {
            // Words inside the operator may hold substitutions: those run.
            self.one_word(i)?;
        }
        if let word::Parameter::NamedWithIndex { index, .. } = p {
            self.arith_text(index)?;
        }
        Ok((param(p), values))
    }
}

/// The source of a word's pieces joined back into one word (a redirection target).
fn join_words(ws: Vec<Word>) -> Word {
    let mut it = ws.into_iter();
    let mut first = it.next().unwrap_or_default();
    for w in it {
        first.text.push(' ');
        first.text.push_str(&w.text);
        first.unresolved |= w.unresolved;
    }
    first
}

/// The script with a closing line appended for each here-document delimiter it names, if it
/// names any.
fn close_here_documents(script: &str) -> Option<String> {
    let mut delims = Vec::new();
    let mut rest = script;
    while let Some(i) = rest.find("<<") {
        rest = &rest[i + 2..];
        if rest.starts_with('<') {
            rest = &rest[1..];
            continue;
        }
        let word = rest.trim_start_matches('-').trim_start();
        let word: String = word
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '|' | '&' | '<' | '>' | '(' | ')'))
            .filter(|c| !matches!(c, '\'' | '"' | '\\'))
            .collect();
        if !word.is_empty() {
            delims.push(word);
        }
    }
    if delims.is_empty() {
        return None;
    }
    let mut out = script.to_string();
    for d in delims.iter().rev() {
        out.push('\n');
        out.push_str(d);
    }
    out.push('\n');
    Some(out)
}

/// Whether unquoted text holds a glob: `*`, `?`, or a `[` closed later (`[` alone is a program).
fn is_glob(t: &str) -> bool {
    t.bytes().any(|b| b == b'*' || b == b'?') || t.find('[').is_some_and(|i| t[i + 1..].contains(']'))
}

/// `$'…'` escapes.
fn ansi_c(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut it = t.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('e' | 'E') => out.push('\x1b'),
            Some('a') => out.push('\x07'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('x') => {
                let h: String = std::iter::from_fn(|| it.next_if(char::is_ascii_hexdigit))
                    .take(2)
                    .collect();
                out.push(u8::from_str_radix(&h, 16).map_or('?', char::from));
            }
            Some('u' | 'U') => {
                let h: String = std::iter::from_fn(|| it.next_if(char::is_ascii_hexdigit))
                    .take(8)
                    .collect();
                out.push(u32::from_str_radix(&h, 16).ok().and_then(char::from_u32).unwrap_or('?'));
            }
            Some(d @ '0'..='7') => {
                let mut o = String::from(d);
                o.extend(std::iter::from_fn(|| it.next_if(|c| ('0'..='7').contains(c))).take(2));
                out.push(u8::from_str_radix(&o, 8).map_or('?', char::from));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// All words a brace expansion produces, in order.
fn expand_braces(parts: &[word::BraceExpressionOrText]) -> Vec<String> {
    let mut acc = vec![String::new()];
    for p in parts {
        let options: Vec<String> = match p {
            word::BraceExpressionOrText::Text(t) => vec![t.clone()],
            word::BraceExpressionOrText::Expr(members) => {
                let mut v = Vec::new();
                for m in members {
                    match m {
                        word::BraceExpressionMember::Child(c) => v.extend(expand_braces(c)),
                        word::BraceExpressionMember::NumberSequence { start, end, increment } => {
                            let step = increment.unsigned_abs().max(1) as usize;
                            let (lo, hi) = ((*start).min(*end), (*start).max(*end));
                            for n in (lo..=hi).step_by(step).take(MAX_BRACE_WORDS + 1) {
                                v.push(n.to_string());
                            }
                        }
                        word::BraceExpressionMember::CharSequence { start, end, increment } => {
                            let step = increment.unsigned_abs().max(1) as usize;
                            let (lo, hi) = ((*start).min(*end), (*start).max(*end));
                            for c in (lo..=hi).step_by(step).take(MAX_BRACE_WORDS + 1) {
                                v.push(c.to_string());
                            }
                        }
                    }
                }
                v
            }
        };
        let mut next = Vec::with_capacity(acc.len() * options.len());
        for a in &acc {
            for o in &options {
                next.push(format!("{a}{o}"));
                if next.len() > MAX_BRACE_WORDS {
                    return next;
                }
            }
        }
        acc = next;
    }
    acc
}
