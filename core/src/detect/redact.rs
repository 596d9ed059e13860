//! Redaction: secrets replaced by deterministic placeholders, everything else byte for byte.
//!
//! A placeholder looks like `[REDACTED:github-pat:3fa9c1]`: the rule id and the first six hex
//! digits of the secret's keyed fingerprint. It contains no part of the secret, and the same
//! secret always gets the same placeholder, so an agent can refer to a value it cannot see.

use std::borrow::Cow;
use std::sync::Arc;

use super::detector::{Detector, Span};
use super::stream::{Release, StreamCore};

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

    /// The placeholder that stands for `secret` found by the rule or known value `id` (a
    /// brokered value's is its own placeholder, `sluice:secret/NAME`).
    pub fn placeholder(&self, id: &str, secret: &[u8]) -> String {
        if id.starts_with(crate::broker::PREFIX) {
            return id.to_string();
        }
        let fp = self.fingerprint(secret).to_hex();
        format!("[REDACTED:{id}:{}]", &fp[..6])
    }

    /// Masks `raw` wherever `view`, a same-length reading of it (escape sequences turned into
    /// the characters they stand for, say), holds a secret. The placeholders fingerprint the
    /// secret as the view reads it.
    pub(crate) fn redact_view<'a>(&self, raw: &'a [u8], view: &[u8]) -> Cow<'a, [u8]> {
        debug_assert_eq!(raw.len(), view.len());
        let spans = self.spans(view);
        if spans.is_empty() {
            return Cow::Borrowed(raw);
        }
        let mut out = Vec::with_capacity(raw.len() + spans.len() * 16);
        let mut pos = 0;
        for s in &spans {
            out.extend_from_slice(&raw[pos..s.start]);
            out.extend_from_slice(self.placeholder(&self.ids[s.id], &view[s.start..s.end]).as_bytes());
            pos = s.end;
        }
        out.extend_from_slice(&raw[pos..]);
        Cow::Owned(out)
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
    core: StreamCore,
    held_max: usize,
}

impl<'d> StreamRedactor<'d> {
    fn with(det: DetectorRef<'d>) -> StreamRedactor<'d> {
        StreamRedactor {
            det,
            core: StreamCore::default(),
            held_max: 0,
        }
    }

    /// Feeds a chunk; appends the bytes that are now final, masked, to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.core.push(chunk);
        self.step(false, out);
    }

    /// Ends the stream; appends everything still held, masked, to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.step(true, out);
        self.core = StreamCore::default();
    }

    /// How many bytes are held back now (received but not yet written).
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    /// The largest number of bytes this redactor has held back at once.
    pub fn max_pending(&self) -> usize {
        self.held_max
    }

    fn step(&mut self, eof: bool, out: &mut Vec<u8>) {
        let det = &*self.det;
        let from = self.core.released;
        let spans = self.core.step(det, eof, 1, Release::Final);
        let base = self.core.base;
        let local: Vec<Span> = spans
            .into_iter()
            .map(|s| Span {
                start: s.start - base,
                end: s.end - base,
                ..s
            })
            .collect();
        det.write_masked(&self.core.buf, from - base, self.core.released - base, &local, out);
        self.held_max = self.held_max.max(self.core.pending());
        self.core.trim(det, usize::MAX);
    }
}

/// Column names that say a value is a credential: `password`, `passwd`, `secret`, `token`,
/// `api_key`, `private_key`, `credential`, and their spellings (`PASSWORD_HASH`, `apiKey`,
/// `client-secret`, `auth_token`). Matching is on the lowercased name with `_`, `-`, `.` and
/// spaces removed.
pub fn credential_column(name: &[u8]) -> bool {
    if name.len() > 128 {
        return false;
    }
    let norm: Vec<u8> = name
        .iter()
        .filter(|b| !matches!(b, b'_' | b'-' | b'.' | b' ' | b'"' | b'`'))
        .map(u8::to_ascii_lowercase)
        .collect();
    const WORDS: &[&[u8]] = &[
        b"password",
        b"passwd",
        b"passphrase",
        b"pwd",
        b"secret",
        b"token",
        b"apikey",
        b"accesskey",
        b"privatekey",
        b"credential",
        b"authkey",
        b"signingkey",
        b"encryptionkey",
        b"sessionkey",
        b"connectionstring",
        b"dsn",
    ];
    const NOT: &[&[u8]] = &[
        b"tokenizer",
        b"tokensused",
        b"tokencount",
        b"secretname",
        b"secretid",
        b"secretary",
        b"passwordchangedat",
        b"passwordupdatedat",
        b"tokenexpiresat",
    ];
    if NOT.contains(&norm.as_slice()) {
        return false;
    }
    WORDS.iter().any(|w| norm.windows(w.len()).any(|x| x == *w))
        || norm.as_slice() == b"pw"
        || norm.as_slice() == b"key"
}

/// Whether `value`, found in a column named like a credential, looks like one: a single token
/// of 6 to 8,192 printable bytes that is not a plain number, a boolean, a date or a word
/// naming nothing secret (`null`, `none`, `redacted`), and mixes character classes or has the
/// entropy of a random string.
pub fn looks_like_credential(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    if v.len() < 6 || v.len() > 8192 {
        return false;
    }
    if v.starts_with(b"[REDACTED:") {
        return false;
    }
    let multiline_key = v.starts_with(b"-----BEGIN");
    if !multiline_key && v.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return false;
    }
    let lower: Vec<u8> = v.iter().map(u8::to_ascii_lowercase).collect();
    const PLAIN: &[&[u8]] = &[
        b"null",
        b"none",
        b"true",
        b"false",
        b"redacted",
        b"changeme",
        b"******",
        b"<hidden>",
        b"(null)",
    ];
    if PLAIN.contains(&lower.as_slice()) || v.iter().all(|b| *b == b'*' || *b == b'x' || *b == b'X') {
        return false;
    }
    if v.iter()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' ' | b'T' | b'Z' | b'+'))
    {
        return false;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|c| **c)
    .count();
    multiline_key || classes >= 2 || super::filters::entropy(v) >= 3.0
}

impl Detector {
    /// Masks the fields of one record (the values of a database row, the text items of a
    /// message): each field on its own, then each field joined with the next two (empty and
    /// missing fields skipped), so that a secret split across adjacent fields
    /// (`SELECT substr(key, 1, 9), substr(key, 10)`) is masked in every field that holds part
    /// of it. With `credential` (one flag per field, from the
    /// column names: [`credential_column`]), a value in a credential column that
    /// [looks like one](looks_like_credential) is masked even without a rule matching.
    ///
    /// Returns the fields (borrowed where unchanged) and how many changed.
    pub fn redact_fields<'a>(
        &self,
        fields: &[Option<&'a [u8]>],
        credential: &[bool],
    ) -> (Vec<Option<Cow<'a, [u8]>>>, usize) {
        // A value in a credential column that looks like one is masked whole.
        let column = |i: usize, v: &[u8]| -> Option<Cow<'a, [u8]>> {
            (credential.get(i).copied().unwrap_or(false) && looks_like_credential(v))
                .then(|| Cow::Owned(self.placeholder(crate::CREDENTIAL_COLUMN, v).into_bytes()))
        };
        // Fast path: every finding starts from a keyword hit or a known value, so when the
        // fields joined hold no keyword, no known value is registered and no field spans lines
        // (tabular text), nothing but a credential column can change.
        if self.known_values().is_none() {
            let mut all = Vec::with_capacity(fields.iter().flatten().map(|v| v.len()).sum());
            for v in fields.iter().flatten() {
                all.extend_from_slice(v);
            }
            let mut hits = Vec::new();
            self.collect_hits(&all, 0, &mut hits);
            if hits.is_empty() && memchr::memchr(b'\n', &all).is_none() {
                let mut changed = 0;
                let out = fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let v = (*f)?;
                        let m = column(i, v);
                        changed += usize::from(m.is_some());
                        Some(m.unwrap_or(Cow::Borrowed(v)))
                    })
                    .collect();
                return (out, changed);
            }
        }
        // What to replace in each field: (start, end, placeholder), from its own findings and
        // from findings of the fields joined end to end that cross a boundary.
        let mut cuts: Vec<Vec<(usize, usize, String)>> = fields
            .iter()
            .map(|f| {
                f.map(|v| {
                    self.spans(v)
                        .iter()
                        .map(|s| (s.start, s.end, self.placeholder(&self.ids[s.id], &v[s.start..s.end])))
                        .collect()
                })
                .unwrap_or_default()
            })
            .collect();
        let present: Vec<(usize, &'a [u8])> = fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.filter(|v| !v.is_empty()).map(|v| (i, v)))
            .collect();
        let own: Vec<Vec<(usize, usize)>> = cuts.iter().map(|c| c.iter().map(|x| (x.0, x.1)).collect()).collect();
        // Each field joined with the next ones (up to JOINED fields, so a secret cut in three is
        // found): a window starts at a field so that its first byte follows a boundary.
        const JOINED: usize = 3;
        let mut joined = Vec::new();
        let mut bounds = Vec::with_capacity(JOINED);
        for k in 0..present.len().saturating_sub(1) {
            joined.clear();
            bounds.clear();
            for (i, v) in &present[k..(k + JOINED).min(present.len())] {
                bounds.push((*i, joined.len(), joined.len() + v.len()));
                joined.extend_from_slice(v);
            }
            let first_end = bounds[0].2;
            for s in self.spans(&joined) {
                // Found from the window of the field it starts in, and only when it crosses.
                if s.start >= first_end || s.end <= first_end {
                    continue;
                }
                // A secret whole in one field, which a match ran on past (`sk_live_…` then
                // `owner@…` in the next column): found already, not split.
                let whole_in_one = bounds.iter().any(|&(i, a, b)| {
                    let (from, to) = (s.start.max(a) - a, s.end.min(b).saturating_sub(a));
                    from < to && own[i].iter().any(|&(x, y)| x < to && from < y)
                });
                if whole_in_one {
                    continue;
                }
                let ph = self.placeholder(&self.ids[s.id], &joined[s.start..s.end]);
                for &(i, a, b) in &bounds {
                    let (from, to) = (s.start.max(a), s.end.min(b));
                    if from < to {
                        cuts[i].push((from - a, to - a, ph.clone()));
                    }
                }
            }
        }
        let mut changed = 0;
        let out = fields
            .iter()
            .zip(cuts)
            .enumerate()
            .map(|(i, (f, mut c))| {
                let v = (*f)?;
                if let Some(m) = column(i, v) {
                    changed += 1;
                    return Some(m);
                }
                if c.is_empty() {
                    return Some(Cow::Borrowed(v));
                }
                changed += 1;
                // Overlapping parts are merged: one placeholder (the first's) for their union.
                c.sort_by_key(|x| (x.0, std::cmp::Reverse(x.1)));
                let mut m = Vec::with_capacity(v.len() + 40 * c.len());
                let mut pos = 0;
                for (from, to, ph) in &c {
                    if *to <= pos {
                        continue;
                    }
                    if *from >= pos {
                        m.extend_from_slice(&v[pos..*from]);
                        m.extend_from_slice(ph.as_bytes());
                    }
                    pos = *to;
                }
                m.extend_from_slice(&v[pos..]);
                Some(Cow::Owned(m))
            })
            .collect();
        (out, changed)
    }
}
