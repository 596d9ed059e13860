//! SQL analysis for policy (PostgreSQL and MySQL dialects). For each statement of a possibly
//! multi-statement string: the statement kind, the relations read and written, the functions
//! called, whether an UPDATE/DELETE is bounded by a WHERE clause, COPY's direction and target,
//! data-modifying CTEs, the run-time parameters set, the languages of code created, and the
//! statements inside (DO blocks, function bodies, rule actions, EXECUTE strings). What cannot be
//! analysed is marked (`certain: false`), so policy can fail closed.
//!
//! Backends:
//! - **PostgreSQL**: PostgreSQL's own parser (`libpg_query` through the `pg_query` crate) reads
//!   every statement, under the session's lexing settings ([`Lexing`]). A hand-written fast path
//!   (`lex`) answers for the plain single statements applications send most (a SELECT, INSERT,
//!   UPDATE or DELETE over plain names, literals and function calls); anything else goes to the
//!   grammar. A differential test proves the fast path agrees with the grammar wherever it answers.
//! - **MySQL / MariaDB**: the tokenizer-based analyser (`lex`) with MySQL's comment forms
//!   (`#`, `-- ` only before a space, executable `/*! … */` and MariaDB `/*M! … */`), backslash
//!   escapes unless `NO_BACKSLASH_ESCAPES`, and `"…"` as an identifier under `ANSI_QUOTES`;
//!   checked differentially against sqlparser's MySQL dialect.
//!
//! ```
//! use sluice_protocols::sql::{self, Dialect, Kind};
//! let stmts = sql::analyze("select 1; /* x */ DrOp TABLE public.users", Dialect::Postgres)?;
//! assert_eq!(stmts[1].kind, Kind::Drop);
//! assert_eq!(stmts[1].writes, ["public.users"]);
//! # Ok::<(), sluice_protocols::sql::Error>(())
//! ```

use std::fmt;

mod lex;
mod pg;

/// The SQL dialect: quoting and comment rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, nested comments, `$tag$…$tag$`, `E'…'`.
    Postgres,
    /// MySQL / MariaDB: `` `ident` ``, `"…"` strings, `#` comments, backslash escapes, and
    /// `/*! … */` comments whose content is executed.
    MySql,
}

/// Why a string could not be analysed: where, and what.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong with SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A string, quoted identifier or comment that is never closed.
    Unterminated,
    /// A NUL character, which PostgreSQL never accepts in SQL text.
    Nul,
    /// PostgreSQL's grammar rejects the text (its message is the detail and the source).
    Syntax,
    /// The grammar's parse tree could not be read.
    ParseTree,
}

impl Error {
    pub(crate) fn unterminated(offset: usize) -> Self {
        Error::new(ErrorKind::Unterminated, offset)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ErrorKind::Unterminated => f.write_str("unterminated string, identifier or comment")?,
            ErrorKind::Nul => f.write_str("a NUL character in SQL text")?,
            ErrorKind::Syntax => write!(f, "not PostgreSQL SQL: {}", self.detail().unwrap_or("rejected"))?,
            ErrorKind::ParseTree => write!(f, "parse tree: {}", self.detail().unwrap_or("unreadable"))?,
        }
        write!(f, " (at offset {})", self.offset())
    }
}

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
#[non_exhaustive]
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
    /// Statements inside this one: DO blocks, function and procedure bodies, rule actions,
    /// literal EXECUTE strings, data-modifying CTEs, EXPLAIN and PREPARE targets, SQL text given
    /// to functions that run it (`query_to_xml('…')`).
    pub nested: Vec<Statement>,
    /// Run-time parameters this statement sets or resets (`SET x`, `RESET x`, `set_config('x', …)`,
    /// `SET NAMES` as `client_encoding`; `all` for `RESET ALL` / `DISCARD ALL`), lowercased.
    pub sets: Vec<String>,
    /// Languages of code this statement creates or runs (`CREATE FUNCTION … LANGUAGE c`, `DO`),
    /// lowercased.
    pub languages: Vec<String>,
    /// Columns a computation uses (functions, casts, operators, `WHERE`/`JOIN`/`ORDER BY`/
    /// `GROUP BY`, aggregates, `DISTINCT`, set operations, anything written elsewhere), as
    /// `relation.column` with aliases resolved (an unqualified column once per relation in
    /// scope); `relation.*` for a whole-row reference. Only a column that is a whole item of a
    /// top-level SELECT's target list is read bare and not listed. PostgreSQL only (empty for
    /// MySQL).
    pub computed: Vec<String>,
    /// False when something could not be analysed statically (dynamic EXECUTE, unknown kind).
    pub certain: bool,
}

impl Statement {
    pub(crate) fn new(kind: Kind, span: (usize, usize)) -> Self {
        Statement {
            kind,
            span,
            reads: Vec::new(),
            writes: Vec::new(),
            functions: Vec::new(),
            has_where: false,
            copy_from: false,
            copy_target: None,
            writable_cte: false,
            nested: Vec::new(),
            sets: Vec::new(),
            languages: Vec::new(),
            computed: Vec::new(),
            certain: true,
        }
    }

    /// Whether the statement sets a parameter that changes how later statements are lexed
    /// ([`LEXING_PARAMETERS`]).
    pub fn sets_lexing(&self) -> bool {
        self.sets.iter().any(|p| LEXING_PARAMETERS.contains(&p.as_str()))
    }
}

/// The session settings that change how SQL text is split into tokens. The defaults are the
/// servers' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexing {
    /// PostgreSQL `standard_conforming_strings` (on: a backslash in `'…'` is an ordinary
    /// character; off: it escapes).
    pub standard_conforming_strings: bool,
    /// MySQL: a backslash escapes in strings (off under `sql_mode` `NO_BACKSLASH_ESCAPES`).
    pub backslash_escapes: bool,
    /// MySQL: `"…"` quotes an identifier, not a string (`sql_mode` `ANSI_QUOTES`, `ANSI`).
    pub ansi_quotes: bool,
}

impl Default for Lexing {
    fn default() -> Self {
        Lexing {
            standard_conforming_strings: true,
            backslash_escapes: true,
            ansi_quotes: false,
        }
    }
}

/// Run-time parameters whose change alters how later statements are lexed: a statement after
/// one that sets them, in the same string, is not analysed as certain.
pub const LEXING_PARAMETERS: &[&str] = &[
    "standard_conforming_strings",
    "client_encoding",
    "backslash_quote",
    "sql_mode",
    "all",
];

/// Which analyser answers (for differential tests and benchmarks).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// The hand-written fast path only (`None` from [`analyze_with`] where it declines).
    Fast,
    /// PostgreSQL's grammar only.
    Grammar,
}

/// Splits `sql` into statements and analyses each, under the servers' default settings.
pub fn analyze(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, Error> {
    analyze_in(sql, dialect, &Lexing::default())
}

/// Splits `sql` into statements and analyses each, under the given session settings.
pub fn analyze_in(sql: &str, dialect: Dialect, lexing: &Lexing) -> Result<Vec<Statement>, Error> {
    let mut stmts = match dialect {
        Dialect::Postgres => match lex::fast(sql, lexing) {
            Some(s) => s,
            None => pg::analyze(sql, lexing, 0)?,
        },
        Dialect::MySql => lex::analyze(sql, dialect, lexing)?,
    };
    after_lexing_change(&mut stmts);
    Ok(stmts)
}

/// One analyser alone: `Ok(None)` when the fast path declines.
#[doc(hidden)]
pub fn analyze_with(sql: &str, lexing: &Lexing, frontend: Frontend) -> Result<Option<Vec<Statement>>, Error> {
    match frontend {
        Frontend::Fast => Ok(lex::fast(sql, lexing)),
        Frontend::Grammar => pg::analyze(sql, lexing, 0).map(Some),
    }
}

/// Statements after one that changes lexing settings were split and read under the old ones,
/// and after one not understood anything may have changed: not certain.
fn after_lexing_change(stmts: &mut [Statement]) {
    let changes = |s: &Statement| s.sets_lexing() || !s.certain;
    if let Some(first) = stmts.iter().position(changes) {
        for s in &mut stmts[first + 1..] {
            s.certain = false;
        }
    }
}

#[cfg(test)]
mod tests;
