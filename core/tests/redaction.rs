//! Redaction: one-shot, streaming (property-tested against one-shot), known values.

use std::borrow::Cow;

use proptest::prelude::*;
use sluice_core::Detector;

#[path = "support/pieces.rs"]
mod pieces;
use pieces::{det, piece};

fn stream(det: &Detector, input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = det.stream_redactor();
    let mut out = Vec::new();
    let mut pos = 0;
    for &c in cuts {
        let c = c.min(input.len()).max(pos);
        s.feed(&input[pos..c], &mut out);
        pos = c;
    }
    s.feed(&input[pos..], &mut out);
    s.finish(&mut out);
    out
}

#[test]
fn nothing_to_mask_returns_the_input_uncopied() {
    let input = b"fn main() { println!(\"hello\"); }\n";
    assert!(matches!(det().redact(input), Cow::Borrowed(b) if std::ptr::eq(b, input)));
}

#[test]
fn placeholders_name_the_rule_hide_the_secret_and_are_deterministic() {
    let text = b"a = glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\nb = glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\nc = glpat-Yb8NXa3kLm9Qr7Tz2Wv5\n";
    let out = String::from_utf8(det().redact(text).into_owned()).expect("utf-8");
    let lines: Vec<&str> = out.lines().collect();
    let ph = |l: &str| l.split(" = ").nth(1).expect("value").to_string();
    assert!(
        ph(lines[0]).starts_with("[REDACTED:gitlab-pat:") && ph(lines[0]).len() == "[REDACTED:gitlab-pat:".len() + 7
    );
    assert_eq!(ph(lines[0]), ph(lines[1]), "same secret, same placeholder");
    assert_ne!(ph(lines[0]), ph(lines[2]), "different secret, different placeholder");
    assert!(!out.contains("Xa3kLm"));
}

#[test]
fn a_private_key_is_masked_whole_even_when_streamed_byte_by_byte() {
    let body: String = (0..20)
        .map(|i| {
            format!(
                "{}\n",
                "MIIEowIBAAKCAQEAz3Vt7Qm2Xw9Rt4Kp8Vn3Bc6Hd1Fg5Js0Lq7Ny2Ub4Ie6Oa8".replace('M', &i.to_string())
            )
        })
        .collect();
    let input = format!("before\n-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\nafter\n");
    let one = det().redact(input.as_bytes()).into_owned();
    let text = String::from_utf8(one.clone()).expect("utf-8");
    assert!(text.starts_with("before\n[REDACTED:private-key:"), "{text}");
    assert!(text.ends_with("]\nafter\n"), "{text}");
    let cuts: Vec<usize> = (1..input.len()).collect();
    assert_eq!(stream(det(), input.as_bytes(), &cuts), one);
}

#[test]
fn known_values_are_found_raw_and_encoded() {
    use base64::Engine as _;
    let v = "Synth3tic-Known-Value!";
    let b64 = base64::engine::general_purpose::STANDARD.encode(v);
    let url = "Synth3tic-Known-Value%21";
    let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{v}"));
    for text in [
        format!("pw={v}"),
        format!("enc: {b64}"),
        format!("q?p={url}&x=1"),
        format!("hex {hex}"),
        format!("Authorization: Basic {basic}"),
    ] {
        let found = det().scan(text.as_bytes());
        assert!(
            found
                .iter()
                .any(|f| &*f.rule == "db-password" || &*f.rule == "http-basic-auth"),
            "{text}: {found:?}"
        );
        let out = String::from_utf8(det().redact(text.as_bytes()).into_owned()).expect("utf-8");
        assert!(!out.contains(v) && !out.contains(&b64) && !out.contains(&hex), "{out}");
    }
    let err = Detector::builder()
        .known_value("x", "abc")
        .build()
        .expect_err("too short");
    assert_eq!(err.kind(), sluice_core::ErrorKind::KnownValue);
}

#[test]
fn hold_back_is_bounded_and_complete_lines_are_released() {
    let mut s = det().stream_redactor();
    let mut out = Vec::new();
    s.feed(b"INFO request ok\n", &mut out);
    assert_eq!(out, b"INFO request ok\n", "a complete line is released at once");
    out.clear();
    let noise = "x".repeat(100_000);
    s.feed(noise.as_bytes(), &mut out);
    assert!(s.pending() <= 8 * 1024, "held {} bytes of a long line", s.pending());
    s.feed(b"-----BEGIN PRIVATE KEY-----\n", &mut out);
    for _ in 0..4000 {
        s.feed(
            b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n",
            &mut out,
        );
    }
    assert!(s.max_pending() <= 80 * 1024, "held at most {} bytes", s.max_pending());
    s.finish(&mut out);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_one_shot_for_any_cuts(pieces in prop::collection::vec(piece(), 0..16), cuts in prop::collection::vec(0usize..2000, 0..14)) {
        let input = pieces.concat();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let one = det().redact(input.as_bytes()).into_owned();
        prop_assert_eq!(stream(det(), input.as_bytes(), &cuts), one);
    }

    #[test]
    fn redaction_only_touches_findings(pieces in prop::collection::vec(piece(), 0..8)) {
        let input = pieces.concat();
        let found = det().scan(input.as_bytes());
        let out = det().redact(input.as_bytes()).into_owned();
        // Rebuild the expected output from the findings: a naive reference implementation.
        let mut expect = Vec::new();
        let mut pos = 0;
        for f in &found {
            expect.extend_from_slice(&input.as_bytes()[pos..f.start]);
            expect.extend_from_slice(det().placeholder(&f.rule, &input.as_bytes()[f.start..f.end]).as_bytes());
            pos = f.end;
        }
        expect.extend_from_slice(&input.as_bytes()[pos..]);
        prop_assert_eq!(out, expect);
    }
}

#[test]
fn every_single_cut_of_a_dense_input_streams_the_same() {
    let input = "a=1\ntoken = \"glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\"\nurl=postgres://app:r7Kq2Vx9Lm4Tz8@db:5432/x\nSynth3tic-Known-Value!\nghp_Zq7Lm2Xw9Rt4Kp8Vn3Bc6Hd1Fg5Js02kBGo6 end";
    let one = det().redact(input.as_bytes()).into_owned();
    for cut in 0..=input.len() {
        assert_eq!(stream(det(), input.as_bytes(), &[cut]), one, "cut at {cut}");
    }
    let all: Vec<usize> = (0..input.len()).collect();
    assert_eq!(stream(det(), input.as_bytes(), &all), one, "byte by byte");
}

/// A PEM key in base64 wrapped over many lines (`base64 -w 76`, PostgreSQL's `encode(…,
/// 'base64')`) is masked whole, and the line after it is left alone.
#[test]
fn wrapped_base64_key_is_masked_whole() {
    // Synthetic: base64 of a PEM header and random-looking body, wrapped at 76.
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvuNMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ"
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem.as_bytes());
    let wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let text = format!("key: {}\nOTHER=value\n", wrapped.join("\n"));
    let det = Detector::builder().build().expect("detector");
    let masked = String::from_utf8(det.redact(text.as_bytes()).into_owned()).expect("utf-8");
    for line in &wrapped {
        assert!(!masked.contains(line.as_str()), "{line} left in {masked}");
    }
    assert!(masked.ends_with("]\nOTHER=value\n"), "{masked}");
}

/// The fields of one record: a secret split across adjacent fields is masked in each, a secret
/// inside one field is masked once, and credential-named columns mask what looks like one.
#[test]
fn redact_fields_joins_adjacent_fields() {
    let det = Detector::builder().build().expect("detector");
    let key = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
    let (a, b) = key.split_at(15);
    let fields = [Some(b"id-7".as_slice()), Some(a.as_bytes()), Some(b.as_bytes()), None];
    let (out, changed) = det.redact_fields(&fields, &[]);
    assert_eq!(changed, 2);
    assert_eq!(out[0].as_deref(), Some(&b"id-7"[..]));
    for f in &out[1..3] {
        let f = String::from_utf8_lossy(f.as_deref().expect("present")).into_owned();
        assert!(f.starts_with("[REDACTED:stripe"), "{f}");
        assert!(!f.contains(&a[8..]) && !f.contains(b), "{f}");
    }
    assert!(out[3].is_none());

    // A whole secret in one field next to another: one placeholder, not nested ones.
    let one = format!("key {key}");
    let (out, _) = det.redact_fields(&[Some(one.as_bytes()), Some(b"AKIA")], &[]);
    let f = String::from_utf8_lossy(out[0].as_deref().expect("present")).into_owned();
    assert_eq!(f.matches("[REDACTED:").count(), 1, "{f}");

    // A whole secret in one field does not run on into the next one.
    let (out, _) = det.redact_fields(&[Some(key.as_bytes()), Some(b"owner1@example.test")], &[]);
    assert_eq!(out[1].as_deref(), Some(&b"owner1@example.test"[..]));

    // A credential column: a random-looking value is masked without any rule; a plain word or
    // a number is not.
    let cols = [true, true, false];
    let (out, changed) = det.redact_fields(
        &[Some(b"Xk29!pLq7#vv"), Some(b"12345678"), Some(b"Xk29!pLq7#vv")],
        &cols,
    );
    assert_eq!(changed, 1);
    assert!(
        out[0]
            .as_deref()
            .is_some_and(|v| v.starts_with(b"[REDACTED:credential-column:"))
    );
    assert_eq!(out[1].as_deref(), Some(&b"12345678"[..]));
    assert_eq!(out[2].as_deref(), Some(&b"Xk29!pLq7#vv"[..]));
    assert!(sluice_core::credential_column(b"PASSWORD_HASH") && sluice_core::credential_column(b"apiKey"));
    assert!(!sluice_core::credential_column(b"owner") && !sluice_core::credential_column(b"tokenizer"));
}

/// Masked output read again (a recording, a proxy behind a proxy) keeps its placeholders: a
/// placeholder whose id names a password is not itself a generic password assignment.
#[test]
fn redaction_is_idempotent_on_its_own_placeholders() {
    let det = sluice_core::Detector::builder()
        .known_value("db-password", "s3rv1ce-pw-Synthetic-42") // synthetic: sluice:allow
        .build()
        .expect("builds");
    let input = "DB_PASSWORD=s3rv1ce-pw-Synthetic-42\npassword: 'hunter2-Xq9-long-enough'\n"; // synthetic: sluice:allow
    let once = det.redact(input.as_bytes()).into_owned();
    assert!(String::from_utf8_lossy(&once).contains("[REDACTED:db-password:"));
    let twice = det.redact(&once).into_owned();
    assert_eq!(String::from_utf8_lossy(&twice), String::from_utf8_lossy(&once));
    assert!(det.scan(&once).is_empty(), "{:?}", det.scan(&once));
    // Placeholders whose id reads as a key name, in a COPY row and in escaped JSON.
    for text in [
        "2service-1,[REDACTED:stripe-secret-key:22c1a8]\n",
        r#"{"text":"d\u00002service-1,[REDACTED:stripe-secret-key:22c1a8]\nd"}"#,
        "api_key: [REDACTED:generic-api-key:0a1b2c]\n",
    ] {
        assert!(
            det.scan(text.as_bytes()).is_empty(),
            "{text}: {:?}",
            det.scan(text.as_bytes())
        );
    }
}
