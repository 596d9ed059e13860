//! The Hyperscan backend against the pure-Rust one (built with `--features hyperscan`): the
//! same findings and the same redaction, whole and streamed, over every test vector, every
//! rule's examples, generated text dense with keywords and secrets, and this repository's
//! source files.
#![cfg(feature = "hyperscan")]

#[path = "support/texts.rs"]
mod texts;

use proptest::prelude::*;
use sluice_core::{Backend, Detector};

fn pair() -> (Detector, Detector) {
    let rust = Detector::builder().backend(Backend::Rust).build().expect("compiles");
    let hs = Detector::builder()
        .backend(Backend::Hyperscan)
        .build()
        .expect("compiles on Hyperscan");
    assert_eq!(hs.backend(), Backend::Hyperscan);
    (rust, hs)
}

fn same(rust: &Detector, hs: &Detector, input: &[u8]) {
    let (a, b) = (rust.scan(input), hs.scan(input));
    assert_eq!(a, b, "{:?}", String::from_utf8_lossy(input));
    assert_eq!(rust.redact(input), hs.redact(input));
    // Streamed in uneven chunks (streaming has no whole-input table pass, so each backend's
    // stream is held to the other's).
    let streamed = |det: &Detector| {
        let mut out = Vec::new();
        let mut s = det.stream_redactor();
        for c in input.chunks(97) {
            s.feed(c, &mut out);
        }
        s.finish(&mut out);
        out
    };
    assert_eq!(streamed(rust), streamed(hs));
}

#[test]
fn vectors_examples_and_sources_scan_the_same() {
    let (rust, hs) = pair();
    let inputs = texts::inputs();
    for input in &inputs {
        same(&rust, &hs, input);
    }
    // Everything at once: offsets far from zero.
    same(&rust, &hs, &inputs.concat());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: texts::cases(), ..ProptestConfig::default() })]
    /// Text made of keywords (in any case, cut anywhere), rule examples and noise.
    #[test]
    fn generated_text_scans_the_same(parts in proptest::collection::vec((0usize..10_000, 0usize..64, any::<bool>(), 0u8..8), 0..80)) {
        thread_local! {
            static PAIR: (Detector, Detector) = pair();
            static TEXTS: (Vec<String>, Vec<String>) = texts::rule_texts();
        }
        PAIR.with(|(rust, hs)| TEXTS.with(|(examples, keywords)| {
            same(rust, hs, &texts::generated(&parts, examples, keywords));
        }));
    }
}
