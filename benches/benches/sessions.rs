//! Session benchmarks: a PostgreSQL result set (1,000 rows of five text columns) through
//! `PgSession`, masked, against masking the same values one by one (what the session did before
//! it also joined adjacent fields), in the same run.
//! Run: `cargo bench -p sluice-benches --bench sessions`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::Detector;
use sluice_core::policy::{Engine, EngineHandle};
use sluice_core::session::postgres::PgSession;
use sluice_core::session::{Guard, Output};
use sluice_protocols::postgres;

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn rows() -> (Vec<u8>, Vec<Vec<Vec<u8>>>) {
    let mut buf = Vec::new();
    let mut values = Vec::new();
    for i in 0..1000u32 {
        let row: Vec<Vec<u8>> = vec![
            i.to_string().into_bytes(),
            format!("user{i}@example.org").into_bytes(),
            b"active".to_vec(),
            b"2026-11-25 10:15:02.123456+00".to_vec(),
            format!("note {i}: rotated yearly by the platform team").into_bytes(),
        ];
        let refs: Vec<Option<&[u8]>> = row.iter().map(|v| Some(v.as_slice())).collect();
        postgres::encode_data_row(&refs, &mut buf);
        values.push(row);
    }
    (buf, values)
}

/// A session past authentication with a simple query in flight.
fn session(guard: &Arc<Guard>) -> PgSession {
    let mut s = PgSession::new(guard.clone(), None, None);
    let mut out = Output::default();
    let mut startup = 196_608u32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0agent\0database\0app\0\0");
    let mut first = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&startup);
    s.from_client(&first, &mut out).expect("startup");
    let mut srv = msg(b'R', &0u32.to_be_bytes());
    srv.extend_from_slice(&msg(b'Z', b"I"));
    s.from_server(&srv, &mut out).expect("auth");
    s.from_client(&msg(b'Q', b"SELECT * FROM users\0"), &mut out)
        .expect("query");
    s
}

fn benches(c: &mut Criterion) {
    let det = Arc::new(Detector::builder().build().expect("detector"));
    let guard = Arc::new(Guard::new(
        Arc::new(EngineHandle::new(Engine::agent_safe())),
        det.clone(),
    ));
    let (wire, values) = rows();
    let mut g = c.benchmark_group("postgres-session");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("result-set-masked", |b| {
        let mut out = Output::default();
        b.iter_batched(
            || session(&guard),
            |mut s| {
                out.clear();
                s.from_server(black_box(&wire), &mut out).expect("rows");
                assert_eq!(out.to_client.len(), wire.len());
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("values-one-by-one", |b| {
        b.iter(|| {
            let mut n = 0;
            for row in &values {
                for v in row {
                    n += det.redact(black_box(v)).len();
                }
            }
            n
        })
    });
    g.bench_function("records-joined", |b| {
        b.iter(|| {
            let mut n = 0;
            for row in &values {
                let refs: Vec<Option<&[u8]>> = row.iter().map(|v| Some(v.as_slice())).collect();
                n += det.redact_fields(black_box(&refs), &[]).1;
            }
            n
        })
    });
    g.finish();
}

criterion_group!(sessions, benches);
criterion_main!(sessions);
