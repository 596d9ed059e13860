//! Exact known values: the credentials a host holds, found in their raw, base64, URL-encoded and
//! hex forms, even where no pattern would find them.
//!
//! Brokered values (credentials the host holds on the agent's behalf, see
//! [`crate::broker`]) are found harder: in those forms and JSON-escaped and reversed, ignoring
//! ASCII case, and any piece of [`PIECE`] or more bytes of the value or of its reverse (so
//! `substr(password, 1, 10)` and `reverse(password)` are found); each is replaced by its
//! placeholder.

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;

use crate::error::{Error, ErrorKind};

/// Shortest registrable value: shorter values would mask ordinary words.
pub(crate) const MIN_LEN: usize = 4;
/// Longest registrable value.
pub(crate) const MAX_LEN: usize = 4096;

/// The shortest piece of a brokered value that is found on its own.
pub(crate) const PIECE: usize = 8;

/// Grams are this long, probed at every `STRIDE`th position: any match of `STRIDE + GRAM - 1`
/// bytes or more holds a whole gram at a probed position, whatever the alignment. That is
/// [`PIECE`]: the shortest piece found must hold a probe, and the wider the stride, the fewer
/// probes (the probes are the held values' cost on clean text).
const GRAM: usize = 4;
const STRIDE: usize = PIECE + 1 - GRAM;
/// Whole patterns shorter than this cannot be told to hold a probed gram.
const PROBED: usize = STRIDE + GRAM - 1;

/// The probe filter's size: about 64 bits per gram indexed (so a probe of ordinary text rarely
/// goes further), between 2^12 bits (512 bytes) and 2^24 (2 MiB).
const MIN_BITS: u32 = 12;
const MAX_BITS: u32 = 24;

#[derive(Debug)]
pub(crate) struct KnownValues {
    /// Patterns matched whole (each value's forms): bytes, label, whether ASCII case is ignored.
    whole: Vec<(Vec<u8>, usize, bool)>,
    /// Forms pieces of which are matched (brokered values and their reverses): bytes, label.
    forms: Vec<(Vec<u8>, usize)>,
    /// Whole patterns too short to hold a probed gram, matched by an automaton (ignoring ASCII
    /// case; a match of a pattern that keeps case is checked again).
    short: Option<(AhoCorasick, Vec<u32>)>,
    /// Which gram keys occur anywhere (a bit per hashed key).
    filter: Vec<u64>,
    /// 32 minus the filter's size in bits, as a power of two.
    shift: u32,
    /// Where each gram key occurs.
    grams: rustc_hash::FxHashMap<u32, smallvec::SmallVec<[Entry; 2]>>,
    /// The longest pattern or value, in bytes.
    pub(crate) max_len: usize,
    /// Whether some value spans lines (then a match may be in progress across a newline).
    pub(crate) has_newline: bool,
}

/// Where a gram occurs.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// At `offset` (below `GRAM`) of whole pattern `pattern`.
    Whole { pattern: u32, offset: u32 },
    /// At `offset` of piece form `form`.
    Piece { form: u32, offset: u32 },
}

/// A gram's key: its bytes with bit 5 set (ASCII letters folded to lower case; other bytes
/// folded onto neighbours, which verification tells apart).
fn key(g: [u8; GRAM]) -> u32 {
    u32::from_le_bytes(g) | 0x2020_2020
}

fn slot(key: u32, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

/// A match found: start, end, label.
pub(crate) type Hit = (usize, usize, usize);

impl KnownValues {
    fn index(&mut self, g: &[u8], e: Entry) {
        let k = key([g[0], g[1], g[2], g[3]]);
        self.grams.entry(k).or_default().push(e);
    }

    /// Sizes the filter for the grams indexed and sets their bits.
    fn fill_filter(&mut self) {
        let want = (self.grams.len().max(1) * 64).next_power_of_two().trailing_zeros();
        let bits = want.clamp(MIN_BITS, MAX_BITS);
        self.shift = 32 - bits;
        self.filter = vec![0; (1usize << bits) / 64];
        for &k in self.grams.keys() {
            let s = slot(k, self.shift);
            self.filter[s / 64] |= 1 << (s % 64);
        }
    }

    /// Every match in `hay` starting at or after `from`: whole patterns, and pieces of
    /// [`PIECE`] bytes or more extended as far as they go (not before `from`). Overlapping
    /// matches are all reported; the caller keeps the best.
    pub(crate) fn find(&self, hay: &[u8], from: usize, out: &mut Vec<Hit>) {
        let n0 = out.len();
        if let Some((ac, of)) = &self.short {
            // Overlapping: a match ignoring case that is not one may hide one that is.
            let mut state = aho_corasick::automaton::OverlappingState::start();
            let input = aho_corasick::Input::new(hay).span(from..hay.len());
            loop {
                ac.find_overlapping(input.clone(), &mut state);
                let Some(m) = state.get_match() else { break };
                let (pat, label, fold) = &self.whole[of[m.pattern().as_usize()] as usize];
                if *fold || &hay[m.range()] == pat.as_slice() {
                    out.push((m.start(), m.end(), *label));
                }
            }
        }
        // Probes in blocks: the filter's bits are loaded together (independent loads overlap in
        // the memory system), and only a block with a bit set is looked at probe by probe. A
        // whole block reads a fixed-size window, so its loads need no bounds checks.
        const BLOCK: usize = 8;
        const SPAN: usize = (BLOCK - 1) * STRIDE + GRAM;
        let bit = |k: u32| {
            let s = slot(k, self.shift);
            (self.filter[s / 64] >> (s % 64)) & 1
        };
        let mut p = from;
        while let Some(window) = hay.get(p..p + SPAN) {
            let window: &[u8; SPAN] = window.try_into().expect("SPAN bytes");
            let mut keys = [0u32; BLOCK];
            let mut set = 0u64;
            for (i, k) in keys.iter_mut().enumerate() {
                let q = i * STRIDE;
                *k = key([window[q], window[q + 1], window[q + 2], window[q + 3]]);
                set |= bit(*k) << i;
            }
            while set != 0 {
                let i = set.trailing_zeros() as usize;
                set &= set - 1;
                self.probe(hay, from, p + i * STRIDE, keys[i], out);
            }
            p += BLOCK * STRIDE;
        }
        while p + GRAM <= hay.len() {
            let k = key([hay[p], hay[p + 1], hay[p + 2], hay[p + 3]]);
            if bit(k) != 0 {
                self.probe(hay, from, p, k, out);
            }
            p += STRIDE;
        }
        // One match is found from each of its probed grams, and matches of pieces overlap
        // (text holding two pieces that share bytes): overlapping matches become one, under the
        // label of the longest, so no byte of any match is left out.
        out[n0..].sort_unstable();
        let mut kept = n0;
        for i in n0..out.len() {
            let (s, e, label) = out[i];
            if kept > n0 && s < out[kept - 1].1 {
                let last = &mut out[kept - 1];
                if e - s > last.1 - last.0 {
                    last.2 = label;
                }
                last.1 = last.1.max(e);
            } else {
                out[kept] = (s, e, label);
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// One probe that passed the filter: the gram keyed `k` at `p`, against every place it
    /// occurs.
    fn probe(&self, hay: &[u8], from: usize, p: usize, k: u32, out: &mut Vec<Hit>) {
        if let Some(entries) = self.grams.get(&k) {
            for &e in entries {
                match e {
                    Entry::Whole { pattern, offset } => {
                        let (pat, label, fold) = &self.whole[pattern as usize];
                        let Some(start) = p.checked_sub(offset as usize).filter(|&st| st >= from) else {
                            continue;
                        };
                        let Some(text) = hay.get(start..start + pat.len()) else {
                            continue;
                        };
                        if if *fold {
                            text.eq_ignore_ascii_case(pat)
                        } else {
                            text == pat.as_slice()
                        } {
                            out.push((start, start + pat.len(), *label));
                        }
                    }
                    Entry::Piece { form, offset } => {
                        let (f, label) = &self.forms[form as usize];
                        let o = offset as usize;
                        if !hay[p..p + GRAM].eq_ignore_ascii_case(&f[o..o + GRAM]) {
                            continue;
                        }
                        let back = hay[from..p]
                            .iter()
                            .rev()
                            .zip(f[..o].iter().rev())
                            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                            .count();
                        let fwd = hay[p + GRAM..]
                            .iter()
                            .zip(&f[o + GRAM..])
                            .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                            .count();
                        if back + GRAM + fwd >= PIECE {
                            out.push((p - back, p + GRAM + fwd, *label));
                        }
                    }
                }
            }
        }
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

/// Compiles known values (`values`: label index, value) and brokered values (`brokered`: the
/// same).
pub(crate) fn build(values: &[(usize, Vec<u8>)], brokered: &[(usize, Vec<u8>)]) -> Result<Option<KnownValues>, Error> {
    if values.is_empty() && brokered.is_empty() {
        return Ok(None);
    }
    let mut k = KnownValues {
        whole: Vec::new(),
        forms: Vec::new(),
        short: None,
        filter: Vec::new(),
        shift: 32,
        grams: rustc_hash::FxHashMap::default(),
        max_len: 0,
        has_newline: false,
    };
    for (label, value) in values {
        check_len(value)?;
        for enc in encodings(value) {
            k.whole.push((enc, *label, false));
        }
    }
    for (label, value) in brokered {
        check_len(value)?;
        for enc in brokered_forms(value) {
            k.whole.push((enc, *label, true));
        }
        if value.len() >= PIECE {
            k.forms.push((value.clone(), *label));
            k.forms.push((value.iter().rev().copied().collect(), *label));
        }
    }
    let mut short = Vec::new();
    for i in 0..k.whole.len() {
        let len = k.whole[i].0.len();
        if len < PROBED {
            short.push(i as u32);
            continue;
        }
        // A match starts at most `STRIDE - 1` bytes before a probe.
        for offset in 0..STRIDE {
            let g = k.whole[i].0[offset..offset + GRAM].to_vec();
            k.index(
                &g,
                Entry::Whole {
                    pattern: i as u32,
                    offset: offset as u32,
                },
            );
        }
    }
    for f in 0..k.forms.len() {
        for offset in 0..=k.forms[f].0.len() - GRAM {
            let g = k.forms[f].0[offset..offset + GRAM].to_vec();
            k.index(
                &g,
                Entry::Piece {
                    form: f as u32,
                    offset: offset as u32,
                },
            );
        }
    }
    k.fill_filter();
    if !short.is_empty() {
        let patterns: Vec<&[u8]> = short.iter().map(|&i| k.whole[i as usize].0.as_slice()).collect();
        // Short patterns are forms of 4 to 7 bytes: matched ignoring ASCII case as a brokered
        // value's forms are, then checked again for the others (known values keep case).
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(&patterns)
            .map_err(|e| Error::new(ErrorKind::Limit, format!("known values do not compile: {e}")))?;
        k.short = Some((ac, short));
    }
    k.max_len = k
        .whole
        .iter()
        .map(|w| w.0.len())
        .chain(k.forms.iter().map(|f| f.0.len()))
        .max()
        .unwrap_or(0);
    k.has_newline = k.whole.iter().any(|w| w.0.contains(&b'\n'));
    Ok(Some(k))
}
