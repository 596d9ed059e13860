//! The tokenizer-based analyser: MySQL's, and PostgreSQL's fast path ([`fast`]) for plain
//! single statements (anything else goes to PostgreSQL's grammar, [`super::pg`]).

use std::borrow::Cow;

use smallvec::SmallVec;

use super::{CopyTarget, Dialect, Error, Kind, Lexing, Statement};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// A word, lowercased (borrowed from the lowercased input).
    Word(&'a str),
    /// A quoted identifier's text (borrowed from the input unless it held escapes).
    Quoted(Cow<'a, str>),
    /// A string literal's text (borrowed from the input unless it held escapes).
    Str(Cow<'a, str>),
    Num,
    Punct(u8),
    Semi,
}

/// Bytes that continue a word: ASCII letters, digits, `_`, `$` and any non-ASCII byte.
static IS_WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        c += 1;
    }
    t
};

/// Tokens with their offsets; a typical statement's fit inline (no allocation).
type Toks<'a> = SmallVec<[(Tok<'a>, usize); 64]>;

/// Appends the tokens of `s` to `out` (filled in place: the inline array is not moved);
/// `lower` is `s` in ASCII lowercase (one copy for all the words).
fn tokenize<'a>(s: &'a str, lower: &'a str, d: Dialect, lx: &Lexing, out: &mut Toks<'a>) -> Result<(), Error> {
    debug_assert_eq!(s.len(), lower.len());
    let b = s.as_bytes();
    out.reserve(s.len() / 4 + 4);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            // MySQL: `--` starts a comment only before whitespace, a control character or the end
            // (`1--1` is one minus minus one).
            b'-' if b.get(i + 1) == Some(&b'-')
                && (d == Dialect::Postgres || b.get(i + 2).is_none_or(|&c| c <= b' ')) =>
            {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p)
            }
            b'#' if d == Dialect::MySql => i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let marker = match (b.get(i + 2), b.get(i + 3)) {
                    (Some(b'!'), _) => 3,
                    (Some(b'M'), Some(b'!')) => 4,
                    _ => 0,
                };
                if d == Dialect::MySql && marker > 0 {
                    // Executable comment (`/*!50000 …*/`, MariaDB's `/*M!100100 …*/`): its
                    // content is SQL. Skip the marker and the version.
                    i += marker;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    continue;
                }
                let mut depth = 0;
                loop {
                    if i + 1 >= b.len() {
                        return Err(Error::unterminated(start));
                    }
                    if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 2;
                        if d == Dialect::MySql && depth > 1 {
                            depth = 1; // MySQL comments do not nest
                        }
                    } else if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'*' if d == Dialect::MySql && b.get(i + 1) == Some(&b'/') => i += 2, // end of /*! … */
            b'\'' => {
                let e_prefix = d == Dialect::Postgres
                    && out
                        .last()
                        .is_some_and(|(t, p): &(Tok<'_>, usize)| *p + 1 == i && matches!(t, Tok::Word(w) if *w == "e"));
                if e_prefix {
                    out.pop(); // the E of E'…' was read as a word
                }
                let backslash = match d {
                    Dialect::MySql => lx.backslash_escapes,
                    Dialect::Postgres => e_prefix || !lx.standard_conforming_strings,
                };
                let (text, end) = string(s, i, b'\'', backslash)?;
                out.push((Tok::Str(text), start));
                i = end;
            }
            b'"' if d == Dialect::MySql && !lx.ansi_quotes => {
                let (text, end) = string(s, i, b'"', lx.backslash_escapes)?;
                out.push((Tok::Str(text), start));
                i = end;
            }
            b'"' | b'`' => {
                let (text, end) = string(s, i, c, false)?;
                out.push((Tok::Quoted(text), start));
                i = end;
            }
            b'$' if d == Dialect::Postgres => {
                // $tag$ … $tag$ (tag may be empty); $1 is a parameter.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        let tag = &b[i..=e];
                        let body_start = e + 1;
                        let close = b[body_start..]
                            .windows(tag.len())
                            .position(|w| w == tag)
                            .ok_or(Error::unterminated(start))?;
                        out.push((Tok::Str(Cow::Borrowed(&s[body_start..body_start + close])), start));
                        i = body_start + close + tag.len();
                    }
                    _ => {
                        i += 1;
                        while b.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        out.push((Tok::Num, start));
                    }
                }
            }
            b';' => {
                out.push((Tok::Semi, start));
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && IS_WORD_BYTE[b[i] as usize] {
                    i += 1;
                }
                out.push((Tok::Word(&lower[start..i]), start));
            }
            _ if c.is_ascii_digit() => {
                while b.get(i).is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'.') {
                    i += 1;
                }
                out.push((Tok::Num, start));
            }
            _ => {
                out.push((Tok::Punct(c), start));
                i += 1;
            }
        }
    }
    Ok(())
}

/// A quoted run starting at `i` (the quote); doubled quotes escape, and with `backslash` so do
/// backslashes. Returns the unescaped text (borrowed when nothing was escaped) and the index
/// after the closing quote.
fn string(s: &str, i: usize, q: u8, backslash: bool) -> Result<(Cow<'_, str>, usize), Error> {
    let b = s.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if backslash => {
                let out = out.get_or_insert_with(|| b[i + 1..j].to_vec());
                if let Some(&n) = b.get(j + 1) {
                    out.push(match n {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'0' => 0,
                        x => x,
                    });
                }
                j += 2;
            }
            x if x == q => {
                if b.get(j + 1) == Some(&q) {
                    out.get_or_insert_with(|| b[i + 1..j].to_vec()).push(q);
                    j += 2;
                } else {
                    let text = match out {
                        None => Cow::Borrowed(&s[i + 1..j]),
                        Some(v) => Cow::Owned(
                            String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                        ),
                    };
                    return Ok((text, j + 1));
                }
            }
            x => {
                if let Some(out) = out.as_mut() {
                    out.push(x);
                }
                j += 1;
            }
        }
    }
    Err(Error::unterminated(i))
}

const MAX_NESTING: usize = 8;

/// Splits `sql` into statements and analyses each.
pub(super) fn analyze(sql: &str, dialect: Dialect, lx: &Lexing) -> Result<Vec<Statement>, Error> {
    analyze_at(sql, dialect, lx, 0)
}

fn analyze_at(sql: &str, dialect: Dialect, lx: &Lexing, depth: usize) -> Result<Vec<Statement>, Error> {
    let lower = sql.to_ascii_lowercase();
    let mut toks = Toks::new();
    tokenize(sql, &lower, dialect, lx, &mut toks)?;
    let mut out = Vec::new();
    for stmt in toks.split(|(t, _)| *t == Tok::Semi) {
        if stmt.is_empty() {
            continue;
        }
        let start = stmt[0].1;
        let end = toks
            .iter()
            .find(|(t, p)| *t == Tok::Semi && *p > start)
            .map_or(sql.len(), |(_, p)| *p);
        out.push(statement(stmt, (start, end), dialect, lx, depth));
    }
    Ok(out)
}

fn word<'t>(t: Option<&'t (Tok<'_>, usize)>) -> Option<&'t str> {
    match t {
        Some((Tok::Word(w), _)) => Some(w),
        _ => None,
    }
}

/// A possibly qualified name starting at `i`: the name and the index after it.
fn name(toks: &[(Tok<'_>, usize)], mut i: usize) -> Option<(String, usize)> {
    let (mut name, mut parts) = (String::new(), 0);
    loop {
        let part = match toks.get(i) {
            Some((Tok::Word(w), _)) => *w,
            Some((Tok::Quoted(q), _)) => q.as_ref(),
            _ => break,
        };
        if parts > 0 {
            name.push('.');
        }
        name.push_str(part);
        parts += 1;
        i += 1;
        if matches!(toks.get(i), Some((Tok::Punct(b'.'), _))) {
            i += 1;
        } else {
            break;
        }
    }
    (parts > 0).then_some((name, i))
}

/// Words that begin a statement.
const VERBS: &[&str] = &[
    "select", "insert", "update", "delete", "merge", "copy", "create", "alter", "drop", "truncate", "grant", "revoke",
    "set", "show", "call", "do", "execute", "explain", "with", "values", "table", "replace", "load", "prepare",
    "rename",
];

const NOT_RELATIONS: &[&str] = &[
    "select",
    "lateral",
    "only",
    "unnest",
    "generate_series",
    "values",
    "if",
    "exists",
    "not",
    "table",
];

fn statement(
    toks: &[(Tok<'_>, usize)],
    span: (usize, usize),
    dialect: Dialect,
    lx: &Lexing,
    depth: usize,
) -> Statement {
    let mut s = Statement::new(Kind::Other, span);
    let w = |i: usize| word(toks.get(i));
    let verb_at = main_verb(toks, &mut s);
    let verb = w(verb_at).unwrap_or("");
    let next = w(verb_at + 1).unwrap_or("");
    s.kind = kind_of(toks, verb_at);
    if s.kind == Kind::Other {
        s.certain = false;
    }
    if s.kind == Kind::Listen {
        // Only the plain forms are understood: `LISTEN ch`, `UNLISTEN ch | *`,
        // `NOTIFY ch [, 'payload']`; anything more is not guessed at.
        let plain = match toks.get(1..).unwrap_or_default() {
            [(Tok::Word(_) | Tok::Quoted(_), _)] => true,
            [(Tok::Punct(b'*'), _)] => verb == "unlisten",
            [
                (Tok::Word(_) | Tok::Quoted(_), _),
                (Tok::Punct(b','), _),
                (Tok::Str(_), _),
            ] => verb == "notify",
            _ => false,
        };
        s.certain = plain;
    }
    if s.kind == Kind::Set {
        set_parameters(toks, verb_at, &mut s);
        // MariaDB `SET STATEMENT var = v [, …] FOR statement`: the statement runs.
        if next == "statement"
            && let Some(k) = toks.iter().position(|(t, _)| matches!(t, Tok::Word(x) if *x == "for"))
        {
            s.nested.push(statement(&toks[k + 1..], span, dialect, lx, depth + 1));
        }
    }
    names(toks, verb_at, dialect, &mut s);
    if s.kind == Kind::Copy {
        copy_clause(toks, &mut s);
    }
    bodies(toks, verb_at, span, dialect, lx, depth, &mut s);
    if matches!(s.kind, Kind::Do | Kind::Execute) && !s.nested.iter().all(|n| n.certain) {
        s.certain = false;
    }
    // PL/pgSQL bodies may EXECUTE strings built at run time.
    if toks.iter().any(|(t, _)| matches!(t, Tok::Word(x) if *x == "execute")) && s.kind != Kind::Execute {
        s.certain = false;
    }
    s.functions.sort();
    s.functions.dedup();
    s
}

/// Where the statement's verb is: past a leading `WITH …` clause (noting a writable CTE in
/// `s`) and PL/pgSQL block keywords before a statement.
fn main_verb(toks: &[(Tok<'_>, usize)], s: &mut Statement) -> usize {
    let w = |i: usize| word(toks.get(i));
    // Skip a leading WITH … clause to find the main verb, noting writable CTEs.
    let mut verb_at = 0;
    if w(0) == Some("with") {
        let mut level = 0i32;
        for (i, (t, _)) in toks.iter().enumerate() {
            match t {
                Tok::Punct(b'(') => level += 1,
                Tok::Punct(b')') => level -= 1,
                Tok::Word(x) if level > 0 && matches!(&**x, "insert" | "update" | "delete" | "merge") => {
                    s.writable_cte = true
                }
                Tok::Word(x)
                    if level == 0
                        && i > 0
                        && matches!(
                            &**x,
                            "select" | "insert" | "update" | "delete" | "merge" | "values" | "table"
                        ) =>
                {
                    verb_at = i;
                    break;
                }
                _ => {}
            }
        }
    }
    // PL/pgSQL block keywords before a statement (`BEGIN DROP TABLE x`, `ELSE DELETE …`) are not
    // the statement; `BEGIN` alone (or BEGIN WORK / TRANSACTION / ISOLATION …) is a transaction.
    while matches!(
        w(verb_at),
        Some("begin" | "declare" | "loop" | "then" | "else" | "perform")
    ) && w(verb_at + 1).is_some_and(|v| VERBS.contains(&v))
    {
        verb_at += 1;
    }
    verb_at
}

/// The statement's kind, from its verb (and what follows where the verb alone does not say).
fn kind_of(toks: &[(Tok<'_>, usize)], verb_at: usize) -> Kind {
    let w = |i: usize| word(toks.get(i));
    let verb = w(verb_at).unwrap_or("");
    let next = w(verb_at + 1).unwrap_or("");
    match verb {
        "select" | "values" | "table" => Kind::Select,
        "insert" | "replace" => Kind::Insert,
        "update" => Kind::Update,
        "delete" => Kind::Delete,
        "merge" => Kind::Merge,
        "copy" => Kind::Copy,
        "load" => Kind::Copy,
        "create" | "alter" | "drop" if matches!(next, "role" | "user" | "group") => Kind::Role,
        "create" => Kind::Create,
        // `ALTER … DROP …` and `ALTER … TRUNCATE PARTITION` remove data like a DROP does.
        "alter"
            if toks[verb_at + 1..]
                .iter()
                .any(|(t, _)| matches!(t, Tok::Word(x) if matches!(&**x, "drop" | "truncate"))) =>
        {
            Kind::Drop
        }
        "alter" => Kind::Alter,
        "drop" => Kind::Drop,
        "truncate" => Kind::Truncate,
        "grant" => Kind::Grant,
        "revoke" => Kind::Revoke,
        "set"
            if matches!(next, "role" | "password" | "session")
                && !matches!(w(verb_at + 2), Some("characteristics")) =>
        {
            Kind::Role
        }
        "set" | "reset" => Kind::Set,
        "show" => Kind::Show,
        "begin" | "start" | "commit" | "rollback" | "savepoint" | "release" | "end" | "abort" => Kind::Transaction,
        "call" => Kind::Call,
        "do" => Kind::Do,
        "execute" | "prepare" | "deallocate" => Kind::Execute,
        "explain" => Kind::Explain,
        "use" => Kind::Use,
        "listen" | "unlisten" | "notify" if verb_at == 0 => Kind::Listen,
        _ => Kind::Other,
    }
}

/// Relations read and written, functions called and whether there is a `WHERE`, each by the
/// keyword before it.
fn names(toks: &[(Tok<'_>, usize)], verb_at: usize, dialect: Dialect, s: &mut Statement) {
    let w = |i: usize| word(toks.get(i));
    let mut i = 0;
    while i < toks.len() {
        let (t, _) = &toks[i];
        if let Tok::Word(x) = t {
            // A function: a name followed by `(` that is not a keyword introducing a list.
            let after_into = i > 0 && matches!(&toks[i - 1].0, Tok::Word(p) if *p == "into" || *p == "table");
            if matches!(toks.get(i + 1), Some((Tok::Punct(b'('), _)))
                && !after_into
                && !matches!(
                    &**x,
                    "in" | "values"
                        | "exists"
                        | "any"
                        | "all"
                        | "as"
                        | "using"
                        | "on"
                        | "over"
                        | "filter"
                        | "within"
                        | "into"
                        | "table"
                        | "from"
                        | "join"
                        | "where"
                        | "and"
                        | "or"
                        | "not"
                        | "select"
                        | "with"
                        | "cast"
                        | "case"
                        | "when"
                        | "then"
                        | "else"
                        | "row"
                        | "array"
                        | "partition"
                        | "by"
                        | "returning"
                        | "set"
                        | "conflict"
                        | "lateral"
                        | "recursive"
                )
            {
                s.functions.push(x.to_string());
            }
            let target = |i: usize| {
                let mut j = i + 1;
                while matches!(
                    w(j),
                    Some(
                        "only"
                            | "if"
                            | "exists"
                            | "not"
                            | "table"
                            | "lateral"
                            | "temporary"
                            | "temp"
                            | "unlogged"
                            | "materialized"
                            | "view"
                            | "index"
                            | "concurrently"
                            | "schema"
                            | "database"
                            | "function"
                            | "procedure"
                            | "sequence"
                            | "extension"
                            | "type"
                            | "trigger"
                            | "policy"
                            | "ignore"
                            | "low_priority"
                            | "quick"
                    )
                ) {
                    j += 1;
                }
                name(toks, j).filter(|(n, _)| !NOT_RELATIONS.contains(&n.as_str()))
            };
            match &**x {
                "from" | "join" if !(s.kind == Kind::Copy && *x == "from") => {
                    if let Some((n, _)) = target(i) {
                        if s.kind == Kind::Delete && *x == "from" && s.writes.is_empty() {
                            s.writes.push(n);
                        } else {
                            s.reads.push(n);
                        }
                    }
                }
                // MySQL `SELECT … INTO OUTFILE|DUMPFILE 'path'` writes a server-side file.
                "into"
                    if dialect == Dialect::MySql
                        && matches!(w(i + 1), Some("outfile" | "dumpfile"))
                        && matches!(toks.get(i + 2), Some((Tok::Str(_), _))) =>
                {
                    if let Some((Tok::Str(f), _)) = toks.get(i + 2) {
                        s.copy_target = Some(CopyTarget::File(f.to_string()));
                    }
                }
                "into" if matches!(s.kind, Kind::Insert | Kind::Merge | Kind::Select) => {
                    if let Some((n, _)) = target(i) {
                        s.writes.push(n);
                    }
                }
                "using" if s.kind == Kind::Merge => {
                    if let Some((n, _)) = target(i) {
                        s.reads.push(n);
                    }
                }
                "update" if i == verb_at => {
                    if let Some((n, _)) = target(i) {
                        s.writes.push(n);
                    }
                }
                "truncate" | "drop" | "alter" | "create" if i == verb_at && s.kind != Kind::Role => {
                    if let Some((n, _)) = target(i) {
                        s.writes.push(n);
                    }
                }
                "copy" if i == verb_at => {
                    if let Some((n, _)) = name(toks, i + 1) {
                        s.writes.push(n);
                    }
                }
                "where" if i > verb_at => s.has_where = true,
                _ => {}
            }
        }
        i += 1;
    }
}

/// COPY's (and LOAD DATA's) direction and endpoint; the relation of `COPY … TO` is read.
fn copy_clause(toks: &[(Tok<'_>, usize)], s: &mut Statement) {
    // COPY x [(cols)] FROM|TO {STDIN|STDOUT|'file'|PROGRAM 'cmd'}; LOAD DATA [LOCAL] INFILE 'f'.
    for (j, (t, _)) in toks.iter().enumerate() {
        match t {
            Tok::Word(x) if *x == "from" || *x == "to" || *x == "infile" => {
                s.copy_from = *x != "to";
                let target = match (toks.get(j + 1), toks.get(j + 2)) {
                    (Some((Tok::Word(p), _)), Some((Tok::Str(cmd), _))) if *p == "program" => {
                        Some(CopyTarget::Program(cmd.to_string()))
                    }
                    (Some((Tok::Word(p), _)), _) if *p == "stdin" || *p == "stdout" => Some(CopyTarget::Client),
                    (Some((Tok::Str(f), _)), _) => Some(if toks.iter().any(|(t, _)| *t == Tok::Word("local")) {
                        CopyTarget::Client
                    } else {
                        CopyTarget::File(f.to_string())
                    }),
                    _ => None,
                };
                if target.is_some() {
                    s.copy_target = target;
                    break;
                }
            }
            _ => {}
        }
    }
    if s.copy_target.is_none() {
        // COPY (query) TO …: the query's relations are reads.
        s.certain = false;
    }
    if s.copy_from {
        // LOAD DATA … INTO TABLE t writes t.
    } else {
        let written: Vec<String> = std::mem::take(&mut s.writes);
        s.reads.extend(written);
    }
}

/// Bodies that are themselves SQL (`DO`, `EXECUTE 'text'`, MySQL `PREPARE … FROM 'text'`,
/// stored programs, the statement `EXPLAIN` explains), analysed as nested statements.
fn bodies(
    toks: &[(Tok<'_>, usize)],
    verb_at: usize,
    span: (usize, usize),
    dialect: Dialect,
    lx: &Lexing,
    depth: usize,
    s: &mut Statement,
) {
    let w = |i: usize| word(toks.get(i));
    let verb = w(verb_at).unwrap_or("");
    let body_of = |toks: &[(Tok<'_>, usize)]| {
        toks.iter()
            .find_map(|(t, _)| if let Tok::Str(b) = t { Some(b.to_string()) } else { None })
    };
    match s.kind {
        Kind::Do => match body_of(toks) {
            Some(body) if depth < MAX_NESTING => match analyze_at(&body, dialect, lx, depth + 1) {
                Ok(inner) => s.nested = inner,
                Err(_) => s.certain = false,
            },
            _ => s.certain = false,
        },
        Kind::Execute if verb == "execute" => match toks.get(verb_at + 1) {
            Some((Tok::Str(body), _)) if depth < MAX_NESTING => {
                match analyze_at(body, dialect, lx, depth + 1) {
                    Ok(inner) => s.nested = inner,
                    Err(_) => s.certain = false,
                }
                // `EXECUTE 'DROP TABLE ' || name`: the literal is only a prefix.
                if matches!(toks.get(verb_at + 2), Some((Tok::Punct(b'|' | b'+'), _))) {
                    s.certain = false;
                }
            }
            // EXECUTE of a prepared name or a built string: not knowable here.
            _ => s.certain = false,
        },
        // MySQL `PREPARE s FROM 'text'`: the text is the statement; `FROM @var` is not knowable.
        Kind::Execute if verb == "prepare" => {
            match toks
                .iter()
                .position(|(t, _)| matches!(t, Tok::Word(x) if *x == "from"))
                .and_then(|k| toks.get(k + 1))
            {
                Some((Tok::Str(body), _)) if depth < MAX_NESTING && toks.len() == verb_at + 4 => {
                    match analyze_at(body, dialect, lx, depth + 1) {
                        Ok(inner) => s.nested = inner,
                        Err(_) => s.certain = false,
                    }
                }
                _ => s.certain = false,
            }
        }
        // MySQL stored programs (`CREATE [DEFINER = …] PROCEDURE|FUNCTION|TRIGGER|EVENT … body`):
        // every statement verb in the body starts a statement analysed as one (the pieces after
        // a `;` inside the body are statements of this string anyway).
        Kind::Create
            if dialect == Dialect::MySql
                && toks.iter().any(|(t, _)| {
                    matches!(t, Tok::Word(x) if matches!(&**x, "procedure" | "function" | "trigger" | "event"))
                }) =>
        {
            let header_end = toks
                .iter()
                .position(|(t, _)| matches!(t, Tok::Word(x) if matches!(&**x, "procedure" | "function" | "trigger" | "event")))
                .unwrap_or(0)
                + 2;
            for k in header_end..toks.len() {
                let trigger_event = k > 0 && matches!(&toks[k - 1].0, Tok::Word(p) if matches!(&**p, "before" | "after"));
                if let Tok::Word(x) = &toks[k].0
                    && VERBS.contains(&&**x)
                    && !trigger_event
                    && depth < MAX_NESTING
                {
                    s.nested.push(statement(&toks[k..], span, dialect, lx, depth + 1));
                }
            }
        }
        Kind::Explain => {
            let inner_at = toks.iter().position(|(t, _)| matches!(t, Tok::Word(x) if matches!(&**x, "select" | "insert" | "update" | "delete" | "merge" | "with" | "values" | "table")));
            if let Some(k) = inner_at {
                s.nested.push(statement(&toks[k..], span, dialect, lx, depth + 1));
            }
        }
        _ => {}
    }
}

/// The parameters a SET statement assigns: the name after `SET` and after each top-level comma,
/// past scope words and `@@scope.`; `SET NAMES` / `SET CHARACTER SET` set the client encoding.
fn set_parameters(toks: &[(Tok<'_>, usize)], verb_at: usize, s: &mut Statement) {
    let mut level = 0i32;
    let mut at = Some(verb_at + 1);
    for (i, (t, _)) in toks.iter().enumerate().skip(verb_at + 1) {
        match t {
            Tok::Punct(b'(') => level += 1,
            Tok::Punct(b')') => level -= 1,
            Tok::Punct(b',') if level == 0 => at = Some(i + 1),
            Tok::Word(w) if at.is_some_and(|a| a <= i) => {
                match &**w {
                    "global" | "session" | "local" | "persist" | "persist_only" | "statement" => {
                        // `@@session.x`: the scope is followed by a dot.
                        continue;
                    }
                    "names" | "character" | "charset" => {
                        // The value: after `SET NAMES`, `SET CHARSET`, `SET CHARACTER SET`.
                        let v = toks[i + 1..].iter().find_map(|(t, _)| match t {
                            Tok::Word(x) if *x != "set" => Some(x.to_string()),
                            Tok::Str(x) | Tok::Quoted(x) => Some(x.to_ascii_lowercase()),
                            _ => None,
                        });
                        // Character sets where every byte below 0x80 is ASCII do not change how
                        // quotes and backslashes are read; the others (GBK, SJIS, BIG5 …) do.
                        let same_lexing = v.as_deref().is_some_and(|v| {
                            matches!(
                                v,
                                "utf8" | "utf8mb4" | "utf8mb3" | "latin1" | "ascii" | "binary" | "default"
                            )
                        });
                        s.sets
                            .push(if same_lexing { "names" } else { "client_encoding" }.into());
                    }
                    name => s.sets.push(name.to_string()),
                }
                at = None;
            }
            _ => {}
        }
    }
    s.sets.sort();
    s.sets.dedup();
}

/// Words that make the fast path hand the statement to the grammar:
/// forms the grammar reads differently from a token scan (special function-call syntax, SQL
/// value functions, type names with modifiers), clauses that bring relations or statements the
/// scan does not follow, anything that is not plain DML; and PostgreSQL's reserved,
/// column-name and type/function-name keywords (`pg_get_keywords()` of PostgreSQL 15 with
/// `catcode` R, C, T, and the JSON ones 18's grammar adds) but those the fast path reads
/// (unreserved keywords are identifiers wherever the fast path reads one; a keyword may be a
/// column in one place and syntax in another).
const FAST_DECLINES: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "any",
    "array",
    "asymmetric",
    "at",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "conflict",
    "constraint",
    "copy",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "do",
    "except",
    "execute",
    "exists",
    "extract",
    "fetch",
    "filter",
    "float",
    "for",
    "foreign",
    "freeze",
    "from_",
    "grant",
    "greatest",
    "grouping",
    "groups",
    "initially",
    "inout",
    "int",
    "integer",
    "intersect",
    "into",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "localtime",
    "localtimestamp",
    "merge",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "next",
    "none",
    "normalize",
    "nullif",
    "numeric",
    "only",
    "operator",
    "ordinality",
    "out",
    "over",
    "overlaps",
    "overlay",
    "partition",
    "placing",
    "position",
    "precision",
    "primary",
    "range",
    "real",
    "recursive",
    "references",
    "returning",
    "row",
    "rows",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "ties",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "window",
    "with",
    "within",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// Words that are keywords where the scan expects a name.
const KEYWORDS: &[&str] = &[
    "and",
    "as",
    "asc",
    "by",
    "case",
    "cross",
    "default",
    "delete",
    "desc",
    "distinct",
    "else",
    "end",
    "false",
    "from",
    "full",
    "group",
    "having",
    "ilike",
    "in",
    "inner",
    "insert",
    "interval",
    "is",
    "join",
    "left",
    "like",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "right",
    "select",
    "set",
    "then",
    "true",
    "update",
    "when",
    "where",
];

/// The characters PostgreSQL operators are made of.
const OPERATOR_CHARS: &[u8] = b"+-*/<>=~!@#%^&|`?:";

/// [`OPERATOR_CHARS`] as a table.
const IS_OPERATOR_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < OPERATOR_CHARS.len() {
        t[OPERATOR_CHARS[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes the fast path's first scan looks at: what declines it outright, the starts of
/// literals and parameters, and operator characters.
static SPECIAL_TO_FAST: [bool; 256] = {
    let mut t = IS_OPERATOR_CHAR;
    let mut c = 0x80;
    while c < 256 {
        t[c] = true;
        c += 1;
    }
    let mut k = 0;
    let special = b"\"\\`;\0$'[]{}";
    while k < special.len() {
        t[special[k] as usize] = true;
        k += 1;
    }
    t
};

/// The operators the fast path reads (`::` is a cast); any other run of operator characters
/// goes to the grammar.
const FAST_OPERATORS: &[&str] = &[
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "||", "::",
];

/// PostgreSQL's fast path: one plain SELECT, INSERT, UPDATE or DELETE (an optional trailing
/// `;`) over plain names, `'…'` literals without prefixes, numbers, `$n` parameters and
/// unqualified function calls, with no subquery, comment, quoted identifier, comma join or any
/// word of [`FAST_DECLINES`]. `None`: the grammar must read it. Where it answers, it agrees
/// with the grammar (`tests/sql_differential.rs`).
pub(super) fn fast(sql: &str, lx: &Lexing) -> Option<Vec<Statement>> {
    if !lx.standard_conforming_strings || sql.len() > 4096 {
        return None;
    }
    let b = sql.as_bytes();
    let trimmed = sql.trim_end();
    let body = trimmed.strip_suffix(';').unwrap_or(trimmed);
    let mut i = 0;
    while i < body.len() {
        // Most bytes need no look: skip them a table lookup at a time.
        if !SPECIAL_TO_FAST[b[i] as usize] {
            i += 1;
            continue;
        }
        let c = b[i];
        let prev = i.checked_sub(1).map(|p| b[p]);
        let ident = |p: Option<u8>| p.is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_' || p == b'$');
        match c {
            0x80.. | b'"' | b'\\' | b'`' | b';' | 0 => return None,
            b'$' if ident(prev) || !b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
            // A prefixed literal (E'', U&'', B'', X'', N'', typed 'x'): the grammar's.
            b'\'' if ident(prev) || prev == Some(b'&') => return None,
            b'\'' => {
                // Past the literal ('' is a quote inside it).
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(0x80..) | Some(0) => return None,
                        Some(_) => i += 1,
                    }
                }
            }
            // An operator: one PostgreSQL ships with (comments start with an operator
            // character too); others are the grammar's to check.
            _ if IS_OPERATOR_CHAR[c as usize] => {
                let end = b[i..body.len()]
                    .iter()
                    .position(|&x| !IS_OPERATOR_CHAR[x as usize])
                    .map_or(body.len(), |p| i + p);
                if !FAST_OPERATORS.contains(&&body[i..end]) {
                    return None;
                }
                i = end;
                continue;
            }
            b'[' | b']' | b'{' | b'}' => return None,
            _ => {}
        }
        i += 1;
    }
    // ASCII lowercasing keeps UTF-8 valid; a typical statement's copy stays on the stack.
    let lower_buf: SmallVec<[u8; 512]> = body.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let lower = std::str::from_utf8(&lower_buf).ok()?;
    let mut toks = Toks::new();
    tokenize(body, lower, Dialect::Postgres, lx, &mut toks).ok()?;
    let verb = match toks.first() {
        Some((Tok::Word(w), _)) => &**w,
        _ => return None,
    };
    if !matches!(verb, "select" | "insert" | "update" | "delete") {
        return None;
    }
    // Each word's class, looked up once.
    let cls: SmallVec<[u8; 64]> = toks
        .iter()
        .map(|(t, _)| if let Tok::Word(w) = t { class(w) } else { 0 })
        .collect();
    // In a FROM list (by parenthesis level): a comma there is a join the scan does not follow.
    let mut in_from: SmallVec<[bool; 8]> = smallvec::smallvec![false];
    for (i, (t, _)) in toks.iter().enumerate() {
        let level = in_from.len() - 1;
        match t {
            Tok::Word(w) => {
                let part_of_insert =
                    verb == "insert" && in_from.len() == 1 && (*w == "values" || (*w == "into" && i == 1));
                if (cls[i] & DECLINED != 0 && !part_of_insert)
                    || (i > 0 && matches!(&**w, "select" | "insert" | "update" | "delete"))
                {
                    return None;
                }
                let call = matches!(toks.get(i + 1), Some((Tok::Punct(b'('), _)));
                let after = |p: u8| i > 0 && matches!(toks[i - 1], (Tok::Punct(x), _) if x == p);
                // A qualified call, or a type name with modifiers after `::`.
                if call && (after(b'.') || after(b':')) {
                    return None;
                }
                match &**w {
                    "from" => in_from[level] = true,
                    "where" | "group" | "having" | "order" | "limit" | "offset" | "fetch" | "set" => {
                        in_from[level] = false
                    }
                    _ => {}
                }
            }
            Tok::Punct(b'(') => in_from.push(false),
            Tok::Punct(b')') => {
                in_from.pop();
                if in_from.is_empty() {
                    return None;
                }
            }
            Tok::Punct(b',') if in_from[level] => return None,
            Tok::Quoted(_) | Tok::Semi => return None,
            _ => {}
        }
    }
    if in_from.len() != 1 || !keywords_in_place(&toks, verb) {
        return None;
    }
    let mut s = statement(&toks, (0, sql.len()), Dialect::Postgres, lx, 0);
    if !s.certain || !s.nested.is_empty() {
        return None;
    }
    // Calls the grammar reads into (SQL text run, relations named in strings, parameters set).
    if s.functions.iter().any(|f| super::pg::special_function(f)) {
        return None;
    }
    // A keyword where a name was expected (`select true join from x`): the scan misread it.
    if s.reads
        .iter()
        .chain(&s.writes)
        .chain(&s.functions)
        .any(|n| n.split('.').any(|p| class(p) & KEYWORD != 0))
    {
        return None;
    }
    if matches!(s.kind, Kind::Update | Kind::Delete) {
        // A WHERE that seems to bound nothing (`WHERE true`) is the grammar's to judge.
        s.has_where = where_bounds(&toks);
        if !s.has_where && toks.iter().any(|(t, _)| matches!(t, Tok::Word(x) if *x == "where")) {
            return None;
        }
    }
    s.computed = fast_columns(&toks, &cls, verb)?;
    Some(vec![s])
}

/// Whether a top-level WHERE clause names a column: a word not followed by `(` or a literal
/// (a call, a typed literal), not after `::` (a type), and not a keyword. A clause of constants
/// (`WHERE true`, `WHERE 1 = 1`) bounds nothing.
fn where_bounds(toks: &[(Tok<'_>, usize)]) -> bool {
    let Some(w) = toks
        .iter()
        .position(|(t, _)| matches!(t, Tok::Word(x) if *x == "where"))
    else {
        return false;
    };
    (w + 1..toks.len()).any(|i| match &toks[i].0 {
        Tok::Word(x) => {
            // A column stands between operators, parentheses, commas and the boolean keywords;
            // `name 'x'`, `name $1`, `name(` are typed literals and calls, `::name` a type.
            let joins = |t: Option<&(Tok<'_>, usize)>| match t {
                None => true,
                Some((Tok::Punct(p), _)) => *p != b'(' && *p != b':',
                Some((Tok::Word(k), _)) => {
                    matches!(
                        &**k,
                        "and" | "or" | "not" | "is" | "in" | "like" | "ilike" | "where" | "between"
                    )
                }
                _ => false,
            };
            let after_cast = i >= 1 && matches!(toks[i - 1].0, Tok::Punct(b':'));
            joins(toks.get(i + 1))
                && joins(i.checked_sub(1).and_then(|p| toks.get(p)))
                && !after_cast
                && !matches!(
                    &**x,
                    "true"
                        | "false"
                        | "null"
                        | "not"
                        | "and"
                        | "or"
                        | "is"
                        | "in"
                        | "like"
                        | "ilike"
                        | "escape"
                        | "distinct"
                        | "from"
                        | "isnull"
                        | "notnull"
                        | "unknown"
                        | "interval"
                        | "asc"
                        | "desc"
                        | "limit"
                        | "order"
                        | "by"
                        | "nulls"
                        | "first"
                        | "last"
                )
        }
        _ => false,
    })
}

/// Words that are never column names in the fast path's statements.
const NOT_COLUMNS: &[&str] = &[
    "and",
    "as",
    "asc",
    "by",
    "case",
    "cross",
    "default",
    "delete",
    "desc",
    "distinct",
    "else",
    "end",
    "escape",
    "false",
    "fetch",
    "first",
    "from",
    "full",
    "group",
    "having",
    "ilike",
    "in",
    "inner",
    "insert",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "last",
    "left",
    "like",
    "limit",
    "next",
    "not",
    "notnull",
    "null",
    "nulls",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "right",
    "rows",
    "select",
    "set",
    "then",
    "ties",
    "true",
    "unknown",
    "update",
    "values",
    "when",
    "where",
    "with",
];

/// Keywords that cannot begin an operand: after `and`, `or`, `is`, … they show the operator word
/// was a bare label.
const NOT_OPERAND: &[&str] = &[
    "all",
    "and",
    "as",
    "asc",
    "between",
    "collate",
    "desc",
    "else",
    "end",
    "escape",
    "except",
    "fetch",
    "filter",
    "for",
    "from",
    "group",
    "having",
    "ilike",
    "in",
    "intersect",
    "into",
    "is",
    "isnull",
    "like",
    "limit",
    "notnull",
    "offset",
    "on",
    "or",
    "order",
    "over",
    "returning",
    "similar",
    "then",
    "union",
    "using",
    "when",
    "where",
    "window",
    "with",
    "within",
];

/// The fast path's [`Statement::computed`]: the relations in scope (FROM/JOIN items, the
/// statement's target, with aliases), then every column reference resolved the way the grammar
/// resolves it; a root SELECT's target items that are just a column (or `*`, `t.*`) are read
/// bare. `None` where a token could be read two ways (a label without `AS`, a position in
/// ORDER/GROUP BY): the grammar decides.
/// A dotted name in the token stream: its parts, whether it ends in `.*`, the index after it.
struct Dotted<'a> {
    parts: [&'a str; 4],
    n: usize,
    star: bool,
    end: usize,
}

impl<'a> Dotted<'a> {
    fn parts(&self) -> &[&'a str] {
        &self.parts[..self.n]
    }
}

/// `a.b`, built in one allocation.
fn dot(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + 1 + b.len());
    s.push_str(a);
    s.push('.');
    s.push_str(b);
    s
}

fn fast_columns<'a>(toks: &[(Tok<'a>, usize)], cls: &[u8], verb: &str) -> Option<Vec<String>> {
    let word = |i: usize| match toks.get(i) {
        Some((Tok::Word(w), _)) => Some(&**w),
        _ => None,
    };
    let punct = |i: usize, p: u8| matches!(toks.get(i), Some((Tok::Punct(x), _)) if *x == p);
    // A dotted name at `i` (`None` past four parts, more than PostgreSQL allows).
    let dotted = |mut i: usize| {
        let mut d = Dotted {
            parts: [""; 4],
            n: 0,
            star: false,
            end: i,
        };
        loop {
            match toks.get(i) {
                Some((Tok::Word(w), _)) if d.n < 4 => {
                    d.parts[d.n] = w;
                    d.n += 1;
                }
                Some((Tok::Word(_), _)) => return None,
                Some((Tok::Punct(b'*'), _)) if d.n > 0 => {
                    d.star = true;
                    i += 1;
                    break;
                }
                _ => break,
            }
            i += 1;
            if punct(i, b'.') {
                i += 1;
            } else {
                break;
            }
        }
        d.end = i;
        Some(d)
    };
    // Scope: the relations after FROM, JOIN, UPDATE, INTO, with their aliases; positions of
    // names that are not columns (relations, aliases, labels, assignment targets, the INSERT
    // column list).
    let mut scope: SmallVec<[(&str, Cow<'_, str>); 4]> = SmallVec::new();
    let mut skip: SmallVec<[bool; 64]> = smallvec::smallvec![false; toks.len()];
    let mut i = 0;
    while i < toks.len() {
        let introduces = match word(i) {
            Some("from" | "join") => true,
            Some("update") => i == 0,
            Some("into") => verb == "insert" && i == 1,
            _ => false,
        };
        if introduces {
            let d = dotted(i + 1)?;
            let (parts, mut j) = (d.parts(), d.end);
            skip[i + 1..j].fill(true);
            if parts.is_empty() {
                return None;
            }
            // `FROM t *` (a table and its descendants) reads differently.
            if punct(j, b'*') {
                return None;
            }
            let rel = match parts {
                [one] => Cow::Borrowed(*one),
                more => Cow::Owned(more.join(".")),
            };
            let mut alias = parts[parts.len() - 1];
            if word(j) == Some("as") {
                skip[j] = true;
                j += 1;
            }
            if let Some(a) = word(j).filter(|_| cls[j] & NOT_COLUMN == 0) {
                alias = a;
                skip[j] = true;
                j += 1;
            }
            scope.push((alias, rel));
            // INSERT INTO t (a, b): the column list names targets.
            if verb == "insert" && punct(j, b'(') {
                let mut k = j + 1;
                while k < toks.len() && !punct(k, b')') {
                    skip[k] = true;
                    k += 1;
                }
                j = k;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    // UPDATE … SET a = …, b = …: the assigned names.
    if verb == "update"
        && let Some(set) = toks.iter().position(|(t, _)| matches!(t, Tok::Word(w) if *w == "set"))
    {
        let mut level = 0i32;
        let mut k = set + 1;
        let mut item_start = true;
        while k < toks.len() {
            match &toks[k].0 {
                Tok::Punct(b'(') => level += 1,
                Tok::Punct(b')') => level -= 1,
                Tok::Punct(b',') if level == 0 => {
                    item_start = true;
                    k += 1;
                    continue;
                }
                Tok::Word(w) if level == 0 && matches!(&**w, "from" | "where" | "returning") => break,
                Tok::Word(_) if item_start && level == 0 => skip[k] = true,
                _ => {}
            }
            item_start = false;
            k += 1;
        }
    }
    let resolve = |q: &'a str| -> &str { scope.iter().rev().find(|(a, _)| *a == q).map_or(q, |(_, r)| r) };
    let mut out = Vec::with_capacity(16);
    let emit = |parts: &[&'a str], star: bool, out: &mut Vec<String>| match (parts, star) {
        ([q], true) => out.push(dot(resolve(q), "*")),
        ([col], false) => {
            if scope.is_empty() {
                out.push(col.to_string());
            }
            out.extend(scope.iter().map(|(_, r)| dot(r, col)));
            if scope.iter().any(|(a, _)| a == col) {
                out.push(dot(resolve(col), "*"));
            }
        }
        ([q, col], false) => out.push(dot(resolve(q), col)),
        (more, false) => out.push(more.join(".")),
        (more, true) => out.push(dot(&more.join("."), "*")),
    };
    // The root SELECT's target list: bare items.
    let from = toks
        .iter()
        .position(|(t, _)| matches!(t, Tok::Word(w) if *w == "from"))
        .unwrap_or(toks.len());
    let by_position = toks
        .windows(2)
        .any(|w| matches!((&w[0].0, &w[1].0), (Tok::Word(b), Tok::Num) if *b == "by"))
        || {
            // `ORDER BY a, 2`: a number as an item of a BY list.
            let mut in_by = false;
            let mut found = false;
            for (k, (t, _)) in toks.iter().enumerate() {
                match t {
                    Tok::Word(w) if *w == "by" => in_by = true,
                    Tok::Word(w) if matches!(&**w, "limit" | "offset" | "having" | "order" | "group" | "fetch") => {
                        in_by = false
                    }
                    Tok::Num if in_by && k > 0 && punct(k - 1, b',') => found = true,
                    _ => {}
                }
            }
            found
        };
    let plain = verb == "select" && !by_position && word(1) != Some("distinct") && word(1) != Some("all");
    let mut k = 1;
    if verb == "select" {
        // Items of the target list, split at top-level commas.
        let mut level = 0i32;
        let mut start = 1;
        for e in 1..=from {
            let end_item = e == from || (level == 0 && punct(e, b','));
            if e < from {
                match toks[e].0 {
                    Tok::Punct(b'(') => level += 1,
                    Tok::Punct(b')') => level -= 1,
                    _ => {}
                }
            }
            if !end_item {
                continue;
            }
            let item = start..e;
            start = e + 1;
            // `expr AS label`: the label is no column.
            let mut body_end = item.end;
            if let Some(a) = (item.start..item.end).find(|&x| word(x) == Some("as")) {
                // `AS` takes one label (any word, `from` too): anything else after it is a
                // clause of a SELECT without FROM (`… AS x HAVING y`), or no label at all.
                if a + 2 != item.end {
                    return None;
                }
                skip[a..item.end].fill(true);
                body_end = a;
            }
            // A label without AS (`count(*) n`, `a b`) reads two ways: the grammar's.
            for x in item.start + 1..body_end {
                // Only a word can be a label, and after a dot any word (`t.on`) is a name.
                let Tok::Word(w) = &toks[x].0 else { continue };
                if punct(x - 1, b'.') {
                    continue;
                }
                // After a dot, any word (`t.on`) or `*` is a name.
                let after_dot = x >= 2 && punct(x - 2, b'.');
                let prev_ends_expr = matches!(&toks[x - 1].0, Tok::Num | Tok::Str(_) | Tok::Punct(b')'))
                    || (after_dot && matches!(&toks[x - 1].0, Tok::Word(_) | Tok::Punct(b'*')))
                    || matches!(&toks[x - 1].0, Tok::Word(p) if !matches!(
                        &**p,
                        "select" | "distinct" | "all" | "and" | "or" | "not" | "is" | "in" | "like" | "ilike"
                            | "escape" | "case" | "when" | "then" | "else" | "as" | "by" | "on"
                    ));
                // Words that may follow an expression; any other is a label (PostgreSQL takes
                // most keywords as bare labels too).
                let prev_word = match &toks[x - 1].0 {
                    Tok::Word(p) => Some(&**p),
                    _ => None,
                };
                // PostgreSQL takes even `and`, `or`, `end` as bare labels (`SELECT a and HAVING
                // 'x'` labels `a`): an operator word continues the expression only when an
                // operand follows, a CASE word only inside a CASE.
                let operand_follows = x + 1 < body_end
                    && match &toks[x + 1].0 {
                        Tok::Word(n) => !NOT_OPERAND.contains(n),
                        Tok::Punct(p) => !matches!(p, b',' | b')' | b']' | b'.'),
                        Tok::Semi => false,
                        _ => true,
                    };
                let in_case = || {
                    let mut depth = 0i32;
                    for t in &toks[item.start..x] {
                        match t.0 {
                            Tok::Word("case") => depth += 1,
                            Tok::Word("end") => depth -= 1,
                            _ => {}
                        }
                    }
                    depth > 0
                };
                let continues = |w: &str| match w {
                    "from" | "as" => true,
                    "and" | "or" | "is" | "not" | "in" | "like" | "ilike" => operand_follows,
                    "then" | "else" | "end" | "when" => in_case(),
                    "null" | "true" | "false" | "unknown" => matches!(prev_word, Some("is" | "not")),
                    _ => false,
                };
                if prev_ends_expr && !continues(w) {
                    return None;
                }
            }
            // `(a)` is `a` to the grammar: parentheses around the whole item are dropped.
            let (mut start, mut body_end) = (item.start, body_end);
            while start + 1 < body_end && punct(start, b'(') && punct(body_end - 1, b')') && {
                let mut depth = 0i32;
                (start..body_end - 1).all(|x| {
                    match toks[x].0 {
                        Tok::Punct(b'(') => depth += 1,
                        Tok::Punct(b')') => depth -= 1,
                        _ => {}
                    }
                    depth > 0
                })
            } {
                start += 1;
                body_end -= 1;
            }
            let d = dotted(start)?;
            let (parts, star, after) = (d.parts(), d.star, d.end);
            let lone_star = punct(start, b'*') && start + 1 == body_end;
            if start != item.start && (lone_star || star) {
                // `(t.*)`, `(*)`: the grammar's.
                return None;
            }
            let whole = lone_star || (after == body_end && !parts.is_empty());
            if plain && whole {
                let whole_row = !star && parts.len() == 1 && scope.iter().any(|(a, _)| *a == parts[0]);
                let column = !parts.is_empty() && cls[start] & NOT_COLUMN == 0;
                if lone_star || star || (column && !whole_row) {
                    skip[start..body_end].fill(true);
                }
            } else if lone_star {
                out.extend(scope.iter().map(|(_, r)| dot(r, "*")));
                skip[start] = true;
            }
        }
        k = 1;
    }
    // Every other column reference is computed on.
    while k < toks.len() {
        if skip[k] {
            k += 1;
            continue;
        }
        if word(k).is_none() || cls[k] & NOT_COLUMN != 0 {
            k += 1;
            continue;
        }
        let d = dotted(k)?;
        let (parts, star, after) = (d.parts(), d.star, d.end);
        let call = punct(after, b'(');
        let typed_literal = matches!(toks.get(after), Some((Tok::Str(_) | Tok::Num, _)));
        let after_cast = k >= 1 && punct(k - 1, b':');
        let after_dot = k >= 1 && punct(k - 1, b'.');
        if call || after_cast || after_dot {
            k = after.max(k + 1);
            continue;
        }
        if typed_literal {
            // `interval '1 day'`, `date '…'`: a type name.
            k = after;
            continue;
        }
        emit(parts, star, &mut out);
        k = after;
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// Whether the keywords the fast path reads as syntax stand where they are syntax: PostgreSQL
/// also takes unreserved keywords (`by`, `set`, `first`, …) as names and most keywords as bare
/// labels, which a token scan cannot tell apart.
fn keywords_in_place(toks: &[(Tok<'_>, usize)], verb: &str) -> bool {
    let word = |i: usize| match toks.get(i) {
        Some((Tok::Word(w), _)) => Some(&**w),
        _ => None,
    };
    let mut case_depth = 0usize;
    let mut sets = 0;
    for (i, (t, _)) in toks.iter().enumerate() {
        let Tok::Word(w) = t else { continue };
        let prev = i.checked_sub(1).and_then(word);
        let prev_str = i > 0 && matches!(toks[i - 1].0, Tok::Str(_));
        let next = toks.get(i + 1).map(|(t, _)| t);
        // An operator keyword with nothing after it is a label (`SELECT x IS`).
        let ends = matches!(next, None | Some(Tok::Punct(b',' | b')'))) || word(i + 1) == Some("from");
        let ok = match &**w {
            "by" => matches!(prev, Some("order" | "group")),
            "first" | "last" => prev == Some("nulls"),
            "nulls" => matches!(word(i + 1), Some("first" | "last")),
            "escape" => prev_str && matches!(next, Some(Tok::Str(_))),
            "set" => {
                sets += 1;
                verb == "update" && sets == 1
            }
            "unknown" => matches!(prev, Some("is" | "not")),
            "interval" => matches!(next, Some(Tok::Str(_))),
            "case" => {
                case_depth += 1;
                true
            }
            "end" if case_depth > 0 => {
                case_depth -= 1;
                true
            }
            "end" | "when" | "then" | "else" => case_depth > 0,
            "and" | "or" | "is" | "not" | "in" | "like" | "ilike" => !ends,
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    case_depth == 0
}

const DECLINED: u8 = 1;
const NOT_COLUMN: u8 = 2;
const KEYWORD: u8 = 4;

/// What the fast path's word lists say of a word (bits: [`DECLINED`], [`NOT_COLUMN`],
/// [`KEYWORD`]), by one hash lookup (Fx: the table is fixed, and a lookup cannot degrade it).
/// Words of up to eight bytes (most keywords) are looked up as one `u64`.
fn class(w: &str) -> u8 {
    struct Classes {
        short: rustc_hash::FxHashMap<u64, u8>,
        long: rustc_hash::FxHashMap<&'static str, u8>,
        longest: usize,
    }
    /// A word of up to eight bytes as one integer (words hold no NUL, so the padding is unique).
    fn packed(w: &str) -> u64 {
        w.bytes().enumerate().fold(0, |k, (i, c)| k | u64::from(c) << (8 * i))
    }
    static CLASSES: std::sync::OnceLock<Classes> = std::sync::OnceLock::new();
    let c = CLASSES.get_or_init(|| {
        let mut c = Classes {
            short: Default::default(),
            long: Default::default(),
            longest: 0,
        };
        for (list, bit) in [
            (FAST_DECLINES, DECLINED),
            (NOT_COLUMNS, NOT_COLUMN),
            (KEYWORDS, KEYWORD),
        ] {
            for w in list {
                if w.len() <= 8 {
                    *c.short.entry(packed(w)).or_insert(0) |= bit;
                } else {
                    *c.long.entry(*w).or_insert(0) |= bit;
                }
                c.longest = c.longest.max(w.len());
            }
        }
        c
    });
    match w.len() {
        0 => 0,
        1..=8 => c.short.get(&packed(w)).copied().unwrap_or(0),
        n if n > c.longest => 0,
        _ => c.long.get(w).copied().unwrap_or(0),
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;

    #[test]
    fn class_agrees_with_the_word_lists() {
        for (list, bit) in [
            (FAST_DECLINES, DECLINED),
            (NOT_COLUMNS, NOT_COLUMN),
            (KEYWORDS, KEYWORD),
        ] {
            for w in list {
                assert_ne!(class(w) & bit, 0, "{w}");
            }
        }
        let all: Vec<&str> = FAST_DECLINES
            .iter()
            .chain(NOT_COLUMNS)
            .chain(KEYWORDS)
            .copied()
            .collect();
        // Prefixes, extensions and other words are not listed words.
        for w in [
            "",
            "o",
            "customer_id",
            "selectx",
            "selec",
            "created_at",
            "ordersss",
            "a_very_long_identifier_name",
        ] {
            assert_eq!(class(w) != 0, all.contains(&w), "{w}");
        }
        for w in &all {
            let longer = format!("{w}x");
            assert_eq!(class(&longer) != 0, all.contains(&longer.as_str()), "{longer}");
            let shorter = &w[..w.len() - 1];
            assert_eq!(class(shorter) != 0, all.contains(&shorter), "{shorter}");
        }
    }
}
