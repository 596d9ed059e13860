//! The Rust side of the binding benchmarks (`bindings/python/bench.py`): the same operations the
//! Python and Node packages expose, timed without any binding in between.
//!
//! ```text
//! sluice-throughput scan FILE [ITERATIONS]          → {"bytes":…, "findings":…, "best_s":…, "mb_s":…}
//! sluice-throughput check PROTOCOL COMMAND [ITER]   → {"ns_per_call":…, "decision":…}
//! ```
//! Both use the built-in rules and the embedded agent-safe policy; the best of several rounds
//! is reported.

use std::hint::black_box;
use std::time::Instant;

use sluice_core::Detector;
use sluice_core::policy::cases::OwnedRequest;
use sluice_core::policy::{Engine, Identity, Protocol, Target};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["scan", file, ..] => scan(file, iterations(args.get(2), 5)),
        ["check", protocol, command, ..] => check(protocol, command, iterations(args.get(3), 200_000)),
        _ => Err("usage: sluice-throughput scan FILE [ITER] | check PROTOCOL COMMAND [ITER]".to_string()),
    };
    match out {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("sluice-throughput: {e}");
            std::process::exit(2);
        }
    }
}

fn iterations(arg: Option<&String>, default: u32) -> u32 {
    arg.and_then(|a| a.parse().ok()).unwrap_or(default).max(1)
}

fn scan(file: &str, rounds: u32) -> Result<String, String> {
    let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let det = Detector::builtin().map_err(|e| e.to_string())?;
    let mut best = f64::INFINITY;
    let mut findings = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        findings = black_box(det.scan(black_box(&data))).len();
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(format!(
        "{{\"bytes\":{},\"findings\":{findings},\"best_s\":{best:.6},\"mb_s\":{:.1}}}",
        data.len(),
        data.len() as f64 / best / 1e6
    ))
}

fn check(protocol: &str, command: &str, calls: u32) -> Result<String, String> {
    let protocol: Protocol = protocol.parse().map_err(|_| format!("unknown protocol {protocol}"))?;
    let engine = Engine::agent_safe();
    let (identity, target) = (Identity::new("agent"), Target::new("default"));
    let req = OwnedRequest::new(protocol, command);
    let mut best = f64::INFINITY;
    let mut decision = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..calls {
            let d = req.with(|r| engine.decide(&identity, &target, black_box(r)))?;
            black_box(&d);
        }
        best = best.min(t.elapsed().as_secs_f64() / f64::from(calls));
        decision = req.with(|r| engine.decide(&identity, &target, r).action().as_str().to_string())?;
    }
    Ok(format!(
        "{{\"ns_per_call\":{:.1},\"decision\":\"{decision}\"}}",
        best * 1e9
    ))
}
