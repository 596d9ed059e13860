//! Streaming redaction.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::convert::*;

/// Streaming redaction: feed chunks, get masked chunks; a secret cut across chunks is still
/// masked. The output type follows the first chunk (`bytes` or `str`).
#[pyclass(module = "sluice")]
pub(crate) struct StreamRedactor {
    pub(crate) inner: sluice_core::StreamRedactor<'static>,
    /// `None` until the first chunk; then whether chunks are `str`.
    pub(crate) is_str: Option<bool>,
    pub(crate) out: Vec<u8>,
    /// `str` mode: bytes of a character not yet complete.
    pub(crate) partial: Vec<u8>,
    pub(crate) finished: bool,
}

impl StreamRedactor {
    pub(crate) fn emit<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.is_str != Some(true) {
            let r = PyBytes::new(py, &self.out).into_any();
            self.out.clear();
            return Ok(r);
        }
        self.partial.append(&mut self.out);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(_) => self.partial.len(),
            Err(e) if e.error_len().is_none() && !self.finished => e.valid_up_to(),
            Err(e) => return Err(PyValueError::new_err(format!("redacted text is not UTF-8: {e}"))),
        };
        let s = std::str::from_utf8(&self.partial[..valid]).unwrap_or_default();
        let r = PyString::new(py, s).into_any();
        self.partial.drain(..valid);
        Ok(r)
    }
}

#[pymethods]
impl StreamRedactor {
    /// Masks `chunk`; returns what can be released now (a suffix that may begin a secret is held
    /// back until the next chunk or `finish()`).
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if self.finished {
            return Err(PyValueError::new_err("feed() after finish()"));
        }
        let data = input(chunk)?;
        match self.is_str {
            None => self.is_str = Some(data.is_str),
            Some(s) if s != data.is_str => {
                return Err(PyTypeError::new_err(
                    "a stream's chunks must all be bytes or all be str",
                ));
            }
            Some(_) => {}
        }
        let (inner, out) = (&mut self.inner, &mut self.out);
        let bytes = data.bytes();
        detach_if_large(py, bytes.len(), || inner.feed(bytes, out));
        self.emit(py)
    }

    /// Releases what was held back. Call once at the end of the stream.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if !self.finished {
            self.inner.finish(&mut self.out);
            self.finished = true;
        }
        self.emit(py)
    }

    /// Bytes held back now.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending() + self.partial.len()
    }
}
