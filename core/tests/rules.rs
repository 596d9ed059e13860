//! The built-in rule set and rule files: every rule's own examples, coverage, and clear errors
//! for bad rule files.

use sluice_core::{Detector, ErrorKind};

#[test]
fn every_builtin_rule_finds_its_examples_and_none_of_its_counter_examples() {
    let det = Detector::builtin().expect("builtin rules compile");
    let failures = det.check_rule_examples();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (examples, counter) = det.example_counts();
    assert!(examples >= det.rules().len(), "every rule has an example");
    assert!(counter >= det.rules().len(), "every rule has a counter-example");
}

#[test]
fn builtin_rules_cover_at_least_150_rules_over_100_providers() {
    let det = Detector::builtin().expect("builtin rules compile");
    assert!(det.rules().len() >= 150, "{} rules", det.rules().len());
    let providers: std::collections::HashSet<_> = det.rules().filter_map(|r| r.provider.clone()).collect();
    assert!(providers.len() >= 100, "{} providers", providers.len());
    for id in [
        "github-pat",
        "aws-access-key-id",
        "private-key",
        "jwt",
        "database-url-password",
        "slack-webhook",
        "generic-password",
    ] {
        assert!(det.rules().any(|r| &*r.id == id), "missing {id}");
    }
}

fn build(text: &str) -> Result<Detector, sluice_core::Error> {
    Detector::builder()
        .builtin_rules(false)
        .rules_toml("my-rules.toml", text)
        .build()
}

#[test]
fn a_bad_pattern_names_the_rule_the_file_position_and_the_pattern_offset() {
    let text = "[[rule]]\nid = \"acme\"\ndescription = \"x\"\npattern = '''acme_(?P<secret>[a-z]{8}'''\nkeywords = [\"acme_\"]\n";
    let err = build(text).expect_err("unclosed group");
    assert_eq!(err.kind(), ErrorKind::Pattern);
    assert_eq!(err.rule(), Some("acme"));
    assert_eq!(err.origin(), Some("my-rules.toml"));
    let (line, col) = err.line_col().expect("position");
    assert_eq!(line, 4);
    assert!(col >= 14, "column points into the pattern: {col}");
    let msg = err.to_string();
    assert!(msg.starts_with("my-rules.toml:4:"), "{msg}");
    assert!(msg.contains("rule `acme`") && msg.contains("offset"), "{msg}");
    // The regex parser's own error is the source.
    assert!(std::error::Error::source(&err).is_some(), "{msg}");
}

#[test]
fn unbounded_patterns_are_refused_with_advice() {
    let text = "[[rule]]\nid = \"acme\"\ndescription = \"x\"\npattern = 'acme_[a-z]+'\nkeywords = [\"acme_\"]\n";
    let err = build(text).expect_err("unbounded");
    assert_eq!(err.kind(), ErrorKind::Pattern);
    assert!(err.to_string().contains("unbounded"), "{err}");
}

#[test]
fn bad_toml_and_unknown_fields_give_a_line() {
    let err = build("[[rule]]\nid = \"a\"\nnonsense = 1\n").expect_err("unknown field");
    assert_eq!(err.kind(), ErrorKind::RuleFile);
    assert!(err.line_col().is_some(), "{err}");
    let err = build("[[rule]\n").expect_err("bad toml");
    assert_eq!(err.kind(), ErrorKind::RuleFile);
    assert_eq!(err.line_col().map(|(l, _)| l), Some(1), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "TOML's error is the source: {err}"
    );
}

#[test]
fn bad_fields_are_named() {
    let base = |extra: &str| {
        format!(
            "[[rule]]\nid = \"acme\"\ndescription = \"x\"\npattern = 'acme_[a-z]{{8}}'\nkeywords = [\"acme_\"]\n{extra}"
        )
    };
    let err = build(&base("validator = \"luhn9\"\n")).expect_err("unknown validator");
    assert!(err.to_string().contains("unknown validator"), "{err}");
    let err = build(&base("entropy = 12.0\n")).expect_err("entropy range");
    assert_eq!(err.kind(), ErrorKind::Rule);
    let err = build("[[rule]]\nid = \"Bad Id\"\ndescription = \"x\"\npattern = 'x{2}'\nkeywords = [\"xx\"]\n")
        .expect_err("id");
    assert_eq!(err.rule(), Some("Bad Id"));
    let err =
        build("[[rule]]\nid = \"a\"\ndescription = \"x\"\npattern = 'x{2}'\nkeywords = []\n").expect_err("no keywords");
    assert!(err.to_string().contains("keyword"), "{err}");
    let twice = format!("{}{}", base(""), base(""));
    assert!(build(&twice).expect_err("duplicate").to_string().contains("duplicate"));
    let err = build("[[rule]]\nid = \"e\"\ndescription = \"x\"\npattern = 'a?'\nkeywords = [\"aa\"]\n")
        .expect_err("empty match");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn limits_are_enforced() {
    let limits = sluice_core::Limits {
        max_match_len: 16,
        ..Default::default()
    };
    let text = "[[rule]]\nid = \"acme\"\ndescription = \"x\"\npattern = 'acme_[a-z]{32}'\nkeywords = [\"acme_\"]\n";
    let err = Detector::builder()
        .builtin_rules(false)
        .limits(limits)
        .rules_toml("r.toml", text)
        .build()
        .expect_err("too long");
    assert_eq!(err.kind(), ErrorKind::Limit);
}

#[test]
fn a_user_rule_works_with_the_builtin_ones() {
    let text = r#"
[[rule]]
id = "acme-key"
description = "ACME internal key"
provider = "acme"
pattern = '''\b(?P<secret>acme_[A-Za-z0-9]{24})\b'''
keywords = ["acme_"]
entropy = 3.0
examples = ["key: acme_Zq7Lm2Xw9Rt4Kp8Vn3Bc6Hd1"]
counter_examples = ["acme_xxxxxxxxxxxxxxxxxxxxxxxx"]
"#;
    let det = Detector::builder()
        .rules_toml("acme.toml", text)
        .build()
        .expect("compiles");
    assert!(det.check_rule_examples().is_empty());
    let f = det.scan(b"x = acme_Zq7Lm2Xw9Rt4Kp8Vn3Bc6Hd1 and ghp_none");
    assert_eq!(f.len(), 1);
    assert_eq!(&*f[0].rule, "acme-key");
}

#[test]
fn builtin_rules_compile_quickly_enough_to_build_per_process() {
    // Not a speed test (see benches/); a sanity bound that catches a pathological pattern.
    let t = std::time::Instant::now();
    Detector::builtin().expect("compiles");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn words_keeps_plain_word_values_only_for_generic_rules_that_ask_for_it() {
    let rule = |words: &str| {
        format!(
            "[[rule]]\nid = \"login\"\ndescription = \"x\"\npattern = '''login=\"(?P<secret>[a-z_]{{6,32}})\"'''\nkeywords = [\"login=\"]\ngeneric = true\n{words}"
        )
    };
    let text = b"login=\"quillmoth\" login=\"get_password\"";
    // Without `words`, a plain word reads as a code identifier.
    assert!(build(&rule("")).expect("compiles").scan(text).is_empty());
    // With it, the word is a literal; a name that says it holds a password (`get_password`) is still not.
    let found = build(&rule("words = true\n")).expect("compiles").scan(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(&text[found[0].start..found[0].end], b"quillmoth");
    let err = build(&rule("words = true\n").replace("generic = true\n", "")).expect_err("words without generic");
    assert_eq!(err.kind(), ErrorKind::Rule);
    assert!(err.to_string().contains("generic"), "{err}");
}

#[test]
fn a_kubernetes_secret_manifest_is_masked_whole_in_either_field_order() {
    let det = Detector::builtin().expect("compiles");
    // Synthetic values (base64 of made-up strings).
    let data_first = "apiVersion: v1\ndata:\n  api-key: c3ZjLWRlcGxveTowMDdkYzlhODJiZThm\n  user: ZGVwbG95LWJvdC03\nkind: Secret\nmetadata:\n  name: app\n";
    let kind_first = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\ntype: Opaque\nstringData:\n  password: \"Lw8xQ2cVt9BLEPH\"\n  token: u8jzPde0IgxLd6GncfB\nimmutable: true\n";
    for (text, values) in [
        (data_first, ["c3ZjLWRlcGxveTowMDdkYzlhODJiZThm", "ZGVwbG95LWJvdC03"]),
        (kind_first, ["Lw8xQ2cVt9BLEPH", "u8jzPde0IgxLd6GncfB"]),
    ] {
        let out = String::from_utf8(det.redact(text.as_bytes()).into_owned()).expect("utf-8");
        for v in values {
            assert!(!out.contains(v), "{v} survived:\n{out}");
        }
        assert!(out.contains("[REDACTED:kubernetes-secret-manifest"), "{out}");
        assert!(
            out.contains("metadata:\n") && out.contains("name: app"),
            "the rest stays: {out}"
        );
    }
    // A ConfigMap is not a Secret.
    let config = "apiVersion: v1\ndata:\n  mode: c3ZjLWRlcGxveTowMDdkYzlhODJiZThm\nkind: ConfigMap\n";
    assert!(det.scan(config.as_bytes()).is_empty());
}

#[test]
fn an_excluded_block_end_stops_the_block_before_it() {
    let text = "[[rule]]\nid = \"blob\"\ndescription = \"x\"\npattern = '''(?P<secret>BLOB:)'''\nkeywords = [\"blob:\"]\nblock_end = '''[^A-Za-z0-9+/=]'''\nblock_end_excluded = true\nblock_max = 4096\n";
    let det = build(text).expect("compiles");
    let body = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=";
    let input = format!("key: \"BLOB:{body}\"\nnext: 1\n");
    let found = det.scan(input.as_bytes());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        &input[found[0].start..found[0].end],
        format!("BLOB:{body}"),
        "the quote is not part of it"
    );
    let err = build(
        &text
            .replace("block_end = '''[^A-Za-z0-9+/=]'''\n", "")
            .replace("block_max = 4096\n", ""),
    )
    .expect_err("needs block_end");
    assert!(err.to_string().contains("block_end"), "{err}");
}
