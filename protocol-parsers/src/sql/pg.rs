//! PostgreSQL's own grammar (`libpg_query`, through the `pg_query` crate): each statement's parse
//! tree is walked for what policy decides on. The tree is read generically (every object of the
//! JSON form of the tree is visited), so a relation, function call, operator or statement
//! nested anywhere, in any node type, is seen; the statement node types are then read for
//! their kind, targets and bodies.

use pg_query::ParserOptions;
use serde_json::{Map, Value};

use super::{CopyTarget, Error, ErrorKind, Kind, Lexing, Statement};

/// How deep bodies inside bodies are followed (a DO block's EXECUTE string's function body …).
const MAX_NESTING: usize = 8;

/// The operators of a PostgreSQL 15 installation without extensions (`pg_operator`). Any other
/// operator is one somebody created, bound to a function this analysis cannot see: not certain.
const BUILTIN_OPERATORS: &[&str] = &[
    "!!", "!~", "!~*", "!~~", "!~~*", "#", "##", "#-", "#>", "#>>", "%", "&", "&&", "&<", "&<|", "&>", "*", "*<",
    "*<=", "*<>", "*=", "*>", "*>=", "+", "-", "->", "->>", "-|-", "/", "<", "<->", "<<", "<<=", "<<|", "<=", "<>",
    "<@", "<^", "=", ">", ">=", ">>", ">>=", ">^", "?", "?#", "?&", "?-", "?-|", "?|", "?||", "@", "@-@", "@>", "@?",
    "@@", "@@@", "^", "^@", "|", "|&>", "|/", "|>>", "||", "||/", "~", "~*", "~<=~", "~<~", "~=", "~>=~", "~>~", "~~",
    "~~*",
];

/// Functions whose argument is SQL text they run: the text is analysed when it is a literal.
pub(super) const RUNS_SQL: &[&str] = &[
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "ts_stat",
    "dblink",
    "dblink_exec",
    "dblink_open",
    "dblink_send_query",
];

/// Functions whose first argument names a relation they read whole.
pub(super) const READS_RELATION: &[&str] = &["table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema"];

/// Functions that read a whole schema or database: what they read is not named in the call.
pub(super) const READS_ALL: &[&str] = &[
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "cursor_to_xml",
];

/// Whether the grammar reads more into a call of this function than its name.
pub(super) fn special_function(name: &str) -> bool {
    RUNS_SQL.contains(&name) || READS_RELATION.contains(&name) || READS_ALL.contains(&name) || name == "set_config"
}

/// Analyses every statement of `sql` with PostgreSQL's grammar.
pub(super) fn analyze(sql: &str, lx: &Lexing, depth: usize) -> Result<Vec<Statement>, Error> {
    analyze_mode(sql, lx, depth, ParserOptions::DEFAULT)
}

fn analyze_mode(sql: &str, lx: &Lexing, depth: usize, mode: ParserOptions) -> Result<Vec<Statement>, Error> {
    if let Some(nul) = sql.bytes().position(|b| b == 0) {
        return Err(Error::new(ErrorKind::Nul, nul));
    }
    let mut opts = mode;
    if !lx.standard_conforming_strings {
        opts |= ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS;
    }
    let parsed = pg_query::parse(sql, opts).map_err(|e| Error::new(ErrorKind::Syntax, 0).with_source(e))?;
    let tree =
        serde_json::to_value(&parsed.protobuf).map_err(|e| Error::new(ErrorKind::ParseTree, 0).with_source(e))?;
    let mut out = Vec::new();
    for raw in tree["stmts"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let start = raw["stmt_location"].as_u64().unwrap_or(0) as usize;
        let len = raw["stmt_len"].as_u64().unwrap_or(0) as usize;
        let end = if len == 0 {
            sql.len()
        } else {
            (start + len).min(sql.len())
        };
        let mut cx = Cx { sql, lx, depth };
        out.push(cx.statement(&raw["stmt"], (start, end)));
    }
    Ok(out)
}

/// `{"node": {"Type": body}}` or `{"Type": body}`: the type and body.
fn typed(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    let o = match o.get("node") {
        Some(Value::Object(inner)) if o.len() == 1 => inner,
        _ => o,
    };
    if o.len() != 1 {
        return None;
    }
    let (k, body) = o.iter().next()?;
    k.starts_with(|c: char| c.is_ascii_uppercase())
        .then_some((k.as_str(), body))
}

/// The strings of a list of `String` nodes (a qualified name).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| match typed(n) {
                    Some(("String", s)) => s["sval"].as_str().map(str::to_string),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A RangeVar's name, qualified as written.
fn range_var(o: &Map<String, Value>) -> String {
    ["catalogname", "schemaname", "relname"]
        .iter()
        .filter_map(|k| o.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A string constant (`'…'`, possibly cast: `'x'::regclass`).
fn string_const(v: &Value) -> Option<&str> {
    match typed(v)? {
        ("AConst", c) => c["val"]["Sval"]["sval"].as_str(),
        ("TypeCast", c) => string_const(&c["arg"]),
        _ => None,
    }
}

/// A name as PostgreSQL reads an identifier list in a string (`'Public.t'` is `public.t`,
/// `'"T"'` is `T`).
fn identifier_text(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            while let Some(q) = chars.next() {
                if q == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        out.push('"');
                    } else {
                        break;
                    }
                } else {
                    out.push(q);
                }
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

struct Cx<'a> {
    sql: &'a str,
    lx: &'a Lexing,
    depth: usize,
}

/// What the generic walk of one statement collects.
struct Walk {
    s: Statement,
    /// The RangeVars that are the statement's targets (written, not read).
    targets: Vec<*const Value>,
    /// Inside a query (a SELECT) of a DDL statement: its relations are read.
    ddl: bool,
}

impl Cx<'_> {
    fn nested(&self) -> Cx<'_> {
        Cx {
            sql: self.sql,
            lx: self.lx,
            depth: self.depth + 1,
        }
    }

    /// Analyses SQL text found inside a statement (a body, an EXECUTE string) into `s.nested`.
    fn text(&self, text: &str, s: &mut Statement) {
        self.text_mode(text, ParserOptions::DEFAULT, s);
    }

    fn text_mode(&self, text: &str, mode: ParserOptions, s: &mut Statement) {
        if self.depth >= MAX_NESTING {
            s.certain = false;
            return;
        }
        // The text is a value already decoded by the parser: read it under default lexing.
        match analyze_mode(text, &Lexing::default(), self.depth + 1, mode) {
            Ok(inner) => s.nested.extend(inner),
            Err(_) => s.certain = false,
        }
    }

    fn statement(&mut self, node: &Value, span: (usize, usize)) -> Statement {
        let Some((ty, body)) = typed(node) else {
            let mut s = Statement::new(Kind::Other, span);
            s.certain = false;
            return s;
        };
        let kind = kind_of(ty, body);
        let mut w = Walk {
            s: Statement::new(kind, span),
            targets: Vec::new(),
            ddl: matches!(kind, Kind::Create | Kind::Alter | Kind::Drop | Kind::Truncate),
        };
        if kind == Kind::Other {
            w.s.certain = false;
        }
        self.specifics(ty, body, &mut w);
        // Every node of the statement, for relations, calls, operators and inner statements.
        self.walk(body, &mut w, ty == "SelectStmt");
        let mut s = w.s;
        let mut cols = Columns::default();
        cols.statement(ty, body, self.depth == 0);
        s.computed = cols.out;
        if s.nested.iter().any(|n| !n.certain) {
            s.certain = false;
        }
        for list in [
            &mut s.reads,
            &mut s.writes,
            &mut s.functions,
            &mut s.sets,
            &mut s.languages,
            &mut s.computed,
        ] {
            list.sort();
            list.dedup();
        }
        s
    }

    /// What depends on the statement's type: targets, WHERE, COPY, bodies, parameters.
    fn specifics(&mut self, ty: &str, b: &Value, w: &mut Walk) {
        let s = &mut w.s;
        let target = |v: &Value, s: &mut Statement, targets: &mut Vec<*const Value>| {
            if let Some(o) = v.as_object()
                && o.contains_key("relname")
            {
                s.writes.push(range_var(o));
                targets.push(v as *const Value);
            }
        };
        match ty {
            "InsertStmt" | "MergeStmt" => target(&b["relation"], s, &mut w.targets),
            "UpdateStmt" | "DeleteStmt" => {
                target(&b["relation"], s, &mut w.targets);
                s.has_where = bounds(&b["where_clause"]);
            }
            "SelectStmt" => target(&b["into_clause"]["rel"], s, &mut w.targets),
            "CopyStmt" => {
                let from = b["is_from"].as_bool().unwrap_or(false);
                s.copy_from = from;
                if from {
                    target(&b["relation"], s, &mut w.targets);
                }
                let file = b["filename"].as_str().unwrap_or("");
                s.copy_target = Some(if b["is_program"].as_bool().unwrap_or(false) {
                    CopyTarget::Program(file.to_string())
                } else if file.is_empty() {
                    CopyTarget::Client
                } else {
                    CopyTarget::File(file.to_string())
                });
            }
            "DropStmt" => {
                for o in b["objects"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    match typed(o) {
                        Some(("List", l)) => s.writes.push(strings(&l["items"]).join(".")),
                        Some(("String", x)) => s.writes.extend(x["sval"].as_str().map(str::to_string)),
                        Some(("ObjectWithArgs", f)) => s.writes.push(strings(&f["objname"]).join(".")),
                        Some(("TypeName", t)) => s.writes.push(strings(&t["names"]).join(".")),
                        _ => s.certain = false,
                    }
                }
            }
            "DropdbStmt" | "CreatedbStmt" => s.writes.extend(b["dbname"].as_str().map(str::to_string)),
            "VariableSetStmt" => {
                // VAR_RESET_ALL (6): every parameter, the role included.
                let name = b["name"].as_str().unwrap_or("");
                s.sets.push(if name.is_empty() {
                    "all".into()
                } else {
                    name.to_ascii_lowercase()
                });
            }
            // DISCARD ALL (1) resets every parameter.
            "DiscardStmt" if b["target"].as_i64() == Some(1) => s.sets.push("all".into()),
            "AlterSystemStmt" => {
                // Writes the server's configuration file: what it changes is not analysed.
                s.certain = false;
            }
            "ExecuteStmt" => s.certain = false, // a statement prepared earlier, by name
            "CreateFunctionStmt" => {
                s.writes.push(strings(&b["funcname"]).join("."));
                self.function_body(b, s);
            }
            "DoStmt" => {
                let mut language = "plpgsql".to_string();
                let mut code = None;
                for d in b["args"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    if let Some(("DefElem", d)) = typed(d) {
                        let arg = d["arg"]["String"]["sval"]
                            .as_str()
                            .or_else(|| d["arg"]["node"]["String"]["sval"].as_str());
                        match d["defname"].as_str() {
                            Some("language") => language = arg.unwrap_or_default().to_ascii_lowercase(),
                            Some("as") => code = arg,
                            _ => {}
                        }
                    }
                }
                s.languages.push(language.clone());
                match (language.as_str(), code) {
                    ("plpgsql", Some(code)) => self.plpgsql(&do_as_function(code), s),
                    ("sql", Some(code)) => self.text(code, s),
                    _ => s.certain = false,
                }
            }
            "DefineStmt" => {
                // CREATE OPERATOR / AGGREGATE / TYPE …: the support functions it binds.
                for d in b["definition"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    if let Some(("DefElem", d)) = typed(d)
                        && d["defname"].as_str().is_some_and(|n| {
                            matches!(
                                n,
                                "procedure"
                                    | "function"
                                    | "sfunc"
                                    | "finalfunc"
                                    | "combinefunc"
                                    | "serialfunc"
                                    | "deserialfunc"
                                    | "msfunc"
                                    | "minvfunc"
                                    | "mfinalfunc"
                                    | "input"
                                    | "output"
                                    | "receive"
                                    | "send"
                                    | "typmod_in"
                                    | "typmod_out"
                                    | "analyze"
                                    | "subscript"
                                    | "restrict"
                                    | "join"
                            )
                        })
                    {
                        match typed(&d["arg"]) {
                            Some(("TypeName", t)) => s.functions.push(strings(&t["names"]).join(".")),
                            Some(("List", l)) => s.functions.push(strings(&l["items"]).join(".")),
                            Some(("String", x)) => s.functions.extend(x["sval"].as_str().map(str::to_string)),
                            _ => s.certain = false,
                        }
                    }
                }
            }
            "CreateTrigStmt" | "CreateEventTrigStmt" => s.functions.push(strings(&b["funcname"]).join(".")),
            "CreateCastStmt" | "CreateTransformStmt" => {
                for k in ["func", "fromsql", "tosql"] {
                    let n = strings(&b[k]["objname"]);
                    if !n.is_empty() {
                        s.functions.push(n.join("."));
                    }
                }
            }
            "CreatePLangStmt" => {
                s.languages.extend(b["plname"].as_str().map(str::to_ascii_lowercase));
                s.certain = false;
            }
            _ => {}
        }
    }

    /// A function's body: SQL and PL/pgSQL bodies are analysed; C and `internal` functions bind
    /// a server symbol (named as a function, so the server-function rules see it); any other
    /// language is code this analysis does not read.
    fn function_body(&mut self, b: &Value, s: &mut Statement) {
        let mut language = String::from("sql");
        let mut code: Vec<String> = Vec::new();
        for d in b["options"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if let Some(("DefElem", d)) = typed(d) {
                match d["defname"].as_str() {
                    Some("language") => {
                        language = d["arg"]["node"]["String"]["sval"]
                            .as_str()
                            .unwrap_or("")
                            .to_ascii_lowercase()
                    }
                    Some("as") => match typed(&d["arg"]) {
                        Some(("List", l)) => code = strings(&l["items"]),
                        Some(("String", x)) => code = x["sval"].as_str().map(str::to_string).into_iter().collect(),
                        _ => s.certain = false,
                    },
                    _ => {}
                }
            }
        }
        let atomic = !b["sql_body"].is_null();
        s.languages.push(language.clone());
        match language.as_str() {
            // BEGIN ATOMIC … END: the statements are in the tree (the walk finds them).
            "sql" if atomic => {}
            "sql" => match code.as_slice() {
                [text] => self.text(text, s),
                _ => s.certain = false,
            },
            "plpgsql" => {
                let text = &self.sql[s.span.0..s.span.1];
                if self.lx.standard_conforming_strings || !text.contains('\\') {
                    self.plpgsql(text, s);
                } else {
                    s.certain = false;
                }
            }
            "c" | "internal" => {
                // `AS 'obj_file', 'symbol'` (C) or `AS 'symbol'` (internal).
                if let Some(symbol) = code.last() {
                    s.functions.push(symbol.to_ascii_lowercase());
                }
            }
            _ => s.certain = false,
        }
    }

    /// A PL/pgSQL function (`CREATE FUNCTION … LANGUAGE plpgsql` text): every SQL statement and
    /// expression in it is analysed; a dynamic EXECUTE of anything but a literal is not certain.
    fn plpgsql(&mut self, function_sql: &str, s: &mut Statement) {
        if self.depth >= MAX_NESTING {
            s.certain = false;
            return;
        }
        match pg_query::parse_plpgsql(function_sql) {
            Ok(tree) => self.plpgsql_walk(&tree, s),
            Err(_) => s.certain = false,
        }
    }

    fn plpgsql_walk(&mut self, v: &Value, s: &mut Statement) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match k.as_str() {
                        "PLpgSQL_expr" => {
                            let query = x["query"].as_str().unwrap_or("");
                            let mode = x["parseMode"].as_i64().unwrap_or(0) as i32;
                            self.text_mode(query, ParserOptions::from(mode), s);
                        }
                        // EXECUTE / FOR … IN EXECUTE / OPEN … FOR EXECUTE / RETURN QUERY EXECUTE.
                        "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => {
                            self.dynamic(&x["query"], s);
                            self.plpgsql_walk_except(x, "query", s);
                        }
                        "dynquery" => self.dynamic(x, s),
                        _ => self.plpgsql_walk(x, s),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.plpgsql_walk(x, s)),
            _ => {}
        }
    }

    fn plpgsql_walk_except(&mut self, v: &Value, skip: &str, s: &mut Statement) {
        if let Value::Object(o) = v {
            for (k, x) in o {
                if k != skip {
                    self.plpgsql_walk(x, s);
                }
            }
        }
    }

    /// A dynamic query expression: a string literal is analysed as SQL; anything built at run
    /// time is not certain (the expression itself is still analysed).
    fn dynamic(&mut self, expr: &Value, s: &mut Statement) {
        let text = expr["PLpgSQL_expr"]["query"].as_str().unwrap_or("");
        let literal = pg_query::parse(text, ParserOptions::PLPGSQL_EXPR).ok().and_then(|p| {
            let tree = serde_json::to_value(&p.protobuf).ok()?;
            let stmt = &tree["stmts"][0]["stmt"]["node"]["SelectStmt"];
            let targets = stmt["target_list"].as_array()?;
            match targets.as_slice() {
                [t] => string_const(&t["node"]["ResTarget"]["val"]).map(str::to_string),
                _ => None,
            }
        });
        match literal {
            Some(sql) => self.text(&sql, s),
            None => {
                s.certain = false;
                self.text_mode(text, ParserOptions::PLPGSQL_EXPR, s);
            }
        }
    }

    /// Visits every node under `v`.
    fn walk(&mut self, v: &Value, w: &mut Walk, in_query: bool) {
        match v {
            Value::Object(o) => {
                if o.contains_key("relname") && o.contains_key("schemaname") {
                    if !w.targets.contains(&(v as *const Value)) {
                        let name = range_var(o);
                        if w.ddl && !in_query {
                            w.s.writes.push(name);
                        } else {
                            w.s.reads.push(name);
                        }
                    }
                    return;
                }
                if let Some((ty, body)) = typed(v) {
                    self.node(ty, body, w, in_query);
                    return;
                }
                for x in o.values() {
                    self.walk(x, w, in_query);
                }
            }
            Value::Array(a) => {
                for x in a {
                    self.walk(x, w, in_query);
                }
            }
            _ => {}
        }
    }

    fn node(&mut self, ty: &str, body: &Value, w: &mut Walk, in_query: bool) {
        match ty {
            "SelectStmt" => return self.walk(body, w, true),
            t if t.ends_with("Stmt") => {
                // A statement inside this one (a data-modifying CTE, a rule action, a BEGIN
                // ATOMIC body, EXPLAIN's and PREPARE's target, a function's SET clause).
                if matches!(t, "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt") {
                    w.s.writable_cte = true;
                }
                if self.depth >= MAX_NESTING {
                    w.s.certain = false;
                    return;
                }
                let mut inner = self.nested();
                let n = inner.statement(&serde_json::json!({ t: body }), w.s.span);
                w.s.nested.push(n);
                return;
            }
            "FuncCall" => self.call(body, w),
            "AExpr" => {
                let name = strings(&body["name"]);
                let known = match name.as_slice() {
                    [op] => BUILTIN_OPERATORS.contains(&op.as_str()),
                    [schema, op] => schema == "pg_catalog" && BUILTIN_OPERATORS.contains(&op.as_str()),
                    _ => false,
                };
                if !known {
                    w.s.certain = false;
                }
            }
            _ => {}
        }
        self.walk(body, w, in_query);
    }

    /// A function call: its name, and what it runs or reads.
    fn call(&mut self, f: &Value, w: &mut Walk) {
        let name = strings(&f["funcname"]);
        let qualified = name.join(".");
        let last = name.last().map(String::as_str).unwrap_or("");
        let pg_catalog_or_bare = name.len() == 1 || name.first().is_some_and(|s| s == "pg_catalog");
        let args = f["args"].as_array().map(Vec::as_slice).unwrap_or_default();
        let s = &mut w.s;
        s.functions.push(qualified);
        if !pg_catalog_or_bare {
            return;
        }
        if RUNS_SQL.contains(&last) {
            // query_to_xml(query, …) runs its first argument; dblink*(…, sql) its last string.
            let text = if last.starts_with("dblink") {
                args.iter().rev().find_map(string_const)
            } else {
                args.first().and_then(string_const)
            };
            match text {
                Some(t) => {
                    let t = t.to_string();
                    self.text(&t, &mut w.s);
                }
                None => w.s.certain = false,
            }
        } else if READS_RELATION.contains(&last) {
            match args.first().and_then(string_const) {
                Some(t) => s.reads.push(identifier_text(t)),
                None => s.certain = false,
            }
        } else if READS_ALL.contains(&last) {
            s.certain = false;
        } else if last == "set_config" {
            match args.first().and_then(string_const) {
                Some(p) => {
                    let p = p.trim().to_ascii_lowercase();
                    if matches!(p.as_str(), "role" | "session_authorization") {
                        s.kind = Kind::Role;
                    }
                    s.sets.push(p);
                }
                None => s.certain = false,
            }
        }
    }
}

/// A DO block's code as a PL/pgSQL function, for the PL/pgSQL parser.
fn do_as_function(code: &str) -> String {
    let mut tag = String::from("$sluice_do$");
    while code.contains(&tag) {
        tag.insert(1, 'x');
    }
    format!("CREATE FUNCTION sluice_do() RETURNS void LANGUAGE plpgsql AS {tag}{code}{tag}")
}

/// Whether a WHERE clause bounds the rows: it names a column outside any subquery (or is
/// `WHERE CURRENT OF`). Constants alone (`WHERE true`, `WHERE 1 = 1`) bound nothing.
fn bounds(w: &Value) -> bool {
    fn names_column(v: &Value) -> bool {
        match v {
            Value::Object(o) => match typed(v) {
                Some(("ColumnRef" | "CurrentOfExpr", _)) => true,
                Some(("SubLink", l)) => names_column(&l["testexpr"]),
                Some((_, body)) => names_column(body),
                None => o.values().any(names_column),
            },
            Value::Array(a) => a.iter().any(names_column),
            _ => false,
        }
    }
    !w.is_null() && names_column(w)
}

/// The kind of a statement node.
fn kind_of(ty: &str, b: &Value) -> Kind {
    let role_param = || {
        matches!(
            b["name"].as_str().map(str::to_ascii_lowercase).as_deref(),
            Some("role" | "session_authorization")
        )
    };
    match ty {
        "SelectStmt" if !b["into_clause"].is_null() => Kind::Create,
        "SelectStmt" | "DeclareCursorStmt" | "FetchStmt" | "ClosePortalStmt" => Kind::Select,
        "InsertStmt" => Kind::Insert,
        "UpdateStmt" => Kind::Update,
        "DeleteStmt" => Kind::Delete,
        "MergeStmt" => Kind::Merge,
        "CopyStmt" => Kind::Copy,
        "CreateRoleStmt"
        | "AlterRoleStmt"
        | "DropRoleStmt"
        | "AlterRoleSetStmt"
        | "GrantRoleStmt"
        | "CreateUserMappingStmt"
        | "AlterUserMappingStmt"
        | "DropUserMappingStmt"
        | "ReassignOwnedStmt" => Kind::Role,
        "VariableSetStmt" if role_param() => Kind::Role,
        "VariableSetStmt" if b["kind"].as_i64() == Some(6) => Kind::Set,
        "VariableSetStmt" | "DiscardStmt" => Kind::Set,
        "VariableShowStmt" => Kind::Show,
        "GrantStmt" if b["is_grant"].as_bool() == Some(true) => Kind::Grant,
        "GrantStmt" => Kind::Revoke,
        "AlterDefaultPrivilegesStmt" => Kind::Grant,
        "TruncateStmt" => Kind::Truncate,
        "DropStmt" | "DropdbStmt" | "DropOwnedStmt" | "DropTableSpaceStmt" | "DropSubscriptionStmt" => Kind::Drop,
        // ALTER TABLE … DROP COLUMN / CONSTRAINT, DETACH PARTITION: data goes.
        "AlterTableStmt" if alter_drops(b) => Kind::Drop,
        "AlterSystemStmt" => Kind::Alter,
        t if t.starts_with("Alter") || t == "RenameStmt" || t == "CommentStmt" => Kind::Alter,
        t if t.starts_with("Create") || t == "DefineStmt" || t == "ViewStmt" || t == "IndexStmt" || t == "RuleStmt" => {
            Kind::Create
        }
        "CompositeTypeStmt" | "RefreshMatViewStmt" => Kind::Create,
        "TransactionStmt" => Kind::Transaction,
        "CallStmt" => Kind::Call,
        "DoStmt" => Kind::Do,
        "ExecuteStmt" | "PrepareStmt" | "DeallocateStmt" => Kind::Execute,
        "ExplainStmt" => Kind::Explain,
        "ListenStmt" | "UnlistenStmt" | "NotifyStmt" => Kind::Listen,
        _ => Kind::Other,
    }
}

/// Whether an ALTER TABLE removes data: a DROP subcommand (column, constraint, …) or DETACH
/// PARTITION.
fn alter_drops(b: &Value) -> bool {
    use pg_query::protobuf::AlterTableType as A;
    let drops = [
        A::AtDropColumn,
        A::AtDropConstraint,
        A::AtDropNotNull,
        A::AtDropExpression,
        A::AtDropIdentity,
        A::AtDetachPartition,
        A::AtDetachPartitionFinalize,
        A::AtDropOf,
        A::AtDropInherit,
        A::AtDropCluster,
        A::AtDropOids,
    ];
    b["cmds"].as_array().is_some_and(|cmds| {
        cmds.iter().any(|c| {
            let sub = c["node"]["AlterTableCmd"]["subtype"].as_i64();
            drops.iter().any(|d| sub == Some(*d as i64))
        })
    })
}

/// The columns computations use (see [`Statement::computed`]): a walk with the relations in
/// scope (alias → relation) of each enclosing query.
#[derive(Default)]
struct Columns {
    scopes: Vec<Vec<(String, String)>>,
    out: Vec<String>,
}

impl Columns {
    /// A statement: only a root SELECT may read columns bare.
    fn statement(&mut self, ty: &str, b: &Value, root: bool) {
        match ty {
            "SelectStmt" => self.select(b, root),
            // `COPY (query) TO STDOUT` sends rows like a SELECT (masked alike).
            "CopyStmt" if root && b["filename"].as_str().is_none_or(str::is_empty) => match typed(&b["query"]) {
                Some(("SelectStmt", q)) => self.select(q, true),
                _ => self.visit(b),
            },
            "UpdateStmt" | "DeleteStmt" | "InsertStmt" | "MergeStmt" => {
                let mut scope = Vec::new();
                add_range(&b["relation"], &mut scope);
                for k in ["from_clause", "using_clause"] {
                    for item in b[k].as_array().map(Vec::as_slice).unwrap_or_default() {
                        add_from(item, &mut scope);
                    }
                }
                if ty == "MergeStmt" {
                    add_from(&b["source_relation"], &mut scope);
                }
                self.scopes.push(scope);
                self.visit(b);
                self.scopes.pop();
            }
            _ => self.visit(b),
        }
    }

    /// A SELECT: its FROM items are in scope for everything in it.
    fn select(&mut self, b: &Value, top: bool) {
        let mut scope = Vec::new();
        for item in b["from_clause"].as_array().map(Vec::as_slice).unwrap_or_default() {
            add_from(item, &mut scope);
        }
        self.scopes.push(scope);
        // Bare reads: a plain SELECT (no set operation, no DISTINCT, not sorted or grouped by
        // target position), columns that are a whole target item.
        let by_position = |k: &str| {
            b[k].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    let e = x["node"]["SortBy"]["node"].clone();
                    matches!(typed(&e), Some(("AConst", _))) || matches!(typed(x), Some(("AConst", _)))
                })
            })
        };
        let plain = top
            && b["op"].as_i64() == Some(1)
            && b["distinct_clause"].as_array().is_none_or(Vec::is_empty)
            && b["into_clause"].is_null()
            && !by_position("sort_clause")
            && !by_position("group_clause");
        if let Some(obj) = b.as_object() {
            for (k, v) in obj {
                if k == "larg" || k == "rarg" {
                    // The sides of a set operation (UNION compares rows): SELECTs of their own.
                    if v.is_object() {
                        self.select(v, false);
                    }
                } else if k == "target_list" && plain {
                    for t in v.as_array().map(Vec::as_slice).unwrap_or_default() {
                        let val = &t["node"]["ResTarget"]["val"];
                        match typed(val) {
                            // A named column or `t.*` / `*`: read bare. A lone name that is a
                            // relation in scope is a whole row (`SELECT k FROM api_keys k`):
                            // computed on.
                            Some(("ColumnRef", c)) => {
                                let parts = strings(&c["fields"]);
                                let whole_row =
                                    !has_star(c) && parts.len() == 1 && self.in_scope().any(|(a, _)| *a == parts[0]);
                                if whole_row {
                                    self.visit(t);
                                }
                            }
                            _ => self.visit(t),
                        }
                    }
                } else {
                    self.visit(v);
                }
            }
        }
        self.scopes.pop();
    }

    fn visit(&mut self, v: &Value) {
        match v {
            Value::Object(o) => match typed(v) {
                Some(("SelectStmt", b)) => self.select(b, false),
                Some((t, b)) if t.ends_with("Stmt") => self.statement(t, b, false),
                Some(("ColumnRef", c)) => self.column(c),
                Some((_, b)) => self.visit(b),
                None => o.values().for_each(|x| self.visit(x)),
            },
            Value::Array(a) => a.iter().for_each(|x| self.visit(x)),
            _ => {}
        }
    }

    /// The relations in scope, innermost first.
    fn in_scope(&self) -> impl Iterator<Item = &(String, String)> {
        self.scopes.iter().rev().flatten()
    }

    fn resolve(&self, qualifier: &str) -> String {
        self.in_scope()
            .find(|(alias, _)| alias == qualifier)
            .map_or_else(|| qualifier.to_string(), |(_, rel)| rel.clone())
    }

    /// A column used in a computation.
    fn column(&mut self, c: &Value) {
        let parts = strings(&c["fields"]);
        let star = has_star(c);
        let mut found = Vec::new();
        match (parts.as_slice(), star) {
            ([], true) => found.extend(self.in_scope().map(|(_, r)| format!("{r}.*"))),
            ([q], true) => found.push(format!("{}.*", self.resolve(q))),
            ([col], false) => {
                // A column of any relation in scope, or a whole row of the one so named.
                let rels: Vec<String> = self.in_scope().map(|(_, r)| r.clone()).collect();
                if rels.is_empty() {
                    found.push(col.clone());
                }
                found.extend(rels.iter().map(|r| format!("{r}.{col}")));
                if self.in_scope().any(|(a, _)| a == col) {
                    found.push(format!("{}.*", self.resolve(col)));
                }
            }
            ([q, col], false) => found.push(format!("{}.{col}", self.resolve(q))),
            (more, false) => found.push(more.join(".")),
            (more, true) => found.push(format!("{}.*", more.join("."))),
        }
        self.out.extend(found);
    }
}

fn has_star(c: &Value) -> bool {
    c["fields"]
        .as_array()
        .is_some_and(|f| f.iter().any(|n| matches!(typed(n), Some(("AStar", _)))))
}

/// A FROM item's relations: `(alias or name, relation)`.
fn add_from(item: &Value, scope: &mut Vec<(String, String)>) {
    match typed(item) {
        Some(("RangeVar", _)) | None => add_range(item, scope),
        Some(("JoinExpr", j)) => {
            add_from(&j["larg"], scope);
            add_from(&j["rarg"], scope);
        }
        Some(("RangeSubselect" | "RangeFunction" | "RangeTableFunc" | "RangeTableSample", r)) => {
            if let Some(a) = r["alias"]["aliasname"].as_str() {
                scope.push((a.to_string(), a.to_string()));
            }
            if let Some(("RangeVar", _)) = typed(&r["relation"]) {
                add_range(&r["relation"], scope);
            }
        }
        _ => {}
    }
}

fn add_range(v: &Value, scope: &mut Vec<(String, String)>) {
    let o = match typed(v) {
        Some(("RangeVar", b)) => b.as_object(),
        _ => v.as_object(),
    };
    if let Some(o) = o
        && o.contains_key("relname")
    {
        let rel = range_var(o);
        let name = o
            .get("alias")
            .and_then(|a| a["aliasname"].as_str())
            .map_or_else(|| o["relname"].as_str().unwrap_or("").to_string(), str::to_string);
        scope.push((name, rel));
    }
}
