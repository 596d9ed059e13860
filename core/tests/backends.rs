//! The Hyperscan backend against the pure-Rust one (built with `--features hyperscan`): the
//! same findings and the same redaction, whole and streamed, over every test vector, every
//! rule's examples, generated text dense with keywords and secrets, and this repository's
//! source files.
#![cfg(feature = "hyperscan")]

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

/// The built-in rules' examples and keywords, from the rule file.
fn rule_texts() -> (Vec<String>, Vec<String>) {
    let doc: toml::Value = toml::from_str(sluice_core::BUILTIN_RULES).expect("rule file parses");
    let (mut examples, mut keywords) = (Vec::new(), Vec::new());
    for r in doc["rule"].as_array().expect("rules") {
        for (field, into) in [("examples", &mut examples), ("keywords", &mut keywords)] {
            if let Some(list) = r.get(field).and_then(|v| v.as_array()) {
                into.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_string));
            }
        }
    }
    assert!(examples.len() > 100 && keywords.len() > 100);
    (examples, keywords)
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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("JSON");
    let mut inputs: Vec<Vec<u8>> = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["input"].as_str().expect("input").as_bytes().to_vec())
        .collect();
    inputs.extend(rule_texts().0.into_iter().map(String::into_bytes));
    // This repository's Rust sources: ordinary code, dense with `key`, `token`, `secret`.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut dirs = vec![std::path::PathBuf::from(src)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                inputs.push(std::fs::read(&p).expect("read source"));
            }
        }
    }
    assert!(inputs.len() > 300);
    for input in &inputs {
        same(&rust, &hs, input);
    }
    // Everything at once: offsets far from zero.
    same(&rust, &hs, &inputs.concat());
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]
    /// Text made of keywords (in any case, cut anywhere), rule examples and noise.
    #[test]
    fn generated_text_scans_the_same(parts in proptest::collection::vec((0usize..10_000, 0usize..64, any::<bool>(), 0u8..8), 0..80)) {
        thread_local! {
            static PAIR: (Detector, Detector) = pair();
            static TEXTS: (Vec<String>, Vec<String>) = rule_texts();
        }
        PAIR.with(|(rust, hs)| TEXTS.with(|(examples, keywords)| {
            let mut text = Vec::new();
            for &(pick, cut, upper, sep) in &parts {
                let piece = if pick % 3 == 0 {
                    examples[pick % examples.len()].as_bytes()
                } else {
                    let k = keywords[pick % keywords.len()].as_bytes();
                    &k[..cut.min(k.len())]
                };
                if upper {
                    text.extend(piece.to_ascii_uppercase());
                } else {
                    text.extend_from_slice(piece);
                }
                text.push(b" =\n\"_:x\t"[usize::from(sep)]);
            }
            same(rust, hs, &text);
        }));
    }
}
