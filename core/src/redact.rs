//! Redaction: secrets replaced by deterministic placeholders, everything else byte for byte.
//!
//! A placeholder looks like `[REDACTED:github-pat:3fa9c1]`: the rule id and the first six hex
//! digits of the secret's keyed fingerprint. It contains no part of the secret, and the same
//! secret always gets the same placeholder, so an agent can refer to a value it cannot see.

use std::borrow::Cow;
use std::sync::Arc;

use crate::detector::{Detector, Hit, Span};

impl Detector {
    /// Masks every secret of `input`. Returns `input` itself, uncopied, when there is nothing to
    /// mask.
    pub fn redact<'a>(&self, input: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = self.spans(input);
        if spans.is_empty() {
            return Cow::Borrowed(input);
        }
        let mut out = Vec::with_capacity(input.len() + spans.len() * 16);
        self.write_masked(input, 0, input.len(), &spans, &mut out);
        Cow::Owned(out)
    }

    /// A streaming redactor: feed chunks, get masked chunks. See [`StreamRedactor`].
    pub fn stream_redactor(&self) -> StreamRedactor<'_> {
        StreamRedactor::with(DetectorRef::Borrowed(self))
    }

    /// A streaming redactor that shares ownership of the detector, for hosts that keep one per
    /// connection (`StreamRedactor<'static>`).
    pub fn shared_stream_redactor(self: &Arc<Self>) -> StreamRedactor<'static> {
        StreamRedactor::with(DetectorRef::Shared(Arc::clone(self)))
    }

    /// The placeholder that stands for `secret` found by the rule or known value `id`.
    pub fn placeholder(&self, id: &str, secret: &[u8]) -> String {
        let fp = self.fingerprint(secret).to_hex();
        format!("[REDACTED:{id}:{}]", &fp[..6])
    }

    /// Writes `input[from..to]` to `out` with `spans` (sorted, inside the range) masked.
    fn write_masked(&self, input: &[u8], from: usize, to: usize, spans: &[Span], out: &mut Vec<u8>) {
        let mut pos = from;
        for s in spans {
            out.extend_from_slice(&input[pos..s.start]);
            out.extend_from_slice(self.placeholder(&self.ids[s.id], &input[s.start..s.end]).as_bytes());
            pos = s.end;
        }
        out.extend_from_slice(&input[pos..to]);
    }
}

/// A borrowed or shared detector.
#[derive(Debug, Clone)]
enum DetectorRef<'d> {
    Borrowed(&'d Detector),
    Shared(Arc<Detector>),
}

impl std::ops::Deref for DetectorRef<'_> {
    type Target = Detector;
    fn deref(&self) -> &Detector {
        match self {
            DetectorRef::Borrowed(d) => d,
            DetectorRef::Shared(d) => d,
        }
    }
}

/// Streaming redaction with bounded memory.
///
/// Feed chunks with [`feed`](StreamRedactor::feed); each call appends to `out` the masked bytes
/// that are final. [`finish`](StreamRedactor::finish) flushes the rest. The concatenated output
/// equals [`Detector::redact`] of the concatenated input, however the input is cut: a secret split
/// across chunks is still masked.
///
/// # Hold-back and latency
///
/// Output is held back only while a secret could still be in progress:
/// - bytes of a line that has not ended yet, at most the longest single-line match plus the
///   longest keyword (with the built-in rules, under 1 KiB);
/// - after the start of a multi-line secret (a `-----BEGIN … PRIVATE KEY-----` line), until the
///   block ends or its maximum length (64 KiB) is reached.
///
/// So a newline-terminated stream (a log under `tail -f`) is released line by line as it arrives,
/// and the memory held is bounded by about twice the longest multi-line match, whatever the
/// input.
#[derive(Debug)]
pub struct StreamRedactor<'d> {
    det: DetectorRef<'d>,
    /// Context (already written) followed by pending bytes.
    buf: Vec<u8>,
    /// Keyword hits in `buf`, in `buf` offsets.
    hits: Vec<Hit>,
    /// Offset in `buf` up to which output has been written.
    committed: usize,
    /// Offset in `buf` up to which keywords have been searched.
    scanned: usize,
    held_max: usize,
}

impl<'d> StreamRedactor<'d> {
    fn with(det: DetectorRef<'d>) -> StreamRedactor<'d> {
        StreamRedactor {
            det,
            buf: Vec::new(),
            hits: Vec::new(),
            committed: 0,
            scanned: 0,
            held_max: 0,
        }
    }

    /// Feeds a chunk; appends the bytes that are now final, masked, to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.step(false, out);
    }

    /// Ends the stream; appends everything still held, masked, to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.step(true, out);
        self.buf.clear();
        self.hits.clear();
        self.committed = 0;
        self.scanned = 0;
    }

    /// How many bytes are held back now (received but not yet written).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.committed
    }

    /// The largest number of bytes this redactor has held back at once.
    pub fn max_pending(&self) -> usize {
        self.held_max
    }

    fn step(&mut self, eof: bool, out: &mut Vec<u8>) {
        let det = &*self.det;
        det.collect_hits(&self.buf, self.scanned, &mut self.hits);
        self.scanned = self.buf.len();
        let (spans, commit) = det.detect(&self.buf, &self.hits, self.committed, eof);
        self.held_max = self.held_max.max(self.buf.len() - commit);
        det.write_masked(&self.buf, self.committed, commit, &spans, out);
        self.committed = commit;
        // Keep `context` bytes before the commit point: hits there may open windows reaching
        // past it, and look-behind needs the byte before it.
        let drop = commit.saturating_sub(det.context);
        if drop > 0 && (drop >= 64 * 1024 || drop * 2 >= self.buf.len()) {
            self.buf.drain(..drop);
            self.committed -= drop;
            self.scanned -= drop;
            self.hits.retain_mut(|h| {
                if h.start < drop {
                    return false;
                }
                h.start -= drop;
                h.end -= drop;
                true
            });
        }
    }
}
