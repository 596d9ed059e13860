//! A record's fields written straight to the canonical encoding (compact JSON, object keys in
//! byte order: what `serde_json` writes for a `Value`), without building a JSON tree: the
//! recorder's hot path.

use std::borrow::Cow;

use smallvec::SmallVec;

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
#[derive(Default)]
pub(crate) struct Fields<'a>(SmallVec<[(&'static str, F<'a>); 16]>);

impl<'a> Fields<'a> {
    pub(crate) fn new() -> Fields<'a> {
        Fields::default()
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

/// A JSON string, escaped as `serde_json` escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
