//! Protocol parser benchmarks, each checking what it parsed.
//! Run: `cargo bench -p sluice-benches --bench protocols`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_protocols::{http, postgres, shell, sql};

/// A result set as a server streams it: 1,000 DataRows of five text columns.
fn pg_rows() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..1000u32 {
        let id = i.to_string();
        let email = format!("user{i}@example.org");
        postgres::encode_data_row(
            &[
                Some(id.as_bytes()),
                Some(email.as_bytes()),
                Some(b"active"),
                None,
                Some(b"2026-11-25 10:15:02.123456+00"),
            ],
            &mut buf,
        );
    }
    buf
}

fn benches(c: &mut Criterion) {
    let rows = pg_rows();
    let limits = postgres::Limits::default();
    let mut g = c.benchmark_group("postgres");
    g.throughput(Throughput::Bytes(rows.len() as u64));
    g.bench_function("data-row-parse", |b| {
        b.iter(|| {
            let (mut at, mut n) = (0, 0);
            while at < rows.len() {
                let Ok(postgres::Status::Complete((postgres::Backend::DataRow(v), used))) =
                    postgres::parse_backend(&rows[at..], &limits)
                else {
                    panic!("a DataRow at {at}")
                };
                n += v.values().count();
                at += used;
            }
            assert_eq!(n, 5000);
            black_box(n)
        })
    });
    let mut out = Vec::with_capacity(rows.len());
    g.bench_function("data-row-parse-and-reencode", |b| {
        b.iter(|| {
            out.clear();
            let mut at = 0;
            while at < rows.len() {
                let Ok(postgres::Status::Complete((postgres::Backend::DataRow(v), used))) =
                    postgres::parse_backend(&rows[at..], &limits)
                else {
                    panic!("a DataRow at {at}")
                };
                postgres::encode_data_row_iter(v.values(), &mut out);
                at += used;
            }
            assert_eq!(out.len(), rows.len(), "re-encoding reproduces the stream");
            black_box(out.len())
        })
    });
    g.finish();

    let head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.org\r\nUser-Agent: agent/1.0\r\nAccept: application/json\r\nContent-Type: application/json\r\nAuthorization: Bearer placeholder-not-a-token\r\nContent-Length: 512\r\nX-Request-Id: 4deb1888-20fa-41cf-af02-7b62c82b40bd\r\nAccept-Encoding: gzip, br\r\nConnection: keep-alive\r\n\r\n";
    let hl = http::Limits::default();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(head.len() as u64));
    g.bench_function("request-head", |b| {
        b.iter(|| {
            let mut h = [http::EMPTY_HEADER; 32];
            let Ok(http::Status::Complete((req, used))) = http::parse_request(black_box(head), &mut h, &hl) else {
                panic!("a head")
            };
            assert_eq!((req.headers.len(), used), (9, head.len()));
            assert_eq!(http::request_body(&req).ok(), Some(http::BodyKind::ContentLength(512)));
            black_box(used)
        })
    });
    g.finish();
}

fn shell_bench(c: &mut Criterion) {
    let cmd = "cd ~/src/app && git diff --stat HEAD~1 | grep -v test > /tmp/changes.txt; FOO=1 npm run build -- --prod";
    let limits = shell::Limits::default();
    let mut g = c.benchmark_group("shell");
    g.bench_function("typical-command", |b| {
        b.iter(|| {
            let a = shell::analyze(black_box(cmd), &limits).expect("analyses");
            assert_eq!(a.commands.len(), 4);
            assert_eq!(a.writes, ["/tmp/changes.txt"]);
            black_box(a.commands.len())
        })
    });
    // The same line through the bash grammar (brush-parser) rather than the fast path: the
    // cost of the grammar. And a compound line, which only the grammar takes.
    g.bench_function("typical-command-grammar", |b| {
        b.iter(|| {
            let (a, _) =
                shell::analyze_with(black_box(cmd), &limits, Some(shell::Frontend::Grammar)).expect("analyses");
            assert_eq!(a.commands.len(), 4);
            black_box(a.commands.len())
        })
    });
    let compound = "if [ -f Cargo.toml ]; then cargo test 2>&1 | tail -5; else npm test; fi";
    g.bench_function("compound-command", |b| {
        b.iter(|| {
            let a = shell::analyze(black_box(compound), &limits).expect("analyses");
            assert_eq!(a.commands.len(), 4);
            black_box(a.commands.len())
        })
    });
    g.finish();
}

fn sql_bench(c: &mut Criterion) {
    // A typical 200-byte application query.
    let q = "SELECT o.id, o.total, c.email FROM public.orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' AND o.status = 'paid' ORDER BY o.total DESC LIMIT 50";
    let mut g = c.benchmark_group("sql");
    g.bench_function("typical-query", |b| {
        b.iter(|| {
            let s = sql::analyze(black_box(q), sql::Dialect::Postgres).expect("analyses");
            assert_eq!((s.len(), s[0].reads.len()), (1, 2));
            black_box(s.len())
        })
    });
    // The same query through PostgreSQL's grammar (what every statement the fast path declines
    // costs).
    let lx = sql::Lexing::default();
    assert!(
        sql::analyze_with(q, &lx, sql::Frontend::Fast).expect("ok").is_some(),
        "the fast path answers"
    );
    g.bench_function("typical-query-grammar", |b| {
        b.iter(|| {
            let s = sql::analyze_with(black_box(q), &lx, sql::Frontend::Grammar)
                .expect("analyses")
                .expect("grammar answers");
            assert_eq!((s.len(), s[0].reads.len()), (1, 2));
            black_box(s.len())
        })
    });
    // A function with a PL/pgSQL body: the body's statements are parsed too.
    let f = "CREATE FUNCTION audit_touch(k int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN UPDATE audit SET touched = now() WHERE id = k; RETURN k; END $$";
    g.bench_function("plpgsql-function", |b| {
        b.iter(|| {
            let s = sql::analyze(black_box(f), sql::Dialect::Postgres).expect("analyses");
            assert!(s[0].certain && s[0].nested.iter().any(|n| n.kind == sql::Kind::Update));
            black_box(s.len())
        })
    });
    g.finish();
}

criterion_group!(protocols, benches, shell_bench, sql_bench);
criterion_main!(protocols);
