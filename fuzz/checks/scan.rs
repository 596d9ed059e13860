//! Any bytes: scanning never panics, findings are in bounds, sorted and disjoint.
use sluice_core::Detector;
use std::sync::LazyLock;

static DET: LazyLock<Detector> = LazyLock::new(|| {
    Detector::builder()
        .known_value("k", "fuzz-known-v4lue")
        .build()
        .expect("detector")
});

pub fn check(data: &[u8]) {
    let data = &data[..data.len().min(64 * 1024)];
    let found = DET.scan(data);
    let mut last = 0;
    for f in &found {
        assert!(f.start < f.end && f.end <= data.len() && f.start >= last);
        last = f.end;
    }
}
