//! Inputs that arrive in pieces: `StreamRedactor` against `redact` and `ChunkScanner` against
//! `scan`, however the input is cut, on inputs mixing secrets, tables (psql, mysql, CSV at the
//! first line), multi-line keys and prose; tables read across pieces; memory held bounded.

#[path = "support/texts.rs"]
mod texts;

use proptest::prelude::*;
use sluice_core::{Detector, Finding};

#[path = "support/pieces.rs"]
mod pieces;
use pieces::{det, piece};

fn redact_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut s = det().stream_redactor();
    let mut out = Vec::new();
    for piece in pieces(input, cuts) {
        s.feed(piece, &mut out);
    }
    s.finish(&mut out);
    out
}

/// The findings of a chunk scanner, each with the lines it was handed with.
fn scan_in_pieces(det: &Detector, input: &[u8], cuts: &[usize], threads: usize) -> Vec<(Finding, usize, Vec<u8>)> {
    let mut s = det.chunk_scanner().threads(threads);
    let mut out = Vec::new();
    for piece in pieces(input, cuts) {
        s.feed(piece, |f, l| out.push((f, l.offset, l.text.to_vec())));
    }
    s.finish(|f, l| out.push((f, l.offset, l.text.to_vec())));
    out
}

fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut pos = 0;
    for c in cuts {
        out.push(&input[pos..c]);
        pos = c;
    }
    out.push(&input[pos..]);
    out
}

/// What the scanner must hand over: `scan`'s findings, each with its whole lines (from the
/// start of its first line to the end of its last, as the CLI reads them for `sluice:allow`).
fn expected(det: &Detector, input: &[u8]) -> Vec<(Finding, usize, Vec<u8>)> {
    det.scan(input)
        .into_iter()
        .map(|f| {
            let ls = memchr::memrchr(b'\n', &input[..f.start]).map_or(0, |p| p + 1);
            let le = memchr::memchr(b'\n', &input[f.end..]).map_or(input.len(), |p| f.end + p);
            let lines = input[ls..le].to_vec();
            (f, ls, lines)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: texts::cases().max(300), ..ProptestConfig::default() })]

    /// A chunk scanner hands over `scan`'s findings, in order, each with its whole lines.
    #[test]
    fn chunk_scans_equal_one_scan(
        parts in prop::collection::vec(piece(), 0..16),
        cuts in prop::collection::vec(0usize..1500, 0..14),
    ) {
        let input = parts.concat();
        let got = scan_in_pieces(det(), input.as_bytes(), &cuts, 1);
        prop_assert_eq!(got, expected(det(), input.as_bytes()), "{:?}", input);
    }

    /// The same over text dense in every rule's keywords and examples.
    #[test]
    fn chunk_scans_of_generated_text_equal_one_scan(
        parts in proptest::collection::vec((0usize..10_000, 0usize..64, any::<bool>(), 0u8..8), 0..60),
        cuts in prop::collection::vec(0usize..20_000, 0..10),
    ) {
        thread_local! {
            static DET: Detector = Detector::builtin().expect("compiles");
            static TEXTS: (Vec<String>, Vec<String>) = texts::rule_texts();
        }
        DET.with(|det| TEXTS.with(|(examples, keywords)| {
            let input = texts::generated(&parts, examples, keywords);
            assert_eq!(scan_in_pieces(det, &input, &cuts, 1), expected(det, &input));
        }));
    }
}

#[test]
fn every_test_text_scans_the_same_in_pieces_and_on_threads() {
    let inputs = texts::inputs();
    for (i, input) in inputs.iter().enumerate() {
        let cuts: Vec<usize> = (1..4).map(|k| k * input.len() / (2 + i % 4)).collect();
        assert_eq!(
            scan_in_pieces(det(), input, &cuts, 1),
            expected(det(), input),
            "input {i}"
        );
    }
    // Everything at once, in pieces large enough for the threaded keyword pass.
    let mut all = inputs.concat();
    while all.len() < 9 << 20 {
        all.extend_from_within(..all.len().min(9 << 20));
    }
    let want = expected(det(), &all);
    assert!(want.len() > 100);
    for threads in [1, 2, 3] {
        let cuts: Vec<usize> = (1..3).map(|k| k * all.len() / 3 + 17).collect();
        assert_eq!(scan_in_pieces(det(), &all, &cuts, threads), want, "{threads} threads");
    }
}

#[test]
fn a_streamed_psql_table_has_its_credential_cells_masked() {
    // No rule knows these values: only the table's header says they are passwords.
    let table = " id | name  | password\n----+-------+-------------\n  1 | alice | Zq8rT2mVw9Lp\n  2 | bob   | Kd7nX3bYc6Hs\n(2 rows)\n";
    for cut in 0..=table.len() {
        let out = String::from_utf8(redact_in_pieces(table.as_bytes(), &[cut])).expect("UTF-8");
        assert!(
            !out.contains("Zq8rT2mVw9Lp") && !out.contains("Kd7nX3bYc6Hs"),
            "cut at {cut}: {out}"
        );
        assert!(out.contains("[REDACTED:credential-column:"), "{out}");
        assert!(out.contains("alice") && out.ends_with("(2 rows)\n"), "{out}");
    }
}

#[test]
fn held_bytes_stay_bounded() {
    // Scanning 24 MB of ordinary lines a mebibyte at a time holds about one piece.
    let line = "let value = compute(alpha, beta) + 42; // an ordinary line of code\n";
    let input = line.repeat((24 << 20) / line.len());
    let mut s = det().chunk_scanner();
    let mut most = 0;
    for piece in input.as_bytes().chunks(1 << 20) {
        s.feed(piece, |_, _| {});
        most = most.max(s.held());
    }
    s.finish(|_, _| {});
    assert!(most <= 2 << 20, "held {most} bytes");

    // A table row that never ends is not held past the longest row a table may have.
    let mut r = det().stream_redactor();
    let mut out = Vec::new();
    r.feed(b"id,password\n1,", &mut out);
    for _ in 0..40 {
        r.feed(&[b'x'; 64 * 1024], &mut out);
    }
    assert!(
        r.max_pending() <= (1 << 20) + 128 * 1024,
        "held {} bytes",
        r.max_pending()
    );
    r.finish(&mut out);
    assert_eq!(out.len(), 14 + 40 * 64 * 1024);
}
