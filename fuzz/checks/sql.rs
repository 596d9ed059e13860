//! Any text as SQL in both dialects: statements or an error, never a panic or a hang.
use sluice_protocols::sql::{self, Dialect};

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    for d in [Dialect::Postgres, Dialect::MySql] {
        if let Ok(stmts) = sql::analyze(&text, d) {
            for s in stmts {
                assert!(s.span.0 <= s.span.1 && s.span.1 <= text.len());
            }
        }
    }
}
