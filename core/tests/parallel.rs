//! `Detector::scan_parallel` against `scan`: the same findings, in the same order, whatever the
//! number of threads (so pieces cut through keywords, windows and secrets), over every test
//! vector, rule example and source file, all of them at once, and generated keyword-dense text.

#[path = "support/texts.rs"]
mod texts;

use proptest::prelude::*;
use sluice_core::Detector;

fn same(det: &Detector, input: &[u8], threads: usize) {
    assert_eq!(
        det.scan_parallel(input, threads),
        det.scan(input),
        "{threads} threads: {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn parallel_scans_find_what_one_thread_finds() {
    let det = Detector::builder()
        .known_value("db", "synthetic-known-value-0001")
        .build()
        .expect("compiles");
    let inputs = texts::inputs();
    for (i, input) in inputs.iter().enumerate() {
        same(&det, input, 2 + i % 5);
    }
    let all = inputs.concat();
    assert!(det.scan(&all).len() > 100);
    for threads in [2, 3, 4, 7, 16] {
        same(&det, &all, threads);
    }
    // A psql table split across pieces: its credential column found as a whole.
    let table = b" id | password\n----+----------\n  1 | Tr0ub4dor&3xyz\n  2 | correcthorsebattery9\n";
    for threads in 1..=8 {
        same(&det, table, threads);
    }
    same(&det, b"", 4);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: texts::cases(), ..ProptestConfig::default() })]
    #[test]
    fn generated_text_scans_the_same_on_any_number_of_threads(
        parts in proptest::collection::vec((0usize..10_000, 0usize..64, any::<bool>(), 0u8..8), 0..80),
        threads in 2usize..12,
    ) {
        thread_local! {
            static DET: Detector = Detector::builtin().expect("compiles");
            static TEXTS: (Vec<String>, Vec<String>) = texts::rule_texts();
        }
        DET.with(|det| TEXTS.with(|(examples, keywords)| {
            same(det, &texts::generated(&parts, examples, keywords), threads);
        }));
    }
}
