//! Every committed fuzz regression input (`fuzz/regressions/<target>/*`), replayed through the
//! same check its fuzz target runs (`fuzz/checks/<target>.rs`), as an ordinary test: a crash once
//! found stays fixed without cargo-fuzz or a nightly compiler. Add an input by copying
//! `fuzz/artifacts/<target>/crash-*` (or any input worth keeping) into the target's folder.

use std::path::{Path, PathBuf};

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/http.rs"]
mod http;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/mcp.rs"]
mod mcp;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/mysql.rs"]
mod mysql;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/oracle.rs"]
mod oracle;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/policy.rs"]
mod policy;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/policy_file.rs"]
mod policy_file;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/postgres.rs"]
mod postgres;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/rule_file.rs"]
mod rule_file;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/scan.rs"]
mod scan;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/session_http.rs"]
mod session_http;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/session_mcp.rs"]
mod session_mcp;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/session_mysql.rs"]
mod session_mysql;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/session_postgres.rs"]
mod session_postgres;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/session_ssh.rs"]
mod session_ssh;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/sessions.rs"]
mod sessions;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/shell.rs"]
mod shell;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/sql.rs"]
mod sql;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/ssh.rs"]
mod ssh;
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../fuzz/checks/stream_redact.rs"]
mod stream_redact;

/// A fuzz target's check: panics on a finding.
type Check = fn(&[u8]);

/// Each fuzz target's name and check.
const CHECKS: &[(&str, Check)] = &[
    ("http", http::check),
    ("mcp", mcp::check),
    ("mysql", mysql::check),
    ("oracle", oracle::check),
    ("policy", policy::check),
    ("policy_file", policy_file::check),
    ("postgres", postgres::check),
    ("rule_file", rule_file::check),
    ("scan", scan::check),
    ("session_http", session_http::check),
    ("session_mcp", session_mcp::check),
    ("session_mysql", session_mysql::check),
    ("session_postgres", session_postgres::check),
    ("session_ssh", session_ssh::check),
    ("sessions", sessions::check),
    ("shell", shell::check),
    ("sql", sql::check),
    ("ssh", ssh::check),
    ("stream_redact", stream_redact::check),
];

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

#[test]
fn every_fuzz_target_has_a_check_here() {
    let targets = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    for t in &targets {
        assert!(
            CHECKS.iter().any(|(n, _)| n == t),
            "fuzz target `{t}` is not replayed here"
        );
    }
    assert_eq!(targets.len(), CHECKS.len(), "a check here has no fuzz target");
}

#[test]
fn committed_inputs_replay_cleanly() {
    let dir = regressions();
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let folder = entry.expect("entry").path();
        if !folder.is_dir() {
            continue;
        }
        let target = folder.file_name().expect("name").to_string_lossy().into_owned();
        let Some((_, check)) = CHECKS.iter().find(|(n, _)| *n == target) else {
            panic!("fuzz/regressions/{target}: no fuzz target of that name");
        };
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&folder)
            .expect("folder")
            .map(|e| e.expect("entry").path())
            .collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).expect("input");
            // A panic names the input: the check's own message says what broke.
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(result.is_ok(), "{} fails its fuzz check", input.display());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression input under {}", dir.display());
}
