//! Differential tests of the SQL analyser. (1) The PostgreSQL fast path against PostgreSQL's
//! grammar: wherever the fast path answers, on real and generated statements, it must give what
//! the grammar gives. (2) Statement kinds against `sqlparser` on real SQL: the queries in
//! `testdata/sql/queries.sql` and, when installed, PostgreSQL's own SQL files
//! (`/usr/share/postgresql/*/…`: the information schema, system views, extension scripts).
//! Each statement our analyser finds is given to sqlparser alone; where sqlparser parses it as
//! one statement, the kinds must agree.

use proptest::prelude::*;
use sluice_protocols::sql::{self, Dialect, Frontend, Kind, Lexing};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Maps a sqlparser statement (by its variant name) to our kind; None when there is no
/// counterpart to compare with.
fn their_kind(stmt: &sqlparser::ast::Statement) -> Option<Kind> {
    let debug = format!("{stmt:?}");
    let variant = &debug[..debug.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(debug.len())];
    Some(match variant {
        "Query" => Kind::Select,
        "Insert" => Kind::Insert,
        "Update" => Kind::Update,
        "Delete" => Kind::Delete,
        "Merge" => Kind::Merge,
        "Copy" => Kind::Copy,
        "CreateRole" | "AlterRole" => Kind::Role,
        "Drop" if debug.contains("object_type: Role") || debug.contains("object_type: User") => Kind::Role,
        v if v.starts_with("Create") => Kind::Create,
        v if v.starts_with("Alter") => Kind::Alter,
        "Drop" | "DropFunction" | "DropProcedure" | "DropTrigger" | "DropPolicy" | "DropExtension" => Kind::Drop,
        "Grant" => Kind::Grant,
        "Revoke" => Kind::Revoke,
        "Truncate" => Kind::Truncate,
        "Set" | "SetVariable" | "SetTimeZone" | "SetNames" => Kind::Set,
        v if v.starts_with("Show") => Kind::Show,
        "StartTransaction" | "Commit" | "Rollback" | "Savepoint" | "ReleaseSavepoint" => Kind::Transaction,
        "Call" => Kind::Call,
        "Execute" | "Prepare" | "Deallocate" => Kind::Execute,
        "Explain" => Kind::Explain,
        _ => return None,
    })
}

fn corpus() -> Vec<(String, String)> {
    let mut files = vec![(
        "testdata/sql/queries.sql".to_string(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/sql/queries.sql"))
            .expect("queries.sql"),
    )];
    if let Ok(versions) = std::fs::read_dir("/usr/share/postgresql") {
        for v in versions.flatten() {
            for dir in [v.path(), v.path().join("extension")] {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                let mut paths: Vec<_> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                    .collect();
                paths.sort();
                for p in paths {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        files.push((p.display().to_string(), text));
                    }
                }
            }
        }
    } else {
        eprintln!("note: /usr/share/postgresql not found; only testdata/sql/queries.sql is compared");
    }
    files
}

/// Our statement kinds against sqlparser's, statement by statement.
#[derive(Default)]
struct Tally {
    compared: usize,
    agreed: usize,
    disagreements: Vec<String>,
}

impl Tally {
    /// Compares each of our statements of `text` that sqlparser reads (in `dialect`) as one
    /// statement of a kind it names.
    fn compare(&mut self, name: &str, text: &str, stmts: &[sql::Statement], dialect: &dyn sqlparser::dialect::Dialect) {
        for s in stmts {
            let src = &text[s.span.0..s.span.1];
            let Ok(theirs) = Parser::parse_sql(dialect, src) else {
                continue;
            };
            let [one] = theirs.as_slice() else { continue };
            let Some(kind) = their_kind(one) else { continue };
            self.compared += 1;
            if kind == s.kind {
                self.agreed += 1;
            } else {
                self.disagreements.push(format!(
                    "{name}: ours {:?}, sqlparser {kind:?}: {}",
                    s.kind,
                    src.chars().take(100).collect::<String>()
                ));
            }
        }
    }

    /// At least 98% agree.
    fn assert_agree(&self) {
        assert!(
            self.agreed * 100 >= self.compared * 98,
            "{} disagreements:\n{}",
            self.disagreements.len(),
            self.disagreements.join("\n")
        );
    }
}

#[test]
fn statement_kinds_agree_with_sqlparser() {
    let mut tally = Tally::default();
    let mut ours_failed = 0usize;
    for (name, text) in corpus() {
        // psql meta-commands (\echo …) are not SQL.
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('\\'))
            .collect::<Vec<_>>()
            .join("\n");
        let stmts = match sql::analyze(&text, Dialect::Postgres) {
            Ok(s) => s,
            // Extension scripts with install-time placeholders (`@extschema@`) are not SQL yet.
            Err(_) if text.contains("@ext") => continue,
            Err(e) => {
                ours_failed += 1;
                eprintln!("{name}: {e}");
                continue;
            }
        };
        tally.compare(&name, &text, &stmts, &PostgreSqlDialect {});
    }
    let Tally { compared, agreed, .. } = tally;
    eprintln!("compared {compared} statements, {agreed} agree; {ours_failed} files we could not tokenize");
    assert!(compared >= 40, "too few statements compared: {compared}");
    assert!(ours_failed == 0, "the analyser failed on real SQL files");
    tally.assert_agree();
}

/// Statements of the corpus (as the grammar splits them) and generated ones.
fn statements() -> Vec<String> {
    let mut out = Vec::new();
    for (_, text) in corpus() {
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('\\'))
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(Some(stmts)) = sql::analyze_with(&text, &Lexing::default(), Frontend::Grammar) {
            out.extend(stmts.iter().map(|s| text[s.span.0..s.span.1].trim().to_string()));
        }
    }
    out
}

/// The fields the fast path answers for, normalised for comparison.
fn view(s: &[sql::Statement]) -> Vec<String> {
    s.iter()
        .map(|s| {
            let mut reads = s.reads.clone();
            reads.sort();
            reads.dedup();
            let mut writes = s.writes.clone();
            writes.sort();
            let bounded = matches!(s.kind, Kind::Update | Kind::Delete) && s.has_where;
            format!(
                "{:?} reads={reads:?} writes={writes:?} functions={:?} computed={:?} bounded={bounded} certain={} nested={} cte={}",
                s.kind,
                s.functions,
                s.computed,
                s.certain,
                s.nested.len(),
                s.writable_cte
            )
        })
        .collect()
}

fn compare(q: &str, answered: &mut usize, disagreements: &mut Vec<String>) {
    let lx = Lexing::default();
    let Ok(Some(fast)) = sql::analyze_with(q, &lx, Frontend::Fast) else {
        return;
    };
    *answered += 1;
    match sql::analyze_with(q, &lx, Frontend::Grammar) {
        Ok(Some(grammar)) if view(&grammar) == view(&fast) => {}
        Ok(Some(grammar)) => disagreements.push(format!(
            "{q}\n  fast:    {:?}\n  grammar: {:?}",
            view(&fast),
            view(&grammar)
        )),
        // Not PostgreSQL: the server refuses it too, whatever the fast path made of it.
        Err(_) => {}
        other => disagreements.push(format!("{q}\n  fast answered, grammar: {other:?}")),
    }
}

#[test]
fn fast_path_agrees_with_the_grammar_on_real_sql() {
    let (mut answered, mut disagreements) = (0, Vec::new());
    let all = statements();
    for q in &all {
        compare(q, &mut answered, &mut disagreements);
    }
    eprintln!("{} statements, the fast path answered {answered}", all.len());
    assert!(answered >= 30, "the fast path answered too few: {answered}");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Pieces of plain DML, for generated statements.
fn piece() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "select",
        "insert",
        "update",
        "delete",
        "from",
        "into",
        "where",
        "set",
        "values",
        "join",
        "left",
        "on",
        "and",
        "or",
        "not",
        "true",
        "null",
        "order",
        "by",
        "group",
        "limit",
        "as",
        "users",
        "t",
        "public.orders",
        "o.id",
        "id",
        "now",
        "count",
        "lower",
        "::",
        "int",
        "text",
        "varchar",
        "(",
        ")",
        ",",
        "*",
        "=",
        "<>",
        "+",
        "-",
        "||",
        "'x'",
        "'a''b'",
        "$1",
        "1",
        "2.5",
        "e",
        "interval",
        "'1 day'",
        "is",
        "in",
        "like",
        "asc",
        "desc",
        "distinct",
        "having",
        "offset",
        ";",
        ".",
        "x",
        "case",
        "when",
        "then",
        "else",
        "end",
        "between",
        "current_date",
        "coalesce",
        "exists",
        "returning",
        "any",
        "array",
        "[",
        "]",
        "%",
        "~",
        "@",
        ">",
        "<",
        "!",
        "&",
        "#",
        "u&",
        "b'1'",
        "x'ff'",
        "cast",
        "row",
        "over",
        "partition",
        "using",
        "natural",
        "cross",
        "full",
        "only",
        "filter",
        "within",
        "user",
        "at",
        "time",
        "zone",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4000),
        ..ProptestConfig::default()
    })]

    /// Generated statements: where the fast path answers, the grammar agrees.
    #[test]
    fn fast_path_agrees_with_the_grammar_on_generated_sql(
        verb in prop::sample::select(vec!["select", "insert into t", "update t set", "delete from t"]),
        rest in prop::collection::vec(piece(), 0..14),
        glue in prop::collection::vec(prop::sample::select(vec![" ", "", "\n"]), 14),
    ) {
        let mut q = verb.to_string();
        for (p, g) in rest.iter().zip(&glue) {
            q.push_str(if g.is_empty() { " " } else { g });
            q.push_str(p);
        }
        let (mut answered, mut disagreements) = (0, Vec::new());
        compare(&q, &mut answered, &mut disagreements);
        prop_assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    }
}

#[test]
fn fast_path_agrees_on_typical_statements() {
    let (mut answered, mut disagreements) = (0, Vec::new());
    let typical = [
        "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day' ORDER BY o.total DESC LIMIT 50",
        "SELECT id, email FROM users WHERE id = $1",
        "select count(*) from pg_stat_activity",
        "INSERT INTO audit (id, who, what) VALUES ($1, $2, 'login')",
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
        "DELETE FROM sessions WHERE expires_at < now()",
        "delete from sessions",
        "update t set a = 1",
        "select * from pg_shadow",
        "select lower(name) as n from public.users u left join orders o on o.uid = u.id group by n having count(*) > 1",
    ];
    for q in typical {
        let before = answered;
        compare(q, &mut answered, &mut disagreements);
        if answered == before {
            eprintln!("declined: {q}");
        }
    }
    assert_eq!(
        answered,
        typical.len(),
        "the fast path should answer every typical statement"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Operator and CASE words PostgreSQL takes as bare labels, parenthesised target items and `AS`
/// labels in a SELECT without FROM, all found by the generated test (`users AND HAVING 'x'` and
/// `(users)` read as computations, `users AS left HAVING users` as a label): wherever the fast
/// path answers, it agrees.
#[test]
fn fast_path_agrees_on_bare_labels_and_parentheses() {
    let (mut answered, mut disagreements) = (0, Vec::new());
    let cases = [
        "select users and having 'x'",
        "select users and",
        "select a and, b from t",
        "select a or from t",
        "select a not from t",
        "select a is from t",
        "select a in from t",
        "select a like from t",
        "select a escape from t",
        "select a isnull from t",
        "select a end from t",
        "select a then, b from t",
        "select a when from t",
        "select a else from t",
        "select case when a then b end end from t",
        "select case when a then b else c end from t",
        "select a and b from t",
        "select a and not b from t",
        "select a is not null from t",
        "select a like 'x%' from t",
        "select a in (1, 2) from t",
        "select ( users )",
        "select ((a)), (b) from t",
        "select (a) + (b) from t",
        "select (t.*) from t",
        "select (a), b from t where (c)",
        "select users as left having users",
        "select a as from from t",
        "select a as x where a",
        "select a as b, c as d from t",
    ];
    for q in cases {
        compare(q, &mut answered, &mut disagreements);
    }
    assert!(answered >= 5, "the fast path answered too few: {answered}");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// MySQL's and MariaDB's own SQL files (`/usr/share/mysql`: system tables, the sys schema, help
/// tables), when installed, and the MySQL statements of the policy cases.
fn mysql_corpus() -> Vec<(String, String)> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/share/mysql") {
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        for p in paths {
            if let Ok(text) = std::fs::read_to_string(&p) {
                files.push((p.display().to_string(), text));
            }
        }
    } else {
        eprintln!("note: /usr/share/mysql not found; no MySQL files are compared");
    }
    files
}

#[test]
fn mysql_statement_kinds_agree_with_sqlparser() {
    use sqlparser::dialect::MySqlDialect;
    let mut tally = Tally::default();
    for (name, text) in mysql_corpus() {
        // DELIMITER lines are the mysql client's, not SQL.
        if text.contains("DELIMITER") || text.contains("delimiter") {
            continue;
        }
        let Ok(stmts) = sql::analyze(&text, Dialect::MySql) else {
            continue;
        };
        tally.compare(&name, &text, &stmts, &MySqlDialect {});
    }
    let Tally { compared, agreed, .. } = tally;
    eprintln!("MySQL: compared {compared} statements, {agreed} agree");
    if std::path::Path::new("/usr/share/mysql").exists() {
        assert!(compared >= 100, "too few MySQL statements compared: {compared}");
    }
    tally.assert_agree();
}
