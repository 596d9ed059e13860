//! Exact known values: the credentials a host holds, found in their raw, base64, URL-encoded and
//! hex forms, even where no pattern would find them.
//!
//! Brokered values (credentials the host holds on the agent's behalf, see
//! [`crate::broker`]) are found harder: in those forms and JSON-escaped and reversed, ignoring
//! ASCII case, and any piece of [`PIECE`] or more bytes of the value or of its reverse (so
//! `substr(password, 1, 10)` and `reverse(password)` are found); each is replaced by its
//! placeholder.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;

use crate::error::{Error, ErrorKind};

/// Shortest registrable value: shorter values would mask ordinary words.
pub(crate) const MIN_LEN: usize = 4;
/// Longest registrable value.
pub(crate) const MAX_LEN: usize = 4096;

/// The shortest piece of a brokered value that is found on its own.
pub(crate) const PIECE: usize = 8;

#[derive(Debug)]
pub(crate) struct KnownValues {
    /// Known values' forms, matched exactly.
    pub(crate) ac: Option<AhoCorasick>,
    /// For each pattern of `ac`, the label index it stands for.
    pub(crate) label_of: Vec<usize>,
    /// Brokered values' forms and pieces, matched ignoring ASCII case.
    pub(crate) folded: Option<Folded>,
    /// The longest pattern or value, in bytes.
    pub(crate) max_len: usize,
    /// Whether some value spans lines (then a match may be in progress across a newline).
    pub(crate) has_newline: bool,
}

/// The automaton of brokered values.
#[derive(Debug)]
pub(crate) struct Folded {
    pub(crate) ac: AhoCorasick,
    /// For each pattern: its label, and for a piece, where it is in which form of the value.
    pub(crate) pattern: Vec<(usize, Option<Piece>)>,
    /// Each brokered value and its reverse (pieces are extended along them).
    pub(crate) forms: Vec<Vec<u8>>,
}

/// A piece of a brokered value: the form it comes from (`Folded::forms`) and its offset there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    form: u32,
    offset: u32,
}

impl Folded {
    /// Where the match of pattern `p` at `start..end` really ends: a piece is extended as far
    /// as the text goes on matching its value (ignoring ASCII case).
    pub(crate) fn extend(&self, hay: &[u8], p: usize, end: usize) -> usize {
        let Some((_, Some(piece))) = self.pattern.get(p) else {
            return end;
        };
        let form = &self.forms[piece.form as usize];
        let rest = &form[piece.offset as usize + PIECE..];
        let more = hay[end..]
            .iter()
            .zip(rest)
            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
            .count();
        end + more
    }
}

/// The forms of a brokered value matched whole: the known-value forms, JSON-escaped, reversed.
fn brokered_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out = encodings(value);
    if let Ok(text) = std::str::from_utf8(value)
        && let Ok(json) = serde_json::to_string(text)
    {
        out.push(json.as_bytes()[1..json.len() - 1].to_vec());
        // JavaScript's JSON.stringify-style escaping of `/` too.
        out.push(json[1..json.len() - 1].replace('/', "\\/").into_bytes());
    }
    out.push(value.iter().rev().copied().collect());
    out.sort();
    out.dedup();
    out
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

fn check_len(value: &[u8]) -> Result<(), Error> {
    if value.len() < MIN_LEN || value.len() > MAX_LEN {
        return Err(Error::new(
            ErrorKind::KnownValue,
            format!(
                "a known value must be {MIN_LEN} to {MAX_LEN} bytes long, this one is {}",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn compile(patterns: &[Vec<u8>], fold: bool) -> Result<AhoCorasick, Error> {
    let builder = |dfa: bool| {
        let mut b = AhoCorasick::builder();
        b.match_kind(MatchKind::LeftmostLongest).ascii_case_insensitive(fold);
        if dfa {
            b.kind(Some(AhoCorasickKind::DFA));
        }
        b.build(patterns)
    };
    builder(true)
        .or_else(|_| builder(false))
        .map_err(|e| Error::new(ErrorKind::Limit, format!("known values do not compile: {e}")))
}

/// Compiles known values (`values`: label index, value) and brokered values (`brokered`: the
/// same).
pub(crate) fn build(values: &[(usize, Vec<u8>)], brokered: &[(usize, Vec<u8>)]) -> Result<Option<KnownValues>, Error> {
    if values.is_empty() && brokered.is_empty() {
        return Ok(None);
    }
    let mut patterns = Vec::new();
    let mut label_of = Vec::new();
    for (label, value) in values {
        check_len(value)?;
        for enc in encodings(value) {
            patterns.push(enc);
            label_of.push(*label);
        }
    }
    let mut folded_patterns = Vec::new();
    let mut pattern = Vec::new();
    let mut forms = Vec::new();
    for (label, value) in brokered {
        check_len(value)?;
        for enc in brokered_forms(value) {
            folded_patterns.push(enc);
            pattern.push((*label, None));
        }
        if value.len() >= PIECE {
            for form in [value.clone(), value.iter().rev().copied().collect()] {
                let f = forms.len() as u32;
                for offset in 0..=form.len() - PIECE {
                    folded_patterns.push(form[offset..offset + PIECE].to_vec());
                    pattern.push((
                        *label,
                        Some(Piece {
                            form: f,
                            offset: offset as u32,
                        }),
                    ));
                }
                forms.push(form);
            }
        }
    }
    let all = patterns.iter().chain(&folded_patterns);
    let max_len = all.clone().map(Vec::len).max().unwrap_or(0);
    let has_newline = all.clone().any(|p| p.contains(&b'\n'));
    Ok(Some(KnownValues {
        ac: (!patterns.is_empty()).then(|| compile(&patterns, false)).transpose()?,
        label_of,
        folded: (!folded_patterns.is_empty())
            .then(|| compile(&folded_patterns, true))
            .transpose()?
            .map(|ac| Folded { ac, pattern, forms }),
        max_len,
        has_newline,
    }))
}
