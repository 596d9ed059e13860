//! Compiling arbitrary policy text never panics; it compiles or says why.

#[path = "contain.rs"]
mod contain;

use sluice_core::policy::Engine;

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Engine::from_text("fuzz.yaml", text) {
        assert!(!e.to_string().is_empty());
    }
}
