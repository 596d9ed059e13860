//! The table-driven policy cases in `testdata/policy/` (shared with the bindings), the embedded
//! agent-safe policy, policy file errors, grants and OIDC identities.

use sluice_core::policy::cases::parse_cases;
use sluice_core::policy::{Action, Engine};

fn testdata(name: &str) -> String {
    let path = format!("{}/../testdata/policy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn agent_safe_cases() {
    let engine = Engine::agent_safe();
    let cases = parse_cases(&testdata("agent-safe.json")).expect("cases parse");
    assert!(cases.len() > 200, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let r = case.run(&engine);
        if !r.passed() {
            failures.push(format!(
                "{}\n    command:  {}\n    expected: {} {:?}\n    got:      {:?}",
                case.name,
                case.command,
                case.expect.as_str(),
                case.rule,
                r.decision.map(|d| (d.action, d.rule, d.reason))
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_agent_safe_rule_is_exercised() {
    let engine = Engine::agent_safe();
    let cases = parse_cases(&testdata("agent-safe.json")).expect("cases parse");
    let fired: std::collections::HashSet<String> = cases
        .iter()
        .filter_map(|c| c.run(&engine).decision.ok()?.rule)
        .collect();
    let text = sluice_core::policy::AGENT_SAFE;
    let ids: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("- id: ")).collect();
    let missing: Vec<&&str> = ids.iter().filter(|id| !fired.contains(**id)).collect();
    assert!(missing.is_empty(), "rules no case exercises: {missing:?}");
    assert_eq!(ids.len(), engine.rule_count());
    let _ = Action::Allow;
}
