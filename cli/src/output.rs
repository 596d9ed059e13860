//! Report formats: text, JSON, JSON lines and SARIF 2.1.0.

use std::io::{self, Write};

use serde_json::{Value, json};
use sluice_core::{Detector, Finding};

/// A finding with where it was found and how to show it.
pub(crate) struct Reported {
    pub(crate) path: String,
    pub(crate) finding: Finding,
    pub(crate) placeholder: String,
    /// The secret itself, only with `--show-secrets`.
    pub(crate) secret: Option<String>,
    pub(crate) end_line: usize,
    pub(crate) end_column: usize,
}

pub(crate) struct Report {
    pub(crate) findings: Vec<Reported>,
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    pub(crate) skipped_binary: u64,
    pub(crate) skipped_large: u64,
    pub(crate) errors: u64,
    pub(crate) seconds: f64,
    pub(crate) rules: usize,
}

/// Line and column (1-based, columns in characters) of `offset`, counting from a known earlier
/// position (`line`, `column` at `from`).
pub(crate) fn line_col(data: &[u8], offset: usize, mut line: usize, from: usize, column: usize) -> (usize, usize) {
    let seg = &data[from..offset];
    match memchr::memrchr(b'\n', seg) {
        None => (line, column + seg.iter().filter(|&&b| (b & 0xC0) != 0x80).count()),
        Some(last) => {
            line += memchr::memchr_iter(b'\n', seg).count();
            (
                line,
                seg[last + 1..].iter().filter(|&&b| (b & 0xC0) != 0x80).count() + 1,
            )
        }
    }
}

fn finding_json(r: &Reported) -> Value {
    let f = &r.finding;
    let mut v = json!({
        "rule": &*f.rule,
        "path": r.path,
        "start": f.start,
        "end": f.end,
        "line": f.line,
        "column": f.column,
        "end_line": r.end_line,
        "end_column": r.end_column,
        "fingerprint": f.fingerprint.to_hex(),
        "placeholder": r.placeholder,
    });
    if let Some(s) = &r.secret {
        v["secret"] = Value::String(s.clone());
    }
    v
}

fn summary_json(rep: &Report) -> Value {
    json!({
        "findings": rep.findings.len(),
        "files_scanned": rep.files,
        "bytes_scanned": rep.bytes,
        "skipped_binary": rep.skipped_binary,
        "skipped_too_large": rep.skipped_large,
        "errors": rep.errors,
        "rules": rep.rules,
        "seconds": (rep.seconds * 1000.0).round() / 1000.0,
    })
}

pub(crate) fn text(w: &mut impl Write, rep: &Report, _show: bool) -> io::Result<()> {
    for r in &rep.findings {
        let f = &r.finding;
        let shown = r.secret.as_deref().unwrap_or(&r.placeholder);
        writeln!(w, "{}:{}:{}: {} {}", r.path, f.line, f.column, f.rule, shown)?;
    }
    writeln!(
        w,
        "{} finding{} in {} files ({:.1} MB, {:.2}s, {} rules)",
        rep.findings.len(),
        if rep.findings.len() == 1 { "" } else { "s" },
        rep.files,
        rep.bytes as f64 / 1e6,
        rep.seconds,
        rep.rules
    )
}

pub(crate) fn json(w: &mut impl Write, rep: &Report, _show: bool) -> io::Result<()> {
    let v = json!({
        "findings": rep.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "summary": summary_json(rep),
    });
    serde_json::to_writer(&mut *w, &v)?;
    writeln!(w)
}

pub(crate) fn jsonl(w: &mut impl Write, rep: &Report, _show: bool) -> io::Result<()> {
    for r in &rep.findings {
        serde_json::to_writer(&mut *w, &finding_json(r))?;
        writeln!(w)?;
    }
    Ok(())
}

pub(crate) fn sarif(w: &mut impl Write, rep: &Report, det: &Detector) -> io::Result<()> {
    let rules: Vec<_> = det.rules().collect();
    let index = |id: &str| rules.iter().position(|r| &*r.id == id);
    let mut extra_ids: Vec<String> = Vec::new();
    let results: Vec<Value> = rep
        .findings
        .iter()
        .map(|r| {
            let f = &r.finding;
            let idx = index(&f.rule).unwrap_or_else(|| {
                let p = extra_ids.iter().position(|x| x == &*f.rule).unwrap_or_else(|| {
                    extra_ids.push(f.rule.to_string());
                    extra_ids.len() - 1
                });
                rules.len() + p
            });
            json!({
                "ruleId": &*f.rule,
                "ruleIndex": idx,
                "level": "error",
                "message": {"text": format!("Secret found by rule {} (masked as {})", f.rule, r.placeholder)},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": r.path.replace('\\', "/")},
                    "region": {"startLine": f.line, "startColumn": f.column, "endLine": r.end_line, "endColumn": r.end_column,
                               "byteOffset": f.start, "byteLength": f.end - f.start}
                }}],
                "partialFingerprints": {"sluiceSecret/v1": f.fingerprint.to_hex()},
            })
        })
        .collect();
    let mut rule_objs: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": &*r.id,
                "name": &*r.id,
                "shortDescription": {"text": &*r.description},
                "fullDescription": {"text": format!("{} (provider: {})", r.description, r.provider.as_deref().unwrap_or("generic"))},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": ["security", "secret"], "security-severity": "8.0"},
            })
        })
        .collect();
    for id in &extra_ids {
        rule_objs.push(
            json!({"id": id, "name": id, "shortDescription": {"text": "Registered known value"},
            "defaultConfiguration": {"level": "error"}, "properties": {"tags": ["security", "secret"]}}),
        );
    }
    let v = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "sluice",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/sluice",
                "rules": rule_objs,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *w, &v)?;
    writeln!(w)
}
