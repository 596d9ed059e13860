//! The shared test vectors in `testdata/vectors.json`: the same cases the Python and Node tests
//! read.

use serde_json::Value;
use sluice_core::Detector;

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors.json");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("vectors are JSON");
    doc["cases"].as_array().expect("cases").clone()
}

#[test]
fn scan_finds_exactly_the_expected_secrets() {
    let det = Detector::builtin().expect("builtin rules compile");
    let cases = vectors();
    assert!(cases.len() >= 20);
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let input = case["input"].as_str().expect("input");
        let found = det.scan(input.as_bytes());
        let expected = case["findings"].as_array().expect("findings");
        let got: Vec<(String, &str)> = found
            .iter()
            .map(|f| (f.rule.to_string(), &input[f.start..f.end]))
            .collect();
        let want: Vec<(String, &str)> = expected
            .iter()
            .map(|e| {
                (
                    e["rule"].as_str().expect("rule").to_string(),
                    e["secret"].as_str().expect("secret"),
                )
            })
            .collect();
        assert_eq!(got, want, "case {id}");
        for (f, e) in found.iter().zip(expected) {
            assert_eq!(
                Some(f.start),
                input.find(e["secret"].as_str().expect("secret")),
                "case {id}: offset"
            );
            if let Some(line) = e.get("line") {
                assert_eq!(f.line as u64, line.as_u64().expect("line"), "case {id}: line");
                assert_eq!(
                    f.column as u64,
                    e["column"].as_u64().expect("column"),
                    "case {id}: column"
                );
            }
            assert_eq!(f.fingerprint.to_hex().len(), 32);
        }
    }
}

#[test]
fn redaction_removes_secrets_and_keeps_the_rest() {
    let det = Detector::builtin().expect("builtin rules compile");
    for case in vectors() {
        let id = case["id"].as_str().expect("id");
        let input = case["input"].as_str().expect("input");
        let out = det.redact(input.as_bytes());
        let out = String::from_utf8(out.into_owned()).expect("utf-8 in, utf-8 out");
        let expected = case["findings"].as_array().expect("findings");
        if expected.is_empty() {
            assert_eq!(out, input, "case {id}: nothing to mask, nothing changed");
        }
        for e in expected {
            let secret = e["secret"].as_str().expect("secret");
            assert!(!out.contains(secret), "case {id}: secret survived");
            assert!(
                out.contains(&format!("[REDACTED:{}:", e["rule"].as_str().expect("rule"))),
                "case {id}: {out}"
            );
        }
        for keep in case.get("survives").and_then(Value::as_array).into_iter().flatten() {
            assert!(out.contains(keep.as_str().expect("str")), "case {id}: lost {keep}");
        }
    }
}
