//! Any bytes, any cuts: streaming redaction equals one-shot redaction.
use sluice_core::Detector;
use std::sync::LazyLock;

static DET: LazyLock<Detector> = LazyLock::new(|| {
    Detector::builder()
        .known_value("k", "fuzz-known-v4lue")
        .build()
        .expect("detector")
});

pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    // The first byte chooses the chunk size; the rest is the input.
    let step = usize::from(data[0]) + 1;
    let input = &data[1..data.len().min(64 * 1024)];
    let one = DET.redact(input).into_owned();
    let mut s = DET.stream_redactor();
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        s.feed(chunk, &mut out);
    }
    s.finish(&mut out);
    assert_eq!(out, one);
}
