//! Runs one policy decision in a loop, for instruction counts that a noisy machine cannot blur:
//! `scripts/instructions.sh` runs it under `valgrind --tool=cachegrind` at two loop
//! counts and prints the instructions one decision takes. The requests are the policy bench's.
//!
//! `scan` and `redact` run the detector over a fixed, generated 1 MiB of code-like text (the
//! same bytes everywhere, so counts compare across machines), N times.
//!
//! Usage: `sluice-decide-loop sql|shell|scan|redact N`

use std::hint::black_box;

use sluice_core::policy::{Action, Engine, Identity, Request, Target};
use sluice_protocols::sql::Dialect;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "sql".to_string());
    let n: usize = match args.next().map(|s| s.parse()) {
        None => 100_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("error: the loop count: {e}");
            std::process::exit(2);
        }
    };
    if which == "scan" || which == "redact" {
        detector_loop(&which, n);
        return;
    }
    let engine = Engine::agent_safe();
    let id = Identity::new("agent-7").group("dev");
    let laptop = Target::new("laptop");
    let db = Target::new("orders").label("env", "prod");
    let (target, request) = match which.as_str() {
        "shell" => (
            &laptop,
            Request::Shell("cargo test --workspace --locked 2>&1 | tail -20"),
        ),
        "sql" => (
            &db,
            Request::Sql {
                text: "SELECT o.id, o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '1 day' ORDER BY o.total DESC LIMIT 50",
                dialect: Dialect::Postgres,
                lexing: Default::default(),
            },
        ),
        other => {
            eprintln!("error: unknown request `{other}` (expected sql, shell, scan or redact)");
            std::process::exit(2);
        }
    };
    assert_eq!(engine.decide(&id, target, &request).action(), Action::Allow);
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        black_box(engine.decide(&id, target, black_box(&request)));
    }
    if n > 0 {
        eprintln!(
            "{which}: {:.3} µs per decision (wall clock)",
            t0.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

/// 1 MiB of code-like text from a fixed seed: identifiers, keywords the rules look for,
/// assignments, and now and then a synthetic secret-shaped value.
fn corpus() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn", "let", "self", "return", "value", "config", "client", "request", "response", "error", "user", "id",
        "name", "data", "buffer", "=", "==", "(", ")", "{", "}", ";", ",", ".", "\"", "'", ":", "->", "&", "mut", "if",
        "else", "for", "in", "match", "Some", "None", "Ok", "Err", "new", "get", "set", "len",
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = Vec::with_capacity(1 << 20);
    while out.len() < 1 << 20 {
        let r = next();
        match r % 2003 {
            0..=20 => out.extend_from_slice(b"\n"),
            21 => {
                // A secret-shaped value (synthetic: generated here).
                out.extend_from_slice(b"sk_live_");
                for _ in 0..24 {
                    out.push(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[(next() % 62) as usize]);
                }
            }
            22..=240 => out.extend_from_slice(b"\n    "),
            // Words the rules' keywords match, as often as in ordinary code.
            241..=280 => {
                out.extend_from_slice(["token", "password", "secret", "key", "api"][(r >> 8) as usize % 5].as_bytes());
                out.push(b' ');
            }
            _ => {
                out.extend_from_slice(WORDS[(r >> 8) as usize % WORDS.len()].as_bytes());
                out.push(b' ');
            }
        }
    }
    out.truncate(1 << 20);
    out
}

fn detector_loop(which: &str, n: usize) {
    let det = sluice_core::Detector::builtin().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let data = corpus();
    // Compile what the corpus needs before counting (rules compile on first use).
    let found = det.scan(&data).len();
    assert!(found > 0, "the corpus holds secret-shaped values");
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        if which == "scan" {
            black_box(det.scan(black_box(&data)));
        } else {
            black_box(det.redact(black_box(&data)));
        }
    }
    if n > 0 {
        eprintln!(
            "{which}: {:.1} MB/s (wall clock), {found} findings",
            (data.len() * n) as f64 / 1e6 / t0.elapsed().as_secs_f64()
        );
    }
}
