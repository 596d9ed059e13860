//! Differential test of the SQL analyser against `sqlparser` on real SQL: the queries in
//! `testdata/sql/queries.sql` and, when installed, PostgreSQL's own SQL files
//! (`/usr/share/postgresql/*/…`: the information schema, system views, extension scripts).
//! Each statement our analyser finds is given to sqlparser alone; where sqlparser parses it as
//! one statement, the kinds must agree.

use sluice_protocols::sql::{self, Dialect, Kind};
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

#[test]
fn statement_kinds_agree_with_sqlparser() {
    let (mut compared, mut agreed, mut ours_failed) = (0usize, 0usize, 0usize);
    let mut disagreements = Vec::new();
    for (name, text) in corpus() {
        // psql meta-commands (\echo …) are not SQL.
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('\\'))
            .collect::<Vec<_>>()
            .join("\n");
        let stmts = match sql::analyze(&text, Dialect::Postgres) {
            Ok(s) => s,
            Err(e) => {
                ours_failed += 1;
                eprintln!("{name}: {e}");
                continue;
            }
        };
        for s in stmts {
            let src = &text[s.span.0..s.span.1];
            let Ok(theirs) = Parser::parse_sql(&PostgreSqlDialect {}, src) else {
                continue;
            };
            let [one] = theirs.as_slice() else { continue };
            let Some(kind) = their_kind(one) else { continue };
            compared += 1;
            if kind == s.kind {
                agreed += 1;
            } else {
                disagreements.push(format!(
                    "{name}: ours {:?}, sqlparser {kind:?}: {}",
                    s.kind,
                    src.chars().take(100).collect::<String>()
                ));
            }
        }
    }
    eprintln!("compared {compared} statements, {agreed} agree; {ours_failed} files we could not tokenize");
    assert!(compared >= 40, "too few statements compared: {compared}");
    assert!(ours_failed == 0, "the analyser failed on real SQL files");
    assert!(
        agreed * 100 >= compared * 98,
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
