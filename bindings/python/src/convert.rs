//! Conversions between Python and the core: `bytes`/`str` inputs read in place, outputs of the
//! type that came in, code-point offsets, Python-style reprs, and when to release the GIL.

use std::collections::BTreeMap;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// Inputs larger than this are scanned with the GIL released; below it the release costs more
/// than it frees.
pub(crate) const RELEASE_GIL_ABOVE: usize = 16 * 1024;

/// A string as Python's `repr` shows it.
pub(crate) fn quote(s: &str) -> String {
    format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n")
    )
}

/// An optional string as Python's `repr` shows it.
pub(crate) fn quote_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_string(), quote)
}

/// A list of strings as Python's `repr` shows it.
pub(crate) fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", inner.join(", "))
}

/// A dict of strings as Python's `repr` shows it.
pub(crate) fn quote_map(map: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{}: {}", quote(k), quote(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Runs `f` over `len` bytes of input, without the GIL when the input is large enough for other
/// threads to gain from it.
pub(crate) fn detach_if_large<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len > RELEASE_GIL_ABOVE { py.detach(f) } else { f() }
}

/// Data as bytes, remembering which type it came as.
pub(crate) struct Input<'py, 'a> {
    /// The `bytes` object itself, or the UTF-8 encoding of the `str`.
    pub(crate) utf8: Bound<'py, PyBytes>,
    pub(crate) is_str: bool,
    pub(crate) original: &'a Bound<'py, PyAny>,
}

impl Input<'_, '_> {
    /// The bytes, read in place from the Python object that holds them.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.utf8.as_bytes()
    }
}

pub(crate) fn input<'py, 'a>(obj: &'a Bound<'py, PyAny>) -> PyResult<Input<'py, 'a>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input {
            utf8: b.clone(),
            is_str: false,
            original: obj,
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        // The stable ABI for Python 3.9 has no borrowed UTF-8 view of a str: one encoding copy,
        // made by Python, read in place from then on.
        return Ok(Input {
            utf8: s.encode_utf8()?,
            is_str: true,
            original: obj,
        });
    }
    Err(PyTypeError::new_err(format!(
        "expected bytes or str, got {}",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string())
    )))
}

/// Returns `data` as the Python type the input came as.
pub(crate) fn output<'py>(py: Python<'py>, data: &[u8], is_str: bool) -> PyResult<Bound<'py, PyAny>> {
    if is_str {
        let s = std::str::from_utf8(data).map_err(|e| PyValueError::new_err(format!("not UTF-8: {e}")))?;
        Ok(PyString::new(py, s).into_any())
    } else {
        Ok(PyBytes::new(py, data).into_any())
    }
}

/// Converts ascending byte offsets into code-point offsets of the same UTF-8 text.
pub(crate) struct CharIndex<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) ascii: bool,
    pub(crate) byte: usize,
    pub(crate) chars: usize,
}

impl<'a> CharIndex<'a> {
    pub(crate) fn new(data: &'a [u8], is_str: bool) -> CharIndex<'a> {
        CharIndex {
            data,
            ascii: !is_str || data.is_ascii(),
            byte: 0,
            chars: 0,
        }
    }

    pub(crate) fn at(&mut self, offset: usize) -> usize {
        if self.ascii {
            return offset;
        }
        if offset < self.byte {
            (self.byte, self.chars) = (0, 0);
        }
        self.chars += self.data[self.byte..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        self.byte = offset;
        self.chars
    }
}
