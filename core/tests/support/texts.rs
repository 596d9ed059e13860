//! Inputs the differential tests share: every test vector, every built-in rule's examples, this
//! crate's sources, and generated text dense with keywords and secrets.
#![allow(dead_code)]

/// Property-test cases per test: bounded for CI, `PROPTEST_CASES` raises it.
pub fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The built-in rules' examples and keywords, from the rule file.
pub fn rule_texts() -> (Vec<String>, Vec<String>) {
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

/// Every test vector's input, every rule example and every source file of this crate.
pub fn inputs() -> Vec<Vec<u8>> {
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
    // This crate's sources: ordinary code, dense with `key`, `token`, `secret`.
    let mut dirs = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
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
    inputs
}

/// Text made of keywords (in either case, cut anywhere), rule examples and separators, as a
/// property test draws it: (pick, cut, upper, separator) per piece.
pub fn generated(parts: &[(usize, usize, bool, u8)], examples: &[String], keywords: &[String]) -> Vec<u8> {
    let mut text = Vec::new();
    for &(pick, cut, upper, sep) in parts {
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
        text.push(b" =\n\"_:x\t"[usize::from(sep % 8)]);
    }
    text
}
