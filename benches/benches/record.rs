//! Recording benchmarks: the cost of one recorded event (a decision, masked through the
//! detector, hashed into the chain; a signed checkpoint every 1,000 records) to a sink that
//! drops it and to a file with fsync at checkpoints; the same MCP tool call through a session
//! with and without a recorder (the cost recording adds per event, in the same run).
//! Run: `cargo bench -p sluice-benches --bench record`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use sluice_core::Detector;
use sluice_core::policy::{Dialect, Engine, EngineHandle, Identity, Request, Target};
use sluice_core::record::{CallbackSink, FileSink, Fsync, RecordOptions, Recorder, SessionStart};
use sluice_core::session::mcp::McpSession;
use sluice_core::session::{Guard, Output};

const SQL: &str = "SELECT id, email, created_at FROM users WHERE id = 42 AND status = 'active'";

fn options() -> RecordOptions {
    RecordOptions {
        fsync: Fsync::Checkpoint,
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(10),
        ..RecordOptions::default()
    }
}

fn discarding(key: &SigningKey, det: &Arc<Detector>) -> Recorder {
    Recorder::start(
        Box::new(CallbackSink(|_: &[u8]| Ok(()))),
        key,
        SessionStart::new("postgres"),
        options(),
    )
    .expect("starts")
    .with_detector(Arc::clone(det))
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let det = Arc::new(Detector::builder().build().expect("detector"));
    let engine = Engine::agent_safe();
    let (id, target) = (Identity::new("agent-7"), Target::new("app"));
    let request = Request::Sql {
        text: SQL,
        dialect: Dialect::Postgres,
        lexing: Default::default(),
    };
    let decision = engine.decide(&id, &target, &request);

    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let rec = discarding(&key, &det);
    g.bench_function("decision/discarding-sink", |b| {
        b.iter(|| rec.decision(black_box(&request), "agent-7", "app", SQL, &decision));
    });
    let rows = "42 | alice@example.org | 2026-11-25 10:15:02+00\n".repeat(20);
    g.bench_function("output-1k/discarding-sink", |b| {
        b.iter(|| rec.output("sql", black_box(rows.as_bytes())));
    });
    // To a file, fsync at every checkpoint: a new file per sample (deleted after), closed
    // (final checkpoint, synced) inside the measured time.
    let dir = std::env::temp_dir().join(format!("sluice-bench-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut n = 0u64;
    g.bench_function("decision/file-fsync-at-checkpoints", |b| {
        b.iter_custom(|iters| {
            n += 1;
            let path = dir.join(format!("{n}.jsonl"));
            let start = Instant::now();
            let rec = Recorder::start(
                Box::new(FileSink::create(&path).expect("file")),
                &key,
                SessionStart::new("postgres"),
                options(),
            )
            .expect("starts")
            .with_detector(Arc::clone(&det));
            for _ in 0..iters {
                rec.decision(&request, "agent-7", "app", SQL, &decision);
            }
            rec.close().expect("closes");
            let took = start.elapsed();
            std::fs::remove_file(&path).ok();
            took
        });
    });
    g.finish();
    std::fs::remove_dir_all(&dir).ok();

    // What recording adds to a session's event: one allowed MCP tool call, with and without a
    // recorder (the call's decision record; the forwarded bytes go to the server, not recorded).
    let mut g = c.benchmark_group("record/mcp-tools-call");
    g.throughput(Throughput::Elements(1));
    let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
    let guard = Arc::new(Guard::new(Arc::clone(&policy), Arc::clone(&det)));
    let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_command","arguments":{"command":"cargo test --workspace"}}}"#;
    for (name, guard) in [
        ("recording-off", Arc::clone(&guard)),
        (
            "recording-on",
            Arc::new(guard.with_recorder(Arc::new(discarding(&key, &det)))),
        ),
    ] {
        let mut s = McpSession::new(guard, id.clone(), target.clone());
        let mut out = Output::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                s.client_message(black_box(call), &mut out).expect("handled");
                // Answer it, so the session does not accumulate pending requests.
                s.server_message(br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#, &mut out)
                    .expect("handled");
            });
        });
    }
    g.finish();
}

criterion_group!(record, benches);
criterion_main!(record);
