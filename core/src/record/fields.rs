//! A record's fields written straight to the canonical encoding (compact JSON, object keys in
//! byte order: what `serde_json` writes for a `Value`), without building a JSON tree: the
//! recorder's hot path.

use std::borrow::Cow;

/// One field's value.
pub(crate) enum F<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    Bool(bool),
    Null,
    Obj(Box<Fields<'a>>),
}

impl<'a> From<&'a str> for F<'a> {
    fn from(s: &'a str) -> F<'a> {
        F::Str(Cow::Borrowed(s))
    }
}

impl From<String> for F<'_> {
    fn from(s: String) -> Self {
        F::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for F<'a> {
    fn from(s: Cow<'a, str>) -> F<'a> {
        F::Str(s)
    }
}

impl From<u64> for F<'_> {
    fn from(n: u64) -> Self {
        F::U64(n)
    }
}

impl From<bool> for F<'_> {
    fn from(b: bool) -> Self {
        F::Bool(b)
    }
}

impl<'a> From<Option<&'a str>> for F<'a> {
    fn from(s: Option<&'a str>) -> F<'a> {
        s.map_or(F::Null, F::from)
    }
}

impl<'a> From<Fields<'a>> for F<'a> {
    fn from(f: Fields<'a>) -> F<'a> {
        F::Obj(Box::new(f))
    }
}

/// An object's fields, in any order (written sorted). Keys are unique.
///
/// On the heap: the builder passes `Fields` by value, and a record's sixteen inline fields
/// (~640 bytes) were copied at every [`with`](Fields::with) (a tenth of a decision record's
/// cost, measured); one allocation is cheaper.
#[derive(Default)]
pub(crate) struct Fields<'a>(Vec<(&'static str, F<'a>)>);

impl<'a> Fields<'a> {
    pub(crate) fn new() -> Fields<'a> {
        Fields(Vec::with_capacity(16))
    }

    /// With `key` set to `value`.
    pub(crate) fn with(mut self, key: &'static str, value: impl Into<F<'a>>) -> Fields<'a> {
        self.set(key, value);
        self
    }

    /// Sets `key` (once per key).
    pub(crate) fn set(&mut self, key: &'static str, value: impl Into<F<'a>>) {
        debug_assert!(self.0.iter().all(|(k, _)| *k != key), "field {key} set twice");
        self.0.push((key, value.into()));
    }

    /// Appends the canonical encoding to `out`.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>) {
        self.0.sort_unstable_by_key(|(k, _)| *k);
        out.push(b'{');
        for (i, (k, v)) in self.0.iter_mut().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            match v {
                F::Str(s) => string(out, s),
                F::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
                F::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                F::Null => out.extend_from_slice(b"null"),
                F::Obj(f) => f.write(out),
            }
        }
        out.push(b'}');
    }
}

/// A JSON string, escaped as `serde_json` escapes it (`"`, `\\` and control characters; the
/// rest as it is). Runs of 8 bytes that need no escape (most of a record: commands, output)
/// are checked together and copied whole, several times faster than `serde_json`'s byte loop.
fn string(out: &mut Vec<u8>, s: &str) {
    const CHUNK: usize = 8;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `x` is below 0x20, `"` or `\\` (exact: the borrow tricks below only
    // ever err on a byte that also matches).
    let any = |x: u64| {
        let below = x.wrapping_sub(0x20 * ONES) & !x;
        let quote = (x ^ (u64::from(b'"') * ONES)).wrapping_sub(ONES) & !(x ^ (u64::from(b'"') * ONES));
        let slash = (x ^ (u64::from(b'\\') * ONES)).wrapping_sub(ONES) & !(x ^ (u64::from(b'\\') * ONES));
        (below | quote | slash) & HIGH != 0
    };
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut clean = 0; // bytes[clean..i] need no escape and are not written yet
    let mut i = 0;
    while i < bytes.len() {
        if let Some(c) = bytes.get(i..i + CHUNK)
            && !any(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        {
            i += CHUNK;
            continue;
        }
        let b = bytes[i];
        if needs(b) {
            out.extend_from_slice(&bytes[clean..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 15)]);
                }
            }
            clean = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    #[test]
    fn every_ascii_character_at_every_offset_of_a_word_is_escaped_as_serde_json_does() {
        for c in (0u8..128).map(char::from) {
            for at in 0..18 {
                let mut s: String = "abcdefghijklmnopqr".into();
                s.replace_range(at..=at, &c.to_string());
                let mut ours = Vec::new();
                string(&mut ours, &s);
                assert_eq!(
                    String::from_utf8(ours).expect("UTF-8"),
                    serde_json::to_string(&s).expect("JSON")
                );
            }
        }
    }

    proptest! {
        /// Strings are escaped byte for byte as `serde_json` escapes them, whatever they hold
        /// (control characters, quotes and backslashes at any offset, multi-byte characters).
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(
            s in proptest::collection::vec(
                prop_oneof![
                    4 => proptest::char::range('a', 'z'),
                    1 => proptest::char::range('\u{0}', '\u{7f}'),
                    1 => Just('"'),
                    1 => Just('\\'),
                    1 => proptest::char::any(),
                ],
                0..80,
            ).prop_map(|c| c.into_iter().collect::<String>())
        ) {
            let mut ours = Vec::new();
            string(&mut ours, &s);
            prop_assert_eq!(String::from_utf8(ours).expect("UTF-8"), serde_json::to_string(&s).expect("JSON"));
        }
    }

    #[test]
    fn the_encoding_is_serde_jsons_canonical_one() {
        let mut f = Fields::new()
            .with("zeta", "a \"quoted\"\n\u{1}\u{7f}é line")
            .with("alpha", 18_446_744_073_709_551_615u64)
            .with("mid", Fields::new().with("y", true).with("x", None::<&str>))
            .with("b", false)
            .with("a_b", String::from("\\"));
        let mut out = Vec::new();
        f.write(&mut out);
        let v: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            serde_json::to_vec(&v).expect("encodes"),
            out,
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
