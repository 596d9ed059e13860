//! Any text as a shell command line: an analysis or an error, never a panic or a hang; the
//! lenient analysis policy uses always answers; and wherever the fast path takes a line, the bash
//! grammar gives the same analysis.

#[path = "contain.rs"]
mod contain;
use sluice_protocols::shell::{self, Frontend};

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    let text = String::from_utf8_lossy(&data[..data.len().min(4096)]);
    let limits = shell::Limits::default();
    let _ = shell::analyze(&text, &limits);
    let lenient = shell::analyze_lenient(&text, &limits);
    if shell::analyze(&text, &limits).is_err() {
        assert!(!lenient.opaque.is_empty(), "a line that does not parse must be opaque");
    }
    if let Ok((fast, _)) = shell::analyze_with(&text, &limits, Some(Frontend::Fast)) {
        if let Ok((grammar, _)) = shell::analyze_with(&text, &limits, Some(Frontend::Grammar)) {
            assert_eq!(fast, grammar, "{text:?}");
        }
    }
}
