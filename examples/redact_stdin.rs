//! Masks secrets in stdin as it streams, with a known value registered by the host:
//! `KNOWN_SECRET=... cargo run -p sluice-examples --example redact-stdin < file`.
use std::io::{Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = sluice_core::Detector::builder();
    if let Ok(v) = std::env::var("KNOWN_SECRET") {
        builder = builder.known_value("known-secret", v);
    }
    let detector = builder.build()?;
    let mut stream = detector.stream_redactor();
    let (mut stdin, mut stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.feed(&buf[..n], &mut out);
        stdout.write_all(&out)?;
        out.clear();
    }
    stream.finish(&mut out);
    stdout.write_all(&out)?;
    Ok(())
}
