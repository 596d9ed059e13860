//! Detector benchmarks on realistic source text. Each benchmark checks the number of findings
//! it produced, so a fast wrong answer cannot pass.
//!
//! Corpus: Rust source files from the local cargo registry (the dependencies' sources, present
//! after any build), capped at 16 MiB; `SLUICE_BENCH_CORPUS=DIR` picks another directory.
//! Run: `cargo bench -p sluice-benches`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::Detector;

const CAP: usize = 16 * 1024 * 1024;

fn collect(dir: &Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if out.len() >= CAP {
            return;
        }
        if p.is_dir() {
            collect(&p, out);
        } else if p
            .extension()
            .is_some_and(|e| ["rs", "py", "go", "js", "ts", "c", "h"].iter().any(|x| e == *x))
            && let Ok(data) = std::fs::read(&p)
        {
            out.extend_from_slice(&data);
        }
    }
}

fn corpus() -> Vec<u8> {
    let dir = std::env::var_os("SLUICE_BENCH_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
            home.join("registry").join("src")
        });
    let mut out = Vec::with_capacity(CAP);
    collect(&dir, &mut out);
    if out.len() < 1024 * 1024 {
        // Fall back to this repository's own sources, repeated.
        let mut own = Vec::new();
        collect(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")), &mut own);
        while out.len() < 4 * 1024 * 1024 && !own.is_empty() {
            out.extend_from_slice(&own);
        }
    }
    out
}

/// The corpus with a synthetic secret of several kinds inserted every `every` lines.
fn dense(clean: &[u8], every: usize) -> (Vec<u8>, usize) {
    let secrets = [
        "token = \"glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\"",
        "DATABASE_URL=postgres://app:r7Kq2Vx9Lm4Tz8@db.internal:5432/app",
        "aws_access_key_id = AKIAQX7R2M4T6W8Y3B5N",
        "Authorization: Bearer Tq8mZ3xK7vB2nL9pR4wY6cH1",
    ];
    let mut out = Vec::with_capacity(clean.len() * 2);
    let mut n = 0;
    for (i, line) in clean.split(|&b| b == b'\n').enumerate() {
        out.extend_from_slice(line);
        out.push(b'\n');
        if i % every == every - 1 {
            out.extend_from_slice(secrets[n % secrets.len()].as_bytes());
            out.push(b'\n');
            n += 1;
        }
    }
    (out, n)
}

fn benches(c: &mut Criterion) {
    let clean = corpus();
    let det = Detector::builtin().expect("builtin rules compile");
    let base = det.scan(&clean).len();
    eprintln!("corpus: {} bytes, {} findings in it", clean.len(), base);

    let mut g = c.benchmark_group("compile");
    // The built-in rules' regexes compile on first use: `builtin-rules` is what a process pays
    // at start, `builtin-rules-all-compiled` adds compiling every rule (by running each rule's
    // own examples), what a long scan pays in all.
    g.bench_function("builtin-rules", |b| {
        b.iter(|| black_box(Detector::builtin().expect("compiles").rules().len()))
    });
    g.bench_function("builtin-rules-all-compiled", |b| {
        b.iter(|| {
            let d = Detector::builtin().expect("compiles");
            assert!(d.check_rule_examples().is_empty());
            black_box(d.rules().len())
        })
    });
    g.finish();

    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.sample_size(10);
    g.bench_function("source-code", |b| {
        b.iter(|| {
            let n = det.scan(black_box(&clean)).len();
            assert_eq!(n, base);
        })
    });
    let (dense_text, inserted) = dense(&clean, 50);
    let dense_expected = det.scan(&dense_text).len();
    assert!(
        dense_expected >= base + inserted,
        "{dense_expected} < {base} + {inserted}"
    );
    g.throughput(Throughput::Bytes(dense_text.len() as u64));
    g.bench_function("source-code-dense-secrets", |b| {
        b.iter(|| {
            let n = det.scan(black_box(&dense_text)).len();
            assert_eq!(n, dense_expected);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("stream-redact");
    // A clean 64 KiB chunk of source code, fed to a long-lived redactor.
    let mut chunk = Vec::with_capacity(64 * 1024);
    for line in clean.split(|&b| b == b'\n') {
        if chunk.len() + line.len() + 1 > 64 * 1024 {
            break;
        }
        if det.scan(line).is_empty() {
            chunk.extend_from_slice(line);
            chunk.push(b'\n');
        }
    }
    chunk.resize(64 * 1024, b'\n');
    assert!(det.scan(&chunk).is_empty());
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    let mut s = det.stream_redactor();
    let mut out = Vec::with_capacity(128 * 1024);
    g.bench_function("clean-64KiB-chunk", |b| {
        b.iter(|| {
            out.clear();
            s.feed(black_box(&chunk), &mut out);
            assert_eq!(
                out.len(),
                chunk.len(),
                "a clean, newline-terminated chunk passes through whole"
            );
        })
    });
    // The same with 1,000 brokered values held (every form and every 8-byte piece of each,
    // and of its reverse, ignoring case): what scrubbing held credentials adds.
    let vault = sluice_core::broker::MemoryVault::new();
    for i in 0..1000u64 {
        vault.set(format!("held-{i}"), synthetic(i));
    }
    let brokered =
        std::sync::Arc::new(sluice_core::broker::Vault::detector(&vault, Detector::builder()).expect("compiles"));
    assert!(brokered.scan(&chunk).is_empty(), "no held value in the clean chunk");
    let mut s = brokered.stream_redactor();
    g.bench_function("clean-64KiB-chunk-1000-held-values", |b| {
        b.iter(|| {
            out.clear();
            s.feed(black_box(&chunk), &mut out);
            assert_eq!(out.len(), chunk.len());
        })
    });
    let mut kb = Detector::builder();
    for i in 0..1000u64 {
        kb = kb.known_value(format!("known-{i}"), synthetic(i));
    }
    let known = kb.build().expect("compiles");
    let mut s = known.stream_redactor();
    g.bench_function("clean-64KiB-chunk-1000-known-values", |b| {
        b.iter(|| {
            out.clear();
            s.feed(black_box(&chunk), &mut out);
            assert_eq!(out.len(), chunk.len());
        })
    });
    g.finish();
}

/// A synthetic 28-character credential (never a real one).
fn synthetic(seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..28)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"[(x % 56) as usize])
        })
        .collect()
}

criterion_group!(detector, benches);
criterion_main!(detector);
