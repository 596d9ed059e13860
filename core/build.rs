//! Parses the built-in rules' patterns at build time, so that a process using the built-in
//! rules does not parse ~300 regular expressions at start (an agent hook runs once per tool
//! call). For each rule it records what the detector needs before a pattern is compiled: the
//! longest match and the index of the `secret` group. A rule this cannot read gets no entry
//! and is parsed at run time as before (where any error is reported properly).

use std::fmt::Write as _;

use regex_syntax::hir::{Hir, HirKind};

fn capture_index(hir: &Hir, name: &str) -> Option<u32> {
    match hir.kind() {
        HirKind::Capture(c) if c.name.as_deref() == Some(name) => Some(c.index),
        HirKind::Capture(c) => capture_index(&c.sub, name),
        HirKind::Repetition(r) => capture_index(&r.sub, name),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().find_map(|h| capture_index(h, name)),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => None,
    }
}

/// The embedded policy as JSON: parsing JSON at start costs a fraction of YAML (a test holds
/// the two to the same document).
fn agent_safe_json() {
    println!("cargo:rerun-if-changed=src/policy/agent-safe.yaml");
    let yaml = std::fs::read_to_string("src/policy/agent-safe.yaml").unwrap_or_default();
    // An unreadable policy gives an empty document here; the YAML itself is then parsed at
    // run time, where its error is reported.
    let json = serde_yaml_ng::from_str::<serde_json::Value>(&yaml)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("agent-safe.json");
    std::fs::write(dest, json).unwrap_or_else(|e| panic!("cannot write agent-safe.json: {e}"));
}

fn main() {
    agent_safe_json();
    println!("cargo:rerun-if-changed=rules/builtin.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string("rules/builtin.toml").unwrap_or_default();
    let table: toml::Table = text.parse().unwrap_or_default();
    // The rules as JSON (an empty file when unreadable: the TOML is then read at run time).
    let json = table
        .get("rule")
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .unwrap_or_default();
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("builtin.json");
    std::fs::write(dest, json).unwrap_or_else(|e| panic!("cannot write builtin.json: {e}"));
    let mut out = String::from(
        "/// Per built-in rule, in file order: (id, pattern length, longest match, `secret` group).\n\
         pub(crate) static BUILTIN_META: &[(&str, usize, usize, Option<usize>)] = &[\n",
    );
    let rules = table
        .get("rule")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for r in &rules {
        let (Some(id), Some(pattern)) = (
            r.get("id").and_then(|v| v.as_str()),
            r.get("pattern").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let parsed = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(pattern);
        let Ok(hir) = parsed else { continue };
        let (Some(max), Some(min)) = (hir.properties().maximum_len(), hir.properties().minimum_len()) else {
            continue;
        };
        if min == 0 {
            continue;
        }
        let group = match capture_index(&hir, "secret") {
            Some(g) => format!("Some({g})"),
            None => "None".to_string(),
        };
        let _ = writeln!(out, "    ({id:?}, {}, {max}, {group}),", pattern.len());
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("builtin_meta.rs");
    std::fs::write(dest, out).unwrap_or_else(|e| panic!("cannot write builtin_meta.rs: {e}"));
}
