//! Policy decision benchmarks: one decision for a typical shell command and SQL query with the
//! embedded agent-safe policy (parse and analysis included), a 1,000-rule policy, and compiling
//! a policy. Each checks the decision it made.
//! Run: `cargo bench -p sluice-benches --bench policy`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_core::policy::{AGENT_SAFE, Action, Dialect, Engine, Identity, Request, Target};

/// A policy of `n` rules: agent-safe's, plus generated rules over programs, paths, tables and
/// hosts of many teams.
fn big_policy(n: usize) -> String {
    let mut p = String::from(
        "version: 1\nname: big\nextends: agent-safe\ndefault: allow\nroles:\n  dba: { groups: [dba] }\nrules:\n",
    );
    let mut i = 0;
    while i < n {
        p.push_str(&format!(
            "  - id: team{i}-tool\n    action: deny\n    when: {{ not_roles: [dba], shell: {{ programs: [tool{i}], args: [\"--prod{i}*\"] }} }}\n"
        ));
        p.push_str(&format!(
            "  - id: team{i}-path\n    action: deny\n    when: {{ shell: {{ paths: [\"/srv/team{i}/secrets/**\"] }} }}\n"
        ));
        p.push_str(&format!(
            "  - id: team{i}-table\n    action: require_approval\n    when: {{ labels: {{ env: prod }}, sql: {{ kinds: [update, delete], relations: [\"team{i}.*\"] }} }}\n"
        ));
        p.push_str(&format!(
            "  - id: team{i}-api\n    action: deny\n    when: {{ http: {{ hosts: [\"api{i}.internal.example.test\"], methods: [DELETE] }} }}\n"
        ));
        i += 4;
    }
    p
}

fn benches(c: &mut Criterion) {
    let safe = Engine::agent_safe();
    let id = Identity::new("agent-7").group("dev");
    let t = Target::new("laptop");
    let db = Target::new("orders").label("env", "prod");
    let shell_cmd = Request::Shell("cargo test --workspace --locked 2>&1 | tail -20");
    let sql_text = "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day' ORDER BY o.total DESC LIMIT 50";
    let sql_q = Request::Sql {
        text: sql_text,
        dialect: Dialect::Postgres,
        lexing: Default::default(),
    };
    let secret = Request::Shell("cat ~/.aws/credentials | base64");
    assert_eq!(safe.decide(&id, &t, &shell_cmd).action(), Action::Allow);
    assert_eq!(safe.decide(&id, &db, &sql_q).action(), Action::Allow);
    assert_eq!(safe.decide(&id, &t, &secret).action(), Action::Deny);

    let mut g = c.benchmark_group("decide/agent-safe");
    g.bench_function("shell-allow", |b| {
        b.iter(|| black_box(safe.decide(&id, &t, black_box(&shell_cmd))))
    });
    g.bench_function("shell-deny", |b| {
        b.iter(|| black_box(safe.decide(&id, &t, black_box(&secret))))
    });
    g.bench_function("sql-select", |b| {
        b.iter(|| black_box(safe.decide(&id, &db, black_box(&sql_q))))
    });
    g.finish();

    // Typical statements an agent sends, from a point lookup to the join above: the SQL
    // decision's p50 is the median of these.
    let typical = [
        ("point-lookup", "SELECT * FROM users WHERE id = 42"),
        (
            "recent",
            "SELECT id, email, created_at FROM users ORDER BY created_at DESC LIMIT 10",
        ),
        (
            "count",
            "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 day'",
        ),
        ("insert", "INSERT INTO events (kind, payload) VALUES ('login', '{}')"),
        ("update", "UPDATE orders SET status = 'shipped' WHERE id = $1"),
        ("delete", "DELETE FROM sessions WHERE expires_at < now()"),
        ("join", sql_text),
    ];
    let mut g = c.benchmark_group("decide/agent-safe-sql");
    for (name, text) in typical {
        let q = Request::Sql {
            text,
            dialect: Dialect::Postgres,
            lexing: Default::default(),
        };
        assert!(!safe.decide(&id, &db, &q).uncertain(), "{text}");
        g.bench_function(name, |b| b.iter(|| black_box(safe.decide(&id, &db, black_box(&q)))));
    }
    g.finish();

    let big_text = big_policy(1000);
    let big = Engine::from_yaml("big", &big_text).expect("compiles");
    assert!(big.rule_count() >= 1000, "{}", big.rule_count());
    assert_eq!(big.decide(&id, &t, &shell_cmd).action(), Action::Allow);
    assert_eq!(
        big.decide(&id, &t, &Request::Shell("tool500 --prod500-eu")).action(),
        Action::Deny
    );
    let mut g = c.benchmark_group("decide/1000-rules");
    g.bench_function("shell-allow", |b| {
        b.iter(|| black_box(big.decide(&id, &t, black_box(&shell_cmd))))
    });
    g.bench_function("sql-select", |b| {
        b.iter(|| black_box(big.decide(&id, &db, black_box(&sql_q))))
    });
    g.finish();

    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    g.bench_function("agent-safe", |b| {
        b.iter(|| black_box(Engine::from_yaml("a", AGENT_SAFE).expect("compiles")))
    });
    g.bench_function("1000-rules", |b| {
        b.iter(|| black_box(Engine::from_yaml("big", &big_text).expect("compiles")))
    });
    g.finish();
}

criterion_group!(policy, benches);
criterion_main!(policy);
