//! Exact known values: the credentials a host holds, found in their raw, base64, URL-encoded and
//! hex forms, even where no pattern would find them.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;

use crate::error::{Error, ErrorKind};

/// Shortest registrable value: shorter values would mask ordinary words.
pub(crate) const MIN_LEN: usize = 4;
/// Longest registrable value.
pub(crate) const MAX_LEN: usize = 4096;

#[derive(Debug)]
pub(crate) struct KnownValues {
    pub(crate) ac: AhoCorasick,
    /// For each automaton pattern, the label index it stands for.
    pub(crate) label_of: Vec<usize>,
    /// The longest pattern, in bytes.
    pub(crate) max_len: usize,
    /// Whether some value spans lines (then a match may be in progress across a newline).
    pub(crate) has_newline: bool,
}

/// Every form of `value` worth searching for.
pub(crate) fn encodings(value: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut out = vec![value.to_vec()];
    out.push(STANDARD.encode(value).into_bytes());
    out.push(STANDARD_NO_PAD.encode(value).into_bytes());
    out.push(URL_SAFE_NO_PAD.encode(value).into_bytes());
    // The value embedded at any alignment inside a longer base64 text (an `Authorization: Basic`
    // header holding `user:password`, say): the characters that depend on the value alone.
    for k in 1..3usize {
        let mut padded = vec![0u8; k];
        padded.extend_from_slice(value);
        for enc in [STANDARD_NO_PAD.encode(&padded), URL_SAFE_NO_PAD.encode(&padded)] {
            let first = (8 * k).div_ceil(6);
            let last = 8 * (k + value.len()) / 6;
            if last > first && last - first >= 8 {
                out.push(enc.as_bytes()[first..last].to_vec());
            }
        }
    }
    {
        let last = 8 * value.len() / 6;
        if last >= 8 {
            out.push(STANDARD_NO_PAD.encode(value).as_bytes()[..last].to_vec());
            out.push(URL_SAFE_NO_PAD.encode(value).as_bytes()[..last].to_vec());
        }
    }
    let mut pct = Vec::with_capacity(value.len() * 3);
    let mut pct_lower = Vec::with_capacity(value.len() * 3);
    for &b in value {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            pct.push(b);
            pct_lower.push(b);
        } else {
            pct.extend_from_slice(format!("%{b:02X}").as_bytes());
            pct_lower.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    out.push(pct);
    out.push(pct_lower);
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex.to_uppercase().into_bytes());
    out.push(hex.into_bytes());
    out.sort();
    out.dedup();
    out
}

pub(crate) fn build(values: &[(usize, Vec<u8>)]) -> Result<Option<KnownValues>, Error> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut patterns = Vec::new();
    let mut label_of = Vec::new();
    for (label, value) in values {
        if value.len() < MIN_LEN || value.len() > MAX_LEN {
            return Err(Error::new(
                ErrorKind::KnownValue,
                format!(
                    "a known value must be {MIN_LEN} to {MAX_LEN} bytes long, this one is {}",
                    value.len()
                ),
            ));
        }
        for enc in encodings(value) {
            patterns.push(enc);
            label_of.push(*label);
        }
    }
    let max_len = patterns.iter().map(Vec::len).max().unwrap_or(0);
    let has_newline = patterns.iter().any(|p| p.contains(&b'\n'));
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&patterns)
        .or_else(|_| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
        })
        .map_err(|e| Error::new(ErrorKind::Limit, format!("known values do not compile: {e}")))?;
    Ok(Some(KnownValues {
        ac,
        label_of,
        max_len,
        has_newline,
    }))
}
