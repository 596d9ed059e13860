//! Compiling arbitrary policy text never panics; it compiles or says why.
#![no_main]

#[path = "contain.rs"]
mod contain;

use libfuzzer_sys::fuzz_target;
use sluice_core::policy::Engine;

fuzz_target!(|data: &[u8]| {
    contain::brush_panics_are_caught();
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Engine::from_text("fuzz.yaml", text) {
        assert!(!e.to_string().is_empty());
    }
});
