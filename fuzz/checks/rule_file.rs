//! Any text as a rule file: an error or a detector, never a panic; a detector then scans.
use sluice_core::Detector;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(16 * 1024)]) else {
        return;
    };
    if let Ok(det) = Detector::builder()
        .builtin_rules(false)
        .rules_toml("fuzz.toml", text)
        .build()
    {
        let _ = det.scan(text.as_bytes());
        let _ = det.check_rule_examples();
    }
}
