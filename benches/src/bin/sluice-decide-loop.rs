//! Runs one policy decision in a loop, for instruction counts that a noisy machine cannot blur:
//! `scripts/decision_instructions.sh` runs it under `valgrind --tool=cachegrind` at two loop
//! counts and prints the instructions one decision takes. The requests are the policy bench's.
//!
//! Usage: `sluice-decide-loop sql|shell N`

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
            eprintln!("error: unknown request `{other}` (expected sql or shell)");
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
